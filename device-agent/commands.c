/*
 * commands.c - from a message on cmd/{kind} to an ack.
 *
 * The order of the checks is the contract of commands.h; its invariant:
 * nothing acts on a command before (a) its signature, addressee and time
 * window verified, and (b) its id is durably in the replay cache. A command
 * that fails early still gets an ack when its id can be read, because the
 * backend waits for one per command id.
 *
 * Reading the id of a command that proto refuses is the one place that
 * looks into a command's JSON outside proto/command.c: the id field is read
 * leniently (a valid id string, nothing else checked) only to address the
 * refusal.
 */
#include "device-agent/commands.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/json.h"

#define CMD_ID_FIELD "id" /* proto/README.md "Signed commands": the command id */

struct bc_commands {
    char device[BC_DEVICE_ID_MAX + 1];
    char cache_path[PATH_MAX];
    EVP_PKEY *command_key;
    EVP_PKEY *receipt_key;
    bc_replay_cache *cache;
    bc_commands_handlers h;
    void *userdata;
    bc_commands_stats stats;
    bool in_handler;   /* a handler is running (bc_commands_defer_ack) */
    bool ack_deferred; /* ... and said it answers later */
};

/* ---- acks ---- */

/* Makes text fit an ack's error: printable ASCII, at most BC_TEXT_MAX bytes. */
static void ack_text(char *out, size_t size, const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0' && n + 1 < size && n < BC_TEXT_MAX; p++)
        out[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    out[n] = '\0';
    if (n == 0)
        snprintf(out, size, "%s", "refused");
}

static bc_status send_ack(bc_commands *c, const char *cmd_id, bc_command_kind kind,
                          const char *error)
{
    bc_msg_ack ack;
    memset(&ack, 0, sizeof(ack));
    snprintf(ack.device, sizeof(ack.device), "%s", c->device);
    snprintf(ack.cmd_id, sizeof(ack.cmd_id), "%s", cmd_id);
    ack.ts = bc_clock_now_ms();
    ack.kind = kind;
    ack.ok = error == NULL;
    if (error != NULL)
        ack_text(ack.error, sizeof(ack.error), error);
    bc_status st = c->h.send_ack(&ack, c->userdata);
    if (st != BC_OK)
        log_errorx("%s: command %s: the ack could not be queued", c->device, cmd_id);
    return st;
}

static void refuse(bc_commands *c, const char *cmd_id, bc_command_kind kind, const char *word,
                   const char *detail)
{
    char reason[BC_TEXT_MAX + 1];
    snprintf(reason, sizeof(reason), "%s: %s", word, detail);
    c->stats.refused++;
    log_warnx("%s: command %s (%s) refused: %s", c->device, cmd_id,
              bc_command_kind_name(kind) != NULL ? bc_command_kind_name(kind) : "?", reason);
    (void)send_ack(c, cmd_id, kind, reason);
}

/* refuse() for a decoded command, which the owner hears about too. */
static void refuse_cmd(bc_commands *c, const bc_command *cmd, bc_status st, const char *word,
                       const char *detail)
{
    refuse(c, cmd->id, cmd->kind, word, detail);
    if (c->h.refused != NULL) {
        char reason[BC_TEXT_MAX + 1];
        snprintf(reason, sizeof(reason), "%s: %s", word, detail);
        c->h.refused(cmd, st, reason, c->userdata);
    }
}

/* ---- malformed commands ---- */

/* The id of a command proto refused, if one can be read; "" otherwise. */
static void peek_id(const void *payload, size_t len, char id[BC_ID_MAX + 1])
{
    cJSON *root = NULL;
    id[0] = '\0';
    if (bc_json_parse(payload, len, BC_COMMAND_JSON_MAX, &root, NULL) != BC_OK)
        return;
    if (bc_json_get_string(root, CMD_ID_FIELD, BC_JSON_REQUIRED, id, BC_ID_MAX + 1, NULL) !=
            BC_OK ||
        !bc_id_valid(id))
        id[0] = '\0';
    cJSON_Delete(root);
}

static void handle_malformed(bc_commands *c, bc_command_kind kind, const void *payload, size_t len,
                             const char *reason)
{
    char id[BC_ID_MAX + 1];
    peek_id(payload, len, id);
    if (id[0] == '\0') {
        c->stats.refused++;
        log_warnx("%s: malformed %s command without a usable id dropped: %s", c->device,
                  bc_command_kind_name(kind), reason);
        return;
    }
    refuse(c, id, kind, "malformed", reason);
}

/* ---- verified commands ---- */

static const char *verify_word(bc_status st)
{
    switch (st) {
    case BC_ERR_DENIED:
        return "not for this camera";
    case BC_ERR_SIGNATURE:
        return "bad signature";
    case BC_ERR_EXPIRED:
        return "expired";
    case BC_ERR_REPLAY:
        return "replayed";
    default:
        return "invalid";
    }
}

static bc_commands_handler handler_of(const bc_commands *c, bc_command_kind kind)
{
    switch (kind) {
    case BC_CMD_UPLOAD:
        return c->h.upload;
    case BC_CMD_VAULT_RECEIPT:
        return c->h.vault_receipt;
    case BC_CMD_ROTATE_RECORDING_KEY:
        return c->h.rotate_recording_key;
    case BC_CMD_CONFIG:
        return c->h.config;
    case BC_CMD_ROTATE_IDENTITY:
        return c->h.rotate_identity;
    case BC_CMD_FIRMWARE:
        return c->h.firmware;
    default:
        return NULL;
    }
}

static void dispatch(bc_commands *c, const bc_command *cmd)
{
    bc_commands_handler fn = handler_of(c, cmd->kind);
    if (fn == NULL) {
        refuse(c, cmd->id, cmd->kind, "not supported yet", bc_command_kind_name(cmd->kind));
        return;
    }
    bc_error err;
    bc_error_clear(&err);
    c->in_handler = true;
    c->ack_deferred = false;
    bc_status st = fn(cmd, c->userdata, &err);
    c->in_handler = false;
    if (st == BC_OK && c->ack_deferred) {
        log_info("%s: command %s (%s) under way; it is acked when done", c->device, cmd->id,
                 bc_command_kind_name(cmd->kind));
        return;
    }
    if (st != BC_OK) {
        c->stats.refused++;
        log_warnx("%s: command %s (%s) failed: %s", c->device, cmd->id,
                  bc_command_kind_name(cmd->kind), err.text[0] ? err.text : bc_strerror(st));
        (void)send_ack(c, cmd->id, cmd->kind, err.text[0] ? err.text : bc_strerror(st));
        return;
    }
    c->stats.accepted++;
    log_info("%s: command %s (%s) done", c->device, cmd->id, bc_command_kind_name(cmd->kind));
    (void)send_ack(c, cmd->id, cmd->kind, NULL);
}

static void verify_and_dispatch(bc_commands *c, const bc_command *cmd)
{
    EVP_PKEY *key =
        bc_command_signer_of(cmd->kind) == BC_SIGNER_RECEIPT_KEY ? c->receipt_key : c->command_key;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_command_verify(cmd, c->device, key, bc_clock_now_ms(), c->cache, &err);
    if (st != BC_OK) {
        refuse_cmd(c, cmd, st, verify_word(st), err.text[0] ? err.text : bc_strerror(st));
        return;
    }
    st = bc_replay_cache_save(c->cache, c->cache_path, &err);
    if (st != BC_OK) {
        /* Acting now could let a replay act again after a crash. */
        refuse_cmd(c, cmd, st, "internal", err.text);
        return;
    }
    dispatch(c, cmd);
}

void bc_commands_handle(bc_commands *c, const char *topic, const void *payload, size_t len)
{
    bc_topic t;
    bc_error err;
    bc_error_clear(&err);
    c->stats.received++;
    if (bc_topic_parse(topic, &t, &err) != BC_OK || t.kind != BC_TOPIC_CMD ||
        strcmp(t.device, c->device) != 0) {
        c->stats.refused++;
        log_warnx("%s: message on '%.*s' is not a command for this camera; dropped", c->device,
                  BC_TOPIC_MAX, topic);
        return;
    }
    bc_command_kind kind;
    if (bc_command_kind_from_name(t.command, &kind) != BC_OK) {
        c->stats.refused++;
        log_warnx("%s: command of unknown kind '%s' dropped (no ack can name it)", c->device,
                  t.command);
        return;
    }
    bc_command cmd;
    bc_status st = bc_command_decode(payload, len, &cmd, &err);
    if (st != BC_OK) {
        handle_malformed(c, kind, payload, len, err.text[0] ? err.text : bc_strerror(st));
        return;
    }
    if (cmd.kind != kind) {
        char detail[BC_TEXT_MAX + 1];
        snprintf(detail, sizeof(detail), "a %s command on the %s topic",
                 bc_command_kind_name(cmd.kind), bc_command_kind_name(kind));
        refuse_cmd(c, &cmd, BC_ERR_INVAL, "wrong topic", detail);
    } else {
        verify_and_dispatch(c, &cmd);
    }
    bc_command_free(&cmd);
}

/* ---- life cycle ---- */

static void load_cache(bc_commands *c)
{
    bc_error err;
    bc_status st = bc_replay_cache_load(c->cache, c->cache_path, &err);
    if (st == BC_OK || st == BC_ERR_NOT_FOUND)
        return;
    log_errorx("%s: replay cache %s unusable (%s); starting with an empty one", c->device,
               c->cache_path, err.text);
}

bc_status bc_commands_open(const char *device_id, const char *data_dir, EVP_PKEY *command_key,
                           EVP_PKEY *receipt_key, const bc_commands_handlers *handlers,
                           void *userdata, bc_commands **out, bc_error *err)
{
    *out = NULL;
    if (!bc_device_id_valid(device_id) || data_dir == NULL || command_key == NULL ||
        receipt_key == NULL || handlers == NULL || handlers->send_ack == NULL)
        return bc_fail(err, BC_ERR_INVAL,
                       "commands: device id, data dir, both keys and "
                       "send_ack are required");
    bc_commands *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "commands: out of memory");
    int n =
        snprintf(c->cache_path, sizeof(c->cache_path), "%s/%s", data_dir, BC_COMMANDS_REPLAY_FILE);
    if (n < 0 || (size_t)n >= sizeof(c->cache_path)) {
        free(c);
        return bc_fail(err, BC_ERR_TOO_BIG, "commands: data dir path is too long");
    }
    if (bc_replay_cache_new(BC_REPLAY_CACHE_DEFAULT, &c->cache) != BC_OK) {
        free(c);
        return bc_fail(err, BC_ERR_NOMEM, "commands: out of memory");
    }
    if (EVP_PKEY_up_ref(command_key) == 1)
        c->command_key = command_key;
    if (EVP_PKEY_up_ref(receipt_key) == 1)
        c->receipt_key = receipt_key;
    if (c->command_key == NULL || c->receipt_key == NULL) {
        bc_commands_free(c);
        return bc_fail(err, BC_ERR_CRYPTO, "commands: cannot reference the keys");
    }
    snprintf(c->device, sizeof(c->device), "%s", device_id);
    c->h = *handlers;
    c->userdata = userdata;
    load_cache(c);
    *out = c;
    return BC_OK;
}

void bc_commands_free(bc_commands *c)
{
    if (c == NULL)
        return;
    bc_replay_cache_free(c->cache);
    EVP_PKEY_free(c->command_key);
    EVP_PKEY_free(c->receipt_key);
    free(c);
}

void bc_commands_stats_get(const bc_commands *c, bc_commands_stats *out)
{
    *out = c->stats;
}

void bc_commands_defer_ack(bc_commands *c)
{
    if (c->in_handler)
        c->ack_deferred = true;
}

bc_status bc_commands_ack(bc_commands *c, const char *cmd_id, bc_command_kind kind,
                          const char *error)
{
    if (error == NULL) {
        c->stats.accepted++;
        log_info("%s: command %s (%s) done", c->device, cmd_id, bc_command_kind_name(kind));
    } else {
        c->stats.refused++;
        log_warnx("%s: command %s (%s) failed: %s", c->device, cmd_id, bc_command_kind_name(kind),
                  error);
    }
    return send_ack(c, cmd_id, kind, error);
}
