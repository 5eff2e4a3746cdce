/*
 * ingest.c - camera messages into Redis streams.
 *
 * Each message from the broker is checked before anything is written
 * (validate, then commit):
 *   1. the topic parses (bc_topic_parse) and is a camera message kind
 *      (conn, state, health, event, ack, upload, csr);
 *   2. the payload decodes and validates as that kind (bc_message_decode:
 *      JSON, schema version, every field, size limits, chunk hashes) -
 *      except the data of an upload chunk, which is only required to be a
 *      string of the right size (bc_message_decode_shallow): the broker
 *      plugin has decoded and hashed it before the broker accepted the
 *      message, and the vault decodes and hashes it again before it uses a
 *      byte (README.md, "Upload chunks");
 *   3. the device named inside is the device of the topic.
 * A message failing any check is counted by reason, logged (at most
 * invalid_log_limit lines per statistics period) and dropped: it never
 * reaches a stream, and its PUBACK is sent like any other (it would fail
 * the same way every time it came back).
 *
 * A valid message becomes one XADD on the command connection's pipeline:
 *   XADD bodycam:stream:<kind> [MAXLEN ~ health_maxlen] *
 *        device <id> kind <kind> payload <raw JSON> received_at <ms> topic <topic>
 * The replies are read after the whole read batch (gw_ingest_flush), one
 * round trip per batch instead of one per message. Once any XADD of a batch
 * could not be stored, the rest of the batch is not even queued: the
 * session is dropped without PUBACKs and the broker sends it all again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "gateway/gateway.h"

static const char *const invalid_names[GW_INVALID_COUNT] = {"topic", "payload", "device"};

bc_status gw_ingest_init(gw_ingest *in, const gw_config *cfg, bc_redis *redis, bc_error *err)
{
    memset(in, 0, sizeof(*in));
    in->cfg = cfg;
    in->redis = redis;
    in->scratch = calloc(1, sizeof(*in->scratch));
    if (in->scratch == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for the message buffer");
    return BC_OK;
}

void gw_ingest_free(gw_ingest *in)
{
    free(in->scratch);
    in->scratch = NULL;
}

void gw_ingest_new_period(gw_ingest *in)
{
    in->logged_invalid = 0;
}

static void drop_invalid(gw_ingest *in, gw_invalid_reason why, const char *topic,
                         const char *detail)
{
    in->invalid[why]++;
    if (in->logged_invalid >= (uint64_t)in->cfg->invalid_log_limit) {
        in->suppressed_invalid++;
        return;
    }
    in->logged_invalid++;
    log_warnx("dropped a message on '%.120s' (invalid %s): %s", topic, invalid_names[why], detail);
}

static void batch_failed(gw_ingest *in, const char *reason)
{
    if (in->failed)
        return;
    in->failed = true;
    snprintf(in->fail_reason, sizeof(in->fail_reason), "%s", reason);
}

void gw_ingest_message(gw_ingest *in, const char *topic, const void *payload, size_t len)
{
    in->received++;
    bc_topic t;
    bc_error err;
    bc_error_clear(&err);
    if (bc_topic_parse(topic, &t, &err) != BC_OK) {
        drop_invalid(in, GW_INVALID_TOPIC, topic, err.text);
        return;
    }
    const char *stream = bc_stream_for_kind(t.kind);
    if (stream == NULL) {
        drop_invalid(in, GW_INVALID_TOPIC, topic, "not a camera message topic");
        return;
    }
    bc_status rc = t.kind == BC_TOPIC_UPLOAD
                       ? bc_message_decode_shallow(t.kind, payload, len, in->scratch, &err)
                       : bc_message_decode(t.kind, payload, len, in->scratch, &err);
    if (rc != BC_OK) {
        drop_invalid(in, GW_INVALID_PAYLOAD, topic, err.text);
        return;
    }
    const char *named = bc_message_device(in->scratch);
    bool same = named != NULL && strcmp(named, t.device) == 0;
    bc_message_free(in->scratch);
    if (!same) {
        drop_invalid(in, GW_INVALID_DEVICE, topic, "the payload names another device");
        return;
    }
    if (in->failed)
        return; /* the batch is lost already: the broker will send this again */

    char received_at[24];
    snprintf(received_at, sizeof(received_at), "%" PRId64, bc_clock_now_ms());
    const char *kind = bc_topic_kind_name(t.kind);
    bc_stream_field fields[] = {
        {BC_FIELD_DEVICE, t.device, strlen(t.device)},
        {BC_FIELD_KIND, kind, strlen(kind)},
        {BC_FIELD_PAYLOAD, payload, len},
        {BC_FIELD_RECEIVED_AT, received_at, strlen(received_at)},
        {BC_FIELD_TOPIC, topic, strlen(topic)},
    };
    int64_t maxlen = t.kind == BC_TOPIC_HEALTH ? in->cfg->health_maxlen : 0;
    if (bc_stream_add_append(in->redis, stream, maxlen, fields, 5, &err) != BC_OK) {
        batch_failed(in, err.text);
        return;
    }
    in->queued++;
    in->per_kind[t.kind]++;
}

bool gw_ingest_flush(gw_ingest *in)
{
    for (; in->queued > 0; in->queued--) {
        bc_error err;
        bc_error_clear(&err);
        if (bc_stream_add_reply(in->redis, NULL, &err) != BC_OK)
            batch_failed(in, err.text);
        else
            in->stored++;
    }
    bool ok = !in->failed;
    in->failed = false;
    return ok;
}
