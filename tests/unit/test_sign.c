/* Unit tests for proto/sign: the canonical encoding byte for byte, Ed25519
 * sign/verify (any changed bit is refused), PEM key loading with its three
 * distinct failures (wrong type, not PEM, unreadable) and key ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "proto/sign.h"
#include "test_util.h"

typedef struct fixture {
    char dir[64];
    EVP_PKEY *ed;
    EVP_PKEY *x;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    if (bc_test_tempdir(f->dir, sizeof(f->dir), "sign") != BC_OK)
        return -1;
    f->ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->x = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (f->ed == NULL || f->x == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_test_remove_tree(f->dir);
    EVP_PKEY_free(f->ed);
    EVP_PKEY_free(f->x);
    free(f);
    return 0;
}

static void path_in(const fixture *f, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", f->dir, name);
}

static void write_private_pem(const char *path, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(fp), 0);
}

static void write_public_pem(const char *path, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PUBKEY(fp, key), 1);
    assert_int_equal(fclose(fp), 0);
}

static void test_canon_exact_bytes(void **state)
{
    (void)state;
    static const uint8_t expected[] = {
        'b', 'c', '/', 'x',                                                 /* domain, raw */
        0,   0,   0,   2,   'a',  'b',                                      /* str */
        0,   0,   0,   8,   1,    2,    3,    4,    5,    6,    7,    8,    /* u64 */
        0,   0,   0,   8,   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* i64 -2 */
        0,   0,   0,   0,                                                   /* empty bytes */
        0,   0,   0,   0,                                                   /* NULL string */
        0,   0,   0,   3,   0x00, 0x01, 0xff,                               /* binary bytes */
    };
    static const uint8_t bin[] = {0x00, 0x01, 0xff};
    bc_canon c = {0};
    bc_canon_begin(&c, "bc/x");
    bc_canon_str(&c, "ab");
    bc_canon_u64(&c, 0x0102030405060708ULL);
    bc_canon_i64(&c, -2);
    bc_canon_bytes(&c, NULL, 0);
    bc_canon_str(&c, NULL);
    bc_canon_bytes(&c, bin, sizeof(bin));
    assert_int_equal(bc_canon_status(&c), BC_OK);
    assert_int_equal(c.len, sizeof(expected));
    assert_memory_equal(c.data, expected, sizeof(expected));

    /* begin resets: the same buffer re-encodes from scratch. */
    bc_canon_begin(&c, "d");
    bc_canon_str(&c, "");
    assert_int_equal(bc_canon_status(&c), BC_OK);
    assert_int_equal(c.len, 5);
    assert_memory_equal(c.data, "d\0\0\0\0", 5);
    bc_canon_free(&c);
    assert_null(c.data);
}

static void test_canon_growth_and_sticky_failure(void **state)
{
    (void)state;
    bc_canon c = {0};
    bc_canon_begin(&c, "grow");
    uint8_t block[1000];
    memset(block, 0x5a, sizeof(block));
    for (int i = 0; i < 100; i++)
        bc_canon_bytes(&c, block, sizeof(block));
    assert_int_equal(bc_canon_status(&c), BC_OK);
    assert_int_equal(c.len, 4 + 100 * (4 + sizeof(block)));
    assert_int_equal(c.data[c.len - 1], 0x5a);

    size_t before = c.len;
    bc_canon_bytes(&c, block, (size_t)UINT32_MAX + 1); /* refused before reading */
    assert_int_equal(bc_canon_status(&c), BC_ERR_TOO_BIG);
    bc_canon_str(&c, "later");
    bc_canon_u64(&c, 1);
    assert_int_equal(bc_canon_status(&c), BC_ERR_TOO_BIG);
    assert_int_equal(c.len, before);

    bc_canon_begin(&c, "again");
    assert_int_equal(bc_canon_status(&c), BC_OK);
    bc_canon_free(&c);
}

static void test_canon_fields_do_not_run_together(void **state)
{
    (void)state;
    bc_canon a = {0}, b = {0};
    bc_canon_begin(&a, "d");
    bc_canon_str(&a, "ab");
    bc_canon_str(&a, "c");
    bc_canon_begin(&b, "d");
    bc_canon_str(&b, "a");
    bc_canon_str(&b, "bc");
    assert_int_equal(a.len, b.len);
    assert_memory_not_equal(a.data, b.data, a.len);
    bc_canon_free(&a);
    bc_canon_free(&b);
}

static void test_sign_verify(void **state)
{
    fixture *f = *state;
    static const uint8_t msg[] = "receipt for rec-1";
    uint8_t sig[BC_ED25519_SIG_LEN];
    assert_int_equal(bc_sign(f->ed, msg, sizeof(msg), sig), BC_OK);
    assert_int_equal(bc_verify(f->ed, msg, sizeof(msg), sig), BC_OK);

    /* Verify with only the public half. */
    uint8_t raw[BC_RAW_KEY_LEN];
    EVP_PKEY *pub = NULL;
    assert_int_equal(bc_key_raw_public(f->ed, raw), BC_OK);
    assert_int_equal(bc_key_from_raw_public(EVP_PKEY_ED25519, raw, &pub), BC_OK);
    assert_int_equal(bc_verify(pub, msg, sizeof(msg), sig), BC_OK);

    /* Every single-bit change of the message or the signature is refused. */
    uint8_t m2[sizeof(msg)];
    for (size_t i = 0; i < sizeof(msg) * 8; i++) {
        memcpy(m2, msg, sizeof(msg));
        m2[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(bc_verify(pub, m2, sizeof(m2), sig), BC_ERR_SIGNATURE);
    }
    uint8_t s2[BC_ED25519_SIG_LEN];
    for (size_t i = 0; i < sizeof(sig) * 8; i++) {
        memcpy(s2, sig, sizeof(sig));
        s2[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(bc_verify(pub, msg, sizeof(msg), s2), BC_ERR_SIGNATURE);
    }
    /* A shorter message, another key, an X25519 key: refused. */
    assert_int_equal(bc_verify(pub, msg, sizeof(msg) - 1, sig), BC_ERR_SIGNATURE);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(other);
    assert_int_equal(bc_verify(other, msg, sizeof(msg), sig), BC_ERR_SIGNATURE);
    assert_int_equal(bc_verify(f->x, msg, sizeof(msg), sig), BC_ERR_SIGNATURE);
    assert_int_equal(bc_sign(f->x, msg, sizeof(msg), sig), BC_ERR_INVAL);

    /* The empty message is signable. */
    assert_int_equal(bc_sign(f->ed, NULL, 0, sig), BC_OK);
    assert_int_equal(bc_verify(pub, NULL, 0, sig), BC_OK);
    EVP_PKEY_free(other);
    EVP_PKEY_free(pub);
}

static void test_load_pem_keys(void **state)
{
    fixture *f = *state;
    char ed_key[128], ed_pub[128], x_key[128], x_pub[128];
    path_in(f, "ed.key", ed_key, sizeof(ed_key));
    path_in(f, "ed.pub", ed_pub, sizeof(ed_pub));
    path_in(f, "x.key", x_key, sizeof(x_key));
    path_in(f, "x.pub", x_pub, sizeof(x_pub));
    write_private_pem(ed_key, f->ed);
    write_public_pem(ed_pub, f->ed);
    write_private_pem(x_key, f->x);
    write_public_pem(x_pub, f->x);

    EVP_PKEY *priv = NULL, *pub = NULL, *xpriv = NULL, *xpub = NULL;
    bc_error err = {{0}};
    assert_int_equal(bc_key_load_private(ed_key, EVP_PKEY_ED25519, &priv, &err), BC_OK);
    assert_int_equal(bc_key_load_public(ed_pub, EVP_PKEY_ED25519, &pub, &err), BC_OK);
    assert_int_equal(bc_key_load_private(x_key, EVP_PKEY_X25519, &xpriv, &err), BC_OK);
    assert_int_equal(bc_key_load_public(x_pub, EVP_PKEY_X25519, &xpub, &err), BC_OK);

    /* Loaded keys work together: sign with the loaded private, verify with the loaded public. */
    static const uint8_t msg[] = "hello";
    uint8_t sig[BC_ED25519_SIG_LEN];
    assert_int_equal(bc_sign(priv, msg, sizeof(msg), sig), BC_OK);
    assert_int_equal(bc_verify(pub, msg, sizeof(msg), sig), BC_OK);
    assert_int_equal(EVP_PKEY_eq(xpub, f->x), 1);

    /* Key ids: 16 lowercase hex, equal for the private and public halves, differ per key. */
    char id1[BC_KEY_ID_LEN + 1], id2[BC_KEY_ID_LEN + 1], id3[BC_KEY_ID_LEN + 1];
    assert_int_equal(bc_key_id(priv, id1), BC_OK);
    assert_int_equal(bc_key_id(pub, id2), BC_OK);
    assert_int_equal(bc_key_id(xpub, id3), BC_OK);
    assert_int_equal(strlen(id1), BC_KEY_ID_LEN);
    assert_int_equal(strspn(id1, "0123456789abcdef"), BC_KEY_ID_LEN);
    assert_string_equal(id1, id2);
    assert_string_not_equal(id1, id3);

    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(xpriv);
    EVP_PKEY_free(xpub);
}

static void test_load_failures(void **state)
{
    fixture *f = *state;
    char ed_key[128], ed_pub[128], x_key[128], garbage[128], empty[128], missing[128];
    path_in(f, "ed.key", ed_key, sizeof(ed_key));
    path_in(f, "ed.pub", ed_pub, sizeof(ed_pub));
    path_in(f, "x.key", x_key, sizeof(x_key));
    path_in(f, "garbage", garbage, sizeof(garbage));
    path_in(f, "empty", empty, sizeof(empty));
    path_in(f, "missing", missing, sizeof(missing));
    write_private_pem(ed_key, f->ed);
    write_public_pem(ed_pub, f->ed);
    write_private_pem(x_key, f->x);
    bc_test_write_file(
        garbage, "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n");
    bc_test_write_file(empty, "");

    EVP_PKEY *k = (EVP_PKEY *)&k; /* must be reset to NULL on failure */
    bc_error err = {{0}};
    assert_int_equal(bc_key_load_private(x_key, EVP_PKEY_ED25519, &k, &err), BC_ERR_INVAL);
    assert_null(k);
    assert_non_null(strstr(err.text, "x.key"));
    assert_int_equal(bc_key_load_private(ed_key, EVP_PKEY_X25519, &k, &err), BC_ERR_INVAL);
    assert_int_equal(bc_key_load_public(ed_pub, EVP_PKEY_X25519, &k, &err), BC_ERR_INVAL);
    assert_int_equal(bc_key_load_private(ed_key, 12345, &k, &err), BC_ERR_INVAL);
    /* A public key file is not a private key, and vice versa. */
    assert_int_equal(bc_key_load_private(ed_pub, EVP_PKEY_ED25519, &k, &err), BC_ERR_PARSE);
    assert_int_equal(bc_key_load_public(ed_key, EVP_PKEY_ED25519, &k, &err), BC_ERR_PARSE);
    assert_int_equal(bc_key_load_private(garbage, EVP_PKEY_ED25519, &k, &err), BC_ERR_PARSE);
    assert_int_equal(bc_key_load_public(garbage, EVP_PKEY_ED25519, &k, &err), BC_ERR_PARSE);
    assert_int_equal(bc_key_load_private(empty, EVP_PKEY_ED25519, &k, &err), BC_ERR_PARSE);
    assert_int_equal(bc_key_load_private(missing, EVP_PKEY_ED25519, &k, &err), BC_ERR_IO);
    assert_non_null(strstr(err.text, "missing"));
    assert_int_equal(bc_key_load_public(missing, EVP_PKEY_ED25519, &k, &err), BC_ERR_IO);
    assert_null(k);
}

static void test_key_id_known_value(void **state)
{
    (void)state;
    /* sha256(00 01 .. 1f) starts 630dcd2966c43366 (computed independently). */
    uint8_t raw[BC_RAW_KEY_LEN];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)i;
    EVP_PKEY *k = NULL;
    assert_int_equal(bc_key_from_raw_public(EVP_PKEY_X25519, raw, &k), BC_OK);
    char id[BC_KEY_ID_LEN + 1];
    assert_int_equal(bc_key_id(k, id), BC_OK);
    assert_string_equal(id, "630dcd2966c43366");
    uint8_t back[BC_RAW_KEY_LEN];
    assert_int_equal(bc_key_raw_public(k, back), BC_OK);
    assert_memory_equal(back, raw, sizeof(raw));
    EVP_PKEY_free(k);
    assert_int_equal(bc_key_from_raw_public(EVP_PKEY_RSA, raw, &k), BC_ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon_exact_bytes),
        cmocka_unit_test(test_canon_growth_and_sticky_failure),
        cmocka_unit_test(test_canon_fields_do_not_run_together),
        cmocka_unit_test_setup_teardown(test_sign_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_pem_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_failures, setup, teardown),
        cmocka_unit_test(test_key_id_known_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
