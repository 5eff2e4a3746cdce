/* Unit tests for services/vault/catalog against a real redis-server that
 * the test starts itself (like tests/unit/test_stream.c): on a free
 * loopback port, in a temp dir, without persistence. Every test starts
 * from an empty database. The last test measures (prints, never asserts)
 * a pipelined commit of 10,000 records and their purge in batches of
 * 1,000; bench/bench_purge does the same with 100,000 on a build without
 * sanitizers (here most of the time is the sanitizer's malloc). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sys/wait.h>

#include "test_util.h"
#include "vault/catalog.h"

#define DAY BC_CATALOG_DAY_MS
#define T0 1714557600000LL /* 2024-05-01T10:00:00Z */

/* ZSCORE key member: true and *score when present. */
static bool zscore(const char *key, const char *member, long long *score)
{
    const char *argv[] = {"ZSCORE", key, member};
    redisReply *r = bc_test_cmd(3, argv);
    bool found = r->type == REDIS_REPLY_STRING;
    if (found && score != NULL)
        *score = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return found;
}

static bool in_expiry(const char *ref)
{
    return zscore("bodycam:recordings:expiry", ref, NULL);
}

static bc_recording_meta meta(const char *device, const char *id, int64_t recorded_at)
{
    bc_recording_meta m;
    memset(&m, 0, sizeof(m));
    snprintf(m.device, sizeof(m.device), "%s", device);
    snprintf(m.recording_id, sizeof(m.recording_id), "%s", id);
    snprintf(m.key_id, sizeof(m.key_id), "rk-1");
    memset(m.sha256, 'a', BC_SHA256_HEX_LEN);
    m.recorded_at = recorded_at;
    m.duration_ms = 60000;
    m.warnings = 2;
    m.size = 4096;
    m.committed_at = recorded_at + 3600000;
    m.delete_after = recorded_at + 28 * DAY;
    return m;
}

/* Commits a new recording and returns its stored record. */
static bc_recording_meta commit(const char *device, const char *id, int64_t recorded_at)
{
    bc_recording_meta m = meta(device, id, recorded_at);
    bool created = false;
    bc_error err;
    bc_status st =
        bc_catalog_commit(&bc_test_conn, &m, recorded_at + 3600000, &created, NULL, 0, NULL, &err);
    if (st != BC_OK)
        fail_msg("commit %s/%s: %s", device, id, err.text);
    assert_true(created);
    return m;
}

static bc_recording_meta get(const char *ref)
{
    bc_recording_meta m;
    bc_error err;
    bc_status st = bc_catalog_recording_get(&bc_test_conn, ref, &m, &err);
    if (st != BC_OK)
        fail_msg("get %s: %s", ref, err.text);
    return m;
}

/* Begins, audits and finishes the purge of everything due at now. */
static size_t purge_all(int64_t now, uint64_t first_seq, int64_t tombstone_days)
{
    bc_recording_meta out[16];
    size_t n = 0;
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 16, &n, NULL), BC_OK);
    const char *refs[16];
    uint64_t seqs[16];
    for (size_t i = 0; i < n; i++) {
        refs[i] = out[i].ref;
        seqs[i] = first_seq + i;
    }
    assert_int_equal(bc_catalog_purge_audited(&bc_test_conn, refs, seqs, n, NULL), BC_OK);
    assert_int_equal(bc_catalog_purge_done(&bc_test_conn, refs, n, now, tombstone_days, NULL),
                     BC_OK);
    return n;
}

static bc_hold place(const char *ref, bc_hold_reason reason, const char *case_ref, bool *created)
{
    bc_hold h;
    bc_error err;
    bc_status st = bc_catalog_hold_place(&bc_test_conn, ref, reason, case_ref, "officer Jansen", "",
                                         T0, &h, created, &err);
    if (st != BC_OK)
        fail_msg("hold on %s: %s", ref, err.text);
    return h;
}

/* ---- collecting visitors ---- */

typedef struct collected {
    size_t n;
    char refs[64][BC_REF_MAX + 1];
    bc_request_match matches[64];
    bc_hold holds[64];
    bc_access_request reqs[8];
    size_t stop_after; /* 0: never stop */
} collected;

static bool collect_rec(const bc_recording_meta *m, void *ud)
{
    collected *c = ud;
    if (c->n < 64)
        snprintf(c->refs[c->n], sizeof(c->refs[0]), "%s", m->ref);
    c->n++;
    return c->stop_after == 0 || c->n < c->stop_after;
}

static bool collect_ref(const char *ref, void *ud)
{
    collected *c = ud;
    if (c->n < 64)
        snprintf(c->refs[c->n], sizeof(c->refs[0]), "%s", ref);
    c->n++;
    return true;
}

static bool collect_match(const bc_request_match *m, void *ud)
{
    collected *c = ud;
    if (c->n < 64)
        c->matches[c->n] = *m;
    c->n++;
    return true;
}

static bool collect_hold(const bc_hold *h, void *ud)
{
    collected *c = ud;
    if (c->n < 64)
        c->holds[c->n] = *h;
    c->n++;
    return true;
}

static bool collect_req(const bc_access_request *q, void *ud)
{
    collected *c = ud;
    if (c->n < 8)
        c->reqs[c->n] = *q;
    c->n++;
    return true;
}

static const bc_request_match *match_of(const collected *c, const char *ref)
{
    for (size_t i = 0; i < c->n && i < 64; i++) {
        if (strcmp(c->matches[i].ref, ref) == 0)
            return &c->matches[i];
    }
    return NULL;
}

/* ---- pure functions ---- */

static void test_refs_and_text(void **state)
{
    (void)state;
    char ref[BC_REF_MAX + 1];
    char dev[BC_DEVICE_ID_MAX + 1];
    char id[BC_ID_MAX + 1];
    assert_int_equal(bc_ref_make("cam-1", "rec_7", ref), BC_OK);
    assert_string_equal(ref, "cam-1/rec_7");
    assert_int_equal(bc_ref_split(ref, dev, id), BC_OK);
    assert_string_equal(dev, "cam-1");
    assert_string_equal(id, "rec_7");
    assert_int_equal(bc_ref_make("Cam", "r", ref), BC_ERR_INVAL);
    assert_int_equal(bc_ref_make("cam", "r/x", ref), BC_ERR_INVAL);
    assert_int_equal(bc_ref_split("cam-1", dev, id), BC_ERR_INVAL);
    assert_int_equal(bc_ref_split("cam/1/2", dev, id), BC_ERR_INVAL);
    assert_int_equal(bc_ref_split("/r", dev, id), BC_ERR_INVAL);

    assert_true(bc_catalog_text_valid("Mevr. de Vries, café \xe2\x82\xac"));
    assert_false(bc_catalog_text_valid(""));
    assert_false(bc_catalog_text_valid(NULL));
    assert_false(bc_catalog_text_valid("line\nbreak"));
    assert_false(bc_catalog_text_valid("del\x7f"));
    assert_false(bc_catalog_text_valid("c1 \xc2\x85"));            /* U+0085 NEL */
    assert_false(bc_catalog_text_valid("bad \xc3"));               /* truncated */
    assert_false(bc_catalog_text_valid("overlong \xc0\xaf"));      /* '/' in 2 bytes */
    assert_false(bc_catalog_text_valid("surrogate \xed\xa0\x80")); /* U+D800 */
    char big[BC_CATALOG_TEXT_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(bc_catalog_text_valid(big));
    big[BC_CATALOG_TEXT_MAX] = '\0';
    assert_true(bc_catalog_text_valid(big));

    assert_true(bc_catalog_case_valid("PL1300-2024/123:a.b_c"));
    assert_false(bc_catalog_case_valid("with space"));
    assert_false(bc_catalog_case_valid(""));
    char longcase[BC_CATALOG_CASE_MAX + 2];
    memset(longcase, 'c', sizeof(longcase) - 1);
    longcase[sizeof(longcase) - 1] = '\0';
    assert_false(bc_catalog_case_valid(longcase));

    bc_hold_reason reason;
    assert_int_equal(bc_hold_reason_parse("klacht", &reason, NULL), BC_OK);
    assert_int_equal(reason, BC_HOLD_KLACHT);
    assert_int_equal(bc_hold_reason_parse("seizure", &reason, NULL), BC_ERR_INVAL);
    assert_string_equal(bc_recording_status_name(BC_REC_PURGING), "purging");
    assert_string_equal(bc_request_status_name(BC_REQ_CLOSED), "closed");
}

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

static void test_add_months(void **state)
{
    (void)state;
    assert_int_equal(bc_catalog_add_months(utc(2023, 1, 31, 9, 30), 1), utc(2023, 2, 28, 9, 30));
    assert_int_equal(bc_catalog_add_months(utc(2024, 1, 31, 9, 30), 1), utc(2024, 2, 29, 9, 30));
    assert_int_equal(bc_catalog_add_months(utc(2023, 11, 30, 0, 0), 2), utc(2024, 1, 30, 0, 0));
    assert_int_equal(bc_catalog_add_months(utc(2024, 5, 15, 23, 59), 1), utc(2024, 6, 15, 23, 59));
    assert_int_equal(bc_catalog_add_months(utc(2024, 3, 31, 12, 0), -1), utc(2024, 2, 29, 12, 0));
    assert_int_equal(bc_catalog_add_months(utc(2023, 12, 31, 1, 0), 12), utc(2024, 12, 31, 1, 0));
    assert_int_equal(bc_catalog_add_months(utc(1969, 12, 31, 18, 0), 2), utc(1970, 2, 28, 18, 0));
    assert_int_equal(bc_catalog_add_months(utc(2100, 1, 29, 0, 0), 1), utc(2100, 2, 28, 0, 0));
}

/* ---- recordings ---- */

static void test_commit_idempotent(void **state)
{
    (void)state;
    bc_recording_meta m = meta("cam-1", "r1", T0);
    m.emergency = true;
    m.warnings = 0;
    bool created = false;
    size_t holds = 99;
    assert_int_equal(
        bc_catalog_commit(&bc_test_conn, &m, T0 + 1000, &created, NULL, 0, &holds, NULL), BC_OK);
    assert_true(created);
    assert_int_equal(holds, 0);
    assert_string_equal(m.ref, "cam-1/r1");

    bc_recording_meta g = get("cam-1/r1");
    assert_string_equal(g.device, "cam-1");
    assert_string_equal(g.recording_id, "r1");
    assert_string_equal(g.officer, "");
    assert_int_equal(g.recorded_at, T0);
    assert_int_equal(g.duration_ms, 60000);
    assert_int_equal(g.warnings, 0);
    assert_true(g.emergency);
    assert_string_equal(g.key_id, "rk-1");
    assert_int_equal(strlen(g.sha256), 64);
    assert_int_equal(g.size, 4096);
    assert_int_equal(g.delete_after, T0 + 28 * DAY);
    assert_int_equal(g.status, BC_REC_COMMITTED);
    assert_int_equal(g.commit_audit_seq, 0);
    assert_int_equal(g.active_holds, 0);
    long long score = 0;
    assert_true(zscore("bodycam:recordings:expiry", "cam-1/r1", &score));
    assert_int_equal(score, T0 + 28 * DAY);
    assert_true(zscore("bodycam:recordings:device:cam-1", "cam-1/r1", &score));
    assert_int_equal(score, T0);

    /* a redelivered upload: nothing changes, m gets the stored record */
    bc_recording_meta again = meta("cam-1", "r1", T0);
    again.size = 1;
    assert_int_equal(
        bc_catalog_commit(&bc_test_conn, &again, T0 + 5000, &created, NULL, 0, NULL, NULL), BC_OK);
    assert_false(created);
    assert_int_equal(again.size, 4096);
    assert_true(again.emergency);
    assert_int_equal(get("cam-1/r1").size, 4096);

    collected c = {0};
    assert_int_equal(bc_catalog_unaudited(&bc_test_conn, collect_ref, &c, NULL), BC_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.refs[0], "cam-1/r1");
    assert_int_equal(bc_catalog_commit_audited(&bc_test_conn, "cam-1/r1", 41, NULL), BC_OK);
    assert_int_equal(get("cam-1/r1").commit_audit_seq, 41);
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_unaudited(&bc_test_conn, collect_ref, &c, NULL), BC_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(bc_catalog_commit_audited(&bc_test_conn, "cam-1/nope", 42, NULL),
                     BC_ERR_NOT_FOUND);

    bc_recording_meta g2;
    assert_int_equal(bc_catalog_recording_get(&bc_test_conn, "cam-9/x", &g2, NULL),
                     BC_ERR_NOT_FOUND);
    assert_int_equal(bc_catalog_recording_get(&bc_test_conn, "not a ref", &g2, NULL), BC_ERR_INVAL);

    bc_recording_meta bad = meta("cam-1", "r2", T0);
    bad.warnings = 3;
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &bad, T0, &created, NULL, 0, NULL, NULL),
                     BC_ERR_INVAL);
    bad = meta("cam-1", "r2", T0);
    bad.sha256[3] = 'A';
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &bad, T0, &created, NULL, 0, NULL, NULL),
                     BC_ERR_INVAL);
    bad = meta("cam-1", "r2", T0);
    snprintf(bad.ref, sizeof(bad.ref), "cam-2/r2");
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &bad, T0, &created, NULL, 0, NULL, NULL),
                     BC_ERR_INVAL);
}

static void test_commit_officer(void **state)
{
    (void)state;
    const char *h[] = {"HSET", "bodycam:assignment:cam-h", "officer", "o-17", "shift", "x"};
    bc_test_cmd_ok(6, h);
    const char *s[] = {"SET", "bodycam:assignment:cam-s", "o_9"};
    bc_test_cmd_ok(3, s);
    const char *bad[] = {"SET", "bodycam:assignment:cam-b", "o 9; DROP"};
    bc_test_cmd_ok(3, bad);
    const char *wrong[] = {"SADD", "bodycam:assignment:cam-w", "o-1"};
    bc_test_cmd_ok(3, wrong);
    assert_string_equal(commit("cam-h", "a", T0).officer, "o-17");
    assert_string_equal(commit("cam-s", "a", T0).officer, "o_9");
    assert_string_equal(commit("cam-b", "a", T0).officer, "");
    assert_string_equal(commit("cam-w", "a", T0).officer, "");
    assert_string_equal(commit("cam-n", "a", T0).officer, "");
    assert_string_equal(get("cam-h/a").officer, "o-17");
}

static void test_list_filters(void **state)
{
    (void)state;
    const char *h[] = {"HSET", "bodycam:assignment:cam-a", "officer", "o-1"};
    bc_test_cmd_ok(4, h);
    commit("cam-a", "a3", T0 + 3000);
    commit("cam-a", "a1", T0 + 1000);
    commit("cam-b", "b2", T0 + 2000);
    commit("cam-b", "b4", T0 + 4000);
    commit("cam-a", "a5", T0 + 5000);
    place("cam-b/b4", BC_HOLD_KLACHT, "K-1", NULL);

    bc_recording_filter f = {.status = -1};
    collected c = {0};
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &f, collect_rec, &c, NULL), BC_OK);
    assert_int_equal(c.n, 5);
    const char *order[] = {"cam-a/a1", "cam-b/b2", "cam-a/a3", "cam-b/b4", "cam-a/a5"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(c.refs[i], order[i]);

    f.device = "cam-a";
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &f, collect_rec, &c, NULL), BC_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.refs[1], "cam-a/a3");

    f.device = NULL;
    f.from = T0 + 2000;
    f.to = T0 + 4000;
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &f, collect_rec, &c, NULL), BC_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.refs[0], "cam-b/b2");
    assert_string_equal(c.refs[2], "cam-b/b4");

    f.to = 0; /* no upper bound */
    f.officer = "o-1";
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &f, collect_rec, &c, NULL), BC_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.refs[0], "cam-a/a3");
    assert_string_equal(c.refs[1], "cam-a/a5");

    bc_recording_filter held = {.status = -1, .held_only = true};
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &held, collect_rec, &c, NULL),
                     BC_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.refs[0], "cam-b/b4");

    bc_recording_filter limited = {.status = -1, .limit = 2};
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &limited, collect_rec, &c, NULL),
                     BC_OK);
    assert_int_equal(c.n, 2);

    bc_recording_filter stop = {.status = -1};
    memset(&c, 0, sizeof(c));
    c.stop_after = 3;
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &stop, collect_rec, &c, NULL),
                     BC_OK);
    assert_int_equal(c.n, 3);

    /* only a1 is due (b4 is held, the others are younger) */
    assert_int_equal(purge_all(T0 + 1000 + 28 * DAY, 100, 30), 1);
    bc_recording_filter purged = {.status = BC_REC_PURGED};
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &purged, collect_rec, &c, NULL),
                     BC_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.refs[0], "cam-a/a1");
    bc_recording_filter committed = {.status = BC_REC_COMMITTED};
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &committed, collect_rec, &c, NULL),
                     BC_OK);
    assert_int_equal(c.n, 4);

    bc_recording_filter badf = {.status = 7};
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &badf, collect_rec, &c, NULL),
                     BC_ERR_INVAL);
}

/* More recordings than one page of the list script. */
static void test_list_pages(void **state)
{
    (void)state;
    bc_error err;
    assert_int_equal(bc_catalog_scripts_load(&bc_test_conn, &err), BC_OK);
    bc_recording_meta *ms = calloc(1200, sizeof(*ms));
    assert_non_null(ms);
    for (int i = 0; i < 1200; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%04d", i);
        ms[i] = meta("cam-p", id, T0 + i);
        assert_int_equal(bc_catalog_commit_append(&bc_test_conn, &ms[i], T0, &err), BC_OK);
    }
    for (int i = 0; i < 1200; i++) {
        bool created = false;
        assert_int_equal(
            bc_catalog_commit_reply(&bc_test_conn, &ms[i], &created, NULL, 0, NULL, &err), BC_OK);
        assert_true(created);
    }
    free(ms);
    bc_recording_filter f = {.status = -1, .device = "cam-p", .from = T0 + 100};
    collected c = {0};
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &f, collect_rec, &c, NULL), BC_OK);
    assert_int_equal(c.n, 1100);
    assert_string_equal(c.refs[0], "cam-p/p0100");
}

/* ---- purge ---- */

static void test_purge_begin(void **state)
{
    (void)state;
    commit("cam-1", "due", T0);
    commit("cam-1", "held", T0);
    commit("cam-1", "young", T0 + 10 * DAY);
    place("cam-1/held", BC_HOLD_AANGIFTE, "PL-1", NULL);
    int64_t now = T0 + 28 * DAY + 1;

    bc_recording_meta out[4];
    size_t n = 9;
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 4, &n, NULL), BC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].ref, "cam-1/due");
    assert_int_equal(out[0].status, BC_REC_PURGING);
    assert_string_equal(out[0].key_id, "rk-1");
    assert_false(in_expiry("cam-1/due"));
    assert_int_equal(get("cam-1/due").status, BC_REC_PURGING);
    assert_int_equal(get("cam-1/held").status, BC_REC_COMMITTED);
    assert_int_equal(get("cam-1/young").status, BC_REC_COMMITTED);

    /* a stale expiry entry (a held recording) is dropped, not purged */
    const char *stale[] = {"ZADD", "bodycam:recordings:expiry", "0", "cam-1/held"};
    bc_test_cmd_ok(4, stale);
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 4, &n, NULL), BC_OK);
    assert_int_equal(n, 0);
    assert_false(in_expiry("cam-1/held"));
    assert_int_equal(get("cam-1/held").status, BC_REC_COMMITTED);

    /* a second pass finds nothing more; the purging one is left to finish */
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 4, &n, NULL), BC_OK);
    assert_int_equal(n, 0);
    collected c = {0};
    assert_int_equal(bc_catalog_purging(&bc_test_conn, collect_rec, &c, NULL), BC_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.refs[0], "cam-1/due");

    const char *refs[] = {"cam-1/due"};
    const uint64_t seqs[] = {812};
    assert_int_equal(bc_catalog_purge_audited(&bc_test_conn, refs, seqs, 1, NULL), BC_OK);
    assert_int_equal(bc_catalog_purge_done(&bc_test_conn, refs, 1, now + 5, 30, NULL), BC_OK);
    bc_recording_meta g = get("cam-1/due");
    assert_int_equal(g.status, BC_REC_PURGED);
    assert_int_equal(g.purged_at, now + 5);
    assert_int_equal(g.purge_audit_seq, 812);
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_purging(&bc_test_conn, collect_rec, &c, NULL), BC_OK);
    assert_int_equal(c.n, 0);
    const char *ttl[] = {"TTL", "bodycam:recording:cam-1/due"};
    redisReply *t = bc_test_cmd(2, ttl);
    assert_true(t->integer > 29 * 86400 && t->integer <= 30 * 86400);
    freeReplyObject(t);

    /* limit: three due, two per batch */
    commit("cam-2", "x1", T0);
    commit("cam-2", "x2", T0);
    commit("cam-2", "x3", T0);
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 2, &n, NULL), BC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 2, &n, NULL), BC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(bc_catalog_purge_done(&bc_test_conn, refs, 1, now, -1, NULL), BC_ERR_INVAL);
}

static void test_hold_release(void **state)
{
    (void)state;
    commit("cam-1", "r", T0);
    bool created = false;
    bc_hold a = place("cam-1/r", BC_HOLD_AANGIFTE, "PL-2024-1", &created);
    assert_true(created);
    assert_int_equal(a.reason, BC_HOLD_AANGIFTE);
    assert_string_equal(a.case_ref, "PL-2024-1");
    assert_string_equal(a.placed_by, "officer Jansen");
    assert_true(a.active);
    assert_false(in_expiry("cam-1/r"));
    assert_int_equal(get("cam-1/r").active_holds, 1);

    bc_hold again = place("cam-1/r", BC_HOLD_AANGIFTE, "PL-2024-1", &created);
    assert_false(created);
    assert_string_equal(again.id, a.id);
    bc_hold k = place("cam-1/r", BC_HOLD_KLACHT, "K-9", &created);
    assert_true(created);
    assert_string_not_equal(k.id, a.id);
    assert_int_equal(get("cam-1/r").active_holds, 2);

    bc_hold h;
    bc_error err;
    assert_int_equal(bc_catalog_hold_place(&bc_test_conn, "cam-1/r", BC_HOLD_INZAGE, "R1", "x", "",
                                           T0, &h, &created, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_catalog_hold_place(&bc_test_conn, "cam-1/r", BC_HOLD_KLACHT, "bad case",
                                           "x", "", T0, &h, &created, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_catalog_hold_place(&bc_test_conn, "cam-1/none", BC_HOLD_KLACHT, "K", "x",
                                           "", T0, &h, &created, &err),
                     BC_ERR_NOT_FOUND);

    assert_int_equal(
        bc_catalog_hold_release(&bc_test_conn, a.id, "clerk", "case dropped", T0 + 9, &h, &err),
        BC_OK);
    assert_false(h.active);
    assert_int_equal(h.released_at, T0 + 9);
    assert_string_equal(h.released_by, "clerk");
    assert_string_equal(h.release_note, "case dropped");
    assert_false(in_expiry("cam-1/r")); /* the klacht still holds it */
    assert_int_equal(bc_catalog_hold_release(&bc_test_conn, a.id, "clerk", "", T0, &h, &err),
                     BC_ERR_STATE);
    assert_non_null(strstr(err.text, "released at"));
    assert_int_equal(bc_catalog_hold_release(&bc_test_conn, k.id, "clerk", "", T0, &h, &err),
                     BC_OK);
    long long score = 0;
    assert_true(zscore("bodycam:recordings:expiry", "cam-1/r", &score));
    assert_int_equal(score, T0 + 28 * DAY);
    assert_int_equal(get("cam-1/r").active_holds, 0);
    assert_int_equal(bc_catalog_hold_release(&bc_test_conn, "H999", "clerk", "", T0, &h, &err),
                     BC_ERR_NOT_FOUND);
    assert_int_equal(bc_catalog_hold_release(&bc_test_conn, "X1", "clerk", "", T0, &h, &err),
                     BC_ERR_INVAL);

    /* the same reason and case again: a new hold, the old one stays released */
    bc_hold b = place("cam-1/r", BC_HOLD_AANGIFTE, "PL-2024-1", &created);
    assert_true(created);
    assert_string_not_equal(b.id, a.id);
    assert_int_equal(bc_catalog_hold_get(&bc_test_conn, a.id, &h, NULL), BC_OK);
    assert_false(h.active);

    collected c = {0};
    bc_hold_filter all = {.ref = "cam-1/r"};
    assert_int_equal(bc_catalog_holds_list(&bc_test_conn, &all, collect_hold, &c, NULL), BC_OK);
    assert_int_equal(c.n, 3);
    bc_hold_filter active = {.ref = "cam-1/r", .active_only = true};
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_holds_list(&bc_test_conn, &active, collect_hold, &c, NULL), BC_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.holds[0].id, b.id);
    bc_hold_filter cased = {.case_ref = "PL-2024-1"};
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_holds_list(&bc_test_conn, &cased, collect_hold, &c, NULL), BC_OK);
    assert_int_equal(c.n, 2);
    bc_hold_filter none = {.ref = "cam-1/other"};
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_holds_list(&bc_test_conn, &none, collect_hold, &c, NULL), BC_OK);
    assert_int_equal(c.n, 0);
}

static void test_hold_on_purged_refused(void **state)
{
    (void)state;
    commit("cam-1", "gone", T0);
    commit("cam-1", "going", T0 + 1);
    int64_t now = T0 + 28 * DAY + 10;
    bc_recording_meta out[4];
    size_t n = 0;
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 4, &n, NULL), BC_OK);
    assert_int_equal(n, 2);
    const char *refs[] = {"cam-1/gone"};
    assert_int_equal(
        bc_catalog_purge_done(&bc_test_conn, refs, 1, utc(2024, 5, 29, 12, 0), 30, NULL), BC_OK);
    bc_hold h;
    bc_error err;
    bool created = true;
    assert_int_equal(bc_catalog_hold_place(&bc_test_conn, "cam-1/gone", BC_HOLD_AANGIFTE, "PL-1",
                                           "x", "", now, &h, &created, &err),
                     BC_ERR_STATE);
    assert_non_null(strstr(err.text, "purged at 2024-05-29T12:00:00Z"));
    assert_int_equal(bc_catalog_hold_place(&bc_test_conn, "cam-1/going", BC_HOLD_AANGIFTE, "PL-1",
                                           "x", "", now, &h, &created, &err),
                     BC_ERR_STATE);
    assert_non_null(strstr(err.text, "being purged"));
    const char *card[] = {"EXISTS", "bodycam:holds:recording:cam-1/gone"};
    redisReply *r = bc_test_cmd(2, card);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

/* Two processes: one places holds on 300 due recordings while the other
 * purges in small batches. Whatever the interleaving, a recording ends up
 * held and committed, or purging without a hold — never both. */
static void test_hold_races_purge(void **state)
{
    (void)state;
    bc_error err;
    assert_int_equal(bc_catalog_scripts_load(&bc_test_conn, &err), BC_OK);
    enum { N = 300 };
    static bc_recording_meta ms[N];
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "race%03d", i);
        ms[i] = meta("cam-r", id, T0);
        assert_int_equal(bc_catalog_commit_append(&bc_test_conn, &ms[i], T0, &err), BC_OK);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(bc_catalog_commit_reply(&bc_test_conn, &ms[i], NULL, NULL, 0, NULL, &err),
                         BC_OK);
    /* the first one held before the purge starts: it must survive */
    place("cam-r/race000", BC_HOLD_AANGIFTE, "PL-R", NULL);
    int64_t now = T0 + 29 * DAY;

    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        bc_redis r;
        bc_redis_config cfg = bc_test_redis_config(bc_test_srv.port, BC_TEST_REDIS_TIMEOUT_MS);
        if (bc_redis_init(&r, &cfg, NULL) != BC_OK || bc_redis_connect_now(&r, NULL) != BC_OK)
            _exit(2);
        for (int i = N - 1; i >= 1; i--) {
            bc_hold h;
            bc_status st = bc_catalog_hold_place(&r, ms[i].ref, BC_HOLD_KLACHT, "K-R", "x", "", now,
                                                 &h, NULL, NULL);
            if (st != BC_OK && st != BC_ERR_STATE)
                _exit(3);
        }
        bc_redis_close(&r);
        _exit(0);
    }
    bc_recording_meta out[5];
    size_t n = 0;
    size_t purged = 0;
    do {
        assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 5, &n, &err), BC_OK);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(out[i].active_holds, 0);
        purged += n;
    } while (n > 0);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* a pass after the holder finished finds nothing new */
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 5, &n, &err), BC_OK);
    assert_int_equal(n, 0);

    size_t held = 0;
    size_t purging = 0;
    for (int i = 0; i < N; i++) {
        bc_recording_meta g = get(ms[i].ref);
        if (g.status == BC_REC_COMMITTED) {
            assert_true(g.active_holds >= 1);
            assert_false(in_expiry(g.ref));
            held++;
        } else {
            assert_int_equal(g.status, BC_REC_PURGING);
            assert_int_equal(g.active_holds, 0);
            purging++;
        }
    }
    assert_int_equal(get("cam-r/race000").status, BC_REC_COMMITTED);
    assert_int_equal(held + purging, N);
    assert_int_equal(purging, purged);
    print_message("race: %zu held first, %zu purged first\n", held, purging);
}

static void test_tombstone_sweep(void **state)
{
    (void)state;
    commit("cam-1", "old", T0);
    commit("cam-1", "newer", T0 + DAY);
    commit("cam-1", "kept", T0 + 5 * DAY);
    assert_int_equal(purge_all(T0 + 28 * DAY + 1, 1, 30), 1);
    assert_int_equal(purge_all(T0 + 29 * DAY + 1, 2, 30), 1);
    size_t removed = 9;
    assert_int_equal(bc_catalog_tombstones_sweep(&bc_test_conn, 10, &removed, NULL), BC_OK);
    assert_int_equal(removed, 0); /* both tombstones are still there */

    /* the first tombstone's EXPIRE fires */
    const char *del[] = {"DEL", "bodycam:recording:cam-1/old"};
    bc_test_cmd_ok(2, del);
    assert_int_equal(bc_catalog_tombstones_sweep(&bc_test_conn, 10, &removed, NULL), BC_OK);
    assert_int_equal(removed, 1);
    assert_false(zscore("bodycam:recordings", "cam-1/old", NULL));
    assert_false(zscore("bodycam:recordings:device:cam-1", "cam-1/old", NULL));
    assert_true(zscore("bodycam:recordings", "cam-1/newer", NULL));
    assert_true(zscore("bodycam:recordings:tombstones", "cam-1/newer", NULL));

    const char *del2[] = {"DEL", "bodycam:recording:cam-1/newer"};
    bc_test_cmd_ok(2, del2);
    assert_int_equal(bc_catalog_tombstones_sweep(&bc_test_conn, 10, &removed, NULL), BC_OK);
    assert_int_equal(removed, 1);
    bc_recording_filter f = {.status = -1};
    collected c = {0};
    assert_int_equal(bc_catalog_recordings_list(&bc_test_conn, &f, collect_rec, &c, NULL), BC_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.refs[0], "cam-1/kept");

    /* tombstone_days 0: kept for ever, never swept */
    assert_int_equal(purge_all(T0 + 40 * DAY, 5, 0), 1);
    const char *ttl[] = {"TTL", "bodycam:recording:cam-1/kept"};
    redisReply *t = bc_test_cmd(2, ttl);
    assert_int_equal(t->integer, -1);
    freeReplyObject(t);
    assert_false(zscore("bodycam:recordings:tombstones", "cam-1/kept", NULL));
}

/* ---- access requests ---- */

static bc_access_request request(int64_t from, int64_t to, const char *camera)
{
    bc_access_request q;
    memset(&q, 0, sizeof(q));
    snprintf(q.requester, sizeof(q.requester), "J. de Vries");
    snprintf(q.contact, sizeof(q.contact), "jdv@example.nl");
    snprintf(q.place, sizeof(q.place), "Grote Markt");
    snprintf(q.registered_by, sizeof(q.registered_by), "privacy desk");
    q.window_from = from;
    q.window_to = to;
    if (camera != NULL) {
        snprintf(q.cameras[0], sizeof(q.cameras[0]), "%s", camera);
        q.camera_count = 1;
    }
    return q;
}

static void test_request_lifecycle(void **state)
{
    (void)state;
    int64_t now = T0 + 2 * DAY;
    commit("cam-1", "in1", T0 + 1000);
    commit("cam-1", "in2", T0 + 2000);
    commit("cam-2", "other", T0 + 1500); /* another camera */
    commit("cam-1", "late", T0 + 9000);  /* outside the window */
    /* a recording in the window that was purged already (seq 77): its
     * retention was zero */
    bc_recording_meta early = meta("cam-1", "early", T0 + 4500);
    early.delete_after = early.recorded_at;
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &early, T0, NULL, NULL, 0, NULL, NULL),
                     BC_OK);
    bc_recording_meta out[4];
    size_t n = 0;
    assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, now, out, 4, &n, NULL), BC_OK);
    assert_int_equal(n, 1);
    const char *refs[] = {"cam-1/early"};
    const uint64_t seqs[] = {77};
    assert_int_equal(bc_catalog_purge_audited(&bc_test_conn, refs, seqs, 1, NULL), BC_OK);
    assert_int_equal(bc_catalog_purge_done(&bc_test_conn, refs, 1, now - 5, 30, NULL), BC_OK);

    bc_access_request q = request(T0, T0 + 5000, "cam-1");
    q.deadline = bc_catalog_add_months(now, 1);
    collected c = {0};
    bc_error err;
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &q, now, collect_match, &c, &err),
                     BC_OK);
    assert_string_equal(q.id, "R1");
    assert_int_equal(q.status, BC_REQ_OPEN);
    assert_int_equal(q.registered_at, now);
    assert_int_equal(q.held, 2);
    assert_int_equal(q.purged, 1);
    assert_int_equal(q.camera_count, 1);
    assert_string_equal(q.cameras[0], "cam-1");
    assert_string_equal(q.place, "Grote Markt");
    assert_int_equal(c.n, 3);
    const bc_request_match *m1 = match_of(&c, "cam-1/in1");
    assert_non_null(m1);
    assert_int_equal(m1->status, BC_REC_COMMITTED);
    assert_true(m1->hold_id[0] == 'H');
    const bc_request_match *gone = match_of(&c, "cam-1/early");
    assert_non_null(gone);
    assert_int_equal(gone->status, BC_REC_PURGED);
    assert_int_equal(gone->purge_audit_seq, 77);
    assert_int_equal(gone->purged_at, now - 5);
    assert_string_equal(gone->hold_id, "");
    assert_null(match_of(&c, "cam-2/other"));

    bc_hold hold;
    assert_int_equal(bc_catalog_hold_get(&bc_test_conn, m1->hold_id, &hold, NULL), BC_OK);
    assert_int_equal(hold.reason, BC_HOLD_INZAGE);
    assert_string_equal(hold.case_ref, "R1");
    assert_string_equal(hold.request_id, "R1");
    assert_string_equal(hold.placed_by, "vault");
    assert_false(in_expiry("cam-1/in1"));
    assert_true(in_expiry("cam-2/other"));
    assert_int_equal(get("cam-1/in2").active_holds, 1);
    /* an inzage hold goes with its request, not on its own */
    assert_int_equal(
        bc_catalog_hold_release(&bc_test_conn, m1->hold_id, "clerk", "", now, &hold, &err),
        BC_ERR_STATE);
    assert_non_null(strstr(err.text, "R1"));

    /* committed later inside the window, while open: held at once */
    bc_recording_meta lm = meta("cam-1", "uploaded-late", T0 + 3000);
    bc_catalog_hold_ref auto_holds[BC_CATALOG_AUTO_HOLDS_MAX];
    size_t auto_count = 0;
    bool created = false;
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &lm, now + 100, &created, auto_holds,
                                       BC_CATALOG_AUTO_HOLDS_MAX, &auto_count, &err),
                     BC_OK);
    assert_int_equal(auto_count, 1);
    assert_string_equal(auto_holds[0].request_id, "R1");
    assert_string_equal(auto_holds[0].ref, "cam-1/uploaded-late");
    assert_int_equal(lm.active_holds, 1);
    assert_false(in_expiry("cam-1/uploaded-late"));
    /* another camera's recording in the window is not */
    bc_recording_meta om = meta("cam-2", "late-other", T0 + 3000);
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &om, now, &created, auto_holds,
                                       BC_CATALOG_AUTO_HOLDS_MAX, &auto_count, &err),
                     BC_OK);
    assert_int_equal(auto_count, 0);

    bc_access_request g;
    assert_int_equal(bc_catalog_request_get(&bc_test_conn, "R1", &g, NULL), BC_OK);
    assert_int_equal(g.held, 3);
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_request_matches(&bc_test_conn, "R1", collect_match, &c, NULL),
                     BC_OK);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.matches[0].ref, "cam-1/in1"); /* recorded_at order */
    assert_string_equal(c.matches[1].ref, "cam-1/in2");
    assert_string_equal(c.matches[2].ref, "cam-1/uploaded-late");
    assert_string_equal(c.matches[3].ref, "cam-1/early");
    assert_int_equal(c.matches[3].purge_audit_seq, 77);

    /* close: every inzage hold released, the recordings due again */
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_request_close(&bc_test_conn, "R1", "sent stills", "privacy desk",
                                              now + DAY, collect_hold, &c, &err),
                     BC_OK);
    assert_int_equal(c.n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_false(c.holds[i].active);
        assert_int_equal(c.holds[i].released_at, now + DAY);
    }
    assert_true(in_expiry("cam-1/in1"));
    assert_true(in_expiry("cam-1/uploaded-late"));
    assert_int_equal(get("cam-1/in2").active_holds, 0);
    assert_int_equal(bc_catalog_request_get(&bc_test_conn, "R1", &g, NULL), BC_OK);
    assert_int_equal(g.status, BC_REQ_CLOSED);
    assert_string_equal(g.answer, "sent stills");
    assert_int_equal(g.closed_at, now + DAY);
    assert_int_equal(
        bc_catalog_request_close(&bc_test_conn, "R1", "again", "x", now, NULL, NULL, &err),
        BC_ERR_STATE);
    assert_int_equal(bc_catalog_request_close(&bc_test_conn, "R9", "x", "x", now, NULL, NULL, &err),
                     BC_ERR_NOT_FOUND);

    /* after the close a commit in the window is not held */
    bc_recording_meta after = meta("cam-1", "after-close", T0 + 4000);
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &after, now + 2 * DAY, &created, auto_holds,
                                       BC_CATALOG_AUTO_HOLDS_MAX, &auto_count, &err),
                     BC_OK);
    assert_int_equal(auto_count, 0);
    assert_true(in_expiry("cam-1/after-close"));
}

static void test_request_close_keeps_other_holds(void **state)
{
    (void)state;
    int64_t now = T0 + DAY;
    commit("cam-1", "r", T0);
    place("cam-1/r", BC_HOLD_AANGIFTE, "PL-7", NULL);
    bc_access_request q = request(T0 - 1, T0 + 1, NULL);
    q.deadline = now + 30 * DAY;
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &q, now, NULL, NULL, NULL), BC_OK);
    assert_int_equal(q.held, 1);
    assert_int_equal(get("cam-1/r").active_holds, 2);
    assert_int_equal(
        bc_catalog_request_close(&bc_test_conn, q.id, "done", "desk", now, NULL, NULL, NULL),
        BC_OK);
    assert_int_equal(get("cam-1/r").active_holds, 1);
    assert_false(in_expiry("cam-1/r")); /* the aangifte still holds it */
}

static void test_request_officer_and_validation(void **state)
{
    (void)state;
    int64_t now = T0 + DAY;
    const char *h[] = {"SET", "bodycam:assignment:cam-1", "o-5"};
    bc_test_cmd_ok(3, h);
    commit("cam-1", "mine", T0);
    commit("cam-1", "first", T0 - 10); /* the window's ends are inside it */
    commit("cam-1", "last", T0 + 10);
    commit("cam-1", "after", T0 + 11);
    commit("cam-1", "before", T0 - 11);
    commit("cam-2", "notmine", T0);
    bc_access_request q = request(T0 - 10, T0 + 10, NULL);
    snprintf(q.officer, sizeof(q.officer), "o-5");
    q.deadline = now + DAY;
    collected c = {0};
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &q, now, collect_match, &c, NULL),
                     BC_OK);
    assert_int_equal(c.n, 3);
    assert_non_null(match_of(&c, "cam-1/mine"));
    assert_non_null(match_of(&c, "cam-1/first"));
    assert_non_null(match_of(&c, "cam-1/last"));
    /* a later commit on the window's edge, by the officer: held */
    bc_recording_meta edge = meta("cam-1", "edge", T0 + 10);
    bc_catalog_hold_ref holds[4];
    size_t count = 0;
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &edge, now, NULL, holds, 4, &count, NULL),
                     BC_OK);
    assert_int_equal(count, 1);
    bc_recording_meta past = meta("cam-1", "past", T0 + 11);
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &past, now, NULL, holds, 4, &count, NULL),
                     BC_OK);
    assert_int_equal(count, 0);
    const char *reassign[] = {"SET", "bodycam:assignment:cam-1", "o-6"};
    bc_test_cmd_ok(3, reassign);
    bc_recording_meta theirs = meta("cam-1", "theirs", T0);
    assert_int_equal(bc_catalog_commit(&bc_test_conn, &theirs, now, NULL, holds, 4, &count, NULL),
                     BC_OK);
    assert_int_equal(count, 0);
    assert_string_equal(q.officer, "o-5");

    bc_access_request bad = request(T0, T0, NULL);
    bad.deadline = now + DAY;
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &bad, now, NULL, NULL, NULL),
                     BC_ERR_INVAL);
    bad = request(T0, T0 + 1, "Not-A-Cam");
    bad.deadline = now + DAY;
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &bad, now, NULL, NULL, NULL),
                     BC_ERR_INVAL);
    bad = request(T0, T0 + 1, NULL);
    bad.deadline = now + DAY;
    snprintf(bad.requester, sizeof(bad.requester), "tab\there");
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &bad, now, NULL, NULL, NULL),
                     BC_ERR_INVAL);
    bad = request(T0, T0 + 1, NULL);
    bad.deadline = now - 1;
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &bad, now, NULL, NULL, NULL),
                     BC_ERR_INVAL);
    assert_int_equal(bc_catalog_request_get(&bc_test_conn, "R2", &bad, NULL), BC_ERR_NOT_FOUND);
}

static void test_request_extend_once(void **state)
{
    (void)state;
    int64_t now = T0;
    bc_access_request q = request(T0 - DAY, T0, NULL);
    q.deadline = bc_catalog_add_months(now, 1);
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &q, now, NULL, NULL, NULL), BC_OK);
    bc_access_request out;
    bc_error err;
    assert_int_equal(bc_catalog_request_extend(&bc_test_conn, q.id, q.deadline - 1, "complex",
                                               "desk", now, &out, &err),
                     BC_ERR_INVAL);
    int64_t later = bc_catalog_add_months(now, 3);
    assert_int_equal(bc_catalog_request_extend(&bc_test_conn, q.id, later, "complex request",
                                               "desk", now, &out, &err),
                     BC_OK);
    assert_true(out.extended);
    assert_int_equal(out.deadline, later);
    assert_string_equal(out.extension_reason, "complex request");
    long long score = 0;
    assert_true(zscore("bodycam:requests:open", q.id, &score));
    assert_int_equal(score, later);
    assert_int_equal(bc_catalog_request_extend(&bc_test_conn, q.id, later + DAY, "again", "desk",
                                               now, &out, &err),
                     BC_ERR_STATE);
    assert_non_null(strstr(err.text, "extended already"));
    assert_int_equal(bc_catalog_request_get(&bc_test_conn, q.id, &out, NULL), BC_OK);
    assert_int_equal(out.deadline, later);

    bc_access_request q2 = request(T0 - DAY, T0, NULL);
    q2.deadline = now + DAY;
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &q2, now, NULL, NULL, NULL), BC_OK);
    assert_int_equal(bc_catalog_request_close(&bc_test_conn, q2.id, "nothing found", "desk", now,
                                              NULL, NULL, NULL),
                     BC_OK);
    assert_int_equal(bc_catalog_request_extend(&bc_test_conn, q2.id, now + 9 * DAY, "late", "desk",
                                               now, NULL, &err),
                     BC_ERR_STATE);
    assert_non_null(strstr(err.text, "closed"));
    assert_int_equal(bc_catalog_request_extend(&bc_test_conn, "R77", now + 9 * DAY, "x", "desk",
                                               now, NULL, &err),
                     BC_ERR_NOT_FOUND);
}

static void test_requests_overdue(void **state)
{
    (void)state;
    int64_t now = T0;
    bc_access_request a = request(T0 - DAY, T0, NULL);
    a.deadline = now + 10 * DAY;
    bc_access_request b = request(T0 - DAY, T0, NULL);
    b.deadline = now + 5 * DAY;
    bc_access_request c3 = request(T0 - DAY, T0, NULL);
    c3.deadline = now + 1 * DAY;
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &a, now, NULL, NULL, NULL), BC_OK);
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &b, now + 1, NULL, NULL, NULL),
                     BC_OK);
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &c3, now + 2, NULL, NULL, NULL),
                     BC_OK);
    assert_int_equal(bc_catalog_request_close(&bc_test_conn, c3.id, "answered", "desk", now + 3,
                                              NULL, NULL, NULL),
                     BC_OK);

    collected c = {0};
    assert_int_equal(
        bc_catalog_requests_overdue(&bc_test_conn, now + 5 * DAY, collect_req, &c, NULL), BC_OK);
    assert_int_equal(c.n, 0); /* the deadline itself is not past it */
    assert_int_equal(
        bc_catalog_requests_overdue(&bc_test_conn, now + 6 * DAY, collect_req, &c, NULL), BC_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.reqs[0].id, b.id);
    assert_int_equal(bc_catalog_request_mark_alerted(&bc_test_conn, b.id, true, NULL), BC_OK);
    memset(&c, 0, sizeof(c));
    assert_int_equal(
        bc_catalog_requests_overdue(&bc_test_conn, now + 11 * DAY, collect_req, &c, NULL), BC_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.reqs[0].id, a.id);
    assert_int_equal(bc_catalog_request_mark_alerted(&bc_test_conn, b.id, false, NULL), BC_OK);
    memset(&c, 0, sizeof(c));
    assert_int_equal(
        bc_catalog_requests_overdue(&bc_test_conn, now + 11 * DAY, collect_req, &c, NULL), BC_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.reqs[0].id, a.id); /* by registration */
    assert_string_equal(c.reqs[1].id, b.id);
    assert_int_equal(bc_catalog_request_mark_alerted(&bc_test_conn, "R99", true, NULL),
                     BC_ERR_NOT_FOUND);

    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_requests_list(&bc_test_conn, false, collect_req, &c, NULL), BC_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.reqs[2].id, c3.id);
    assert_int_equal(c.reqs[2].status, BC_REQ_CLOSED);
    memset(&c, 0, sizeof(c));
    assert_int_equal(bc_catalog_requests_list(&bc_test_conn, true, collect_req, &c, NULL), BC_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.reqs[0].id, a.id);
}

/* ---- replies that do not fit, scripts gone ---- */

static void test_bad_records_are_parse_errors(void **state)
{
    (void)state;
    commit("cam-1", "r", T0);
    char officer[200];
    memset(officer, 'o', sizeof(officer) - 1);
    officer[sizeof(officer) - 1] = '\0';
    const char *h[] = {"HSET", "bodycam:recording:cam-1/r", "officer", officer};
    bc_test_cmd_ok(4, h);
    bc_recording_meta m;
    assert_int_equal(bc_catalog_recording_get(&bc_test_conn, "cam-1/r", &m, NULL), BC_ERR_PARSE);
    const char *st[] = {"HSET", "bodycam:recording:cam-1/r", "officer", "", "status", "lost"};
    bc_test_cmd_ok(6, st);
    assert_int_equal(bc_catalog_recording_get(&bc_test_conn, "cam-1/r", &m, NULL), BC_ERR_PARSE);
    const char *num[] = {"HSET", "bodycam:recording:cam-1/r", "status", "committed", "size",
                         "12abc"};
    bc_test_cmd_ok(6, num);
    assert_int_equal(bc_catalog_recording_get(&bc_test_conn, "cam-1/r", &m, NULL), BC_ERR_PARSE);

    bc_access_request q = request(T0, T0 + 1, NULL);
    q.deadline = T0 + DAY;
    assert_int_equal(bc_catalog_request_register(&bc_test_conn, &q, T0, NULL, NULL, NULL), BC_OK);
    char cams[17 * 3];
    cams[0] = '\0';
    for (int i = 0; i < 17; i++)
        strcat(cams, i > 0 ? ",c1" : "c1");
    const char *qc[] = {"HSET", "bodycam:request:R1", "cameras", cams};
    bc_test_cmd_ok(4, qc);
    assert_int_equal(bc_catalog_request_get(&bc_test_conn, "R1", &q, NULL), BC_ERR_PARSE);
    const char *mv[] = {"HSET", "bodycam:request:R1:matches", "cam-1/r", "garbage"};
    bc_test_cmd_ok(4, mv);
    assert_int_equal(bc_catalog_request_matches(&bc_test_conn, "R1", NULL, NULL, NULL),
                     BC_ERR_PARSE);
}

static void test_script_flush(void **state)
{
    (void)state;
    bc_error err;
    assert_int_equal(bc_catalog_scripts_load(&bc_test_conn, &err), BC_OK);
    const char *flush[] = {"SCRIPT", "FLUSH"};
    bc_test_cmd_ok(2, flush);
    /* a plain call falls back to EVAL */
    commit("cam-1", "a", T0);
    assert_int_equal(get("cam-1/a").status, BC_REC_COMMITTED);
    /* a pipeline cannot: NOSCRIPT is an error until the scripts are loaded */
    bc_test_cmd_ok(2, flush);
    bc_recording_meta m = meta("cam-1", "b", T0);
    assert_int_equal(bc_catalog_commit_append(&bc_test_conn, &m, T0, &err), BC_OK);
    assert_int_equal(bc_catalog_commit_reply(&bc_test_conn, &m, NULL, NULL, 0, NULL, &err),
                     BC_ERR_STATE);
    assert_non_null(strstr(err.text, "NOSCRIPT"));
    assert_int_equal(bc_catalog_scripts_load(&bc_test_conn, &err), BC_OK);
    assert_int_equal(bc_catalog_commit_append(&bc_test_conn, &m, T0, &err), BC_OK);
    assert_int_equal(bc_catalog_commit_reply(&bc_test_conn, &m, NULL, NULL, 0, NULL, &err), BC_OK);
}

/* ---- measurement ---- */

static double secs_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_measure_10k(void **state)
{
    (void)state;
    enum { N = 10000, WINDOW = 1000, BATCH = 1000 };
    bc_error err;
    assert_int_equal(bc_catalog_scripts_load(&bc_test_conn, &err), BC_OK);
    bc_recording_meta *ms = calloc(WINDOW, sizeof(*ms));
    bc_recording_meta *out = calloc(BATCH, sizeof(*out));
    assert_non_null(ms);
    assert_non_null(out);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int base = 0; base < N; base += WINDOW) {
        for (int i = 0; i < WINDOW; i++) {
            char dev[16];
            char id[16];
            snprintf(dev, sizeof(dev), "cam-%03d", (base + i) % 500);
            snprintf(id, sizeof(id), "r%06d", base + i);
            ms[i] = meta(dev, id, T0 + base + i);
            assert_int_equal(bc_catalog_commit_append(&bc_test_conn, &ms[i], T0, &err), BC_OK);
        }
        for (int i = 0; i < WINDOW; i++)
            assert_int_equal(
                bc_catalog_commit_reply(&bc_test_conn, &ms[i], NULL, NULL, 0, NULL, &err), BC_OK);
    }
    double commit_s = secs_since(&t0);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char **refs = calloc(BATCH, sizeof(*refs));
    uint64_t *seqs = calloc(BATCH, sizeof(*seqs));
    assert_non_null(refs);
    assert_non_null(seqs);
    size_t total = 0;
    size_t n = 0;
    do {
        assert_int_equal(bc_catalog_purge_begin(&bc_test_conn, T0 + 60 * DAY, out, BATCH, &n, &err),
                         BC_OK);
        for (size_t i = 0; i < n; i++) {
            refs[i] = out[i].ref;
            seqs[i] = total + i + 1;
        }
        assert_int_equal(bc_catalog_purge_audited(&bc_test_conn, refs, seqs, n, &err), BC_OK);
        assert_int_equal(bc_catalog_purge_done(&bc_test_conn, refs, n, T0 + 60 * DAY, 30, &err),
                         BC_OK);
        total += n;
    } while (n > 0);
    double purge_s = secs_since(&t0);
    assert_int_equal(total, N);
    print_message("measure: commit %d records pipelined: %.2f s (%.0f/s); purge in batches of "
                  "%d (begin, audited, done): %.2f s (%.0f/s)\n",
                  N, commit_s, N / commit_s, BATCH, purge_s, N / purge_s);
    free(seqs);
    free(refs);
    free(out);
    free(ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refs_and_text),
        cmocka_unit_test(test_add_months),
        cmocka_unit_test_setup_teardown(test_commit_idempotent, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_commit_officer, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_list_pages, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_purge_begin, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_hold_release, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_hold_on_purged_refused, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_hold_races_purge, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_sweep, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_request_lifecycle, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_request_close_keeps_other_holds, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_request_officer_and_validation, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_request_extend_once, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_requests_overdue, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_bad_records_are_parse_errors, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_script_flush, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_measure_10k, bc_test_redis_setup,
                                        bc_test_redis_teardown),
    };
    return cmocka_run_group_tests(tests, bc_test_redis_group_setup, bc_test_redis_group_teardown);
}
