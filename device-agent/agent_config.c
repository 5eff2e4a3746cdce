/*
 * agent_config.c - the option table of bodycam-agent and stack.json.
 *
 * The table is built over a given struct (field addresses), so the same
 * description serves the process configuration and the scratch copy that
 * simulation mode fills per camera file.
 */
#include "device-agent/agent_config.h"

#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/log.h"
#include "proto/json.h"

#define STACK_JSON_MAX (64 * 1024 * 1024)
#define CFG_STRING BC_CFG_STRING, 0, 0
#define CFG_INT(lo, hi) BC_CFG_INT, (lo), (hi)

size_t bc_agent_config_table(bc_agent_config *cfg, bc_config_option *t)
{
    bc_camera_config *c = &cfg->camera;
    const bc_config_option table[] = {
        {"device_id", CFG_STRING, NULL, c->device_id, sizeof(c->device_id), NULL,
         "this camera's id (= its certificate CN); required"},
        {"data_dir", CFG_STRING, NULL, c->data_dir, sizeof(c->data_dir), NULL,
         "state, outbox, recordings; made 0700 if missing; required"},
        {"mqtt_host", CFG_STRING, "127.0.0.1", c->mqtt_host, sizeof(c->mqtt_host), NULL,
         "broker address"},
        {"mqtt_port", CFG_INT(1, 65535), "8883", &c->mqtt_port, 0, NULL, "broker TLS port"},
        {"ca_file", CFG_STRING, NULL, c->ca_file, sizeof(c->ca_file), NULL,
         "the fleet CA certificate (PEM); required"},
        {"cert_file", CFG_STRING, NULL, c->cert_file, sizeof(c->cert_file), NULL,
         "this camera's certificate (PEM); required"},
        {"key_file", CFG_STRING, NULL, c->key_file, sizeof(c->key_file), NULL,
         "this camera's private key (PEM); required"},
        {"command_pubkey", CFG_STRING, NULL, c->command_pubkey, sizeof(c->command_pubkey), NULL,
         "Ed25519 public key that signs commands (pinned); required"},
        {"receipt_pubkey", CFG_STRING, NULL, c->receipt_pubkey, sizeof(c->receipt_pubkey), NULL,
         "the vault's Ed25519 receipt public key; required"},
        {"recording_pubkey", CFG_STRING, NULL, c->recording_pubkey, sizeof(c->recording_pubkey),
         NULL, "the vault's X25519 recording public key; required"},
        {"recording_key_id", CFG_STRING, "", c->recording_key_id, sizeof(c->recording_key_id), NULL,
         "its key id, checked against the key when set"},
        {"control_socket", CFG_STRING, "", c->control_socket, sizeof(c->control_socket), NULL,
         "the buttons' UNIX socket; empty: DATA_DIR/control.sock; none: no socket"},
        {"fw_version", CFG_STRING, "1.0.0", c->fw_version, sizeof(c->fw_version), NULL,
         "the factory firmware version (slot a before any update); birth and health report "
         "the active slot's version"},
        {"keepalive_s", CFG_INT(5, 65535), "30", &c->keepalive_s, 0, "s", "MQTT keepalive"},
        {"backoff_min_ms", CFG_INT(1, 600000), "500", &c->backoff_min_ms, 0, "ms",
         "reconnect backoff: first cap (full jitter below it)"},
        {"backoff_max_ms", CFG_INT(1, 3600000), "30000", &c->backoff_max_ms, 0, "ms",
         "reconnect backoff: largest cap"},
        {"connect_timeout_ms", CFG_INT(100, 600000), "10000", &c->connect_timeout_ms, 0, "ms",
         "a connection attempt without CONNACK by then is abandoned"},
        {"inflight_window", CFG_INT(1, 1024), "16", &c->inflight_window, 0, NULL,
         "outbox messages published and not yet acknowledged"},
        {"health_interval_s", CFG_INT(1, 86400), "60", &c->health_interval_s, 0, "s",
         "health report period"},
        {"warning_timeout_s", CFG_INT(1, 3600), "120", &c->warning_timeout_s, 0, "s",
         "warnings expire (de-escalated) after this"},
        {"pre_event_s", CFG_INT(0, 300), "30", &c->pre_event_s, 0, "s",
         "pre-event buffer kept in memory on standby; 0 = off"},
        {"video_source", CFG_STRING, "synthetic:8000000", c->video_source, sizeof(c->video_source),
         NULL, "synthetic:BITRATE[:SEED] (seed: from the device id), a file, or - (stdin)"},
        {"video_bitrate_bps", CFG_INT(1, 1000000000), "8000000", &c->video_bitrate_bps, 0, "bit/s",
         "bitrate of a file/stdin source (sizes the pre-event buffer)"},
        {"video_tick_ms", CFG_INT(10, 10000), "100", &c->video_tick_ms, 0, "ms",
         "synthetic source: how often bytes are pulled"},
        {"flush_interval_ms", CFG_INT(100, 60000), "1000", &c->flush_interval_ms, 0, "ms",
         "recording: fdatasync period (bounds what a power cut loses)"},
        {"segment_size", CFG_INT(0, 16777216), "0", &c->segment_size, 0, "bytes",
         "recording segment size; 0 = the format's default"},
        {"upload_chunk_size", CFG_INT(0, 65536), "0", &c->upload_chunk_size, 0, "bytes",
         "upload chunk size; 0 = default"},
        {"upload_window", CFG_INT(0, 256), "0", &c->upload_window, 0, NULL,
         "upload chunks in flight; 0 = default"},
        {"receipt_wait_s", CFG_INT(1, 86400), "120", &c->receipt_wait_s, 0, "s",
         "a fully sent recording without a receipt after this gets its manifest again "
         "(doubling per retry)"},
        {"upload_on_dock", BC_CFG_BOOL, 0, 1, "true", &c->upload_on_dock, 0, NULL,
         "hand recordings to the vault while docked and connected"},
        {"outbox_max_messages", CFG_INT(1, 1000000), "10000", &c->outbox_max_messages, 0, NULL,
         "events and acks kept while offline"},
        {"outbox_max_bytes", CFG_INT(1024, 1073741824), "16777216", &c->outbox_max_bytes, 0,
         "bytes", "their total size"},
        {"battery_drain_standby_pct_h", CFG_INT(0, 100), "3", &c->battery_drain_standby_pct_h, 0,
         "%/h", "simulated battery drain on standby"},
        {"battery_drain_recording_pct_h", CFG_INT(0, 100), "20", &c->battery_drain_recording_pct_h,
         0, "%/h", "simulated battery drain while recording"},
        {"battery_charge_pct_h", CFG_INT(0, 1000), "50", &c->battery_charge_pct_h, 0, "%/h",
         "simulated charging while docked"},
        {"battery_start_pct", CFG_INT(0, 100), "100", &c->battery_start_pct, 0, "%",
         "simulated battery level at start"},
        {"temperature_base_c", CFG_INT(-40, 80), "30", &c->temperature_base_c, 0, "C",
         "simulated temperature on standby"},
        {"signal_base_dbm", CFG_INT(-150, 0), "-65", &c->signal_base_dbm, 0, "dBm",
         "simulated signal strength"},
        {"identity_trial_s", CFG_INT(1, 3600), "30", &c->identity_trial_s, 0, "s",
         "identity rotation: a new certificate must connect within this, else the camera "
         "goes back to the old one"},
        {"identity_trial_attempts", CFG_INT(1, 1000), "3", &c->identity_trial_attempts, 0, NULL,
         "identity rotation: refused attempts with a new certificate before going back"},
        {"firmware_pubkey", CFG_STRING, "", c->firmware_pubkey, sizeof(c->firmware_pubkey), NULL,
         "Ed25519 public key that signs firmware manifests (PEM); empty: every firmware "
         "command is refused"},
        {"fw_min_battery_pct", CFG_INT(0, 100), "30", &c->fw_min_battery_pct, 0, "%",
         "firmware: install on standby only with this much battery (docked: always)"},
        {"fw_confirm_s", CFG_INT(1, 86400), "30", &c->fw_confirm_s, 0, "s",
         "firmware: health check time after the switch to a new version"},
        {"fw_trial_timeout_s", CFG_INT(1, 604800), "300", &c->fw_trial_timeout_s, 0, "s",
         "firmware: a new version not confirmed by then goes back to the previous slot"},
        {"fw_download_window", CFG_INT(1, 64), "4", &c->fw_download_window, 0, NULL,
         "firmware: chunk topics subscribed at a time"},
        {"fw_chunk_timeout_s", CFG_INT(1, 3600), "30", &c->fw_chunk_timeout_s, 0, "s",
         "firmware: no chunk for this long: subscribe again; the 4th time the update fails"},
        {"log_level", CFG_STRING, "info", cfg->log_level, sizeof(cfg->log_level), NULL,
         "debug, info, warn or error"},
    };
    size_t n = sizeof(table) / sizeof(table[0]);
    memcpy(t, table, sizeof(table));
    return n;
}

bc_status bc_agent_config_defaults(bc_agent_config *cfg, bc_error *err)
{
    bc_config_option table[BC_AGENT_CONFIG_MAX_OPTIONS];
    memset(cfg, 0, sizeof(*cfg));
    size_t n = bc_agent_config_table(cfg, table);
    return bc_config_defaults(table, n, err);
}

bc_status bc_agent_config_load(bc_agent_config *cfg, const char *path, bc_error *err)
{
    bc_config_option table[BC_AGENT_CONFIG_MAX_OPTIONS];
    size_t n = bc_agent_config_table(cfg, table);
    return bc_config_load_file(table, n, path, err);
}

bc_status bc_agent_config_set(bc_agent_config *cfg, const char *pair, bc_error *err)
{
    bc_config_option table[BC_AGENT_CONFIG_MAX_OPTIONS];
    size_t n = bc_agent_config_table(cfg, table);
    return bc_config_set_pair(table, n, pair, err);
}

bc_status bc_agent_config_check(const bc_agent_config *cfg, bc_error *err)
{
    bc_log_level level;
    if (bc_log_level_parse(cfg->log_level, &level) != 0)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'log_level': '%s' is not debug, info, warn "
                       "or error",
                       cfg->log_level);
    return bc_camera_config_check(&cfg->camera, err);
}

void bc_agent_config_print(FILE *out)
{
    bc_agent_config scratch;
    bc_config_option table[BC_AGENT_CONFIG_MAX_OPTIONS];
    memset(&scratch, 0, sizeof(scratch));
    size_t n = bc_agent_config_table(&scratch, table);
    bc_config_print_reference(table, n, out);
}

/* ---- stack.json ---- */

static bc_status get_path(const cJSON *obj, const char *name, char *out, size_t size, bc_error *err)
{
    return bc_json_get_string(obj, name, BC_JSON_REQUIRED, out, size, err);
}

/* The fields every camera shares: broker, CA, keys. */
/* keys.firmware.public, when the stack has a firmware key and no
 * firmware_pubkey was configured. */
static bc_status stack_firmware_key(const cJSON *keys, bc_camera_config *c, bc_error *err)
{
    const cJSON *fw = NULL;
    if (c->firmware_pubkey[0] != '\0')
        return BC_OK;
    bc_status st = bc_json_get_object(keys, "firmware", BC_JSON_OPTIONAL, &fw, err);
    if (st != BC_OK || fw == NULL)
        return st;
    return bc_json_get_string(fw, "public", BC_JSON_OPTIONAL, c->firmware_pubkey,
                              sizeof(c->firmware_pubkey), err);
}

static bc_status stack_common(const cJSON *root, bc_camera_config *c, bc_error *err)
{
    const cJSON *mqtt = NULL, *keys = NULL, *cmd = NULL, *rcpt = NULL, *rec = NULL;
    bc_status st = bc_json_get_object(root, "mqtt", BC_JSON_REQUIRED, &mqtt, err);
    if (st == BC_OK)
        st = get_path(mqtt, "host", c->mqtt_host, sizeof(c->mqtt_host), err);
    if (st == BC_OK)
        st = bc_json_get_int(mqtt, "tls_port", BC_JSON_REQUIRED, 1, 65535, &c->mqtt_port, err);
    if (st == BC_OK)
        st = get_path(root, "ca_cert", c->ca_file, sizeof(c->ca_file), err);
    if (st == BC_OK)
        st = bc_json_get_object(root, "keys", BC_JSON_REQUIRED, &keys, err);
    if (st == BC_OK)
        st = bc_json_get_object(keys, "command", BC_JSON_REQUIRED, &cmd, err);
    if (st == BC_OK)
        st = bc_json_get_object(keys, "receipt", BC_JSON_REQUIRED, &rcpt, err);
    if (st == BC_OK)
        st = bc_json_get_object(keys, "recording", BC_JSON_REQUIRED, &rec, err);
    if (st == BC_OK)
        st = get_path(cmd, "public", c->command_pubkey, sizeof(c->command_pubkey), err);
    if (st == BC_OK)
        st = get_path(rcpt, "public", c->receipt_pubkey, sizeof(c->receipt_pubkey), err);
    if (st == BC_OK)
        st = get_path(rec, "public", c->recording_pubkey, sizeof(c->recording_pubkey), err);
    if (st == BC_OK)
        st = bc_json_get_string(rec, "key_id", BC_JSON_OPTIONAL, c->recording_key_id,
                                sizeof(c->recording_key_id), err);
    if (st == BC_OK)
        st = stack_firmware_key(keys, c, err);
    return st;
}

static bc_status stack_device(const cJSON *dev, bc_camera_config *c, bc_error *err)
{
    if (dev->string == NULL || strlen(dev->string) >= sizeof(c->device_id))
        return bc_fail(err, BC_ERR_INVAL, "stack.json: a device id is too long");
    snprintf(c->device_id, sizeof(c->device_id), "%s", dev->string);
    bc_status st = get_path(dev, "cert", c->cert_file, sizeof(c->cert_file), err);
    if (st == BC_OK)
        st = get_path(dev, "key", c->key_file, sizeof(c->key_file), err);
    if (st == BC_OK)
        st = get_path(dev, "data_dir", c->data_dir, sizeof(c->data_dir), err);
    if (st == BC_OK)
        st = bc_json_get_string(dev, "control_socket", BC_JSON_OPTIONAL, c->control_socket,
                                sizeof(c->control_socket), err);
    return st;
}

static bc_status stack_devices(const cJSON *root, const bc_camera_config *common, size_t max,
                               bc_camera_config **out, size_t *count, bc_error *err)
{
    const cJSON *devices = NULL;
    bc_status st = bc_json_get_object(root, "devices", BC_JSON_REQUIRED, &devices, err);
    if (st != BC_OK)
        return st;
    size_t total = (size_t)cJSON_GetArraySize(devices);
    size_t n = max == 0 || max > total ? total : max;
    if (n == 0 || (max > 0 && total < max))
        return bc_fail(err, BC_ERR_INVAL, "stack.json has %zu devices, %zu wanted", total, max);
    bc_camera_config *list = calloc(n, sizeof(*list));
    if (list == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for %zu cameras", n);
    size_t i = 0;
    for (const cJSON *dev = devices->child; dev != NULL && i < n && st == BC_OK; dev = dev->next) {
        list[i] = *common;
        st = stack_device(dev, &list[i], err);
        i++;
    }
    if (st != BC_OK) {
        free(list);
        return st;
    }
    *out = list;
    *count = n;
    return BC_OK;
}

bc_status bc_agent_config_from_stack(const char *path, const bc_camera_config *base, size_t max,
                                     bc_camera_config **out, size_t *count, bc_error *err)
{
    *out = NULL;
    *count = 0;
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    bc_camera_config common = *base;
    bc_status st = bc_file_read_all(path, STACK_JSON_MAX, &text, &len, err);
    if (st == BC_OK)
        st = bc_json_parse(text, len, STACK_JSON_MAX, &root, err);
    if (st == BC_OK)
        st = stack_common(root, &common, err);
    if (st == BC_OK)
        st = stack_devices(root, &common, max, out, count, err);
    cJSON_Delete(root);
    free(text);
    return st;
}
