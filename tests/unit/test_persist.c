/* Unit tests for device-agent/persist and services/common/file: the state
 * survives a save/load round trip, a missing file means a fresh camera, a
 * damaged one is refused and left in place, and the durable writer leaves
 * either the old or the new file with the exact mode and no leftovers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/file.h"
#include "device-agent/persist.h"
#include "test_util.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || bc_test_tempdir(f->dir, sizeof(f->dir), "persist") != BC_OK)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/state.json", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_test_remove_tree(f->dir);
    free(f);
    return 0;
}

static void test_missing_file_is_a_fresh_camera(void **state)
{
    fixture *f = *state;
    bc_persist_state st;
    bool found = true;
    bc_error err;
    assert_int_equal(bc_persist_load(f->dir, 12345, &st, &found, &err), BC_OK);
    assert_false(found);
    assert_int_equal(st.state, BC_SM_STANDBY);
    assert_int_equal(st.next_seq, 1);
    assert_int_equal(st.session, 0);
    assert_int_equal(st.since_ms, 12345);
    assert_string_equal(st.recording_id, "");
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    bc_persist_state st, back;
    bc_error err;
    bool found = false;
    bc_persist_defaults(&st, 0);
    st.state = BC_SM_RECORDING;
    st.warnings = 1;
    st.emergency = true;
    snprintf(st.recording_id, sizeof(st.recording_id), "cam-1_20261128T115000Z");
    st.next_seq = 4503599627370497ULL; /* 2^52 + 1: still exact */
    st.session = 77;
    st.since_ms = 1764330600123LL;
    assert_int_equal(bc_persist_save(f->dir, &st, &err), BC_OK);

    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(bc_test_count_entries(f->dir), 1); /* no temporary file left */

    assert_int_equal(bc_persist_load(f->dir, 0, &back, &found, &err), BC_OK);
    assert_true(found);
    assert_int_equal(back.state, BC_SM_RECORDING);
    assert_int_equal(back.warnings, 1);
    assert_true(back.emergency);
    assert_string_equal(back.recording_id, "cam-1_20261128T115000Z");
    assert_true(back.next_seq == 4503599627370497ULL);
    assert_int_equal(back.session, 77);
    assert_int_equal(back.since_ms, 1764330600123LL);

    /* overwrite: the new content replaces the old */
    st.state = BC_SM_WARNING;
    st.warnings = 2;
    st.emergency = false;
    st.recording_id[0] = '\0';
    st.next_seq = 5;
    assert_int_equal(bc_persist_save(f->dir, &st, &err), BC_OK);
    assert_int_equal(bc_persist_load(f->dir, 0, &back, &found, &err), BC_OK);
    assert_int_equal(back.state, BC_SM_WARNING);
    assert_int_equal(back.warnings, 2);
    assert_int_equal(back.next_seq, 5);
    assert_string_equal(back.recording_id, "");
    assert_int_equal(bc_test_count_entries(f->dir), 1);
}

static void assert_refused(fixture *f, const char *text, bc_status expected, const char *needle)
{
    bc_test_write_file(f->path, text);
    bc_persist_state st;
    bool found = true;
    bc_error err;
    bc_error_clear(&err);
    assert_int_equal(bc_persist_load(f->dir, 99, &st, &found, &err), expected);
    assert_false(found);
    assert_int_equal(st.state, BC_SM_STANDBY); /* defaults, not half a file */
    assert_int_equal(st.next_seq, 1);
    if (needle != NULL && strstr(err.text, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err.text, needle);
    /* left in place, unchanged */
    char *content = NULL;
    size_t len = 0;
    assert_int_equal(bc_file_read_all(f->path, 4096, &content, &len, NULL), BC_OK);
    assert_string_equal(content, text);
    free(content);
}

#define GOOD_PREFIX "{\"v\":1,\"state\":\"standby\",\"warnings\":0,\"emergency\":false,"

static void test_corrupt_file_refused(void **state)
{
    fixture *f = *state;
    assert_refused(f, "{\"v\":1,\"state\":\"standby\",\"warn", BC_ERR_PARSE, "not valid JSON");
    assert_refused(f, "", BC_ERR_PARSE, NULL);
    assert_refused(f, "[1,2]", BC_ERR_PARSE, "object");
    assert_refused(f, GOOD_PREFIX "\"recording_id\":\"\",\"session\":1,\"since_ms\":5}",
                   BC_ERR_PARSE, "next_seq");
    assert_refused(f,
                   GOOD_PREFIX "\"recording_id\":\"\",\"next_seq\":\"7\",\"session\":1,"
                               "\"since_ms\":5}",
                   BC_ERR_PARSE, "next_seq");
    assert_refused(f,
                   GOOD_PREFIX "\"recording_id\":\"\",\"next_seq\":0,\"session\":1,"
                               "\"since_ms\":5}",
                   BC_ERR_PARSE, "next_seq");
    assert_refused(f,
                   GOOD_PREFIX "\"recording_id\":\"\",\"next_seq\":1.5,\"session\":1,"
                               "\"since_ms\":5}",
                   BC_ERR_PARSE, "next_seq");
    assert_refused(f,
                   GOOD_PREFIX "\"recording_id\":\"a/b\",\"next_seq\":3,\"session\":1,"
                               "\"since_ms\":5}",
                   BC_ERR_PARSE, "recording_id");
    assert_refused(f,
                   "{\"v\":1,\"state\":\"flying\",\"warnings\":0,\"emergency\":false,"
                   "\"recording_id\":\"\",\"next_seq\":3,\"session\":1,\"since_ms\":5}",
                   BC_ERR_PARSE, "state");
    assert_refused(f,
                   "{\"v\":1,\"state\":\"warning\",\"warnings\":0,\"emergency\":false,"
                   "\"recording_id\":\"\",\"next_seq\":3,\"session\":1,\"since_ms\":5}",
                   BC_ERR_PARSE, "warnings");
    assert_refused(f,
                   "{\"v\":1,\"state\":\"standby\",\"warnings\":0,\"emergency\":1,"
                   "\"recording_id\":\"\",\"next_seq\":3,\"session\":1,\"since_ms\":5}",
                   BC_ERR_PARSE, "emergency");
    assert_refused(f,
                   "{\"v\":2,\"state\":\"standby\",\"warnings\":0,\"emergency\":false,"
                   "\"recording_id\":\"\",\"next_seq\":3,\"session\":1,\"since_ms\":5}",
                   BC_ERR_VERSION, "version");

    /* the same file with good values loads (so the refusals above are real) */
    bc_test_write_file(f->path, GOOD_PREFIX "\"recording_id\":\"\",\"next_seq\":3,\"session\":1,"
                                            "\"since_ms\":5,\"unknown\":true}");
    bc_persist_state st;
    bool found = false;
    assert_int_equal(bc_persist_load(f->dir, 0, &st, &found, NULL), BC_OK);
    assert_true(found);
    assert_int_equal(st.next_seq, 3);
}

static void test_save_refuses_impossible_state(void **state)
{
    fixture *f = *state;
    bc_persist_state st;
    bc_error err;
    bc_persist_defaults(&st, 0);
    st.state = BC_SM_WARNING;
    st.warnings = 0;
    assert_int_equal(bc_persist_save(f->dir, &st, &err), BC_ERR_INVAL);
    bc_persist_defaults(&st, 0);
    st.next_seq = 0;
    assert_int_equal(bc_persist_save(f->dir, &st, &err), BC_ERR_INVAL);
    assert_int_equal(bc_test_count_entries(f->dir), 0);

    char missing[200];
    snprintf(missing, sizeof(missing), "%s/no/such/dir", f->dir);
    bc_persist_defaults(&st, 0);
    assert_int_equal(bc_persist_save(missing, &st, &err), BC_ERR_IO);
}

static void test_durable_write(void **state)
{
    fixture *f = *state;
    char path[256];
    bc_error err;
    snprintf(path, sizeof(path), "%s/blob", f->dir);
    assert_int_equal(bc_file_write_durable(path, "first", 5, 0640, &err), BC_OK);
    assert_int_equal(bc_file_write_durable(path, "second!", 7, 0604, &err), BC_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0604); /* exact, whatever the umask */
    char *content = NULL;
    size_t len = 0;
    assert_int_equal(bc_file_read_all(path, 100, &content, &len, &err), BC_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(content, "second!", 7);
    free(content);
    assert_int_equal(bc_file_read_all(path, 6, &content, &len, &err), BC_ERR_TOO_BIG);
    assert_null(content);
    assert_int_equal(bc_test_count_entries(f->dir), 1);

    /* an empty file is fine */
    assert_int_equal(bc_file_write_durable(path, NULL, 0, 0600, &err), BC_OK);
    assert_int_equal(bc_file_read_all(path, 100, &content, &len, &err), BC_OK);
    assert_int_equal(len, 0);
    free(content);

    /* a failing write leaves nothing behind */
    char bad[256];
    snprintf(bad, sizeof(bad), "%s/missing/blob", f->dir);
    assert_int_equal(bc_file_write_durable(bad, "x", 1, 0600, &err), BC_ERR_IO);
    assert_non_null(strstr(err.text, "missing/blob"));
    assert_int_equal(bc_test_count_entries(f->dir), 1);
    /* a target that is a directory: rename fails, the temporary file is removed */
    char sub[256];
    snprintf(sub, sizeof(sub), "%s/sub", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char inner[300];
    snprintf(inner, sizeof(inner), "%s/keep", sub);
    assert_int_equal(bc_file_write_durable(inner, "k", 1, 0600, &err), BC_OK);
    assert_int_equal(bc_file_write_durable(sub, "x", 1, 0600, &err), BC_ERR_IO);
    assert_non_null(strstr(err.text, "rename"));
    assert_int_equal(bc_test_count_entries(f->dir), 2); /* blob and sub, no *.tmp */
    unlink(inner);
    rmdir(sub);

    assert_int_equal(bc_file_read_all(bad, 100, &content, &len, &err), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_file_fsync_dir(f->dir, &err), BC_OK);
    assert_int_equal(bc_file_fsync_dir(bad, &err), BC_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_file_is_a_fresh_camera, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_impossible_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
