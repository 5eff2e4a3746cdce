/*
 * command.h - signed commands to cameras, and the replay cache that makes
 * each one usable once.
 *
 * JSON (topic devices/{device}/cmd/{kind}):
 *   {"v":1,"id","device","kind","issued_at","expires_at","params":{...},"sig"}
 * "sig" is base64 of an Ed25519 signature over the canonical encoding
 * (proto/sign.h) of the decoded struct, domain "bodycam/v1/cmd", fields:
 *
 *   id, device, kind (its name), issued_at, expires_at, then per kind
 *   upload                recording_id, offset
 *   vault-receipt         recording_id, sha256, size, committed_at
 *   rotate-recording-key  key_id, public_key (the 32 raw bytes)
 *   rotate-identity       phase (its name), cert ("" for request)
 *   firmware              the manifest's own canonical bytes, its 64-byte sig
 *   config                health_interval_s, warning_timeout_s, pre_event_s
 *                         (each -1 when absent)
 *
 * vault-receipt is signed by the vault's receipt key, every other kind by
 * the command key (bc_command_signer_of). A camera runs, in this order:
 * bc_command_decode (well-formed) then bc_command_verify (addressed to it,
 * signature, time window, replay). It should also check that the topic's
 * {kind} equals bc_command_kind_name(cmd.kind).
 */
#ifndef BC_PROTO_COMMAND_H
#define BC_PROTO_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/firmware.h"
#include "proto/sign.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_COMMAND_DOMAIN "bodycam/v1/cmd"
#define BC_COMMAND_JSON_MAX 16384
#define BC_COMMAND_MAX_LIFETIME_MS (24LL * 3600 * 1000) /* expires_at - issued_at */
#define BC_COMMAND_MAX_SKEW_MS (5LL * 60 * 1000)        /* issued_at ahead of now */
#define BC_CERT_PEM_MAX 8192
#define BC_REPLAY_CACHE_DEFAULT 1024 /* entries; a good capacity for a camera */

typedef enum bc_command_kind {
    BC_CMD_UPLOAD,
    BC_CMD_VAULT_RECEIPT,
    BC_CMD_ROTATE_RECORDING_KEY,
    BC_CMD_ROTATE_IDENTITY,
    BC_CMD_FIRMWARE,
    BC_CMD_CONFIG,
    BC_CMD_KIND_COUNT
} bc_command_kind;

/* "upload", "vault-receipt", ...; NULL for a value outside the enum. */
const char *bc_command_kind_name(bc_command_kind kind);

/* BC_ERR_INVAL for an unknown name (out unchanged). */
bc_status bc_command_kind_from_name(const char *name, bc_command_kind *out);

typedef enum bc_command_signer { BC_SIGNER_COMMAND_KEY, BC_SIGNER_RECEIPT_KEY } bc_command_signer;

/* Which public key verifies a command of this kind. */
bc_command_signer bc_command_signer_of(bc_command_kind kind);

typedef struct bc_cmd_upload {
    char recording_id[BC_ID_MAX + 1]; /* "" = every pending recording */
    int64_t offset;                   /* resume point in bytes; 0 when recording_id is "" */
} bc_cmd_upload;

typedef struct bc_cmd_receipt {
    char recording_id[BC_ID_MAX + 1];
    char sha256[BC_SHA256_HEX_LEN + 1]; /* lowercase hex of the committed recording */
    int64_t size;                       /* bytes, >= 1 */
    int64_t committed_at;               /* ms */
} bc_cmd_receipt;

typedef struct bc_cmd_recording_key {
    char key_id[BC_ID_MAX + 1];         /* must equal bc_key_id() of public_key */
    uint8_t public_key[BC_RAW_KEY_LEN]; /* raw X25519; base64 in JSON */
} bc_cmd_recording_key;

typedef enum bc_identity_phase {
    BC_IDENTITY_REQUEST, /* "request": make a new key and publish a CSR */
    BC_IDENTITY_INSTALL, /* "install": use cert */
    BC_IDENTITY_PHASE_COUNT
} bc_identity_phase;

const char *bc_identity_phase_name(bc_identity_phase phase);

typedef struct bc_cmd_identity {
    bc_identity_phase phase;
    char *cert; /* PEM certificate, install only; owned, see bc_command_free() */
} bc_cmd_identity;

/* Ranges: health_interval_s 1..86400, warning_timeout_s 1..3600,
 * pre_event_s 0..300. At least one must be present. */
typedef struct bc_cmd_config {
    bool has_health_interval_s;
    int64_t health_interval_s;
    bool has_warning_timeout_s;
    int64_t warning_timeout_s;
    bool has_pre_event_s;
    int64_t pre_event_s;
} bc_cmd_config;

typedef struct bc_command {
    char id[BC_ID_MAX + 1];            /* unique per command, bc_id_valid() */
    char device[BC_DEVICE_ID_MAX + 1]; /* the addressee */
    bc_command_kind kind;              /* selects the params member */
    int64_t issued_at;                 /* ms */
    int64_t expires_at;                /* ms, issued_at < expires_at <= issued_at + max lifetime */
    union {
        bc_cmd_upload upload;
        bc_cmd_receipt receipt;
        bc_cmd_recording_key recording_key;
        bc_cmd_identity identity;
        bc_firmware_manifest firmware; /* must itself be signed by the firmware key */
        bc_cmd_config config;
    } params;
    uint8_t sig[BC_ED25519_SIG_LEN];
    bool has_sig;
} bc_command;

/* Checks every field and the params of cmd->kind (not the signature).
 * BC_ERR_INVAL naming the field; BC_ERR_MISSING for a firmware manifest
 * without its own signature or an install without a cert. */
bc_status bc_command_validate(const bc_command *cmd, bc_error *err);

/* Builds the canonical bytes (see the top of this file) into c, which the
 * caller zero-initialises and frees with bc_canon_free(). Does not
 * validate; returns bc_canon_status(c) (BC_ERR_INVAL for a bad kind). */
bc_status bc_command_canonical(const bc_command *cmd, bc_canon *c);

/* Validates cmd and signs it with the private key (command key, or the
 * receipt key for vault-receipt): fills sig, sets has_sig. On failure
 * has_sig is false. */
bc_status bc_command_sign(bc_command *cmd, EVP_PKEY *key, bc_error *err);

/* Validates a signed command and prints its JSON into a malloc'd string
 * the caller free()s. BC_ERR_INVAL for an invalid or unsigned command. */
bc_status bc_command_encode(const bc_command *cmd, char **out, bc_error *err);

/* Parses at most BC_COMMAND_JSON_MAX bytes (bc_json_parse) into *cmd and
 * validates it. A missing "sig" is BC_ERR_MISSING, a sig that is not base64
 * of 64 bytes BC_ERR_PARSE; other statuses as in json.h. Does not verify
 * the signature. On success the caller owns cmd's memory
 * (bc_command_free); on failure nothing is left to free. */
bc_status bc_command_decode(const char *buf, size_t len, bc_command *cmd, bc_error *err);

/* Copies pem into cmd->params.identity.cert (freeing an older one). */
bc_status bc_command_set_cert(bc_command *cmd, const char *pem);

/* Releases what cmd owns (an identity cert); the struct may be reused. */
void bc_command_free(bc_command *cmd);

typedef struct bc_replay_cache bc_replay_cache;

/* Checks, in this order, and stops at the first failure:
 *   cmd->device is self_device_id                    else BC_ERR_DENIED
 *   cmd carries a signature by public_key over its
 *   canonical bytes                                   else BC_ERR_SIGNATURE
 *   cmd is valid (bc_command_validate)                else its status
 *   issued_at <= now_ms + BC_COMMAND_MAX_SKEW_MS and
 *   now_ms < expires_at                               else BC_ERR_EXPIRED
 *   cmd->id not seen before (bc_replay_cache_remember) else BC_ERR_REPLAY
 * On BC_OK the id is now in cache: a second verify of the same command is
 * BC_ERR_REPLAY. Persist the cache (bc_replay_cache_save) before acting on
 * the command. public_key is the key bc_command_signer_of(cmd->kind) names. */
bc_status bc_command_verify(const bc_command *cmd, const char *self_device_id, EVP_PKEY *public_key,
                            int64_t now_ms, bc_replay_cache *cache, bc_error *err);

/*
 * The replay cache remembers (id, expires_at) of accepted commands until
 * they expire. It never grows past its capacity: when full, the entry that
 * expires first is dropped and the cache's "floor" rises to its expiry;
 * any command expiring at or before the floor is then refused as a possible
 * replay. Dropping expired entries raises the floor the same way, so a clock
 * that jumps back cannot revive a forgotten command.
 */

/* A new empty cache of capacity entries (>= 1). BC_ERR_NOMEM; the caller
 * frees it with bc_replay_cache_free(). */
bc_status bc_replay_cache_new(size_t capacity, bc_replay_cache **out);

void bc_replay_cache_free(bc_replay_cache *cache);

/* Records id (bc_id_valid) as used until expires_at. BC_ERR_REPLAY if it is
 * already known or expires_at is at or below the floor; BC_ERR_INVAL for a
 * bad id. Forgets entries that expired by now_ms first. */
bc_status bc_replay_cache_remember(bc_replay_cache *cache, const char *id, int64_t expires_at,
                                   int64_t now_ms, bc_error *err);

/* Entries currently held. */
size_t bc_replay_cache_count(const bc_replay_cache *cache);

/* Writes the cache to path durably: path.new, fsync, rename, fsync of the
 * directory. BC_ERR_IO (errno kept) on failure; path is then unchanged. */
bc_status bc_replay_cache_save(const bc_replay_cache *cache, const char *path, bc_error *err);

/* Replaces the cache's content with the file's. BC_ERR_NOT_FOUND when the
 * file does not exist, BC_ERR_IO when unreadable, BC_ERR_PARSE when
 * malformed; in every failure the cache is unchanged. Entries beyond the
 * capacity are dropped earliest-expiry first (raising the floor). */
bc_status bc_replay_cache_load(bc_replay_cache *cache, const char *path, bc_error *err);

#endif
