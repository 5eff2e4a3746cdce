/*
 * clock.h - the one clock of a process.
 *
 * Every "what time is it" in a daemon goes through bc_clock_now_ms(), so
 * that a test can move a running stack 28 days on without waiting: when the
 * environment variable BODYCAM_CLOCK_FILE names a file, its content (an
 * integer, milliseconds) is added to the real time. The file is re-read at
 * most every 100 ms of monotonic time, so calling the clock on a hot path
 * costs a clock_gettime, not a syscall storm. A missing or malformed file
 * means no offset. Unit tests replace the source with bc_clock_set_source().
 *
 * Monotonic time (timeouts, backoff, rates) is never offset.
 */
#ifndef BC_COMMON_CLOCK_H
#define BC_COMMON_CLOCK_H

#include <stdint.h>

/* Wall-clock milliseconds since the Unix epoch, plus the test offset. */
int64_t bc_clock_now_ms(void);

/* Monotonic milliseconds (arbitrary origin), for durations. */
int64_t bc_clock_monotonic_ms(void);

/* Replaces the wall-clock source (NULL restores the real one). */
void bc_clock_set_source(int64_t (*source)(void));

#endif
