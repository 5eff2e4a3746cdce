/*
 * commands.h - signed commands to the camera: verify, refuse with a reason,
 * dispatch, ack.
 *
 * Every message on devices/{self}/cmd/{kind} goes through, in this order:
 *   1. the topic: a command topic of this camera (else logged and dropped:
 *      the broker's ACL should never deliver one);
 *   2. bc_command_decode (well-formed), and the topic's {kind} must be the
 *      command's kind;
 *   3. bc_command_verify with the key bc_command_signer_of names (the
 *      pinned command key, or the vault's receipt key for vault-receipt),
 *      bc_clock_now_ms() and the persistent replay cache
 *      (DATA_DIR/replay.cache);
 *   4. the replay cache is saved durably BEFORE the command acts, so a
 *      crash right after cannot let the same command act twice;
 *   5. the handler of its kind (a kind without a handler is answered "not
 *      supported yet"). The firmware handler checks the manifest inside the
 *      command against the firmware key itself (updater.h): the command key
 *      alone cannot push firmware.
 *      A handler that can only answer later (rotate-identity install: the
 *      ack goes out over the new connection) calls bc_commands_defer_ack()
 *      and later bc_commands_ack().
 * Every command with a usable id gets exactly one ack (ok, or an error
 * whose reason starts with a word a test or an operator can match:
 * "malformed", "wrong topic", "not for this camera", "bad signature",
 * "invalid", "expired", "replayed", "internal", "not supported yet", or
 * the handler's own sentence - the camera's rotate-identity ones start with
 * "certificate not accepted", "busy", "new certificate refused" or
 * "interrupted"; the firmware ones with "firmware refused"). A command
 * whose id cannot be read gets no ack. Every refusal is logged with its
 * reason. (An install whose ack a crash may
 * have lost is acked again at the next start: the backend drops repeats.)
 */
#ifndef BC_AGENT_COMMANDS_H
#define BC_AGENT_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/command.h"
#include "proto/message.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_COMMANDS_REPLAY_FILE "replay.cache"

typedef struct bc_commands bc_commands;

/* What the camera does with a verified command. A handler returns BC_OK
 * (ack ok) or a failure with a sentence in err (the ack's error; cut to
 * what an ack can carry). NULL handler: "not supported yet". */
typedef bc_status (*bc_commands_handler)(const bc_command *cmd, void *userdata, bc_error *err);

typedef struct bc_commands_handlers {
    bc_commands_handler upload;
    bc_commands_handler vault_receipt;
    bc_commands_handler rotate_recording_key;
    bc_commands_handler config;
    bc_commands_handler rotate_identity;
    bc_commands_handler firmware;
    /* Optional: a decoded command was refused before any handler ran
     * (wrong topic, verification, replay cache); reason as in its ack.
     * The camera reports a refused vault receipt this way. */
    void (*refused)(const bc_command *cmd, bc_status status, const char *reason, void *userdata);
    /* Sends an ack (the camera puts it in the outbox). Required. */
    bc_status (*send_ack)(const bc_msg_ack *ack, void *userdata);
} bc_commands_handlers;

/* Counters for the status line and tests. */
typedef struct bc_commands_stats {
    uint64_t received;
    uint64_t accepted; /* verified and handled with BC_OK */
    uint64_t refused;  /* any error ack, and drops without an ack */
} bc_commands_stats;

/* Opens the command side of one camera: loads data_dir/replay.cache (a
 * missing file is an empty cache; an unreadable or corrupt one is logged
 * and replaced by an empty cache on the next save). command_key and
 * receipt_key are Ed25519 public keys; a reference to each is taken (the
 * caller keeps its own). handlers is copied. BC_ERR_INVAL (naming the
 * argument), BC_ERR_NOMEM. Free with bc_commands_free(). */
bc_status bc_commands_open(const char *device_id, const char *data_dir, EVP_PKEY *command_key,
                           EVP_PKEY *receipt_key, const bc_commands_handlers *handlers,
                           void *userdata, bc_commands **out, bc_error *err);

void bc_commands_free(bc_commands *c);

/* Handles one incoming message (topic and payload as received). Never
 * fails: what went wrong is acked and/or logged. */
void bc_commands_handle(bc_commands *c, const char *topic, const void *payload, size_t len);

void bc_commands_stats_get(const bc_commands *c, bc_commands_stats *out);

/* Called by a handler, during its call, that returns BC_OK but answers
 * later: no ack is sent when it returns. A no-op outside a handler. */
void bc_commands_defer_ack(bc_commands *c);

/* Sends the ack of a command answered later (error NULL: ok; else its
 * reason, cut to what an ack carries) and counts it as accepted or
 * refused. Also for the ack of a command a restart interrupted. Returns
 * the status of send_ack (BC_OK: the ack is queued). */
bc_status bc_commands_ack(bc_commands *c, const char *cmd_id, bc_command_kind kind,
                          const char *error);

#endif
