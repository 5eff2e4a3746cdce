/*
 * Unit tests for services/firmware-rollout (images, rollout scripts)
 * against a real redis-server the test starts itself (test_util.h). The
 * registry (bodycam:devices, bodycam:device:<id>) and the cameras' live
 * records (bodycam:camera:<id>) are set up as the registry tools and
 * fleet-health would; times are explicit (T0 + ...).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "firmware-rollout/images.h"
#include "firmware-rollout/rollout.h"
#include "test_util.h"

#define T0 1714557600000LL
#define ACTOR "operator:alice"

#define CMD(...)                                                                                   \
    bc_test_cmd((int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),               \
                (const char *[]){__VA_ARGS__})
#define CMD_OK(...) freeReplyObject(CMD(__VA_ARGS__))

static EVP_PKEY *fw_key;

static void camera(const char *id, const char *state, int battery, const char *fw)
{
    char key[64], bat[16];
    snprintf(key, sizeof(key), "bodycam:device:%s", id);
    CMD_OK("HSET", key, "status", "active");
    CMD_OK("SADD", "bodycam:devices", id);
    snprintf(key, sizeof(key), "bodycam:camera:%s", id);
    snprintf(bat, sizeof(bat), "%d", battery);
    CMD_OK("HSET", key, "online", "1", "state", state, "battery_pct", bat, "fw", fw);
}

static void fleet(int n)
{
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "cam-%03d", i);
        camera(id, "standby", 80, "1.0");
    }
}

static void manifest_for(const uint8_t *data, size_t len, const char *version,
                         bc_firmware_manifest *m)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    memset(m, 0, sizeof(*m));
    snprintf(m->version, sizeof(m->version), "%s", version);
    m->size = (int64_t)len;
    m->chunk_size = 1000;
    m->chunks = ((int64_t)len + 999) / 1000;
    assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(m->sha256 + 2 * i, 3, "%02x", md[i]);
    bc_error err;
    assert_int_equal(bc_firmware_sign(m, fw_key, &err), BC_OK);
}

static void publish(const char *version, unsigned seed)
{
    uint8_t *data = bc_test_pattern(2500, seed);
    bc_firmware_manifest m;
    manifest_for(data, 2500, version, &m);
    bc_error err;
    bool already = false;
    bc_status st = bc_image_publish(&bc_test_conn, &m, data, 2500, ACTOR, T0, &already, &err);
    free(data);
    if (st != BC_OK)
        fail_msg("publish: %s", err.text);
}

static bc_rollout_spec spec_default(const int64_t *pcts, size_t n)
{
    bc_rollout_spec s = {.version = "2.0",
                         .pcts = pcts,
                         .pct_count = n,
                         .wait_s = 60,
                         .success_pct = 90,
                         .max_failure_pct = 10,
                         .camera_timeout_s = 1800,
                         .min_battery_pct = 30,
                         .created_by = ACTOR};
    return s;
}

static bc_rollout create(const bc_rollout_spec *s, int64_t now)
{
    bc_rollout ro;
    bc_error err;
    if (bc_rollout_create(&bc_test_conn, s, now, &ro, &err) != BC_OK)
        fail_msg("create: %s", err.text);
    return ro;
}

static bc_rollout get(const char *id)
{
    bc_rollout ro;
    bc_error err;
    if (bc_rollout_get(&bc_test_conn, id, &ro, &err) != BC_OK)
        fail_msg("get: %s", err.text);
    return ro;
}

/* Offers every camera next hands out (marks them offered). */
static size_t offer_all(const char *id, int64_t now, char out[][BC_DEVICE_ID_MAX + 1], size_t cap)
{
    static bc_rollout_next_result nx;
    bc_error err;
    char tat[32];
    /* a full bucket (its slack): the pace itself is not tested here */
    snprintf(tat, sizeof(tat), "%lld", (long long)now - BC_ROLLOUT_RATE_SLACK_MS);
    CMD_OK("HSET", BC_ROLLOUT_PACE_KEY, "offer_tat", tat);
    if (bc_rollout_next(&bc_test_conn, id, now, BC_ROLLOUT_NEXT_MAX, 1000, 5000, &nx, &err) !=
        BC_OK)
        fail_msg("next: %s", err.text);
    size_t n = 0;
    for (size_t i = 0; i < nx.count; i++) {
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "c%s-%lld", nx.cams[i].device, (long long)now);
        bc_rollout_offer o = {.rollout = id,
                              .device = nx.cams[i].device,
                              .cmd_id = cmd,
                              .topic = "t",
                              .payload = "{}",
                              .now_ms = now,
                              .deadline_ms = now + 1800000};
        bool marked = false;
        assert_int_equal(bc_rollout_mark_offered(&bc_test_conn, &o, &marked, &err), BC_OK);
        assert_true(marked);
        if (n < cap)
            snprintf(out[n++], BC_DEVICE_ID_MAX + 1, "%s", nx.cams[i].device);
    }
    return n;
}

static bc_rollout_answer event(const char *dev, const char *type, const char *version, int64_t now)
{
    bc_rollout_answer a;
    bc_error err;
    if (bc_rollout_event(&bc_test_conn, dev, type, version, "", now, &a, &err) != BC_OK)
        fail_msg("event: %s", err.text);
    return a;
}

static bool happened(const bc_rollout_happenings *h, bc_rollout_happening_kind k)
{
    for (size_t i = 0; i < h->count; i++) {
        if (h->items[i].kind == k)
            return true;
    }
    return false;
}

/* ---- images ---- */

static void test_image_publish(void **state)
{
    (void)state;
    publish("2.0", 1);
    publish("2.0", 1); /* the same image again: a no-op */
    bc_image img;
    bc_error err;
    assert_int_equal(bc_image_get(&bc_test_conn, "2.0", &img, &err), BC_OK);
    assert_int_equal(img.manifest.size, 2500);
    assert_int_equal(img.manifest.chunks, 3);
    assert_int_equal(bc_firmware_verify(&img.manifest, fw_key, &err), BC_OK);
    uint8_t *chunk = NULL;
    size_t len = 0;
    assert_int_equal(bc_image_chunk(&bc_test_conn, "2.0", 2, &chunk, &len, &err), BC_OK);
    uint8_t *data = bc_test_pattern(2500, 1);
    assert_int_equal(len, 500);
    assert_memory_equal(chunk, data + 2000, 500);
    free(chunk);
    /* another image under the same version is refused, the first stays */
    uint8_t *other = bc_test_pattern(2500, 2);
    bc_firmware_manifest m;
    manifest_for(other, 2500, "2.0", &m);
    assert_int_equal(bc_image_publish(&bc_test_conn, &m, other, 2500, ACTOR, T0, NULL, &err),
                     BC_ERR_STATE);
    assert_int_equal(bc_image_chunk(&bc_test_conn, "2.0", 0, &chunk, &len, &err), BC_OK);
    assert_memory_equal(chunk, data, 1000);
    free(chunk);
    /* the image must match its manifest */
    other[7] ^= 1;
    manifest_for(data, 2500, "2.1", &m);
    assert_int_equal(bc_image_publish(&bc_test_conn, &m, other, 2500, ACTOR, T0, NULL, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_image_get(&bc_test_conn, "2.1", &img, &err), BC_ERR_NOT_FOUND);
    /* another image being published as 2.2 right now: refused, nothing written */
    CMD_OK("SET", "bodycam:firmware:2.2:publishing", "ab");
    manifest_for(data, 2500, "2.2", &m);
    assert_int_equal(bc_image_publish(&bc_test_conn, &m, data, 2500, ACTOR, T0, NULL, &err),
                     BC_ERR_STATE);
    assert_non_null(strstr(err.text, "being published"));
    redisReply *n = CMD("EXISTS", "bodycam:firmware:2.2:chunks");
    assert_int_equal(n->integer, 0);
    freeReplyObject(n);
    CMD_OK("DEL", "bodycam:firmware:2.2:publishing");
    assert_int_equal(bc_image_publish(&bc_test_conn, &m, data, 2500, ACTOR, T0, NULL, &err), BC_OK);
    n = CMD("EXISTS", "bodycam:firmware:2.2:publishing");
    assert_int_equal(n->integer, 0); /* released */
    freeReplyObject(n);
    free(other);
    free(data);
}

/* ---- waves ---- */

static void test_waves_split(void **state)
{
    (void)state;
    publish("2.0", 1);
    fleet(20);
    const int64_t pcts[] = {1, 10, 50, 100};
    bc_rollout_spec s = spec_default(pcts, 4);
    bc_rollout ro = create(&s, T0);
    assert_string_equal(ro.id, "R1");
    assert_int_equal(ro.state, BC_ROLLOUT_RUNNING);
    assert_int_equal(ro.total, 20);
    assert_int_equal(ro.wave_count, 4);
    /* ceil(1% of 20) = 1, ceil(10%) = 2, ceil(50%) = 10, 20 */
    assert_int_equal(ro.waves[0].total, 1);
    assert_int_equal(ro.waves[1].total, 1);
    assert_int_equal(ro.waves[2].total, 8);
    assert_int_equal(ro.waves[3].total, 10);
    assert_int_equal(ro.count[BC_FW_PENDING], 20);
    /* one active rollout at a time */
    bc_error err;
    assert_int_equal(bc_rollout_create(&bc_test_conn, &s, T0, NULL, &err), BC_ERR_STATE);
    assert_non_null(strstr(err.text, "R1"));
    /* an unpublished version */
    CMD_OK("DEL", "bodycam:rollouts:active");
    s.version = "9.9";
    assert_int_equal(bc_rollout_create(&bc_test_conn, &s, T0, NULL, &err), BC_ERR_NOT_FOUND);
    /* tiny fleets: at least one camera per wave, empty waves dropped */
    s.version = "2.0";
    const int64_t few[] = {10, 20, 100};
    s.pcts = few;
    s.pct_count = 3;
    const char *two[] = {"cam-000", "cam-001"};
    s.devices = two;
    s.device_count = 2;
    /* the canary is a camera that is online (cam-000 is away), whatever the hash */
    CMD_OK("HSET", "bodycam:camera:cam-000", "online", "0");
    ro = create(&s, T0);
    assert_int_equal(ro.wave_count, 2);
    assert_int_equal(ro.waves[0].total, 1);
    assert_int_equal(ro.waves[1].total, 1);
    for (int i = 0; i < 2; i++) {
        redisReply *e = CMD("HGET", "bodycam:rollout:R2:cameras", two[i]);
        assert_non_null(e);
        assert_int_equal(e->type, REDIS_REPLY_STRING);
        assert_true(strncmp(e->str, i == 0 ? "1|" : "0|", 2) == 0);
        freeReplyObject(e);
    }
    CMD_OK("HSET", "bodycam:camera:cam-000", "online", "1");
    /* explicit lists */
    CMD_OK("DEL", "bodycam:rollouts:active");
    const char *wd[] = {"cam-003", "cam-004", "cam-005", "cam-003"};
    const int64_t wo[] = {0, 2, 2, 1};
    bc_rollout_spec l = spec_default(pcts, 4);
    l.wave_devices = wd;
    l.wave_of = wo;
    l.wave_device_count = 4;
    ro = create(&l, T0);
    assert_int_equal(ro.wave_count, 2);
    assert_int_equal(ro.total, 3);
    assert_int_equal(ro.waves[1].total, 2);
    assert_false(ro.target_all);
}

/* ---- eligibility, transitions, success threshold, approval ---- */

static void test_transitions_and_waves(void **state)
{
    (void)state;
    publish("2.0", 1);
    camera("a", "standby", 80, "1.0");
    camera("b", "recording", 80, "1.0");
    camera("c", "standby", 10, "1.0");
    camera("d", "docked", 5, "2.0");
    const char *w0[] = {"a", "b", "c", "d"};
    const int64_t wo[] = {0, 0, 0, 0};
    const int64_t pcts[] = {100};
    bc_rollout_spec s = spec_default(pcts, 1);
    s.wave_devices = w0;
    s.wave_of = wo;
    s.wave_device_count = 4;
    s.success_pct = 50;
    s.max_failure_pct = 50;
    bc_rollout ro = create(&s, T0);
    char got[8][BC_DEVICE_ID_MAX + 1];
    /* a: standby with battery; b recording, c low battery: not offered;
     * d already runs 2.0: updated without a command */
    assert_int_equal(offer_all(ro.id, T0, got, 8), 1);
    assert_string_equal(got[0], "a");
    ro = get(ro.id);
    assert_int_equal(ro.count[BC_FW_OFFERED], 1);
    assert_int_equal(ro.count[BC_FW_UPDATED], 1);
    assert_int_equal(ro.count[BC_FW_PENDING], 2);
    /* events in order; a wrong version changes nothing */
    assert_false(event("a", "fw_installed", "3.0", T0 + 1).applied);
    bc_rollout_answer a = event("a", "fw_downloading", "2.0", T0 + 1);
    assert_true(a.applied);
    assert_int_equal(a.status, BC_FW_DOWNLOADING);
    assert_int_equal(event("a", "fw_installed", "2.0", T0 + 2).status, BC_FW_INSTALLED);
    a = event("a", "fw_confirmed", "2.0", T0 + 3);
    assert_int_equal(a.status, BC_FW_UPDATED);
    assert_false(event("a", "fw_confirmed", "2.0", T0 + 4).applied); /* repeated */
    ro = get(ro.id);
    assert_int_equal(ro.count[BC_FW_UPDATED], 2);
    assert_int_equal(ro.waves[0].count[BC_FW_UPDATED], 2);
    assert_int_equal(ro.count[BC_FW_DOWNLOADING] + ro.count[BC_FW_INSTALLED], 0);
    /* last wave: not done while b and c are pending */
    assert_int_equal(ro.state, BC_ROLLOUT_RUNNING);
    camera("b", "standby", 80, "1.0");
    camera("c", "docked", 10, "1.0");
    assert_int_equal(offer_all(ro.id, T0 + 10000, got, 8), 2);
    event("b", "fw_confirmed", "2.0", T0 + 10001);
    a = event("c", "fw_confirmed", "2.0", T0 + 10002);
    assert_true(happened(&a.happened, BC_HAPPEN_DONE));
    ro = get(ro.id);
    assert_int_equal(ro.state, BC_ROLLOUT_DONE);
    assert_int_equal(ro.count[BC_FW_UPDATED], 4);
}

static void test_next_wave_and_approval(void **state)
{
    (void)state;
    publish("2.0", 1);
    fleet(4);
    const char *wd[] = {"cam-000", "cam-001", "cam-002", "cam-003"};
    const int64_t wo[] = {0, 1, 2, 2};
    const int64_t pcts[] = {100};
    bc_rollout_spec s = spec_default(pcts, 1);
    s.wave_devices = wd;
    s.wave_of = wo;
    s.wave_device_count = 4;
    s.wait_s = 30;
    bc_rollout ro = create(&s, T0);
    char got[8][BC_DEVICE_ID_MAX + 1];
    assert_int_equal(offer_all(ro.id, T0, got, 8), 1); /* wave 0 only */
    bc_rollout_answer a = event("cam-000", "fw_confirmed", "2.0", T0 + 100);
    assert_true(happened(&a.happened, BC_HAPPEN_WAVE_DONE));
    ro = get(ro.id);
    assert_int_equal(ro.current_wave, 0);
    assert_int_equal(ro.next_wave_at, T0 + 100 + 30000);
    bc_rollout_happenings h;
    bc_error err;
    assert_int_equal(bc_rollout_tick(&bc_test_conn, ro.id, T0 + 20000, &h, &err), BC_OK);
    assert_false(happened(&h, BC_HAPPEN_WAVE_STARTED));
    assert_int_equal(offer_all(ro.id, T0 + 20000, got, 8), 0);
    assert_int_equal(bc_rollout_tick(&bc_test_conn, ro.id, T0 + 30100, &h, &err), BC_OK);
    assert_true(happened(&h, BC_HAPPEN_WAVE_STARTED));
    assert_int_equal(get(ro.id).current_wave, 1);
    assert_int_equal(offer_all(ro.id, T0 + 30100, got, 8), 1);
    assert_string_equal(got[0], "cam-001");
    /* approval wanted: awaiting_approval, then approve starts wave 2 */
    CMD_OK("HSET", "bodycam:rollout:R1", "approve", "1");
    a = event("cam-001", "fw_confirmed", "2.0", T0 + 31000);
    assert_true(happened(&a.happened, BC_HAPPEN_AWAITING_APPROVAL));
    assert_int_equal(get(ro.id).state, BC_ROLLOUT_AWAITING_APPROVAL);
    bool changed = false;
    assert_int_equal(bc_rollout_pause(&bc_test_conn, ro.id, T0, NULL, &changed, &err),
                     BC_ERR_STATE);
    assert_int_equal(bc_rollout_approve(&bc_test_conn, ro.id, T0 + 32000, &ro, &changed, &err),
                     BC_OK);
    assert_true(changed);
    assert_int_equal(ro.state, BC_ROLLOUT_RUNNING);
    assert_int_equal(ro.current_wave, 2);
    assert_int_equal(offer_all(ro.id, T0 + 32000, got, 8), 2);
}

/* ---- error threshold, acks, timeouts ---- */

static void test_halt_and_timeouts(void **state)
{
    (void)state;
    publish("2.0", 1);
    fleet(10);
    const int64_t pcts[] = {100};
    bc_rollout_spec s = spec_default(pcts, 1);
    s.max_failure_pct = 10;
    s.camera_timeout_s = 60;
    bc_rollout ro = create(&s, T0);
    char got[16][BC_DEVICE_ID_MAX + 1];
    assert_int_equal(offer_all(ro.id, T0, got, 16), 10);
    /* one failure of ten is 10 %: not more than the threshold */
    bc_rollout_answer a = event(got[0], "fw_failed", "2.0", T0 + 1);
    assert_int_equal(a.status, BC_FW_FAILED);
    assert_false(happened(&a.happened, BC_HAPPEN_HALTED));
    /* an error ack of the current command fails the camera too: 20 % */
    bc_error err;
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "c%s-%lld", got[1], (long long)T0);
    assert_int_equal(bc_rollout_ack(&bc_test_conn, "cunknown", got[1], false, "x", T0, &a, &err),
                     BC_ERR_NOT_FOUND);
    assert_int_equal(bc_rollout_ack(&bc_test_conn, cmd, got[1], true, NULL, T0 + 2, &a, &err),
                     BC_OK);
    assert_false(a.applied); /* ok: the events follow */
    assert_int_equal(bc_rollout_ack(&bc_test_conn, cmd, got[1], false, "firmware refused: old",
                                    T0 + 2, &a, &err),
                     BC_OK);
    assert_true(a.applied);
    assert_true(happened(&a.happened, BC_HAPPEN_HALTED));
    ro = get(ro.id);
    assert_int_equal(ro.state, BC_ROLLOUT_HALTED);
    assert_non_null(strstr(ro.reason, "2 of 10"));
    /* halted: no offers, but cameras already updating finish */
    bc_rollout_next_result *nx = malloc(sizeof(*nx));
    assert_int_equal(bc_rollout_next(&bc_test_conn, ro.id, T0 + 3, 10, 100, 1000, nx, &err),
                     BC_ERR_STATE);
    free(nx);
    assert_true(event(got[2], "fw_confirmed", "2.0", T0 + 4).applied);
    /* past their deadline (the offer + camera_timeout_s): the rest fail */
    bc_rollout_happenings h;
    assert_int_equal(bc_rollout_tick(&bc_test_conn, ro.id, T0 + 1799999, &h, &err), BC_OK);
    assert_int_equal(get(ro.id).count[BC_FW_FAILED], 2);
    assert_int_equal(bc_rollout_tick(&bc_test_conn, ro.id, T0 + 1800000, &h, &err), BC_OK);
    ro = get(ro.id);
    assert_int_equal(ro.count[BC_FW_FAILED], 9);
    assert_int_equal(ro.count[BC_FW_OFFERED], 0);
    assert_int_equal(ro.waves[0].count[BC_FW_FAILED], 9);
    /* resume, then abort without rollback */
    bool changed = false;
    assert_int_equal(bc_rollout_resume(&bc_test_conn, ro.id, T0 + 1900000, &ro, &changed, &err),
                     BC_OK);
    assert_int_equal(ro.state, BC_ROLLOUT_DONE); /* nothing open any more */
}

/* ---- late cameras, abort with rollback ---- */

static void test_late_and_rollback(void **state)
{
    (void)state;
    publish("2.0", 1);
    fleet(2);
    const int64_t pcts[] = {50, 100};
    bc_rollout_spec s = spec_default(pcts, 2);
    bc_rollout ro = create(&s, T0);
    assert_int_equal(ro.total, 2);
    camera("late-1", "standby", 90, "1.0");
    bc_rollout_happenings h;
    bc_error err;
    assert_int_equal(bc_rollout_tick(&bc_test_conn, ro.id, T0 + 1, &h, &err), BC_OK);
    assert_true(happened(&h, BC_HAPPEN_JOINED));
    ro = get(ro.id);
    assert_int_equal(ro.total, 3);
    assert_int_equal(ro.waves[1].total, 2); /* the first wave not started yet */
    char got[4][BC_DEVICE_ID_MAX + 1];
    assert_int_equal(offer_all(ro.id, T0 + 2, got, 4), 1);
    event(got[0], "fw_installed", "2.0", T0 + 3);
    /* abort with rollback: needs a manifest for every from_version */
    bool changed = false;
    assert_int_equal(
        bc_rollout_abort(&bc_test_conn, ro.id, "{\"0.9\":{}}", T0 + 4, NULL, &changed, &err),
        BC_ERR_STATE);
    assert_non_null(strstr(err.text, "1.0"));
    assert_int_equal(
        bc_rollout_abort(&bc_test_conn, ro.id, "{\"1.0\":{\"v\":1}}", T0 + 4, &ro, &changed, &err),
        BC_OK);
    assert_int_equal(ro.state, BC_ROLLOUT_ABORTING);
    assert_int_equal(ro.count[BC_FW_REVERTING], 1);
    /* the revert is offered, then confirmed: aborted */
    bc_rollout_next_result *nx = malloc(sizeof(*nx));
    assert_int_equal(bc_rollout_next(&bc_test_conn, ro.id, T0 + 5, 10, 100, 1000, nx, &err), BC_OK);
    assert_int_equal(nx->count, 1);
    assert_string_equal(nx->cams[0].from_version, "1.0");
    free(nx);
    bc_rollout_offer o = {.rollout = ro.id,
                          .device = got[0],
                          .cmd_id = "crev",
                          .topic = "t",
                          .payload = "{}",
                          .now_ms = T0 + 5,
                          .deadline_ms = T0 + 100000};
    bool marked = false;
    assert_int_equal(bc_rollout_mark_offered(&bc_test_conn, &o, &marked, &err), BC_OK);
    assert_true(marked);
    assert_false(event(got[0], "fw_confirmed", "2.0", T0 + 6).applied);
    bc_rollout_answer a = event(got[0], "fw_confirmed", "1.0", T0 + 7);
    assert_int_equal(a.status, BC_FW_REVERTED);
    assert_true(happened(&a.happened, BC_HAPPEN_ABORTED));
    ro = get(ro.id);
    assert_int_equal(ro.state, BC_ROLLOUT_ABORTED);
    redisReply *rep = CMD("SCARD", "bodycam:rollouts:active");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
}

static int group_setup(void **state)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &fw_key) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return -1;
    }
    EVP_PKEY_CTX_free(ctx);
    return bc_test_redis_group_setup(state);
}

static int group_teardown(void **state)
{
    EVP_PKEY_free(fw_key);
    return bc_test_redis_group_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_image_publish, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_waves_split, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_transitions_and_waves, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_next_wave_and_approval, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_halt_and_timeouts, bc_test_redis_setup,
                                        bc_test_redis_teardown),
        cmocka_unit_test_setup_teardown(test_late_and_rollback, bc_test_redis_setup,
                                        bc_test_redis_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
