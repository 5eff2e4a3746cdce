/*
 * prebuffer.h - the pre-event ring buffer (design.md: default 30 s,
 * 0 = off), in memory only.
 *
 * On standby the video source writes into it continuously and the oldest
 * bytes are overwritten; when a recording starts, its content is drained
 * (oldest first) into the recording. It never touches the disk, and its
 * memory is wiped (OPENSSL_cleanse) when cleared, drained or freed, since
 * it holds plaintext video.
 */
#ifndef BC_AGENT_PREBUFFER_H
#define BC_AGENT_PREBUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

typedef struct bc_prebuffer bc_prebuffer;

/* Creates a ring of capacity bytes; 0 makes a buffer that keeps nothing.
 * BC_ERR_NOMEM. Free with bc_prebuffer_free(). */
bc_status bc_prebuffer_new(size_t capacity, bc_prebuffer **out);

/* Wipes and frees. NULL is a no-op. */
void bc_prebuffer_free(bc_prebuffer *pb);

/* Appends len bytes, overwriting the oldest when full (only the last
 * capacity bytes of a larger write are kept). */
void bc_prebuffer_write(bc_prebuffer *pb, const void *data, size_t len);

/* Bytes held now (<= capacity) and the capacity. */
size_t bc_prebuffer_len(const bc_prebuffer *pb);
size_t bc_prebuffer_capacity(const bc_prebuffer *pb);

/* Receives content; return BC_OK to continue. The pointer is valid only
 * during the call. */
typedef bc_status (*bc_prebuffer_sink)(const uint8_t *data, size_t len, void *userdata);

/* Hands the content to sink oldest first, in at most two pieces (never an
 * empty one), then wipes and empties the buffer - also when sink fails,
 * whose status is then returned (pre-event video is not kept for a retry).
 * BC_OK when empty (sink not called). */
bc_status bc_prebuffer_drain(bc_prebuffer *pb, bc_prebuffer_sink sink, void *userdata);

/* Wipes and empties. */
void bc_prebuffer_clear(bc_prebuffer *pb);

#endif
