/*
 * keystore.c - the vault's private keys, loaded once at start.
 *
 * A recording key's file name is its key id, and a camera's manifest and
 * recording header name the key by that id; a file whose name is not the id
 * of the key inside is refused rather than indexed under either, so that a
 * key copied to the wrong name cannot silently make recordings unreadable
 * (or shadow another key). Loading is all or nothing: one bad file fails
 * the open, the operator fixes it, nothing is half-loaded.
 *
 * Keys are kept in a small array: a vault holds a handful of recording keys
 * (the current one and those kept until their last recording is purged).
 */
#include "vault/keystore.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/file.h"
#include "common/log.h"
#include "proto/sign.h"

#define KEY_SUFFIX ".key"

typedef struct recording_key {
    char id[BC_KEY_ID_LEN + 1];
    EVP_PKEY *key;
} recording_key;

struct bc_keystore {
    recording_key *keys;
    size_t count, cap;
    EVP_PKEY *receipt;
    EVP_PKEY *command;
};

void bc_keystore_close(bc_keystore *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->count; i++)
        EVP_PKEY_free(ks->keys[i].key);
    free(ks->keys);
    EVP_PKEY_free(ks->receipt);
    EVP_PKEY_free(ks->command);
    free(ks);
}

/* True for a name of the form "<something>.key". */
static bool is_key_file(const char *name)
{
    size_t n = strlen(name), k = strlen(KEY_SUFFIX);
    return n > k && strcmp(name + n - k, KEY_SUFFIX) == 0;
}

static bc_status keys_add(bc_keystore *ks, const char *id, EVP_PKEY *key, bc_error *err)
{
    if (ks->count == ks->cap) {
        size_t cap = ks->cap == 0 ? 4 : ks->cap * 2;
        recording_key *p = realloc(ks->keys, cap * sizeof(*p));
        if (p == NULL)
            return bc_fail(err, BC_ERR_NOMEM, "no memory for recording key %s", id);
        ks->keys = p;
        ks->cap = cap;
    }
    recording_key *rk = &ks->keys[ks->count++];
    snprintf(rk->id, sizeof(rk->id), "%s", id);
    rk->key = key;
    return BC_OK;
}

/* Loads dir/name as an X25519 private key named by its key id. */
static bc_status load_recording_key(bc_keystore *ks, const char *dir, const char *name,
                                    bc_error *err)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return bc_fail(err, BC_ERR_TOO_BIG, "recording key path '%s/%s' is too long", dir, name);
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0)
        log_warnx("keystore: recording key '%s' is readable by others (mode %03o); use 0600", path,
                  (unsigned)(sb.st_mode & 0777));
    EVP_PKEY *key = NULL;
    bc_status rc = bc_key_load_private(path, EVP_PKEY_X25519, &key, err);
    if (rc != BC_OK)
        return rc;
    char id[BC_KEY_ID_LEN + 1], expected[BC_KEY_ID_LEN + sizeof(KEY_SUFFIX)];
    rc = bc_key_id(key, id);
    if (rc != BC_OK) {
        rc = bc_fail(err, rc, "cannot compute the key id of '%s'", path);
        goto cleanup;
    }
    snprintf(expected, sizeof(expected), "%s%s", id, KEY_SUFFIX);
    if (strcmp(name, expected) != 0) {
        rc = bc_fail(err, BC_ERR_INVAL, "recording key '%s' has key id %s: rename it to %s", path,
                     id, expected);
        goto cleanup;
    }
    rc = keys_add(ks, id, key, err);
    if (rc == BC_OK)
        key = NULL; /* owned by ks */

cleanup:
    EVP_PKEY_free(key);
    return rc;
}

static bc_status load_recording_keys(bc_keystore *ks, const char *dir, bc_error *err)
{
    bc_file_dir it;
    bc_status rc = bc_file_dir_open(&it, dir, err);
    if (rc == BC_ERR_NOT_FOUND)
        return bc_fail(err, rc, "recording key directory '%s' does not exist", dir);
    if (rc != BC_OK)
        return rc;
    const char *name = NULL;
    while ((rc = bc_file_dir_next(&it, &name, err)) == BC_OK && name != NULL) {
        if (!is_key_file(name))
            continue; /* not a key file (a README, a backup) */
        rc = load_recording_key(ks, dir, name, err);
        if (rc != BC_OK)
            break;
    }
    bc_file_dir_close(&it);
    if (rc == BC_OK && ks->count == 0)
        rc = bc_fail(err, BC_ERR_NOT_FOUND, "no recording key (*%s) in '%s'", KEY_SUFFIX, dir);
    return rc;
}

static bc_status load_signing_key(const char *path, const char *what, EVP_PKEY **out, bc_error *err)
{
    if (path == NULL)
        return BC_OK;
    bc_error kerr;
    bc_status rc = bc_key_load_private(path, EVP_PKEY_ED25519, out, &kerr);
    if (rc != BC_OK)
        return bc_fail(err, rc, "%s key: %s", what, kerr.text);
    return BC_OK;
}

bc_status bc_keystore_open(const char *recording_key_dir, const char *receipt_key_path,
                           const char *command_key_path, bc_keystore **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "keystore open: no result pointer");
    *out = NULL;
    if (recording_key_dir == NULL)
        return bc_fail(err, BC_ERR_INVAL, "keystore open: no recording key directory");
    bc_keystore *ks = calloc(1, sizeof(*ks));
    if (ks == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the keystore");
    bc_status rc = load_recording_keys(ks, recording_key_dir, err);
    if (rc == BC_OK)
        rc = load_signing_key(receipt_key_path, "receipt", &ks->receipt, err);
    if (rc == BC_OK)
        rc = load_signing_key(command_key_path, "command", &ks->command, err);
    if (rc != BC_OK) {
        bc_keystore_close(ks);
        return rc;
    }
    *out = ks;
    return BC_OK;
}

EVP_PKEY *bc_keystore_recording_key(const bc_keystore *ks, const char *key_id)
{
    if (ks == NULL || key_id == NULL)
        return NULL;
    for (size_t i = 0; i < ks->count; i++) {
        if (strcmp(ks->keys[i].id, key_id) == 0)
            return ks->keys[i].key;
    }
    return NULL;
}

size_t bc_keystore_recording_key_count(const bc_keystore *ks)
{
    return ks != NULL ? ks->count : 0;
}

EVP_PKEY *bc_keystore_receipt_key(const bc_keystore *ks)
{
    return ks != NULL ? ks->receipt : NULL;
}

EVP_PKEY *bc_keystore_command_key(const bc_keystore *ks)
{
    return ks != NULL ? ks->command : NULL;
}
