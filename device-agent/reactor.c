/*
 * reactor.c - poll() loop with fd watchers and a timer heap.
 *
 * Data layout:
 *
 *   watches[fd]   one slot per fd number (grows to the highest fd seen):
 *                 callback, userdata, interest, a watch id (0 = free) and
 *                 the index of the fd's entry in pfds.
 *   pfds[]        the dense poll array handed to poll(); removal swaps the
 *                 last entry into the hole, so add/modify/remove are O(1).
 *                 A paused fd (interest 0) is stored as -fd-1, which poll
 *                 ignores, so a hung-up but paused fd cannot spin the loop.
 *   heap[]        active timers ordered by (deadline, start order); each
 *                 timer knows its heap index, so stop is O(log n).
 *
 * A round: poll; copy the ready entries (fd, revents, watch id) into
 * ready[]; dispatch them, skipping any whose slot no longer holds the same
 * watch id (removed, or removed and the fd number reused, by an earlier
 * callback); then fire due timers. Only timers started before the round
 * fire in it (their start order is below the round's limit): a callback
 * that restarts a timer at 0 ms cannot keep the loop in one round forever.
 * A repeating timer is taken off the heap while its callback runs
 * (heap_index = TIMER_FIRING, r->firing = t); if the callback neither stops
 * nor restarts it, it is put back one period later. Nothing touches a timer
 * after its callback unless it is still r->firing, so a callback may stop
 * its timer and free the memory that holds it.
 *
 * Stop: a sig_atomic_t flag plus one byte written to a non-blocking
 * self-pipe whose read end is always in pfds, so a signal handler can end
 * a poll() that waits without a timeout.
 */
#include "device-agent/reactor.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fd.h"
#include "common/log.h"

#define TIMER_FIRING ((size_t)-2)

typedef struct fd_watch {
    bc_reactor_fd_cb cb;
    void *userdata;
    uint64_t id; /* 0: free slot */
    size_t pindex;
    unsigned interest;
} fd_watch;

typedef struct ready_fd {
    int fd;
    short revents;
    uint64_t id;
} ready_fd;

struct bc_reactor {
    fd_watch *watches;
    size_t watch_cap;
    struct pollfd *pfds;
    size_t pfd_count, pfd_cap;
    ready_fd *ready;
    size_t ready_cap;
    uint64_t next_watch_id;

    bc_timer **heap;
    size_t heap_count, heap_cap;
    uint64_t next_order;
    bc_timer *firing;

    int64_t now_ms;
    int wake_rd, wake_wr;
    volatile sig_atomic_t stop_requested;
};

/* ---- fd watchers ---- */

static int pfd_fd(const struct pollfd *p)
{
    return p->fd >= 0 ? p->fd : -p->fd - 1;
}

static void pfd_set(struct pollfd *p, int fd, unsigned interest)
{
    p->fd = interest == 0 ? -fd - 1 : fd;
    p->events = (short)(((interest & BC_REACTOR_READ) ? POLLIN : 0) |
                        ((interest & BC_REACTOR_WRITE) ? POLLOUT : 0));
    p->revents = 0;
}

static fd_watch *watch_get(const bc_reactor *r, int fd)
{
    if (fd < 0 || (size_t)fd >= r->watch_cap || r->watches[fd].id == 0)
        return NULL;
    return &r->watches[fd];
}

/* Returns array resized to hold at least need elements (doubling), or NULL
 * when memory runs out (array is then unchanged and still valid). */
static void *grow_array(void *array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return array;
    size_t n = *cap == 0 ? 16 : *cap;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            return NULL;
        n *= 2;
    }
    void *p = realloc(array, n * elem);
    if (p == NULL)
        return NULL;
    *cap = n;
    return p;
}

static int grow_watches(bc_reactor *r, int fd)
{
    size_t old = r->watch_cap;
    fd_watch *w = grow_array(r->watches, &r->watch_cap, (size_t)fd + 1, sizeof(fd_watch));
    if (w == NULL)
        return -1;
    r->watches = w;
    memset(r->watches + old, 0, (r->watch_cap - old) * sizeof(fd_watch));
    return 0;
}

static int grow_pfds(bc_reactor *r, size_t need)
{
    struct pollfd *p = grow_array(r->pfds, &r->pfd_cap, need, sizeof(struct pollfd));
    if (p == NULL)
        return -1;
    r->pfds = p;
    return 0;
}

bc_status bc_reactor_add_fd(bc_reactor *r, int fd, unsigned interest, bc_reactor_fd_cb cb,
                            void *userdata, bc_error *err)
{
    if (fd < 0 || cb == NULL)
        return bc_fail(err, BC_ERR_INVAL, "reactor: fd %d or its callback is invalid", fd);
    if (watch_get(r, fd) != NULL)
        return bc_fail(err, BC_ERR_EXISTS, "reactor: fd %d is already watched", fd);
    if (grow_watches(r, fd) != 0 || grow_pfds(r, r->pfd_count + 1) != 0)
        return bc_fail(err, BC_ERR_NOMEM, "reactor: no memory to watch fd %d", fd);
    fd_watch *w = &r->watches[fd];
    w->cb = cb;
    w->userdata = userdata;
    w->interest = interest & (BC_REACTOR_READ | BC_REACTOR_WRITE);
    w->id = r->next_watch_id++;
    w->pindex = r->pfd_count++;
    pfd_set(&r->pfds[w->pindex], fd, w->interest);
    return BC_OK;
}

bc_status bc_reactor_modify_fd(bc_reactor *r, int fd, unsigned interest)
{
    fd_watch *w = watch_get(r, fd);
    if (w == NULL)
        return BC_ERR_NOT_FOUND;
    w->interest = interest & (BC_REACTOR_READ | BC_REACTOR_WRITE);
    pfd_set(&r->pfds[w->pindex], fd, w->interest);
    return BC_OK;
}

bc_status bc_reactor_remove_fd(bc_reactor *r, int fd)
{
    fd_watch *w = watch_get(r, fd);
    if (w == NULL)
        return BC_ERR_NOT_FOUND;
    size_t hole = w->pindex;
    size_t last = r->pfd_count - 1;
    if (hole != last) {
        r->pfds[hole] = r->pfds[last];
        r->watches[pfd_fd(&r->pfds[hole])].pindex = hole;
    }
    r->pfd_count--;
    memset(w, 0, sizeof(*w));
    return BC_OK;
}

size_t bc_reactor_fd_count(const bc_reactor *r)
{
    return r->pfd_count - 1; /* the wakeup pipe */
}

/* ---- timers: a binary min-heap on (deadline, order) ---- */

static int timer_before(const bc_timer *a, const bc_timer *b)
{
    if (a->deadline_ms != b->deadline_ms)
        return a->deadline_ms < b->deadline_ms;
    return a->order < b->order;
}

static void heap_place(bc_reactor *r, size_t i, bc_timer *t)
{
    r->heap[i] = t;
    t->heap_index = i;
}

static void heap_sift_up(bc_reactor *r, size_t i)
{
    bc_timer *t = r->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, r->heap[parent]))
            break;
        heap_place(r, i, r->heap[parent]);
        i = parent;
    }
    heap_place(r, i, t);
}

static void heap_sift_down(bc_reactor *r, size_t i)
{
    bc_timer *t = r->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= r->heap_count)
            break;
        if (child + 1 < r->heap_count && timer_before(r->heap[child + 1], r->heap[child]))
            child++;
        if (!timer_before(r->heap[child], t))
            break;
        heap_place(r, i, r->heap[child]);
        i = child;
    }
    heap_place(r, i, t);
}

static int heap_push(bc_reactor *r, bc_timer *t)
{
    bc_timer **heap = grow_array(r->heap, &r->heap_cap, r->heap_count + 1, sizeof(bc_timer *));
    if (heap == NULL)
        return -1;
    r->heap = heap;
    heap_place(r, r->heap_count++, t);
    heap_sift_up(r, t->heap_index);
    return 0;
}

/* Removes the timer at index i; the caller sets its new heap_index. */
static void heap_remove(bc_reactor *r, size_t i)
{
    bc_timer *last = r->heap[--r->heap_count];
    if (i == r->heap_count)
        return;
    heap_place(r, i, last);
    if (i > 0 && timer_before(last, r->heap[(i - 1) / 2]))
        heap_sift_up(r, i);
    else
        heap_sift_down(r, i);
}

void bc_timer_init(bc_timer *t, bc_reactor_timer_cb cb, void *userdata)
{
    memset(t, 0, sizeof(*t));
    t->cb = cb;
    t->userdata = userdata;
    t->heap_index = BC_TIMER_INACTIVE;
}

int bc_timer_active(const bc_timer *t)
{
    return t->heap_index != BC_TIMER_INACTIVE;
}

void bc_reactor_timer_stop(bc_reactor *r, bc_timer *t)
{
    if (t->heap_index == BC_TIMER_INACTIVE)
        return;
    if (t->heap_index == TIMER_FIRING) {
        if (r->firing == t)
            r->firing = NULL;
    } else {
        heap_remove(r, t->heap_index);
    }
    t->heap_index = BC_TIMER_INACTIVE;
}

bc_status bc_reactor_timer_start(bc_reactor *r, bc_timer *t, int64_t after_ms, int64_t repeat_ms)
{
    if (t->cb == NULL || repeat_ms < 0)
        return BC_ERR_INVAL;
    bc_reactor_timer_stop(r, t);
    t->deadline_ms = bc_clock_monotonic_ms() + (after_ms > 0 ? after_ms : 0);
    t->repeat_ms = repeat_ms;
    t->order = r->next_order++;
    if (heap_push(r, t) != 0) {
        t->heap_index = BC_TIMER_INACTIVE;
        return BC_ERR_NOMEM;
    }
    return BC_OK;
}

size_t bc_reactor_timer_count(const bc_reactor *r)
{
    return r->heap_count + (r->firing != NULL ? 1 : 0);
}

int64_t bc_reactor_now_ms(const bc_reactor *r)
{
    return r->now_ms;
}

/* Fires the timers due at r->now_ms that were started before this round. */
static void fire_timers(bc_reactor *r)
{
    uint64_t limit = r->next_order;
    while (r->heap_count > 0) {
        bc_timer *t = r->heap[0];
        if (t->deadline_ms > r->now_ms || t->order >= limit)
            break;
        heap_remove(r, 0);
        if (t->repeat_ms == 0) {
            t->heap_index = BC_TIMER_INACTIVE;
            t->cb(r, t, t->userdata); /* t may be restarted or freed: do not touch */
            continue;
        }
        t->heap_index = TIMER_FIRING;
        r->firing = t;
        t->cb(r, t, t->userdata);
        if (r->firing != t)
            continue; /* stopped or restarted by the callback */
        r->firing = NULL;
        int64_t next = t->deadline_ms + t->repeat_ms;
        t->deadline_ms = next > r->now_ms ? next : r->now_ms + t->repeat_ms;
        t->order = r->next_order++;
        if (heap_push(r, t) != 0) {
            t->heap_index = BC_TIMER_INACTIVE;
            log_errorx("reactor: no memory to re-arm a repeating timer; it is stopped");
        }
    }
}

/* ---- the loop ---- */

static void wake_drain(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

bc_status bc_reactor_new(bc_reactor **out, bc_error *err)
{
    *out = NULL;
    bc_reactor *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "reactor: no memory");
    r->next_watch_id = 1;
    r->wake_rd = r->wake_wr = -1;
    r->now_ms = bc_clock_monotonic_ms();
    bc_status rc = BC_OK;
    int p[2];
    if (pipe(p) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "reactor: cannot create the wakeup pipe: %s", strerror(errno));
        goto cleanup;
    }
    r->wake_rd = p[0];
    r->wake_wr = p[1];
    if (bc_fd_set_nonblock_cloexec(p[0]) != BC_OK || bc_fd_set_nonblock_cloexec(p[1]) != BC_OK) {
        rc = bc_fail(err, BC_ERR_IO, "reactor: cannot configure the wakeup pipe: %s",
                     strerror(errno));
        goto cleanup;
    }
    rc = bc_reactor_add_fd(r, r->wake_rd, BC_REACTOR_READ, wake_drain, NULL, err);

cleanup:
    if (rc != BC_OK) {
        bc_reactor_free(r);
        return rc;
    }
    *out = r;
    return BC_OK;
}

void bc_reactor_free(bc_reactor *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->heap_count; i++)
        r->heap[i]->heap_index = BC_TIMER_INACTIVE;
    if (r->firing != NULL)
        r->firing->heap_index = BC_TIMER_INACTIVE;
    if (r->wake_rd >= 0)
        close(r->wake_rd);
    if (r->wake_wr >= 0)
        close(r->wake_wr);
    free(r->watches);
    free(r->pfds);
    free(r->ready);
    free(r->heap);
    free(r);
}

static int poll_timeout(const bc_reactor *r, int timeout_ms)
{
    if (r->stop_requested)
        return 0;
    if (r->heap_count == 0)
        return timeout_ms;
    int64_t wait = r->heap[0]->deadline_ms - bc_clock_monotonic_ms();
    if (wait < 0)
        wait = 0;
    if (wait > INT_MAX)
        wait = INT_MAX;
    if (timeout_ms >= 0 && timeout_ms < wait)
        return timeout_ms;
    return (int)wait;
}

static unsigned events_for(short revents, unsigned interest)
{
    unsigned ev = 0;
    if ((revents & (POLLIN | POLLPRI)) && (interest & BC_REACTOR_READ))
        ev |= BC_REACTOR_READ;
    if ((revents & POLLOUT) && (interest & BC_REACTOR_WRITE))
        ev |= BC_REACTOR_WRITE;
    if (revents & (POLLHUP | POLLERR | POLLNVAL)) {
        ev |= BC_REACTOR_HUP;
        ev |= interest & BC_REACTOR_READ; /* so a reader reads its EOF */
    }
    return ev;
}

bc_status bc_reactor_run_once(bc_reactor *r, int timeout_ms, bc_error *err)
{
    ready_fd *ready = grow_array(r->ready, &r->ready_cap, r->pfd_count, sizeof(ready_fd));
    if (ready == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "reactor: no memory for the ready list");
    r->ready = ready;
    int n = poll(r->pfds, (nfds_t)r->pfd_count, poll_timeout(r, timeout_ms));
    if (n < 0 && errno != EINTR)
        return bc_fail(err, BC_ERR_IO, "reactor: poll failed: %s", strerror(errno));
    r->now_ms = bc_clock_monotonic_ms();

    size_t nready = 0;
    for (size_t i = 0; n > 0 && i < r->pfd_count; i++) {
        if (r->pfds[i].revents == 0)
            continue;
        int fd = pfd_fd(&r->pfds[i]);
        r->ready[nready].fd = fd;
        r->ready[nready].revents = r->pfds[i].revents;
        r->ready[nready].id = r->watches[fd].id;
        nready++;
    }
    for (size_t i = 0; i < nready; i++) {
        const ready_fd *rd = &r->ready[i];
        fd_watch *w = watch_get(r, rd->fd);
        if (w == NULL || w->id != rd->id)
            continue; /* removed (and maybe re-added) by an earlier callback */
        unsigned ev = events_for(rd->revents, w->interest);
        if (ev != 0)
            w->cb(r, rd->fd, ev, w->userdata);
    }
    fire_timers(r);
    return BC_OK;
}

bc_status bc_reactor_run(bc_reactor *r, bc_error *err)
{
    bc_status rc = BC_OK;
    while (!r->stop_requested) {
        rc = bc_reactor_run_once(r, -1, err);
        if (rc != BC_OK)
            break;
    }
    r->stop_requested = 0;
    return rc;
}

void bc_reactor_stop(bc_reactor *r)
{
    int saved = errno;
    r->stop_requested = 1;
    ssize_t ignored = write(r->wake_wr, "s", 1); /* a full pipe already wakes poll */
    (void)ignored;
    errno = saved;
}
