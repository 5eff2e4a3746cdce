/*
 * keystore.h - the vault's private keys.
 *
 *   recording keys  X25519, one file per key: DIR/<key_id>.key (PEM, mode
 *                   0600), where key_id is bc_key_id() of its public half
 *                   (proto/README.md "Key ids"). A file whose name does not
 *                   match its key is refused at load. Several keys are kept
 *                   at once: recordings made under an older key stay
 *                   readable until the last of them is purged (issue 7
 *                   rotates them).
 *   receipt key     Ed25519: signs vault receipts (command kind vault-receipt)
 *   command key     Ed25519: signs the `upload` commands that ask a camera to
 *                   send (part of) a recording again
 *
 * Ownership: the keystore owns every EVP_PKEY it hands out; they stay valid
 * until bc_keystore_close.
 */
#ifndef BC_VAULT_KEYSTORE_H
#define BC_VAULT_KEYSTORE_H

#include <stddef.h>

#include <openssl/evp.h>

#include "proto/status.h"

typedef struct bc_keystore bc_keystore;

/* Loads every DIR/<key_id>.key recording key (none, or no DIR, is
 * BC_ERR_NOT_FOUND; files not ending in ".key" are ignored), and the
 * receipt and command signing keys (either path may be NULL: a keystore for
 * export only). BC_ERR_INVAL for a key of the wrong type or a file name that
 * is not its key id, BC_ERR_IO, BC_ERR_NOMEM. The caller owns *out. */
bc_status bc_keystore_open(const char *recording_key_dir, const char *receipt_key_path,
                           const char *command_key_path, bc_keystore **out, bc_error *err);
void bc_keystore_close(bc_keystore *ks);

/* The recording private key with that id, or NULL (borrowed). */
EVP_PKEY *bc_keystore_recording_key(const bc_keystore *ks, const char *key_id);

/* How many recording keys are loaded. */
size_t bc_keystore_recording_key_count(const bc_keystore *ks);

/* The signing keys, or NULL when not loaded (borrowed). */
EVP_PKEY *bc_keystore_receipt_key(const bc_keystore *ks);
EVP_PKEY *bc_keystore_command_key(const bc_keystore *ks);

#endif
