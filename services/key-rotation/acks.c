/*
 * acks.c - bodycam:stream:ack: a camera's answer to a campaign's command.
 *
 * The ack stream carries the answers to every command (receipts, uploads,
 * ...); those of other kinds, and those of commands no campaign sent, are
 * acknowledged and ignored. An answer counts only when it comes from the
 * camera the command was for and names the camera's current command in
 * its campaign (anything else is late or repeated: "stale").
 *
 *   recording-key  ok ─► done          error ─► retry (pending after a backoff)
 *   request        ok ─► nothing: the CSR follows on its own stream
 *                  error ─► retry
 *   install        ok ─► identity.c: the camera's other fingerprints leave
 *                        the registry ─► done
 *                  error ─► the new fingerprint leaves the registry ─► retry
 *
 * Redis unavailable: RETRY (the entry stays pending and comes back); every
 * step is idempotent, so a half-handled answer is handled again whole.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "key-rotation/rotation.h"
#include "proto/message.h"

static bc_stream_verdict verdict_of(bc_status st)
{
    return st == BC_ERR_UNAVAILABLE ? BC_STREAM_RETRY : BC_STREAM_DONE;
}

/* The ack's kind must be the one the phase's command had. */
static bool kind_fits(const bc_campaign_cmd *c, bc_command_kind kind)
{
    if (c->phase == BC_PHASE_RECORDING_KEY)
        return kind == BC_CMD_ROTATE_RECORDING_KEY;
    return kind == BC_CMD_ROTATE_IDENTITY;
}

static bc_stream_verdict answer(rotation *r, const bc_msg_ack *ack, const bc_campaign_cmd *c)
{
    char detail[BC_CAMPAIGN_DETAIL_MAX + 1];
    snprintf(detail, sizeof(detail), "camera: %s", ack->error);
    if (c->phase == BC_PHASE_INSTALL) {
        if (ack->ok)
            return verdict_of(rot_identity_installed(r, c, ack->cmd_id));
        bc_status st = rot_identity_withdraw(r, c->device, c->fingerprint);
        if (st != BC_OK)
            return verdict_of(st);
    } else if (ack->ok) {
        if (c->phase == BC_PHASE_REQUEST) {
            log_info("rotation | request_acked | campaign=%s device=%s cmd=%s (waiting for the "
                     "CSR)",
                     c->campaign_id, c->device, ack->cmd_id);
            return BC_STREAM_DONE;
        }
        return verdict_of(
            rot_finish(r, c->campaign_id, c->device, ack->cmd_id, BC_OUTCOME_DONE, ""));
    }
    return verdict_of(
        rot_finish(r, c->campaign_id, c->device, ack->cmd_id, BC_OUTCOME_RETRY, detail));
}

static bc_stream_verdict handle_ack(rotation *r, const bc_msg_ack *ack)
{
    if (ack->kind != BC_CMD_ROTATE_RECORDING_KEY && ack->kind != BC_CMD_ROTATE_IDENTITY) {
        r->stats.acks_foreign++;
        return BC_STREAM_DONE;
    }
    r->stats.acks++;
    bc_campaign_cmd c;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_campaign_cmd_get(&r->loop.cmd, ack->cmd_id, &c, &err);
    if (st == BC_ERR_NOT_FOUND) {
        r->stats.acks_foreign++;
        log_info("rotation | ack_unknown | device=%s cmd=%s (no campaign sent it, or it "
                 "expired)",
                 ack->device, ack->cmd_id);
        return BC_STREAM_DONE;
    }
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "ack", &err);
        return BC_STREAM_RETRY;
    }
    if (st != BC_OK) {
        r->stats.invalid++;
        log_warnx("rotation | ack_failed | device=%s cmd=%s reason=%s", ack->device, ack->cmd_id,
                  err.text);
        return BC_STREAM_DROP;
    }
    rot_redis_ok(r);
    if (strcmp(c.device, ack->device) != 0 || !kind_fits(&c, ack->kind)) {
        r->stats.invalid++;
        log_warnx("rotation | ack_mismatch | device=%s cmd=%s kind=%s (the command was %s for "
                  "%s)",
                  ack->device, ack->cmd_id, bc_command_kind_name(ack->kind),
                  bc_campaign_phase_name(c.phase), c.device);
        return BC_STREAM_DONE;
    }
    if (ack->ok)
        r->stats.acks_ok++;
    else
        r->stats.acks_error++;
    if (!c.current) {
        r->stats.acks_stale++;
        log_debug("rotation | ack_stale | campaign=%s device=%s cmd=%s state=%s", c.campaign_id,
                  c.device, ack->cmd_id, bc_campaign_device_state_name(c.device_state));
        return BC_STREAM_DONE;
    }
    log_info("rotation | ack | campaign=%s device=%s cmd=%s phase=%s ok=%s%s%s", c.campaign_id,
             c.device, ack->cmd_id, bc_campaign_phase_name(c.phase), ack->ok ? "true" : "false",
             ack->ok ? "" : " error=", ack->error);
    return answer(r, ack, &c);
}

bc_stream_verdict rot_acks_handle(const bc_stream_entry *entry, void *userdata)
{
    rotation *r = userdata;
    size_t plen = 0;
    const char *device = bc_stream_entry_field(entry, BC_FIELD_DEVICE, NULL);
    const char *payload = bc_stream_entry_field(entry, BC_FIELD_PAYLOAD, &plen);
    if (device == NULL || payload == NULL) {
        r->stats.invalid++;
        log_warnx("rotation | entry_invalid | stream=%s id=%s reason=no device or payload field",
                  BC_STREAM_ACK, entry->id);
        return BC_STREAM_DROP;
    }
    bc_message msg;
    bc_error err;
    bc_error_clear(&err);
    if (bc_message_decode(BC_TOPIC_ACK, payload, plen, &msg, &err) != BC_OK) {
        r->stats.invalid++;
        log_warnx("rotation | entry_invalid | stream=%s id=%s device=%s reason=%s", BC_STREAM_ACK,
                  entry->id, device, err.text);
        return BC_STREAM_DROP;
    }
    bc_stream_verdict v = BC_STREAM_DROP;
    if (strcmp(msg.ack.device, device) != 0) {
        r->stats.invalid++;
        log_warnx("rotation | entry_invalid | stream=%s id=%s reason=payload names %s, entry "
                  "names %s",
                  BC_STREAM_ACK, entry->id, msg.ack.device, device);
    } else {
        v = handle_ack(r, &msg.ack);
    }
    bc_message_free(&msg);
    return v;
}
