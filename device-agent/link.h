/*
 * link.h - one camera's MQTT session: libmosquitto's non-threaded API driven
 * by the reactor (never mosquitto_loop / loop_start: they use select(), which
 * breaks past ~1,000 descriptors in one process).
 *
 * A connection attempt:
 *   1. asks the owner for a fresh session number (reserve_session: the owner
 *      persists it BEFORE anything goes on the wire, so a late last will of
 *      an old session can never carry the number of a live one);
 *   2. makes a fresh mosquitto client (client id = device id, MQTT v5, mutual
 *      TLS 1.3 with the CA, the device certificate and key) whose last will
 *      is the retained QoS 1 conn "offline" with that session number;
 *   3. connects asynchronously; the socket, the TLS handshake and every
 *      packet then move through the reactor (read/write interest from
 *      mosquitto_want_write; loop_misc on a 1 s timer for the keepalive).
 *   4. On CONNACK: the retained conn "online" birth (session, fw, recording
 *      key id), a subscription to the own devices/{id}/cmd/+, the owner's
 *      on_online (which publishes the retained state), then the outbox.
 * A lost, refused or timed-out attempt closes the client and schedules the
 * next one after a delay drawn uniformly from [0, min(max, min * 2^n)]
 * ("full jitter"; n counts the attempts since the last session that lasted
 * at least 10 s): a restarted broker is not stampeded by a fleet, and two
 * clients fighting over one client id slow down instead of flapping.
 * bc_link_reconnect ends a session on purpose and starts the next attempt
 * at once (identity rotation: bc_link_set_identity names the new files,
 * which every attempt loads afresh with its new client).
 *
 * The outbox (events and acks) is delivered in seq order, at most
 * `inflight_window` QoS 1 messages unacknowledged at a time; each is
 * deleted from the outbox when its PUBACK says the broker took it. After a
 * reconnect the oldest pending message goes first again (at least once: the
 * receiver drops duplicates by the event seq). Each attempt uses a new
 * mosquitto client, so libmosquitto never re-sends an old session's
 * messages on its own behind the outbox's back.
 *
 * What a PUBACK's reason code means for an outbox message (MQTT v5):
 *   < 0x80 except 0x10   delivered: deleted from the outbox;
 *   0x10 no matching subscribers   nobody (no gateway) took it: it stays,
 *                        delivery pauses (later messages wait, so the order
 *                        holds) and the oldest pending message is tried
 *                        again alone after a delay (growing per retry, from
 *                        max(backoff_min_ms, 1 s) up to backoff_max_ms),
 *                        then the full window resumes once one goes
 *                        through; one warning per episode;
 *   >= 0x80 (e.g. 0x87 not authorized: the broker's plugin refused the
 *                        payload)  the broker will never take it: dropped
 *                        with an ERROR line and on_outbox_refused (which
 *                        the camera counts in its health errors), so one
 *                        bad message cannot block the queue forever.
 *
 * Telemetry (health) and retained state go through bc_link_publish: sent
 * only while online, never queued.
 */
#ifndef BC_AGENT_LINK_H
#define BC_AGENT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device-agent/outbox.h"
#include "device-agent/reactor.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_LINK_DEFAULT_WINDOW 16
#define BC_LINK_MAX_WINDOW 1024
#define BC_LINK_PATH_MAX 4096

typedef struct bc_link bc_link;

typedef struct bc_link_config {
    char device_id[BC_DEVICE_ID_MAX + 1];
    char host[256];
    int port;
    char ca_file[BC_LINK_PATH_MAX];
    char cert_file[BC_LINK_PATH_MAX];
    char key_file[BC_LINK_PATH_MAX];
    int keepalive_s;            /* 5..65535 */
    int64_t backoff_min_ms;     /* >= 1 */
    int64_t backoff_max_ms;     /* >= backoff_min_ms */
    int64_t connect_timeout_ms; /* CONNACK must arrive within this, >= 100 */
    size_t inflight_window;     /* 1..BC_LINK_MAX_WINDOW; 0 = BC_LINK_DEFAULT_WINDOW */
    char fw_version[33];
} bc_link_config;

/* What the link tells its owner. Every callback is optional (NULL) except
 * reserve_session, and runs on the reactor's thread. */
typedef struct bc_link_callbacks {
    /* Next session number, made durable before it returns. A failure
     * (not BC_OK) postpones the attempt to the next backoff. */
    bc_status (*reserve_session)(void *userdata, uint64_t *session);
    /* The broker accepted us, the birth and the subscription are queued;
     * publish what must be retained (the state) now. */
    void (*on_online)(bc_link *link, void *userdata);
    /* The session ended (lost, refused, timed out, or closed by bc_link_stop). */
    void (*on_offline)(bc_link *link, const char *reason, void *userdata);
    /* An attempt ended before the broker accepted it (TCP, TLS, CONNACK
     * refused, no CONNACK in time); reason as in the log line. The next
     * attempt is already scheduled when this runs. */
    void (*on_attempt_failed)(bc_link *link, const char *reason, void *userdata);
    /* A message on one of our subscriptions; pointers valid during the call. */
    void (*on_message)(bc_link *link, const char *topic, const void *payload, size_t len,
                       void *userdata);
    /* The PUBACK (reason_code < 128: accepted) of a QoS 1 message sent with
     * bc_link_publish that asked for its mid (outbox messages are the
     * link's own and are not reported). */
    void (*on_published)(bc_link *link, int mid, int reason_code, void *userdata);
    /* The broker refused an outbox message for good (PUBACK reason >= 128)
     * and it was dropped from the outbox; text names the message and the
     * reason (for the health errors). */
    void (*on_outbox_refused)(bc_link *link, uint64_t seq, int reason_code, const char *text,
                              void *userdata);
} bc_link_callbacks;

/* Counters, for status lines and tests. */
typedef struct bc_link_stats {
    uint64_t attempts;        /* connection attempts started */
    uint64_t connects;        /* CONNACKs accepted */
    uint64_t outbox_sent;     /* outbox publishes (re-sends included) */
    uint64_t outbox_acked;    /* outbox messages deleted after their PUBACK */
    uint64_t outbox_refused;  /* PUBACKs with an error reason (message dropped) */
    uint64_t outbox_unrouted; /* PUBACKs 0x10 "no matching subscribers" (message kept) */
    uint64_t session;         /* session number of the current/last attempt */
} bc_link_stats;

/* Calls mosquitto_lib_init(); once per process, before any bc_link_new. */
bc_status bc_link_lib_init(bc_error *err);
void bc_link_lib_cleanup(void);

/* Creates a stopped link. cfg is copied; outbox and reactor are borrowed
 * and must outlive the link. BC_ERR_INVAL naming the bad field, BC_ERR_NOMEM.
 * Free with bc_link_free(). */
bc_status bc_link_new(bc_reactor *r, const bc_link_config *cfg, bc_outbox *outbox,
                      const bc_link_callbacks *cb, void *userdata, bc_link **out, bc_error *err);

/* Starts connecting (first attempt after first_delay_ms; 0 = at once, in a
 * later reactor round). BC_ERR_STATE if already started, BC_ERR_NOMEM. */
bc_status bc_link_start(bc_link *link, int64_t first_delay_ms, bc_error *err);

/* Sets the recording key id the birth message carries from the next
 * connection on (key ids are short: it is cut to BC_ID_MAX). */
void bc_link_set_recording_key_id(bc_link *link, const char *key_id);

/* Sets the certificate and key files the next attempts present (copied;
 * the current session keeps its own). BC_ERR_INVAL for an empty path,
 * BC_ERR_TOO_BIG for one over BC_LINK_PATH_MAX; then nothing changes. */
bc_status bc_link_set_identity(bc_link *link, const char *cert_file, const char *key_file,
                               bc_error *err);

/* Ends the session (DISCONNECT with will, like bc_link_stop) or the attempt
 * in progress, and starts the next attempt at once - no backoff, not
 * counted as a failure - e.g. to present a new identity. Waiting for a
 * retry: the attempt starts now. A no-op when stopped, closed or closing.
 * Safe from the link's own callbacks (the teardown runs after them). */
void bc_link_reconnect(bc_link *link);

/* 1 between an accepted CONNACK and the end of that session. */
int bc_link_online(const bc_link *link);

/* Sends what the outbox holds, up to the window; call after an append.
 * A no-op while offline. */
void bc_link_kick(bc_link *link);

/* Publishes now, outside the outbox. mid (may be NULL) gets the message id
 * for on_published (QoS 1). BC_ERR_UNAVAILABLE while offline, BC_ERR_INVAL
 * for a bad qos or topic, BC_ERR_TOO_BIG, BC_ERR_IO when libmosquitto
 * refuses it (err says why). */
bc_status bc_link_publish(bc_link *link, const char *topic, const void *payload, size_t len,
                          int qos, bool retain, int *mid, bc_error *err);

/* Subscribes to a topic filter (QoS 0..2) or ends that subscription, for
 * this session only: a new session starts with the command subscription
 * alone, so the owner subscribes again in on_online (retained messages
 * are delivered on each subscribe). BC_ERR_UNAVAILABLE while offline,
 * BC_ERR_INVAL (qos, NULL topic), BC_ERR_IO when libmosquitto refuses it. */
bc_status bc_link_subscribe(bc_link *link, const char *topic, int qos, bc_error *err);
bc_status bc_link_unsubscribe(bc_link *link, const char *topic, bc_error *err);

/* Ends the session cleanly: a DISCONNECT with reason "disconnect with will
 * message" (so the broker publishes our retained offline), and no
 * reconnect. The link reports closed (bc_link_closed) once the packet is
 * written or the connection is gone. Idempotent. */
void bc_link_stop(bc_link *link);

/* 1 when the link has no connection and will not make one (stopped). */
int bc_link_closed(const bc_link *link);

void bc_link_stats_get(const bc_link *link, bc_link_stats *out);

/* Full-jitter backoff: a delay in [0, min(max_ms, min_ms * 2^attempt)]
 * drawn with rand01 in [0, 1). Exposed for unit tests. */
int64_t bc_link_backoff_ms(int64_t min_ms, int64_t max_ms, unsigned attempt, double rand01);

/* Closes the connection at once (no DISCONNECT), removes every reactor
 * registration and frees. NULL is a no-op. Not from one of its callbacks. */
void bc_link_free(bc_link *link);

#endif
