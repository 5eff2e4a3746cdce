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
 * while they move, every statistics period and at the stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/redis_status.h"
#include "key-rotation/rotation.h"

#define LOOP_MAX_WAIT_MS 1000
#define STATUS_REFRESH_MS 1000

static const char *const stream_names[ROT_STREAMS] = {BC_STREAM_ACK, BC_STREAM_CSR};
static const bc_stream_handler handlers[ROT_STREAMS] = {rot_acks_handle, rot_identity_csr};

void rot_redis_failed(rotation *r, const char *what, const bc_error *err)
{
    bc_redis_outage_failed(&r->cmd_failing, what, err);
}

void rot_redis_ok(rotation *r)
{
    bc_redis_outage_over(&r->cmd_failing, r->cfg.redis_host, r->cfg.redis_port);
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
    bc_status st = bc_campaign_finish(&r->cmd, campaign_id, device, cmd_id, outcome, detail, &retry,
                                      bc_clock_now_ms(), &after, &applied, &err);
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

static uint64_t activity(const rotation *r)
{
    const rot_stats *s = &r->stats;
    return s->sent_keys + s->sent_requests + s->sent_installs + s->acks + s->csrs + s->done +
           s->failed + s->retried + s->timeouts + s->alerts;
}

static void write_status(rotation *r, const char *state)
{
    if (!bc_redis_connected(&r->cmd))
        return;
    const rot_stats *s = &r->stats;
    char key[96];
    snprintf(key, sizeof(key), ROT_STATUS_KEY_PREFIX "%s", r->cfg.instance);
    const bc_status_num nums[] = {
        {"pid", (int64_t)getpid()},
        {"since", r->started_ms},
        {"updated_at", bc_clock_now_ms()},
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
    bc_error err;
    bc_error_clear(&err);
    if (bc_status_hash_write(&r->cmd, key, state, nums, sizeof(nums) / sizeof(nums[0]), &err) !=
        BC_OK) {
        rot_redis_failed(r, "status", &err);
        return;
    }
    rot_redis_ok(r);
}

static void log_stats(const rotation *r)
{
    const rot_stats *s = &r->stats;
    uint64_t claimed = 0, retried = 0;
    for (int i = 0; i < ROT_STREAMS; i++) {
        claimed += r->consumers[i].stats.claimed;
        retried += r->consumers[i].stats.retried;
    }
    log_info("stats | sent_keys=%" PRIu64 " sent_requests=%" PRIu64 " sent_installs=%" PRIu64
             " send_failures=%" PRIu64 " acks=%" PRIu64 " acks_ok=%" PRIu64 " acks_error=%" PRIu64
             " acks_stale=%" PRIu64 " acks_foreign=%" PRIu64 " csrs=%" PRIu64
             " certs_issued=%" PRIu64 " csrs_refused=%" PRIu64 " csrs_stale=%" PRIu64
             " csrs_waited=%" PRIu64 " done=%" PRIu64 " failed=%" PRIu64 " retried=%" PRIu64
             " timeouts=%" PRIu64 " alerts=%" PRIu64 " invalid=%" PRIu64 " claimed=%" PRIu64
             " entries_retried=%" PRIu64,
             s->sent_keys, s->sent_requests, s->sent_installs, s->send_failures, s->acks,
             s->acks_ok, s->acks_error, s->acks_stale, s->acks_foreign, s->csrs, s->certs_issued,
             s->csrs_refused, s->csrs_stale, s->csrs_waited, s->done, s->failed, s->retried,
             s->timeouts, s->alerts, s->invalid, claimed, retried);
}

/* ---- timers ---- */

static void timers(rotation *r)
{
    int64_t mono = bc_clock_monotonic_ms();
    if (bc_redis_connected(&r->cmd) && mono >= r->next_send_ms) {
        bool any = false;
        rot_dispatch_send(r, &any);
        r->running_campaigns = any;
        r->next_send_ms = mono + (any ? r->cfg.send_interval_ms : r->cfg.scan_interval_ms);
    }
    if (bc_redis_connected(&r->cmd) && mono >= r->next_scan_ms) {
        r->next_scan_ms = mono + r->cfg.scan_interval_ms;
        rot_dispatch_timeouts(r);
    }
    bool status = false;
    if (mono >= r->next_stats_ms) {
        r->next_stats_ms = mono + r->cfg.stats_interval_s * 1000;
        log_stats(r);
        status = true;
    }
    if (mono >= r->next_status_ms) {
        r->next_status_ms = mono + STATUS_REFRESH_MS;
        uint64_t sum = activity(r);
        status = status || sum != r->status_sum;
        r->status_sum = sum;
    }
    if (status)
        write_status(r, "running");
}

static int64_t timers_due_in(const rotation *r)
{
    int64_t mono = bc_clock_monotonic_ms();
    int64_t next = r->next_send_ms;
    if (r->next_scan_ms < next)
        next = r->next_scan_ms;
    if (r->next_status_ms < next)
        next = r->next_status_ms;
    if (r->next_stats_ms < next)
        next = r->next_stats_ms;
    return next > mono ? next - mono : 0;
}

/* ---- connections and consumers ---- */

static void keep_redis(rotation *r)
{
    if (bc_redis_connected(&r->cmd))
        return;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_connect(&r->cmd, &err) == BC_OK) {
        log_info("redis %s:%" PRId64 " connected", r->cfg.redis_host, r->cfg.redis_port);
        rot_redis_ok(r);
        write_status(r, "running");
    } else {
        rot_redis_failed(r, "connect", &err);
    }
}

/* The pause after a failed step: a Redis that answers LOADING keeps the
 * connection (no backoff of its own), so without it the loop would spin. */
static int64_t step_pause_ms(const rotation *r)
{
    int64_t ms = r->cfg.retry_delay_ms > r->cfg.backoff_min_ms ? r->cfg.retry_delay_ms
                                                               : r->cfg.backoff_min_ms;
    return ms > 0 ? ms : 1;
}

static void step(rotation *r, int i, short revents)
{
    bc_stream_consumer *c = &r->consumers[i];
    int64_t mono = bc_clock_monotonic_ms();
    if (revents == 0 && mono < r->step_after_ms[i])
        return;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_stream_consumer_step(c, revents, NULL, &err);
    if (st != BC_OK) {
        r->step_after_ms[i] = mono + step_pause_ms(r);
        if (!r->failing[i])
            log_warnx("%s: %s (quiet until it reads again)", c->cfg.stream, err.text);
        r->failing[i] = true;
        return;
    }
    if (r->failing[i] && bc_redis_connected(&r->links[i]) && c->group_ready) {
        log_info("%s: reading again", c->cfg.stream);
        r->failing[i] = false;
    }
}

static bc_status load_keys(rotation *r, bc_error *err)
{
    bc_status st = bc_ca_load_key(r->cfg.command_key_file, &r->command_key, err);
    if (st != BC_OK)
        return st;
    if (EVP_PKEY_get_base_id(r->command_key) != EVP_PKEY_ED25519)
        return bc_fail(err, BC_ERR_INVAL, "command_key_file '%s' is not an Ed25519 key",
                       r->cfg.command_key_file);
    return bc_ca_load(r->cfg.ca_cert_file, r->cfg.ca_key_file, &r->ca, err);
}

static bc_status setup(rotation *r, bc_error *err)
{
    bc_status st = load_keys(r, err);
    if (st != BC_OK)
        return st;
    bc_redis_config rc;
    memset(&rc, 0, sizeof(rc));
    snprintf(rc.host, sizeof(rc.host), "%s", r->cfg.redis_host);
    rc.port = (int)r->cfg.redis_port;
    rc.timeout_ms = r->cfg.redis_timeout_ms;
    rc.backoff_min_ms = r->cfg.backoff_min_ms;
    rc.backoff_max_ms = r->cfg.backoff_max_ms;
    if ((st = bc_redis_init(&r->cmd, &rc, err)) != BC_OK)
        return st;
    for (int i = 0; i < ROT_STREAMS; i++) {
        if ((st = bc_redis_init(&r->links[i], &rc, err)) != BC_OK)
            return st;
        bc_stream_consumer_config cc;
        memset(&cc, 0, sizeof(cc));
        snprintf(cc.stream, sizeof(cc.stream), "%s", stream_names[i]);
        snprintf(cc.group, sizeof(cc.group), "%s", ROT_GROUP);
        snprintf(cc.consumer, sizeof(cc.consumer), "key-rotation-%s", r->cfg.instance);
        cc.batch = (size_t)r->cfg.batch;
        cc.block_ms = r->cfg.block_ms;
        cc.claim_idle_ms = r->cfg.claim_idle_ms;
        cc.claim_interval_ms = r->cfg.claim_interval_ms;
        cc.retry_delay_ms = r->cfg.retry_delay_ms;
        st = bc_stream_consumer_init(&r->consumers[i], &r->links[i], &cc, handlers[i], r, err);
        if (st != BC_OK)
            return st;
    }
    int64_t mono = bc_clock_monotonic_ms();
    r->started_ms = bc_clock_now_ms();
    r->next_send_ms = mono;
    r->next_scan_ms = mono;
    r->next_stats_ms = mono + r->cfg.stats_interval_s * 1000;
    r->next_status_ms = mono;
    return BC_OK;
}

static void teardown(rotation *r)
{
    for (int i = 0; i < ROT_STREAMS; i++)
        bc_redis_close(&r->links[i]);
    bc_redis_close(&r->cmd);
    EVP_PKEY_free(r->command_key);
    r->command_key = NULL;
    bc_ca_free(&r->ca);
}

/* One poll() over the stop pipe and the consumers' outstanding reads. */
static void wait_and_step(rotation *r)
{
    struct pollfd pfd[ROT_STREAMS + 1];
    int owner[ROT_STREAMS + 1];
    nfds_t n = 0;
    pfd[n] = (struct pollfd){.fd = bc_daemon_stop_fd(), .events = POLLIN};
    owner[n++] = -1;
    int64_t wait = timers_due_in(r);
    if (!bc_redis_connected(&r->cmd) && bc_redis_retry_in_ms(&r->cmd) < wait)
        wait = bc_redis_retry_in_ms(&r->cmd);
    for (int i = 0; i < ROT_STREAMS; i++) {
        int fd = bc_stream_consumer_fd(&r->consumers[i]);
        int64_t t = bc_stream_consumer_timeout_ms(&r->consumers[i]);
        int64_t paused = r->step_after_ms[i] - bc_clock_monotonic_ms();
        if (fd < 0 && paused > t)
            t = paused;
        if (fd >= 0) {
            pfd[n] = (struct pollfd){.fd = fd, .events = POLLIN};
            owner[n++] = i;
        }
        if (t < wait)
            wait = t;
    }
    if (wait > LOOP_MAX_WAIT_MS)
        wait = LOOP_MAX_WAIT_MS;
    if (wait < 0)
        wait = 0;
    int rc = poll(pfd, n, (int)wait);
    if (rc < 0) {
        if (errno != EINTR)
            log_warn("poll");
        return;
    }
    /* a read with its answer, or past its deadline (the step checks) */
    for (nfds_t k = 1; k < n; k++)
        step(r, owner[k], pfd[k].revents);
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
    while (!bc_daemon_stopping()) {
        keep_redis(r);
        for (int i = 0; i < ROT_STREAMS; i++) {
            if (bc_stream_consumer_fd(&r->consumers[i]) < 0)
                step(r, i, 0);
        }
        if (bc_daemon_stopping())
            break;
        timers(r);
        wait_and_step(r);
    }
    log_stats(r);
    write_status(r, "stopped");
    teardown(r);
    log_info("stopped");
    return BC_EXIT_OK;
}
