/* Unit tests for device-agent/control: the parser, and the socket for
 * real - a UNIX socket in a temp dir driven by a real reactor: mode 0600,
 * answers in order (also pipelined), unknown and malformed commands, the
 * line limit, quit, several clients at once, a client leaving mid-line,
 * stale and live socket files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/clock.h"
#include "device-agent/control.h"
#include "test_util.h"

/* ---- the parser ---- */

static void assert_parse_error(const char *line, const char *text)
{
    bc_control_command cmd;
    bc_error err;
    bc_error_clear(&err);
    assert_int_equal(bc_control_parse(line, &cmd, &err), BC_ERR_PARSE);
    assert_string_equal(err.text, text);
}

static void test_parse(void **state)
{
    (void)state;
    bc_control_command cmd;
    bc_error err;
    static const struct {
        const char *line;
        bc_control_verb verb;
    } plain[] = {
        {"warn", BC_CONTROL_WARN},           {"record", BC_CONTROL_RECORD},
        {"emergency", BC_CONTROL_EMERGENCY}, {"stop", BC_CONTROL_STOP},
        {"dock", BC_CONTROL_DOCK},           {"undock", BC_CONTROL_UNDOCK},
        {"status", BC_CONTROL_STATUS},       {"quit", BC_CONTROL_QUIT},
        {"  warn\t ", BC_CONTROL_WARN},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        assert_int_equal(bc_control_parse(plain[i].line, &cmd, &err), BC_OK);
        assert_int_equal(cmd.verb, plain[i].verb);
    }
    assert_int_equal(bc_control_parse("survey 4", &cmd, &err), BC_OK);
    assert_int_equal(cmd.verb, BC_CONTROL_SURVEY);
    assert_int_equal(cmd.score, 4);
    assert_int_equal(bc_control_parse("view rec_2026-11-28", &cmd, &err), BC_OK);
    assert_int_equal(cmd.verb, BC_CONTROL_VIEW);
    assert_string_equal(cmd.id, "rec_2026-11-28");
    assert_int_equal(bc_control_parse("delete A1", &cmd, &err), BC_OK);
    assert_int_equal(cmd.verb, BC_CONTROL_DELETE);
    assert_string_equal(cmd.id, "A1");

    assert_parse_error("jump", "unknown command 'jump'");
    assert_parse_error("WARN", "unknown command 'WARN'");
    assert_parse_error("x'\x01y", "unknown command 'x??y'");
    assert_parse_error("", "empty command");
    assert_parse_error("   ", "empty command");
    assert_parse_error("warn now", "'warn' takes no argument");
    assert_parse_error("survey", "'survey' needs a score from 1 to 5");
    assert_parse_error("survey 0", "'survey' needs a score from 1 to 5");
    assert_parse_error("survey 6", "'survey' needs a score from 1 to 5");
    assert_parse_error("survey 33", "'survey' needs a score from 1 to 5");
    assert_parse_error("survey 3 4", "'survey' needs a score from 1 to 5");
    assert_parse_error("view", "'view' needs one recording id ([A-Za-z0-9_-], 1 to 64 characters)");
    assert_parse_error("delete ../x",
                       "'delete' needs one recording id ([A-Za-z0-9_-], 1 to 64 characters)");
    char long_line[300];
    memset(long_line, 'a', sizeof(long_line) - 1);
    long_line[sizeof(long_line) - 1] = '\0';
    assert_parse_error(long_line, "line too long");
    assert_string_equal(bc_control_verb_name(BC_CONTROL_SURVEY), "survey");
    assert_string_equal(bc_control_verb_name(BC_CONTROL_VERB_COUNT), "unknown");
}

/* ---- the socket ---- */

typedef struct fixture {
    char dir[64];
    char path[128];
    bc_reactor *r;
    bc_control *ctl;
    int handled;
    bc_control_command last;
} fixture;

static void handler(const bc_control_command *cmd, char *answer, size_t size, void *userdata)
{
    fixture *f = userdata;
    f->handled++;
    f->last = *cmd;
    switch (cmd->verb) {
    case BC_CONTROL_SURVEY:
        snprintf(answer, size, "ok survey %d", cmd->score);
        break;
    case BC_CONTROL_VIEW:
        snprintf(answer, size, "error: recordings cannot be viewed on the camera");
        break;
    case BC_CONTROL_STATUS:
        snprintf(answer, size, "ok state=standby\nwith a newline");
        break;
    case BC_CONTROL_STOP:
        answer[0] = '\0'; /* a handler that forgot to answer */
        break;
    default:
        snprintf(answer, size, "ok %s", bc_control_verb_name(cmd->verb));
        break;
    }
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || bc_test_tempdir(f->dir, sizeof(f->dir), "control") != BC_OK)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/control.sock", f->dir);
    bc_error err;
    if (bc_reactor_new(&f->r, &err) != BC_OK)
        return -1;
    if (bc_control_open(f->r, f->path, handler, f, &f->ctl, &err) != BC_OK) {
        fprintf(stderr, "open: %s\n", err.text);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_control_close(f->ctl);
    bc_reactor_free(f->r);
    bc_test_remove_tree(f->dir);
    free(f);
    return 0;
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    assert_true(strlen(path) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, path, strlen(path));
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

static void send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Runs the reactor until `lines` answer lines arrived on fd (or EOF, or
 * 3 s); returns what was read. *eof tells whether the server closed. */
static char *pump_until(fixture *f, int fd, int lines, bool *eof)
{
    static char buf[8192];
    size_t len = 0;
    *eof = false;
    /* lines == 0: just let the server run a moment */
    int64_t end = bc_clock_monotonic_ms() + (lines > 0 ? 3000 : 200);
    bc_error err;
    while (bc_clock_monotonic_ms() < end) {
        assert_int_equal(bc_reactor_run_once(f->r, 10, &err), BC_OK);
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            *eof = true;
            break;
        }
        if (n > 0)
            len += (size_t)n;
        buf[len] = '\0';
        int seen = 0;
        for (size_t i = 0; i < len; i++)
            seen += buf[i] == '\n';
        if (seen >= lines && lines > 0)
            break;
    }
    buf[len] = '\0';
    return buf;
}

static char *ask(fixture *f, int fd, const char *line)
{
    send_text(fd, line);
    bool eof;
    return pump_until(f, fd, 1, &eof);
}

static void test_socket_mode_and_commands(void **state)
{
    fixture *f = *state;
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    int fd = connect_to(f->path);
    assert_string_equal(ask(f, fd, "warn\n"), "ok warn\n");
    assert_int_equal(f->last.verb, BC_CONTROL_WARN);
    assert_string_equal(ask(f, fd, "survey 3\r\n"), "ok survey 3\n");
    assert_int_equal(f->last.score, 3);
    assert_string_equal(ask(f, fd, "view rec-1\n"),
                        "error: recordings cannot be viewed on the camera\n");
    assert_string_equal(f->last.id, "rec-1");
    assert_string_equal(ask(f, fd, "status\n"), "ok state=standby with a newline\n");
    assert_string_equal(ask(f, fd, "stop\n"), "error: no answer\n");
    int before = f->handled;
    assert_string_equal(ask(f, fd, "fly away\n"), "error: unknown command 'fly'\n");
    assert_string_equal(ask(f, fd, "survey 9\n"), "error: 'survey' needs a score from 1 to 5\n");
    assert_string_equal(ask(f, fd, "\n"), "error: empty command\n");
    assert_int_equal(f->handled, before); /* bad commands never reach the handler */
    assert_int_equal(bc_control_client_count(f->ctl), 1);

    /* quit: answered here, then the connection closes */
    send_text(fd, "quit\n");
    bool eof;
    char *got = pump_until(f, fd, 2, &eof);
    assert_string_equal(got, "ok bye\n");
    assert_true(eof);
    assert_int_equal(f->handled, before);
    close(fd);
    assert_int_equal(bc_control_client_count(f->ctl), 0);
}

static void test_pipelined_in_order(void **state)
{
    fixture *f = *state;
    int fd = connect_to(f->path);
    send_text(fd, "warn\nwarn\nrecord\nsurvey 5\nstatus");
    bool eof;
    char *got = pump_until(f, fd, 4, &eof);
    assert_string_equal(got, "ok warn\nok warn\nok record\nok survey 5\n");
    assert_int_equal(f->handled, 4); /* "status" has no newline yet */
    send_text(fd, "\n");
    got = pump_until(f, fd, 1, &eof);
    assert_string_equal(got, "ok state=standby with a newline\n");

    /* many commands in one go, more than one output buffer holds */
    char many[6000] = "";
    for (int i = 0; i < 600; i++)
        strcat(many, "dock\n");
    send_text(fd, many);
    got = pump_until(f, fd, 600, &eof);
    assert_int_equal(strlen(got), 600 * strlen("ok dock\n"));
    close(fd);
}

static void test_line_too_long(void **state)
{
    fixture *f = *state;
    /* exactly 256 bytes is a line (an unknown command), not too long */
    int fd = connect_to(f->path);
    char line[400];
    memset(line, 'a', 256);
    line[256] = '\n';
    line[257] = '\0';
    char *got = ask(f, fd, line);
    assert_non_null(strstr(got, "error: unknown command 'aaaa"));
    assert_int_equal(bc_control_client_count(f->ctl), 1);

    /* 257 bytes: refused and closed, even before the newline comes */
    memset(line, 'b', 300);
    line[300] = '\0';
    send_text(fd, line);
    bool eof;
    got = pump_until(f, fd, 2, &eof);
    assert_string_equal(got, "error: line too long\n");
    assert_true(eof);
    assert_int_equal(bc_control_client_count(f->ctl), 0);
    close(fd);
}

static void test_several_clients_and_hangups(void **state)
{
    fixture *f = *state;
    int a = connect_to(f->path);
    int b = connect_to(f->path);
    int c = connect_to(f->path);
    bool eof;
    /* half lines from two clients at once do not mix */
    send_text(a, "em");
    send_text(b, "und");
    pump_until(f, c, 0, &eof);
    assert_int_equal(bc_control_client_count(f->ctl), 3);
    send_text(b, "ock\n");
    send_text(a, "ergency\n");
    assert_string_equal(pump_until(f, b, 1, &eof), "ok undock\n");
    assert_string_equal(pump_until(f, a, 1, &eof), "ok emergency\n");

    /* c leaves mid-line: harmless, nothing handled */
    int before = f->handled;
    send_text(c, "rec");
    close(c);
    pump_until(f, a, 0, &eof);
    assert_int_equal(f->handled, before);
    assert_int_equal(bc_control_client_count(f->ctl), 2);

    /* b sends a command and leaves before reading the answer */
    send_text(b, "warn\n");
    close(b);
    pump_until(f, a, 0, &eof);
    assert_int_equal(bc_control_client_count(f->ctl), 1);

    /* a half-closes after its command: it still gets the answer */
    send_text(a, "dock\n");
    shutdown(a, SHUT_WR);
    char *got = pump_until(f, a, 2, &eof);
    assert_string_equal(got, "ok dock\n");
    assert_true(eof);
    close(a);
    assert_int_equal(bc_control_client_count(f->ctl), 0);

    /* and the server still serves */
    int d = connect_to(f->path);
    assert_string_equal(ask(f, d, "status\n"), "ok state=standby with a newline\n");
    close(d);
}

static void test_stale_and_live_socket_files(void **state)
{
    fixture *f = *state;
    bc_control *second = NULL;
    bc_error err;
    /* live: our own server listens there */
    assert_int_equal(bc_control_open(f->r, f->path, handler, f, &second, &err), BC_ERR_EXISTS);
    assert_non_null(strstr(err.text, "listening"));
    int fd = connect_to(f->path);
    assert_string_equal(ask(f, fd, "warn\n"), "ok warn\n"); /* untouched */
    close(fd);

    /* close removes the socket file */
    bc_control_close(f->ctl);
    f->ctl = NULL;
    struct stat st;
    assert_int_equal(lstat(f->path, &st), -1);

    /* stale: a socket file nobody listens on (a crashed agent) */
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    assert_true(strlen(f->path) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, f->path, strlen(f->path));
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(s);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(bc_control_open(f->r, f->path, handler, f, &f->ctl, &err), BC_OK);
    fd = connect_to(f->path);
    assert_string_equal(ask(f, fd, "undock\n"), "ok undock\n");
    close(fd);

    /* not a socket: refused, left alone */
    char file[160];
    snprintf(file, sizeof(file), "%s/plain", f->dir);
    bc_test_write_file(file, "keep");
    assert_int_equal(bc_control_open(f->r, file, handler, f, &second, &err), BC_ERR_EXISTS);
    assert_int_equal(lstat(file, &st), 0);
    unlink(file);

    /* a path too long for a socket address */
    char longpath[200];
    memset(longpath, 'p', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(bc_control_open(f->r, longpath, handler, f, &second, &err), BC_ERR_TOO_BIG);
    bc_control_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test_setup_teardown(test_socket_mode_and_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_clients_and_hangups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_and_live_socket_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
