/* Unit tests for services/common/stream against a real redis-server that
 * the test starts itself (like hiredis' test.sh): on a free loopback port,
 * in a temp dir, without persistence; killed and restarted by one test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <poll.h>

#include "common/clock.h"
#include "common/stream.h"
#include "test_util.h"

static bc_test_redis srv;

static int group_setup(void **state)
{
    (void)state;
    return bc_test_redis_start(&srv, "stream") == BC_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    bc_test_redis_stop(&srv);
    return 0;
}

static void connect_redis(bc_redis *r)
{
    bc_test_redis_connect(&srv, 2000, r);
}

static long long int_command(bc_redis *r, int argc, const char **argv)
{
    redisReply *reply = NULL;
    bc_error err;
    assert_int_equal(bc_redis_command(r, argc, argv, NULL, &reply, &err), BC_OK);
    assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
    long long v = reply->integer;
    freeReplyObject(reply);
    return v;
}

/* Pending entries of a group (all consumers) or of one consumer. */
static long long pending(bc_redis *r, const char *stream, const char *group, const char *consumer)
{
    redisReply *reply = NULL;
    if (consumer == NULL) {
        const char *argv[] = {"XPENDING", stream, group};
        assert_int_equal(bc_redis_command(r, 3, argv, NULL, &reply, NULL), BC_OK);
        long long n = reply->element[0]->integer;
        freeReplyObject(reply);
        return n;
    }
    const char *argv[] = {"XPENDING", stream, group, "-", "+", "1000", consumer};
    assert_int_equal(bc_redis_command(r, 7, argv, NULL, &reply, NULL), BC_OK);
    long long n = (long long)reply->elements;
    freeReplyObject(reply);
    return n;
}

static void add_entry(bc_redis *r, const char *stream, const char *value, size_t len, char *id)
{
    bc_stream_field f[] = {{"payload", value, len}, {"n", "x", 1}};
    bc_error err;
    assert_int_equal(bc_stream_add(r, stream, 0, f, 2, id, &err), BC_OK);
}

/* A handler that records what it saw and answers from a script. */
typedef struct recorder {
    int calls;
    char ids[32][BC_STREAM_ID_MAX + 1];
    char payloads[32][64];
    size_t lens[32];
    bool redelivered[32];
    bool claimed[32];
    bc_stream_verdict script[32]; /* verdict per call; DONE after the end */
    int script_len;
} recorder;

static bc_stream_verdict record(const bc_stream_entry *e, void *userdata)
{
    recorder *rec = userdata;
    int i = rec->calls++;
    if (i < 32) {
        snprintf(rec->ids[i], sizeof(rec->ids[i]), "%s", e->id);
        size_t len = 0;
        const char *p = bc_stream_entry_field(e, "payload", &len);
        assert_non_null(p);
        assert_true(len < sizeof(rec->payloads[i]));
        memcpy(rec->payloads[i], p, len);
        rec->lens[i] = len;
        rec->redelivered[i] = e->redelivered;
        rec->claimed[i] = e->claimed;
    }
    return i < rec->script_len ? rec->script[i] : BC_STREAM_DONE;
}

static bc_stream_consumer_config consumer_cfg(const char *stream, const char *consumer)
{
    bc_stream_consumer_config cfg = {.batch = 10,
                                     .block_ms = 100,
                                     .claim_idle_ms = 0,
                                     .claim_interval_ms = 50,
                                     .retry_delay_ms = 0};
    snprintf(cfg.stream, sizeof(cfg.stream), "%s", stream);
    snprintf(cfg.group, sizeof(cfg.group), "g");
    snprintf(cfg.consumer, sizeof(cfg.consumer), "%s", consumer);
    return cfg;
}

/* Polls until the recorder saw `calls` calls (or a bound of rounds). */
static void poll_until(bc_stream_consumer *c, recorder *rec, int calls)
{
    for (int i = 0; i < 50 && rec->calls < calls; i++) {
        bc_error err;
        bc_status st = bc_stream_consumer_poll(c, &err);
        if (st != BC_OK)
            fail_msg("poll: %s: %s", bc_strerror(st), err.text);
    }
    assert_int_equal(rec->calls, calls);
}

static void test_backoff_cap(void **state)
{
    (void)state;
    assert_int_equal(bc_redis_backoff_cap_ms(100, 10000, 0), 100);
    assert_int_equal(bc_redis_backoff_cap_ms(100, 10000, 1), 200);
    assert_int_equal(bc_redis_backoff_cap_ms(100, 10000, 3), 800);
    assert_int_equal(bc_redis_backoff_cap_ms(100, 10000, 7), 10000);
    assert_int_equal(bc_redis_backoff_cap_ms(100, 10000, 4000000000u), 10000);
    assert_int_equal(bc_redis_backoff_cap_ms(0, 0, 5), 1);
}

static void test_refused_is_sticky_and_backs_off(void **state)
{
    (void)state;
    bc_redis_config cfg = bc_test_redis_config(bc_test_free_port(), 2000);
    cfg.backoff_min_ms = 5000;
    cfg.backoff_max_ms = 5000;
    bc_redis r;
    bc_error err;
    assert_int_equal(bc_redis_init(&r, &cfg, &err), BC_OK);
    assert_int_equal(bc_redis_connect(&r, &err), BC_ERR_UNAVAILABLE);
    assert_false(bc_redis_connected(&r));
    assert_true(bc_redis_retry_in_ms(&r) <= 5000);
    /* While the delay runs, no new attempt: the error says when. */
    if (bc_redis_retry_in_ms(&r) > 0) {
        assert_int_equal(bc_redis_connect(&r, &err), BC_ERR_UNAVAILABLE);
        assert_non_null(strstr(err.text, "next attempt"));
    }
    const char *argv[] = {"PING"};
    redisReply *reply = NULL;
    assert_int_equal(bc_redis_command(&r, 1, argv, NULL, &reply, &err), BC_ERR_UNAVAILABLE);
    assert_null(reply);
    /* Bad configurations are refused by name. */
    cfg.port = 0;
    assert_int_equal(bc_redis_init(&r, &cfg, &err), BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "port"));
}

static void test_error_reply_keeps_connection(void **state)
{
    (void)state;
    bc_redis r;
    connect_redis(&r);
    const char *set[] = {"SET", "t:notastream", "x"};
    redisReply *reply = NULL;
    assert_int_equal(bc_redis_command(&r, 3, set, NULL, &reply, NULL), BC_OK);
    freeReplyObject(reply);
    bc_stream_field f = {"a", "b", 1};
    bc_error err;
    assert_int_equal(bc_stream_add(&r, "t:notastream", 0, &f, 1, NULL, &err), BC_ERR_STATE);
    assert_non_null(strstr(err.text, "WRONGTYPE"));
    assert_true(bc_redis_connected(&r));
    assert_int_equal(bc_stream_add(&r, "t:ok", 0, &f, 1, NULL, &err), BC_OK);
    /* A group twice is fine (BUSYGROUP). */
    assert_int_equal(bc_stream_group_create(&r, "t:ok", "g", "0", &err), BC_OK);
    assert_int_equal(bc_stream_group_create(&r, "t:ok", "g", "0", &err), BC_OK);
    bc_redis_close(&r);
}

static void test_consume_binary_in_order_and_ack(void **state)
{
    (void)state;
    bc_redis r;
    connect_redis(&r);
    const char bin[] = {'a', '\0', 'b', '\r', '\n', (char)0xff};
    char ids[3][BC_STREAM_ID_MAX + 1];
    add_entry(&r, "t:bin", bin, sizeof(bin), ids[0]);
    add_entry(&r, "t:bin", "second", 6, ids[1]);
    add_entry(&r, "t:bin", "", 0, ids[2]);

    bc_redis cr;
    connect_redis(&cr);
    bc_stream_consumer c;
    recorder rec = {0};
    bc_stream_consumer_config cfg = consumer_cfg("t:bin", "c1");
    assert_int_equal(bc_stream_consumer_init(&c, &cr, &cfg, record, &rec, NULL), BC_OK);
    poll_until(&c, &rec, 3);
    assert_int_equal(rec.lens[0], sizeof(bin));
    assert_memory_equal(rec.payloads[0], bin, sizeof(bin));
    assert_string_equal(rec.ids[0], ids[0]);
    assert_string_equal(rec.ids[1], ids[1]);
    assert_string_equal(rec.ids[2], ids[2]);
    assert_int_equal(rec.lens[2], 0);
    assert_false(rec.redelivered[0]);
    assert_int_equal(pending(&r, "t:bin", "g", NULL), 0);
    assert_int_equal(c.stats.acked, 3);
    bc_redis_close(&cr);
    bc_redis_close(&r);
}

static void test_retry_keeps_order(void **state)
{
    (void)state;
    bc_redis r;
    connect_redis(&r);
    char ids[3][BC_STREAM_ID_MAX + 1];
    add_entry(&r, "t:retry", "1", 1, ids[0]);
    add_entry(&r, "t:retry", "2", 1, ids[1]);
    add_entry(&r, "t:retry", "3", 1, ids[2]);
    bc_redis cr;
    connect_redis(&cr);
    bc_stream_consumer c;
    recorder rec = {.script = {BC_STREAM_DONE, BC_STREAM_RETRY}, .script_len = 2};
    bc_stream_consumer_config cfg = consumer_cfg("t:retry", "c1");
    cfg.retry_delay_ms = 30;
    assert_int_equal(bc_stream_consumer_init(&c, &cr, &cfg, record, &rec, NULL), BC_OK);
    poll_until(&c, &rec, 2);
    /* 2 was refused: 3 was not dispatched behind its back; 2 is pending. */
    assert_int_equal(pending(&r, "t:retry", "g", NULL), 2);
    poll_until(&c, &rec, 4);
    assert_string_equal(rec.ids[2], ids[1]);
    assert_true(rec.redelivered[2]);
    assert_string_equal(rec.ids[3], ids[2]);
    assert_int_equal(pending(&r, "t:retry", "g", NULL), 0);
    assert_int_equal(c.stats.retried, 1);
    bc_redis_close(&cr);
    bc_redis_close(&r);
}

static void test_restart_reads_own_pending_first(void **state)
{
    (void)state;
    bc_redis r;
    connect_redis(&r);
    char ids[3][BC_STREAM_ID_MAX + 1];
    add_entry(&r, "t:restart", "1", 1, ids[0]);
    add_entry(&r, "t:restart", "2", 1, ids[1]);
    /* The first life defers both (say, then crashes): they stay pending. */
    bc_redis cr;
    connect_redis(&cr);
    bc_stream_consumer c;
    recorder first = {.script = {BC_STREAM_DEFER, BC_STREAM_DEFER}, .script_len = 2};
    bc_stream_consumer_config cfg = consumer_cfg("t:restart", "c1");
    assert_int_equal(bc_stream_consumer_init(&c, &cr, &cfg, record, &first, NULL), BC_OK);
    poll_until(&c, &first, 2);
    assert_int_equal(pending(&r, "t:restart", "g", "c1"), 2);
    bc_redis_close(&cr);
    add_entry(&r, "t:restart", "3", 1, ids[2]);

    /* The second life, same consumer name: 1 and 2 first, then 3. */
    connect_redis(&cr);
    recorder second = {0};
    assert_int_equal(bc_stream_consumer_init(&c, &cr, &cfg, record, &second, NULL), BC_OK);
    poll_until(&c, &second, 3);
    assert_string_equal(second.ids[0], ids[0]);
    assert_true(second.redelivered[0]);
    assert_string_equal(second.ids[1], ids[1]);
    assert_string_equal(second.ids[2], ids[2]);
    assert_false(second.redelivered[2]);
    assert_int_equal(pending(&r, "t:restart", "g", NULL), 0);
    bc_redis_close(&cr);
    bc_redis_close(&r);
}

static void test_defer_then_ack_and_drop(void **state)
{
    (void)state;
    bc_redis r;
    connect_redis(&r);
    char ids[2][BC_STREAM_ID_MAX + 1];
    add_entry(&r, "t:defer", "1", 1, ids[0]);
    add_entry(&r, "t:defer", "2", 1, ids[1]);
    bc_redis cr;
    connect_redis(&cr);
    bc_stream_consumer c;
    recorder rec = {.script = {BC_STREAM_DEFER, BC_STREAM_DROP}, .script_len = 2};
    bc_stream_consumer_config cfg = consumer_cfg("t:defer", "c1");
    assert_int_equal(bc_stream_consumer_init(&c, &cr, &cfg, record, &rec, NULL), BC_OK);
    poll_until(&c, &rec, 2);
    assert_int_equal(c.stats.dropped, 1);
    assert_int_equal(pending(&r, "t:defer", "g", NULL), 1);
    const char *id = ids[0];
    int64_t acked = 0;
    assert_int_equal(bc_stream_ack(&r, "t:defer", "g", &id, 1, &acked, NULL), BC_OK);
    assert_int_equal(acked, 1);
    assert_int_equal(pending(&r, "t:defer", "g", NULL), 0);
    bc_redis_close(&cr);
    bc_redis_close(&r);
}

static void test_claims_a_dead_consumers_entries(void **state)
{
    (void)state;
    bc_redis r;
    connect_redis(&r);
    char ids[3][BC_STREAM_ID_MAX + 1];
    add_entry(&r, "t:claim", "1", 1, ids[0]);
    add_entry(&r, "t:claim", "2", 1, ids[1]);
    add_entry(&r, "t:claim", "3", 1, ids[2]);
    bc_redis dr;
    connect_redis(&dr);
    bc_stream_consumer dead;
    recorder drec = {.script = {BC_STREAM_DEFER, BC_STREAM_DEFER, BC_STREAM_DEFER},
                     .script_len = 3};
    bc_stream_consumer_config dcfg = consumer_cfg("t:claim", "dead");
    assert_int_equal(bc_stream_consumer_init(&dead, &dr, &dcfg, record, &drec, NULL), BC_OK);
    poll_until(&dead, &drec, 3);
    bc_redis_close(&dr); /* it dies with 3 entries pending */
    const char *xdel[] = {"XDEL", "t:claim", ids[1]};
    assert_int_equal(int_command(&r, 3, xdel), 1);

    bc_redis lr;
    connect_redis(&lr);
    bc_stream_consumer live;
    recorder lrec = {0};
    bc_stream_consumer_config lcfg = consumer_cfg("t:claim", "live");
    lcfg.claim_idle_ms = 150;
    assert_int_equal(bc_stream_consumer_init(&live, &lr, &lcfg, record, &lrec, NULL), BC_OK);
    /* Not idle long enough yet: nothing is taken. */
    bc_error err;
    assert_int_equal(bc_stream_consumer_poll(&live, &err), BC_OK);
    assert_int_equal(lrec.calls, 0);
    usleep(200000);
    poll_until(&live, &lrec, 2);
    assert_string_equal(lrec.ids[0], ids[0]);
    assert_true(lrec.claimed[0]);
    assert_string_equal(lrec.ids[1], ids[2]);
    assert_int_equal(live.stats.claimed, 2);
    assert_int_equal(live.stats.deleted, 1);
    assert_int_equal(pending(&r, "t:claim", "g", NULL), 0);
    bc_redis_close(&lr);
    bc_redis_close(&r);
}

static void test_maxlen_bounds_the_stream(void **state)
{
    (void)state;
    bc_redis r;
    connect_redis(&r);
    bc_stream_field f = {"v", "x", 1};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(bc_stream_add_append(&r, "t:bounded", 100, &f, 1, NULL), BC_OK);
    for (int i = 0; i < 1000; i++) {
        char id[BC_STREAM_ID_MAX + 1];
        assert_int_equal(bc_stream_add_reply(&r, id, NULL), BC_OK);
    }
    const char *xlen[] = {"XLEN", "t:bounded"};
    long long n = int_command(&r, 2, xlen);
    assert_true(n >= 100);
    assert_true(n < 300);
    /* Unbounded keeps everything. */
    for (int i = 0; i < 300; i++)
        assert_int_equal(bc_stream_add(&r, "t:unbounded", 0, &f, 1, NULL, NULL), BC_OK);
    const char *xlen2[] = {"XLEN", "t:unbounded"};
    assert_int_equal(int_command(&r, 2, xlen2), 300);
    bc_redis_close(&r);
}

static void test_step_api_with_poll(void **state)
{
    (void)state;
    bc_redis r;
    connect_redis(&r);
    bc_redis cr;
    connect_redis(&cr);
    bc_stream_consumer c;
    recorder rec = {0};
    bc_stream_consumer_config cfg = consumer_cfg("t:step", "c1");
    cfg.block_ms = 5000;
    assert_int_equal(bc_stream_consumer_init(&c, &cr, &cfg, record, &rec, NULL), BC_OK);
    size_t n = 99;
    bc_error err;
    /* First steps: group, empty pending pass, then the blocking read. */
    for (int i = 0; i < 5 && bc_stream_consumer_fd(&c) < 0; i++)
        assert_int_equal(bc_stream_consumer_step(&c, 0, &n, &err), BC_OK);
    int fd = bc_stream_consumer_fd(&c);
    assert_true(fd >= 0);
    assert_true(bc_stream_consumer_timeout_ms(&c) > 1000);
    char id[BC_STREAM_ID_MAX + 1];
    add_entry(&r, "t:step", "hello", 5, id);
    int64_t start = bc_clock_monotonic_ms();
    while (rec.calls == 0 && bc_clock_monotonic_ms() - start < 3000) {
        struct pollfd p = {.fd = bc_stream_consumer_fd(&c), .events = POLLIN};
        assert_true(p.fd >= 0);
        assert_true(poll(&p, 1, 1000) >= 0);
        assert_int_equal(bc_stream_consumer_step(&c, p.revents, &n, &err), BC_OK);
    }
    assert_int_equal(rec.calls, 1);
    assert_string_equal(rec.ids[0], id);
    assert_true(bc_clock_monotonic_ms() - start < 2000); /* woken, not timed out */
    assert_int_equal(pending(&r, "t:step", "g", NULL), 0);
    bc_redis_close(&cr);
    bc_redis_close(&r);
}

static void test_survives_a_redis_restart(void **state)
{
    (void)state;
    bc_redis cr;
    connect_redis(&cr);
    bc_stream_consumer c;
    recorder rec = {0};
    bc_stream_consumer_config cfg = consumer_cfg("t:restart2", "c1");
    assert_int_equal(bc_stream_consumer_init(&c, &cr, &cfg, record, &rec, NULL), BC_OK);
    bc_error err;
    assert_int_equal(bc_stream_consumer_poll(&c, &err), BC_OK);
    uint64_t gen = cr.generation;

    bc_test_redis_kill(&srv);
    /* The failure is noticed, the connection closed, and the poll does not
     * spin: it sleeps until the next attempt (bounded by block_ms). */
    int64_t start = bc_clock_monotonic_ms();
    bc_status st = bc_stream_consumer_poll(&c, &err);
    assert_int_equal(st, BC_ERR_UNAVAILABLE);
    assert_false(bc_redis_connected(&cr));
    for (int i = 0; i < 3; i++)
        assert_int_equal(bc_stream_consumer_poll(&c, &err), BC_ERR_UNAVAILABLE);
    assert_true(bc_clock_monotonic_ms() - start >= 10);
    const char *argv[] = {"PING"};
    redisReply *reply = NULL;
    assert_int_equal(bc_redis_command(&cr, 1, argv, NULL, &reply, &err), BC_ERR_UNAVAILABLE);

    assert_int_equal(bc_test_redis_restart(&srv), BC_OK); /* empty: the group is gone too */
    bc_redis r;
    connect_redis(&r);
    char id[BC_STREAM_ID_MAX + 1];
    add_entry(&r, "t:restart2", "after", 5, id);
    for (int i = 0; i < 100 && rec.calls == 0; i++)
        (void)bc_stream_consumer_poll(&c, &err);
    assert_int_equal(rec.calls, 1);
    assert_string_equal(rec.ids[0], id);
    assert_true(cr.generation > gen);
    assert_int_equal(pending(&r, "t:restart2", "g", NULL), 0);
    bc_redis_close(&cr);
    bc_redis_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_cap),
        cmocka_unit_test(test_refused_is_sticky_and_backs_off),
        cmocka_unit_test(test_error_reply_keeps_connection),
        cmocka_unit_test(test_consume_binary_in_order_and_ack),
        cmocka_unit_test(test_retry_keeps_order),
        cmocka_unit_test(test_restart_reads_own_pending_first),
        cmocka_unit_test(test_defer_then_ack_and_drop),
        cmocka_unit_test(test_claims_a_dead_consumers_entries),
        cmocka_unit_test(test_maxlen_bounds_the_stream),
        cmocka_unit_test(test_step_api_with_poll),
        cmocka_unit_test(test_survives_a_redis_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
