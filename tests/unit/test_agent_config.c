/* Unit tests for device-agent/agent_config (and bc_camera_config_check):
 * defaults, a file, --set, the checks naming the option, and one camera
 * configuration per device of a stack.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "device-agent/agent_config.h"
#include "test_util.h"

static char dir[64];

static int setup(void **state)
{
    return bc_test_tempdir(dir, sizeof(dir), "agentcfg") == BC_OK ? 0 : -1;
}

static int teardown(void **state)
{
    bc_test_remove_tree(dir);
    return 0;
}

static const char *required = "device_id = cam-007\n"
                              "data_dir = /tmp/x\n"
                              "ca_file = ca.crt\n"
                              "cert_file = dev.crt\n"
                              "key_file = dev.key\n"
                              "command_pubkey = command.pub\n"
                              "receipt_pubkey = receipt.pub\n"
                              "recording_pubkey = recording.pub\n";

static void test_defaults_file_and_set(void **state)
{
    bc_agent_config cfg;
    bc_error err;
    char path[128];
    assert_int_equal(bc_agent_config_defaults(&cfg, &err), BC_OK);
    assert_int_equal(cfg.camera.mqtt_port, 8883);
    assert_int_equal(cfg.camera.pre_event_s, 30);
    assert_int_equal(cfg.camera.upload_on_dock, 1);
    assert_string_equal(cfg.log_level, "info");
    /* required options are empty: the check names the first one */
    assert_int_equal(bc_agent_config_check(&cfg, &err), BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "device_id"));

    snprintf(path, sizeof(path), "%s/agent.conf", dir);
    bc_test_write_file(path, required);
    assert_int_equal(bc_agent_config_load(&cfg, path, &err), BC_OK);
    assert_int_equal(bc_agent_config_check(&cfg, &err), BC_OK);
    assert_int_equal(bc_agent_config_set(&cfg, "pre_event_s=60", &err), BC_OK);
    assert_int_equal(cfg.camera.pre_event_s, 60);
    assert_int_equal(bc_agent_config_set(&cfg, "pre_event_s=301", &err), BC_ERR_INVAL);
    assert_int_equal(bc_agent_config_set(&cfg, "no_such=1", &err), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_agent_config_set(&cfg, "log_level=loud", &err), BC_OK);
    assert_int_equal(bc_agent_config_check(&cfg, &err), BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "log_level"));
}

static void test_camera_checks(void **state)
{
    bc_agent_config cfg;
    bc_error err;
    char path[128];
    snprintf(path, sizeof(path), "%s/agent.conf", dir);
    bc_test_write_file(path, required);
    const struct {
        const char *set, *named;
    } bad[] = {
        {"video_source=synthetic:0", "video_source"},
        {"video_source=synthetic:100:x", "video_source"},
        {"video_source=", "video_source"},
        {"backoff_min_ms=60000", "backoff_min_ms"},
        {"fw_version=v1", "fw_version"},
        {"device_id=Cam-1", "device_id"},
        {"recording_key_id=not valid", "recording_key_id"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bc_agent_config_defaults(&cfg, &err), BC_OK);
        assert_int_equal(bc_agent_config_load(&cfg, path, &err), BC_OK);
        assert_int_equal(bc_agent_config_set(&cfg, bad[i].set, &err), BC_OK);
        assert_int_equal(bc_camera_config_check(&cfg.camera, &err), BC_ERR_INVAL);
        if (strstr(err.text, bad[i].named) == NULL)
            fail_msg("'%s': error '%s' does not name %s", bad[i].set, err.text, bad[i].named);
    }
    assert_int_equal(bc_agent_config_set(&cfg, "video_source=synthetic:64000:9", &err), BC_OK);
    assert_int_equal(bc_agent_config_set(&cfg, "backoff_min_ms=100", &err), BC_OK);
    assert_int_equal(bc_agent_config_set(&cfg, "fw_version=2.0.1", &err), BC_OK);
    assert_int_equal(bc_agent_config_set(&cfg, "device_id=cam-1", &err), BC_OK);
    assert_int_equal(bc_agent_config_set(&cfg, "recording_key_id=", &err), BC_OK);
    assert_int_equal(bc_camera_config_check(&cfg.camera, &err), BC_OK);
}

static const char *stack_json =
    "{\"mqtt\":{\"host\":\"127.0.0.1\",\"tls_port\":18883,\"ws_port\":1},"
    "\"ca_cert\":\"/p/ca.crt\",\"processes\":{},"
    "\"keys\":{\"command\":{\"public\":\"/p/command.pub\",\"private\":\"/p/c.key\"},"
    "\"receipt\":{\"public\":\"/p/receipt.pub\"},"
    "\"recording\":{\"public\":\"/p/recording.pub\",\"key_id\":\"0011223344556677\"}},"
    "\"devices\":{"
    "\"cam-001\":{\"cert\":\"/p/1.crt\",\"key\":\"/p/1.key\",\"data_dir\":\"/d/1\","
    "\"control_socket\":\"/d/1/c.sock\"},"
    "\"cam-002\":{\"cert\":\"/p/2.crt\",\"key\":\"/p/2.key\",\"data_dir\":\"/d/2\"}}}";

static void test_from_stack(void **state)
{
    bc_agent_config base;
    bc_camera_config *list = NULL;
    size_t n = 0;
    bc_error err;
    char path[128];
    snprintf(path, sizeof(path), "%s/stack.json", dir);
    bc_test_write_file(path, stack_json);
    assert_int_equal(bc_agent_config_defaults(&base, &err), BC_OK);
    base.camera.pre_event_s = 7; /* a common setting is kept */
    assert_int_equal(bc_agent_config_from_stack(path, &base.camera, 0, &list, &n, &err), BC_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].device_id, "cam-001");
    assert_string_equal(list[0].control_socket, "/d/1/c.sock");
    assert_string_equal(list[1].device_id, "cam-002");
    assert_string_equal(list[1].control_socket, "");
    assert_string_equal(list[1].data_dir, "/d/2");
    assert_string_equal(list[1].cert_file, "/p/2.crt");
    assert_int_equal(list[1].mqtt_port, 18883);
    assert_string_equal(list[1].recording_key_id, "0011223344556677");
    assert_string_equal(list[1].receipt_pubkey, "/p/receipt.pub");
    assert_int_equal(list[1].pre_event_s, 7);
    assert_int_equal(bc_camera_config_check(&list[1], &err), BC_OK);
    free(list);

    assert_int_equal(bc_agent_config_from_stack(path, &base.camera, 1, &list, &n, &err), BC_OK);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(bc_agent_config_from_stack(path, &base.camera, 3, &list, &n, &err),
                     BC_ERR_INVAL);
    bc_test_write_file(path, "{\"mqtt\":{\"host\":\"h\"}}");
    assert_int_not_equal(bc_agent_config_from_stack(path, &base.camera, 0, &list, &n, &err), BC_OK);
    assert_null(list);
    assert_non_null(strstr(err.text, "tls_port"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_file_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_camera_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_stack, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
