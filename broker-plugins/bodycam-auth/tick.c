/*
 * tick.c - registry hand-over, Redis state changes, metrics publishing.
 */
#include "broker-plugins/bodycam-auth/tick.h"

#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "broker-plugins/bodycam-auth/identity.h"
#include "proto/topic.h"

#define HOUSEKEEPING_NS 100000000ull /* 100 ms */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void take_registry(bc_auth *a)
{
    bc_registry_snapshot *s = bc_registry_take(a->registry);
    if (s == NULL)
        return;
    int first = a->snapshot == NULL;
    unsigned long long version = s->version;
    size_t devices = s->device_count, users = s->user_count, skipped = s->skipped;
    bc_identity_apply_registry(a, s);          /* s belongs to a from here */
    bc_registry_applied(a->registry, version); /* the worker publishes it: no I/O here */
    bc_metrics_inc(&a->metrics, BC_M_REGISTRY_LOAD);
    mosquitto_log_printf(first ? MOSQ_LOG_NOTICE : MOSQ_LOG_INFO,
                         BC_AUTH_LOG_PREFIX " | registry | version %llu: %zu devices, "
                                            "%zu dashboard users, %zu entries skipped",
                         version, devices, users, skipped);
}

static void watch_redis(bc_auth *a)
{
    int up = bc_registry_redis_up(a->registry);
    char why[256];
    int fresh_error = bc_registry_take_error(a->registry, why, sizeof(why));
    if (up != a->redis_up_seen) {
        if (!up)
            bc_metrics_inc(&a->metrics, BC_M_REDIS_DOWN);
        mosquitto_log_printf(up ? MOSQ_LOG_NOTICE : MOSQ_LOG_WARNING,
                             BC_AUTH_LOG_PREFIX " | registry | redis %s%s%s", up ? "up" : "down",
                             up ? ""
                                : " (keeping the last registry; unknown identities "
                                  "are refused): ",
                             up ? "" : (fresh_error ? why : ""));
        a->redis_up_seen = up;
        return;
    }
    if (fresh_error)
        mosquitto_log_printf(MOSQ_LOG_WARNING, BC_AUTH_LOG_PREFIX " | registry | %s", why);
}

static void publish_metrics(bc_auth *a)
{
    char topic[BC_TOPIC_MAX];
    char *json = NULL;
    size_t len = 0;
    bc_metrics_gauges g = {
        .redis_up = bc_registry_redis_up(a->registry),
        .registry_loaded = a->snapshot != NULL,
        .registry_version = a->snapshot ? a->snapshot->version : 0,
        .devices = a->snapshot ? a->snapshot->device_count : 0,
        .dashboards = a->snapshot ? a->snapshot->user_count : 0,
    };
    if (bc_topic_fixed(topic, sizeof(topic), BC_TOPIC_BROKER_METRICS) != BC_OK ||
        bc_metrics_encode(&a->metrics, &g, wall_ms(), &json, &len) != BC_OK) {
        mosquitto_log_printf(MOSQ_LOG_WARNING, BC_AUTH_LOG_PREFIX " | metrics | cannot encode");
        return;
    }
    int rc = mosquitto_broker_publish_copy(NULL, topic, (int)len, json, 1, true, NULL);
    cJSON_free(json);
    if (rc != MOSQ_ERR_SUCCESS)
        mosquitto_log_printf(MOSQ_LOG_WARNING, BC_AUTH_LOG_PREFIX " | metrics | publish: %s",
                             mosquitto_strerror(rc));

    char line[2048];
    bc_metrics_format(&a->metrics, line, sizeof(line));
    mosquitto_log_printf(MOSQ_LOG_INFO, BC_AUTH_LOG_PREFIX " | metrics | %s", line);
}

int bc_tick_on_tick(int event, void *event_data, void *userdata)
{
    bc_auth *a = userdata;
    (void)event;
    (void)event_data;
    take_registry(a);

    uint64_t now = bc_auth_now_ns();
    if (now < a->next_housekeeping_ns)
        return MOSQ_ERR_SUCCESS;
    a->next_housekeeping_ns = now + HOUSEKEEPING_NS;
    watch_redis(a);
    if (now >= a->next_metrics_ns) {
        a->next_metrics_ns = now + (uint64_t)a->cfg.metrics_interval_s * 1000000000ull;
        publish_metrics(a);
    }
    return MOSQ_ERR_SUCCESS;
}
