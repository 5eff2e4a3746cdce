/* Unit tests for device-agent/state_machine: the design's policy - two
 * warnings before a recording, refused presses counted, the emergency
 * press, expiring warnings, docking only from standby - with the events
 * each transition yields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "device-agent/state_machine.h"

#define TIMEOUT 30000

static void assert_event(const bc_sm_result *res, size_t i, bc_sm_event_type type, int warnings,
                         bool emergency)
{
    assert_true(i < res->event_count);
    assert_int_equal(res->events[i].type, type);
    assert_int_equal(res->events[i].warnings, warnings);
    assert_int_equal(res->events[i].emergency, emergency);
}

static void test_two_warnings_then_record(void **state)
{
    (void)state;
    bc_sm sm;
    bc_sm_result res;
    bc_sm_init(&sm, TIMEOUT, 1000);
    assert_int_equal(sm.state, BC_SM_STANDBY);
    assert_int_equal(bc_sm_next_deadline(&sm), BC_SM_NO_DEADLINE);

    assert_int_equal(bc_sm_apply(&sm, BC_SM_WARN, 2000, &res), BC_OK);
    assert_true(res.accepted && res.state_changed);
    assert_null(res.reason);
    assert_int_equal(res.event_count, 1);
    assert_event(&res, 0, BC_SM_EV_WARNING_GIVEN, 1, false);
    assert_int_equal(sm.state, BC_SM_WARNING);
    assert_int_equal(sm.warnings, 1);
    assert_int_equal(sm.since_ms, 2000);
    assert_int_equal(bc_sm_next_deadline(&sm), 2000 + TIMEOUT);

    assert_int_equal(bc_sm_apply(&sm, BC_SM_WARN, 3000, &res), BC_OK);
    assert_int_equal(res.event_count, 1);
    assert_event(&res, 0, BC_SM_EV_WARNING_GIVEN, 2, false);
    assert_int_equal(sm.warnings, 2);
    assert_int_equal(bc_sm_next_deadline(&sm), 3000 + TIMEOUT); /* re-armed */

    assert_int_equal(bc_sm_apply(&sm, BC_SM_RECORD, 4000, &res), BC_OK);
    assert_int_equal(res.event_count, 1);
    assert_event(&res, 0, BC_SM_EV_RECORDING_STARTED, 2, false);
    assert_int_equal(sm.state, BC_SM_RECORDING);
    assert_int_equal(sm.warnings, 2);
    assert_false(sm.emergency);
    assert_int_equal(bc_sm_next_deadline(&sm), BC_SM_NO_DEADLINE);

    /* recording never times out */
    assert_int_equal(bc_sm_tick(&sm, 4000 + 10 * TIMEOUT, &res), BC_OK);
    assert_int_equal(res.event_count, 0);
    assert_int_equal(sm.state, BC_SM_RECORDING);

    assert_int_equal(bc_sm_apply(&sm, BC_SM_STOP, 64000, &res), BC_OK);
    assert_true(res.state_changed);
    assert_int_equal(res.event_count, 1);
    assert_event(&res, 0, BC_SM_EV_RECORDING_STOPPED, 2, false);
    assert_int_equal(res.events[0].duration_ms, 60000);
    assert_int_equal(sm.state, BC_SM_STANDBY);
    assert_int_equal(sm.warnings, 0);
    assert_int_equal(sm.since_ms, 64000);
}

static void test_record_refused_before_two_warnings(void **state)
{
    (void)state;
    bc_sm sm;
    bc_sm_result res;
    bc_sm_init(&sm, TIMEOUT, 0);

    assert_int_equal(bc_sm_apply(&sm, BC_SM_RECORD, 10, &res), BC_ERR_STATE);
    assert_false(res.accepted);
    assert_false(res.state_changed);
    assert_string_equal(res.reason, "two warnings are needed before recording");
    assert_int_equal(res.event_count, 1);
    assert_event(&res, 0, BC_SM_EV_RECORD_REFUSED, 0, false);
    assert_int_equal(sm.state, BC_SM_STANDBY);
    assert_int_equal(sm.since_ms, 0);

    bc_sm_apply(&sm, BC_SM_WARN, 100, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_RECORD, 200, &res), BC_ERR_STATE);
    assert_int_equal(res.event_count, 1);
    assert_event(&res, 0, BC_SM_EV_RECORD_REFUSED, 1, false);
    assert_int_equal(sm.state, BC_SM_WARNING);
    assert_int_equal(sm.warnings, 1);
    assert_int_equal(bc_sm_next_deadline(&sm), 100 + TIMEOUT); /* a refusal does not re-arm */
}

static void test_third_warning_refused_but_rearms(void **state)
{
    (void)state;
    bc_sm sm;
    bc_sm_result res;
    bc_sm_init(&sm, TIMEOUT, 0);
    bc_sm_apply(&sm, BC_SM_WARN, 0, &res);
    bc_sm_apply(&sm, BC_SM_WARN, 1000, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_WARN, 20000, &res), BC_ERR_STATE);
    assert_string_equal(res.reason, "already two warnings");
    assert_int_equal(res.event_count, 0);
    assert_false(res.state_changed);
    assert_int_equal(sm.warnings, 2);
    assert_int_equal(sm.since_ms, 1000);
    assert_int_equal(bc_sm_next_deadline(&sm), 20000 + TIMEOUT);
    /* without the re-arm this would have expired at 31000 */
    assert_int_equal(bc_sm_tick(&sm, 31000, &res), BC_OK);
    assert_int_equal(res.event_count, 0);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_RECORD, 49999, &res), BC_OK);
    assert_event(&res, 0, BC_SM_EV_RECORDING_STARTED, 2, false);
}

static void test_emergency(void **state)
{
    (void)state;
    bc_sm sm;
    bc_sm_result res;
    bc_sm_init(&sm, TIMEOUT, 0);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_EMERGENCY, 5, &res), BC_OK);
    assert_event(&res, 0, BC_SM_EV_RECORDING_STARTED, 0, true);
    assert_int_equal(sm.state, BC_SM_RECORDING);
    assert_true(sm.emergency);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_EMERGENCY, 6, &res), BC_ERR_STATE);
    assert_string_equal(res.reason, "already recording");
    assert_int_equal(bc_sm_apply(&sm, BC_SM_RECORD, 7, &res), BC_ERR_STATE);
    assert_int_equal(res.event_count, 0); /* not a policy refusal: nothing to count */
    assert_int_equal(bc_sm_apply(&sm, BC_SM_WARN, 8, &res), BC_ERR_STATE);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_STOP, 1005, &res), BC_OK);
    assert_event(&res, 0, BC_SM_EV_RECORDING_STOPPED, 0, true);
    assert_int_equal(res.events[0].duration_ms, 1000);
    assert_false(sm.emergency);

    /* from warning(1): keeps the count so far */
    bc_sm_apply(&sm, BC_SM_WARN, 2000, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_EMERGENCY, 2001, &res), BC_OK);
    assert_event(&res, 0, BC_SM_EV_RECORDING_STARTED, 1, true);
    assert_int_equal(sm.warnings, 1);
    assert_int_equal(bc_sm_next_deadline(&sm), BC_SM_NO_DEADLINE);
    assert_int_equal(bc_sm_tick(&sm, 2001 + TIMEOUT, &res), BC_OK);
    assert_int_equal(res.event_count, 0);
    assert_int_equal(sm.state, BC_SM_RECORDING);

    /* from warning(2) too */
    bc_sm_apply(&sm, BC_SM_STOP, 3000, &res);
    bc_sm_apply(&sm, BC_SM_WARN, 3001, &res);
    bc_sm_apply(&sm, BC_SM_WARN, 3002, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_EMERGENCY, 3003, &res), BC_OK);
    assert_event(&res, 0, BC_SM_EV_RECORDING_STARTED, 2, true);
}

static void test_warnings_expire(void **state)
{
    (void)state;
    bc_sm sm;
    bc_sm_result res;
    bc_sm_init(&sm, TIMEOUT, 0);
    bc_sm_apply(&sm, BC_SM_WARN, 1000, &res);
    assert_int_equal(bc_sm_tick(&sm, 1000 + TIMEOUT - 1, &res), BC_OK);
    assert_int_equal(res.event_count, 0);
    assert_false(res.state_changed);
    assert_int_equal(sm.state, BC_SM_WARNING);
    assert_int_equal(bc_sm_tick(&sm, 1000 + TIMEOUT, &res), BC_OK);
    assert_true(res.state_changed);
    assert_int_equal(res.event_count, 1);
    assert_event(&res, 0, BC_SM_EV_WARNING_EXPIRED, 1, false);
    assert_int_equal(sm.state, BC_SM_STANDBY);
    assert_int_equal(sm.since_ms, 1000 + TIMEOUT);
    assert_int_equal(bc_sm_next_deadline(&sm), BC_SM_NO_DEADLINE);

    /* each warning re-arms: 2nd warning at 40000 moves the deadline on */
    bc_sm_apply(&sm, BC_SM_WARN, 100000, &res);
    bc_sm_apply(&sm, BC_SM_WARN, 120000, &res);
    bc_sm_tick(&sm, 100000 + TIMEOUT, &res);
    assert_int_equal(res.event_count, 0);
    assert_int_equal(sm.state, BC_SM_WARNING);
    bc_sm_tick(&sm, 120000 + TIMEOUT, &res);
    assert_event(&res, 0, BC_SM_EV_WARNING_EXPIRED, 2, false);
    assert_int_equal(sm.state, BC_SM_STANDBY);

    /* a late input sees the expiry first, in order */
    bc_sm_apply(&sm, BC_SM_WARN, 200000, &res);
    bc_sm_apply(&sm, BC_SM_WARN, 200001, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_RECORD, 200001 + TIMEOUT + 5, &res), BC_ERR_STATE);
    assert_int_equal(res.event_count, 2);
    assert_event(&res, 0, BC_SM_EV_WARNING_EXPIRED, 2, false);
    assert_event(&res, 1, BC_SM_EV_RECORD_REFUSED, 0, false);
    assert_true(res.state_changed);
    assert_int_equal(sm.state, BC_SM_STANDBY);

    /* and a late warn starts over at one */
    bc_sm_apply(&sm, BC_SM_WARN, 300000, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_WARN, 300000 + TIMEOUT, &res), BC_OK);
    assert_int_equal(res.event_count, 2);
    assert_event(&res, 0, BC_SM_EV_WARNING_EXPIRED, 1, false);
    assert_event(&res, 1, BC_SM_EV_WARNING_GIVEN, 1, false);

    /* a changed timeout applies to the next warning */
    bc_sm_set_warning_timeout(&sm, 5000);
    assert_int_equal(bc_sm_next_deadline(&sm), 300000 + 2 * TIMEOUT);
    bc_sm_apply(&sm, BC_SM_WARN, 300000 + TIMEOUT + 1, &res);
    assert_int_equal(bc_sm_next_deadline(&sm), 300000 + TIMEOUT + 1 + 5000);
}

static void test_dock(void **state)
{
    (void)state;
    bc_sm sm;
    bc_sm_result res;
    bc_sm_init(&sm, TIMEOUT, 0);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_UNDOCK, 1, &res), BC_ERR_STATE);
    assert_string_equal(res.reason, "not docked");

    bc_sm_apply(&sm, BC_SM_WARN, 2, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_DOCK, 3, &res), BC_ERR_STATE);
    assert_string_equal(res.reason, "a camera in the middle of an incident cannot be docked");
    assert_int_equal(res.event_count, 0);
    assert_int_equal(sm.state, BC_SM_WARNING);
    bc_sm_apply(&sm, BC_SM_EMERGENCY, 4, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_DOCK, 5, &res), BC_ERR_STATE);
    assert_int_equal(sm.state, BC_SM_RECORDING);
    bc_sm_apply(&sm, BC_SM_STOP, 6, &res);

    assert_int_equal(bc_sm_apply(&sm, BC_SM_DOCK, 7, &res), BC_OK);
    assert_int_equal(res.event_count, 1);
    assert_event(&res, 0, BC_SM_EV_DOCKED, 0, false);
    assert_int_equal(sm.state, BC_SM_DOCKED);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_DOCK, 8, &res), BC_ERR_STATE);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_WARN, 9, &res), BC_ERR_STATE);
    assert_string_equal(res.reason, "the camera is docked");
    assert_int_equal(bc_sm_apply(&sm, BC_SM_RECORD, 9, &res), BC_ERR_STATE);
    assert_int_equal(res.event_count, 0);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_EMERGENCY, 9, &res), BC_ERR_STATE);
    assert_int_equal(sm.state, BC_SM_DOCKED);

    assert_int_equal(bc_sm_apply(&sm, BC_SM_UNDOCK, 10, &res), BC_OK);
    assert_event(&res, 0, BC_SM_EV_UNDOCKED, 0, false);
    assert_int_equal(sm.state, BC_SM_STANDBY);
    assert_int_equal(sm.since_ms, 10);
}

static void test_update(void **state)
{
    (void)state;
    bc_sm sm;
    bc_sm_result res;
    bc_sm_init(&sm, TIMEOUT, 0);
    bc_sm_apply(&sm, BC_SM_DOCK, 1, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_UPDATE_BEGIN, 2, &res), BC_OK);
    assert_true(res.state_changed);
    assert_int_equal(res.event_count, 0);
    assert_int_equal(sm.state, BC_SM_UPDATING);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_UPDATE_BEGIN, 3, &res), BC_ERR_STATE);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_EMERGENCY, 3, &res), BC_ERR_STATE);
    assert_string_equal(res.reason, "a firmware update is in progress");
    assert_int_equal(bc_sm_apply(&sm, BC_SM_UPDATE_END, 4, &res), BC_OK);
    assert_int_equal(sm.state, BC_SM_DOCKED); /* back where it came from */

    /* taken out of the dock during the update: returns to standby */
    bc_sm_apply(&sm, BC_SM_UPDATE_BEGIN, 5, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_UNDOCK, 6, &res), BC_OK);
    assert_event(&res, 0, BC_SM_EV_UNDOCKED, 0, false);
    assert_false(res.state_changed);
    assert_int_equal(sm.state, BC_SM_UPDATING);
    bc_sm_apply(&sm, BC_SM_UPDATE_END, 7, &res);
    assert_int_equal(sm.state, BC_SM_STANDBY);

    assert_int_equal(bc_sm_apply(&sm, BC_SM_UPDATE_END, 8, &res), BC_ERR_STATE);
    bc_sm_apply(&sm, BC_SM_WARN, 9, &res);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_UPDATE_BEGIN, 10, &res), BC_ERR_STATE);
    assert_int_equal(sm.state, BC_SM_WARNING);
    assert_int_equal(bc_sm_apply(&sm, BC_SM_INPUT_COUNT, 11, &res), BC_ERR_INVAL);
    assert_int_equal(bc_sm_apply(&sm, (bc_sm_input)-1, 11, &res), BC_ERR_INVAL);
    assert_int_equal(sm.state, BC_SM_WARNING);
}

static void test_restore(void **state)
{
    (void)state;
    bc_sm sm;
    bc_sm_result res;
    bc_error err;
    bc_sm_init(&sm, TIMEOUT, 0);
    assert_int_equal(bc_sm_restore(&sm, BC_SM_WARNING, 0, false, 100, &err), BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "warning"));
    assert_int_equal(bc_sm_restore(&sm, BC_SM_WARNING, 3, false, 100, &err), BC_ERR_INVAL);
    assert_int_equal(bc_sm_restore(&sm, BC_SM_STANDBY, 1, false, 100, &err), BC_ERR_INVAL);
    assert_int_equal(bc_sm_restore(&sm, BC_SM_STATE_COUNT, 0, false, 100, &err), BC_ERR_INVAL);
    assert_int_equal(sm.state, BC_SM_STANDBY);
    assert_int_equal(sm.since_ms, 0);

    assert_int_equal(bc_sm_restore(&sm, BC_SM_WARNING, 2, false, 100, &err), BC_OK);
    assert_int_equal(bc_sm_next_deadline(&sm), 100 + TIMEOUT);
    bc_sm_tick(&sm, 100 + TIMEOUT, &res);
    assert_event(&res, 0, BC_SM_EV_WARNING_EXPIRED, 2, false);

    assert_int_equal(bc_sm_restore(&sm, BC_SM_RECORDING, 1, true, 500, &err), BC_OK);
    bc_sm_apply(&sm, BC_SM_STOP, 1500, &res);
    assert_event(&res, 0, BC_SM_EV_RECORDING_STOPPED, 1, true);
    assert_int_equal(res.events[0].duration_ms, 1000);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(bc_sm_state_name(BC_SM_STANDBY), "standby");
    assert_string_equal(bc_sm_state_name(BC_SM_WARNING), "warning");
    assert_string_equal(bc_sm_state_name(BC_SM_RECORDING), "recording");
    assert_string_equal(bc_sm_state_name(BC_SM_DOCKED), "docked");
    assert_string_equal(bc_sm_state_name(BC_SM_UPDATING), "updating");
    assert_string_equal(bc_sm_state_name(BC_SM_STATE_COUNT), "unknown");
    assert_string_equal(bc_sm_event_name(BC_SM_EV_WARNING_EXPIRED), "warning_expired");
    assert_string_equal(bc_sm_event_name(BC_SM_EV_RECORD_REFUSED), "record_refused");
    assert_string_equal(bc_sm_event_name(BC_SM_EV_RECORDING_STOPPED), "recording_stopped");
    assert_string_equal(bc_sm_event_name(BC_SM_EV_TYPE_COUNT), "unknown");
    assert_string_equal(bc_sm_input_name(BC_SM_EMERGENCY), "emergency");
    for (int s = 0; s < BC_SM_STATE_COUNT; s++) {
        bc_sm_state parsed;
        assert_int_equal(bc_sm_state_parse(bc_sm_state_name((bc_sm_state)s), &parsed), BC_OK);
        assert_int_equal(parsed, s);
    }
    bc_sm_state parsed;
    assert_int_equal(bc_sm_state_parse("Standby", &parsed), BC_ERR_PARSE);
    assert_int_equal(bc_sm_state_parse(NULL, &parsed), BC_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_warnings_then_record),
        cmocka_unit_test(test_record_refused_before_two_warnings),
        cmocka_unit_test(test_third_warning_refused_but_rearms),
        cmocka_unit_test(test_emergency),
        cmocka_unit_test(test_warnings_expire),
        cmocka_unit_test(test_dock),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_restore),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
