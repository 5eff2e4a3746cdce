/*
 * store.c - content-addressed objects: absent or whole, never in between.
 *
 * A commit never writes under the final name: the bytes arrive under a
 * fresh temporary name in the object's own directory (a hard link to the
 * verified staging file, or a copy when the staging area is on another file
 * system), that file is fsynced and made read-only, renamed to the final
 * name, and the directory is fsynced. A crash leaves either no object or the
 * whole object, plus at worst a "<sha256>.<random>.tmp" that nothing reads.
 * Directories created on the way are made durable by fsyncing their parent.
 *
 * A hard link shares its inode with the staging file: the object is
 * immutable only because the staging area never writes to a recording it
 * has handed over (the vault removes the staging directory right after the
 * commit, and the shared inode is mode 0400 from the commit on).
 *
 * Equal names mean equal bytes (SHA-256), so an existing object of the same
 * size is the same commit done before (a crash between commit and the
 * removal of the staging directory, a resent recording): BC_OK. The same
 * name with another size means the store was altered: BC_ERR_TAMPERED.
 */
#include "vault/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/file.h"
#include "proto/encoding.h"
#include "proto/json.h"

#define OBJECTS_DIR "objects"
#define OBJECT_MODE 0400
#define DIR_MODE 0700
#define COPY_BUF (64 * 1024)
#define TMP_TRIES 8

struct bc_store {
    char dir[PATH_MAX];
    char objects[PATH_MAX];
};

bc_status bc_store_open(const char *dir, bc_store **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "store open: no result pointer");
    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "store open: no directory");
    /* Room for "/objects/ab/cd/<64>.<16>.tmp". */
    if (strlen(dir) >= PATH_MAX - 128)
        return bc_fail(err, BC_ERR_INVAL, "store directory path '%s' is too long", dir);
    bc_store *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the store");
    snprintf(st->dir, sizeof(st->dir), "%s", dir);
    snprintf(st->objects, sizeof(st->objects), "%s/%s", dir, OBJECTS_DIR);
    bc_status rc = bc_file_mkdir_durable(st->dir, DIR_MODE, err);
    if (rc == BC_OK)
        rc = bc_file_mkdir_durable(st->objects, DIR_MODE, err);
    if (rc != BC_OK) {
        free(st);
        return rc;
    }
    *out = st;
    return BC_OK;
}

void bc_store_close(bc_store *st)
{
    free(st);
}

/* ---- names ---- */

static bc_status sha_check(const char *sha256, bc_error *err)
{
    if (sha256 == NULL || !bc_json_hex_valid(sha256, BC_SHA256_HEX_LEN))
        return bc_fail(err, BC_ERR_INVAL, "object name is not 64 lowercase hex digits");
    return BC_OK;
}

/* DIR/objects/<h0h1>/<h2h3> */
static void object_dir(const bc_store *st, const char *sha256, char *out, size_t size)
{
    snprintf(out, size, "%s/%.2s/%.2s", st->objects, sha256, sha256 + 2);
}

bc_status bc_store_path(const bc_store *st, const char *sha256, char *path, size_t size,
                        char *relative, size_t relative_size, bc_error *err)
{
    if (st == NULL || path == NULL)
        return bc_fail(err, BC_ERR_INVAL, "store path: missing argument");
    bc_status rc = sha_check(sha256, err);
    if (rc != BC_OK)
        return rc;
    int n = snprintf(path, size, "%s/%.2s/%.2s/%s", st->objects, sha256, sha256 + 2, sha256);
    if (n < 0 || (size_t)n >= size)
        return bc_fail(err, BC_ERR_TOO_BIG, "no room for the path of object %s", sha256);
    if (relative == NULL)
        return BC_OK;
    n = snprintf(relative, relative_size, "%s/%.2s/%.2s/%s", OBJECTS_DIR, sha256, sha256 + 2,
                 sha256);
    if (n < 0 || (size_t)n >= relative_size)
        return bc_fail(err, BC_ERR_TOO_BIG, "no room for the relative path of object %s", sha256);
    return BC_OK;
}

/* ---- commit ---- */

/* Creates DIR/objects/<h0h1>/<h2h3> durably when missing. */
static bc_status object_dir_create(const bc_store *st, const char *sha256, bc_error *err)
{
    char d1[PATH_MAX], d2[PATH_MAX];
    snprintf(d1, sizeof(d1), "%s/%.2s", st->objects, sha256);
    object_dir(st, sha256, d2, sizeof(d2));
    bc_status rc = bc_file_mkdir_durable(d1, DIR_MODE, err);
    if (rc == BC_OK)
        rc = bc_file_mkdir_durable(d2, DIR_MODE, err);
    return rc;
}

/* A fresh temporary name next to the object: "<final>.<16 hex>.tmp". */
static bc_status tmp_name(const char *final, char *out, size_t size, bc_error *err)
{
    uint8_t rnd[8];
    char hex[2 * sizeof(rnd) + 1];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
        bc_hex_encode(rnd, sizeof(rnd), hex, sizeof(hex)) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "cannot draw a temporary object name");
    snprintf(out, size, "%s.%s%s", final, hex, BC_FILE_TMP_SUFFIX);
    return BC_OK;
}

/* Copies src into a new file tmp (O_EXCL) and returns its descriptor in
 * *out_fd, for the other-file-system case. */
static bc_status copy_to_tmp(const char *src, const char *tmp, int *out_fd, bc_error *err)
{
    *out_fd = -1;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", src, strerror(errno));
    bc_status rc = BC_OK;
    uint8_t *buf = malloc(COPY_BUF);
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, OBJECT_MODE);
    if (buf == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to copy '%s'", src);
        goto cleanup;
    }
    if (out < 0) {
        rc = bc_fail(err, BC_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(in, buf, COPY_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", src, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        rc = bc_file_write_all(out, buf, (size_t)n, tmp, err);
        if (rc != BC_OK)
            goto cleanup;
    }
    *out_fd = out;
    out = -1;

cleanup:
    if (out >= 0)
        close(out); /* the caller unlinks tmp */
    free(buf);
    close(in);
    return rc;
}

/* Puts src's bytes under a fresh temporary name; *fd is open on it. */
static bc_status stage_tmp(const char *src, const char *final, char *tmp, size_t tmp_size, int *fd,
                           bc_error *err)
{
    *fd = -1;
    for (int i = 0; i < TMP_TRIES; i++) {
        bc_status rc = tmp_name(final, tmp, tmp_size, err);
        if (rc != BC_OK)
            return rc;
        if (link(src, tmp) == 0) {
            *fd = open(tmp, O_RDONLY | O_CLOEXEC);
            if (*fd < 0)
                return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", tmp, strerror(errno));
            return BC_OK;
        }
        if (errno == EEXIST)
            continue;
        /* No hard link across file systems (or on one that has none). */
        if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP)
            return copy_to_tmp(src, tmp, fd, err);
        return bc_fail(err, BC_ERR_IO, "cannot link '%s' to '%s': %s", src, tmp, strerror(errno));
    }
    return bc_fail(err, BC_ERR_IO, "no free temporary name for '%s'", final);
}

/* BC_OK with *found false when the object is absent; *size its size. */
static bc_status object_stat(const char *path, bool *found, uint64_t *size, bc_error *err)
{
    struct stat sb;
    *found = false;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT)
            return BC_OK;
        return bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode))
        return bc_fail(err, BC_ERR_TAMPERED, "object '%s' is not a regular file", path);
    *found = true;
    *size = (uint64_t)sb.st_size;
    return BC_OK;
}

bc_status bc_store_commit(bc_store *st, const char *src_path, const char *sha256, uint64_t size,
                          bool *existed, bc_error *err)
{
    if (existed != NULL)
        *existed = false;
    if (st == NULL || src_path == NULL)
        return bc_fail(err, BC_ERR_INVAL, "store commit: missing argument");
    char final[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
    bc_status rc = bc_store_path(st, sha256, final, sizeof(final), NULL, 0, err);
    if (rc != BC_OK)
        return rc;
    object_dir(st, sha256, dir, sizeof(dir));

    bool found = false;
    uint64_t have = 0;
    rc = object_stat(final, &found, &have, err);
    if (rc != BC_OK)
        return rc;
    if (found) {
        if (have != size)
            return bc_fail(err, BC_ERR_TAMPERED,
                           "object %s exists with %" PRIu64 " bytes, not %" PRIu64, sha256, have,
                           size);
        if (existed != NULL)
            *existed = true;
        return BC_OK;
    }
    struct stat sb;
    if (stat(src_path, &sb) != 0)
        return bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", src_path, strerror(errno));
    if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != size)
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a file of %" PRIu64 " bytes", src_path,
                       size);

    rc = object_dir_create(st, sha256, err);
    if (rc != BC_OK)
        return rc;
    int fd = -1;
    tmp[0] = '\0';
    rc = stage_tmp(src_path, final, tmp, sizeof(tmp), &fd, err);
    if (rc != BC_OK)
        goto cleanup;
    /* The copy (or the link's inode) must be on disk before its name is. */
    if (fchmod(fd, OBJECT_MODE) != 0 || fsync(fd) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "cannot make '%s' durable: %s", tmp, strerror(errno));
        goto cleanup;
    }
    int closed = close(fd);
    fd = -1;
    if (closed != 0) {
        rc = bc_fail(err, BC_ERR_IO, "cannot close '%s': %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (rename(tmp, final) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, final, strerror(errno));
        goto cleanup;
    }
    tmp[0] = '\0';
    rc = bc_file_fsync_dir(dir, err);

cleanup:
    if (fd >= 0)
        close(fd);
    if (tmp[0] != '\0')
        unlink(tmp); /* best effort: a leftover .tmp is never read */
    return rc;
}

bool bc_store_exists(const bc_store *st, const char *sha256)
{
    char path[PATH_MAX];
    if (st == NULL || bc_store_path(st, sha256, path, sizeof(path), NULL, 0, NULL) != BC_OK)
        return false;
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

bc_status bc_store_delete(bc_store *st, const char *sha256, bool *existed, bc_error *err)
{
    if (existed != NULL)
        *existed = false;
    if (st == NULL)
        return bc_fail(err, BC_ERR_INVAL, "store delete: no store");
    char path[PATH_MAX], dir[PATH_MAX];
    bc_status rc = bc_store_path(st, sha256, path, sizeof(path), NULL, 0, err);
    if (rc != BC_OK)
        return rc;
    object_dir(st, sha256, dir, sizeof(dir));
    if (unlink(path) != 0) {
        if (errno != ENOENT)
            return bc_fail(err, BC_ERR_IO, "cannot delete object '%s': %s", path, strerror(errno));
        /* Absent: a previous attempt may have unlinked it and then failed
         * to fsync; fsync the directory (when there is one) so that the
         * redone delete is as durable as a first one. */
        struct stat sb;
        if (stat(dir, &sb) != 0)
            return errno == ENOENT
                       ? BC_OK
                       : bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", dir, strerror(errno));
        return bc_file_fsync_dir(dir, err);
    }
    if (existed != NULL)
        *existed = true;
    return bc_file_fsync_dir(dir, err);
}

bc_status bc_store_check(const bc_store *st, const char *sha256, uint64_t size, bc_error *err)
{
    if (st == NULL)
        return bc_fail(err, BC_ERR_INVAL, "store check: no store");
    char path[PATH_MAX];
    bc_status rc = bc_store_path(st, sha256, path, sizeof(path), NULL, 0, err);
    if (rc != BC_OK)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return bc_fail(err, BC_ERR_NOT_FOUND, "object %s does not exist", sha256);
        return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = malloc(COPY_BUF);
    uint64_t total = 0;
    if (ctx == NULL || buf == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to check object %s", sha256);
        goto cleanup;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = bc_fail(err, BC_ERR_CRYPTO, "cannot start SHA-256 for object %s", sha256);
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(fd, buf, COPY_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        total += (uint64_t)n;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            rc = bc_fail(err, BC_ERR_CRYPTO, "cannot hash object %s", sha256);
            goto cleanup;
        }
    }
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char hex[BC_SHA256_HEX_LEN + 1];
    if (EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 ||
        bc_hex_encode(digest, dlen, hex, sizeof(hex)) != BC_OK) {
        rc = bc_fail(err, BC_ERR_CRYPTO, "cannot finish SHA-256 of object %s", sha256);
        goto cleanup;
    }
    if (total != size)
        rc = bc_fail(err, BC_ERR_TAMPERED, "object %s has %" PRIu64 " bytes, not %" PRIu64, sha256,
                     total, size);
    else if (strcmp(hex, sha256) != 0)
        rc = bc_fail(err, BC_ERR_TAMPERED, "object %s does not hash to its name (%s)", sha256, hex);

cleanup:
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    return rc;
}
