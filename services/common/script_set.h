/*
 * script_set.h - a service's Lua scripts: named sources that share a
 * prelude, built once, run by id.
 *
 * A service keeps its Redis state behind a handful of scripts that all
 * start with the same text: the field lists and constants generated from
 * its C tables, then the Lua helpers. The set writes that prelude once (the
 * service's prelude function), puts it in front of every body and computes
 * each SHA-1, the first time a script is needed, from whichever thread
 * comes first. A call then checks the arguments, runs the script (EVALSHA,
 * EVAL after NOSCRIPT: common/script.h) and reads the verdict word of its
 * reply (common/reply.h):
 *
 *   static const bc_script_src srcs[] = {[S_GET] = {"get", get_src}, ...};
 *   static bc_script_set set = BC_SCRIPT_SET_INIT("rollout", srcs, S_COUNT,
 *                                                  prelude, words, n_words);
 *   st = bc_script_set_call(&set, r, S_GET, &a, 1 + RF_COUNT, &rep, &v, err);
 *
 * Messages name the script as "<what> script <name>" ("rollout script get").
 * The built sources live until the process ends.
 */
#ifndef BC_COMMON_SCRIPT_SET_H
#define BC_COMMON_SCRIPT_SET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/reply.h"
#include "common/script.h"
#include "common/stream.h"
#include "proto/status.h"

/* One script: its name (messages) and its Lua body, both borrowed. */
typedef struct bc_script_src {
    const char *name;
    const char *body;
} bc_script_src;

/* The text the prelude function writes into. Appending past what memory
 * allows sets failed; the set checks it once after the function. */
typedef struct bc_script_text {
    char *buf;
    size_t len, cap;
    bool failed;
} bc_script_text;

/* Appends printf-style text. */
void bc_script_text_add(bc_script_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends "local NAME = {'a', 'b', ...}\n": a C name table as a Lua list
 * (Lua counts from 1, so NAME[i + 1] is items[i]). */
void bc_script_text_list(bc_script_text *t, const char *name, const char *const *items,
                         size_t count);

typedef struct bc_script_set {
    const char *what;         /* "rollout", for messages */
    const bc_script_src *src; /* count sources, indexed by the service's ids */
    size_t count;
    void (*prelude)(bc_script_text *t); /* writes what every source starts with */
    const bc_reply_word *words;         /* the verdict words other than 'ok' */
    size_t word_count;
    /* built once, by the first call that needs them: */
    pthread_mutex_t lock;
    atomic_bool built;
    bc_status status;
    char error[160];
    bc_script *run; /* count, once built with BC_OK */
} bc_script_set;

#define BC_SCRIPT_SET_INIT(what_, src_, count_, prelude_, words_, word_count_)                     \
    {                                                                                              \
        .what = (what_), .src = (src_), .count = (count_), .prelude = (prelude_),                  \
        .words = (words_), .word_count = (word_count_), .lock = PTHREAD_MUTEX_INITIALIZER          \
    }

/* Builds the set's sources once (thread-safe; later calls only read the
 * outcome). BC_ERR_NOMEM or BC_ERR_CRYPTO (SHA-1) when the build failed,
 * and every later call says so again. */
bc_status bc_script_set_ready(bc_script_set *set, bc_error *err);

/* Script id of a ready set (bc_script_set_ready said BC_OK; id < count),
 * for bc_script_append and friends. Borrowed from the set. */
const bc_script *bc_script_set_get(const bc_script_set *set, size_t id);

/* The set is ready and a holds no more arguments than it has room for
 * (BC_ERR_TOO_BIG naming the script). a is not freed. */
bc_status bc_script_set_check(bc_script_set *set, size_t id, const bc_script_args *a,
                              bc_error *err);

/* Runs script id with a's arguments (bc_script_set_check, then EVALSHA and
 * EVAL after NOSCRIPT). a is freed here, on every path (freeing it again is
 * harmless). On BC_OK the caller frees *out; otherwise *out is NULL and err
 * names the script (Redis' error reply to the script is BC_ERR_STATE). */
bc_status bc_script_set_run(bc_script_set *set, bc_redis *r, size_t id, bc_script_args *a,
                            redisReply **out, bc_error *err);

/* The verdict of script id's reply rep (bc_reply_verdict with the set's
 * words): *verdict is 0 for an 'ok' of at least min_ok elements, i + 1 for
 * words[i]. BC_ERR_PARSE when rep has no verdict. rep is borrowed. */
bc_status bc_script_set_verdict(const bc_script_set *set, size_t id, const redisReply *rep,
                                size_t min_ok, int *verdict, bc_error *err);

/* bc_script_set_run, then the verdict of the reply (bc_reply_verdict with
 * the set's words): *verdict is 0 for an 'ok' of at least min_ok elements,
 * i + 1 for words[i]. On BC_OK the caller frees *out, whatever the
 * verdict; a reply that has no verdict is BC_ERR_PARSE, with *out freed
 * and NULL. */
bc_status bc_script_set_call(bc_script_set *set, bc_redis *r, size_t id, bc_script_args *a,
                             size_t min_ok, redisReply **out, int *verdict, bc_error *err);

/* SCRIPT LOAD of every script of the set, so that a pipelined EVALSHA
 * (bc_script_append) finds them. Statuses as bc_script_load. */
bc_status bc_script_set_load(bc_script_set *set, bc_redis *r, bc_error *err);

/* Returns BC_ERR_PARSE: script id answered a record that does not fit. */
bc_status bc_script_set_parse_fail(const bc_script_set *set, size_t id, bc_error *err);

#endif
