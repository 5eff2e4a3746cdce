/*
 * gateway.c - one thread, one poll() loop over the MQTT socket, the
 * outbox's blocking read and the stop pipe.
 *
 * One pass of the loop, in this order (the order is what keeps the
 * guarantees of README.md):
 *
 *   1. Redis command connection: reconnect when its backoff allows.
 *   2. MQTT: open a session when none and its backoff allows - only when
 *      Redis answers PING, so no message is taken that cannot be stored.
 *   3. XACK the outbox entries the broker confirmed.
 *   4. Outbox: one consumer step if a batch fits in the window.
 *   5. Write what is queued for the broker (publishes; PUBACKs are never
 *      pending here, see 7).
 *   6. Tear down a lost session (without writing), status, statistics.
 *   7. poll(); on MQTT input: read while input is waiting (messages ->
 *      XADD pipeline; up to READ_PASSES_MAX packets), then read every XADD
 *      reply, and only if all were stored write (PUBACKs); else drop the
 *      session unwritten. On outbox input: consumer step.
 *
 * Throughput (bench/bench_vault.py): libmosquitto's loop_read takes one
 * packet per call, so one packet per pass would cost a Redis round trip
 * and a PUBACK write per message; reading all that is waiting first makes
 * one round trip per batch (at most receive_maximum QoS 1 messages are
 * unacknowledged, so a batch is bounded by the broker too). And glibc gives
 * the top of the heap back to the kernel once 128 KiB of it is free: with
 * ~44 KB upload messages copied by libmosquitto, proto and hiredis every
 * batch grew and shrank the heap, and a third of the gateway's CPU went to
 * page faults and brk. The trim threshold is raised (HEAP_KEEP_BYTES) so
 * the heap stays at its working size.
 *
 * Callbacks from libmosquitto run inside step 7's read and never use the
 * command connection (its pipeline may hold XADDs): they set flags
 * (status_dirty) that the loop acts on.
 *
 * Status: HSET bodycam:gateway:<instance> state online|offline|stopped,
 * pid, since, updated_at and the counters - on every state change, at
 * most once a second while counters move, and every statistics period;
 * the stack runner's readiness probe reads it.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>

#include "common/clock.h"
#include "common/daemon.h"
#include "common/log.h"
#include "gateway/gateway.h"

#define STATUS_KEY_PREFIX "bodycam:gateway:"
#define LOOP_MAX_WAIT_MS 1000
#define STATUS_REFRESH_MS 1000
#define DRAIN_QUIET_MS 300
#define READ_PASSES_MAX 512                /* packets read before the XADD round trip */
#define HEAP_KEEP_BYTES (64 * 1024 * 1024) /* free heap top kept (M_TRIM_THRESHOLD) */
#define HEAP_MMAP_BYTES (16 * 1024 * 1024) /* blocks below this come from the heap */

/* ---- callbacks from mqtt.c ---- */

void gateway_on_online(gateway *g)
{
    g->online_since_ms = bc_clock_now_ms();
    g->status_dirty = true;
    gw_outbox_set_session(&g->outbox, g->mqtt.mosq);
    log_info("online: taking camera messages and publishing the outbox");
}

void gateway_on_offline(gateway *g, const char *reason)
{
    g->status_dirty = true;
    gw_outbox_set_session(&g->outbox, NULL);
    log_warnx("offline: %s; next attempt in %" PRId64 " ms", reason,
              g->mqtt.next_attempt_ms - bc_clock_monotonic_ms());
}

void gateway_on_message(gateway *g, const char *topic, const void *payload, size_t len)
{
    g->last_message_ms = bc_clock_monotonic_ms();
    gw_ingest_message(&g->ingest, topic, payload, len);
}

void gateway_on_publish(gateway *g, int mid, int reason_code)
{
    gw_outbox_confirmed(&g->outbox, mid, reason_code);
}

/* ---- status and statistics ---- */

static uint64_t invalid_total(const gw_ingest *in)
{
    uint64_t n = 0;
    for (int i = 0; i < GW_INVALID_COUNT; i++)
        n += in->invalid[i];
    return n;
}

static void write_status(gateway *g, const char *state)
{
    if (!bc_redis_connected(&g->redis))
        return;
    char key[96], pid[24], since[24], now[24];
    char received[24], stored[24], invalid[24], published[24], confirmed[24], acked[24];
    char connects[24];
    snprintf(key, sizeof(key), STATUS_KEY_PREFIX "%s", g->cfg.instance);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    snprintf(since, sizeof(since), "%" PRId64, g->online_since_ms);
    snprintf(now, sizeof(now), "%" PRId64, bc_clock_now_ms());
    snprintf(received, sizeof(received), "%" PRIu64, g->ingest.received);
    snprintf(stored, sizeof(stored), "%" PRIu64, g->ingest.stored);
    snprintf(invalid, sizeof(invalid), "%" PRIu64, invalid_total(&g->ingest));
    snprintf(published, sizeof(published), "%" PRIu64, g->outbox.published);
    snprintf(confirmed, sizeof(confirmed), "%" PRIu64, g->outbox.confirmed);
    snprintf(acked, sizeof(acked), "%" PRIu64, g->outbox.acked);
    snprintf(connects, sizeof(connects), "%" PRIu64, g->mqtt.connects);
    const char *argv[] = {"HSET",      key,       "state",      state,   "pid",           pid,
                          "since",     since,     "updated_at", now,     "received",      received,
                          "stored",    stored,    "invalid",    invalid, "published",     published,
                          "confirmed", confirmed, "acked",      acked,   "mqtt_connects", connects};
    redisReply *reply = NULL;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_command(&g->redis, (int)(sizeof(argv) / sizeof(argv[0])), argv, NULL, &reply,
                         &err) != BC_OK) {
        log_warnx("status: %s", err.text);
        return;
    }
    freeReplyObject(reply);
    g->status_dirty = false;
}

static void log_stats(gateway *g)
{
    const gw_ingest *in = &g->ingest;
    const gw_outbox *o = &g->outbox;
    log_info("stats | mqtt=%s received=%" PRIu64 " stored=%" PRIu64 " invalid_topic=%" PRIu64
             " invalid_payload=%" PRIu64 " invalid_device=%" PRIu64 " log_suppressed=%" PRIu64
             " outbox_published=%" PRIu64 " outbox_confirmed=%" PRIu64 " outbox_refused=%" PRIu64
             " outbox_invalid=%" PRIu64 " outbox_acked=%" PRIu64 " outbox_claimed=%" PRIu64
             " inflight=%zu mqtt_sessions=%" PRIu64 " redis_failures=%" PRIu64,
             gw_mqtt_state_name(g->mqtt.state), in->received, in->stored,
             in->invalid[GW_INVALID_TOPIC], in->invalid[GW_INVALID_PAYLOAD],
             in->invalid[GW_INVALID_DEVICE], in->suppressed_invalid, o->published, o->confirmed,
             o->refused, o->invalid, o->acked, o->consumer.stats.claimed, o->ninflight,
             g->mqtt.connects, g->redis_failures);
}

static const char *status_state(const gateway *g)
{
    return g->mqtt.state == GW_MQTT_ONLINE ? "online" : "offline";
}

static void periodic(gateway *g)
{
    int64_t now = bc_clock_monotonic_ms();
    if (now >= g->next_stats_ms) {
        g->next_stats_ms = now + g->cfg.stats_interval_s * 1000;
        log_stats(g);
        gw_ingest_new_period(&g->ingest);
        g->status_dirty = true;
    }
    if (now >= g->next_status_ms) { /* counters that moved: at most once a second */
        g->next_status_ms = now + STATUS_REFRESH_MS;
        uint64_t sum = g->ingest.received + g->ingest.stored + g->outbox.published +
                       g->outbox.acked + g->mqtt.connects;
        if (sum != g->status_sum)
            g->status_dirty = true;
        g->status_sum = sum;
    }
    if (g->status_dirty)
        write_status(g, status_state(g));
}

/* ---- the loop ---- */

static void keep_redis(gateway *g)
{
    if (bc_redis_connected(&g->redis))
        return;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_connect(&g->redis, &err) == BC_OK) {
        log_info("redis %s:%" PRId64 " connected", g->cfg.redis_host, g->cfg.redis_port);
        g->redis_was_up = true;
        g->status_dirty = true;
    } else if (g->redis_was_up) {
        log_warnx("redis down: %s", err.text);
        g->redis_was_up = false;
        g->redis_failures++;
    }
}

/* PING answered PONG (a Redis loading its AOF answers LOADING). */
static bool redis_ready(gateway *g)
{
    if (!bc_redis_connected(&g->redis))
        return false;
    const char *argv[] = {"PING"};
    redisReply *reply = NULL;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_command(&g->redis, 1, argv, NULL, &reply, &err) != BC_OK) {
        log_warnx("not connecting to the broker yet: %s", err.text);
        g->mqtt.next_attempt_ms = bc_clock_monotonic_ms() + g->cfg.backoff_min_ms;
        return false;
    }
    freeReplyObject(reply);
    return true;
}

static void maybe_open_mqtt(gateway *g)
{
    if (g->mqtt.state != GW_MQTT_DOWN || bc_clock_monotonic_ms() < g->mqtt.next_attempt_ms)
        return;
    if (!redis_ready(g))
        return;
    bc_error err;
    bc_error_clear(&err);
    if (gw_mqtt_open(&g->mqtt, &err) != BC_OK)
        log_warnx("MQTT: %s; next attempt in %" PRId64 " ms", err.text,
                  g->mqtt.next_attempt_ms - bc_clock_monotonic_ms());
}

/* Step 7's MQTT half: the PUBACK rule lives here. Sets g->input_left
 * when it stopped at READ_PASSES_MAX with input still waiting (possibly
 * inside TLS, where poll() cannot see it). */
static void on_mqtt_input(gateway *g)
{
    g->input_left = false;
    for (int i = 0; i < READ_PASSES_MAX; i++) {
        gw_mqtt_read(&g->mqtt);
        if (!gw_mqtt_input_waiting(&g->mqtt))
            break;
        g->input_left = i + 1 == READ_PASSES_MAX;
    }
    if (!gw_ingest_flush(&g->ingest)) {
        g->redis_failures++;
        char reason[240];
        snprintf(reason, sizeof(reason),
                 "a camera message could not be stored (%.100s); "
                 "the broker keeps it",
                 g->ingest.fail_reason);
        gw_mqtt_mark_lost(&g->mqtt, reason);
        return;
    }
    gw_mqtt_flush(&g->mqtt);
}

/* Leaving: done once the broker confirmed the UNSUBSCRIBE and nothing came
 * for a quiet period, or the session ended, or the drain time is up. */
static bool drained(const gateway *g, int64_t deadline)
{
    int64_t now = bc_clock_monotonic_ms();
    if (g->mqtt.state != GW_MQTT_ONLINE || now >= deadline)
        return true;
    return g->mqtt.left && now - g->last_message_ms >= DRAIN_QUIET_MS;
}

static int64_t min_positive(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int loop_timeout(gateway *g, bool more)
{
    if (more)
        return 0;
    int64_t t = LOOP_MAX_WAIT_MS;
    t = min_positive(t, gw_mqtt_timeout_ms(&g->mqtt));
    if (g->mqtt.state == GW_MQTT_ONLINE || gw_outbox_fd(&g->outbox) >= 0)
        t = min_positive(t, gw_outbox_timeout_ms(&g->outbox));
    if (!bc_redis_connected(&g->redis))
        t = min_positive(t, bc_redis_retry_in_ms(&g->redis));
    int64_t stats = g->next_stats_ms - bc_clock_monotonic_ms();
    t = min_positive(t, stats);
    return t < 0 ? 0 : (int)t;
}

/* See the top: keep the heap at its working size. Failure only costs speed. */
static void tune_heap(void)
{
    if (mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_BYTES) != 1 ||
        mallopt(M_TRIM_THRESHOLD, HEAP_KEEP_BYTES) != 1)
        log_warnx("mallopt refused the heap settings; running with the defaults");
}

static bc_status gateway_init(gateway *g, bc_error *err)
{
    tune_heap();
    bc_redis_config rc = {.port = (int)g->cfg.redis_port,
                          .timeout_ms = g->cfg.redis_timeout_ms,
                          .backoff_min_ms = g->cfg.backoff_min_ms,
                          .backoff_max_ms = g->cfg.backoff_max_ms};
    snprintf(rc.host, sizeof(rc.host), "%s", g->cfg.redis_host);
    bc_status st = bc_redis_init(&g->redis, &rc, err);
    if (st == BC_OK)
        st = gw_mqtt_init(&g->mqtt, &g->cfg, g, err);
    if (st == BC_OK)
        st = gw_ingest_init(&g->ingest, &g->cfg, &g->redis, err);
    if (st == BC_OK)
        st = gw_outbox_init(&g->outbox, &g->cfg, &g->redis, err);
    g->next_stats_ms = bc_clock_monotonic_ms() + g->cfg.stats_interval_s * 1000;
    g->started_ms = bc_clock_now_ms();
    g->redis_was_up = true; /* so that a first failure is logged, once */
    return st;
}

static void gateway_shutdown(gateway *g)
{
    gw_outbox_flush_acks(&g->outbox);
    gw_mqtt_close(&g->mqtt);
    gw_outbox_flush_acks(&g->outbox); /* QoS 0 entries written by the close */
    log_stats(g);
    write_status(g, "stopped");
    gw_outbox_free(&g->outbox);
    gw_ingest_free(&g->ingest);
    bc_redis_close(&g->redis);
    mosquitto_lib_cleanup();
}

int gateway_run(gateway *g)
{
    bc_error err;
    bc_error_clear(&err);
    if (gateway_init(g, &err) != BC_OK) {
        log_errorx("cannot start: %s", err.text);
        return BC_EXIT_CONFIG;
    }
    log_info("instance %s: broker %s:%" PRId64 ", redis %s:%" PRId64 ", group $share/%s",
             g->cfg.instance, g->cfg.mqtt_host, g->cfg.mqtt_port, g->cfg.redis_host,
             g->cfg.redis_port, g->cfg.share_group);
    int rc = BC_EXIT_OK;
    int64_t leave_deadline = 0;
    for (;;) {
        if (bc_daemon_stopping() && !g->leaving) {
            if (!g->cfg.leave_group_on_stop || g->mqtt.state != GW_MQTT_ONLINE)
                break;
            /* Leave the share group, then drain what the broker still
             * sends us through the normal path (PUBACK after XADD). */
            log_info("stopping: leaving the share group and draining");
            gw_mqtt_leave(&g->mqtt);
            g->leaving = true;
            g->last_message_ms = bc_clock_monotonic_ms();
            leave_deadline = g->last_message_ms + g->cfg.drain_ms;
        }
        if (g->leaving && drained(g, leave_deadline))
            break;
        keep_redis(g);
        if (!g->leaving)
            maybe_open_mqtt(g);
        gw_outbox_flush_acks(&g->outbox);
        bool more = false;
        if (gw_outbox_fd(&g->outbox) < 0 && !g->leaving)
            gw_outbox_step(&g->outbox, 0, &more);
        gw_mqtt_flush(&g->mqtt);
        gw_mqtt_settle(&g->mqtt);
        periodic(g);

        struct pollfd fds[3] = {
            {.fd = g->leaving ? -1 : bc_daemon_stop_fd(), .events = POLLIN},
            {.fd = g->mqtt.fd, .events = gw_mqtt_events(&g->mqtt)},
            {.fd = gw_outbox_fd(&g->outbox), .events = POLLIN},
        };
        if (fds[1].events == 0)
            fds[1].fd = -1;
        /* only for the same live session; and what TLS read ahead is input too */
        g->input_left = fds[1].fd >= 0 && (g->input_left || gw_mqtt_tls_buffered(&g->mqtt));
        int n = poll(fds, 3, loop_timeout(g, more || g->input_left));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll");
            rc = BC_EXIT_RUNTIME;
            break;
        }
        if (fds[1].fd >= 0 && (fds[1].revents != 0 || g->input_left))
            on_mqtt_input(g);
        if (fds[2].fd >= 0 && fds[2].revents != 0) {
            bool again = false;
            gw_outbox_step(&g->outbox, fds[2].revents, &again);
        } else if (gw_outbox_fd(&g->outbox) >= 0) {
            bool again = false;
            gw_outbox_step(&g->outbox, 0, &again); /* read deadline check */
        }
        gw_mqtt_misc(&g->mqtt);
        gw_mqtt_settle(&g->mqtt);
    }
    log_info("stopping");
    gateway_shutdown(g);
    return rc;
}
