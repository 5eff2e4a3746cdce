/*
 * consumer_loop.h - the skeleton of a daemon that consumes streams: one
 * thread, one poll() over the stop pipe and its stream consumers (each on
 * its own connection, for its blocking read), a command connection kept up
 * with backoff, the status hash and the statistics line.
 *
 * The owner adds its own timers (hooks.timers, hooks.due_at) and counters
 * (hooks.activity, hooks.status, hooks.log_stats). Status: HSET
 * <status_key> state running|stopped, pid, since, updated_at and the
 * owner's counters - at start, at most once a second while they move
 * (hooks.activity), every statistics period and at the stop.
 */
#ifndef BC_COMMON_CONSUMER_LOOP_H
#define BC_COMMON_CONSUMER_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/redis_status.h"
#include "common/stream.h"

#define BC_LOOP_STREAMS_MAX 4
#define BC_LOOP_STATUS_KEY_MAX 127

typedef struct bc_consumer_loop_config {
    bc_redis_config redis;              /* the command connection and each stream's */
    bc_stream_consumer_config consumer; /* group, consumer, batch...; stream is set per stream */
    size_t stream_count;                /* 1..BC_LOOP_STREAMS_MAX */
    const char *streams[BC_LOOP_STREAMS_MAX];
    bc_stream_handler handlers[BC_LOOP_STREAMS_MAX]; /* userdata: the hooks' ctx */
    char status_key[BC_LOOP_STATUS_KEY_MAX + 1];
    int64_t stats_interval_s;
} bc_consumer_loop_config;

/* Designated initializers of a bc_consumer_loop_config from a daemon
 * configuration with the fields of BC_DAEMON_OPTIONS_REDIS, _BACKOFF,
 * _CONSUMER, OPTION_STATS and retry_delay_ms (daemon.h); the names are
 * bc_consumer_loop_names'. */
#define BC_CONSUMER_LOOP_SETTINGS(c)                                                               \
    .redis = {.port = (int)(c).redis_port,                                                         \
              .timeout_ms = (c).redis_timeout_ms,                                                  \
              .backoff_min_ms = (c).backoff_min_ms,                                                \
              .backoff_max_ms = (c).backoff_max_ms},                                               \
    .consumer = {.batch = (size_t)(c).batch,                                                       \
                 .block_ms = (c).block_ms,                                                         \
                 .claim_idle_ms = (c).claim_idle_ms,                                               \
                 .claim_interval_ms = (c).claim_interval_ms,                                       \
                 .retry_delay_ms = (c).retry_delay_ms},                                            \
    .stats_interval_s = (c).stats_interval_s

/* What the owner adds; ctx is the one given to bc_consumer_loop_init. */
typedef struct bc_consumer_loop_hooks {
    /* The owner's timers, each turn while the command connection is up
     * (mono: bc_clock_monotonic_ms()). */
    void (*timers)(void *ctx, int64_t mono);
    /* The monotonic time the owner's next timer is due. */
    int64_t (*due_at)(const void *ctx);
    /* A sum of the counters: the status is written again when it moves. */
    uint64_t (*activity)(const void *ctx);
    /* Fills at most max counters of the status hash; returns how many. */
    size_t (*status)(const void *ctx, bc_status_num *nums, size_t max);
    /* Logs the statistics line. */
    void (*log_stats)(const void *ctx);
} bc_consumer_loop_hooks;

typedef struct bc_consumer_loop {
    bc_consumer_loop_config cfg;
    bc_consumer_loop_hooks hooks;
    void *ctx;
    bc_redis cmd; /* the owner's commands and the status */
    bc_redis links[BC_LOOP_STREAMS_MAX];
    bc_stream_consumer consumers[BC_LOOP_STREAMS_MAX];
    bool cmd_failing;                  /* a failure on cmd was logged: quiet until it works */
    bool failing[BC_LOOP_STREAMS_MAX]; /* likewise per consumer */
    int64_t step_after_ms[BC_LOOP_STREAMS_MAX];
    int64_t started_ms;                    /* wall clock */
    int64_t next_stats_ms, next_status_ms; /* monotonic */
    uint64_t status_sum;
} bc_consumer_loop;

/* Sets cfg's Redis host, the consumer group, the consumer name
 * "<group>-<instance>" and the status key "<status_prefix><instance>"
 * (each cut to its buffer; the daemons check instance lengths). */
void bc_consumer_loop_names(bc_consumer_loop_config *cfg, const char *redis_host, const char *group,
                            const char *instance, const char *status_prefix);

/* Fills l (which must stay where it is: the consumers point into it) and
 * its connections, not connected yet. BC_ERR_INVAL for a bad config; l is
 * to be closed with bc_consumer_loop_close also then. */
bc_status bc_consumer_loop_init(bc_consumer_loop *l, const bc_consumer_loop_config *cfg,
                                const bc_consumer_loop_hooks *hooks, void *ctx, bc_error *err);

/* Runs until a stop request, then logs the statistics, writes the status
 * "stopped" and closes the connections. */
void bc_consumer_loop_run(bc_consumer_loop *l);

/* Closes the connections (also of a loop whose init failed, or a zeroed one). */
void bc_consumer_loop_close(bc_consumer_loop *l);

/* A failure on the command connection: logged once until
 * bc_consumer_loop_redis_ok(). */
void bc_consumer_loop_redis_failed(bc_consumer_loop *l, const char *what, const bc_error *err);
void bc_consumer_loop_redis_ok(bc_consumer_loop *l);

#endif
