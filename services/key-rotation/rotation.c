/*
 * rotation.c - one thread, one poll() loop over two stream consumers and
 * the stop pipe:
 *
 *   bodycam:stream:ack ─┐ group "key-rotation", consumer key-rotation-<instance>,
 *   bodycam:stream:csr ─┘ each on its own connection (its blocking read)
 *        acks.c, identity.c ──► campaigns (Redis), registry, outbox
 *   timers: send pass    every send_interval_ms while a campaign runs, else
 *                        every scan_interval_ms (a new campaign is seen then)
 *           deadlines    every scan_interval_ms: commands without an answer
 *           status, statistics
 *
 * The send pass asks Redis who may be sent to now (the pace buckets live
 * there, shared by every instance), so this loop only has to come by often
 * enough: a pass that comes late sends what it missed, up to
 * BC_CAMPAIGN_RATE_SLACK_MS worth.
 *
 * Status: HSET bodycam:key-rotation:<instance> state running|stopped, pid,
 * since, updated_at and the counters - at start, at most once a second
 * while they move, every statistics period and at the stop. The loop, the
 * connections and the status are common/consumer_loop.h's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/daemon.h"
#include "common/log.h"
#include "key-rotation/rotation.h"

void rot_redis_failed(rotation *r, const char *what, const bc_error *err)
{
    bc_consumer_loop_redis_failed(&r->loop, what, err);
}

void rot_redis_ok(rotation *r)
{
    bc_consumer_loop_redis_ok(&r->loop);
}

bc_campaign_retry rot_retry(const rotation *r)
{
    bc_campaign_retry retry = {.backoff_ms = r->cfg.retry_backoff_s * 1000,
                               .backoff_max_ms = r->cfg.retry_backoff_max_s * 1000,
                               .attempts_max = r->cfg.attempts_max};
    return retry;
}

bc_status rot_finish(rotation *r, const char *campaign_id, const char *device, const char *cmd_id,
                     bc_campaign_outcome outcome, const char *detail)
{
    bc_campaign_retry retry = rot_retry(r);
    bc_campaign_device_state after = BC_CDEV_PENDING;
    bool applied = false;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_campaign_finish(&r->loop.cmd, campaign_id, device, cmd_id, outcome, detail,
                                      &retry, bc_clock_now_ms(), &after, &applied, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "finish", &err);
        return st;
    }
    if (st != BC_OK) {
        log_warnx("rotation | finish_failed | campaign=%s device=%s cmd=%s reason=%s", campaign_id,
                  device, cmd_id, err.text);
        return st;
    }
    rot_redis_ok(r);
    if (!applied) {
        log_debug("rotation | stale | campaign=%s device=%s cmd=%s", campaign_id, device, cmd_id);
        return BC_OK;
    }
    if (after == BC_CDEV_DONE) {
        r->stats.done++;
        log_info("rotation | done | campaign=%s device=%s cmd=%s", campaign_id, device, cmd_id);
    } else if (after == BC_CDEV_FAILED) {
        r->stats.failed++;
        log_warnx("rotation | failed | campaign=%s device=%s cmd=%s detail=%s", campaign_id, device,
                  cmd_id, detail);
    } else {
        r->stats.retried++;
        log_info("rotation | retry_later | campaign=%s device=%s cmd=%s detail=%s", campaign_id,
                 device, cmd_id, detail);
    }
    return BC_OK;
}

/* ---- status and statistics ---- */

static uint64_t activity(const void *ctx)
{
    const rot_stats *s = &((const rotation *)ctx)->stats;
    return s->sent_keys + s->sent_requests + s->sent_installs + s->acks + s->csrs + s->done +
           s->failed + s->retried + s->timeouts + s->alerts;
}

static size_t status_nums(const void *ctx, bc_status_num *nums, size_t max)
{
    const rot_stats *s = &((const rotation *)ctx)->stats;
    const bc_status_num mine[] = {
        {"sent_keys", (int64_t)s->sent_keys},
        {"sent_requests", (int64_t)s->sent_requests},
        {"sent_installs", (int64_t)s->sent_installs},
        {"acks", (int64_t)s->acks},
        {"csrs", (int64_t)s->csrs},
        {"certs_issued", (int64_t)s->certs_issued},
        {"csrs_refused", (int64_t)s->csrs_refused},
        {"done", (int64_t)s->done},
        {"failed", (int64_t)s->failed},
        {"retried", (int64_t)s->retried},
        {"timeouts", (int64_t)s->timeouts},
        {"alerts", (int64_t)s->alerts},
    };
    size_t n = sizeof(mine) / sizeof(mine[0]);
    n = n < max ? n : max;
    memcpy(nums, mine, n * sizeof(mine[0]));
    return n;
}

static void log_stats(const void *ctx)
{
    const rotation *r = ctx;
    const rot_stats *s = &r->stats;
    uint64_t claimed = 0, retried = 0;
    for (int i = 0; i < ROT_STREAMS; i++) {
        claimed += r->loop.consumers[i].stats.claimed;
        retried += r->loop.consumers[i].stats.retried;
    }
    log_info("stats | sent_keys=%" PRIu64 " sent_requests=%" PRIu64 " sent_installs=%" PRIu64
             " send_failures=%" PRIu64 " acks=%" PRIu64 " acks_ok=%" PRIu64 " acks_error=%" PRIu64
             " acks_stale=%" PRIu64 " acks_foreign=%" PRIu64 " csrs=%" PRIu64
             " certs_issued=%" PRIu64 " csrs_refused=%" PRIu64 " csrs_stale=%" PRIu64
             " csrs_waited=%" PRIu64 " installs_waited=%" PRIu64 " done=%" PRIu64 " failed=%" PRIu64
             " retried=%" PRIu64 " timeouts=%" PRIu64 " alerts=%" PRIu64 " invalid=%" PRIu64
             " claimed=%" PRIu64 " entries_retried=%" PRIu64,
             s->sent_keys, s->sent_requests, s->sent_installs, s->send_failures, s->acks,
             s->acks_ok, s->acks_error, s->acks_stale, s->acks_foreign, s->csrs, s->certs_issued,
             s->csrs_refused, s->csrs_stale, s->csrs_waited, s->installs_waited, s->done, s->failed,
             s->retried, s->timeouts, s->alerts, s->invalid, claimed, retried);
}

/* ---- timers (called while Redis is connected) ---- */

static void timers(void *ctx, int64_t mono)
{
    rotation *r = ctx;
    if (mono >= r->next_send_ms) {
        bool any = false;
        rot_dispatch_send(r, &any);
        r->running_campaigns = any;
        r->next_send_ms = mono + (any ? r->cfg.send_interval_ms : r->cfg.scan_interval_ms);
    }
    if (r->wait_count > 0 && bc_redis_connected(&r->loop.cmd) && mono >= r->next_wait_check_ms) {
        r->next_wait_check_ms = mono + ROT_APPLIED_CHECK_MS;
        rot_identity_release(r);
    }
    if (bc_redis_connected(&r->loop.cmd) && mono >= r->next_scan_ms) {
        r->next_scan_ms = mono + r->cfg.scan_interval_ms;
        rot_dispatch_timeouts(r);
    }
}

static int64_t due_at(const void *ctx)
{
    const rotation *r = ctx;
    int64_t at = r->next_send_ms < r->next_scan_ms ? r->next_send_ms : r->next_scan_ms;
    if (r->wait_count > 0 && r->next_wait_check_ms < at)
        at = r->next_wait_check_ms;
    return at;
}

/* ---- setup ---- */

static bc_status load_keys(rotation *r, bc_error *err)
{
    bc_status st = bc_ca_load_command_key(r->cfg.command_key_file, &r->command_key, err);
    if (st != BC_OK)
        return st;
    return bc_ca_load(r->cfg.ca_cert_file, r->cfg.ca_key_file, &r->ca, err);
}

static const bc_consumer_loop_hooks hooks = {timers, due_at, activity, status_nums, log_stats};

static bc_status setup(rotation *r, bc_error *err)
{
    bc_status st = load_keys(r, err);
    if (st != BC_OK)
        return st;
    bc_consumer_loop_config lc = {
        BC_CONSUMER_LOOP_SETTINGS(r->cfg),
        .stream_count = ROT_STREAMS,
        .streams = {BC_STREAM_ACK, BC_STREAM_CSR},
        .handlers = {rot_acks_handle, rot_identity_csr},
    };
    bc_consumer_loop_names(&lc, r->cfg.redis_host, ROT_GROUP, r->cfg.instance,
                           ROT_STATUS_KEY_PREFIX);
    r->waits = calloc(ROT_INSTALL_WAITS_MAX, sizeof(*r->waits));
    if (r->waits == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the waiting installs");
    if ((st = bc_consumer_loop_init(&r->loop, &lc, &hooks, r, err)) != BC_OK)
        return st;
    r->next_send_ms = r->next_scan_ms = bc_clock_monotonic_ms();
    return BC_OK;
}

static void teardown(rotation *r)
{
    bc_consumer_loop_close(&r->loop);
    rot_identity_waits_free(r);
    EVP_PKEY_free(r->command_key);
    r->command_key = NULL;
    bc_ca_free(&r->ca);
}

int rotation_run(rotation *r)
{
    bc_error err;
    bc_error_clear(&err);
    if (setup(r, &err) != BC_OK) {
        log_errorx("cannot start: %s", err.text);
        teardown(r);
        return BC_EXIT_RUNTIME;
    }
    log_info("consuming %s and %s as key-rotation-%s (group %s); send_max_per_s=%" PRId64
             " reconnects_max_per_s=%" PRId64 " ack_timeout_s=%" PRId64,
             BC_STREAM_ACK, BC_STREAM_CSR, r->cfg.instance, ROT_GROUP, r->cfg.send_max_per_s,
             r->cfg.reconnects_max_per_s, r->cfg.ack_timeout_s);
    bc_consumer_loop_run(&r->loop);
    teardown(r);
    log_info("stopped");
    return BC_EXIT_OK;
}
