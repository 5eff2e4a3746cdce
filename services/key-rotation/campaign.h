/*
 * campaign.h - key rotation campaigns in Redis (library bc_keyrot, shared
 * by bodycam-key-rotation, bodycam-vault and bodycamctl). The key layout
 * and the states are in services/key-rotation/README.md ("Campaigns").
 *
 * Every change is one Lua script (check, then change). Statuses as in
 * services/vault/catalog.h: BC_ERR_UNAVAILABLE (Redis), BC_ERR_NOT_FOUND,
 * BC_ERR_STATE (not allowed now; err says why), BC_ERR_INVAL, BC_ERR_PARSE.
 */
#ifndef BC_KEYROT_CAMPAIGN_H
#define BC_KEYROT_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_CAMPAIGN_ID_MAX 32
#define BC_VAULT_CONTROL_STREAM "bodycam:stream:vault-control"

typedef enum bc_campaign_kind {
    BC_CAMPAIGN_RECORDING_KEY, /* "recording-key" */
    BC_CAMPAIGN_IDENTITY,      /* "identity" */
} bc_campaign_kind;

typedef enum bc_campaign_state {
    BC_CAMPAIGN_AWAITING_KEY, /* "awaiting_key": the vault has not made the key yet */
    BC_CAMPAIGN_RUNNING,      /* "running" */
    BC_CAMPAIGN_PAUSED,       /* "paused" */
    BC_CAMPAIGN_DONE,         /* "done" */
    BC_CAMPAIGN_ABORTED,      /* "aborted" */
} bc_campaign_state;

/* The vault made the campaign's recording key: sets key_id and moves the
 * campaign from awaiting_key to running (started_at = now_ms). A campaign
 * that has a key_id already is left alone and *already (may be NULL) set:
 * the vault must then not make another key. BC_ERR_NOT_FOUND, BC_ERR_STATE
 * (not a recording-key campaign, or aborted). */
bc_status bc_campaign_key_ready(bc_redis *r, const char *campaign_id, const char *key_id,
                                int64_t now_ms, bool *already, bc_error *err);

/* The key_id a campaign got already ("" when none yet): the vault checks
 * this before making a key, so a redelivered request makes none. */
bc_status bc_campaign_key_of(bc_redis *r, const char *campaign_id, char *key_id, size_t size,
                             bc_error *err);

#endif
