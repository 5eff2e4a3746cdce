/*
 * script_set.c - a service's Lua scripts built once and run by id (see
 * script_set.h).
 *
 * Why a mutex and a flag rather than pthread_once: a once routine takes no
 * argument, and each service has its own set. The flag is read with acquire
 * order, so a thread that sees it set also sees the built scripts; the
 * mutex makes the first threads wait for the one that builds.
 */
#include "common/script_set.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_START 4096

void bc_script_text_add(bc_script_text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf != NULL ? t->buf + t->len : NULL,
                          t->buf != NULL ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->buf != NULL && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap > 0 ? t->cap : TEXT_START;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

void bc_script_text_list(bc_script_text *t, const char *name, const char *const *items,
                         size_t count)
{
    bc_script_text_add(t, "local %s = {", name);
    for (size_t i = 0; i < count; i++)
        bc_script_text_add(t, "%s'%s'", i > 0 ? ", " : "", items[i]);
    bc_script_text_add(t, "}\n");
}

/* Prelude + body of each script, and their SHA-1s. On failure set->error
 * says why; what was allocated stays (the process keeps the outcome). */
static bc_status set_build(bc_script_set *set)
{
    bc_script_text pre = {0};
    set->prelude(&pre);
    if (pre.failed) {
        free(pre.buf);
        snprintf(set->error, sizeof(set->error), "%s scripts: no memory for the prelude",
                 set->what);
        return BC_ERR_NOMEM;
    }
    set->run = calloc(set->count, sizeof(*set->run));
    if (set->run == NULL) {
        free(pre.buf);
        snprintf(set->error, sizeof(set->error), "%s scripts: no memory", set->what);
        return BC_ERR_NOMEM;
    }
    bc_status st = BC_OK;
    for (size_t i = 0; st == BC_OK && i < set->count; i++) {
        const bc_script_src *s = &set->src[i];
        size_t body = strlen(s->body);
        char *text = malloc(pre.len + body + 1);
        if (text == NULL) {
            st = BC_ERR_NOMEM;
        } else {
            memcpy(text, pre.buf, pre.len);
            memcpy(text + pre.len, s->body, body + 1);
            st = bc_script_init(&set->run[i], s->name, text, pre.len + body, NULL);
        }
        if (st != BC_OK)
            snprintf(set->error, sizeof(set->error),
                     "%s script %s could not be built (memory, or SHA-1 failed)", set->what,
                     s->name);
    }
    free(pre.buf);
    return st;
}

bc_status bc_script_set_ready(bc_script_set *set, bc_error *err)
{
    if (!atomic_load_explicit(&set->built, memory_order_acquire)) {
        if (pthread_mutex_lock(&set->lock) != 0)
            return bc_fail(err, BC_ERR_STATE, "%s scripts could not be initialised", set->what);
        if (!atomic_load_explicit(&set->built, memory_order_relaxed)) {
            set->status = set_build(set);
            atomic_store_explicit(&set->built, true, memory_order_release);
        }
        pthread_mutex_unlock(&set->lock);
    }
    if (set->status != BC_OK)
        return bc_fail(err, set->status, "%s", set->error);
    return BC_OK;
}

const bc_script *bc_script_set_get(const bc_script_set *set, size_t id)
{
    return &set->run[id];
}

bc_status bc_script_set_check(bc_script_set *set, size_t id, const bc_script_args *a, bc_error *err)
{
    if (id >= set->count)
        return bc_fail(err, BC_ERR_INVAL, "%s scripts: no script %zu", set->what, id);
    bc_status st = bc_script_set_ready(set, err);
    if (st != BC_OK)
        return st;
    return bc_script_args_check(&set->run[id], a, err);
}

bc_status bc_script_set_run(bc_script_set *set, bc_redis *r, size_t id, bc_script_args *a,
                            redisReply **out, bc_error *err)
{
    *out = NULL;
    bc_status st = bc_script_set_check(set, id, a, err);
    if (st != BC_OK) {
        bc_script_args_free(a);
        return st;
    }
    bc_error local;
    bc_error_clear(&local);
    st = bc_script_args_run(r, &set->run[id], a, out, &local);
    bc_script_args_free(a);
    if (st != BC_OK)
        return bc_fail(err, st, "%s script %s: %s", set->what, set->src[id].name, local.text);
    return BC_OK;
}

bc_status bc_script_set_verdict(const bc_script_set *set, size_t id, const redisReply *rep,
                                size_t min_ok, int *verdict, bc_error *err)
{
    int word = bc_reply_verdict(rep, min_ok, set->words, set->word_count);
    if (word < 0)
        return bc_fail(err, BC_ERR_PARSE, "%s script %s answered an unexpected reply", set->what,
                       id < set->count ? set->src[id].name : "?");
    *verdict = word;
    return BC_OK;
}

bc_status bc_script_set_call(bc_script_set *set, bc_redis *r, size_t id, bc_script_args *a,
                             size_t min_ok, redisReply **out, int *verdict, bc_error *err)
{
    bc_status st = bc_script_set_run(set, r, id, a, out, err);
    if (st == BC_OK)
        st = bc_script_set_verdict(set, id, *out, min_ok, verdict, err);
    if (st != BC_OK && *out != NULL) {
        freeReplyObject(*out);
        *out = NULL;
    }
    return st;
}

bc_status bc_script_set_load(bc_script_set *set, bc_redis *r, bc_error *err)
{
    bc_status st = bc_script_set_ready(set, err);
    for (size_t i = 0; st == BC_OK && i < set->count; i++)
        st = bc_script_load(r, &set->run[i], err);
    return st;
}

bc_status bc_script_set_parse_fail(const bc_script_set *set, size_t id, bc_error *err)
{
    return bc_fail(err, BC_ERR_PARSE, "%s script %s answered a record that does not fit", set->what,
                   id < set->count ? set->src[id].name : "?");
}
