/*
 * vault.c - one thread, one loop:
 *
 *   bodycam:stream:upload ──XREADGROUP (group "vault", consumer vault-<instance>)──►
 *       handoff.c: each entry into the staging area (DEFER)
 *       then the flush: staging fsync ─► XACK + XDEL ─► commit the complete ones
 *   timers: staging scan (stalled uploads, left-over commits), purge pass
 *           (and the recording keys' shredding), request deadlines, the
 *           vault-control stream (new recording keys), status and statistics
 *
 * The consumer blocks at most block_ms, so a stop request is seen within a
 * second. Work that takes long (a purge of many recordings, verifying a
 * large recording) runs between reads: uploads wait meanwhile in the
 * stream, which is where they are safe. The control stream
 * (bodycam:stream:vault-control) has its own consumer on the command
 * connection, polled from the timers every scan_interval_ms with a BLOCK of
 * 1 ms, so the upload reads are not slowed by it.
 *
 * Status: HSET bodycam:vault:<instance> state running|stopped, pid, since,
 * updated_at and the counters; the stack runner's readiness probe reads it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/redis_status.h"
#include "key-rotation/campaign.h"
#include "vault/vault.h"

#define STATUS_REFRESH_MS 1000
#define CONTROL_BATCH 16
#define CONTROL_BLOCK_MS 1
#define CONTROL_RETRY_MS 1000

void vault_redis_failed(vault *v, const char *what, const bc_error *err)
{
    bc_redis_outage_failed(&v->redis_failing, what, err);
}

void vault_redis_ok(vault *v)
{
    bc_redis_outage_over(&v->redis_failing, v->cfg.redis_host, v->cfg.redis_port);
}

bc_status vault_audit(vault *v, const char *action, const char *subject, const cJSON *details,
                      uint64_t *seq)
{
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_audit_append1(v->audit, VAULT_ACTOR, action, subject, details,
                                    bc_clock_now_ms(), seq, &err);
    if (st != BC_OK) {
        log_errorx("audit | append_failed | action=%s subject=%s reason=%s", action, subject,
                   err.text);
        return st;
    }
    v->stats.audit_entries++;
    return BC_OK;
}

/* ---- status and statistics ---- */

static uint64_t activity(const vault *v)
{
    const vault_stats *s = &v->stats;
    return s->manifests + s->chunks + s->committed + s->refused + s->purged + s->receipts +
           s->resend_requests + s->requests_overdue + s->purge_passes + s->keys_created +
           s->keys_destroyed;
}

static void write_status(vault *v, const char *state)
{
    if (!bc_redis_connected(&v->cmd))
        return;
    const vault_stats *s = &v->stats;
    char key[96];
    snprintf(key, sizeof(key), VAULT_STATUS_KEY_PREFIX "%s", v->cfg.instance);
    const bc_status_num nums[] = {
        {"pid", (int64_t)getpid()},
        {"since", v->started_ms},
        {"updated_at", bc_clock_now_ms()},
        {"manifests", (int64_t)s->manifests},
        {"chunks", (int64_t)s->chunks},
        {"duplicates", (int64_t)s->duplicates},
        {"invalid", (int64_t)s->invalid},
        {"committed", (int64_t)s->committed},
        {"recommitted", (int64_t)s->recommitted},
        {"refused", (int64_t)s->refused},
        {"quarantined", (int64_t)s->quarantined},
        {"receipts", (int64_t)s->receipts},
        {"resend_requests", (int64_t)s->resend_requests},
        {"purged", (int64_t)s->purged},
        {"purge_passes", (int64_t)s->purge_passes},
        {"requests_overdue", (int64_t)s->requests_overdue},
        {"audit_entries", (int64_t)s->audit_entries},
        {"keys_created", (int64_t)s->keys_created},
        {"keys_destroyed", (int64_t)s->keys_destroyed},
    };
    bc_error err;
    bc_error_clear(&err);
    if (bc_status_hash_write(&v->cmd, key, state, nums, sizeof(nums) / sizeof(nums[0]), &err) !=
        BC_OK) {
        vault_redis_failed(v, "status", &err);
        return;
    }
    vault_redis_ok(v);
}

static void log_stats(const vault *v)
{
    const vault_stats *s = &v->stats;
    log_info("stats | manifests=%" PRIu64 " chunks=%" PRIu64 " duplicates=%" PRIu64
             " invalid=%" PRIu64 " committed=%" PRIu64 " recommitted=%" PRIu64 " refused=%" PRIu64
             " quarantined=%" PRIu64 " receipts=%" PRIu64 " resend_requests=%" PRIu64
             " purged=%" PRIu64 " requests_overdue=%" PRIu64 " audit_entries=%" PRIu64
             " claimed=%" PRIu64 " keys_created=%" PRIu64 " keys_destroyed=%" PRIu64,
             s->manifests, s->chunks, s->duplicates, s->invalid, s->committed, s->recommitted,
             s->refused, s->quarantined, s->receipts, s->resend_requests, s->purged,
             s->requests_overdue, s->audit_entries, v->consumer.stats.claimed, s->keys_created,
             s->keys_destroyed);
}

static void keep_redis(vault *v)
{
    if (bc_redis_connected(&v->cmd))
        return;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_connect(&v->cmd, &err) == BC_OK) {
        log_info("redis %s:%" PRId64 " connected", v->cfg.redis_host, v->cfg.redis_port);
        vault_redis_ok(v);
        write_status(v, "running");
    } else {
        vault_redis_failed(v, "connect", &err);
    }
}

static void timers(vault *v)
{
    int64_t mono = bc_clock_monotonic_ms();
    if (!bc_redis_connected(&v->cmd))
        return;
    if (mono >= v->next_scan_ms) {
        v->next_scan_ms = mono + v->cfg.scan_interval_ms;
        vault_handoff_scan(v);
    }
    if (mono >= v->next_purge_ms) {
        v->next_purge_ms = mono + v->cfg.purge_interval_s * 1000;
        vault_retention_pass(v);
    }
    if (mono >= v->next_request_ms) {
        v->next_request_ms = mono + v->cfg.request_scan_interval_s * 1000;
        vault_requests_scan(v);
    }
    if (mono >= v->next_control_ms) {
        v->next_control_ms = mono + v->cfg.scan_interval_ms;
        vault_keys_poll(v);
    }
    bool status = false;
    if (mono >= v->next_stats_ms) {
        v->next_stats_ms = mono + v->cfg.stats_interval_s * 1000;
        log_stats(v);
        status = true;
    }
    if (mono >= v->next_status_ms) {
        v->next_status_ms = mono + STATUS_REFRESH_MS;
        uint64_t sum = activity(v);
        status = status || sum != v->status_sum;
        v->status_sum = sum;
    }
    if (status)
        write_status(v, "running");
}

/* ---- setup ---- */

static bc_status open_files(vault *v, bc_error *err)
{
    char dir[600];
    if (snprintf(dir, sizeof(dir), "%s/staging", v->cfg.vault_dir) >= (int)sizeof(dir))
        return bc_fail(err, BC_ERR_TOO_BIG, "vault_dir '%s' is too long", v->cfg.vault_dir);
    if (v->cfg.audit_dir[0] != '\0')
        snprintf(v->audit_dir, sizeof(v->audit_dir), "%s", v->cfg.audit_dir);
    else if (snprintf(v->audit_dir, sizeof(v->audit_dir), "%s/audit", v->cfg.vault_dir) >=
             (int)sizeof(v->audit_dir))
        return bc_fail(err, BC_ERR_TOO_BIG, "vault_dir '%s' is too long", v->cfg.vault_dir);
    bc_status st = bc_store_open(v->cfg.vault_dir, &v->store, err);
    if (st == BC_OK)
        st = bc_staging_open(dir, (size_t)v->cfg.staging_open_max, &v->staging, err);
    if (st == BC_OK)
        st = bc_keystore_open(v->cfg.recording_key_dir, v->cfg.master_key_file,
                              v->cfg.receipt_key_file, v->cfg.command_key_file, &v->keys, err);
    if (st == BC_OK)
        st = bc_audit_open(v->audit_dir, &v->audit, err);
    return st;
}

static bc_status setup(vault *v, bc_error *err)
{
    bc_status st = open_files(v, err);
    if (st != BC_OK)
        return st;
    v->acks_cap = (size_t)v->cfg.batch;
    v->ready_cap = (size_t)v->cfg.batch;
    v->acks = calloc(v->acks_cap, sizeof(*v->acks));
    v->ready = calloc(v->ready_cap, sizeof(*v->ready));
    if (v->acks == NULL || v->ready == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for a batch of %zu entries", v->acks_cap);
    bc_redis_config rc;
    memset(&rc, 0, sizeof(rc));
    snprintf(rc.host, sizeof(rc.host), "%s", v->cfg.redis_host);
    rc.port = (int)v->cfg.redis_port;
    rc.timeout_ms = v->cfg.redis_timeout_ms;
    rc.backoff_min_ms = v->cfg.backoff_min_ms;
    rc.backoff_max_ms = v->cfg.backoff_max_ms;
    if ((st = bc_redis_init(&v->cmd, &rc, err)) != BC_OK ||
        (st = bc_redis_init(&v->link, &rc, err)) != BC_OK)
        return st;
    bc_stream_consumer_config cc;
    memset(&cc, 0, sizeof(cc));
    snprintf(cc.stream, sizeof(cc.stream), "%s", BC_STREAM_UPLOAD);
    snprintf(cc.group, sizeof(cc.group), "%s", VAULT_GROUP);
    snprintf(cc.consumer, sizeof(cc.consumer), "vault-%s", v->cfg.instance);
    cc.batch = (size_t)v->cfg.batch;
    cc.block_ms = v->cfg.block_ms;
    cc.claim_idle_ms = v->cfg.claim_idle_ms;
    cc.claim_interval_ms = v->cfg.claim_interval_ms;
    cc.retry_delay_ms = v->cfg.retry_delay_ms;
    st = bc_stream_consumer_init(&v->consumer, &v->link, &cc, vault_handoff_entry, v, err);
    if (st != BC_OK)
        return st;
    snprintf(cc.stream, sizeof(cc.stream), "%s", BC_VAULT_CONTROL_STREAM);
    cc.batch = CONTROL_BATCH;
    cc.block_ms = CONTROL_BLOCK_MS;
    cc.retry_delay_ms = CONTROL_RETRY_MS;
    st = bc_stream_consumer_init(&v->control, &v->cmd, &cc, vault_keys_control_entry, v, err);
    if (st != BC_OK)
        return st;
    int64_t mono = bc_clock_monotonic_ms();
    v->started_ms = bc_clock_now_ms();
    v->next_scan_ms = mono;
    v->next_purge_ms = mono;
    v->next_request_ms = mono;
    v->next_control_ms = mono;
    v->next_stats_ms = mono + v->cfg.stats_interval_s * 1000;
    v->next_status_ms = mono;
    return BC_OK;
}

static void teardown(vault *v)
{
    bc_redis_close(&v->link);
    bc_redis_close(&v->cmd);
    bc_staging_close(v->staging);
    bc_store_close(v->store);
    bc_keystore_close(v->keys);
    bc_audit_close(v->audit);
    free(v->acks);
    free(v->ready);
    v->acks = NULL;
    v->ready = NULL;
}

int vault_run(vault *v)
{
    bc_error err;
    bc_error_clear(&err);
    if (setup(v, &err) != BC_OK) {
        log_errorx("cannot start: %s", err.text);
        teardown(v);
        return BC_EXIT_RUNTIME;
    }
    log_info("consuming %s as vault-%s (group %s); vault %s, audit %s, %zu recording key(s); "
             "retention %" PRId64 " days",
             BC_STREAM_UPLOAD, v->cfg.instance, VAULT_GROUP, v->cfg.vault_dir, v->audit_dir,
             bc_keystore_recording_key_count(v->keys), v->cfg.retention_days);
    bool consumer_failing = false;
    while (!bc_daemon_stopping()) {
        keep_redis(v);
        timers(v);
        if (bc_daemon_stopping())
            break;
        bc_error_clear(&err);
        bc_status st = bc_stream_consumer_poll(&v->consumer, &err);
        vault_handoff_flush(v); /* also after a failed poll: what was staged is acknowledged */
        if (st != BC_OK) {
            if (!consumer_failing)
                log_warnx("%s: %s (quiet until it reads again)", BC_STREAM_UPLOAD, err.text);
            consumer_failing = true;
            continue;
        }
        if (consumer_failing && v->consumer.group_ready) {
            log_info("%s: reading again", BC_STREAM_UPLOAD);
            consumer_failing = false;
        }
    }
    vault_handoff_flush(v);
    log_stats(v);
    write_status(v, "stopped");
    teardown(v);
    log_info("stopped");
    return BC_EXIT_OK;
}
