/* Unit tests for acl.c: the rules of every role, table-driven, plus the
 * filter containment and $share stripping they rest on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "broker-plugins/bodycam-auth/acl.h"

#define P "bodycam/v1/"

typedef struct acl_case {
    bc_role role;
    const char *name;
    bc_acl_access access;
    const char *topic;
    bool retain;
    bc_acl_result want;
} acl_case;

static const acl_case cases[] = {
    /* camera: writes its own message topics, nothing else */
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/conn", true, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/state", true, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/health", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/event", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/ack", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/upload", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/csr", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/event", true, BC_ACL_DENY_RETAIN},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/upload", true, BC_ACL_DENY_RETAIN},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-2/state", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/cmd/config", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "devices/cam-1/state/x", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "fleet/summary", true, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "firmware/1.0/chunk/0", true,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, P "broker/metrics", true, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, "other/topic", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, "$SYS/broker/x", false, BC_ACL_DENY_SYSTEM},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_WRITE, "$CONTROL/dynamic-security/v1", false,
     BC_ACL_DENY_SYSTEM},
    /* camera: reads and subscribes its own commands and the firmware tree */
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "devices/cam-1/cmd/#", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "devices/cam-1/cmd/+", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "devices/cam-1/cmd/upload", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "firmware/#", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "firmware/+/chunk/+", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "$share/g/" P "devices/cam-1/cmd/#", false,
     BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "devices/cam-2/cmd/#", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "devices/+/cmd/#", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "devices/+/state", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "devices/cam-1/#", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, P "#", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "#", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "+/v1/firmware/#", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "$share/g/" P "#", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "$share/g/$SYS/#", false, BC_ACL_DENY_SYSTEM},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "$SYS/#", false, BC_ACL_DENY_SYSTEM},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "$share/+/" P "firmware/#", false,
     BC_ACL_DENY_BAD_SHARE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "$share//" P "firmware/#", false,
     BC_ACL_DENY_BAD_SHARE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_SUBSCRIBE, "$share/g", false, BC_ACL_DENY_BAD_SHARE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_READ, P "devices/cam-1/cmd/config", false, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_READ, P "firmware/2.0/chunk/3", true, BC_ACL_ALLOW},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_READ, P "devices/cam-2/cmd/config", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_READ, P "devices/cam-2/state", true, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_READ, P "fleet/summary", true, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_READ, "$SYS/broker/uptime", false, BC_ACL_DENY_SYSTEM},
    {BC_ROLE_CAMERA, "cam-1", BC_ACL_UNSUBSCRIBE, P "#", false, BC_ACL_ALLOW},
    /* service: everything under the prefix, except the broker's metrics */
    {BC_ROLE_SERVICE, "gateway", BC_ACL_WRITE, P "devices/cam-1/cmd/config", false, BC_ACL_ALLOW},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_WRITE, P "fleet/summary", true, BC_ACL_ALLOW},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_WRITE, P "firmware/1.0/chunk/0", true, BC_ACL_ALLOW},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_WRITE, P "broker/metrics", true, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_WRITE, "bodycam/v2/x", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_WRITE, "$SYS/x", false, BC_ACL_DENY_SYSTEM},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_SUBSCRIBE, P "#", false, BC_ACL_ALLOW},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_SUBSCRIBE, P "devices/+/+", false, BC_ACL_ALLOW},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_SUBSCRIBE, "$share/gw/" P "devices/+/+", false,
     BC_ACL_ALLOW},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_SUBSCRIBE, "#", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_SUBSCRIBE, "bodycam/#", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_SUBSCRIBE, "$SYS/#", false, BC_ACL_DENY_SYSTEM},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_READ, P "broker/metrics", true, BC_ACL_ALLOW},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_READ, "other", false, BC_ACL_DENY_OUTSIDE_ROLE},
    /* dashboard: reads fleet/# and devices/+/conn|state|health; writes nothing */
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "fleet/#", false, BC_ACL_ALLOW},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "fleet/summary", false, BC_ACL_ALLOW},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "devices/+/state", false, BC_ACL_ALLOW},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "devices/cam-1/health", false, BC_ACL_ALLOW},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "devices/+/+", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "devices/+/event", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "devices/#", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "#", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_SUBSCRIBE, P "broker/metrics", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_READ, P "devices/cam-1/conn", true, BC_ACL_ALLOW},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_READ, P "fleet/alerts", false, BC_ACL_ALLOW},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_READ, P "devices/cam-1/upload", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_READ, P "devices/cam-1/cmd/config", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_WRITE, P "fleet/summary", false, BC_ACL_DENY_OUTSIDE_ROLE},
    {BC_ROLE_DASHBOARD, "alice", BC_ACL_WRITE, P "devices/cam-1/state", false,
     BC_ACL_DENY_OUTSIDE_ROLE},
    /* nobody, and malformed input */
    {BC_ROLE_NONE, "cam-1", BC_ACL_READ, P "devices/cam-1/cmd/x", false, BC_ACL_DENY_NO_ROLE},
    {BC_ROLE_CAMERA, NULL, BC_ACL_READ, P "firmware/1/chunk/0", false, BC_ACL_DENY_NO_ROLE},
    {BC_ROLE_CAMERA, "", BC_ACL_READ, P "firmware/1/chunk/0", false, BC_ACL_DENY_NO_ROLE},
    {BC_ROLE_CAMERA, "cam+1", BC_ACL_READ, P "devices/cam+1/cmd/x", false, BC_ACL_DENY_NO_ROLE},
    {BC_ROLE_CAMERA, "cam/1", BC_ACL_SUBSCRIBE, P "devices/cam/1/cmd/#", false,
     BC_ACL_DENY_NO_ROLE},
    {BC_ROLE_CAMERA, "#", BC_ACL_SUBSCRIBE, P "devices/#", false, BC_ACL_DENY_NO_ROLE},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_WRITE, "", false, BC_ACL_DENY_BAD_TOPIC},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_SUBSCRIBE, "", false, BC_ACL_DENY_BAD_TOPIC},
    {BC_ROLE_SERVICE, "gateway", BC_ACL_READ, NULL, false, BC_ACL_DENY_BAD_TOPIC},
};

static void test_matrix(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const acl_case *c = &cases[i];
        bc_principal who = {c->role, c->name};
        bc_acl_result got = bc_acl_check(&who, c->access, c->topic, c->retain);
        if (got != c->want) {
            print_error("case %zu: %s %s access %d '%s': got %s, want %s\n", i,
                        bc_role_name(c->role), c->name ? c->name : "(null)", c->access,
                        c->topic ? c->topic : "(null)", bc_acl_result_name(got),
                        bc_acl_result_name(c->want));
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_overlong_topic(void **state)
{
    (void)state;
    char topic[400];
    memset(topic, 'a', sizeof(topic) - 1);
    topic[sizeof(topic) - 1] = '\0';
    memcpy(topic, P, strlen(P));
    bc_principal svc = {BC_ROLE_SERVICE, "gateway"};
    assert_int_equal(bc_acl_check(&svc, BC_ACL_WRITE, topic, false), BC_ACL_DENY_BAD_TOPIC);
}

static void test_filter_within(void **state)
{
    (void)state;
    assert_true(bc_acl_filter_within("a/b/c", "a/b/c"));
    assert_true(bc_acl_filter_within("a/b/c", "a/+/c"));
    assert_true(bc_acl_filter_within("a/+/c", "a/+/c"));
    assert_true(bc_acl_filter_within("a/+/c", "a/#"));
    assert_true(bc_acl_filter_within("a/#", "a/#"));
    assert_true(bc_acl_filter_within("a", "a/#"));
    assert_true(bc_acl_filter_within("a/b/c/d", "#"));
    assert_true(bc_acl_filter_within("a//c", "a/+/c"));
    assert_false(bc_acl_filter_within("a/#", "a/+/c"));
    assert_false(bc_acl_filter_within("a/+/c", "a/b/c"));
    assert_false(bc_acl_filter_within("a/b", "a/b/c"));
    assert_false(bc_acl_filter_within("a/b/c/d", "a/b/c"));
    assert_false(bc_acl_filter_within("a/#", "a/b/#"));
    assert_false(bc_acl_filter_within("+/b", "a/#"));
    assert_false(bc_acl_filter_within("a/b+/c", "a/+/c"));
    assert_false(bc_acl_filter_within("a/#x", "a/+/c"));
    assert_false(bc_acl_filter_within("", "#"));
    assert_false(bc_acl_filter_within("a", ""));
    assert_false(bc_acl_filter_within(NULL, "#"));
}

static void test_real_filter(void **state)
{
    (void)state;
    assert_string_equal(bc_acl_real_filter("$share/g/a/b"), "a/b");
    assert_string_equal(bc_acl_real_filter("$share/group-1/#"), "#");
    assert_string_equal(bc_acl_real_filter("a/b"), "a/b");
    assert_string_equal(bc_acl_real_filter("$share/g/$share/h/a"), "$share/h/a");
    assert_null(bc_acl_real_filter("$share/g"));
    assert_null(bc_acl_real_filter("$share/g/"));
    assert_null(bc_acl_real_filter("$share//a"));
    assert_null(bc_acl_real_filter("$share/#/a"));
    assert_null(bc_acl_real_filter("$share/a+/b"));
    assert_null(bc_acl_real_filter(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_overlong_topic),
        cmocka_unit_test(test_filter_within),
        cmocka_unit_test(test_real_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
