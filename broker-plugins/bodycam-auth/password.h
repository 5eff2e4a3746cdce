/*
 * password.h - slow, salted password hashes for dashboard users.
 *
 * Format (one printable string, stored in Redis as the dashboard user's
 * `hash` field):
 *
 *     pbkdf2-sha256$<iterations>$<salt, 32 hex digits>$<key, 64 hex digits>
 *
 * PBKDF2-HMAC-SHA256 (OpenSSL PKCS5_PBKDF2_HMAC) with a 16-byte random salt
 * and a 32-byte key. Verification recomputes the key with the stored salt
 * and iteration count and compares in constant time (CRYPTO_memcmp).
 *
 * Cost: about 35 ms per 100,000 iterations on this machine kind. The broker
 * verifies on its only thread, so identity.c caches a success (keyed by a
 * per-process HMAC of user and password) and budgets failed attempts.
 */
#ifndef BC_AUTH_PASSWORD_H
#define BC_AUTH_PASSWORD_H

#include <stddef.h>

#include "proto/status.h"

#define BC_PASSWORD_HASH_MAX 160 /* encoded string, with the NUL */
#define BC_PASSWORD_DEFAULT_ITERATIONS 100000
#define BC_PASSWORD_MIN_ITERATIONS 10000    /* weaker hashes are refused */
#define BC_PASSWORD_MAX_ITERATIONS 10000000 /* a bound on one check's time */

/* Hashes password with a fresh random salt into out (size >=
 * BC_PASSWORD_HASH_MAX). BC_ERR_INVAL for iterations outside
 * [MIN, MAX], BC_ERR_CRYPTO if OpenSSL fails. */
bc_status bc_password_hash(const char *password, unsigned iterations, char *out, size_t size,
                           bc_error *err);

/* Checks password against an encoded hash. BC_OK when it matches,
 * BC_ERR_DENIED when it does not, BC_ERR_PARSE for a malformed encoded
 * string (which is also a refusal), BC_ERR_CRYPTO if OpenSSL fails. The
 * time taken depends on the iteration count only. */
bc_status bc_password_verify(const char *encoded, const char *password, bc_error *err);

#endif
