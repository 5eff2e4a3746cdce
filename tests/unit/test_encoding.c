/* Unit tests for proto/encoding: RFC 4648 vectors, lowercase hex, big-endian integers, and the
 * refusal of every non-canonical spelling that OpenSSL alone would accept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/encoding.h"

static void test_hex(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x00, 0xab, 0xCD, 0x7f, 0xff};
    char hex[11];
    assert_int_equal(bc_hex_encode(bytes, sizeof(bytes), hex, sizeof(hex)), BC_OK);
    assert_string_equal(hex, "00abcd7fff");
    assert_int_equal(bc_hex_encode(bytes, sizeof(bytes), hex, sizeof(hex) - 1), BC_ERR_INVAL);
    assert_int_equal(bc_hex_encode(bytes, 0, hex, 1), BC_OK);
    assert_string_equal(hex, "");

    uint8_t out[5];
    assert_int_equal(bc_hex_decode("00abcd7fff", out, sizeof(out)), BC_OK);
    assert_memory_equal(out, bytes, sizeof(out));
    assert_int_equal(bc_hex_decode("00ABCD7FFF", out, sizeof(out)), BC_OK);
    assert_memory_equal(out, bytes, sizeof(out));
    assert_int_equal(bc_hex_decode("00abcd7ff", out, sizeof(out)), BC_ERR_PARSE);
    assert_int_equal(bc_hex_decode("00abcd7fff00", out, sizeof(out)), BC_ERR_PARSE);
    assert_int_equal(bc_hex_decode("00abcd7ffg", out, sizeof(out)), BC_ERR_PARSE);
    assert_int_equal(bc_hex_decode("00:bcd7fff", out, sizeof(out)), BC_ERR_PARSE);
    assert_int_equal(bc_hex_decode(" 0abcd7fff", out, sizeof(out)), BC_ERR_PARSE);
    assert_int_equal(bc_hex_decode(NULL, out, sizeof(out)), BC_ERR_PARSE);
    assert_int_equal(bc_hex_decode("", out, 0), BC_OK);
}

static void test_base64_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                        "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        size_t len = strlen(plain[i]);
        char text[16];
        assert_int_equal(bc_base64_encoded_len(len), strlen(coded[i]));
        assert_int_equal(bc_base64_encode((const uint8_t *)plain[i], len, text, sizeof(text)),
                         BC_OK);
        assert_string_equal(text, coded[i]);
        uint8_t back[8];
        size_t n = 99;
        /* an exactly sized output buffer is enough, despite the padding */
        assert_int_equal(bc_base64_decode(coded[i], strlen(coded[i]), back, len, &n), BC_OK);
        assert_int_equal(n, len);
        assert_memory_equal(back, plain[i], len);
    }
    char small[4];
    assert_int_equal(bc_base64_encode((const uint8_t *)"foo", 3, small, sizeof(small)),
                     BC_ERR_INVAL);
    uint8_t tiny[2];
    size_t n = 0;
    assert_int_equal(bc_base64_decode("Zm9v", 4, tiny, sizeof(tiny), &n), BC_ERR_TOO_BIG);
}

static void test_base64_refuses_non_canonical(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zh==",                  /* non-zero unused bits: would also decode to "f" */
        "Zm9=",                  /* ditto for two bytes */
        "Zg=",                   /* wrong length */
        "Zg",                    /* no padding */
        "Z===",                  /* three '=' */
        "====",                  /* only padding */
        "Zg==Zg==",              /* padding in the middle */
        "Z=g=",                  /* '=' inside the last group */
        " Zg=",                  /* whitespace OpenSSL would skip */
        "Zm9v\n",                /* trailing newline */
        "Zm9v    ",              /* trailing spaces */
        "Zm-v",                  /* URL-safe alphabet */
        "Zm_v",     "Zm9v\0AAA", /* embedded NUL within the given length */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[16];
        size_t n = 0;
        size_t len = i == sizeof(bad) / sizeof(bad[0]) - 1 ? 8 : strlen(bad[i]);
        bc_status rc = bc_base64_decode(bad[i], len, out, sizeof(out), &n);
        if (rc != BC_ERR_PARSE)
            fail_msg("accepted or mis-refused '%s': %s", bad[i], bc_strerror(rc));
    }
}

static void test_base64_round_trip(void **state)
{
    (void)state;
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(data); len++) {
        char text[401];
        assert_int_equal(bc_base64_encode(data, len, text, sizeof(text)), BC_OK);
        assert_int_equal(strlen(text), bc_base64_encoded_len(len));
        uint8_t back[300];
        size_t n = 0;
        assert_int_equal(bc_base64_decode(text, strlen(text), back, len, &n), BC_OK);
        assert_int_equal(n, len);
        assert_memory_equal(back, data, len);
    }
}

/* The alphabet check runs in blocks of 64 characters: a byte outside the
 * alphabet is refused wherever it is - first block, block edges, the tail
 * after the last whole block, the final group. */
static void test_base64_refuses_bad_byte_anywhere(void **state)
{
    (void)state;
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 53 + 1);
    char good[401];
    assert_int_equal(bc_base64_encode(data, sizeof(data), good, sizeof(good)), BC_OK);
    static const size_t where[] = {0,   1,   62,  63,  64,  65,  127, 128, 255, 256,
                                   320, 383, 384, 390, 395, 396, 397, 398, 399};
    for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
        for (int c = 0; c < 256; c++) {
            int in_alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                              (c >= '0' && c <= '9') || c == '+' || c == '/';
            if (in_alphabet || (c == '=' && where[w] >= 398))
                continue; /* '=' there is padding: another, canonical-checked case */
            char text[401];
            memcpy(text, good, sizeof(text));
            text[where[w]] = (char)c;
            uint8_t out[300];
            size_t n = 0;
            bc_status rc = bc_base64_decode(text, 400, out, sizeof(out), &n);
            if (rc != BC_ERR_PARSE)
                fail_msg("byte 0x%02x at %zu: %s", c, where[w], bc_strerror(rc));
        }
    }
    uint8_t out[300];
    size_t n = 0;
    assert_int_equal(bc_base64_decode(good, 400, out, sizeof(out), &n), BC_OK);
    assert_int_equal(n, sizeof(data));
    assert_memory_equal(out, data, sizeof(data));
}

static void test_big_endian(void **state)
{
    (void)state;
    /* exact bytes, most significant first, at an odd (unaligned) offset */
    uint8_t buf[13];
    memset(buf, 0xee, sizeof(buf));
    bc_be32_store(buf + 1, 0x01020304u);
    bc_be64_store(buf + 5, 0x8877665544332211ULL);
    static const uint8_t want[13] = {0xee, 0x01, 0x02, 0x03, 0x04, 0x88, 0x77,
                                     0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
    assert_memory_equal(buf, want, sizeof(want));
    assert_int_equal(bc_be32_load(buf + 1), 0x01020304u);
    assert_true(bc_be64_load(buf + 5) == 0x8877665544332211ULL);

    /* the extremes survive a round trip, high bits included */
    static const uint64_t values[] = {0, 1, 0xff, 0x100, 0x7fffffffffffffffULL, UINT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        bc_be64_store(buf, values[i]);
        assert_true(bc_be64_load(buf) == values[i]);
        bc_be32_store(buf, (uint32_t)values[i]);
        assert_int_equal(bc_be32_load(buf), (uint32_t)values[i]);
    }
    bc_be32_store(buf, UINT32_MAX);
    assert_memory_equal(buf, "\xff\xff\xff\xff", 4);
}

static void test_equal_ct(void **state)
{
    (void)state;
    assert_true(bc_equal_ct("abcd", "abcd", 4));
    assert_false(bc_equal_ct("abcd", "abce", 4));
    assert_false(bc_equal_ct("Abcd", "abcd", 4));
    assert_true(bc_equal_ct("x", "y", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_refuses_non_canonical),
        cmocka_unit_test(test_base64_round_trip),
        cmocka_unit_test(test_base64_refuses_bad_byte_anywhere),
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_equal_ct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
