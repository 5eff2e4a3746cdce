/*
 * uploader.h - the camera's side of the vault handoff (design.md
 * "Handoff"), for one camera, without any MQTT of its own.
 *
 * While docked and connected (between bc_uploader_start and
 * bc_uploader_pause), every recording the recorder lists as pending goes
 * out in recorded_at order on devices/{id}/upload, QoS 1:
 *
 *   manifest (size, sha256 of the file, key id, recorded_at, ...)
 *   chunk offset=0, chunk offset=chunk_size, ...   (base64 data + sha256)
 *
 * At most `window` chunks are unacknowledged (published, PUBACK not yet
 * seen) at any time; the file is read sequentially, so memory does not
 * depend on a recording's length. The acknowledged offset is the end of the
 * longest prefix of chunks whose PUBACK arrived; it is where a pause
 * resumes, and it is saved durably in DATA_DIR/upload.json
 *   {"v":1,"recording_id":"ID","offset":N}
 * every BC_UPLOADER_SAVE_EVERY acknowledged chunks, when a recording is
 * fully acknowledged, on pause and on a request, so that a restarted agent
 * resumes too. The vault ignores chunks it already has, so re-sending after
 * a pause or a crash is harmless.
 *
 * Within one connection each pending recording is sent once. After a
 * pause, start offers every recording still without a receipt again,
 * resuming from its acknowledged offset (a fully sent one gets its manifest
 * only, which lets the vault answer with its receipt). An `upload` command
 * (bc_uploader_request) re-sends one recording from an offset, or every
 * pending recording from 0.
 *
 * A recording is deleted only through bc_uploader_on_receipt: a
 * vault-receipt command signed by the vault's receipt key, addressed to this
 * camera, naming a pending recording with its exact sha256 and size.
 *
 * The link layer provides the publish function and reports each PUBACK
 * with bc_uploader_on_published(mid). on_published must not be called from
 * inside the publish callback (the mid is not known yet there).
 * Not thread-safe; one uploader per camera, used from its event loop.
 */
#ifndef BC_AGENT_UPLOADER_H
#define BC_AGENT_UPLOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "device-agent/recorder.h"
#include "proto/command.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_UPLOADER_STATE_FILE "upload.json"
#define BC_UPLOADER_CHUNK_DEFAULT (32u * 1024u)
#define BC_UPLOADER_CHUNK_MAX (64u * 1024u) /* = BC_CHUNK_MAX of proto/message.h */
#define BC_UPLOADER_WINDOW_DEFAULT 8u
#define BC_UPLOADER_WINDOW_MAX 256u
#define BC_UPLOADER_SAVE_EVERY 16u /* acknowledged chunks between saves */

typedef struct bc_uploader bc_uploader;

/* Publishes payload (len bytes of JSON, NUL-terminated as well) on topic
 * with qos, and stores the message id whose PUBACK will be reported with
 * bc_uploader_on_published. Returns 0 on success, anything else on
 * failure (nothing was sent; the uploader stops and retries on the next
 * start, on_published or request). The payload is borrowed for the call. */
typedef int (*bc_uploader_publish_fn)(void *userdata, const char *topic, const char *payload,
                                      size_t len, int qos, int *mid);

/* The health report's view of the uploader. */
typedef struct bc_uploader_stats {
    bool active;                       /* between start and pause */
    size_t pending_uploads;            /* recordings still waiting for a receipt */
    uint64_t bytes_pending;            /* of those, bytes not yet acknowledged */
    char current_id[BC_ID_MAX + 1];    /* the recording being sent, "" when none */
    uint64_t current_offset;           /* its acknowledged offset */
    uint64_t current_size;             /* its size */
    size_t in_flight;                  /* chunks published, PUBACK not yet seen */
    uint64_t chunks_published;         /* since bc_uploader_new */
    uint64_t bytes_acked;              /* chunk bytes acknowledged since bc_uploader_new */
    uint64_t chunks_refused;           /* PUBACKs that refused a manifest or chunk */
    uint64_t receipts_accepted;        /* recordings deleted */
    uint64_t receipts_refused;         /* receipts refused (forged, mismatched, unknown) */
    char last_error[sizeof(bc_error)]; /* the last failure, "" when none */
} bc_uploader_stats;

/* Creates an uploader for the recordings of rec (borrowed: it must outlive
 * the uploader). device_id: bc_device_id_valid, this camera. receipt_pub:
 * the vault's Ed25519 receipt public key (a reference is taken).
 * chunk_size: 0 for BC_UPLOADER_CHUNK_DEFAULT, else 1..BC_UPLOADER_CHUNK_MAX.
 * window: 0 for BC_UPLOADER_WINDOW_DEFAULT, else 1..BC_UPLOADER_WINDOW_MAX.
 * Loads DATA_DIR/upload.json (a missing or unreadable one means "start at
 * 0"; the latter is logged). The uploader starts paused.
 * BC_ERR_INVAL (naming the argument), BC_ERR_NOMEM. The caller owns *out. */
bc_status bc_uploader_new(bc_recorder *rec, const char *device_id, EVP_PKEY *receipt_pub,
                          size_t chunk_size, size_t window, bc_uploader_publish_fn publish,
                          void *userdata, bc_uploader **out, bc_error *err);

/* Frees the uploader (closing the file it reads). The resume point is not
 * saved here; call bc_uploader_pause first for that. NULL is a no-op. */
void bc_uploader_free(bc_uploader *up);

/* The camera is docked and the link connected: publishes manifests and
 * chunks until the window is full or nothing is left. While already
 * active it just tries to send more (call it again after a publish failure
 * or when a new recording was closed). Failures: the publish callback
 * failed (BC_ERR_UNAVAILABLE), a recording cannot be read (BC_ERR_IO; it
 * is skipped until the next start), BC_ERR_NOMEM. The uploader stays
 * active on failure. */
bc_status bc_uploader_start(bc_uploader *up, bc_error *err);

/* Disconnect or undock: stops sending, forgets the in-flight message ids
 * (their PUBACKs will not come, or will be ignored) and saves the resume
 * point. BC_ERR_IO when the save fails (the uploader is paused anyway). */
bc_status bc_uploader_pause(bc_uploader *up, bc_error *err);

/* A PUBACK with MQTT v5 reason code `reason` arrived for mid. Unknown mids
 * (a manifest or chunk forgotten by a pause, another module's message) are
 * ignored. A success (< 0x80, but not 0x10) advances the acknowledged
 * offset and, while active, sends more; returns that sending's status as
 * bc_uploader_start does. A refusal (>= 0x80, e.g. 0x97 quota exceeded by
 * the broker's upload rate limit) or 0x10 (no gateway subscribed: nothing
 * stored it) means the bytes did not reach the vault: the window is
 * dropped, the recording resumes from its acknowledged offset, and sending
 * holds for a backoff (250 ms doubling to 30 s, reset by a success) -
 * bc_uploader_hold_ms says how long; the caller calls bc_uploader_start
 * again after it. */
bc_status bc_uploader_on_published(bc_uploader *up, int mid, int reason, bc_error *err);

/* Milliseconds until a hold after a refused chunk ends (0: not held). */
int64_t bc_uploader_hold_ms(const bc_uploader *up);

/* A receipt can be lost after the vault committed (its Redis went away
 * before the receipt was queued) while the connection stays up: a fully
 * sent recording whose receipt has not come after the wait gets its
 * manifest offered again (the vault answers a committed recording's
 * manifest with a fresh receipt), the wait doubling per retry up to
 * BC_UPLOADER_RECEIPT_WAIT_MAX_MS. A new connection offers everything
 * again anyway. Default wait BC_UPLOADER_RECEIPT_WAIT_MS; < 1 is 1. */
#define BC_UPLOADER_RECEIPT_WAIT_MS 120000
#define BC_UPLOADER_RECEIPT_WAIT_MAX_MS 3600000
void bc_uploader_set_receipt_wait(bc_uploader *up, int64_t ms);

/* While active: ms until the first waiting recording is due again (0: due
 * now), -1 when none waits. */
int64_t bc_uploader_receipt_due_ms(const bc_uploader *up);

/* Offers the manifests that are due again and goes on sending (statuses as
 * bc_uploader_start). */
bc_status bc_uploader_receipt_retry(bc_uploader *up, bc_error *err);

/* An `upload` command (already verified by the caller): re-send
 * recording_id from offset (0..its size), before anything else; or, with
 * recording_id NULL or "" (offset must be 0), every pending recording from
 * 0. Sending starts at once while active, else at the next start.
 * BC_ERR_NOT_FOUND (no such pending recording), BC_ERR_INVAL (offset out
 * of range), or a sending status as for bc_uploader_start. */
bc_status bc_uploader_request(bc_uploader *up, const char *recording_id, int64_t offset,
                              bc_error *err);

/* A vault-receipt command (decoded). If cache is not NULL, it is verified
 * here with bc_command_verify(cmd, device_id, receipt key, now_ms, cache)
 * (addressed to us, signature, validity, time window, replay); with
 * cache NULL the caller has run bc_command_verify itself, and the
 * addressee, the signature by the receipt key, the validity and the time
 * window are still checked here (not the replay cache). Then the receipt
 * must name a pending recording with its exact sha256 and size, and the
 * recording is deleted (bc_recorder_delete_with_receipt).
 * BC_OK: deleted (emit `recording_deleted`). Refusals, with a reason in err
 * for `receipt_refused` and the ack: BC_ERR_INVAL (not a receipt, or
 * invalid), BC_ERR_SIGNATURE (not signed by the receipt key: forged),
 * BC_ERR_DENIED (for another camera, or sha256 / size do not match),
 * BC_ERR_NOT_FOUND (unknown recording), BC_ERR_EXPIRED, BC_ERR_REPLAY;
 * BC_ERR_IO if the delete itself fails. On any failure the file stays. */
bc_status bc_uploader_on_receipt(bc_uploader *up, const bc_command *cmd, int64_t now_ms,
                                 bc_replay_cache *cache, bc_error *err);

/* Fills *out (for the health report). */
void bc_uploader_get_stats(const bc_uploader *up, bc_uploader_stats *out);

#endif
