/*
 * outbox.c - the outbox stream to the broker (the outbox pattern).
 *
 * Services never speak MQTT: they XADD what must be published to
 * bodycam:stream:outbox (topic, payload, qos, retain). The gateways read it
 * in consumer group "gateway", one consumer per instance:
 *
 *   entry ─► checks ─► PUBLISH (mid) ─► in flight ─► PUBACK / written ─► XACK
 *              │ bad: DROP (XACK, counted, logged)
 *
 * An entry is acknowledged only after the broker confirmed it: the PUBACK
 * of a QoS 1 publish, or, for QoS 0, libmosquitto's on_publish after the
 * packet was written to the socket. Until then it stays in our pending
 * list. When the session ends, what is in flight is forgotten - not
 * acknowledged - and read again from the pending list (a rewind) once the
 * next session is online: at least once, so a camera may see a command
 * twice; commands carry an id and cameras refuse replays.
 *
 * Flow control: at most `window` entries are in flight or confirmed and
 * waiting for their XACK; the consumer reads a new batch only when a whole
 * batch fits.
 *
 * What the gateway publishes is limited to what services may send: camera
 * commands, firmware chunks, the fleet summary and alerts. Anything else -
 * a device topic, a topic that does not parse, a qos other than 0/1 - is
 * dropped: publishing as a camera is not the gateway's business.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "common/log.h"
#include "gateway/gateway.h"

static bc_stream_verdict on_entry(const bc_stream_entry *e, void *userdata);

bc_status gw_outbox_init(gw_outbox *o, const gw_config *cfg, bc_redis *ack_redis, bc_error *err)
{
    memset(o, 0, sizeof(*o));
    o->cfg = cfg;
    o->ack_redis = ack_redis;
    o->window = (size_t)cfg->outbox_window;
    bc_redis_config rc = {.port = (int)cfg->redis_port,
                          .timeout_ms = cfg->redis_timeout_ms,
                          .backoff_min_ms = cfg->backoff_min_ms,
                          .backoff_max_ms = cfg->backoff_max_ms};
    snprintf(rc.host, sizeof(rc.host), "%s", cfg->redis_host);
    bc_status st = bc_redis_init(&o->redis, &rc, err);
    if (st != BC_OK)
        return st;
    bc_stream_consumer_config cc = {.batch = (size_t)cfg->outbox_batch,
                                    .block_ms = cfg->outbox_block_ms,
                                    .claim_idle_ms = cfg->outbox_claim_idle_ms,
                                    .claim_interval_ms = cfg->outbox_claim_interval_ms,
                                    .retry_delay_ms = cfg->backoff_min_ms};
    snprintf(cc.stream, sizeof(cc.stream), "%s", BC_STREAM_OUTBOX);
    snprintf(cc.group, sizeof(cc.group), "%s", BC_STREAM_OUTBOX_GROUP);
    snprintf(cc.consumer, sizeof(cc.consumer), "gateway-%s", cfg->instance);
    st = bc_stream_consumer_init(&o->consumer, &o->redis, &cc, on_entry, o, err);
    if (st != BC_OK)
        return st;
    o->inflight = calloc(o->window, sizeof(*o->inflight));
    o->acks = calloc(o->window, sizeof(*o->acks));
    if (o->inflight == NULL || o->acks == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for an outbox window of %zu", o->window);
    return BC_OK;
}

void gw_outbox_free(gw_outbox *o)
{
    bc_redis_close(&o->redis);
    free(o->inflight);
    free(o->acks);
    o->inflight = NULL;
    o->acks = NULL;
}

void gw_outbox_set_session(gw_outbox *o, struct mosquitto *mosq)
{
    o->mosq = mosq;
    o->ninflight = 0; /* unconfirmed: stays pending, published again after the rewind */
    if (mosq != NULL)
        bc_stream_consumer_rewind(&o->consumer);
}

static bool known(const gw_outbox *o, const char *id)
{
    for (size_t i = 0; i < o->ninflight; i++) {
        if (strcmp(o->inflight[i].id, id) == 0)
            return true;
    }
    for (size_t i = 0; i < o->nacks; i++) {
        if (strcmp(o->acks[i], id) == 0)
            return true;
    }
    return false;
}

/* "0" or "1" (absent: dflt). -1 for anything else. */
static int flag_field(const bc_stream_entry *e, const char *name, int dflt)
{
    size_t len = 0;
    const char *v = bc_stream_entry_field(e, name, &len);
    if (v == NULL)
        return dflt;
    if (len == 1 && (v[0] == '0' || v[0] == '1'))
        return v[0] - '0';
    return -1;
}

static bool publishable(bc_topic_kind kind)
{
    return kind == BC_TOPIC_CMD || kind == BC_TOPIC_FIRMWARE_CHUNK ||
           kind == BC_TOPIC_FLEET_SUMMARY || kind == BC_TOPIC_FLEET_ALERTS;
}

static bc_stream_verdict drop(gw_outbox *o, const bc_stream_entry *e, const char *why)
{
    o->invalid++;
    log_warnx("outbox entry %s dropped: %s", e->id, why);
    return BC_STREAM_DROP;
}

static bc_stream_verdict on_entry(const bc_stream_entry *e, void *userdata)
{
    gw_outbox *o = userdata;
    if (o->mosq == NULL)
        return BC_STREAM_RETRY; /* offline: stays pending */
    if (known(o, e->id))
        return BC_STREAM_DEFER; /* already in flight (a claim of our own entry) */
    if (o->ninflight + o->nacks >= o->window)
        return BC_STREAM_RETRY;

    size_t topic_len = 0, payload_len = 0;
    const char *topic_raw = bc_stream_entry_field(e, BC_FIELD_TOPIC, &topic_len);
    const char *payload = bc_stream_entry_field(e, BC_FIELD_PAYLOAD, &payload_len);
    if (topic_raw == NULL || payload == NULL)
        return drop(o, e, "it needs the fields topic and payload");
    if (topic_len == 0 || topic_len > BC_TOPIC_MAX || memchr(topic_raw, '\0', topic_len) != NULL)
        return drop(o, e, "the topic is empty, too long or holds a NUL");
    char topic[BC_TOPIC_MAX + 1];
    memcpy(topic, topic_raw, topic_len);
    topic[topic_len] = '\0';
    bc_topic t;
    bc_error err;
    bc_error_clear(&err);
    if (bc_topic_parse(topic, &t, &err) != BC_OK)
        return drop(o, e, err.text);
    if (!publishable(t.kind))
        return drop(o, e,
                    "the gateway publishes only commands, firmware chunks and fleet "
                    "topics");
    int qos = flag_field(e, BC_FIELD_QOS, 1);
    int retain = flag_field(e, BC_FIELD_RETAIN, 0);
    if (qos < 0 || retain < 0)
        return drop(o, e, "qos and retain must be \"0\" or \"1\"");
    if (payload_len > (size_t)INT32_MAX)
        return drop(o, e, "the payload is too large");

    int mid = 0;
    int rc = mosquitto_publish_v5(o->mosq, &mid, topic, (int)payload_len, payload, qos, retain == 1,
                                  NULL);
    switch (rc) {
    case MOSQ_ERR_SUCCESS:
        break;
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
    case MOSQ_ERR_OVERSIZE_PACKET:
        return drop(o, e, mosquitto_strerror(rc));
    default:
        return BC_STREAM_RETRY; /* the session is going away */
    }
    gw_inflight *f = &o->inflight[o->ninflight++];
    f->mid = mid;
    snprintf(f->id, sizeof(f->id), "%s", e->id);
    o->published++;
    return BC_STREAM_DEFER;
}

void gw_outbox_confirmed(gw_outbox *o, int mid, int reason_code)
{
    for (size_t i = 0; i < o->ninflight; i++) {
        if (o->inflight[i].mid != mid)
            continue;
        if (reason_code >= 0x80) {
            /* The broker answered for good (not authorized, topic invalid,
             * ...): publishing again would get the same answer. */
            o->refused++;
            log_warnx("outbox entry %s: the broker refused it (reason code %d); acknowledged",
                      o->inflight[i].id, reason_code);
        } else {
            o->confirmed++;
        }
        snprintf(o->acks[o->nacks++], sizeof(o->acks[0]), "%s", o->inflight[i].id);
        o->inflight[i] = o->inflight[--o->ninflight];
        return;
    }
}

void gw_outbox_flush_acks(gw_outbox *o)
{
    if (o->nacks == 0 || !bc_redis_connected(o->ack_redis))
        return;
    const char *ids[o->nacks];
    for (size_t i = 0; i < o->nacks; i++)
        ids[i] = o->acks[i];
    bc_error err;
    bc_error_clear(&err);
    if (bc_stream_ack(o->ack_redis, BC_STREAM_OUTBOX, BC_STREAM_OUTBOX_GROUP, ids, o->nacks, NULL,
                      &err) != BC_OK) {
        log_warnx("outbox: XACK of %zu entries failed (kept for later): %s", o->nacks, err.text);
        return;
    }
    o->acked += o->nacks;
    o->nacks = 0;
}

void gw_outbox_step(gw_outbox *o, short revents, bool *more)
{
    *more = false;
    bool reading = bc_stream_consumer_fd(&o->consumer) >= 0;
    if (!reading) {
        if (o->mosq == NULL)
            return;
        if (o->ninflight + o->nacks + (size_t)o->cfg->outbox_batch > o->window)
            return;
    }
    size_t n = 0;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_stream_consumer_step(&o->consumer, revents, &n, &err);
    if (st != BC_OK) {
        /* One line per outage, not one per attempt. */
        if (!o->failing || st != BC_ERR_UNAVAILABLE)
            log_warnx("outbox: %s", err.text);
        o->failing = true;
        return;
    }
    if (o->failing)
        log_info("outbox: reading %s again", BC_STREAM_OUTBOX);
    o->failing = false;
    /* More to do now: entries came, or no read is outstanding yet. */
    *more = n > 0 || (bc_stream_consumer_fd(&o->consumer) < 0 &&
                      bc_stream_consumer_timeout_ms(&o->consumer) == 0 && o->mosq != NULL);
}

int gw_outbox_fd(const gw_outbox *o)
{
    return bc_stream_consumer_fd(&o->consumer);
}

int64_t gw_outbox_timeout_ms(const gw_outbox *o)
{
    return bc_stream_consumer_timeout_ms(&o->consumer);
}
