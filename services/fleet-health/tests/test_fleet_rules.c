/* Unit tests for fleet-health's alert rules (alerts.c): the hysteresis of
 * each level alert, "in shift", and the alert names and ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fleet-health/fleet.h"

static fh_config defaults(void)
{
    fh_config c;
    memset(&c, 0, sizeof(c));
    c.battery_low_raise_pct = 15;
    c.battery_low_clear_pct = 20;
    c.storage_low_raise_pct = 10;
    c.storage_low_clear_pct = 15;
    c.overheat_raise_c = 60;
    c.overheat_clear_c = 55;
    c.upload_overdue_s = 3600;
    c.health_interval_s = 60;
    return c;
}

static fh_camera camera(void)
{
    fh_camera cam;
    memset(&cam, 0, sizeof(cam));
    snprintf(cam.device, sizeof(cam.device), "cam-001");
    snprintf(cam.assignment, sizeof(cam.assignment), "none");
    snprintf(cam.state, sizeof(cam.state), "standby");
    cam.has_state = true;
    cam.has_health = true;
    cam.online = true;
    cam.battery_pct = 80;
    cam.storage_free = 50;
    cam.storage_total = 100;
    cam.temperature_c = 30;
    return cam;
}

static fh_want rule(fh_level_alert a, const fh_camera *cam, int64_t now, int64_t *value)
{
    fh_config cfg = defaults();
    bool has_value = false;
    int64_t v = 0;
    char detail[BC_TEXT_MAX + 1];
    fh_want w = fh_alert_rule(a, &cfg, cam, now, &has_value, &v, detail);
    if (value != NULL)
        *value = has_value ? v : -1;
    return w;
}

/* Drives the battery through a hovering sequence with the open/closed
 * state a caller would keep, and counts the transitions. */
static void test_battery_hysteresis(void **state)
{
    (void)state;
    const int64_t levels[] = {30, 16, 15, 14, 15, 16, 14, 19, 20, 14, 20, 21, 19, 16, 15, 14, 13};
    fh_camera cam = camera();
    bool open = false;
    int raises = 0, clears = 0;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        cam.battery_pct = levels[i];
        int64_t value = 0;
        fh_want w = rule(FH_ALERT_LOW_BATTERY, &cam, 0, &value);
        assert_int_equal(value, levels[i]);
        if (w == FH_WANT_RAISED && !open) {
            open = true;
            raises++;
        } else if (w == FH_WANT_CLEARED && open) {
            open = false;
            clears++;
        }
    }
    /* raised at the first 14, cleared at 21, raised again at the last 14 */
    assert_int_equal(raises, 2);
    assert_int_equal(clears, 1);
    assert_true(open);
    cam.battery_pct = 15; /* exactly at the raise threshold: not below it */
    assert_int_equal(rule(FH_ALERT_LOW_BATTERY, &cam, 0, NULL), FH_WANT_NOTHING);
    cam.battery_pct = 20; /* exactly at the clear threshold: not above it */
    assert_int_equal(rule(FH_ALERT_LOW_BATTERY, &cam, 0, NULL), FH_WANT_NOTHING);
    cam.has_health = false; /* never reported: no opinion */
    assert_int_equal(rule(FH_ALERT_LOW_BATTERY, &cam, 0, NULL), FH_WANT_NOTHING);
}

static void test_storage_and_heat(void **state)
{
    (void)state;
    fh_camera cam = camera();
    int64_t v = 0;
    cam.storage_free = 9;
    assert_int_equal(rule(FH_ALERT_STORAGE_LOW, &cam, 0, &v), FH_WANT_RAISED);
    assert_int_equal(v, 9);
    cam.storage_free = 12;
    assert_int_equal(rule(FH_ALERT_STORAGE_LOW, &cam, 0, NULL), FH_WANT_NOTHING);
    cam.storage_free = 16;
    assert_int_equal(rule(FH_ALERT_STORAGE_LOW, &cam, 0, NULL), FH_WANT_CLEARED);
    cam.storage_total = 0; /* no storage reported */
    assert_int_equal(rule(FH_ALERT_STORAGE_LOW, &cam, 0, NULL), FH_WANT_NOTHING);

    cam.temperature_c = 61;
    assert_int_equal(rule(FH_ALERT_OVERHEATING, &cam, 0, &v), FH_WANT_RAISED);
    assert_int_equal(v, 61);
    cam.temperature_c = 58;
    assert_int_equal(rule(FH_ALERT_OVERHEATING, &cam, 0, NULL), FH_WANT_NOTHING);
    cam.temperature_c = 54;
    assert_int_equal(rule(FH_ALERT_OVERHEATING, &cam, 0, NULL), FH_WANT_CLEARED);
}

static void test_offline_in_shift(void **state)
{
    (void)state;
    fh_camera cam = camera();
    assert_int_equal(rule(FH_ALERT_OFFLINE_IN_SHIFT, &cam, 0, NULL), FH_WANT_CLEARED);
    cam.online = false;
    cam.offline_at = 1000;
    int64_t v = 0;
    /* no assignment record: in shift unless docked */
    assert_true(fh_in_shift(&cam));
    assert_int_equal(rule(FH_ALERT_OFFLINE_IN_SHIFT, &cam, 61000, &v), FH_WANT_RAISED);
    assert_int_equal(v, 60);
    snprintf(cam.state, sizeof(cam.state), "docked");
    assert_false(fh_in_shift(&cam));
    assert_int_equal(rule(FH_ALERT_OFFLINE_IN_SHIFT, &cam, 0, NULL), FH_WANT_CLEARED);
    /* an assignment decides over the dock */
    snprintf(cam.assignment, sizeof(cam.assignment), "assigned");
    snprintf(cam.officer, sizeof(cam.officer), "o-17");
    assert_true(fh_in_shift(&cam));
    assert_int_equal(rule(FH_ALERT_OFFLINE_IN_SHIFT, &cam, 0, NULL), FH_WANT_RAISED);
    snprintf(cam.state, sizeof(cam.state), "standby");
    snprintf(cam.assignment, sizeof(cam.assignment), "unassigned");
    assert_false(fh_in_shift(&cam));
    assert_int_equal(rule(FH_ALERT_OFFLINE_IN_SHIFT, &cam, 0, NULL), FH_WANT_CLEARED);
    /* a camera never seen in any state and not assigned: no opinion on shift */
    snprintf(cam.assignment, sizeof(cam.assignment), "none");
    cam.has_state = false;
    assert_false(fh_in_shift(&cam));
}

static void test_upload_overdue(void **state)
{
    (void)state;
    fh_camera cam = camera();
    int64_t v = 0;
    cam.pending_uploads = 3;
    /* not docked: no alert however long it waits */
    assert_int_equal(rule(FH_ALERT_UPLOAD_OVERDUE, &cam, 10000000, NULL), FH_WANT_CLEARED);
    snprintf(cam.state, sizeof(cam.state), "docked");
    cam.pending_since = 1000;
    assert_int_equal(rule(FH_ALERT_UPLOAD_OVERDUE, &cam, 1000 + 3599999, NULL), FH_WANT_NOTHING);
    assert_int_equal(rule(FH_ALERT_UPLOAD_OVERDUE, &cam, 1000 + 3600000, &v), FH_WANT_RAISED);
    assert_int_equal(v, 3);
    cam.pending_uploads = 0;
    assert_int_equal(rule(FH_ALERT_UPLOAD_OVERDUE, &cam, 1000 + 3600000, NULL), FH_WANT_CLEARED);
}

static void test_names_and_ids(void **state)
{
    (void)state;
    char field[128];
    fh_alert_field(field, sizeof(field), "cam-001", BC_ALERT_LOW_BATTERY, NULL);
    assert_string_equal(field, "cam-001:low_battery");
    fh_alert_field(field, sizeof(field), "cam-001", BC_ALERT_RECORDING_WITHOUT_WARNINGS,
                   "cam-001-7");
    assert_string_equal(field, "cam-001:recording_without_warnings:cam-001-7");
    for (int i = 0; i < FH_LEVEL_ALERT_COUNT; i++)
        assert_non_null(bc_alert_kind_name(fh_level_alert_kind((fh_level_alert)i)));

    char a[BC_ID_MAX + 1], b[BC_ID_MAX + 1], c[BC_ID_MAX + 1];
    assert_int_equal(fh_recording_alert_id("cam-001", "cam-001-7", a, NULL), BC_OK);
    assert_int_equal(fh_recording_alert_id("cam-001", "cam-001-7", b, NULL), BC_OK);
    assert_int_equal(fh_recording_alert_id("cam-001", "cam-001-8", c, NULL), BC_OK);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_true(bc_id_valid(a));
    assert_int_equal(strncmp(a, "cam-001-rec-", 12), 0);
    /* the longest device and recording ids still give a valid id */
    char dev[BC_DEVICE_ID_MAX + 1], rec[BC_ID_MAX + 1];
    memset(dev, 'd', BC_DEVICE_ID_MAX);
    dev[BC_DEVICE_ID_MAX] = '\0';
    memset(rec, 'r', BC_ID_MAX);
    rec[BC_ID_MAX] = '\0';
    assert_int_equal(fh_recording_alert_id(dev, rec, a, NULL), BC_OK);
    assert_true(bc_id_valid(a));
}

static void test_open_alert_id(void **state)
{
    (void)state;
    char id[BC_ID_MAX + 1];
    const char *json = "{\"v\":1,\"ts\":5,\"id\":\"cam-001-bat-5\",\"device\":\"cam-001\","
                       "\"kind\":\"low_battery\",\"status\":\"raised\",\"value\":12}";
    fh_open_alert_id(json, strlen(json), id);
    assert_string_equal(id, "cam-001-bat-5");
    fh_open_alert_id("not json", 8, id);
    assert_string_equal(id, "");
    fh_open_alert_id(NULL, 0, id);
    assert_string_equal(id, "");
}

static void test_offline_after(void **state)
{
    (void)state;
    fh_config c = defaults();
    assert_int_equal(fh_offline_after_ms(&c), 180000); /* 3 x 60 s */
    c.offline_after_s = 45;
    assert_int_equal(fh_offline_after_ms(&c), 45000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_battery_hysteresis), cmocka_unit_test(test_storage_and_heat),
        cmocka_unit_test(test_offline_in_shift),   cmocka_unit_test(test_upload_overdue),
        cmocka_unit_test(test_names_and_ids),      cmocka_unit_test(test_open_alert_id),
        cmocka_unit_test(test_offline_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
