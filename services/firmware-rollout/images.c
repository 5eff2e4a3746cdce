/*
 * images.c - firmware images in Redis (images.h).
 *
 * Publishing order matters for a reader: the chunks first, the record last
 * (in one script with the versions zset), so whoever sees a version in
 * bodycam:firmware:versions finds every chunk of it. A crash in between
 * leaves chunks without a record: invisible, and overwritten by the next
 * publish of that version.
 */
#include "firmware-rollout/images.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/reply.h"
#include "common/script.h"
#include "proto/encoding.h"

#define KEY_MAX 96
#define VERSIONS_KEY "bodycam:firmware:versions"

/* 1 version  2 manifest  3 size  4 sha256  5 chunk_size  6 chunks
 * 7 min_version  8 now  9 by. {'ok', already}; {'state', sha256} */
static const char commit_src[] =
    "local key = 'bodycam:firmware:' .. ARGV[1]\n"
    "local have = redis.call('HGET', key, 'sha256')\n"
    "if have then\n"
    "  if have == ARGV[4] then return {'ok', 1} end\n"
    "  return {'state', have}\n"
    "end\n"
    "redis.call('HSET', key, 'version', ARGV[1], 'manifest', ARGV[2], 'size', ARGV[3],\n"
    "  'sha256', ARGV[4], 'chunk_size', ARGV[5], 'chunks', ARGV[6], 'min_version', ARGV[7],\n"
    "  'published_at', ARGV[8], 'published_by', ARGV[9])\n"
    "redis.call('ZADD', '" VERSIONS_KEY "', ARGV[8], ARGV[1])\n"
    "return {'ok', 0}\n";

bc_status bc_image_sha256_hex(const uint8_t *data, size_t len, char out[BC_SHA256_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return BC_ERR_CRYPTO;
    return bc_hex_encode(md, mdlen, out, BC_SHA256_HEX_LEN + 1);
}

static bc_status publish_check(const bc_firmware_manifest *m, const uint8_t *data, size_t len,
                               const char *by, bc_error *err)
{
    bc_status st = bc_firmware_validate(m, err);
    if (st != BC_OK)
        return st;
    if (!m->has_sig || m->rollback)
        return bc_fail(err, BC_ERR_INVAL,
                       "an image is published with its signed, "
                       "non-rollback manifest");
    if (by == NULL || by[0] == '\0' || strlen(by) > BC_IMAGE_ACTOR_MAX)
        return bc_fail(err, BC_ERR_INVAL, "published_by is empty or longer than %d",
                       BC_IMAGE_ACTOR_MAX);
    if ((int64_t)len != m->size)
        return bc_fail(err, BC_ERR_INVAL, "the image has %zu bytes, its manifest says %lld", len,
                       (long long)m->size);
    char sha[BC_SHA256_HEX_LEN + 1];
    if ((st = bc_image_sha256_hex(data, len, sha)) != BC_OK)
        return bc_fail(err, st, "SHA-256 of the image failed");
    if (strcmp(sha, m->sha256) != 0)
        return bc_fail(err, BC_ERR_INVAL, "the image's SHA-256 %s is not the manifest's %s", sha,
                       m->sha256);
    return BC_OK;
}

/* BC_OK when version is free or holds this sha256 (*same set). */
static bc_status existing(bc_redis *r, const char *version, const char *sha, bool *same,
                          bc_error *err)
{
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "bodycam:firmware:%s", version);
    const char *argv[] = {"HGET", key, "sha256"};
    redisReply *rep = NULL;
    bc_status st = bc_redis_command(r, 3, argv, NULL, &rep, err);
    if (st != BC_OK)
        return st;
    *same = false;
    if (rep->type == REDIS_REPLY_STRING) {
        if (strcmp(rep->str, sha) == 0)
            *same = true;
        else
            st = bc_fail(err, BC_ERR_STATE, "version %s is published already with SHA-256 %.64s",
                         version, rep->str);
    }
    freeReplyObject(rep);
    return st;
}

/* Two operators publishing different images under one version at the same
 * moment would interleave their chunks: the chunks are written under a
 * claim (the SHA-256, SET NX, expiring after CLAIM_S so a crashed publisher
 * does not block the version for good). The same image may write along. */
#define CLAIM_S "600"

static void claim_key(char *key, size_t size, const char *version)
{
    snprintf(key, size, "bodycam:firmware:%s:publishing", version);
}

static bc_status claim(bc_redis *r, const bc_firmware_manifest *m, bc_error *err)
{
    char key[KEY_MAX];
    claim_key(key, sizeof(key), m->version);
    const char *set[] = {"SET", key, m->sha256, "NX", "EX", CLAIM_S};
    redisReply *rep = NULL;
    bc_status st = bc_redis_command(r, 6, set, NULL, &rep, err);
    bool taken = st == BC_OK && rep->type == REDIS_REPLY_NIL;
    freeReplyObject(rep);
    if (st != BC_OK || !taken)
        return st;
    const char *get[] = {"GET", key};
    rep = NULL;
    st = bc_redis_command(r, 2, get, NULL, &rep, err);
    if (st == BC_OK && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, m->sha256) != 0)
        st = bc_fail(err, BC_ERR_STATE,
                     "another image (SHA-256 %.64s) is being published as version %s right now",
                     rep->str, m->version);
    freeReplyObject(rep);
    return st;
}

static void release(bc_redis *r, const char *version)
{
    char key[KEY_MAX];
    claim_key(key, sizeof(key), version);
    const char *del[] = {"DEL", key};
    redisReply *rep = NULL;
    bc_error ignored;
    (void)bc_redis_command(r, 2, del, NULL, &rep, &ignored); /* it expires anyway */
    freeReplyObject(rep);
}

static bc_status write_chunks(bc_redis *r, const bc_firmware_manifest *m, const uint8_t *data,
                              bc_error *err)
{
    char key[KEY_MAX], field[24];
    snprintf(key, sizeof(key), "bodycam:firmware:%s:chunks", m->version);
    const char *del[] = {"DEL", key};
    redisReply *rep = NULL;
    bc_status st = bc_redis_command(r, 2, del, NULL, &rep, err);
    freeReplyObject(rep);
    for (int64_t n = 0; st == BC_OK && n < m->chunks; n++) {
        int64_t off = n * m->chunk_size;
        int64_t len = m->size - off < m->chunk_size ? m->size - off : m->chunk_size;
        snprintf(field, sizeof(field), "%lld", (long long)n);
        const char *argv[] = {"HSET", key, field, (const char *)data + off};
        const size_t lens[] = {4, strlen(key), strlen(field), (size_t)len};
        rep = NULL;
        st = bc_redis_command(r, 4, argv, lens, &rep, err);
        freeReplyObject(rep);
    }
    return st;
}

static bc_status commit(bc_redis *r, const bc_firmware_manifest *m, const char *by, int64_t now,
                        bool *already, bc_error *err)
{
    static bc_script script;
    static bool ready;
    bc_status st = BC_OK;
    if (!ready && (st = bc_script_init(&script, "image_commit", commit_src, sizeof(commit_src) - 1,
                                       err)) != BC_OK)
        return st;
    ready = true;
    char *json = NULL;
    if ((st = bc_firmware_encode(m, &json, err)) != BC_OK)
        return st;
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 9, err)) != BC_OK) {
        free(json);
        return st;
    }
    bc_script_args_str(&a, m->version);
    bc_script_args_str(&a, json);
    bc_script_args_int(&a, m->size);
    bc_script_args_str(&a, m->sha256);
    bc_script_args_int(&a, m->chunk_size);
    bc_script_args_int(&a, m->chunks);
    bc_script_args_str(&a, m->min_version);
    bc_script_args_int(&a, now);
    bc_script_args_str(&a, by);
    redisReply *rep = NULL;
    st = bc_script_args_run(r, &script, &a, &rep, err);
    bc_script_args_free(&a);
    free(json);
    if (st != BC_OK)
        return st;
    static const bc_reply_word words[] = {{"state", 2}};
    int v = bc_reply_verdict(rep, 2, words, 1);
    char have[80];
    if (v == 0)
        *already = bc_reply_is(rep->element[1], "1");
    else if (v == 1)
        st = bc_fail(err, BC_ERR_STATE, "version %s is published already with SHA-256 %s",
                     m->version, bc_reply_at(rep, 1, have, sizeof(have)));
    else
        st = bc_fail(err, BC_ERR_PARSE, "image_commit answered an unexpected reply");
    freeReplyObject(rep);
    return st;
}

bc_status bc_image_publish(bc_redis *r, const bc_firmware_manifest *m, const uint8_t *data,
                           size_t len, const char *published_by, int64_t now_ms, bool *already,
                           bc_error *err)
{
    bool same = false;
    bc_status st = publish_check(m, data, len, published_by, err);
    if (st == BC_OK)
        st = existing(r, m->version, m->sha256, &same, err);
    if (st == BC_OK && !same) {
        st = claim(r, m, err);
        if (st != BC_OK)
            return st; /* another image's claim stays */
        /* published by someone else between the first look and the claim? */
        st = existing(r, m->version, m->sha256, &same, err);
        if (st == BC_OK && !same)
            st = write_chunks(r, m, data, err);
        if (st == BC_OK && !same)
            st = commit(r, m, published_by, now_ms, &same, err);
        release(r, m->version);
    }
    if (st == BC_OK && already != NULL)
        *already = same;
    return st;
}

/* The record of version from an HGETALL reply. */
static bc_status parse_image(const char *version, const redisReply *rep, bc_image *out,
                             bc_error *err)
{
    memset(out, 0, sizeof(*out));
    const redisReply *manifest = NULL;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *k = rep->element[i], *v = rep->element[i + 1];
        if (bc_reply_is(k, "manifest"))
            manifest = v;
        else if (bc_reply_is(k, "published_at"))
            (void)bc_reply_i64(v, &out->published_at);
        else if (bc_reply_is(k, "published_by"))
            (void)bc_reply_text(v, out->published_by, sizeof(out->published_by));
    }
    if (manifest == NULL || manifest->type != REDIS_REPLY_STRING)
        return bc_fail(err, BC_ERR_NOT_FOUND, "no firmware image %s", version);
    bc_status st = bc_firmware_decode(manifest->str, manifest->len, &out->manifest, err);
    if (st != BC_OK)
        return bc_fail(err, BC_ERR_PARSE, "image %s: its manifest does not read back", version);
    return BC_OK;
}

bc_status bc_image_get(bc_redis *r, const char *version, bc_image *out, bc_error *err)
{
    if (version == NULL || !bc_version_valid(version))
        return bc_fail(err, BC_ERR_INVAL, "'%.40s' is not a firmware version",
                       version != NULL ? version : "");
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "bodycam:firmware:%s", version);
    const char *argv[] = {"HGETALL", key};
    redisReply *rep = NULL;
    bc_status st = bc_redis_command(r, 2, argv, NULL, &rep, err);
    if (st != BC_OK)
        return st;
    st = parse_image(version, rep, out, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_image_list(bc_redis *r, bc_image_fn fn, void *userdata, bc_error *err)
{
    const char *argv[] = {"ZRANGE", VERSIONS_KEY, "0", "-1"};
    redisReply *rep = NULL;
    bc_status st = bc_redis_command(r, 4, argv, NULL, &rep, err);
    if (st != BC_OK)
        return st;
    for (size_t i = 0; i < rep->elements; i++) {
        char version[BC_VERSION_MAX + 1];
        bc_image img;
        if (!bc_reply_str(rep->element[i], version, sizeof(version)))
            continue;
        st = bc_image_get(r, version, &img, err);
        if (st == BC_ERR_NOT_FOUND || st == BC_ERR_PARSE || st == BC_ERR_INVAL) {
            st = BC_OK; /* listed but gone or garbled: not an image to offer */
            continue;
        }
        if (st != BC_OK || !fn(&img, userdata))
            break;
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_image_chunk(bc_redis *r, const char *version, int64_t n, uint8_t **data, size_t *len,
                         bc_error *err)
{
    *data = NULL;
    *len = 0;
    if (version == NULL || !bc_version_valid(version) || n < 0)
        return bc_fail(err, BC_ERR_INVAL, "bad firmware version or chunk number");
    char key[KEY_MAX], field[24];
    snprintf(key, sizeof(key), "bodycam:firmware:%s:chunks", version);
    snprintf(field, sizeof(field), "%lld", (long long)n);
    const char *argv[] = {"HGET", key, field};
    redisReply *rep = NULL;
    bc_status st = bc_redis_command(r, 3, argv, NULL, &rep, err);
    if (st != BC_OK)
        return st;
    if (rep->type != REDIS_REPLY_STRING) {
        st = bc_fail(err, BC_ERR_NOT_FOUND, "no chunk %lld of firmware %s", (long long)n, version);
    } else if ((*data = malloc(rep->len > 0 ? rep->len : 1)) == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "out of memory for a firmware chunk");
    } else {
        memcpy(*data, rep->str, rep->len);
        *len = rep->len;
    }
    freeReplyObject(rep);
    return st;
}
