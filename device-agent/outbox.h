/*
 * outbox.h - the camera's messages waiting for the broker's PUBACK, on disk.
 *
 * Events and command acks must reach the backend exactly in order and
 * survive a lost connection, a crash or a power cut. So each one is written
 * durably to DATA_DIR/outbox/<16-digit seq>.msg before bc_outbox_append
 * returns, stays there until bc_outbox_ack(seq) after its PUBACK, and is
 * published again (in seq order) after a reconnect or a restart. Delivery
 * is at least once: a message acked just before a power cut may come back;
 * the backend removes duplicates by the event seq inside the payload.
 * Telemetry (health) never goes through here.
 *
 * The outbox keeps all pending messages in memory too (bounded by its
 * limits), so iterating never re-reads the directory or the files.
 *
 * File format (all integers big endian):
 *   "BCOUTBX1" | u64 seq | u8 qos | 3 zero bytes | u32 topic_len |
 *   u32 payload_len | topic | payload | SHA-256 of all the preceding bytes
 */
#ifndef BC_AGENT_OUTBOX_H
#define BC_AGENT_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

#define BC_OUTBOX_DIR "outbox"
#define BC_OUTBOX_MAX_PAYLOAD (1024 * 1024) /* hard cap per message */
#define BC_OUTBOX_DEFAULT_MAX_MESSAGES 10000
#define BC_OUTBOX_DEFAULT_MAX_BYTES (16 * 1024 * 1024)

typedef struct bc_outbox bc_outbox;

typedef struct bc_outbox_limits {
    size_t max_messages; /* pending messages; 0 = BC_OUTBOX_DEFAULT_MAX_MESSAGES */
    size_t max_bytes;    /* sum of topic + payload bytes; 0 = BC_OUTBOX_DEFAULT_MAX_BYTES */
    uint64_t first_seq;  /* new messages get seqs >= this (and above any on disk); 0 = 1 */
} bc_outbox_limits;

/* A pending message. Pointers are borrowed from the outbox: valid until
 * this message is acked or the outbox is closed. */
typedef struct bc_outbox_msg {
    uint64_t seq;
    int qos;
    const char *topic; /* NUL-terminated */
    const uint8_t *payload;
    size_t payload_len;
} bc_outbox_msg;

/* What bc_outbox_open found on disk. */
typedef struct bc_outbox_load_report {
    size_t loaded;      /* valid messages */
    size_t tmp_removed; /* *.tmp leftovers of a crash mid-write, deleted */
    size_t quarantined; /* corrupt files renamed to <name>.bad (each logged) */
} bc_outbox_load_report;

/* Opens the outbox in dir (created with mode 0700 if missing; its parent
 * must exist) and loads it: leftovers "*.tmp" are deleted, a corrupt or
 * unreadable "*.msg" is renamed to "*.msg.bad" with a warning in the log
 * (never loaded, never blocking the rest), other names are ignored. Limits
 * may be NULL (defaults). A backlog over the limits (limits lowered since)
 * is kept whole; appends then fail until it drains. *report may be NULL.
 * BC_ERR_IO if the directory cannot be made or read, BC_ERR_NOMEM. */
bc_status bc_outbox_open(const char *dir, const bc_outbox_limits *limits, bc_outbox **out,
                         bc_outbox_load_report *report, bc_error *err);

/* Frees the in-memory index; the files stay. NULL is a no-op. */
void bc_outbox_close(bc_outbox *ob);

/* Appends a message (copied) and writes it durably before returning; *seq
 * (may be NULL) gets its seq. BC_ERR_INVAL for an empty topic, one of
 * BC_TOPIC_MAX bytes or more, or qos outside 0..2; BC_ERR_TOO_BIG when the
 * outbox is full (max_messages or max_bytes) or the payload is over
 * BC_OUTBOX_MAX_PAYLOAD - nothing is written, the caller should raise its
 * error flag; BC_ERR_IO if the write fails (nothing is pending then);
 * BC_ERR_NOMEM. */
bc_status bc_outbox_append(bc_outbox *ob, const char *topic, int qos, const void *payload,
                           size_t payload_len, uint64_t *seq, bc_error *err);

/* Number of pending messages and their topic + payload bytes. */
size_t bc_outbox_count(const bc_outbox *ob);
size_t bc_outbox_bytes(const bc_outbox *ob);

/* The seq the next append will get. */
uint64_t bc_outbox_next_seq(const bc_outbox *ob);

/* The oldest pending message. BC_ERR_NOT_FOUND when empty. */
bc_status bc_outbox_peek(const bc_outbox *ob, bc_outbox_msg *out);

/* The index-th oldest pending message (0 = oldest), for iterating in
 * order. BC_ERR_NOT_FOUND when index >= count. */
bc_status bc_outbox_at(const bc_outbox *ob, size_t index, bc_outbox_msg *out);

/* The pending message with this seq. BC_ERR_NOT_FOUND if none. */
bc_status bc_outbox_find(const bc_outbox *ob, uint64_t seq, bc_outbox_msg *out);

/* Delivered: deletes the message's file and drops it (any position).
 * BC_ERR_NOT_FOUND if no such seq is pending. BC_ERR_IO if the file cannot
 * be deleted: the message is dropped from memory anyway (it would only come
 * back once after a restart, a harmless duplicate). */
bc_status bc_outbox_ack(bc_outbox *ob, uint64_t seq, bc_error *err);

#endif
