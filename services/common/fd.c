/*
 * fd.c - non-blocking, close-on-exec descriptors (see fd.h).
 */
#include "common/fd.h"

#include <fcntl.h>

bc_status bc_fd_set_nonblock_cloexec(int fd)
{
    int status_flags = fcntl(fd, F_GETFL);
    if (status_flags < 0 || fcntl(fd, F_SETFL, status_flags | O_NONBLOCK) != 0)
        return BC_ERR_IO;
    int fd_flags = fcntl(fd, F_GETFD);
    if (fd_flags < 0 || fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) != 0)
        return BC_ERR_IO;
    return BC_OK;
}
