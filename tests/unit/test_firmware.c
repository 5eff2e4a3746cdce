/* Unit tests for proto/firmware: sign/verify and JSON round trips, a change
 * to any signed field breaks the signature, malformed manifests are refused,
 * and the version rules (forward only unless a signed rollback). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "proto/firmware.h"

static EVP_PKEY *fw_key;
static EVP_PKEY *other_key;

static int setup(void **state)
{
    (void)state;
    fw_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    other_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    return fw_key != NULL && other_key != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(fw_key);
    EVP_PKEY_free(other_key);
    return 0;
}

static bc_firmware_manifest sample(void)
{
    bc_firmware_manifest m;
    memset(&m, 0, sizeof(m));
    strcpy(m.version, "2.4.1");
    m.size = 100000;
    strcpy(m.sha256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    m.chunk_size = 65536;
    m.chunks = 2;
    strcpy(m.min_version, "2.0");
    m.rollback = false;
    return m;
}

static bc_firmware_manifest signed_sample(void)
{
    bc_firmware_manifest m = sample();
    bc_error err = {{0}};
    assert_int_equal(bc_firmware_sign(&m, fw_key, &err), BC_OK);
    assert_true(m.has_sig);
    return m;
}

static void test_sign_verify(void **state)
{
    (void)state;
    bc_firmware_manifest m = signed_sample();
    bc_error err = {{0}};
    assert_int_equal(bc_firmware_verify(&m, fw_key, &err), BC_OK);
    assert_int_equal(bc_firmware_verify(&m, other_key, &err), BC_ERR_SIGNATURE);
    m.has_sig = false;
    assert_int_equal(bc_firmware_verify(&m, fw_key, &err), BC_ERR_SIGNATURE);
}

static void test_any_field_change_breaks_signature(void **state)
{
    (void)state;
    for (int field = 0; field < 8; field++) {
        bc_firmware_manifest m = signed_sample();
        switch (field) {
        case 0:
            m.version[4] = '2';
            break;
        case 1:
            m.size += 1;
            break;
        case 2:
            m.sha256[10] = m.sha256[10] == 'a' ? 'b' : 'a';
            break;
        case 3:
            m.chunk_size -= 1; /* still two chunks */
            break;
        case 4:
            m.min_version[2] = '1';
            break;
        case 5:
            m.rollback = true;
            break;
        case 6:
            m.sig[0] ^= 1;
            break;
        case 7:
            m.sig[63] ^= 0x80;
            break;
        }
        bc_error err = {{0}};
        bc_status rc = bc_firmware_verify(&m, fw_key, &err);
        if (rc != BC_ERR_SIGNATURE)
            fail_msg("change %d: got %s", field, bc_strerror(rc));
    }
}

static void test_json_round_trip(void **state)
{
    (void)state;
    bc_firmware_manifest m = signed_sample();
    bc_error err = {{0}};
    char *text = NULL;
    assert_int_equal(bc_firmware_encode(&m, &text, &err), BC_OK);
    bc_firmware_manifest back;
    memset(&back, 0xee, sizeof(back));
    assert_int_equal(bc_firmware_decode(text, strlen(text), &back, &err), BC_OK);
    assert_string_equal(back.version, m.version);
    assert_int_equal(back.size, m.size);
    assert_string_equal(back.sha256, m.sha256);
    assert_int_equal(back.chunk_size, m.chunk_size);
    assert_int_equal(back.chunks, m.chunks);
    assert_string_equal(back.min_version, m.min_version);
    assert_int_equal(back.rollback, m.rollback);
    assert_memory_equal(back.sig, m.sig, sizeof(m.sig));
    assert_true(back.has_sig);
    assert_int_equal(bc_firmware_verify(&back, fw_key, &err), BC_OK);
    free(text);

    /* Without min_version the field is left out and reads back empty. */
    m = sample();
    m.min_version[0] = '\0';
    assert_int_equal(bc_firmware_sign(&m, fw_key, &err), BC_OK);
    assert_int_equal(bc_firmware_encode(&m, &text, &err), BC_OK);
    assert_null(strstr(text, "min_version"));
    assert_int_equal(bc_firmware_decode(text, strlen(text), &back, &err), BC_OK);
    assert_string_equal(back.min_version, "");
    assert_int_equal(bc_firmware_verify(&back, fw_key, &err), BC_OK);
    free(text);
}

static void test_tampered_json_fails_verify(void **state)
{
    (void)state;
    bc_firmware_manifest m = signed_sample();
    char *text = NULL;
    assert_int_equal(bc_firmware_encode(&m, &text, NULL), BC_OK);
    char *size = strstr(text, "\"size\":100000");
    assert_non_null(size);
    size[strlen("\"size\":1")] = '1'; /* 110000: still two chunks */
    bc_firmware_manifest back;
    bc_error err = {{0}};
    assert_int_equal(bc_firmware_decode(text, strlen(text), &back, &err), BC_OK);
    assert_int_equal(back.size, 110000);
    assert_int_equal(bc_firmware_verify(&back, fw_key, &err), BC_ERR_SIGNATURE);
    free(text);
}

static void expect_decode(const char *text, bc_status want)
{
    bc_firmware_manifest m;
    bc_error err = {{0}};
    bc_status got = bc_firmware_decode(text, strlen(text), &m, &err);
    if (got != want)
        fail_msg("'%s': got %s (%s), want %s", text, bc_strerror(got), err.text, bc_strerror(want));
}

static void test_decode_refuses(void **state)
{
    (void)state;
    bc_firmware_manifest m = signed_sample();
    char *text = NULL;
    assert_int_equal(bc_firmware_encode(&m, &text, NULL), BC_OK);
    expect_decode(text, BC_OK);
    char *sig = strstr(text, ",\"sig\"");
    assert_non_null(sig);
    char unsigned_text[1024];
    snprintf(unsigned_text, sizeof(unsigned_text), "%.*s}", (int)(sig - text), text);
    expect_decode(unsigned_text, BC_ERR_MISSING);

    char buf[1024];
    snprintf(buf, sizeof(buf), "%.*s,\"sig\":\"AAAA\"}", (int)(sig - text), text);
    expect_decode(buf, BC_ERR_PARSE);
    snprintf(buf, sizeof(buf), "%.*s,\"sig\":5}", (int)(sig - text), text);
    expect_decode(buf, BC_ERR_TYPE);
    free(text);

    char zero_sig[89]; /* base64 of 64 zero bytes */
    memset(zero_sig, 'A', 86);
    strcpy(zero_sig + 86, "==");
    char base[512];
    snprintf(base, sizeof(base),
             "\"size\":100000,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd1"
             "5d6c15b0f00a08\",\"chunk_size\":65536,\"rollback\":false,\"sig\":\"%s\"",
             zero_sig);
    snprintf(buf, sizeof(buf), "{\"v\":1,\"version\":\"2.4.1\",\"chunks\":2,%s}", base);
    expect_decode(buf, BC_OK); /* well-formed; only verify would refuse it */
    snprintf(buf, sizeof(buf), "{\"v\":2,\"version\":\"2.4.1\",\"chunks\":2,%s}", base);
    expect_decode(buf, BC_ERR_VERSION);
    snprintf(buf, sizeof(buf), "{\"v\":1,\"version\":\"2.4.1\",\"chunks\":3,%s}", base);
    expect_decode(buf, BC_ERR_INVAL);
    snprintf(buf, sizeof(buf), "{\"v\":1,\"version\":\"2.x\",\"chunks\":2,%s}", base);
    expect_decode(buf, BC_ERR_INVAL);
    snprintf(buf, sizeof(buf), "{\"v\":1,\"version\":2,\"chunks\":2,%s}", base);
    expect_decode(buf, BC_ERR_TYPE);
    snprintf(buf, sizeof(buf), "{\"v\":1,\"chunks\":2,%s}", base);
    expect_decode(buf, BC_ERR_MISSING);
}

static void test_validate_and_encode_refuse(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_firmware_manifest m = sample();
    char *text = (char *)"untouched";
    assert_int_equal(bc_firmware_encode(&m, &text, &err), BC_ERR_INVAL); /* unsigned */
    assert_null(text);
    m.chunks = 3;
    assert_int_equal(bc_firmware_validate(&m, &err), BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "chunks"));
    assert_int_equal(bc_firmware_sign(&m, fw_key, &err), BC_ERR_INVAL);
    assert_false(m.has_sig);
    m = sample();
    m.sha256[0] = 'F';
    assert_int_equal(bc_firmware_validate(&m, &err), BC_ERR_INVAL);
    m = sample();
    m.size = 0;
    assert_int_equal(bc_firmware_validate(&m, &err), BC_ERR_INVAL);
    m = sample();
    strcpy(m.min_version, "latest");
    assert_int_equal(bc_firmware_validate(&m, &err), BC_ERR_INVAL);
    m = sample();
    memset(m.version, '1', sizeof(m.version)); /* not terminated */
    assert_int_equal(bc_firmware_validate(&m, &err), BC_ERR_INVAL);
}

static int cmp(const char *a, const char *b)
{
    int out = 99;
    assert_int_equal(bc_firmware_version_compare(a, b, &out), BC_OK);
    return out;
}

static void test_version_compare(void **state)
{
    (void)state;
    assert_int_equal(cmp("1.2.3", "1.2.3"), 0);
    assert_true(cmp("1.2.4", "1.2.3") > 0);
    assert_true(cmp("1.10", "1.9") > 0);
    assert_true(cmp("1.9", "1.10") < 0);
    assert_int_equal(cmp("1.2", "1.2.0"), 0);
    assert_int_equal(cmp("1.2.0.0", "1.2"), 0);
    assert_true(cmp("1.2.0.1", "1.2") > 0);
    assert_int_equal(cmp("01.002", "1.2"), 0);
    assert_true(cmp("2", "1.99.99.99") > 0);
    assert_true(cmp("99999999999999999999.0", "99999999999999999998.9") > 0);
    int out;
    assert_int_equal(bc_firmware_version_compare("1.x", "1.0", &out), BC_ERR_INVAL);
    assert_int_equal(bc_firmware_version_compare("1.0", "", &out), BC_ERR_INVAL);
}

static void test_check_install(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_firmware_manifest m = sample(); /* 2.4.1, min 2.0 */
    assert_int_equal(bc_firmware_check_install(&m, "2.4.0", &err), BC_OK);
    assert_int_equal(bc_firmware_check_install(&m, "2.0", &err), BC_OK);
    assert_int_equal(bc_firmware_check_install(&m, "2.4.1", &err), BC_ERR_DENIED);
    assert_int_equal(bc_firmware_check_install(&m, "3.0", &err), BC_ERR_DENIED);
    assert_int_equal(bc_firmware_check_install(&m, "1.9.9", &err), BC_ERR_DENIED);
    assert_int_equal(bc_firmware_check_install(&m, "garbage", &err), BC_ERR_INVAL);
    m.rollback = true;
    assert_int_equal(bc_firmware_check_install(&m, "3.0", &err), BC_OK);
    m.min_version[0] = '\0';
    assert_int_equal(bc_firmware_check_install(&m, "0.1", &err), BC_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_any_field_change_breaks_signature),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_tampered_json_fails_verify),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_validate_and_encode_refuse),
        cmocka_unit_test(test_version_compare),
        cmocka_unit_test(test_check_install),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
