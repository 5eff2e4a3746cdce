/*
 * metrics.c - names and encoding of the counters.
 *
 * Counter names are "area.reason"; ACL counters are "acl.<access>.<result>"
 * (e.g. "acl.subscribe.outside_role"), so a refusal can be traced to the
 * rule of acl.c that made it. The JSON shape is the broker's own report;
 * it belongs to proto/ once proto owns a broker-metrics message.
 */
#include "broker-plugins/bodycam-auth/metrics.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *const metric_names[BC_METRIC_COUNT] = {
    [BC_M_AUTH_CAMERA] = "auth.ok.camera",        [BC_M_AUTH_SERVICE] = "auth.ok.service",
    [BC_M_AUTH_DASHBOARD] = "auth.ok.dashboard",  [BC_M_AUTH_BAD_IDENTITY] = "auth.bad_identity",
    [BC_M_AUTH_UNKNOWN] = "auth.unknown",         [BC_M_AUTH_NOT_ACTIVE] = "auth.not_active",
    [BC_M_AUTH_FINGERPRINT] = "auth.fingerprint", [BC_M_AUTH_CLIENT_ID] = "auth.client_id",
    [BC_M_AUTH_PASSWORD] = "auth.password",       [BC_M_AUTH_THROTTLED] = "auth.throttled",
    [BC_M_AUTH_NO_CERT] = "auth.no_credentials",  [BC_M_MSG_ACCEPTED] = "msg.accepted",
    [BC_M_MSG_MALFORMED] = "msg.malformed",       [BC_M_MSG_WRONG_DEVICE] = "msg.wrong_device",
    [BC_M_MSG_VERSION] = "msg.version",           [BC_M_MSG_TOO_BIG] = "msg.too_big",
    [BC_M_MSG_INVALID] = "msg.invalid",           [BC_M_MSG_RATE_MESSAGES] = "msg.rate_messages",
    [BC_M_MSG_RATE_BYTES] = "msg.rate_bytes",     [BC_M_KICK] = "registry.kick",
    [BC_M_REGISTRY_LOAD] = "registry.load",       [BC_M_REDIS_DOWN] = "registry.redis_down",
    [BC_M_LOG_SUPPRESSED] = "log.suppressed",
};

static const char *const access_names[4] = {"read", "write", "subscribe", "unsubscribe"};

const char *bc_metric_name(bc_metric which)
{
    if ((unsigned)which >= BC_METRIC_COUNT)
        return "unknown";
    return metric_names[which];
}

static void acl_name(char *buf, size_t size, int access, int result)
{
    snprintf(buf, size, "acl.%s.%s", access_names[access],
             bc_acl_result_name((bc_acl_result)result));
}

static int add_counters(cJSON *counters, const bc_metrics *m)
{
    for (int i = 0; i < BC_METRIC_COUNT; i++) {
        if (cJSON_AddNumberToObject(counters, metric_names[i], (double)m->counters[i]) == NULL)
            return -1;
    }
    char name[64];
    for (int a = 0; a < 4; a++) {
        for (int r = 0; r < BC_ACL_RESULT_COUNT; r++) {
            acl_name(name, sizeof(name), a, r);
            if (cJSON_AddNumberToObject(counters, name, (double)m->acl[a][r]) == NULL)
                return -1;
        }
    }
    return 0;
}

bc_status bc_metrics_encode(const bc_metrics *m, const bc_metrics_gauges *g, int64_t ts_ms,
                            char **json, size_t *len)
{
    bc_status rc = BC_ERR_NOMEM;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return BC_ERR_NOMEM;
    cJSON *registry = cJSON_AddObjectToObject(root, "registry"); /* owned by root */
    cJSON *counters = cJSON_AddObjectToObject(root, "counters"); /* owned by root */
    if (registry == NULL || counters == NULL)
        goto cleanup;
    if (cJSON_AddNumberToObject(root, "v", 1) == NULL ||
        cJSON_AddNumberToObject(root, "ts", (double)ts_ms) == NULL ||
        cJSON_AddStringToObject(root, "redis", g->redis_up ? "up" : "down") == NULL ||
        cJSON_AddBoolToObject(registry, "loaded", g->registry_loaded) == NULL ||
        cJSON_AddNumberToObject(registry, "version", (double)g->registry_version) == NULL ||
        cJSON_AddNumberToObject(registry, "devices", (double)g->devices) == NULL ||
        cJSON_AddNumberToObject(registry, "dashboards", (double)g->dashboards) == NULL ||
        add_counters(counters, m) != 0)
        goto cleanup;
    *json = cJSON_PrintUnformatted(root);
    if (*json == NULL)
        goto cleanup;
    *len = strlen(*json);
    rc = BC_OK;
cleanup:
    cJSON_Delete(root);
    return rc;
}

void bc_metrics_format(const bc_metrics *m, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    size_t used = 0;
    char name[64];
    for (int i = 0; i < BC_METRIC_COUNT + 4 * BC_ACL_RESULT_COUNT && used < size; i++) {
        uint64_t value;
        if (i < BC_METRIC_COUNT) {
            value = m->counters[i];
            snprintf(name, sizeof(name), "%s", metric_names[i]);
        } else {
            int k = i - BC_METRIC_COUNT;
            value = m->acl[k / BC_ACL_RESULT_COUNT][k % BC_ACL_RESULT_COUNT];
            acl_name(name, sizeof(name), k / BC_ACL_RESULT_COUNT, k % BC_ACL_RESULT_COUNT);
        }
        if (value == 0)
            continue;
        int n = snprintf(buf + used, size - used, "%s%s=%llu", used ? " " : "", name,
                         (unsigned long long)value);
        if (n < 0)
            return;
        used += (size_t)n;
    }
}
