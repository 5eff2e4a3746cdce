/*
 * sign.h - Ed25519 keys, signatures and the canonical encoding they cover.
 *
 * Signatures never cover JSON text: the signer and the verifier both build
 * the same canonical bytes from the decoded struct with bc_canon, so field
 * order and whitespace cannot change what was signed. The canonical form is
 * a domain string followed by fields, each a 4-byte big-endian length and
 * its bytes; integers are 8 bytes big endian.
 *
 * Keys are OpenSSL EVP_PKEYs loaded from PEM files (PKCS#8 private keys,
 * SubjectPublicKeyInfo public keys). The caller owns a loaded key and frees
 * it with EVP_PKEY_free().
 */
#ifndef BC_PROTO_SIGN_H
#define BC_PROTO_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/status.h"

#define BC_ED25519_SIG_LEN 64
#define BC_RAW_KEY_LEN 32
#define BC_KEY_ID_LEN 16 /* hex digits, without the NUL */

/* A growable byte buffer for canonical encodings. Zero-initialise, append,
 * read data/len, then bc_canon_free(). A failed append makes the buffer
 * sticky-failed: later appends do nothing and bc_canon_status() says why. */
typedef struct bc_canon {
    uint8_t *data;
    size_t len;
    size_t cap;
    bc_status status;
} bc_canon;

void bc_canon_begin(bc_canon *c, const char *domain); /* resets and appends the domain */
void bc_canon_bytes(bc_canon *c, const void *bytes, size_t len);
void bc_canon_str(bc_canon *c, const char *s); /* NULL is encoded as "" */
void bc_canon_u64(bc_canon *c, uint64_t v);
void bc_canon_i64(bc_canon *c, int64_t v);
bc_status bc_canon_status(const bc_canon *c);
void bc_canon_free(bc_canon *c);

/* Loads a private or public key of the given type (EVP_PKEY_ED25519 or
 * EVP_PKEY_X25519) from a PEM file. A file holding another key type is
 * BC_ERR_INVAL; unreadable is BC_ERR_IO; not PEM is BC_ERR_PARSE. */
bc_status bc_key_load_private(const char *path, int type, EVP_PKEY **out, bc_error *err);
bc_status bc_key_load_public(const char *path, int type, EVP_PKEY **out, bc_error *err);

/* Makes a public key from 32 raw bytes (e.g. a key pushed in a command). */
bc_status bc_key_from_raw_public(int type, const uint8_t raw[BC_RAW_KEY_LEN], EVP_PKEY **out);

/* The raw 32 bytes of a key's public half. */
bc_status bc_key_raw_public(EVP_PKEY *key, uint8_t raw[BC_RAW_KEY_LEN]);

/* The key id of a key's public half: 16 lowercase hex digits of the first
 * 8 bytes of SHA-256 over the raw public key, NUL-terminated. */
bc_status bc_key_id(EVP_PKEY *key, char id[BC_KEY_ID_LEN + 1]);

/* Ed25519 over msg. BC_ERR_CRYPTO only if OpenSSL itself fails. */
bc_status bc_sign(EVP_PKEY *private_key, const uint8_t *msg, size_t len,
                  uint8_t sig[BC_ED25519_SIG_LEN]);

/* BC_OK when sig is a valid signature of msg by public_key (a private key
 * works too: its public half is used); BC_ERR_SIGNATURE otherwise. */
bc_status bc_verify(EVP_PKEY *public_key, const uint8_t *msg, size_t len,
                    const uint8_t sig[BC_ED25519_SIG_LEN]);

#endif
