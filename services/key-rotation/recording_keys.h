/*
 * recording_keys.h - the vault's recording keys as Redis lists them (read
 * only; the vault writes them: services/key-rotation/README.md, "Recording
 * key rotation"). Library bc_keyrot; bodycamctl's "keys list".
 *
 *   bodycam:recording-keys            set of key ids
 *   bodycam:recording-key:<key_id>    hash: key_id, public (base64 of the raw
 *                                     32 bytes), created_at, status
 *                                     (current|retired|destroyed),
 *                                     retired_at, destroyed_at
 *   bodycam:recording-keys:current    the current key id
 *
 * Statuses: BC_ERR_UNAVAILABLE (Redis), BC_ERR_PARSE (a reply that does
 * not fit). The private halves are never in Redis.
 */
#ifndef BC_KEYROT_RECORDING_KEYS_H
#define BC_KEYROT_RECORDING_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/status.h"
#include "proto/topic.h"

typedef struct bc_recording_key {
    char key_id[BC_ID_MAX + 1];
    char status[16];      /* as the vault wrote it; "" when the record is missing */
    int64_t created_at;   /* ms; 0 when unknown */
    int64_t retired_at;   /* ms; 0 while not retired */
    int64_t destroyed_at; /* ms; 0 while not destroyed */
    bool current;         /* bodycam:recording-keys:current names it */
} bc_recording_key;

typedef bool (*bc_recording_key_fn)(const bc_recording_key *k, void *userdata);

/* Every key of bodycam:recording-keys (and the current one, should it be
 * missing from the set), oldest first. fn gets a borrowed struct; it
 * returns false to stop. */
bc_status bc_recording_keys_list(bc_redis *r, bc_recording_key_fn fn, void *userdata,
                                 bc_error *err);

#endif
