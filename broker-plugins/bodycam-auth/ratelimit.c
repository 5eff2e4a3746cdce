/*
 * ratelimit.c - the token bucket arithmetic.
 *
 * tokens = min(burst, tokens + rate * elapsed). A fresh bucket starts full
 * so a camera that just connected can publish its birth, state and queued
 * events at once. Time going backwards (it should not: the caller passes a
 * monotonic clock) refills nothing.
 */
#include "broker-plugins/bodycam-auth/ratelimit.h"

static void refill(bc_bucket *b, double rate, double burst, uint64_t now_ns)
{
    if (b->last_ns == 0) {
        b->tokens = burst;
        b->last_ns = now_ns;
        return;
    }
    if (now_ns > b->last_ns) {
        double elapsed = (double)(now_ns - b->last_ns) / 1e9;
        b->tokens += rate * elapsed;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_ns = now_ns;
    }
}

bc_rate_verdict bc_ratelimit_take(bc_rate_state *state, const bc_rate_limits *limits,
                                  bc_rate_class cls, uint64_t now_ns, size_t bytes)
{
    if (state == NULL || limits == NULL || cls >= BC_RATE_CLASS_COUNT)
        return BC_RATE_TOO_MANY;
    const bc_rate_limits *l = &limits[cls];
    bc_bucket *m = &state->msgs[cls];
    bc_bucket *b = &state->bytes[cls];
    const double size = (double)bytes;

    if (l->msgs_per_s > 0)
        refill(m, l->msgs_per_s, l->msgs_burst, now_ns);
    if (l->bytes_per_s > 0)
        refill(b, l->bytes_per_s, l->bytes_burst, now_ns);
    if (l->msgs_per_s > 0 && m->tokens < 1.0)
        return BC_RATE_TOO_MANY;
    if (l->bytes_per_s > 0 && b->tokens < size)
        return BC_RATE_TOO_LARGE;
    if (l->msgs_per_s > 0)
        m->tokens -= 1.0;
    if (l->bytes_per_s > 0)
        b->tokens -= size;
    return BC_RATE_PASS;
}
