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
#include <time.h>

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

/* ---- waiting for the brokers ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the plugin stamps real time, not bc_clock's */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The registry version every live broker applied: *min the lowest version
 * among the entries of bodycam:registry:applied stamped within
 * ROT_APPLIED_FRESH_MS, *brokers how many those are (0: none reports, an
 * older plugin or none alive: do not wait). BC_ERR_UNAVAILABLE. */
static bc_status brokers_applied(rotation *r, uint64_t *min, size_t *brokers)
{
    const char *argv[] = {"HGETALL", BC_REGISTRY_KEY_APPLIED};
    redisReply *reply = NULL;
    bc_error err;
    bc_error_clear(&err);
    *min = UINT64_MAX;
    *brokers = 0;
    bc_status st = bc_redis_command(&r->loop.cmd, 2, argv, NULL, &reply, &err);
    if (st != BC_OK) {
        rot_redis_failed(r, "registry applied", &err);
        return BC_ERR_UNAVAILABLE;
    }
    int64_t now = wall_ms();
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i + 1 < reply->elements; i += 2) {
        const redisReply *v = reply->element[i + 1];
        unsigned long long version = 0;
        long long at = 0;
        if (v->type != REDIS_REPLY_STRING || sscanf(v->str, "%llu %lld", &version, &at) != 2 ||
            now - at > ROT_APPLIED_FRESH_MS)
            continue; /* malformed or a dead broker: it must not block rotations forever */
        (*brokers)++;
        if (version < *min)
            *min = version;
    }
    freeReplyObject(reply);
    return BC_OK;
}

/* 1 when every live broker enforces registry version v (or none reports),
 * 0 when one is behind, -1 when Redis failed. */
static int brokers_have(rotation *r, uint64_t v)
{
    uint64_t min = 0;
    size_t brokers = 0;
    if (brokers_applied(r, &min, &brokers) != BC_OK)
        return -1;
    if (brokers == 0) {
        if (!r->no_broker_logged)
            log_warnx("identity | no_broker_version | no live broker reports its registry "
                      "version in " BC_REGISTRY_KEY_APPLIED " (an older plugin?): installs "
                      "go out at once, a camera's first reconnect may be refused");
        r->no_broker_logged = true;
        return 1;
    }
    return min >= v;
}

/* The registry version now: the one that holds a change just made. */
static bc_status registry_version(rotation *r, uint64_t *out)
{
    const char *argv[] = {"GET", BC_REGISTRY_KEY_VERSION};
    redisReply *reply = NULL;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_command(&r->loop.cmd, 2, argv, NULL, &reply, &err) != BC_OK) {
        rot_redis_failed(r, "registry version", &err);
        return BC_ERR_UNAVAILABLE;
    }
    *out = reply->type == REDIS_REPLY_STRING ? strtoull(reply->str, NULL, 10) : 0;
    freeReplyObject(reply);
    return BC_OK;
}

/* ---- the install ---- */

/* Builds the install of w's certificate and marks it sent (one script).
 * BC_ERR_UNAVAILABLE: Redis failed, try again later; any other outcome is
 * final (sent, or dropped and its fingerprint withdrawn). */
static bc_status send_install(rotation *r, const rot_install_wait *w)
{
    bc_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    char topic[BC_TOPIC_MAX + 1];
    char *payload = NULL;
    bc_status rc = BC_OK;
    bc_error err;
    bc_error_clear(&err);
    snprintf(cmd.device, sizeof(cmd.device), "%s", w->device);
    cmd.kind = BC_CMD_ROTATE_IDENTITY;
    cmd.params.identity.phase = BC_IDENTITY_INSTALL;
    if (bc_command_set_cert(&cmd, w->pem) != BC_OK ||
        rot_command_build(r, &cmd, topic, &payload, &err) != BC_OK) {
        log_errorx("identity | command_failed | device=%s reason=%s", w->device, err.text);
        goto withdraw;
    }
    int64_t now = bc_clock_now_ms();
    bc_campaign_send s = {.campaign_id = w->campaign_id,
                          .device = w->device,
                          .phase = BC_PHASE_INSTALL,
                          .cmd_id = cmd.id,
                          .request_cmd_id = w->request_cmd_id,
                          .fingerprint = w->fingerprint,
                          .topic = topic,
                          .payload = payload,
                          .now_ms = now,
                          .deadline_ms = now + r->cfg.ack_timeout_s * 1000};
    bool marked = false;
    bc_status st = bc_campaign_mark_sent(&r->loop.cmd, &s, &marked, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        rot_redis_failed(r, "install", &err);
        rc = st;
        goto cleanup;
    }
    if (st != BC_OK || !marked) {
        log_info("identity | install_dropped | campaign=%s device=%s reason=%s", w->campaign_id,
                 w->device, st != BC_OK ? err.text : "the camera's request is no longer current");
        goto withdraw;
    }
    r->stats.certs_issued++;
    r->stats.sent_installs++;
    log_info("identity | cert_issued | campaign=%s device=%s fingerprint=%s cmd=%s (install sent)",
             w->campaign_id, w->device, w->fingerprint, cmd.id);
    goto cleanup;
withdraw:
    rc = rot_identity_withdraw(r, w->device, w->fingerprint) == BC_ERR_UNAVAILABLE
             ? BC_ERR_UNAVAILABLE
             : BC_OK;
cleanup:
    free(payload);
    bc_command_free(&cmd);
    return rc;
}

static rot_install_wait *find_wait(rotation *r, const char *entry_id)
{
    for (size_t i = 0; entry_id != NULL && i < r->wait_count; i++) {
        if (strcmp(r->waits[i].entry_id, entry_id) == 0)
            return &r->waits[i];
    }
    return NULL;
}

static void drop_wait(rotation *r, size_t i)
{
    free(r->waits[i].pem);
    r->waits[i] = r->waits[--r->wait_count];
    memset(&r->waits[r->wait_count], 0, sizeof(r->waits[0]));
}

void rot_identity_waits_free(rotation *r)
{
    while (r->wait_count > 0)
        drop_wait(r, r->wait_count - 1);
    free(r->waits);
    r->waits = NULL;
}

void rot_identity_release(rotation *r)
{
    uint64_t min = 0;
    size_t brokers = 0;
    if (r->wait_count == 0 || brokers_applied(r, &min, &brokers) != BC_OK)
        return;
    for (size_t i = r->wait_count; i-- > 0;) {
        rot_install_wait *w = &r->waits[i];
        if (brokers > 0 && min < w->version)
            continue;
        if (send_install(r, w) == BC_ERR_UNAVAILABLE)
            return;
        bc_error err;
        bc_error_clear(&err);
        const char *ids[] = {w->entry_id};
        if (bc_stream_ack(&r->loop.cmd, BC_STREAM_CSR, ROT_GROUP, ids, 1, NULL, &err) != BC_OK)
            rot_redis_failed(r, "csr ack", &err); /* redelivered later: handled again */
        drop_wait(r, i);
    }
}

/* Signs, registers and sends the install once every live broker enforces
 * the registry that holds the new fingerprint: at once when they already
 * do, else the CSR entry waits (DEFER) in r->waits. The certificate is the
 * caller's. */
static bc_stream_verdict install(rotation *r, const bc_msg_csr *csr, const bc_campaign_cmd *c,
                                 X509 *cert)
{
    rot_install_wait w;
    memset(&w, 0, sizeof(w));
    bc_stream_verdict v = BC_STREAM_DONE;
    bc_error err;
    bc_error_clear(&err);
    if (bc_ca_fingerprint(cert, w.fingerprint) != BC_OK ||
        bc_ca_cert_pem(cert, &w.pem, NULL) != BC_OK) {
        log_errorx("identity | cert_failed | device=%s reason=no fingerprint or PEM", c->device);
        goto retry_later;
    }
    bc_registry_change ch;
    bc_status st =
        bc_registry_admin_add_fingerprint(&r->loop.cmd, c->device, w.fingerprint, &ch, &err);
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
    snprintf(w.campaign_id, sizeof(w.campaign_id), "%s", c->campaign_id);
    snprintf(w.device, sizeof(w.device), "%s", c->device);
    snprintf(w.request_cmd_id, sizeof(w.request_cmd_id), "%s", csr->cmd_id);
    int ready = registry_version(r, &w.version) == BC_OK ? brokers_have(r, w.version) : -1;
    if (ready == 1 || ready == -1 || r->csr_entry_id == NULL ||
        r->wait_count == ROT_INSTALL_WAITS_MAX) {
        /* Redis failing now fails the send too, which withdraws nothing:
         * the CSR comes back and a new certificate is issued. */
        if (send_install(r, &w) == BC_ERR_UNAVAILABLE)
            v = BC_STREAM_RETRY;
        goto cleanup;
    }
    snprintf(w.entry_id, sizeof(w.entry_id), "%s", r->csr_entry_id);
    r->waits[r->wait_count++] = w;
    w.pem = NULL; /* the wait owns it */
    r->stats.installs_waited++;
    log_debug("identity | install_waits | device=%s registry_version=%llu (a broker has not "
              "applied it yet)",
              c->device, (unsigned long long)r->waits[r->wait_count - 1].version);
    v = BC_STREAM_DEFER;
    goto cleanup;

retry_later:
    if (rot_finish(r, c->campaign_id, c->device, csr->cmd_id, BC_OUTCOME_RETRY,
                   "the CA could not issue the certificate") == BC_ERR_UNAVAILABLE)
        v = BC_STREAM_RETRY;
cleanup:
    free(w.pem);
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
    if (find_wait(r, entry->id) != NULL)
        return BC_STREAM_DEFER; /* redelivered while its install waits for the brokers */
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
        r->csr_entry_id = entry->id;
        v = handle_csr(r, &msg.csr);
        r->csr_entry_id = NULL;
    }
    bc_message_free(&msg);
    return v;
}
