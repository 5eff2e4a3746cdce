/*
 * vault.h - bodycam-vault: its configuration, its parts and how they meet.
 *
 *   main.c       the option table and the daemon skeleton
 *   vault.c      the loop: one stream consumer on bodycam:stream:upload
 *                (group "vault"), then the batch's flush, then the timers;
 *                status and statistics
 *   handoff.c    an upload entry -> staging; a complete recording ->
 *                verify -> store -> catalog -> audit -> receipt (the
 *                invariant is stated there); asking cameras to send again
 *   retention.c  the purge worker, tombstones and the audit log's own expiry
 *   requests.c   the access requests' deadlines: overdue alerts
 *   keys.c       recording keys: made on request (bodycam:stream:vault-control,
 *                group "vault", a second consumer polled from the timers),
 *                adopted at start, destroyed by the purge pass once nothing
 *                needs them (crypto-shredding; the rule is stated there)
 *
 * Library modules (bc_vault, shared with bodycamctl): staging, store,
 * keystore, catalog (Redis), audit (files), export. Every Redis key is in
 * README.md ("Redis keys").
 */
#ifndef BC_VAULT_H
#define BC_VAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/status.h"
#include "vault/audit.h"
#include "vault/catalog.h"
#include "vault/keystore.h"
#include "vault/staging.h"
#include "vault/store.h"

#define VAULT_INSTANCE_MAX 32
#define VAULT_GROUP "vault"
#define VAULT_STATUS_KEY_PREFIX "bodycam:vault:"
#define VAULT_RESEND_KEY_PREFIX "bodycam:vault:resend:" /* + ref: SET NX PX, one ask per period */
#define VAULT_ACTOR "vault"

typedef struct vault_config {
    char instance[VAULT_INSTANCE_MAX + 1];
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
    char vault_dir[512];
    char audit_dir[512]; /* "" = <vault_dir>/audit */
    char recording_key_dir[512];
    char master_key_file[512];
    char receipt_key_file[512];
    char command_key_file[512];
    int64_t retention_days;
    int64_t tombstone_days;
    int64_t audit_retention_days;
    int64_t receipt_ttl_s;
    int64_t resend_after_s;
    int64_t verify_attempts_max;
    int64_t scan_interval_ms;
    int64_t purge_interval_s;
    int64_t purge_batch;
    int64_t request_scan_interval_s;
    int64_t staging_open_max;
    int delete_processed;
    int64_t stats_interval_s;
    char log_level[16];
} vault_config;

typedef struct vault_stats {
    uint64_t manifests, chunks, duplicates, invalid, deferred_bytes;
    uint64_t committed, recommitted, refused, quarantined, receipts, resend_requests;
    uint64_t purged, purge_passes, requests_overdue, audit_entries;
    uint64_t keys_created, keys_destroyed;
} vault_stats;

typedef struct vault_ready {
    char device[BC_DEVICE_ID_MAX + 1];
    char recording_id[BC_ID_MAX + 1];
} vault_ready;

typedef struct vault {
    vault_config cfg;
    bc_redis link; /* the consumer's connection (its blocking reads) */
    bc_redis cmd;  /* everything else: catalog, outbox, acks, status */
    bc_stream_consumer consumer;
    bc_stream_consumer control; /* bodycam:stream:vault-control on cmd, never blocking long */
    bc_staging *staging;
    bc_store *store;
    bc_keystore *keys;
    bc_audit *audit;
    char audit_dir[512];
    /* the batch being handled: ids to acknowledge after the staging sync,
     * and recordings that became complete */
    char (*acks)[BC_STREAM_ID_MAX + 1];
    size_t nacks, acks_cap;
    vault_ready *ready;
    size_t nready, ready_cap;
    vault_stats stats;
    bool redis_failing;
    int64_t started_ms;
    int64_t next_scan_ms, next_purge_ms, next_request_ms, next_stats_ms, next_status_ms;
    int64_t next_control_ms;
    uint64_t status_sum;
    /* keys.c */
    bool keys_adopted;                            /* the keystore's keys all have a record */
    bool key_index_built;                         /* the catalog's key index exists */
    char pending_key[BC_KEY_ID_LEN + 1];          /* made, its record not answered yet */
    char pending_campaign[BC_CATALOG_ID_MAX + 1]; /* ... for this campaign */
} vault;

int vault_run(vault *v);

/* Logs a Redis failure once until vault_redis_ok (quiet during an outage). */
void vault_redis_failed(vault *v, const char *what, const bc_error *err);
void vault_redis_ok(vault *v);

/* ---- handoff.c ---- */

/* The stream handler: one upload entry into the staging area. Returns
 * DEFER (acknowledged by vault_handoff_flush after the staging sync) or
 * DROP for an entry that can never be processed (logged, counted). */
bc_stream_verdict vault_handoff_entry(const bc_stream_entry *entry, void *userdata);

/* After a batch: sync the staging, acknowledge (and delete) the batch's
 * entries, then commit every recording that became complete. */
void vault_handoff_flush(vault *v);

/* The staging scan: commits complete recordings left over (Redis was
 * down, a crash, an unknown key), asks cameras again for recordings that
 * stalled, audits commits a crash left unaudited. */
void vault_handoff_scan(vault *v);

/* ---- retention.c ---- */

/* One purge pass: finishes purges a crash interrupted, then purges every
 * recording past delete_after without a hold, in batches; sweeps
 * tombstones; expires audit files past audit_retention_days. */
void vault_retention_pass(vault *v);

/* ---- requests.c ---- */

/* Raises request_overdue for open access requests past their deadline and
 * clears it for those closed since. */
void vault_requests_scan(vault *v);

/* ---- keys.c ---- */

/* The vault-control handler: {op new-recording-key, campaign, by}. */
bc_stream_verdict vault_keys_control_entry(const bc_stream_entry *entry, void *userdata);

/* Records the keystore's keys that have no record yet (the first start:
 * the PKI's key becomes current), audits them, and logs a current key the
 * keystore lacks. BC_OK, or the failure (logged). */
bc_status vault_keys_adopt(vault *v);

/* From the timers: adoption once, then the control stream's pending and
 * new entries (BLOCK of 1 ms: the upload path's latency is unchanged). */
void vault_keys_poll(vault *v);

/* From the purge pass: builds the catalog's key index once, then destroys
 * every retired key nothing needs any more. */
void vault_keys_shred_pass(vault *v);

/* ---- shared helpers (vault.c) ---- */

/* Appends one audit entry (actor "vault"); logs a failure and returns it. */
bc_status vault_audit(vault *v, const char *action, const char *subject, const cJSON *details,
                      uint64_t *seq);

#endif
