/*
 * bodycam-button - press a camera's buttons from the command line.
 *
 *   bodycam-button --socket PATH COMMAND [ARG]
 *
 * Sends one line to the agent's control socket, prints the answer line and
 * exits 0 for "ok ...", 1 for "error: ...", 2 for a usage error, 3 when the
 * socket cannot be reached or gives no answer.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
#define LINE_MAX_BYTES 256
#define ANSWER_CAP 1024
#define TIMEOUT_MS 10000

static void usage(void)
{
    printf("usage: bodycam-button --socket PATH COMMAND [ARG]\n"
           "\n"
           "Sends COMMAND to a camera agent's control socket and prints its answer.\n"
           "\n"
           "commands:\n"
           "  warn              give a spoken warning (two are needed before record)\n"
           "  record            start recording (after two warnings)\n"
           "  emergency         start recording at once (flagged: without two warnings)\n"
           "  stop              stop recording\n"
           "  dock | undock     put the camera in or take it out of its dock\n"
           "  status            show the camera's state\n"
           "  survey N          the officer's shift-end feeling-of-safety score, 1..5\n"
           "  view ID | delete ID   (refused by design: recordings cannot be viewed\n"
           "                        or deleted on the camera)\n"
           "\n"
           "options:\n"
           "  -s, --socket PATH the control socket (required)\n"
           "  -h, --help        this text\n"
           "\n"
           "exit status: 0 ok, 1 refused (error: ...), 2 usage, 3 socket unreachable\n");
}

/* Builds "COMMAND[ ARG]\n"; -1 if it is not one valid line. */
static int build_line(char *out, size_t size, const char *command, const char *arg)
{
    int n = arg != NULL ? snprintf(out, size, "%s %s\n", command, arg)
                        : snprintf(out, size, "%s\n", command);
    if (n < 0 || (size_t)n >= size || (size_t)n - 1 > LINE_MAX_BYTES)
        return -1;
    if (strchr(out, '\n') != out + n - 1 || strchr(out, '\r') != NULL || command[0] == '\0')
        return -1;
    return n;
}

static int connect_socket(const char *path)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "bodycam-button: socket path too long: %s\n", path);
        return -1;
    }
    memcpy(addr.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        fprintf(stderr, "bodycam-button: socket: %s\n", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) != 0) {
        fprintf(stderr, "bodycam-button: cannot connect to %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads up to the first newline (excluded) into out; -1 on error, timeout
 * or EOF before a newline. */
static int read_answer(int fd, char *out, size_t size)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "bodycam-button: no answer\n");
            return -1;
        }
        ssize_t n = read(fd, out + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "bodycam-button: connection closed without an answer\n");
            return -1;
        }
        len += (size_t)n;
        out[len] = '\0';
        char *nl = strchr(out, '\n');
        if (nl != NULL) {
            *nl = '\0';
            return 0;
        }
        if (len == size - 1) {
            fprintf(stderr, "bodycam-button: answer too long\n");
            return -1;
        }
    }
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *socket_path = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "+s:h", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            socket_path = optarg;
            break;
        case 'h':
            usage();
            return EXIT_OK;
        default:
            fprintf(stderr,
                    "usage: bodycam-button --socket PATH COMMAND [ARG]  (--help for more)\n");
            return EXIT_USAGE;
        }
    }
    int rest = argc - optind;
    if (socket_path == NULL || rest < 1 || rest > 2) {
        fprintf(stderr, "usage: bodycam-button --socket PATH COMMAND [ARG]  (--help for more)\n");
        return EXIT_USAGE;
    }
    char line[LINE_MAX_BYTES + 2];
    int n = build_line(line, sizeof(line), argv[optind], rest == 2 ? argv[optind + 1] : NULL);
    if (n < 0) {
        fprintf(stderr, "bodycam-button: the command must be one line of at most %d bytes\n",
                LINE_MAX_BYTES);
        return EXIT_USAGE;
    }

    int fd = connect_socket(socket_path);
    if (fd < 0)
        return EXIT_UNREACHABLE;
    char answer[ANSWER_CAP];
    int status = EXIT_UNREACHABLE;
    if (send_all(fd, line, (size_t)n) != 0) {
        fprintf(stderr, "bodycam-button: cannot send to %s: %s\n", socket_path, strerror(errno));
    } else if (read_answer(fd, answer, sizeof(answer)) == 0) {
        printf("%s\n", answer);
        if (strncmp(answer, "ok", 2) == 0 && (answer[2] == '\0' || answer[2] == ' '))
            status = EXIT_OK;
        else if (strncmp(answer, "error:", 6) == 0)
            status = EXIT_REFUSED;
        else
            fprintf(stderr, "bodycam-button: unexpected answer\n");
    }
    close(fd);
    return status;
}
