/*
 * file.h - durable whole-file writes and bounded whole-file reads, and the
 * small file system steps the modules that keep their state in directories
 * share (a directory made durably, a full write, a directory listed).
 *
 * A durable write either leaves the old content of a path or the new one,
 * never a torn mix, even if the power goes in the middle: the data goes to a
 * fresh temporary file next to the target, which is fsynced, renamed over the
 * target, and then the directory itself is fsynced so that the rename is on
 * disk too. Used for the camera's state, its outbox, the vault and the PKI.
 */
#ifndef BC_COMMON_FILE_H
#define BC_COMMON_FILE_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proto/status.h"

/* Suffix of the temporary files a durable write leaves behind when it is
 * interrupted by a crash ("<path>.XXXXXX.tmp"); safe to delete at start. */
#define BC_FILE_TMP_SUFFIX ".tmp"

/* True when name ends in BC_FILE_TMP_SUFFIX: a leftover of a durable write
 * (never renamed, so never promised to anyone). */
bool bc_file_is_tmp(const char *name);

/* Writes len bytes of data to path durably (tmp, fsync, rename, fsync dir).
 * The file gets exactly `mode` (the umask does not apply). On failure the
 * target is untouched, the temporary file is removed, and BC_ERR_IO is
 * returned with errno preserved and err naming the step and the path
 * (BC_ERR_INVAL for a NULL path, BC_ERR_TOO_BIG for a path over PATH_MAX). */
bc_status bc_file_write_durable(const char *path, const void *data, size_t len, mode_t mode,
                                bc_error *err);

/* fsyncs a directory, so that a rename, create or unlink in it is durable.
 * BC_ERR_IO on failure (errno preserved). */
bc_status bc_file_fsync_dir(const char *dir, bc_error *err);

/* Reads a whole file of at most max_len bytes into a new buffer with a NUL
 * appended (not counted in *len); the caller frees *out with free().
 * BC_ERR_NOT_FOUND when the file does not exist, BC_ERR_TOO_BIG when it is
 * larger than max_len, BC_ERR_IO for other failures, BC_ERR_NOMEM. *out is
 * NULL on failure. */
bc_status bc_file_read_all(const char *path, size_t max_len, char **out, size_t *len,
                           bc_error *err);

/* Writes all of len bytes of data to fd, retrying short writes and EINTR.
 * BC_ERR_IO on failure (errno preserved), err naming path; how much was
 * written then is unknown. */
bc_status bc_file_write_all(int fd, const void *data, size_t len, const char *path, bc_error *err);

/* The directory part of path into out[size]: "." when path has no slash,
 * "/" for "/name"; a trailing slash is not special ("a/b/" gives "a/b").
 * Cut to size (a PATH_MAX buffer always holds it). */
void bc_file_parent(const char *path, char *out, size_t size);

/* Makes the directory path (mode, less the umask) unless it is one already;
 * when it made it, fsyncs its parent (bc_file_parent) so that the new
 * directory survives a power cut. The parent must exist. BC_ERR_IO (errno
 * preserved) when it cannot be made, when path exists and is not a
 * directory, or when the fsync fails. */
bc_status bc_file_mkdir_durable(const char *path, mode_t mode, bc_error *err);

/* ---- listing a directory ---- */

/* A directory being read entry by entry (opendir/readdir, their errno
 * protocol done here). */
typedef struct bc_file_dir {
    DIR *d;           /* the open stream; dirfd(d) for the *at() calls */
    const char *path; /* borrowed from bc_file_dir_open: must outlive it */
} bc_file_dir;

/* Opens dir for bc_file_dir_next. BC_ERR_NOT_FOUND when it does not exist,
 * BC_ERR_IO when it cannot be opened (errno preserved); err names it. On
 * failure there is nothing to close. */
bc_status bc_file_dir_open(bc_file_dir *it, const char *dir, bc_error *err);

/* The next entry's name, "." and ".." skipped, in readdir's order (none in
 * particular); *name is NULL after the last. The name is borrowed: valid
 * until the next call or bc_file_dir_close. BC_ERR_IO (errno preserved,
 * *name NULL) when the directory cannot be read. */
bc_status bc_file_dir_next(bc_file_dir *it, const char **name, bc_error *err);

/* Closes the directory. */
void bc_file_dir_close(bc_file_dir *it);

#endif
