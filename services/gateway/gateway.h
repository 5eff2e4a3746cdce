/*
 * gateway.h - the gateway's configuration, its parts and how they meet.
 *
 *   main.c     the option table and the daemon skeleton
 *   gateway.c  the one-thread poll loop: MQTT socket, outbox read, timers,
 *              the order of work in a pass, status and statistics
 *   mqtt.c     the MQTT session (libmosquitto driven without its loop,
 *              PUBACKs held until the loop says so)
 *   ingest.c   camera message -> validation -> XADD (pipelined)
 *   outbox.c   outbox entry -> PUBLISH -> confirmation -> XACK
 *
 * The delivery guarantees these parts give together are stated in
 * README.md ("Guarantees"); the mechanism that makes "PUBACK only after
 * XADD" hold is described at the top of mqtt.c.
 */
#ifndef BC_GATEWAY_H
#define BC_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/message.h"
#include "proto/status.h"

#define GW_PATH_MAX 4096
#define GW_INSTANCE_MAX 32

typedef struct gw_config {
    char instance[GW_INSTANCE_MAX + 1]; /* fixed per gateway: client id and consumer name */
    char mqtt_host[256];
    int64_t mqtt_port;
    char ca_file[GW_PATH_MAX];
    char cert_file[GW_PATH_MAX];
    char key_file[GW_PATH_MAX];
    char share_group[64];
    int64_t keepalive_s;
    int64_t session_expiry_s;
    int64_t receive_maximum;
    int64_t connect_timeout_ms;
    char redis_host[256];
    int64_t redis_port;
    int64_t redis_timeout_ms;
    int64_t backoff_min_ms;
    int64_t backoff_max_ms;
    int64_t health_maxlen;
    int64_t outbox_batch;
    int64_t outbox_window;
    int64_t outbox_block_ms;
    int64_t outbox_claim_idle_ms;
    int64_t outbox_claim_interval_ms;
    int64_t stats_interval_s;
    int64_t invalid_log_limit;
    int leave_group_on_stop; /* bool: unsubscribe and drain before stopping */
    int64_t drain_ms;
    char log_level[16];
} gw_config;

/* ---- mqtt.c: the session ---- */

typedef enum gw_mqtt_state {
    GW_MQTT_DOWN,        /* no client; next attempt at next_attempt_ms */
    GW_MQTT_CONNECTING,  /* TCP/TLS/CONNECT in progress */
    GW_MQTT_SUBSCRIBING, /* CONNACK ok, SUBSCRIBE sent */
    GW_MQTT_ONLINE,      /* subscribed: ingest and outbox run */
} gw_mqtt_state;

struct mosquitto;
struct gateway;

typedef struct gw_mqtt {
    const gw_config *cfg;
    struct gateway *gw; /* callbacks go to gateway.c */
    struct mosquitto *mosq;
    gw_mqtt_state state;
    int fd;
    int64_t connect_deadline_ms; /* monotonic */
    int64_t next_attempt_ms;     /* monotonic */
    int64_t next_misc_ms;        /* monotonic: keepalive */
    unsigned failures;           /* consecutive failed attempts (backoff) */
    bool lost;                   /* set by callbacks; torn down after the libmosquitto call */
    bool left;                   /* UNSUBACK of the shared subscription arrived */
    char lost_reason[160];
    char client_id[64];
    uint64_t connects; /* sessions that reached ONLINE */
} gw_mqtt;

bc_status gw_mqtt_init(gw_mqtt *m, const gw_config *cfg, struct gateway *gw, bc_error *err);
/* Starts a connection attempt (blocking TCP connect; TLS and MQTT then go
 * through the poll loop). BC_ERR_UNAVAILABLE on failure (next attempt
 * scheduled after a backoff delay). */
bc_status gw_mqtt_open(gw_mqtt *m, bc_error *err);
/* poll() events wanted on m->fd (0 when there is no socket). */
short gw_mqtt_events(const gw_mqtt *m);
/* Reads what arrived: handshake, CONNACK, SUBACK, PUBLISH (-> ingest),
 * PUBACK (-> outbox). Does not write: see gw_mqtt_flush. */
void gw_mqtt_read(gw_mqtt *m);
/* true when a read would find input at once: bytes TLS holds decrypted or
 * buffered, or the socket is readable (poll with no wait). false during
 * the handshake and without a session. */
bool gw_mqtt_input_waiting(const gw_mqtt *m);
/* true when TLS holds input the socket no longer shows (decrypted bytes, or
 * a whole record read ahead): poll() would not wake for it. A partial
 * record is not input (its rest comes through the socket). */
bool gw_mqtt_tls_buffered(const gw_mqtt *m);
/* Writes queued packets (PUBACKs, PUBLISHes, PINGREQ). */
void gw_mqtt_flush(gw_mqtt *m);
/* Keepalive and connect timeout; call about once a second. */
void gw_mqtt_misc(gw_mqtt *m);
/* Marks the session lost (torn down by gw_mqtt_settle). */
void gw_mqtt_mark_lost(gw_mqtt *m, const char *reason);
/* Tears a lost session down WITHOUT writing anything still queued (so
 * held PUBACKs are never sent) and schedules the next attempt. Returns
 * true when a session ended now. */
bool gw_mqtt_settle(gw_mqtt *m);
/* Leaves the share group (UNSUBSCRIBE); m->left once the broker agreed. */
void gw_mqtt_leave(gw_mqtt *m);
/* Clean stop: DISCONNECT (the session stays on the broker), then close. */
void gw_mqtt_close(gw_mqtt *m);
int64_t gw_mqtt_timeout_ms(const gw_mqtt *m);
/* "down", "connecting", "subscribing", "online". */
const char *gw_mqtt_state_name(gw_mqtt_state s);

/* ---- ingest.c: camera messages into streams ---- */

typedef enum gw_invalid_reason {
    GW_INVALID_TOPIC,
    GW_INVALID_PAYLOAD,
    GW_INVALID_DEVICE,
    GW_INVALID_COUNT
} gw_invalid_reason;

typedef struct gw_ingest {
    const gw_config *cfg;
    bc_redis *redis; /* the gateway's command connection */
    bc_message *scratch;
    size_t queued; /* XADDs on the pipeline whose replies are not read yet */
    bool failed;   /* Redis failed during this batch: drop the session */
    char fail_reason[200];
    uint64_t received, stored, invalid[GW_INVALID_COUNT], per_kind[BC_TOPIC_KIND_COUNT];
    uint64_t logged_invalid, suppressed_invalid;
} gw_ingest;

bc_status gw_ingest_init(gw_ingest *in, const gw_config *cfg, bc_redis *redis, bc_error *err);
void gw_ingest_free(gw_ingest *in);
/* One message from the broker (called from the MQTT message callback). */
void gw_ingest_message(gw_ingest *in, const char *topic, const void *payload, size_t len);
/* Reads the replies of the queued XADDs. true when every message since the
 * last flush is in its stream (then PUBACKs may go); false otherwise
 * (in->failed, in->fail_reason), and the batch state is reset. */
bool gw_ingest_flush(gw_ingest *in);
/* New statistics period: allow invalid-message log lines again. */
void gw_ingest_new_period(gw_ingest *in);

/* ---- outbox.c: the outbox stream to MQTT ---- */

typedef struct gw_inflight {
    int mid;
    char id[BC_STREAM_ID_MAX + 1];
} gw_inflight;

typedef struct gw_outbox {
    const gw_config *cfg;
    bc_redis redis;      /* its own connection: the blocking read lives on it */
    bc_redis *ack_redis; /* XACKs go on the command connection */
    bc_stream_consumer consumer;
    struct mosquitto *mosq; /* the current session while ONLINE, else NULL */
    gw_inflight *inflight;  /* published, confirmation pending */
    size_t ninflight;
    char (*acks)[BC_STREAM_ID_MAX + 1]; /* confirmed, XACK pending */
    size_t nacks;
    size_t window;
    bool failing; /* the last step failed (logged once) */
    uint64_t published, confirmed, refused, invalid, acked;
} gw_outbox;

bc_status gw_outbox_init(gw_outbox *o, const gw_config *cfg, bc_redis *ack_redis, bc_error *err);
void gw_outbox_free(gw_outbox *o);
/* A session reached ONLINE (mosq) or ended (NULL): unconfirmed entries are
 * forgotten and will be read again from the pending list. */
void gw_outbox_set_session(gw_outbox *o, struct mosquitto *mosq);
/* The broker confirmed mid (PUBACK, or written for QoS 0). */
void gw_outbox_confirmed(gw_outbox *o, int mid, int reason_code);
/* XACKs what was confirmed. */
void gw_outbox_flush_acks(gw_outbox *o);
/* One consumer step if there is room in the window (or the read's fd has
 * news). *more is set when it should run again without waiting. */
void gw_outbox_step(gw_outbox *o, short revents, bool *more);
int gw_outbox_fd(const gw_outbox *o);
int64_t gw_outbox_timeout_ms(const gw_outbox *o);

/* ---- gateway.c ---- */

typedef struct gateway {
    gw_config cfg;
    bc_redis redis; /* commands: XADD, XACK, status */
    gw_mqtt mqtt;
    gw_ingest ingest;
    gw_outbox outbox;
    int64_t next_stats_ms;
    int64_t started_ms;
    uint64_t redis_failures;
    bool redis_was_up;
    bool status_dirty; /* the status hash must be written (from the loop, never a callback) */
    int64_t online_since_ms;
    int64_t next_status_ms;
    int64_t last_message_ms; /* monotonic: the last camera message */
    bool leaving;            /* stopping: unsubscribed, draining */
    bool input_left;         /* the last read stopped at its limit with input waiting */
    uint64_t status_sum;     /* counters at the last status write */
} gateway;

/* Callbacks from mqtt.c. */
void gateway_on_online(gateway *g);
void gateway_on_offline(gateway *g, const char *reason);
void gateway_on_message(gateway *g, const char *topic, const void *payload, size_t len);
void gateway_on_publish(gateway *g, int mid, int reason_code);

/* The loop; returns an exit code (0 after a stop request). */
int gateway_run(gateway *g);

#endif
