/* Unit tests for proto/json: the bounded parser refuses every malformed,
 * oversize, deep or non-UTF-8 input with the documented status, and the
 * typed readers name the field and tell missing, wrong type and out of
 * range apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/json.h"

static bc_status parse_n(const char *buf, size_t len, size_t max)
{
    cJSON *root = NULL;
    bc_error err = {{0}};
    bc_status rc = bc_json_parse(buf, len, max, &root, &err);
    if (rc == BC_OK) {
        assert_non_null(root);
        cJSON_Delete(root);
    } else {
        assert_null(root);
        assert_true(err.text[0] != '\0');
    }
    return rc;
}

static bc_status parse(const char *text)
{
    return parse_n(text, strlen(text), 16384);
}

static void expect(const char *text, bc_status want)
{
    bc_status got = parse(text);
    if (got != want)
        fail_msg("'%s': got %s, want %s", text, bc_strerror(got), bc_strerror(want));
}

static void test_parse_accepts(void **state)
{
    (void)state;
    expect("{}", BC_OK);
    expect(" \t\r\n{\"a\":1} \n", BC_OK);
    expect("{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false}", BC_OK);
    expect("{\"n\":-0,\"m\":1.5e+3,\"k\":0.25,\"j\":-12E-2,\"i\":0}", BC_OK);
    expect("{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf\"}", BC_OK);
    expect("{\"s\":\"\\ud83d\\ude00 \\u00e9 \\n \\\" \\\\ \\/\"}", BC_OK);
    expect("{\"s\":\"[[[[[[[[[[{{{{{{{{{{\"}", BC_OK); /* brackets in strings do not nest */
}

static void test_parse_refuses_bad_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"s\":\"\xc0\xaf\"}",             /* overlong '/' */
        "{\"s\":\"\xc1\xbf\"}",             /* overlong */
        "{\"s\":\"\xe0\x80\xaf\"}",         /* 3-byte overlong */
        "{\"s\":\"\xf0\x80\x80\xaf\"}",     /* 4-byte overlong */
        "{\"s\":\"\xed\xa0\x80\"}",         /* UTF-16 surrogate D800 */
        "{\"s\":\"\xed\xbf\xbf\"}",         /* surrogate DFFF */
        "{\"s\":\"\xf4\x90\x80\x80\"}",     /* U+110000 */
        "{\"s\":\"\xf8\x88\x80\x80\x80\"}", /* 5-byte form */
        "{\"s\":\"\xe2\x82\"}",             /* truncated sequence */
        "{\"s\":\"\xe2\"}",                 /* truncated at the quote */
        "{\"s\":\"\x80\"}",                 /* lone continuation byte */
        "{\"s\":\"\xff\"}",
        "{\"s\":\"a\x01\"}",   /* raw control byte in a string */
        "{\"s\":\"a\tb\"}",    /* even a tab must be escaped */
        "{\"s\":\"\\u0000\"}", /* escaped NUL */
        "{\"s\":\"\\ud800\"}", /* lone escaped surrogate */
        "{\"s\":\"\\udc00x\"}",
        "{\"s\":\"\\x41\"}", /* not a JSON escape */
        "{\"s\":\"\\u12\"}", /* short \u */
        "{\"s\":1}\x01",     /* control byte outside a string */
        "\xef\xbb\xbf{}",    /* byte order mark */
        "{\"s\":1,\xc3\xa9:2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect(bad[i], BC_ERR_PARSE);

    /* NUL bytes, inside and outside a string, with an explicit length. */
    static const char nul_in[] = "{\"s\":\"a\0b\"}";
    assert_int_equal(parse_n(nul_in, sizeof(nul_in) - 1, 100), BC_ERR_PARSE);
    static const char nul_out[] = "{\"s\":1}\0";
    assert_int_equal(parse_n(nul_out, sizeof(nul_out) - 1, 100), BC_ERR_PARSE);
}

static void test_parse_refuses_bad_numbers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"n\":01}",  "{\"n\":1.}",    "{\"n\":.5}",   "{\"n\":+1}",  "{\"n\":-}",   "{\"n\":1e}",
        "{\"n\":1e+}", "{\"n\":1.5.3}", "{\"n\":0x10}", "{\"n\":-01}", "{\"n\":1-2}", "{\"n\":--1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect(bad[i], BC_ERR_PARSE);
}

static void test_parse_structure(void **state)
{
    (void)state;
    expect("{}x", BC_ERR_PARSE);
    expect("{} {}", BC_ERR_PARSE);
    expect("{\"a\":1", BC_ERR_PARSE);
    expect("{\"a\":1,}", BC_ERR_PARSE);
    expect("{'a':1}", BC_ERR_PARSE);
    expect("{\"a\":1}/*c*/", BC_ERR_PARSE);
    expect("[]", BC_ERR_TYPE);
    expect("[{}]", BC_ERR_TYPE);
    expect("1", BC_ERR_TYPE);
    expect("\"s\"", BC_ERR_TYPE);
    expect("null", BC_ERR_TYPE);
    expect("true", BC_ERR_TYPE);
    assert_int_equal(parse_n("", 0, 10), BC_ERR_PARSE);
    assert_int_equal(parse_n(NULL, 0, 10), BC_ERR_PARSE);
    cJSON *root = NULL;
    assert_int_equal(bc_json_parse("{}", 2, 10, NULL, NULL), BC_ERR_INVAL);
    assert_int_equal(bc_json_parse("{}", 2, 10, &root, NULL), BC_OK); /* NULL err is fine */
    cJSON_Delete(root);
}

static void test_parse_duplicate_keys(void **state)
{
    (void)state;
    expect("{\"a\":1,\"a\":2}", BC_ERR_PARSE);
    expect("{\"a\":1,\"b\":2,\"c\":3,\"b\":4}", BC_ERR_PARSE);
    expect("{\"o\":{\"x\":1,\"x\":1}}", BC_ERR_PARSE);
    expect("{\"l\":[{\"x\":1},{\"y\":1,\"y\":2}]}", BC_ERR_PARSE);
    expect("{\"a\":1,\"A\":2,\"o\":{\"a\":1}}", BC_OK); /* names are case-sensitive */
}

/* The string pre-scan skips plain bytes 32 at a time: whatever is special
 * is still found at every offset from a block's start, and strings of every
 * length end where they end. */
static void test_parse_long_strings(void **state)
{
    (void)state;
    static const struct {
        const char *insert;
        bc_status want;
    } cases[] = {
        {"\x01", BC_ERR_PARSE},
        {"\x1f", BC_ERR_PARSE},
        {"\x80", BC_ERR_PARSE},
        {"\xff", BC_ERR_PARSE},
        {"\xc3", BC_ERR_PARSE},
        {"\\x", BC_ERR_PARSE},
        {"\\u0000", BC_ERR_PARSE},
        {"\xc3\xa9", BC_OK},
        {"\xf0\x9f\x98\x80", BC_OK},
        {"\\n", BC_OK},
        {"\\\"", BC_OK},
        {"\x7f", BC_OK},
    };
    char text[256];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t at = 0; at <= 100; at++) {
            size_t n = 0;
            memcpy(text, "{\"s\":\"", 6);
            n = 6;
            memset(text + n, 'A', at);
            n += at;
            size_t k = strlen(cases[c].insert);
            memcpy(text + n, cases[c].insert, k);
            n += k;
            memset(text + n, 'B', 70);
            n += 70;
            memcpy(text + n, "\"}", 3);
            bc_status got = parse(text);
            if (got != cases[c].want)
                fail_msg("case %zu at %zu: got %s", c, at, bc_strerror(got));
        }
    }
    for (size_t len = 0; len <= 100; len++) { /* the closing quote at every offset */
        memcpy(text, "{\"s\":\"", 6);
        memset(text + 6, 'x', len);
        memcpy(text + 6 + len, "\",\"t\":1}", 9);
        assert_int_equal(parse(text), BC_OK);
        text[6 + len + 2] = '\0'; /* cut after '"' + ',': unterminated object */
        assert_int_equal(parse(text), BC_ERR_PARSE);
        text[6 + len] = '\0'; /* no closing quote at all */
        assert_int_equal(parse(text), BC_ERR_PARSE);
    }
}

/* ---- bc_json_scan_flat: the shortcut's form, and that it agrees with
 * bc_json_parse on every text it takes ---- */

static bool scan(const char *text, bc_json_flat_member *m, size_t cap, size_t *count)
{
    return bc_json_scan_flat(text, strlen(text), 16384, m, cap, count);
}

/* Every member scan found is in bc_json_parse's tree with the same value. */
static void expect_flat_agrees(const char *text)
{
    bc_json_flat_member m[16];
    size_t count = 0;
    if (!scan(text, m, 16, &count))
        fail_msg("'%s' is not taken as flat", text);
    cJSON *root = NULL;
    assert_int_equal(bc_json_parse(text, strlen(text), 16384, &root, NULL), BC_OK);
    assert_int_equal((size_t)cJSON_GetArraySize(root), count);
    for (size_t i = 0; i < count; i++) {
        char name[64];
        assert_true(m[i].name_len < sizeof(name));
        memcpy(name, m[i].name, m[i].name_len);
        name[m[i].name_len] = '\0';
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
        assert_non_null(item);
        switch (m[i].type) {
        case BC_JSON_FLAT_STRING:
            assert_true(cJSON_IsString(item));
            assert_int_equal(strlen(item->valuestring), m[i].text_len);
            assert_memory_equal(item->valuestring, m[i].text, m[i].text_len);
            break;
        case BC_JSON_FLAT_INT:
            assert_true(cJSON_IsNumber(item));
            assert_true(item->valuedouble == (double)m[i].number);
            break;
        case BC_JSON_FLAT_TRUE:
            assert_true(cJSON_IsTrue(item));
            break;
        case BC_JSON_FLAT_FALSE:
            assert_true(cJSON_IsFalse(item));
            break;
        case BC_JSON_FLAT_NULL:
            assert_true(cJSON_IsNull(item));
            break;
        }
    }
    cJSON_Delete(root);
}

static void test_scan_flat(void **state)
{
    (void)state;
    bc_json_flat_member m[8];
    size_t count = 99;
    assert_true(
        scan("{\"v\":1,\"s\":\"ab c\",\"n\":-12,\"t\":true,\"f\":false,\"z\":null}", m, 8, &count));
    assert_int_equal(count, 6);
    assert_int_equal(m[1].type, BC_JSON_FLAT_STRING);
    assert_int_equal(m[1].text_len, 4);
    assert_memory_equal(m[1].text, "ab c", 4);
    assert_int_equal(m[2].type, BC_JSON_FLAT_INT);
    assert_int_equal(m[2].number, -12);
    assert_int_equal(m[3].type, BC_JSON_FLAT_TRUE);
    assert_int_equal(m[4].type, BC_JSON_FLAT_FALSE);
    assert_int_equal(m[5].type, BC_JSON_FLAT_NULL);
    assert_ptr_equal(bc_json_flat_find(m, count, "n"), &m[2]);
    assert_null(bc_json_flat_find(m, count, "N"));
    assert_null(bc_json_flat_find(m, count, "s "));

    static const char *const agree[] = {
        "{}",
        " \t\r\n{ \"a\" : \"b\" ,\"c\":0 }\n",
        "{\"n\":-0,\"m\":999999999999999,\"k\":-999999999999999}",
        "{\"p\":\" !#$%&'()*+,-./0123456789:;<=>?@AZ[]^_`az{|}~\x7f\",\"e\":\"\"}",
        "{\"\":1,\"data\":\"QUJD\"}",
    };
    for (size_t i = 0; i < sizeof(agree) / sizeof(agree[0]); i++)
        expect_flat_agrees(agree[i]);

    static const char *const declined[] = {
        "{\"a\":\"\\u0041\"}",     /* an escape: cJSON's to decode */
        "{\"a\\n\":1}",            /* in a name too */
        "{\"a\":\"caf\xc3\xa9\"}", /* multi-byte UTF-8 */
        "{\"a\":{}}",              /* nested */
        "{\"a\":[]}",
        "{\"a\":1.5}", /* not an integer */
        "{\"a\":1e3}",
        "{\"a\":1E3}",
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":+1}",
        "{\"a\":1234567890123456}", /* 16 digits: past the exact range it vouches for */
        "{\"a\":1,\"a\":2}",        /* a name twice */
        "{\"a\":1,\"b\":2,\"a\":1}",
        "{\"a\":1,}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"a\":1",
        "{\"a\" 1}",
        "{a:1}",
        "[]",
        "\"s\"",
        "{\"a\":tru}",
        "{\"a\":truex}",
        "{\"a\":nul}",
        "{\"a\":\"x\ty\"}", /* raw control byte */
        "{\"a\":\"x}",      /* no closing quote */
        "{\"a\":1}\x01",
        "\xef\xbb\xbf{}",
        "",
    };
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
        if (scan(declined[i], m, 8, &count))
            fail_msg("'%s' was taken as flat", declined[i]);
    }
    /* more members than room, a text over max_len, NUL bytes */
    assert_false(scan("{\"a\":1,\"b\":2,\"c\":3}", m, 2, &count));
    assert_true(scan("{\"a\":1,\"b\":2}", m, 2, &count));
    assert_false(bc_json_scan_flat("{\"a\":1}", 7, 6, m, 8, &count));
    assert_false(bc_json_scan_flat("{\"a\":\"\0\"}", 9, 100, m, 8, &count));
    assert_false(bc_json_scan_flat(NULL, 0, 100, m, 8, &count));
}

static void test_parse_size_limit(void **state)
{
    (void)state;
    char buf[200];
    memset(buf, ' ', sizeof(buf));
    memcpy(buf, "{}", 2);
    assert_int_equal(parse_n(buf, 100, 100), BC_OK);
    assert_int_equal(parse_n(buf, 101, 100), BC_ERR_TOO_BIG);
    /* The size is checked before anything else: even garbage is TOO_BIG. */
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(parse_n(buf, sizeof(buf), 100), BC_ERR_TOO_BIG);
}

static void nested(char *out, int depth, char open, char close)
{
    size_t n = 0;
    out[n++] = '{';
    out[n++] = '"';
    out[n++] = 'a';
    out[n++] = '"';
    out[n++] = ':';
    for (int i = 1; i < depth; i++)
        out[n++] = open;
    out[n++] = '1';
    for (int i = 1; i < depth; i++)
        out[n++] = close;
    out[n++] = '}';
    out[n] = '\0';
}

static void test_parse_depth(void **state)
{
    (void)state;
    char buf[64];
    nested(buf, 8, '[', ']');
    expect(buf, BC_OK);
    nested(buf, 9, '[', ']');
    expect(buf, BC_ERR_TOO_BIG);
    expect("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{}}}}}}}}", BC_OK); /* 8 */
    expect("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{}}}}}}}}}", BC_ERR_TOO_BIG);
    /* Deep but unterminated: still refused for depth, never recursed. */
    char deep[4096];
    memset(deep, '[', sizeof(deep));
    assert_int_equal(parse_n(deep, sizeof(deep), 8192), BC_ERR_TOO_BIG);
}

static cJSON *tree(const char *text)
{
    cJSON *root = NULL;
    assert_int_equal(bc_json_parse(text, strlen(text), 4096, &root, NULL), BC_OK);
    return root;
}

static void test_read_string(void **state)
{
    (void)state;
    cJSON *t = tree("{\"s\":\"hello\",\"n\":5,\"z\":null,\"e\":\"\",\"Device\":\"x\"}");
    bc_error err = {{0}};
    char out[6] = "keep";
    assert_int_equal(bc_json_get_string(t, "s", BC_JSON_REQUIRED, out, sizeof(out), &err), BC_OK);
    assert_string_equal(out, "hello");
    char small[5] = "keep";
    assert_int_equal(bc_json_get_string(t, "s", BC_JSON_REQUIRED, small, sizeof(small), &err),
                     BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "'s'"));
    assert_string_equal(small, "keep");
    assert_int_equal(bc_json_get_string(t, "n", BC_JSON_REQUIRED, out, sizeof(out), &err),
                     BC_ERR_TYPE);
    assert_non_null(strstr(err.text, "'n'"));
    assert_int_equal(bc_json_get_string(t, "z", BC_JSON_OPTIONAL, out, sizeof(out), &err),
                     BC_ERR_TYPE);
    assert_int_equal(bc_json_get_string(t, "device", BC_JSON_REQUIRED, out, sizeof(out), &err),
                     BC_ERR_MISSING);
    assert_non_null(strstr(err.text, "'device'"));
    strcpy(out, "dflt");
    assert_int_equal(bc_json_get_string(t, "absent", BC_JSON_OPTIONAL, out, sizeof(out), &err),
                     BC_OK);
    assert_string_equal(out, "dflt");
    assert_int_equal(bc_json_get_string(t, "e", BC_JSON_REQUIRED, out, sizeof(out), &err), BC_OK);
    assert_string_equal(out, "");

    const char *ref = NULL;
    size_t len = 0;
    assert_int_equal(bc_json_get_string_ref(t, "s", BC_JSON_REQUIRED, 5, &ref, &len, &err), BC_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(ref, "hello", 5);
    assert_int_equal(bc_json_get_string_ref(t, "s", BC_JSON_REQUIRED, 4, &ref, &len, &err),
                     BC_ERR_INVAL);
    assert_true(bc_json_has(t, "z"));
    assert_false(bc_json_has(t, "absent"));
    cJSON_Delete(t);
}

static void test_read_int(void **state)
{
    (void)state;
    cJSON *t = tree("{\"a\":42,\"b\":1.5,\"c\":1e3,\"d\":9007199254740991,\"e\":9007199254740992,"
                    "\"f\":-9007199254740991,\"g\":\"7\",\"h\":true,\"i\":1e400,\"j\":-0}");
    bc_error err = {{0}};
    int64_t v = -1;
    const int64_t lo = BC_JSON_INT_MIN, hi = BC_JSON_INT_MAX;
    assert_int_equal(bc_json_get_int(t, "a", BC_JSON_REQUIRED, 0, 100, &v, &err), BC_OK);
    assert_int_equal(v, 42);
    assert_int_equal(bc_json_get_int(t, "a", BC_JSON_REQUIRED, 0, 41, &v, &err), BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "'a'"));
    assert_int_equal(bc_json_get_int(t, "a", BC_JSON_REQUIRED, 43, 100, &v, &err), BC_ERR_INVAL);
    assert_int_equal(bc_json_get_int(t, "b", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_ERR_INVAL);
    assert_int_equal(bc_json_get_int(t, "c", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_OK);
    assert_int_equal(v, 1000);
    assert_int_equal(bc_json_get_int(t, "d", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_OK);
    assert_int_equal(v, 9007199254740991LL);
    assert_int_equal(bc_json_get_int(t, "e", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_ERR_INVAL);
    assert_int_equal(bc_json_get_int(t, "f", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_OK);
    assert_int_equal(v, -9007199254740991LL);
    assert_int_equal(bc_json_get_int(t, "g", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_ERR_TYPE);
    assert_int_equal(bc_json_get_int(t, "h", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_ERR_TYPE);
    assert_int_equal(bc_json_get_int(t, "i", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_ERR_INVAL);
    assert_int_equal(bc_json_get_int(t, "j", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_OK);
    assert_int_equal(v, 0);
    assert_int_equal(bc_json_get_int(t, "x", BC_JSON_REQUIRED, lo, hi, &v, &err), BC_ERR_MISSING);
    v = 77;
    assert_int_equal(bc_json_get_int(t, "x", BC_JSON_OPTIONAL, lo, hi, &v, &err), BC_OK);
    assert_int_equal(v, 77);
    cJSON_Delete(t);
}

static void test_read_other_types(void **state)
{
    (void)state;
    cJSON *t = tree("{\"t\":true,\"f\":false,\"one\":1,\"o\":{\"k\":1},\"l\":[1,2,3]}");
    bc_error err = {{0}};
    bool b = false;
    assert_int_equal(bc_json_get_bool(t, "t", BC_JSON_REQUIRED, &b, &err), BC_OK);
    assert_true(b);
    assert_int_equal(bc_json_get_bool(t, "f", BC_JSON_REQUIRED, &b, &err), BC_OK);
    assert_false(b);
    assert_int_equal(bc_json_get_bool(t, "one", BC_JSON_REQUIRED, &b, &err), BC_ERR_TYPE);
    assert_int_equal(bc_json_get_bool(t, "no", BC_JSON_REQUIRED, &b, &err), BC_ERR_MISSING);

    const cJSON *o = NULL;
    assert_int_equal(bc_json_get_object(t, "o", BC_JSON_REQUIRED, &o, &err), BC_OK);
    assert_true(bc_json_has(o, "k"));
    assert_int_equal(bc_json_get_object(t, "l", BC_JSON_REQUIRED, &o, &err), BC_ERR_TYPE);
    assert_int_equal(bc_json_get_array(t, "l", BC_JSON_REQUIRED, 3, &o, &err), BC_OK);
    assert_int_equal(bc_json_get_array(t, "l", BC_JSON_REQUIRED, 2, &o, &err), BC_ERR_INVAL);
    assert_int_equal(bc_json_get_array(t, "o", BC_JSON_REQUIRED, 3, &o, &err), BC_ERR_TYPE);
    o = NULL;
    assert_int_equal(bc_json_get_array(t, "none", BC_JSON_OPTIONAL, 3, &o, &err), BC_OK);
    assert_null(o);
    cJSON_Delete(t);
}

static void test_version(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bc_status want;
    } cases[] = {
        {"{\"v\":1}", BC_OK},           {"{\"v\":2}", BC_ERR_VERSION},
        {"{\"v\":0}", BC_ERR_VERSION},  {"{\"v\":1.5}", BC_ERR_VERSION},
        {"{\"v\":\"1\"}", BC_ERR_TYPE}, {"{}", BC_ERR_MISSING},
        {"{\"V\":1}", BC_ERR_MISSING},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *t = tree(cases[i].text);
        bc_error err = {{0}};
        assert_int_equal(bc_json_check_version(t, &err), cases[i].want);
        cJSON_Delete(t);
    }
}

static void test_value_checks(void **state)
{
    (void)state;
    assert_true(bc_json_hex_valid("00ff", 4));
    assert_false(bc_json_hex_valid("00FF", 4));
    assert_false(bc_json_hex_valid("00f", 4));
    assert_false(bc_json_hex_valid("00fff", 4));
    assert_false(bc_json_hex_valid("00fg", 4));
    assert_false(bc_json_hex_valid(NULL, 4));
    assert_true(bc_json_text_valid("plain text, caf\xc3\xa9"));
    assert_false(bc_json_text_valid("two\nlines"));
    assert_false(bc_json_text_valid("del\x7f"));
    assert_false(bc_json_text_valid("esc\x1b[2J"));
}

static void test_builders(void **state)
{
    (void)state;
    cJSON *o = NULL;
    assert_int_equal(bc_json_new_message(&o), BC_OK);
    assert_int_equal(bc_json_add_int(o, "big", 9007199254740991LL), BC_OK);
    assert_int_equal(bc_json_add_int(o, "neg", -1234567890123456LL), BC_OK);
    assert_int_equal(bc_json_add_int(o, "over", 9007199254740992LL), BC_ERR_INVAL);
    assert_int_equal(bc_json_add_string(o, "s", "a\"b"), BC_OK);
    assert_int_equal(bc_json_add_bool(o, "b", true), BC_OK);
    cJSON *inner = cJSON_CreateObject();
    assert_int_equal(bc_json_add_item(o, "o", inner), BC_OK);
    char *text = NULL;
    assert_int_equal(bc_json_print(o, &text), BC_OK);
    assert_string_equal(text, "{\"v\":1,\"big\":9007199254740991,\"neg\":-1234567890123456,"
                              "\"s\":\"a\\\"b\",\"b\":true,\"o\":{}}");
    cJSON_Delete(o);

    /* What was printed reads back to the same exact integers. */
    cJSON *back = tree(text);
    int64_t v = 0;
    assert_int_equal(bc_json_check_version(back, NULL), BC_OK);
    assert_int_equal(bc_json_get_int(back, "big", BC_JSON_REQUIRED, 0, BC_JSON_INT_MAX, &v, NULL),
                     BC_OK);
    assert_int_equal(v, 9007199254740991LL);
    cJSON_Delete(back);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts),
        cmocka_unit_test(test_parse_refuses_bad_utf8),
        cmocka_unit_test(test_parse_refuses_bad_numbers),
        cmocka_unit_test(test_parse_structure),
        cmocka_unit_test(test_parse_duplicate_keys),
        cmocka_unit_test(test_parse_long_strings),
        cmocka_unit_test(test_scan_flat),
        cmocka_unit_test(test_parse_size_limit),
        cmocka_unit_test(test_parse_depth),
        cmocka_unit_test(test_read_string),
        cmocka_unit_test(test_read_int),
        cmocka_unit_test(test_read_other_types),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_value_checks),
        cmocka_unit_test(test_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
