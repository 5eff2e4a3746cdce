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
 * pid, since, updated_at and the counters. The loop, the connections and
 * the status hash are common/consumer_loop.h's; this file adds the timers
 * and the counters.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/ca.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "common/log.h"
#include "firmware-rollout/fwrollout.h"

void fw_redis_failed(fw_service *s, const char *what, const bc_error *err)
{
    bc_consumer_loop_redis_failed(&s->loop, what, err);
}

void fw_redis_ok(fw_service *s)
{
    bc_consumer_loop_redis_ok(&s->loop);
}

static uint64_t activity(const void *ctx)
{
    const fw_stats *t = &((const fw_service *)ctx)->stats;
    return t->offered + t->events + t->acks + t->updated + t->failed + t->halted +
           t->waves_started + t->done + t->chunks_published + t->chunks_cleared;
}

static size_t status_nums(const void *ctx, bc_status_num *nums, size_t max)
{
    const fw_stats *t = &((const fw_service *)ctx)->stats;
    const bc_status_num mine[] = {
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
    size_t n = sizeof(mine) / sizeof(mine[0]);
    n = n < max ? n : max;
    memcpy(nums, mine, n * sizeof(mine[0]));
    return n;
}

static void log_stats(const void *ctx)
{
    const fw_stats *t = &((const fw_service *)ctx)->stats;
    log_info("stats | offered=%" PRIu64 " offer_failures=%" PRIu64 " events=%" PRIu64
             " acks=%" PRIu64 " updated=%" PRIu64 " failed=%" PRIu64 " rolled_back=%" PRIu64
             " reverted=%" PRIu64 " halted=%" PRIu64 " waves_started=%" PRIu64 " done=%" PRIu64
             " alerts=%" PRIu64 " chunks_published=%" PRIu64 " chunks_cleared=%" PRIu64
             " stale=%" PRIu64 " invalid=%" PRIu64,
             t->offered, t->offer_failures, t->events, t->acks, t->updated, t->failed,
             t->rolled_back, t->reverted, t->halted, t->waves_started, t->done, t->alerts,
             t->chunks_published, t->chunks_cleared, t->stale, t->invalid);
}

/* Called while Redis is connected. */
static void timers(void *ctx, int64_t mono)
{
    fw_service *s = ctx;
    if (mono >= s->next_scan_ms) {
        s->next_scan_ms = mono + s->cfg.scan_interval_ms;
        fw_offers_tick(s);
        fw_chunks_pass(s);
    }
    if (bc_redis_connected(&s->loop.cmd) && mono >= s->next_offer_ms) {
        bool any = false;
        fw_offers_pass(s, &any);
        s->offering = any;
        s->next_offer_ms = mono + (any ? s->cfg.offer_interval_ms : s->cfg.scan_interval_ms);
    }
}

static int64_t due_at(const void *ctx)
{
    const fw_service *s = ctx;
    return s->next_offer_ms < s->next_scan_ms ? s->next_offer_ms : s->next_scan_ms;
}

static const bc_consumer_loop_hooks hooks = {timers, due_at, activity, status_nums, log_stats};

static bc_status setup(fw_service *s, bc_error *err)
{
    bc_status st = bc_ca_load_command_key(s->cfg.command_key_file, &s->command_key, err);
    if (st != BC_OK)
        return st;
    bc_consumer_loop_config lc = {
        BC_CONSUMER_LOOP_SETTINGS(s->cfg),
        .stream_count = FW_STREAMS,
        .streams = {BC_STREAM_EVENT, BC_STREAM_ACK},
        .handlers = {fw_answers_event, fw_answers_ack},
    };
    bc_consumer_loop_names(&lc, s->cfg.redis_host, FW_GROUP, s->cfg.instance, FW_STATUS_KEY_PREFIX);
    if ((st = bc_consumer_loop_init(&s->loop, &lc, &hooks, s, err)) != BC_OK)
        return st;
    s->next_offer_ms = s->next_scan_ms = bc_clock_monotonic_ms();
    return BC_OK;
}

static void teardown(fw_service *s)
{
    bc_consumer_loop_close(&s->loop);
    EVP_PKEY_free(s->command_key);
    s->command_key = NULL;
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
    bc_consumer_loop_run(&s->loop);
    teardown(s);
    log_info("stopped");
    return BC_EXIT_OK;
}
