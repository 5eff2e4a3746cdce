/*
 * metrics.h - counters of accepted and refused operations, by reason.
 *
 * Plain integers bumped on the broker thread (no atomics needed: every
 * callback runs there). plugin.c publishes them as a retained JSON message
 * on bodycam/v1/broker/metrics every metrics_interval_s and logs the
 * non-zero ones with mosquitto_log_printf.
 */
#ifndef BC_AUTH_METRICS_H
#define BC_AUTH_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "broker-plugins/bodycam-auth/acl.h"
#include "proto/status.h"

typedef enum bc_metric {
    BC_M_AUTH_CAMERA,       /* a camera connected */
    BC_M_AUTH_SERVICE,      /* a service connected */
    BC_M_AUTH_DASHBOARD,    /* a dashboard user connected */
    BC_M_AUTH_BAD_IDENTITY, /* CN/username outside its alphabet: + # / NUL non-UTF-8 ... */
    BC_M_AUTH_UNKNOWN,      /* not in the registry (or no registry loaded yet) */
    BC_M_AUTH_NOT_ACTIVE,   /* device lost or revoked */
    BC_M_AUTH_FINGERPRINT,  /* certificate not among the device's fingerprints */
    BC_M_AUTH_CLIENT_ID,    /* client id not allowed for this identity */
    BC_M_AUTH_PASSWORD,     /* wrong password or malformed stored hash */
    BC_M_AUTH_THROTTLED,    /* slow-hash budget exhausted: refused without hashing */
    BC_M_AUTH_NO_CERT,      /* no certificate and no username */
    BC_M_MSG_ACCEPTED,      /* camera payload validated and within its rate */
    BC_M_MSG_MALFORMED,     /* not JSON, bad UTF-8, too deep */
    BC_M_MSG_WRONG_DEVICE,  /* the payload names another device than its topic */
    BC_M_MSG_VERSION,       /* wrong "v" */
    BC_M_MSG_TOO_BIG,       /* over the size limit of its topic */
    BC_M_MSG_INVALID,       /* missing field, wrong type, value out of range */
    BC_M_MSG_RATE_MESSAGES, /* messages/s bucket empty */
    BC_M_MSG_RATE_BYTES,    /* bytes/s bucket short */
    BC_M_KICK,              /* a client disconnected by registry change */
    BC_M_REGISTRY_LOAD,     /* a new registry snapshot taken over */
    BC_M_REDIS_DOWN,        /* transitions of the registry worker to "Redis down" */
    BC_M_LOG_SUPPRESSED,    /* refusal log lines skipped over the log budget */
    BC_METRIC_COUNT
} bc_metric;

typedef struct bc_metrics {
    uint64_t counters[BC_METRIC_COUNT];
    uint64_t acl[4][BC_ACL_RESULT_COUNT]; /* [bc_acl_access][bc_acl_result] */
} bc_metrics;

/* Values that are states, not counts, included in each report. */
typedef struct bc_metrics_gauges {
    int redis_up;
    uint64_t registry_version;
    size_t devices;
    size_t dashboards;
    int registry_loaded; /* 0 until the first snapshot arrived */
} bc_metrics_gauges;

static inline void bc_metrics_inc(bc_metrics *m, bc_metric which)
{
    m->counters[which]++;
}

static inline void bc_metrics_acl(bc_metrics *m, bc_acl_access access, bc_acl_result result)
{
    m->acl[access][result]++;
}

/* Static counter name ("auth.unknown", "msg.wrong_device", ...). */
const char *bc_metric_name(bc_metric which);

/* Encodes {"v":1,"ts":..,"redis":"up"|"down","registry":{..},"counters":{..}}
 * into *json (NUL-terminated; caller frees with cJSON_free) and its length.
 * BC_ERR_NOMEM on allocation failure. */
bc_status bc_metrics_encode(const bc_metrics *m, const bc_metrics_gauges *g, int64_t ts_ms,
                            char **json, size_t *len);

/* Writes the non-zero counters as "name=value ..." into buf (truncating). */
void bc_metrics_format(const bc_metrics *m, char *buf, size_t size);

#endif
