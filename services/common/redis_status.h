/*
 * redis_status.h - what a daemon tells about itself through Redis: its
 * status hash, and its command connection's outages in the log.
 *
 * Every daemon keeps HSET <prefix><instance> state <state> <counter>...
 * for operators (bodycamctl status) and logs a Redis failure once, not on
 * every call during an outage, and once again when Redis answers.
 */
#ifndef BC_COMMON_REDIS_STATUS_H
#define BC_COMMON_REDIS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/status.h"

#define BC_STATUS_HASH_MAX 32 /* numeric fields a status hash may have */

/* One numeric field of a status hash. */
typedef struct bc_status_num {
    const char *name;
    int64_t value;
} bc_status_num;

/* HSET key state <state> and the n numbers (decimal) on r. BC_ERR_TOO_BIG
 * for more than BC_STATUS_HASH_MAX numbers; else statuses as
 * bc_redis_command. */
bc_status bc_status_hash_write(bc_redis *r, const char *key, const char *state,
                               const bc_status_num *nums, size_t n, bc_error *err);

/* Logs what failed (err) unless *failing says it was logged already, and
 * sets *failing: quiet until bc_redis_outage_over. NULL err logs nothing. */
void bc_redis_outage_failed(bool *failing, const char *what, const bc_error *err);
/* Clears *failing, logging that Redis at host:port answers again when it
 * was set. */
void bc_redis_outage_over(bool *failing, const char *host, int64_t port);

#endif
