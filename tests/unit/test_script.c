/* Unit tests for services/common/script against a real redis-server the
 * test starts itself (test_util.h): our SHA-1 is the one Redis computes,
 * EVALSHA falls back to EVAL after NOSCRIPT (and caches the script), a
 * pipelined EVALSHA needs the script loaded, and an error reply of the
 * script itself is returned, not retried. Every test starts from an empty
 * database and an empty script cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/script.h"
#include "common/script_set.h"
#include "test_util.h"

static bc_test_redis srv;
static bc_redis conn;

static const char concat_src[] = "return ARGV[1] .. ARGV[2]\n";
static const char count_then_fail_src[] = "redis.call('INCR', 'script:calls')\n"
                                          "return redis.error_reply('refused on purpose')\n";

static int group_setup(void **state)
{
    (void)state;
    return bc_test_redis_start(&srv, "script") == BC_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    bc_test_redis_stop(&srv);
    return 0;
}

static void command_ok(int argc, const char **argv)
{
    redisReply *reply = NULL;
    bc_error err;
    if (bc_redis_command(&conn, argc, argv, NULL, &reply, &err) != BC_OK)
        fail_msg("%s: %s", argv[0], err.text);
    freeReplyObject(reply);
}

static int setup(void **state)
{
    (void)state;
    bc_test_redis_connect(&srv, 2000, &conn);
    bc_test_redis_flush(&conn);
    const char *flush[] = {"SCRIPT", "FLUSH"};
    command_ok(2, flush);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bc_redis_close(&conn);
    return 0;
}

static bc_script script_of(const char *name, const char *source)
{
    bc_script s;
    bc_error err;
    if (bc_script_init(&s, name, source, strlen(source), &err) != BC_OK)
        fail_msg("init: %s", err.text);
    return s;
}

/* SCRIPT EXISTS: whether Redis has the script cached. */
static bool cached(const bc_script *s)
{
    const char *argv[] = {"SCRIPT", "EXISTS", s->sha};
    redisReply *reply = NULL;
    assert_int_equal(bc_redis_command(&conn, 3, argv, NULL, &reply, NULL), BC_OK);
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    bool yes = reply->element[0]->integer == 1;
    freeReplyObject(reply);
    return yes;
}

static void test_sha_is_redis_sha(void **state)
{
    (void)state;
    bc_script s = script_of("concat", concat_src);
    assert_int_equal(strlen(s.sha), BC_SCRIPT_SHA_LEN);
    bc_error err;
    assert_int_equal(bc_script_load(&conn, &s, &err), BC_OK);
    assert_true(cached(&s));

    /* A SHA-1 Redis does not agree with is refused. */
    s.sha[0] = s.sha[0] == '0' ? '1' : '0';
    assert_int_equal(bc_script_load(&conn, &s, &err), BC_ERR_STATE);
    assert_non_null(strstr(err.text, "concat"));
}

static void test_run_falls_back_to_eval_and_caches(void **state)
{
    (void)state;
    bc_script s = script_of("concat", concat_src);
    assert_false(cached(&s));
    for (int i = 0; i < 2; i++) { /* EVAL after NOSCRIPT, then EVALSHA */
        const char *argv[BC_SCRIPT_ARGV_HEAD + 2] = {NULL, NULL, NULL, "ab", "cd"};
        size_t lens[BC_SCRIPT_ARGV_HEAD + 2] = {0, 0, 0, 2, 2};
        redisReply *reply = NULL;
        bc_error err;
        assert_int_equal(bc_script_run(&conn, &s, 5, argv, lens, &reply, &err), BC_OK);
        assert_int_equal(reply->type, REDIS_REPLY_STRING);
        assert_string_equal(reply->str, "abcd");
        freeReplyObject(reply);
        assert_true(cached(&s));
    }
}

static void test_append_needs_the_script_loaded(void **state)
{
    (void)state;
    bc_script s = script_of("concat", concat_src);
    const char *argv[BC_SCRIPT_ARGV_HEAD + 2] = {NULL, NULL, NULL, "x", "y"};
    size_t lens[BC_SCRIPT_ARGV_HEAD + 2] = {0, 0, 0, 1, 1};
    redisReply *reply = NULL;
    bc_error err;
    assert_int_equal(bc_script_append(&conn, &s, 5, argv, lens, &err), BC_OK);
    assert_int_equal(bc_redis_reply(&conn, &reply, &err), BC_ERR_STATE);
    assert_non_null(strstr(err.text, "NOSCRIPT"));

    assert_int_equal(bc_script_load(&conn, &s, &err), BC_OK);
    assert_int_equal(bc_script_append(&conn, &s, 5, argv, lens, &err), BC_OK);
    assert_int_equal(bc_script_append(&conn, &s, 5, argv, lens, &err), BC_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(bc_redis_reply(&conn, &reply, &err), BC_OK);
        assert_string_equal(reply->str, "xy");
        freeReplyObject(reply);
    }
}

static void test_script_error_is_returned_once(void **state)
{
    (void)state;
    bc_script s = script_of("count_then_fail", count_then_fail_src);
    const char *argv[BC_SCRIPT_ARGV_HEAD];
    size_t lens[BC_SCRIPT_ARGV_HEAD];
    redisReply *reply = NULL;
    bc_error err;
    assert_int_equal(bc_script_run(&conn, &s, 3, argv, lens, &reply, &err), BC_ERR_STATE);
    assert_null(reply);
    assert_non_null(strstr(err.text, "refused on purpose"));

    const char *get[] = {"GET", "script:calls"};
    assert_int_equal(bc_redis_command(&conn, 2, get, NULL, &reply, &err), BC_OK);
    assert_string_equal(reply->str, "1"); /* ran once: an error is not NOSCRIPT */
    freeReplyObject(reply);
}

static void test_uninitialised_and_no_room(void **state)
{
    (void)state;
    bc_script none = {0};
    const char *argv[BC_SCRIPT_ARGV_HEAD];
    size_t lens[BC_SCRIPT_ARGV_HEAD];
    redisReply *reply = NULL;
    bc_error err;
    assert_int_equal(bc_script_run(&conn, &none, 3, argv, lens, &reply, &err), BC_ERR_STATE);
    assert_int_equal(bc_script_load(&conn, &none, &err), BC_ERR_STATE);
    bc_script s = script_of("concat", concat_src);
    assert_int_equal(bc_script_run(&conn, &s, 2, argv, lens, &reply, &err), BC_ERR_INVAL);
    assert_int_equal(bc_script_append(&conn, &s, 2, argv, lens, &err), BC_ERR_INVAL);
}

/* ---- script sets (common/script_set) ---- */

enum { D_ADD, D_MISSING, D_ODD, D_COUNT };

static const bc_script_src demo_src[D_COUNT] = {
    [D_ADD] = {"add", "return {'ok', tostring(twice(tonumber(ARGV[1]))), NAMES[2]}\n"},
    [D_MISSING] = {"missing", "return {'not_found', ARGV[1]}\n"},
    [D_ODD] = {"odd", "return {'weird'}\n"},
};

static const char *const demo_names[] = {"a", "b", "c"};

/* Longer than the text's first allocation, so that it has to grow. */
static void demo_prelude(bc_script_text *t)
{
    bc_script_text_list(t, "NAMES", demo_names, 3);
    bc_script_text_add(t, "-- %0*d\n", 6000, 7);
    bc_script_text_add(t, "local function twice(x) return x * 2 end\n");
}

static const bc_reply_word demo_words[] = {{"not_found", 2}};

static bc_script_set demo =
    BC_SCRIPT_SET_INIT("demo", demo_src, D_COUNT, demo_prelude, demo_words, 1);

static bc_script_args args_of(size_t cap, const char *first)
{
    bc_script_args a;
    assert_int_equal(bc_script_args_init(&a, cap, NULL), BC_OK);
    if (first != NULL)
        bc_script_args_str(&a, first);
    return a;
}

static void test_set_runs_by_id_with_the_prelude(void **state)
{
    (void)state;
    bc_error err;
    redisReply *rep = NULL;
    int v = -1;
    bc_script_args a = args_of(1, "7");
    assert_int_equal(bc_script_set_call(&demo, &conn, D_ADD, &a, 3, &rep, &v, &err), BC_OK);
    assert_null(a.v); /* the call freed the arguments */
    assert_int_equal(v, 0);
    assert_string_equal(rep->element[1]->str, "14");
    assert_string_equal(rep->element[2]->str, "b");
    assert_true(demo.run[D_ADD].source_len > 6000);
    freeReplyObject(rep);

    a = args_of(1, "x");
    assert_int_equal(bc_script_set_call(&demo, &conn, D_MISSING, &a, 1, &rep, &v, &err), BC_OK);
    assert_int_equal(v, 1);
    freeReplyObject(rep);
}

static void test_set_refuses_what_does_not_fit(void **state)
{
    (void)state;
    bc_error err;
    redisReply *rep = NULL;
    int v = -1;
    /* a word it does not know */
    bc_script_args a = args_of(0, NULL);
    assert_int_equal(bc_script_set_call(&demo, &conn, D_ODD, &a, 1, &rep, &v, &err), BC_ERR_PARSE);
    assert_null(rep);
    assert_non_null(strstr(err.text, "demo script odd"));
    /* an 'ok' shorter than the caller needs */
    a = args_of(1, "1");
    assert_int_equal(bc_script_set_call(&demo, &conn, D_ADD, &a, 4, &rep, &v, &err), BC_ERR_PARSE);
    assert_null(rep);
    /* more arguments than room: not sent, and freed */
    a = args_of(1, "1");
    bc_script_args_str(&a, "2");
    assert_int_equal(bc_script_set_call(&demo, &conn, D_ADD, &a, 3, &rep, &v, &err),
                     BC_ERR_TOO_BIG);
    assert_null(a.v);
    assert_null(rep);
    assert_int_equal(bc_script_set_parse_fail(&demo, D_ADD, &err), BC_ERR_PARSE);
    assert_non_null(strstr(err.text, "demo script add"));
}

static void test_set_load_caches_every_script(void **state)
{
    (void)state;
    bc_error err;
    assert_int_equal(bc_script_set_load(&demo, &conn, &err), BC_OK);
    for (size_t i = 0; i < D_COUNT; i++)
        assert_true(cached(bc_script_set_get(&demo, i)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sha_is_redis_sha, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_falls_back_to_eval_and_caches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_needs_the_script_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_error_is_returned_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uninitialised_and_no_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_runs_by_id_with_the_prelude, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_refuses_what_does_not_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_load_caches_every_script, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
