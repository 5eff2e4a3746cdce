/*
 * validate.c - maps proto's decoder verdicts onto the broker's reasons.
 *
 * Order: topic (must be one of the camera's own message topics), size
 * (cheapest, before any parsing), full decode and validation by proto,
 * then the device named inside the payload.
 */
#include "broker-plugins/bodycam-auth/validate.h"

#include <string.h>

#include "proto/message.h"

static bc_validate_result from_status(bc_status rc)
{
    switch (rc) {
    case BC_OK:
        return BC_VALID_OK;
    case BC_ERR_PARSE:
        return BC_VALID_MALFORMED;
    case BC_ERR_TOO_BIG:
        return BC_VALID_TOO_BIG;
    case BC_ERR_VERSION:
        return BC_VALID_VERSION;
    default:
        return BC_VALID_INVALID;
    }
}

const char *bc_validate_result_name(bc_validate_result result)
{
    switch (result) {
    case BC_VALID_OK:
        return "ok";
    case BC_VALID_MALFORMED:
        return "malformed";
    case BC_VALID_WRONG_DEVICE:
        return "wrong_device";
    case BC_VALID_VERSION:
        return "version";
    case BC_VALID_TOO_BIG:
        return "too_big";
    case BC_VALID_INVALID:
        break;
    }
    return "invalid";
}

bc_validate_result bc_validate_camera_message(const char *device, const bc_topic *topic,
                                              const void *payload, size_t len,
                                              const bc_validate_limits *limits, bc_error *err)
{
    const bc_topic parsed = *topic;
    if (bc_topic_kind_name(parsed.kind) == NULL || strcmp(parsed.device, device) != 0) {
        bc_fail(err, BC_ERR_DENIED, "topic is not one of the camera's own message topics");
        return BC_VALID_WRONG_DEVICE;
    }
    size_t limit =
        parsed.kind == BC_TOPIC_UPLOAD ? limits->max_upload_payload : limits->max_payload;
    if (len > limit) {
        bc_fail(err, BC_ERR_TOO_BIG, "payload of %zu bytes is over the limit of %zu", len, limit);
        return BC_VALID_TOO_BIG;
    }
    if (payload == NULL || len == 0) {
        bc_fail(err, BC_ERR_PARSE, "empty payload");
        return BC_VALID_MALFORMED;
    }

    bc_message msg;
    bc_status rc = bc_message_decode(parsed.kind, payload, len, &msg, err);
    if (rc != BC_OK)
        return from_status(rc);
    const char *named = bc_message_device(&msg);
    bc_validate_result result = BC_VALID_OK;
    if (named == NULL || strcmp(named, device) != 0) {
        bc_fail(err, BC_ERR_DENIED, "payload names device '%s', topic is for '%s'",
                named ? named : "", device);
        result = BC_VALID_WRONG_DEVICE;
    }
    bc_message_free(&msg);
    return result;
}
