/*
 * alert_out.h - a service raising a fleet alert (bodycam/v1/fleet/alerts)
 * through the outbox (bodycam:stream:outbox), as the campaign-style
 * services (key rotation, firmware rollout) do.
 */
#ifndef BC_COMMON_ALERT_OUT_H
#define BC_COMMON_ALERT_OUT_H

#include "common/stream.h"
#include "proto/message.h"
#include "proto/status.h"

/* Sets a's ts (now) and status (raised), encodes it as a fleet alert and
 * queues it through the outbox on r (qos 1, not retained). The caller
 * fills a's id, device, kind and detail. BC_ERR_UNAVAILABLE when Redis
 * failed; else the statuses of bc_message_encode_fleet and bc_outbox_add. */
bc_status bc_alert_out_raise(bc_redis *r, bc_msg_alert *a, bc_error *err);

#endif
