/* Unit tests for the recording keys in services/vault/catalog, against a
 * real redis-server the test starts itself: the key index a commit fills
 * and a purge empties, its one-time build from older records, the key
 * records (adopted at the first start, made for a campaign once, the
 * previous one retired), and the conditions under which a retired key may
 * be destroyed (never the current one; no recording, no camera on it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test_util.h"
#include "vault/catalog.h"

#define DAY BC_CATALOG_DAY_MS
#define T0 1714557600000LL /* 2024-05-01T10:00:00Z */

#define K0 "00000000000000a0"
#define K1 "11111111111111b1"
#define K2 "22222222222222c2"
#define PUB0 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define PUB1 "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="
#define PUB2 "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC="

static bool is_member(const char *key, const char *member)
{
    const char *argv[] = {"SISMEMBER", key, member};
    redisReply *r = bc_test_cmd(3, argv);
    bool yes = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return yes;
}

static long long card(const char *key)
{
    const char *argv[] = {"SCARD", key};
    redisReply *r = bc_test_cmd(2, argv);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static bc_recording_meta commit_under(const char *device, const char *id, const char *key_id,
                                      int64_t recorded_at)
{
    bc_recording_meta m;
    memset(&m, 0, sizeof(m));
    snprintf(m.device, sizeof(m.device), "%s", device);
    snprintf(m.recording_id, sizeof(m.recording_id), "%s", id);
    snprintf(m.key_id, sizeof(m.key_id), "%s", key_id);
    memset(m.sha256, 'b', BC_SHA256_HEX_LEN);
    m.recorded_at = recorded_at;
    m.duration_ms = 1000;
    m.size = 100;
    m.committed_at = recorded_at + 1000;
    m.delete_after = recorded_at + 28 * DAY;
    bool created = false;
    bc_error err;
    if (bc_catalog_commit(&bc_test_conn, &m, m.committed_at, &created, NULL, 0, NULL, &err) !=
        BC_OK)
        fail_msg("commit %s/%s: %s", device, id, err.text);
    assert_true(created);
    return m;
}

/* Begins the purge of everything due at now; returns how many. */
static size_t purge_begin(int64_t now, bc_recording_meta *out, size_t cap)
{
    size_t n = 0;
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, cap, &n, NULL), BC_OK);
    return n;
}

static void purge_done(bc_recording_meta *ms, size_t n, int64_t now)
{
    const char *refs[16];
    for (size_t i = 0; i < n; i++)
        refs[i] = ms[i].ref;
    assert_int_equal(bc_catalog_purge_done(&bc_test_conn, refs, n, now, 400, NULL), BC_OK);
}

static bc_key_record key_get(const char *id)
{
    bc_key_record k;
    bc_error err;
    if (bc_catalog_recording_key_get(&bc_test_conn, id, &k, &err) != BC_OK)
        fail_msg("key %s: %s", id, err.text);
    return k;
}

static void adopt(const char *id, const char *pub, int64_t now)
{
    const char *ids[] = {id};
    const char *pubs[] = {pub};
    bc_error err;
    size_t left = 9;
    if (bc_catalog_recording_keys_adopt(&bc_test_conn, ids, pubs, 1, now, NULL, NULL, &left,
                                        &err) != BC_OK)
        fail_msg("adopt %s: %s", id, err.text);
    assert_int_equal(left, 0);
}

static bc_key_record record(const char *id, const char *pub, const char *campaign, int64_t now,
                            bool *created)
{
    bc_key_record k;
    bc_error err;
    if (bc_catalog_recording_key_record(&bc_test_conn, id, pub, campaign, "operator:alice", now, &k,
                                        created, &err) != BC_OK)
        fail_msg("record %s: %s", id, err.text);
    return k;
}

static void current_is(const char *id)
{
    const char *argv[] = {"GET", "bodycam:recording-keys:current"};
    redisReply *r = bc_test_cmd(2, argv);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, id);
    freeReplyObject(r);
}

/* ---- the key index ---- */

static void test_index_follows_commit_and_purge(void **state)
{
    (void)state;
    bc_recording_meta a = commit_under("cam-001", "r1", K0, T0);
    bc_recording_meta b = commit_under("cam-002", "r2", K1, T0 + 1000);
    commit_under("cam-001", "r3", K0, T0 + 40 * DAY); /* not due with the others */
    assert_true(is_member("bodycam:recordings:key:" K0, a.ref));
    assert_true(is_member("bodycam:recordings:key:" K1, b.ref));
    assert_int_equal(card("bodycam:recordings:key:" K0), 2);

    /* purging: still in the index (the object is still there) */
    bc_recording_meta ms[16];
    size_t n = purge_begin(T0 + 29 * DAY, ms, 16);
    assert_int_equal(n, 2);
    assert_true(is_member("bodycam:recordings:key:" K0, a.ref));
    assert_true(is_member("bodycam:recordings:key:" K1, b.ref));
    purge_done(ms, n, T0 + 29 * DAY);
    assert_false(is_member("bodycam:recordings:key:" K0, a.ref));
    assert_int_equal(card("bodycam:recordings:key:" K0), 1);
    assert_int_equal(card("bodycam:recordings:key:" K1), 0);
    /* a second purge_done of the same refs changes nothing */
    purge_done(ms, n, T0 + 29 * DAY);
    assert_int_equal(card("bodycam:recordings:key:" K0), 1);
}

static void test_index_build_from_older_records(void **state)
{
    (void)state;
    bc_recording_meta a = commit_under("cam-001", "r1", K0, T0);
    bc_recording_meta b = commit_under("cam-001", "r2", K0, T0 + 1000);
    bc_recording_meta c = commit_under("cam-002", "r3", K1, T0 + 2000);
    commit_under("cam-002", "r4", K1, T0 + 40 * DAY);
    bc_recording_meta ms[16];
    size_t n = purge_begin(T0 + 28 * DAY + 1500, ms, 16); /* r1, r2 */
    assert_int_equal(n, 2);
    purge_done(ms, 1, T0 + 28 * DAY + 1500); /* r1 purged, r2 left purging */
    /* records from before the index existed: no index sets, no mark */
    const char *del[] = {"DEL", "bodycam:recordings:key:" K0, "bodycam:recordings:key:" K1};
    bc_test_cmd_ok(3, del);

    bool built = false;
    bc_error err;
    if (bc_catalog_key_index_build(&bc_test_conn, &built, &err) != BC_OK)
        fail_msg("build: %s", err.text);
    assert_true(built);
    assert_false(is_member("bodycam:recordings:key:" K0, a.ref)); /* purged */
    assert_true(is_member("bodycam:recordings:key:" K0, b.ref));  /* purging */
    assert_true(is_member("bodycam:recordings:key:" K1, c.ref));
    assert_int_equal(card("bodycam:recordings:key:" K1), 2);
    /* built once: a second call does nothing */
    const char *del1[] = {"DEL", "bodycam:recordings:key:" K1};
    bc_test_cmd_ok(2, del1);
    assert_int_equal(bc_catalog_key_index_build(&bc_test_conn, &built, &err), BC_OK);
    assert_false(built);
    assert_int_equal(card("bodycam:recordings:key:" K1), 0);
}

static void test_index_build_many_pages(void **state)
{
    (void)state;
    char id[16];
    for (int i = 0; i < 2500; i++) {
        snprintf(id, sizeof(id), "r%d", i);
        commit_under("cam-001", id, K0, T0 + i);
    }
    const char *del[] = {"DEL", "bodycam:recordings:key:" K0};
    bc_test_cmd_ok(2, del);
    bool built = false;
    assert_int_equal(bc_catalog_key_index_build(&bc_test_conn, &built, NULL), BC_OK);
    assert_true(built);
    assert_int_equal(card("bodycam:recordings:key:" K0), 2500);
}

/* ---- key records ---- */

static void test_keys_adopt_and_record(void **state)
{
    (void)state;
    /* The first start: the one key there is becomes current. */
    adopt(K0, PUB0, T0);
    bc_key_record k0 = key_get(K0);
    assert_int_equal(k0.status, BC_KEY_CURRENT);
    assert_true(k0.adopted);
    assert_int_equal(k0.audit_seq, 0);
    assert_string_equal(k0.public_b64, PUB0);
    assert_int_equal(k0.created_at, T0);
    current_is(K0);
    adopt(K0, PUB0, T0 + 5); /* again: nothing changes */
    assert_int_equal(key_get(K0).created_at, T0);

    /* A campaign's key: current, the previous retired. */
    bool created = false;
    bc_key_record k1 = record(K1, PUB1, "C1", T0 + 100, &created);
    assert_true(created);
    assert_string_equal(k1.key_id, K1);
    assert_int_equal(k1.status, BC_KEY_CURRENT);
    assert_string_equal(k1.campaign, "C1");
    assert_string_equal(k1.created_by, "operator:alice");
    assert_string_equal(k1.replaced, K0);
    assert_false(k1.adopted);
    current_is(K1);
    k0 = key_get(K0);
    assert_int_equal(k0.status, BC_KEY_RETIRED);
    assert_int_equal(k0.retired_at, T0 + 100);
    assert_true(is_member("bodycam:recording-keys", K0));
    assert_true(is_member("bodycam:recording-keys", K1));

    /* The same campaign again, with another key: it keeps the one it has. */
    bc_key_record again = record(K2, PUB2, "C1", T0 + 200, &created);
    assert_false(created);
    assert_string_equal(again.key_id, K1);
    current_is(K1);
    assert_int_equal(bc_catalog_recording_key_get(&bc_test_conn, K2, &again, NULL),
                     BC_ERR_NOT_FOUND);
    bc_key_record of;
    assert_int_equal(bc_catalog_recording_key_of_campaign(&bc_test_conn, "C1", &of, NULL), BC_OK);
    assert_string_equal(of.key_id, K1);
    assert_int_equal(bc_catalog_recording_key_of_campaign(&bc_test_conn, "C9", &of, NULL),
                     BC_ERR_NOT_FOUND);

    /* A key id recorded already cannot be another campaign's. */
    bc_error err;
    assert_int_equal(bc_catalog_recording_key_record(&bc_test_conn, K1, PUB1, "C2", "x", T0 + 300,
                                                     &of, &created, &err),
                     BC_ERR_STATE);
    assert_int_equal(bc_catalog_recording_key_of_campaign(&bc_test_conn, "C2", &of, NULL),
                     BC_ERR_NOT_FOUND);

    /* Bad arguments. */
    assert_int_equal(bc_catalog_recording_key_record(&bc_test_conn, "K2", PUB2, "C3", "x", 1, &of,
                                                     &created, NULL),
                     BC_ERR_INVAL);
    assert_int_equal(bc_catalog_recording_key_record(&bc_test_conn, K2, "short", "C3", "x", 1, &of,
                                                     &created, NULL),
                     BC_ERR_INVAL);
    assert_int_equal(bc_catalog_recording_key_record(&bc_test_conn, K2, PUB2, "C 3", "x", 1, &of,
                                                     &created, NULL),
                     BC_ERR_INVAL);

    /* Keys found later while one is current (a key a crash left unrecorded)
     * are retired: the current key does not change. */
    adopt(K2, PUB2, T0 + 400);
    bc_key_record k2 = key_get(K2);
    assert_int_equal(k2.status, BC_KEY_RETIRED);
    assert_int_equal(k2.retired_at, T0 + 400);
    current_is(K1);

    /* The audit seqs. */
    assert_int_equal(bc_catalog_recording_key_audited(&bc_test_conn, K1, false, 41, NULL), BC_OK);
    assert_int_equal(bc_catalog_recording_key_audited(&bc_test_conn, K1, true, 42, NULL), BC_OK);
    k1 = key_get(K1);
    assert_int_equal(k1.audit_seq, 41);
    assert_int_equal(k1.destroy_audit_seq, 42);
    assert_int_equal(
        bc_catalog_recording_key_audited(&bc_test_conn, "3333333333333333", false, 1, NULL),
        BC_ERR_NOT_FOUND);
}

typedef struct seen {
    size_t n;
    char ids[8][BC_KEY_ID_LEN + 1];
} seen;

static bool collect_key(const bc_key_record *k, void *ud)
{
    seen *s = ud;
    if (s->n < 8)
        snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", k->key_id);
    s->n++;
    return true;
}

static void test_keys_list_and_first_start_with_several(void **state)
{
    (void)state;
    /* Several unrecorded keys and no current one: none is guessed current,
     * none is recorded (so none can be destroyed). */
    const char *ids[] = {K2, K0};
    const char *pubs[] = {PUB2, PUB0};
    seen s = {0};
    size_t left = 0;
    assert_int_equal(bc_catalog_recording_keys_adopt(&bc_test_conn, ids, pubs, 2, T0, collect_key,
                                                     &s, &left, NULL),
                     BC_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(left, 2);
    bc_key_record k;
    assert_int_equal(bc_catalog_recording_key_get(&bc_test_conn, K0, &k, NULL), BC_ERR_NOT_FOUND);
    /* a rotation makes a current key; the next start retires the others */
    bool created = false;
    record(K1, PUB1, "C1", T0 + 10, &created);
    assert_true(created);
    assert_string_equal(key_get(K1).replaced, "");
    assert_int_equal(bc_catalog_recording_keys_adopt(&bc_test_conn, ids, pubs, 2, T0, collect_key,
                                                     &s, &left, NULL),
                     BC_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(left, 0);
    assert_int_equal(key_get(K0).status, BC_KEY_RETIRED);
    assert_int_equal(key_get(K2).status, BC_KEY_RETIRED);
    current_is(K1);
    memset(&s, 0, sizeof(s));
    assert_int_equal(bc_catalog_recording_keys_list(&bc_test_conn, collect_key, &s, NULL), BC_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], K0); /* created_at, then key id */
    assert_string_equal(s.ids[1], K2);
    assert_string_equal(s.ids[2], K1);
}

/* ---- destruction ---- */

static void camera(const char *id, const char *key_id, const char *pending)
{
    const char *add[] = {"SADD", "bodycam:cameras", id};
    bc_test_cmd_ok(3, add);
    char key[64];
    snprintf(key, sizeof(key), "bodycam:camera:%s", id);
    const char *set[] = {"HSET", key, "device", id, "recording_key_id", key_id, "pending_uploads",
                         pending};
    bc_test_cmd_ok(8, set);
}

static bc_status begin(const char *id, bc_error *err)
{
    bc_key_record k;
    return bc_catalog_recording_key_destroy_begin(&bc_test_conn, id, &k, err);
}

static void assert_blocked(const char *id, const char *why)
{
    bc_error err;
    assert_int_equal(begin(id, &err), BC_ERR_STATE);
    if (strstr(err.text, why) == NULL)
        fail_msg("key %s kept for '%s', not '%s'", id, err.text, why);
}

static void test_destroy_conditions(void **state)
{
    (void)state;
    adopt(K0, PUB0, T0);
    bool created = false;
    record(K1, PUB1, "C1", T0 + 100, &created);
    bc_recording_meta rec = commit_under("cam-001", "r1", K0, T0 + 200);
    camera("cam-001", K0, "1");

    assert_blocked(K1, "current key");            /* never the current one */
    assert_blocked(K0, "key index is not built"); /* older records may exist */
    assert_int_equal(bc_catalog_key_index_build(&bc_test_conn, NULL, NULL), BC_OK);
    assert_blocked(K0, "1 recording(s)"); /* a recording is sealed for it */
    bc_recording_meta ms[4];
    size_t n = purge_begin(T0 + 200 + 28 * DAY, ms, 4);
    assert_int_equal(n, 1);
    assert_string_equal(ms[0].ref, rec.ref);
    assert_blocked(K0, "1 recording(s)"); /* purging: the object is still there */
    purge_done(ms, n, T0 + 29 * DAY);
    assert_blocked(K0, "cam-001 still reports key"); /* the camera did not rotate yet */
    camera("cam-001", K1, "2");
    assert_blocked(K0, "cam-001 has uploads pending");
    camera("cam-001", K1, "0");
    camera("cam-002", "", "0");
    assert_blocked(K0, "cam-002 has reported no recording key");
    const char *unreported[] = {"HDEL", "bodycam:camera:cam-002", "recording_key_id"};
    bc_test_cmd_ok(3, unreported);
    assert_blocked(K0, "cam-002 has reported no recording key");
    const char *removed[] = {"DEL", "bodycam:camera:cam-002"}; /* decommissioned */
    bc_test_cmd_ok(2, removed);

    /* May go: the point of no return. */
    bc_key_record k;
    bc_error err;
    if (bc_catalog_recording_key_destroy_begin(&bc_test_conn, K0, &k, &err) != BC_OK)
        fail_msg("begin: %s", err.text);
    assert_true(k.destroying);
    assert_int_equal(k.status, BC_KEY_RETIRED);
    /* whatever changes now, it goes (a crash before the end is finished) */
    camera("cam-001", K0, "3");
    assert_int_equal(begin(K0, NULL), BC_OK);

    /* Not begun: refused. Begun: destroyed (again: the same). */
    assert_int_equal(bc_catalog_recording_key_destroyed(&bc_test_conn, K1, T0, NULL, NULL),
                     BC_ERR_STATE);
    assert_int_equal(bc_catalog_recording_key_destroyed(&bc_test_conn, K0, T0 + 30 * DAY, &k, NULL),
                     BC_OK);
    assert_int_equal(k.status, BC_KEY_DESTROYED);
    assert_int_equal(k.destroyed_at, T0 + 30 * DAY);
    assert_int_equal(bc_catalog_recording_key_destroyed(&bc_test_conn, K0, T0 + 31 * DAY, &k, NULL),
                     BC_OK);
    assert_int_equal(key_get(K0).destroyed_at, T0 + 30 * DAY);
    assert_blocked(K0, "destroyed, not retired");
    assert_int_equal(begin("4444444444444444", NULL), BC_ERR_NOT_FOUND);
    assert_int_equal(begin("nope", NULL), BC_ERR_INVAL);
    current_is(K1);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(bc_key_status_name(BC_KEY_CURRENT), "current");
    assert_string_equal(bc_key_status_name(BC_KEY_RETIRED), "retired");
    assert_string_equal(bc_key_status_name(BC_KEY_DESTROYED), "destroyed");
    assert_string_equal(bc_key_status_name((bc_key_status)9), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test_setup_teardown(test_index_follows_commit_and_purge, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_index_build_from_older_records, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_index_build_many_pages, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_keys_adopt_and_record, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_keys_list_and_first_start_with_several,
                                        bc_test_redis_setup, bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_conditions, bc_test_redis_setup,
                                        bc_test_redis_teardown),
    };
    return cmocka_run_group_tests(tests, bc_test_redis_group_setup, bc_test_redis_group_teardown);
}
