/*
 * reactor.h - the agent's single-threaded event loop: poll() over any
 * number of file descriptors, plus millisecond timers on the monotonic
 * clock (bc_clock_monotonic_ms) kept in a binary heap.
 *
 * One loop drives one camera or ten thousand simulated ones, so adding,
 * changing or removing a watcher or a timer is O(1) or O(log n), and there
 * is no FD_SETSIZE limit (poll, not select).
 *
 * Re-entrancy contract: every callback may add, modify or remove any fd
 * watcher and start or stop any timer, including its own, and may free the
 * memory its userdata points to once it has removed/stopped what refers to
 * it. A removed watcher never gets another callback, even for events
 * already collected in the same round (also when its fd number is reused by
 * a new watcher in that round).
 *
 * Stopping: bc_reactor_stop() is async-signal-safe (an atomic flag plus one
 * byte on an internal self-pipe that wakes poll), so a SIGTERM handler may
 * call it directly.
 */
#ifndef BC_AGENT_REACTOR_H
#define BC_AGENT_REACTOR_H

#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

typedef struct bc_reactor bc_reactor;

/* Interest and event bits. BC_REACTOR_HUP is only ever reported (never an
 * interest): the peer hung up, the fd has an error, or it is not open
 * (closed without bc_reactor_remove_fd - a bug); a handler should read to
 * EOF or remove the watcher. */
enum {
    BC_REACTOR_READ = 1u << 0,
    BC_REACTOR_WRITE = 1u << 1,
    BC_REACTOR_HUP = 1u << 2,
};

/* Called with the events that happened (subset of the interest, plus HUP). */
typedef void (*bc_reactor_fd_cb)(bc_reactor *r, int fd, unsigned events, void *userdata);

typedef struct bc_timer bc_timer;
typedef void (*bc_reactor_timer_cb)(bc_reactor *r, bc_timer *timer, void *userdata);

/* A timer is memory the caller owns (embed it in the struct it serves), so a
 * handle never dangles: stop is idempotent and a one-shot timer that fired
 * is simply inactive. The fields are private to the reactor. Never free or
 * re-init an active timer; stop it first. */
struct bc_timer {
    bc_reactor_timer_cb cb;
    void *userdata;
    int64_t deadline_ms; /* monotonic */
    int64_t repeat_ms;   /* 0: one-shot */
    uint64_t order;      /* start order, breaks deadline ties (FIFO) */
    size_t heap_index;   /* position in the heap, or BC_TIMER_INACTIVE */
};

#define BC_TIMER_INACTIVE ((size_t)-1)

/* Creates a reactor. BC_ERR_NOMEM, or BC_ERR_IO if the wakeup pipe cannot
 * be made. The caller frees it with bc_reactor_free(). */
bc_status bc_reactor_new(bc_reactor **out, bc_error *err);

/* Frees the reactor. Does not close watched fds or call any callback; the
 * caller's timers become inactive. NULL is a no-op. Not from a callback. */
void bc_reactor_free(bc_reactor *r);

/* Watches fd (>= 0) for the interest bits (READ, WRITE, both or none: 0
 * pauses it). The reactor does not own fd: remove the watcher before
 * closing it. BC_ERR_EXISTS if fd is already watched, BC_ERR_INVAL for a
 * negative fd or a NULL cb, BC_ERR_NOMEM. */
bc_status bc_reactor_add_fd(bc_reactor *r, int fd, unsigned interest, bc_reactor_fd_cb cb,
                            void *userdata, bc_error *err);

/* Changes the interest of a watched fd. BC_ERR_NOT_FOUND if not watched. */
bc_status bc_reactor_modify_fd(bc_reactor *r, int fd, unsigned interest);

/* Stops watching fd (it is not closed). BC_ERR_NOT_FOUND if not watched. */
bc_status bc_reactor_remove_fd(bc_reactor *r, int fd);

/* Number of fds watched by the caller (the internal wakeup pipe excluded). */
size_t bc_reactor_fd_count(const bc_reactor *r);

/* Prepares a caller-owned timer (inactive). */
void bc_timer_init(bc_timer *t, bc_reactor_timer_cb cb, void *userdata);

/* 1 while the timer is started and has not fired (a repeating timer stays
 * active until stopped), 0 otherwise. */
int bc_timer_active(const bc_timer *t);

/* Starts (or restarts) t to fire after_ms from now, then every repeat_ms
 * (0 = once). Negative after_ms counts as 0. A timer started during a
 * round fires in a later round, never in the one that started it, so a
 * 0 ms timer cannot starve the loop. BC_ERR_INVAL for a negative
 * repeat_ms or an uninitialised timer, BC_ERR_NOMEM. */
bc_status bc_reactor_timer_start(bc_reactor *r, bc_timer *t, int64_t after_ms, int64_t repeat_ms);

/* Cancels t; a no-op when it is not active. Safe from any callback,
 * including t's own. */
void bc_reactor_timer_stop(bc_reactor *r, bc_timer *t);

/* Number of active timers. */
size_t bc_reactor_timer_count(const bc_reactor *r);

/* The monotonic time (ms) the current round started with; timers started
 * in a callback count from it. */
int64_t bc_reactor_now_ms(const bc_reactor *r);

/* Runs one round: waits at most timeout_ms (-1: until something happens;
 * capped by the next timer), then dispatches ready fds and due timers.
 * BC_ERR_IO if poll fails (not for EINTR, which is a normal round). */
bc_status bc_reactor_run_once(bc_reactor *r, int timeout_ms, bc_error *err);

/* Runs rounds until bc_reactor_stop() is called (before or during the
 * run), then clears the stop request and returns BC_OK. BC_ERR_IO if poll
 * fails. */
bc_status bc_reactor_run(bc_reactor *r, bc_error *err);

/* Asks a running (or the next) bc_reactor_run to return after the current
 * round. Async-signal-safe; preserves errno. */
void bc_reactor_stop(bc_reactor *r);

#endif
