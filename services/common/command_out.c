/*
 * command_out.c - signed commands for the outbox (command_out.h).
 */
#include "common/command_out.h"

#include <openssl/rand.h>

#include "common/clock.h"
#include "proto/encoding.h"

#define ID_RANDOM_BYTES 12

static bc_status command_id(char prefix, char out[BC_ID_MAX + 1])
{
    uint8_t rnd[ID_RANDOM_BYTES];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return BC_ERR_CRYPTO;
    out[0] = prefix;
    return bc_hex_encode(rnd, sizeof(rnd), out + 1, BC_ID_MAX);
}

bc_status bc_command_out_build(bc_command *cmd, EVP_PKEY *key, int64_t ttl_s, char id_prefix,
                               char topic[BC_TOPIC_MAX + 1], char **payload, bc_error *err)
{
    *payload = NULL;
    bc_status st = command_id(id_prefix, cmd->id);
    if (st != BC_OK)
        return bc_fail(err, st, "cannot make a command id");
    cmd->issued_at = bc_clock_now_ms();
    cmd->expires_at = cmd->issued_at + ttl_s * 1000;
    if ((st = bc_command_sign(cmd, key, err)) != BC_OK)
        return st;
    st = bc_topic_command(topic, BC_TOPIC_MAX + 1, cmd->device, bc_command_kind_name(cmd->kind));
    if (st != BC_OK)
        return bc_fail(err, st, "cannot build the command topic for %s", cmd->device);
    return bc_command_encode(cmd, payload, err);
}
