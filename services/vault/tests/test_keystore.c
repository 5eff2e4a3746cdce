/* Unit tests for services/vault/keystore: several recording keys found by
 * their key id, the optional signing keys, and the refusals: a file not
 * named after its key, a key of the wrong type, no key at all. Encryption
 * at rest: a made key round-trips under the master key and no other, a
 * plain key is converted in place (its old bytes overwritten), the master
 * key file's checks, and the destruction of a key (crypto-shredding). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "proto/sign.h"
#include "test_util.h"
#include "vault/keystore.h"

typedef struct fixture {
    char root[64];
    char keys[128];
    char receipt[128];
    char command[128];
    char master[128];
} fixture;

#define MASTER "correct horse battery staple 42"

/* Writes text to path with mode. */
static void write_mode(const char *path, const char *text, mode_t mode)
{
    bc_test_write_file(path, text);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || bc_test_tempdir(f->root, sizeof(f->root), "keystore") != BC_OK)
        return -1;
    snprintf(f->keys, sizeof(f->keys), "%s/recording-keys", f->root);
    snprintf(f->receipt, sizeof(f->receipt), "%s/receipt.pem", f->root);
    snprintf(f->command, sizeof(f->command), "%s/command.pem", f->root);
    snprintf(f->master, sizeof(f->master), "%s/master.key", f->root);
    if (mkdir(f->keys, 0700) != 0)
        return -1;
    FILE *fp = fopen(f->master, "w");
    if (fp == NULL || fputs(MASTER "\n", fp) < 0 || fclose(fp) != 0 || chmod(f->master, 0600) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_test_remove_tree(f->root);
    free(f);
    return 0;
}

/* A new key of type ("X25519", "ED25519") written as PKCS#8 PEM to path. */
static EVP_PKEY *write_key(const char *type, const char *path)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, type);
    assert_non_null(key);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, 0600), 0);
    return key;
}

/* A new X25519 key written as DIR/<key id>.key; its id in id. */
static EVP_PKEY *write_recording_key(fixture *f, char id[BC_KEY_ID_LEN + 1])
{
    char tmp[256], path[256];
    snprintf(tmp, sizeof(tmp), "%s/new.pem", f->root);
    EVP_PKEY *key = write_key("X25519", tmp);
    assert_int_equal(bc_key_id(key, id), BC_OK);
    snprintf(path, sizeof(path), "%s/%s.key", f->keys, id);
    assert_int_equal(rename(tmp, path), 0);
    return key;
}

static void assert_same_public(EVP_PKEY *a, EVP_PKEY *b)
{
    uint8_t ra[BC_RAW_KEY_LEN], rb[BC_RAW_KEY_LEN];
    assert_int_equal(bc_key_raw_public(a, ra), BC_OK);
    assert_int_equal(bc_key_raw_public(b, rb), BC_OK);
    assert_memory_equal(ra, rb, sizeof(ra));
}

static void test_load_all(void **state)
{
    fixture *f = *state;
    char id1[BC_KEY_ID_LEN + 1], id2[BC_KEY_ID_LEN + 1], id3[BC_KEY_ID_LEN + 1];
    EVP_PKEY *k1 = write_recording_key(f, id1);
    EVP_PKEY *k2 = write_recording_key(f, id2);
    EVP_PKEY *k3 = write_recording_key(f, id3);
    EVP_PKEY *receipt = write_key("ED25519", f->receipt);
    EVP_PKEY *command = write_key("ED25519", f->command);
    /* Other files in the directory are not keys and are left alone. */
    char path[256];
    snprintf(path, sizeof(path), "%s/README", f->keys);
    bc_test_write_file(path, "recording keys, one per file\n");
    snprintf(path, sizeof(path), "%s/%s.key.bak", f->keys, id1);
    bc_test_write_file(path, "not a key");

    bc_keystore *ks = NULL;
    bc_error err;
    if (bc_keystore_open(f->keys, f->master, f->receipt, f->command, &ks, &err) != BC_OK)
        fail_msg("open: %s", err.text);
    assert_int_equal(bc_keystore_recording_key_count(ks), 3);
    EVP_PKEY *got = bc_keystore_recording_key(ks, id2);
    assert_non_null(got);
    assert_same_public(got, k2);
    assert_same_public(bc_keystore_recording_key(ks, id1), k1);
    assert_same_public(bc_keystore_recording_key(ks, id3), k3);
    assert_int_equal(EVP_PKEY_get_id(got), EVP_PKEY_X25519);
    assert_null(bc_keystore_recording_key(ks, "0000000000000000"));
    assert_null(bc_keystore_recording_key(ks, ""));
    assert_null(bc_keystore_recording_key(ks, NULL));
    assert_non_null(bc_keystore_receipt_key(ks));
    assert_non_null(bc_keystore_command_key(ks));
    assert_same_public(bc_keystore_receipt_key(ks), receipt);
    assert_same_public(bc_keystore_command_key(ks), command);
    assert_int_equal(EVP_PKEY_get_id(bc_keystore_receipt_key(ks)), EVP_PKEY_ED25519);

    /* The loaded receipt key signs what its public half verifies. */
    uint8_t sig[BC_ED25519_SIG_LEN];
    const uint8_t msg[] = "receipt";
    assert_int_equal(bc_sign(bc_keystore_receipt_key(ks), msg, sizeof(msg), sig), BC_OK);
    assert_int_equal(bc_verify(receipt, msg, sizeof(msg), sig), BC_OK);
    bc_keystore_close(ks);

    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    EVP_PKEY_free(k3);
    EVP_PKEY_free(receipt);
    EVP_PKEY_free(command);
}

static void test_signing_keys_optional(void **state)
{
    fixture *f = *state;
    char id[BC_KEY_ID_LEN + 1];
    EVP_PKEY *k = write_recording_key(f, id);
    bc_keystore *ks = NULL;
    bc_error err;
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_OK);
    assert_int_equal(bc_keystore_recording_key_count(ks), 1);
    assert_non_null(bc_keystore_recording_key(ks, id));
    assert_null(bc_keystore_receipt_key(ks));
    assert_null(bc_keystore_command_key(ks));
    bc_keystore_close(ks);
    bc_keystore_close(NULL);

    /* A configured signing key that is missing is an error, not "none". */
    ks = NULL;
    assert_int_equal(bc_keystore_open(f->keys, f->master, f->receipt, NULL, &ks, &err), BC_ERR_IO);
    assert_null(ks);
    EVP_PKEY_free(k);
}

static void test_misnamed_key_refused(void **state)
{
    fixture *f = *state;
    char id[BC_KEY_ID_LEN + 1], path[256];
    EVP_PKEY *good = write_recording_key(f, id);
    snprintf(path, sizeof(path), "%s/0123456789abcdef.key", f->keys);
    EVP_PKEY *bad = write_key("X25519", path);
    bc_keystore *ks = NULL;
    bc_error err;
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_ERR_INVAL);
    assert_null(ks);
    char bad_id[BC_KEY_ID_LEN + 1];
    assert_int_equal(bc_key_id(bad, bad_id), BC_OK);
    assert_non_null(strstr(err.text, bad_id)); /* tells the operator the right name */

    /* Two keys swapped between their names: both wrong. */
    char id2[BC_KEY_ID_LEN + 1], p1[256], p2[256], tmp[256];
    assert_int_equal(unlink(path), 0);
    EVP_PKEY *other = write_recording_key(f, id2);
    snprintf(p1, sizeof(p1), "%s/%s.key", f->keys, id);
    snprintf(p2, sizeof(p2), "%s/%s.key", f->keys, id2);
    snprintf(tmp, sizeof(tmp), "%s/swap", f->root);
    assert_int_equal(rename(p1, tmp), 0);
    assert_int_equal(rename(p2, p1), 0);
    assert_int_equal(rename(tmp, p2), 0);
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_ERR_INVAL);
    assert_null(ks);
    EVP_PKEY_free(good);
    EVP_PKEY_free(bad);
    EVP_PKEY_free(other);
}

static void test_wrong_types_refused(void **state)
{
    fixture *f = *state;
    char id[BC_KEY_ID_LEN + 1], path[256];
    EVP_PKEY *rk = write_recording_key(f, id);
    bc_keystore *ks = NULL;
    bc_error err;

    /* An X25519 key where an Ed25519 signing key belongs. */
    EVP_PKEY *x = write_key("X25519", f->receipt);
    assert_int_equal(bc_keystore_open(f->keys, f->master, f->receipt, NULL, &ks, &err),
                     BC_ERR_INVAL);
    assert_null(ks);
    EVP_PKEY *c = write_key("X25519", f->command);
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, f->command, &ks, &err),
                     BC_ERR_INVAL);
    assert_null(ks);

    /* An Ed25519 key in the recording key directory, even named by its id. */
    snprintf(path, sizeof(path), "%s/ed.pem", f->root);
    EVP_PKEY *ed = write_key("ED25519", path);
    char ed_id[BC_KEY_ID_LEN + 1], named[256];
    assert_int_equal(bc_key_id(ed, ed_id), BC_OK);
    snprintf(named, sizeof(named), "%s/%s.key", f->keys, ed_id);
    assert_int_equal(rename(path, named), 0);
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_ERR_INVAL);
    assert_null(ks);

    /* Not PEM at all. */
    assert_int_equal(unlink(named), 0);
    snprintf(named, sizeof(named), "%s/garbage.key", f->keys);
    bc_test_write_file(named, "this is not a key\n");
    assert_int_not_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_OK);
    assert_null(ks);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(x);
    EVP_PKEY_free(c);
    EVP_PKEY_free(ed);
}

static void test_no_keys(void **state)
{
    fixture *f = *state;
    bc_keystore *ks = NULL;
    bc_error err;
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_ERR_NOT_FOUND);
    assert_null(ks);
    char path[256];
    snprintf(path, sizeof(path), "%s/README", f->keys);
    bc_test_write_file(path, "no keys yet");
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_ERR_NOT_FOUND);
    snprintf(path, sizeof(path), "%s/missing", f->root);
    assert_int_equal(bc_keystore_open(path, f->master, NULL, NULL, &ks, &err), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_keystore_open(NULL, f->master, NULL, NULL, &ks, &err), BC_ERR_INVAL);
    assert_null(ks);
    assert_int_equal(bc_keystore_recording_key_count(NULL), 0);
    assert_null(bc_keystore_recording_key(NULL, "0123456789abcdef"));
}

/* The raw private bytes of two keys are equal. */
static void assert_same_private(EVP_PKEY *a, EVP_PKEY *b)
{
    uint8_t ra[32], rb[32];
    size_t la = sizeof(ra), lb = sizeof(rb);
    assert_int_equal(EVP_PKEY_get_raw_private_key(a, ra, &la), 1);
    assert_int_equal(EVP_PKEY_get_raw_private_key(b, rb, &lb), 1);
    assert_int_equal(la, lb);
    assert_memory_equal(ra, rb, la);
}

/* The key file's text; the caller frees it. */
static char *key_text(const fixture *f, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.key", f->keys, id);
    size_t len = 0;
    return (char *)bc_test_read_file(path, &len);
}

static void assert_encrypted_file(const fixture *f, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.key", f->keys, id);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char *text = key_text(f, id);
    assert_non_null(strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert_null(strstr(text, "-----BEGIN PRIVATE KEY-----"));
    free(text);
}

static void test_created_key_round_trip(void **state)
{
    fixture *f = *state;
    char first[BC_KEY_ID_LEN + 1];
    EVP_PKEY *k1 = write_recording_key(f, first);
    bc_keystore *ks = NULL;
    bc_error err;
    if (bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err) != BC_OK)
        fail_msg("open: %s", err.text);
    char id[BC_KEY_ID_LEN + 1];
    if (bc_keystore_create_recording_key(ks, id, &err) != BC_OK)
        fail_msg("create: %s", err.text);
    assert_int_equal(strlen(id), BC_KEY_ID_LEN);
    assert_string_not_equal(id, first);
    assert_int_equal(bc_keystore_recording_key_count(ks), 2);
    EVP_PKEY *made = bc_keystore_recording_key(ks, id);
    assert_non_null(made);
    assert_int_equal(EVP_PKEY_get_id(made), EVP_PKEY_X25519);
    char check[BC_KEY_ID_LEN + 1];
    assert_int_equal(bc_key_id(made, check), BC_OK);
    assert_string_equal(check, id);
    bool seen = false;
    for (size_t i = 0; i < bc_keystore_recording_key_count(ks); i++)
        seen = seen || strcmp(bc_keystore_recording_key_id(ks, i), id) == 0;
    assert_true(seen);
    assert_null(bc_keystore_recording_key_id(ks, 2));
    assert_encrypted_file(f, id);

    /* Another open with the same master key reads the same private key. */
    bc_keystore *again = NULL;
    if (bc_keystore_open(f->keys, f->master, NULL, NULL, &again, &err) != BC_OK)
        fail_msg("reopen: %s", err.text);
    assert_int_equal(bc_keystore_recording_key_count(again), 2);
    assert_same_private(bc_keystore_recording_key(again, id), made);
    assert_same_private(bc_keystore_recording_key(again, first), k1);
    bc_keystore_close(again);
    bc_keystore_close(ks);

    /* OpenSSL itself needs the passphrase for the file, and it is the master key. */
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.key", f->keys, id);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    EVP_PKEY *direct = PEM_read_PrivateKey(fp, NULL, NULL, (void *)MASTER);
    assert_int_equal(fclose(fp), 0);
    assert_non_null(direct);
    EVP_PKEY_free(direct);
    EVP_PKEY_free(k1);
}

static void test_wrong_master_refused(void **state)
{
    fixture *f = *state;
    char id[BC_KEY_ID_LEN + 1];
    EVP_PKEY *k = write_recording_key(f, id);
    bc_keystore *ks = NULL;
    bc_error err;
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_OK);
    bc_keystore_close(ks);
    ks = NULL;
    assert_encrypted_file(f, id); /* converted by the first open */

    char other[256];
    snprintf(other, sizeof(other), "%s/other.key", f->root);
    write_mode(other, "another master key, long enough\n", 0600);
    assert_int_equal(bc_keystore_open(f->keys, other, NULL, NULL, &ks, &err), BC_ERR_WRONG_KEY);
    assert_null(ks);
    assert_non_null(strstr(err.text, id));

    /* The master key file itself: readable by others, too short, missing, none. */
    write_mode(other, MASTER "\n", 0640);
    assert_int_equal(bc_keystore_open(f->keys, other, NULL, NULL, &ks, &err), BC_ERR_DENIED);
    write_mode(other, MASTER "\n", 0604);
    assert_int_equal(bc_keystore_open(f->keys, other, NULL, NULL, &ks, &err), BC_ERR_DENIED);
    write_mode(other, "short\n", 0600);
    assert_int_equal(bc_keystore_open(f->keys, other, NULL, NULL, &ks, &err), BC_ERR_INVAL);
    snprintf(other, sizeof(other), "%s/missing.key", f->root);
    assert_int_equal(bc_keystore_open(f->keys, other, NULL, NULL, &ks, &err), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_keystore_open(f->keys, NULL, NULL, NULL, &ks, &err), BC_ERR_INVAL);
    assert_null(ks);

    /* A trailing newline is not part of the passphrase: the same key without one opens. */
    snprintf(other, sizeof(other), "%s/nonl.key", f->root);
    write_mode(other, MASTER, 0600);
    assert_int_equal(bc_keystore_open(f->keys, other, NULL, NULL, &ks, &err), BC_OK);
    assert_same_private(bc_keystore_recording_key(ks, id), k);
    bc_keystore_close(ks);
    EVP_PKEY_free(k);
}

static void test_plain_key_converted(void **state)
{
    fixture *f = *state;
    char id[BC_KEY_ID_LEN + 1], path[256], linked[256], id2[BC_KEY_ID_LEN + 1];
    EVP_PKEY *k = write_recording_key(f, id);
    snprintf(path, sizeof(path), "%s/%s.key", f->keys, id);
    char *plain = key_text(f, id);
    assert_non_null(strstr(plain, "-----BEGIN PRIVATE KEY-----"));
    /* the plain file's inode, as a reader holding it open sees it afterwards */
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    /* a second plain key with another name linked to it (someone's copy) */
    EVP_PKEY *k2 = write_recording_key(f, id2);
    char path2[256];
    snprintf(path2, sizeof(path2), "%s/%s.key", f->keys, id2);
    snprintf(linked, sizeof(linked), "%s/copy.pem", f->root);
    assert_int_equal(link(path2, linked), 0);

    bc_keystore *ks = NULL;
    bc_error err;
    if (bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err) != BC_OK)
        fail_msg("open: %s", err.text);
    assert_same_private(bc_keystore_recording_key(ks, id), k);
    assert_same_private(bc_keystore_recording_key(ks, id2), k2);
    bc_keystore_close(ks);
    assert_encrypted_file(f, id);
    assert_encrypted_file(f, id2);

    /* The old plain bytes were overwritten with zeros once no name linked them. */
    size_t n = strlen(plain);
    char *old = calloc(1, n + 1);
    assert_non_null(old);
    assert_int_equal(pread(fd, old, n, 0), (ssize_t)n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(old[i], 0);
    close(fd);
    free(old);
    free(plain);
    /* ... but not a plain copy another name still links */
    size_t len = 0;
    char *copy = (char *)bc_test_read_file(linked, &len);
    assert_non_null(strstr(copy, "-----BEGIN PRIVATE KEY-----"));
    free(copy);

    /* Converted under the master key: another master key cannot open it. */
    char other[256];
    snprintf(other, sizeof(other), "%s/other.key", f->root);
    write_mode(other, "another master key, long enough\n", 0600);
    assert_int_equal(bc_keystore_open(f->keys, other, NULL, NULL, &ks, &err), BC_ERR_WRONG_KEY);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

static void test_destroy(void **state)
{
    fixture *f = *state;
    char old[BC_KEY_ID_LEN + 1], path[256];
    EVP_PKEY *k = write_recording_key(f, old);
    bc_keystore *ks = NULL;
    bc_error err;
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_OK);
    char made[BC_KEY_ID_LEN + 1];
    assert_int_equal(bc_keystore_create_recording_key(ks, made, &err), BC_OK);
    snprintf(path, sizeof(path), "%s/%s.key", f->keys, old);
    /* a reader of the file sees its bytes zeroed, not just the name gone */
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);

    if (bc_keystore_destroy_recording_key(ks, old, &err) != BC_OK)
        fail_msg("destroy: %s", err.text);
    assert_false(bc_test_exists(NULL, path));
    assert_null(bc_keystore_recording_key(ks, old));
    assert_non_null(bc_keystore_recording_key(ks, made));
    assert_int_equal(bc_keystore_recording_key_count(ks), 1);
    assert_int_equal(bc_test_count_entries(f->keys), 1); /* no .shred, no temp file */
    char *bytes = calloc(1, (size_t)sb.st_size);
    assert_non_null(bytes);
    assert_int_equal(pread(fd, bytes, (size_t)sb.st_size, 0), sb.st_size);
    for (off_t i = 0; i < sb.st_size; i++)
        assert_int_equal(bytes[i], 0);
    free(bytes);
    close(fd);

    /* Again: nothing to do. A bad id is refused. */
    assert_int_equal(bc_keystore_destroy_recording_key(ks, old, &err), BC_OK);
    assert_int_equal(bc_keystore_destroy_recording_key(ks, "../x", &err), BC_ERR_INVAL);
    assert_int_equal(bc_keystore_destroy_recording_key(ks, NULL, &err), BC_ERR_INVAL);
    bc_keystore_close(ks);

    /* The next open has only the other key. */
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_OK);
    assert_int_equal(bc_keystore_recording_key_count(ks), 1);
    assert_null(bc_keystore_recording_key(ks, old));
    assert_non_null(bc_keystore_recording_key(ks, made));
    bc_keystore_close(ks);

    /* A destruction a crash cut short (renamed, not yet unlinked) is finished at open. */
    snprintf(path, sizeof(path), "%s/%s.key.shred", f->keys, old);
    write_mode(path, "half-zeroed key\n", 0600);
    assert_int_equal(bc_keystore_open(f->keys, f->master, NULL, NULL, &ks, &err), BC_OK);
    assert_false(bc_test_exists(NULL, path));
    assert_int_equal(bc_keystore_recording_key_count(ks), 1);
    bc_keystore_close(ks);
    EVP_PKEY_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signing_keys_optional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misnamed_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_key_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_key_converted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
