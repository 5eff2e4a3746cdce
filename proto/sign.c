/*
 * sign.c - canonical encoding, Ed25519/X25519 key handling, sign and verify.
 *
 * Canonical bytes (what a signature covers), byte for byte:
 *
 *     domain bytes (no length, no terminator)
 *     then per field, in the order the caller appends them:
 *         u32 big-endian length | the field's bytes
 *     an integer is a field of length 8 holding the value as u64 big endian
 *     (an i64 is its two's-complement u64).
 *
 * The domains in use ("bodycam/v1/cmd", "bodycam/v1/firmware") are not
 * prefixes of each other, so a signature made for one domain can never be
 * read as a signature for another.
 *
 * The buffer is sticky-failed like hiredis' context: the first failure
 * (allocation, a field over 4 GiB) is remembered and every later append is a
 * no-op, so a caller appends all fields and checks bc_canon_status() once.
 *
 * Every key loader empties OpenSSL's error queue on failure, so a refused
 * key never leaves stale errors behind for an unrelated later call.
 */
#include "proto/sign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "proto/encoding.h"

#define CANON_MIN_CAP 256

static void canon_reserve(bc_canon *c, size_t extra)
{
    if (c->status != BC_OK)
        return;
    if (extra > SIZE_MAX - c->len) {
        c->status = BC_ERR_TOO_BIG;
        return;
    }
    size_t need = c->len + extra;
    if (need <= c->cap)
        return;
    size_t cap = c->cap < CANON_MIN_CAP ? CANON_MIN_CAP : c->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(c->data, cap);
    if (p == NULL) {
        c->status = BC_ERR_NOMEM;
        return;
    }
    c->data = p;
    c->cap = cap;
}

static void canon_raw(bc_canon *c, const void *bytes, size_t len)
{
    canon_reserve(c, len);
    if (c->status != BC_OK || len == 0)
        return;
    memcpy(c->data + c->len, bytes, len);
    c->len += len;
}

void bc_canon_begin(bc_canon *c, const char *domain)
{
    if (c == NULL)
        return;
    c->len = 0;
    c->status = BC_OK;
    if (domain != NULL)
        canon_raw(c, domain, strlen(domain));
}

void bc_canon_bytes(bc_canon *c, const void *bytes, size_t len)
{
    if (c == NULL || c->status != BC_OK)
        return;
    if (len > UINT32_MAX) {
        c->status = BC_ERR_TOO_BIG;
        return;
    }
    if (bytes == NULL && len != 0) {
        c->status = BC_ERR_INVAL;
        return;
    }
    uint8_t prefix[4];
    bc_be32_store(prefix, (uint32_t)len);
    canon_reserve(c, sizeof(prefix) + len); /* one reservation: all or nothing */
    canon_raw(c, prefix, sizeof(prefix));
    canon_raw(c, bytes, len);
}

void bc_canon_str(bc_canon *c, const char *s)
{
    bc_canon_bytes(c, s == NULL ? "" : s, s == NULL ? 0 : strlen(s));
}

void bc_canon_u64(bc_canon *c, uint64_t v)
{
    uint8_t be[8];
    bc_be64_store(be, v);
    bc_canon_bytes(c, be, sizeof(be));
}

void bc_canon_i64(bc_canon *c, int64_t v)
{
    bc_canon_u64(c, (uint64_t)v);
}

bc_status bc_canon_status(const bc_canon *c)
{
    if (c == NULL)
        return BC_ERR_INVAL;
    return c->status;
}

void bc_canon_free(bc_canon *c)
{
    if (c == NULL)
        return;
    free(c->data);
    c->data = NULL;
    c->len = 0;
    c->cap = 0;
    c->status = BC_OK;
}

/* Refuses to prompt for a passphrase: an encrypted key file is an error,
 * never a daemon blocked on a terminal read. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static const char *key_type_name(int type)
{
    switch (type) {
    case EVP_PKEY_ED25519:
        return "Ed25519";
    case EVP_PKEY_X25519:
        return "X25519";
    default:
        return "unsupported";
    }
}

static int key_type_supported(int type)
{
    return type == EVP_PKEY_ED25519 || type == EVP_PKEY_X25519;
}

static bc_status key_load(const char *path, int type, int private_part, EVP_PKEY **out,
                          bc_error *err)
{
    if (path == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "key path and output must not be NULL");
    if (!key_type_supported(type))
        return bc_fail(err, BC_ERR_INVAL, "key type %d is neither Ed25519 nor X25519", type);
    *out = NULL;

    const char *what = private_part ? "private" : "public";
    EVP_PKEY *key = NULL;
    bc_status rc = BC_OK;
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        int saved = errno;
        ERR_clear_error();
        errno = saved;
        return bc_fail(err, BC_ERR_IO, "cannot open %s key file '%s': %s", what, path,
                       strerror(saved));
    }
    if (private_part)
        key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    else
        key = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    if (key == NULL) {
        rc = bc_fail(err, BC_ERR_PARSE, "'%s' does not hold a PEM %s key", path, what);
        goto cleanup;
    }
    if (EVP_PKEY_get_id(key) != type) {
        rc = bc_fail(err, BC_ERR_INVAL, "'%s' holds a %s key of another type, expected %s", path,
                     what, key_type_name(type));
        goto cleanup;
    }
    *out = key;
    key = NULL;

cleanup:
    if (rc != BC_OK)
        ERR_clear_error();
    EVP_PKEY_free(key);
    BIO_free(bio);
    return rc;
}

bc_status bc_key_load_private(const char *path, int type, EVP_PKEY **out, bc_error *err)
{
    return key_load(path, type, 1, out, err);
}

bc_status bc_key_load_public(const char *path, int type, EVP_PKEY **out, bc_error *err)
{
    return key_load(path, type, 0, out, err);
}

bc_status bc_key_from_raw_public(int type, const uint8_t raw[BC_RAW_KEY_LEN], EVP_PKEY **out)
{
    if (raw == NULL || out == NULL || !key_type_supported(type))
        return BC_ERR_INVAL;
    *out = EVP_PKEY_new_raw_public_key(type, NULL, raw, BC_RAW_KEY_LEN);
    if (*out == NULL) {
        ERR_clear_error();
        return BC_ERR_CRYPTO;
    }
    return BC_OK;
}

bc_status bc_key_raw_public(EVP_PKEY *key, uint8_t raw[BC_RAW_KEY_LEN])
{
    if (key == NULL || raw == NULL || !key_type_supported(EVP_PKEY_get_id(key)))
        return BC_ERR_INVAL;
    size_t len = BC_RAW_KEY_LEN;
    if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != BC_RAW_KEY_LEN) {
        ERR_clear_error();
        return BC_ERR_CRYPTO;
    }
    return BC_OK;
}

bc_status bc_key_id(EVP_PKEY *key, char id[BC_KEY_ID_LEN + 1])
{
    if (id == NULL)
        return BC_ERR_INVAL;
    uint8_t raw[BC_RAW_KEY_LEN];
    bc_status rc = bc_key_raw_public(key, raw);
    if (rc != BC_OK)
        return rc;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    if (EVP_Digest(raw, sizeof(raw), digest, NULL, EVP_sha256(), NULL) != 1) {
        ERR_clear_error();
        return BC_ERR_CRYPTO;
    }
    return bc_hex_encode(digest, BC_KEY_ID_LEN / 2, id, BC_KEY_ID_LEN + 1);
}

bc_status bc_sign(EVP_PKEY *private_key, const uint8_t *msg, size_t len,
                  uint8_t sig[BC_ED25519_SIG_LEN])
{
    if (private_key == NULL || sig == NULL || (msg == NULL && len != 0))
        return BC_ERR_INVAL;
    if (EVP_PKEY_get_id(private_key) != EVP_PKEY_ED25519)
        return BC_ERR_INVAL;
    static const uint8_t empty[1] = {0};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return BC_ERR_NOMEM;
    bc_status rc = BC_OK;
    size_t sig_len = BC_ED25519_SIG_LEN;
    /* Ed25519 hashes internally: the digest argument must be NULL. */
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, private_key) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, msg != NULL ? msg : empty, len) != 1 ||
        sig_len != BC_ED25519_SIG_LEN) {
        ERR_clear_error();
        rc = BC_ERR_CRYPTO;
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

bc_status bc_verify(EVP_PKEY *public_key, const uint8_t *msg, size_t len,
                    const uint8_t sig[BC_ED25519_SIG_LEN])
{
    if (public_key == NULL || sig == NULL || (msg == NULL && len != 0))
        return BC_ERR_INVAL;
    if (EVP_PKEY_get_id(public_key) != EVP_PKEY_ED25519)
        return BC_ERR_SIGNATURE;
    static const uint8_t empty[1] = {0};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return BC_ERR_NOMEM;
    bc_status rc = BC_OK;
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, public_key) != 1 ||
        EVP_DigestVerify(ctx, sig, BC_ED25519_SIG_LEN, msg != NULL ? msg : empty, len) != 1) {
        ERR_clear_error();
        rc = BC_ERR_SIGNATURE;
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}
