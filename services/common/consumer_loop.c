/*
 * consumer_loop.c - the poll() loop of a stream-consuming daemon
 * (consumer_loop.h).
 */
#include "common/consumer_loop.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/daemon.h"
#include "common/log.h"

#define LOOP_MAX_WAIT_MS 1000
#define STATUS_REFRESH_MS 1000

void bc_consumer_loop_redis_failed(bc_consumer_loop *l, const char *what, const bc_error *err)
{
    bc_redis_outage_failed(&l->cmd_failing, what, err);
}

void bc_consumer_loop_redis_ok(bc_consumer_loop *l)
{
    bc_redis_outage_over(&l->cmd_failing, l->cfg.redis.host, l->cfg.redis.port);
}

static void write_status(bc_consumer_loop *l, const char *state)
{
    if (!bc_redis_connected(&l->cmd))
        return;
    bc_status_num nums[BC_STATUS_HASH_MAX] = {
        {"pid", (int64_t)getpid()},
        {"since", l->started_ms},
        {"updated_at", bc_clock_now_ms()},
    };
    size_t n = 3;
    n += l->hooks.status(l->ctx, nums + n, BC_STATUS_HASH_MAX - n);
    bc_error err;
    bc_error_clear(&err);
    if (bc_status_hash_write(&l->cmd, l->cfg.status_key, state, nums, n, &err) != BC_OK) {
        bc_consumer_loop_redis_failed(l, "status", &err);
        return;
    }
    bc_consumer_loop_redis_ok(l);
}

static void timers(bc_consumer_loop *l)
{
    int64_t mono = bc_clock_monotonic_ms();
    if (bc_redis_connected(&l->cmd))
        l->hooks.timers(l->ctx, mono);
    bool status = false;
    if (mono >= l->next_stats_ms) {
        l->next_stats_ms = mono + l->cfg.stats_interval_s * 1000;
        l->hooks.log_stats(l->ctx);
        status = true;
    }
    if (mono >= l->next_status_ms) {
        l->next_status_ms = mono + STATUS_REFRESH_MS;
        uint64_t sum = l->hooks.activity(l->ctx);
        status = status || sum != l->status_sum;
        l->status_sum = sum;
    }
    if (status)
        write_status(l, "running");
}

static int64_t timers_due_in(const bc_consumer_loop *l)
{
    int64_t next = l->hooks.due_at(l->ctx);
    if (l->next_status_ms < next)
        next = l->next_status_ms;
    if (l->next_stats_ms < next)
        next = l->next_stats_ms;
    int64_t mono = bc_clock_monotonic_ms();
    return next > mono ? next - mono : 0;
}

static void keep_redis(bc_consumer_loop *l)
{
    if (bc_redis_connected(&l->cmd))
        return;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_connect(&l->cmd, &err) == BC_OK) {
        log_info("redis %s:%" PRId64 " connected", l->cfg.redis.host, (int64_t)l->cfg.redis.port);
        bc_consumer_loop_redis_ok(l);
        write_status(l, "running");
    } else {
        bc_consumer_loop_redis_failed(l, "connect", &err);
    }
}

/* The pause after a failed step: a Redis that answers LOADING keeps the
 * connection (no backoff of its own), so without it the loop would spin. */
static int64_t step_pause_ms(const bc_consumer_loop *l)
{
    int64_t retry = l->cfg.consumer.retry_delay_ms;
    int64_t ms = retry > l->cfg.redis.backoff_min_ms ? retry : l->cfg.redis.backoff_min_ms;
    return ms > 0 ? ms : 1;
}

static void step(bc_consumer_loop *l, size_t i, short revents)
{
    bc_stream_consumer *c = &l->consumers[i];
    int64_t mono = bc_clock_monotonic_ms();
    if (revents == 0 && mono < l->step_after_ms[i])
        return;
    bc_error err;
    bc_error_clear(&err);
    if (bc_stream_consumer_step(c, revents, NULL, &err) != BC_OK) {
        l->step_after_ms[i] = mono + step_pause_ms(l);
        if (!l->failing[i])
            log_warnx("%s: %s (quiet until it reads again)", c->cfg.stream, err.text);
        l->failing[i] = true;
        return;
    }
    if (l->failing[i] && bc_redis_connected(&l->links[i]) && c->group_ready) {
        log_info("%s: reading again", c->cfg.stream);
        l->failing[i] = false;
    }
}

void bc_consumer_loop_names(bc_consumer_loop_config *cfg, const char *redis_host, const char *group,
                            const char *instance, const char *status_prefix)
{
    snprintf(cfg->redis.host, sizeof(cfg->redis.host), "%s", redis_host);
    snprintf(cfg->consumer.group, sizeof(cfg->consumer.group), "%s", group);
    snprintf(cfg->consumer.consumer, sizeof(cfg->consumer.consumer), "%s-%s", group, instance);
    snprintf(cfg->status_key, sizeof(cfg->status_key), "%s%s", status_prefix, instance);
}

bc_status bc_consumer_loop_init(bc_consumer_loop *l, const bc_consumer_loop_config *cfg,
                                const bc_consumer_loop_hooks *hooks, void *ctx, bc_error *err)
{
    if (cfg->stream_count < 1 || cfg->stream_count > BC_LOOP_STREAMS_MAX)
        return bc_fail(err, BC_ERR_INVAL, "a consumer loop takes 1 to %d streams",
                       BC_LOOP_STREAMS_MAX);
    l->cfg = *cfg;
    l->hooks = *hooks;
    l->ctx = ctx;
    bc_status st = bc_redis_init(&l->cmd, &l->cfg.redis, err);
    if (st != BC_OK)
        return st;
    for (size_t i = 0; i < l->cfg.stream_count; i++) {
        if ((st = bc_redis_init(&l->links[i], &l->cfg.redis, err)) != BC_OK)
            return st;
        bc_stream_consumer_config cc = l->cfg.consumer;
        snprintf(cc.stream, sizeof(cc.stream), "%s", l->cfg.streams[i]);
        st = bc_stream_consumer_init(&l->consumers[i], &l->links[i], &cc, l->cfg.handlers[i], ctx,
                                     err);
        if (st != BC_OK)
            return st;
    }
    int64_t mono = bc_clock_monotonic_ms();
    l->started_ms = bc_clock_now_ms();
    l->next_status_ms = mono;
    l->next_stats_ms = mono + l->cfg.stats_interval_s * 1000;
    return BC_OK;
}

void bc_consumer_loop_close(bc_consumer_loop *l)
{
    for (size_t i = 0; i < BC_LOOP_STREAMS_MAX; i++)
        bc_redis_close(&l->links[i]);
    bc_redis_close(&l->cmd);
}

/* One poll() over the stop pipe and the consumers' outstanding reads. */
static void wait_and_step(bc_consumer_loop *l)
{
    struct pollfd pfd[BC_LOOP_STREAMS_MAX + 1];
    size_t owner[BC_LOOP_STREAMS_MAX + 1];
    nfds_t n = 0;
    pfd[n] = (struct pollfd){.fd = bc_daemon_stop_fd(), .events = POLLIN};
    owner[n++] = 0;
    int64_t wait = timers_due_in(l);
    if (!bc_redis_connected(&l->cmd) && bc_redis_retry_in_ms(&l->cmd) < wait)
        wait = bc_redis_retry_in_ms(&l->cmd);
    for (size_t i = 0; i < l->cfg.stream_count; i++) {
        int fd = bc_stream_consumer_fd(&l->consumers[i]);
        int64_t t = bc_stream_consumer_timeout_ms(&l->consumers[i]);
        int64_t paused = l->step_after_ms[i] - bc_clock_monotonic_ms();
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
    /* a read with its answer, or past its deadline (the step checks) */
    for (nfds_t k = 1; k < n; k++)
        step(l, owner[k], pfd[k].revents);
}

void bc_consumer_loop_run(bc_consumer_loop *l)
{
    while (!bc_daemon_stopping()) {
        keep_redis(l);
        for (size_t i = 0; i < l->cfg.stream_count; i++) {
            if (bc_stream_consumer_fd(&l->consumers[i]) < 0)
                step(l, i, 0);
        }
        if (bc_daemon_stopping())
            break;
        timers(l);
        wait_and_step(l);
    }
    l->hooks.log_stats(l->ctx);
    write_status(l, "stopped");
    bc_consumer_loop_close(l);
}
