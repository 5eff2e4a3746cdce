/*
 * campaign.h - key rotation campaigns in Redis (library bc_keyrot, shared
 * by bodycam-key-rotation, bodycam-vault and bodycamctl). The key layout
 * and the states are in services/key-rotation/README.md ("Campaigns").
 *
 * Every change is one Lua script (check, then change). Statuses as in
 * services/vault/catalog.h: BC_ERR_UNAVAILABLE (Redis), BC_ERR_NOT_FOUND,
 * BC_ERR_STATE (not allowed now; err says why), BC_ERR_INVAL, BC_ERR_PARSE.
 *
 * Who calls what:
 *
 *   bodycamctl     create, get, list, devices, pause, resume, abort
 *   vault          key_of, key_ready (the recording key it made)
 *   the service    next (who may be sent to now, paced), mark_sent (the
 *                  command goes into the outbox in the same script),
 *                  cmd_get (what an ack or a CSR answers), finish (done,
 *                  failed, or back to pending after a backoff), expired
 *                  (commands past their ack deadline), rate_take (a
 *                  fleet-wide rate bucket: identity reconnects)
 *
 * Campaign ids are "C<n>" (bodycam:campaign:next). A camera's entry in a
 * campaign names its current command; an answer to an older command is
 * "stale" and changes nothing, so a redelivered or late answer is harmless.
 * Visitor callbacks get borrowed structs, valid during the call; they
 * return false to stop.
 */
#ifndef BC_KEYROT_CAMPAIGN_H
#define BC_KEYROT_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_CAMPAIGN_ID_MAX 32
#define BC_VAULT_CONTROL_STREAM "bodycam:stream:vault-control"
/* The entry bodycamctl adds for a recording-key campaign (in the create
 * script): op new-recording-key, campaign <id>, by <actor>. */
#define BC_VAULT_CONTROL_FIELD_OP "op"
#define BC_VAULT_CONTROL_FIELD_CAMPAIGN "campaign"
#define BC_VAULT_CONTROL_FIELD_BY "by"
#define BC_VAULT_CONTROL_OP_NEW_KEY "new-recording-key"

#define BC_CAMPAIGN_ACTOR_MAX 80              /* created_by: "operator:<name>" */
#define BC_CAMPAIGN_DETAIL_MAX 200            /* a camera's last error, as acked or timed out */
#define BC_CAMPAIGN_PACE_MAX 1000             /* cameras per second */
#define BC_CAMPAIGN_FP_LEN 64                 /* a certificate fingerprint: SHA-256 hex */
#define BC_CAMPAIGN_CMD_TTL_S (2 * 24 * 3600) /* bodycam:campaign-cmd:<cmd_id> */
/* A camera handed out by bc_campaign_next is hidden from other callers this
 * long (another instance of the service) unless marked sent before. */
#define BC_CAMPAIGN_LEASE_MS 10000
/* A pace bucket's slack: a pass that comes this late still sends what it
 * missed, so a pace of P per second may send P/10 more in one second. */
#define BC_CAMPAIGN_RATE_SLACK_MS 100

typedef enum bc_campaign_kind {
    BC_CAMPAIGN_RECORDING_KEY, /* "recording-key" */
    BC_CAMPAIGN_IDENTITY,      /* "identity" */
} bc_campaign_kind;

typedef enum bc_campaign_state {
    BC_CAMPAIGN_AWAITING_KEY, /* "awaiting_key": the vault has not made the key yet */
    BC_CAMPAIGN_RUNNING,      /* "running" */
    BC_CAMPAIGN_PAUSED,       /* "paused" */
    BC_CAMPAIGN_DONE,         /* "done" */
    BC_CAMPAIGN_ABORTED,      /* "aborted" */
} bc_campaign_state;

/* A camera's state in a campaign. */
typedef enum bc_campaign_device_state {
    BC_CDEV_PENDING,    /* "pending": to do (offline, not yet its turn, or after a backoff) */
    BC_CDEV_SENT,       /* "sent": rotate-recording-key, or identity request, is out */
    BC_CDEV_INSTALLING, /* "installing": certificate issued, install is out */
    BC_CDEV_DONE,       /* "done" */
    BC_CDEV_FAILED,     /* "failed": attempts_max reached, or refused */
} bc_campaign_device_state;

/* What a command of a campaign asks (bodycam:campaign-cmd:<id> phase). */
typedef enum bc_campaign_phase {
    BC_PHASE_RECORDING_KEY, /* "recording-key" */
    BC_PHASE_REQUEST,       /* "request": make a key and send a CSR */
    BC_PHASE_INSTALL,       /* "install": use this certificate */
} bc_campaign_phase;

/* Names ("recording-key", "awaiting_key", ...), never NULL ("?" for a
 * value outside the enum); parsers give BC_ERR_INVAL for an unknown name. */
const char *bc_campaign_kind_name(bc_campaign_kind k);
const char *bc_campaign_state_name(bc_campaign_state s);
const char *bc_campaign_device_state_name(bc_campaign_device_state s);
const char *bc_campaign_phase_name(bc_campaign_phase p);
bc_status bc_campaign_kind_parse(const char *name, bc_campaign_kind *out);

/* Whether id looks like a campaign id ("C" and 1..30 digits). */
bool bc_campaign_id_valid(const char *id);

typedef struct bc_campaign {
    char id[BC_CAMPAIGN_ID_MAX + 1];
    bc_campaign_kind kind;
    bc_campaign_state state;
    int64_t pace_per_s;
    int64_t created_at; /* ms */
    char created_by[BC_CAMPAIGN_ACTOR_MAX + 1];
    char key_id[BC_ID_MAX + 1]; /* recording-key: the new key, "" until the vault made it */
    int64_t total, done, failed;
    int64_t started_at;  /* ms; 0 while awaiting_key */
    int64_t finished_at; /* ms; 0 while active */
    /* read, not stored: cameras pending, and sent or installing */
    int64_t pending;
    int64_t in_flight;
} bc_campaign;

typedef struct bc_campaign_spec {
    bc_campaign_kind kind;
    /* The cameras; NULL / 0: every registered camera whose registry status
     * is active (bodycam:devices). Duplicates count once. */
    const char *const *devices;
    size_t device_count;
    int64_t pace_per_s; /* 1..BC_CAMPAIGN_PACE_MAX */
    const char *created_by;
} bc_campaign_spec;

/* Creates a campaign: a recording-key campaign in state awaiting_key, and
 * in the same script the request to the vault (XADD
 * bodycam:stream:vault-control op new-recording-key campaign <id> by
 * <created_by>); an identity campaign running (started_at = now_ms). Every
 * camera starts pending. out (may be NULL) gets the campaign.
 * BC_ERR_NOT_FOUND for a named camera that is not registered; BC_ERR_STATE
 * for a named camera that is lost or revoked, a camera already in an
 * active campaign of the same kind (err names both), or no camera at all;
 * BC_ERR_INVAL for a bad id, pace or actor. */
bc_status bc_campaign_create(bc_redis *r, const bc_campaign_spec *spec, int64_t now_ms,
                             bc_campaign *out, bc_error *err);

/* One campaign. BC_ERR_NOT_FOUND. */
bc_status bc_campaign_get(bc_redis *r, const char *campaign_id, bc_campaign *out, bc_error *err);

typedef bool (*bc_campaign_fn)(const bc_campaign *c, void *userdata);

/* Campaigns in the order they were created: the active ones (awaiting_key,
 * running, paused), or all when active_only is false. */
bc_status bc_campaign_list(bc_redis *r, bool active_only, bc_campaign_fn fn, void *userdata,
                           bc_error *err);

typedef struct bc_campaign_device {
    char device[BC_DEVICE_ID_MAX + 1];
    bc_campaign_device_state state;
    char cmd_id[BC_ID_MAX + 1]; /* the last command sent; "" before the first */
    int64_t sent_at;            /* ms of that command; 0 before */
    int64_t attempts;           /* commands sent (an identity install is part of its request) */
    char detail[BC_CAMPAIGN_DETAIL_MAX + 1]; /* why the last attempt failed; "" */
    int64_t not_before;                      /* pending: the earliest next send (ms); 0 otherwise */
} bc_campaign_device;

typedef bool (*bc_campaign_device_fn)(const bc_campaign_device *d, void *userdata);

/* Every camera of a campaign with its state, sorted by device id.
 * BC_ERR_NOT_FOUND. */
bc_status bc_campaign_devices(bc_redis *r, const char *campaign_id, bc_campaign_device_fn fn,
                              void *userdata, bc_error *err);

/* The operator's acts. *changed (may be NULL) is false when the campaign
 * was in that state already; out (may be NULL) gets the campaign after.
 *   pause   running or awaiting_key -> paused: nothing more is sent
 *           (answers to commands out are still taken)
 *   resume  paused -> running (awaiting_key when the vault has not made
 *           the key yet)
 *   abort   active -> aborted (finished_at): nothing more is sent; answers
 *           to commands out are still taken, and what fails then is failed
 * BC_ERR_STATE for a campaign that is done (or aborted, for pause and
 * resume); BC_ERR_NOT_FOUND. */
bc_status bc_campaign_pause(bc_redis *r, const char *campaign_id, int64_t now_ms, bc_campaign *out,
                            bool *changed, bc_error *err);
bc_status bc_campaign_resume(bc_redis *r, const char *campaign_id, int64_t now_ms, bc_campaign *out,
                             bool *changed, bc_error *err);
bc_status bc_campaign_abort(bc_redis *r, const char *campaign_id, int64_t now_ms, bc_campaign *out,
                            bool *changed, bc_error *err);

/* The vault made the campaign's recording key: sets key_id and moves the
 * campaign from awaiting_key to running (started_at = now_ms). A campaign
 * that has a key_id already is left alone and *already (may be NULL) set:
 * the vault must then not make another key. BC_ERR_NOT_FOUND, BC_ERR_STATE
 * (not a recording-key campaign, or aborted). A paused campaign gets its
 * key and stays paused. */
bc_status bc_campaign_key_ready(bc_redis *r, const char *campaign_id, const char *key_id,
                                int64_t now_ms, bool *already, bc_error *err);

/* The key_id a campaign got already ("" when none yet): the vault checks
 * this before making a key, so a redelivered request makes none. */
bc_status bc_campaign_key_of(bc_redis *r, const char *campaign_id, char *key_id, size_t size,
                             bc_error *err);

/* ---- the service's side ---- */

#define BC_CAMPAIGN_NEXT_MAX 256

/* Who of a running campaign may be sent to now. */
typedef struct bc_campaign_next_result {
    bc_campaign_kind kind;
    char key_id[BC_ID_MAX + 1]; /* recording-key: the key to send */
    char public_b64[64];        /* recording-key: bodycam:recording-key:<key_id> public */
    size_t count;
    char devices[BC_CAMPAIGN_NEXT_MAX][BC_DEVICE_ID_MAX + 1];
} bc_campaign_next_result;

/* Up to max (<= BC_CAMPAIGN_NEXT_MAX) pending cameras of a running
 * campaign that are due (not-before <= now_ms) and online
 * (bodycam:camera:<id> online = 1), as the pace allows: the campaign's
 * pace_per_s and, across all campaigns, send_max_per_s (both buckets in
 * Redis, so several instances share them). Offline cameras met on the way
 * stay pending and are looked at again after recheck_ms. The cameras
 * returned are leased for BC_CAMPAIGN_LEASE_MS: mark each sent (or leave
 * it; it comes back after the lease). BC_ERR_STATE when the campaign is
 * not running or its key is not (yet) in Redis; BC_ERR_NOT_FOUND. */
bc_status bc_campaign_next(bc_redis *r, const char *campaign_id, int64_t now_ms, size_t max,
                           int64_t send_max_per_s, int64_t recheck_ms, bc_campaign_next_result *out,
                           bc_error *err);

/* A command to mark sent, with the outbox entry that carries it. */
typedef struct bc_campaign_send {
    const char *campaign_id;
    const char *device;
    bc_campaign_phase phase;
    const char *cmd_id;
    const char *request_cmd_id; /* install: the request it answers; else NULL */
    const char *fingerprint;    /* install: the new certificate's; else NULL */
    const char *topic;          /* the outbox entry: topic and payload (QoS 1, not retained) */
    const char *payload;
    int64_t now_ms;
    int64_t deadline_ms; /* no answer by then: bc_campaign_expired lists it */
} bc_campaign_send;

/* In one script: checks that the camera may get this command (recording-key
 * or request: the campaign runs and the camera is pending; install: the
 * campaign is not aborted or done and the camera is sent with
 * request_cmd_id), sets the camera sent (attempts + 1) or installing,
 * records bodycam:campaign-cmd:<cmd_id> (expires after
 * BC_CAMPAIGN_CMD_TTL_S) and adds the outbox entry. *marked false: the
 * camera was taken meanwhile (another instance, a pause, an abort, a
 * timeout); nothing was changed or queued. */
bc_status bc_campaign_mark_sent(bc_redis *r, const bc_campaign_send *s, bool *marked,
                                bc_error *err);

/* What a command id belongs to. */
typedef struct bc_campaign_cmd {
    char campaign_id[BC_CAMPAIGN_ID_MAX + 1];
    char device[BC_DEVICE_ID_MAX + 1];
    bc_campaign_phase phase;
    char fingerprint[BC_CAMPAIGN_FP_LEN + 1]; /* install: the certificate issued */
    bc_campaign_kind kind;
    bc_campaign_state campaign_state;
    /* the camera's entry names this command and is sent or installing */
    bool current;
    bc_campaign_device_state device_state;
} bc_campaign_cmd;

/* BC_ERR_NOT_FOUND: no campaign sent this command (or it expired). */
bc_status bc_campaign_cmd_get(bc_redis *r, const char *cmd_id, bc_campaign_cmd *out, bc_error *err);

typedef enum bc_campaign_outcome {
    BC_OUTCOME_DONE,   /* the camera did it */
    BC_OUTCOME_FAILED, /* for good (a refused CSR) */
    BC_OUTCOME_RETRY,  /* an error ack or a timeout: pending again after a
                        * backoff, failed after attempts_max (or when the
                        * campaign is aborted) */
} bc_campaign_outcome;

typedef struct bc_campaign_retry {
    int64_t backoff_ms;     /* after the first attempt; doubled per attempt */
    int64_t backoff_max_ms; /* cap */
    int64_t attempts_max;
} bc_campaign_retry;

/* Ends the camera's current command cmd_id with an outcome and detail (""
 * or a sentence, cut to BC_CAMPAIGN_DETAIL_MAX). The campaign is done when
 * no camera is left pending, sent or installing. *result (may be NULL) is
 * the camera's state after; *applied (may be NULL) false when cmd_id is no
 * longer the camera's current command (stale: nothing changed). retry may
 * be NULL for DONE and FAILED. */
bc_status bc_campaign_finish(bc_redis *r, const char *campaign_id, const char *device,
                             const char *cmd_id, bc_campaign_outcome outcome, const char *detail,
                             const bc_campaign_retry *retry, int64_t now_ms,
                             bc_campaign_device_state *result, bool *applied, bc_error *err);

/* A command whose answer is overdue. */
typedef struct bc_campaign_expired_cmd {
    char device[BC_DEVICE_ID_MAX + 1];
    char cmd_id[BC_ID_MAX + 1];
    bc_campaign_phase phase;
    char fingerprint[BC_CAMPAIGN_FP_LEN + 1]; /* install */
} bc_campaign_expired_cmd;

/* Up to cap commands of a campaign (active, or aborted with commands out)
 * whose deadline is <= now_ms, oldest first; *count set. End each with
 * bc_campaign_finish (it stays listed until then). */
bc_status bc_campaign_expired(bc_redis *r, const char *campaign_id, int64_t now_ms,
                              bc_campaign_expired_cmd *out, size_t cap, size_t *count,
                              bc_error *err);

/* Ids of the campaigns the service looks after: the active ones and the
 * aborted ones that still have commands out; fn is called per id. */
typedef bool (*bc_campaign_id_fn)(const char *campaign_id, void *userdata);
bc_status bc_campaign_watched(bc_redis *r, bc_campaign_id_fn fn, void *userdata, bc_error *err);

/* Takes up to want tokens from the fleet-wide bucket name (bodycam:key-
 * rotation:pace <name>_tat) refilled at per_s a second; *granted gets how
 * many (0 when none now). */
bc_status bc_campaign_rate_take(bc_redis *r, const char *name, int64_t per_s, int64_t want,
                                int64_t now_ms, int64_t *granted, bc_error *err);

/* Sums over the active campaigns (fleet-health's summary reads the same in
 * its own script): campaigns, their cameras, done and failed. */
typedef struct bc_campaign_totals {
    int64_t active, cameras, done, failed;
} bc_campaign_totals;
bc_status bc_campaign_totals_get(bc_redis *r, bc_campaign_totals *out, bc_error *err);

#endif
