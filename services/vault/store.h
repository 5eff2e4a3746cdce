/*
 * store.h - the content-addressed ciphertext store of the vault.
 *
 * A committed recording file is kept, exactly as the camera wrote it (its
 * header carries the data key wrapped for the vault's recording key), under
 * the lowercase hex SHA-256 of its bytes:
 *
 *   DIR/objects/<h0h1>/<h2h3>/<sha256>     mode 0400
 *
 * Commit = hard link (or copy, across file systems) of a verified staging
 * file to a temporary name in the object's directory, fsync of the file,
 * rename to the final name, fsync of the directory: an object is either
 * absent or whole. Committing an object that exists is BC_OK when the
 * existing one has the same size (content addressing: same name, same
 * bytes); the staging file is left to the caller. Deleting an object
 * unlinks it and fsyncs its directory; deleting the file deletes the
 * recording's wrapped data key with it.
 *
 * The store never decrypts; see keystore.h and the reader in
 * proto/recording.h for that.
 */
#ifndef BC_VAULT_STORE_H
#define BC_VAULT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/firmware.h" /* BC_SHA256_HEX_LEN */
#include "proto/status.h"

typedef struct bc_store bc_store;

/* Opens the store in dir (DIR/objects created 0700 when missing). */
bc_status bc_store_open(const char *dir, bc_store **out, bc_error *err);
void bc_store_close(bc_store *st);

/* The object's path for a sha256 (64 lowercase hex, else BC_ERR_INVAL),
 * and the path relative to the store directory (may be NULL). */
bc_status bc_store_path(const bc_store *st, const char *sha256, char *path, size_t size,
                        char *relative, size_t relative_size, bc_error *err);

/* Commits the file at src_path (not modified, not removed) as the object
 * sha256 of `size` bytes, durably (see above). The caller has verified the
 * hash; the store checks the size (src_path of another size: BC_ERR_INVAL).
 * BC_ERR_EXISTS never happens: an equal object is BC_OK with *existed true
 * (may be NULL); an object of that name with another size is
 * BC_ERR_TAMPERED. BC_ERR_IO. A hard link shares src_path's inode (made
 * 0400): nothing may write to src_path after the commit. */
bc_status bc_store_commit(bc_store *st, const char *src_path, const char *sha256, uint64_t size,
                          bool *existed, bc_error *err);

/* True when the object exists. */
bool bc_store_exists(const bc_store *st, const char *sha256);

/* Deletes the object durably. A missing object is BC_OK with *existed
 * false (may be NULL) so that a purge can be redone after a crash. */
bc_status bc_store_delete(bc_store *st, const char *sha256, bool *existed, bc_error *err);

/* Streams the object and checks its SHA-256 and size against the name
 * (a scrub). BC_ERR_TAMPERED on a mismatch, BC_ERR_NOT_FOUND, BC_ERR_IO. */
bc_status bc_store_check(const bc_store *st, const char *sha256, uint64_t size, bc_error *err);

#endif
