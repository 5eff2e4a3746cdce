/*
 * agent_config.h - bodycam-agent's configuration: the option table (one
 * place for the file, --set, the checks and --help's reference) and, for
 * simulation mode, one camera configuration per device of a stack.json.
 *
 * Precedence: defaults < config file < --set NAME=VALUE; then, inside each
 * camera's data directory, remote.conf (values the backend set with config
 * commands) is applied when the camera opens.
 */
#ifndef BC_AGENT_AGENT_CONFIG_H
#define BC_AGENT_AGENT_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "common/config.h"
#include "device-agent/camera.h"
#include "proto/status.h"

#define BC_AGENT_CONFIG_MAX_OPTIONS 64

/* The whole process configuration. */
typedef struct bc_agent_config {
    bc_camera_config camera;
    char log_level[16]; /* debug, info, warn, error */
} bc_agent_config;

/* Fills table (room for BC_AGENT_CONFIG_MAX_OPTIONS) with the options over
 * cfg's fields and returns how many there are. */
size_t bc_agent_config_table(bc_agent_config *cfg, bc_config_option *table);

/* Resets cfg to the defaults of the table. BC_ERR_INVAL only if a default
 * is broken (a bug). */
bc_status bc_agent_config_defaults(bc_agent_config *cfg, bc_error *err);

/* Loads path over cfg (as bc_config_load_file). */
bc_status bc_agent_config_load(bc_agent_config *cfg, const char *path, bc_error *err);

/* Applies one NAME=VALUE. */
bc_status bc_agent_config_set(bc_agent_config *cfg, const char *pair, bc_error *err);

/* Checks the log level and the camera part (bc_camera_config_check). */
bc_status bc_agent_config_check(const bc_agent_config *cfg, bc_error *err);

/* Prints the option reference (for --help). */
void bc_agent_config_print(FILE *out);

/* Simulation: one camera configuration per device of the stack description
 * at path (design.md "Operating contract": devices.{id}.{cert,key,data_dir,
 * control_socket}, mqtt.{host,tls_port}, ca_cert, keys.{command,receipt,
 * recording}.public, keys.recording.key_id, and keys.firmware.public when
 * present and base has no firmware_pubkey), each a copy of base with
 * those fields replaced, for the first max devices in the file's order
 * (max 0: all). *out is a malloc'd array of *count configurations the
 * caller free()s. BC_ERR_IO / BC_ERR_NOT_FOUND (unreadable), BC_ERR_PARSE
 * and friends naming the field, BC_ERR_INVAL when it has fewer than max
 * devices, BC_ERR_NOMEM. */
bc_status bc_agent_config_from_stack(const char *path, const bc_camera_config *base, size_t max,
                                     bc_camera_config **out, size_t *count, bc_error *err);

#endif
