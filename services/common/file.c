/*
 * file.c - durable writes.
 *
 * Why all the steps: cameras lose power mid-write (a battery pulled, a fall),
 * and a server can crash too. Writing a file in place can leave it half old
 * and half new, or empty, after a power cut. So the new content goes to a
 * temporary file in the same directory (same filesystem, so rename is
 * atomic); fsync makes its data durable before the rename can be; rename
 * replaces the target atomically; and fsync of the directory makes the
 * rename itself durable - without it a power cut can bring the old name
 * back (or lose a brand-new file) after the caller was told "written".
 *
 * The temporary name is unique (mkstemps), so two writers of the same
 * target never write into one temporary file.
 *
 * A directory made on the way is durable the same way: mkdir, then an
 * fsync of its parent, or a power cut can take the new directory (and
 * everything durably written into it) away again.
 */
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool bc_file_is_tmp(const char *name)
{
    size_t n = strlen(name), k = strlen(BC_FILE_TMP_SUFFIX);
    return n >= k && strcmp(name + n - k, BC_FILE_TMP_SUFFIX) == 0;
}

bc_status bc_file_write_all(int fd, const void *data, size_t len, const char *path, bc_error *err)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;
            bc_fail(err, BC_ERR_IO, "cannot write '%s': %s", path, strerror(saved));
            errno = saved;
            return BC_ERR_IO;
        }
        p += n;
        len -= (size_t)n;
    }
    return BC_OK;
}

bc_status bc_file_fsync_dir(const char *dir, bc_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return bc_fail(err, BC_ERR_IO, "cannot open directory '%s': %s", dir, strerror(errno));
    if (fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return bc_fail(err, BC_ERR_IO, "cannot fsync directory '%s': %s", dir, strerror(errno));
    }
    close(fd);
    return BC_OK;
}

void bc_file_parent(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(out, size, ".");
    } else if (slash == path) {
        snprintf(out, size, "/");
    } else {
        snprintf(out, size, "%.*s", (int)(slash - path), path);
    }
}

bc_status bc_file_mkdir_durable(const char *path, mode_t mode, bc_error *err)
{
    if (mkdir(path, mode) != 0) {
        if (errno != EEXIST)
            return bc_fail(err, BC_ERR_IO, "cannot create directory '%s': %s", path,
                           strerror(errno));
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return bc_fail(err, BC_ERR_IO, "'%s' exists and is not a directory", path);
        return BC_OK;
    }
    char parent[PATH_MAX];
    bc_file_parent(path, parent, sizeof(parent));
    return bc_file_fsync_dir(parent, err);
}

bc_status bc_file_write_durable(const char *path, const void *data, size_t len, mode_t mode,
                                bc_error *err)
{
    if (path == NULL || (data == NULL && len > 0))
        return bc_fail(err, BC_ERR_INVAL, "durable write: no path or no data");
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.XXXXXX%s", path, BC_FILE_TMP_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return bc_fail(err, BC_ERR_TOO_BIG, "durable write: path '%s' is too long", path);
    char dir[PATH_MAX];
    bc_file_parent(path, dir, sizeof(dir));

    int fd = mkstemps(tmp, (int)strlen(BC_FILE_TMP_SUFFIX));
    if (fd < 0)
        return bc_fail(err, BC_ERR_IO, "cannot create a temporary file for '%s': %s", path,
                       strerror(errno));
    bc_status rc = BC_ERR_IO;
    if (fchmod(fd, mode) != 0) {
        bc_fail(err, rc, "cannot set the mode of '%s': %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (bc_file_write_all(fd, data, len, tmp, err) != BC_OK)
        goto cleanup;
    if (fsync(fd) != 0) {
        bc_fail(err, rc, "cannot fsync '%s': %s", tmp, strerror(errno));
        goto cleanup;
    }
    int closed = close(fd);
    fd = -1;
    if (closed != 0) {
        bc_fail(err, rc, "cannot close '%s': %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        bc_fail(err, rc, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        goto cleanup;
    }
    tmp[0] = '\0'; /* renamed: nothing left to remove */
    rc = bc_file_fsync_dir(dir, err);

cleanup:
    if (rc != BC_OK) {
        int saved = errno;
        if (fd >= 0)
            close(fd);
        if (tmp[0] != '\0')
            unlink(tmp);
        errno = saved;
    }
    return rc;
}

bc_status bc_file_read_all(const char *path, size_t max_len, char **out, size_t *len, bc_error *err)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return bc_fail(err, BC_ERR_NOT_FOUND, "'%s' does not exist", path);
        return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    bc_status rc = BC_OK;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = bc_fail(err, BC_ERR_IO, "'%s' is not a regular file", path);
        goto cleanup;
    }
    if ((uintmax_t)st.st_size > max_len) {
        rc = bc_fail(err, BC_ERR_TOO_BIG, "'%s' is %jd bytes, over the limit of %zu", path,
                     (intmax_t)st.st_size, max_len);
        goto cleanup;
    }
    /* Read up to one byte more than the limit, so a file growing under us
     * is still refused rather than silently cut. */
    size_t cap = (size_t)st.st_size + 1;
    buf = malloc(cap + 1);
    if (buf == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to read '%s'", path);
        goto cleanup;
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > max_len) {
        rc = bc_fail(err, BC_ERR_TOO_BIG, "'%s' grew over the limit of %zu bytes", path, max_len);
        goto cleanup;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;

cleanup:
    free(buf);
    close(fd);
    return rc;
}

bc_status bc_file_dir_open(bc_file_dir *it, const char *dir, bc_error *err)
{
    it->path = dir;
    it->d = opendir(dir);
    if (it->d != NULL)
        return BC_OK;
    int saved = errno;
    bc_status rc = saved == ENOENT ? BC_ERR_NOT_FOUND : BC_ERR_IO;
    bc_fail(err, rc, "cannot open directory '%s': %s", dir, strerror(saved));
    errno = saved;
    return rc;
}

bc_status bc_file_dir_next(bc_file_dir *it, const char **name, bc_error *err)
{
    for (;;) {
        errno = 0; /* readdir's only way to tell the end from an error */
        struct dirent *de = readdir(it->d);
        if (de == NULL) {
            *name = NULL;
            if (errno == 0)
                return BC_OK;
            int saved = errno;
            bc_fail(err, BC_ERR_IO, "cannot read directory '%s': %s", it->path, strerror(saved));
            errno = saved;
            return BC_ERR_IO;
        }
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            *name = de->d_name;
            return BC_OK;
        }
    }
}

void bc_file_dir_close(bc_file_dir *it)
{
    if (it->d != NULL)
        closedir(it->d); /* read-only: a close error changes nothing */
    it->d = NULL;
}
