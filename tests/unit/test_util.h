/*
 * test_util.h - what the unit tests share: a scratch directory under /tmp
 * and its removal, small files written and read back, deterministic test
 * data, an X25519 key pair as a camera holds it, and a throwaway
 * redis-server.
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
#include <sys/types.h>

#include <openssl/evp.h>

#include "common/stream.h"
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

/* The fixture of a test of a module that owns one directory: root is a
 * fresh temp dir, dir the module's directory below it ("<root>/<name>",
 * not made here: the module makes it, as at its first start). */
typedef struct bc_test_scratch {
    char root[64];
    char dir[128];
} bc_test_scratch;

/* A cmocka setup: *state becomes a new bc_test_scratch whose root is made
 * by bc_test_tempdir(tag). 0, or -1 when it cannot be made. */
int bc_test_scratch_setup(void **state, const char *tag, const char *name);

/* The matching teardown: removes the root's tree and frees *state. 0. */
int bc_test_scratch_teardown(void **state);

/* A fresh X25519 private key in *priv and, in *pub, a key holding only its
 * public half (what a camera is given: it can encrypt to the vault, never
 * decrypt). The caller frees both with EVP_PKEY_free. BC_ERR_CRYPTO on
 * failure, with both left NULL. */
bc_status bc_test_x25519_pair(EVP_PKEY **priv, EVP_PKEY **pub);

/* A redis-server the test started itself (like hiredis' test.sh): bound
 * to 127.0.0.1 on a free port, in a temp dir, without persistence (no RDB,
 * no AOF), its output sent to /dev/null. */
typedef struct bc_test_redis {
    int port;
    pid_t pid;    /* -1 when it is not running */
    char dir[64]; /* its working directory */
} bc_test_redis;

/* Makes the temp dir "/tmp/bc-<tag>-XXXXXX", picks a free port, starts
 * redis-server there and waits (up to 5 s) until it answers. For a group
 * setup: BC_ERR_IO when no port or no process can be had, the status of
 * bc_test_tempdir when the dir cannot be made, BC_ERR_UNAVAILABLE when the
 * server does not answer; on failure nothing is left running and the dir
 * is removed. */
bc_status bc_test_redis_start(bc_test_redis *srv, const char *tag);

/* Kills the server (SIGKILL, then waits for it), as a crash would. Port and
 * dir stay, for bc_test_redis_restart. Nothing to do when it is not running. */
void bc_test_redis_kill(bc_test_redis *srv);

/* Starts the server again on the same port and dir, and waits as
 * bc_test_redis_start; it comes back empty (nothing was persisted).
 * BC_ERR_IO, BC_ERR_UNAVAILABLE (the dir is kept either way). */
bc_status bc_test_redis_restart(bc_test_redis *srv);

/* Kills the server and removes its dir. For a group teardown. */
void bc_test_redis_stop(bc_test_redis *srv);

/* A connection's configuration for 127.0.0.1:port with the given command
 * and connect timeout, reconnect backoff 20 to 200 ms. */
bc_redis_config bc_test_redis_config(int port, int timeout_ms);

/* A loopback TCP port that was free a moment ago (bound, then released):
 * nothing listens on it. 0 when none could be had. */
int bc_test_free_port(void);

/* ---- inside a test (a failure fails the test) ---- */

/* Connects r to srv (bc_test_redis_config, bc_redis_connect_now); the
 * caller closes it with bc_redis_close. */
void bc_test_redis_connect(const bc_test_redis *srv, int timeout_ms, bc_redis *r);

/* FLUSHALL on r: every key of every database is gone. */
void bc_test_redis_flush(bc_redis *r);

/* ---- the fixture of a group of tests against one redis-server ---- */

/* A test's command and connect timeout: generous, as a test may pipeline
 * thousands of commands under the sanitizers. */
#define BC_TEST_REDIS_TIMEOUT_MS 10000

/* The group's server (bc_test_redis_group_setup) and the test's connection
 * to an empty database (bc_test_redis_setup). */
extern bc_test_redis bc_test_srv;
extern bc_redis bc_test_conn;

/* cmocka group fixtures: start bc_test_srv (0, or -1 when it cannot be
 * started) and stop it (0). */
int bc_test_redis_group_setup(void **state);
int bc_test_redis_group_teardown(void **state);

/* cmocka test fixtures: connect bc_test_conn and FLUSHALL (0), and close
 * it (0). */
int bc_test_redis_setup(void **state);
int bc_test_redis_teardown(void **state);

/* Runs a command on bc_test_conn and returns its reply, for the caller to
 * free; a failed command fails the test. */
redisReply *bc_test_cmd(int argc, const char **argv);

/* bc_test_cmd, the reply dropped. */
void bc_test_cmd_ok(int argc, const char **argv);

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
