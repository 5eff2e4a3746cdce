/* Unit tests for device-agent/outbox: order across a reload, crash
 * leftovers deleted, corrupt files quarantined (never blocking the rest),
 * acks delete, and the limits refuse an append without writing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "device-agent/outbox.h"
#include "test_util.h"

/* root: a temp dir; dir: "<root>/outbox", made by the module itself. */
typedef bc_test_scratch fixture;

static int setup(void **state)
{
    return bc_test_scratch_setup(state, "outbox", "outbox");
}

static int teardown(void **state)
{
    return bc_test_scratch_teardown(state);
}

static uint64_t append(bc_outbox *ob, const char *topic, const char *payload)
{
    uint64_t seq = 0;
    bc_error err;
    bc_status rc = bc_outbox_append(ob, topic, 1, payload, strlen(payload), &seq, &err);
    if (rc != BC_OK)
        fail_msg("append failed: %s", err.text);
    return seq;
}

static void assert_msg(const bc_outbox_msg *m, uint64_t seq, const char *topic, const char *payload)
{
    assert_int_equal(m->seq, seq);
    assert_string_equal(m->topic, topic);
    assert_int_equal(m->payload_len, strlen(payload));
    assert_memory_equal(m->payload, payload, strlen(payload));
}

static void test_order_across_reload(void **state)
{
    fixture *f = *state;
    bc_outbox *ob = NULL;
    bc_outbox_load_report rep;
    bc_error err;
    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, &rep, &err), BC_OK);
    assert_int_equal(rep.loaded, 0);
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    bc_outbox_msg m;
    assert_int_equal(bc_outbox_peek(ob, &m), BC_ERR_NOT_FOUND);
    char topic[64], payload[64];
    for (int i = 0; i < 12; i++) {
        snprintf(topic, sizeof(topic), "bodycam/v1/devices/cam-1/%s", i % 2 ? "ack" : "event");
        snprintf(payload, sizeof(payload), "{\"seq\":%d}", i);
        assert_int_equal(append(ob, topic, payload), (uint64_t)i + 1);
    }
    assert_int_equal(bc_outbox_count(ob), 12);
    assert_true(bc_test_exists(f->dir, "0000000000000001.msg"));
    assert_true(bc_test_exists(f->dir, "0000000000000012.msg"));
    assert_int_equal(bc_test_count_entries(f->dir), 12);
    bc_outbox_close(ob);

    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, &rep, &err), BC_OK);
    assert_int_equal(rep.loaded, 12);
    assert_int_equal(rep.quarantined, 0);
    assert_int_equal(bc_outbox_count(ob), 12);
    for (size_t i = 0; i < 12; i++) {
        assert_int_equal(bc_outbox_at(ob, i, &m), BC_OK);
        snprintf(topic, sizeof(topic), "bodycam/v1/devices/cam-1/%s", i % 2 ? "ack" : "event");
        snprintf(payload, sizeof(payload), "{\"seq\":%zu}", i);
        assert_msg(&m, i + 1, topic, payload);
        assert_int_equal(m.qos, 1);
    }
    assert_int_equal(bc_outbox_at(ob, 12, &m), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_outbox_next_seq(ob), 13);
    assert_int_equal(append(ob, "t/x", "next"), 13);
    assert_int_equal(bc_outbox_find(ob, 7, &m), BC_OK);
    assert_int_equal(m.seq, 7);
    assert_int_equal(bc_outbox_find(ob, 99, &m), BC_ERR_NOT_FOUND);
    bc_outbox_close(ob);
}

static void test_ack(void **state)
{
    fixture *f = *state;
    bc_outbox *ob = NULL;
    bc_error err;
    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, NULL, &err), BC_OK);
    append(ob, "t/a", "one");
    append(ob, "t/b", "two");
    append(ob, "t/c", "three");
    assert_int_equal(bc_outbox_bytes(ob), 3 * 3 + 3 + 3 + 5);

    assert_int_equal(bc_outbox_ack(ob, 1, &err), BC_OK);
    assert_false(bc_test_exists(f->dir, "0000000000000001.msg"));
    bc_outbox_msg m;
    assert_int_equal(bc_outbox_peek(ob, &m), BC_OK);
    assert_msg(&m, 2, "t/b", "two");
    /* out of order: ack the last one */
    assert_int_equal(bc_outbox_ack(ob, 3, &err), BC_OK);
    assert_int_equal(bc_outbox_ack(ob, 3, &err), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_outbox_ack(ob, 42, &err), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_outbox_count(ob), 1);
    assert_int_equal(bc_outbox_bytes(ob), 3 + 3);
    assert_int_equal(bc_test_count_entries(f->dir), 1);
    bc_outbox_close(ob);

    /* the acked ones do not come back; seqs are not reused */
    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, NULL, &err), BC_OK);
    assert_int_equal(bc_outbox_count(ob), 1);
    assert_int_equal(bc_outbox_peek(ob, &m), BC_OK);
    assert_msg(&m, 2, "t/b", "two");
    assert_int_equal(append(ob, "t/d", "four"), 3);
    bc_outbox_close(ob);
}

static void write_raw(const char *dir, const char *name, const void *data, size_t len)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    bc_test_write_bytes(p, data, len);
}

static size_t read_raw(const char *dir, const char *name, uint8_t *buf, size_t cap)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, cap);
    assert_true(n > 0);
    close(fd);
    return (size_t)n;
}

static void test_crash_leftovers_and_corruption(void **state)
{
    fixture *f = *state;
    bc_outbox *ob = NULL;
    bc_outbox_load_report rep;
    bc_error err;
    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, NULL, &err), BC_OK);
    for (int i = 0; i < 6; i++)
        append(ob, "bodycam/v1/devices/cam-1/event", "{\"type\":\"docked\"}");
    bc_outbox_close(ob);

    /* a crash mid-write leaves a temporary file: never promised, deleted */
    write_raw(f->dir, "0000000000000007.msg.Ab12Cd.tmp", "half", 4);
    /* a flipped byte in message 2 */
    uint8_t buf[512];
    size_t n = read_raw(f->dir, "0000000000000002.msg", buf, sizeof(buf));
    buf[n - 40] ^= 0x01;
    write_raw(f->dir, "0000000000000002.msg", buf, n);
    /* message 3 cut short (a disk that lied about fsync) */
    n = read_raw(f->dir, "0000000000000003.msg", buf, sizeof(buf));
    write_raw(f->dir, "0000000000000003.msg", buf, n - 10);
    /* message 4's content under message 9's name: the seq does not match */
    n = read_raw(f->dir, "0000000000000004.msg", buf, sizeof(buf));
    write_raw(f->dir, "0000000000000009.msg", buf, n);
    /* not an outbox message at all */
    write_raw(f->dir, "0000000000000010.msg", "hello", 5);
    /* names that are not ours are ignored, not deleted */
    write_raw(f->dir, "README", "x", 1);
    write_raw(f->dir, "123.msg", "x", 1);

    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, &rep, &err), BC_OK);
    assert_int_equal(rep.tmp_removed, 1);
    assert_int_equal(rep.quarantined, 4);
    assert_int_equal(rep.loaded, 4);
    assert_int_equal(bc_outbox_count(ob), 4);
    uint64_t want[] = {1, 4, 5, 6};
    for (size_t i = 0; i < 4; i++) {
        bc_outbox_msg m;
        assert_int_equal(bc_outbox_at(ob, i, &m), BC_OK);
        assert_msg(&m, want[i], "bodycam/v1/devices/cam-1/event", "{\"type\":\"docked\"}");
    }
    assert_false(bc_test_exists(f->dir, "0000000000000007.msg.Ab12Cd.tmp"));
    assert_true(bc_test_exists(f->dir, "0000000000000002.msg.bad"));
    assert_true(bc_test_exists(f->dir, "0000000000000003.msg.bad"));
    assert_true(bc_test_exists(f->dir, "0000000000000009.msg.bad"));
    assert_true(bc_test_exists(f->dir, "0000000000000010.msg.bad"));
    assert_false(bc_test_exists(f->dir, "0000000000000002.msg"));
    assert_true(bc_test_exists(f->dir, "README"));
    assert_true(bc_test_exists(f->dir, "123.msg"));
    /* new seqs stay above every valid one */
    assert_int_equal(bc_outbox_next_seq(ob), 7);
    bc_outbox_close(ob);

    /* a second open finds nothing more to quarantine */
    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, &rep, &err), BC_OK);
    assert_int_equal(rep.quarantined, 0);
    assert_int_equal(rep.loaded, 4);
    bc_outbox_close(ob);
}

static void test_limits(void **state)
{
    fixture *f = *state;
    bc_outbox *ob = NULL;
    bc_error err;
    bc_outbox_limits limits = {.max_messages = 3, .max_bytes = 100, .first_seq = 500};
    assert_int_equal(bc_outbox_open(f->dir, &limits, &ob, NULL, &err), BC_OK);
    uint64_t seq = 0;
    assert_int_equal(append(ob, "t/1", "a"), 500);
    append(ob, "t/2", "b");
    append(ob, "t/3", "c");
    assert_int_equal(bc_outbox_append(ob, "t/4", 1, "d", 1, &seq, &err), BC_ERR_TOO_BIG);
    assert_non_null(strstr(err.text, "full"));
    assert_int_equal(bc_test_count_entries(f->dir), 3);
    assert_int_equal(bc_outbox_ack(ob, 500, &err), BC_OK);
    assert_int_equal(bc_outbox_append(ob, "t/4", 1, "d", 1, &seq, &err), BC_OK);
    assert_int_equal(seq, 503);

    /* bytes: topic + payload */
    bc_outbox_ack(ob, 501, NULL);
    char big[120];
    memset(big, 'x', sizeof(big));
    assert_int_equal(bc_outbox_append(ob, "t/5", 1, big, 93, &seq, &err), BC_ERR_TOO_BIG);
    assert_int_equal(bc_outbox_append(ob, "t/5", 1, big, 100 - 8 - 3, &seq, &err), BC_OK);
    assert_int_equal(bc_outbox_bytes(ob), 100);

    /* bad arguments */
    assert_int_equal(bc_outbox_append(ob, "", 1, "x", 1, &seq, &err), BC_ERR_INVAL);
    assert_int_equal(bc_outbox_append(ob, NULL, 1, "x", 1, &seq, &err), BC_ERR_INVAL);
    assert_int_equal(bc_outbox_append(ob, "t", 3, "x", 1, &seq, &err), BC_ERR_INVAL);
    assert_int_equal(bc_outbox_append(ob, "t", -1, "x", 1, &seq, &err), BC_ERR_INVAL);
    char long_topic[300];
    memset(long_topic, 'a', sizeof(long_topic) - 1);
    long_topic[sizeof(long_topic) - 1] = '\0';
    assert_int_equal(bc_outbox_append(ob, long_topic, 1, "x", 1, &seq, &err), BC_ERR_INVAL);
    assert_int_equal(bc_outbox_count(ob), 3);
    bc_outbox_close(ob);

    /* a backlog over lowered limits is kept whole; appends wait for it */
    bc_outbox_limits tight = {.max_messages = 1};
    assert_int_equal(bc_outbox_open(f->dir, &tight, &ob, NULL, &err), BC_OK);
    assert_int_equal(bc_outbox_count(ob), 3);
    assert_int_equal(bc_outbox_append(ob, "t", 0, "x", 1, &seq, &err), BC_ERR_TOO_BIG);
    assert_int_equal(bc_outbox_next_seq(ob), 505);
    bc_outbox_close(ob);
}

static void test_binary_payload_and_qos(void **state)
{
    fixture *f = *state;
    bc_outbox *ob = NULL;
    bc_error err;
    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, NULL, &err), BC_OK);
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 7);
    uint64_t seq;
    assert_int_equal(bc_outbox_append(ob, "t/bin", 2, bin, sizeof(bin), &seq, &err), BC_OK);
    assert_int_equal(bc_outbox_append(ob, "t/empty", 0, NULL, 0, &seq, &err), BC_OK);
    bc_outbox_close(ob);
    assert_int_equal(bc_outbox_open(f->dir, NULL, &ob, NULL, &err), BC_OK);
    bc_outbox_msg m;
    assert_int_equal(bc_outbox_at(ob, 0, &m), BC_OK);
    assert_int_equal(m.qos, 2);
    assert_int_equal(m.payload_len, sizeof(bin));
    assert_memory_equal(m.payload, bin, sizeof(bin));
    assert_int_equal(bc_outbox_at(ob, 1, &m), BC_OK);
    assert_int_equal(m.qos, 0);
    assert_int_equal(m.payload_len, 0);
    assert_string_equal(m.topic, "t/empty");
    bc_outbox_close(ob);
}

static void test_open_failures(void **state)
{
    fixture *f = *state;
    bc_outbox *ob = NULL;
    bc_error err;
    char nested[256];
    snprintf(nested, sizeof(nested), "%s/missing/outbox", f->root);
    assert_int_equal(bc_outbox_open(nested, NULL, &ob, NULL, &err), BC_ERR_IO);
    assert_null(ob);
    assert_int_equal(bc_outbox_open(NULL, NULL, &ob, NULL, &err), BC_ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_across_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_leftovers_and_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_payload_and_qos, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
