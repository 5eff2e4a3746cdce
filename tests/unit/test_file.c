/* Unit tests for services/common/file: the shared file system steps (a
 * directory made durably, a full write, the parent of a path, a directory
 * listed, temporary names) and the durable write they serve, on a real
 * file system in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/file.h"
#include "test_util.h"

static int setup(void **state)
{
    return bc_test_scratch_setup(state, "file", "d");
}

static int teardown(void **state)
{
    return bc_test_scratch_teardown(state);
}

static void test_parent(void **state)
{
    (void)state;
    char out[64];
    bc_file_parent("a/b/c", out, sizeof(out));
    assert_string_equal(out, "a/b");
    bc_file_parent("/x", out, sizeof(out));
    assert_string_equal(out, "/");
    bc_file_parent("name", out, sizeof(out));
    assert_string_equal(out, ".");
    bc_file_parent("a/b/", out, sizeof(out));
    assert_string_equal(out, "a/b");
}

static void test_is_tmp(void **state)
{
    (void)state;
    assert_true(bc_file_is_tmp("state.json.Ab12Cd.tmp"));
    assert_true(bc_file_is_tmp(BC_FILE_TMP_SUFFIX));
    assert_false(bc_file_is_tmp("state.json"));
    assert_false(bc_file_is_tmp("tmp"));
    assert_false(bc_file_is_tmp("x.tmp.bad"));
}

static void test_mkdir_durable(void **state)
{
    bc_test_scratch *s = *state;
    bc_error err;
    assert_int_equal(bc_file_mkdir_durable(s->dir, 0700, &err), BC_OK);
    struct stat st;
    assert_int_equal(stat(s->dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0077, 0); /* the mode is used, not 0777 */

    /* There already: fine, and what is inside stays. */
    char inside[256];
    snprintf(inside, sizeof(inside), "%s/kept", s->dir);
    bc_test_write_file(inside, "x");
    assert_int_equal(bc_file_mkdir_durable(s->dir, 0700, &err), BC_OK);
    assert_true(bc_test_exists(s->dir, "kept"));

    /* A file in the way is no directory. */
    assert_int_equal(bc_file_mkdir_durable(inside, 0700, &err), BC_ERR_IO);
    assert_non_null(strstr(err.text, "not a directory"));

    /* The parent must exist: one level at a time. */
    char deep[256];
    snprintf(deep, sizeof(deep), "%s/missing/deeper", s->root);
    bc_status rc = bc_file_mkdir_durable(deep, 0700, &err);
    int e = errno;
    assert_int_equal(rc, BC_ERR_IO);
    assert_int_equal(e, ENOENT);
    assert_false(bc_test_exists(s->root, "missing"));
}

static void test_write_all(void **state)
{
    bc_test_scratch *s = *state;
    char path[256];
    snprintf(path, sizeof(path), "%s/data", s->root);
    size_t len = 3 * 1024 * 1024; /* several write(2)s on most systems */
    uint8_t *data = bc_test_pattern(len, 7);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    bc_error err;
    assert_int_equal(bc_file_write_all(fd, data, len, path, &err), BC_OK);
    assert_int_equal(close(fd), 0);
    size_t got = 0;
    uint8_t *back = bc_test_read_file(path, &got);
    assert_int_equal(got, len);
    assert_memory_equal(back, data, len);
    free(back);

    /* A descriptor open for reading only cannot be written. */
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    bc_status rc = bc_file_write_all(fd, data, 10, path, &err);
    int e = errno;
    assert_int_equal(rc, BC_ERR_IO);
    assert_int_equal(e, EBADF);
    assert_non_null(strstr(err.text, path));
    close(fd);
    free(data);
}

static bool seen_name(char names[][32], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0)
            return true;
    }
    return false;
}

static void test_dir_lists_every_entry_once(void **state)
{
    bc_test_scratch *s = *state;
    bc_error err;
    assert_int_equal(bc_file_mkdir_durable(s->dir, 0700, &err), BC_OK);
    const char *want[] = {"a", "b.tmp", ".hidden", "sub"};
    char path[256];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", s->dir, want[i]);
        bc_test_write_file(path, want[i]);
    }
    snprintf(path, sizeof(path), "%s/sub", s->dir);
    assert_int_equal(mkdir(path, 0700), 0);

    bc_file_dir it;
    assert_int_equal(bc_file_dir_open(&it, s->dir, &err), BC_OK);
    char names[8][32];
    size_t n = 0;
    const char *name = NULL;
    while (bc_file_dir_next(&it, &name, &err) == BC_OK && name != NULL) {
        assert_true(n < 8);
        assert_false(seen_name(names, n, name));
        snprintf(names[n++], sizeof(names[0]), "%s", name);
    }
    assert_null(name); /* the end, not an error */
    bc_file_dir_close(&it);
    assert_int_equal(n, 4); /* "." and ".." are not entries */
    for (size_t i = 0; i < 4; i++)
        assert_true(seen_name(names, n, want[i]));
}

static void test_dir_empty_missing_and_not_a_dir(void **state)
{
    bc_test_scratch *s = *state;
    bc_error err;
    bc_file_dir it;
    const char *name = "x";

    bc_status rc = bc_file_dir_open(&it, s->dir, &err);
    int e = errno;
    assert_int_equal(rc, BC_ERR_NOT_FOUND);
    assert_int_equal(e, ENOENT);
    assert_non_null(strstr(err.text, s->dir));

    assert_int_equal(bc_file_mkdir_durable(s->dir, 0700, &err), BC_OK);
    assert_int_equal(bc_file_dir_open(&it, s->dir, &err), BC_OK);
    assert_int_equal(bc_file_dir_next(&it, &name, &err), BC_OK);
    assert_null(name);
    bc_file_dir_close(&it);

    char file[256];
    snprintf(file, sizeof(file), "%s/plain", s->root);
    bc_test_write_file(file, "x");
    rc = bc_file_dir_open(&it, file, &err);
    e = errno;
    assert_int_equal(rc, BC_ERR_IO);
    assert_int_equal(e, ENOTDIR);
}

static void test_durable_write_leaves_no_tmp(void **state)
{
    bc_test_scratch *s = *state;
    bc_error err;
    assert_int_equal(bc_file_mkdir_durable(s->dir, 0700, &err), BC_OK);
    char path[256];
    snprintf(path, sizeof(path), "%s/state.json", s->dir);
    assert_int_equal(bc_file_write_durable(path, "{}", 2, 0600, &err), BC_OK);
    assert_int_equal(bc_file_write_durable(path, "{\"v\":1}", 7, 0600, &err), BC_OK);
    size_t len = 0;
    uint8_t *back = bc_test_read_file(path, &len);
    assert_string_equal((char *)back, "{\"v\":1}");
    free(back);
    assert_int_equal(bc_test_count_entries(s->dir), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parent),
        cmocka_unit_test(test_is_tmp),
        cmocka_unit_test_setup_teardown(test_mkdir_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_lists_every_entry_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_empty_missing_and_not_a_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_write_leaves_no_tmp, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
