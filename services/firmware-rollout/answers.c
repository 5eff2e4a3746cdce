/*
 * answers.c - a camera's answers: its fw_* events (bodycam:stream:event)
 * and its acks of firmware commands (bodycam:stream:ack).
 *
 * Other events and acks of other kinds are acknowledged and ignored. The
 * scripts decide whether an answer counts (the camera's current command,
 * its status, the version), so a redelivered or late answer changes
 * nothing. Redis unavailable: RETRY (the entry stays pending).
 */
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "firmware-rollout/fwrollout.h"
#include "proto/message.h"

static bool is_fw_event(bc_event_type t)
{
    return t == BC_EVENT_FW_DOWNLOADING || t == BC_EVENT_FW_INSTALLED ||
           t == BC_EVENT_FW_CONFIRMED || t == BC_EVENT_FW_FAILED || t == BC_EVENT_FW_ROLLED_BACK ||
           t == BC_EVENT_FW_REFUSED;
}

/* The status' log verb: "rollout | <verb> | ...". */
static void log_answer(fw_service *s, const char *device, const bc_rollout_answer *a,
                       const char *version)
{
    const char *verb = bc_fw_status_name(a->status);
    if (a->status == BC_FW_UPDATED)
        s->stats.updated++;
    else if (a->status == BC_FW_FAILED)
        s->stats.failed++;
    else if (a->status == BC_FW_ROLLED_BACK)
        s->stats.rolled_back++;
    else if (a->status == BC_FW_REVERTED)
        s->stats.reverted++;
    if (a->status == BC_FW_FAILED || a->status == BC_FW_ROLLED_BACK)
        log_warnx("rollout | %s | rollout=%s device=%s wave=%lld version=%s detail=%s", verb,
                  a->happened.rollout, device, (long long)a->wave + 1, version, a->detail);
    else
        log_info("rollout | %s | rollout=%s device=%s wave=%lld version=%s", verb,
                 a->happened.rollout, device, (long long)a->wave + 1, version);
}

static bc_stream_verdict after(fw_service *s, bc_status st, const bc_error *err, const char *device,
                               const bc_rollout_answer *a, const char *version)
{
    if (st == BC_ERR_UNAVAILABLE) {
        fw_redis_failed(s, "answer", err);
        return BC_STREAM_RETRY;
    }
    if (st != BC_OK) {
        s->stats.invalid++;
        log_warnx("rollout | answer_failed | device=%s reason=%s", device, err->text);
        return BC_STREAM_DONE;
    }
    fw_redis_ok(s);
    if (!a->applied) {
        s->stats.stale++;
        return BC_STREAM_DONE;
    }
    log_answer(s, device, a, version);
    return fw_happenings(s, &a->happened) == BC_ERR_UNAVAILABLE ? BC_STREAM_RETRY : BC_STREAM_DONE;
}

/* The entry's message of topic kind, decoded; false (counted) when bad. */
static bool entry_message(fw_service *s, const bc_stream_entry *entry, bc_topic_kind kind,
                          bc_message *msg)
{
    size_t plen = 0;
    const char *device = bc_stream_entry_field(entry, BC_FIELD_DEVICE, NULL);
    const char *payload = bc_stream_entry_field(entry, BC_FIELD_PAYLOAD, &plen);
    bc_error err;
    bc_error_clear(&err);
    if (device == NULL || payload == NULL ||
        bc_message_decode(kind, payload, plen, msg, &err) != BC_OK) {
        s->stats.invalid++;
        log_debug("rollout | entry_invalid | stream=%s id=%s reason=%s", entry->stream, entry->id,
                  device == NULL || payload == NULL ? "no device or payload" : err.text);
        return false;
    }
    const char *named = bc_message_device(msg);
    if (named == NULL || strcmp(named, device) != 0) {
        s->stats.invalid++;
        bc_message_free(msg);
        return false;
    }
    return true;
}

bc_stream_verdict fw_answers_event(const bc_stream_entry *entry, void *userdata)
{
    fw_service *s = userdata;
    bc_message msg;
    if (!entry_message(s, entry, BC_TOPIC_EVENT, &msg))
        return BC_STREAM_DROP;
    const bc_msg_event *e = &msg.event;
    if (!is_fw_event(e->type)) {
        bc_message_free(&msg);
        return BC_STREAM_DONE;
    }
    s->stats.events++;
    bc_rollout_answer a;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_rollout_event(&s->loop.cmd, e->device, bc_event_type_name(e->type),
                                    e->version, e->detail, bc_clock_now_ms(), &a, &err);
    bc_stream_verdict v = after(s, st, &err, e->device, &a, e->version);
    bc_message_free(&msg);
    return v;
}

bc_stream_verdict fw_answers_ack(const bc_stream_entry *entry, void *userdata)
{
    fw_service *s = userdata;
    bc_message msg;
    if (!entry_message(s, entry, BC_TOPIC_ACK, &msg))
        return BC_STREAM_DROP;
    const bc_msg_ack *k = &msg.ack;
    if (k->kind != BC_CMD_FIRMWARE) {
        bc_message_free(&msg);
        return BC_STREAM_DONE;
    }
    s->stats.acks++;
    bc_rollout_answer a;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_rollout_ack(&s->loop.cmd, k->cmd_id, k->device, k->ok, k->error,
                                  bc_clock_now_ms(), &a, &err);
    if (st == BC_ERR_NOT_FOUND || st == BC_ERR_DENIED) {
        log_info("rollout | ack_foreign | device=%s cmd=%s reason=%s", k->device, k->cmd_id,
                 err.text);
        bc_message_free(&msg);
        return BC_STREAM_DONE;
    }
    if (st == BC_OK && !a.applied && k->ok)
        log_info("rollout | accepted | rollout=%s device=%s cmd=%s", a.happened.rollout, k->device,
                 k->cmd_id);
    bc_stream_verdict v = after(s, st, &err, k->device, &a, "");
    bc_message_free(&msg);
    return v;
}
