/*
 * link.c - the MQTT session of one camera, on libmosquitto's non-threaded API.
 *
 *            start                 reserve_session + connect_async
 *   STOPPED ───────► WAITING ─────────────────────────────────► CONNECTING
 *                     ▲  ▲                                        │ CONNACK ok
 *                     │  └─── lost / refused / timeout ◄──────────┤
 *                     │       (next attempt after full-jitter      ▼
 *                     │        backoff)                          ONLINE
 *                     └──────────────── lost ◄─────────────────────┘
 *   bc_link_stop: ONLINE ──► CLOSING (DISCONNECT with will) ──► CLOSED;
 *                 any other state ──► CLOSED at once.
 *   bc_link_reconnect: ONLINE ──► CLOSING (DISCONNECT with will) ──► WAITING
 *                 (no delay); CONNECTING / WAITING ──► WAITING (no delay);
 *                 neither counts as a failure for the backoff.
 *
 * Driving libmosquitto without its loop:
 *   - the socket is watched for READ always, for WRITE when
 *     mosquitto_want_write() says so - except during the TLS handshake,
 *     where libmosquitto's own flag stays set after a WANT_WRITE and would
 *     spin the loop: there OpenSSL's SSL_want_read() decides (write interest
 *     unless the handshake waits for the peer);
 *   - the handshake only advances inside mosquitto_loop_read() (it calls
 *     SSL_connect while connecting), so a writable event during the
 *     handshake is served by loop_read too;
 *   - loop_misc runs on a 1 s timer (keepalive PINGREQ, dead-peer check).
 *
 * Hazard: libmosquitto closes the socket itself on an error or after the
 * DISCONNECT is written, and calls our callbacks from inside its loop
 * functions. So callbacks only record what happened; the teardown (remove
 * the watcher, destroy the client, schedule the next attempt) runs after
 * the libmosquitto call returned (`depth` counts the nesting), and the
 * watcher is removed by the fd number we registered before anything else
 * can open a file and reuse that number.
 *
 * The outbox and PUBACK 0x10 ("no matching subscribers": no gateway has
 * subscribed yet, the broker dropped the message): the message stays and
 * the link enters a hold episode -
 *
 *   window ──0x10──► HELD (no sends; retry timer) ──timer, window drained──►
 *   PROBE (oldest pending message alone) ──0x10──► HELD (longer delay)
 *                                        └─delivered──► window (episode over)
 *
 * Messages already in flight behind the held one keep their own PUBACKs
 * (delivered ones are deleted, 0x10 ones stay). The probe restarts from the
 * oldest pending message only once nothing is in flight, so nothing is
 * ever in flight twice. A reconnect during an episode starts in PROBE.
 */
#include "device-agent/link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/message.h"

#define MISC_INTERVAL_MS 1000
#define LOOP_WRITE_PACKETS 64
#define REASON_MAX 160
#define MQTT_VERIFY_PEER 1
#define STABLE_MS 10000  /* a session this long resets the backoff */
#define HOLD_MIN_MS 1000 /* first retry after 0x10: at least this (or backoff_min_ms) */
#define HOLD_WAIT_MS 200 /* the retry waits for the in-flight window to drain */

typedef enum link_state {
    LINK_STOPPED,
    LINK_WAITING,
    LINK_CONNECTING,
    LINK_ONLINE,
    LINK_CLOSING,
    LINK_CLOSED,
} link_state;

typedef struct inflight_entry {
    int mid;
    uint64_t seq;
} inflight_entry;

struct bc_link {
    bc_reactor *r;
    bc_link_config cfg;
    bc_outbox *outbox;
    bc_link_callbacks cb;
    void *userdata;

    link_state state;
    struct mosquitto *mosq;
    int fd;            /* the watched socket, -1 when none */
    unsigned interest; /* what the watcher asks for */
    int depth;         /* > 0 while inside a libmosquitto call */
    bool lost;         /* the current attempt/session is over; tear down */
    bool stop_requested;
    bool reconnect_now; /* bc_link_reconnect: next attempt at once, no failure counted */
    char lost_reason[REASON_MAX];

    bc_timer retry_timer;
    bc_timer misc_timer;
    bc_timer connect_timer;
    unsigned failures;       /* attempts in a row without a stable session */
    int64_t online_since_ms; /* monotonic, when the CONNACK came */

    char recording_key_id[BC_ID_MAX + 1];
    inflight_entry *inflight;
    size_t inflight_count;
    uint64_t last_sent_seq; /* outbox seq of the last message sent this session */

    /* PUBACK 0x10 episode (see the top of the file) */
    bc_timer hold_timer;
    bool held;             /* delivery paused until hold_timer */
    bool probing;          /* one message at a time until one is delivered */
    bool hold_logged;      /* the episode's warning was written */
    unsigned hold_retries; /* probes in this episode, for the delay */
    bc_link_stats stats;
};

static void link_after(bc_link *l);
static void link_schedule(bc_link *l);
static void schedule_now(bc_link *l);

/* ---- small helpers ---- */

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* Records why the attempt/session ended: "what" or "what: detail". */
static void mark_lost(bc_link *l, const char *what, const char *detail)
{
    if (l->lost)
        return;
    l->lost = true;
    if (detail != NULL)
        snprintf(l->lost_reason, sizeof(l->lost_reason), "%s: %s", what, detail);
    else
        snprintf(l->lost_reason, sizeof(l->lost_reason), "%s", what);
}

static double rand_unit(void)
{
    uint64_t v = 0;
    if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
        return 0.5; /* no entropy right now: the middle of the range is still a delay */
    return (double)(v >> 11) / (double)(1ULL << 53);
}

int64_t bc_link_backoff_ms(int64_t min_ms, int64_t max_ms, unsigned attempt, double rand01)
{
    if (min_ms < 1)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    int64_t cap = min_ms;
    for (unsigned i = 0; i < attempt && cap < max_ms; i++)
        cap = cap > max_ms / 2 ? max_ms : cap * 2;
    if (cap > max_ms)
        cap = max_ms;
    if (rand01 < 0.0)
        rand01 = 0.0;
    if (rand01 >= 1.0)
        rand01 = 0.999999;
    return (int64_t)(rand01 * (double)(cap + 1));
}

/* ---- messages ---- */

/* Encodes the conn message (birth or will) into a malloc'd string. */
static bc_status conn_payload(const bc_link *l, bc_conn_status status, char **out, bc_error *err)
{
    bc_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = BC_TOPIC_CONN;
    copy_str(msg.conn.device, sizeof(msg.conn.device), l->cfg.device_id);
    msg.conn.status = status;
    msg.conn.session = (int64_t)l->stats.session;
    msg.conn.ts = bc_clock_now_ms();
    copy_str(msg.conn.fw, sizeof(msg.conn.fw), l->cfg.fw_version);
    copy_str(msg.conn.recording_key_id, sizeof(msg.conn.recording_key_id), l->recording_key_id);
    return bc_message_encode(&msg, out, err);
}

/* ---- the reactor side ---- */

static int in_handshake(const bc_link *l)
{
    SSL *ssl = mosquitto_ssl_get(l->mosq);
    return ssl != NULL && !SSL_is_init_finished(ssl);
}

static void update_interest(bc_link *l)
{
    if (l->fd < 0 || l->mosq == NULL)
        return;
    unsigned want = BC_REACTOR_READ;
    if (in_handshake(l)) {
        SSL *ssl = mosquitto_ssl_get(l->mosq);
        if (!SSL_want_read(ssl))
            want |= BC_REACTOR_WRITE;
    } else if (mosquitto_want_write(l->mosq)) {
        want |= BC_REACTOR_WRITE;
    }
    if (want == l->interest)
        return;
    if (bc_reactor_modify_fd(l->r, l->fd, want) != BC_OK) {
        mark_lost(l, "cannot change the socket's watcher", NULL);
        return;
    }
    l->interest = want;
}

static const char *socket_error(int fd)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr == 0)
        return "connection closed";
    return strerror(soerr);
}

static void on_socket(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    bc_link *l = userdata;
    (void)r;
    if (l->mosq == NULL || fd != l->fd)
        return;
    int handshake = in_handshake(l);
    if (handshake && (events & BC_REACTOR_HUP)) {
        mark_lost(l, "connect failed", socket_error(fd));
        link_after(l);
        return;
    }
    l->depth++;
    int rc = MOSQ_ERR_SUCCESS;
    if (handshake || (events & (BC_REACTOR_READ | BC_REACTOR_HUP)))
        rc = mosquitto_loop_read(l->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS)
        mark_lost(l, "read", mosquitto_strerror(rc));
    if (!l->lost && mosquitto_socket(l->mosq) >= 0 && !in_handshake(l) &&
        mosquitto_want_write(l->mosq)) {
        rc = mosquitto_loop_write(l->mosq, LOOP_WRITE_PACKETS);
        if (rc != MOSQ_ERR_SUCCESS)
            mark_lost(l, "write", mosquitto_strerror(rc));
    }
    l->depth--;
    link_after(l);
}

static void on_misc(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_link *l = userdata;
    (void)r;
    (void)t;
    if (l->mosq == NULL)
        return;
    l->depth++;
    int rc = mosquitto_loop_misc(l->mosq);
    if (rc != MOSQ_ERR_SUCCESS)
        mark_lost(l, "keepalive", mosquitto_strerror(rc));
    l->depth--;
    link_after(l);
}

static void on_connect_timeout(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_link *l = userdata;
    (void)r;
    (void)t;
    if (l->state != LINK_CONNECTING)
        return;
    mark_lost(l, "no CONNACK within the connect timeout", NULL);
    link_after(l);
}

/* Closes the client and forgets the session's in-flight window. */
static void close_client(bc_link *l)
{
    if (l->fd >= 0) {
        if (bc_reactor_remove_fd(l->r, l->fd) != BC_OK)
            log_warnx("%s: link: socket %d was not watched", l->cfg.device_id, l->fd);
        l->fd = -1;
        l->interest = 0;
    }
    bc_reactor_timer_stop(l->r, &l->misc_timer);
    bc_reactor_timer_stop(l->r, &l->connect_timer);
    if (l->mosq != NULL) {
        mosquitto_destroy(l->mosq); /* closes the socket if it is still open */
        l->mosq = NULL;
    }
    l->inflight_count = 0;
    l->last_sent_seq = 0;
    /* an unfinished episode resumes with a probe on the next session */
    bc_reactor_timer_stop(l->r, &l->hold_timer);
    l->held = false;
    l->probing = l->hold_logged;
}

/* Ends the attempt or session (outside any libmosquitto call). */
static void teardown(bc_link *l)
{
    bool was_online = l->state == LINK_ONLINE || l->state == LINK_CLOSING;
    bool on_purpose = l->stop_requested || l->reconnect_now; /* not a failure */
    close_client(l);
    l->lost = false;
    if (was_online)
        log_info("%s: offline: %s", l->cfg.device_id, l->lost_reason);
    else if (!on_purpose)
        log_warnx("%s: connection attempt %llu failed: %s", l->cfg.device_id,
                  (unsigned long long)l->stats.session, l->lost_reason);
    if (l->stop_requested) {
        l->state = LINK_CLOSED;
    } else if (l->reconnect_now) {
        l->reconnect_now = false;
        schedule_now(l);
    } else {
        /* A session that ended soon after it began (kicked, broker going
         * down) counts as a failure too, so two clients fighting over one
         * id, or a fleet and a flapping broker, back off. */
        bool stable = was_online && bc_clock_monotonic_ms() - l->online_since_ms >= STABLE_MS;
        l->failures = stable ? 0 : l->failures + 1;
        link_schedule(l);
    }
    if (was_online && l->cb.on_offline != NULL)
        l->cb.on_offline(l, l->lost_reason, l->userdata);
    else if (!was_online && !on_purpose && l->cb.on_attempt_failed != NULL)
        l->cb.on_attempt_failed(l, l->lost_reason, l->userdata);
}

/* After every libmosquitto call: tear down what ended, else re-arm. */
static void link_after(bc_link *l)
{
    if (l->depth > 0 || l->mosq == NULL)
        return;
    if (!l->lost && mosquitto_socket(l->mosq) < 0)
        mark_lost(l, l->state == LINK_CLOSING ? "disconnected" : "connection closed", NULL);
    if (l->lost) {
        teardown(l);
        return;
    }
    update_interest(l);
    if (l->lost)
        teardown(l);
}

/* ---- the outbox ---- */

/* Index of the first pending message with a seq above last_sent_seq. */
static size_t first_unsent(const bc_link *l)
{
    size_t lo = 0, hi = bc_outbox_count(l->outbox);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        bc_outbox_msg m;
        if (bc_outbox_at(l->outbox, mid, &m) != BC_OK || m.seq > l->last_sent_seq)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static bc_status send_one(bc_link *l, const bc_outbox_msg *m)
{
    int mid = 0;
    int rc = mosquitto_publish_v5(l->mosq, &mid, m->topic, (int)m->payload_len, m->payload, m->qos,
                                  false, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        mark_lost(l, "publish", mosquitto_strerror(rc));
        return BC_ERR_IO;
    }
    l->last_sent_seq = m->seq;
    l->stats.outbox_sent++;
    if (m->qos == 0) { /* no PUBACK will come: handed over is all we can know */
        bc_error err;
        if (bc_outbox_ack(l->outbox, m->seq, &err) != BC_OK)
            log_warnx("%s: outbox ack %llu: %s", l->cfg.device_id, (unsigned long long)m->seq,
                      err.text);
        return BC_OK;
    }
    l->inflight[l->inflight_count].mid = mid;
    l->inflight[l->inflight_count].seq = m->seq;
    l->inflight_count++;
    return BC_OK;
}

static void pump_outbox(bc_link *l)
{
    if (l->state != LINK_ONLINE || l->lost || l->held)
        return;
    size_t window = l->probing ? 1 : l->cfg.inflight_window;
    while (l->inflight_count < window) {
        bc_outbox_msg m;
        if (bc_outbox_at(l->outbox, first_unsent(l), &m) != BC_OK)
            return;
        if (send_one(l, &m) != BC_OK)
            return;
    }
}

static int take_inflight(bc_link *l, int mid, uint64_t *seq)
{
    for (size_t i = 0; i < l->inflight_count; i++) {
        if (l->inflight[i].mid != mid)
            continue;
        *seq = l->inflight[i].seq;
        memmove(&l->inflight[i], &l->inflight[i + 1],
                (l->inflight_count - i - 1) * sizeof(l->inflight[0]));
        l->inflight_count--;
        return 1;
    }
    return 0;
}

/* ---- PUBACK reasons of outbox messages ---- */

/* Delay before the next probe of a hold episode: doubling from
 * max(backoff_min, HOLD_MIN_MS) up to backoff_max, the upper half of it
 * random ("equal jitter": never 0, and a fleet does not retry in step). */
static int64_t hold_delay_ms(const bc_link *l)
{
    int64_t base = l->cfg.backoff_min_ms > HOLD_MIN_MS ? l->cfg.backoff_min_ms : HOLD_MIN_MS;
    int64_t max = l->cfg.backoff_max_ms > base ? l->cfg.backoff_max_ms : base;
    int64_t cap = base;
    for (unsigned i = 0; i < l->hold_retries && cap < max; i++)
        cap = cap > max / 2 ? max : cap * 2;
    return cap / 2 + (int64_t)(rand_unit() * (double)(cap / 2 + 1));
}

/* PUBACK 0x10: nobody subscribes to the topic (no gateway yet), the broker
 * dropped the message. Keep it and pause the outbox (see the top). */
static void hold_outbox(bc_link *l, uint64_t seq)
{
    l->stats.outbox_unrouted++;
    if (l->held)
        return; /* one more of the window behind the held one: it stays too */
    int64_t delay = hold_delay_ms(l);
    l->hold_retries++;
    if (bc_reactor_timer_start(l->r, &l->hold_timer, delay, 0) != BC_OK) {
        mark_lost(l, "cannot start the outbox retry timer", NULL); /* a reconnect retries */
        return;
    }
    l->held = true;
    l->probing = true;
    if (l->hold_logged)
        return;
    l->hold_logged = true;
    bc_outbox_msg m;
    const char *topic = bc_outbox_find(l->outbox, seq, &m) == BC_OK ? m.topic : "its topic";
    log_warnx("%s: nobody subscribes to %s (PUBACK 0x10 for outbox message %llu): kept, "
              "delivery paused, retrying every few seconds until someone takes it",
              l->cfg.device_id, topic, (unsigned long long)seq);
}

/* A message went through: an episode (if any) is over. */
static void end_hold_episode(bc_link *l)
{
    if (l->hold_logged)
        log_info("%s: the outbox is delivered again after %u retr%s", l->cfg.device_id,
                 l->hold_retries, l->hold_retries == 1 ? "y" : "ies");
    l->probing = false;
    l->hold_logged = false;
    l->hold_retries = 0;
}

/* PUBACK >= 0x80: the broker will never take this message (e.g. 0x87 not
 * authorized: its plugin refused the payload). Keeping it would block the
 * queue forever, so it is dropped (by the caller), loudly. */
static void refuse_outbox(bc_link *l, uint64_t seq, int reason)
{
    char text[REASON_MAX + BC_TOPIC_MAX];
    bc_outbox_msg m;
    const char *topic = bc_outbox_find(l->outbox, seq, &m) == BC_OK ? m.topic : "?";
    l->stats.outbox_refused++;
    snprintf(text, sizeof(text),
             "the broker refused outbox message %llu on %s (0x%02x %s); dropped",
             (unsigned long long)seq, topic, (unsigned)reason, mosquitto_reason_string(reason));
    log_errorx("%s: %s", l->cfg.device_id, text);
    if (l->cb.on_outbox_refused != NULL)
        l->cb.on_outbox_refused(l, seq, reason, text, l->userdata);
}

static void on_hold_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_link *l = userdata;
    (void)r;
    (void)t;
    if (!l->held || l->state != LINK_ONLINE || l->lost || l->mosq == NULL)
        return;
    if (l->inflight_count > 0) { /* PUBACKs behind the held message still to come */
        if (bc_reactor_timer_start(l->r, &l->hold_timer, HOLD_WAIT_MS, 0) != BC_OK)
            mark_lost(l, "cannot start the outbox retry timer", NULL);
        link_after(l);
        return;
    }
    l->held = false;
    l->last_sent_seq = 0; /* the oldest pending message first, alone (probing) */
    l->depth++;
    pump_outbox(l);
    l->depth--;
    link_after(l);
}

/* ---- libmosquitto callbacks (inside loop calls: record, do not tear down) ---- */

static void publish_birth(bc_link *l)
{
    char topic[BC_TOPIC_MAX];
    char *payload = NULL;
    bc_error err;
    if (bc_topic_device(topic, sizeof(topic), l->cfg.device_id, BC_TOPIC_CONN) != BC_OK ||
        conn_payload(l, BC_CONN_ONLINE, &payload, &err) != BC_OK) {
        mark_lost(l, "cannot build the birth message", NULL);
        return;
    }
    int rc =
        mosquitto_publish_v5(l->mosq, NULL, topic, (int)strlen(payload), payload, 1, true, NULL);
    free(payload);
    if (rc != MOSQ_ERR_SUCCESS)
        mark_lost(l, "birth", mosquitto_strerror(rc));
}

static void subscribe_commands(bc_link *l)
{
    char filter[BC_TOPIC_MAX];
    if (bc_topic_command_filter(filter, sizeof(filter), l->cfg.device_id) != BC_OK) {
        mark_lost(l, "cannot build the command filter", NULL);
        return;
    }
    int rc = mosquitto_subscribe_v5(l->mosq, NULL, filter, 1, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        mark_lost(l, "subscribe", mosquitto_strerror(rc));
}

static void cb_connect(struct mosquitto *m, void *obj, int rc, int flags,
                       const mosquitto_property *p)
{
    bc_link *l = obj;
    (void)m;
    (void)flags;
    (void)p;
    if (rc != 0) {
        mark_lost(l, "refused by the broker", mosquitto_reason_string(rc));
        return;
    }
    bc_reactor_timer_stop(l->r, &l->connect_timer);
    l->state = LINK_ONLINE;
    l->online_since_ms = bc_clock_monotonic_ms();
    l->stats.connects++;
    log_info("%s: online (session %llu, %s:%d)", l->cfg.device_id,
             (unsigned long long)l->stats.session, l->cfg.host, l->cfg.port);
    publish_birth(l);
    subscribe_commands(l);
    if (!l->lost && l->cb.on_online != NULL)
        l->cb.on_online(l, l->userdata);
    pump_outbox(l);
}

static void cb_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *p)
{
    bc_link *l = obj;
    (void)m;
    (void)p;
    if (l->state == LINK_CLOSING)
        mark_lost(l, "disconnected", NULL);
    else
        mark_lost(l, "connection lost", mosquitto_strerror(rc));
}

static void cb_publish(struct mosquitto *m, void *obj, int mid, int reason,
                       const mosquitto_property *p)
{
    bc_link *l = obj;
    (void)m;
    (void)p;
    uint64_t seq = 0;
    if (!take_inflight(l, mid, &seq)) {
        if (l->cb.on_published != NULL)
            l->cb.on_published(l, mid, reason, l->userdata);
        return;
    }
    if (reason == MQTT_RC_NO_MATCHING_SUBSCRIBERS) {
        hold_outbox(l, seq);
        return;
    }
    if (reason >= 128)
        refuse_outbox(l, seq, reason);
    else if (!l->held)
        end_hold_episode(l);
    bc_error err;
    if (bc_outbox_ack(l->outbox, seq, &err) != BC_OK)
        log_warnx("%s: outbox ack %llu: %s", l->cfg.device_id, (unsigned long long)seq, err.text);
    l->stats.outbox_acked++;
    pump_outbox(l);
}

static void cb_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *p)
{
    bc_link *l = obj;
    (void)m;
    (void)p;
    if (l->cb.on_message == NULL || msg->topic == NULL || msg->payloadlen < 0)
        return;
    l->cb.on_message(l, msg->topic, msg->payload, (size_t)msg->payloadlen, l->userdata);
}

static void cb_log(struct mosquitto *m, void *obj, int level, const char *text)
{
    bc_link *l = obj;
    (void)m;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        log_debug("%s: libmosquitto: %s", l->cfg.device_id, text);
}

/* ---- an attempt ---- */

static bc_status configure_client(bc_link *l, struct mosquitto *m, bc_error *err)
{
    char topic[BC_TOPIC_MAX];
    char *will = NULL;
    int rc = mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_set(m, l->cfg.ca_file, NULL, l->cfg.cert_file, l->cfg.key_file, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_opts_set(m, MQTT_VERIFY_PEER, "tlsv1.3", NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        return bc_fail(err, BC_ERR_INVAL, "TLS/MQTT options: %s", mosquitto_strerror(rc));
    bc_status st = bc_topic_device(topic, sizeof(topic), l->cfg.device_id, BC_TOPIC_CONN);
    if (st == BC_OK)
        st = conn_payload(l, BC_CONN_OFFLINE, &will, err);
    if (st != BC_OK)
        return st;
    rc = mosquitto_will_set_v5(m, topic, (int)strlen(will), will, 1, true, NULL);
    free(will);
    if (rc != MOSQ_ERR_SUCCESS)
        return bc_fail(err, BC_ERR_INVAL, "last will: %s", mosquitto_strerror(rc));
    mosquitto_connect_v5_callback_set(m, cb_connect);
    mosquitto_disconnect_v5_callback_set(m, cb_disconnect);
    mosquitto_publish_v5_callback_set(m, cb_publish);
    mosquitto_message_v5_callback_set(m, cb_message);
    mosquitto_log_callback_set(m, cb_log);
    return BC_OK;
}

static bc_status open_attempt(bc_link *l, bc_error *err)
{
    uint64_t session = 0;
    bc_status st = l->cb.reserve_session(l->userdata, &session);
    if (st != BC_OK)
        return bc_fail(err, st, "cannot persist the next session number");
    l->stats.session = session;
    l->stats.attempts++;
    l->mosq = mosquitto_new(l->cfg.device_id, true, l);
    if (l->mosq == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "mosquitto_new: %s", strerror(errno));
    st = configure_client(l, l->mosq, err);
    if (st != BC_OK)
        return st;
    l->depth++;
    int rc = mosquitto_connect_async(l->mosq, l->cfg.host, l->cfg.port, l->cfg.keepalive_s);
    l->depth--;
    if (rc != MOSQ_ERR_SUCCESS)
        return bc_fail(err, BC_ERR_UNAVAILABLE, "connect %s:%d: %s", l->cfg.host, l->cfg.port,
                       rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    int fd = mosquitto_socket(l->mosq);
    if (fd < 0)
        return bc_fail(err, BC_ERR_UNAVAILABLE, "connect %s:%d: no socket", l->cfg.host,
                       l->cfg.port);
    st = bc_reactor_add_fd(l->r, fd, BC_REACTOR_READ | BC_REACTOR_WRITE, on_socket, l, err);
    if (st != BC_OK)
        return st;
    l->fd = fd;
    l->interest = BC_REACTOR_READ | BC_REACTOR_WRITE;
    st = bc_reactor_timer_start(l->r, &l->misc_timer, MISC_INTERVAL_MS, MISC_INTERVAL_MS);
    if (st == BC_OK)
        st = bc_reactor_timer_start(l->r, &l->connect_timer, l->cfg.connect_timeout_ms, 0);
    return st != BC_OK ? bc_fail(err, st, "cannot start the link's timers") : BC_OK;
}

static void on_retry(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_link *l = userdata;
    (void)r;
    (void)t;
    if (l->state != LINK_WAITING)
        return;
    bc_error err;
    bc_error_clear(&err);
    l->state = LINK_CONNECTING;
    l->lost = false;
    if (open_attempt(l, &err) != BC_OK) {
        mark_lost(l, err.text, NULL);
        teardown(l);
        return;
    }
    link_after(l);
}

static void link_schedule(bc_link *l)
{
    int64_t delay =
        bc_link_backoff_ms(l->cfg.backoff_min_ms, l->cfg.backoff_max_ms, l->failures, rand_unit());
    l->state = LINK_WAITING;
    if (bc_reactor_timer_start(l->r, &l->retry_timer, delay, 0) != BC_OK) {
        log_errorx("%s: link: cannot start the retry timer; staying offline", l->cfg.device_id);
        l->state = LINK_CLOSED;
        return;
    }
    log_debug("%s: next connection attempt in %lld ms", l->cfg.device_id, (long long)delay);
}

/* The next attempt in a later reactor round, without a backoff. */
static void schedule_now(bc_link *l)
{
    l->state = LINK_WAITING;
    if (bc_reactor_timer_start(l->r, &l->retry_timer, 0, 0) != BC_OK) {
        log_errorx("%s: link: cannot start the retry timer; staying offline", l->cfg.device_id);
        l->state = LINK_CLOSED;
    }
}

/* ---- the public side ---- */

bc_status bc_link_lib_init(bc_error *err)
{
    int rc = mosquitto_lib_init();
    if (rc != MOSQ_ERR_SUCCESS)
        return bc_fail(err, BC_ERR_CRYPTO, "mosquitto_lib_init: %s", mosquitto_strerror(rc));
    return BC_OK;
}

void bc_link_lib_cleanup(void)
{
    mosquitto_lib_cleanup();
}

static bc_status check_config(const bc_link_config *c, bc_error *err)
{
    if (!bc_device_id_valid(c->device_id))
        return bc_fail(err, BC_ERR_INVAL, "link: device id '%s' is not valid", c->device_id);
    if (c->host[0] == '\0' || c->port < 1 || c->port > 65535)
        return bc_fail(err, BC_ERR_INVAL, "link: broker address '%s:%d' is not valid", c->host,
                       c->port);
    if (c->ca_file[0] == '\0' || c->cert_file[0] == '\0' || c->key_file[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "link: the CA, certificate and key files are required");
    if (c->keepalive_s < 5 || c->keepalive_s > 65535)
        return bc_fail(err, BC_ERR_INVAL, "link: keepalive %d s is outside 5..65535",
                       c->keepalive_s);
    if (c->backoff_min_ms < 1 || c->backoff_max_ms < c->backoff_min_ms)
        return bc_fail(err, BC_ERR_INVAL, "link: backoff %lld..%lld ms is not a range",
                       (long long)c->backoff_min_ms, (long long)c->backoff_max_ms);
    if (c->connect_timeout_ms < 100)
        return bc_fail(err, BC_ERR_INVAL, "link: connect timeout must be >= 100 ms");
    if (c->inflight_window > BC_LINK_MAX_WINDOW)
        return bc_fail(err, BC_ERR_INVAL, "link: in-flight window %zu is over %d",
                       c->inflight_window, BC_LINK_MAX_WINDOW);
    return BC_OK;
}

bc_status bc_link_new(bc_reactor *r, const bc_link_config *cfg, bc_outbox *outbox,
                      const bc_link_callbacks *cb, void *userdata, bc_link **out, bc_error *err)
{
    *out = NULL;
    if (r == NULL || cfg == NULL || outbox == NULL || cb == NULL || cb->reserve_session == NULL)
        return bc_fail(err, BC_ERR_INVAL,
                       "link: reactor, config, outbox and reserve_session "
                       "are required");
    bc_status st = check_config(cfg, err);
    if (st != BC_OK)
        return st;
    bc_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "link: out of memory");
    l->cfg = *cfg;
    if (l->cfg.inflight_window == 0)
        l->cfg.inflight_window = BC_LINK_DEFAULT_WINDOW;
    l->inflight = calloc(l->cfg.inflight_window, sizeof(*l->inflight));
    if (l->inflight == NULL) {
        free(l);
        return bc_fail(err, BC_ERR_NOMEM, "link: out of memory");
    }
    l->r = r;
    l->outbox = outbox;
    l->cb = *cb;
    l->userdata = userdata;
    l->fd = -1;
    l->state = LINK_STOPPED;
    bc_timer_init(&l->retry_timer, on_retry, l);
    bc_timer_init(&l->misc_timer, on_misc, l);
    bc_timer_init(&l->connect_timer, on_connect_timeout, l);
    bc_timer_init(&l->hold_timer, on_hold_timer, l);
    *out = l;
    return BC_OK;
}

bc_status bc_link_start(bc_link *l, int64_t first_delay_ms, bc_error *err)
{
    if (l->state != LINK_STOPPED)
        return bc_fail(err, BC_ERR_STATE, "link: already started");
    l->state = LINK_WAITING;
    bc_status st = bc_reactor_timer_start(l->r, &l->retry_timer, first_delay_ms, 0);
    if (st != BC_OK) {
        l->state = LINK_STOPPED;
        return bc_fail(err, st, "link: cannot start the connect timer");
    }
    return BC_OK;
}

void bc_link_set_recording_key_id(bc_link *l, const char *key_id)
{
    copy_str(l->recording_key_id, sizeof(l->recording_key_id), key_id);
}

bc_status bc_link_set_identity(bc_link *l, const char *cert_file, const char *key_file,
                               bc_error *err)
{
    if (cert_file == NULL || key_file == NULL || cert_file[0] == '\0' || key_file[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "link: a certificate and a key file are required");
    if (strlen(cert_file) >= sizeof(l->cfg.cert_file) ||
        strlen(key_file) >= sizeof(l->cfg.key_file))
        return bc_fail(err, BC_ERR_TOO_BIG, "link: certificate or key path is too long");
    copy_str(l->cfg.cert_file, sizeof(l->cfg.cert_file), cert_file);
    copy_str(l->cfg.key_file, sizeof(l->cfg.key_file), key_file);
    return BC_OK;
}

void bc_link_reconnect(bc_link *l)
{
    if (l->stop_requested || l->state == LINK_STOPPED || l->state == LINK_CLOSED ||
        l->state == LINK_CLOSING)
        return;
    if (l->state == LINK_WAITING) {
        bc_reactor_timer_stop(l->r, &l->retry_timer);
        schedule_now(l);
        return;
    }
    l->reconnect_now = true;
    if (l->state == LINK_ONLINE && !l->lost) {
        /* with the will: a camera that dies before its next session is
         * seen offline rather than online forever */
        l->state = LINK_CLOSING;
        l->depth++;
        int rc = mosquitto_disconnect_v5(l->mosq, MQTT_RC_DISCONNECT_WITH_WILL_MSG, NULL);
        l->depth--;
        if (rc != MOSQ_ERR_SUCCESS)
            mark_lost(l, "disconnect", mosquitto_strerror(rc));
        link_after(l);
        return;
    }
    mark_lost(l, "reconnecting at once", NULL); /* an attempt in progress */
    link_after(l);
}

int bc_link_online(const bc_link *l)
{
    return l->state == LINK_ONLINE && !l->lost;
}

void bc_link_kick(bc_link *l)
{
    if (!bc_link_online(l))
        return;
    l->depth++;
    pump_outbox(l);
    l->depth--;
    link_after(l);
}

bc_status bc_link_publish(bc_link *l, const char *topic, const void *payload, size_t len, int qos,
                          bool retain, int *mid, bc_error *err)
{
    if (!bc_link_online(l))
        return bc_fail(err, BC_ERR_UNAVAILABLE, "not connected to the broker");
    if (qos < 0 || qos > 2 || topic == NULL)
        return bc_fail(err, BC_ERR_INVAL, "publish: bad topic or qos %d", qos);
    if (len > (size_t)INT32_MAX)
        return bc_fail(err, BC_ERR_TOO_BIG, "publish: payload of %zu bytes", len);
    l->depth++;
    int rc = mosquitto_publish_v5(l->mosq, mid, topic, (int)len, payload, qos, retain, NULL);
    l->depth--;
    bc_status st = BC_OK;
    if (rc != MOSQ_ERR_SUCCESS) {
        st = bc_fail(err, BC_ERR_IO, "publish on %s: %s", topic, mosquitto_strerror(rc));
        if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO)
            mark_lost(l, "publish", mosquitto_strerror(rc));
    }
    link_after(l);
    return st;
}

/* Subscriptions last as long as the session: the caller subscribes again
 * after every on_online. */
static bc_status subscription(bc_link *l, const char *topic, int qos, bool subscribe, bc_error *err)
{
    if (!bc_link_online(l))
        return bc_fail(err, BC_ERR_UNAVAILABLE, "not connected to the broker");
    if (topic == NULL || qos < 0 || qos > 2)
        return bc_fail(err, BC_ERR_INVAL, "subscription: bad topic or qos %d", qos);
    l->depth++;
    int rc = subscribe ? mosquitto_subscribe_v5(l->mosq, NULL, topic, qos, 0, NULL)
                       : mosquitto_unsubscribe_v5(l->mosq, NULL, topic, NULL);
    l->depth--;
    bc_status st = BC_OK;
    if (rc != MOSQ_ERR_SUCCESS) {
        st = bc_fail(err, BC_ERR_IO, "%s %s: %s", subscribe ? "subscribe" : "unsubscribe", topic,
                     mosquitto_strerror(rc));
        if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO)
            mark_lost(l, subscribe ? "subscribe" : "unsubscribe", mosquitto_strerror(rc));
    }
    link_after(l);
    return st;
}

bc_status bc_link_subscribe(bc_link *l, const char *topic, int qos, bc_error *err)
{
    return subscription(l, topic, qos, true, err);
}

bc_status bc_link_unsubscribe(bc_link *l, const char *topic, bc_error *err)
{
    return subscription(l, topic, 0, false, err);
}

void bc_link_stop(bc_link *l)
{
    l->stop_requested = true;
    if (l->state == LINK_STOPPED || l->state == LINK_CLOSED) {
        l->state = LINK_CLOSED;
        return;
    }
    bc_reactor_timer_stop(l->r, &l->retry_timer);
    if (l->state == LINK_ONLINE && !l->lost) {
        l->state = LINK_CLOSING;
        l->depth++;
        int rc = mosquitto_disconnect_v5(l->mosq, MQTT_RC_DISCONNECT_WITH_WILL_MSG, NULL);
        l->depth--;
        if (rc != MOSQ_ERR_SUCCESS)
            mark_lost(l, "disconnect", mosquitto_strerror(rc));
        link_after(l);
        return;
    }
    if (l->state == LINK_CLOSING)
        return;
    mark_lost(l, "stopped", NULL);
    if (l->mosq == NULL) {
        l->lost = false;
        l->state = LINK_CLOSED;
        return;
    }
    link_after(l);
}

int bc_link_closed(const bc_link *l)
{
    return l->state == LINK_CLOSED || l->state == LINK_STOPPED;
}

void bc_link_stats_get(const bc_link *l, bc_link_stats *out)
{
    *out = l->stats;
}

void bc_link_free(bc_link *l)
{
    if (l == NULL)
        return;
    close_client(l);
    bc_reactor_timer_stop(l->r, &l->retry_timer);
    free(l->inflight);
    free(l);
}
