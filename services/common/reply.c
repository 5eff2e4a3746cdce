/*
 * reply.c - reading the elements of a script reply (see reply.h).
 *
 * Numbers come as strings from Lua tables (HMGET and friends) and as
 * integers from Lua numbers; both are accepted. strtoll/strtoull with the
 * whole string consumed and errno clear is the check: a partial number is
 * a record that does not fit, not a value.
 */
#include "common/reply.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NUM_MAX 24       /* an int64 in decimal with its sign and NUL */
#define SCORE_MAX 9.0e15 /* a double holds integers exactly up to 2^53 */

bool bc_reply_is(const redisReply *e, const char *s)
{
    size_t n = strlen(s);
    return e != NULL && e->type == REDIS_REPLY_STRING && e->len == n && memcmp(e->str, s, n) == 0;
}

bool bc_reply_str(const redisReply *e, char *dst, size_t cap)
{
    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len >= cap ||
        memchr(e->str, '\0', e->len) != NULL)
        return false;
    memcpy(dst, e->str, e->len);
    dst[e->len] = '\0';
    return true;
}

bool bc_reply_text(const redisReply *e, char *dst, size_t cap)
{
    if (e == NULL || e->type != REDIS_REPLY_STRING || cap == 0)
        return false;
    size_t n = e->len < cap - 1 ? e->len : cap - 1;
    memcpy(dst, e->str, n);
    dst[n] = '\0';
    return true;
}

bool bc_reply_name(const redisReply *e, const char *const *names, int count, int *out)
{
    for (int i = 0; i < count; i++) {
        if (bc_reply_is(e, names[i])) {
            *out = i;
            return true;
        }
    }
    return false;
}

bool bc_reply_i64(const redisReply *e, int64_t *v)
{
    if (e != NULL && e->type == REDIS_REPLY_INTEGER) {
        *v = e->integer;
        return true;
    }
    char buf[NUM_MAX];
    if (!bc_reply_str(e, buf, sizeof(buf)) || buf[0] == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *v = x;
    return true;
}

bool bc_reply_score(const redisReply *e, int64_t *v)
{
    if (bc_reply_i64(e, v))
        return true;
    char buf[NUM_MAX];
    if (!bc_reply_str(e, buf, sizeof(buf)) || buf[0] == '\0')
        return false;
    char *end = NULL;
    errno = 0;
    double d = strtod(buf, &end);
    if (errno != 0 || *end != '\0' || d < -SCORE_MAX || d > SCORE_MAX)
        return false;
    *v = (int64_t)d;
    return true;
}

bool bc_reply_u64(const redisReply *e, uint64_t *v)
{
    char buf[NUM_MAX];
    if (!bc_reply_str(e, buf, sizeof(buf)) || buf[0] < '0' || buf[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *v = x;
    return true;
}

bool bc_reply_bool(const redisReply *e, bool *v)
{
    if (bc_reply_is(e, "1") || bc_reply_is(e, "0")) {
        *v = bc_reply_is(e, "1");
        return true;
    }
    return false;
}

bool bc_reply_count(const redisReply *rep, size_t at, size_t stride, size_t *n)
{
    int64_t v = 0;
    if (at >= rep->elements || !bc_reply_i64(rep->element[at], &v) || v < 0)
        return false;
    if ((uint64_t)v > (rep->elements - at - 1) / stride)
        return false;
    *n = (size_t)v;
    return true;
}

const char *bc_reply_at(const redisReply *rep, size_t i, char *buf, size_t cap)
{
    if (i >= rep->elements || !bc_reply_str(rep->element[i], buf, cap))
        buf[0] = '\0';
    return buf;
}

int bc_reply_verdict(const redisReply *rep, size_t min_ok, const bc_reply_word *words, size_t n)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
        return -1;
    const redisReply *e = rep->element[0];
    if (bc_reply_is(e, "ok"))
        return rep->elements >= min_ok ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        if (!bc_reply_is(e, words[i].word))
            continue;
        if (words[i].elements != 0 && rep->elements != words[i].elements)
            return -1;
        return (int)i + 1;
    }
    return -1;
}
