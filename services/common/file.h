/*
 * file.h - durable whole-file writes and bounded whole-file reads.
 *
 * A durable write either leaves the old content of a path or the new one,
 * never a torn mix, even if the power goes in the middle: the data goes to a
 * fresh temporary file next to the target, which is fsynced, renamed over the
 * target, and then the directory itself is fsynced so that the rename is on
 * disk too. Used for the camera's state, its outbox, the vault and the PKI.
 */
#ifndef BC_COMMON_FILE_H
#define BC_COMMON_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "proto/status.h"

/* Suffix of the temporary files a durable write leaves behind when it is
 * interrupted by a crash ("<path>.XXXXXX.tmp"); safe to delete at start. */
#define BC_FILE_TMP_SUFFIX ".tmp"

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

#endif
