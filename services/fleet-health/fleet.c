/*
 * fleet.c - one thread, one poll() loop over four stream consumers and the
 * stop pipe.
 *
 *   bodycam:stream:conn   ─┐
 *   bodycam:stream:state  ─┼─ group "fleet-health", consumer
 *   bodycam:stream:health ─┤  fleet-health-<instance>, each on its own
 *   bodycam:stream:event  ─┘  connection (its blocking read lives there)
 *                              │ handler: record.c, one pipeline per batch on
 *                              ▼ the command connection
 *        bodycam:camera:<id>, hourly aggregates, alerts ─► bodycam:stream:outbox
 *
 * One pass of the loop: reconnect the command connection when its backoff
 * allows; one step of every consumer that has no read outstanding (its own
 * pending entries first, then entries a dead consumer left for
 * claim_idle_ms, then a blocking read for new ones); the timers (scan,
 * full pass, summary, status, statistics); poll(); a step of every
 * consumer whose read has an answer.
 *
 * A consumer is "caught up" while its blocking read has been outstanding
 * for a moment (Redis answers a read at once when entries wait) or its
 * last batch was not full; the missed-health scan waits until all four
 * are, so a backlog after a restart is not taken for silent cameras.
 *
 * Status: HSET bodycam:fleet-health:<instance> state running|stopped, pid,
 * since, updated_at and the counters - at start, at most once a second
 * while they move, every statistics period and at the stop; the stack
 * runner's readiness probe reads it.
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
#include "fleet-health/fleet.h"

#define LOOP_MAX_WAIT_MS 1000
#define STATUS_REFRESH_MS 1000
#define CAUGHT_UP_AFTER_MS 20 /* a blocking read unanswered this long: nothing waits */

static const char *const stream_names[FH_STREAMS] = {BC_STREAM_CONN, BC_STREAM_STATE,
                                                     BC_STREAM_HEALTH, BC_STREAM_EVENT};

void fleet_redis_failed(fleet *f, const char *what, const bc_error *err)
{
    bc_redis_outage_failed(&f->cmd_failing, what, err);
}

void fleet_redis_ok(fleet *f)
{
    bc_redis_outage_over(&f->cmd_failing, f->cfg.redis_host, f->cfg.redis_port);
}

/* ---- status and statistics ---- */

static uint64_t processed(const fleet *f)
{
    uint64_t n = 0;
    for (int i = 0; i < FH_STREAMS; i++)
        n += f->stats.by_kind[i];
    return n;
}

static void write_status(fleet *f, const char *state)
{
    if (!bc_redis_connected(&f->cmd))
        return;
    char key[96];
    uint64_t nclaimed = 0;
    for (int i = 0; i < FH_STREAMS; i++)
        nclaimed += f->consumers[i].stats.claimed;
    snprintf(key, sizeof(key), FH_STATUS_KEY_PREFIX "%s", f->cfg.instance);
    const bc_status_num nums[] = {
        {"pid", (int64_t)getpid()},
        {"since", f->started_ms},
        {"updated_at", bc_clock_now_ms()},
        {"processed", (int64_t)processed(f)},
        {"applied", (int64_t)f->stats.applied},
        {"duplicates", (int64_t)f->stats.duplicates},
        {"stale", (int64_t)f->stats.stale},
        {"invalid", (int64_t)(f->stats.invalid + f->stats.failed)},
        {"raised", (int64_t)f->stats.raised},
        {"cleared", (int64_t)f->stats.cleared},
        {"summaries", (int64_t)f->stats.summaries},
        {"offline_missed_health", (int64_t)f->stats.offline_missed},
        {"claimed", (int64_t)nclaimed},
    };
    bc_error err;
    bc_error_clear(&err);
    if (bc_status_hash_write(&f->cmd, key, state, nums, sizeof(nums) / sizeof(nums[0]), &err) !=
        BC_OK) {
        fleet_redis_failed(f, "status", &err);
        return;
    }
    fleet_redis_ok(f);
}

static void log_stats(fleet *f)
{
    const fh_stats *s = &f->stats;
    uint64_t claimed = 0, retried = 0;
    for (int i = 0; i < FH_STREAMS; i++) {
        claimed += f->consumers[i].stats.claimed;
        retried += f->consumers[i].stats.retried;
    }
    log_info("stats | conn=%" PRIu64 " state=%" PRIu64 " health=%" PRIu64 " event=%" PRIu64
             " applied=%" PRIu64 " duplicates=%" PRIu64 " stale=%" PRIu64 " invalid=%" PRIu64
             " failed=%" PRIu64 " raised=%" PRIu64 " cleared=%" PRIu64 " summaries=%" PRIu64
             " offline_missed_health=%" PRIu64 " claimed=%" PRIu64 " retried=%" PRIu64,
             s->by_kind[0], s->by_kind[1], s->by_kind[2], s->by_kind[3], s->applied, s->duplicates,
             s->stale, s->invalid, s->failed, s->raised, s->cleared, s->summaries,
             s->offline_missed, claimed, retried);
}

static bool caught_up(const fleet *f)
{
    for (int i = 0; i < FH_STREAMS; i++) {
        if (f->backlog[i])
            return false;
    }
    return true;
}

static void timers(fleet *f)
{
    int64_t mono = bc_clock_monotonic_ms();
    if (mono >= f->next_scan_ms && caught_up(f)) {
        f->next_scan_ms = mono + f->cfg.scan_interval_ms;
        fh_scan_run(f);
    }
    if (!f->full_active && mono >= f->next_full_scan_ms && caught_up(f)) {
        f->next_full_scan_ms = mono + f->cfg.full_scan_interval_s * 1000;
        snprintf(f->full_cursor, sizeof(f->full_cursor), "0");
        f->full_active = true;
    }
    if (f->full_active)
        fh_scan_full(f);
    fh_summary_tick(f, false);
    bool status = false;
    if (mono >= f->next_stats_ms) {
        f->next_stats_ms = mono + f->cfg.stats_interval_s * 1000;
        log_stats(f);
        status = true;
    }
    if (mono >= f->next_status_ms) {
        f->next_status_ms = mono + STATUS_REFRESH_MS;
        uint64_t sum = processed(f) + f->stats.raised + f->stats.cleared + f->stats.summaries;
        status = status || sum != f->status_sum;
        f->status_sum = sum;
    }
    if (status)
        write_status(f, "running");
}

static int64_t timers_due_in(const fleet *f)
{
    int64_t mono = bc_clock_monotonic_ms();
    /* The scan waits for the consumers to catch up (a step wakes the loop
     * then); counting an overdue scan here would make poll() spin while
     * Redis is away. */
    int64_t next = caught_up(f) ? f->next_scan_ms : mono + LOOP_MAX_WAIT_MS;
    if (f->next_status_ms < next)
        next = f->next_status_ms;
    if (f->next_summary_ms < next)
        next = f->next_summary_ms;
    int64_t soon = f->last_summary_ms + f->cfg.summary_min_interval_ms;
    if (f->summary_dirty && soon < next)
        next = soon;
    if (f->full_active)
        next = mono;
    return next > mono ? next - mono : 0;
}

/* ---- connections ---- */

static void keep_redis(fleet *f)
{
    if (bc_redis_connected(&f->cmd))
        return;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_connect(&f->cmd, &err) == BC_OK) {
        log_info("redis %s:%" PRId64 " connected", f->cfg.redis_host, f->cfg.redis_port);
        f->summary_dirty = true;
        write_status(f, "running");
    } else {
        fleet_redis_failed(f, "connect", &err);
    }
}

static void track_backlog(fleet *f, int i, size_t n)
{
    const bc_stream_consumer *c = &f->consumers[i];
    if (n >= c->cfg.batch || c->pending_pass) {
        f->backlog[i] = true;
        return;
    }
    if (n > 0) {
        f->backlog[i] = false;
        return;
    }
    int64_t sent = c->read_deadline_ms - c->cfg.block_ms - f->links[i].cfg.timeout_ms;
    if (c->reading && bc_clock_monotonic_ms() - sent >= CAUGHT_UP_AFTER_MS)
        f->backlog[i] = false;
}

/* The pause after a failed step: a Redis that answers LOADING keeps the
 * connection (no backoff of its own), so without it the loop would spin. */
static int64_t step_pause_ms(const fleet *f)
{
    int64_t ms = f->cfg.retry_delay_ms > f->cfg.backoff_min_ms ? f->cfg.retry_delay_ms
                                                               : f->cfg.backoff_min_ms;
    return ms > 0 ? ms : 1;
}

static void step(fleet *f, int i, short revents)
{
    bc_stream_consumer *c = &f->consumers[i];
    int64_t mono = bc_clock_monotonic_ms();
    if (revents == 0 && mono < f->step_after_ms[i])
        return;
    bc_error err;
    bc_error_clear(&err);
    size_t n = 0;
    bc_status st = bc_stream_consumer_step(c, revents, &n, &err);
    if (f->nqueued > 0) /* the batch's scripts: replies, alert steps, XACK */
        fh_record_flush(f, i);
    if (st != BC_OK) {
        f->backlog[i] = true;
        f->step_after_ms[i] = mono + step_pause_ms(f);
        if (!f->failing[i])
            log_warnx("%s: %s (quiet until it reads again)", c->cfg.stream, err.text);
        f->failing[i] = true;
        return;
    }
    if (f->failing[i] && bc_redis_connected(&f->links[i]) && c->group_ready) {
        log_info("%s: reading again", c->cfg.stream);
        f->failing[i] = false;
    }
    track_backlog(f, i, n);
}

static bc_status setup(fleet *f, bc_error *err)
{
    bc_status st = fh_scripts_init(err);
    if (st != BC_OK)
        return st;
    f->queued_cap = (size_t)f->cfg.batch;
    f->queued = calloc(f->queued_cap, sizeof(*f->queued));
    if (f->queued == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for a batch of %zu entries", f->queued_cap);
    bc_redis_config rc;
    memset(&rc, 0, sizeof(rc));
    snprintf(rc.host, sizeof(rc.host), "%s", f->cfg.redis_host);
    rc.port = (int)f->cfg.redis_port;
    rc.timeout_ms = f->cfg.redis_timeout_ms;
    rc.backoff_min_ms = f->cfg.backoff_min_ms;
    rc.backoff_max_ms = f->cfg.backoff_max_ms;
    st = bc_redis_init(&f->cmd, &rc, err);
    if (st != BC_OK)
        return st;
    for (int i = 0; i < FH_STREAMS; i++) {
        st = bc_redis_init(&f->links[i], &rc, err);
        if (st != BC_OK)
            return st;
        bc_stream_consumer_config cc;
        memset(&cc, 0, sizeof(cc));
        snprintf(cc.stream, sizeof(cc.stream), "%s", stream_names[i]);
        snprintf(cc.group, sizeof(cc.group), "%s", FH_GROUP);
        snprintf(cc.consumer, sizeof(cc.consumer), "fleet-health-%s", f->cfg.instance);
        cc.batch = (size_t)f->cfg.batch;
        cc.block_ms = f->cfg.block_ms;
        cc.claim_idle_ms = f->cfg.claim_idle_ms;
        cc.claim_interval_ms = f->cfg.claim_interval_ms;
        cc.retry_delay_ms = f->cfg.retry_delay_ms;
        st = bc_stream_consumer_init(&f->consumers[i], &f->links[i], &cc, fh_record_handle, f, err);
        if (st != BC_OK)
            return st;
        f->backlog[i] = true;
    }
    int64_t mono = bc_clock_monotonic_ms();
    f->started_ms = bc_clock_now_ms();
    f->next_scan_ms = mono;
    f->next_full_scan_ms = mono + f->cfg.full_scan_interval_s * 1000;
    f->next_stats_ms = mono + f->cfg.stats_interval_s * 1000;
    f->next_status_ms = mono;
    f->next_summary_ms = mono;
    f->last_summary_ms = mono - f->cfg.summary_min_interval_ms;
    f->summary_dirty = true;
    snprintf(f->full_cursor, sizeof(f->full_cursor), "0");
    return BC_OK;
}

static void teardown(fleet *f)
{
    for (int i = 0; i < FH_STREAMS; i++)
        bc_redis_close(&f->links[i]);
    bc_redis_close(&f->cmd);
    free(f->queued);
    f->queued = NULL;
}

int fleet_run(fleet *f)
{
    bc_error err;
    bc_error_clear(&err);
    if (setup(f, &err) != BC_OK) {
        log_errorx("cannot start: %s", err.text);
        return BC_EXIT_RUNTIME;
    }
    log_info("consuming conn, state, health and event as fleet-health-%s (group %s); offline "
             "after %" PRId64 " s of silence",
             f->cfg.instance, FH_GROUP, fh_offline_after_ms(&f->cfg) / 1000);
    while (!bc_daemon_stopping()) {
        keep_redis(f);
        for (int i = 0; i < FH_STREAMS; i++) {
            if (bc_stream_consumer_fd(&f->consumers[i]) < 0)
                step(f, i, 0);
        }
        timers(f);

        struct pollfd pfd[FH_STREAMS + 1];
        int owner[FH_STREAMS + 1];
        nfds_t n = 0;
        pfd[n] = (struct pollfd){.fd = bc_daemon_stop_fd(), .events = POLLIN};
        owner[n++] = -1;
        int64_t wait = timers_due_in(f);
        if (!bc_redis_connected(&f->cmd) && bc_redis_retry_in_ms(&f->cmd) < wait)
            wait = bc_redis_retry_in_ms(&f->cmd);
        for (int i = 0; i < FH_STREAMS; i++) {
            int fd = bc_stream_consumer_fd(&f->consumers[i]);
            int64_t t = bc_stream_consumer_timeout_ms(&f->consumers[i]);
            int64_t paused = f->step_after_ms[i] - bc_clock_monotonic_ms();
            if (fd < 0 && paused > t)
                t = paused;
            if (fd >= 0) {
                pfd[n] = (struct pollfd){.fd = fd, .events = POLLIN};
                owner[n++] = i;
                if (f->backlog[i] && t > CAUGHT_UP_AFTER_MS)
                    t = CAUGHT_UP_AFTER_MS; /* come back to see it caught up */
            }
            if (t < wait)
                wait = t;
        }
        if (wait > LOOP_MAX_WAIT_MS)
            wait = LOOP_MAX_WAIT_MS;
        if (wait < 0)
            wait = 0;
        int rc = poll(pfd, n, (int)wait);
        if (rc < 0 && errno != EINTR) {
            log_warn("poll");
            continue;
        }
        for (nfds_t k = 1; rc > 0 && k < n; k++) {
            if (pfd[k].revents != 0)
                step(f, owner[k], pfd[k].revents);
            else if (owner[k] >= 0)
                step(f, owner[k], 0); /* read deadline, caught-up check */
        }
        if (rc == 0) {
            for (nfds_t k = 1; k < n; k++)
                step(f, owner[k], 0);
        }
    }
    log_stats(f);
    write_status(f, "stopped");
    teardown(f);
    log_info("stopped");
    return BC_EXIT_OK;
}
