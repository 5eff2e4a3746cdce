/* Unit tests for services/common/config: defaults, file parsing, ranges,
 * unknown options and required options, each with the error it must give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/config.h"

static int64_t interval;
static int verbose;
static char name[16];
static char required_path[64];

static const bc_config_option table[] = {
    {"interval", BC_CFG_INT, 1, 3600, "10", &interval, 0, "s", "seconds between reports"},
    {"verbose", BC_CFG_BOOL, 0, 0, "false", &verbose, 0, NULL, "log more"},
    {"name", BC_CFG_STRING, 0, 0, "cam", name, sizeof(name), NULL, "a name"},
    {"path", BC_CFG_STRING, 0, 0, NULL, required_path, sizeof(required_path), NULL, "required"},
};
#define N (sizeof(table) / sizeof(table[0]))

static char *write_file(const char *content)
{
    static char path[64];
    strcpy(path, "/tmp/bc-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

static void test_defaults_then_file(void **state)
{
    (void)state;
    bc_error err = {{0}};
    assert_int_equal(bc_config_defaults(table, N, &err), BC_OK);
    assert_int_equal(interval, 10);
    assert_string_equal(name, "cam");
    assert_int_equal(bc_config_check(table, N, &err), BC_ERR_MISSING);
    assert_non_null(strstr(err.text, "path"));

    char *path = write_file("# comment\n\ninterval = 30\nverbose = yes\nname = \"a b\"\npath=/x\n");
    assert_int_equal(bc_config_load_file(table, N, path, &err), BC_OK);
    unlink(path);
    assert_int_equal(interval, 30);
    assert_int_equal(verbose, 1);
    assert_string_equal(name, "a b");
    assert_string_equal(required_path, "/x");
    assert_int_equal(bc_config_check(table, N, &err), BC_OK);
    assert_int_equal(bc_config_set_pair(table, N, "interval=60", &err), BC_OK);
    assert_int_equal(interval, 60);
}

static void test_errors_name_the_line(void **state)
{
    (void)state;
    bc_error err = {{0}};
    struct {
        const char *content;
        bc_status status;
        const char *needle;
    } cases[] = {
        {"interval = 0\n", BC_ERR_INVAL, ":1: option 'interval'"},
        {"\ninterval = 99999\n", BC_ERR_INVAL, ":2:"},
        {"interval = 12abc\n", BC_ERR_INVAL, "not an integer"},
        {"verbose = maybe\n", BC_ERR_INVAL, "not a boolean"},
        {"name = 0123456789abcdefXYZ\n", BC_ERR_TOO_BIG, "too long"},
        {"colour = red\n", BC_ERR_NOT_FOUND, "unknown option 'colour'"},
        {"just words\n", BC_ERR_PARSE, "not name=value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bc_config_defaults(table, N, &err);
        char *path = write_file(cases[i].content);
        bc_status rc = bc_config_load_file(table, N, path, &err);
        unlink(path);
        assert_int_equal(rc, cases[i].status);
        if (strstr(err.text, cases[i].needle) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, err.text, cases[i].needle);
    }
    assert_int_equal(bc_config_load_file(table, N, "/nonexistent/x.conf", &err), BC_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_then_file),
        cmocka_unit_test(test_errors_name_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
