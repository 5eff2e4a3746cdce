/*
 * fwrollout.h - bodycam-firmware-rollout: its configuration, its parts and
 * how they meet.
 *
 *   main.c     the option table and the daemon skeleton
 *   service.c  the timers, status and stats of the one-thread poll() loop
 *              over two stream consumers (event, ack; group
 *              "firmware-rollout"), which is common/consumer_loop.h
 *   offers.c   the paced offer pass (bc_rollout_next, then a signed
 *              firmware command per camera through the outbox, marked in
 *              the same script) and the time pass (bc_rollout_tick), the
 *              rollout_halted alert, the happenings' log lines
 *   answers.c  bodycam:stream:event (fw_*) and bodycam:stream:ack
 *   chunks.c   the retained chunk topics: published at the start and every
 *              chunk_refresh_s, cleared when the rollout ended
 *
 * The rollouts live in Redis (rollout.h); this process keeps nothing but
 * its connections, its key and counters, so any number of instances can
 * run and a crash loses nothing.
 */
#ifndef BC_FIRMWARE_ROLLOUT_H
#define BC_FIRMWARE_ROLLOUT_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/consumer_loop.h"
#include "common/stream.h"
#include "firmware-rollout/rollout.h"

#define FW_INSTANCE_MAX 32
#define FW_GROUP "firmware-rollout"
#define FW_STATUS_KEY_PREFIX "bodycam:firmware-rollout:"
#define FW_STREAMS 2 /* event, ack */

typedef struct fw_config {
    char instance[FW_INSTANCE_MAX + 1];
    char redis_host[256];
    int64_t redis_port, redis_timeout_ms, backoff_min_ms, backoff_max_ms;
    int64_t batch, block_ms, claim_idle_ms, claim_interval_ms, retry_delay_ms;
    char command_key_file[512];
    int64_t command_ttl_s;
    int64_t offer_max_per_s, offer_interval_ms, scan_interval_ms, chunk_refresh_s;
    int64_t stats_interval_s;
    char log_level[16];
} fw_config;

typedef struct fw_stats {
    uint64_t offered, offer_failures, events, acks, updated, failed, rolled_back, reverted;
    uint64_t halted, waves_started, done, alerts, chunks_published, chunks_cleared, stale, invalid;
} fw_stats;

typedef struct fw_service {
    fw_config cfg;
    bc_consumer_loop loop; /* cmd: rollouts, outbox, status; the event and ack consumers */
    EVP_PKEY *command_key;
    fw_stats stats;
    bool offering;                       /* the last offer pass found a rollout to serve */
    int64_t next_offer_ms, next_scan_ms; /* monotonic */
} fw_service;

int fw_service_run(fw_service *s);
void fw_redis_failed(fw_service *s, const char *what, const bc_error *err);
void fw_redis_ok(fw_service *s);

/* ---- offers.c ---- */

/* One offer pass over the active rollouts; *any when one runs or aborts. */
void fw_offers_pass(fw_service *s, bool *any);
/* The time pass over the active rollouts. */
void fw_offers_tick(fw_service *s);
/* Logs what a script did besides its camera and raises the halted alert.
 * BC_ERR_UNAVAILABLE when the alert could not be queued. */
bc_status fw_happenings(fw_service *s, const bc_rollout_happenings *h);

/* ---- answers.c ---- */

bc_stream_verdict fw_answers_event(const bc_stream_entry *entry, void *userdata);
bc_stream_verdict fw_answers_ack(const bc_stream_entry *entry, void *userdata);

/* ---- chunks.c ---- */

/* Publishes the chunks of active rollouts that are due, clears those of
 * ended ones. */
void fw_chunks_pass(fw_service *s);

#endif
