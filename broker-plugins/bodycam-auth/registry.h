/*
 * registry.h - the device registry and dashboard users, kept in memory.
 *
 * Redis holds the truth (key layout in broker-plugins/README.md):
 *
 *   bodycam:registry:version   integer, INCR'd by every writer on every change
 *   bodycam:devices            set of device ids
 *   bodycam:device:{id}        hash: status (active|lost|revoked),
 *                              fingerprints (comma-separated SHA-256 hex of the DER cert)
 *   bodycam:dashboards         set of dashboard user names
 *   bodycam:dashboard:{user}   hash: hash (see password.h)
 *
 * A worker thread with its own hiredis connection polls the version every
 * poll_ms and, when it changed (or after a reconnect, or every
 * full_reload_s as a safety net), reads everything into an immutable
 * snapshot: sorted arrays searched with bsearch(). The broker thread takes
 * the newest snapshot in its TICK callback (bc_registry_take) and from then
 * on reads it without locks; nothing in a snapshot changes after hand-over.
 * So no Redis call ever runs on the broker thread, and when Redis is down
 * the broker keeps the last snapshot it took (and, before the first one,
 * knows nobody: fail closed).
 *
 * Threading: bc_registry_start/stop/take/applied/redis_up/take_error are called on
 * the broker thread; the worker touches only its own connection and the
 * hand-over slot under the mutex. Snapshots are malloc'd by the worker and
 * freed by whoever holds them last (bc_registry_snapshot_free).
 */
#ifndef BC_AUTH_REGISTRY_H
#define BC_AUTH_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "broker-plugins/bodycam-auth/password.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_REGISTRY_KEY_VERSION "bodycam:registry:version"
#define BC_REGISTRY_KEY_DEVICES "bodycam:devices"
#define BC_REGISTRY_KEY_DEVICE "bodycam:device:" /* + device id */
#define BC_REGISTRY_KEY_DASHBOARDS "bodycam:dashboards"
#define BC_REGISTRY_KEY_DASHBOARD "bodycam:dashboard:" /* + user name */
/* hash: field = broker instance, value = "<applied version> <unix ms>" */
#define BC_REGISTRY_KEY_APPLIED "bodycam:registry:applied"
#define BC_REGISTRY_APPLIED_REFRESH_MS 1000 /* the entry is rewritten at least this often */
#define BC_REGISTRY_INSTANCE_MAX 64
#define BC_REGISTRY_FIELD_STATUS "status"
#define BC_REGISTRY_FIELD_FINGERPRINTS "fingerprints"
#define BC_REGISTRY_FIELD_HASH "hash"

#define BC_REGISTRY_MAX_FINGERPRINTS 8 /* a device with more is refused */
#define BC_FINGERPRINT_LEN 32          /* SHA-256 */
#define BC_DASHBOARD_USER_MAX 64       /* [A-Za-z0-9_-]{1,64}: bc_id_valid() */

typedef enum bc_device_status {
    BC_DEVICE_ACTIVE,
    BC_DEVICE_LOST,
    BC_DEVICE_REVOKED,
} bc_device_status;

typedef struct bc_registry_device {
    char id[BC_DEVICE_ID_MAX + 1];
    bc_device_status status;
    size_t fingerprint_count;
    uint8_t fingerprints[BC_REGISTRY_MAX_FINGERPRINTS][BC_FINGERPRINT_LEN];
} bc_registry_device;

typedef struct bc_registry_user {
    char name[BC_DASHBOARD_USER_MAX + 1];
    char hash[BC_PASSWORD_HASH_MAX];
} bc_registry_user;

/* Immutable once handed over. Arrays sorted by id / name. */
typedef struct bc_registry_snapshot {
    uint64_t version;
    bc_registry_device *devices;
    size_t device_count;
    bc_registry_user *users;
    size_t user_count;
    size_t skipped; /* entries refused while loading (bad id, status, fingerprints) */
} bc_registry_snapshot;

typedef struct bc_registry_config {
    char host[256];
    int port;
    int poll_ms;       /* version poll period */
    int timeout_ms;    /* connect and command timeout of the worker's connection */
    int full_reload_s; /* reload everything at least this often, 0 = never */
    char instance[BC_REGISTRY_INSTANCE_MAX + 1]; /* field in BC_REGISTRY_KEY_APPLIED */
} bc_registry_config;

typedef struct bc_registry bc_registry;

/* Starts the worker. The first snapshot arrives asynchronously. On failure
 * (thread or allocation) *out is NULL and err says why. */
bc_status bc_registry_start(const bc_registry_config *cfg, bc_registry **out, bc_error *err);

/* Stops and joins the worker, frees any snapshot not yet taken. NULL is a
 * no-op. Returns within about timeout_ms. */
void bc_registry_stop(bc_registry *reg);

/* The newest snapshot the worker produced since the last call, or NULL if
 * none. The caller owns it. Never waits on Redis; takes the hand-over mutex
 * only when the worker has flagged a new snapshot. */
bc_registry_snapshot *bc_registry_take(bc_registry *reg);

/* Broker thread: the snapshot of this version is now the one in use. The
 * worker writes it to BC_REGISTRY_KEY_APPLIED (field cfg->instance) on its
 * next poll, and refreshes the entry every BC_REGISTRY_APPLIED_REFRESH_MS,
 * so writers can wait until every live broker enforces their change. */
void bc_registry_applied(bc_registry *reg, uint64_t version);

/* 1 while the worker's last Redis command succeeded. */
int bc_registry_redis_up(const bc_registry *reg);

/* Copies the worker's newest error sentence into buf and returns 1 when it
 * is new since the last call, else 0. */
int bc_registry_take_error(bc_registry *reg, char *buf, size_t size);

/* Lookups (NULL snapshot or unknown name: NULL). Pointers are borrowed from
 * the snapshot and die with it. */
const bc_registry_device *bc_registry_find_device(const bc_registry_snapshot *s, const char *id);
const bc_registry_user *bc_registry_find_user(const bc_registry_snapshot *s, const char *name);

/* 1 when fingerprint is one of the device's, else 0 (constant time per entry). */
int bc_registry_device_allows(const bc_registry_device *d, const uint8_t *fingerprint);

void bc_registry_snapshot_free(bc_registry_snapshot *s);

const char *bc_device_status_name(bc_device_status status);
/* BC_ERR_INVAL for anything but "active", "lost", "revoked". */
bc_status bc_device_status_parse(const char *text, bc_device_status *out);

/* Parses "hex,hex,..." (lower or upper case, no spaces) into out; an empty
 * string gives 0 fingerprints. BC_ERR_PARSE for a bad entry, BC_ERR_TOO_BIG
 * over BC_REGISTRY_MAX_FINGERPRINTS. */
bc_status bc_registry_parse_fingerprints(const char *csv, uint8_t out[][BC_FINGERPRINT_LEN],
                                         size_t *count, bc_error *err);

/* Connects, loads once and disconnects, within about cfg->timeout_ms per
 * step. Used at plugin start so that the broker knows the fleet before its
 * first client. BC_ERR_UNAVAILABLE when Redis cannot be reached. */
bc_status bc_registry_fetch(const bc_registry_config *cfg, bc_registry_snapshot **out,
                            bc_error *err);

/* Reads the whole registry over an open connection (worker and CLI use it).
 * BC_ERR_UNAVAILABLE on a connection error (ctx is then unusable), BC_ERR_NOMEM.
 * Malformed entries are skipped and counted, never fatal. */
bc_status bc_registry_load(redisContext *ctx, bc_registry_snapshot **out, bc_error *err);

#endif
