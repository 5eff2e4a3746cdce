/*
 * script.c - EVALSHA with the EVAL fallback (see script.h).
 *
 * Why the fallback is safe: EVAL of the same source runs the same script
 * Redis would have run under EVALSHA (the SHA-1 names the source), so a
 * call is never run twice and never runs something else; NOSCRIPT means
 * Redis did not run anything. Any other error reply is returned as it is.
 */
#include "common/script.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proto/encoding.h"

bc_status bc_script_init(bc_script *s, const char *name, const char *source, size_t source_len,
                         bc_error *err)
{
    memset(s, 0, sizeof(*s));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(source, source_len, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20 ||
        bc_hex_encode(md, md_len, s->sha, sizeof(s->sha)) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "SHA-1 of script %s failed", name);
    s->name = name;
    s->source = source;
    s->source_len = source_len;
    return BC_OK;
}

/* argv[0..3) = EVALSHA <sha> 0. */
static bc_status head_evalsha(const bc_script *s, int argc, const char **argv, size_t *lens,
                              bc_error *err)
{
    if (s->source == NULL)
        return bc_fail(err, BC_ERR_STATE, "script is not initialised");
    if (argc < BC_SCRIPT_ARGV_HEAD)
        return bc_fail(err, BC_ERR_INVAL, "script %s: no room for its command in argv", s->name);
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = s->sha;
    lens[1] = BC_SCRIPT_SHA_LEN;
    argv[2] = "0";
    lens[2] = 1;
    return BC_OK;
}

static bool is_noscript(bc_status st, const bc_error *err)
{
    return st == BC_ERR_STATE && strstr(err->text, "NOSCRIPT") != NULL;
}

bc_status bc_script_run(bc_redis *r, const bc_script *s, int argc, const char **argv, size_t *lens,
                        redisReply **out, bc_error *err)
{
    *out = NULL;
    bc_status st = head_evalsha(s, argc, argv, lens, err);
    if (st != BC_OK)
        return st;
    /* A local error: NOSCRIPT is recognised by its text, also when the
     * caller passed no err. */
    bc_error local;
    bc_error_clear(&local);
    st = bc_redis_command(r, argc, argv, lens, out, &local);
    if (is_noscript(st, &local)) {
        argv[0] = "EVAL";
        lens[0] = 4;
        argv[1] = s->source;
        lens[1] = s->source_len;
        st = bc_redis_command(r, argc, argv, lens, out, &local);
    }
    if (st != BC_OK)
        return bc_fail(err, st, "%s", local.text);
    return BC_OK;
}

bc_status bc_script_append(bc_redis *r, const bc_script *s, int argc, const char **argv,
                           size_t *lens, bc_error *err)
{
    bc_status st = head_evalsha(s, argc, argv, lens, err);
    if (st != BC_OK)
        return st;
    return bc_redis_append(r, argc, argv, lens, err);
}

bc_status bc_script_load(bc_redis *r, const bc_script *s, bc_error *err)
{
    if (s->source == NULL)
        return bc_fail(err, BC_ERR_STATE, "script is not initialised");
    const char *argv[] = {"SCRIPT", "LOAD", s->source};
    const size_t lens[] = {6, 4, s->source_len};
    redisReply *reply = NULL;
    bc_status st = bc_redis_command(r, 3, argv, lens, &reply, err);
    if (st != BC_OK)
        return st;
    bool same = reply->type == REDIS_REPLY_STRING && reply->len == BC_SCRIPT_SHA_LEN &&
                memcmp(reply->str, s->sha, BC_SCRIPT_SHA_LEN) == 0;
    freeReplyObject(reply);
    if (!same)
        return bc_fail(err, BC_ERR_STATE, "SCRIPT LOAD of script %s answered another SHA-1",
                       s->name);
    return BC_OK;
}

bc_status bc_script_args_init(bc_script_args *a, size_t cap, bc_error *err)
{
    memset(a, 0, sizeof(*a));
    a->cap = cap;
    a->v = calloc(BC_SCRIPT_ARGV_HEAD + cap, sizeof(*a->v));
    a->len = calloc(BC_SCRIPT_ARGV_HEAD + cap, sizeof(*a->len));
    a->num = calloc(cap > 0 ? cap : 1, sizeof(*a->num));
    if (a->v == NULL || a->len == NULL || a->num == NULL) {
        bc_script_args_free(a);
        return bc_fail(err, BC_ERR_NOMEM, "no memory for %zu script arguments", cap);
    }
    return BC_OK;
}

void bc_script_args_free(bc_script_args *a)
{
    free(a->v);
    free(a->len);
    free(a->num);
    memset(a, 0, sizeof(*a));
}

void bc_script_args_str(bc_script_args *a, const char *s)
{
    if (a->n >= a->cap) {
        a->overflow = true;
        return;
    }
    a->v[BC_SCRIPT_ARGV_HEAD + a->n] = s != NULL ? s : "";
    a->len[BC_SCRIPT_ARGV_HEAD + a->n] = s != NULL ? strlen(s) : 0;
    a->n++;
}

void bc_script_args_int(bc_script_args *a, int64_t v)
{
    if (a->n >= a->cap) {
        a->overflow = true;
        return;
    }
    snprintf(a->num[a->n], BC_SCRIPT_ARG_NUM, "%lld", (long long)v);
    bc_script_args_str(a, a->num[a->n]);
}

void bc_script_args_u64(bc_script_args *a, uint64_t v)
{
    if (a->n >= a->cap) {
        a->overflow = true;
        return;
    }
    snprintf(a->num[a->n], BC_SCRIPT_ARG_NUM, "%llu", (unsigned long long)v);
    bc_script_args_str(a, a->num[a->n]);
}

bc_status bc_script_args_check(const bc_script *s, const bc_script_args *a, bc_error *err)
{
    if (a->overflow)
        return bc_fail(err, BC_ERR_TOO_BIG, "script %s: more than %zu arguments", s->name, a->cap);
    return BC_OK;
}

bc_status bc_script_args_run(bc_redis *r, const bc_script *s, bc_script_args *a, redisReply **out,
                             bc_error *err)
{
    *out = NULL;
    bc_status st = bc_script_args_check(s, a, err);
    if (st != BC_OK)
        return st;
    return bc_script_run(r, s, (int)(BC_SCRIPT_ARGV_HEAD + a->n), a->v, a->len, out, err);
}

void bc_script_args_outbox(bc_script_args *a, const char *topic, const char *payload)
{
    bc_script_args_str(a, BC_STREAM_OUTBOX);
    bc_script_args_str(a, BC_FIELD_TOPIC);
    bc_script_args_str(a, BC_FIELD_PAYLOAD);
    bc_script_args_str(a, BC_FIELD_QOS);
    bc_script_args_str(a, BC_FIELD_RETAIN);
    bc_script_args_str(a, topic);
    bc_script_args_str(a, payload);
}

bool bc_script_line_valid(const char *s, size_t max)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > max)
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}
