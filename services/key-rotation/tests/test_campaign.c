/* Unit tests for services/key-rotation/campaign (and recording_keys)
 * against a real redis-server that the test starts itself (like
 * tests/unit/test_stream.c): on a free loopback port, in a temp dir,
 * without persistence. Every test starts from an empty database and sets
 * up the registry (bodycam:devices, bodycam:device:<id>) and the cameras'
 * online flags (bodycam:camera:<id>) as the registry tools and
 * fleet-health would. Times are given explicitly (T0 + ...), so the pace
 * and the backoffs are checked without sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "key-rotation/campaign.h"
#include "key-rotation/recording_keys.h"
#include "test_util.h"

#define T0 1714557600000LL /* 2024-05-01T10:00:00Z */
#define ACTOR "operator:alice"

/* ---- Redis helpers ---- */

#define CMD(...)                                                                                   \
    bc_test_cmd((int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),               \
                (const char *[]){__VA_ARGS__})
#define CMD_OK(...) freeReplyObject(CMD(__VA_ARGS__))

static long long integer(redisReply *r)
{
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                  : -1;
    freeReplyObject(r);
    return v;
}

/* A registered camera with a registry status, online or not. */
static void camera(const char *id, const char *status, bool online)
{
    char key[64];
    snprintf(key, sizeof(key), "bodycam:device:%s", id);
    CMD_OK("HSET", key, "status", status, "fingerprints", "");
    CMD_OK("SADD", "bodycam:devices", id);
    snprintf(key, sizeof(key), "bodycam:camera:%s", id);
    CMD_OK("HSET", key, "device", id, "online", online ? "1" : "0");
}

static void set_online(const char *id, bool online)
{
    char key[64];
    snprintf(key, sizeof(key), "bodycam:camera:%s", id);
    CMD_OK("HSET", key, "online", online ? "1" : "0");
}

static bc_campaign create(bc_campaign_kind kind, const char *const *devices, size_t n, int64_t pace,
                          int64_t now)
{
    bc_campaign_spec spec = {.kind = kind,
                             .devices = devices,
                             .device_count = n,
                             .pace_per_s = pace,
                             .created_by = ACTOR};
    bc_campaign c;
    bc_error err;
    bc_status st = bc_campaign_create(&bc_test_conn, &spec, now, &c, &err);
    if (st != BC_OK)
        fail_msg("create: %s", err.text);
    return c;
}

static bc_status try_create(bc_campaign_kind kind, const char *const *devices, size_t n,
                            bc_error *err)
{
    bc_campaign_spec spec = {
        .kind = kind, .devices = devices, .device_count = n, .pace_per_s = 5, .created_by = ACTOR};
    return bc_campaign_create(&bc_test_conn, &spec, T0, NULL, err);
}

/* The recording key record the vault writes, and key_ready. */
static void key_made(const char *campaign, const char *key_id, int64_t now)
{
    char key[96];
    snprintf(key, sizeof(key), "bodycam:recording-key:%s", key_id);
    CMD_OK("HSET", key, "key_id", key_id, "public",
           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "created_at", "1", "status", "current");
    bool already = true;
    bc_error err;
    assert_int_equal(bc_campaign_key_ready(&bc_test_conn, campaign, key_id, now, &already, &err),
                     BC_OK);
    assert_false(already);
}

static bc_campaign get(const char *id)
{
    bc_campaign c;
    bc_error err;
    bc_status st = bc_campaign_get(&bc_test_conn, id, &c, &err);
    if (st != BC_OK)
        fail_msg("get %s: %s", id, err.text);
    return c;
}

static bc_campaign_next_result next(const char *id, int64_t now, size_t max)
{
    bc_campaign_next_result out;
    bc_error err;
    bc_status st = bc_campaign_next(&bc_test_conn, id, now, max, 1000, 5000, &out, &err);
    if (st != BC_OK)
        fail_msg("next %s: %s", id, err.text);
    return out;
}

/* Marks a camera sent with cmd (a recording-key or request command). */
static bool mark(const char *id, const char *dev, bc_campaign_phase phase, const char *cmd,
                 const char *request, const char *fp, int64_t now)
{
    bc_campaign_send s = {.campaign_id = id,
                          .device = dev,
                          .phase = phase,
                          .cmd_id = cmd,
                          .request_cmd_id = request,
                          .fingerprint = fp,
                          .topic = "bodycam/v1/devices/x/cmd/y",
                          .payload = "{\"p\":1}",
                          .now_ms = now,
                          .deadline_ms = now + 10000};
    bool marked = false;
    bc_error err;
    bc_status st = bc_campaign_mark_sent(&bc_test_conn, &s, &marked, &err);
    if (st != BC_OK)
        fail_msg("mark_sent %s %s: %s", id, dev, err.text);
    return marked;
}

static bc_campaign_device_state finish(const char *id, const char *dev, const char *cmd,
                                       bc_campaign_outcome outcome, int64_t now, bool *applied)
{
    bc_campaign_retry retry = {.backoff_ms = 1000, .backoff_max_ms = 3000, .attempts_max = 3};
    bc_campaign_device_state result = BC_CDEV_PENDING;
    bc_error err;
    bc_status st = bc_campaign_finish(&bc_test_conn, id, dev, cmd, outcome, "it | failed", &retry,
                                      now, &result, applied, &err);
    if (st != BC_OK)
        fail_msg("finish %s %s: %s", id, dev, err.text);
    return result;
}

typedef struct dev_list {
    bc_campaign_device d[16];
    size_t n;
} dev_list;

static bool collect_dev(const bc_campaign_device *d, void *userdata)
{
    dev_list *l = userdata;
    if (l->n < 16)
        l->d[l->n++] = *d;
    return true;
}

static dev_list devices_of(const char *id)
{
    dev_list l;
    memset(&l, 0, sizeof(l));
    bc_error err;
    if (bc_campaign_devices(&bc_test_conn, id, collect_dev, &l, &err) != BC_OK)
        fail_msg("devices %s: %s", id, err.text);
    return l;
}

static const bc_campaign_device *dev_of(const dev_list *l, const char *dev)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->d[i].device, dev) == 0)
            return &l->d[i];
    }
    fail_msg("no camera %s in the campaign", dev);
    return NULL;
}

/* ---- tests ---- */

static void test_names(void **state)
{
    (void)state;
    bc_campaign_kind k;
    assert_int_equal(bc_campaign_kind_parse("identity", &k), BC_OK);
    assert_int_equal(k, BC_CAMPAIGN_IDENTITY);
    assert_int_equal(bc_campaign_kind_parse("firmware", &k), BC_ERR_INVAL);
    assert_string_equal(bc_campaign_state_name(BC_CAMPAIGN_AWAITING_KEY), "awaiting_key");
    assert_string_equal(bc_campaign_device_state_name(BC_CDEV_INSTALLING), "installing");
    assert_string_equal(bc_campaign_phase_name(BC_PHASE_REQUEST), "request");
    assert_true(bc_campaign_id_valid("C1"));
    assert_true(bc_campaign_id_valid("C1234567890"));
    assert_false(bc_campaign_id_valid("C"));
    assert_false(bc_campaign_id_valid("c1"));
    assert_false(bc_campaign_id_valid("C1a"));
    assert_false(bc_campaign_id_valid("C1234567890123456789012345678901"));
}

/* --all takes the active registered cameras only; a recording-key campaign
 * awaits its key and asks the vault in the same script. */
static void test_create_all(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    camera("cam-002", "active", false);
    camera("cam-003", "revoked", true);
    camera("cam-004", "lost", true);
    bc_campaign c = create(BC_CAMPAIGN_RECORDING_KEY, NULL, 0, 3, T0);
    assert_string_equal(c.id, "C1");
    assert_int_equal(c.kind, BC_CAMPAIGN_RECORDING_KEY);
    assert_int_equal(c.state, BC_CAMPAIGN_AWAITING_KEY);
    assert_int_equal(c.total, 2);
    assert_int_equal(c.pending, 2);
    assert_int_equal(c.pace_per_s, 3);
    assert_int_equal(c.created_at, T0);
    assert_int_equal(c.started_at, 0);
    assert_string_equal(c.created_by, ACTOR);
    assert_string_equal(c.key_id, "");
    dev_list l = devices_of("C1");
    assert_int_equal(l.n, 2);
    assert_string_equal(l.d[0].device, "cam-001");
    assert_string_equal(l.d[1].device, "cam-002");
    assert_int_equal(l.d[0].state, BC_CDEV_PENDING);
    assert_int_equal(l.d[0].not_before, T0);
    assert_int_equal(integer(CMD("SISMEMBER", "bodycam:campaigns:active", "C1")), 1);

    redisReply *x = CMD("XRANGE", BC_VAULT_CONTROL_STREAM, "-", "+");
    assert_int_equal(x->elements, 1);
    redisReply *kv = x->element[0]->element[1];
    assert_int_equal(kv->elements, 6);
    assert_string_equal(kv->element[0]->str, "op");
    assert_string_equal(kv->element[1]->str, "new-recording-key");
    assert_string_equal(kv->element[3]->str, "C1");
    assert_string_equal(kv->element[5]->str, ACTOR);
    freeReplyObject(x);

    /* identity: running at once, no request to the vault */
    bc_campaign i = create(BC_CAMPAIGN_IDENTITY, NULL, 0, 3, T0 + 5);
    assert_string_equal(i.id, "C2");
    assert_int_equal(i.state, BC_CAMPAIGN_RUNNING);
    assert_int_equal(i.started_at, T0 + 5);
    assert_int_equal(integer(CMD("XLEN", BC_VAULT_CONTROL_STREAM)), 1);
}

static void test_create_refusals(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    camera("cam-002", "active", true);
    camera("cam-003", "revoked", true);
    bc_error err;
    const char *one[] = {"cam-001"};
    const char *two[] = {"cam-002", "cam-001"};
    const char *unknown[] = {"cam-001", "cam-009"};
    const char *revoked[] = {"cam-003"};
    const char *bad[] = {"Cam 1"};
    assert_int_equal(try_create(BC_CAMPAIGN_RECORDING_KEY, unknown, 2, &err), BC_ERR_NOT_FOUND);
    assert_non_null(strstr(err.text, "cam-009"));
    assert_int_equal(try_create(BC_CAMPAIGN_RECORDING_KEY, revoked, 1, &err), BC_ERR_STATE);
    assert_non_null(strstr(err.text, "revoked"));
    assert_int_equal(try_create(BC_CAMPAIGN_RECORDING_KEY, bad, 1, &err), BC_ERR_INVAL);
    /* nothing was made by a refusal */
    assert_int_equal(integer(CMD("EXISTS", "bodycam:campaign:next")), 0);

    bc_campaign c = create(BC_CAMPAIGN_RECORDING_KEY, one, 1, 5, T0);
    assert_int_equal(c.total, 1);
    /* the same kind with a camera in it: refused, naming camera and campaign */
    assert_int_equal(try_create(BC_CAMPAIGN_RECORDING_KEY, two, 2, &err), BC_ERR_STATE);
    assert_non_null(strstr(err.text, "cam-001"));
    assert_non_null(strstr(err.text, c.id));
    assert_int_equal(try_create(BC_CAMPAIGN_RECORDING_KEY, NULL, 0, &err), BC_ERR_STATE);
    /* the other kind is fine; so is the same kind once the first is over */
    assert_int_equal(try_create(BC_CAMPAIGN_IDENTITY, two, 2, &err), BC_OK);
    assert_int_equal(bc_campaign_abort(&bc_test_conn, c.id, T0 + 1, NULL, NULL, &err), BC_OK);
    assert_int_equal(try_create(BC_CAMPAIGN_RECORDING_KEY, two, 2, &err), BC_OK);

    bc_campaign_spec spec = {.kind = BC_CAMPAIGN_IDENTITY, .pace_per_s = 0, .created_by = ACTOR};
    assert_int_equal(bc_campaign_create(&bc_test_conn, &spec, T0, NULL, &err), BC_ERR_INVAL);
    spec.pace_per_s = 1;
    spec.created_by = "";
    assert_int_equal(bc_campaign_create(&bc_test_conn, &spec, T0, NULL, &err), BC_ERR_INVAL);

    /* no active camera at all */
    bc_test_redis_flush(&bc_test_conn);
    camera("cam-003", "revoked", true);
    assert_int_equal(try_create(BC_CAMPAIGN_IDENTITY, NULL, 0, &err), BC_ERR_STATE);
}

static void test_key_ready(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    bc_campaign c = create(BC_CAMPAIGN_RECORDING_KEY, NULL, 0, 5, T0);
    char key_id[BC_ID_MAX + 1] = "x";
    bc_error err;
    assert_int_equal(bc_campaign_key_of(&bc_test_conn, c.id, key_id, sizeof(key_id), &err), BC_OK);
    assert_string_equal(key_id, "");
    /* no key yet: nothing is handed out */
    bc_campaign_next_result nx;
    assert_int_equal(bc_campaign_next(&bc_test_conn, c.id, T0, 8, 100, 1000, &nx, &err),
                     BC_ERR_STATE);

    bool already = true;
    assert_int_equal(bc_campaign_key_ready(&bc_test_conn, c.id, "rk-2", T0 + 10, &already, &err),
                     BC_OK);
    assert_false(already);
    c = get(c.id);
    assert_int_equal(c.state, BC_CAMPAIGN_RUNNING);
    assert_string_equal(c.key_id, "rk-2");
    assert_int_equal(c.started_at, T0 + 10);
    /* a redelivered request: already, and the key stays */
    assert_int_equal(bc_campaign_key_ready(&bc_test_conn, c.id, "rk-3", T0 + 20, &already, &err),
                     BC_OK);
    assert_true(already);
    assert_int_equal(bc_campaign_key_of(&bc_test_conn, c.id, key_id, sizeof(key_id), &err), BC_OK);
    assert_string_equal(key_id, "rk-2");
    /* the key's record is not there: next says so */
    assert_int_equal(bc_campaign_next(&bc_test_conn, c.id, T0 + 20, 8, 100, 1000, &nx, &err),
                     BC_ERR_STATE);
    assert_non_null(strstr(err.text, "rk-2"));

    bc_campaign i = create(BC_CAMPAIGN_IDENTITY, NULL, 0, 5, T0);
    assert_int_equal(bc_campaign_key_ready(&bc_test_conn, i.id, "rk-4", T0, NULL, &err),
                     BC_ERR_STATE);
    assert_int_equal(bc_campaign_key_ready(&bc_test_conn, "C99", "rk-4", T0, NULL, &err),
                     BC_ERR_NOT_FOUND);
    assert_int_equal(bc_campaign_key_of(&bc_test_conn, "C99", key_id, sizeof(key_id), &err),
                     BC_ERR_NOT_FOUND);

    /* aborted before the vault answered: no key any more; paused: key, stays paused */
    bc_test_redis_flush(&bc_test_conn);
    camera("cam-001", "active", true);
    camera("cam-002", "active", true);
    const char *a[] = {"cam-001"}, *b[] = {"cam-002"};
    bc_campaign x = create(BC_CAMPAIGN_RECORDING_KEY, a, 1, 5, T0);
    bc_campaign y = create(BC_CAMPAIGN_RECORDING_KEY, b, 1, 5, T0);
    assert_int_equal(bc_campaign_abort(&bc_test_conn, x.id, T0, NULL, NULL, &err), BC_OK);
    assert_int_equal(bc_campaign_key_ready(&bc_test_conn, x.id, "rk-5", T0, NULL, &err),
                     BC_ERR_STATE);
    assert_int_equal(bc_campaign_pause(&bc_test_conn, y.id, T0, NULL, NULL, &err), BC_OK);
    assert_int_equal(bc_campaign_key_ready(&bc_test_conn, y.id, "rk-5", T0, NULL, &err), BC_OK);
    y = get(y.id);
    assert_int_equal(y.state, BC_CAMPAIGN_PAUSED);
    assert_string_equal(y.key_id, "rk-5");
    assert_int_equal(bc_campaign_resume(&bc_test_conn, y.id, T0, &y, NULL, &err), BC_OK);
    assert_int_equal(y.state, BC_CAMPAIGN_RUNNING);
}

/* Offline cameras stay pending (looked at again after recheck_ms); online
 * ones are handed out as the pace allows and leased. */
static void test_next_online_and_pace(void **state)
{
    (void)state;
    camera("cam-001", "active", false);
    camera("cam-002", "active", true);
    camera("cam-003", "active", true);
    camera("cam-004", "active", true);
    bc_campaign c = create(BC_CAMPAIGN_RECORDING_KEY, NULL, 0, 2, T0);
    key_made(c.id, "rk-2", T0);

    bc_campaign_next_result nx = next(c.id, T0, 8);
    assert_int_equal(nx.kind, BC_CAMPAIGN_RECORDING_KEY);
    assert_string_equal(nx.key_id, "rk-2");
    assert_string_equal(nx.public_b64, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert_int_equal(nx.count, 1); /* pace 2/s: one now, the next 500 ms later */
    assert_string_equal(nx.devices[0], "cam-002");
    /* the offline camera was pushed back by recheck_ms (5000) */
    dev_list l = devices_of(c.id);
    assert_int_equal(dev_of(&l, "cam-001")->not_before, T0 + 5000);
    assert_int_equal(dev_of(&l, "cam-002")->not_before, T0 + BC_CAMPAIGN_LEASE_MS);

    assert_int_equal(next(c.id, T0 + 100, 8).count, 0);
    assert_int_equal(next(c.id, T0 + 499, 8).count, 0);
    nx = next(c.id, T0 + 500, 8);
    assert_int_equal(nx.count, 1);
    assert_string_equal(nx.devices[0], "cam-003"); /* cam-002 is leased */
    /* a pass that comes late gets what it missed, up to the slack */
    nx = next(c.id, T0 + 1000 + BC_CAMPAIGN_RATE_SLACK_MS, 8);
    assert_int_equal(nx.count, 1);
    assert_string_equal(nx.devices[0], "cam-004");

    /* a camera back online is taken after its recheck */
    set_online("cam-001", true);
    assert_int_equal(next(c.id, T0 + 4000, 8).count, 0);
    nx = next(c.id, T0 + 5000, 8);
    assert_int_equal(nx.count, 1);
    assert_string_equal(nx.devices[0], "cam-001");
    /* the lease ran out and cam-002 was never marked: it comes back */
    nx = next(c.id, T0 + BC_CAMPAIGN_LEASE_MS + 600, 8);
    assert_int_equal(nx.count, 1);
    assert_string_equal(nx.devices[0], "cam-002");
}

/* The fleet-wide bucket caps every campaign together. */
static void test_next_global_cap(void **state)
{
    (void)state;
    for (int i = 1; i <= 6; i++) {
        char id[16];
        snprintf(id, sizeof(id), "cam-%03d", i);
        camera(id, "active", true);
    }
    const char *a[] = {"cam-001", "cam-002", "cam-003"};
    const char *b[] = {"cam-004", "cam-005", "cam-006"};
    bc_campaign x = create(BC_CAMPAIGN_IDENTITY, a, 3, 100, T0);
    bc_campaign y = create(BC_CAMPAIGN_IDENTITY, b, 3, 100, T0);
    bc_campaign_next_result nx;
    bc_error err;
    /* send_max 2/s: x takes the one send allowed now, y gets none */
    assert_int_equal(bc_campaign_next(&bc_test_conn, x.id, T0, 8, 2, 1000, &nx, &err), BC_OK);
    assert_int_equal(nx.count, 1);
    assert_int_equal(bc_campaign_next(&bc_test_conn, y.id, T0, 8, 2, 1000, &nx, &err), BC_OK);
    assert_int_equal(nx.count, 0);
    assert_int_equal(bc_campaign_next(&bc_test_conn, y.id, T0 + 500, 8, 2, 1000, &nx, &err), BC_OK);
    assert_int_equal(nx.count, 1);
    assert_string_equal(nx.devices[0], "cam-004");
    /* with room, the campaign's own pace gives many at once after a while */
    assert_int_equal(bc_campaign_next(&bc_test_conn, x.id, T0 + 10000, 8, 1000, 1000, &nx, &err),
                     BC_OK);
    assert_int_equal(nx.count, 3); /* the leased cam-001 is back too: the lease ran out */
}

static void test_send_and_answers(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    camera("cam-002", "active", true);
    bc_campaign c = create(BC_CAMPAIGN_RECORDING_KEY, NULL, 0, 100, T0);
    key_made(c.id, "rk-2", T0);
    bc_campaign_next_result nx = next(c.id, T0, 8);
    assert_int_equal(nx.count, 1);
    nx = next(c.id, T0 + 10, 8);
    assert_int_equal(nx.count, 1);

    long long outbox = integer(CMD("XLEN", BC_STREAM_OUTBOX));
    assert_true(mark(c.id, "cam-001", BC_PHASE_RECORDING_KEY, "k1", NULL, NULL, T0 + 20));
    assert_int_equal(integer(CMD("XLEN", BC_STREAM_OUTBOX)), outbox + 1);
    /* twice: taken (another instance), nothing queued */
    assert_false(mark(c.id, "cam-001", BC_PHASE_RECORDING_KEY, "k1b", NULL, NULL, T0 + 20));
    assert_int_equal(integer(CMD("XLEN", BC_STREAM_OUTBOX)), outbox + 1);
    redisReply *x = CMD("XREVRANGE", BC_STREAM_OUTBOX, "+", "-", "COUNT", "1");
    redisReply *kv = x->element[0]->element[1];
    assert_string_equal(kv->element[0]->str, "topic");
    assert_string_equal(kv->element[1]->str, "bodycam/v1/devices/x/cmd/y");
    assert_string_equal(kv->element[3]->str, "{\"p\":1}");
    assert_string_equal(kv->element[5]->str, "1"); /* QoS 1 */
    freeReplyObject(x);
    assert_int_equal(integer(CMD("TTL", "bodycam:campaign-cmd:k1")) > 0, 1);

    bc_campaign_cmd cmd;
    bc_error err;
    assert_int_equal(bc_campaign_cmd_get(&bc_test_conn, "k1", &cmd, &err), BC_OK);
    assert_string_equal(cmd.campaign_id, c.id);
    assert_string_equal(cmd.device, "cam-001");
    assert_int_equal(cmd.phase, BC_PHASE_RECORDING_KEY);
    assert_int_equal(cmd.kind, BC_CAMPAIGN_RECORDING_KEY);
    assert_int_equal(cmd.campaign_state, BC_CAMPAIGN_RUNNING);
    assert_true(cmd.current);
    assert_int_equal(cmd.device_state, BC_CDEV_SENT);
    assert_int_equal(bc_campaign_cmd_get(&bc_test_conn, "nope", &cmd, &err), BC_ERR_NOT_FOUND);
    c = get(c.id);
    assert_int_equal(c.in_flight, 1);
    assert_int_equal(c.pending, 1);

    /* an ack of another command of the camera changes nothing */
    bool applied = true;
    finish(c.id, "cam-001", "k0", BC_OUTCOME_DONE, T0 + 30, &applied);
    assert_false(applied);
    assert_int_equal(finish(c.id, "cam-001", "k1", BC_OUTCOME_DONE, T0 + 30, &applied),
                     BC_CDEV_DONE);
    assert_true(applied);
    /* the same ack again (redelivered): stale */
    finish(c.id, "cam-001", "k1", BC_OUTCOME_DONE, T0 + 31, &applied);
    assert_false(applied);
    c = get(c.id);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.state, BC_CAMPAIGN_RUNNING);
    assert_int_equal(bc_campaign_cmd_get(&bc_test_conn, "k1", &cmd, &err), BC_OK);
    assert_false(cmd.current);

    assert_true(mark(c.id, "cam-002", BC_PHASE_RECORDING_KEY, "k2", NULL, NULL, T0 + 40));
    assert_int_equal(finish(c.id, "cam-002", "k2", BC_OUTCOME_DONE, T0 + 50, NULL), BC_CDEV_DONE);
    c = get(c.id);
    assert_int_equal(c.done, 2);
    assert_int_equal(c.state, BC_CAMPAIGN_DONE);
    assert_int_equal(c.finished_at, T0 + 50);
    assert_int_equal(integer(CMD("SISMEMBER", "bodycam:campaigns:active", c.id)), 0);
    bc_campaign_totals t;
    assert_int_equal(bc_campaign_totals_get(&bc_test_conn, &t, &err), BC_OK);
    assert_int_equal(t.active, 0);
}

/* Error acks and timeouts: pending again after a doubling backoff, failed
 * after attempts_max (3), with the detail. */
static void test_retry_then_failed(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    bc_campaign c = create(BC_CAMPAIGN_IDENTITY, NULL, 0, 1000, T0);
    int64_t now = T0;
    const int64_t waits[] = {1000, 2000};
    char cmd[16];
    for (int attempt = 1; attempt <= 3; attempt++) {
        bc_campaign_next_result nx = next(c.id, now, 8);
        assert_int_equal(nx.count, 1);
        snprintf(cmd, sizeof(cmd), "r%d", attempt);
        assert_true(mark(c.id, "cam-001", BC_PHASE_REQUEST, cmd, NULL, NULL, now));
        size_t n = 9;
        bc_campaign_expired_cmd exp[4];
        bc_error err;
        assert_int_equal(bc_campaign_expired(&bc_test_conn, c.id, now + 9999, exp, 4, &n, &err),
                         BC_OK);
        assert_int_equal(n, 0);
        assert_int_equal(bc_campaign_expired(&bc_test_conn, c.id, now + 10000, exp, 4, &n, &err),
                         BC_OK);
        assert_int_equal(n, 1);
        assert_string_equal(exp[0].device, "cam-001");
        assert_string_equal(exp[0].cmd_id, cmd);
        assert_int_equal(exp[0].phase, BC_PHASE_REQUEST);
        now += 10000;
        bc_campaign_device_state st = finish(c.id, "cam-001", cmd, BC_OUTCOME_RETRY, now, NULL);
        dev_list l = devices_of(c.id);
        assert_int_equal(l.d[0].attempts, attempt);
        assert_string_equal(l.d[0].detail, "it | failed");
        if (attempt < 3) {
            assert_int_equal(st, BC_CDEV_PENDING);
            assert_int_equal(l.d[0].not_before, now + waits[attempt - 1]);
            assert_int_equal(next(c.id, now + waits[attempt - 1] - 1, 8).count, 0);
            now += waits[attempt - 1];
        } else {
            assert_int_equal(st, BC_CDEV_FAILED);
        }
    }
    c = get(c.id);
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.state, BC_CAMPAIGN_DONE);
}

/* Identity: request, then install with the certificate's fingerprint; the
 * install is only allowed after the request it answers. */
static void test_install_phase(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    bc_campaign c = create(BC_CAMPAIGN_IDENTITY, NULL, 0, 1000, T0);
    const char *fp = "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01";
    /* no install before the request */
    assert_false(mark(c.id, "cam-001", BC_PHASE_INSTALL, "i1", "r1", fp, T0));
    assert_int_equal(next(c.id, T0, 8).count, 1);
    assert_true(mark(c.id, "cam-001", BC_PHASE_REQUEST, "r1", NULL, NULL, T0));
    /* an install for another request: taken */
    assert_false(mark(c.id, "cam-001", BC_PHASE_INSTALL, "i1", "r0", fp, T0 + 1));
    assert_true(mark(c.id, "cam-001", BC_PHASE_INSTALL, "i1", "r1", fp, T0 + 1));
    assert_false(mark(c.id, "cam-001", BC_PHASE_INSTALL, "i2", "r1", fp, T0 + 2));
    dev_list l = devices_of(c.id);
    assert_int_equal(l.d[0].state, BC_CDEV_INSTALLING);
    assert_int_equal(l.d[0].attempts, 1); /* the install is part of the attempt */
    assert_string_equal(l.d[0].cmd_id, "i1");
    bc_campaign_cmd cmd;
    bc_error err;
    assert_int_equal(bc_campaign_cmd_get(&bc_test_conn, "i1", &cmd, &err), BC_OK);
    assert_int_equal(cmd.phase, BC_PHASE_INSTALL);
    assert_string_equal(cmd.fingerprint, fp);
    assert_true(cmd.current);
    assert_int_equal(bc_campaign_cmd_get(&bc_test_conn, "r1", &cmd, &err), BC_OK);
    assert_false(cmd.current); /* the request's CSR is answered */
    bc_campaign_expired_cmd exp[2];
    size_t n = 0;
    assert_int_equal(bc_campaign_expired(&bc_test_conn, c.id, T0 + 20000, exp, 2, &n, &err), BC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(exp[0].phase, BC_PHASE_INSTALL);
    assert_string_equal(exp[0].fingerprint, fp);
    assert_string_equal(exp[0].cmd_id, "i1");
    assert_int_equal(finish(c.id, "cam-001", "i1", BC_OUTCOME_DONE, T0 + 3, NULL), BC_CDEV_DONE);
    assert_int_equal(get(c.id).state, BC_CAMPAIGN_DONE);
}

static void test_pause_resume_abort(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    camera("cam-002", "active", true);
    camera("cam-003", "active", true);
    bc_campaign c = create(BC_CAMPAIGN_IDENTITY, NULL, 0, 1000, T0);
    bc_campaign_next_result nx = next(c.id, T0, 1);
    assert_true(mark(c.id, nx.devices[0], BC_PHASE_REQUEST, "r1", NULL, NULL, T0));
    bool changed = false;
    bc_error err;
    assert_int_equal(bc_campaign_pause(&bc_test_conn, c.id, T0, &c, &changed, &err), BC_OK);
    assert_true(changed);
    assert_int_equal(c.state, BC_CAMPAIGN_PAUSED);
    assert_int_equal(bc_campaign_pause(&bc_test_conn, c.id, T0, &c, &changed, &err), BC_OK);
    assert_false(changed);
    /* paused: nothing handed out, a leased camera cannot be marked */
    assert_int_equal(bc_campaign_next(&bc_test_conn, c.id, T0 + 1000, 8, 1000, 1000, &nx, &err),
                     BC_ERR_STATE);
    assert_false(mark(c.id, "cam-002", BC_PHASE_REQUEST, "r2", NULL, NULL, T0 + 1000));
    /* an answer to what is out still counts */
    assert_int_equal(finish(c.id, "cam-001", "r1", BC_OUTCOME_RETRY, T0 + 1000, NULL),
                     BC_CDEV_PENDING);
    assert_int_equal(bc_campaign_resume(&bc_test_conn, c.id, T0, &c, &changed, &err), BC_OK);
    assert_true(changed);
    assert_int_equal(c.state, BC_CAMPAIGN_RUNNING);
    assert_int_equal(bc_campaign_resume(&bc_test_conn, c.id, T0, &c, &changed, &err), BC_OK);
    assert_false(changed);

    nx = next(c.id, T0 + 5000, 1);
    assert_int_equal(nx.count, 1);
    assert_true(mark(c.id, nx.devices[0], BC_PHASE_REQUEST, "r3", NULL, NULL, T0 + 5000));
    assert_int_equal(bc_campaign_abort(&bc_test_conn, c.id, T0 + 6000, &c, &changed, &err), BC_OK);
    assert_true(changed);
    assert_int_equal(c.state, BC_CAMPAIGN_ABORTED);
    assert_int_equal(c.finished_at, T0 + 6000);
    assert_int_equal(c.pending, 0);
    assert_int_equal(integer(CMD("SISMEMBER", "bodycam:campaigns:active", c.id)), 0);
    assert_int_equal(integer(CMD("SISMEMBER", "bodycam:campaigns:draining", c.id)), 1);
    assert_int_equal(bc_campaign_pause(&bc_test_conn, c.id, T0, NULL, NULL, &err), BC_ERR_STATE);
    assert_int_equal(bc_campaign_resume(&bc_test_conn, c.id, T0, NULL, NULL, &err), BC_ERR_STATE);
    assert_int_equal(bc_campaign_abort(&bc_test_conn, c.id, T0, NULL, &changed, &err), BC_OK);
    assert_false(changed);
    /* the aborted campaign is still watched for what is out; a failure
     * there is final */
    size_t seen = 0;
    bc_campaign_expired_cmd exp[2];
    assert_int_equal(bc_campaign_expired(&bc_test_conn, c.id, T0 + 20000, exp, 2, &seen, &err),
                     BC_OK);
    assert_int_equal(seen, 1);
    assert_int_equal(finish(c.id, exp[0].device, "r3", BC_OUTCOME_RETRY, T0 + 20000, NULL),
                     BC_CDEV_FAILED);
    assert_int_equal(integer(CMD("SISMEMBER", "bodycam:campaigns:draining", c.id)), 0);
    assert_int_equal(bc_campaign_pause(&bc_test_conn, "C77", T0, NULL, NULL, &err),
                     BC_ERR_NOT_FOUND);
    assert_int_equal(bc_campaign_pause(&bc_test_conn, "nonsense", T0, NULL, NULL, &err),
                     BC_ERR_INVAL);
}

typedef struct id_list {
    char ids[8][BC_CAMPAIGN_ID_MAX + 1];
    size_t n;
} id_list;

static bool collect_campaign(const bc_campaign *c, void *userdata)
{
    id_list *l = userdata;
    if (l->n < 8)
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", c->id);
    return true;
}

static bool collect_id(const char *id, void *userdata)
{
    id_list *l = userdata;
    if (l->n < 8)
        snprintf(l->ids[l->n++], sizeof(l->ids[0]), "%s", id);
    return true;
}

static void test_list_watched_totals(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    camera("cam-002", "active", true);
    const char *a[] = {"cam-001"}, *b[] = {"cam-002"};
    bc_campaign x = create(BC_CAMPAIGN_IDENTITY, a, 1, 10, T0 + 2);
    bc_campaign y = create(BC_CAMPAIGN_IDENTITY, b, 1, 10, T0 + 1);
    bc_campaign z = create(BC_CAMPAIGN_RECORDING_KEY, NULL, 0, 10, T0 + 3);
    bc_error err;
    id_list l = {0};
    assert_int_equal(bc_campaign_list(&bc_test_conn, true, collect_campaign, &l, &err), BC_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.ids[0], y.id); /* by created_at */
    assert_string_equal(l.ids[1], x.id);
    assert_string_equal(l.ids[2], z.id);
    bc_campaign_totals t;
    assert_int_equal(bc_campaign_totals_get(&bc_test_conn, &t, &err), BC_OK);
    assert_int_equal(t.active, 3);
    assert_int_equal(t.cameras, 4);
    assert_int_equal(bc_campaign_next(&bc_test_conn, y.id, T0 + 5, 1, 100, 100,
                                      &(bc_campaign_next_result){0}, &err),
                     BC_OK);
    assert_true(mark(y.id, "cam-002", BC_PHASE_REQUEST, "r1", NULL, NULL, T0 + 5));
    assert_int_equal(finish(y.id, "cam-002", "r1", BC_OUTCOME_FAILED, T0 + 6, NULL),
                     BC_CDEV_FAILED);
    assert_int_equal(bc_campaign_abort(&bc_test_conn, x.id, T0 + 7, NULL, NULL, &err), BC_OK);
    assert_int_equal(bc_campaign_totals_get(&bc_test_conn, &t, &err), BC_OK);
    assert_int_equal(t.active, 1);
    assert_int_equal(t.cameras, 2);
    memset(&l, 0, sizeof(l));
    assert_int_equal(bc_campaign_list(&bc_test_conn, true, collect_campaign, &l, &err), BC_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.ids[0], z.id);
    memset(&l, 0, sizeof(l));
    assert_int_equal(bc_campaign_list(&bc_test_conn, false, collect_campaign, &l, &err), BC_OK);
    assert_int_equal(l.n, 3);
    memset(&l, 0, sizeof(l));
    assert_int_equal(bc_campaign_watched(&bc_test_conn, collect_id, &l, &err), BC_OK);
    assert_int_equal(l.n, 1); /* x was aborted with nothing out */
    assert_string_equal(l.ids[0], z.id);
    assert_int_equal(get(y.id).failed, 1);
    assert_int_equal(get(y.id).state, BC_CAMPAIGN_DONE);
}

static void test_rate_take(void **state)
{
    (void)state;
    int64_t g = -1;
    bc_error err;
    assert_int_equal(bc_campaign_rate_take(&bc_test_conn, "reconnect", 2, 5, T0, &g, &err), BC_OK);
    assert_int_equal(g, 1);
    assert_int_equal(bc_campaign_rate_take(&bc_test_conn, "reconnect", 2, 5, T0 + 499, &g, &err),
                     BC_OK);
    assert_int_equal(g, 0);
    assert_int_equal(bc_campaign_rate_take(&bc_test_conn, "reconnect", 2, 5, T0 + 500, &g, &err),
                     BC_OK);
    assert_int_equal(g, 1);
    /* an idle bucket does not save up more than the slack */
    assert_int_equal(
        bc_campaign_rate_take(&bc_test_conn, "reconnect", 20, 100, T0 + 60000, &g, &err), BC_OK);
    assert_int_equal(g, BC_CAMPAIGN_RATE_SLACK_MS / 50 + 1);
    /* another bucket is independent */
    assert_int_equal(bc_campaign_rate_take(&bc_test_conn, "other", 2, 5, T0 + 499, &g, &err),
                     BC_OK);
    assert_int_equal(g, 1);
    assert_int_equal(bc_campaign_rate_take(&bc_test_conn, "bad name", 2, 5, T0, &g, &err),
                     BC_ERR_INVAL);
}

typedef struct key_list {
    bc_recording_key k[4];
    size_t n;
} key_list;

static bool collect_key(const bc_recording_key *k, void *userdata)
{
    key_list *l = userdata;
    if (l->n < 4)
        l->k[l->n++] = *k;
    return true;
}

static void test_recording_keys(void **state)
{
    (void)state;
    CMD_OK("SADD", "bodycam:recording-keys", "rk-b", "rk-a");
    CMD_OK("HSET", "bodycam:recording-key:rk-a", "key_id", "rk-a", "created_at", "100", "status",
           "retired", "retired_at", "200");
    CMD_OK("HSET", "bodycam:recording-key:rk-b", "key_id", "rk-b", "created_at", "200", "status",
           "current");
    CMD_OK("SET", "bodycam:recording-keys:current", "rk-b");
    key_list l = {0};
    bc_error err;
    assert_int_equal(bc_recording_keys_list(&bc_test_conn, collect_key, &l, &err), BC_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.k[0].key_id, "rk-a");
    assert_string_equal(l.k[0].status, "retired");
    assert_int_equal(l.k[0].retired_at, 200);
    assert_false(l.k[0].current);
    assert_string_equal(l.k[1].key_id, "rk-b");
    assert_true(l.k[1].current);
    assert_int_equal(l.k[1].destroyed_at, 0);
}

/* A Redis that lost its script cache (restart, SCRIPT FLUSH): EVAL again. */
static void test_script_flush(void **state)
{
    (void)state;
    camera("cam-001", "active", true);
    bc_campaign c = create(BC_CAMPAIGN_IDENTITY, NULL, 0, 10, T0);
    CMD_OK("SCRIPT", "FLUSH");
    assert_string_equal(get(c.id).id, c.id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_create_all, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_create_refusals, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_key_ready, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_next_online_and_pace, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_next_global_cap, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_send_and_answers, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_failed, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_install_phase, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume_abort, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_list_watched_totals, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_rate_take, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_recording_keys, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_script_flush, bc_test_redis_setup,
                                        bc_test_redis_teardown),
    };
    return cmocka_run_group_tests(tests, bc_test_redis_group_setup, bc_test_redis_group_teardown);
}
