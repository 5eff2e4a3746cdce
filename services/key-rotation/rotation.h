/*
 * rotation.h - bodycam-key-rotation: its configuration, its parts and how
 * they meet.
 *
 *   main.c      the option table and the daemon skeleton
 *   rotation.c  the timers (send pass, ack deadlines) and counters of the
 *               one-thread poll() loop over two stream consumers (ack, csr;
 *               group "key-rotation"), which is common/consumer_loop.h
 *   dispatch.c  the paced send pass (bc_campaign_next, then a signed
 *               command per camera through the outbox, marked sent in the
 *               same script) and the ack deadlines (timeout -> pending)
 *   acks.c      bodycam:stream:ack: a camera's answer -> its campaign
 *   identity.c  bodycam:stream:csr: the CA's checks, the registry, the
 *               install; the registry steps of an install's answer; the
 *               identity_refused alert
 *
 * The campaigns live in Redis (campaign.h, library bc_keyrot); this
 * process keeps nothing but its connections, its keys and counters, so any
 * number of instances can run (each its own consumer name) and a crash
 * loses nothing: a command marked sent whose answer never comes times out.
 */
#ifndef BC_KEY_ROTATION_H
#define BC_KEY_ROTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/ca.h"
#include "common/consumer_loop.h"
#include "common/stream.h"
#include "key-rotation/campaign.h"
#include "proto/command.h"
#include "proto/status.h"

#define ROT_INSTANCE_MAX 32
#define ROT_GROUP "key-rotation"
#define ROT_STATUS_KEY_PREFIX "bodycam:key-rotation:"
#define ROT_STREAMS 2 /* ack, csr */
#define ROT_RECONNECT_BUCKET "reconnect"
#define ROT_INSTALL_WAITS_MAX 512  /* certificates issued, install not yet sent */
#define ROT_APPLIED_FRESH_MS 10000 /* an older bodycam:registry:applied entry is a dead broker */
#define ROT_APPLIED_CHECK_MS 50    /* how often the waiting installs are looked at */

/* A certificate issued and registered whose install waits until every live
 * broker applied the registry version that holds its fingerprint. The CSR
 * entry (entry_id) stays pending in the stream (DEFER) until then. */
typedef struct rot_install_wait {
    char entry_id[BC_STREAM_ID_MAX + 1];
    char campaign_id[BC_CAMPAIGN_ID_MAX + 1];
    char device[BC_DEVICE_ID_MAX + 1];
    char request_cmd_id[BC_ID_MAX + 1];
    char fingerprint[BC_CAMPAIGN_FP_LEN + 1];
    char *pem; /* the certificate, owned */
    uint64_t version;
} rot_install_wait;

typedef struct rot_config {
    char instance[ROT_INSTANCE_MAX + 1];
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
    char command_key_file[512];
    char ca_cert_file[512];
    char ca_key_file[512];
    int64_t cert_days;
    int64_t command_ttl_s;
    int64_t ack_timeout_s;
    int64_t attempts_max;
    int64_t retry_backoff_s;
    int64_t retry_backoff_max_s;
    int64_t send_max_per_s;
    int64_t reconnects_max_per_s;
    int64_t offline_recheck_s;
    int64_t send_interval_ms;
    int64_t scan_interval_ms;
    int64_t stats_interval_s;
    char log_level[16];
} rot_config;

typedef struct rot_stats {
    uint64_t sent_keys, sent_requests, sent_installs, send_failures;
    uint64_t acks, acks_ok, acks_error, acks_stale, acks_foreign;
    uint64_t csrs, certs_issued, csrs_refused, csrs_stale, csrs_waited, installs_waited;
    uint64_t done, failed, retried, timeouts, alerts, invalid;
} rot_stats;

typedef struct rotation {
    rot_config cfg;
    bc_consumer_loop loop; /* cmd: campaigns, registry, outbox, status; the ack and csr consumers */
    EVP_PKEY *command_key; /* signs rotate-recording-key and rotate-identity */
    bc_ca ca;              /* signs the cameras' new certificates */
    rot_stats stats;
    bool running_campaigns;             /* the last send pass found one running */
    int64_t next_send_ms, next_scan_ms; /* monotonic */
    rot_install_wait *waits;            /* ROT_INSTALL_WAITS_MAX slots, wait_count used */
    size_t wait_count;
    int64_t next_wait_check_ms; /* monotonic */
    bool no_broker_logged;      /* "no broker reports its registry version" said once */
    const char *csr_entry_id;   /* the CSR entry being handled, borrowed */
} rotation;

/* The loop; returns an exit code (0 after a stop request). */
int rotation_run(rotation *r);

/* A failure on the command connection: logged once until rot_redis_ok(). */
void rot_redis_failed(rotation *r, const char *what, const bc_error *err);
void rot_redis_ok(rotation *r);

/* The retry policy of the configuration (backoff, cap, attempts_max). */
bc_campaign_retry rot_retry(const rotation *r);

/* Ends a camera's command in its campaign and counts it; logs the outcome
 * as "rotation | <verb> | campaign=.. device=.. cmd=.." (detail when not
 * done). BC_ERR_UNAVAILABLE when Redis failed (the caller retries). */
bc_status rot_finish(rotation *r, const char *campaign_id, const char *device, const char *cmd_id,
                     bc_campaign_outcome outcome, const char *detail);

/* ---- dispatch.c ---- */

/* Fills id, issued_at and expires_at (command_ttl_s), signs with the
 * command key and encodes cmd; topic gets its topic. *payload is the
 * caller's (free()). */
bc_status rot_command_build(rotation *r, bc_command *cmd, char topic[BC_TOPIC_MAX + 1],
                            char **payload, bc_error *err);

/* One send pass over the running campaigns; *any set when one is running. */
void rot_dispatch_send(rotation *r, bool *any);

/* Commands past their deadline, in every watched campaign: an install's
 * new fingerprint leaves the registry, then the camera goes back to
 * pending (or failed). */
void rot_dispatch_timeouts(rotation *r);

/* ---- acks.c ---- */

/* The handler of bodycam:stream:ack (userdata: the rotation). */
bc_stream_verdict rot_acks_handle(const bc_stream_entry *entry, void *userdata);

/* ---- identity.c ---- */

/* The handler of bodycam:stream:csr (userdata: the rotation). */
bc_stream_verdict rot_identity_csr(const bc_stream_entry *entry, void *userdata);

/* An install was acked ok over the camera's new connection: every other
 * fingerprint of the camera leaves the registry (the broker refuses the old
 * certificate from then on), then the camera is done. The new fingerprint
 * must still be registered; otherwise nothing is removed and the camera
 * fails (it could be locked out). */
bc_status rot_identity_installed(rotation *r, const bc_campaign_cmd *c, const char *cmd_id);

/* An install that failed or timed out: its new fingerprint leaves the
 * registry (the camera keeps its old identity). BC_OK also when it was not
 * there. */
bc_status rot_identity_withdraw(rotation *r, const char *device, const char *fingerprint);

/* The waiting installs whose registry version every live broker applied
 * are sent and their CSR entries acknowledged; the rest keep waiting.
 * Called from the timers every ROT_APPLIED_CHECK_MS while any waits. */
void rot_identity_release(rotation *r);

/* Frees the waiting installs (their CSR entries stay pending in the
 * stream: after a restart they are handled again). */
void rot_identity_waits_free(rotation *r);

#endif
