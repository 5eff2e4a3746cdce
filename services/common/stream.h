/*
 * stream.h - Redis connections and Redis streams: the queues between the
 * gateway and every other service.
 *
 * bc_redis is one hiredis connection with a sticky error, like hiredis'
 * own redisContext: once a call failed on the connection (I/O error,
 * timeout, protocol error) the connection is closed and every call fails
 * fast with BC_ERR_UNAVAILABLE until bc_redis_connect() made a new one.
 * Connection attempts are spaced by exponential backoff with full jitter
 * (a delay drawn uniformly from [0, min(max, min * 2^failures)]), so a
 * restarted Redis is not stampeded by every service at once.
 *
 * Streams (the names are below; the contract of their entries is in
 * services/gateway/README.md):
 *
 *   bodycam:stream:<kind>   one per camera message kind, written by the
 *                           gateway: device, kind, payload (the raw JSON),
 *                           received_at (ms, gateway clock), topic.
 *                           health is bounded (MAXLEN ~); the others are
 *                           kept until processed.
 *   bodycam:stream:outbox   what services want published: topic, payload,
 *                           qos ("0"/"1"), retain ("0"/"1"); consumed by the
 *                           gateways in group "gateway".
 *
 * bc_stream_consumer reads one stream in a consumer group, at least once:
 *
 *   1. XGROUP CREATE <stream> <group> 0 MKSTREAM (BUSYGROUP is fine), on
 *      every new connection and after a NOGROUP error;
 *   2. its own pending entries first (XREADGROUP ... <id>, from "0" on):
 *      after a restart, after a RETRY verdict, after a rewind;
 *   3. every claim_interval_ms, entries another consumer left pending for
 *      claim_idle_ms (a consumer that died): XAUTOCLAIM, Redis >= 7.0;
 *   4. new entries: XREADGROUP ... BLOCK block_ms COUNT batch ... ">".
 *
 * Each entry goes to the handler; the verdict decides: DONE - XACK now;
 * DROP - XACK now, counted as dropped (an entry that can never be
 * processed: the handler logs why); DEFER - the handler acknowledges it
 * later itself with bc_stream_ack() (the gateway: after the broker's
 * PUBACK); RETRY - not processed (a dependency is down): it stays pending,
 * the rest of the batch is not dispatched, and after retry_delay_ms the
 * consumer starts again from its own pending entries, so order is kept.
 * An entry deleted from the stream while pending is acknowledged and
 * skipped. A consumer therefore sees an entry again after a crash, a
 * RETRY or a claim: handlers must be idempotent.
 *
 * Two ways to drive a consumer: bc_stream_consumer_poll() blocks up to
 * block_ms (a simple service's main loop), or bc_stream_consumer_step()
 * never blocks and fits a poll() loop over other descriptors (the gateway);
 * the connection of a consumer driven by step() must not be used for
 * anything else while bc_stream_consumer_fd() >= 0.
 *
 * Memory: entries, their ids and fields are borrowed from a redisReply and
 * valid only during the handler call.
 */
#ifndef BC_COMMON_STREAM_H
#define BC_COMMON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "proto/status.h"
#include "proto/topic.h"

/* ---- names: the Redis stream contract between the services ---- */

#define BC_STREAM_CONN "bodycam:stream:conn"
#define BC_STREAM_STATE "bodycam:stream:state"
#define BC_STREAM_HEALTH "bodycam:stream:health"
#define BC_STREAM_EVENT "bodycam:stream:event"
#define BC_STREAM_ACK "bodycam:stream:ack"
#define BC_STREAM_UPLOAD "bodycam:stream:upload"
#define BC_STREAM_CSR "bodycam:stream:csr"
#define BC_STREAM_OUTBOX "bodycam:stream:outbox"
#define BC_STREAM_OUTBOX_GROUP "gateway"

/* Fields of a camera message entry. */
#define BC_FIELD_DEVICE "device"
#define BC_FIELD_KIND "kind"
#define BC_FIELD_PAYLOAD "payload"
#define BC_FIELD_RECEIVED_AT "received_at"
#define BC_FIELD_TOPIC "topic"
/* Fields of an outbox entry (payload as above). */
#define BC_FIELD_QOS "qos"
#define BC_FIELD_RETAIN "retain"

#define BC_STREAM_NAME_MAX 127 /* bytes of a stream, group or consumer name */
#define BC_STREAM_ID_MAX 47    /* "<ms>-<seq>": two 64-bit numbers and a dash */

/* The stream of a camera message kind (CONN..CSR); NULL for other kinds. */
const char *bc_stream_for_kind(bc_topic_kind kind);

/* ---- bc_redis: one connection with a sticky error ---- */

typedef struct bc_redis_config {
    char host[256];
    int port;
    int64_t timeout_ms;     /* connect and per-command timeout, >= 1 */
    int64_t backoff_min_ms; /* first reconnect delay cap, >= 1 */
    int64_t backoff_max_ms; /* largest delay cap, >= backoff_min_ms */
} bc_redis_config;

typedef struct bc_redis {
    bc_redis_config cfg;
    redisContext *ctx;       /* NULL while not connected */
    bc_status err;           /* sticky: BC_OK while usable */
    char errstr[256];        /* why the last connection ended or attempt failed */
    unsigned failures;       /* consecutive failed attempts (backoff exponent) */
    int64_t next_attempt_ms; /* monotonic: bc_redis_connect waits until then */
    uint64_t generation;     /* +1 per successful connect (a consumer sees a new link) */
} bc_redis;

/* Fills r (not connected yet). BC_ERR_INVAL names a bad config field. */
bc_status bc_redis_init(bc_redis *r, const bc_redis_config *cfg, bc_error *err);

/* Connects unless connected. BC_OK when connected (now or before);
 * BC_ERR_UNAVAILABLE when the backoff delay has not passed yet or the
 * attempt failed (the next attempt is then scheduled; err says why). */
bc_status bc_redis_connect(bc_redis *r, bc_error *err);

/* Like bc_redis_connect, but ignores the backoff delay. */
bc_status bc_redis_connect_now(bc_redis *r, bc_error *err);

bool bc_redis_connected(const bc_redis *r);

/* Milliseconds until bc_redis_connect may try again (0: now). */
int64_t bc_redis_retry_in_ms(const bc_redis *r);

/* The delay cap before attempt number failures+1: min(max, min * 2^failures).
 * The delay used is uniform in [0, cap] (full jitter). Exposed for tests. */
int64_t bc_redis_backoff_cap_ms(int64_t min_ms, int64_t max_ms, unsigned failures);

/* Closes the connection on purpose, sets the sticky error (status, reason)
 * and schedules the next attempt after a backoff delay. */
void bc_redis_fail(bc_redis *r, bc_status status, const char *reason);

/* Closes the connection (no backoff, no error); r may be reused. */
void bc_redis_close(bc_redis *r);

/* Runs one command given as argc binary-safe arguments (lens may be NULL
 * for NUL-terminated strings). On BC_OK *out is the reply (never an error
 * reply); the caller frees it with freeReplyObject(). Failures (*out NULL):
 * BC_ERR_UNAVAILABLE - not connected, or the connection failed now (it is
 *   closed; reconnect later), or Redis answered LOADING / BUSY / MASTERDOWN
 *   (the connection is kept);
 * BC_ERR_STATE - any other error reply (WRONGTYPE, NOGROUP, ...), its text
 *   in err; the connection is kept. */
bc_status bc_redis_command(bc_redis *r, int argc, const char **argv, const size_t *lens,
                           redisReply **out, bc_error *err);

/* Pipelining: queue a command (nothing is sent yet) ... */
bc_status bc_redis_append(bc_redis *r, int argc, const char **argv, const size_t *lens,
                          bc_error *err);
/* ... and read the replies in order; statuses as bc_redis_command. */
bc_status bc_redis_reply(bc_redis *r, redisReply **out, bc_error *err);

/* ---- stream commands ---- */

/* One field of an entry to add: name and a binary-safe value. */
typedef struct bc_stream_field {
    const char *name;
    const void *value;
    size_t len;
} bc_stream_field;

/* XADD stream [MAXLEN ~ maxlen] * field value ... (maxlen 0: unbounded).
 * id_out (may be NULL) gets the new entry's id. Statuses as
 * bc_redis_command; BC_ERR_INVAL for no fields or a bad stream name. */
bc_status bc_stream_add(bc_redis *r, const char *stream, int64_t maxlen,
                        const bc_stream_field *fields, size_t count,
                        char id_out[BC_STREAM_ID_MAX + 1], bc_error *err);

/* The same XADD queued on a pipeline (bc_redis_append); read its result
 * with bc_stream_add_reply. At most 32 fields. */
bc_status bc_stream_add_append(bc_redis *r, const char *stream, int64_t maxlen,
                               const bc_stream_field *fields, size_t count, bc_error *err);
bc_status bc_stream_add_reply(bc_redis *r, char id_out[BC_STREAM_ID_MAX + 1], bc_error *err);

/* Queues a message for the gateway to publish: XADD bodycam:stream:outbox
 * with topic, payload (NUL-terminated), qos (0/1) and retain. Statuses as
 * bc_stream_add. The outbox pattern: a service never talks to the broker. */
bc_status bc_outbox_add(bc_redis *r, const char *topic, const char *payload, int qos, bool retain,
                        bc_error *err);

/* bc_outbox_add with a binary payload of len bytes (0: an empty payload,
 * which clears a retained message; payload may then be NULL). */
bc_status bc_outbox_add_bin(bc_redis *r, const char *topic, const void *payload, size_t len,
                            int qos, bool retain, bc_error *err);

/* XGROUP CREATE stream group start MKSTREAM; an existing group is BC_OK. */
bc_status bc_stream_group_create(bc_redis *r, const char *stream, const char *group,
                                 const char *start_id, bc_error *err);

/* XACK stream group id...; *acked (may be NULL) gets how many were pending. */
bc_status bc_stream_ack(bc_redis *r, const char *stream, const char *group, const char *const *ids,
                        size_t count, int64_t *acked, bc_error *err);

/* ---- the consumer ---- */

typedef struct bc_stream_entry {
    const char *stream;
    const char *id;       /* borrowed: valid during the handler call */
    const redisReply *kv; /* array: name, value, name, value, ... */
    bool redelivered;     /* from this consumer's own pending list */
    bool claimed;         /* taken over from another consumer (XAUTOCLAIM) */
} bc_stream_entry;

/* The value of field name (binary-safe, *len its length; len may be NULL)
 * or NULL when the entry has no such field. Borrowed like the entry. */
const char *bc_stream_entry_field(const bc_stream_entry *e, const char *name, size_t *len);

typedef enum bc_stream_verdict {
    BC_STREAM_DONE,  /* processed: XACK now */
    BC_STREAM_DROP,  /* never processable: XACK now, counted as dropped */
    BC_STREAM_DEFER, /* the handler will bc_stream_ack() it itself */
    BC_STREAM_RETRY, /* not processed: stays pending, retried after retry_delay_ms */
} bc_stream_verdict;

typedef bc_stream_verdict (*bc_stream_handler)(const bc_stream_entry *entry, void *userdata);

typedef struct bc_stream_consumer_config {
    char stream[BC_STREAM_NAME_MAX + 1];
    char group[BC_STREAM_NAME_MAX + 1];
    char consumer[BC_STREAM_NAME_MAX + 1]; /* fixed per instance: its pending list */
    size_t batch;                          /* COUNT, 1..10000 */
    int64_t block_ms;                      /* BLOCK of the read for new entries, 1..60000 */
    int64_t claim_idle_ms;                 /* claim others' entries idle this long; 0 = never */
    int64_t claim_interval_ms;             /* how often to look for them, >= 1 when claiming */
    int64_t retry_delay_ms;                /* pause after a RETRY verdict, >= 0 */
} bc_stream_consumer_config;

typedef struct bc_stream_stats {
    uint64_t delivered; /* handler calls */
    uint64_t acked;     /* DONE + DROP + deleted entries, XACKed by the consumer */
    uint64_t dropped;   /* DROP verdicts */
    uint64_t deferred;  /* DEFER verdicts */
    uint64_t retried;   /* RETRY verdicts */
    uint64_t claimed;   /* entries taken over from other consumers */
    uint64_t deleted;   /* pending entries that were no longer in the stream */
} bc_stream_stats;

typedef struct bc_stream_consumer {
    bc_stream_consumer_config cfg;
    bc_redis *redis; /* borrowed; see the top of this file */
    bc_stream_handler handler;
    void *userdata;
    bc_stream_stats stats;
    /* state */
    uint64_t generation; /* redis generation the group was made on */
    bool group_ready;
    bool pending_pass; /* reading own pending entries */
    char pending_cursor[BC_STREAM_ID_MAX + 1];
    char claim_cursor[BC_STREAM_ID_MAX + 1];
    int64_t next_claim_ms;    /* monotonic */
    int64_t paused_until_ms;  /* monotonic, after a RETRY */
    bool reading;             /* a blocking read is outstanding */
    int64_t read_deadline_ms; /* monotonic: the read's reply is overdue after */
} bc_stream_consumer;

/* Fills c for stream/group/consumer of cfg on the connection redis (which
 * the consumer borrows). BC_ERR_INVAL names a bad config field. Nothing is
 * sent to Redis yet. */
bc_status bc_stream_consumer_init(bc_stream_consumer *c, bc_redis *redis,
                                  const bc_stream_consumer_config *cfg, bc_stream_handler handler,
                                  void *userdata, bc_error *err);

/* One round, blocking up to block_ms for new entries: (re)connects if the
 * backoff allows, makes the group, then dispatches one batch of pending,
 * claimed or new entries. BC_OK also when nothing arrived. When Redis is
 * unavailable: BC_ERR_UNAVAILABLE, after sleeping until the next
 * connection attempt is due (at most block_ms), so a loop around it never
 * spins. BC_ERR_STATE for an error reply other than NOGROUP. */
bc_status bc_stream_consumer_poll(bc_stream_consumer *c, bc_error *err);

/* One non-blocking step for a poll() loop. When a read is outstanding,
 * reads what arrived if revents has POLLIN (or POLLHUP/POLLERR) and
 * dispatches the reply once complete; fails the connection when the reply
 * is overdue (block_ms + the connection's timeout). Otherwise does one
 * synchronous batch (pending or claimed entries) or, when there is none,
 * sends the blocking read for new entries. *dispatched (may be NULL) gets
 * the number of handler calls; when it is > 0 call step again soon.
 * Statuses as bc_stream_consumer_poll, without the sleep. */
bc_status bc_stream_consumer_step(bc_stream_consumer *c, short revents, size_t *dispatched,
                                  bc_error *err);

/* The descriptor to watch for POLLIN while a read is outstanding, else -1. */
int bc_stream_consumer_fd(const bc_stream_consumer *c);

/* Milliseconds the caller may wait before calling step again when the
 * descriptor stays quiet (the read deadline, the retry pause, the next
 * claim or reconnection); never negative. */
int64_t bc_stream_consumer_timeout_ms(const bc_stream_consumer *c);

/* Re-read this consumer's own pending entries from the start at the next
 * round and lift a retry pause (the gateway: after a reconnect to the
 * broker, to publish again what was never confirmed). */
void bc_stream_consumer_rewind(bc_stream_consumer *c);

#endif
