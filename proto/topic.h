/*
 * topic.h - the MQTT topic tree of design.md, built and parsed in one place.
 *
 * Builders write into a caller buffer and refuse an id outside its alphabet,
 * so no topic with a wildcard, a '$', an empty level or a '/' inside an id
 * can ever be built. The parser is the mirror image and is what the broker
 * plugin and the gateway run on every incoming topic: anything that is not
 * exactly one of the shapes below is refused with a reason.
 */
#ifndef BC_PROTO_TOPIC_H
#define BC_PROTO_TOPIC_H

#include <stddef.h>

#include "proto/status.h"

#define BC_TOPIC_PREFIX "bodycam/v1/"
#define BC_TOPIC_MAX 256
#define BC_DEVICE_ID_MAX 32 /* characters, without the NUL */
#define BC_ID_MAX 64        /* recording, command, key ids and versions */

typedef enum bc_topic_kind {
    BC_TOPIC_CONN,
    BC_TOPIC_STATE,
    BC_TOPIC_HEALTH,
    BC_TOPIC_EVENT,
    BC_TOPIC_ACK,
    BC_TOPIC_UPLOAD,
    BC_TOPIC_CSR,
    BC_TOPIC_CMD,            /* devices/{id}/cmd/{command kind} */
    BC_TOPIC_FIRMWARE_CHUNK, /* firmware/{version}/chunk/{n} */
    BC_TOPIC_FLEET_SUMMARY,
    BC_TOPIC_FLEET_ALERTS,
    BC_TOPIC_BROKER_METRICS,
    BC_TOPIC_KIND_COUNT
} bc_topic_kind;

/* A parsed topic. Strings are copies, valid as long as the struct. */
typedef struct bc_topic {
    bc_topic_kind kind;
    char device[BC_DEVICE_ID_MAX + 1];  /* device topics */
    char command[BC_ID_MAX + 1];        /* BC_TOPIC_CMD: upload, config, ... */
    char version[BC_ID_MAX + 1];        /* BC_TOPIC_FIRMWARE_CHUNK */
    unsigned chunk;                     /* BC_TOPIC_FIRMWARE_CHUNK */
} bc_topic;

/* 1 when id matches [a-z0-9][a-z0-9_-]{0,31}, else 0. NULL is 0. */
int bc_device_id_valid(const char *id);

/* 1 when id matches [A-Za-z0-9_-]{1,64} (recording, command and key ids). */
int bc_id_valid(const char *id);

/* 1 when v is a firmware version [0-9]+(.[0-9]+){0,3} of at most 32 chars. */
int bc_version_valid(const char *v);

/* The last level of a per-device topic ("conn", "state", ...); NULL for
 * kinds that are not per-device message topics. */
const char *bc_topic_kind_name(bc_topic_kind kind);

/* Builds "bodycam/v1/devices/{device}/{kind}" for kinds CONN..CSR.
 * BC_ERR_INVAL for a bad id or kind, BC_ERR_TOO_BIG if out is too small. */
bc_status bc_topic_device(char *out, size_t size, const char *device, bc_topic_kind kind);

/* Builds "bodycam/v1/devices/{device}/cmd/{command}". */
bc_status bc_topic_command(char *out, size_t size, const char *device, const char *command);

/* Builds "bodycam/v1/firmware/{version}/chunk/{n}". */
bc_status bc_topic_firmware_chunk(char *out, size_t size, const char *version, unsigned n);

/* Builds the fixed topics: FLEET_SUMMARY, FLEET_ALERTS, BROKER_METRICS. */
bc_status bc_topic_fixed(char *out, size_t size, bc_topic_kind kind);

/* Subscription filters the services and cameras use (static strings). */
#define BC_FILTER_ALL_DEVICES "bodycam/v1/devices/+/+"
#define BC_FILTER_FIRMWARE "bodycam/v1/firmware/#"

/* Builds a camera's own command filter "bodycam/v1/devices/{device}/cmd/+". */
bc_status bc_topic_command_filter(char *out, size_t size, const char *device);

/* Parses a concrete (publish) topic. BC_ERR_PARSE with a reason in err for
 * wildcards, '$', empty levels, a foreign prefix, a bad id, an unknown
 * kind or extra levels; BC_ERR_TOO_BIG over BC_TOPIC_MAX. */
bc_status bc_topic_parse(const char *topic, bc_topic *out, bc_error *err);

#endif
