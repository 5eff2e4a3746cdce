/*
 * acl.c - the topic rules of each role.
 *
 * Decision order (the first rule that applies decides):
 *
 *   1. No principal (unknown, refused, revoked, or a username this plugin
 *      did not set)                                          -> no_role
 *   2. NULL, empty, or longer than BC_TOPIC_MAX - 1 bytes    -> bad_topic
 *   3. UNSUBSCRIBE                                           -> allow
 *      (dropping a subscription can never widen what arrives)
 *   4. SUBSCRIBE: strip "$share/<group>/"; a malformed share -> bad_share.
 *      The *real* filter is what is judged from here on, so a shared
 *      subscription gets exactly what the plain one would.
 *   5. A topic or real filter starting with '$' ($SYS, $CONTROL, a nested
 *      $share, anything else)                                -> system
 *   6. The role's rule:
 *        camera    WRITE  bc_topic_parse() must give one of its own
 *                         devices/{id}/conn|state|health|event|ack|upload|csr;
 *                         retain only on conn and state  -> else outside_role
 *                                                            / retain
 *                  READ, SUBSCRIBE  within devices/{id}/cmd/# or firmware/#
 *        service   WRITE  anything under bodycam/v1/ except broker/metrics
 *                         (only the broker writes its own metrics)
 *                  READ, SUBSCRIBE  within bodycam/v1/#
 *        dashboard WRITE  nothing
 *                  READ, SUBSCRIBE  within fleet/# or devices/+/conn,
 *                         devices/+/state, devices/+/health
 *
 * Concrete topics are matched with mosquitto_topic_matches_sub(). A
 * subscription is a filter, and that function refuses a wildcard in its
 * second argument, so filters are compared level by level with
 * bc_acl_filter_within(): a filter is allowed only when everything it can
 * ever match is allowed. That is why "bodycam/v1/devices/+/state" or
 * "bodycam/v1/#" from a camera is refused outright instead of being
 * granted and filtered message by message.
 *
 * Retained messages need no rule of their own: a retained message is
 * delivered through READ like any other, and with `check_retain_source true`
 * the broker re-checks its original publisher's WRITE, which fails once
 * that camera is no longer active (identity.c gives it no principal).
 */
#include "broker-plugins/bodycam-auth/acl.h"

#include <stdio.h>
#include <string.h>

#include <mosquitto.h>

#include "proto/topic.h"

#define ALLOWED_MAX 4

/* The filters each role may read. Built from proto's prefix and kind names
 * so the topic tree keeps one owner. */
static const char *const service_filters[] = {BC_TOPIC_PREFIX "#"};
static const char *const dashboard_filters[] = {
    BC_TOPIC_PREFIX "fleet/#",
    BC_TOPIC_PREFIX "devices/+/conn",
    BC_TOPIC_PREFIX "devices/+/state",
    BC_TOPIC_PREFIX "devices/+/health",
};

static const char *const result_names[BC_ACL_RESULT_COUNT] = {
    [BC_ACL_ALLOW] = "allow",
    [BC_ACL_DENY_NO_ROLE] = "no_role",
    [BC_ACL_DENY_BAD_TOPIC] = "bad_topic",
    [BC_ACL_DENY_SYSTEM] = "system_topic",
    [BC_ACL_DENY_BAD_SHARE] = "bad_share",
    [BC_ACL_DENY_OUTSIDE_ROLE] = "outside_role",
    [BC_ACL_DENY_RETAIN] = "retain",
};

const char *bc_acl_result_name(bc_acl_result result)
{
    if ((unsigned)result >= BC_ACL_RESULT_COUNT)
        return "unknown";
    return result_names[result];
}

const char *bc_role_name(bc_role role)
{
    switch (role) {
    case BC_ROLE_CAMERA:
        return "camera";
    case BC_ROLE_SERVICE:
        return "service";
    case BC_ROLE_DASHBOARD:
        return "dashboard";
    case BC_ROLE_NONE:
        break;
    }
    return "none";
}

/* Length of the level starting at p (up to '/' or the end). */
static size_t level_len(const char *p)
{
    return strcspn(p, "/");
}

static int is_level(const char *p, size_t len, char c)
{
    return len == 1 && p[0] == c;
}

int bc_acl_filter_within(const char *filter, const char *allowed)
{
    if (filter == NULL || allowed == NULL || filter[0] == '\0' || allowed[0] == '\0')
        return 0;
    const char *f = filter;
    const char *a = allowed;
    for (;;) {
        size_t fl = level_len(f);
        size_t al = level_len(a);
        if (is_level(a, al, '#'))
            return a[1] == '\0';
        if (is_level(f, fl, '#'))
            return 0; /* the filter takes any depth, the allowed one does not */
        if (is_level(a, al, '+')) {
            if (memchr(f, '#', fl) != NULL || (memchr(f, '+', fl) != NULL && fl != 1))
                return 0; /* "a+" or "#x" in a level: malformed */
        } else if (fl != al || memcmp(f, a, fl) != 0 || memchr(f, '+', fl) != NULL) {
            return 0; /* a literal level must be matched by the same literal */
        }
        f += fl;
        a += al;
        if (*f == '\0' && *a == '\0')
            return 1;
        if (*f == '\0')
            return strcmp(a, "/#") == 0; /* "x" is matched by "x/#" */
        if (*a == '\0')
            return 0;
        f++;
        a++;
    }
}

const char *bc_acl_real_filter(const char *filter)
{
    static const char share[] = "$share/";
    if (filter == NULL)
        return NULL;
    if (strncmp(filter, share, sizeof(share) - 1) != 0)
        return filter;
    const char *group = filter + sizeof(share) - 1;
    size_t group_len = level_len(group);
    if (group_len == 0 || group[group_len] != '/' || group[group_len + 1] == '\0')
        return NULL;
    if (memchr(group, '+', group_len) != NULL || memchr(group, '#', group_len) != NULL)
        return NULL;
    return group + group_len + 1;
}

/* Fills the camera's readable filters: its own commands and the firmware
 * tree. The command filter comes from proto ("devices/{id}/cmd/+"); its
 * last level is widened to '#' so that "cmd/#", the form cameras use, is
 * within it. Returns the count, 0 when the name is not a device id. */
static int camera_filters(const char *device, char buf[][BC_TOPIC_MAX], const char **out)
{
    if (bc_topic_command_filter(buf[0], BC_TOPIC_MAX, device) != BC_OK)
        return 0;
    buf[0][strlen(buf[0]) - 1] = '#';
    out[0] = buf[0];
    out[1] = BC_FILTER_FIRMWARE;
    return 2;
}

static int role_filters(const bc_principal *who, char buf[][BC_TOPIC_MAX], const char **out)
{
    switch (who->role) {
    case BC_ROLE_CAMERA:
        return camera_filters(who->name, buf, out);
    case BC_ROLE_SERVICE:
        out[0] = service_filters[0];
        return 1;
    case BC_ROLE_DASHBOARD:
        for (int i = 0; i < 4; i++)
            out[i] = dashboard_filters[i];
        return 4;
    case BC_ROLE_NONE:
        break;
    }
    return 0;
}

static bc_acl_result check_read(const char *const *filters, int count, const char *topic)
{
    for (int i = 0; i < count; i++) {
        bool match = false;
        if (mosquitto_topic_matches_sub(filters[i], topic, &match) == MOSQ_ERR_SUCCESS && match)
            return BC_ACL_ALLOW;
    }
    return BC_ACL_DENY_OUTSIDE_ROLE;
}

static bc_acl_result check_subscribe(const char *const *filters, int count, const char *filter)
{
    for (int i = 0; i < count; i++) {
        if (bc_acl_filter_within(filter, filters[i]))
            return BC_ACL_ALLOW;
    }
    return BC_ACL_DENY_OUTSIDE_ROLE;
}

static bc_acl_result check_camera_write(const char *device, const char *topic, bool retain)
{
    bc_topic parsed;
    if (bc_topic_parse(topic, &parsed, NULL) != BC_OK)
        return BC_ACL_DENY_OUTSIDE_ROLE;
    if (bc_topic_kind_name(parsed.kind) == NULL || strcmp(parsed.device, device) != 0)
        return BC_ACL_DENY_OUTSIDE_ROLE;
    if (retain && parsed.kind != BC_TOPIC_CONN && parsed.kind != BC_TOPIC_STATE)
        return BC_ACL_DENY_RETAIN;
    return BC_ACL_ALLOW;
}

static bc_acl_result check_service_write(const char *topic)
{
    char metrics[BC_TOPIC_MAX];
    if (strncmp(topic, BC_TOPIC_PREFIX, strlen(BC_TOPIC_PREFIX)) != 0)
        return BC_ACL_DENY_OUTSIDE_ROLE;
    if (bc_topic_fixed(metrics, sizeof(metrics), BC_TOPIC_BROKER_METRICS) != BC_OK ||
        strcmp(topic, metrics) == 0)
        return BC_ACL_DENY_OUTSIDE_ROLE;
    return BC_ACL_ALLOW;
}

static bc_acl_result check_write(const bc_principal *who, const char *topic, bool retain)
{
    switch (who->role) {
    case BC_ROLE_CAMERA:
        return check_camera_write(who->name, topic, retain);
    case BC_ROLE_SERVICE:
        return check_service_write(topic);
    case BC_ROLE_DASHBOARD:
    case BC_ROLE_NONE:
        break;
    }
    return BC_ACL_DENY_OUTSIDE_ROLE;
}

bc_acl_result bc_acl_check(const bc_principal *who, bc_acl_access access, const char *topic,
                           bool retain)
{
    if (who == NULL || who->role == BC_ROLE_NONE || who->name == NULL || who->name[0] == '\0')
        return BC_ACL_DENY_NO_ROLE;
    if (topic == NULL || topic[0] == '\0' || strlen(topic) >= BC_TOPIC_MAX)
        return BC_ACL_DENY_BAD_TOPIC;
    if (access == BC_ACL_UNSUBSCRIBE)
        return BC_ACL_ALLOW;
    if (access == BC_ACL_SUBSCRIBE) {
        topic = bc_acl_real_filter(topic);
        if (topic == NULL)
            return BC_ACL_DENY_BAD_SHARE;
    }
    if (topic[0] == '$')
        return BC_ACL_DENY_SYSTEM;
    if (access == BC_ACL_WRITE)
        return check_write(who, topic, retain);

    char buf[1][BC_TOPIC_MAX];
    const char *filters[ALLOWED_MAX];
    int count = role_filters(who, buf, filters);
    if (count == 0)
        return BC_ACL_DENY_NO_ROLE;
    if (access == BC_ACL_SUBSCRIBE)
        return check_subscribe(filters, count, topic);
    return check_read(filters, count, topic);
}
