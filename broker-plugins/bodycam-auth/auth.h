/*
 * auth.h - the plugin's one state struct, passed to every callback as
 * userdata, and its configuration.
 *
 * Everything here is touched on the broker thread only, except `registry`,
 * whose worker thread keeps its own state behind registry.c's hand-over.
 */
#ifndef BC_AUTH_AUTH_H
#define BC_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <mosquitto_broker.h>

#include "broker-plugins/bodycam-auth/cameras.h"
#include "broker-plugins/bodycam-auth/metrics.h"
#include "broker-plugins/bodycam-auth/password.h"
#include "broker-plugins/bodycam-auth/ratelimit.h"
#include "broker-plugins/bodycam-auth/registry.h"
#include "broker-plugins/bodycam-auth/validate.h"

#define BC_AUTH_LOG_PREFIX "bodycam-auth"
#define BC_AUTH_MAX_SERVICES 16
#define BC_AUTH_MAX_DASHBOARD_SESSIONS 1024
/* The broker username this plugin gives each role: "<prefix><name>". No
 * identity can carry a ':' (the id alphabets forbid it), so a username that
 * anything else set (a client, use_identity_as_username on a misconfigured
 * listener) never maps to a principal. */
#define BC_AUTH_CAMERA_PREFIX "camera:"
#define BC_AUTH_SERVICE_PREFIX "service:"
#define BC_AUTH_DASHBOARD_PREFIX "dashboard:"
#define BC_AUTH_USERNAME_MAX 80

/* Options (plugin_opt_<name> in mosquitto.conf); plugin.c has the table. */
typedef struct bc_auth_config {
    bc_registry_config registry; /* host set directly; the numbers from the int64s below */
    int64_t redis_port, redis_poll_ms, redis_timeout_ms, registry_full_reload_s;
    char services_text[512];
    int64_t metrics_interval_s;
    int64_t max_payload;
    int64_t max_upload_payload;
    int64_t rate_msgs_per_s, rate_msgs_burst, rate_bytes_per_s, rate_bytes_burst;
    int64_t upload_msgs_per_s, upload_msgs_burst, upload_bytes_per_s, upload_bytes_burst;
    int64_t auth_slow_per_s, auth_slow_burst;
    int64_t camera_client_id_match; /* bool */
    /* derived by plugin.c's check pass */
    char services[BC_AUTH_MAX_SERVICES][BC_DEVICE_ID_MAX + 1];
    size_t service_count;
    bc_rate_limits rate[BC_RATE_CLASS_COUNT];
    bc_validate_limits limits;
} bc_auth_config;

/* A dashboard user who logged in during this run: the stored hash the
 * password was checked against and a keyed MAC of that password, so a
 * reconnect with the same password skips the slow hash. */
typedef struct bc_dashboard_session {
    char name[BC_DASHBOARD_USER_MAX + 1];
    char hash[BC_PASSWORD_HASH_MAX];
    uint8_t mac[32];
} bc_dashboard_session;

typedef struct bc_auth {
    mosquitto_plugin_id_t *plugin_id;
    bc_auth_config cfg;
    bc_registry *registry;          /* the worker */
    bc_registry_snapshot *snapshot; /* current; NULL until the first load */
    bc_camera_table cameras;
    bc_dashboard_session *dashboards; /* [BC_AUTH_MAX_DASHBOARD_SESSIONS] */
    size_t dashboard_count;
    uint8_t mac_key[32];                   /* random per run, for dashboard session MACs */
    char dummy_hash[BC_PASSWORD_HASH_MAX]; /* verified for unknown users: same cost */
    bc_rate_state auth_budget;             /* slow password checks */
    bc_rate_limits auth_limits[BC_RATE_CLASS_COUNT];
    bc_rate_state log_budget; /* refusal log lines */
    bc_rate_limits log_limits[BC_RATE_CLASS_COUNT];
    bc_metrics metrics;
    int redis_up_seen; /* -1 until the first look */
    uint64_t next_housekeeping_ns;
    uint64_t next_metrics_ns;
} bc_auth;

/* Monotonic time in ns (CLOCK_MONOTONIC). */
uint64_t bc_auth_now_ns(void);

#endif
