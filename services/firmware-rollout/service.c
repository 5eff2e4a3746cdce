/*
 * service.c - one thread, one poll() loop over two stream consumers and
 * the stop pipe:
 *
 *   bodycam:stream:event ─┐ group "firmware-rollout", consumer
 *   bodycam:stream:ack   ─┘ firmware-rollout-<instance>, each on its own connection
 *        answers.c ──► rollouts (Redis)
 *   timers: offer pass   every offer_interval_ms while a rollout runs or
 *                        aborts, else every scan_interval_ms
 *           time pass    every scan_interval_ms: deadlines, late cameras, waves
 *           chunks       every scan_interval_ms: publish what is due, clear what ended
 *           status, statistics
 *
 * Status: HSET bodycam:firmware-rollout:<instance> state running|stopped,
 * pid, since, updated_at and the counters.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/ca.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/redis_status.h"
#include "firmware-rollout/fwrollout.h"

#define LOOP_MAX_WAIT_MS 1000
#define STATUS_REFRESH_MS 1000

static const char *const stream_names[FW_STREAMS] = {BC_STREAM_EVENT, BC_STREAM_ACK};
static const bc_stream_handler handlers[FW_STREAMS] = {fw_answers_event, fw_answers_ack};

void fw_redis_failed(fw_service *s, const char *what, const bc_error *err)
{
    bc_redis_outage_failed(&s->cmd_failing, what, err);
}

void fw_redis_ok(fw_service *s)
{
    bc_redis_outage_over(&s->cmd_failing, s->cfg.redis_host, s->cfg.redis_port);
}

static uint64_t activity(const fw_service *s)
{
    const fw_stats *t = &s->stats;
    return t->offered + t->events + t->acks + t->updated + t->failed + t->halted +
           t->waves_started + t->done + t->chunks_published + t->chunks_cleared;
}

static void write_status(fw_service *s, const char *state)
{
    if (!bc_redis_connected(&s->cmd))
        return;
    const fw_stats *t = &s->stats;
    char key[96];
    snprintf(key, sizeof(key), FW_STATUS_KEY_PREFIX "%s", s->cfg.instance);
    const bc_status_num nums[] = {
        {"pid", (int64_t)getpid()},
        {"since", s->started_ms},
        {"updated_at", bc_clock_now_ms()},
        {"offered", (int64_t)t->offered},
        {"events", (int64_t)t->events},
        {"acks", (int64_t)t->acks},
        {"updated", (int64_t)t->updated},
        {"failed", (int64_t)t->failed},
        {"rolled_back", (int64_t)t->rolled_back},
        {"reverted", (int64_t)t->reverted},
        {"halted", (int64_t)t->halted},
        {"waves_started", (int64_t)t->waves_started},
        {"done", (int64_t)t->done},
        {"alerts", (int64_t)t->alerts},
        {"chunks_published", (int64_t)t->chunks_published},
        {"chunks_cleared", (int64_t)t->chunks_cleared},
    };
    bc_error err;
    bc_error_clear(&err);
    if (bc_status_hash_write(&s->cmd, key, state, nums, sizeof(nums) / sizeof(nums[0]), &err) !=
        BC_OK) {
        fw_redis_failed(s, "status", &err);
        return;
    }
    fw_redis_ok(s);
}

static void log_stats(const fw_service *s)
{
    const fw_stats *t = &s->stats;
    log_info("stats | offered=%" PRIu64 " offer_failures=%" PRIu64 " events=%" PRIu64
             " acks=%" PRIu64 " updated=%" PRIu64 " failed=%" PRIu64 " rolled_back=%" PRIu64
             " reverted=%" PRIu64 " halted=%" PRIu64 " waves_started=%" PRIu64 " done=%" PRIu64
             " alerts=%" PRIu64 " chunks_published=%" PRIu64 " chunks_cleared=%" PRIu64
             " stale=%" PRIu64 " invalid=%" PRIu64,
             t->offered, t->offer_failures, t->events, t->acks, t->updated, t->failed,
             t->rolled_back, t->reverted, t->halted, t->waves_started, t->done, t->alerts,
             t->chunks_published, t->chunks_cleared, t->stale, t->invalid);
}

static void timers(fw_service *s)
{
    int64_t mono = bc_clock_monotonic_ms();
    if (bc_redis_connected(&s->cmd) && mono >= s->next_scan_ms) {
        s->next_scan_ms = mono + s->cfg.scan_interval_ms;
        fw_offers_tick(s);
        fw_chunks_pass(s);
    }
    if (bc_redis_connected(&s->cmd) && mono >= s->next_offer_ms) {
        bool any = false;
        fw_offers_pass(s, &any);
        s->offering = any;
        s->next_offer_ms = mono + (any ? s->cfg.offer_interval_ms : s->cfg.scan_interval_ms);
    }
    bool status = false;
    if (mono >= s->next_stats_ms) {
        s->next_stats_ms = mono + s->cfg.stats_interval_s * 1000;
        log_stats(s);
        status = true;
    }
    if (mono >= s->next_status_ms) {
        s->next_status_ms = mono + STATUS_REFRESH_MS;
        uint64_t sum = activity(s);
        status = status || sum != s->status_sum;
        s->status_sum = sum;
    }
    if (status)
        write_status(s, "running");
}

static int64_t timers_due_in(const fw_service *s)
{
    int64_t next = s->next_offer_ms;
    const int64_t others[] = {s->next_scan_ms, s->next_status_ms, s->next_stats_ms};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        if (others[i] < next)
            next = others[i];
    }
    int64_t mono = bc_clock_monotonic_ms();
    return next > mono ? next - mono : 0;
}

static void keep_redis(fw_service *s)
{
    if (bc_redis_connected(&s->cmd))
        return;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_connect(&s->cmd, &err) == BC_OK) {
        log_info("redis %s:%" PRId64 " connected", s->cfg.redis_host, s->cfg.redis_port);
        fw_redis_ok(s);
        write_status(s, "running");
    } else {
        fw_redis_failed(s, "connect", &err);
    }
}

static void step(fw_service *s, int i, short revents)
{
    bc_stream_consumer *c = &s->consumers[i];
    int64_t mono = bc_clock_monotonic_ms();
    if (revents == 0 && mono < s->step_after_ms[i])
        return;
    bc_error err;
    bc_error_clear(&err);
    if (bc_stream_consumer_step(c, revents, NULL, &err) != BC_OK) {
        int64_t pause = s->cfg.retry_delay_ms > s->cfg.backoff_min_ms ? s->cfg.retry_delay_ms
                                                                      : s->cfg.backoff_min_ms;
        s->step_after_ms[i] = mono + (pause > 0 ? pause : 1);
        if (!s->failing[i])
            log_warnx("%s: %s (quiet until it reads again)", c->cfg.stream, err.text);
        s->failing[i] = true;
        return;
    }
    if (s->failing[i] && bc_redis_connected(&s->links[i]) && c->group_ready) {
        log_info("%s: reading again", c->cfg.stream);
        s->failing[i] = false;
    }
}

static bc_status setup(fw_service *s, bc_error *err)
{
    bc_status st = bc_ca_load_key(s->cfg.command_key_file, &s->command_key, err);
    if (st != BC_OK)
        return st;
    if (EVP_PKEY_get_base_id(s->command_key) != EVP_PKEY_ED25519)
        return bc_fail(err, BC_ERR_INVAL, "command_key_file '%s' is not an Ed25519 key",
                       s->cfg.command_key_file);
    bc_redis_config rc;
    memset(&rc, 0, sizeof(rc));
    snprintf(rc.host, sizeof(rc.host), "%s", s->cfg.redis_host);
    rc.port = (int)s->cfg.redis_port;
    rc.timeout_ms = s->cfg.redis_timeout_ms;
    rc.backoff_min_ms = s->cfg.backoff_min_ms;
    rc.backoff_max_ms = s->cfg.backoff_max_ms;
    if ((st = bc_redis_init(&s->cmd, &rc, err)) != BC_OK)
        return st;
    for (int i = 0; i < FW_STREAMS; i++) {
        if ((st = bc_redis_init(&s->links[i], &rc, err)) != BC_OK)
            return st;
        bc_stream_consumer_config cc;
        memset(&cc, 0, sizeof(cc));
        snprintf(cc.stream, sizeof(cc.stream), "%s", stream_names[i]);
        snprintf(cc.group, sizeof(cc.group), "%s", FW_GROUP);
        snprintf(cc.consumer, sizeof(cc.consumer), "firmware-rollout-%s", s->cfg.instance);
        cc.batch = (size_t)s->cfg.batch;
        cc.block_ms = s->cfg.block_ms;
        cc.claim_idle_ms = s->cfg.claim_idle_ms;
        cc.claim_interval_ms = s->cfg.claim_interval_ms;
        cc.retry_delay_ms = s->cfg.retry_delay_ms;
        st = bc_stream_consumer_init(&s->consumers[i], &s->links[i], &cc, handlers[i], s, err);
        if (st != BC_OK)
            return st;
    }
    int64_t mono = bc_clock_monotonic_ms();
    s->started_ms = bc_clock_now_ms();
    s->next_offer_ms = s->next_scan_ms = s->next_status_ms = mono;
    s->next_stats_ms = mono + s->cfg.stats_interval_s * 1000;
    return BC_OK;
}

static void teardown(fw_service *s)
{
    for (int i = 0; i < FW_STREAMS; i++)
        bc_redis_close(&s->links[i]);
    bc_redis_close(&s->cmd);
    EVP_PKEY_free(s->command_key);
    s->command_key = NULL;
}

static void wait_and_step(fw_service *s)
{
    struct pollfd pfd[FW_STREAMS + 1];
    int owner[FW_STREAMS + 1];
    nfds_t n = 0;
    pfd[n] = (struct pollfd){.fd = bc_daemon_stop_fd(), .events = POLLIN};
    owner[n++] = -1;
    int64_t wait = timers_due_in(s);
    if (!bc_redis_connected(&s->cmd) && bc_redis_retry_in_ms(&s->cmd) < wait)
        wait = bc_redis_retry_in_ms(&s->cmd);
    for (int i = 0; i < FW_STREAMS; i++) {
        int fd = bc_stream_consumer_fd(&s->consumers[i]);
        int64_t t = bc_stream_consumer_timeout_ms(&s->consumers[i]);
        int64_t paused = s->step_after_ms[i] - bc_clock_monotonic_ms();
        if (fd < 0 && paused > t)
            t = paused;
        if (fd >= 0) {
            pfd[n] = (struct pollfd){.fd = fd, .events = POLLIN};
            owner[n++] = i;
        }
        if (t < wait)
            wait = t;
    }
    wait = wait > LOOP_MAX_WAIT_MS ? LOOP_MAX_WAIT_MS : wait < 0 ? 0 : wait;
    if (poll(pfd, n, (int)wait) < 0) {
        if (errno != EINTR)
            log_warn("poll");
        return;
    }
    for (nfds_t k = 1; k < n; k++)
        step(s, owner[k], pfd[k].revents);
}

int fw_service_run(fw_service *s)
{
    bc_error err;
    bc_error_clear(&err);
    if (setup(s, &err) != BC_OK) {
        log_errorx("cannot start: %s", err.text);
        teardown(s);
        return BC_EXIT_RUNTIME;
    }
    log_info("consuming %s and %s as firmware-rollout-%s (group %s); offer_max_per_s=%" PRId64
             " chunk_refresh_s=%" PRId64,
             BC_STREAM_EVENT, BC_STREAM_ACK, s->cfg.instance, FW_GROUP, s->cfg.offer_max_per_s,
             s->cfg.chunk_refresh_s);
    while (!bc_daemon_stopping()) {
        keep_redis(s);
        for (int i = 0; i < FW_STREAMS; i++) {
            if (bc_stream_consumer_fd(&s->consumers[i]) < 0)
                step(s, i, 0);
        }
        if (bc_daemon_stopping())
            break;
        timers(s);
        wait_and_step(s);
    }
    log_stats(s);
    write_status(s, "stopped");
    teardown(s);
    log_info("stopped");
    return BC_EXIT_OK;
}
