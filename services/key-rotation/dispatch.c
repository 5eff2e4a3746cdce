/*
 * dispatch.c - the paced send pass and the answers' deadlines.
 *
 *   send pass:  every running campaign ─► bc_campaign_next (due, online,
 *               within the campaign's pace and send_max_per_s; leased)
 *               ─► per camera: a command signed with the command key
 *               ─► bc_campaign_mark_sent: sent + the outbox entry, in one
 *                  script (a camera is never "sent" without its command
 *                  queued, nor a command queued for a camera that is not)
 *
 *   deadlines:  every watched campaign ─► bc_campaign_expired ─► an
 *               install's new fingerprint leaves the registry ─► finish
 *               (retry: pending after a backoff, failed after attempts_max)
 *
 * Which command: rotate-recording-key {key_id, public_key} for a
 * recording-key campaign, rotate-identity {phase: request} for an identity
 * campaign (the install goes out from identity.c once the CSR is signed).
 * A command expires after command_ttl_s; its answer is due after
 * ack_timeout_s (command_ttl_s >= ack_timeout_s, checked at start), so a
 * command sent again never races a first one the camera may still take.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/command_out.h"
#include "common/log.h"
#include "key-rotation/rotation.h"
#include "proto/encoding.h"
#include "proto/sign.h"

#define RUNNING_MAX 64  /* running campaigns served per pass */
#define WATCHED_MAX 256 /* campaigns whose deadlines are checked per scan */
#define EXPIRED_MAX 64  /* overdue commands handled per campaign per scan */

/* ---- commands ---- */

bc_status rot_command_build(rotation *r, bc_command *cmd, char topic[BC_TOPIC_MAX + 1],
                            char **payload, bc_error *err)
{
    return bc_command_out_build(cmd, r->command_key, r->cfg.command_ttl_s, 'k', topic, payload,
                                err);
}

/* The command of a campaign's kind for device (the key from next). */
static bc_status command_for(const bc_campaign_next_result *nx, const char *device, bc_command *cmd,
                             bc_error *err)
{
    memset(cmd, 0, sizeof(*cmd));
    snprintf(cmd->device, sizeof(cmd->device), "%s", device);
    if (nx->kind == BC_CAMPAIGN_IDENTITY) {
        cmd->kind = BC_CMD_ROTATE_IDENTITY;
        cmd->params.identity.phase = BC_IDENTITY_REQUEST;
        return BC_OK;
    }
    cmd->kind = BC_CMD_ROTATE_RECORDING_KEY;
    bc_cmd_recording_key *k = &cmd->params.recording_key;
    snprintf(k->key_id, sizeof(k->key_id), "%s", nx->key_id);
    size_t len = 0;
    if (bc_base64_decode(nx->public_b64, strlen(nx->public_b64), k->public_key,
                         sizeof(k->public_key), &len) != BC_OK ||
        len != BC_RAW_KEY_LEN)
        return bc_fail(err, BC_ERR_PARSE,
                       "recording key %s: its public half in Redis is not base64 of %d bytes",
                       nx->key_id, BC_RAW_KEY_LEN);
    return BC_OK;
}

/* Builds, marks and queues one camera's command. BC_ERR_UNAVAILABLE stops
 * the pass; other failures are logged and counted (the camera's lease
 * runs out and it is tried again). */
static bc_status send_one(rotation *r, const char *campaign_id, const bc_campaign_next_result *nx,
                          const char *device)
{
    bc_command cmd;
    char topic[BC_TOPIC_MAX + 1];
    char *payload = NULL;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = command_for(nx, device, &cmd, &err);
    if (st == BC_OK)
        st = rot_command_build(r, &cmd, topic, &payload, &err);
    if (st != BC_OK) {
        r->stats.send_failures++;
        log_errorx("rotation | command_failed | campaign=%s device=%s reason=%s", campaign_id,
                   device, err.text);
        return st;
    }
    int64_t now = bc_clock_now_ms();
    bool identity = nx->kind == BC_CAMPAIGN_IDENTITY;
    bc_campaign_send s = {.campaign_id = campaign_id,
                          .device = device,
                          .phase = identity ? BC_PHASE_REQUEST : BC_PHASE_RECORDING_KEY,
                          .cmd_id = cmd.id,
                          .topic = topic,
                          .payload = payload,
                          .now_ms = now,
                          .deadline_ms = now + r->cfg.ack_timeout_s * 1000};
    bool marked = false;
    st = bc_campaign_mark_sent(&r->loop.cmd, &s, &marked, &err);
    free(payload);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "send", &err);
        return st;
    }
    if (st != BC_OK) {
        r->stats.send_failures++;
        log_warnx("rotation | send_failed | campaign=%s device=%s reason=%s", campaign_id, device,
                  err.text);
        return st;
    }
    if (!marked) {
        log_debug("rotation | taken | campaign=%s device=%s", campaign_id, device);
        return BC_OK;
    }
    if (identity)
        r->stats.sent_requests++;
    else
        r->stats.sent_keys++;
    log_info("rotation | sent | campaign=%s device=%s kind=%s cmd=%s%s%s", campaign_id, device,
             bc_command_kind_name(cmd.kind), cmd.id,
             identity ? " phase=request" : " key=", identity ? "" : nx->key_id);
    return BC_OK;
}

typedef struct running_list {
    char ids[RUNNING_MAX][BC_CAMPAIGN_ID_MAX + 1];
    size_t n;
} running_list;

static bool collect_running(const bc_campaign *c, void *userdata)
{
    running_list *l = userdata;
    if (c->state == BC_CAMPAIGN_RUNNING && l->n < RUNNING_MAX)
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", c->id);
    return l->n < RUNNING_MAX;
}

/* One campaign's share of the pass. */
static bc_status send_campaign(rotation *r, const char *campaign_id)
{
    static bc_campaign_next_result nx; /* large; one pass at a time */
    bc_error err;
    bc_error_clear(&err);
    bc_status st =
        bc_campaign_next(&r->loop.cmd, campaign_id, bc_clock_now_ms(), BC_CAMPAIGN_NEXT_MAX,
                         r->cfg.send_max_per_s, r->cfg.offline_recheck_s * 1000, &nx, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "next", &err);
        return st;
    }
    if (st != BC_OK) {
        /* paused or aborted since the list, or its key not in Redis yet */
        log_debug("rotation | not_sending | campaign=%s reason=%s", campaign_id, err.text);
        return BC_OK;
    }
    for (size_t i = 0; i < nx.count; i++) {
        if (send_one(r, campaign_id, &nx, nx.devices[i]) == BC_ERR_UNAVAILABLE)
            return BC_ERR_UNAVAILABLE;
    }
    return BC_OK;
}

void rot_dispatch_send(rotation *r, bool *any)
{
    running_list l;
    memset(&l, 0, sizeof(l));
    bc_error err;
    bc_error_clear(&err);
    *any = false;
    bc_status st = bc_campaign_list(&r->loop.cmd, true, collect_running, &l, &err);
    if (st != BC_OK) {
        rot_redis_failed(r, "campaigns", &err);
        return;
    }
    rot_redis_ok(r);
    *any = l.n > 0;
    for (size_t i = 0; i < l.n; i++) {
        if (send_campaign(r, l.ids[i]) == BC_ERR_UNAVAILABLE)
            return;
    }
}

/* ---- deadlines ---- */

typedef struct watched_list {
    char ids[WATCHED_MAX][BC_CAMPAIGN_ID_MAX + 1];
    size_t n;
} watched_list;

static bool collect_watched(const char *id, void *userdata)
{
    watched_list *l = userdata;
    if (l->n < WATCHED_MAX)
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", id);
    return l->n < WATCHED_MAX;
}

/* An install without an answer keeps its new fingerprint: the camera may
 * have switched to the new certificate and been cut off before its ack
 * (killed, power loss) - withdrawing it would lock the camera out once its
 * old key is gone. Both certificates stay valid until the camera's next
 * successful install removes every other fingerprint; only an explicit
 * error ack withdraws the new one. */
static bc_status expire_one(rotation *r, const char *campaign_id, const bc_campaign_expired_cmd *x)
{
    if (x->phase == BC_PHASE_INSTALL && x->fingerprint[0] != '\0')
        log_warnx("identity | install_unanswered | device=%s fingerprint=%s (kept: the camera may "
                  "use it; the next install removes the extras)",
                  x->device, x->fingerprint);
    r->stats.timeouts++;
    char detail[96];
    snprintf(detail, sizeof(detail), "no answer to %s within %" PRId64 " s",
             bc_campaign_phase_name(x->phase), r->cfg.ack_timeout_s);
    log_info("rotation | timeout | campaign=%s device=%s cmd=%s phase=%s", campaign_id, x->device,
             x->cmd_id, bc_campaign_phase_name(x->phase));
    return rot_finish(r, campaign_id, x->device, x->cmd_id, BC_OUTCOME_RETRY, detail);
}

static bc_status expire_campaign(rotation *r, const char *campaign_id)
{
    static bc_campaign_expired_cmd due[EXPIRED_MAX];
    size_t n = 0;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_campaign_expired(&r->loop.cmd, campaign_id, bc_clock_now_ms(), due,
                                       EXPIRED_MAX, &n, &err);
    if (st != BC_OK) {
        if (st == BC_ERR_UNAVAILABLE)
            rot_redis_failed(r, "deadlines", &err);
        else
            log_warnx("rotation | deadlines_failed | campaign=%s reason=%s", campaign_id, err.text);
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        if (expire_one(r, campaign_id, &due[i]) == BC_ERR_UNAVAILABLE)
            return BC_ERR_UNAVAILABLE;
    }
    return BC_OK;
}

void rot_dispatch_timeouts(rotation *r)
{
    static watched_list l;
    memset(&l, 0, sizeof(l));
    bc_error err;
    bc_error_clear(&err);
    if (bc_campaign_watched(&r->loop.cmd, collect_watched, &l, &err) != BC_OK) {
        rot_redis_failed(r, "campaigns", &err);
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        if (expire_campaign(r, l.ids[i]) == BC_ERR_UNAVAILABLE)
            return;
    }
}
