/*
 * access.c - the ACL_CHECK glue.
 *
 * Every check: username -> principal (identity.c) -> rule (acl.c) -> count.
 * A camera's publish that the rules allow then goes through, in this order
 * (cheapest refusal first, and a flood of garbage still spends the
 * camera's tokens):
 *
 *   1. the topic parses as one of the camera's own message topics
 *   2. rate: the messages/s and bytes/s buckets of its class
 *      (upload chunks have their own, larger allowance)
 *   3. payload: proto's decoder, and the device it names
 *
 * This is done in ACL_CHECK and not in the MESSAGE event because Mosquitto
 * 2.0.11 publishes a client's will after an ACL_CHECK but without a MESSAGE
 * event: in MESSAGE a camera could still emit one unchecked payload per
 * connection. A refusal is MOSQ_ERR_ACL_DENIED either way (an MQTT v5 QoS 1
 * publisher gets PUBACK 135), and each message is decoded once.
 */
#include "broker-plugins/bodycam-auth/access.h"

#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "broker-plugins/bodycam-auth/identity.h"

static const char *const access_names[] = {"read", "write", "subscribe", "unsubscribe"};

static int may_log(bc_auth *a)
{
    if (bc_ratelimit_take(&a->log_budget, a->log_limits, BC_RATE_MESSAGES, bc_auth_now_ns(), 0) ==
        BC_RATE_PASS)
        return 1;
    bc_metrics_inc(&a->metrics, BC_M_LOG_SUPPRESSED);
    return 0;
}

static int map_access(int mosq_access, bc_acl_access *out)
{
    switch (mosq_access) {
    case MOSQ_ACL_READ:
        *out = BC_ACL_READ;
        return 0;
    case MOSQ_ACL_WRITE:
        *out = BC_ACL_WRITE;
        return 0;
    case MOSQ_ACL_SUBSCRIBE:
        *out = BC_ACL_SUBSCRIBE;
        return 0;
    case MOSQ_ACL_UNSUBSCRIBE:
        *out = BC_ACL_UNSUBSCRIBE;
        return 0;
    }
    return -1;
}

static bc_metric validate_metric(bc_validate_result r)
{
    switch (r) {
    case BC_VALID_OK:
        return BC_M_MSG_ACCEPTED;
    case BC_VALID_MALFORMED:
        return BC_M_MSG_MALFORMED;
    case BC_VALID_WRONG_DEVICE:
        return BC_M_MSG_WRONG_DEVICE;
    case BC_VALID_VERSION:
        return BC_M_MSG_VERSION;
    case BC_VALID_TOO_BIG:
        return BC_M_MSG_TOO_BIG;
    case BC_VALID_INVALID:
        break;
    }
    return BC_M_MSG_INVALID;
}

static void log_drop(bc_auth *a, const char *device, const char *topic, const char *reason,
                     const char *detail)
{
    char t[BC_TOPIC_MAX];
    if (!may_log(a))
        return;
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         BC_AUTH_LOG_PREFIX " | message | dropped from %s on %s reason=%s: %s",
                         device, bc_identity_printable(topic, t, sizeof(t)), reason, detail);
}

/* Rate and payload of a camera's publish, in ACL_CHECK (WRITE) rather than
 * in the MESSAGE event: the broker publishes a client's will without a
 * MESSAGE event but with this check, so only here does every message a
 * camera can emit pass through. A context with protocol version 0 is not a
 * client but the broker re-checking a retained message's original
 * publisher (check_retain_source) for a new subscriber: validated again,
 * but not charged to the camera's rate. */
static int camera_write_ok(bc_auth *a, const bc_principal *who,
                           const struct mosquitto_evt_acl_check *ed)
{
    bc_topic parsed;
    bc_error err = {{0}};
    if (bc_topic_parse(ed->topic, &parsed, &err) != BC_OK) {
        bc_metrics_inc(&a->metrics, BC_M_MSG_INVALID);
        log_drop(a, who->name, ed->topic, "topic", err.text);
        return 0;
    }
    int live = mosquitto_client_protocol_version(ed->client) != 0;
    if (live) {
        bc_camera *cam = bc_cameras_find(&a->cameras, who->name);
        bc_rate_class cls = parsed.kind == BC_TOPIC_UPLOAD ? BC_RATE_UPLOAD : BC_RATE_MESSAGES;
        bc_rate_verdict rate =
            cam ? bc_ratelimit_take(&cam->rate, a->cfg.rate, cls, bc_auth_now_ns(), ed->payloadlen)
                : BC_RATE_TOO_MANY;
        if (rate != BC_RATE_PASS) {
            int msgs = rate == BC_RATE_TOO_MANY;
            bc_metrics_inc(&a->metrics, msgs ? BC_M_MSG_RATE_MESSAGES : BC_M_MSG_RATE_BYTES);
            log_drop(a, who->name, ed->topic, "rate", msgs ? "messages/s limit" : "bytes/s limit");
            return 0;
        }
    }
    bc_validate_result r = bc_validate_camera_message(who->name, &parsed, ed->payload,
                                                      ed->payloadlen, &a->cfg.limits, &err);
    if (r != BC_VALID_OK) {
        bc_metrics_inc(&a->metrics, validate_metric(r));
        log_drop(a, who->name, ed->topic, bc_validate_result_name(r), err.text);
        return 0;
    }
    if (live)
        bc_metrics_inc(&a->metrics, BC_M_MSG_ACCEPTED);
    return 1;
}

int bc_access_on_acl_check(int event, void *event_data, void *userdata)
{
    const struct mosquitto_evt_acl_check *ed = event_data;
    bc_auth *a = userdata;
    (void)event;
    bc_acl_access access;
    if (map_access(ed->access, &access) != 0)
        return MOSQ_ERR_ACL_DENIED;

    bc_principal who;
    bc_identity_principal(a, mosquitto_client_username(ed->client), &who);
    bc_acl_result result = bc_acl_check(&who, access, ed->topic, ed->retain);
    bc_metrics_acl(&a->metrics, access, result);
    if (result == BC_ACL_ALLOW) {
        if (who.role == BC_ROLE_CAMERA && access == BC_ACL_WRITE && !camera_write_ok(a, &who, ed))
            return MOSQ_ERR_ACL_DENIED;
        return MOSQ_ERR_SUCCESS;
    }
    if (access != BC_ACL_READ && may_log(a)) {
        char user[80], topic[BC_TOPIC_MAX];
        mosquitto_log_printf(
            MOSQ_LOG_NOTICE, BC_AUTH_LOG_PREFIX " | acl | denied %s %s by %s (%s) reason=%s",
            access_names[access], bc_identity_printable(ed->topic, topic, sizeof(topic)),
            bc_identity_printable(mosquitto_client_username(ed->client), user, sizeof(user)),
            bc_role_name(who.role), bc_acl_result_name(result));
    }
    return MOSQ_ERR_ACL_DENIED;
}
