/* Unit tests for services/vault/store: the object layout and mode, commit
 * by hard link (and by copy across file systems), an equal object again,
 * a same-named object of another size, a durable idempotent delete, and a
 * scrub that finds a tampered object. */
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

#include <openssl/evp.h>

#include "proto/encoding.h"
#include "test_util.h"
#include "vault/store.h"

#define LEN 200000u /* more than one read buffer */

typedef struct fixture {
    char root[64];
    char dir[128];
    char src[128];
    uint8_t *content;
    char sha[BC_SHA256_HEX_LEN + 1];
    bc_store *st;
} fixture;

static void sha256_hex(const uint8_t *data, size_t len, char hex[BC_SHA256_HEX_LEN + 1])
{
    uint8_t d[32];
    assert_int_equal(EVP_Digest(data, len, d, NULL, EVP_sha256(), NULL), 1);
    assert_int_equal(bc_hex_encode(d, sizeof(d), hex, BC_SHA256_HEX_LEN + 1), BC_OK);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || bc_test_tempdir(f->root, sizeof(f->root), "store") != BC_OK)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/vault", f->root);
    snprintf(f->src, sizeof(f->src), "%s/staged-data", f->root);
    if (bc_store_open(f->dir, &f->st, NULL) != BC_OK)
        return -1;
    *state = f;
    f->content = bc_test_pattern(LEN, 42);
    bc_test_write_bytes(f->src, f->content, LEN);
    sha256_hex(f->content, LEN, f->sha);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_store_close(f->st);
    free(f->content);
    bc_test_remove_tree(f->root);
    free(f);
    return 0;
}

static void object_path(fixture *f, char *path, size_t size)
{
    bc_error err;
    if (bc_store_path(f->st, f->sha, path, size, NULL, 0, &err) != BC_OK)
        fail_msg("path: %s", err.text);
}

static void test_path(void **state)
{
    fixture *f = *state;
    char path[512], rel[256], want[512];
    bc_error err;
    assert_int_equal(bc_store_path(f->st, f->sha, path, sizeof(path), rel, sizeof(rel), &err),
                     BC_OK);
    snprintf(want, sizeof(want), "objects/%.2s/%.2s/%s", f->sha, f->sha + 2, f->sha);
    assert_string_equal(rel, want);
    snprintf(want, sizeof(want), "%s/objects/%.2s/%.2s/%s", f->dir, f->sha, f->sha + 2, f->sha);
    assert_string_equal(path, want);

    char upper[BC_SHA256_HEX_LEN + 1];
    snprintf(upper, sizeof(upper), "%s", f->sha);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    const char *bad[] = {"", "abc", "../../../../etc/passwd", upper,
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(bad[i], f->sha) == 0)
            continue;
        assert_int_equal(bc_store_path(f->st, bad[i], path, sizeof(path), NULL, 0, &err),
                         BC_ERR_INVAL);
        assert_int_equal(bc_store_commit(f->st, f->src, bad[i], LEN, NULL, &err), BC_ERR_INVAL);
        assert_int_equal(bc_store_delete(f->st, bad[i], NULL, &err), BC_ERR_INVAL);
        assert_int_equal(bc_store_check(f->st, bad[i], LEN, &err), BC_ERR_INVAL);
        assert_false(bc_store_exists(f->st, bad[i]));
    }
    assert_int_equal(bc_store_path(f->st, f->sha, path, 20, NULL, 0, &err), BC_ERR_TOO_BIG);
    struct stat sb;
    snprintf(path, sizeof(path), "%s/objects", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
}

static void test_commit_link(void **state)
{
    fixture *f = *state;
    bc_error err;
    bool existed = true;
    assert_false(bc_store_exists(f->st, f->sha));
    if (bc_store_commit(f->st, f->src, f->sha, LEN, &existed, &err) != BC_OK)
        fail_msg("commit: %s", err.text);
    assert_false(existed);
    assert_true(bc_store_exists(f->st, f->sha));

    char path[512];
    object_path(f, path, sizeof(path));
    struct stat sb, ss;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0400);
    assert_int_equal((uint64_t)sb.st_size, LEN);
    /* Same file system: a hard link, the staging file is left in place. */
    assert_int_equal(stat(f->src, &ss), 0);
    assert_int_equal(sb.st_ino, ss.st_ino);
    assert_int_equal(ss.st_nlink, 2);
    size_t len = 0;
    uint8_t *data = bc_test_read_file(path, &len);
    assert_int_equal(len, LEN);
    assert_memory_equal(data, f->content, LEN);
    free(data);
    /* Nothing but the object in its directory (no temporary left). */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/objects/%.2s/%.2s", f->dir, f->sha, f->sha + 2);
    assert_int_equal(bc_test_count_entries(dir), 1);
    assert_int_equal(bc_store_check(f->st, f->sha, LEN, &err), BC_OK);

    /* Again (a resent recording, a crash before the staging was removed). */
    assert_int_equal(bc_store_commit(f->st, f->src, f->sha, LEN, &existed, &err), BC_OK);
    assert_true(existed);
    assert_int_equal(unlink(f->src), 0); /* the staging goes; the object stays */
    assert_int_equal(bc_store_check(f->st, f->sha, LEN, &err), BC_OK);
}

static void test_commit_copy_across_file_systems(void **state)
{
    fixture *f = *state;
    struct stat a, b;
    if (stat("/dev/shm", &a) != 0 || stat(f->dir, &b) != 0 || a.st_dev == b.st_dev) {
        print_message("skipped: /dev/shm is not another file system here\n");
        skip();
    }
    char src[128];
    snprintf(src, sizeof(src), "/dev/shm/bc-store-test-%d", (int)getpid());
    bc_test_write_bytes(src, f->content, LEN);
    bc_error err;
    bool existed = true;
    bc_status rc = bc_store_commit(f->st, src, f->sha, LEN, &existed, &err);
    struct stat ss;
    assert_int_equal(stat(src, &ss), 0);
    unlink(src);
    if (rc != BC_OK)
        fail_msg("commit: %s", err.text);
    assert_false(existed);
    assert_int_equal(ss.st_nlink, 1); /* copied, not linked */
    char path[512];
    object_path(f, path, sizeof(path));
    assert_int_equal(stat(path, &b), 0);
    assert_int_equal(b.st_mode & 0777, 0400);
    assert_int_equal(bc_store_check(f->st, f->sha, LEN, &err), BC_OK);
}

static void test_commit_refusals(void **state)
{
    fixture *f = *state;
    bc_error err;
    /* The source must have the size the caller verified. */
    assert_int_equal(bc_store_commit(f->st, f->src, f->sha, LEN - 1, NULL, &err), BC_ERR_INVAL);
    assert_false(bc_store_exists(f->st, f->sha));
    char missing[256];
    snprintf(missing, sizeof(missing), "%s/nothing", f->root);
    assert_int_equal(bc_store_commit(f->st, missing, f->sha, LEN, NULL, &err), BC_ERR_IO);

    /* An object of that name but another size: the store was altered. */
    char path[512], dir[512];
    object_path(f, path, sizeof(path));
    snprintf(dir, sizeof(dir), "%s/objects/%.2s", f->dir, f->sha);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(dir, sizeof(dir), "%s/objects/%.2s/%.2s", f->dir, f->sha, f->sha + 2);
    assert_int_equal(mkdir(dir, 0700), 0);
    bc_test_write_bytes(path, f->content, LEN / 2);
    bool existed = true;
    assert_int_equal(bc_store_commit(f->st, f->src, f->sha, LEN, &existed, &err), BC_ERR_TAMPERED);
    assert_false(existed);
    size_t len = 0;
    uint8_t *data = bc_test_read_file(path, &len);
    assert_int_equal(len, LEN / 2); /* left as found, for an investigation */
    free(data);
}

static void test_delete(void **state)
{
    fixture *f = *state;
    bc_error err;
    assert_int_equal(bc_store_commit(f->st, f->src, f->sha, LEN, NULL, &err), BC_OK);
    bool existed = false;
    assert_int_equal(bc_store_delete(f->st, f->sha, &existed, &err), BC_OK);
    assert_true(existed);
    assert_false(bc_store_exists(f->st, f->sha));
    char path[512];
    object_path(f, path, sizeof(path));
    assert_false(bc_test_exists(NULL, path));
    /* Redone after a crash: fine, and says it was not there. */
    assert_int_equal(bc_store_delete(f->st, f->sha, &existed, &err), BC_OK);
    assert_false(existed);
    assert_int_equal(bc_store_check(f->st, f->sha, LEN, &err), BC_ERR_NOT_FOUND);
    /* A name never stored, whose directories do not even exist. */
    char other[BC_SHA256_HEX_LEN + 1];
    memset(other, 'f', BC_SHA256_HEX_LEN);
    other[BC_SHA256_HEX_LEN] = '\0';
    assert_int_equal(bc_store_delete(f->st, other, &existed, &err), BC_OK);
    assert_false(existed);
    /* Committed again after a purge. */
    assert_int_equal(bc_store_commit(f->st, f->src, f->sha, LEN, &existed, &err), BC_OK);
    assert_false(existed);
}

static void test_check_finds_tampering(void **state)
{
    fixture *f = *state;
    bc_error err;
    assert_int_equal(bc_store_commit(f->st, f->src, f->sha, LEN, NULL, &err), BC_OK);
    assert_int_equal(unlink(f->src), 0); /* so the edit below touches the object only */
    assert_int_equal(bc_store_check(f->st, f->sha, LEN, &err), BC_OK);
    assert_int_equal(bc_store_check(f->st, f->sha, LEN + 1, &err), BC_ERR_TAMPERED);

    /* One byte changed in place, size kept. */
    char path[512];
    object_path(f, path, sizeof(path));
    assert_int_equal(chmod(path, 0600), 0);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, LEN - 7, SEEK_SET), 0);
    assert_int_equal(fputc(f->content[LEN - 7] ^ 0x01, fp), f->content[LEN - 7] ^ 0x01);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(bc_store_check(f->st, f->sha, LEN, &err), BC_ERR_TAMPERED);
    assert_non_null(strstr(err.text, "does not hash"));

    /* Truncated. */
    assert_int_equal(truncate(path, LEN - 1), 0);
    assert_int_equal(bc_store_check(f->st, f->sha, LEN, &err), BC_ERR_TAMPERED);
    /* Replaced by a symbolic link to a file with the right bytes. */
    char elsewhere[256];
    snprintf(elsewhere, sizeof(elsewhere), "%s/copy", f->root);
    bc_test_write_bytes(elsewhere, f->content, LEN);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(elsewhere, path), 0);
    assert_int_not_equal(bc_store_check(f->st, f->sha, LEN, &err), BC_OK);
    assert_false(bc_store_exists(f->st, f->sha));
}

static void test_open(void **state)
{
    fixture *f = *state;
    bc_store *st = NULL;
    bc_error err;
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/fresh", f->root);
    assert_int_equal(bc_store_open(dir, &st, &err), BC_OK);
    assert_true(bc_test_exists(dir, "objects"));
    bc_store_close(st);
    st = NULL;
    assert_int_equal(bc_store_open(f->src, &st, &err), BC_ERR_IO); /* a file */
    assert_null(st);
    assert_int_equal(bc_store_open(NULL, &st, &err), BC_ERR_INVAL);
    bc_store_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_copy_across_file_systems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_finds_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
