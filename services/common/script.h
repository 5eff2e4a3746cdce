/*
 * script.h - a Redis Lua script called by its SHA-1.
 *
 * A call sends EVALSHA <sha1> 0 <args...>, so the source crosses the wire
 * once per Redis and not with every call. When Redis answers NOSCRIPT (it
 * was restarted, or SCRIPT FLUSH) the call is sent again as EVAL with the
 * source, which also caches the script for the next EVALSHA. A pipelined
 * call cannot fall back in the middle of its pipeline: its caller loads the
 * scripts (bc_script_load) once per connection before it appends.
 *
 * The scripts take no KEYS (numkeys 0): they name their keys themselves,
 * which a single Redis allows (a cluster would not).
 */
#ifndef BC_COMMON_SCRIPT_H
#define BC_COMMON_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/status.h"

#define BC_SCRIPT_SHA_LEN 40 /* hex digits of a SHA-1 */

/* argv slots a call reserves in front of the script's arguments:
 * EVALSHA (or EVAL), the SHA-1 (or the source) and numkeys. */
#define BC_SCRIPT_ARGV_HEAD 3

typedef struct bc_script {
    const char *name;   /* borrowed, for messages */
    const char *source; /* borrowed: must outlive the script */
    size_t source_len;
    char sha[BC_SCRIPT_SHA_LEN + 1]; /* lowercase hex, as Redis names it */
} bc_script;

/* Sets s up for source (source_len bytes) under name and computes its
 * SHA-1 (OpenSSL). Both strings are borrowed. BC_ERR_CRYPTO when the
 * digest fails. */
bc_status bc_script_init(bc_script *s, const char *name, const char *source, size_t source_len,
                         bc_error *err);

/* Runs s with argc - BC_SCRIPT_ARGV_HEAD arguments in argv[3..argc) (lens
 * their lengths, as bc_redis_command): EVALSHA, and EVAL with the source
 * after NOSCRIPT. The first BC_SCRIPT_ARGV_HEAD slots of argv and lens are
 * written here. Statuses and err as bc_redis_command (Redis' error reply
 * to the script is BC_ERR_STATE); the caller frees *out. */
bc_status bc_script_run(bc_redis *r, const bc_script *s, int argc, const char **argv, size_t *lens,
                        redisReply **out, bc_error *err);

/* Queues EVALSHA on r's pipeline (bc_redis_append; argv and lens as
 * bc_script_run). Its reply, read with bc_redis_reply, is a NOSCRIPT error
 * when the script was not loaded on this connection. */
bc_status bc_script_append(bc_redis *r, const bc_script *s, int argc, const char **argv,
                           size_t *lens, bc_error *err);

/* SCRIPT LOAD of s, so that a pipelined EVALSHA finds it. Statuses as
 * bc_redis_command; BC_ERR_STATE when Redis answers another SHA-1. */
bc_status bc_script_load(bc_redis *r, const bc_script *s, bc_error *err);

/* ---- building a call's arguments ---- */

/* Lua: a local function outbox_add(at) that XADDs the command whose
 * bc_script_args_outbox arguments start at ARGV[at] (qos 1, not retained). */
#define BC_SCRIPT_OUTBOX_LUA                                                                       \
    "local function outbox_add(at)\n"                                                              \
    "  redis.call('XADD', ARGV[at], '*', ARGV[at + 1], ARGV[at + 5], ARGV[at + 2], ARGV[at + "     \
    "6],\n"                                                                                        \
    "    ARGV[at + 3], '1', ARGV[at + 4], '0')\n"                                                  \
    "end\n"

#define BC_SCRIPT_ARG_NUM 24 /* an int64 in decimal with its sign and NUL */

/* The argv and lens of a call, with the head slots reserved. Adding past
 * cap sets overflow instead of writing: a caller adds all its arguments
 * and checks once (bc_script_args_check) before it runs the script. */
typedef struct bc_script_args {
    size_t n, cap;                  /* arguments after the head */
    const char **v;                 /* BC_SCRIPT_ARGV_HEAD + cap */
    size_t *len;                    /* BC_SCRIPT_ARGV_HEAD + cap */
    char (*num)[BC_SCRIPT_ARG_NUM]; /* cap: the text of integer arguments */
    bool overflow;
} bc_script_args;

/* Room for cap arguments. BC_ERR_NOMEM (a is then empty, and freeing it
 * is harmless). */
bc_status bc_script_args_init(bc_script_args *a, size_t cap, bc_error *err);
void bc_script_args_free(bc_script_args *a);
/* s is borrowed (NULL is ""). */
void bc_script_args_str(bc_script_args *a, const char *s);
void bc_script_args_int(bc_script_args *a, int64_t v);
void bc_script_args_u64(bc_script_args *a, uint64_t v);
/* Whether s is a one-line text argument a record keeps (an actor such as
 * "operator:<name>"): not NULL, 1..max bytes, no control bytes. */
bool bc_script_line_valid(const char *s, size_t max);
/* The seven arguments of a command queued through the outbox in the same
 * script: BC_STREAM_OUTBOX, its field names topic, payload, qos, retain,
 * then topic and payload (both borrowed). The script's
 * outbox_add(at) (BC_SCRIPT_OUTBOX_LUA) reads them from ARGV[at]. */
void bc_script_args_outbox(bc_script_args *a, const char *topic, const char *payload);
/* BC_ERR_TOO_BIG naming s when more than cap arguments were added. */
bc_status bc_script_args_check(const bc_script *s, const bc_script_args *a, bc_error *err);
/* bc_script_run with a's arguments. */
bc_status bc_script_args_run(bc_redis *r, const bc_script *s, bc_script_args *a, redisReply **out,
                             bc_error *err);

#endif
