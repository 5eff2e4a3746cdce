/*
 * alerts.c - the alerts of design.md, raised and cleared with hysteresis.
 *
 * Level alerts (one per camera and kind at most) follow a measured value
 * with two thresholds, so a value hovering at one of them cannot make an
 * alert storm:
 *
 *   low_battery        raised below battery_low_raise_pct, cleared above
 *                      battery_low_clear_pct
 *   storage_low        free space (% of total) below / above its pair
 *   overheating        temperature above overheat_raise_c, cleared below
 *                      overheat_clear_c
 *   offline_in_shift   offline while in shift (fh_in_shift); cleared when
 *                      online again or no longer in shift
 *   upload_overdue     docked with uploads waiting for upload_overdue_s;
 *                      cleared when nothing waits or it is undocked
 *
 * Between the two thresholds the rule wants nothing: what is open stays
 * open, what is closed stays closed. That is the whole hysteresis.
 *
 * recording_without_warnings is one alert per recording started with
 * fewer than two warnings, emergency press or not (the detail says which).
 * It is cleared when the camera reports the recording deleted - which it
 * does only after the vault's signed receipt, i.e. once the recording is
 * in the secure environment where it can be reviewed. Its id is derived
 * from the recording, so a repeated or late recording_started cannot raise
 * it twice, and a recording_deleted that overtakes its start leaves a
 * "cleared" mark that stops the late start from raising it.
 *
 * State: the open alerts are bodycam:alerts:open (field -> the raised
 * message's JSON), each alert's history bodycam:alert:<id>. A transition
 * is one script (scripts.c: raise, clear) that changes the open set and
 * queues the fleet/alerts message on the outbox stream in one step, so
 * each transition is published exactly once whatever the redeliveries
 * and however many instances run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "fleet-health/fleet.h"
#include "proto/encoding.h"

static const struct {
    bc_alert_kind kind;
    const char *code; /* in the alert id: short, so an id stays <= 64 */
} level_alerts[FH_LEVEL_ALERT_COUNT] = {
    [FH_ALERT_LOW_BATTERY] = {BC_ALERT_LOW_BATTERY, "bat"},
    [FH_ALERT_STORAGE_LOW] = {BC_ALERT_STORAGE_LOW, "sto"},
    [FH_ALERT_OVERHEATING] = {BC_ALERT_OVERHEATING, "hot"},
    [FH_ALERT_OFFLINE_IN_SHIFT] = {BC_ALERT_OFFLINE_IN_SHIFT, "off"},
    [FH_ALERT_UPLOAD_OVERDUE] = {BC_ALERT_UPLOAD_OVERDUE, "upl"},
};

bc_alert_kind fh_level_alert_kind(fh_level_alert a)
{
    return level_alerts[a].kind;
}

void fh_alert_field(char *out, size_t size, const char *device, bc_alert_kind kind,
                    const char *recording_id)
{
    if (recording_id != NULL && recording_id[0] != '\0')
        snprintf(out, size, "%s:%s:%s", device, bc_alert_kind_name(kind), recording_id);
    else
        snprintf(out, size, "%s:%s", device, bc_alert_kind_name(kind));
}

bc_status fh_recording_alert_id(const char *device, const char *recording_id,
                                char id[BC_ID_MAX + 1], bc_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(recording_id, strlen(recording_id), md, &md_len, EVP_sha256(), NULL) != 1)
        return bc_fail(err, BC_ERR_CRYPTO, "SHA-256 of recording id %s failed", recording_id);
    char hex[17];
    if (bc_hex_encode(md, 8, hex, sizeof(hex)) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "hex of a recording alert id failed");
    snprintf(id, BC_ID_MAX + 1, "%s-rec-%s", device, hex);
    return BC_OK;
}

void fh_open_alert_id(const char *value, size_t len, char id[BC_ID_MAX + 1])
{
    id[0] = '\0';
    if (value == NULL)
        return;
    bc_message m;
    if (bc_message_decode(BC_TOPIC_FLEET_ALERTS, value, len, &m, NULL) != BC_OK)
        return;
    snprintf(id, BC_ID_MAX + 1, "%s", m.alert.id);
    bc_message_free(&m);
}

/* ---- the rules (pure) ---- */

static bool is_docked(const fh_camera *cam)
{
    return cam->has_state && strcmp(cam->state, bc_device_state_name(BC_STATE_DOCKED)) == 0;
}

bool fh_in_shift(const fh_camera *cam)
{
    if (strcmp(cam->assignment, "assigned") == 0)
        return true;
    if (strcmp(cam->assignment, "unassigned") == 0)
        return false;
    return cam->has_state && !is_docked(cam);
}

/* Raised below raise_at, cleared above clear_at (raise_at < clear_at). */
static fh_want below(int64_t v, int64_t raise_at, int64_t clear_at)
{
    if (v < raise_at)
        return FH_WANT_RAISED;
    if (v > clear_at)
        return FH_WANT_CLEARED;
    return FH_WANT_NOTHING;
}

/* Raised above raise_at, cleared below clear_at (clear_at < raise_at). */
static fh_want above(int64_t v, int64_t raise_at, int64_t clear_at)
{
    if (v > raise_at)
        return FH_WANT_RAISED;
    if (v < clear_at)
        return FH_WANT_CLEARED;
    return FH_WANT_NOTHING;
}

fh_want fh_alert_rule(fh_level_alert a, const fh_config *cfg, const fh_camera *cam, int64_t now,
                      bool *has_value, int64_t *value, char detail[BC_TEXT_MAX + 1])
{
    *has_value = false;
    *value = 0;
    detail[0] = '\0';
    switch (a) {
    case FH_ALERT_LOW_BATTERY:
        if (!cam->has_health)
            return FH_WANT_NOTHING;
        *has_value = true;
        *value = cam->battery_pct;
        snprintf(detail, BC_TEXT_MAX + 1,
                 "battery %" PRId64 " %% (raised below %" PRId64 " %%, cleared above %" PRId64
                 " %%)",
                 cam->battery_pct, cfg->battery_low_raise_pct, cfg->battery_low_clear_pct);
        return below(cam->battery_pct, cfg->battery_low_raise_pct, cfg->battery_low_clear_pct);
    case FH_ALERT_STORAGE_LOW: {
        if (!cam->has_health || cam->storage_total <= 0)
            return FH_WANT_NOTHING;
        int64_t pct = cam->storage_free * 100 / cam->storage_total;
        *has_value = true;
        *value = pct;
        snprintf(detail, BC_TEXT_MAX + 1,
                 "%" PRId64 " %% of storage free (raised below %" PRId64
                 " %%, cleared above %" PRId64 " %%)",
                 pct, cfg->storage_low_raise_pct, cfg->storage_low_clear_pct);
        return below(pct, cfg->storage_low_raise_pct, cfg->storage_low_clear_pct);
    }
    case FH_ALERT_OVERHEATING:
        if (!cam->has_health)
            return FH_WANT_NOTHING;
        *has_value = true;
        *value = cam->temperature_c;
        snprintf(detail, BC_TEXT_MAX + 1,
                 "%" PRId64 " degrees C (raised above %" PRId64 ", cleared below %" PRId64 ")",
                 cam->temperature_c, cfg->overheat_raise_c, cfg->overheat_clear_c);
        return above(cam->temperature_c, cfg->overheat_raise_c, cfg->overheat_clear_c);
    case FH_ALERT_OFFLINE_IN_SHIFT: {
        bool shift = fh_in_shift(cam);
        if (cam->online || !shift)
            return FH_WANT_CLEARED;
        if (strcmp(cam->assignment, "assigned") == 0)
            snprintf(detail, BC_TEXT_MAX + 1, "offline (%s) while assigned to officer %s",
                     cam->offline_reason[0] ? cam->offline_reason : "unknown", cam->officer);
        else
            snprintf(detail, BC_TEXT_MAX + 1, "offline (%s) while not docked (state %s)",
                     cam->offline_reason[0] ? cam->offline_reason : "unknown", cam->state);
        if (cam->offline_at > 0 && now > cam->offline_at) {
            *has_value = true;
            *value = (now - cam->offline_at) / 1000; /* seconds offline so far */
        }
        return FH_WANT_RAISED;
    }
    case FH_ALERT_UPLOAD_OVERDUE: {
        if (!is_docked(cam) || cam->pending_uploads <= 0)
            return FH_WANT_CLEARED;
        if (cam->pending_since <= 0 || now - cam->pending_since < cfg->upload_overdue_s * 1000)
            return FH_WANT_NOTHING;
        *has_value = true;
        *value = cam->pending_uploads;
        snprintf(detail, BC_TEXT_MAX + 1,
                 "%" PRId64 " recording(s) waiting for %" PRId64 " min while docked",
                 cam->pending_uploads, (now - cam->pending_since) / 60000);
        return FH_WANT_RAISED;
    }
    default:
        return FH_WANT_NOTHING;
    }
}

/* ---- transitions ---- */

/* Runs the raise or clear script for alert (its status says which) and
 * logs a transition that happened. *done: the script's answer. */
static bc_status transition(fleet *f, const char *field, const bc_msg_alert *alert,
                            bool mark_missing, int64_t now, int64_t *done, bc_error *err)
{
    *done = 0;
    bc_message msg = {.kind = BC_TOPIC_FLEET_ALERTS};
    msg.alert = *alert;
    char *payload = NULL;
    char topic[BC_TOPIC_MAX + 1];
    bc_status st = bc_message_encode_fleet(&msg, topic, sizeof(topic), &payload, err);
    if (st != BC_OK)
        return st;
    bool raise = alert->status == BC_ALERT_RAISED;
    fh_args a;
    fh_args_init(&a);
    fh_args_str(&a, field);
    fh_args_str(&a, alert->id);
    fh_args_str(&a, payload);
    fh_args_str(&a, BC_STREAM_OUTBOX);
    fh_args_str(&a, topic);
    fh_args_int(&a, now);
    fh_args_str(&a, bc_alert_status_name(alert->status));
    fh_args_str(&a, BC_FIELD_TOPIC);
    fh_args_str(&a, BC_FIELD_PAYLOAD);
    fh_args_str(&a, BC_FIELD_QOS);
    fh_args_str(&a, BC_FIELD_RETAIN);
    if (!raise) {
        fh_args_int(&a, f->cfg.alert_history_days * 86400);
        fh_args_str(&a, mark_missing ? "1" : "0");
        fh_args_str(&a, bc_alert_status_name(BC_ALERT_RAISED));
    }
    redisReply *reply = NULL;
    st = fh_script_run(&f->cmd, raise ? FH_SCRIPT_RAISE : FH_SCRIPT_CLEAR, &a, &reply, err);
    if (st != BC_OK)
        goto cleanup;
    if (reply->type == REDIS_REPLY_INTEGER)
        *done = reply->integer;
    freeReplyObject(reply);
    if (*done == 1) {
        if (raise)
            f->stats.raised++;
        else
            f->stats.cleared++;
        f->summary_dirty = true;
        log_info("alert | %s | id=%s device=%s kind=%s%s%s", bc_alert_status_name(alert->status),
                 alert->id, alert->device, bc_alert_kind_name(alert->kind),
                 alert->detail[0] ? " detail=" : "", alert->detail);
    }

cleanup:
    free(payload);
    return st;
}

static void fill(bc_msg_alert *al, const char *id, const char *device, bc_alert_kind kind,
                 bc_alert_status status, int64_t now)
{
    memset(al, 0, sizeof(*al));
    al->ts = now;
    snprintf(al->id, sizeof(al->id), "%s", id);
    snprintf(al->device, sizeof(al->device), "%s", device);
    al->kind = kind;
    al->status = status;
}

bc_status fh_alerts_apply(fleet *f, const fh_camera *cam,
                          char open_ids[FH_LEVEL_ALERT_COUNT][BC_ID_MAX + 1], int64_t now,
                          bc_error *err)
{
    for (int i = 0; i < FH_LEVEL_ALERT_COUNT; i++) {
        fh_level_alert a = (fh_level_alert)i;
        bc_msg_alert al;
        bool has_value = false;
        int64_t value = 0;
        char detail[BC_TEXT_MAX + 1];
        fh_want want = fh_alert_rule(a, &f->cfg, cam, now, &has_value, &value, detail);
        bool open = open_ids[i][0] != '\0';
        char id[BC_ID_MAX + 1];
        if (want == FH_WANT_RAISED && !open) {
            snprintf(id, sizeof(id), "%s-%s-%" PRId64, cam->device, level_alerts[i].code, now);
            fill(&al, id, cam->device, level_alerts[i].kind, BC_ALERT_RAISED, now);
        } else if (want == FH_WANT_CLEARED && open) {
            fill(&al, open_ids[i], cam->device, level_alerts[i].kind, BC_ALERT_CLEARED, now);
        } else {
            continue;
        }
        al.has_value = has_value;
        al.value = value;
        snprintf(al.detail, sizeof(al.detail), "%s", detail);
        char field[128];
        fh_alert_field(field, sizeof(field), cam->device, level_alerts[i].kind, NULL);
        int64_t done = 0;
        bc_status st = transition(f, field, &al, false, now, &done, err);
        if (st != BC_OK)
            return st;
        if (done == 1)
            snprintf(open_ids[i], BC_ID_MAX + 1, "%s", want == FH_WANT_RAISED ? al.id : "");
    }
    return BC_OK;
}

bc_status fh_alerts_recording_started(fleet *f, const bc_msg_event *ev, const char *open,
                                      size_t open_len, int64_t now, bc_error *err)
{
    if (ev->warnings >= 2 || open != NULL)
        return BC_OK;
    (void)open_len;
    char id[BC_ID_MAX + 1];
    bc_status st = fh_recording_alert_id(ev->device, ev->recording_id, id, err);
    if (st != BC_OK)
        return st;
    bc_msg_alert al;
    fill(&al, id, ev->device, BC_ALERT_RECORDING_WITHOUT_WARNINGS, BC_ALERT_RAISED, now);
    al.has_value = true;
    al.value = ev->warnings;
    snprintf(al.detail, sizeof(al.detail), "recording %s started after %" PRId64 " warning(s)%s",
             ev->recording_id, ev->warnings,
             ev->emergency ? " with the emergency press" : ", without the emergency press");
    char field[BC_DEVICE_ID_MAX + BC_ID_MAX + 40];
    fh_alert_field(field, sizeof(field), ev->device, al.kind, ev->recording_id);
    int64_t done = 0;
    return transition(f, field, &al, false, now, &done, err);
}

bc_status fh_alerts_recording_deleted(fleet *f, const bc_msg_event *ev, const char *open,
                                      size_t open_len, int64_t now, bc_error *err)
{
    char id[BC_ID_MAX + 1];
    if (open != NULL)
        fh_open_alert_id(open, open_len, id);
    else if (fh_recording_alert_id(ev->device, ev->recording_id, id, err) != BC_OK)
        return BC_ERR_CRYPTO;
    if (id[0] == '\0')
        return BC_OK;
    bc_msg_alert al;
    fill(&al, id, ev->device, BC_ALERT_RECORDING_WITHOUT_WARNINGS, BC_ALERT_CLEARED, now);
    snprintf(al.detail, sizeof(al.detail), "recording %s is in the vault", ev->recording_id);
    char field[BC_DEVICE_ID_MAX + BC_ID_MAX + 40];
    fh_alert_field(field, sizeof(field), ev->device, al.kind, ev->recording_id);
    int64_t done = 0;
    /* not open: leave a cleared mark so that a late start cannot raise it */
    return transition(f, field, &al, open == NULL, now, &done, err);
}
