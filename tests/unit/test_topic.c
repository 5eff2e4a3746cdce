/* Unit tests for proto/topic: builders refuse bad ids, the parser refuses
 * every malformed or hostile topic with a reason and accepts every topic
 * the builders make. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto/topic.h"

static void test_device_id_alphabet(void **state)
{
    (void)state;
    assert_true(bc_device_id_valid("cam-001"));
    assert_true(bc_device_id_valid("a"));
    assert_true(bc_device_id_valid("0_x-y"));
    assert_true(bc_device_id_valid("abcdefghijklmnopqrstuvwxyz012345")); /* 32 */
    assert_false(bc_device_id_valid("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    assert_false(bc_device_id_valid(""));
    assert_false(bc_device_id_valid(NULL));
    assert_false(bc_device_id_valid("CAM-001"));
    assert_false(bc_device_id_valid("-cam"));
    assert_false(bc_device_id_valid("cam+1"));
    assert_false(bc_device_id_valid("cam#"));
    assert_false(bc_device_id_valid("cam/1"));
    assert_false(bc_device_id_valid("$cam"));
    assert_false(bc_device_id_valid("cam 1"));
    assert_false(bc_device_id_valid("cam\xc3\xa9"));
}

static void test_build_device_topics(void **state)
{
    (void)state;
    char t[BC_TOPIC_MAX];
    assert_int_equal(bc_topic_device(t, sizeof(t), "cam-1", BC_TOPIC_STATE), BC_OK);
    assert_string_equal(t, "bodycam/v1/devices/cam-1/state");
    assert_int_equal(bc_topic_device(t, sizeof(t), "cam-1", BC_TOPIC_CSR), BC_OK);
    assert_string_equal(t, "bodycam/v1/devices/cam-1/csr");
    assert_int_equal(bc_topic_command(t, sizeof(t), "cam-1", "vault-receipt"), BC_OK);
    assert_string_equal(t, "bodycam/v1/devices/cam-1/cmd/vault-receipt");
    assert_int_equal(bc_topic_command_filter(t, sizeof(t), "cam-1"), BC_OK);
    assert_string_equal(t, "bodycam/v1/devices/cam-1/cmd/+");
    assert_int_equal(bc_topic_firmware_chunk(t, sizeof(t), "1.2.3", 7), BC_OK);
    assert_string_equal(t, "bodycam/v1/firmware/1.2.3/chunk/7");
    assert_int_equal(bc_topic_fixed(t, sizeof(t), BC_TOPIC_FLEET_SUMMARY), BC_OK);
    assert_string_equal(t, "bodycam/v1/fleet/summary");

    assert_int_equal(bc_topic_device(t, sizeof(t), "cam/+", BC_TOPIC_STATE), BC_ERR_INVAL);
    assert_int_equal(bc_topic_device(t, sizeof(t), "cam-1", BC_TOPIC_CMD), BC_ERR_INVAL);
    assert_int_equal(bc_topic_command(t, sizeof(t), "cam-1", "a/b"), BC_ERR_INVAL);
    assert_int_equal(bc_topic_firmware_chunk(t, sizeof(t), "1.x", 0), BC_ERR_INVAL);
    assert_int_equal(bc_topic_fixed(t, sizeof(t), BC_TOPIC_STATE), BC_ERR_INVAL);
    char small[10];
    assert_int_equal(bc_topic_device(small, sizeof(small), "cam-1", BC_TOPIC_STATE),
                     BC_ERR_TOO_BIG);
}

static void test_parse_round_trip(void **state)
{
    (void)state;
    char t[BC_TOPIC_MAX];
    bc_topic parsed;
    bc_error err;
    for (int k = BC_TOPIC_CONN; k <= BC_TOPIC_CSR; k++) {
        assert_int_equal(bc_topic_device(t, sizeof(t), "cam-9", (bc_topic_kind)k), BC_OK);
        assert_int_equal(bc_topic_parse(t, &parsed, &err), BC_OK);
        assert_int_equal(parsed.kind, k);
        assert_string_equal(parsed.device, "cam-9");
    }
    assert_int_equal(bc_topic_parse("bodycam/v1/devices/cam-9/cmd/upload", &parsed, &err), BC_OK);
    assert_int_equal(parsed.kind, BC_TOPIC_CMD);
    assert_string_equal(parsed.command, "upload");
    assert_int_equal(bc_topic_parse("bodycam/v1/firmware/2.0.1/chunk/42", &parsed, &err), BC_OK);
    assert_int_equal(parsed.kind, BC_TOPIC_FIRMWARE_CHUNK);
    assert_string_equal(parsed.version, "2.0.1");
    assert_int_equal(parsed.chunk, 42);
    assert_int_equal(bc_topic_parse("bodycam/v1/fleet/alerts", &parsed, &err), BC_OK);
    assert_int_equal(parsed.kind, BC_TOPIC_FLEET_ALERTS);
    assert_int_equal(bc_topic_parse("bodycam/v1/broker/metrics", &parsed, &err), BC_OK);
    assert_int_equal(parsed.kind, BC_TOPIC_BROKER_METRICS);
}

static void test_parse_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "bodycam/v1/",
        "bodycam/v1/devices/+/state",
        "bodycam/v1/devices/#",
        "bodycam/v1/#",
        "$SYS/broker/clients",
        "$share/g/bodycam/v1/devices/cam-1/state",
        "bodycam/v2/devices/cam-1/state",
        "other/v1/devices/cam-1/state",
        "/bodycam/v1/devices/cam-1/state",
        "bodycam/v1/devices//state",
        "bodycam/v1/devices/cam-1/",
        "bodycam/v1/devices/cam-1/state/extra",
        "bodycam/v1/devices/cam-1/unknown",
        "bodycam/v1/devices/CAM-1/state",
        "bodycam/v1/devices/cam-1",
        "bodycam/v1/devices/cam-1/cmd",
        "bodycam/v1/devices/cam-1/cmd/upload/x",
        "bodycam/v1/firmware/1.0/chunk/x",
        "bodycam/v1/firmware/1.0/chunk/99999999999",
        "bodycam/v1/firmware/../chunk/1",
        "bodycam/v1/fleet/summary/x",
        "bodycam/v1/fleet",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bc_topic parsed;
        bc_error err = {{0}};
        bc_status rc = bc_topic_parse(bad[i], &parsed, &err);
        if (rc == BC_OK)
            fail_msg("accepted hostile topic '%s'", bad[i]);
        assert_true(err.text[0] != '\0');
    }
    char longtopic[400];
    memset(longtopic, 'a', sizeof(longtopic) - 1);
    longtopic[sizeof(longtopic) - 1] = '\0';
    bc_topic parsed;
    assert_int_equal(bc_topic_parse(longtopic, &parsed, NULL), BC_ERR_TOO_BIG);
    assert_int_equal(bc_topic_parse(NULL, &parsed, NULL), BC_ERR_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_id_alphabet),
        cmocka_unit_test(test_build_device_topics),
        cmocka_unit_test(test_parse_round_trip),
        cmocka_unit_test(test_parse_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
