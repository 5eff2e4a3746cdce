/*
 * mqtt.c - the gateway's MQTT session, and how it holds PUBACKs.
 *
 * libmosquitto 2.0.11 queues the PUBACK of a QoS 1 message *before* it
 * calls the message callback, and has no manual-ack API. In its default
 * (non-threaded) mode it also writes that PUBACK at once. But with
 * mosquitto_threaded_set(true) and no mosquitto_loop*() thread, every
 * packet it queues (PUBACK, PUBLISH, PINGREQ, SUBSCRIBE, CONNECT) only
 * goes into its out queue, and nothing is written until we call
 * mosquitto_loop_write(). The gateway uses exactly that:
 *
 *   poll ─► gw_mqtt_read (loop_read: PUBLISH -> ingest appends an XADD,
 *           PUBACK queued, not written)
 *        ─► gw_ingest_flush (read every XADD reply)
 *           ├─ all stored ─► gw_mqtt_flush (loop_write: PUBACKs go out)
 *           └─ a failure  ─► gw_mqtt_settle: close the socket WITHOUT
 *              writing; the broker never saw a PUBACK, keeps the messages
 *              in our persistent session and sends them again when we
 *              reconnect - which we do only once Redis answers again.
 *
 * The session is persistent: MQTT v5, clean start off, a session expiry
 * interval, and a fixed client id per gateway instance, so what the broker
 * has for us while we are away (or dead) waits in our session (up to the
 * broker's max_queued_messages).
 *
 * Connection flow (a new mosquitto client per attempt, so libmosquitto
 * never re-sends an old attempt's PUBLISHes behind the outbox's back):
 *
 *   DOWN ──open──► CONNECTING ──CONNACK ok──► SUBSCRIBING ──SUBACK ok──► ONLINE
 *     ▲                 │ refused/timeout/lost         │                   │
 *     └──── backoff ◄───┴──────────────────────────────┴───────────────────┘
 *
 * Hazards: libmosquitto closes the socket itself on an error and calls our
 * callbacks from inside its loop functions, so callbacks only record what
 * happened (lost, lost_reason) and gw_mqtt_settle tears down afterwards.
 * The TLS handshake advances only inside loop_read (want_connect), so
 * during the handshake a writable socket is served by loop_read too.
 * The only blocking call is the TCP connect of mosquitto_connect_bind_v5
 * (the async connect has no way to send the session expiry property);
 * while it blocks there is no session, so nothing else waits on it.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "common/clock.h"
#include "common/log.h"
#include "gateway/gateway.h"

#define MISC_INTERVAL_MS 1000
#define WRITE_PACKETS 1024
#define SSL_VERIFY_PEER_MODE 1

static const char *const state_names[] = {"down", "connecting", "subscribing", "online"};

bc_status gw_mqtt_init(gw_mqtt *m, const gw_config *cfg, struct gateway *gw, bc_error *err)
{
    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->gw = gw;
    m->fd = -1;
    m->state = GW_MQTT_DOWN;
    int n = snprintf(m->client_id, sizeof(m->client_id), "gateway-%s", cfg->instance);
    if (n < 0 || (size_t)n >= sizeof(m->client_id))
        return bc_fail(err, BC_ERR_INVAL, "instance '%s' is too long", cfg->instance);
    int rc = mosquitto_lib_init();
    if (rc != MOSQ_ERR_SUCCESS)
        return bc_fail(err, BC_ERR_CRYPTO, "mosquitto_lib_init: %s", mosquitto_strerror(rc));
    return BC_OK;
}

void gw_mqtt_mark_lost(gw_mqtt *m, const char *reason)
{
    if (m->lost)
        return;
    m->lost = true;
    snprintf(m->lost_reason, sizeof(m->lost_reason), "%s", reason);
}

static void schedule_attempt(gw_mqtt *m)
{
    int64_t cap =
        bc_redis_backoff_cap_ms(m->cfg->backoff_min_ms, m->cfg->backoff_max_ms, m->failures);
    uint64_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint64_t)bc_clock_monotonic_ms();
    m->failures++;
    m->next_attempt_ms = bc_clock_monotonic_ms() + (int64_t)(r % (uint64_t)(cap + 1));
}

static bool in_handshake(const gw_mqtt *m)
{
    SSL *ssl = mosquitto_ssl_get(m->mosq);
    return ssl != NULL && !SSL_is_init_finished(ssl);
}

static void share_filter(const gw_mqtt *m, char *out, size_t size)
{
    snprintf(out, size, "$share/%s/%s", m->cfg->share_group, BC_FILTER_ALL_DEVICES);
}

/* ---- callbacks: record only ---- */

static void cb_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    gw_mqtt *m = obj;
    (void)props;
    if (rc != 0) {
        char reason[128];
        snprintf(reason, sizeof(reason), "refused by the broker: %s", mosquitto_reason_string(rc));
        gw_mqtt_mark_lost(m, reason);
        return;
    }
    char filter[160];
    share_filter(m, filter, sizeof(filter));
    int src = mosquitto_subscribe_v5(mosq, NULL, filter, 1, 0, NULL);
    if (src != MOSQ_ERR_SUCCESS) {
        char reason[128];
        snprintf(reason, sizeof(reason), "subscribe: %s", mosquitto_strerror(src));
        gw_mqtt_mark_lost(m, reason);
        return;
    }
    m->state = GW_MQTT_SUBSCRIBING;
    log_info("connected to %s:%" PRId64 " as %s (session %s); subscribing to %s", m->cfg->mqtt_host,
             m->cfg->mqtt_port, m->client_id, (flags & 1) ? "resumed" : "new", filter);
}

static void cb_subscribe(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted,
                         const mosquitto_property *props)
{
    gw_mqtt *m = obj;
    (void)mosq;
    (void)mid;
    (void)props;
    if (count < 1 || granted[0] >= 0x80) {
        char reason[128];
        snprintf(reason, sizeof(reason), "subscription refused (reason code %d)",
                 count < 1 ? -1 : granted[0]);
        gw_mqtt_mark_lost(m, reason);
        return;
    }
    m->state = GW_MQTT_ONLINE;
    m->failures = 0;
    m->connects++;
    gateway_on_online(m->gw);
}

static void cb_unsubscribe(struct mosquitto *mosq, void *obj, int mid,
                           const mosquitto_property *props)
{
    gw_mqtt *m = obj;
    (void)mosq;
    (void)mid;
    (void)props;
    m->left = true;
}

void gw_mqtt_leave(gw_mqtt *m)
{
    if (m->mosq == NULL || m->lost || m->state != GW_MQTT_ONLINE)
        return;
    char filter[160];
    share_filter(m, filter, sizeof(filter));
    int rc = mosquitto_unsubscribe_v5(m->mosq, NULL, filter, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        log_warnx("unsubscribe %s: %s", filter, mosquitto_strerror(rc));
        m->left = true; /* nothing to wait for */
    }
}

static void cb_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    gw_mqtt *m = obj;
    (void)mosq;
    (void)props;
    char reason[128];
    snprintf(reason, sizeof(reason), "connection lost: %s",
             rc == MOSQ_ERR_SUCCESS ? "closed" : mosquitto_strerror(rc));
    gw_mqtt_mark_lost(m, reason);
}

static void cb_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    gw_mqtt *m = obj;
    (void)mosq;
    (void)props;
    gateway_on_message(m->gw, msg->topic, msg->payload, (size_t)msg->payloadlen);
}

static void cb_publish(struct mosquitto *mosq, void *obj, int mid, int reason_code,
                       const mosquitto_property *props)
{
    gw_mqtt *m = obj;
    (void)mosq;
    (void)props;
    gateway_on_publish(m->gw, mid, reason_code);
}

static void cb_log(struct mosquitto *mosq, void *obj, int level, const char *str)
{
    (void)mosq;
    (void)obj;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        log_warnx("libmosquitto: %s", str);
}

/* ---- the session ---- */

static bc_status configure(gw_mqtt *m, bc_error *err)
{
    struct mosquitto *mosq = m->mosq;
    int rc = mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_int_option(mosq, MOSQ_OPT_RECEIVE_MAXIMUM, (int)m->cfg->receive_maximum);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_threaded_set(mosq, true); /* see the top: nothing written unasked */
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_set(mosq, m->cfg->ca_file, NULL, m->cfg->cert_file, m->cfg->key_file,
                               NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_opts_set(mosq, SSL_VERIFY_PEER_MODE, "tlsv1.3", NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        return bc_fail(err, BC_ERR_INVAL, "MQTT/TLS options: %s", mosquitto_strerror(rc));
    mosquitto_connect_v5_callback_set(mosq, cb_connect);
    mosquitto_subscribe_v5_callback_set(mosq, cb_subscribe);
    mosquitto_unsubscribe_v5_callback_set(mosq, cb_unsubscribe);
    mosquitto_disconnect_v5_callback_set(mosq, cb_disconnect);
    mosquitto_message_v5_callback_set(mosq, cb_message);
    mosquitto_publish_v5_callback_set(mosq, cb_publish);
    mosquitto_log_callback_set(mosq, cb_log);
    return BC_OK;
}

static void destroy(gw_mqtt *m)
{
    if (m->mosq != NULL)
        mosquitto_destroy(m->mosq); /* closes the socket; queued packets are discarded */
    m->mosq = NULL;
    m->fd = -1;
}

bc_status gw_mqtt_open(gw_mqtt *m, bc_error *err)
{
    bc_status st = BC_OK;
    mosquitto_property *props = NULL;
    m->lost = false;
    m->left = false;
    m->lost_reason[0] = '\0';
    m->mosq = mosquitto_new(m->client_id, false, m);
    if (m->mosq == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "mosquitto_new: %s", strerror(errno));
        goto cleanup;
    }
    st = configure(m, err);
    if (st != BC_OK)
        goto cleanup;
    int rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                          (uint32_t)m->cfg->session_expiry_s);
    if (rc != MOSQ_ERR_SUCCESS) {
        st = bc_fail(err, BC_ERR_NOMEM, "session expiry property: %s", mosquitto_strerror(rc));
        goto cleanup;
    }
    rc = mosquitto_connect_bind_v5(m->mosq, m->cfg->mqtt_host, (int)m->cfg->mqtt_port,
                                   (int)m->cfg->keepalive_s, NULL, props);
    if (rc != MOSQ_ERR_SUCCESS) {
        st = bc_fail(err, BC_ERR_UNAVAILABLE, "connect %s:%" PRId64 ": %s", m->cfg->mqtt_host,
                     m->cfg->mqtt_port,
                     rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        goto cleanup;
    }
    m->fd = mosquitto_socket(m->mosq);
    if (m->fd < 0) {
        st = bc_fail(err, BC_ERR_UNAVAILABLE, "connect %s:%" PRId64 ": no socket",
                     m->cfg->mqtt_host, m->cfg->mqtt_port);
        goto cleanup;
    }
    /* Read-ahead: TLS takes what the socket holds in one read (a record's
     * header and body, and the start of the next) instead of a read for
     * each; what it buffered is seen by gw_mqtt_input_waiting. */
    SSL *ssl = mosquitto_ssl_get(m->mosq);
    if (ssl != NULL)
        SSL_set_read_ahead(ssl, 1);
    int64_t now = bc_clock_monotonic_ms();
    m->state = GW_MQTT_CONNECTING;
    m->connect_deadline_ms = now + m->cfg->connect_timeout_ms;
    m->next_misc_ms = now + MISC_INTERVAL_MS;

cleanup:
    mosquitto_property_free_all(&props);
    if (st != BC_OK) {
        destroy(m);
        m->state = GW_MQTT_DOWN;
        schedule_attempt(m);
    }
    return st;
}

short gw_mqtt_events(const gw_mqtt *m)
{
    if (m->mosq == NULL || m->fd < 0 || m->lost)
        return 0;
    short ev = POLLIN;
    if (in_handshake(m)) {
        if (!SSL_want_read(mosquitto_ssl_get(m->mosq)))
            ev |= POLLOUT;
    } else if (mosquitto_want_write(m->mosq)) {
        ev |= POLLOUT;
    }
    return ev;
}

void gw_mqtt_read(gw_mqtt *m)
{
    if (m->mosq == NULL || m->lost)
        return;
    int rc = mosquitto_loop_read(m->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        char reason[128];
        snprintf(reason, sizeof(reason), "read: %s",
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        gw_mqtt_mark_lost(m, reason);
    }
}

/* Input TLS holds: decrypted bytes, or a whole record it read ahead
 * (SSL_peek decrypts it without taking anything). A partial record is not
 * input - its rest comes through the socket, which poll() sees - so asking
 * never spins on it. errno is kept: libmosquitto reads it after its calls. */
static bool tls_has_input(const gw_mqtt *m)
{
    if (m->mosq == NULL || m->lost || m->fd < 0 || mosquitto_socket(m->mosq) < 0 || in_handshake(m))
        return false;
    SSL *ssl = mosquitto_ssl_get(m->mosq);
    if (ssl == NULL)
        return false;
    if (SSL_pending(ssl) > 0)
        return true;
    if (SSL_has_pending(ssl) != 1)
        return false;
    int saved = errno;
    unsigned char byte;
    int n = SSL_peek(ssl, &byte, 1);
    int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, n);
    ERR_clear_error();
    errno = saved;
    /* data, or an alert or close that loop_read must see */
    return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

bool gw_mqtt_tls_buffered(const gw_mqtt *m)
{
    return tls_has_input(m);
}

bool gw_mqtt_input_waiting(const gw_mqtt *m)
{
    if (m->mosq == NULL || m->lost || m->fd < 0 || mosquitto_socket(m->mosq) < 0 || in_handshake(m))
        return false;
    if (tls_has_input(m))
        return true;
    struct pollfd p = {.fd = m->fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0;
}

void gw_mqtt_flush(gw_mqtt *m)
{
    if (m->mosq == NULL || m->lost || mosquitto_socket(m->mosq) < 0 || in_handshake(m) ||
        !mosquitto_want_write(m->mosq))
        return;
    int rc = mosquitto_loop_write(m->mosq, WRITE_PACKETS);
    if (rc != MOSQ_ERR_SUCCESS) {
        char reason[128];
        snprintf(reason, sizeof(reason), "write: %s",
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        gw_mqtt_mark_lost(m, reason);
    }
}

void gw_mqtt_misc(gw_mqtt *m)
{
    int64_t now = bc_clock_monotonic_ms();
    if (m->mosq == NULL || m->lost || now < m->next_misc_ms)
        return;
    m->next_misc_ms = now + MISC_INTERVAL_MS;
    if (m->state != GW_MQTT_ONLINE && now > m->connect_deadline_ms) {
        gw_mqtt_mark_lost(m, m->state == GW_MQTT_CONNECTING ? "no CONNACK in time"
                                                            : "no SUBACK in time");
        return;
    }
    int rc = mosquitto_loop_misc(m->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        char reason[128];
        snprintf(reason, sizeof(reason), "keepalive: %s", mosquitto_strerror(rc));
        gw_mqtt_mark_lost(m, reason);
    }
}

bool gw_mqtt_settle(gw_mqtt *m)
{
    if (!m->lost)
        return false;
    bool was_online = m->state == GW_MQTT_ONLINE;
    destroy(m);
    m->state = GW_MQTT_DOWN;
    m->lost = false;
    schedule_attempt(m);
    if (was_online)
        gateway_on_offline(m->gw, m->lost_reason);
    else
        log_warnx("MQTT %s:%" PRId64 ": %s; next attempt in %" PRId64 " ms", m->cfg->mqtt_host,
                  m->cfg->mqtt_port, m->lost_reason, m->next_attempt_ms - bc_clock_monotonic_ms());
    return true;
}

void gw_mqtt_close(gw_mqtt *m)
{
    if (m->mosq == NULL)
        return;
    if (!m->lost && m->state != GW_MQTT_DOWN && !in_handshake(m)) {
        /* Normal disconnection: the broker keeps the session (its expiry
         * is the one sent in CONNECT). Flush what is queued first. */
        if (mosquitto_disconnect_v5(m->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL) ==
            MOSQ_ERR_SUCCESS) {
            for (int i = 0; i < 50 && mosquitto_want_write(m->mosq) && !m->lost &&
                            mosquitto_socket(m->mosq) >= 0;
                 i++) {
                struct pollfd p = {.fd = m->fd, .events = POLLOUT};
                if (poll(&p, 1, 20) < 0 && errno != EINTR)
                    break;
                if (mosquitto_loop_write(m->mosq, WRITE_PACKETS) != MOSQ_ERR_SUCCESS)
                    break;
            }
        }
    }
    destroy(m);
    m->state = GW_MQTT_DOWN;
}

int64_t gw_mqtt_timeout_ms(const gw_mqtt *m)
{
    int64_t now = bc_clock_monotonic_ms();
    int64_t t = m->mosq == NULL ? m->next_attempt_ms - now : m->next_misc_ms - now;
    return t > 0 ? t : 0;
}

const char *gw_mqtt_state_name(gw_mqtt_state s)
{
    return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}
