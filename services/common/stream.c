/*
 * stream.c - Redis connections with a sticky error, and stream consumers.
 *
 * The connection (bc_redis) is hiredis' blocking context with a socket
 * timeout: every command either answers within timeout_ms or fails. Any
 * failure of the connection itself closes it at once (bc_redis_fail) - a
 * context that saw an I/O error or half a reply is never used again - and
 * schedules the next attempt after a full-jitter backoff delay.
 *
 * The consumer is a small state machine around one connection:
 *
 *   (new connection) ──► group_ready? ──no──► XGROUP CREATE ... MKSTREAM
 *          │                   │ yes
 *          ▼                   ▼
 *     pending pass ──empty──► claim due? ──yes──► XAUTOCLAIM batch
 *   (XREADGROUP ... <cursor>)       │ no / nothing claimed
 *          ▲                        ▼
 *          │              XREADGROUP ... BLOCK ">" (outstanding read)
 *          └── RETRY verdict, rewind, new connection
 *
 * Invariants: an entry is XACKed only for a DONE or DROP verdict (or when
 * it vanished from the stream); the acknowledgements of one batch go in one
 * XACK after the batch; after a RETRY nothing later in the batch is
 * dispatched, so a retried entry is never overtaken by a newer one.
 */
#include "common/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/rand.h>

#include "common/clock.h"

#define ADD_FIELDS_MAX 32
#define ADD_ARGS_MAX (6 + 2 * ADD_FIELDS_MAX)
#define BACKOFF_SHIFT_MAX 30
#define BATCH_MAX 10000

/* ---- names ---- */

const char *bc_stream_for_kind(bc_topic_kind kind)
{
    switch (kind) {
    case BC_TOPIC_CONN:
        return BC_STREAM_CONN;
    case BC_TOPIC_STATE:
        return BC_STREAM_STATE;
    case BC_TOPIC_HEALTH:
        return BC_STREAM_HEALTH;
    case BC_TOPIC_EVENT:
        return BC_STREAM_EVENT;
    case BC_TOPIC_ACK:
        return BC_STREAM_ACK;
    case BC_TOPIC_UPLOAD:
        return BC_STREAM_UPLOAD;
    case BC_TOPIC_CSR:
        return BC_STREAM_CSR;
    default:
        return NULL;
    }
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

static bool name_ok(const char *name)
{
    return name != NULL && name[0] != '\0' && strlen(name) <= BC_STREAM_NAME_MAX;
}

/* ---- bc_redis ---- */

static struct timeval ms_to_timeval(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

int64_t bc_redis_backoff_cap_ms(int64_t min_ms, int64_t max_ms, unsigned failures)
{
    if (min_ms < 1)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    unsigned shift = failures > BACKOFF_SHIFT_MAX ? BACKOFF_SHIFT_MAX : failures;
    int64_t cap = min_ms;
    for (unsigned i = 0; i < shift && cap < max_ms; i++)
        cap *= 2;
    return cap > max_ms ? max_ms : cap;
}

/* Uniform in [0, cap]. The randomness only spreads reconnections; a
 * failing RAND_bytes falls back to the clock, which spreads them too. */
static int64_t jitter(int64_t cap)
{
    uint64_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
        v = (uint64_t)bc_clock_monotonic_ms() * 2654435761u;
    return (int64_t)(v % (uint64_t)(cap + 1));
}

static void schedule_attempt(bc_redis *r)
{
    int64_t cap =
        bc_redis_backoff_cap_ms(r->cfg.backoff_min_ms, r->cfg.backoff_max_ms, r->failures);
    if (r->failures < UINT32_MAX)
        r->failures++;
    r->next_attempt_ms = bc_clock_monotonic_ms() + jitter(cap);
}

bc_status bc_redis_init(bc_redis *r, const bc_redis_config *cfg, bc_error *err)
{
    memset(r, 0, sizeof(*r));
    if (cfg->host[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "redis host is empty");
    if (cfg->port < 1 || cfg->port > 65535)
        return bc_fail(err, BC_ERR_INVAL, "redis port %d is outside 1..65535", cfg->port);
    if (cfg->timeout_ms < 1)
        return bc_fail(err, BC_ERR_INVAL, "redis timeout must be at least 1 ms");
    if (cfg->backoff_min_ms < 1 || cfg->backoff_max_ms < cfg->backoff_min_ms)
        return bc_fail(err, BC_ERR_INVAL,
                       "redis backoff: need 1 <= min (%" PRId64 ") <= max (%" PRId64 ")",
                       cfg->backoff_min_ms, cfg->backoff_max_ms);
    r->cfg = *cfg;
    r->err = BC_ERR_UNAVAILABLE;
    copy_str(r->errstr, sizeof(r->errstr), "not connected yet");
    return BC_OK;
}

bool bc_redis_connected(const bc_redis *r)
{
    return r->ctx != NULL && r->err == BC_OK;
}

int64_t bc_redis_retry_in_ms(const bc_redis *r)
{
    if (bc_redis_connected(r))
        return 0;
    int64_t left = r->next_attempt_ms - bc_clock_monotonic_ms();
    return left > 0 ? left : 0;
}

void bc_redis_close(bc_redis *r)
{
    if (r->ctx != NULL)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->err = BC_ERR_UNAVAILABLE;
    copy_str(r->errstr, sizeof(r->errstr), "closed");
}

void bc_redis_fail(bc_redis *r, bc_status status, const char *reason)
{
    if (r->ctx != NULL)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->err = status == BC_OK ? BC_ERR_UNAVAILABLE : status;
    copy_str(r->errstr, sizeof(r->errstr), reason);
    schedule_attempt(r);
}

bc_status bc_redis_connect_now(bc_redis *r, bc_error *err)
{
    if (bc_redis_connected(r))
        return BC_OK;
    if (r->ctx != NULL) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
    struct timeval tv = ms_to_timeval(r->cfg.timeout_ms);
    redisContext *c = redisConnectWithTimeout(r->cfg.host, r->cfg.port, tv);
    char reason[200];
    if (c == NULL) {
        snprintf(reason, sizeof(reason), "cannot allocate a connection");
        goto fail;
    }
    if (c->err != 0) {
        snprintf(reason, sizeof(reason), "%s", c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
        snprintf(reason, sizeof(reason), "socket options: %s", c->errstr);
        goto fail;
    }
    r->ctx = c;
    r->err = BC_OK;
    r->errstr[0] = '\0';
    r->failures = 0;
    r->generation++;
    return BC_OK;

fail:
    if (c != NULL)
        redisFree(c);
    bc_redis_fail(r, BC_ERR_UNAVAILABLE, reason);
    return bc_fail(err, BC_ERR_UNAVAILABLE, "redis %s:%d: %s", r->cfg.host, r->cfg.port, reason);
}

bc_status bc_redis_connect(bc_redis *r, bc_error *err)
{
    if (bc_redis_connected(r))
        return BC_OK;
    int64_t wait = bc_redis_retry_in_ms(r);
    if (wait > 0)
        return bc_fail(err, BC_ERR_UNAVAILABLE, "redis %s:%d: %s; next attempt in %" PRId64 " ms",
                       r->cfg.host, r->cfg.port, r->errstr, wait);
    return bc_redis_connect_now(r, err);
}

static bc_status not_connected(bc_redis *r, bc_error *err)
{
    return bc_fail(err, BC_ERR_UNAVAILABLE, "redis %s:%d is not connected (%s)", r->cfg.host,
                   r->cfg.port, r->errstr);
}

/* The connection broke in the middle of a call: close it for good. */
static bc_status connection_failed(bc_redis *r, const char *what, bc_error *err)
{
    char reason[200];
    snprintf(reason, sizeof(reason), "%s: %s", what,
             r->ctx != NULL && r->ctx->errstr[0] != '\0' ? r->ctx->errstr : "connection lost");
    bc_redis_fail(r, BC_ERR_UNAVAILABLE, reason);
    return bc_fail(err, BC_ERR_UNAVAILABLE, "redis %s:%d: %s", r->cfg.host, r->cfg.port, reason);
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Takes ownership of reply: hands it out on success, frees it otherwise. */
static bc_status check_reply(bc_redis *r, redisReply *reply, redisReply **out, bc_error *err)
{
    if (reply->type != REDIS_REPLY_ERROR) {
        *out = reply;
        return BC_OK;
    }
    const char *text = reply->str != NULL ? reply->str : "";
    bc_status st = BC_ERR_STATE;
    if (starts_with(text, "LOADING") || starts_with(text, "BUSY ") ||
        starts_with(text, "MASTERDOWN") || starts_with(text, "TRYAGAIN"))
        st = BC_ERR_UNAVAILABLE;
    bc_fail(err, st, "redis %s:%d answered: %.180s", r->cfg.host, r->cfg.port, text);
    freeReplyObject(reply);
    return st;
}

bc_status bc_redis_command(bc_redis *r, int argc, const char **argv, const size_t *lens,
                           redisReply **out, bc_error *err)
{
    *out = NULL;
    if (!bc_redis_connected(r))
        return not_connected(r, err);
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, lens);
    if (reply == NULL)
        return connection_failed(r, argv[0], err);
    return check_reply(r, reply, out, err);
}

bc_status bc_redis_append(bc_redis *r, int argc, const char **argv, const size_t *lens,
                          bc_error *err)
{
    if (!bc_redis_connected(r))
        return not_connected(r, err);
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK)
        return connection_failed(r, argv[0], err);
    return BC_OK;
}

bc_status bc_redis_reply(bc_redis *r, redisReply **out, bc_error *err)
{
    *out = NULL;
    if (!bc_redis_connected(r))
        return not_connected(r, err);
    void *reply = NULL;
    if (redisGetReply(r->ctx, &reply) != REDIS_OK || reply == NULL)
        return connection_failed(r, "reading a reply", err);
    return check_reply(r, reply, out, err);
}

/* ---- stream commands ---- */

static bc_status build_add(const char *stream, int64_t maxlen, const bc_stream_field *fields,
                           size_t count, const char **argv, size_t *lens, char *maxlen_buf,
                           size_t maxlen_size, int *argc, bc_error *err)
{
    if (!name_ok(stream))
        return bc_fail(err, BC_ERR_INVAL, "stream name is empty or too long");
    if (count == 0 || count > ADD_FIELDS_MAX)
        return bc_fail(err, BC_ERR_INVAL, "an entry needs 1..%d fields, got %zu", ADD_FIELDS_MAX,
                       count);
    if (maxlen < 0)
        return bc_fail(err, BC_ERR_INVAL, "maxlen must not be negative");
    int n = 0;
    argv[n] = "XADD";
    lens[n++] = 4;
    argv[n] = stream;
    lens[n++] = strlen(stream);
    if (maxlen > 0) {
        snprintf(maxlen_buf, maxlen_size, "%" PRId64, maxlen);
        argv[n] = "MAXLEN";
        lens[n++] = 6;
        argv[n] = "~";
        lens[n++] = 1;
        argv[n] = maxlen_buf;
        lens[n++] = strlen(maxlen_buf);
    }
    argv[n] = "*";
    lens[n++] = 1;
    for (size_t i = 0; i < count; i++) {
        if (fields[i].name == NULL || fields[i].name[0] == '\0' ||
            (fields[i].value == NULL && fields[i].len > 0))
            return bc_fail(err, BC_ERR_INVAL, "field %zu has no name or no value", i);
        argv[n] = fields[i].name;
        lens[n++] = strlen(fields[i].name);
        argv[n] = fields[i].value != NULL ? fields[i].value : "";
        lens[n++] = fields[i].len;
    }
    *argc = n;
    return BC_OK;
}

static bc_status take_id(redisReply *reply, char id_out[BC_STREAM_ID_MAX + 1], bc_error *err)
{
    bc_status st = BC_OK;
    if (reply->type != REDIS_REPLY_STRING || reply->len > BC_STREAM_ID_MAX)
        st = bc_fail(err, BC_ERR_PARSE, "XADD did not answer with an entry id");
    else if (id_out != NULL)
        copy_str(id_out, BC_STREAM_ID_MAX + 1, reply->str);
    freeReplyObject(reply);
    return st;
}

bc_status bc_stream_add(bc_redis *r, const char *stream, int64_t maxlen,
                        const bc_stream_field *fields, size_t count,
                        char id_out[BC_STREAM_ID_MAX + 1], bc_error *err)
{
    const char *argv[ADD_ARGS_MAX];
    size_t lens[ADD_ARGS_MAX];
    char maxlen_buf[24];
    int argc = 0;
    bc_status st = build_add(stream, maxlen, fields, count, argv, lens, maxlen_buf,
                             sizeof(maxlen_buf), &argc, err);
    if (st != BC_OK)
        return st;
    redisReply *reply = NULL;
    st = bc_redis_command(r, argc, argv, lens, &reply, err);
    if (st != BC_OK)
        return st;
    return take_id(reply, id_out, err);
}

bc_status bc_outbox_add(bc_redis *r, const char *topic, const char *payload, int qos, bool retain,
                        bc_error *err)
{
    if (payload == NULL)
        return bc_fail(err, BC_ERR_INVAL, "an outbox entry needs a topic, a payload and QoS 0 or 1");
    return bc_outbox_add_bin(r, topic, payload, strlen(payload), qos, retain, err);
}

bc_status bc_outbox_add_bin(bc_redis *r, const char *topic, const void *payload, size_t len,
                            int qos, bool retain, bc_error *err)
{
    if (topic == NULL || (payload == NULL && len > 0) || (qos != 0 && qos != 1))
        return bc_fail(err, BC_ERR_INVAL, "an outbox entry needs a topic, a payload and QoS 0 or 1");
    const bc_stream_field fields[] = {
        {BC_FIELD_TOPIC, topic, strlen(topic)},
        {BC_FIELD_PAYLOAD, payload != NULL ? payload : "", len},
        {BC_FIELD_QOS, qos == 1 ? "1" : "0", 1},
        {BC_FIELD_RETAIN, retain ? "1" : "0", 1},
    };
    return bc_stream_add(r, BC_STREAM_OUTBOX, 0, fields, sizeof(fields) / sizeof(fields[0]), NULL,
                         err);
}

bc_status bc_stream_add_append(bc_redis *r, const char *stream, int64_t maxlen,
                               const bc_stream_field *fields, size_t count, bc_error *err)
{
    const char *argv[ADD_ARGS_MAX];
    size_t lens[ADD_ARGS_MAX];
    char maxlen_buf[24];
    int argc = 0;
    bc_status st = build_add(stream, maxlen, fields, count, argv, lens, maxlen_buf,
                             sizeof(maxlen_buf), &argc, err);
    if (st != BC_OK)
        return st;
    return bc_redis_append(r, argc, argv, lens, err);
}

bc_status bc_stream_add_reply(bc_redis *r, char id_out[BC_STREAM_ID_MAX + 1], bc_error *err)
{
    redisReply *reply = NULL;
    bc_status st = bc_redis_reply(r, &reply, err);
    if (st != BC_OK)
        return st;
    return take_id(reply, id_out, err);
}

bc_status bc_stream_group_create(bc_redis *r, const char *stream, const char *group,
                                 const char *start_id, bc_error *err)
{
    if (!name_ok(stream) || !name_ok(group) || start_id == NULL || start_id[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "XGROUP CREATE needs a stream, a group and an id");
    const char *argv[] = {"XGROUP", "CREATE", stream, group, start_id, "MKSTREAM"};
    redisReply *reply = NULL;
    bc_error local;
    bc_status st = bc_redis_command(r, 6, argv, NULL, &reply, &local);
    if (st == BC_ERR_STATE && strstr(local.text, "BUSYGROUP") != NULL)
        return BC_OK;
    if (st != BC_OK) {
        if (err != NULL)
            *err = local;
        return st;
    }
    freeReplyObject(reply);
    return BC_OK;
}

bc_status bc_stream_ack(bc_redis *r, const char *stream, const char *group, const char *const *ids,
                        size_t count, int64_t *acked, bc_error *err)
{
    if (acked != NULL)
        *acked = 0;
    if (count == 0)
        return BC_OK;
    if (!name_ok(stream) || !name_ok(group))
        return bc_fail(err, BC_ERR_INVAL, "XACK needs a stream and a group");
    if (count > (size_t)BATCH_MAX * 4)
        return bc_fail(err, BC_ERR_TOO_BIG, "XACK of %zu ids at once", count);
    const char **argv = malloc((count + 3) * sizeof(*argv));
    if (argv == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "XACK of %zu ids: out of memory", count);
    argv[0] = "XACK";
    argv[1] = stream;
    argv[2] = group;
    for (size_t i = 0; i < count; i++)
        argv[3 + i] = ids[i];
    redisReply *reply = NULL;
    bc_status st = bc_redis_command(r, (int)(count + 3), argv, NULL, &reply, err);
    free(argv);
    if (st != BC_OK)
        return st;
    if (acked != NULL && reply->type == REDIS_REPLY_INTEGER)
        *acked = reply->integer;
    freeReplyObject(reply);
    return BC_OK;
}

/* ---- entries ---- */

const char *bc_stream_entry_field(const bc_stream_entry *e, const char *name, size_t *len)
{
    if (e->kv == NULL || e->kv->type != REDIS_REPLY_ARRAY)
        return NULL;
    size_t name_len = strlen(name);
    for (size_t i = 0; i + 1 < e->kv->elements; i += 2) {
        const redisReply *k = e->kv->element[i];
        const redisReply *v = e->kv->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if ((size_t)k->len == name_len && memcmp(k->str, name, name_len) == 0) {
            if (len != NULL)
                *len = (size_t)v->len;
            return v->str;
        }
    }
    return NULL;
}

/* ---- the consumer ---- */

bc_status bc_stream_consumer_init(bc_stream_consumer *c, bc_redis *redis,
                                  const bc_stream_consumer_config *cfg, bc_stream_handler handler,
                                  void *userdata, bc_error *err)
{
    memset(c, 0, sizeof(*c));
    if (!name_ok(cfg->stream) || !name_ok(cfg->group) || !name_ok(cfg->consumer))
        return bc_fail(err, BC_ERR_INVAL,
                       "consumer: stream, group and consumer names must be "
                       "1..%d bytes",
                       BC_STREAM_NAME_MAX);
    if (cfg->batch < 1 || cfg->batch > BATCH_MAX)
        return bc_fail(err, BC_ERR_INVAL, "consumer: batch %zu is outside 1..%d", cfg->batch,
                       BATCH_MAX);
    if (cfg->block_ms < 1 || cfg->block_ms > 60000)
        return bc_fail(err, BC_ERR_INVAL, "consumer: block_ms %" PRId64 " is outside 1..60000",
                       cfg->block_ms);
    if (cfg->claim_idle_ms < 0 || (cfg->claim_idle_ms > 0 && cfg->claim_interval_ms < 1))
        return bc_fail(err, BC_ERR_INVAL,
                       "consumer: claim_idle_ms must be >= 0 and "
                       "claim_interval_ms >= 1 when claiming");
    if (cfg->retry_delay_ms < 0)
        return bc_fail(err, BC_ERR_INVAL, "consumer: retry_delay_ms must be >= 0");
    if (handler == NULL || redis == NULL)
        return bc_fail(err, BC_ERR_INVAL, "consumer: a connection and a handler are required");
    c->cfg = *cfg;
    c->redis = redis;
    c->handler = handler;
    c->userdata = userdata;
    c->pending_pass = true;
    copy_str(c->pending_cursor, sizeof(c->pending_cursor), "0");
    copy_str(c->claim_cursor, sizeof(c->claim_cursor), "0-0");
    c->next_claim_ms = bc_clock_monotonic_ms();
    return BC_OK;
}

void bc_stream_consumer_rewind(bc_stream_consumer *c)
{
    c->pending_pass = true;
    copy_str(c->pending_cursor, sizeof(c->pending_cursor), "0");
    c->paused_until_ms = 0;
}

int bc_stream_consumer_fd(const bc_stream_consumer *c)
{
    if (!c->reading || !bc_redis_connected(c->redis))
        return -1;
    return c->redis->ctx->fd;
}

int64_t bc_stream_consumer_timeout_ms(const bc_stream_consumer *c)
{
    int64_t now = bc_clock_monotonic_ms();
    if (!bc_redis_connected(c->redis))
        return bc_redis_retry_in_ms(c->redis);
    if (c->reading)
        return c->read_deadline_ms > now ? c->read_deadline_ms - now : 0;
    if (c->paused_until_ms > now)
        return c->paused_until_ms - now;
    return 0;
}

/* A new connection (or the first): the group may be gone (Redis lost its
 * data) and an outstanding read died with the old connection; what was
 * delivered to us before is in our pending list, so read that first. */
static bc_status ensure_ready(bc_stream_consumer *c, bc_error *err)
{
    bc_status st = bc_redis_connect(c->redis, err);
    if (st != BC_OK) {
        c->reading = false;
        return st;
    }
    if (c->generation != c->redis->generation) {
        c->generation = c->redis->generation;
        c->group_ready = false;
        c->reading = false;
        bc_stream_consumer_rewind(c);
    }
    if (c->group_ready)
        return BC_OK;
    st = bc_stream_group_create(c->redis, c->cfg.stream, c->cfg.group, "0", err);
    if (st == BC_OK)
        c->group_ready = true;
    return st;
}

static void enter_retry(bc_stream_consumer *c)
{
    bc_stream_consumer_rewind(c);
    c->paused_until_ms = bc_clock_monotonic_ms() + c->cfg.retry_delay_ms;
}

static bool is_array(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY;
}

/* Dispatches an array of [id, [field, value, ...]] entries. */
static bc_status dispatch(bc_stream_consumer *c, const redisReply *entries, bool redelivered,
                          bool claimed, size_t *dispatched, bc_error *err)
{
    if (!is_array(entries) || entries->elements == 0)
        return BC_OK;
    const char **acks = malloc(entries->elements * sizeof(*acks));
    if (acks == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for %zu acknowledgements",
                       entries->elements);
    size_t nacks = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (!is_array(e) || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[0]->len > BC_STREAM_ID_MAX)
            continue;
        bc_stream_entry entry = {.stream = c->cfg.stream,
                                 .id = e->element[0]->str,
                                 .kv = e->element[1],
                                 .redelivered = redelivered,
                                 .claimed = claimed};
        if (c->pending_pass && redelivered)
            copy_str(c->pending_cursor, sizeof(c->pending_cursor), entry.id);
        if (!is_array(entry.kv)) { /* deleted from the stream while pending */
            acks[nacks++] = entry.id;
            c->stats.deleted++;
            continue;
        }
        if (claimed)
            c->stats.claimed++;
        c->stats.delivered++;
        if (dispatched != NULL)
            (*dispatched)++;
        bc_stream_verdict v = c->handler(&entry, c->userdata);
        if (v == BC_STREAM_RETRY) {
            c->stats.retried++;
            enter_retry(c);
            break;
        }
        if (v == BC_STREAM_DEFER) {
            c->stats.deferred++;
            continue;
        }
        if (v == BC_STREAM_DROP)
            c->stats.dropped++;
        acks[nacks++] = entry.id;
    }
    int64_t acked = 0;
    bc_status st = bc_stream_ack(c->redis, c->cfg.stream, c->cfg.group, acks, nacks, &acked, err);
    if (st == BC_OK)
        c->stats.acked += (uint64_t)nacks;
    free(acks);
    return st;
}

/* A reply of XREADGROUP: nil (nothing) or [[stream, [entries]]]. */
static bc_status dispatch_read(bc_stream_consumer *c, const redisReply *reply, bool redelivered,
                               size_t *n, bc_error *err)
{
    if (reply->type == REDIS_REPLY_NIL)
        return BC_OK;
    if (!is_array(reply) || reply->elements < 1 || !is_array(reply->element[0]) ||
        reply->element[0]->elements < 2)
        return bc_fail(err, BC_ERR_PARSE, "XREADGROUP on %s: unexpected reply", c->cfg.stream);
    return dispatch(c, reply->element[0]->element[1], redelivered, false, n, err);
}

static bc_status pending_batch(bc_stream_consumer *c, size_t *n, bc_error *err)
{
    char count[24];
    snprintf(count, sizeof(count), "%zu", c->cfg.batch);
    const char *argv[] = {"XREADGROUP", "GROUP",   c->cfg.group,  c->cfg.consumer,  "COUNT",
                          count,        "STREAMS", c->cfg.stream, c->pending_cursor};
    redisReply *reply = NULL;
    bc_status st = bc_redis_command(c->redis, 9, argv, NULL, &reply, err);
    if (st != BC_OK) {
        if (st == BC_ERR_STATE && err != NULL && strstr(err->text, "NOGROUP") != NULL)
            c->group_ready = false;
        return st;
    }
    size_t before = n != NULL ? *n : 0;
    bool empty = reply->type == REDIS_REPLY_NIL ||
                 (is_array(reply) && reply->elements >= 1 && is_array(reply->element[0]) &&
                  reply->element[0]->elements >= 2 && is_array(reply->element[0]->element[1]) &&
                  reply->element[0]->element[1]->elements == 0);
    st = dispatch_read(c, reply, true, n, err);
    freeReplyObject(reply);
    if (st == BC_OK && empty && c->pending_pass && (n == NULL || *n == before))
        c->pending_pass = false;
    return st;
}

static bc_status claim_batch(bc_stream_consumer *c, size_t *n, bc_error *err)
{
    char idle[24], count[24];
    snprintf(idle, sizeof(idle), "%" PRId64, c->cfg.claim_idle_ms);
    snprintf(count, sizeof(count), "%zu", c->cfg.batch);
    const char *argv[] = {"XAUTOCLAIM", c->cfg.stream,   c->cfg.group, c->cfg.consumer,
                          idle,         c->claim_cursor, "COUNT",      count};
    redisReply *reply = NULL;
    bc_status st = bc_redis_command(c->redis, 8, argv, NULL, &reply, err);
    if (st != BC_OK) {
        if (st == BC_ERR_STATE && err != NULL && strstr(err->text, "NOGROUP") != NULL)
            c->group_ready = false;
        return st;
    }
    if (!is_array(reply) || reply->elements < 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[0]->len > BC_STREAM_ID_MAX) {
        freeReplyObject(reply);
        return bc_fail(err, BC_ERR_PARSE, "XAUTOCLAIM on %s: unexpected reply", c->cfg.stream);
    }
    copy_str(c->claim_cursor, sizeof(c->claim_cursor), reply->element[0]->str);
    if (strcmp(c->claim_cursor, "0-0") == 0)
        c->next_claim_ms = bc_clock_monotonic_ms() + c->cfg.claim_interval_ms;
    /* Redis 7 also lists claimed ids that were deleted (element 2); it has
     * already removed them from the pending list. */
    if (reply->elements >= 3 && is_array(reply->element[2]))
        c->stats.deleted += reply->element[2]->elements;
    st = dispatch(c, reply->element[1], false, true, n, err);
    freeReplyObject(reply);
    return st;
}

static bc_status send_read(bc_stream_consumer *c, bc_error *err)
{
    char count[24], block[24];
    snprintf(count, sizeof(count), "%zu", c->cfg.batch);
    snprintf(block, sizeof(block), "%" PRId64, c->cfg.block_ms);
    const char *argv[] = {"XREADGROUP", "GROUP", c->cfg.group, c->cfg.consumer, "COUNT", count,
                          "BLOCK",      block,   "STREAMS",    c->cfg.stream,   ">"};
    bc_status st = bc_redis_append(c->redis, 11, argv, NULL, err);
    if (st != BC_OK)
        return st;
    int done = 0;
    while (!done) {
        if (redisBufferWrite(c->redis->ctx, &done) != REDIS_OK)
            return connection_failed(c->redis, "XREADGROUP", err);
    }
    c->reading = true;
    c->read_deadline_ms = bc_clock_monotonic_ms() + c->cfg.block_ms + c->redis->cfg.timeout_ms;
    return BC_OK;
}

/* The reply of the outstanding read arrived (owned here). */
static bc_status finish_read(bc_stream_consumer *c, redisReply *raw, size_t *n, bc_error *err)
{
    c->reading = false;
    redisReply *reply = NULL;
    bc_status st = check_reply(c->redis, raw, &reply, err);
    if (st != BC_OK) {
        if (st == BC_ERR_STATE && err != NULL && strstr(err->text, "NOGROUP") != NULL) {
            c->group_ready = false;
            bc_stream_consumer_rewind(c);
            return BC_OK;
        }
        return st;
    }
    st = dispatch_read(c, reply, false, n, err);
    freeReplyObject(reply);
    return st;
}

/* Everything but waiting for the outstanding read. */
static bc_status begin_round(bc_stream_consumer *c, size_t *n, bc_error *err)
{
    bc_status st = ensure_ready(c, err);
    if (st != BC_OK)
        return st;
    int64_t now = bc_clock_monotonic_ms();
    if (c->paused_until_ms > now)
        return BC_OK;
    if (c->pending_pass) {
        size_t before = *n;
        st = pending_batch(c, n, err);
        if (st != BC_OK || *n > before || c->pending_pass)
            return st;
    }
    if (c->cfg.claim_idle_ms > 0 && now >= c->next_claim_ms) {
        size_t before = *n;
        st = claim_batch(c, n, err);
        if (st != BC_OK || *n > before || c->pending_pass) /* pending_pass: a RETRY */
            return st;
    }
    return send_read(c, err);
}

bc_status bc_stream_consumer_step(bc_stream_consumer *c, short revents, size_t *dispatched,
                                  bc_error *err)
{
    size_t n = 0;
    bc_status st = BC_OK;
    if (c->reading && (!bc_redis_connected(c->redis) || c->generation != c->redis->generation))
        c->reading = false;
    if (c->reading) {
        if (revents & (POLLIN | POLLHUP | POLLERR)) {
            if (redisBufferRead(c->redis->ctx) != REDIS_OK) {
                c->reading = false;
                st = connection_failed(c->redis, "XREADGROUP", err);
                goto out;
            }
            void *reply = NULL;
            if (redisGetReplyFromReader(c->redis->ctx, &reply) != REDIS_OK) {
                c->reading = false;
                st = connection_failed(c->redis, "XREADGROUP", err);
                goto out;
            }
            if (reply != NULL)
                st = finish_read(c, reply, &n, err);
        } else if (bc_clock_monotonic_ms() > c->read_deadline_ms) {
            c->reading = false;
            bc_redis_fail(c->redis, BC_ERR_UNAVAILABLE, "XREADGROUP: no reply in time");
            st = bc_fail(err, BC_ERR_UNAVAILABLE, "redis %s:%d: XREADGROUP: no reply in time",
                         c->redis->cfg.host, c->redis->cfg.port);
        }
        goto out;
    }
    st = begin_round(c, &n, err);
out:
    if (dispatched != NULL)
        *dispatched = n;
    return st;
}

static void sleep_ms(int64_t ms)
{
    if (ms > 0)
        (void)poll(NULL, 0, (int)ms);
}

bc_status bc_stream_consumer_poll(bc_stream_consumer *c, bc_error *err)
{
    size_t n = 0;
    bc_status st = BC_OK;
    if (c->reading && (!bc_redis_connected(c->redis) || c->generation != c->redis->generation))
        c->reading = false;
    if (!c->reading)
        st = begin_round(c, &n, err);
    if (st == BC_ERR_UNAVAILABLE && !bc_redis_connected(c->redis)) {
        int64_t wait = bc_redis_retry_in_ms(c->redis);
        sleep_ms(wait < c->cfg.block_ms ? wait : c->cfg.block_ms);
        return st;
    }
    if (st != BC_OK)
        return st;
    if (!c->reading) {
        int64_t pause = c->paused_until_ms - bc_clock_monotonic_ms();
        if (n == 0 && pause > 0)
            sleep_ms(pause < c->cfg.block_ms ? pause : c->cfg.block_ms);
        return BC_OK;
    }
    /* Wait for the blocked read: the socket timeout must outlast BLOCK. */
    redisContext *ctx = c->redis->ctx;
    if (redisSetTimeout(ctx, ms_to_timeval(c->cfg.block_ms + c->redis->cfg.timeout_ms)) !=
        REDIS_OK) {
        c->reading = false;
        return connection_failed(c->redis, "setting the read timeout", err);
    }
    void *reply = NULL;
    if (redisGetReply(ctx, &reply) != REDIS_OK || reply == NULL) {
        c->reading = false;
        return connection_failed(c->redis, "XREADGROUP", err);
    }
    if (redisSetTimeout(ctx, ms_to_timeval(c->redis->cfg.timeout_ms)) != REDIS_OK) {
        freeReplyObject(reply);
        c->reading = false;
        return connection_failed(c->redis, "setting the timeout", err);
    }
    return finish_read(c, reply, &n, err);
}
