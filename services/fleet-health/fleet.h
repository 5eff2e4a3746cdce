/*
 * fleet.h - bodycam-fleet-health: its configuration, its parts and how
 * they meet.
 *
 *   main.c     the option table and the daemon skeleton
 *   fleet.c    the one-thread poll() loop over four stream consumers
 *              (conn, state, health, event; group "fleet-health"), the
 *              timers (scan, summary, status) and statistics
 *   record.c   a camera message -> its Lua script -> the camera's record,
 *              then the alert rules on the record the script returned;
 *              one pipeline per batch of stream entries
 *   scripts.c  the Lua scripts that change Redis state atomically (the
 *              idempotency and ordering rules live there), loaded on each
 *              new connection; EVALSHA, and EVAL after a NOSCRIPT
 *   alerts.c   the alert rules with hysteresis (pure) and raising /
 *              clearing through the outbox
 *   scan.c     the periodic passes: missed health, uploads overdue, and a
 *              slow full pass over every camera
 *   summary.c  the retained fleet summary
 *
 * Every Redis key is listed in README.md ("Redis keys"). A camera message
 * may be delivered more than once and the four streams are read
 * independently (by several instances too), so every change of state is
 * one script: check, then change, atomically in Redis.
 */
#ifndef BC_FLEET_HEALTH_H
#define BC_FLEET_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/message.h"
#include "proto/status.h"

#define FH_INSTANCE_MAX 32
#define FH_KEY_PREFIX "bodycam:"
#define FH_GROUP "fleet-health"
#define FH_STATUS_KEY_PREFIX "bodycam:fleet-health:"
#define FH_STREAMS 4 /* conn, state, health, event */

typedef struct fh_config {
    char instance[FH_INSTANCE_MAX + 1]; /* consumer fleet-health-<instance>, status key */
    char redis_host[256];
    int64_t redis_port;
    int64_t redis_timeout_ms;
    int64_t backoff_min_ms;
    int64_t backoff_max_ms;
    int64_t batch;
    int64_t block_ms;
    int64_t claim_idle_ms;
    int64_t claim_interval_ms;
    int64_t retry_delay_ms;
    int64_t health_interval_s; /* the cameras' reporting interval */
    int64_t offline_after_s;   /* 0: 3 x health_interval_s */
    int64_t scan_interval_ms;
    int64_t full_scan_interval_s;
    int64_t summary_min_interval_ms;
    int64_t summary_interval_s;
    int64_t battery_low_raise_pct;
    int64_t battery_low_clear_pct;
    int64_t storage_low_raise_pct;
    int64_t storage_low_clear_pct;
    int64_t overheat_raise_c;
    int64_t overheat_clear_c;
    int64_t upload_overdue_s;
    int64_t short_recording_s;
    int64_t event_log_max;
    int64_t hourly_ttl_days;
    int64_t alert_history_days;
    int64_t stats_interval_s;
    char log_level[16];
} fh_config;

/* offline_after_s, with 0 resolved, in ms. */
int64_t fh_offline_after_ms(const fh_config *cfg);

/* ---- the camera record (bodycam:camera:{id}) as the scripts return it ---- */

#define FH_STATE_NAME_MAX 16

typedef struct fh_camera {
    char device[BC_DEVICE_ID_MAX + 1];
    bool online;
    char offline_reason[24]; /* "will", "missed_health", ... */
    int64_t offline_at;      /* ms, received_at of the will / last_seen */
    int64_t last_seen;
    int64_t session;
    bool has_state;
    char state[FH_STATE_NAME_MAX]; /* a bc_device_state name */
    bool has_health;
    int64_t battery_pct;
    bool charging;
    int64_t storage_free;
    int64_t storage_total;
    int64_t temperature_c;
    int64_t pending_uploads;
    int64_t pending_since; /* ms; 0 = not docked with uploads waiting */
    char assignment[16];   /* "none", "assigned", "unassigned" */
    char officer[BC_ID_MAX + 1];
} fh_camera;

/* Fills cam from a flat name/value array (the record a script returns).
 * Unknown fields are ignored; BC_ERR_PARSE when it is not such an array. */
bc_status fh_camera_parse(const redisReply *flat, const char *device, fh_camera *cam,
                          bc_error *err);

/* ---- alerts.c ---- */

/* The level alerts (one open per camera at most), in this order. */
typedef enum fh_level_alert {
    FH_ALERT_LOW_BATTERY,
    FH_ALERT_STORAGE_LOW,
    FH_ALERT_OVERHEATING,
    FH_ALERT_OFFLINE_IN_SHIFT,
    FH_ALERT_UPLOAD_OVERDUE,
    FH_LEVEL_ALERT_COUNT
} fh_level_alert;

typedef enum fh_want {
    FH_WANT_NOTHING, /* between the thresholds: keep what is open (hysteresis) */
    FH_WANT_RAISED,
    FH_WANT_CLEARED,
} fh_want;

/* The proto alert kind of a level alert. */
bc_alert_kind fh_level_alert_kind(fh_level_alert a);

/* The rule of one level alert on a camera record at time now (ms, the
 * service clock): what the alert should be. On FH_WANT_RAISED, *value
 * (the measured value; *has_value false when there is none) and detail
 * (a sentence, <= BC_TEXT_MAX) describe it. Pure: no I/O. */
fh_want fh_alert_rule(fh_level_alert a, const fh_config *cfg, const fh_camera *cam, int64_t now,
                      bool *has_value, int64_t *value, char detail[BC_TEXT_MAX + 1]);

/* True when the camera counts as "in shift": assigned to an officer; or,
 * with no assignment record at all, not docked. */
bool fh_in_shift(const fh_camera *cam);

/* The field of bodycam:alerts:open for a level alert ("<dev>:<kind>") and
 * for a recording without warnings ("<dev>:recording_without_warnings:<rec>"). */
void fh_alert_field(char *out, size_t size, const char *device, bc_alert_kind kind,
                    const char *recording_id);

/* The id of the alert about one recording: deterministic, so a repeated or
 * late event cannot raise it twice: "<dev>-rec-<16 hex of SHA-256(rec)>". */
bc_status fh_recording_alert_id(const char *device, const char *recording_id,
                                char id[BC_ID_MAX + 1], bc_error *err);

struct fleet;

/* The open alert stored in a bodycam:alerts:open value: its id ("" when
 * value is NULL or does not decode). */
void fh_open_alert_id(const char *value, size_t len, char id[BC_ID_MAX + 1]);

/* Applies every level rule to cam: raises what should be raised and is
 * not open, clears what should be cleared and is open (open_ids[a]: the id
 * of the open alert or ""; updated with what this call raised or cleared).
 * BC_ERR_UNAVAILABLE when Redis failed (the caller retries the whole
 * message; raising and clearing are idempotent). */
bc_status fh_alerts_apply(struct fleet *f, const fh_camera *cam,
                          char open_ids[FH_LEVEL_ALERT_COUNT][BC_ID_MAX + 1], int64_t now,
                          bc_error *err);

/* A recording_started with fewer than two warnings: raise its alert once. */
bc_status fh_alerts_recording_started(struct fleet *f, const bc_msg_event *ev, const char *open,
                                      size_t open_len, int64_t now, bc_error *err);

/* A recording_deleted (the vault's receipt reached the camera): clear the
 * recording's alert, or mark it so that a late start cannot raise it. */
bc_status fh_alerts_recording_deleted(struct fleet *f, const bc_msg_event *ev, const char *open,
                                      size_t open_len, int64_t now, bc_error *err);

/* ---- scripts.c ---- */

typedef enum fh_script_id {
    FH_SCRIPT_CONN,
    FH_SCRIPT_STATE,
    FH_SCRIPT_HEALTH,
    FH_SCRIPT_EVENT,
    FH_SCRIPT_STALE,  /* missed health: mark offline if still silent */
    FH_SCRIPT_PEEK,   /* the record and its open alerts, no change */
    FH_SCRIPT_RAISE,  /* open an alert and queue its message, once */
    FH_SCRIPT_CLEAR,  /* close an alert and queue its message, once */
    FH_SCRIPT_COUNTS, /* the summary's counts in one snapshot */
    FH_SCRIPT_COUNT
} fh_script_id;

#define FH_ARGS_MAX 48
#define FH_ARG_BUF 80 /* an integer, or a "<device>:<alert kind>" field */

/* Arguments of one script call (borrowed strings or formatted integers). */
typedef struct fh_args {
    const char *v[FH_ARGS_MAX];
    size_t len[FH_ARGS_MAX];
    char num[FH_ARGS_MAX][FH_ARG_BUF];
    int n;
    bool overflow;
} fh_args;

void fh_args_init(fh_args *a);
void fh_args_str(fh_args *a, const char *s);
void fh_args_bytes(fh_args *a, const void *p, size_t len);
void fh_args_int(fh_args *a, int64_t v);

/* Computes every script's SHA-1 (OpenSSL). BC_ERR_CRYPTO on failure. */
bc_status fh_scripts_init(bc_error *err);

/* SCRIPT LOAD of every script on r (after each new connection, so that a
 * pipelined EVALSHA finds them). Statuses as bc_redis_command; BC_ERR_STATE
 * when Redis computes another SHA-1 than ours. */
bc_status fh_scripts_load(bc_redis *r, bc_error *err);

/* Queues EVALSHA on r's pipeline (bc_redis_append); read the reply with
 * bc_redis_reply. A NOSCRIPT reply means the scripts must be loaded again. */
bc_status fh_script_append(bc_redis *r, fh_script_id id, const fh_args *args, bc_error *err);

/* EVALSHA; after NOSCRIPT (a restarted Redis) EVAL with the source, which
 * caches it again. Statuses as bc_redis_command; *out freed by the caller. */
bc_status fh_script_run(bc_redis *r, fh_script_id id, const fh_args *args, redisReply **out,
                        bc_error *err);

/* ---- record.c ---- */

/* What an apply script returned. */
typedef struct fh_applied {
    char verdict[16]; /* "applied", "duplicate", "stale" */
    bool changed;     /* online, state or the camera set changed: summary */
    fh_camera cam;
    char open_ids[FH_LEVEL_ALERT_COUNT][BC_ID_MAX + 1];
    const char *extra; /* borrowed from the reply: the recording alert's open value */
    size_t extra_len;
} fh_applied;

/* The common prefix of the camera scripts' arguments (scripts.c lists
 * them): device, received_at, now, offline_after_ms, hourly_ttl_s, the
 * docked state's name, the five level alert fields of the device. */
void fh_args_common(fh_args *a, const struct fleet *f, const char *device, int64_t received_at,
                    int64_t now);

/* Parses the common reply {verdict, changed, record, open alerts, extra}. */
bc_status fh_applied_parse(const redisReply *reply, const char *device, fh_applied *out,
                           bc_error *err);

/* One entry whose script is queued on the command connection's pipeline
 * (what its alert steps need once the reply is read). */
typedef struct fh_queued {
    char id[BC_STREAM_ID_MAX + 1]; /* the stream entry, acknowledged after its steps */
    char device[BC_DEVICE_ID_MAX + 1];
    bc_topic_kind kind;
    bc_msg_event event; /* kind EVENT only */
} fh_queued;

/* The stream handler for the four camera streams (userdata: the fleet):
 * checks the entry, queues its script and answers DEFER; DROP for an entry
 * that can never be processed; RETRY when Redis is unavailable. */
bc_stream_verdict fh_record_handle(const bc_stream_entry *entry, void *userdata);

/* After a consumer step that dispatched entries of stream index i: reads
 * the queued scripts' replies, runs the alert steps in entry order and
 * acknowledges what is complete. When Redis fails in the middle, the rest
 * stays pending and the consumer is rewound (read again, in order). */
void fh_record_flush(struct fleet *f, int i);

/* ---- scan.c ---- */

/* Cameras silent for offline_after (by last_seen) are marked offline;
 * docked cameras with uploads waiting too long are alerted. */
void fh_scan_run(struct fleet *f);
/* One page of the full pass: every camera's alert rules again (an
 * assignment that changed, an alert step lost to a crash). Continues from
 * f->full_cursor; f->full_active is false once the pass is complete. */
void fh_scan_full(struct fleet *f);

/* ---- summary.c ---- */

/* Publishes the summary when it changed (at most every
 * summary_min_interval_ms) or summary_interval_s passed. */
void fh_summary_tick(struct fleet *f, bool force);

/* ---- fleet.c ---- */

typedef struct fh_stats {
    uint64_t by_kind[FH_STREAMS];
    uint64_t applied, duplicates, stale, invalid, failed;
    uint64_t raised, cleared, summaries, offline_missed, scans;
} fh_stats;

typedef struct fleet {
    fh_config cfg;
    bc_redis cmd; /* scripts, summary, status */
    bc_redis links[FH_STREAMS];
    bc_stream_consumer consumers[FH_STREAMS];
    bool backlog[FH_STREAMS]; /* the consumer is not caught up (scan waits) */
    fh_stats stats;
    bool summary_dirty;
    int64_t last_summary_ms;  /* monotonic */
    int64_t next_summary_ms;  /* monotonic: the periodic one */
    int64_t rotation_poll_ms; /* monotonic: the counts were last read for rotation progress */
    bc_msg_summary last_summary;
    bool have_summary;
    int64_t next_scan_ms, next_full_scan_ms, next_stats_ms, next_status_ms;
    char full_cursor[32]; /* SSCAN cursor of the full pass in progress */
    bool full_active;
    int64_t started_ms;
    uint64_t status_sum;
    bool redis_was_up;
    bool cmd_failing;                  /* a failure on cmd was logged: quiet until it works */
    bool failing[FH_STREAMS];          /* likewise per consumer */
    int64_t step_after_ms[FH_STREAMS]; /* monotonic: a failed consumer pauses until then */
    uint64_t scripts_generation;       /* cmd.generation the scripts were loaded on */
    fh_queued *queued;                 /* one batch of entries whose scripts are queued */
    size_t nqueued, queued_cap;
} fleet;

/* The loop; returns an exit code (0 after a stop request). */
int fleet_run(fleet *f);

/* A failure on the command connection: logged once until fleet_redis_ok(). */
void fleet_redis_failed(fleet *f, const char *what, const bc_error *err);
/* The command connection worked again (logs the recovery once). */
void fleet_redis_ok(fleet *f);

#endif
