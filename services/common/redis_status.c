/*
 * redis_status.c - a daemon's status hash and Redis outage logging (see
 * redis_status.h).
 *
 * The status hash is one HSET, so a reader never sees half of an update.
 * The numbers are printed into a buffer on the stack: a status hash is
 * small (BC_STATUS_HASH_MAX bounds it) and written once a second.
 */
#include "common/redis_status.h"

#include <inttypes.h>
#include <stdio.h>

#include "common/log.h"

#define NUM_TEXT 24 /* an int64 in decimal with its sign and NUL */

bc_status bc_status_hash_write(bc_redis *r, const char *key, const char *state,
                               const bc_status_num *nums, size_t n, bc_error *err)
{
    if (n > BC_STATUS_HASH_MAX)
        return bc_fail(err, BC_ERR_TOO_BIG, "status hash %s: %zu numbers, at most %d", key, n,
                       BC_STATUS_HASH_MAX);
    char vals[BC_STATUS_HASH_MAX][NUM_TEXT];
    const char *argv[4 + 2 * BC_STATUS_HASH_MAX];
    int argc = 0;
    argv[argc++] = "HSET";
    argv[argc++] = key;
    argv[argc++] = "state";
    argv[argc++] = state;
    for (size_t i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%" PRId64, nums[i].value);
        argv[argc++] = nums[i].name;
        argv[argc++] = vals[i];
    }
    redisReply *reply = NULL;
    bc_status st = bc_redis_command(r, argc, argv, NULL, &reply, err);
    if (st != BC_OK)
        return st;
    freeReplyObject(reply);
    return BC_OK;
}

void bc_redis_outage_failed(bool *failing, const char *what, const bc_error *err)
{
    if (*failing || err == NULL)
        return;
    *failing = true;
    log_warnx("%s: %s (quiet until Redis answers again)", what, err->text);
}

void bc_redis_outage_over(bool *failing, const char *host, int64_t port)
{
    if (!*failing)
        return;
    *failing = false;
    log_info("redis %s:%" PRId64 " answers again", host, port);
}
