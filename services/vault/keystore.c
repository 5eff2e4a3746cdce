/*
 * keystore.c - the vault's private keys: loaded at start, recording keys
 * made and destroyed while the vault runs (issue 7's rotation).
 *
 * A recording key's file name is its key id, and a camera's manifest and
 * recording header name the key by that id; a file whose name is not the id
 * of the key inside is refused rather than indexed under either, so that a
 * key copied to the wrong name cannot silently make recordings unreadable
 * (or shadow another key). Loading is all or nothing: one bad file fails
 * the open, the operator fixes it, nothing is half-loaded.
 *
 * Encryption at rest: every recording key file is PKCS#8 PEM encrypted
 * with PBES2 (PBKDF2, AES-256-CBC) under the master key file's passphrase
 * (OpenSSL does all of it: PEM_write_bio_PKCS8PrivateKey,
 * PEM_read_bio_PrivateKey). The password callback notes whether OpenSSL
 * asked for the passphrase: a key that loads without asking was stored in
 * plain and is encrypted in place at once. The order of that conversion:
 *
 *   open the plain file (keep the descriptor) ─► write the encrypted file
 *   durably over the name (tmp, fsync, rename, fsync dir) ─► only then, when
 *   the old inode has no name left, overwrite its bytes with zeros and fsync
 *
 * so a crash at any point leaves the key readable under its name, plain or
 * encrypted, never neither.
 *
 * Destroying a key (crypto-shredding) renames it away from its .key name
 * first (and fsyncs the directory), so that a crash in the middle never
 * leaves a half-zeroed file the next start would refuse to load; the
 * .shred leftover is finished at the next open. Zeros over the file's
 * blocks are best effort on a journalling or copy-on-write file system;
 * what makes the shredding final is that the file's content was encrypted
 * and the name is gone from the key directory and its backups from then on.
 *
 * Keys are kept in a small array: a vault holds a handful of recording keys
 * (the current one and those kept until their last recording is purged).
 */
#include "vault/keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/file.h"
#include "common/log.h"

#define KEY_SUFFIX ".key"
#define SHRED_SUFFIX ".key.shred"
#define KEY_FILE_MAX (16 * 1024) /* a PEM key is a few hundred bytes */
#define MASTER_FILE_MAX 4096

typedef struct recording_key {
    char id[BC_KEY_ID_LEN + 1];
    EVP_PKEY *key;
} recording_key;

struct bc_keystore {
    recording_key *keys;
    size_t count, cap;
    EVP_PKEY *receipt;
    EVP_PKEY *command;
    char dir[PATH_MAX];
    char *pass; /* the master key; wiped at close */
    size_t pass_len;
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
    if (ks->pass != NULL)
        OPENSSL_clear_free(ks->pass, ks->pass_len + 1);
    free(ks);
}

/* True for a name ending in suffix with something before it. */
static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && strcmp(name + n - k, suffix) == 0;
}

/* 16 lowercase hex digits. */
static bool key_id_valid(const char *id)
{
    if (id == NULL || strlen(id) != BC_KEY_ID_LEN)
        return false;
    for (size_t i = 0; i < BC_KEY_ID_LEN; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static bc_status key_path(const bc_keystore *ks, const char *name, const char *suffix, char *out,
                          size_t size, bc_error *err)
{
    int n = snprintf(out, size, "%s/%s%s", ks->dir, name, suffix);
    if (n < 0 || (size_t)n >= size)
        return bc_fail(err, BC_ERR_TOO_BIG, "recording key path '%s/%s%s' is too long", ks->dir,
                       name, suffix);
    return BC_OK;
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

static size_t keys_find(const bc_keystore *ks, const char *id)
{
    for (size_t i = 0; i < ks->count; i++) {
        if (strcmp(ks->keys[i].id, id) == 0)
            return i;
    }
    return ks->count;
}

/* ---- the master key ---- */

static bc_status master_read(bc_keystore *ks, const char *path, bc_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return bc_fail(err, errno == ENOENT ? BC_ERR_NOT_FOUND : BC_ERR_IO,
                       "master key file '%s': %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return bc_fail(err, BC_ERR_INVAL, "master key file '%s' is not a regular file", path);
    if ((sb.st_mode & 077) != 0)
        return bc_fail(err, BC_ERR_DENIED,
                       "master key file '%s' may be read by group or others (mode %03o): "
                       "chmod 600 it",
                       path, (unsigned)(sb.st_mode & 0777));
    char *buf = NULL;
    size_t len = 0;
    bc_status st = bc_file_read_all(path, MASTER_FILE_MAX, &buf, &len, err);
    if (st != BC_OK)
        return st;
    /* the passphrase is the file's bytes up to a trailing newline */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if (len < BC_KEYSTORE_MASTER_MIN || len > BC_KEYSTORE_MASTER_MAX) {
        st = bc_fail(err, BC_ERR_INVAL, "master key file '%s' holds %zu bytes; %d..%d are needed",
                     path, len, BC_KEYSTORE_MASTER_MIN, BC_KEYSTORE_MASTER_MAX);
        OPENSSL_clear_free(buf, len + 1);
        return st;
    }
    ks->pass = buf;
    ks->pass_len = len;
    return BC_OK;
}

typedef struct pass_ctx {
    const bc_keystore *ks;
    bool asked; /* OpenSSL wanted the passphrase: the PEM was encrypted */
} pass_ctx;

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    pass_ctx *p = u;
    p->asked = true;
    if (size < 0 || p->ks->pass_len > (size_t)size)
        return -1;
    memcpy(buf, p->ks->pass, p->ks->pass_len);
    return (int)p->ks->pass_len;
}

/* key as encrypted PKCS#8 PEM in a new buffer (*out, *len; the caller
 * frees it with free()). */
static bc_status pem_encrypted(const bc_keystore *ks, EVP_PKEY *key, char **out, size_t *len,
                               bc_error *err)
{
    *out = NULL;
    bc_status st = BC_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory to encrypt a recording key");
    if (PEM_write_bio_PKCS8PrivateKey(bio, key, EVP_aes_256_cbc(), ks->pass, (int)ks->pass_len,
                                      NULL, NULL) != 1) {
        st = bc_fail(err, BC_ERR_CRYPTO, "cannot encrypt a recording key under the master key");
        goto cleanup;
    }
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0 || (*out = malloc((size_t)n)) == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "no memory for an encrypted recording key");
        goto cleanup;
    }
    memcpy(*out, data, (size_t)n);
    *len = (size_t)n;

cleanup:
    ERR_clear_error();
    BIO_free(bio);
    return st;
}

/* Writes zeros over fd's size bytes and fsyncs. */
static bc_status zero_fd(int fd, const char *path, bc_error *err)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    static const uint8_t zeros[4096];
    if (lseek(fd, 0, SEEK_SET) < 0)
        return bc_fail(err, BC_ERR_IO, "cannot seek in '%s': %s", path, strerror(errno));
    for (off_t left = sb.st_size; left > 0;) {
        size_t n = left > (off_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;
        bc_status st = bc_file_write_all(fd, zeros, n, path, err);
        if (st != BC_OK)
            return st;
        left -= (off_t)n;
    }
    if (fsync(fd) != 0)
        return bc_fail(err, BC_ERR_IO, "cannot fsync '%s': %s", path, strerror(errno));
    return BC_OK;
}

/* The plain key at path is rewritten encrypted (order in the design
 * comment at the top). */
static bc_status encrypt_in_place(const bc_keystore *ks, const char *path, const char *id,
                                  EVP_PKEY *key, bc_error *err)
{
    char *pem = NULL;
    size_t len = 0;
    int old = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    bc_status st = pem_encrypted(ks, key, &pem, &len, err);
    if (st == BC_OK)
        st = bc_file_write_durable(path, pem, len, 0600, err);
    if (st != BC_OK)
        goto cleanup;
    log_info("keystore: recording key %s encrypted at rest now (%s)", id, path);
    struct stat sb;
    if (old < 0 || fstat(old, &sb) != 0 || sb.st_nlink != 0) {
        log_warnx("keystore: the plain bytes of recording key %s were not overwritten (another "
                  "name links them, or they could not be opened): remove the plain copy",
                  id);
        goto cleanup;
    }
    bc_error zerr;
    if (zero_fd(old, path, &zerr) != BC_OK)
        log_warnx("keystore: overwriting the plain bytes of recording key %s: %s", id, zerr.text);

cleanup:
    if (old >= 0)
        close(old);
    free(pem);
    return st;
}

/* ---- loading ---- */

/* Reads path as an X25519 private key; *plain tells whether it was stored
 * without encryption. */
static bc_status read_recording_key(const bc_keystore *ks, const char *path, EVP_PKEY **out,
                                    bool *plain, bc_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    bc_status st = bc_file_read_all(path, KEY_FILE_MAX, &text, &len, err);
    if (st != BC_OK)
        return st;
    pass_ctx ctx = {.ks = ks, .asked = false};
    EVP_PKEY *key = NULL;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    if (bio == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "no memory to read '%s'", path);
        goto cleanup;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, &ctx);
    if (key == NULL && ctx.asked) {
        st = bc_fail(err, BC_ERR_WRONG_KEY,
                     "recording key '%s' does not decrypt with the master key (the wrong "
                     "master_key_file, or a damaged file)",
                     path);
        goto cleanup;
    }
    if (key == NULL) {
        st = bc_fail(err, BC_ERR_PARSE, "'%s' is not a PEM private key", path);
        goto cleanup;
    }
    if (EVP_PKEY_get_id(key) != EVP_PKEY_X25519) {
        st = bc_fail(err, BC_ERR_INVAL, "'%s' is not an X25519 key", path);
        goto cleanup;
    }
    *plain = !ctx.asked;
    *out = key;
    key = NULL;

cleanup:
    ERR_clear_error();
    EVP_PKEY_free(key);
    BIO_free(bio);
    OPENSSL_clear_free(text, len + 1);
    return st;
}

/* Loads dir/name as an X25519 private key named by its key id. */
static bc_status load_recording_key(bc_keystore *ks, const char *name, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = key_path(ks, name, "", path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0)
        log_warnx("keystore: recording key '%s' is readable by others (mode %03o); use 0600", path,
                  (unsigned)(sb.st_mode & 0777));
    EVP_PKEY *key = NULL;
    bool plain = false;
    if ((rc = read_recording_key(ks, path, &key, &plain, err)) != BC_OK)
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
    if (plain && (rc = encrypt_in_place(ks, path, id, key, err)) != BC_OK)
        goto cleanup;
    rc = keys_add(ks, id, key, err);
    if (rc == BC_OK)
        key = NULL; /* owned by ks */

cleanup:
    EVP_PKEY_free(key);
    return rc;
}

/* Finishes a destruction a crash interrupted: dir/name is a .shred file. */
static bc_status shred_file(const char *dir, const char *path, bc_error *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return BC_OK;
    if (fd < 0)
        return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    bc_status st = zero_fd(fd, path, err);
    close(fd);
    if (st != BC_OK)
        return st;
    if (unlink(path) != 0 && errno != ENOENT)
        return bc_fail(err, BC_ERR_IO, "cannot unlink '%s': %s", path, strerror(errno));
    return bc_file_fsync_dir(dir, err);
}

static bc_status load_recording_keys(bc_keystore *ks, bc_error *err)
{
    bc_file_dir it;
    bc_status rc = bc_file_dir_open(&it, ks->dir, err);
    if (rc == BC_ERR_NOT_FOUND)
        return bc_fail(err, rc, "recording key directory '%s' does not exist", ks->dir);
    if (rc != BC_OK)
        return rc;
    const char *name = NULL;
    while ((rc = bc_file_dir_next(&it, &name, err)) == BC_OK && name != NULL) {
        if (has_suffix(name, SHRED_SUFFIX)) {
            char path[PATH_MAX];
            if ((rc = key_path(ks, name, "", path, sizeof(path), err)) == BC_OK &&
                (rc = shred_file(ks->dir, path, err)) == BC_OK)
                log_info("keystore: finished destroying '%s'", path);
        } else if (has_suffix(name, KEY_SUFFIX)) {
            rc = load_recording_key(ks, name, err);
        } /* else not a key file (a README, a backup) */
        if (rc != BC_OK)
            break;
    }
    bc_file_dir_close(&it);
    if (rc == BC_OK && ks->count == 0)
        rc = bc_fail(err, BC_ERR_NOT_FOUND, "no recording key (*%s) in '%s'", KEY_SUFFIX, ks->dir);
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

bc_status bc_keystore_open(const char *recording_key_dir, const char *master_key_path,
                           const char *receipt_key_path, const char *command_key_path,
                           bc_keystore **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "keystore open: no result pointer");
    *out = NULL;
    if (recording_key_dir == NULL)
        return bc_fail(err, BC_ERR_INVAL, "keystore open: no recording key directory");
    if (master_key_path == NULL)
        return bc_fail(err, BC_ERR_INVAL, "keystore open: no master key file");
    bc_keystore *ks = calloc(1, sizeof(*ks));
    if (ks == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the keystore");
    int n = snprintf(ks->dir, sizeof(ks->dir), "%s", recording_key_dir);
    bc_status rc = BC_OK;
    if (n < 0 || (size_t)n >= sizeof(ks->dir))
        rc = bc_fail(err, BC_ERR_TOO_BIG, "recording key directory '%s' is too long",
                     recording_key_dir);
    if (rc == BC_OK)
        rc = master_read(ks, master_key_path, err);
    if (rc == BC_OK)
        rc = load_recording_keys(ks, err);
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

/* ---- making and destroying recording keys ---- */

bc_status bc_keystore_create_recording_key(bc_keystore *ks, char key_id[BC_KEY_ID_LEN + 1],
                                           bc_error *err)
{
    if (ks == NULL || key_id == NULL)
        return bc_fail(err, BC_ERR_INVAL, "create recording key: no keystore or no result");
    key_id[0] = '\0';
    char id[BC_KEY_ID_LEN + 1], path[PATH_MAX];
    char *pem = NULL;
    size_t len = 0;
    bc_status st = BC_OK;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (key == NULL || bc_key_id(key, id) != BC_OK) {
        st = bc_fail(err, BC_ERR_CRYPTO, "cannot make an X25519 recording key");
        goto cleanup;
    }
    if (keys_find(ks, id) < ks->count) {
        st = bc_fail(err, BC_ERR_EXISTS, "a recording key with id %s is loaded already", id);
        goto cleanup;
    }
    if ((st = key_path(ks, id, KEY_SUFFIX, path, sizeof(path), err)) != BC_OK ||
        (st = pem_encrypted(ks, key, &pem, &len, err)) != BC_OK ||
        (st = bc_file_write_durable(path, pem, len, 0600, err)) != BC_OK)
        goto cleanup;
    if ((st = keys_add(ks, id, key, err)) != BC_OK)
        goto cleanup;
    key = NULL; /* owned by ks */
    memcpy(key_id, id, sizeof(id));

cleanup:
    ERR_clear_error();
    EVP_PKEY_free(key);
    free(pem);
    return st;
}

bc_status bc_keystore_destroy_recording_key(bc_keystore *ks, const char *key_id, bc_error *err)
{
    if (ks == NULL || !key_id_valid(key_id))
        return bc_fail(err, BC_ERR_INVAL, "destroy recording key: '%s' is not a key id",
                       key_id != NULL ? key_id : "(null)");
    char path[PATH_MAX], shred[PATH_MAX];
    bc_status st = key_path(ks, key_id, KEY_SUFFIX, path, sizeof(path), err);
    if (st == BC_OK)
        st = key_path(ks, key_id, SHRED_SUFFIX, shred, sizeof(shred), err);
    if (st != BC_OK)
        return st;
    /* away from its .key name first: a crash from here on never leaves a
     * half-zeroed key for the next start to refuse */
    if (rename(path, shred) != 0 && errno != ENOENT)
        return bc_fail(err, BC_ERR_IO, "cannot rename '%s' to '%s': %s", path, shred,
                       strerror(errno));
    if ((st = bc_file_fsync_dir(ks->dir, err)) != BC_OK)
        return st;
    size_t i = keys_find(ks, key_id);
    if (i < ks->count) {
        EVP_PKEY_free(ks->keys[i].key);
        ks->keys[i] = ks->keys[--ks->count];
    }
    return shred_file(ks->dir, shred, err);
}

/* ---- lookups ---- */

EVP_PKEY *bc_keystore_recording_key(const bc_keystore *ks, const char *key_id)
{
    if (ks == NULL || key_id == NULL)
        return NULL;
    size_t i = keys_find(ks, key_id);
    return i < ks->count ? ks->keys[i].key : NULL;
}

size_t bc_keystore_recording_key_count(const bc_keystore *ks)
{
    return ks != NULL ? ks->count : 0;
}

const char *bc_keystore_recording_key_id(const bc_keystore *ks, size_t i)
{
    return ks != NULL && i < ks->count ? ks->keys[i].id : NULL;
}

EVP_PKEY *bc_keystore_receipt_key(const bc_keystore *ks)
{
    return ks != NULL ? ks->receipt : NULL;
}

EVP_PKEY *bc_keystore_command_key(const bc_keystore *ks)
{
    return ks != NULL ? ks->command : NULL;
}
