/*
 * scan.c - what time alone changes: cameras that went silent, uploads
 * waiting too long, and a slow pass over every camera.
 *
 *   missed health  bodycam:lastseen holds the online cameras by last_seen;
 *                  those at or below now - offline_after are handed to the
 *                  stale script, which marks a camera offline only if it is
 *                  still online and still silent (a message may have come
 *                  in meanwhile, or another instance did it first).
 *   uploads        bodycam:uploads:waiting holds docked cameras with
 *                  uploads waiting, by since when; those waiting longer
 *                  than upload_overdue_s get their alert rules run, and
 *                  leave the set once the alert is open.
 *   full pass      every full_scan_interval_s, SSCAN over bodycam:cameras
 *                  (one page per loop pass, so the loop never stalls) runs
 *                  every camera's rules: an assignment that changed while
 *                  the camera was silent, an alert step lost to a crash.
 *
 * The loop runs the first two only while every consumer is caught up, so
 * a backlog in a stream (after a restart) is not mistaken for silence.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "fleet-health/fleet.h"

#define SCAN_PAGE 200

/* Runs script (STALE or PEEK) on one camera and its alert rules. */
static bc_status check_camera(fleet *f, fh_script_id script, const char *device, int64_t cutoff,
                              fh_applied *ap, bc_error *err)
{
    if (!bc_device_id_valid(device))
        return BC_OK;
    int64_t now = bc_clock_now_ms();
    fh_args a;
    fh_args_init(&a);
    fh_args_common(&a, f, device, now, now);
    if (script == FH_SCRIPT_STALE)
        fh_args_int(&a, cutoff);
    redisReply *reply = NULL;
    bc_status st = fh_script_run(&f->cmd, script, &a, &reply, err);
    if (st != BC_OK)
        return st;
    st = fh_applied_parse(reply, device, ap, err);
    freeReplyObject(reply);
    if (st != BC_OK || strcmp(ap->verdict, "stale") == 0)
        return st;
    if (ap->changed)
        f->summary_dirty = true;
    if (script == FH_SCRIPT_STALE && strcmp(ap->verdict, "applied") == 0) {
        f->stats.offline_missed++;
        log_info("camera | offline | device=%s reason=missed_health last_seen=%" PRId64, device,
                 ap->cam.last_seen);
    }
    return fh_alerts_apply(f, &ap->cam, ap->open_ids, now, err);
}

/* ZRANGEBYSCORE key -inf max LIMIT 0 SCAN_PAGE. */
static bc_status due(fleet *f, const char *key, int64_t max, redisReply **out, bc_error *err)
{
    char maxs[24], page[16];
    snprintf(maxs, sizeof(maxs), "%" PRId64, max);
    snprintf(page, sizeof(page), "%d", SCAN_PAGE);
    const char *argv[] = {"ZRANGEBYSCORE", key, "-inf", maxs, "LIMIT", "0", page};
    bc_status st = bc_redis_command(&f->cmd, 7, argv, NULL, out, err);
    if (st == BC_OK && (*out)->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(*out);
        *out = NULL;
        return bc_fail(err, BC_ERR_PARSE, "ZRANGEBYSCORE %s: not an array", key);
    }
    return st;
}

static bc_status scan_silent(fleet *f, bc_error *err)
{
    int64_t cutoff = bc_clock_now_ms() - fh_offline_after_ms(&f->cfg);
    redisReply *list = NULL;
    bc_status st = due(f, FH_KEY_PREFIX "lastseen", cutoff, &list, err);
    if (st != BC_OK)
        return st;
    for (size_t i = 0; st == BC_OK && i < list->elements; i++) {
        if (list->element[i]->type != REDIS_REPLY_STRING)
            continue;
        fh_applied ap;
        st = check_camera(f, FH_SCRIPT_STALE, list->element[i]->str, cutoff, &ap, err);
    }
    freeReplyObject(list);
    return st;
}

static bc_status scan_uploads(fleet *f, bc_error *err)
{
    int64_t max = bc_clock_now_ms() - f->cfg.upload_overdue_s * 1000;
    redisReply *list = NULL;
    bc_status st = due(f, FH_KEY_PREFIX "uploads:waiting", max, &list, err);
    if (st != BC_OK)
        return st;
    for (size_t i = 0; st == BC_OK && i < list->elements; i++) {
        if (list->element[i]->type != REDIS_REPLY_STRING)
            continue;
        const char *device = list->element[i]->str;
        fh_applied ap;
        st = check_camera(f, FH_SCRIPT_PEEK, device, 0, &ap, err);
        if (st != BC_OK)
            break;
        bool gone = strcmp(ap.verdict, "stale") == 0;
        if (!gone) {
            /* the rule has run: open now (or no longer waiting) */
            fh_applied again;
            st = check_camera(f, FH_SCRIPT_PEEK, device, 0, &again, err);
            gone = st == BC_OK && (again.open_ids[FH_ALERT_UPLOAD_OVERDUE][0] != '\0' ||
                                   again.cam.pending_since == 0);
        }
        if (st == BC_OK && gone) {
            const char *argv[] = {"ZREM", FH_KEY_PREFIX "uploads:waiting", device};
            redisReply *r = NULL;
            st = bc_redis_command(&f->cmd, 3, argv, NULL, &r, err);
            if (st == BC_OK)
                freeReplyObject(r);
        }
    }
    freeReplyObject(list);
    return st;
}

void fh_scan_run(fleet *f)
{
    if (!bc_redis_connected(&f->cmd))
        return;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = scan_silent(f, &err);
    if (st == BC_OK)
        st = scan_uploads(f, &err);
    if (st != BC_OK)
        fleet_redis_failed(f, "scan", &err);
    f->stats.scans++;
}

/* One SSCAN page of the full pass; f->full_cursor "0" when done. */
void fh_scan_full(fleet *f)
{
    if (!bc_redis_connected(&f->cmd)) {
        f->full_active = false; /* the next pass starts over */
        return;
    }
    char count[16];
    snprintf(count, sizeof(count), "%d", SCAN_PAGE);
    const char *argv[] = {"SSCAN", FH_KEY_PREFIX "cameras", f->full_cursor, "COUNT", count};
    redisReply *reply = NULL;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_redis_command(&f->cmd, 5, argv, NULL, &reply, &err);
    if (st != BC_OK) {
        f->full_active = false;
        fleet_redis_failed(f, "full scan", &err);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        log_warnx("full scan: SSCAN answered an unexpected shape");
        snprintf(f->full_cursor, sizeof(f->full_cursor), "0");
        f->full_active = false;
        freeReplyObject(reply);
        return;
    }
    const redisReply *ids = reply->element[1];
    for (size_t i = 0; st == BC_OK && i < ids->elements; i++) {
        if (ids->element[i]->type != REDIS_REPLY_STRING)
            continue;
        fh_applied ap;
        st = check_camera(f, FH_SCRIPT_PEEK, ids->element[i]->str, 0, &ap, &err);
    }
    if (st == BC_OK) {
        snprintf(f->full_cursor, sizeof(f->full_cursor), "%s", reply->element[0]->str);
        f->full_active = strcmp(f->full_cursor, "0") != 0;
    } else {
        f->full_active = false;
        fleet_redis_failed(f, "full scan", &err);
    }
    freeReplyObject(reply);
}
