/*
 * rollout.h - firmware rollouts in Redis (library bc_fwrollout, shared by
 * bodycam-firmware-rollout and bodycamctl). Keys, states and the wave
 * rules: services/firmware-rollout/README.md ("Rollouts", "Waves").
 *
 * Every change is one Lua script (check, then change) that also keeps the
 * counters (per status and per wave), so a reader never scans the
 * cameras. Statuses: BC_ERR_UNAVAILABLE (Redis), BC_ERR_NOT_FOUND,
 * BC_ERR_STATE (not allowed now; err says why), BC_ERR_INVAL,
 * BC_ERR_PARSE.
 *
 * Who calls what:
 *
 *   bodycamctl   create, get, list, cameras, pause, resume, approve, abort
 *   the service  next (who may be offered now, paced), mark_offered (the
 *                command goes into the outbox in the same script), event
 *                and ack (a camera's answer), tick (deadlines, late
 *                cameras, thresholds, waves), retained / chunks_published
 *                / chunks_cleared (the retained chunk topics)
 *
 * What a script changed beyond the one camera (a wave started, the rollout
 * halted or done, a camera updated without a command) comes back as
 * "happenings" for the service to log and act on (the halted alert).
 */
#ifndef BC_FWROLLOUT_ROLLOUT_H
#define BC_FWROLLOUT_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/firmware.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_ROLLOUT_ID_MAX 32
#define BC_ROLLOUT_ACTOR_MAX 80
#define BC_ROLLOUT_WAVES_MAX 32
#define BC_ROLLOUT_DETAIL_MAX 200
#define BC_ROLLOUT_REASON_MAX 200
#define BC_ROLLOUT_CMD_TTL_S (2 * 24 * 3600) /* bodycam:rollout-cmd:<cmd_id> */
/* A camera handed out by bc_rollout_next is hidden this long from other
 * callers (another instance) unless marked offered before. */
#define BC_ROLLOUT_LEASE_MS 10000
#define BC_ROLLOUT_RATE_SLACK_MS 100 /* the offer bucket's slack (common/rate.h) */
#define BC_ROLLOUT_PACE_KEY "bodycam:firmware-rollout:pace"

typedef enum bc_rollout_state {
    BC_ROLLOUT_RUNNING,
    BC_ROLLOUT_PAUSED,
    BC_ROLLOUT_AWAITING_APPROVAL,
    BC_ROLLOUT_HALTED,
    BC_ROLLOUT_ABORTING,
    BC_ROLLOUT_DONE,
    BC_ROLLOUT_ABORTED,
    BC_ROLLOUT_STATE_COUNT
} bc_rollout_state;

/* A camera's status in a rollout; also the counters' names. */
typedef enum bc_fw_status {
    BC_FW_PENDING,
    BC_FW_OFFERED,
    BC_FW_DOWNLOADING,
    BC_FW_INSTALLED,
    BC_FW_UPDATED,
    BC_FW_FAILED,
    BC_FW_ROLLED_BACK,
    BC_FW_REVERTING,
    BC_FW_REVERTED,
    BC_FW_STATUS_COUNT
} bc_fw_status;

/* Names ("running", "pending", ...); "?" outside the enum. */
const char *bc_rollout_state_name(bc_rollout_state s);
const char *bc_fw_status_name(bc_fw_status s);
/* Field i of the rollout hash bodycam:rollout:<id> in the order it is shown
 * (bodycamctl): the record, the status counters, then waves and
 * rollback_manifests (JSON); NULL past the last. Per-wave counters
 * (w<n>_<status>) are not listed. */
const char *bc_rollout_hash_field(size_t i);
bool bc_rollout_state_active(bc_rollout_state s);

/* Whether id looks like a rollout id ("R" and 1..30 digits). */
bool bc_rollout_id_valid(const char *id);

typedef struct bc_rollout_wave {
    int64_t total;
    int64_t count[BC_FW_STATUS_COUNT];
} bc_rollout_wave;

typedef struct bc_rollout {
    char id[BC_ROLLOUT_ID_MAX + 1];
    char version[BC_VERSION_MAX + 1];
    bc_rollout_state state;
    int64_t created_at;
    char created_by[BC_ROLLOUT_ACTOR_MAX + 1];
    bool target_all;
    int64_t wave_count;
    int64_t current_wave; /* 0-based: the last wave started */
    int64_t wave_started_at, next_wave_at;
    int64_t wait_s, success_pct, max_failure_pct;
    bool approve;
    int64_t camera_timeout_s, min_battery_pct;
    bool rollback;
    char reason[BC_ROLLOUT_REASON_MAX + 1];
    int64_t finished_at, chunks_published_at;
    int64_t total;
    int64_t count[BC_FW_STATUS_COUNT];
    bc_rollout_wave waves[BC_ROLLOUT_WAVES_MAX];
} bc_rollout;

typedef struct bc_rollout_spec {
    const char *version; /* must be published (bodycam:firmware:<version>) */
    /* The target: NULL / 0 = every camera whose registry status is active.
     * Ignored when wave_lists is given. */
    const char *const *devices;
    size_t device_count;
    /* Waves as cumulative percentages of the target, increasing, the last
     * 100 (pct_count 1..BC_ROLLOUT_WAVES_MAX) ... */
    const int64_t *pcts;
    size_t pct_count;
    /* ... or explicit lists: wave_of[i] (0-based) of wave_devices[i]; the
     * target is their union (a camera named twice stays in its first). */
    const char *const *wave_devices;
    const int64_t *wave_of;
    size_t wave_device_count;
    int64_t wait_s;           /* 0 .. 30 days */
    int64_t success_pct;      /* 1 .. 100 */
    int64_t max_failure_pct;  /* 0 .. 100 */
    bool approve;             /* awaiting_approval after each wave */
    int64_t camera_timeout_s; /* 1 .. 7 days */
    int64_t min_battery_pct;  /* 0 .. 100 */
    const char *created_by;
} bc_rollout_spec;

/* Creates a rollout (running, wave 0 started). The order of a percentage
 * split is fixed here: by SHA-1 of "<id>|<device>" (Redis' Lua has no
 * SHA-256), so the canary is not always the same camera. out (may be
 * NULL) gets it. BC_ERR_NOT_FOUND for an unpublished version or a named
 * camera that is not registered; BC_ERR_STATE for another active rollout
 * (err names it), a named camera that is not active, or no camera;
 * BC_ERR_INVAL for a bad spec. */
bc_status bc_rollout_create(bc_redis *r, const bc_rollout_spec *spec, int64_t now_ms,
                            bc_rollout *out, bc_error *err);

/* One rollout with its counters. BC_ERR_NOT_FOUND. */
bc_status bc_rollout_get(bc_redis *r, const char *id, bc_rollout *out, bc_error *err);

typedef bool (*bc_rollout_fn)(const bc_rollout *ro, void *userdata);

/* Rollouts in creation order: the active ones, or all. The struct is
 * borrowed during the call. */
bc_status bc_rollout_list(bc_redis *r, bool active_only, bc_rollout_fn fn, void *userdata,
                          bc_error *err);

typedef struct bc_rollout_camera {
    char device[BC_DEVICE_ID_MAX + 1];
    int64_t wave; /* 0-based */
    bc_fw_status status;
    char cmd_id[BC_ID_MAX + 1];
    int64_t since; /* ms: the status' start */
    char from_version[BC_VERSION_MAX + 1];
    char detail[BC_ROLLOUT_DETAIL_MAX + 1];
} bc_rollout_camera;

typedef bool (*bc_rollout_camera_fn)(const bc_rollout_camera *c, void *userdata);

/* Every camera of a rollout, sorted by device id. BC_ERR_NOT_FOUND. */
bc_status bc_rollout_cameras(bc_redis *r, const char *id, bc_rollout_camera_fn fn, void *userdata,
                             bc_error *err);

/* The operator's acts; *changed (may be NULL) false when already so, out
 * (may be NULL) the rollout after.
 *   pause    running -> paused (no offers)
 *   resume   paused or halted -> running
 *   approve  awaiting_approval -> running, the next wave started
 *   abort    an active rollout -> aborted; with rollback_json (a JSON
 *            object from_version -> signed rollback manifest) cameras that
 *            took the version (installed, updated) -> reverting, and the
 *            rollout -> aborting until they are final
 * BC_ERR_STATE when the act does not fit the state (or, for abort with
 * rollback, a camera to revert comes from a version rollback_json lacks:
 * err names it). */
bc_status bc_rollout_pause(bc_redis *r, const char *id, int64_t now_ms, bc_rollout *out,
                           bool *changed, bc_error *err);
bc_status bc_rollout_resume(bc_redis *r, const char *id, int64_t now_ms, bc_rollout *out,
                            bool *changed, bc_error *err);
bc_status bc_rollout_approve(bc_redis *r, const char *id, int64_t now_ms, bc_rollout *out,
                             bool *changed, bc_error *err);
bc_status bc_rollout_abort(bc_redis *r, const char *id, const char *rollback_json, int64_t now_ms,
                           bc_rollout *out, bool *changed, bc_error *err);

/* The rollback manifests of a rollout (JSON object version -> manifest),
 * *json the caller's (free()); "{}" when none. */
bc_status bc_rollout_rollback_manifests(bc_redis *r, const char *id, char **json, bc_error *err);

/* ---- the service's side ---- */

#define BC_ROLLOUT_NEXT_MAX 128
#define BC_ROLLOUT_HAPPEN_MAX 64

/* Something a script did besides the camera it was asked about. */
typedef enum bc_rollout_happening_kind {
    BC_HAPPEN_WAVE_STARTED,      /* wave */
    BC_HAPPEN_WAVE_DONE,         /* wave: next after wait_s */
    BC_HAPPEN_AWAITING_APPROVAL, /* wave done, approval wanted */
    BC_HAPPEN_HALTED,            /* device (whose failure passed it), wave, detail */
    BC_HAPPEN_DONE,
    BC_HAPPEN_ABORTED,
    BC_HAPPEN_UPDATED, /* device already ran the version: updated, no command */
    BC_HAPPEN_FAILED,  /* device: deadline passed, or no rollback manifest */
    BC_HAPPEN_JOINED,  /* device registered late, joins wave */
    BC_HAPPEN_KIND_COUNT
} bc_rollout_happening_kind;

const char *bc_rollout_happening_name(bc_rollout_happening_kind k);

typedef struct bc_rollout_happening {
    bc_rollout_happening_kind kind;
    char device[BC_DEVICE_ID_MAX + 1]; /* "" when about the rollout */
    int64_t wave;                      /* 0-based */
    char detail[BC_ROLLOUT_REASON_MAX + 1];
} bc_rollout_happening;

typedef struct bc_rollout_happenings {
    char rollout[BC_ROLLOUT_ID_MAX + 1];
    size_t count; /* more than BC_ROLLOUT_HAPPEN_MAX are dropped */
    bc_rollout_happening items[BC_ROLLOUT_HAPPEN_MAX];
} bc_rollout_happenings;

/* Who may be offered now. */
typedef struct bc_rollout_next_result {
    bc_rollout_state state; /* running: offers; aborting: reverts */
    char version[BC_VERSION_MAX + 1];
    size_t count;
    struct {
        char device[BC_DEVICE_ID_MAX + 1];
        char from_version[BC_VERSION_MAX + 1]; /* aborting: the version to go back to */
    } cams[BC_ROLLOUT_NEXT_MAX];
    bc_rollout_happenings happened; /* cameras found updated already, and what followed */
} bc_rollout_next_result;

/* Up to max (<= BC_ROLLOUT_NEXT_MAX) cameras to send a firmware command
 * now, as the offer bucket (offer_max_per_s, shared by every instance)
 * allows: running - pending cameras of started waves that are online and
 * standby with battery_pct >= min_battery_pct, or docked (a camera whose
 * fw is the version already becomes updated instead); aborting - reverting
 * cameras without their command yet that are online. Cameras not eligible
 * now are looked at again after recheck_ms; those returned are leased for
 * BC_ROLLOUT_LEASE_MS. BC_ERR_STATE when the rollout neither runs nor
 * aborts. */
bc_status bc_rollout_next(bc_redis *r, const char *id, int64_t now_ms, size_t max,
                          int64_t offer_max_per_s, int64_t recheck_ms, bc_rollout_next_result *out,
                          bc_error *err);

typedef struct bc_rollout_offer {
    const char *rollout;
    const char *device;
    const char *cmd_id;
    const char *topic; /* the outbox entry (QoS 1, not retained) */
    const char *payload;
    int64_t now_ms;
    int64_t deadline_ms; /* no final answer by then: failed (tick) */
} bc_rollout_offer;

/* In one script: the camera must still be pending (running) or reverting
 * without a command (aborting) and leased or due; it becomes offered
 * (from_version = its fw now) or keeps reverting with this command, is
 * given its deadline, bodycam:rollout-cmd:<cmd_id> is recorded and the
 * outbox entry added. *marked false: taken meanwhile, nothing queued. */
bc_status bc_rollout_mark_offered(bc_redis *r, const bc_rollout_offer *o, bool *marked,
                                  bc_error *err);

/* What an answer changed. */
typedef struct bc_rollout_answer {
    bool applied;        /* false: stale, foreign or not for an active rollout */
    bc_fw_status status; /* the camera's status after (applied) */
    int64_t wave;
    char detail[BC_ROLLOUT_DETAIL_MAX + 1];
    bc_rollout_happenings happened;
} bc_rollout_answer;

/* A camera's fw_* event (bc_event_type name in type, its version and
 * detail) against the active rollout it is in. */
bc_status bc_rollout_event(bc_redis *r, const char *device, const char *type, const char *version,
                           const char *detail, int64_t now_ms, bc_rollout_answer *out,
                           bc_error *err);

/* A camera's ack of a firmware command: ok changes nothing (the events
 * follow), an error fails the camera (detail = the camera's error). Only
 * the camera's current command counts. */
bc_status bc_rollout_ack(bc_redis *r, const char *cmd_id, const char *device, bool ok,
                         const char *error, int64_t now_ms, bc_rollout_answer *out, bc_error *err);

/* The time pass of one active rollout: commands past their deadline ->
 * failed, cameras registered since (target all) join a wave, the
 * thresholds, the next wave when due, done / aborted. */
bc_status bc_rollout_tick(bc_redis *r, const char *id, int64_t now_ms, bc_rollout_happenings *out,
                          bc_error *err);

/* Ids of the active rollouts. */
typedef bool (*bc_rollout_id_fn)(const char *id, void *userdata);
bc_status bc_rollout_active_ids(bc_redis *r, bc_rollout_id_fn fn, void *userdata, bc_error *err);

/* Retained chunks. A rollout whose chunks are published is in
 * bodycam:rollouts:retained until they are cleared. */
typedef struct bc_rollout_retained {
    char id[BC_ROLLOUT_ID_MAX + 1];
    bool active;
    int64_t chunks_published_at;
    size_t version_count; /* the version, then the rollback versions */
    char versions[BC_ROLLOUT_WAVES_MAX][BC_VERSION_MAX + 1];
} bc_rollout_retained;

typedef bool (*bc_rollout_retained_fn)(const bc_rollout_retained *r, void *userdata);

/* The active rollouts and the ended ones whose chunks are still retained. */
bc_status bc_rollout_retained_list(bc_redis *r, bc_rollout_retained_fn fn, void *userdata,
                                   bc_error *err);
/* chunks_published_at = now_ms, and into the retained set. */
bc_status bc_rollout_chunks_published(bc_redis *r, const char *id, int64_t now_ms, bc_error *err);
/* Out of the retained set (its chunks were cleared). */
bc_status bc_rollout_chunks_cleared(bc_redis *r, const char *id, bc_error *err);

#endif
