/*
 * password.c - PBKDF2-HMAC-SHA256 hashes in a self-describing string.
 *
 * Parsing is strict (exact prefix, decimal iterations in range, exact hex
 * lengths), so a truncated or tampered record is refused instead of being
 * verified with a weaker setting. The derived keys are cleansed.
 */
#include "broker-plugins/bodycam-auth/password.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "proto/encoding.h"

#define SALT_LEN 16
#define KEY_LEN 32
#define SCHEME "pbkdf2-sha256"

typedef struct parsed_hash {
    unsigned iterations;
    uint8_t salt[SALT_LEN];
    uint8_t key[KEY_LEN];
} parsed_hash;

static bc_status derive(const char *password, const uint8_t *salt, unsigned iterations,
                        uint8_t key[KEY_LEN], bc_error *err)
{
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, SALT_LEN, (int)iterations,
                          EVP_sha256(), KEY_LEN, key) != 1)
        return bc_fail(err, BC_ERR_CRYPTO, "PBKDF2 failed");
    return BC_OK;
}

bc_status bc_password_hash(const char *password, unsigned iterations, char *out, size_t size,
                           bc_error *err)
{
    if (password == NULL || out == NULL || size < BC_PASSWORD_HASH_MAX)
        return bc_fail(err, BC_ERR_INVAL, "no password or output buffer too small");
    if (iterations < BC_PASSWORD_MIN_ITERATIONS || iterations > BC_PASSWORD_MAX_ITERATIONS)
        return bc_fail(err, BC_ERR_INVAL, "iterations must be in [%u, %u]",
                       BC_PASSWORD_MIN_ITERATIONS, BC_PASSWORD_MAX_ITERATIONS);

    uint8_t salt[SALT_LEN];
    uint8_t key[KEY_LEN];
    char salt_hex[2 * SALT_LEN + 1];
    char key_hex[2 * KEY_LEN + 1];
    bc_status rc = BC_OK;
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        rc = bc_fail(err, BC_ERR_CRYPTO, "no random bytes for the salt");
        goto cleanup;
    }
    rc = derive(password, salt, iterations, key, err);
    if (rc != BC_OK)
        goto cleanup;
    if (bc_hex_encode(salt, sizeof(salt), salt_hex, sizeof(salt_hex)) != BC_OK ||
        bc_hex_encode(key, sizeof(key), key_hex, sizeof(key_hex)) != BC_OK) {
        rc = bc_fail(err, BC_ERR_INVAL, "hex encoding failed");
        goto cleanup;
    }
    int n = snprintf(out, size, SCHEME "$%u$%s$%s", iterations, salt_hex, key_hex);
    if (n < 0 || (size_t)n >= size)
        rc = bc_fail(err, BC_ERR_TOO_BIG, "encoded hash does not fit");
cleanup:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(key_hex, sizeof(key_hex));
    return rc;
}

/* Splits "scheme$iter$salt$key" without allocating; the fields must have
 * exactly the lengths of this format. */
static bc_status parse(const char *encoded, parsed_hash *out, bc_error *err)
{
    static const char prefix[] = SCHEME "$";
    if (encoded == NULL || strncmp(encoded, prefix, sizeof(prefix) - 1) != 0)
        return bc_fail(err, BC_ERR_PARSE, "password hash is not " SCHEME);
    const char *p = encoded + sizeof(prefix) - 1;
    if (*p < '1' || *p > '9')
        return bc_fail(err, BC_ERR_PARSE, "password hash: bad iteration count");
    errno = 0;
    char *end = NULL;
    unsigned long iterations = strtoul(p, &end, 10);
    if (errno != 0 || *end != '$' || iterations < BC_PASSWORD_MIN_ITERATIONS ||
        iterations > BC_PASSWORD_MAX_ITERATIONS)
        return bc_fail(err, BC_ERR_PARSE, "password hash: iteration count out of range");
    const char *salt_hex = end + 1;
    const char *key_hex = salt_hex + 2 * SALT_LEN + 1;
    if (strlen(salt_hex) != 2 * SALT_LEN + 1 + 2 * KEY_LEN || salt_hex[2 * SALT_LEN] != '$')
        return bc_fail(err, BC_ERR_PARSE, "password hash: bad salt or key length");
    char salt_copy[2 * SALT_LEN + 1];
    memcpy(salt_copy, salt_hex, 2 * SALT_LEN);
    salt_copy[2 * SALT_LEN] = '\0';
    if (bc_hex_decode(salt_copy, out->salt, SALT_LEN) != BC_OK ||
        bc_hex_decode(key_hex, out->key, KEY_LEN) != BC_OK)
        return bc_fail(err, BC_ERR_PARSE, "password hash: salt or key is not hex");
    out->iterations = (unsigned)iterations;
    return BC_OK;
}

bc_status bc_password_verify(const char *encoded, const char *password, bc_error *err)
{
    if (password == NULL)
        return bc_fail(err, BC_ERR_DENIED, "no password");
    parsed_hash h;
    uint8_t key[KEY_LEN];
    bc_status rc = parse(encoded, &h, err);
    if (rc != BC_OK)
        return rc;
    rc = derive(password, h.salt, h.iterations, key, err);
    if (rc != BC_OK)
        goto cleanup;
    if (CRYPTO_memcmp(key, h.key, KEY_LEN) != 0)
        rc = bc_fail(err, BC_ERR_DENIED, "wrong password");
cleanup:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(&h, sizeof(h));
    return rc;
}
