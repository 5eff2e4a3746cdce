/* Unit tests for device-agent/reactor: fd watchers (read, write, pause,
 * removal during dispatch, fd reuse in one round, thousands of fds past
 * FD_SETSIZE), timers (order, FIFO ties, repeat, cancel, self-stop and
 * free, 0 ms restarts that cannot starve the loop, a 10,000-timer heap)
 * and stop from a callback, before run, and from a signal handler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/clock.h"
#include "device-agent/reactor.h"

static bc_reactor *new_reactor(void)
{
    bc_reactor *r = NULL;
    bc_error err;
    assert_int_equal(bc_reactor_new(&r, &err), BC_OK);
    return r;
}

/* ---- fds ---- */

typedef struct fd_probe {
    int calls;
    unsigned last_events;
    int drain;         /* read what is there */
    int remove_self;   /* remove own watcher */
    int victim_fd;     /* remove this watcher (and close it) when >= 0 */
    int *victim_calls; /* for the test's bookkeeping */
    struct fd_probe *peer;
} fd_probe;

static void on_fd(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    fd_probe *p = userdata;
    p->calls++;
    p->last_events = events;
    if (p->drain && (events & BC_REACTOR_READ)) {
        char buf[256];
        ssize_t n = read(fd, buf, sizeof(buf)); /* once: the fds are blocking */
        (void)n;
    }
    if (p->remove_self)
        assert_int_equal(bc_reactor_remove_fd(r, fd), BC_OK);
}

static void test_read_write_and_pause(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    bc_error err;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fd_probe p = {.drain = 1};
    assert_int_equal(bc_reactor_add_fd(r, sv[0], BC_REACTOR_READ, on_fd, &p, &err), BC_OK);
    assert_int_equal(bc_reactor_add_fd(r, sv[0], BC_REACTOR_READ, on_fd, &p, &err), BC_ERR_EXISTS);
    assert_int_equal(bc_reactor_add_fd(r, -1, BC_REACTOR_READ, on_fd, &p, &err), BC_ERR_INVAL);
    assert_int_equal(bc_reactor_add_fd(r, sv[1], BC_REACTOR_READ, NULL, &p, &err), BC_ERR_INVAL);
    assert_int_equal(bc_reactor_fd_count(r), 1);

    /* nothing to read: no callback */
    assert_int_equal(bc_reactor_run_once(r, 0, &err), BC_OK);
    assert_int_equal(p.calls, 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(bc_reactor_run_once(r, 1000, &err), BC_OK);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.last_events, BC_REACTOR_READ);

    /* write interest: a socket with room is writable */
    assert_int_equal(bc_reactor_modify_fd(r, sv[0], BC_REACTOR_WRITE), BC_OK);
    assert_int_equal(bc_reactor_run_once(r, 1000, &err), BC_OK);
    assert_int_equal(p.calls, 2);
    assert_int_equal(p.last_events, BC_REACTOR_WRITE);

    /* paused: neither readable data nor a hang-up calls it */
    assert_int_equal(bc_reactor_modify_fd(r, sv[0], 0), BC_OK);
    assert_int_equal(write(sv[1], "y", 1), 1);
    close(sv[1]);
    assert_int_equal(bc_reactor_run_once(r, 0, &err), BC_OK);
    assert_int_equal(p.calls, 2);

    /* resumed: the data, then the hang-up (reported with READ, so read sees EOF) */
    assert_int_equal(bc_reactor_modify_fd(r, sv[0], BC_REACTOR_READ), BC_OK);
    assert_int_equal(bc_reactor_run_once(r, 1000, &err), BC_OK);
    assert_int_equal(p.calls, 3);
    assert_true(p.last_events & BC_REACTOR_READ);
    assert_int_equal(bc_reactor_run_once(r, 1000, &err), BC_OK);
    assert_true(p.last_events & BC_REACTOR_HUP);

    assert_int_equal(bc_reactor_remove_fd(r, sv[0]), BC_OK);
    assert_int_equal(bc_reactor_remove_fd(r, sv[0]), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_reactor_modify_fd(r, sv[0], BC_REACTOR_READ), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_reactor_fd_count(r), 0);
    close(sv[0]);
    bc_reactor_free(r);
}

/* Both callbacks remove the other: exactly one of them may run. */
typedef struct mutual {
    int fd[2];
    int calls[2];
} mutual;

static void on_mutual(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    mutual *m = userdata;
    int me = fd == m->fd[0] ? 0 : 1;
    m->calls[me]++;
    assert_int_equal(bc_reactor_remove_fd(r, m->fd[1 - me]), BC_OK);
    assert_int_equal(bc_reactor_remove_fd(r, fd), BC_OK);
}

static void test_remove_other_during_dispatch(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    bc_error err;
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    mutual m = {.fd = {a[0], b[0]}};
    assert_int_equal(bc_reactor_add_fd(r, a[0], BC_REACTOR_READ, on_mutual, &m, &err), BC_OK);
    assert_int_equal(bc_reactor_add_fd(r, b[0], BC_REACTOR_READ, on_mutual, &m, &err), BC_OK);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    assert_int_equal(bc_reactor_run_once(r, 1000, &err), BC_OK);
    assert_int_equal(m.calls[0] + m.calls[1], 1);
    assert_int_equal(bc_reactor_fd_count(r), 0);
    bc_reactor_free(r);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* The first ready callback removes and closes the other fd, and a new
 * watcher takes the same fd number: the stale readiness must not reach it. */
typedef struct reuse {
    int fd[2];
    int writer[2];
    int first_calls, second_calls, newcomer_calls;
    int newcomer_fd, newcomer_writer;
} reuse;

static void on_newcomer(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    reuse *u = userdata;
    u->newcomer_calls++;
}

static void on_reuse(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    reuse *u = userdata;
    int me = fd == u->fd[0] ? 0 : 1;
    if (u->first_calls + u->second_calls > 0) {
        u->second_calls++;
        return;
    }
    u->first_calls++;
    int other = u->fd[1 - me];
    assert_int_equal(bc_reactor_remove_fd(r, other), BC_OK);
    close(other);
    int p[2];
    assert_int_equal(pipe(p), 0); /* lowest free number: the one just closed */
    assert_int_equal(p[0], other);
    u->newcomer_fd = p[0];
    u->newcomer_writer = p[1];
    bc_error err;
    assert_int_equal(bc_reactor_add_fd(r, p[0], BC_REACTOR_READ, on_newcomer, u, &err), BC_OK);
    assert_int_equal(bc_reactor_remove_fd(r, fd), BC_OK);
}

static void test_fd_reuse_in_one_round(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    bc_error err;
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    reuse u = {.fd = {a[0], b[0]}};
    assert_int_equal(bc_reactor_add_fd(r, a[0], BC_REACTOR_READ, on_reuse, &u, &err), BC_OK);
    assert_int_equal(bc_reactor_add_fd(r, b[0], BC_REACTOR_READ, on_reuse, &u, &err), BC_OK);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    assert_int_equal(bc_reactor_run_once(r, 1000, &err), BC_OK);
    assert_int_equal(u.first_calls, 1);
    assert_int_equal(u.second_calls, 0);
    assert_int_equal(u.newcomer_calls, 0); /* its pipe is empty */
    /* the newcomer works normally afterwards */
    assert_int_equal(write(u.newcomer_writer, "z", 1), 1);
    assert_int_equal(bc_reactor_run_once(r, 1000, &err), BC_OK);
    assert_int_equal(u.newcomer_calls, 1);
    bc_reactor_remove_fd(r, u.newcomer_fd);
    bc_reactor_free(r);
    close(u.newcomer_fd);
    close(u.newcomer_writer);
    close(a[0] == u.newcomer_fd ? b[0] : a[0]);
    close(a[1]);
    close(b[1]);
}

/* A callback that removes its watcher and frees its own userdata. */
static void on_free_self(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    int *calls = *(int **)userdata;
    (*calls)++;
    bc_reactor_remove_fd(r, fd);
    free(userdata);
}

static void test_self_removal_and_free(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    bc_error err;
    int p[2];
    assert_int_equal(pipe(p), 0);
    int calls = 0;
    int **box = malloc(sizeof(*box));
    *box = &calls;
    assert_int_equal(bc_reactor_add_fd(r, p[0], BC_REACTOR_READ, on_free_self, box, &err), BC_OK);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(bc_reactor_run_once(r, 1000, &err), BC_OK);
    assert_int_equal(bc_reactor_run_once(r, 0, &err), BC_OK);
    assert_int_equal(calls, 1);
    bc_reactor_free(r);
    close(p[0]);
    close(p[1]);
}

static void test_many_fds(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t want = 4200;
    if (rl.rlim_cur < want && rl.rlim_max >= want) {
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t pairs = rl.rlim_cur >= want ? 2000 : (rl.rlim_cur - 64) / 2;
    int(*sv)[2] = calloc(pairs, sizeof(*sv));
    fd_probe *probes = calloc(pairs, sizeof(*probes));
    bc_reactor *r = new_reactor();
    bc_error err;
    int max_fd = 0;
    for (size_t i = 0; i < pairs; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
        probes[i].drain = 1;
        assert_int_equal(bc_reactor_add_fd(r, sv[i][0], BC_REACTOR_READ, on_fd, &probes[i], &err),
                         BC_OK);
        if (sv[i][0] > max_fd)
            max_fd = sv[i][0];
    }
    if (rl.rlim_cur >= want)
        assert_true(max_fd >= FD_SETSIZE); /* select() could not do this */
    assert_int_equal(bc_reactor_fd_count(r), pairs);
    for (size_t i = 0; i < pairs; i += 2)
        assert_int_equal(write(sv[i][1], "x", 1), 1);
    for (int round = 0; round < 5; round++)
        assert_int_equal(bc_reactor_run_once(r, 100, &err), BC_OK);
    for (size_t i = 0; i < pairs; i++)
        assert_int_equal(probes[i].calls, i % 2 == 0 ? 1 : 0);
    /* remove every third, then all the others still work */
    for (size_t i = 0; i < pairs; i += 3)
        assert_int_equal(bc_reactor_remove_fd(r, sv[i][0]), BC_OK);
    for (size_t i = 0; i < pairs; i++)
        assert_int_equal(write(sv[i][1], "y", 1), 1);
    assert_int_equal(bc_reactor_run_once(r, 100, &err), BC_OK);
    for (size_t i = 0; i < pairs; i++) {
        int expected = (i % 2 == 0 ? 1 : 0) + (i % 3 == 0 ? 0 : 1);
        assert_int_equal(probes[i].calls, expected);
    }
    bc_reactor_free(r);
    for (size_t i = 0; i < pairs; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    free(sv);
    free(probes);
}

/* ---- timers ---- */

#define MAX_LOG 64

typedef struct timer_log {
    int ids[MAX_LOG];
    int n;
} timer_log;

typedef struct tagged_timer {
    bc_timer t;
    int id;
    timer_log *log;
    int stop_after; /* a repeating timer stops itself after this many */
    int fired;
    bc_timer *victim; /* stop this one when firing */
} tagged_timer;

static void on_tagged(bc_reactor *r, bc_timer *t, void *userdata)
{
    tagged_timer *tt = userdata;
    tt->fired++;
    if (tt->log->n < MAX_LOG)
        tt->log->ids[tt->log->n++] = tt->id;
    if (tt->victim != NULL)
        bc_reactor_timer_stop(r, tt->victim);
    if (tt->stop_after > 0 && tt->fired >= tt->stop_after)
        bc_reactor_timer_stop(r, t);
}

static void run_for(bc_reactor *r, int64_t ms)
{
    int64_t end = bc_clock_monotonic_ms() + ms;
    bc_error err;
    while (bc_clock_monotonic_ms() < end)
        assert_int_equal(bc_reactor_run_once(r, 5, &err), BC_OK);
}

static void test_timer_order_and_cancel(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    timer_log log = {0};
    tagged_timer tt[6];
    for (int i = 0; i < 6; i++) {
        memset(&tt[i], 0, sizeof(tt[i]));
        tt[i].id = i;
        tt[i].log = &log;
        bc_timer_init(&tt[i].t, on_tagged, &tt[i]);
        assert_false(bc_timer_active(&tt[i].t));
    }
    int64_t t0 = bc_clock_monotonic_ms();
    assert_int_equal(bc_reactor_timer_start(r, &tt[0].t, 60, 0), BC_OK);
    assert_int_equal(bc_reactor_timer_start(r, &tt[1].t, 20, 0), BC_OK);
    assert_int_equal(bc_reactor_timer_start(r, &tt[2].t, 40, 0), BC_OK);
    assert_int_equal(bc_reactor_timer_start(r, &tt[3].t, 30, 0), BC_OK); /* cancelled */
    assert_int_equal(bc_reactor_timer_start(r, &tt[4].t, 1000, 0), BC_OK);
    assert_int_equal(bc_reactor_timer_start(r, &tt[4].t, 10, 0), BC_OK); /* restarted earlier */
    assert_int_equal(bc_reactor_timer_count(r), 5);
    bc_reactor_timer_stop(r, &tt[3].t);
    bc_reactor_timer_stop(r, &tt[3].t); /* idempotent */
    assert_false(bc_timer_active(&tt[3].t));
    assert_true(bc_timer_active(&tt[0].t));
    assert_int_equal(bc_reactor_timer_start(r, &tt[5].t, 5, -1), BC_ERR_INVAL);
    bc_timer blank;
    memset(&blank, 0, sizeof(blank));
    assert_int_equal(bc_reactor_timer_start(r, &blank, 5, 0), BC_ERR_INVAL);

    run_for(r, 150);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.ids[0], 4);
    assert_int_equal(log.ids[1], 1);
    assert_int_equal(log.ids[2], 2);
    assert_int_equal(log.ids[3], 0);
    assert_int_equal(tt[3].fired, 0);
    assert_false(bc_timer_active(&tt[0].t)); /* a one-shot that fired is inactive */
    assert_int_equal(bc_reactor_timer_count(r), 0);
    assert_true(bc_clock_monotonic_ms() - t0 >= 60);

    /* a wait with no timers and a timeout returns */
    bc_error err;
    assert_int_equal(bc_reactor_run_once(r, 10, &err), BC_OK);
    bc_reactor_free(r);
}

static void test_timer_ties_are_fifo(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    timer_log log = {0};
    tagged_timer tt[8];
    for (int i = 0; i < 8; i++) {
        memset(&tt[i], 0, sizeof(tt[i]));
        tt[i].id = i;
        tt[i].log = &log;
        bc_timer_init(&tt[i].t, on_tagged, &tt[i]);
    }
    /* all due "now": they fire in start order */
    for (int i = 0; i < 8; i++)
        assert_int_equal(bc_reactor_timer_start(r, &tt[i].t, 0, 0), BC_OK);
    bc_error err;
    assert_int_equal(bc_reactor_run_once(r, 0, &err), BC_OK);
    assert_int_equal(log.n, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(log.ids[i], i);
    bc_reactor_free(r);
}

static void test_repeat_stop_and_victims(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    timer_log log = {0};
    tagged_timer rep, victim, killer;
    memset(&rep, 0, sizeof(rep));
    memset(&victim, 0, sizeof(victim));
    memset(&killer, 0, sizeof(killer));
    rep.id = 1;
    rep.log = &log;
    rep.stop_after = 3;
    killer.id = 2;
    killer.log = &log;
    killer.victim = &victim.t;
    victim.id = 3;
    victim.log = &log;
    bc_timer_init(&rep.t, on_tagged, &rep);
    bc_timer_init(&killer.t, on_tagged, &killer);
    bc_timer_init(&victim.t, on_tagged, &victim);
    assert_int_equal(bc_reactor_timer_start(r, &rep.t, 5, 5), BC_OK);
    /* both due in the same round: the killer (started first) stops the victim */
    assert_int_equal(bc_reactor_timer_start(r, &killer.t, 0, 0), BC_OK);
    assert_int_equal(bc_reactor_timer_start(r, &victim.t, 0, 0), BC_OK);
    run_for(r, 100);
    assert_int_equal(rep.fired, 3); /* it stopped itself after three */
    assert_false(bc_timer_active(&rep.t));
    assert_int_equal(killer.fired, 1);
    assert_int_equal(victim.fired, 0);
    assert_int_equal(bc_reactor_timer_count(r), 0);
    bc_reactor_free(r);
}

/* A repeating timer whose callback stops it and frees its memory. */
typedef struct owned_timer {
    bc_timer t;
    int *fired;
} owned_timer;

static void on_owned(bc_reactor *r, bc_timer *t, void *userdata)
{
    owned_timer *o = userdata;
    (*o->fired)++;
    bc_reactor_timer_stop(r, t);
    free(o);
}

/* A timer restarting itself at 0 ms: one firing per round, never a hang. */
static void on_restart_zero(bc_reactor *r, bc_timer *t, void *userdata)
{
    int *n = userdata;
    (*n)++;
    assert_int_equal(bc_reactor_timer_start(r, t, 0, 0), BC_OK);
}

static void test_self_free_and_no_starvation(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    bc_error err;
    int fired = 0;
    owned_timer *o = malloc(sizeof(*o));
    o->fired = &fired;
    bc_timer_init(&o->t, on_owned, o);
    assert_int_equal(bc_reactor_timer_start(r, &o->t, 0, 1), BC_OK);
    assert_int_equal(bc_reactor_run_once(r, 0, &err), BC_OK);
    run_for(r, 20);
    assert_int_equal(fired, 1);

    int spins = 0;
    bc_timer zero;
    bc_timer_init(&zero, on_restart_zero, &spins);
    assert_int_equal(bc_reactor_timer_start(r, &zero, 0, 0), BC_OK);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(bc_reactor_run_once(r, -1, &err), BC_OK);
        assert_int_equal(spins, i);
    }
    assert_true(bc_timer_active(&zero));
    bc_reactor_timer_stop(r, &zero);
    bc_reactor_free(r);
}

/* 10,000 timers with random deadlines, 3,000 cancelled: the rest fire once
 * each, in deadline order. */
typedef struct heap_check {
    int64_t last_deadline;
    int fired;
    int out_of_order;
} heap_check;

typedef struct heap_timer {
    bc_timer t;
    heap_check *check;
    int64_t deadline;
    int fired;
} heap_timer;

static void on_heap(bc_reactor *r, bc_timer *t, void *userdata)
{
    heap_timer *h = userdata;
    if (h->deadline < h->check->last_deadline)
        h->check->out_of_order++;
    h->check->last_deadline = h->deadline;
    h->check->fired++;
    h->fired++;
}

static void test_big_heap(void **state)
{
    (void)state;
    enum { N = 10000 };
    bc_reactor *r = new_reactor();
    heap_timer *timers = calloc(N, sizeof(*timers));
    heap_check check = {0};
    srand(1234);
    for (int i = 0; i < N; i++) {
        timers[i].check = &check;
        bc_timer_init(&timers[i].t, on_heap, &timers[i]);
        int64_t after = rand() % 80;
        assert_int_equal(bc_reactor_timer_start(r, &timers[i].t, after, 0), BC_OK);
        timers[i].deadline = timers[i].t.deadline_ms;
    }
    for (int i = 0; i < N; i += 3)
        bc_reactor_timer_stop(r, &timers[i].t);
    assert_int_equal(bc_reactor_timer_count(r), N - (N + 2) / 3);
    run_for(r, 150);
    assert_int_equal(check.fired, N - (N + 2) / 3);
    assert_int_equal(check.out_of_order, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(timers[i].fired, i % 3 == 0 ? 0 : 1);
    assert_int_equal(bc_reactor_timer_count(r), 0);
    bc_reactor_free(r);
    free(timers);
}

/* ---- stop ---- */

static void on_stop_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    int *n = userdata;
    (*n)++;
    if (*n == 3)
        bc_reactor_stop(r);
}

static bc_reactor *signal_reactor;

static void on_alarm(int sig)
{
    bc_reactor_stop(signal_reactor);
}

static void test_stop(void **state)
{
    (void)state;
    bc_reactor *r = new_reactor();
    bc_error err;

    /* from a callback */
    int n = 0;
    bc_timer t;
    bc_timer_init(&t, on_stop_timer, &n);
    assert_int_equal(bc_reactor_timer_start(r, &t, 1, 1), BC_OK);
    assert_int_equal(bc_reactor_run(r, &err), BC_OK);
    assert_int_equal(n, 3);
    bc_reactor_timer_stop(r, &t);

    /* before run: returns at once, and the request is then cleared */
    bc_reactor_stop(r);
    assert_int_equal(bc_reactor_run(r, &err), BC_OK);

    /* from a signal handler while poll waits with no timeout at all */
    signal_reactor = r;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART; /* poll still returns: the self-pipe wakes it */
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = 50000}};
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
    int64_t t0 = bc_clock_monotonic_ms();
    assert_int_equal(bc_reactor_timer_count(r), 0);
    assert_int_equal(bc_reactor_run(r, &err), BC_OK);
    assert_true(bc_clock_monotonic_ms() - t0 >= 40);
    signal(SIGALRM, SIG_DFL);
    bc_reactor_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_write_and_pause),
        cmocka_unit_test(test_remove_other_during_dispatch),
        cmocka_unit_test(test_fd_reuse_in_one_round),
        cmocka_unit_test(test_self_removal_and_free),
        cmocka_unit_test(test_many_fds),
        cmocka_unit_test(test_timer_order_and_cancel),
        cmocka_unit_test(test_timer_ties_are_fifo),
        cmocka_unit_test(test_repeat_stop_and_victims),
        cmocka_unit_test(test_self_free_and_no_starvation),
        cmocka_unit_test(test_big_heap),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
