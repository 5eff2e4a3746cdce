/* Unit tests for device-agent/prebuffer: the ring keeps exactly the last
 * `capacity` bytes in order, drains them oldest first in at most two
 * pieces and is empty afterwards; capacity 0 keeps nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "device-agent/prebuffer.h"

typedef struct collected {
    uint8_t data[4096];
    size_t len;
    int pieces;
    int fail_at_piece; /* 0: never */
} collected;

static bc_status collect(const uint8_t *data, size_t len, void *userdata)
{
    collected *c = userdata;
    c->pieces++;
    assert_true(len > 0);
    if (c->fail_at_piece == c->pieces)
        return BC_ERR_IO;
    assert_true(c->len + len <= sizeof(c->data));
    memcpy(c->data + c->len, data, len);
    c->len += len;
    return BC_OK;
}

static void test_small_and_wrapping(void **state)
{
    (void)state;
    bc_prebuffer *pb = NULL;
    assert_int_equal(bc_prebuffer_new(10, &pb), BC_OK);
    assert_int_equal(bc_prebuffer_capacity(pb), 10);
    bc_prebuffer_write(pb, "abc", 3);
    assert_int_equal(bc_prebuffer_len(pb), 3);
    collected c = {0};
    assert_int_equal(bc_prebuffer_drain(pb, collect, &c), BC_OK);
    assert_int_equal(c.pieces, 1);
    assert_int_equal(c.len, 3);
    assert_memory_equal(c.data, "abc", 3);
    assert_int_equal(bc_prebuffer_len(pb), 0);

    /* 0..24 in writes of 7: the last ten are 15..24, oldest first */
    uint8_t bytes[25];
    for (int i = 0; i < 25; i++)
        bytes[i] = (uint8_t)i;
    for (int i = 0; i < 25; i += 7)
        bc_prebuffer_write(pb, bytes + i, (size_t)(25 - i < 7 ? 25 - i : 7));
    assert_int_equal(bc_prebuffer_len(pb), 10);
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_prebuffer_drain(pb, collect, &c), BC_OK);
    assert_int_equal(c.len, 10);
    assert_memory_equal(c.data, bytes + 15, 10);
    assert_int_equal(c.pieces, 2); /* it had wrapped */

    /* one write larger than the ring keeps its tail */
    bc_prebuffer_write(pb, "0123456789ABCDEFGHIJ", 20);
    memset(&c, 0, sizeof(c));
    bc_prebuffer_drain(pb, collect, &c);
    assert_int_equal(c.len, 10);
    assert_memory_equal(c.data, "ABCDEFGHIJ", 10);

    /* nothing to drain: the sink is not called */
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_prebuffer_drain(pb, collect, &c), BC_OK);
    assert_int_equal(c.pieces, 0);

    bc_prebuffer_write(pb, "xyz", 3);
    bc_prebuffer_clear(pb);
    assert_int_equal(bc_prebuffer_len(pb), 0);
    bc_prebuffer_free(pb);
    bc_prebuffer_free(NULL);
}

static void test_capacity_zero_keeps_nothing(void **state)
{
    (void)state;
    bc_prebuffer *pb = NULL;
    assert_int_equal(bc_prebuffer_new(0, &pb), BC_OK);
    bc_prebuffer_write(pb, "abc", 3);
    assert_int_equal(bc_prebuffer_len(pb), 0);
    collected c = {0};
    assert_int_equal(bc_prebuffer_drain(pb, collect, &c), BC_OK);
    assert_int_equal(c.pieces, 0);
    bc_prebuffer_free(pb);
}

static void test_sink_failure_still_empties(void **state)
{
    (void)state;
    bc_prebuffer *pb = NULL;
    assert_int_equal(bc_prebuffer_new(8, &pb), BC_OK);
    bc_prebuffer_write(pb, "0123456789ab", 12); /* wraps: two pieces */
    bc_prebuffer_write(pb, "cd", 2);
    collected c = {.fail_at_piece = 1};
    assert_int_equal(bc_prebuffer_drain(pb, collect, &c), BC_ERR_IO);
    assert_int_equal(c.pieces, 1); /* stopped at the failure */
    assert_int_equal(bc_prebuffer_len(pb), 0);
    bc_prebuffer_free(pb);
}

/* Random write sizes against a model: the last `cap` bytes of the stream. */
static void test_against_model(void **state)
{
    (void)state;
    srand(7);
    for (size_t cap = 1; cap < 64; cap += 5) {
        bc_prebuffer *pb = NULL;
        assert_int_equal(bc_prebuffer_new(cap, &pb), BC_OK);
        uint8_t stream[2000];
        size_t total = 0;
        for (int round = 0; round < 40; round++) {
            size_t n = (size_t)rand() % (cap * 2 + 1);
            if (total + n > sizeof(stream))
                break;
            for (size_t i = 0; i < n; i++)
                stream[total + i] = (uint8_t)rand();
            bc_prebuffer_write(pb, stream + total, n);
            total += n;
            if (rand() % 7 == 0) {
                collected c = {0};
                assert_int_equal(bc_prebuffer_drain(pb, collect, &c), BC_OK);
                size_t want = total < cap ? total : cap;
                assert_int_equal(c.len, want);
                assert_true(c.pieces <= 2);
                if (want > 0)
                    assert_memory_equal(c.data, stream + total - want, want);
                /* start a fresh stream after a drain */
                total = 0;
            }
        }
        bc_prebuffer_free(pb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_and_wrapping),
        cmocka_unit_test(test_capacity_zero_keeps_nothing),
        cmocka_unit_test(test_sink_failure_still_empties),
        cmocka_unit_test(test_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
