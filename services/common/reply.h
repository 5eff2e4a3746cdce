/*
 * reply.h - reading the elements of a Redis (Lua script) reply.
 *
 * The services' scripts answer an array whose first element is a verdict
 * word ('ok', 'not_found', 'state', ...) and whose other elements are
 * fields. These read one element into a C value and say false when it
 * does not fit, so a parser can chain them and fail once.
 */
#ifndef BC_COMMON_REPLY_H
#define BC_COMMON_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* e is the string s. */
bool bc_reply_is(const redisReply *e, const char *s);
/* Copies a string element into dst[cap]; false when it does not fit, holds
 * a NUL or is not a string. */
bool bc_reply_str(const redisReply *e, char *dst, size_t cap);
/* Like bc_reply_str, but cuts what does not fit (free text). */
bool bc_reply_text(const redisReply *e, char *dst, size_t cap);
/* A string element that is one of names[0 .. count): *out is its index. */
bool bc_reply_name(const redisReply *e, const char *const *names, int count, int *out);
/* An integer reply or a decimal string. */
bool bc_reply_i64(const redisReply *e, int64_t *v);
/* bc_reply_i64, or a sorted-set score (Redis prints it as a double). */
bool bc_reply_score(const redisReply *e, int64_t *v);
/* A decimal string of digits only. */
bool bc_reply_u64(const redisReply *e, uint64_t *v);
/* "1" or "0". */
bool bc_reply_bool(const redisReply *e, bool *v);
/* Element at of rep is a count n with at least n * stride elements after it. */
bool bc_reply_count(const redisReply *rep, size_t at, size_t stride, size_t *n);
/* The text of element i of rep into buf[cap] ("" when it is not a short string). */
const char *bc_reply_at(const redisReply *rep, size_t i, char *buf, size_t cap);

/* A verdict word other than 'ok' and how many elements its reply has
 * (0: any number). */
typedef struct bc_reply_word {
    const char *word;
    size_t elements;
} bc_reply_word;

/* The verdict of a script reply: 0 for 'ok' with at least min_ok elements,
 * i + 1 for words[i], -1 for anything else (not an array, an unknown word,
 * a wrong element count). */
int bc_reply_verdict(const redisReply *rep, size_t min_ok, const bc_reply_word *words, size_t n);

#endif
