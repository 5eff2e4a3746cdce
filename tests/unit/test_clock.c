/* Unit tests for services/common/clock: the offset file moves the wall clock
 * (how tests jump 28 days), the monotonic clock never moves back, and a
 * replaced source wins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/clock.h"

static int64_t fixed_source(void)
{
    return 42;
}

/* Polls the clock (for at most 2 s of monotonic time) until it is, or is
 * no longer, 28 days ahead of `before`; returns the last reading. */
static int64_t wait_for_clock(int64_t before, int want_offset)
{
    int64_t deadline = bc_clock_monotonic_ms() + 2000;
    int64_t now = bc_clock_now_ms();
    while (((now - before >= 2419200000LL) != want_offset) && bc_clock_monotonic_ms() < deadline) {
        usleep(5 * 1000);
        now = bc_clock_now_ms();
    }
    return now;
}

static void test_offset_file(void **state)
{
    (void)state;
    char path[] = "/tmp/bc-clock-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *days28 = "2419200000\n";
    assert_int_equal(write(fd, days28, strlen(days28)), (ssize_t)strlen(days28));
    close(fd);

    int64_t before = bc_clock_now_ms();
    setenv("BODYCAM_CLOCK_FILE", path, 1);
    int64_t after = wait_for_clock(before, 1); /* re-read at most every 100 ms */
    assert_true(after - before >= 2419200000LL);
    assert_true(after - before < 2419200000LL + 60000);

    unlink(path);
    after = wait_for_clock(before, 0); /* a missing file means no offset */
    assert_true(after - before < 60000);
    unsetenv("BODYCAM_CLOCK_FILE");
}

static void test_source_and_monotonic(void **state)
{
    (void)state;
    bc_clock_set_source(fixed_source);
    assert_int_equal(bc_clock_now_ms(), 42);
    bc_clock_set_source(NULL);
    assert_true(bc_clock_now_ms() > 1700000000000LL);
    int64_t a = bc_clock_monotonic_ms();
    int64_t b = bc_clock_monotonic_ms();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_file),
        cmocka_unit_test(test_source_and_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
