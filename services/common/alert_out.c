/*
 * alert_out.c - a fleet alert through the outbox (alert_out.h).
 */
#include "common/alert_out.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "proto/topic.h"

bc_status bc_alert_out_raise(bc_redis *r, bc_msg_alert *a, bc_error *err)
{
    a->ts = bc_clock_now_ms();
    a->status = BC_ALERT_RAISED;
    bc_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = BC_TOPIC_FLEET_ALERTS;
    msg.alert = *a;
    char *payload = NULL;
    char topic[BC_TOPIC_MAX + 1];
    bc_status st = bc_message_encode_fleet(&msg, topic, sizeof(topic), &payload, err);
    if (st == BC_OK)
        st = bc_outbox_add(r, topic, payload, 1, false, err);
    free(payload);
    return st;
}
