#include "proto/topic.h"

#include <stdio.h>
#include <string.h>

/* Only the per-device message kinds have a name here; the order matches
 * bc_topic_kind so that the table is the single list of device topics. */
static const char *const device_kind_names[] = {
    [BC_TOPIC_CONN] = "conn",     [BC_TOPIC_STATE] = "state", [BC_TOPIC_HEALTH] = "health",
    [BC_TOPIC_EVENT] = "event",   [BC_TOPIC_ACK] = "ack",     [BC_TOPIC_UPLOAD] = "upload",
    [BC_TOPIC_CSR] = "csr",
};

static const char *const fixed_topics[] = {
    [BC_TOPIC_FLEET_SUMMARY] = BC_TOPIC_PREFIX "fleet/summary",
    [BC_TOPIC_FLEET_ALERTS] = BC_TOPIC_PREFIX "fleet/alerts",
    [BC_TOPIC_BROKER_METRICS] = BC_TOPIC_PREFIX "broker/metrics",
};

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

int bc_device_id_valid(const char *id)
{
    if (id == NULL || !is_lower_alnum(id[0]))
        return 0;
    size_t n = 1;
    for (; id[n] != '\0'; n++) {
        if (n >= BC_DEVICE_ID_MAX)
            return 0;
        if (!is_lower_alnum(id[n]) && id[n] != '-' && id[n] != '_')
            return 0;
    }
    return 1;
}

int bc_id_valid(const char *id)
{
    if (id == NULL || id[0] == '\0')
        return 0;
    for (size_t n = 0; id[n] != '\0'; n++) {
        if (n >= BC_ID_MAX)
            return 0;
        if (!is_alnum(id[n]) && id[n] != '-' && id[n] != '_')
            return 0;
    }
    return 1;
}

int bc_version_valid(const char *v)
{
    if (v == NULL || v[0] == '\0' || strlen(v) > 32)
        return 0;
    int parts = 1;
    int digits = 0;
    for (const char *p = v; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
        } else if (*p == '.' && digits > 0 && parts < 4) {
            parts++;
            digits = 0;
        } else {
            return 0;
        }
    }
    return digits > 0;
}

const char *bc_topic_kind_name(bc_topic_kind kind)
{
    if (kind > BC_TOPIC_CSR)
        return NULL;
    return device_kind_names[kind];
}

static bc_status format_topic(char *out, size_t size, int n)
{
    if (n < 0 || (size_t)n >= size)
        return BC_ERR_TOO_BIG;
    return BC_OK;
}

bc_status bc_topic_device(char *out, size_t size, const char *device, bc_topic_kind kind)
{
    const char *name = bc_topic_kind_name(kind);
    if (name == NULL || !bc_device_id_valid(device))
        return BC_ERR_INVAL;
    return format_topic(out, size, snprintf(out, size, BC_TOPIC_PREFIX "devices/%s/%s", device, name));
}

bc_status bc_topic_command(char *out, size_t size, const char *device, const char *command)
{
    if (!bc_device_id_valid(device) || !bc_id_valid(command))
        return BC_ERR_INVAL;
    return format_topic(out, size,
                        snprintf(out, size, BC_TOPIC_PREFIX "devices/%s/cmd/%s", device, command));
}

bc_status bc_topic_command_filter(char *out, size_t size, const char *device)
{
    if (!bc_device_id_valid(device))
        return BC_ERR_INVAL;
    return format_topic(out, size, snprintf(out, size, BC_TOPIC_PREFIX "devices/%s/cmd/+", device));
}

bc_status bc_topic_firmware_chunk(char *out, size_t size, const char *version, unsigned n)
{
    if (!bc_version_valid(version))
        return BC_ERR_INVAL;
    return format_topic(out, size,
                        snprintf(out, size, BC_TOPIC_PREFIX "firmware/%s/chunk/%u", version, n));
}

bc_status bc_topic_fixed(char *out, size_t size, bc_topic_kind kind)
{
    if (kind < BC_TOPIC_FLEET_SUMMARY || kind > BC_TOPIC_BROKER_METRICS)
        return BC_ERR_INVAL;
    return format_topic(out, size, snprintf(out, size, "%s", fixed_topics[kind]));
}

/* Splits the part after the prefix into at most max levels, refusing empty
 * levels and characters that only filters or system topics may contain. */
static int split_levels(char *rest, char **levels, int max, bc_error *err)
{
    int count = 0;
    char *p = rest;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash != NULL)
            *slash = '\0';
        if (*p == '\0') {
            bc_fail(err, BC_ERR_PARSE, "topic has an empty level");
            return -1;
        }
        if (count == max) {
            bc_fail(err, BC_ERR_PARSE, "topic has too many levels");
            return -1;
        }
        levels[count++] = p;
        if (slash == NULL)
            return count;
        p = slash + 1;
    }
}

static bc_status parse_device_topic(char **lv, int n, bc_topic *out, bc_error *err)
{
    if (n < 3)
        return bc_fail(err, BC_ERR_PARSE, "device topic is missing levels");
    if (!bc_device_id_valid(lv[1]))
        return bc_fail(err, BC_ERR_PARSE, "device id is outside [a-z0-9_-]{1,32}");
    snprintf(out->device, sizeof(out->device), "%s", lv[1]);
    if (strcmp(lv[2], "cmd") == 0) {
        if (n != 4)
            return bc_fail(err, BC_ERR_PARSE, "command topic must be devices/{id}/cmd/{kind}");
        if (!bc_id_valid(lv[3]))
            return bc_fail(err, BC_ERR_PARSE, "command kind has characters outside [A-Za-z0-9_-]");
        snprintf(out->command, sizeof(out->command), "%s", lv[3]);
        out->kind = BC_TOPIC_CMD;
        return BC_OK;
    }
    if (n != 3)
        return bc_fail(err, BC_ERR_PARSE, "device topic has extra levels");
    for (int k = BC_TOPIC_CONN; k <= BC_TOPIC_CSR; k++) {
        if (strcmp(lv[2], device_kind_names[k]) == 0) {
            out->kind = (bc_topic_kind)k;
            return BC_OK;
        }
    }
    return bc_fail(err, BC_ERR_PARSE, "unknown device topic kind");
}

static bc_status parse_firmware_topic(char **lv, int n, bc_topic *out, bc_error *err)
{
    if (n != 4 || strcmp(lv[2], "chunk") != 0)
        return bc_fail(err, BC_ERR_PARSE, "firmware topic must be firmware/{version}/chunk/{n}");
    if (!bc_version_valid(lv[1]))
        return bc_fail(err, BC_ERR_PARSE, "firmware version is not dotted digits");
    unsigned long chunk = 0;
    for (const char *p = lv[3]; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || p - lv[3] >= 9)
            return bc_fail(err, BC_ERR_PARSE, "firmware chunk number is not a small integer");
        chunk = chunk * 10 + (unsigned long)(*p - '0');
    }
    snprintf(out->version, sizeof(out->version), "%s", lv[1]);
    out->chunk = (unsigned)chunk;
    out->kind = BC_TOPIC_FIRMWARE_CHUNK;
    return BC_OK;
}

bc_status bc_topic_parse(const char *topic, bc_topic *out, bc_error *err)
{
    if (topic == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no topic");
    memset(out, 0, sizeof(*out));
    size_t len = strlen(topic);
    if (len >= BC_TOPIC_MAX)
        return bc_fail(err, BC_ERR_TOO_BIG, "topic is longer than %d bytes", BC_TOPIC_MAX - 1);
    if (strpbrk(topic, "+#$") != NULL)
        return bc_fail(err, BC_ERR_PARSE, "topic contains a wildcard or '$'");
    const size_t prefix_len = strlen(BC_TOPIC_PREFIX);
    if (strncmp(topic, BC_TOPIC_PREFIX, prefix_len) != 0)
        return bc_fail(err, BC_ERR_PARSE, "topic is outside " BC_TOPIC_PREFIX);

    char copy[BC_TOPIC_MAX];
    memcpy(copy, topic + prefix_len, len - prefix_len + 1);
    char *lv[5];
    int n = split_levels(copy, lv, 5, err);
    if (n < 0)
        return BC_ERR_PARSE;
    if (strcmp(lv[0], "devices") == 0)
        return parse_device_topic(lv, n, out, err);
    if (strcmp(lv[0], "firmware") == 0)
        return parse_firmware_topic(lv, n, out, err);
    for (int k = BC_TOPIC_FLEET_SUMMARY; k <= BC_TOPIC_BROKER_METRICS; k++) {
        if (strcmp(topic, fixed_topics[k]) == 0) {
            out->kind = (bc_topic_kind)k;
            return BC_OK;
        }
    }
    return bc_fail(err, BC_ERR_PARSE, "unknown topic");
}
