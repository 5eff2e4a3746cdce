/*
 * record.c - camera messages from a stream into the cameras' records.
 *
 * One consumer batch at a time, pipelined:
 *
 *   handler, per entry:  decode (proto) -> device matches? -> queue the
 *                        kind's script (EVALSHA, no round trip) -> DEFER
 *   flush, per batch:    read every reply -> in entry order: the level
 *                        alert rules on the record the script returned,
 *                        recording alerts (events) -> XACK what is complete
 *
 * Verdicts: an entry that does not decode or names another device can
 * never be processed: DROP (logged, acknowledged by the consumer). Redis
 * unavailable before the script is queued: RETRY. Redis failing during the
 * flush: what is not complete stays pending and the consumer is rewound,
 * so those entries come again, in order - which is safe because a script
 * run twice answers "duplicate" and changes nothing, and the alert steps
 * only move an alert to where the record says it should be. A script error
 * reply (a key of the wrong type) is logged and that entry dropped, so one
 * bad key cannot stop the stream. NOSCRIPT (Redis lost its script cache)
 * loads the scripts again and reads the rest again.
 *
 * Which hourly counters an event bumps is decided here (event_counters),
 * so the policy reads in C and the script only applies it once.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "fleet-health/fleet.h"

#define COUNTERS_MAX 4

/* ---- the record ---- */

static int64_t to_int(const redisReply *v)
{
    if (v == NULL || v->type != REDIS_REPLY_STRING || v->str == NULL)
        return 0;
    return strtoll(v->str, NULL, 10);
}

static void to_str(const redisReply *v, char *out, size_t size)
{
    if (v == NULL || v->type != REDIS_REPLY_STRING || v->str == NULL) {
        out[0] = '\0';
        return;
    }
    size_t n = (size_t)v->len < size - 1 ? (size_t)v->len : size - 1;
    memcpy(out, v->str, n);
    out[n] = '\0';
}

static bool name_is(const redisReply *k, const char *name)
{
    return k->type == REDIS_REPLY_STRING && strlen(name) == (size_t)k->len &&
           memcmp(k->str, name, (size_t)k->len) == 0;
}

bc_status fh_camera_parse(const redisReply *flat, const char *device, fh_camera *cam, bc_error *err)
{
    memset(cam, 0, sizeof(*cam));
    snprintf(cam->device, sizeof(cam->device), "%s", device);
    snprintf(cam->assignment, sizeof(cam->assignment), "none");
    if (flat == NULL || flat->type != REDIS_REPLY_ARRAY || flat->elements % 2 != 0)
        return bc_fail(err, BC_ERR_PARSE, "the record of %s is not a field/value list", device);
    for (size_t i = 0; i + 1 < flat->elements; i += 2) {
        const redisReply *k = flat->element[i];
        const redisReply *v = flat->element[i + 1];
        if (name_is(k, "online"))
            cam->online = to_int(v) == 1;
        else if (name_is(k, "offline_reason"))
            to_str(v, cam->offline_reason, sizeof(cam->offline_reason));
        else if (name_is(k, "offline_at"))
            cam->offline_at = to_int(v);
        else if (name_is(k, "last_seen"))
            cam->last_seen = to_int(v);
        else if (name_is(k, "session"))
            cam->session = to_int(v);
        else if (name_is(k, "state")) {
            cam->has_state = true;
            to_str(v, cam->state, sizeof(cam->state));
        } else if (name_is(k, "health_ts"))
            cam->has_health = true;
        else if (name_is(k, "battery_pct"))
            cam->battery_pct = to_int(v);
        else if (name_is(k, "charging"))
            cam->charging = to_int(v) == 1;
        else if (name_is(k, "storage_free"))
            cam->storage_free = to_int(v);
        else if (name_is(k, "storage_total"))
            cam->storage_total = to_int(v);
        else if (name_is(k, "temperature_c"))
            cam->temperature_c = to_int(v);
        else if (name_is(k, "pending_uploads"))
            cam->pending_uploads = to_int(v);
        else if (name_is(k, "pending_since"))
            cam->pending_since = to_int(v);
        else if (name_is(k, "assignment"))
            to_str(v, cam->assignment, sizeof(cam->assignment));
        else if (name_is(k, "officer"))
            to_str(v, cam->officer, sizeof(cam->officer));
    }
    return BC_OK;
}

/* ---- script calls ---- */

int64_t fh_offline_after_ms(const fh_config *cfg)
{
    int64_t s = cfg->offline_after_s > 0 ? cfg->offline_after_s : 3 * cfg->health_interval_s;
    return s * 1000;
}

void fh_args_common(fh_args *a, const fleet *f, const char *device, int64_t received_at,
                    int64_t now)
{
    fh_args_str(a, device);
    fh_args_int(a, received_at);
    fh_args_int(a, now);
    fh_args_int(a, fh_offline_after_ms(&f->cfg));
    fh_args_int(a, f->cfg.hourly_ttl_days * 86400);
    fh_args_str(a, bc_device_state_name(BC_STATE_DOCKED));
    for (int i = 0; i < FH_LEVEL_ALERT_COUNT; i++) {
        char field[128];
        fh_alert_field(field, sizeof(field), device, fh_level_alert_kind((fh_level_alert)i), NULL);
        /* fh_args_str borrows: the field text must outlive the call, so
         * it goes into the args' own number buffers */
        if (a->n < FH_ARGS_MAX && strlen(field) < FH_ARG_BUF) {
            snprintf(a->num[a->n], FH_ARG_BUF, "%s", field);
            fh_args_str(a, a->num[a->n]);
        } else {
            a->overflow = true;
        }
    }
}

bc_status fh_applied_parse(const redisReply *reply, const char *device, fh_applied *out,
                           bc_error *err)
{
    memset(out, 0, sizeof(*out));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 5 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return bc_fail(err, BC_ERR_PARSE, "script reply for %s has an unexpected shape", device);
    to_str(reply->element[0], out->verdict, sizeof(out->verdict));
    out->changed = reply->element[1]->type == REDIS_REPLY_INTEGER && reply->element[1]->integer;
    bc_status st = fh_camera_parse(reply->element[2], device, &out->cam, err);
    if (st != BC_OK)
        return st;
    const redisReply *open = reply->element[3];
    if (open->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < open->elements && i < FH_LEVEL_ALERT_COUNT; i++) {
            const redisReply *v = open->element[i];
            if (v->type == REDIS_REPLY_STRING)
                fh_open_alert_id(v->str, (size_t)v->len, out->open_ids[i]);
        }
    }
    const redisReply *extra = reply->element[4];
    if (extra->type == REDIS_REPLY_STRING) {
        out->extra = extra->str;
        out->extra_len = (size_t)extra->len;
    }
    return BC_OK;
}

/* ---- per kind ---- */

static void conn_args(fh_args *a, const bc_msg_conn *m)
{
    fh_args_str(a, m->status == BC_CONN_ONLINE ? "1" : "0");
    fh_args_int(a, m->session);
    fh_args_str(a, m->fw);
    fh_args_str(a, m->recording_key_id);
    fh_args_int(a, m->ts);
}

static void state_args(fh_args *a, const bc_msg_state *m)
{
    fh_args_int(a, m->seq);
    fh_args_str(a, bc_device_state_name(m->state));
    fh_args_int(a, m->warnings);
    fh_args_int(a, m->since);
    fh_args_str(a, m->state == BC_STATE_RECORDING ? m->recording_id : "");
    fh_args_int(a, m->ts);
}

static void health_args(fh_args *a, const bc_msg_health *m)
{
    fh_args_int(a, m->ts);
    fh_args_int(a, m->battery_pct);
    fh_args_str(a, m->charging ? "1" : "0");
    fh_args_int(a, m->storage_free);
    fh_args_int(a, m->storage_total);
    fh_args_int(a, m->temperature_c);
    fh_args_int(a, m->signal_dbm);
    fh_args_int(a, m->uptime_s);
    fh_args_str(a, m->fw);
    fh_args_str(a, m->recording_key_id);
    fh_args_int(a, m->pending_uploads);
    fh_args_int(a, (int64_t)m->error_count);
}

typedef struct counter {
    const char *name;
    int64_t inc;
} counter;

/* The hourly counters one new event adds to (README.md, "hourly"). Every
 * event counts once under one name, plus the derived measures. */
static size_t event_counters(const fh_config *cfg, const bc_msg_event *ev,
                             counter out[COUNTERS_MAX])
{
    size_t n = 0;
    switch (ev->type) {
    case BC_EVENT_WARNING_GIVEN:
        out[n++] = (counter){"warnings", 1};
        break;
    case BC_EVENT_WARNING_EXPIRED:
        out[n++] = (counter){"deescalations", 1};
        break;
    case BC_EVENT_RECORD_REFUSED:
        out[n++] = (counter){"refused", 1};
        break;
    case BC_EVENT_RECORDING_STARTED:
        out[n++] = (counter){"recordings", 1};
        if (ev->emergency)
            out[n++] = (counter){"emergency_starts", 1};
        else if (ev->warnings < 2)
            out[n++] = (counter){"without_warnings", 1};
        break;
    case BC_EVENT_RECORDING_STOPPED:
        out[n++] = (counter){"recordings_stopped", 1};
        out[n++] = (counter){"recording_ms", ev->duration_ms};
        if (ev->duration_ms < cfg->short_recording_s * 1000)
            out[n++] = (counter){"short_recordings", 1};
        break;
    case BC_EVENT_SURVEY:
        out[n++] = (counter){"survey_count", 1};
        out[n++] = (counter){"survey_sum", ev->score};
        break;
    default: /* tamper_denied, docked, undocked, fw_*, ...: by their type name */
        out[n++] = (counter){bc_event_type_name(ev->type), 1};
        break;
    }
    return n;
}

static bool event_needs_recording_alert(const bc_msg_event *ev)
{
    return (ev->type == BC_EVENT_RECORDING_STARTED && ev->warnings < 2) ||
           ev->type == BC_EVENT_RECORDING_DELETED;
}

static void event_args(fh_args *a, const fleet *f, const bc_msg_event *ev, const char *payload,
                       size_t payload_len, char *rw_field, size_t rw_size)
{
    fh_args_int(a, ev->seq);
    fh_args_int(a, ev->ts);
    fh_args_str(a, bc_event_type_name(ev->type));
    fh_args_bytes(a, payload, payload_len);
    fh_args_int(a, f->cfg.event_log_max);
    rw_field[0] = '\0';
    if (event_needs_recording_alert(ev))
        fh_alert_field(rw_field, rw_size, ev->device, BC_ALERT_RECORDING_WITHOUT_WARNINGS,
                       ev->recording_id);
    fh_args_str(a, rw_field);
    counter c[COUNTERS_MAX];
    size_t n = event_counters(&f->cfg, ev, c);
    fh_args_int(a, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        fh_args_str(a, c[i].name);
        fh_args_int(a, c[i].inc);
    }
}

static int kind_index(bc_topic_kind kind)
{
    switch (kind) {
    case BC_TOPIC_CONN:
        return 0;
    case BC_TOPIC_STATE:
        return 1;
    case BC_TOPIC_HEALTH:
        return 2;
    default:
        return 3;
    }
}

static bool stream_kind(const char *stream, bc_topic_kind *kind)
{
    static const bc_topic_kind kinds[] = {BC_TOPIC_CONN, BC_TOPIC_STATE, BC_TOPIC_HEALTH,
                                          BC_TOPIC_EVENT};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(stream, bc_stream_for_kind(kinds[i])) == 0) {
            *kind = kinds[i];
            return true;
        }
    }
    return false;
}

static void count_verdict(fleet *f, const char *verdict)
{
    if (strcmp(verdict, "applied") == 0)
        f->stats.applied++;
    else if (strcmp(verdict, "duplicate") == 0)
        f->stats.duplicates++;
    else
        f->stats.stale++;
}

static bc_stream_verdict failed(fleet *f, bc_status st, const char *id, const bc_error *err)
{
    if (st == BC_ERR_UNAVAILABLE) {
        fleet_redis_failed(f, id, err);
        return BC_STREAM_RETRY;
    }
    f->stats.failed++;
    log_errorx("entry %s dropped: %s", id, err->text);
    return BC_STREAM_DROP;
}

/* The command connection, with the scripts loaded on it. Loading happens
 * only before the first entry of a batch: nothing is queued then. */
static bc_status ready(fleet *f, bc_error *err)
{
    if (f->nqueued > 0) {
        if (!bc_redis_connected(&f->cmd) || f->scripts_generation != f->cmd.generation)
            return bc_fail(err, BC_ERR_UNAVAILABLE, "the command connection changed mid-batch");
        return BC_OK;
    }
    bc_status st = bc_redis_connect(&f->cmd, err);
    if (st != BC_OK)
        return st;
    if (f->scripts_generation == f->cmd.generation)
        return BC_OK;
    st = fh_scripts_load(&f->cmd, err);
    if (st == BC_OK)
        f->scripts_generation = f->cmd.generation;
    else if (st != BC_ERR_UNAVAILABLE)
        st = bc_fail(err, BC_ERR_UNAVAILABLE, "loading the scripts: %s", err->text);
    return st;
}

/* Queues the entry's script and remembers what its alert steps need. */
static bc_stream_verdict queue(fleet *f, const bc_stream_entry *entry, bc_topic_kind kind,
                               const bc_message *msg, const char *payload, size_t payload_len,
                               int64_t received_at)
{
    bc_error err;
    bc_error_clear(&err);
    if (f->nqueued >= f->queued_cap) {
        bc_fail(&err, BC_ERR_UNAVAILABLE, "more entries than a batch holds");
        return failed(f, BC_ERR_UNAVAILABLE, entry->id, &err);
    }
    bc_status st = ready(f, &err);
    if (st != BC_OK)
        return failed(f, st, entry->id, &err);
    const char *device = bc_message_device(msg);
    fh_args a;
    fh_args_init(&a);
    fh_args_common(&a, f, device, received_at, bc_clock_now_ms());
    char rw_field[BC_DEVICE_ID_MAX + BC_ID_MAX + 40];
    fh_script_id script = FH_SCRIPT_EVENT;
    switch (kind) {
    case BC_TOPIC_CONN:
        script = FH_SCRIPT_CONN;
        conn_args(&a, &msg->conn);
        break;
    case BC_TOPIC_STATE:
        script = FH_SCRIPT_STATE;
        state_args(&a, &msg->state);
        break;
    case BC_TOPIC_HEALTH:
        script = FH_SCRIPT_HEALTH;
        health_args(&a, &msg->health);
        break;
    default:
        event_args(&a, f, &msg->event, payload, payload_len, rw_field, sizeof(rw_field));
        break;
    }
    st = fh_script_append(&f->cmd, script, &a, &err);
    if (st != BC_OK)
        return failed(f, st, entry->id, &err);
    fh_queued *q = &f->queued[f->nqueued++];
    snprintf(q->id, sizeof(q->id), "%s", entry->id);
    snprintf(q->device, sizeof(q->device), "%s", device);
    q->kind = kind;
    if (kind == BC_TOPIC_EVENT)
        q->event = msg->event;
    return BC_STREAM_DEFER;
}

bc_stream_verdict fh_record_handle(const bc_stream_entry *entry, void *userdata)
{
    fleet *f = userdata;
    bc_topic_kind kind;
    if (!stream_kind(entry->stream, &kind)) {
        log_errorx("entry %s of unexpected stream %s dropped", entry->id, entry->stream);
        f->stats.invalid++;
        return BC_STREAM_DROP;
    }
    f->stats.by_kind[kind_index(kind)]++;
    size_t payload_len = 0;
    const char *device = bc_stream_entry_field(entry, BC_FIELD_DEVICE, NULL);
    const char *payload = bc_stream_entry_field(entry, BC_FIELD_PAYLOAD, &payload_len);
    const char *received = bc_stream_entry_field(entry, BC_FIELD_RECEIVED_AT, NULL);
    if (device == NULL || payload == NULL) {
        log_warnx("%s %s: no device or payload field; dropped", entry->stream, entry->id);
        f->stats.invalid++;
        return BC_STREAM_DROP;
    }
    bc_message msg;
    bc_error err;
    bc_error_clear(&err);
    if (bc_message_decode(kind, payload, payload_len, &msg, &err) != BC_OK) {
        log_warnx("%s %s of %.40s: %s; dropped", entry->stream, entry->id, device, err.text);
        f->stats.invalid++;
        return BC_STREAM_DROP;
    }
    bc_stream_verdict v = BC_STREAM_DROP;
    if (strcmp(bc_message_device(&msg), device) != 0) {
        log_warnx("%s %s: payload names %s, the entry %.40s; dropped", entry->stream, entry->id,
                  bc_message_device(&msg), device);
        f->stats.invalid++;
        goto cleanup;
    }
    int64_t received_at = received != NULL ? strtoll(received, NULL, 10) : 0;
    if (received_at <= 0)
        received_at = bc_clock_now_ms();
    v = queue(f, entry, kind, &msg, payload, payload_len, received_at);

cleanup:
    bc_message_free(&msg);
    return v;
}

/* ---- the flush: replies, alert steps, acknowledgements ---- */

/* The open level alerts of the cameras met earlier in this batch, as the
 * alert steps left them: a later reply's snapshot was read before those
 * steps ran. (Another instance's steps are not known here; the scripts make
 * a stale guess harmless, and the full pass repairs what it leaves.) */
typedef struct seen_camera {
    const char *device;
    char open_ids[FH_LEVEL_ALERT_COUNT][BC_ID_MAX + 1];
} seen_camera;

static seen_camera *seen_find(seen_camera *seen, size_t n, const char *device)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(seen[i].device, device) == 0)
            return &seen[i];
    }
    return NULL;
}

/* The alert steps of one reply; statuses as fh_alerts_apply. */
static bc_status steps(fleet *f, const fh_queued *q, const redisReply *reply, seen_camera *seen,
                       size_t *nseen, bc_error *err)
{
    fh_applied ap;
    bc_status st = fh_applied_parse(reply, q->device, &ap, err);
    if (st != BC_OK)
        return st;
    count_verdict(f, ap.verdict);
    if (ap.changed)
        f->summary_dirty = true;
    seen_camera *s = seen_find(seen, *nseen, q->device);
    if (s != NULL)
        memcpy(ap.open_ids, s->open_ids, sizeof(ap.open_ids));
    int64_t now = bc_clock_now_ms();
    st = fh_alerts_apply(f, &ap.cam, ap.open_ids, now, err);
    if (st != BC_OK)
        return st;
    if (s == NULL) {
        s = &seen[(*nseen)++];
        s->device = q->device;
    }
    memcpy(s->open_ids, ap.open_ids, sizeof(ap.open_ids));
    if (q->kind != BC_TOPIC_EVENT)
        return BC_OK;
    const bc_msg_event *ev = &q->event;
    if (ev->type == BC_EVENT_RECORDING_STARTED && ev->warnings < 2)
        return fh_alerts_recording_started(f, ev, ap.extra, ap.extra_len, now, err);
    if (ev->type == BC_EVENT_RECORDING_DELETED)
        return fh_alerts_recording_deleted(f, ev, ap.extra, ap.extra_len, now, err);
    return BC_OK;
}

void fh_record_flush(fleet *f, int i)
{
    size_t n = f->nqueued;
    if (n == 0)
        return;
    redisReply **replies = calloc(n, sizeof(*replies));
    seen_camera *seen = calloc(n, sizeof(*seen));
    const char **acks = calloc(n, sizeof(*acks));
    bc_error err;
    bc_error_clear(&err);
    size_t got = 0, nseen = 0, nacks = 0;
    bool rewind = true;
    if (replies == NULL || seen == NULL || acks == NULL) {
        log_errorx("out of memory for a batch of %zu entries", n);
        bc_redis_fail(&f->cmd, BC_ERR_NOMEM, "out of memory: queued replies dropped");
        goto cleanup;
    }
    /* every reply first: the alert steps use the same connection */
    for (; got < n; got++) {
        bc_error rerr;
        bc_error_clear(&rerr);
        bc_status st = bc_redis_reply(&f->cmd, &replies[got], &rerr);
        if (st == BC_ERR_UNAVAILABLE) {
            fleet_redis_failed(f, "batch", &rerr);
            break;
        }
        if (st != BC_OK) { /* an error reply for this entry alone */
            if (strstr(rerr.text, "NOSCRIPT") != NULL)
                f->scripts_generation = 0;
            else
                log_errorx("%s %s: %s", f->consumers[i].cfg.stream, f->queued[got].id, rerr.text);
        }
    }
    for (size_t k = 0; k < got; k++) {
        if (replies[k] == NULL) {
            if (f->scripts_generation == 0)
                break;         /* NOSCRIPT: load again, then this entry and the rest */
            f->stats.failed++; /* the script itself failed on this entry: dropped */
            acks[nacks++] = f->queued[k].id;
            continue;
        }
        bc_status st = steps(f, &f->queued[k], replies[k], seen, &nseen, &err);
        if (st == BC_ERR_UNAVAILABLE) {
            fleet_redis_failed(f, f->queued[k].id, &err);
            break;
        }
        if (st != BC_OK) {
            f->stats.failed++;
            log_errorx("%s %s: %s", f->consumers[i].cfg.stream, f->queued[k].id, err.text);
        }
        acks[nacks++] = f->queued[k].id;
    }
    rewind = nacks < n;
    if (nacks > 0) {
        bc_error aerr;
        bc_error_clear(&aerr);
        if (bc_stream_ack(&f->links[i], f->consumers[i].cfg.stream, FH_GROUP, acks, nacks, NULL,
                          &aerr) != BC_OK) {
            /* they stay pending and come again: handled as duplicates */
            log_warnx("%s: XACK of %zu entries: %s", f->consumers[i].cfg.stream, nacks, aerr.text);
            rewind = true;
        }
    }

    if (!rewind)
        fleet_redis_ok(f);

cleanup:
    if (rewind) /* what is not acknowledged is read again, in order */
        bc_stream_consumer_rewind(&f->consumers[i]);
    for (size_t k = 0; replies != NULL && k < n; k++) {
        if (replies[k] != NULL)
            freeReplyObject(replies[k]);
    }
    free(replies);
    free(seen);
    free(acks);
    f->nqueued = 0;
}
