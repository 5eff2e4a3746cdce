/*
 * registry.c - snapshot loading, lookups, and the worker thread.
 *
 *   worker thread                               broker thread (TICK)
 *   -------------                               --------------------
 *   connect (timeout) ─ fail ─► redis_up = 0
 *   GET version ──────── fail ─► redis_up = 0, drop connection
 *   changed / reconnected / full reload due?
 *     load everything, GET version again
 *     (changed meanwhile: load again)
 *     lock; replace pending; unlock;
 *     pending_flag = 1 ─────────────────────► flag set? lock; take pending;
 *   sleep poll_ms on a condition variable       unlock; diff, kick, swap
 *   (bc_registry_stop wakes it)
 *
 * The hand-over slot holds at most one snapshot: a newer one replaces an
 * untaken older one, so the broker always gets the latest and never a
 * backlog. The flag is an atomic so that the broker's TICK, which runs on
 * every loop pass, costs one load when nothing changed.
 *
 * Loading is strict per entry and lenient overall: an entry with a bad id,
 * an unknown status or a malformed fingerprint list is left out (so the
 * device is unknown and refused: fail closed) and counted in `skipped`,
 * while the rest of the fleet loads. Only a connection error or a wrong
 * key type fails the load, and then the broker keeps what it has.
 */
#include "broker-plugins/bodycam-auth/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "proto/encoding.h"

struct bc_registry {
    bc_registry_config cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;                 /* under lock */
    bc_registry_snapshot *pending; /* under lock */
    char error[512];               /* under lock */
    unsigned error_seq;            /* under lock */
    unsigned error_seen;           /* broker thread only */
    atomic_int pending_flag;
    atomic_int redis_up;
    /* broker thread -> worker: the version of the snapshot in use, + 1 (0 = none yet) */
    _Atomic uint64_t applied;
};

/* ---- snapshot ---------------------------------------------------------- */

static int device_cmp(const void *a, const void *b)
{
    return strcmp(((const bc_registry_device *)a)->id, ((const bc_registry_device *)b)->id);
}

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const bc_registry_user *)a)->name, ((const bc_registry_user *)b)->name);
}

const bc_registry_device *bc_registry_find_device(const bc_registry_snapshot *s, const char *id)
{
    if (s == NULL || id == NULL || s->device_count == 0 || strlen(id) > BC_DEVICE_ID_MAX)
        return NULL;
    bc_registry_device key;
    snprintf(key.id, sizeof(key.id), "%s", id);
    return bsearch(&key, s->devices, s->device_count, sizeof(key), device_cmp);
}

const bc_registry_user *bc_registry_find_user(const bc_registry_snapshot *s, const char *name)
{
    if (s == NULL || name == NULL || s->user_count == 0 || strlen(name) > BC_DASHBOARD_USER_MAX)
        return NULL;
    bc_registry_user key;
    snprintf(key.name, sizeof(key.name), "%s", name);
    return bsearch(&key, s->users, s->user_count, sizeof(key), user_cmp);
}

int bc_registry_device_allows(const bc_registry_device *d, const uint8_t *fingerprint)
{
    if (d == NULL || fingerprint == NULL)
        return 0;
    int found = 0;
    for (size_t i = 0; i < d->fingerprint_count; i++)
        found |= CRYPTO_memcmp(d->fingerprints[i], fingerprint, BC_FINGERPRINT_LEN) == 0;
    return found;
}

void bc_registry_snapshot_free(bc_registry_snapshot *s)
{
    if (s == NULL)
        return;
    free(s->devices);
    if (s->users != NULL)
        OPENSSL_cleanse(s->users, s->user_count * sizeof(*s->users));
    free(s->users);
    free(s);
}

const char *bc_device_status_name(bc_device_status status)
{
    switch (status) {
    case BC_DEVICE_ACTIVE:
        return "active";
    case BC_DEVICE_LOST:
        return "lost";
    case BC_DEVICE_REVOKED:
        return "revoked";
    }
    return "unknown";
}

bc_status bc_device_status_parse(const char *text, bc_device_status *out)
{
    static const bc_device_status all[] = {BC_DEVICE_ACTIVE, BC_DEVICE_LOST, BC_DEVICE_REVOKED};
    for (size_t i = 0; text != NULL && i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(text, bc_device_status_name(all[i])) == 0) {
            *out = all[i];
            return BC_OK;
        }
    }
    return BC_ERR_INVAL;
}

bc_status bc_registry_parse_fingerprints(const char *csv, uint8_t out[][BC_FINGERPRINT_LEN],
                                         size_t *count, bc_error *err)
{
    *count = 0;
    if (csv == NULL || csv[0] == '\0')
        return BC_OK;
    const char *p = csv;
    for (;;) {
        size_t len = strcspn(p, ",");
        char hex[2 * BC_FINGERPRINT_LEN + 1];
        if (len != 2 * BC_FINGERPRINT_LEN)
            return bc_fail(err, BC_ERR_PARSE, "fingerprint %zu is not 64 hex digits", *count + 1);
        if (*count == BC_REGISTRY_MAX_FINGERPRINTS)
            return bc_fail(err, BC_ERR_TOO_BIG, "more than %d fingerprints",
                           BC_REGISTRY_MAX_FINGERPRINTS);
        memcpy(hex, p, len);
        hex[len] = '\0';
        if (bc_hex_decode(hex, out[*count], BC_FINGERPRINT_LEN) != BC_OK)
            return bc_fail(err, BC_ERR_PARSE, "fingerprint %zu is not hex", *count + 1);
        (*count)++;
        if (p[len] == '\0')
            return BC_OK;
        p += len + 1;
    }
}

/* ---- loading ----------------------------------------------------------- */

/* A command's reply, or NULL with the connection marked unusable. */
static redisReply *command(redisContext *ctx, const char *fmt, const char *arg)
{
    return arg ? redisCommand(ctx, fmt, arg) : redisCommand(ctx, fmt);
}

static bc_status read_version(redisContext *ctx, uint64_t *out, bc_error *err)
{
    redisReply *r = command(ctx, "GET %s", BC_REGISTRY_KEY_VERSION);
    if (r == NULL)
        return bc_fail(err, BC_ERR_UNAVAILABLE, "redis: %s", ctx->errstr);
    bc_status rc = BC_OK;
    *out = 0;
    if (r->type == REDIS_REPLY_STRING) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(r->str, &end, 10);
        if (errno != 0 || end == r->str || *end != '\0')
            rc = bc_fail(err, BC_ERR_PARSE, BC_REGISTRY_KEY_VERSION " is not an integer");
        *out = v;
    } else if (r->type != REDIS_REPLY_NIL) {
        rc = bc_fail(err, BC_ERR_PARSE, BC_REGISTRY_KEY_VERSION " has the wrong type");
    }
    freeReplyObject(r);
    return rc;
}

/* SMEMBERS key into a reply the caller frees. */
static bc_status read_members(redisContext *ctx, const char *key, redisReply **out, bc_error *err)
{
    redisReply *r = command(ctx, "SMEMBERS %s", key);
    if (r == NULL)
        return bc_fail(err, BC_ERR_UNAVAILABLE, "redis: %s", ctx->errstr);
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return bc_fail(err, BC_ERR_PARSE, "%s is not a set", key);
    }
    *out = r;
    return BC_OK;
}

/* The value of field in an HGETALL reply, or NULL. Borrowed from r. */
static const char *hash_field(const redisReply *r, const char *field)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];
        const redisReply *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, field) == 0 && strlen(v->str) == v->len)
            return v->str;
    }
    return NULL;
}

static int device_from_hash(const char *id, const redisReply *h, bc_registry_device *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    if (bc_device_status_parse(hash_field(h, BC_REGISTRY_FIELD_STATUS), &d->status) != BC_OK)
        return -1;
    const char *fps = hash_field(h, BC_REGISTRY_FIELD_FINGERPRINTS);
    if (bc_registry_parse_fingerprints(fps ? fps : "", d->fingerprints, &d->fingerprint_count,
                                       NULL) != BC_OK)
        return -1;
    return 0;
}

static int user_from_hash(const char *name, const redisReply *h, bc_registry_user *u)
{
    memset(u, 0, sizeof(*u));
    const char *hash = hash_field(h, BC_REGISTRY_FIELD_HASH);
    if (hash == NULL || strlen(hash) >= sizeof(u->hash))
        return -1;
    snprintf(u->name, sizeof(u->name), "%s", name);
    snprintf(u->hash, sizeof(u->hash), "%s", hash);
    return 0;
}

/* Pipelines HGETALL prefix+name for every valid member, then reads the
 * replies in order and fills entries of `size` bytes with `fill`. */
typedef int (*fill_fn)(const char *name, const redisReply *h, void *entry);

static int fill_device(const char *name, const redisReply *h, void *entry)
{
    return device_from_hash(name, h, entry);
}

static int fill_user(const char *name, const redisReply *h, void *entry)
{
    return user_from_hash(name, h, entry);
}

static int device_name_ok(const char *name)
{
    return bc_device_id_valid(name);
}

static int user_name_ok(const char *name)
{
    return bc_id_valid(name);
}

typedef struct load_spec {
    const char *set_key;
    const char *prefix;
    int (*name_ok)(const char *name);
    fill_fn fill;
    size_t entry_size;
} load_spec;

static bc_status load_entries(redisContext *ctx, const load_spec *spec, void **entries,
                              size_t *count, size_t *skipped, bc_error *err)
{
    redisReply *members = NULL;
    unsigned char *out = NULL;
    size_t sent = 0, n = 0;
    bc_status rc = read_members(ctx, spec->set_key, &members, err);
    if (rc != BC_OK)
        return rc;
    out = calloc(members->elements ? members->elements : 1, spec->entry_size);
    if (out == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory for %zu registry entries", members->elements);
        goto cleanup;
    }
    for (size_t i = 0; i < members->elements; i++) {
        const redisReply *m = members->element[i];
        if (m->type != REDIS_REPLY_STRING || strlen(m->str) != m->len || !spec->name_ok(m->str))
            continue;
        if (redisAppendCommand(ctx, "HGETALL %s%s", spec->prefix, m->str) != REDIS_OK) {
            rc = bc_fail(err, BC_ERR_UNAVAILABLE, "redis: %s", ctx->errstr);
            goto cleanup;
        }
        sent++;
    }
    for (size_t i = 0, got = 0; i < members->elements && got < sent; i++) {
        const redisReply *m = members->element[i];
        if (m->type != REDIS_REPLY_STRING || strlen(m->str) != m->len || !spec->name_ok(m->str))
            continue;
        void *reply = NULL;
        if (redisGetReply(ctx, &reply) != REDIS_OK || reply == NULL) {
            rc = bc_fail(err, BC_ERR_UNAVAILABLE, "redis: %s", ctx->errstr);
            goto cleanup;
        }
        got++;
        if (spec->fill(m->str, reply, out + n * spec->entry_size) == 0)
            n++;
        freeReplyObject(reply);
    }
    *skipped += members->elements - n;
    *entries = out;
    *count = n;
    out = NULL;
cleanup:
    free(out);
    freeReplyObject(members);
    return rc;
}

bc_status bc_registry_load(redisContext *ctx, bc_registry_snapshot **out, bc_error *err)
{
    static const load_spec devices = {BC_REGISTRY_KEY_DEVICES, BC_REGISTRY_KEY_DEVICE,
                                      device_name_ok, fill_device, sizeof(bc_registry_device)};
    static const load_spec users = {BC_REGISTRY_KEY_DASHBOARDS, BC_REGISTRY_KEY_DASHBOARD,
                                    user_name_ok, fill_user, sizeof(bc_registry_user)};
    *out = NULL;
    bc_registry_snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for a registry snapshot");
    void *dev = NULL, *usr = NULL;
    bc_status rc = read_version(ctx, &s->version, err);
    if (rc == BC_OK)
        rc = load_entries(ctx, &devices, &dev, &s->device_count, &s->skipped, err);
    s->devices = dev;
    if (rc == BC_OK)
        rc = load_entries(ctx, &users, &usr, &s->user_count, &s->skipped, err);
    s->users = usr;
    if (rc != BC_OK) {
        bc_registry_snapshot_free(s);
        return rc;
    }
    qsort(s->devices, s->device_count, sizeof(*s->devices), device_cmp);
    qsort(s->users, s->user_count, sizeof(*s->users), user_cmp);
    *out = s;
    return BC_OK;
}

bc_status bc_registry_fetch(const bc_registry_config *cfg, bc_registry_snapshot **out,
                            bc_error *err)
{
    struct timeval tv = {cfg->timeout_ms / 1000, (cfg->timeout_ms % 1000) * 1000};
    *out = NULL;
    redisContext *ctx = redisConnectWithTimeout(cfg->host, cfg->port, tv);
    if (ctx == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "redis: cannot allocate a connection");
    bc_status rc = BC_OK;
    if (ctx->err != 0 || redisSetTimeout(ctx, tv) != REDIS_OK)
        rc = bc_fail(err, BC_ERR_UNAVAILABLE, "redis %s:%d: %s", cfg->host, cfg->port, ctx->errstr);
    else
        rc = bc_registry_load(ctx, out, err);
    redisFree(ctx);
    return rc;
}

/* ---- worker ------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void report_error(bc_registry *reg, const char *text)
{
    pthread_mutex_lock(&reg->lock);
    if (strcmp(reg->error, text) != 0) {
        snprintf(reg->error, sizeof(reg->error), "%s", text);
        reg->error_seq++;
    }
    pthread_mutex_unlock(&reg->lock);
}

static void set_up(bc_registry *reg, int up, const char *why)
{
    atomic_store(&reg->redis_up, up);
    if (!up && why != NULL)
        report_error(reg, why);
}

static void hand_over(bc_registry *reg, bc_registry_snapshot *s)
{
    pthread_mutex_lock(&reg->lock);
    bc_registry_snapshot *old = reg->pending;
    reg->pending = s;
    atomic_store(&reg->pending_flag, 1);
    pthread_mutex_unlock(&reg->lock);
    bc_registry_snapshot_free(old);
}

/* Sleeps ms unless stopped; returns 1 when the worker must end. */
static int nap(bc_registry *reg, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&reg->lock);
    int rc = 0;
    while (!reg->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&reg->wake, &reg->lock, &until);
    int stop = reg->stopping;
    pthread_mutex_unlock(&reg->lock);
    return stop;
}

static redisContext *connect_redis(bc_registry *reg)
{
    struct timeval tv = {reg->cfg.timeout_ms / 1000, (reg->cfg.timeout_ms % 1000) * 1000};
    char why[sizeof(reg->cfg.host) + 200];
    redisContext *ctx = redisConnectWithTimeout(reg->cfg.host, reg->cfg.port, tv);
    if (ctx == NULL) {
        set_up(reg, 0, "redis: cannot allocate a connection");
        return NULL;
    }
    if (ctx->err == 0 && redisSetTimeout(ctx, tv) == REDIS_OK)
        return ctx;
    snprintf(why, sizeof(why), "redis %s:%d: %s", reg->cfg.host, reg->cfg.port, ctx->errstr);
    set_up(reg, 0, why);
    redisFree(ctx);
    return NULL;
}

typedef struct worker_state {
    redisContext *ctx;
    uint64_t applied_written; /* the `applied` value last written, 0 = none */
    uint64_t applied_at_ns;   /* when */
    int loaded;               /* a snapshot was loaded on this connection */
    uint64_t version;         /* of the last snapshot handed over */
    uint64_t loaded_ns;       /* when */
} worker_state;

static int reload_due(const bc_registry *reg, const worker_state *w, uint64_t version)
{
    if (!w->loaded || version != w->version)
        return 1;
    if (reg->cfg.full_reload_s <= 0)
        return 0;
    return now_ns() - w->loaded_ns >= (uint64_t)reg->cfg.full_reload_s * 1000000000ull;
}

static void drop_connection(bc_registry *reg, worker_state *w, const bc_error *err)
{
    set_up(reg, 0, err->text);
    redisFree(w->ctx);
    w->ctx = NULL;
    w->loaded = 0;
}

/* One poll: returns 1 to poll again at once (the version moved during a
 * load), 0 to sleep first. */
static int poll_once(bc_registry *reg, worker_state *w)
{
    bc_error err = {{0}};
    uint64_t version = 0, after = 0;
    bc_registry_snapshot *s = NULL;
    if (w->ctx == NULL) {
        w->ctx = connect_redis(reg);
        if (w->ctx == NULL)
            return 0;
    }
    bc_status rc = read_version(w->ctx, &version, &err);
    if (rc == BC_OK && !reload_due(reg, w, version)) {
        set_up(reg, 1, NULL);
        return 0;
    }
    if (rc == BC_OK)
        rc = bc_registry_load(w->ctx, &s, &err);
    if (rc == BC_OK)
        rc = read_version(w->ctx, &after, &err);
    if (rc != BC_OK) {
        bc_registry_snapshot_free(s);
        if (rc == BC_ERR_UNAVAILABLE)
            drop_connection(reg, w, &err);
        else
            report_error(reg, err.text);
        return 0;
    }
    set_up(reg, 1, NULL);
    if (after != s->version) {
        bc_registry_snapshot_free(s);
        return 1;
    }
    w->loaded = 1;
    w->version = s->version;
    w->loaded_ns = now_ns();
    hand_over(reg, s);
    return 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Publishes the version the broker thread applied: on a change at once,
 * else every BC_REGISTRY_APPLIED_REFRESH_MS so that readers can tell a
 * live broker from a dead one by the time stamp. */
static void publish_applied(bc_registry *reg, worker_state *w)
{
    uint64_t applied = atomic_load(&reg->applied);
    uint64_t now = now_ns();
    if (w->ctx == NULL || applied == 0)
        return;
    if (applied == w->applied_written &&
        now - w->applied_at_ns < (uint64_t)BC_REGISTRY_APPLIED_REFRESH_MS * 1000000ull)
        return;
    char value[64];
    snprintf(value, sizeof(value), "%llu %lld", (unsigned long long)(applied - 1),
             (long long)wall_ms());
    redisReply *r =
        redisCommand(w->ctx, "HSET %s %s %s", BC_REGISTRY_KEY_APPLIED, reg->cfg.instance, value);
    if (r == NULL) {
        bc_error err = {{0}};
        bc_fail(&err, BC_ERR_UNAVAILABLE, "redis: %s", w->ctx->errstr);
        drop_connection(reg, w, &err);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR)
        report_error(reg, "cannot write " BC_REGISTRY_KEY_APPLIED " (wrong type?)");
    else {
        w->applied_written = applied;
        w->applied_at_ns = now;
    }
    freeReplyObject(r);
}

static void *worker_main(void *arg)
{
    bc_registry *reg = arg;
    worker_state w = {0};
    for (;;) {
        publish_applied(reg, &w);
        if (poll_once(reg, &w))
            continue;
        if (nap(reg, reg->cfg.poll_ms))
            break;
    }
    if (w.ctx != NULL)
        redisFree(w.ctx);
    return NULL;
}

/* ---- broker-thread API ------------------------------------------------- */

bc_status bc_registry_start(const bc_registry_config *cfg, bc_registry **out, bc_error *err)
{
    *out = NULL;
    bc_registry *reg = calloc(1, sizeof(*reg));
    if (reg == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the registry");
    reg->cfg = *cfg;
    pthread_condattr_t attr;
    int cond_ok = 0, lock_ok = 0;
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
        pthread_cond_init(&reg->wake, &attr) == 0)
        cond_ok = 1;
    pthread_condattr_destroy(&attr);
    if (!cond_ok)
        goto fail;
    if (pthread_mutex_init(&reg->lock, NULL) != 0)
        goto fail;
    lock_ok = 1;
    if (pthread_create(&reg->thread, NULL, worker_main, reg) != 0)
        goto fail;
    *out = reg;
    return BC_OK;
fail:
    if (lock_ok)
        pthread_mutex_destroy(&reg->lock);
    if (cond_ok)
        pthread_cond_destroy(&reg->wake);
    free(reg);
    return bc_fail(err, BC_ERR_NOMEM, "cannot start the registry worker thread");
}

void bc_registry_stop(bc_registry *reg)
{
    if (reg == NULL)
        return;
    pthread_mutex_lock(&reg->lock);
    reg->stopping = true;
    pthread_cond_signal(&reg->wake);
    pthread_mutex_unlock(&reg->lock);
    pthread_join(reg->thread, NULL);
    bc_registry_snapshot_free(reg->pending);
    pthread_cond_destroy(&reg->wake);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

bc_registry_snapshot *bc_registry_take(bc_registry *reg)
{
    if (reg == NULL || atomic_load(&reg->pending_flag) == 0)
        return NULL;
    pthread_mutex_lock(&reg->lock);
    bc_registry_snapshot *s = reg->pending;
    reg->pending = NULL;
    atomic_store(&reg->pending_flag, 0);
    pthread_mutex_unlock(&reg->lock);
    return s;
}

void bc_registry_applied(bc_registry *reg, uint64_t version)
{
    if (reg != NULL)
        atomic_store(&reg->applied, version + 1);
}

int bc_registry_redis_up(const bc_registry *reg)
{
    return reg != NULL && atomic_load(&reg->redis_up);
}

int bc_registry_take_error(bc_registry *reg, char *buf, size_t size)
{
    if (reg == NULL || size == 0)
        return 0;
    pthread_mutex_lock(&reg->lock);
    int fresh = reg->error_seq != reg->error_seen;
    if (fresh) {
        snprintf(buf, size, "%s", reg->error);
        reg->error_seen = reg->error_seq;
    }
    pthread_mutex_unlock(&reg->lock);
    return fresh;
}
