/*
 * bench_purge - the vault catalog's retention path at scale: commit N
 * recording records (pipelined, bc_catalog_commit_append/_reply, windows of
 * 1,000) and purge them all in batches (bc_catalog_purge_begin, then
 * _purge_audited and _purge_done per batch: the purge worker's Redis work
 * without the object deletes and audit writes).
 *
 * It starts its own redis-server on a free loopback port in a temp dir
 * (no persistence), so nothing else is measured with it. Each phase prints
 * the wall time, the rate, and Redis' own time in the scripts (INFO
 * commandstats: evalsha usec), which separates the server's share from the
 * client's. Usage:
 *   bench_purge [records (default 100000)] [purge batch (default 1000)]
 *
 * Seeding mode, for bench_vault.py's measurement of the real daemon:
 *   bench_purge --seed-only REDIS_PORT N AUDIT_DIR
 * commits N records into the catalog of the Redis at 127.0.0.1:REDIS_PORT
 * (a stack's, its vault stopped) as the vault would: recorded now (the
 * clock of BODYCAM_CLOCK_FILE, if set) minus up to N ms, delete_after 28
 * days later, each with a real "commit" entry in the audit log in
 * AUDIT_DIR (batches of 1,000, one fsync each) and marked audited, so a
 * vault started afterwards has nothing to catch up on but the purge. The
 * objects do not exist: the purge finds them gone, which it allows.
 * Build without sanitizers for meaningful numbers; note the load average.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "vault/audit.h"
#include "vault/catalog.h"

#define WINDOW 1000
#define T0 1714557600000LL /* 2024-05-01T10:00:00Z */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

static pid_t start_redis(const char *dir, int port)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--dir", dir,
               "--save", "", "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static bc_status connect_wait(bc_redis *r, int port)
{
    bc_redis_config cfg = {
        .port = port, .timeout_ms = 60000, .backoff_min_ms = 10, .backoff_max_ms = 100};
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    bc_status st = bc_redis_init(r, &cfg, NULL);
    for (int i = 0; st == BC_OK && i < 500; i++) {
        if (bc_redis_connect_now(r, NULL) == BC_OK)
            return BC_OK;
        usleep(10000);
    }
    return BC_ERR_UNAVAILABLE;
}

/* Redis' time in EVALSHA so far (INFO commandstats), in seconds. */
static double script_secs(bc_redis *r)
{
    const char *argv[] = {"INFO", "commandstats"};
    redisReply *rep = NULL;
    if (bc_redis_command(r, 2, argv, NULL, &rep, NULL) != BC_OK)
        return -1;
    double secs = 0;
    const char *p = rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "cmdstat_evalsha:") : NULL;
    const char *u = p != NULL ? strstr(p, "usec=") : NULL;
    if (u != NULL)
        secs = strtod(u + 5, NULL) / 1e6;
    freeReplyObject(rep);
    return secs;
}

static void meta_fill(bc_recording_meta *m, long i)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->device, sizeof(m->device), "cam-%03ld", i % 500);
    snprintf(m->recording_id, sizeof(m->recording_id), "r%07ld", i);
    snprintf(m->key_id, sizeof(m->key_id), "rk-1");
    memset(m->sha256, 'a', BC_SHA256_HEX_LEN);
    m->recorded_at = T0 + i;
    m->duration_ms = 60000;
    m->warnings = 2;
    m->size = 50 * 1024 * 1024;
    m->committed_at = m->recorded_at + 3600000;
    m->delete_after = m->recorded_at + 28 * BC_CATALOG_DAY_MS;
}

static bc_status commit_all(bc_redis *r, long n, bc_error *err)
{
    static bc_recording_meta ms[WINDOW];
    for (long base = 0; base < n; base += WINDOW) {
        long k = n - base < WINDOW ? n - base : WINDOW;
        for (long i = 0; i < k; i++) {
            meta_fill(&ms[i], base + i);
            bc_status st = bc_catalog_commit_append(r, &ms[i], T0, err);
            if (st != BC_OK)
                return st;
        }
        for (long i = 0; i < k; i++) {
            bc_status st = bc_catalog_commit_reply(r, &ms[i], NULL, NULL, 0, NULL, err);
            if (st != BC_OK)
                return st;
        }
    }
    return BC_OK;
}

static bc_status purge_all(bc_redis *r, size_t batch, long *purged, bc_error *err)
{
    bc_recording_meta *out = calloc(batch, sizeof(*out));
    const char **refs = calloc(batch, sizeof(*refs));
    uint64_t *seqs = calloc(batch, sizeof(*seqs));
    bc_status st = out && refs && seqs ? BC_OK : BC_ERR_NOMEM;
    int64_t when = T0 + 60 * BC_CATALOG_DAY_MS;
    size_t n = 1;
    while (st == BC_OK && n > 0) {
        st = bc_catalog_purge_begin(r, when, out, batch, &n, err);
        for (size_t i = 0; st == BC_OK && i < n; i++) {
            refs[i] = out[i].ref;
            seqs[i] = (uint64_t)*purged + i + 1;
        }
        if (st == BC_OK)
            st = bc_catalog_purge_audited(r, refs, seqs, n, err);
        if (st == BC_OK)
            st = bc_catalog_purge_done(r, refs, n, when, 30, err);
        if (st == BC_OK)
            *purged += (long)n;
    }
    free(seqs);
    free(refs);
    free(out);
    return st;
}

/* ---- --seed-only ---- */

static void seed_fill(bc_recording_meta *m, long i, int64_t now)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->device, sizeof(m->device), "cam-%03ld", i % 500);
    snprintf(m->recording_id, sizeof(m->recording_id), "seed%07ld", i);
    snprintf(m->key_id, sizeof(m->key_id), "rk-1");
    snprintf(m->sha256, sizeof(m->sha256), "%064lx", i); /* one object name each */
    m->recorded_at = now - 1000 - i;
    m->duration_ms = 60000;
    m->warnings = 2;
    m->size = 50 * 1024 * 1024;
    m->committed_at = now;
    m->delete_after = m->recorded_at + 28 * BC_CATALOG_DAY_MS;
}

static cJSON *seed_entry(const bc_recording_meta *m)
{
    cJSON *e = cJSON_CreateObject();
    if (e == NULL)
        return NULL;
    bool ok = cJSON_AddStringToObject(e, "actor", "bench_purge") != NULL &&
              cJSON_AddStringToObject(e, "action", "commit") != NULL &&
              cJSON_AddStringToObject(e, "subject", m->ref) != NULL &&
              cJSON_AddStringToObject(e, "device", m->device) != NULL &&
              cJSON_AddStringToObject(e, "recording_id", m->recording_id) != NULL &&
              cJSON_AddNumberToObject(e, "recorded_at", (double)m->recorded_at) != NULL &&
              cJSON_AddStringToObject(e, "sha256", m->sha256) != NULL &&
              cJSON_AddNumberToObject(e, "size", (double)m->size) != NULL &&
              cJSON_AddNumberToObject(e, "delete_after", (double)m->delete_after) != NULL;
    if (!ok) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

/* One window: commit (pipelined), audit (one batch), mark audited. */
static bc_status seed_window(bc_redis *r, bc_audit *a, long base, long k, int64_t now,
                             double secs[3], bc_error *err)
{
    static bc_recording_meta ms[WINDOW];
    static cJSON *entries[WINDOW];
    long built = 0;
    bc_status st = BC_OK;
    double t = now_s();
    for (long i = 0; st == BC_OK && i < k; i++) {
        seed_fill(&ms[i], base + i, now);
        st = bc_catalog_commit_append(r, &ms[i], now, err);
    }
    for (long i = 0; st == BC_OK && i < k; i++)
        st = bc_catalog_commit_reply(r, &ms[i], NULL, NULL, 0, NULL, err);
    secs[0] += now_s() - t;
    t = now_s();
    for (; st == BC_OK && built < k; built++)
        if ((entries[built] = seed_entry(&ms[built])) == NULL)
            st = bc_fail(err, BC_ERR_NOMEM, "no memory for an audit entry");
    uint64_t first = 0;
    if (st == BC_OK)
        st = bc_audit_append(a, entries, (size_t)k, now, &first, err);
    secs[1] += now_s() - t;
    t = now_s();
    for (long i = 0; st == BC_OK && i < k; i++)
        st = bc_catalog_commit_audited(r, ms[i].ref, first + (uint64_t)i, err);
    secs[2] += now_s() - t;
    for (long i = 0; i < built; i++)
        cJSON_Delete(entries[i]);
    return st;
}

static int seed_only(int argc, char **argv)
{
    long port = argc == 5 ? strtol(argv[2], NULL, 10) : 0;
    long n = argc == 5 ? strtol(argv[3], NULL, 10) : 0;
    if (port <= 0 || port > 65535 || n <= 0) {
        fprintf(stderr, "usage: bench_purge --seed-only REDIS_PORT N AUDIT_DIR\n");
        return 2;
    }
    bc_redis r;
    memset(&r, 0, sizeof(r)); /* bc_redis_close below is safe before a connect */
    bc_audit *a = NULL;
    bc_error err = {""};
    double secs[3] = {0, 0, 0};
    int64_t now = bc_clock_now_ms();
    int rc = 1;
    if (connect_wait(&r, (int)port) != BC_OK) {
        fprintf(stderr, "bench_purge: no Redis at 127.0.0.1:%ld\n", port);
        goto cleanup;
    }
    if (bc_catalog_scripts_load(&r, &err) != BC_OK || bc_audit_open(argv[4], &a, &err) != BC_OK)
        goto fail;
    for (long base = 0; base < n; base += WINDOW) {
        long k = n - base < WINDOW ? n - base : WINDOW;
        if (seed_window(&r, a, base, k, now, secs, &err) != BC_OK)
            goto fail;
    }
    printf("seeded %ld records: commit %.2f s (pipelined, windows of %d), audit %.2f s "
           "(one batch per window), marked audited %.2f s (one call each)\n",
           n, secs[0], WINDOW, secs[1], secs[2]);
    rc = 0;
    goto cleanup;
fail:
    fprintf(stderr, "bench_purge: %s\n", err.text);
cleanup:
    bc_audit_close(a);
    bc_redis_close(&r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--seed-only") == 0)
        return seed_only(argc, argv);
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    long batch = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
    if (n <= 0 || batch <= 0 || batch > 100000) {
        fprintf(stderr, "usage: bench_purge [records] [purge batch 1..100000]\n");
        return 2;
    }
    char dir[] = "/tmp/bc-bench-purge-XXXXXX";
    int port = free_port();
    if (mkdtemp(dir) == NULL || port < 0) {
        fprintf(stderr, "bench_purge: no temp dir or free port\n");
        return 1;
    }
    pid_t redis = start_redis(dir, port);
    bc_redis r;
    memset(&r, 0, sizeof(r)); /* bc_redis_close below is safe before a connect */
    bc_error err = {""};
    int rc = 1;
    if (redis < 0 || connect_wait(&r, port) != BC_OK) {
        fprintf(stderr, "bench_purge: redis-server did not start\n");
        goto cleanup;
    }
    if (bc_catalog_scripts_load(&r, &err) != BC_OK)
        goto fail;
    double t = now_s();
    double s0 = script_secs(&r);
    if (commit_all(&r, n, &err) != BC_OK)
        goto fail;
    double commit_s = now_s() - t;
    double commit_server = script_secs(&r) - s0;
    long purged = 0;
    t = now_s();
    s0 = script_secs(&r);
    if (purge_all(&r, (size_t)batch, &purged, &err) != BC_OK)
        goto fail;
    double purge_s = now_s() - t;
    double purge_server = script_secs(&r) - s0;
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) < 0)
        load[0] = -1;
    printf("| phase | records | wall s | per s | Redis script s |\n|---|---|---|---|---|\n");
    printf("| commit (pipelined, windows of %d) | %ld | %.2f | %.0f | %.2f |\n", WINDOW, n,
           commit_s, (double)n / commit_s, commit_server);
    printf("| purge (begin + audited + done, batches of %ld) | %ld | %.2f | %.0f | %.2f |\n", batch,
           purged, purge_s, (double)purged / purge_s, purge_server);
    printf("load average %.2f\n", load[0]);
    rc = purged == n ? 0 : 1;
    goto cleanup;
fail:
    fprintf(stderr, "bench_purge: %s\n", err.text);
cleanup:
    bc_redis_close(&r);
    if (redis > 0) {
        kill(redis, SIGTERM);
        waitpid(redis, NULL, 0);
    }
    rmdir(dir);
    return rc;
}
