/*
 * command_out.h - a service's signed command to one camera, ready for the
 * outbox (bodycam:stream:outbox): a fresh id, its time window, the
 * signature by the command key, the topic and the JSON. Shared by the
 * campaign-style services (key rotation, firmware rollout), which queue
 * the result in the same Lua script that marks the camera.
 */
#ifndef BC_COMMON_COMMAND_OUT_H
#define BC_COMMON_COMMAND_OUT_H

#include <stdint.h>

#include <openssl/evp.h>

#include "proto/command.h"
#include "proto/status.h"
#include "proto/topic.h"

/* Fills cmd's id (id_prefix and 24 random hex digits), issued_at (now)
 * and expires_at (ttl_s later), signs it with key and encodes it; topic
 * gets bodycam/v1/devices/<device>/cmd/<kind>. The caller fills device,
 * kind and params first and owns *payload (free()), NULL on failure.
 * BC_ERR_CRYPTO (no random id), the statuses of bc_command_sign and
 * bc_command_encode. */
bc_status bc_command_out_build(bc_command *cmd, EVP_PKEY *key, int64_t ttl_s, char id_prefix,
                               char topic[BC_TOPIC_MAX + 1], char **payload, bc_error *err);

#endif
