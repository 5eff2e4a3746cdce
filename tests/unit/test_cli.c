/* Unit tests for services/common/cli: the exact lines a tool prints for a
 * failure, a usage error and a bad option (stderr captured in a temporary
 * file), the exit codes they return, and the strict integer parser's edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"

/* stderr, redirected into an anonymous temporary file. */
typedef struct capture {
    FILE *file;
    int saved_stderr;
} capture;

static void capture_begin(capture *c)
{
    fflush(stderr);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved_stderr = dup(STDERR_FILENO);
    assert_true(c->saved_stderr >= 0);
    assert_int_equal(dup2(fileno(c->file), STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr and copies what was written into out (NUL-terminated). */
static void capture_end(capture *c, char *out, size_t size)
{
    fflush(stderr);
    assert_int_equal(dup2(c->saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(c->saved_stderr);
    rewind(c->file);
    size_t n = fread(out, 1, size - 1, c->file);
    out[n] = '\0';
    fclose(c->file);
}

static void test_messages_name_the_program(void **state)
{
    (void)state;
    capture c;
    char out[512];
    bc_cli_init("bodycam-x", "\nTry 'bodycam-x --help'.");
    capture_begin(&c);
    int fail_rc = bc_cli_fail("no CA in '%s'", "pki");
    int usage_rc = bc_cli_usage_error("'%s' takes %d argument(s)", "status", 2);
    capture_end(&c, out, sizeof(out));
    assert_int_equal(fail_rc, BC_CLI_EXIT_FAILURE);
    assert_int_equal(usage_rc, BC_CLI_EXIT_USAGE);
    assert_string_equal(out, "bodycam-x: error: no CA in 'pki'\n"
                             "bodycam-x: 'status' takes 2 argument(s)\n"
                             "Try 'bodycam-x --help'.\n");

    /* another tool's hint; NULL means none */
    bc_cli_init("bodycam-y", " (see --help)");
    capture_begin(&c);
    bc_cli_usage_error("no command given");
    bc_cli_init("bodycam-z", NULL);
    bc_cli_usage_error("bad");
    capture_end(&c, out, sizeof(out));
    assert_string_equal(out, "bodycam-y: no command given (see --help)\n"
                             "bodycam-z: bad\n");
}

static void test_option_errors(void **state)
{
    (void)state;
    capture c;
    char out[512];
    char prog[] = "tool", opt[] = "--days", bogus[] = "--colour";
    char *argv[] = {prog, opt, bogus, NULL};
    bc_cli_init("tool", " (see --help)");
    capture_begin(&c);
    optind = 2; /* getopt_long leaves optind after the option it refused */
    int missing_rc = bc_cli_option_error(':', argv);
    optind = 3;
    int unknown_rc = bc_cli_option_error('?', argv);
    capture_end(&c, out, sizeof(out));
    assert_int_equal(missing_rc, BC_CLI_EXIT_USAGE);
    assert_int_equal(unknown_rc, BC_CLI_EXIT_USAGE);
    assert_string_equal(out, "tool: option '--days' needs a value (see --help)\n"
                             "tool: unknown option '--colour' (see --help)\n");
    optind = 1;
}

static void test_parse_long(void **state)
{
    (void)state;
    long v = -7;
    assert_int_equal(bc_cli_parse_long("365", 1, 36500, &v), BC_OK);
    assert_int_equal(v, 365);
    assert_int_equal(bc_cli_parse_long("1", 1, 1, &v), BC_OK);
    assert_int_equal(v, 1);
    assert_int_equal(bc_cli_parse_long("-3", -5, 0, &v), BC_OK);
    assert_int_equal(v, -3);
    assert_int_equal(bc_cli_parse_long("65535", 1, 65535, &v), BC_OK);
    assert_int_equal(v, 65535);

    static const char *const bad[] = {
        "", "0", "65536", "12x", "x12", "1.5", "0x10", "-1", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 42;
        if (bc_cli_parse_long(bad[i], 1, 65535, &v) != BC_ERR_INVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(v, 42); /* untouched on failure */
    }
    char max_text[32];
    snprintf(max_text, sizeof(max_text), "%ld", LONG_MAX);
    assert_int_equal(bc_cli_parse_long(max_text, 0, LONG_MAX, &v), BC_OK);
    assert_true(v == LONG_MAX);
    assert_int_equal(bc_cli_parse_long(NULL, 0, 1, &v), BC_ERR_INVAL);
    assert_int_equal(bc_cli_parse_long("1", 0, 1, NULL), BC_ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_name_the_program),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_parse_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
