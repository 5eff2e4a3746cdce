/*
 * summary.c - the retained fleet summary (fleet/summary via the outbox).
 *
 * The counts come from sets the scripts keep exact (bodycam:cameras,
 * bodycam:cameras:online, bodycam:cameras:state:<state>) and the open
 * alerts hash, read in one script so they are one snapshot. Published:
 *
 *   - when something that changes them happened (a record's online or
 *     state changed, an alert moved), at most every summary_min_interval_ms;
 *   - every summary_interval_s in any case (a dashboard that missed the
 *     retained message, an outbox entry that was lost with a crash of Redis);
 *   - never twice in a row with the same counts between periodic ones.
 *
 * Several instances publish the same snapshot: harmless for a retained
 * message.
 *
 * Key rotation progress (rotations_active, rotation_cameras, rotation_done,
 * rotation_failed: the sums over bodycam:campaigns:active) and firmware
 * rollout progress (rollouts_active, rollout_cameras, rollout_updated,
 * rollout_failed, rollout_wave of rollout_waves: over bodycam:rollouts:active)
 * are changed by bodycam-key-rotation, bodycam-firmware-rollout and
 * bodycamctl, not by a message this service sees, so the counts are also
 * read every PROGRESS_POLL_MS and published when they moved.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "fleet-health/fleet.h"

#define SUMMARY_RETRY_MS 1000
#define PROGRESS_POLL_MS 2000
#define ROTATION_COUNTS 4 /* active, cameras, done, failed */
#define ROLLOUT_COUNTS 6  /* active, cameras, updated, failed, wave, waves */

static bc_status read_counts(fleet *f, bc_msg_summary *s, bc_error *err)
{
    fh_args a;
    fh_args_init(&a);
    for (int i = 0; i < BC_STATE_COUNT; i++)
        fh_args_str(&a, bc_device_state_name((bc_device_state)i));
    redisReply *reply = NULL;
    bc_status st = fh_script_run(&f->cmd, FH_SCRIPT_COUNTS, &a, &reply, err);
    if (st != BC_OK)
        return st;
    if (reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 3 + BC_STATE_COUNT + ROTATION_COUNTS + ROLLOUT_COUNTS) {
        freeReplyObject(reply);
        return bc_fail(err, BC_ERR_PARSE, "the counts script answered an unexpected shape");
    }
    for (size_t i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            freeReplyObject(reply);
            return bc_fail(err, BC_ERR_PARSE, "count %zu is not an integer", i);
        }
    }
    memset(s, 0, sizeof(*s));
    s->cameras = reply->element[0]->integer;
    s->online = reply->element[1]->integer;
    s->alerts_open = reply->element[2]->integer;
    for (int i = 0; i < BC_STATE_COUNT; i++)
        s->states[i] = reply->element[3 + i]->integer;
    redisReply *const *rot = reply->element + 3 + BC_STATE_COUNT;
    s->rotations_active = rot[0]->integer;
    s->rotation_cameras = rot[1]->integer;
    s->rotation_done = rot[2]->integer;
    s->rotation_failed = rot[3]->integer;
    redisReply *const *fw = rot + ROTATION_COUNTS;
    s->rollouts_active = fw[0]->integer;
    s->rollout_cameras = fw[1]->integer;
    s->rollout_updated = fw[2]->integer;
    s->rollout_failed = fw[3]->integer;
    s->rollout_wave = fw[4]->integer;
    s->rollout_waves = fw[5]->integer;
    freeReplyObject(reply);
    return BC_OK;
}

static bool same_counts(const bc_msg_summary *a, const bc_msg_summary *b)
{
    if (a->cameras != b->cameras || a->online != b->online || a->alerts_open != b->alerts_open)
        return false;
    if (a->rotations_active != b->rotations_active || a->rotation_cameras != b->rotation_cameras ||
        a->rotation_done != b->rotation_done || a->rotation_failed != b->rotation_failed)
        return false;
    if (a->rollouts_active != b->rollouts_active || a->rollout_cameras != b->rollout_cameras ||
        a->rollout_updated != b->rollout_updated || a->rollout_failed != b->rollout_failed ||
        a->rollout_wave != b->rollout_wave || a->rollout_waves != b->rollout_waves)
        return false;
    for (int i = 0; i < BC_STATE_COUNT; i++) {
        if (a->states[i] != b->states[i])
            return false;
    }
    return true;
}

static bc_status publish(fleet *f, bc_msg_summary *s, bc_error *err)
{
    bc_message msg = {.kind = BC_TOPIC_FLEET_SUMMARY};
    msg.summary = *s;
    char *payload = NULL;
    char topic[BC_TOPIC_MAX + 1];
    bc_status st = bc_message_encode_fleet(&msg, topic, sizeof(topic), &payload, err);
    if (st == BC_OK)
        st = bc_outbox_add(&f->cmd, topic, payload, 1, true, err);
    free(payload);
    return st;
}

/* After a failure: try again in a second, not on the next loop pass. */
static void postpone(fleet *f, int64_t mono)
{
    f->last_summary_ms = mono + SUMMARY_RETRY_MS - f->cfg.summary_min_interval_ms;
    if (f->next_summary_ms < mono + SUMMARY_RETRY_MS)
        f->next_summary_ms = mono + SUMMARY_RETRY_MS;
}

void fh_summary_tick(fleet *f, bool force)
{
    int64_t mono = bc_clock_monotonic_ms();
    if (mono - f->rotation_poll_ms >= PROGRESS_POLL_MS) {
        f->rotation_poll_ms = mono;
        f->summary_dirty = true; /* read again: published only if something moved */
    }
    bool periodic = mono >= f->next_summary_ms;
    bool soon = f->summary_dirty && mono - f->last_summary_ms >= f->cfg.summary_min_interval_ms;
    if (!force && !periodic && !soon)
        return;
    if (!bc_redis_connected(&f->cmd))
        return;
    bc_error err;
    bc_error_clear(&err);
    bc_msg_summary s;
    bc_status st = read_counts(f, &s, &err);
    if (st != BC_OK) {
        postpone(f, mono);
        fleet_redis_failed(f, "summary", &err);
        return;
    }
    f->summary_dirty = false;
    if (!force && !periodic && f->have_summary && same_counts(&s, &f->last_summary))
        return;
    s.ts = bc_clock_now_ms();
    st = publish(f, &s, &err);
    if (st != BC_OK) {
        f->summary_dirty = true;
        postpone(f, mono);
        fleet_redis_failed(f, "summary", &err);
        return;
    }
    fleet_redis_ok(f);
    f->last_summary = s;
    f->have_summary = true;
    f->stats.summaries++;
    f->last_summary_ms = mono;
    f->next_summary_ms = mono + f->cfg.summary_interval_s * 1000;
    log_debug("summary | cameras=%" PRId64 " online=%" PRId64 " alerts_open=%" PRId64
              " rotations_active=%" PRId64 " rotation_done=%" PRId64 "/%" PRId64
              " rollouts_active=%" PRId64 " rollout_updated=%" PRId64 "/%" PRId64 " wave=%" PRId64
              "/%" PRId64,
              s.cameras, s.online, s.alerts_open, s.rotations_active, s.rotation_done,
              s.rotation_cameras, s.rollouts_active, s.rollout_updated, s.rollout_cameras,
              s.rollout_wave, s.rollout_waves);
}
