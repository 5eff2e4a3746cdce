/*
 * keystore.h - the vault's private keys.
 *
 *   recording keys  X25519, one file per key: DIR/<key_id>.key, where
 *                   key_id is bc_key_id() of its public half (proto/README.md
 *                   "Key ids"). Encrypted at rest: PKCS#8 PEM ("BEGIN
 *                   ENCRYPTED PRIVATE KEY", PBES2 with AES-256-CBC) under the
 *                   passphrase in the master key file, mode 0600. A file
 *                   whose name does not match its key is refused at load.
 *                   Several keys are kept at once: recordings made under an
 *                   older key stay readable until the last of them is purged
 *                   (services/key-rotation/README.md, "Recording key
 *                   rotation"); then the key is destroyed (crypto-shredding).
 *   receipt key     Ed25519: signs vault receipts (command kind vault-receipt)
 *   command key     Ed25519: signs the `upload` commands that ask a camera to
 *                   send (part of) a recording again
 *
 * The master key file holds the passphrase: its bytes up to a trailing
 * newline, BC_KEYSTORE_MASTER_MIN..BC_KEYSTORE_MASTER_MAX bytes, in a
 * regular file readable by its owner only (a file group or others may read
 * is refused). Keep it off the disk of the key directory's backups: the
 * encryption at rest protects a copied key directory only while the master
 * key is not copied with it.
 *
 * Ownership: the keystore owns every EVP_PKEY it hands out; a recording key
 * stays valid until bc_keystore_destroy_recording_key of that key or
 * bc_keystore_close, the signing keys until bc_keystore_close. Not
 * thread-safe.
 */
#ifndef BC_VAULT_KEYSTORE_H
#define BC_VAULT_KEYSTORE_H

#include <stddef.h>

#include <openssl/evp.h>

#include "proto/sign.h"
#include "proto/status.h"

#define BC_KEYSTORE_MASTER_MIN 16  /* bytes of passphrase, at least */
#define BC_KEYSTORE_MASTER_MAX 512 /* bytes of passphrase, at most */

typedef struct bc_keystore bc_keystore;

/* Reads the master key (see above), then loads every DIR/<key_id>.key
 * recording key (none, or no DIR, is BC_ERR_NOT_FOUND; files not ending in
 * ".key" are ignored), and the receipt and command signing keys (either
 * path may be NULL: a keystore for export only). A recording key stored
 * in PLAIN PEM (as the PKI writes it) is encrypted in place durably (the
 * encrypted file written, fsynced and renamed over it, the directory
 * fsynced, then the old plain bytes overwritten when no other name links
 * them) and logged "encrypted at rest now". A shredding a crash cut short
 * (DIR/<key_id>.key.shred) is finished. Loading is all or nothing.
 * BC_ERR_WRONG_KEY when a key does not decrypt with the master key (the
 * wrong master key, or a damaged file); BC_ERR_DENIED for a master key
 * file group or others may read; BC_ERR_INVAL for a master key of the
 * wrong length, a key of the wrong type or a file name that is not its key
 * id; BC_ERR_PARSE for a file that is not a PEM key; BC_ERR_IO,
 * BC_ERR_NOMEM. The caller owns *out. */
bc_status bc_keystore_open(const char *recording_key_dir, const char *master_key_path,
                           const char *receipt_key_path, const char *command_key_path,
                           bc_keystore **out, bc_error *err);

/* Frees every key and wipes the master key from memory (NULL allowed). */
void bc_keystore_close(bc_keystore *ks);

/* The recording private key with that id, or NULL (borrowed). */
EVP_PKEY *bc_keystore_recording_key(const bc_keystore *ks, const char *key_id);

/* How many recording keys are loaded. */
size_t bc_keystore_recording_key_count(const bc_keystore *ks);

/* The id of the i-th loaded recording key (0 <= i < count; borrowed, valid
 * until the set of keys changes), or NULL. */
const char *bc_keystore_recording_key_id(const bc_keystore *ks, size_t i);

/* Makes a new X25519 recording key, writes it encrypted under the master
 * key to DIR/<key_id>.key durably (mode 0600), and loads it; its id in
 * key_id. The private half leaves the keystore only as that encrypted
 * file. BC_ERR_CRYPTO, BC_ERR_IO (nothing loaded; a temporary file may be
 * left, see common/file.h), BC_ERR_EXISTS (a key with that id is loaded
 * already: never in practice), BC_ERR_NOMEM. */
bc_status bc_keystore_create_recording_key(bc_keystore *ks, char key_id[BC_KEY_ID_LEN + 1],
                                           bc_error *err);

/* Destroys a recording key: DIR/<key_id>.key is renamed to
 * <key_id>.key.shred (directory fsynced: it is never loaded again), its
 * bytes overwritten with zeros and fsynced, the file unlinked, the
 * directory fsynced, and the key freed from memory. Idempotent: BC_OK when
 * the key is gone afterwards, also when there was nothing to destroy.
 * BC_ERR_INVAL for a key id that is not 16 hex digits, BC_ERR_IO (the key
 * stays loaded when its file could not be renamed away). */
bc_status bc_keystore_destroy_recording_key(bc_keystore *ks, const char *key_id, bc_error *err);

/* The signing keys, or NULL when not loaded (borrowed). */
EVP_PKEY *bc_keystore_receipt_key(const bc_keystore *ks);
EVP_PKEY *bc_keystore_command_key(const bc_keystore *ks);

#endif
