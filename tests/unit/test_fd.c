/* Unit tests for services/common/fd: both flags end up set on a pipe and a
 * socket, the flags already there are kept, and a bad descriptor is an
 * error with errno kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/fd.h"

static void assert_nonblock_cloexec(int fd)
{
    int status_flags = fcntl(fd, F_GETFL);
    int fd_flags = fcntl(fd, F_GETFD);
    assert_true(status_flags >= 0 && fd_flags >= 0);
    assert_true(status_flags & O_NONBLOCK);
    assert_true(fd_flags & FD_CLOEXEC);
}

static void test_pipe_and_socket(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_false(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    assert_false(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
    assert_int_equal(bc_fd_set_nonblock_cloexec(p[0]), BC_OK);
    assert_int_equal(bc_fd_set_nonblock_cloexec(p[1]), BC_OK);
    assert_nonblock_cloexec(p[0]);
    assert_nonblock_cloexec(p[1]);
    /* non-blocking for real: an empty pipe says EAGAIN instead of waiting */
    char c;
    errno = 0;
    assert_int_equal(read(p[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
    /* idempotent */
    assert_int_equal(bc_fd_set_nonblock_cloexec(p[0]), BC_OK);
    assert_nonblock_cloexec(p[0]);
    close(p[0]);
    close(p[1]);

    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(s >= 0);
    assert_int_equal(bc_fd_set_nonblock_cloexec(s), BC_OK);
    assert_nonblock_cloexec(s);
    close(s);
}

static void test_other_flags_kept(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[1], F_SETFL, O_APPEND), 0);
    assert_int_equal(bc_fd_set_nonblock_cloexec(p[1]), BC_OK);
    assert_true(fcntl(p[1], F_GETFL) & O_APPEND);
    assert_nonblock_cloexec(p[1]);
    close(p[0]);
    close(p[1]);
}

static void test_bad_descriptor(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    errno = 0;
    assert_int_equal(bc_fd_set_nonblock_cloexec(p[0]), BC_ERR_IO);
    assert_int_equal(errno, EBADF);
    assert_int_equal(bc_fd_set_nonblock_cloexec(-1), BC_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_and_socket),
        cmocka_unit_test(test_other_flags_kept),
        cmocka_unit_test(test_bad_descriptor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
