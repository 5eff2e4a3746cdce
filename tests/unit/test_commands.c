/* Unit tests for device-agent/commands: the order of the checks and the
 * ack each command gets - handled, replayed (also after a reopen: the
 * replay cache is durable), forged, malformed with and without an id,
 * wrong topic, not supported, and a handler's own failure. Real Ed25519
 * keys, real signatures (proto), no broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "common/clock.h"
#include "device-agent/commands.h"

#define DEV "cam-001"
#define MAX_ACKS 16

typedef struct fixture {
    char dir[64];
    EVP_PKEY *command_key, *receipt_key, *other_key;
    bc_msg_ack acks[MAX_ACKS];
    size_t ack_count;
    int config_calls, receipt_calls, refused_calls;
    bc_status config_result;
    bc_commands *c;
} fixture;

static EVP_PKEY *keygen(void)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
    EVP_PKEY_CTX_free(ctx);
    return k;
}

static bc_status on_config(const bc_command *cmd, void *ud, bc_error *err)
{
    fixture *f = ud;
    f->config_calls++;
    if (f->config_result != BC_OK)
        return bc_fail(err, f->config_result, "pre-event buffer too large for memory");
    return BC_OK;
}

static bc_status on_receipt(const bc_command *cmd, void *ud, bc_error *err)
{
    ((fixture *)ud)->receipt_calls++;
    return BC_OK;
}

static void on_refused(const bc_command *cmd, bc_status st, const char *reason, void *ud)
{
    ((fixture *)ud)->refused_calls++;
}

static bc_status on_ack(const bc_msg_ack *ack, void *ud)
{
    fixture *f = ud;
    assert_true(f->ack_count < MAX_ACKS);
    f->acks[f->ack_count++] = *ack;
    return BC_OK;
}

static void open_commands(fixture *f)
{
    const bc_commands_handlers h = {
        .config = on_config,
        .vault_receipt = on_receipt,
        .refused = on_refused,
        .send_ack = on_ack,
    };
    bc_error err;
    assert_int_equal(
        bc_commands_open(DEV, f->dir, f->command_key, f->receipt_key, &h, f, &f->c, &err), BC_OK);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bc-commands-XXXXXX");
    if (f == NULL || mkdtemp(f->dir) == NULL)
        return -1;
    f->command_key = keygen();
    f->receipt_key = keygen();
    f->other_key = keygen();
    open_commands(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char path[128];
    bc_commands_free(f->c);
    snprintf(path, sizeof(path), "%s/%s", f->dir, BC_COMMANDS_REPLAY_FILE);
    unlink(path);
    rmdir(f->dir);
    EVP_PKEY_free(f->command_key);
    EVP_PKEY_free(f->receipt_key);
    EVP_PKEY_free(f->other_key);
    free(f);
    return 0;
}

/* A signed command of kind as JSON (malloc'd). */
static char *command_json(bc_command_kind kind, const char *id, const char *device, EVP_PKEY *key)
{
    bc_command cmd;
    bc_error err;
    char *json = NULL;
    memset(&cmd, 0, sizeof(cmd));
    snprintf(cmd.id, sizeof(cmd.id), "%s", id);
    snprintf(cmd.device, sizeof(cmd.device), "%s", device);
    cmd.kind = kind;
    cmd.issued_at = bc_clock_now_ms();
    cmd.expires_at = cmd.issued_at + 60000;
    if (kind == BC_CMD_CONFIG) {
        cmd.params.config.has_health_interval_s = true;
        cmd.params.config.health_interval_s = 5;
    } else if (kind == BC_CMD_VAULT_RECEIPT) {
        snprintf(cmd.params.receipt.recording_id, sizeof(cmd.params.receipt.recording_id),
                 "cam-001-3");
        memset(cmd.params.receipt.sha256, 'a', BC_SHA256_HEX_LEN);
        cmd.params.receipt.size = 10;
        cmd.params.receipt.committed_at = cmd.issued_at;
    }
    assert_int_equal(bc_command_sign(&cmd, key, &err), BC_OK);
    assert_int_equal(bc_command_encode(&cmd, &json, &err), BC_OK);
    return json;
}

static void deliver(fixture *f, const char *kind, const char *json)
{
    char topic[BC_TOPIC_MAX];
    snprintf(topic, sizeof(topic), "bodycam/v1/devices/%s/cmd/%s", DEV, kind);
    bc_commands_handle(f->c, topic, json, strlen(json));
}

static const bc_msg_ack *last_ack(const fixture *f)
{
    assert_true(f->ack_count > 0);
    return &f->acks[f->ack_count - 1];
}

static void assert_refused(const fixture *f, const char *id, const char *word)
{
    const bc_msg_ack *a = last_ack(f);
    assert_string_equal(a->cmd_id, id);
    assert_false(a->ok);
    if (strncmp(a->error, word, strlen(word)) != 0)
        fail_msg("ack error '%s' does not start with '%s'", a->error, word);
}

static void test_accept_then_replay(void **state)
{
    fixture *f = *state;
    char *json = command_json(BC_CMD_CONFIG, "cfg-1", DEV, f->command_key);
    deliver(f, "config", json);
    assert_int_equal(f->config_calls, 1);
    assert_true(last_ack(f)->ok);
    assert_int_equal(last_ack(f)->kind, BC_CMD_CONFIG);
    deliver(f, "config", json);
    assert_int_equal(f->config_calls, 1);
    assert_refused(f, "cfg-1", "replayed");
    /* the cache was saved before the command acted: a restart remembers it */
    bc_commands_free(f->c);
    open_commands(f);
    deliver(f, "config", json);
    assert_int_equal(f->config_calls, 1);
    assert_refused(f, "cfg-1", "replayed");
    free(json);
}

static void test_signature_and_key_choice(void **state)
{
    fixture *f = *state;
    char *forged = command_json(BC_CMD_CONFIG, "cfg-2", DEV, f->other_key);
    deliver(f, "config", forged);
    assert_refused(f, "cfg-2", "bad signature");
    assert_int_equal(f->refused_calls, 1);
    /* a receipt must be signed by the receipt key, not the command key */
    char *receipt = command_json(BC_CMD_VAULT_RECEIPT, "r-1", DEV, f->command_key);
    deliver(f, "vault-receipt", receipt);
    assert_refused(f, "r-1", "bad signature");
    assert_int_equal(f->receipt_calls, 0);
    assert_int_equal(f->refused_calls, 2);
    char *good = command_json(BC_CMD_VAULT_RECEIPT, "r-2", DEV, f->receipt_key);
    deliver(f, "vault-receipt", good);
    assert_true(last_ack(f)->ok);
    assert_int_equal(f->receipt_calls, 1);
    char *other = command_json(BC_CMD_CONFIG, "cfg-3", "cam-002", f->command_key);
    deliver(f, "config", other);
    assert_refused(f, "cfg-3", "not for this camera");
    free(forged);
    free(receipt);
    free(good);
    free(other);
}

static void test_malformed(void **state)
{
    fixture *f = *state;
    const char *no_sig = "{\"v\":1,\"id\":\"m-1\",\"device\":\"cam-001\",\"kind\":\"config\","
                         "\"issued_at\":1,\"expires_at\":2,\"params\":{\"pre_event_s\":5}}";
    deliver(f, "config", no_sig);
    assert_refused(f, "m-1", "malformed");
    size_t before = f->ack_count;
    deliver(f, "config", "{\"v\":1,\"device\":\"cam-001\"}"); /* no id: no ack */
    deliver(f, "config", "not json at all");
    deliver(f, "config", "{\"id\":\"bad id with spaces\"}");
    assert_int_equal(f->ack_count, before);
    bc_commands_handle(f->c, "bodycam/v1/devices/cam-001/cmd/bogus", "{}", 2);
    bc_commands_handle(f->c, "bodycam/v1/devices/cam-002/cmd/config", "{}", 2);
    assert_int_equal(f->ack_count, before);
    bc_commands_stats stats;
    bc_commands_stats_get(f->c, &stats);
    assert_int_equal(stats.received, 6);
    assert_int_equal(stats.refused, 6);
    assert_int_equal(f->config_calls, 0);
}

static void test_topic_unsupported_and_handler_error(void **state)
{
    fixture *f = *state;
    char *cfg = command_json(BC_CMD_CONFIG, "cfg-4", DEV, f->command_key);
    deliver(f, "upload", cfg);
    assert_refused(f, "cfg-4", "wrong topic");
    assert_int_equal(last_ack(f)->kind, BC_CMD_CONFIG);
    char *up = command_json(BC_CMD_UPLOAD, "up-1", DEV, f->command_key);
    deliver(f, "upload", up); /* no upload handler given: not supported */
    assert_refused(f, "up-1", "not supported yet");
    f->config_result = BC_ERR_NOMEM;
    char *cfg2 = command_json(BC_CMD_CONFIG, "cfg-5", DEV, f->command_key);
    deliver(f, "config", cfg2);
    assert_refused(f, "cfg-5", "pre-event buffer too large");
    assert_int_equal(f->config_calls, 1);
    free(cfg);
    free(up);
    free(cfg2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accept_then_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signature_and_key_choice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topic_unsupported_and_handler_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
