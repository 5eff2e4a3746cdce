/*
 * command-sign - a test helper (built only with the tests, never installed):
 * builds one command with proto's structs and signs it with proto's own
 * canonical encoding, so the integration tests send exactly what the
 * gateway would, and can sign with the wrong key on purpose.
 *
 *   command-sign KEY.pem DEVICE KIND ID [NAME=VALUE]...
 *
 * KEY.pem: an Ed25519 private key (the command key, the receipt key, or
 * any other key for a forgery). NAME=VALUE params by KIND:
 *   upload                recording_id, offset
 *   vault-receipt         recording_id, sha256, size, committed_at
 *   rotate-recording-key  public_key (an X25519 public key PEM file),
 *                         key_id (default: the key's own id)
 *   config                health_interval_s, warning_timeout_s, pre_event_s
 *   rotate-identity       phase (request | install), cert (install: the PEM
 *                         certificate itself, or @FILE to read it from FILE)
 * and for every kind: issued_at (ms, default now), ttl_ms (default 60000).
 * Prints the JSON command on one line. Exit 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/clock.h"
#include "common/file.h"
#include "proto/command.h"
#include "proto/sign.h"

static int parse_i64(const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int set_optional(bool *has, int64_t *field, const char *value)
{
    *has = true;
    return parse_i64(value, field);
}

static int copy(char *dst, size_t size, const char *src)
{
    int n = snprintf(dst, size, "%s", src);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

static int set_recording_key(bc_command *cmd, const char *path)
{
    EVP_PKEY *key = NULL;
    bc_error err;
    char id[BC_KEY_ID_LEN + 1];
    int rc = -1;
    if (bc_key_load_public(path, EVP_PKEY_X25519, &key, &err) != BC_OK) {
        fprintf(stderr, "command-sign: %s\n", err.text);
        return -1;
    }
    if (bc_key_raw_public(key, cmd->params.recording_key.public_key) == BC_OK &&
        bc_key_id(key, id) == BC_OK) {
        if (cmd->params.recording_key.key_id[0] == '\0')
            rc = copy(cmd->params.recording_key.key_id, sizeof(cmd->params.recording_key.key_id),
                      id);
        else
            rc = 0;
    }
    EVP_PKEY_free(key);
    return rc;
}

/* cert=PEM or cert=@FILE into cmd (an identity install). */
static int set_cert(bc_command *cmd, const char *value)
{
    char *pem = NULL;
    size_t len = 0;
    bc_error err;
    int rc = 0;
    if (value[0] == '@') {
        if (bc_file_read_all(value + 1, BC_CERT_PEM_MAX, &pem, &len, &err) != BC_OK) {
            fprintf(stderr, "command-sign: %s\n", err.text);
            return -1;
        }
        value = pem;
    }
    if (bc_command_set_cert(cmd, value) != BC_OK)
        rc = -1;
    free(pem);
    return rc;
}

/* One NAME=VALUE; -1 for an unknown name or a bad value. */
static int set_param(bc_command *cmd, const char *name, const char *value, int64_t *ttl,
                     const char **key_path)
{
    bc_cmd_config *cf = &cmd->params.config;
    bc_cmd_receipt *rc = &cmd->params.receipt;
    if (strcmp(name, "issued_at") == 0)
        return parse_i64(value, &cmd->issued_at);
    if (strcmp(name, "ttl_ms") == 0)
        return parse_i64(value, ttl);
    switch (cmd->kind) {
    case BC_CMD_UPLOAD:
        if (strcmp(name, "recording_id") == 0)
            return copy(cmd->params.upload.recording_id, sizeof(cmd->params.upload.recording_id),
                        value);
        if (strcmp(name, "offset") == 0)
            return parse_i64(value, &cmd->params.upload.offset);
        return -1;
    case BC_CMD_VAULT_RECEIPT:
        if (strcmp(name, "recording_id") == 0)
            return copy(rc->recording_id, sizeof(rc->recording_id), value);
        if (strcmp(name, "sha256") == 0)
            return copy(rc->sha256, sizeof(rc->sha256), value);
        if (strcmp(name, "size") == 0)
            return parse_i64(value, &rc->size);
        if (strcmp(name, "committed_at") == 0)
            return parse_i64(value, &rc->committed_at);
        return -1;
    case BC_CMD_ROTATE_RECORDING_KEY:
        if (strcmp(name, "public_key") == 0) {
            *key_path = value;
            return 0;
        }
        if (strcmp(name, "key_id") == 0)
            return copy(cmd->params.recording_key.key_id, sizeof(cmd->params.recording_key.key_id),
                        value);
        return -1;
    case BC_CMD_ROTATE_IDENTITY:
        if (strcmp(name, "phase") == 0) {
            for (int p = 0; p < BC_IDENTITY_PHASE_COUNT; p++) {
                if (strcmp(value, bc_identity_phase_name((bc_identity_phase)p)) == 0) {
                    cmd->params.identity.phase = (bc_identity_phase)p;
                    return 0;
                }
            }
            return -1;
        }
        if (strcmp(name, "cert") == 0)
            return set_cert(cmd, value);
        return -1;
    case BC_CMD_CONFIG:
        if (strcmp(name, "health_interval_s") == 0)
            return set_optional(&cf->has_health_interval_s, &cf->health_interval_s, value);
        if (strcmp(name, "warning_timeout_s") == 0)
            return set_optional(&cf->has_warning_timeout_s, &cf->warning_timeout_s, value);
        if (strcmp(name, "pre_event_s") == 0)
            return set_optional(&cf->has_pre_event_s, &cf->pre_event_s, value);
        return -1;
    default:
        return -1;
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: command-sign KEY.pem DEVICE KIND ID [NAME=VALUE]...\n");
        return 2;
    }
    bc_command cmd;
    bc_error err = {{0}};
    EVP_PKEY *key = NULL;
    char *json = NULL;
    int64_t ttl = 60000;
    const char *key_path = NULL;
    int rc = 1;
    memset(&cmd, 0, sizeof(cmd));
    if (bc_command_kind_from_name(argv[3], &cmd.kind) != BC_OK ||
        copy(cmd.device, sizeof(cmd.device), argv[2]) != 0 ||
        copy(cmd.id, sizeof(cmd.id), argv[4]) != 0) {
        fprintf(stderr, "command-sign: bad kind, device or id\n");
        return 2;
    }
    cmd.issued_at = bc_clock_now_ms();
    for (int i = 5; i < argc; i++) {
        char name[64];
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL || (size_t)(eq - argv[i]) >= sizeof(name)) {
            fprintf(stderr, "command-sign: '%s' is not NAME=VALUE\n", argv[i]);
            return 2;
        }
        memcpy(name, argv[i], (size_t)(eq - argv[i]));
        name[eq - argv[i]] = '\0';
        if (set_param(&cmd, name, eq + 1, &ttl, &key_path) != 0) {
            fprintf(stderr, "command-sign: bad parameter '%s' for %s\n", argv[i], argv[3]);
            return 2;
        }
    }
    cmd.expires_at = cmd.issued_at + ttl;
    if (key_path != NULL && set_recording_key(&cmd, key_path) != 0)
        goto cleanup;
    if (bc_key_load_private(argv[1], EVP_PKEY_ED25519, &key, &err) != BC_OK ||
        bc_command_sign(&cmd, key, &err) != BC_OK || bc_command_encode(&cmd, &json, &err) != BC_OK)
        goto cleanup;
    printf("%s\n", json);
    rc = 0;

cleanup:
    if (rc != 0)
        fprintf(stderr, "command-sign: %s\n", err.text);
    free(json);
    EVP_PKEY_free(key);
    bc_command_free(&cmd);
    return rc;
}
