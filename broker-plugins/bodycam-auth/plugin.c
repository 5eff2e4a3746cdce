/*
 * plugin.c - bodycam-auth's entry points: options, the {event, callback}
 * table, registration. Nothing else lives here.
 *
 * mosquitto.conf (per_listener_settings false: a global plugin is the only
 * kind that gets TICK in 2.0.11):
 *
 *   plugin /usr/lib/x86_64-linux-gnu/bodycam/bodycam-auth.so
 *   plugin_opt_redis_host 127.0.0.1
 *   plugin_opt_redis_port 6379
 *   plugin_opt_services gateway,fleet-health,vault,key-rotation,firmware-rollout
 *   check_retain_source true
 *   listener 8883
 *   require_certificate true        # and NOT use_identity_as_username
 *
 * Every option is in `options` below with its range and default; an
 * unknown option or a value out of range stops the broker at start with
 * a message naming it (a policy plugin must not start half-configured).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#pragma GCC visibility push(default)
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#pragma GCC visibility pop

#include "broker-plugins/bodycam-auth/access.h"
#include "broker-plugins/bodycam-auth/auth.h"
#include "broker-plugins/bodycam-auth/identity.h"
#include "broker-plugins/bodycam-auth/tick.h"
#include "proto/message.h"

typedef enum option_type { OPT_INT, OPT_BOOL, OPT_STRING } option_type;

typedef struct option_def {
    const char *name; /* plugin_opt_<name> */
    option_type type;
    int64_t min, max; /* OPT_INT */
    const char *default_value;
    size_t offset; /* into bc_auth_config */
    size_t size;   /* OPT_STRING: buffer size */
} option_def;

#define FIELD(f) offsetof(bc_auth_config, f)
#define INT(name, f, min, max, def)                                                                \
    {                                                                                              \
        name, OPT_INT, min, max, def, FIELD(f), sizeof(int64_t)                                    \
    }
#define BOOL(name, f, def)                                                                         \
    {                                                                                              \
        name, OPT_BOOL, 0, 1, def, FIELD(f), sizeof(int64_t)                                       \
    }
#define STRING(name, f, def)                                                                       \
    {                                                                                              \
        name, OPT_STRING, 0, 0, def, FIELD(f), sizeof(((bc_auth_config *)0)->f)                    \
    }

static const option_def options[] = {
    STRING("redis_host", registry.host, "127.0.0.1"),
    INT("redis_port", redis_port, 1, 65535, "6379"),
    INT("redis_poll_ms", redis_poll_ms, 20, 10000, "200"),
    INT("redis_timeout_ms", redis_timeout_ms, 50, 10000, "500"),
    INT("registry_full_reload_s", registry_full_reload_s, 0, 86400, "30"),
    STRING("services", services_text, ""),
    INT("metrics_interval_s", metrics_interval_s, 1, 3600, "10"),
    INT("max_payload", max_payload, 256, BC_MESSAGE_MAX, "16384"),
    INT("max_upload_payload", max_upload_payload, 1024, BC_UPLOAD_MESSAGE_MAX, "131072"),
    INT("rate_msgs_per_s", rate_msgs_per_s, 0, 1000000, "20"),
    INT("rate_msgs_burst", rate_msgs_burst, 1, 1000000, "100"),
    INT("rate_bytes_per_s", rate_bytes_per_s, 0, 1000000000, "65536"),
    INT("rate_bytes_burst", rate_bytes_burst, 1, 1000000000, "262144"),
    INT("upload_msgs_per_s", upload_msgs_per_s, 0, 1000000, "200"),
    INT("upload_msgs_burst", upload_msgs_burst, 1, 1000000, "400"),
    INT("upload_bytes_per_s", upload_bytes_per_s, 0, 1000000000, "8388608"),
    INT("upload_bytes_burst", upload_bytes_burst, 1, 1000000000, "16777216"),
    INT("auth_slow_per_s", auth_slow_per_s, 1, 1000, "10"),
    INT("auth_slow_burst", auth_slow_burst, 1, 1000, "20"),
    BOOL("camera_client_id_match", camera_client_id_match, "true"),
    STRING("instance", registry.instance, ""), /* "": the host name, else "broker-1" */
};
#define OPTION_COUNT (sizeof(options) / sizeof(options[0]))

static const struct {
    int event;
    MOSQ_FUNC_generic_callback callback;
} callbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, bc_identity_on_basic_auth},
    {MOSQ_EVT_ACL_CHECK, bc_access_on_acl_check},
    {MOSQ_EVT_TICK, bc_tick_on_tick},
};
#define CALLBACK_COUNT (sizeof(callbacks) / sizeof(callbacks[0]))

/* ---- options ------------------------------------------------------------ */

static bc_status set_option(bc_auth_config *cfg, const option_def *o, const char *value,
                            bc_error *err)
{
    char *field = (char *)cfg + o->offset;
    if (o->type == OPT_STRING) {
        if (strlen(value) >= o->size)
            return bc_fail(err, BC_ERR_INVAL, "plugin_opt_%s: longer than %zu bytes", o->name,
                           o->size - 1);
        memcpy(field, value, strlen(value) + 1);
        return BC_OK;
    }
    int64_t v;
    if (o->type == OPT_BOOL) {
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
            v = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
            v = 0;
        else
            return bc_fail(err, BC_ERR_INVAL, "plugin_opt_%s: expected true or false", o->name);
    } else {
        char *end = NULL;
        errno = 0;
        long long n = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || n < o->min || n > o->max)
            return bc_fail(err, BC_ERR_INVAL,
                           "plugin_opt_%s: expected a whole number in "
                           "[%lld, %lld], got '%s'",
                           o->name, (long long)o->min, (long long)o->max, value);
        v = n;
    }
    memcpy(field, &v, sizeof(v));
    return BC_OK;
}

static const option_def *find_option(const char *name)
{
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    }
    return NULL;
}

static bc_status parse_services(bc_auth_config *cfg, bc_error *err)
{
    char copy[sizeof(cfg->services_text)];
    snprintf(copy, sizeof(copy), "%s", cfg->services_text);
    cfg->service_count = 0;
    char *save = NULL;
    for (char *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (!bc_device_id_valid(name))
            return bc_fail(err, BC_ERR_INVAL,
                           "plugin_opt_services: '%s' is not a name in "
                           "[a-z0-9][a-z0-9_-]{0,31}",
                           name);
        if (cfg->service_count == BC_AUTH_MAX_SERVICES)
            return bc_fail(err, BC_ERR_TOO_BIG, "plugin_opt_services: more than %d names",
                           BC_AUTH_MAX_SERVICES);
        for (size_t i = 0; i < cfg->service_count; i++) {
            if (strcmp(cfg->services[i], name) == 0)
                return bc_fail(err, BC_ERR_INVAL, "plugin_opt_services: '%s' twice", name);
        }
        snprintf(cfg->services[cfg->service_count++], sizeof(cfg->services[0]), "%s", name);
    }
    return BC_OK;
}

/* The name under which the broker reports its applied registry version
 * (bodycam:registry:applied): the option, else the host name, else
 * "broker-1". Printable, no spaces: it is a hash field read by tools. */
static bc_status default_instance(bc_auth_config *cfg, bc_error *err)
{
    char *name = cfg->registry.instance;
    size_t size = sizeof(cfg->registry.instance);
    if (name[0] == '\0' && (gethostname(name, size) != 0 || memchr(name, '\0', size) == NULL))
        name[0] = '\0';
    if (name[0] == '\0')
        snprintf(name, size, "broker-1");
    for (const char *p = name; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~')
            return bc_fail(err, BC_ERR_INVAL,
                           "plugin_opt_instance: '%s' has a space or a "
                           "non-printable character",
                           name);
    }
    return BC_OK;
}

/* The check pass: cross-option rules and derived values. */
static bc_status check_config(bc_auth_config *cfg, bc_error *err)
{
    bc_status rc = parse_services(cfg, err);
    if (rc != BC_OK)
        return rc;
    if (cfg->registry.host[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "plugin_opt_redis_host is empty");
    rc = default_instance(cfg, err);
    if (rc != BC_OK)
        return rc;
    if (cfg->rate_bytes_per_s > 0 && cfg->rate_bytes_burst < cfg->max_payload)
        return bc_fail(err, BC_ERR_INVAL,
                       "plugin_opt_rate_bytes_burst must be at least "
                       "plugin_opt_max_payload, or no message could pass");
    if (cfg->upload_bytes_per_s > 0 && cfg->upload_bytes_burst < cfg->max_upload_payload)
        return bc_fail(err, BC_ERR_INVAL,
                       "plugin_opt_upload_bytes_burst must be at least "
                       "plugin_opt_max_upload_payload");
    cfg->registry.port = (int)cfg->redis_port;
    cfg->registry.poll_ms = (int)cfg->redis_poll_ms;
    cfg->registry.timeout_ms = (int)cfg->redis_timeout_ms;
    cfg->registry.full_reload_s = (int)cfg->registry_full_reload_s;
    cfg->rate[BC_RATE_MESSAGES] =
        (bc_rate_limits){(double)cfg->rate_msgs_per_s, (double)cfg->rate_msgs_burst,
                         (double)cfg->rate_bytes_per_s, (double)cfg->rate_bytes_burst};
    cfg->rate[BC_RATE_UPLOAD] =
        (bc_rate_limits){(double)cfg->upload_msgs_per_s, (double)cfg->upload_msgs_burst,
                         (double)cfg->upload_bytes_per_s, (double)cfg->upload_bytes_burst};
    cfg->limits.max_payload = (size_t)cfg->max_payload;
    cfg->limits.max_upload_payload = (size_t)cfg->max_upload_payload;
    return BC_OK;
}

static bc_status load_options(bc_auth_config *cfg, const struct mosquitto_opt *opts, int count,
                              bc_error *err)
{
    bc_status rc;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        rc = set_option(cfg, &options[i], options[i].default_value, err);
        if (rc != BC_OK)
            return rc;
    }
    for (int i = 0; i < count; i++) {
        const option_def *o = find_option(opts[i].key);
        if (o == NULL)
            return bc_fail(err, BC_ERR_INVAL, "unknown option plugin_opt_%s", opts[i].key);
        rc = set_option(cfg, o, opts[i].value ? opts[i].value : "", err);
        if (rc != BC_OK)
            return rc;
    }
    return check_config(cfg, err);
}

/* ---- life cycle --------------------------------------------------------- */

static void unregister_callbacks(bc_auth *a, size_t count)
{
    for (size_t i = 0; i < count; i++)
        mosquitto_callback_unregister(a->plugin_id, callbacks[i].event, callbacks[i].callback,
                                      NULL);
}

static void destroy(bc_auth *a)
{
    if (a == NULL)
        return;
    bc_registry_stop(a->registry);
    bc_registry_snapshot_free(a->snapshot);
    bc_cameras_free(&a->cameras);
    bc_identity_cleanup(a);
    free(a);
}

/* One synchronous load before the broker serves anyone, so cameras can
 * connect from the first second. Without Redis the broker starts knowing
 * nobody (fail closed) and the worker keeps trying. */
static void load_first_registry(bc_auth *a)
{
    bc_registry_snapshot *s = NULL;
    bc_error err = {{0}};
    if (bc_registry_fetch(&a->cfg.registry, &s, &err) != BC_OK) {
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             BC_AUTH_LOG_PREFIX " | start | no registry yet (cameras and "
                                                "dashboards are refused until it loads): %s",
                             err.text);
        return;
    }
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         BC_AUTH_LOG_PREFIX " | start | registry version %llu: %zu devices, "
                                            "%zu dashboard users",
                         (unsigned long long)s->version, s->device_count, s->user_count);
    bc_identity_apply_registry(a, s);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    for (int i = 0; i < supported_version_count; i++) {
        if (supported_versions[i] == 5)
            return 5;
    }
    return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *opts, int opt_count)
{
    bc_error err = {{0}};
    size_t registered = 0;
    bc_auth *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return MOSQ_ERR_NOMEM;
    a->plugin_id = identifier;
    a->redis_up_seen = -1;
    a->auth_limits[BC_RATE_MESSAGES] = (bc_rate_limits){0, 0, 0, 0};
    if (load_options(&a->cfg, opts, opt_count, &err) != BC_OK)
        goto fail;
    a->auth_limits[BC_RATE_MESSAGES] =
        (bc_rate_limits){(double)a->cfg.auth_slow_per_s, (double)a->cfg.auth_slow_burst, 0, 0};
    a->log_limits[BC_RATE_MESSAGES] = (bc_rate_limits){20, 50, 0, 0};
    if (bc_identity_init(a, &err) != BC_OK)
        goto fail;
    load_first_registry(a);
    if (bc_registry_start(&a->cfg.registry, &a->registry, &err) != BC_OK)
        goto fail;
    if (a->snapshot != NULL)
        bc_registry_applied(a->registry, a->snapshot->version);
    for (; registered < CALLBACK_COUNT; registered++) {
        int rc = mosquitto_callback_register(identifier, callbacks[registered].event,
                                             callbacks[registered].callback, NULL, a);
        if (rc != MOSQ_ERR_SUCCESS) {
            bc_fail(&err, BC_ERR_STATE, "cannot register callback for event %d: %s",
                    callbacks[registered].event, mosquitto_strerror(rc));
            goto fail;
        }
    }
    *userdata = a;
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         BC_AUTH_LOG_PREFIX " | start | instance %s, redis %s:%d, services '%s', "
                                            "metrics every %lld s",
                         a->cfg.registry.instance, a->cfg.registry.host, a->cfg.registry.port,
                         a->cfg.services_text, (long long)a->cfg.metrics_interval_s);
    return MOSQ_ERR_SUCCESS;
fail:
    mosquitto_log_printf(MOSQ_LOG_ERR, BC_AUTH_LOG_PREFIX " | start | %s", err.text);
    unregister_callbacks(a, registered);
    destroy(a);
    return MOSQ_ERR_INVAL;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
    bc_auth *a = userdata;
    (void)opts;
    (void)opt_count;
    if (a == NULL)
        return MOSQ_ERR_SUCCESS;
    unregister_callbacks(a, CALLBACK_COUNT);
    destroy(a);
    return MOSQ_ERR_SUCCESS;
}
