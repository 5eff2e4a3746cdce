/*
 * fd.h - setting up file descriptors for an event loop.
 *
 * Every descriptor a poll() loop watches (the reactor's wakeup pipe, the
 * control socket and its clients, a daemon's stop pipe) must be
 * non-blocking, or one slow peer stalls the whole process, and
 * close-on-exec, so that a helper program started later does not inherit
 * it (and keep a socket or a pipe end open behind our back).
 */
#ifndef BC_COMMON_FD_H
#define BC_COMMON_FD_H

#include "proto/status.h"

/* Adds O_NONBLOCK to fd's status flags and FD_CLOEXEC to its descriptor
 * flags, keeping the other flags. BC_ERR_IO when fcntl fails (errno kept;
 * a flag may then be set already). */
bc_status bc_fd_set_nonblock_cloexec(int fd);

#endif
