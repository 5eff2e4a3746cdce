/*
 * test_util.h - what the unit tests share: a scratch directory under /tmp
 * and its removal, small files written and read back, deterministic test
 * data, and an X25519 key pair as a camera holds it.
 *
 * Two kinds of helpers: those for a cmocka setup return a bc_status (a
 * setup reports failure by its return value, it must not assert); those
 * used inside a test fail the running test with cmocka's assert_* instead.
 * Linked into every unit test by bc_add_unit_test (bc_test_util).
 */
#ifndef BC_TESTS_TEST_UTIL_H
#define BC_TESTS_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/status.h"

/* ---- for setup and teardown ---- */

/* Makes a fresh directory "/tmp/bc-<tag>-XXXXXX" (mode 0700, mkdtemp) and
 * writes its path into out. BC_ERR_TOO_BIG when the path does not fit in
 * size, BC_ERR_IO when mkdtemp fails (errno kept). */
bc_status bc_test_tempdir(char *out, size_t size, const char *tag);

/* Removes dir and everything below it, depth first. Symbolic links are
 * removed themselves, never followed (lstat semantics), so a test cannot
 * make the teardown delete outside its directory. Best effort: what cannot
 * be removed is left; a missing dir is fine. */
void bc_test_remove_tree(const char *dir);

/* A fresh X25519 private key in *priv and, in *pub, a key holding only its
 * public half (what a camera is given: it can encrypt to the vault, never
 * decrypt). The caller frees both with EVP_PKEY_free. BC_ERR_CRYPTO on
 * failure, with both left NULL. */
bc_status bc_test_x25519_pair(EVP_PKEY **priv, EVP_PKEY **pub);

/* ---- inside a test (a failure fails the test) ---- */

/* Writes len bytes of data to path (created 0666 & ~umask, or truncated). */
void bc_test_write_bytes(const char *path, const void *data, size_t len);

/* Writes the string text to path, as bc_test_write_bytes. */
void bc_test_write_file(const char *path, const char *text);

/* Reads the whole file at path into a new buffer with a NUL appended (not
 * counted in *len); the caller frees it with free(). */
uint8_t *bc_test_read_file(const char *path, size_t *len);

/* True when dir/name exists (or the path name when dir is NULL); a
 * symbolic link counts as itself, dangling or not. */
bool bc_test_exists(const char *dir, const char *name);

/* The number of entries in dir, "." and ".." not counted. */
size_t bc_test_count_entries(const char *dir);

/* len pseudo-random bytes, always the same for the same seed (a linear
 * congruential generator: reproducible, not secret). Never NULL, also for
 * len 0; the caller frees it with free(). */
uint8_t *bc_test_pattern(size_t len, unsigned seed);

#endif
