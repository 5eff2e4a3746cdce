/* Unit tests for device-agent/health: the simulated battery (drains on
 * standby, faster while recording, charges docked, clamped), a report that
 * proto accepts, and the bounded error list kept until it was published. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "device-agent/health.h"

#define HOUR_MS (3600LL * 1000)

static const bc_health_config base_cfg = {
    .drain_standby_pct_h = 4,
    .drain_recording_pct_h = 20,
    .charge_pct_h = 50,
    .start_battery_pct = 80,
    .temperature_base_c = 30,
    .signal_base_dbm = -65,
    .seed = 42,
};

static bc_health *make(const bc_health_config *cfg)
{
    bc_health *h = NULL;
    bc_error err;
    assert_int_equal(bc_health_new(cfg, 0, &h, &err), BC_OK);
    return h;
}

static bc_health_inputs inputs(void)
{
    bc_health_inputs in = {
        .device = "cam-001",
        .now_ms = 1764330600000LL,
        .uptime_s = 12,
        .fw = "1.2.3",
        .recording_key_id = "0123456789abcdef",
        .storage_free = 1000,
        .storage_total = 4000,
        .pending_uploads = 2,
    };
    return in;
}

static void test_battery_modes(void **state)
{
    bc_health *h = make(&base_cfg);
    bc_health_set_mode(h, BC_HEALTH_STANDBY, HOUR_MS); /* one hour of standby */
    assert_true(bc_health_battery(h) > 75.9 && bc_health_battery(h) < 76.1);
    bc_health_set_mode(h, BC_HEALTH_RECORDING, HOUR_MS);
    bc_health_set_mode(h, BC_HEALTH_DOCKED, HOUR_MS + HOUR_MS / 2); /* 30 min recording */
    assert_true(bc_health_battery(h) > 65.9 && bc_health_battery(h) < 66.1);
    bc_health_set_mode(h, BC_HEALTH_DOCKED, 3 * HOUR_MS); /* charging 1.5 h: full */
    assert_true(bc_health_battery(h) == 100.0);
    bc_health_set_mode(h, BC_HEALTH_RECORDING, 3 * HOUR_MS);
    bc_health_set_mode(h, BC_HEALTH_RECORDING, 10 * HOUR_MS); /* empty, not negative */
    assert_true(bc_health_battery(h) == 0.0);
    bc_health_set_mode(h, BC_HEALTH_DOCKED, 5 * HOUR_MS); /* time going back: ignored */
    assert_true(bc_health_battery(h) == 0.0);
    bc_health_free(h);
}

static void test_report_is_valid(void **state)
{
    bc_health *h = make(&base_cfg);
    bc_health_inputs in = inputs();
    bc_message msg;
    bc_error err;
    bc_health_set_mode(h, BC_HEALTH_DOCKED, 0);
    assert_int_equal(bc_health_report(h, &in, HOUR_MS / 10, &msg, &err), BC_OK);
    assert_int_equal(msg.kind, BC_TOPIC_HEALTH);
    assert_int_equal(bc_message_validate(&msg, &err), BC_OK);
    assert_string_equal(msg.health.device, "cam-001");
    assert_int_equal(msg.health.battery_pct, 85); /* 80 + 50 %/h * 0.1 h */
    assert_true(msg.health.charging);
    assert_int_equal(msg.health.storage_free, 1000);
    assert_int_equal(msg.health.pending_uploads, 2);
    assert_int_equal(msg.health.error_count, 0);
    assert_true(msg.health.temperature_c >= 30 && msg.health.temperature_c <= 35);
    assert_true(msg.health.signal_dbm >= -71 && msg.health.signal_dbm <= -59);

    in.storage_free = 9000; /* more free than total: clamped */
    in.device = NULL;
    assert_int_equal(bc_health_report(h, &in, HOUR_MS, &msg, &err), BC_ERR_INVAL);
    in.device = "cam-001";
    assert_int_equal(bc_health_report(h, &in, HOUR_MS, &msg, &err), BC_OK);
    assert_int_equal(msg.health.storage_free, msg.health.storage_total);
    assert_int_equal(bc_message_validate(&msg, &err), BC_OK);
    bc_health_free(h);
}

static void test_errors_bounded_until_reported(void **state)
{
    bc_health *h = make(&base_cfg);
    bc_health_inputs in = inputs();
    bc_message msg;
    bc_error err;
    char text[64];
    bc_health_note_error(h, "disk\nfull"); /* control characters replaced */
    bc_health_note_error(h, "disk\nfull"); /* a repeat is kept once */
    bc_health_note_error(h, "");
    assert_int_equal(bc_health_error_count(h), 1);
    assert_int_equal(bc_health_report(h, &in, 0, &msg, &err), BC_OK);
    assert_string_equal(msg.health.errors[0], "disk?full");
    assert_int_equal(bc_message_validate(&msg, &err), BC_OK);
    bc_health_note_error(h, "later"); /* after the report: not in it */
    bc_health_errors_reported(h);
    assert_int_equal(bc_health_error_count(h), 1);

    for (int i = 0; i < BC_HEALTH_ERRORS_MAX + 5; i++) {
        snprintf(text, sizeof(text), "error %d", i);
        bc_health_note_error(h, text);
    }
    assert_int_equal(bc_health_error_count(h), BC_HEALTH_ERRORS_MAX);
    assert_int_equal(bc_health_report(h, &in, 0, &msg, &err), BC_OK);
    assert_int_equal(msg.health.error_count, BC_HEALTH_ERRORS_MAX);
    snprintf(text, sizeof(text), "error %d", BC_HEALTH_ERRORS_MAX + 4);
    assert_string_equal(msg.health.errors[BC_HEALTH_ERRORS_MAX - 1], text); /* newest kept */
    assert_int_equal(bc_message_validate(&msg, &err), BC_OK);
    bc_health_errors_reported(h);
    assert_int_equal(bc_health_error_count(h), 0);
    bc_health_free(h);
}

static void test_bad_config(void **state)
{
    bc_health_config cfg = base_cfg;
    bc_health *h = NULL;
    bc_error err;
    cfg.start_battery_pct = 101;
    assert_int_equal(bc_health_new(&cfg, 0, &h, &err), BC_ERR_INVAL);
    cfg = base_cfg;
    cfg.signal_base_dbm = 5;
    assert_int_equal(bc_health_new(&cfg, 0, &h, &err), BC_ERR_INVAL);
    assert_null(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_battery_modes),
        cmocka_unit_test(test_report_is_valid),
        cmocka_unit_test(test_errors_bounded_until_reported),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
