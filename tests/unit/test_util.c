/*
 * test_util.c - the unit tests' shared helpers (see test_util.h).
 *
 * The tree removal walks with lstat, not stat: a symbolic link planted in a
 * test directory (or left by a module under test) is unlinked as a link,
 * so the teardown never descends into, or deletes, what it points to.
 *
 * The redis-server is real (no mock of Redis): a child process exec'd with
 * its configuration on the command line, so that no config file and no
 * system instance is involved, and SIGKILLed at the end - it persists
 * nothing, so there is nothing to shut down cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/sign.h"
#include "test_util.h"

bc_status bc_test_tempdir(char *out, size_t size, const char *tag)
{
    int n = snprintf(out, size, "/tmp/bc-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= size)
        return BC_ERR_TOO_BIG;
    if (mkdtemp(out) == NULL)
        return BC_ERR_IO;
    return BC_OK;
}

void bc_test_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[1024];
        struct stat st;
        int n = snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(p))
            continue;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            bc_test_remove_tree(p);
        else
            unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

int bc_test_scratch_setup(void **state, const char *tag, const char *name)
{
    bc_test_scratch *s = calloc(1, sizeof(*s));
    if (s == NULL || bc_test_tempdir(s->root, sizeof(s->root), tag) != BC_OK) {
        free(s);
        return -1;
    }
    int n = snprintf(s->dir, sizeof(s->dir), "%s/%s", s->root, name);
    if (n < 0 || (size_t)n >= sizeof(s->dir)) {
        bc_test_remove_tree(s->root);
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

int bc_test_scratch_teardown(void **state)
{
    bc_test_scratch *s = *state;
    bc_test_remove_tree(s->root);
    free(s);
    return 0;
}

/* ---- redis-server ---- */

int bc_test_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = 0;
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

bc_redis_config bc_test_redis_config(int port, int timeout_ms)
{
    bc_redis_config cfg = {
        .port = port, .timeout_ms = timeout_ms, .backoff_min_ms = 20, .backoff_max_ms = 200};
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    return cfg;
}

/* Forks and execs redis-server on srv's port and dir; polls until it
 * answers (500 x 10 ms). */
static bc_status redis_spawn(bc_test_redis *srv)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", srv->port);
    pid_t pid = fork();
    if (pid < 0)
        return BC_ERR_IO;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir",
               srv->dir, "--save", "", "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    srv->pid = pid;
    bc_redis_config cfg = bc_test_redis_config(srv->port, 2000);
    bc_redis r;
    bool ready = bc_redis_init(&r, &cfg, NULL) == BC_OK;
    for (int i = 0; ready && i < 500; i++) {
        if (bc_redis_connect_now(&r, NULL) == BC_OK) {
            bc_redis_close(&r);
            return BC_OK;
        }
        usleep(10000);
    }
    fprintf(stderr, "redis-server did not start on port %d\n", srv->port);
    bc_test_redis_kill(srv);
    return BC_ERR_UNAVAILABLE;
}

bc_status bc_test_redis_start(bc_test_redis *srv, const char *tag)
{
    srv->pid = -1;
    srv->port = bc_test_free_port();
    if (srv->port == 0)
        return BC_ERR_IO;
    bc_status rc = bc_test_tempdir(srv->dir, sizeof(srv->dir), tag);
    if (rc != BC_OK)
        return rc;
    rc = redis_spawn(srv);
    if (rc != BC_OK)
        bc_test_remove_tree(srv->dir);
    return rc;
}

bc_status bc_test_redis_restart(bc_test_redis *srv)
{
    bc_test_redis_kill(srv);
    return redis_spawn(srv);
}

void bc_test_redis_kill(bc_test_redis *srv)
{
    if (srv->pid <= 0)
        return;
    kill(srv->pid, SIGKILL);
    waitpid(srv->pid, NULL, 0);
    srv->pid = -1;
}

void bc_test_redis_stop(bc_test_redis *srv)
{
    bc_test_redis_kill(srv);
    bc_test_remove_tree(srv->dir);
}

void bc_test_redis_connect(const bc_test_redis *srv, int timeout_ms, bc_redis *r)
{
    bc_redis_config cfg = bc_test_redis_config(srv->port, timeout_ms);
    bc_error err = {{0}};
    assert_int_equal(bc_redis_init(r, &cfg, &err), BC_OK);
    if (bc_redis_connect_now(r, &err) != BC_OK)
        fail_msg("cannot connect to redis-server on port %d: %s", srv->port, err.text);
}

void bc_test_redis_flush(bc_redis *r)
{
    const char *argv[] = {"FLUSHALL"};
    redisReply *reply = NULL;
    bc_error err = {{0}};
    if (bc_redis_command(r, 1, argv, NULL, &reply, &err) != BC_OK)
        fail_msg("FLUSHALL: %s", err.text);
    freeReplyObject(reply);
}

/* ---- the fixture of a group of tests against one redis-server ---- */

bc_test_redis bc_test_srv = {.pid = -1};
bc_redis bc_test_conn;

int bc_test_redis_group_setup(void **state)
{
    (void)state;
    return bc_test_redis_start(&bc_test_srv, "redis") == BC_OK ? 0 : -1;
}

int bc_test_redis_group_teardown(void **state)
{
    (void)state;
    bc_test_redis_stop(&bc_test_srv);
    return 0;
}

int bc_test_redis_setup(void **state)
{
    (void)state;
    bc_test_redis_connect(&bc_test_srv, BC_TEST_REDIS_TIMEOUT_MS, &bc_test_conn);
    bc_test_redis_flush(&bc_test_conn);
    return 0;
}

int bc_test_redis_teardown(void **state)
{
    (void)state;
    bc_redis_close(&bc_test_conn);
    return 0;
}

redisReply *bc_test_cmd(int argc, const char **argv)
{
    redisReply *reply = NULL;
    bc_error err = {{0}};
    if (bc_redis_command(&bc_test_conn, argc, argv, NULL, &reply, &err) != BC_OK)
        fail_msg("%s: %s", argv[0], err.text);
    return reply;
}

void bc_test_cmd_ok(int argc, const char **argv)
{
    freeReplyObject(bc_test_cmd(argc, argv));
}

/* ---- keys and files ---- */

bc_status bc_test_x25519_pair(EVP_PKEY **priv, EVP_PKEY **pub)
{
    uint8_t raw[BC_RAW_KEY_LEN];
    *priv = NULL;
    *pub = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (key == NULL || bc_key_raw_public(key, raw) != BC_OK ||
        bc_key_from_raw_public(EVP_PKEY_X25519, raw, pub) != BC_OK) {
        EVP_PKEY_free(key);
        *pub = NULL;
        return BC_ERR_CRYPTO;
    }
    *priv = key;
    return BC_OK;
}

void bc_test_write_bytes(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        fail_msg("cannot create '%s'", path);
    if (len > 0)
        assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

void bc_test_write_file(const char *path, const char *text)
{
    bc_test_write_bytes(path, text, strlen(text));
}

uint8_t *bc_test_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("cannot open '%s'", path);
    struct stat st;
    assert_int_equal(fstat(fileno(fp), &st), 0);
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, size, fp), size);
    fclose(fp);
    buf[size] = '\0';
    *len = size;
    return buf;
}

bool bc_test_exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;
    if (dir == NULL)
        return lstat(name, &st) == 0;
    int n = snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof(p));
    return lstat(p, &st) == 0;
}

size_t bc_test_count_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("cannot open directory '%s'", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

uint8_t *bc_test_pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 16);
    }
    return p;
}
