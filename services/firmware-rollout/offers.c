/*
 * offers.c - the paced offer pass, the time pass and what they report.
 *
 *   offer pass: every active rollout ─► bc_rollout_next (eligible cameras,
 *               within offer_max_per_s; leased) ─► per camera: a firmware
 *               command with the manifest (running: the rollout's version;
 *               aborting: the signed rollback manifest of the camera's
 *               from_version), signed with the command key
 *               ─► bc_rollout_mark_offered: offered + the outbox entry, in
 *                  one script
 *   time pass:  every active rollout ─► bc_rollout_tick (deadlines, late
 *               cameras, thresholds, waves)
 *
 * Happenings are logged as "rollout | <what> | rollout=.. device=.. ...";
 * a halt raises rollout_halted on fleet/alerts through the outbox (id
 * rollout-<id>-halted, so a halt seen twice is one alert).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/alert_out.h"
#include "common/clock.h"
#include "common/command_out.h"
#include "common/log.h"
#include "firmware-rollout/fwrollout.h"
#include "firmware-rollout/images.h"
#include "proto/message.h"

#define ACTIVE_MAX 16

/* ---- happenings and the alert ---- */

static bc_status raise_halted(fw_service *s, const char *rollout, const bc_rollout_happening *x)
{
    bc_msg_alert alert;
    memset(&alert, 0, sizeof(alert));
    bc_msg_alert *a = &alert;
    snprintf(a->id, sizeof(a->id), "rollout-%s-halted", rollout);
    snprintf(a->device, sizeof(a->device), "%s", x->device);
    a->kind = BC_ALERT_ROLLOUT_HALTED;
    snprintf(a->detail, sizeof(a->detail), "rollout %s halted: %s", rollout, x->detail);
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_alert_out_raise(&s->loop.cmd, a, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        fw_redis_failed(s, "alert", &err);
        return st;
    }
    if (st != BC_OK) {
        log_errorx("rollout | alert_failed | rollout=%s reason=%s", rollout, err.text);
        return BC_OK;
    }
    s->stats.alerts++;
    log_info("rollout | alert_raised | rollout=%s id=%s kind=rollout_halted device=%s", rollout,
             a->id, x->device);
    return BC_OK;
}

bc_status fw_happenings(fw_service *s, const bc_rollout_happenings *h)
{
    bc_status st = BC_OK;
    for (size_t i = 0; i < h->count; i++) {
        const bc_rollout_happening *x = &h->items[i];
        const char *what = bc_rollout_happening_name(x->kind);
        if (x->kind == BC_HAPPEN_HALTED || x->kind == BC_HAPPEN_FAILED)
            log_warnx("rollout | %s | rollout=%s device=%s wave=%" PRId64 " detail=%s", what,
                      h->rollout, x->device, x->wave + 1, x->detail);
        else
            log_info("rollout | %s | rollout=%s device=%s wave=%" PRId64 "%s%s", what, h->rollout,
                     x->device, x->wave + 1, x->detail[0] ? " detail=" : "", x->detail);
        if (x->kind == BC_HAPPEN_WAVE_STARTED)
            s->stats.waves_started++;
        else if (x->kind == BC_HAPPEN_DONE)
            s->stats.done++;
        else if (x->kind == BC_HAPPEN_UPDATED)
            s->stats.updated++;
        else if (x->kind == BC_HAPPEN_FAILED)
            s->stats.failed++;
        if (x->kind == BC_HAPPEN_HALTED) {
            s->stats.halted++;
            if (raise_halted(s, h->rollout, x) == BC_ERR_UNAVAILABLE)
                st = BC_ERR_UNAVAILABLE;
        }
    }
    return st;
}

/* ---- the offer pass ---- */

typedef struct id_list {
    char ids[ACTIVE_MAX][BC_ROLLOUT_ID_MAX + 1];
    size_t n;
} id_list;

static bool collect(const char *id, void *userdata)
{
    id_list *l = userdata;
    if (l->n < ACTIVE_MAX)
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", id);
    return l->n < ACTIVE_MAX;
}

/* The rollback manifest of version from the rollout's JSON object. */
static bc_status rollback_manifest(const cJSON *all, const char *version, bc_firmware_manifest *m,
                                   bc_error *err)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(all, version);
    if (o == NULL)
        return bc_fail(err, BC_ERR_NOT_FOUND, "no rollback manifest for version %s", version);
    return bc_firmware_from_json(o, m, err);
}

/* Builds, marks and queues one camera's command. BC_ERR_UNAVAILABLE stops
 * the pass; other failures are logged (the lease runs out, it comes back). */
static bc_status offer_one(fw_service *s, const char *rollout, const char *device,
                           const bc_firmware_manifest *m, int64_t timeout_s)
{
    bc_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    snprintf(cmd.device, sizeof(cmd.device), "%s", device);
    cmd.kind = BC_CMD_FIRMWARE;
    cmd.params.firmware = *m;
    char topic[BC_TOPIC_MAX + 1];
    char *payload = NULL;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_command_out_build(&cmd, s->command_key, s->cfg.command_ttl_s, 'f', topic,
                                        &payload, &err);
    if (st != BC_OK) {
        s->stats.offer_failures++;
        log_errorx("rollout | command_failed | rollout=%s device=%s reason=%s", rollout, device,
                   err.text);
        return st;
    }
    int64_t now = bc_clock_now_ms();
    bc_rollout_offer o = {.rollout = rollout,
                          .device = device,
                          .cmd_id = cmd.id,
                          .topic = topic,
                          .payload = payload,
                          .now_ms = now,
                          .deadline_ms = now + timeout_s * 1000};
    bool marked = false;
    st = bc_rollout_mark_offered(&s->loop.cmd, &o, &marked, &err);
    free(payload);
    if (st == BC_ERR_UNAVAILABLE) {
        fw_redis_failed(s, "offer", &err);
        return st;
    }
    if (st != BC_OK) {
        s->stats.offer_failures++;
        log_warnx("rollout | offer_failed | rollout=%s device=%s reason=%s", rollout, device,
                  err.text);
        return st;
    }
    if (!marked) {
        log_debug("rollout | taken | rollout=%s device=%s", rollout, device);
        return BC_OK;
    }
    s->stats.offered++;
    log_info("rollout | offered | rollout=%s device=%s version=%s rollback=%s cmd=%s", rollout,
             device, m->version, m->rollback ? "true" : "false", cmd.id);
    return BC_OK;
}

/* The manifest for a camera handed out by next. */
static bc_status manifest_for(fw_service *s, const bc_rollout_next_result *nx, size_t i,
                              const bc_image *img, cJSON **rollbacks, const char *rollout,
                              bc_firmware_manifest *m, bc_error *err)
{
    if (nx->state != BC_ROLLOUT_ABORTING) {
        *m = img->manifest;
        return BC_OK;
    }
    if (*rollbacks == NULL) {
        char *json = NULL;
        bc_status st = bc_rollout_rollback_manifests(&s->loop.cmd, rollout, &json, err);
        if (st != BC_OK)
            return st;
        *rollbacks = cJSON_Parse(json);
        free(json);
        if (*rollbacks == NULL)
            return bc_fail(err, BC_ERR_PARSE, "rollout %s: its rollback manifests are not JSON",
                           rollout);
    }
    return rollback_manifest(*rollbacks, nx->cams[i].from_version, m, err);
}

static bc_status offer_rollout(fw_service *s, const char *rollout, bool *any)
{
    static bc_rollout ro;
    static bc_rollout_next_result nx;
    static bc_image img;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_rollout_get(&s->loop.cmd, rollout, &ro, &err);
    if (st == BC_OK && ro.state != BC_ROLLOUT_RUNNING && ro.state != BC_ROLLOUT_ABORTING)
        return BC_OK;
    if (st == BC_OK && ro.state == BC_ROLLOUT_RUNNING)
        st = bc_image_get(&s->loop.cmd, ro.version, &img, &err);
    if (st == BC_OK)
        st = bc_rollout_next(&s->loop.cmd, rollout, bc_clock_now_ms(), BC_ROLLOUT_NEXT_MAX,
                             s->cfg.offer_max_per_s, s->cfg.scan_interval_ms, &nx, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        fw_redis_failed(s, "next", &err);
        return st;
    }
    if (st != BC_OK) {
        log_debug("rollout | not_offering | rollout=%s reason=%s", rollout, err.text);
        return BC_OK;
    }
    *any = true;
    if (fw_happenings(s, &nx.happened) == BC_ERR_UNAVAILABLE)
        return BC_ERR_UNAVAILABLE;
    cJSON *rollbacks = NULL;
    for (size_t i = 0; i < nx.count && st != BC_ERR_UNAVAILABLE; i++) {
        bc_firmware_manifest m;
        st = manifest_for(s, &nx, i, &img, &rollbacks, rollout, &m, &err);
        if (st == BC_OK)
            st = offer_one(s, rollout, nx.cams[i].device, &m, ro.camera_timeout_s);
        else if (st != BC_ERR_UNAVAILABLE)
            log_warnx("rollout | no_manifest | rollout=%s device=%s reason=%s", rollout,
                      nx.cams[i].device, err.text);
    }
    cJSON_Delete(rollbacks);
    return st == BC_ERR_UNAVAILABLE ? st : BC_OK;
}

void fw_offers_pass(fw_service *s, bool *any)
{
    id_list l;
    memset(&l, 0, sizeof(l));
    bc_error err;
    bc_error_clear(&err);
    *any = false;
    if (bc_rollout_active_ids(&s->loop.cmd, collect, &l, &err) != BC_OK) {
        fw_redis_failed(s, "rollouts", &err);
        return;
    }
    fw_redis_ok(s);
    for (size_t i = 0; i < l.n; i++) {
        if (offer_rollout(s, l.ids[i], any) == BC_ERR_UNAVAILABLE)
            return;
    }
}

/* ---- the time pass ---- */

void fw_offers_tick(fw_service *s)
{
    static bc_rollout_happenings h;
    id_list l;
    memset(&l, 0, sizeof(l));
    bc_error err;
    bc_error_clear(&err);
    if (bc_rollout_active_ids(&s->loop.cmd, collect, &l, &err) != BC_OK) {
        fw_redis_failed(s, "rollouts", &err);
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        bc_status st = bc_rollout_tick(&s->loop.cmd, l.ids[i], bc_clock_now_ms(), &h, &err);
        if (st == BC_ERR_UNAVAILABLE) {
            fw_redis_failed(s, "tick", &err);
            return;
        }
        if (st != BC_OK) {
            log_warnx("rollout | tick_failed | rollout=%s reason=%s", l.ids[i], err.text);
            continue;
        }
        if (fw_happenings(s, &h) == BC_ERR_UNAVAILABLE)
            return;
    }
}
