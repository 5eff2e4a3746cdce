/*
 * identity.c - a camera's new identity: its CSR, the CA, the registry.
 *
 * The rule: a certificate is issued only for a CSR that answers a request
 * this service sent to that very camera (bodycam:campaign-cmd:<cmd_id>
 * names the camera, the request is the camera's current command), from a
 * camera that is active in the registry, whose CSR is self-signed, names
 * the camera as its CN and holds an EC P-256 or Ed25519 key
 * (bc_ca_sign_csr). The camera is the one the broker authenticated: the
 * gateway's entry carries the topic's device, and the broker's ACL lets a
 * camera publish only under its own devices/<id>/.
 *
 *   CSR ─► checks ─► reconnect budget (reconnects_max_per_s, fleet-wide;
 *          none left: RETRY, the stream holds the CSR) ─► CA signs
 *       ─► fingerprint ADDED to the registry (the broker will accept the
 *          new certificate) ─► install command + installing (one script)
 *   refused (another camera's CN, a revoked or lost camera, no request,
 *   a bad signature) ─► logged, identity_refused on fleet/alerts, and the
 *   camera's request failed (an unsolicited CSR only alerts)
 *
 *   install ok ─► every OTHER fingerprint of the camera leaves the
 *                 registry (the broker refuses the old certificate and
 *                 kicks a session still using it) ─► done
 *   install error ─► the new fingerprint leaves ─► retry
 *   install timeout ─► retry, the new fingerprint kept (dispatch.c says why)
 *
 * Order matters: the fingerprint is in the registry before the install
 * goes out, so the camera's reconnect is never refused for a race. A crash
 * between the two leaves a fingerprint no camera was sent; the next
 * successful install of the camera removes it with the rest.
 *
 * The alert id is derived from the device, the command id and the CSR, so
 * a CSR delivered twice raises one alert, not two.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/alert_out.h"
#include "common/clock.h"
#include "common/log.h"
#include "key-rotation/rotation.h"
#include "proto/encoding.h"
#include "proto/message.h"
#include "registry_admin.h"

/* ---- the alert ---- */

static void alert_id(const bc_msg_csr *csr, char id[BC_ID_MAX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char hex[17] = "0000000000000000";
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, csr->cmd_id, strlen(csr->cmd_id)) == 1 &&
        EVP_DigestUpdate(ctx, "|", 1) == 1 &&
        EVP_DigestUpdate(ctx, csr->csr, strlen(csr->csr)) == 1 &&
        EVP_DigestFinal_ex(ctx, md, &len) == 1 && len >= 8)
        (void)bc_hex_encode(md, 8, hex, sizeof(hex));
    EVP_MD_CTX_free(ctx);
    snprintf(id, BC_ID_MAX + 1, "idref-%s-%s", csr->device, hex);
}

/* Raises identity_refused about the camera that sent csr. */
static bc_status raise_alert(rotation *r, const bc_msg_csr *csr, const char *reason)
{
    bc_msg_alert alert;
    memset(&alert, 0, sizeof(alert));
    bc_msg_alert *a = &alert;
    alert_id(csr, a->id);
    snprintf(a->device, sizeof(a->device), "%s", csr->device);
    a->kind = BC_ALERT_IDENTITY_REFUSED;
    snprintf(a->detail, sizeof(a->detail), "CSR refused: %s", reason);
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_alert_out_raise(&r->loop.cmd, a, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "alert", &err);
        return st;
    }
    if (st != BC_OK) {
        log_errorx("identity | alert_failed | device=%s reason=%s", csr->device, err.text);
        return BC_OK; /* logged: the refusal itself stands */
    }
    r->stats.alerts++;
    log_info("identity | alert_raised | id=%s device=%s kind=identity_refused", a->id, csr->device);
    return BC_OK;
}

/* A refused CSR: logged, alerted, and when it answers the camera's current
 * request (c not NULL), that request fails. */
static bc_stream_verdict refuse(rotation *r, const bc_msg_csr *csr, const bc_campaign_cmd *c,
                                const char *reason)
{
    r->stats.csrs_refused++;
    log_warnx("identity | csr_refused | device=%s cmd=%s reason=%s", csr->device, csr->cmd_id,
              reason);
    if (raise_alert(r, csr, reason) == BC_ERR_UNAVAILABLE)
        return BC_STREAM_RETRY;
    if (c == NULL)
        return BC_STREAM_DONE;
    char detail[BC_CAMPAIGN_DETAIL_MAX + 1];
    snprintf(detail, sizeof(detail), "CSR refused: %s", reason);
    if (rot_finish(r, c->campaign_id, c->device, csr->cmd_id, BC_OUTCOME_FAILED, detail) ==
        BC_ERR_UNAVAILABLE)
        return BC_STREAM_RETRY;
    return BC_STREAM_DONE;
}

/* ---- the registry ---- */

bc_status rot_identity_withdraw(rotation *r, const char *device, const char *fingerprint)
{
    bc_error err;
    bc_error_clear(&err);
    bc_registry_change ch;
    bc_status st =
        bc_registry_admin_remove_fingerprint(&r->loop.cmd, device, fingerprint, &ch, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "registry", &err);
        return st;
    }
    if (st == BC_ERR_NOT_FOUND)
        return BC_OK; /* the camera left the registry: nothing to withdraw */
    if (st != BC_OK) {
        log_errorx("identity | withdraw_failed | device=%s fingerprint=%s reason=%s", device,
                   fingerprint, err.text);
        return st;
    }
    if (ch.changed)
        log_info("identity | fingerprint_withdrawn | device=%s fingerprint=%s", device,
                 fingerprint);
    return BC_OK;
}

bc_status rot_identity_installed(rotation *r, const bc_campaign_cmd *c, const char *cmd_id)
{
    bc_registry_device dev;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_registry_admin_device_get(&r->loop.cmd, c->device, &dev, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "registry", &err);
        return st;
    }
    if (st != BC_OK)
        return rot_finish(r, c->campaign_id, c->device, cmd_id, BC_OUTCOME_FAILED, err.text);
    char hex[BC_REGISTRY_MAX_FINGERPRINTS][BC_REGISTRY_FP_HEX_LEN + 1];
    bool present = false;
    for (size_t i = 0; i < dev.fingerprint_count; i++) {
        if (bc_hex_encode(dev.fingerprints[i], BC_FINGERPRINT_LEN, hex[i], sizeof(hex[i])) != BC_OK)
            return BC_ERR_STATE;
        present = present || strcmp(hex[i], c->fingerprint) == 0;
    }
    if (!present)
        return rot_finish(r, c->campaign_id, c->device, cmd_id, BC_OUTCOME_FAILED,
                          "the new certificate is no longer in the registry; the old ones were "
                          "kept");
    size_t removed = 0;
    for (size_t i = 0; i < dev.fingerprint_count; i++) {
        if (strcmp(hex[i], c->fingerprint) == 0)
            continue;
        st = bc_registry_admin_remove_fingerprint(&r->loop.cmd, c->device, hex[i], NULL, &err);
        if (st == BC_ERR_UNAVAILABLE) {
            rot_redis_failed(r, "registry", &err);
            return st;
        }
        if (st != BC_OK) {
            log_errorx("identity | revoke_old_failed | device=%s fingerprint=%s reason=%s",
                       c->device, hex[i], err.text);
            return st;
        }
        removed++;
    }
    log_info("identity | installed | campaign=%s device=%s fingerprint=%s old_removed=%zu",
             c->campaign_id, c->device, c->fingerprint, removed);
    return rot_finish(r, c->campaign_id, c->device, cmd_id, BC_OUTCOME_DONE, "");
}

/* ---- the CSR ---- */

/* The camera must be active in the registry. BC_OK: it is; BC_ERR_DENIED
 * with why in reason; BC_ERR_UNAVAILABLE. */
static bc_status check_registered(rotation *r, const char *device, char *reason, size_t size)
{
    bc_registry_device dev;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_registry_admin_device_get(&r->loop.cmd, device, &dev, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "registry", &err);
        return st;
    }
    if (st != BC_OK) {
        snprintf(reason, size, "%s", err.text);
        return BC_ERR_DENIED;
    }
    if (dev.status != BC_DEVICE_ACTIVE) {
        snprintf(reason, size, "camera %s is %s in the registry", device,
                 bc_device_status_name(dev.status));
        return BC_ERR_DENIED;
    }
    return BC_OK;
}

/* Signs, registers and sends the install. The certificate is the caller's. */
static bc_stream_verdict install(rotation *r, const bc_msg_csr *csr, const bc_campaign_cmd *c,
                                 X509 *cert)
{
    char fp[BC_CERT_FINGERPRINT_LEN + 1];
    char *pem = NULL;
    bc_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    char topic[BC_TOPIC_MAX + 1];
    char *payload = NULL;
    bc_stream_verdict v = BC_STREAM_DONE;
    bc_error err;
    bc_error_clear(&err);
    if (bc_ca_fingerprint(cert, fp) != BC_OK || bc_ca_cert_pem(cert, &pem, NULL) != BC_OK) {
        log_errorx("identity | cert_failed | device=%s reason=no fingerprint or PEM", c->device);
        goto retry_later;
    }
    bc_registry_change ch;
    bc_status st = bc_registry_admin_add_fingerprint(&r->loop.cmd, c->device, fp, &ch, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "registry", &err);
        v = BC_STREAM_RETRY;
        goto cleanup;
    }
    if (st == BC_ERR_TOO_BIG) {
        if (rot_finish(r, c->campaign_id, c->device, csr->cmd_id, BC_OUTCOME_FAILED, err.text) ==
            BC_ERR_UNAVAILABLE)
            v = BC_STREAM_RETRY;
        goto cleanup;
    }
    if (st != BC_OK) {
        log_errorx("identity | register_failed | device=%s reason=%s", c->device, err.text);
        goto retry_later;
    }
    snprintf(cmd.device, sizeof(cmd.device), "%s", c->device);
    cmd.kind = BC_CMD_ROTATE_IDENTITY;
    cmd.params.identity.phase = BC_IDENTITY_INSTALL;
    if (bc_command_set_cert(&cmd, pem) != BC_OK ||
        rot_command_build(r, &cmd, topic, &payload, &err) != BC_OK) {
        log_errorx("identity | command_failed | device=%s reason=%s", c->device, err.text);
        goto withdraw;
    }
    int64_t now = bc_clock_now_ms();
    bc_campaign_send s = {.campaign_id = c->campaign_id,
                          .device = c->device,
                          .phase = BC_PHASE_INSTALL,
                          .cmd_id = cmd.id,
                          .request_cmd_id = csr->cmd_id,
                          .fingerprint = fp,
                          .topic = topic,
                          .payload = payload,
                          .now_ms = now,
                          .deadline_ms = now + r->cfg.ack_timeout_s * 1000};
    bool marked = false;
    st = bc_campaign_mark_sent(&r->loop.cmd, &s, &marked, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "install", &err);
        v = BC_STREAM_RETRY;
        goto cleanup;
    }
    if (st != BC_OK || !marked) {
        log_info("identity | install_dropped | campaign=%s device=%s reason=%s", c->campaign_id,
                 c->device, st != BC_OK ? err.text : "the camera's request is no longer current");
        goto withdraw;
    }
    r->stats.certs_issued++;
    r->stats.sent_installs++;
    log_info("identity | cert_issued | campaign=%s device=%s fingerprint=%s cmd=%s (install sent)",
             c->campaign_id, c->device, fp, cmd.id);
    goto cleanup;

withdraw:
    if (rot_identity_withdraw(r, c->device, fp) == BC_ERR_UNAVAILABLE) {
        v = BC_STREAM_RETRY;
        goto cleanup;
    }
    goto cleanup;
retry_later:
    if (rot_finish(r, c->campaign_id, c->device, csr->cmd_id, BC_OUTCOME_RETRY,
                   "the CA could not issue the certificate") == BC_ERR_UNAVAILABLE)
        v = BC_STREAM_RETRY;
cleanup:
    free(payload);
    free(pem);
    bc_command_free(&cmd);
    return v;
}

/* The CA's part: the checks of bc_ca_sign_csr, then install(). */
static bc_stream_verdict sign(rotation *r, const bc_msg_csr *csr, const bc_campaign_cmd *c)
{
    X509 *cert = NULL;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_ca_sign_csr(&r->ca, csr->csr, strlen(csr->csr), c->device, BC_CERT_DEVICE,
                                  (int)r->cfg.cert_days, &cert, &err);
    if (st == BC_ERR_PARSE || st == BC_ERR_SIGNATURE || st == BC_ERR_DENIED)
        return refuse(r, csr, c, err.text);
    if (st != BC_OK) {
        log_errorx("identity | ca_failed | device=%s reason=%s", c->device, err.text);
        if (rot_finish(r, c->campaign_id, c->device, csr->cmd_id, BC_OUTCOME_RETRY,
                       "the CA could not issue the certificate") == BC_ERR_UNAVAILABLE)
            return BC_STREAM_RETRY;
        return BC_STREAM_DONE;
    }
    bc_stream_verdict v = install(r, csr, c, cert);
    X509_free(cert);
    return v;
}

/* A CSR that answers the camera's current request of a live campaign. */
static bc_stream_verdict answer_request(rotation *r, const bc_msg_csr *csr,
                                        const bc_campaign_cmd *c)
{
    char reason[BC_CAMPAIGN_DETAIL_MAX + 1];
    bc_status st = check_registered(r, csr->device, reason, sizeof(reason));
    if (st == BC_ERR_UNAVAILABLE)
        return BC_STREAM_RETRY;
    if (st != BC_OK)
        return refuse(r, csr, c, reason);
    int64_t granted = 0;
    bc_error err;
    bc_error_clear(&err);
    st = bc_campaign_rate_take(&r->loop.cmd, ROT_RECONNECT_BUCKET, r->cfg.reconnects_max_per_s, 1,
                               bc_clock_now_ms(), &granted, &err);
    if (st != BC_OK) {
        rot_redis_failed(r, "reconnect budget", &err);
        return BC_STREAM_RETRY;
    }
    if (granted == 0) {
        /* the stream keeps the CSR; the consumer comes back after retry_delay_ms */
        r->stats.csrs_waited++;
        return BC_STREAM_RETRY;
    }
    return sign(r, csr, c);
}

static bc_stream_verdict handle_csr(rotation *r, const bc_msg_csr *csr)
{
    char reason[BC_CAMPAIGN_DETAIL_MAX + 1];
    bc_campaign_cmd c;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_campaign_cmd_get(&r->loop.cmd, csr->cmd_id, &c, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "csr", &err);
        return BC_STREAM_RETRY;
    }
    if (st == BC_ERR_NOT_FOUND) {
        snprintf(reason, sizeof(reason), "no identity request %s was sent", csr->cmd_id);
        return refuse(r, csr, NULL, reason);
    }
    if (st != BC_OK) {
        r->stats.invalid++;
        log_warnx("identity | csr_failed | device=%s cmd=%s reason=%s", csr->device, csr->cmd_id,
                  err.text);
        return BC_STREAM_DROP;
    }
    rot_redis_ok(r);
    if (strcmp(c.device, csr->device) != 0) {
        snprintf(reason, sizeof(reason), "it answers request %s sent to another camera",
                 csr->cmd_id);
        return refuse(r, csr, NULL, reason);
    }
    if (c.phase != BC_PHASE_REQUEST) {
        snprintf(reason, sizeof(reason), "command %s is not an identity request", csr->cmd_id);
        return refuse(r, csr, NULL, reason);
    }
    if (!c.current) {
        r->stats.csrs_stale++;
        log_info("identity | csr_stale | campaign=%s device=%s cmd=%s state=%s (a late or "
                 "repeated CSR)",
                 c.campaign_id, c.device, csr->cmd_id,
                 bc_campaign_device_state_name(c.device_state));
        return BC_STREAM_DONE;
    }
    if (c.campaign_state == BC_CAMPAIGN_ABORTED) {
        if (rot_finish(r, c.campaign_id, c.device, csr->cmd_id, BC_OUTCOME_FAILED,
                       "the campaign was aborted before the CSR arrived") == BC_ERR_UNAVAILABLE)
            return BC_STREAM_RETRY;
        return BC_STREAM_DONE;
    }
    return answer_request(r, csr, &c);
}

bc_stream_verdict rot_identity_csr(const bc_stream_entry *entry, void *userdata)
{
    rotation *r = userdata;
    size_t plen = 0;
    const char *device = bc_stream_entry_field(entry, BC_FIELD_DEVICE, NULL);
    const char *payload = bc_stream_entry_field(entry, BC_FIELD_PAYLOAD, &plen);
    if (device == NULL || payload == NULL) {
        r->stats.invalid++;
        log_warnx("identity | entry_invalid | id=%s reason=no device or payload field", entry->id);
        return BC_STREAM_DROP;
    }
    bc_message msg;
    bc_error err;
    bc_error_clear(&err);
    if (bc_message_decode(BC_TOPIC_CSR, payload, plen, &msg, &err) != BC_OK) {
        r->stats.invalid++;
        log_warnx("identity | entry_invalid | id=%s device=%s reason=%s", entry->id, device,
                  err.text);
        return BC_STREAM_DROP;
    }
    bc_stream_verdict v = BC_STREAM_DROP;
    if (strcmp(msg.csr.device, device) != 0) {
        r->stats.invalid++;
        log_warnx("identity | entry_invalid | id=%s reason=payload names %s, entry names %s",
                  entry->id, msg.csr.device, device);
    } else {
        if (!entry->redelivered && !entry->claimed)
            r->stats.csrs++;
        v = handle_csr(r, &msg.csr);
    }
    bc_message_free(&msg);
    return v;
}
