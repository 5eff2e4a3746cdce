/*
 * command.c - signed commands: validate, canonical bytes, sign, JSON, the
 * camera-side verify, and the replay cache.
 *
 * The signature covers the canonical bytes of the *decoded struct*, never
 * the JSON text, so the JSON may be re-serialised by anyone in between
 * without breaking it, and nothing outside the struct can be smuggled in:
 * every field that decode keeps is a field the signature covers.
 *
 * Verify order (a camera runs it for every command, cheapest refusal
 * first, and the replay cache is touched only by a command that passed
 * everything else, so a forged command cannot fill or poison it):
 *
 *     addressed to me? -> signature -> time window -> seen before?
 *
 * Replay cache invariant: a command id with expires_at > floor that was
 * accepted is in the entries; anything expiring at or below the floor is
 * refused. Dropping an entry (expired, or the earliest when full) raises
 * the floor to its expiry, which keeps the invariant with bounded memory.
 */
#include "proto/command.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/encoding.h"
#include "proto/json.h"

#define MAXI BC_JSON_INT_MAX
#define CERT_PEM_BEGIN "-----BEGIN CERTIFICATE-----"
#define REPLAY_FILE_MAGIC "bodycam-replay-cache 1"

static const char *const kind_names[BC_CMD_KIND_COUNT] = {
    [BC_CMD_UPLOAD] = "upload",
    [BC_CMD_VAULT_RECEIPT] = "vault-receipt",
    [BC_CMD_ROTATE_RECORDING_KEY] = "rotate-recording-key",
    [BC_CMD_ROTATE_IDENTITY] = "rotate-identity",
    [BC_CMD_FIRMWARE] = "firmware",
    [BC_CMD_CONFIG] = "config",
};

static const char *const phase_names[BC_IDENTITY_PHASE_COUNT] = {
    [BC_IDENTITY_REQUEST] = "request",
    [BC_IDENTITY_INSTALL] = "install",
};

/* Upper bounds of the config params (see command.h for the ranges). */
#define CONFIG_HEALTH_MAX 86400
#define CONFIG_WARNING_MAX 3600
#define CONFIG_PRE_EVENT_MAX 300

const char *bc_command_kind_name(bc_command_kind kind)
{
    return (unsigned)kind < BC_CMD_KIND_COUNT ? kind_names[kind] : NULL;
}

bc_status bc_command_kind_from_name(const char *name, bc_command_kind *out)
{
    for (int i = 0; name != NULL && out != NULL && i < BC_CMD_KIND_COUNT; i++) {
        if (strcmp(kind_names[i], name) == 0) {
            *out = (bc_command_kind)i;
            return BC_OK;
        }
    }
    return BC_ERR_INVAL;
}

bc_command_signer bc_command_signer_of(bc_command_kind kind)
{
    return kind == BC_CMD_VAULT_RECEIPT ? BC_SIGNER_RECEIPT_KEY : BC_SIGNER_COMMAND_KEY;
}

const char *bc_identity_phase_name(bc_identity_phase phase)
{
    return (unsigned)phase < BC_IDENTITY_PHASE_COUNT ? phase_names[phase] : NULL;
}

/* ------------------------------------------------------------ validate */

static bc_status check_upload(const bc_cmd_upload *p, bc_error *err)
{
    if (p->recording_id[0] != '\0' && !bc_id_valid(p->recording_id))
        return bc_fail(err, BC_ERR_INVAL, "field 'recording_id' is outside [A-Za-z0-9_-]{1,64}");
    if (p->offset < 0 || p->offset > MAXI)
        return bc_fail(err, BC_ERR_INVAL, "field 'offset' is out of range");
    if (p->recording_id[0] == '\0' && p->offset != 0)
        return bc_fail(err, BC_ERR_INVAL, "field 'offset' needs a recording_id");
    return BC_OK;
}

static bc_status check_receipt(const bc_cmd_receipt *p, bc_error *err)
{
    if (!bc_id_valid(p->recording_id))
        return bc_fail(err, BC_ERR_INVAL, "field 'recording_id' is outside [A-Za-z0-9_-]{1,64}");
    if (!bc_json_hex_valid(p->sha256, BC_SHA256_HEX_LEN))
        return bc_fail(err, BC_ERR_INVAL, "field 'sha256' is not 64 lowercase hex digits");
    if (p->size < 1 || p->size > MAXI)
        return bc_fail(err, BC_ERR_INVAL, "field 'size' is out of range");
    if (p->committed_at < 0 || p->committed_at > MAXI)
        return bc_fail(err, BC_ERR_INVAL, "field 'committed_at' is out of range");
    return BC_OK;
}

/* The key id is derived from the key (proto/sign.h), so a command cannot
 * name one key and carry another. */
static bc_status check_recording_key(const bc_cmd_recording_key *p, bc_error *err)
{
    if (!bc_id_valid(p->key_id))
        return bc_fail(err, BC_ERR_INVAL, "field 'key_id' is outside [A-Za-z0-9_-]{1,64}");
    EVP_PKEY *key = NULL;
    char id[BC_KEY_ID_LEN + 1];
    bc_status rc = bc_key_from_raw_public(EVP_PKEY_X25519, p->public_key, &key);
    if (rc == BC_OK)
        rc = bc_key_id(key, id);
    EVP_PKEY_free(key);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot derive the id of field 'public_key'");
    if (strcmp(id, p->key_id) != 0)
        return bc_fail(err, BC_ERR_INVAL, "field 'key_id' is not the id of field 'public_key'");
    return BC_OK;
}

static bc_status check_cert(const char *cert, bc_error *err)
{
    if (cert == NULL)
        return bc_fail(err, BC_ERR_MISSING, "field 'cert' is missing");
    size_t len = strnlen(cert, BC_CERT_PEM_MAX + 1);
    if (len > BC_CERT_PEM_MAX)
        return bc_fail(err, BC_ERR_INVAL, "field 'cert' is longer than %d bytes", BC_CERT_PEM_MAX);
    if (strncmp(cert, CERT_PEM_BEGIN, strlen(CERT_PEM_BEGIN)) != 0)
        return bc_fail(err, BC_ERR_INVAL, "field 'cert' is not a PEM certificate");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)cert[i];
        if ((ch < 0x20 || ch > 0x7e) && ch != '\n' && ch != '\r')
            return bc_fail(err, BC_ERR_INVAL, "field 'cert' holds a byte PEM cannot contain");
    }
    return BC_OK;
}

static bc_status check_identity(const bc_cmd_identity *p, bc_error *err)
{
    if (bc_identity_phase_name(p->phase) == NULL)
        return bc_fail(err, BC_ERR_INVAL, "field 'phase' has no valid value");
    return p->phase == BC_IDENTITY_INSTALL ? check_cert(p->cert, err) : BC_OK;
}

static bc_status check_firmware(const bc_firmware_manifest *m, bc_error *err)
{
    if (!m->has_sig)
        return bc_fail(err, BC_ERR_MISSING, "field 'manifest' is not signed");
    return bc_firmware_validate(m, err);
}

static bc_status check_range(const char *name, bool has, int64_t v, int64_t min, int64_t max,
                             bc_error *err)
{
    if (has && (v < min || v > max))
        return bc_fail(err, BC_ERR_INVAL, "field '%s' is outside [%" PRId64 ", %" PRId64 "]", name,
                       min, max);
    return BC_OK;
}

static bc_status check_config(const bc_cmd_config *p, bc_error *err)
{
    if (!p->has_health_interval_s && !p->has_warning_timeout_s && !p->has_pre_event_s)
        return bc_fail(err, BC_ERR_MISSING, "config command sets nothing");
    bc_status rc = check_range("health_interval_s", p->has_health_interval_s, p->health_interval_s,
                               1, CONFIG_HEALTH_MAX, err);
    if (rc == BC_OK)
        rc = check_range("warning_timeout_s", p->has_warning_timeout_s, p->warning_timeout_s, 1,
                         CONFIG_WARNING_MAX, err);
    if (rc == BC_OK)
        rc = check_range("pre_event_s", p->has_pre_event_s, p->pre_event_s, 0, CONFIG_PRE_EVENT_MAX,
                         err);
    return rc;
}

static bc_status check_params(const bc_command *cmd, bc_error *err)
{
    switch (cmd->kind) {
    case BC_CMD_UPLOAD:
        return check_upload(&cmd->params.upload, err);
    case BC_CMD_VAULT_RECEIPT:
        return check_receipt(&cmd->params.receipt, err);
    case BC_CMD_ROTATE_RECORDING_KEY:
        return check_recording_key(&cmd->params.recording_key, err);
    case BC_CMD_ROTATE_IDENTITY:
        return check_identity(&cmd->params.identity, err);
    case BC_CMD_FIRMWARE:
        return check_firmware(&cmd->params.firmware, err);
    case BC_CMD_CONFIG:
        return check_config(&cmd->params.config, err);
    default:
        return bc_fail(err, BC_ERR_INVAL, "field 'kind' has no valid value");
    }
}

bc_status bc_command_validate(const bc_command *cmd, bc_error *err)
{
    if (cmd == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no command");
    if (!bc_id_valid(cmd->id))
        return bc_fail(err, BC_ERR_INVAL, "field 'id' is outside [A-Za-z0-9_-]{1,64}");
    if (!bc_device_id_valid(cmd->device))
        return bc_fail(err, BC_ERR_INVAL, "field 'device' is outside [a-z0-9][a-z0-9_-]{0,31}");
    if (bc_command_kind_name(cmd->kind) == NULL)
        return bc_fail(err, BC_ERR_INVAL, "field 'kind' has no valid value");
    if (cmd->issued_at < 0 || cmd->issued_at > MAXI)
        return bc_fail(err, BC_ERR_INVAL, "field 'issued_at' is out of range");
    if (cmd->expires_at <= cmd->issued_at || cmd->expires_at > MAXI)
        return bc_fail(err, BC_ERR_INVAL, "field 'expires_at' is not after issued_at");
    if (cmd->expires_at - cmd->issued_at > BC_COMMAND_MAX_LIFETIME_MS)
        return bc_fail(err, BC_ERR_INVAL, "field 'expires_at' is more than %lld ms after issued_at",
                       (long long)BC_COMMAND_MAX_LIFETIME_MS);
    return check_params(cmd, err);
}

/* ----------------------------------------------------------- canonical */

static bc_status canon_params(const bc_command *cmd, bc_canon *c)
{
    switch (cmd->kind) {
    case BC_CMD_UPLOAD:
        bc_canon_str(c, cmd->params.upload.recording_id);
        bc_canon_i64(c, cmd->params.upload.offset);
        return BC_OK;
    case BC_CMD_VAULT_RECEIPT:
        bc_canon_str(c, cmd->params.receipt.recording_id);
        bc_canon_str(c, cmd->params.receipt.sha256);
        bc_canon_i64(c, cmd->params.receipt.size);
        bc_canon_i64(c, cmd->params.receipt.committed_at);
        return BC_OK;
    case BC_CMD_ROTATE_RECORDING_KEY:
        bc_canon_str(c, cmd->params.recording_key.key_id);
        bc_canon_bytes(c, cmd->params.recording_key.public_key, BC_RAW_KEY_LEN);
        return BC_OK;
    case BC_CMD_ROTATE_IDENTITY: {
        const bc_cmd_identity *p = &cmd->params.identity;
        bc_canon_str(c, bc_identity_phase_name(p->phase));
        bc_canon_str(c, p->phase == BC_IDENTITY_INSTALL ? p->cert : "");
        return BC_OK;
    }
    case BC_CMD_FIRMWARE: {
        bc_canon fw = {0};
        bc_status rc = bc_firmware_canonical(&cmd->params.firmware, &fw);
        if (rc == BC_OK) {
            bc_canon_bytes(c, fw.data, fw.len);
            bc_canon_bytes(c, cmd->params.firmware.sig, BC_ED25519_SIG_LEN);
        }
        bc_canon_free(&fw);
        return rc;
    }
    case BC_CMD_CONFIG: {
        const bc_cmd_config *p = &cmd->params.config;
        bc_canon_i64(c, p->has_health_interval_s ? p->health_interval_s : -1);
        bc_canon_i64(c, p->has_warning_timeout_s ? p->warning_timeout_s : -1);
        bc_canon_i64(c, p->has_pre_event_s ? p->pre_event_s : -1);
        return BC_OK;
    }
    default:
        return BC_ERR_INVAL;
    }
}

bc_status bc_command_canonical(const bc_command *cmd, bc_canon *c)
{
    if (cmd == NULL || c == NULL || bc_command_kind_name(cmd->kind) == NULL)
        return BC_ERR_INVAL;
    bc_canon_begin(c, BC_COMMAND_DOMAIN);
    bc_canon_str(c, cmd->id);
    bc_canon_str(c, cmd->device);
    bc_canon_str(c, bc_command_kind_name(cmd->kind));
    bc_canon_i64(c, cmd->issued_at);
    bc_canon_i64(c, cmd->expires_at);
    bc_status rc = canon_params(cmd, c);
    return rc != BC_OK ? rc : bc_canon_status(c);
}

bc_status bc_command_sign(bc_command *cmd, EVP_PKEY *key, bc_error *err)
{
    if (cmd == NULL || key == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no command or no key to sign with");
    cmd->has_sig = false;
    bc_status rc = bc_command_validate(cmd, err);
    if (rc != BC_OK)
        return rc;
    bc_canon c = {0};
    rc = bc_command_canonical(cmd, &c);
    if (rc == BC_OK)
        rc = bc_sign(key, c.data, c.len, cmd->sig);
    bc_canon_free(&c);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot sign the command: %s", bc_strerror(rc));
    cmd->has_sig = true;
    return BC_OK;
}

/* ---------------------------------------------------------------- JSON */

static bc_status add_base64(cJSON *obj, const char *name, const uint8_t *bytes, size_t len)
{
    char text[128];
    bc_status rc = bc_base64_encode(bytes, len, text, sizeof(text));
    return rc == BC_OK ? bc_json_add_string(obj, name, text) : rc;
}

static bc_status add_firmware(cJSON *params, const bc_firmware_manifest *m, bc_error *err)
{
    cJSON *manifest = NULL;
    bc_status rc = bc_firmware_to_json(m, &manifest, err);
    if (rc != BC_OK)
        return rc;
    rc = bc_json_add_item(params, "manifest", manifest);
    if (rc != BC_OK)
        cJSON_Delete(manifest);
    return rc;
}

static bc_status add_config(cJSON *params, const bc_cmd_config *p)
{
    bc_status rc = BC_OK;
    if (p->has_health_interval_s)
        rc = bc_json_add_int(params, "health_interval_s", p->health_interval_s);
    if (rc == BC_OK && p->has_warning_timeout_s)
        rc = bc_json_add_int(params, "warning_timeout_s", p->warning_timeout_s);
    if (rc == BC_OK && p->has_pre_event_s)
        rc = bc_json_add_int(params, "pre_event_s", p->pre_event_s);
    return rc;
}

static bc_status add_params(cJSON *params, const bc_command *cmd, bc_error *err)
{
    bc_status rc = BC_OK;
    switch (cmd->kind) {
    case BC_CMD_UPLOAD:
        if (cmd->params.upload.recording_id[0] != '\0')
            rc = bc_json_add_string(params, "recording_id", cmd->params.upload.recording_id);
        return rc == BC_OK ? bc_json_add_int(params, "offset", cmd->params.upload.offset) : rc;
    case BC_CMD_VAULT_RECEIPT: {
        const bc_cmd_receipt *p = &cmd->params.receipt;
        rc = bc_json_add_string(params, "recording_id", p->recording_id);
        if (rc == BC_OK)
            rc = bc_json_add_string(params, "sha256", p->sha256);
        if (rc == BC_OK)
            rc = bc_json_add_int(params, "size", p->size);
        return rc == BC_OK ? bc_json_add_int(params, "committed_at", p->committed_at) : rc;
    }
    case BC_CMD_ROTATE_RECORDING_KEY:
        rc = bc_json_add_string(params, "key_id", cmd->params.recording_key.key_id);
        return rc == BC_OK ? add_base64(params, "public_key", cmd->params.recording_key.public_key,
                                        BC_RAW_KEY_LEN)
                           : rc;
    case BC_CMD_ROTATE_IDENTITY: {
        const bc_cmd_identity *p = &cmd->params.identity;
        rc = bc_json_add_string(params, "phase", bc_identity_phase_name(p->phase));
        if (rc == BC_OK && p->phase == BC_IDENTITY_INSTALL)
            rc = bc_json_add_string(params, "cert", p->cert);
        return rc;
    }
    case BC_CMD_FIRMWARE:
        return add_firmware(params, &cmd->params.firmware, err);
    case BC_CMD_CONFIG:
        return add_config(params, &cmd->params.config);
    default:
        return BC_ERR_INVAL;
    }
}

static bc_status build_json(const bc_command *cmd, cJSON *obj, bc_error *err)
{
    bc_status rc = bc_json_add_string(obj, "id", cmd->id);
    if (rc == BC_OK)
        rc = bc_json_add_string(obj, "device", cmd->device);
    if (rc == BC_OK)
        rc = bc_json_add_string(obj, "kind", bc_command_kind_name(cmd->kind));
    if (rc == BC_OK)
        rc = bc_json_add_int(obj, "issued_at", cmd->issued_at);
    if (rc == BC_OK)
        rc = bc_json_add_int(obj, "expires_at", cmd->expires_at);
    cJSON *params = cJSON_CreateObject();
    if (params == NULL)
        return BC_ERR_NOMEM;
    if (rc == BC_OK)
        rc = add_params(params, cmd, err);
    if (rc == BC_OK)
        rc = bc_json_add_item(obj, "params", params);
    if (rc != BC_OK) {
        cJSON_Delete(params);
        return rc;
    }
    return add_base64(obj, "sig", cmd->sig, BC_ED25519_SIG_LEN);
}

bc_status bc_command_encode(const bc_command *cmd, char **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the command");
    *out = NULL;
    bc_status rc = bc_command_validate(cmd, err);
    if (rc != BC_OK)
        return rc;
    if (!cmd->has_sig)
        return bc_fail(err, BC_ERR_INVAL, "command is not signed");
    cJSON *obj = NULL;
    rc = bc_json_new_message(&obj);
    if (rc == BC_OK)
        rc = build_json(cmd, obj, err);
    if (rc == BC_OK)
        rc = bc_json_print(obj, out);
    cJSON_Delete(obj);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot build the command JSON: %s", bc_strerror(rc));
    return BC_OK;
}

/* Reads base64 of exactly len bytes. */
static bc_status read_base64(const cJSON *obj, const char *name, uint8_t *out, size_t len,
                             bc_error *err)
{
    const char *text = NULL;
    size_t text_len = 0;
    bc_status rc = bc_json_get_string_ref(obj, name, BC_JSON_REQUIRED, bc_base64_encoded_len(len),
                                          &text, &text_len, err);
    if (rc != BC_OK)
        return rc;
    size_t n = 0;
    if (bc_base64_decode(text, text_len, out, len, &n) != BC_OK || n != len)
        return bc_fail(err, BC_ERR_PARSE, "field '%s' is not base64 of %zu bytes", name, len);
    return BC_OK;
}

static bc_status read_enum_name(const cJSON *obj, const char *name, const char *const *names,
                                int count, int *out, bc_error *err)
{
    char text[32];
    bc_status rc = bc_json_get_string(obj, name, BC_JSON_REQUIRED, text, sizeof(text), err);
    if (rc != BC_OK)
        return rc;
    for (int i = 0; i < count; i++) {
        if (strcmp(names[i], text) == 0) {
            *out = i;
            return BC_OK;
        }
    }
    return bc_fail(err, BC_ERR_INVAL, "field '%s' has an unknown value", name);
}

static bc_status read_upload(const cJSON *p, bc_cmd_upload *u, bc_error *err)
{
    bc_status rc = bc_json_get_string(p, "recording_id", BC_JSON_OPTIONAL, u->recording_id,
                                      sizeof(u->recording_id), err);
    if (rc == BC_OK)
        rc = bc_json_get_int(p, "offset", BC_JSON_OPTIONAL, 0, MAXI, &u->offset, err);
    return rc;
}

static bc_status read_receipt(const cJSON *p, bc_cmd_receipt *r, bc_error *err)
{
    bc_status rc = bc_json_get_string(p, "recording_id", BC_JSON_REQUIRED, r->recording_id,
                                      sizeof(r->recording_id), err);
    if (rc == BC_OK)
        rc = bc_json_get_string(p, "sha256", BC_JSON_REQUIRED, r->sha256, sizeof(r->sha256), err);
    if (rc == BC_OK)
        rc = bc_json_get_int(p, "size", BC_JSON_REQUIRED, 1, MAXI, &r->size, err);
    if (rc == BC_OK)
        rc = bc_json_get_int(p, "committed_at", BC_JSON_REQUIRED, 0, MAXI, &r->committed_at, err);
    return rc;
}

static bc_status read_recording_key(const cJSON *p, bc_cmd_recording_key *k, bc_error *err)
{
    bc_status rc =
        bc_json_get_string(p, "key_id", BC_JSON_REQUIRED, k->key_id, sizeof(k->key_id), err);
    return rc == BC_OK ? read_base64(p, "public_key", k->public_key, BC_RAW_KEY_LEN, err) : rc;
}

static bc_status read_identity(const cJSON *p, bc_cmd_identity *id, bc_error *err)
{
    int phase = 0;
    bc_status rc = read_enum_name(p, "phase", phase_names, BC_IDENTITY_PHASE_COUNT, &phase, err);
    if (rc != BC_OK)
        return rc;
    id->phase = (bc_identity_phase)phase;
    if (id->phase != BC_IDENTITY_INSTALL)
        return BC_OK;
    const char *pem = NULL;
    size_t len = 0;
    rc = bc_json_get_string_ref(p, "cert", BC_JSON_REQUIRED, BC_CERT_PEM_MAX, &pem, &len, err);
    if (rc != BC_OK)
        return rc;
    id->cert = malloc(len + 1);
    if (id->cert == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for field 'cert'");
    memcpy(id->cert, pem, len + 1);
    return BC_OK;
}

static bc_status read_config(const cJSON *p, bc_cmd_config *c, bc_error *err)
{
    c->has_health_interval_s = bc_json_has(p, "health_interval_s");
    c->has_warning_timeout_s = bc_json_has(p, "warning_timeout_s");
    c->has_pre_event_s = bc_json_has(p, "pre_event_s");
    bc_status rc = bc_json_get_int(p, "health_interval_s", BC_JSON_OPTIONAL, 1, CONFIG_HEALTH_MAX,
                                   &c->health_interval_s, err);
    if (rc == BC_OK)
        rc = bc_json_get_int(p, "warning_timeout_s", BC_JSON_OPTIONAL, 1, CONFIG_WARNING_MAX,
                             &c->warning_timeout_s, err);
    if (rc == BC_OK)
        rc = bc_json_get_int(p, "pre_event_s", BC_JSON_OPTIONAL, 0, CONFIG_PRE_EVENT_MAX,
                             &c->pre_event_s, err);
    return rc;
}

static bc_status read_params(const cJSON *root, bc_command *cmd, bc_error *err)
{
    const cJSON *p = NULL;
    bc_status rc = bc_json_get_object(root, "params", BC_JSON_REQUIRED, &p, err);
    if (rc != BC_OK)
        return rc;
    switch (cmd->kind) {
    case BC_CMD_UPLOAD:
        return read_upload(p, &cmd->params.upload, err);
    case BC_CMD_VAULT_RECEIPT:
        return read_receipt(p, &cmd->params.receipt, err);
    case BC_CMD_ROTATE_RECORDING_KEY:
        return read_recording_key(p, &cmd->params.recording_key, err);
    case BC_CMD_ROTATE_IDENTITY:
        return read_identity(p, &cmd->params.identity, err);
    case BC_CMD_FIRMWARE: {
        const cJSON *m = NULL;
        rc = bc_json_get_object(p, "manifest", BC_JSON_REQUIRED, &m, err);
        return rc == BC_OK ? bc_firmware_from_json(m, &cmd->params.firmware, err) : rc;
    }
    case BC_CMD_CONFIG:
        return read_config(p, &cmd->params.config, err);
    default:
        return bc_fail(err, BC_ERR_INVAL, "field 'kind' has no valid value");
    }
}

static bc_status read_command(const cJSON *root, bc_command *cmd, bc_error *err)
{
    int kind = 0;
    bc_status rc = bc_json_check_version(root, err);
    if (rc == BC_OK)
        rc = bc_json_get_string(root, "id", BC_JSON_REQUIRED, cmd->id, sizeof(cmd->id), err);
    if (rc == BC_OK)
        rc = bc_json_get_string(root, "device", BC_JSON_REQUIRED, cmd->device, sizeof(cmd->device),
                                err);
    if (rc == BC_OK)
        rc = read_enum_name(root, "kind", kind_names, BC_CMD_KIND_COUNT, &kind, err);
    cmd->kind = (bc_command_kind)kind;
    if (rc == BC_OK)
        rc = bc_json_get_int(root, "issued_at", BC_JSON_REQUIRED, 0, MAXI, &cmd->issued_at, err);
    if (rc == BC_OK)
        rc = bc_json_get_int(root, "expires_at", BC_JSON_REQUIRED, 0, MAXI, &cmd->expires_at, err);
    if (rc == BC_OK)
        rc = read_params(root, cmd, err);
    if (rc == BC_OK)
        rc = read_base64(root, "sig", cmd->sig, BC_ED25519_SIG_LEN, err);
    return rc;
}

bc_status bc_command_decode(const char *buf, size_t len, bc_command *cmd, bc_error *err)
{
    if (cmd == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the command");
    memset(cmd, 0, sizeof(*cmd));
    cJSON *root = NULL;
    bc_status rc = bc_json_parse(buf, len, BC_COMMAND_JSON_MAX, &root, err);
    if (rc != BC_OK)
        return rc;
    rc = read_command(root, cmd, err);
    cJSON_Delete(root);
    if (rc == BC_OK)
        rc = bc_command_validate(cmd, err);
    if (rc != BC_OK) {
        bc_command_free(cmd);
        memset(cmd, 0, sizeof(*cmd));
        return rc;
    }
    cmd->has_sig = true;
    return BC_OK;
}

bc_status bc_command_set_cert(bc_command *cmd, const char *pem)
{
    if (cmd == NULL || pem == NULL)
        return BC_ERR_INVAL;
    size_t len = strnlen(pem, BC_CERT_PEM_MAX + 1);
    if (len > BC_CERT_PEM_MAX)
        return BC_ERR_INVAL;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return BC_ERR_NOMEM;
    memcpy(copy, pem, len + 1);
    free(cmd->params.identity.cert);
    cmd->params.identity.cert = copy;
    return BC_OK;
}

void bc_command_free(bc_command *cmd)
{
    if (cmd == NULL || cmd->kind != BC_CMD_ROTATE_IDENTITY)
        return;
    free(cmd->params.identity.cert);
    cmd->params.identity.cert = NULL;
}

/* -------------------------------------------------------------- verify */

#define TERMINATED(array) (memchr((array), '\0', sizeof(array)) != NULL)

/* What the canonical encoder reads as C strings must end inside its array;
 * decode guarantees it, a struct built in memory might not. */
static bool strings_terminated(const bc_command *cmd)
{
    const bc_firmware_manifest *m = &cmd->params.firmware;
    if (!TERMINATED(cmd->id) || !TERMINATED(cmd->device))
        return false;
    switch (cmd->kind) {
    case BC_CMD_UPLOAD:
        return TERMINATED(cmd->params.upload.recording_id);
    case BC_CMD_VAULT_RECEIPT:
        return TERMINATED(cmd->params.receipt.recording_id) &&
               TERMINATED(cmd->params.receipt.sha256);
    case BC_CMD_ROTATE_RECORDING_KEY:
        return TERMINATED(cmd->params.recording_key.key_id);
    case BC_CMD_ROTATE_IDENTITY:
        return cmd->params.identity.phase != BC_IDENTITY_INSTALL ||
               (cmd->params.identity.cert != NULL &&
                strnlen(cmd->params.identity.cert, BC_CERT_PEM_MAX + 1) <= BC_CERT_PEM_MAX);
    case BC_CMD_FIRMWARE:
        return TERMINATED(m->version) && TERMINATED(m->sha256) && TERMINATED(m->min_version);
    default:
        return true;
    }
}

bc_status bc_command_verify(const bc_command *cmd, const char *self_device_id, EVP_PKEY *public_key,
                            int64_t now_ms, bc_replay_cache *cache, bc_error *err)
{
    if (cmd == NULL || self_device_id == NULL || public_key == NULL || cache == NULL)
        return bc_fail(err, BC_ERR_INVAL, "verify needs a command, an identity, a key, a cache");
    if (strncmp(cmd->device, self_device_id, sizeof(cmd->device)) != 0 ||
        strlen(self_device_id) >= sizeof(cmd->device))
        return bc_fail(err, BC_ERR_DENIED, "command is addressed to another device");
    if (!cmd->has_sig)
        return bc_fail(err, BC_ERR_SIGNATURE, "command is not signed");
    if (!strings_terminated(cmd))
        return bc_fail(err, BC_ERR_INVAL, "command holds an unterminated string");
    bc_canon c = {0};
    bc_status rc = bc_command_canonical(cmd, &c);
    if (rc == BC_OK)
        rc = bc_verify(public_key, c.data, c.len, cmd->sig);
    bc_canon_free(&c);
    if (rc == BC_ERR_SIGNATURE)
        return bc_fail(err, rc, "command signature does not verify");
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot verify the command: %s", bc_strerror(rc));
    /* A good signature over an invalid command is a signer bug: refused too. */
    rc = bc_command_validate(cmd, err);
    if (rc != BC_OK)
        return rc;
    if (cmd->issued_at > now_ms + BC_COMMAND_MAX_SKEW_MS)
        return bc_fail(err, BC_ERR_EXPIRED, "command is issued in the future");
    if (now_ms >= cmd->expires_at)
        return bc_fail(err, BC_ERR_EXPIRED, "command has expired");
    return bc_replay_cache_remember(cache, cmd->id, cmd->expires_at, now_ms, err);
}

/* -------------------------------------------------------- replay cache */

typedef struct replay_entry {
    char id[BC_ID_MAX + 1];
    int64_t expires_at;
} replay_entry;

struct bc_replay_cache {
    size_t capacity;
    size_t count;
    int64_t floor; /* every id expiring at or before this is refused */
    replay_entry *entries;
};

bc_status bc_replay_cache_new(size_t capacity, bc_replay_cache **out)
{
    if (out == NULL || capacity == 0 || capacity > SIZE_MAX / sizeof(replay_entry))
        return BC_ERR_INVAL;
    *out = NULL;
    bc_replay_cache *cache = calloc(1, sizeof(*cache));
    if (cache == NULL)
        return BC_ERR_NOMEM;
    cache->entries = calloc(capacity, sizeof(replay_entry));
    if (cache->entries == NULL) {
        free(cache);
        return BC_ERR_NOMEM;
    }
    cache->capacity = capacity;
    *out = cache;
    return BC_OK;
}

void bc_replay_cache_free(bc_replay_cache *cache)
{
    if (cache == NULL)
        return;
    free(cache->entries);
    free(cache);
}

size_t bc_replay_cache_count(const bc_replay_cache *cache)
{
    return cache != NULL ? cache->count : 0;
}

static void raise_floor(bc_replay_cache *cache, int64_t expires_at)
{
    if (expires_at > cache->floor)
        cache->floor = expires_at;
}

static void drop_entry(bc_replay_cache *cache, size_t i)
{
    raise_floor(cache, cache->entries[i].expires_at);
    cache->entries[i] = cache->entries[--cache->count];
}

static void forget_expired(bc_replay_cache *cache, int64_t now_ms)
{
    for (size_t i = cache->count; i-- > 0;) {
        if (cache->entries[i].expires_at <= now_ms)
            drop_entry(cache, i);
    }
}

static int known(const bc_replay_cache *cache, const char *id)
{
    for (size_t i = 0; i < cache->count; i++) {
        if (strcmp(cache->entries[i].id, id) == 0)
            return 1;
    }
    return 0;
}

/* Adds an entry known to be new; when full, whichever expires first (the
 * new one included) is forgotten and raises the floor. */
static void insert(bc_replay_cache *cache, const char *id, int64_t expires_at)
{
    if (cache->count == cache->capacity) {
        size_t first = 0;
        for (size_t i = 1; i < cache->count; i++) {
            if (cache->entries[i].expires_at < cache->entries[first].expires_at)
                first = i;
        }
        if (expires_at <= cache->entries[first].expires_at) {
            raise_floor(cache, expires_at);
            return;
        }
        drop_entry(cache, first);
    }
    replay_entry *e = &cache->entries[cache->count++];
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->expires_at = expires_at;
}

bc_status bc_replay_cache_remember(bc_replay_cache *cache, const char *id, int64_t expires_at,
                                   int64_t now_ms, bc_error *err)
{
    if (cache == NULL || !bc_id_valid(id))
        return bc_fail(err, BC_ERR_INVAL, "replay cache needs a valid command id");
    forget_expired(cache, now_ms);
    if (expires_at <= cache->floor)
        return bc_fail(err, BC_ERR_REPLAY,
                       "command expires before ids this device no longer remembers; "
                       "refused as a possible replay");
    if (known(cache, id))
        return bc_fail(err, BC_ERR_REPLAY, "command id was already used");
    insert(cache, id, expires_at);
    return BC_OK;
}

static bc_status io_fail(bc_error *err, const char *what, const char *path)
{
    int saved = errno;
    bc_fail(err, BC_ERR_IO, "cannot %s '%s': %s", what, path, strerror(saved));
    errno = saved;
    return BC_ERR_IO;
}

/* fsync of the directory makes the rename itself durable. */
static bc_status sync_dir_of(const char *path, bc_error *err)
{
    char copy[PATH_MAX];
    if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
        return bc_fail(err, BC_ERR_INVAL, "path is too long");
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(err, "open directory", dir);
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0 ? BC_OK : io_fail(err, "fsync directory", dir);
}

static int write_entries(FILE *f, const bc_replay_cache *cache)
{
    if (fprintf(f, "%s\nfloor %" PRId64 "\n", REPLAY_FILE_MAGIC, cache->floor) < 0)
        return -1;
    for (size_t i = 0; i < cache->count; i++) {
        if (fprintf(f, "%s %" PRId64 "\n", cache->entries[i].id, cache->entries[i].expires_at) < 0)
            return -1;
    }
    return 0;
}

/* A camera loses power mid-write: write path.new, flush it to the disk,
 * then rename over path, so path is always either the old or the new file,
 * never half of one. */
bc_status bc_replay_cache_save(const bc_replay_cache *cache, const char *path, bc_error *err)
{
    if (cache == NULL || path == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no cache or no path");
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
        return bc_fail(err, BC_ERR_INVAL, "path is too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return io_fail(err, "create", tmp);
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        bc_status rc = io_fail(err, "open", tmp);
        close(fd);
        unlink(tmp);
        return rc;
    }
    bc_status rc = BC_OK;
    if (write_entries(f, cache) != 0 || fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = io_fail(err, "write", tmp);
    if (fclose(f) != 0 && rc == BC_OK)
        rc = io_fail(err, "close", tmp);
    if (rc == BC_OK && rename(tmp, path) != 0)
        rc = io_fail(err, "rename to", path);
    if (rc != BC_OK) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return rc;
    }
    return sync_dir_of(path, err);
}

/* "<digits or -digits>\n" -> value; 0 on success. */
static int parse_i64_line(const char *s, int64_t *out)
{
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || strcmp(end, "\n") != 0)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* "<id> <expires_at>\n" */
static int parse_entry(char *line, char id[BC_ID_MAX + 1], int64_t *expires_at)
{
    char *space = strchr(line, ' ');
    if (space == NULL)
        return -1;
    *space = '\0';
    size_t len = strlen(line);
    if (!bc_id_valid(line) || len > BC_ID_MAX)
        return -1;
    memcpy(id, line, len + 1);
    return parse_i64_line(space + 1, expires_at);
}

static bc_status read_file(FILE *f, bc_replay_cache *into, const char *path, bc_error *err)
{
    char line[128];
    int64_t floor = 0;
    if (fgets(line, sizeof(line), f) == NULL || strcmp(line, REPLAY_FILE_MAGIC "\n") != 0)
        return bc_fail(err, BC_ERR_PARSE, "'%s' is not a replay cache file", path);
    if (fgets(line, sizeof(line), f) == NULL || strncmp(line, "floor ", 6) != 0 ||
        parse_i64_line(line + 6, &floor) != 0)
        return bc_fail(err, BC_ERR_PARSE, "'%s' has no floor line", path);
    into->floor = floor;
    size_t n = 2;
    while (fgets(line, sizeof(line), f) != NULL) {
        n++;
        char id[BC_ID_MAX + 1];
        int64_t expires_at = 0;
        if (parse_entry(line, id, &expires_at) != 0)
            return bc_fail(err, BC_ERR_PARSE, "'%s' line %zu is malformed", path, n);
        if (expires_at > into->floor && !known(into, id))
            insert(into, id, expires_at);
    }
    if (ferror(f))
        return io_fail(err, "read", path);
    return BC_OK;
}

bc_status bc_replay_cache_load(bc_replay_cache *cache, const char *path, bc_error *err)
{
    if (cache == NULL || path == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no cache or no path");
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT)
            return bc_fail(err, BC_ERR_NOT_FOUND, "replay cache '%s' does not exist", path);
        return io_fail(err, "open", path);
    }
    bc_replay_cache *fresh = NULL;
    bc_status rc = bc_replay_cache_new(cache->capacity, &fresh);
    if (rc != BC_OK) {
        fclose(f);
        return bc_fail(err, rc, "no memory for the replay cache");
    }
    rc = read_file(f, fresh, path, err);
    fclose(f);
    if (rc == BC_OK) { /* commit: swap the contents, free the old ones */
        bc_replay_cache old = *cache;
        *cache = *fresh;
        *fresh = old;
    }
    bc_replay_cache_free(fresh);
    return rc;
}
