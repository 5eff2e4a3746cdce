/*
 * validate.h - payload checks on what cameras publish.
 *
 * A camera's message is decoded with proto's bc_message_decode() for the
 * kind of its topic (so the broker refuses exactly what the backend would
 * refuse), and the device the payload names must be the device of the
 * topic, which acl.c already tied to the camera's certificate. Services'
 * messages are not checked here: they are trusted writers and proto checks
 * them again where they are consumed.
 */
#ifndef BC_AUTH_VALIDATE_H
#define BC_AUTH_VALIDATE_H

#include <stddef.h>

#include "proto/status.h"
#include "proto/topic.h"

typedef enum bc_validate_result {
    BC_VALID_OK = 0,
    BC_VALID_MALFORMED,    /* not JSON, bad UTF-8, duplicate keys, bad base64 */
    BC_VALID_WRONG_DEVICE, /* payload device differs from the topic's */
    BC_VALID_VERSION,      /* "v" is not the schema version */
    BC_VALID_TOO_BIG,      /* over the size limit of its topic, or nested too deep */
    BC_VALID_INVALID,      /* missing or mistyped field, value out of range, bad hash */
} bc_validate_result;

typedef struct bc_validate_limits {
    size_t max_payload;        /* every camera topic but upload; <= BC_MESSAGE_MAX */
    size_t max_upload_payload; /* devices/{id}/upload; <= BC_UPLOAD_MESSAGE_MAX */
} bc_validate_limits;

/* Checks one message of camera `device` on a topic already parsed with
 * bc_topic_parse(). err names what was wrong. Never keeps a pointer to
 * payload (which may be NULL when len is 0). */
bc_validate_result bc_validate_camera_message(const char *device, const bc_topic *topic,
                                              const void *payload, size_t len,
                                              const bc_validate_limits *limits, bc_error *err);

/* Static name of a result for counters and logs ("wrong_device", ...). */
const char *bc_validate_result_name(bc_validate_result result);

#endif
