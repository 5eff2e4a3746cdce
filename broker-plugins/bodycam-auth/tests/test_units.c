/* Unit tests for the plugin's pure modules: token buckets, password hashes,
 * fingerprint lists, snapshot lookups, the camera table and the metrics
 * encoding. No broker (registry loading is covered by the integration
 * tests); the worker's bodycam:registry:applied entry against a real
 * redis-server (tests/unit/test_util.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "broker-plugins/bodycam-auth/cameras.h"
#include "broker-plugins/bodycam-auth/metrics.h"
#include "broker-plugins/bodycam-auth/password.h"
#include "broker-plugins/bodycam-auth/ratelimit.h"
#include "broker-plugins/bodycam-auth/registry.h"
#include "test_util.h"

#define SEC 1000000000ull

/* ---- ratelimit ----------------------------------------------------------- */

static void test_bucket_burst_then_rate(void **state)
{
    (void)state;
    bc_rate_limits limits[BC_RATE_CLASS_COUNT] = {{10, 5, 0, 0}, {0, 0, 0, 0}};
    bc_rate_state s;
    memset(&s, 0, sizeof(s));
    uint64_t t = 100 * SEC;
    for (int i = 0; i < 5; i++)
        assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t, 10), BC_RATE_PASS);
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t, 10), BC_RATE_TOO_MANY);
    /* 10/s: after 100 ms one more token */
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t + SEC / 10, 10),
                     BC_RATE_PASS);
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t + SEC / 10, 10),
                     BC_RATE_TOO_MANY);
    /* a long pause refills only up to the burst */
    for (int i = 0; i < 5; i++)
        assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t + 60 * SEC, 1),
                         BC_RATE_PASS);
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t + 60 * SEC, 1),
                     BC_RATE_TOO_MANY);
    /* the upload class is independent and here unlimited */
    for (int i = 0; i < 100; i++)
        assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_UPLOAD, t + 60 * SEC, 1000),
                         BC_RATE_PASS);
}

static void test_bucket_bytes(void **state)
{
    (void)state;
    bc_rate_limits limits[BC_RATE_CLASS_COUNT] = {{0, 0, 1000, 3000}, {0, 0, 0, 0}};
    bc_rate_state s;
    memset(&s, 0, sizeof(s));
    uint64_t t = SEC;
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t, 2000), BC_RATE_PASS);
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t, 2000), BC_RATE_TOO_LARGE);
    /* the refused message took nothing: 1000 bytes are still there */
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t, 1000), BC_RATE_PASS);
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t, 1), BC_RATE_TOO_LARGE);
    /* bigger than the burst: never */
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t + 100 * SEC, 3001),
                     BC_RATE_TOO_LARGE);
    /* time going backwards refills nothing */
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t + 100 * SEC, 3000),
                     BC_RATE_PASS);
    assert_int_equal(bc_ratelimit_take(&s, limits, BC_RATE_MESSAGES, t, 1), BC_RATE_TOO_LARGE);
}

/* ---- password ------------------------------------------------------------ */

static void test_password_round_trip(void **state)
{
    (void)state;
    char hash[BC_PASSWORD_HASH_MAX], other[BC_PASSWORD_HASH_MAX];
    bc_error err;
    assert_int_equal(
        bc_password_hash("s3cret", BC_PASSWORD_MIN_ITERATIONS, hash, sizeof(hash), &err), BC_OK);
    assert_int_equal(strncmp(hash, "pbkdf2-sha256$10000$", 20), 0);
    assert_int_equal(bc_password_verify(hash, "s3cret", &err), BC_OK);
    assert_int_equal(bc_password_verify(hash, "s3cret ", &err), BC_ERR_DENIED);
    assert_int_equal(bc_password_verify(hash, "", &err), BC_ERR_DENIED);
    assert_int_equal(bc_password_verify(hash, NULL, &err), BC_ERR_DENIED);
    /* a fresh salt every time */
    assert_int_equal(
        bc_password_hash("s3cret", BC_PASSWORD_MIN_ITERATIONS, other, sizeof(other), &err), BC_OK);
    assert_string_not_equal(hash, other);
    assert_int_equal(bc_password_verify(other, "s3cret", &err), BC_OK);
}

static void test_password_refuses_weak_or_malformed(void **state)
{
    (void)state;
    char hash[BC_PASSWORD_HASH_MAX];
    bc_error err;
    assert_int_equal(bc_password_hash("x", 1000, hash, sizeof(hash), &err), BC_ERR_INVAL);
    assert_int_equal(bc_password_hash("x", 10000, hash, 10, &err), BC_ERR_INVAL);
    assert_int_equal(bc_password_hash("pw", 10000, hash, sizeof(hash), &err), BC_OK);

    char bad[BC_PASSWORD_HASH_MAX + 8];
    /* fewer iterations than the minimum: refused, not verified weakly */
    snprintf(bad, sizeof(bad), "pbkdf2-sha256$1000%s", strchr(hash + 14, '$'));
    assert_int_equal(bc_password_verify(bad, "pw", &err), BC_ERR_PARSE);
    /* truncated key */
    snprintf(bad, sizeof(bad), "%s", hash);
    bad[strlen(bad) - 2] = '\0';
    assert_int_equal(bc_password_verify(bad, "pw", &err), BC_ERR_PARSE);
    /* another scheme, garbage, NULL */
    assert_int_equal(bc_password_verify("md5$abc", "pw", &err), BC_ERR_PARSE);
    assert_int_equal(bc_password_verify("pbkdf2-sha256$0010000$00$00", "pw", &err), BC_ERR_PARSE);
    assert_int_equal(bc_password_verify(NULL, "pw", &err), BC_ERR_PARSE);
    /* a flipped key digit */
    snprintf(bad, sizeof(bad), "%s", hash);
    char *last = bad + strlen(bad) - 1;
    *last = *last == '0' ? '1' : '0';
    assert_int_equal(bc_password_verify(bad, "pw", &err), BC_ERR_DENIED);
}

/* ---- registry: fingerprints, snapshot lookups ---------------------------- */

#define FP_A "57146e9efecac6d974f82b7e4f92d323602f4b6ffb15f9f5e6e84bf14900a097"
#define FP_B "F4BE40504EB27C5A82A9FFDE106923A14F5A1FC845D5770C031D46C568240111"

static void test_fingerprint_lists(void **state)
{
    (void)state;
    uint8_t fps[BC_REGISTRY_MAX_FINGERPRINTS][BC_FINGERPRINT_LEN];
    size_t n = 99;
    bc_error err;
    assert_int_equal(bc_registry_parse_fingerprints("", fps, &n, &err), BC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(bc_registry_parse_fingerprints(FP_A "," FP_B, fps, &n, &err), BC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(fps[0][0], 0x57);
    assert_int_equal(fps[1][0], 0xf4);
    assert_int_equal(bc_registry_parse_fingerprints(FP_A ",", fps, &n, &err), BC_ERR_PARSE);
    assert_int_equal(bc_registry_parse_fingerprints(FP_A " ", fps, &n, &err), BC_ERR_PARSE);
    assert_int_equal(bc_registry_parse_fingerprints("zz", fps, &n, &err), BC_ERR_PARSE);
    char many[10 * 65];
    many[0] = '\0';
    for (int i = 0; i < 9; i++)
        strcat(strcat(many, i ? "," : ""), FP_A);
    assert_int_equal(bc_registry_parse_fingerprints(many, fps, &n, &err), BC_ERR_TOO_BIG);
}

static bc_registry_snapshot *make_snapshot(void)
{
    bc_registry_snapshot *s = calloc(1, sizeof(*s));
    s->devices = calloc(3, sizeof(*s->devices));
    s->users = calloc(1, sizeof(*s->users));
    const char *ids[] = {"cam-001", "cam-002", "cam-010"}; /* sorted, as the loader sorts */
    for (int i = 0; i < 3; i++) {
        snprintf(s->devices[i].id, sizeof(s->devices[i].id), "%s", ids[i]);
        s->devices[i].status = i == 1 ? BC_DEVICE_REVOKED : BC_DEVICE_ACTIVE;
        bc_registry_parse_fingerprints(FP_A, s->devices[i].fingerprints,
                                       &s->devices[i].fingerprint_count, NULL);
    }
    s->device_count = 3;
    snprintf(s->users[0].name, sizeof(s->users[0].name), "alice");
    s->user_count = 1;
    return s;
}

static void test_snapshot_lookups(void **state)
{
    (void)state;
    bc_registry_snapshot *s = make_snapshot();
    const bc_registry_device *d = bc_registry_find_device(s, "cam-002");
    assert_non_null(d);
    assert_int_equal(d->status, BC_DEVICE_REVOKED);
    assert_non_null(bc_registry_find_device(s, "cam-010"));
    assert_null(bc_registry_find_device(s, "cam-003"));
    assert_null(bc_registry_find_device(s, "cam-0010000000000000000000000000000000000000"));
    assert_null(bc_registry_find_device(NULL, "cam-001"));
    assert_non_null(bc_registry_find_user(s, "alice"));
    assert_null(bc_registry_find_user(s, "bob"));

    uint8_t fp[BC_FINGERPRINT_LEN];
    size_t n;
    uint8_t list[1][BC_FINGERPRINT_LEN];
    assert_int_equal(bc_registry_parse_fingerprints(FP_A, list, &n, NULL), BC_OK);
    memcpy(fp, list[0], sizeof(fp));
    assert_true(bc_registry_device_allows(d, fp));
    fp[31] ^= 1;
    assert_false(bc_registry_device_allows(d, fp));
    assert_false(bc_registry_device_allows(NULL, fp));
    bc_registry_snapshot_free(s);
}

static void test_device_status_names(void **state)
{
    (void)state;
    bc_device_status st;
    assert_int_equal(bc_device_status_parse("lost", &st), BC_OK);
    assert_int_equal(st, BC_DEVICE_LOST);
    assert_string_equal(bc_device_status_name(BC_DEVICE_REVOKED), "revoked");
    assert_int_equal(bc_device_status_parse("Active", &st), BC_ERR_INVAL);
    assert_int_equal(bc_device_status_parse(NULL, &st), BC_ERR_INVAL);
}

/* ---- cameras ------------------------------------------------------------- */

static void test_camera_table(void **state)
{
    (void)state;
    bc_camera_table t = {0};
    bc_camera *c = NULL;
    const char *ids[] = {"cam-010", "cam-002", "cam-001", "cam-005"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bc_cameras_get(&t, ids[i], &c), BC_OK);
        c->authenticated = 1;
    }
    assert_int_equal(t.count, 4);
    for (size_t i = 1; i < t.count; i++)
        assert_true(strcmp(t.items[i - 1].id, t.items[i].id) < 0);
    assert_int_equal(bc_cameras_get(&t, "cam-002", &c), BC_OK); /* existing: no insert */
    assert_int_equal(t.count, 4);
    assert_true(c->authenticated);
    assert_int_equal(bc_cameras_get(&t, "cam+1", &c), BC_ERR_INVAL);
    assert_int_equal(bc_cameras_get(&t, "", &c), BC_ERR_INVAL);

    bc_registry_snapshot *s = make_snapshot(); /* cam-001, cam-002, cam-010 */
    bc_cameras_prune(&t, s);
    assert_int_equal(t.count, 3);
    assert_null(bc_cameras_find(&t, "cam-005"));
    assert_non_null(bc_cameras_find(&t, "cam-010"));
    bc_registry_snapshot_free(s);
    bc_cameras_free(&t);
    assert_int_equal(t.count, 0);
}

/* ---- metrics ------------------------------------------------------------- */

static void test_metrics_encoding(void **state)
{
    (void)state;
    bc_metrics m;
    memset(&m, 0, sizeof(m));
    bc_metrics_inc(&m, BC_M_MSG_MALFORMED);
    bc_metrics_inc(&m, BC_M_MSG_MALFORMED);
    bc_metrics_acl(&m, BC_ACL_SUBSCRIBE, BC_ACL_DENY_BAD_SHARE);
    bc_metrics_gauges g = {1, 42, 3, 1, 1};
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(bc_metrics_encode(&m, &g, 1700000000123LL, &json, &len), BC_OK);
    assert_int_equal(len, strlen(json));
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    assert_int_equal(cJSON_GetObjectItem(root, "v")->valueint, 1);
    assert_true(cJSON_GetObjectItem(root, "ts")->valuedouble == 1700000000123.0);
    assert_string_equal(cJSON_GetObjectItem(root, "redis")->valuestring, "up");
    cJSON *reg = cJSON_GetObjectItem(root, "registry");
    assert_int_equal(cJSON_GetObjectItem(reg, "version")->valueint, 42);
    cJSON *c = cJSON_GetObjectItem(root, "counters");
    assert_int_equal(cJSON_GetObjectItem(c, "msg.malformed")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(c, "acl.subscribe.bad_share")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(c, "auth.unknown")->valueint, 0);
    cJSON_Delete(root);
    cJSON_free(json);

    char line[256];
    bc_metrics_format(&m, line, sizeof(line));
    assert_string_equal(line, "msg.malformed=2 acl.subscribe.bad_share=1");
    char tiny[8];
    bc_metrics_format(&m, tiny, sizeof(tiny)); /* truncates, stays terminated */
    assert_true(strlen(tiny) < sizeof(tiny));
}

/* ---- the applied version in Redis -------------------------------------- */

/* Waits up to 3 s for the broker's entry to report version; returns its
 * time stamp (unix ms), or -1. */
static long long wait_applied(redisContext *c, const char *instance, unsigned long long version)
{
    for (int i = 0; i < 300; i++) {
        redisReply *r = redisCommand(c, "HGET %s %s", BC_REGISTRY_KEY_APPLIED, instance);
        assert_non_null(r);
        unsigned long long v = 0;
        long long ms = -1;
        int ok = r->type == REDIS_REPLY_STRING && sscanf(r->str, "%llu %lld", &v, &ms) == 2;
        freeReplyObject(r);
        if (ok && v == version)
            return ms;
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void test_applied_version_published(void **state)
{
    (void)state;
    bc_registry_config cfg = {.port = bc_test_srv.port, .poll_ms = 20, .timeout_ms = 2000};
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    snprintf(cfg.instance, sizeof(cfg.instance), "broker-t");
    bc_registry *reg = NULL;
    assert_int_equal(bc_registry_start(&cfg, &reg, NULL), BC_OK);
    redisContext *c = redisConnect("127.0.0.1", bc_test_srv.port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);

    /* nothing applied yet: no entry, even while the worker polls */
    struct timespec ts = {0, 100000000L};
    nanosleep(&ts, NULL);
    redisReply *r = redisCommand(c, "HEXISTS %s broker-t", BC_REGISTRY_KEY_APPLIED);
    assert_non_null(r);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);

    bc_registry_applied(reg, 7);
    long long first = wait_applied(c, "broker-t", 7);
    assert_true(first > 0);
    bc_registry_applied(reg, 9); /* a newer snapshot swapped in */
    assert_true(wait_applied(c, "broker-t", 9) >= first);
    /* unchanged, the entry is still refreshed: its time stamp moves */
    struct timespec wait = {1, 300000000L};
    nanosleep(&wait, NULL);
    assert_true(wait_applied(c, "broker-t", 9) >= first + BC_REGISTRY_APPLIED_REFRESH_MS);

    redisFree(c);
    bc_registry_stop(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_burst_then_rate),
        cmocka_unit_test(test_bucket_bytes),
        cmocka_unit_test(test_password_round_trip),
        cmocka_unit_test(test_password_refuses_weak_or_malformed),
        cmocka_unit_test(test_fingerprint_lists),
        cmocka_unit_test(test_snapshot_lookups),
        cmocka_unit_test(test_device_status_names),
        cmocka_unit_test(test_camera_table),
        cmocka_unit_test(test_metrics_encoding),
        cmocka_unit_test_setup_teardown(test_applied_version_published, bc_test_redis_group_setup,
                                        bc_test_redis_group_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
