/*
 * ratelimit.h - token buckets against a misbehaving or hijacked camera.
 *
 * Each camera has two classes of traffic, each with a message bucket and a
 * byte bucket: ordinary messages (conn, state, health, event, ack, csr) and
 * upload chunks, which get a much higher byte allowance. A message passes
 * only when both buckets of its class hold enough tokens; only then are
 * tokens taken, so a refused message costs nothing. Pure arithmetic on a
 * caller-supplied monotonic time: no clock, no allocation, no lock.
 */
#ifndef BC_AUTH_RATELIMIT_H
#define BC_AUTH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef enum bc_rate_class {
    BC_RATE_MESSAGES = 0, /* everything but upload chunks */
    BC_RATE_UPLOAD,       /* devices/{id}/upload */
    BC_RATE_CLASS_COUNT
} bc_rate_class;

/* Rates per second and bucket sizes (burst). A rate of 0 disables that
 * bucket (no limit). */
typedef struct bc_rate_limits {
    double msgs_per_s, msgs_burst;
    double bytes_per_s, bytes_burst;
} bc_rate_limits;

typedef struct bc_bucket {
    double tokens;
    uint64_t last_ns; /* 0: never used, starts full */
} bc_bucket;

typedef struct bc_rate_state {
    bc_bucket msgs[BC_RATE_CLASS_COUNT];
    bc_bucket bytes[BC_RATE_CLASS_COUNT];
} bc_rate_state;

typedef enum bc_rate_verdict {
    BC_RATE_PASS = 0,
    BC_RATE_TOO_MANY, /* the message bucket is empty */
    BC_RATE_TOO_LARGE /* the byte bucket is short (or the message exceeds its burst) */
} bc_rate_verdict;

/* Refills the class's buckets up to now_ns and takes one message of
 * `bytes` bytes if both allow it. limits is indexed by class. */
bc_rate_verdict bc_ratelimit_take(bc_rate_state *state, const bc_rate_limits *limits,
                                  bc_rate_class cls, uint64_t now_ns, size_t bytes);

#endif
