/*
 * requests.c - access requests (inzage) must be answered within a month
 * (extendable once by two months; bodycamctl records both). The vault
 * watches the deadlines: an open request past its deadline raises a
 * request_overdue alert on fleet/alerts (through the outbox, like every
 * alert) once, audited; when the request is closed the alert is cleared.
 * The alert id is "request-<request id>", so raise and clear pair up.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/message.h"
#include "vault/vault.h"

#define DAY_MS BC_CATALOG_DAY_MS

static bc_status send_alert(vault *v, const bc_access_request *q, bc_alert_status status,
                            int64_t now, bc_error *err)
{
    bc_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = BC_TOPIC_FLEET_ALERTS;
    bc_msg_alert *a = &msg.alert;
    a->ts = now;
    snprintf(a->id, sizeof(a->id), "request-%s", q->id);
    a->kind = BC_ALERT_REQUEST_OVERDUE;
    a->status = status;
    if (status == BC_ALERT_RAISED) {
        snprintf(a->detail, sizeof(a->detail), "access request %s is past its deadline%s", q->id,
                 q->extended ? " (already extended)" : "");
        a->has_value = true;
        a->value = (now - q->deadline) / DAY_MS; /* whole days overdue */
    } else {
        snprintf(a->detail, sizeof(a->detail), "access request %s is closed", q->id);
    }
    char *payload = NULL;
    char topic[BC_TOPIC_MAX + 1];
    bc_status st = bc_message_encode_fleet(&msg, topic, sizeof(topic), &payload, err);
    if (st == BC_OK)
        st = bc_outbox_add(&v->cmd, topic, payload, 1, false, err);
    free(payload);
    return st;
}

typedef struct scan_ctx {
    vault *v;
    int64_t now;
    bool failed;
} scan_ctx;

static bool raise_overdue(const bc_access_request *q, void *userdata)
{
    scan_ctx *c = userdata;
    bc_error err;
    bc_error_clear(&err);
    if (send_alert(c->v, q, BC_ALERT_RAISED, c->now, &err) != BC_OK ||
        bc_catalog_request_mark_alerted(&c->v->cmd, q->id, true, &err) != BC_OK) {
        vault_redis_failed(c->v, "requests", &err);
        c->failed = true;
        return false;
    }
    c->v->stats.requests_overdue++;
    log_warnx("vault | request_overdue | id=%s deadline=%" PRId64 " extended=%d", q->id,
              q->deadline, q->extended ? 1 : 0);
    cJSON *d = cJSON_CreateObject();
    if (d != NULL && cJSON_AddNumberToObject(d, "deadline", (double)q->deadline) != NULL)
        (void)vault_audit(c->v, "request_overdue", q->id, d, NULL);
    cJSON_Delete(d);
    return true;
}

static bool clear_closed(const bc_access_request *q, void *userdata)
{
    scan_ctx *c = userdata;
    if (q->status != BC_REQ_CLOSED || !q->overdue_alerted)
        return true;
    bc_error err;
    bc_error_clear(&err);
    if (send_alert(c->v, q, BC_ALERT_CLEARED, c->now, &err) != BC_OK ||
        bc_catalog_request_mark_alerted(&c->v->cmd, q->id, false, &err) != BC_OK) {
        vault_redis_failed(c->v, "requests", &err);
        c->failed = true;
        return false;
    }
    log_info("vault | request_overdue_cleared | id=%s", q->id);
    return true;
}

void vault_requests_scan(vault *v)
{
    scan_ctx c = {.v = v, .now = bc_clock_now_ms(), .failed = false};
    bc_error err;
    bc_error_clear(&err);
    if (bc_catalog_requests_overdue(&v->cmd, c.now, raise_overdue, &c, &err) != BC_OK) {
        vault_redis_failed(v, "requests", &err);
        return;
    }
    if (c.failed)
        return;
    if (bc_catalog_requests_list(&v->cmd, false, clear_closed, &c, &err) != BC_OK)
        vault_redis_failed(v, "requests", &err);
}
