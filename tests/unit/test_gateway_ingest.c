/* Unit tests for services/gateway/ingest.c against a real redis-server
 * that the test starts itself: what reaches a stream, byte for byte, and
 * what is dropped. Upload chunks get the structural check only (their data
 * is decoded and hashed by the broker plugin before and by the vault
 * after, README.md "Upload chunks"); every other kind, and every other
 * field of an upload, is validated in full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gateway/gateway.h"
#include "proto/message.h"
#include "test_util.h"

#define UPLOAD_TOPIC "bodycam/v1/devices/cam-001/upload"

static bc_test_redis srv;

static int group_setup(void **state)
{
    (void)state;
    return bc_test_redis_start(&srv, "gw-ingest") == BC_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    bc_test_redis_stop(&srv);
    return 0;
}

typedef struct fixture {
    gw_config cfg;
    bc_redis redis;
    gw_ingest in;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->cfg.health_maxlen = 1000;
    f->cfg.invalid_log_limit = 0; /* quiet */
    bc_test_redis_connect(&srv, 2000, &f->redis);
    bc_test_redis_flush(&f->redis);
    assert_int_equal(gw_ingest_init(&f->in, &f->cfg, &f->redis, NULL), BC_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    gw_ingest_free(&f->in);
    bc_redis_close(&f->redis);
    free(f);
    return 0;
}

/* A chunk of len bytes (pattern seed) as the camera prints it. */
static char *chunk_json(const char *device, size_t len, int seed)
{
    bc_message m;
    memset(&m, 0, sizeof(m));
    m.kind = BC_TOPIC_UPLOAD;
    snprintf(m.upload.device, sizeof(m.upload.device), "%s", device);
    m.upload.kind = BC_UPLOAD_CHUNK;
    snprintf(m.upload.recording_id, sizeof(m.upload.recording_id), "cam-001-7");
    m.upload.offset = 32768;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + (size_t)seed);
    size_t size = bc_message_chunk_json_max(len);
    char *out = malloc(size);
    assert_non_null(out);
    size_t n = 0;
    assert_int_equal(bc_message_encode_chunk(&m, data, len, out, size, &n, NULL), BC_OK);
    free(data);
    return out;
}

/* Replaces the first occurrence of from (same length as to) in text. */
static void patch(char *text, const char *from, const char *to)
{
    assert_int_equal(strlen(from), strlen(to));
    char *at = strstr(text, from);
    assert_non_null(at);
    memcpy(at, to, strlen(to));
}

static void ingest(fixture *f, const char *topic, const char *payload)
{
    gw_ingest_message(&f->in, topic, payload, strlen(payload));
}

/* The payload fields of a stream, in order. */
static size_t payloads(fixture *f, const char *stream, char **out, size_t max)
{
    const char *argv[] = {"XRANGE", stream, "-", "+"};
    redisReply *reply = NULL;
    assert_int_equal(bc_redis_command(&f->redis, 4, argv, NULL, &reply, NULL), BC_OK);
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    assert_true(reply->elements <= max);
    for (size_t i = 0; i < reply->elements; i++) {
        redisReply *fields = reply->element[i]->element[1];
        out[i] = NULL;
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            if (strcmp(fields->element[k]->str, "payload") == 0)
                out[i] = strdup(fields->element[k + 1]->str);
        }
        assert_non_null(out[i]);
    }
    size_t n = reply->elements;
    freeReplyObject(reply);
    return n;
}

static void test_upload_structure_only(void **state)
{
    fixture *f = *state;
    char *valid = chunk_json("cam-001", 32768, 1);
    /* data of another chunk under this one's sha256: a full decode says
     * tampered; the gateway passes it on (the vault refuses it) */
    char *other = chunk_json("cam-001", 32768, 2);
    char *tampered = strdup(valid);
    memcpy(strstr(tampered, "\"sha256\":\""), strstr(other, "\"sha256\":\""), 74);
    char *not_base64 = chunk_json("cam-001", 300, 3);
    char *d = strstr(not_base64, "\"data\":\"") + 8;
    d[0] = '!';
    d[1] = '!';

    /* refused by the structure: each fails on something other than the data */
    char *wrong_device = chunk_json("cam-002", 100, 4); /* names another camera */
    char *bad_id = chunk_json("cam-001", 100, 5);
    patch(bad_id, "\"cam-001-7\"", "\"cam/001/7\"");
    char *no_data = chunk_json("cam-001", 100, 6);
    patch(no_data, "\"data\":", "\"dada\":");
    char *empty_data = strdup("{\"v\":1,\"device\":\"cam-001\",\"kind\":\"chunk\",\"recording_id\":"
                              "\"cam-001-7\",\"sha256\":\"00000000000000000000000000000000000000"
                              "00000000000000000000000000\",\"offset\":0,\"data\":\"\"}");
    char *bad_sha = chunk_json("cam-001", 100, 7);
    char *hex = strstr(bad_sha, "\"sha256\":\"") + 10;
    hex[0] = 'G';
    char *truncated = chunk_json("cam-001", 100, 8);
    truncated[strlen(truncated) / 2] = '\0';

    ingest(f, UPLOAD_TOPIC, valid);
    ingest(f, UPLOAD_TOPIC, wrong_device);
    ingest(f, UPLOAD_TOPIC, tampered);
    ingest(f, UPLOAD_TOPIC, bad_id);
    ingest(f, UPLOAD_TOPIC, no_data);
    ingest(f, UPLOAD_TOPIC, empty_data);
    ingest(f, UPLOAD_TOPIC, bad_sha);
    ingest(f, UPLOAD_TOPIC, truncated);
    ingest(f, UPLOAD_TOPIC, not_base64);
    assert_true(gw_ingest_flush(&f->in));

    assert_int_equal(f->in.received, 9);
    assert_int_equal(f->in.stored, 3);
    assert_int_equal(f->in.invalid[GW_INVALID_DEVICE], 1);
    assert_int_equal(f->in.invalid[GW_INVALID_PAYLOAD], 5);
    char *got[16];
    size_t n = payloads(f, BC_STREAM_UPLOAD, got, 16);
    assert_int_equal(n, 3);
    assert_string_equal(got[0], valid); /* exactly as sent */
    assert_string_equal(got[1], tampered);
    assert_string_equal(got[2], not_base64);
    for (size_t i = 0; i < n; i++)
        free(got[i]);
    char *all[] = {valid,  other,   tampered,   not_base64, wrong_device,
                   bad_id, no_data, empty_data, bad_sha,    truncated};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free(all[i]);
}

/* Every other kind is still decoded in full, as before. */
static void test_other_kinds_in_full(void **state)
{
    fixture *f = *state;
    static const char good[] = "{\"v\":1,\"device\":\"cam-001\",\"seq\":5,\"ts\":1700000000000,"
                               "\"type\":\"docked\"}";
    static const char bad[] = "{\"v\":1,\"device\":\"cam-001\",\"seq\":-5,\"ts\":1700000000000,"
                              "\"type\":\"docked\"}";
    static const char csr_bad[] = "{\"v\":1,\"device\":\"cam-001\",\"ts\":1,\"cmd_id\":\"c1\","
                                  "\"csr\":\"not a pem\"}";
    ingest(f, "bodycam/v1/devices/cam-001/event", good);
    ingest(f, "bodycam/v1/devices/cam-001/event", bad);
    ingest(f, "bodycam/v1/devices/cam-001/csr", csr_bad);
    ingest(f, "bodycam/v1/devices/cam-002/event", good); /* the payload names cam-001 */
    assert_true(gw_ingest_flush(&f->in));
    assert_int_equal(f->in.stored, 1);
    assert_int_equal(f->in.invalid[GW_INVALID_PAYLOAD], 2);
    assert_int_equal(f->in.invalid[GW_INVALID_DEVICE], 1);
    char *got[4];
    assert_int_equal(payloads(f, BC_STREAM_EVENT, got, 4), 1);
    assert_string_equal(got[0], good);
    free(got[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload_structure_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_kinds_in_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
