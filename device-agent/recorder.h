/*
 * recorder.h - a camera's recordings: DATA_DIR/recordings/.
 *
 * The recorder turns the video bytes the camera feeds it into encrypted
 * recordings (proto/recording.h's streaming writer, for the vault's X25519
 * recording key) and keeps the list of closed recordings that wait for the
 * vault. It owns the directory:
 *
 *   recordings/ID.bcrec        the encrypted recording (ciphertext only)
 *   recordings/ID.bcrec.seal   the writer's crash-sealing sidecar, while open
 *   recordings/ID.open.json    what is known at start (warnings, emergency,
 *                              pre-event bytes), while open; durable first
 *   recordings/ID.json         a closed recording's metadata (durable)
 *   recordings/broken/         files that cannot be a recording (moved, kept)
 *
 * Standby: bc_recorder_feed() puts bytes only into the in-memory pre-event
 * buffer (device-agent/prebuffer.h); nothing of it reaches the disk unless
 * a recording starts, and then only encrypted. Recording: start drains the
 * buffer into a new writer first, later feeds go to the writer.
 *
 * Tamper refusal: this module has no function that decrypts a recording
 * (the camera holds no key that could) and exactly one that deletes one,
 * bc_recorder_delete_with_receipt(), which needs a vault receipt naming the
 * recording, its SHA-256 and its size. The caller must have verified the
 * receipt's signature with the vault's receipt key before (the uploader,
 * device-agent/uploader.h, does that).
 *
 * Not thread-safe: one recorder is used from the camera's event loop.
 * A bc_error, where taken, may be NULL.
 */
#ifndef BC_AGENT_RECORDER_H
#define BC_AGENT_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/command.h"
#include "proto/firmware.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_RECORDER_DIR "recordings"
#define BC_RECORDER_BROKEN_DIR "broken"   /* inside BC_RECORDER_DIR */
#define BC_RECORDER_EXT ".bcrec"          /* the recording itself */
#define BC_RECORDER_META_EXT ".json"      /* closed: final metadata */
#define BC_RECORDER_OPEN_EXT ".open.json" /* open: what start knew */
#define BC_RECORDER_META_MAX 4096         /* bytes of one metadata file */

typedef struct bc_recorder bc_recorder;

/* A closed recording, as written to recordings/ID.json:
 *   {"v":1,"recording_id","device","key_id","recorded_at","duration_ms",
 *    "warnings","emergency","size","sha256","segments","interrupted",
 *    "pre_event_bytes"} */
typedef struct bc_recording_meta {
    char recording_id[BC_ID_MAX + 1];
    char device[BC_DEVICE_ID_MAX + 1];
    char key_id[BC_ID_MAX + 1];         /* the vault key it is sealed for */
    int64_t recorded_at;                /* ms (wall clock) when it started */
    int64_t duration_ms;                /* after a crash: last write - start */
    int warnings;                       /* 0..2 spoken warnings before it */
    bool emergency;                     /* the long press: without two warnings */
    uint64_t size;                      /* bytes of the .bcrec file */
    char sha256[BC_SHA256_HEX_LEN + 1]; /* lowercase hex of the whole file */
    uint64_t segments;
    bool interrupted;         /* ended by a crash: sealed with a trailer */
    uint64_t pre_event_bytes; /* pre-event buffer bytes at its start */
} bc_recording_meta;

/* What the camera's health report and the benchmark read. */
typedef struct bc_recorder_stats {
    bool recording;
    char recording_id[BC_ID_MAX + 1]; /* the open one, "" when none */
    int64_t started_at;               /* ms, the open one's start */
    uint64_t current_bytes;           /* plaintext bytes into the open one */
    uint64_t current_pre_event_bytes; /* of which from the pre-event buffer */
    size_t prebuffer_len;             /* bytes held in memory now */
    size_t prebuffer_capacity;
    size_t pending;          /* closed recordings not yet deleted */
    uint64_t pending_bytes;  /* their total size */
    size_t broken;           /* files moved to recordings/broken/ by this open */
    uint64_t bytes_fed;      /* all bytes ever fed (standby and recording) */
    uint64_t bytes_recorded; /* plaintext handed to writers (benchmark hook) */
} bc_recorder_stats;

/* Opens (creating recordings/ with mode 0700 if missing; data_dir must
 * exist) and scans the directory:
 *   - "*.tmp" leftovers of an interrupted durable write are deleted;
 *   - a *.bcrec that still has its .seal sidecar, no final segment, or no
 *     readable ID.json is sealed with bc_recording_seal (a crash or power
 *     loss mid-recording keeps what was written), its ID.json is written
 *     (warnings and emergency from ID.open.json when it survived, else 0 /
 *     false; duration from the file's last modification) and it is added
 *     to the recovered list (bc_recorder_take_recovered) so the camera can
 *     emit `recording_sealed` events;
 *   - a *.bcrec whose header is incomplete (a crash before the header was
 *     durable: nothing was recorded) or which cannot be sealed (not this
 *     format, unfinished without its sidecar) is moved with its companions
 *     to recordings/broken/ and logged, never deleted;
 *   - an ID.json or ID.open.json without its recording (a crash during a
 *     delete or before a start created the file) is deleted and logged.
 * vault_pub: the vault's X25519 recording public key (a reference is taken;
 * the caller keeps its own). key_id: NULL or bc_key_id(vault_pub).
 * device_id: bc_device_id_valid. segment_size: 0 for the default (see
 * recording.h). pre_event_bytes: the pre-event buffer's capacity, 0 = off.
 * Failures: BC_ERR_INVAL (an argument, naming it), BC_ERR_IO (errno kept,
 * the directory cannot be made or read), BC_ERR_NOMEM, BC_ERR_CRYPTO. A
 * single recording that cannot be recovered because of an I/O error is
 * logged and left as it is (the next open retries); it does not fail open.
 * The caller owns *out (bc_recorder_free). */
bc_status bc_recorder_open(const char *data_dir, EVP_PKEY *vault_pub, const char *key_id,
                           const char *device_id, uint32_t segment_size, size_t pre_event_bytes,
                           bc_recorder **out, bc_error *err);

/* Frees the recorder. A recording still open is abandoned exactly as a
 * crash would leave it (buffered partial segment lost, file and sidecar
 * kept): the next bc_recorder_open seals it. Call bc_recorder_stop first
 * for a clean end. The pre-event buffer is wiped. NULL is a no-op. */
void bc_recorder_free(bc_recorder *rec);

/* The recovered recordings of the open-time scan, handed over once: *list
 * is a malloc'd array of *count entries the caller free()s (NULL and 0
 * when there were none, or on a second call). BC_OK always. */
bc_status bc_recorder_take_recovered(bc_recorder *rec, bc_recording_meta **list, size_t *count);

/* Feeds video. On standby: into the pre-event buffer only (oldest bytes
 * overwritten). While recording: to the writer. Failures (recording only):
 * the writer's (BC_ERR_IO, BC_ERR_CRYPTO, then BC_ERR_STATE because the
 * writer is sticky-failed); the camera should then stop the recording,
 * which seals what was written. */
bc_status bc_recorder_feed(bc_recorder *rec, const void *data, size_t len, bc_error *err);

/* Starts recording_id (bc_id_valid; decided by the camera): writes
 * ID.open.json durably, opens recordings/ID.bcrec with the writer, then
 * drains the pre-event buffer into it. warnings 0..2.
 * Failures: BC_ERR_STATE (already recording), BC_ERR_INVAL, BC_ERR_EXISTS
 * (a file of that id exists), BC_ERR_IO, BC_ERR_CRYPTO, BC_ERR_NOMEM. If the
 * writer fails while the buffer is drained, what was written is closed or
 * sealed and listed as a closed recording, and the error is returned. */
bc_status bc_recorder_start(bc_recorder *rec, const char *recording_id, int64_t now_ms,
                            int warnings, bool emergency, bc_error *err);

/* Makes the records written so far durable (fdatasync); the camera calls
 * it every second while recording. BC_OK when not recording; the writer's
 * status otherwise (BC_ERR_IO, BC_ERR_STATE). */
bc_status bc_recorder_flush(bc_recorder *rec, bc_error *err);

/* Closes the open recording and writes ID.json durably; fills *meta (may
 * be NULL). If the writer had failed or close fails, the file is sealed
 * instead (meta->interrupted is then true) and BC_OK is still returned:
 * the recording is closed and listed. BC_ERR_STATE when not recording;
 * BC_ERR_IO / BC_ERR_CRYPTO / BC_ERR_NOMEM when neither close nor seal nor
 * the metadata write succeeds (the recorder is back on standby either way;
 * the files stay and the next bc_recorder_open recovers them). */
bc_status bc_recorder_stop(bc_recorder *rec, int64_t now_ms, bc_recording_meta *meta,
                           bc_error *err);

/* True while a recording is open. */
bool bc_recorder_is_recording(const bc_recorder *rec);

/* Closed recordings not yet deleted, ordered by recorded_at (then id). */
size_t bc_recorder_pending_count(const bc_recorder *rec);

/* Copies the first min(cap, total) of them into out (may be NULL when cap
 * is 0) and sets *count to the total. BC_OK always. */
bc_status bc_recorder_pending(const bc_recorder *rec, bc_recording_meta *out, size_t cap,
                              size_t *count);

/* Copies the index-th pending recording into *out. BC_ERR_NOT_FOUND past
 * the end. */
bc_status bc_recorder_pending_at(const bc_recorder *rec, size_t index, bc_recording_meta *out);

/* Copies the metadata of the closed recording recording_id into *out.
 * BC_ERR_NOT_FOUND when no such closed recording exists (also for the one
 * still being recorded). */
bc_status bc_recorder_find(const bc_recorder *rec, const char *recording_id,
                           bc_recording_meta *out);

/* Opens the ciphertext of a closed recording for reading (O_RDONLY,
 * close-on-exec) for the upload; the caller closes *fd. This is never
 * plaintext: the camera cannot decrypt. BC_ERR_NOT_FOUND (not a closed
 * recording), BC_ERR_IO. *fd is -1 on failure. */
bc_status bc_recorder_open_file(const bc_recorder *rec, const char *recording_id, int *fd,
                                bc_error *err);

/* Deletes recordings/ID.bcrec and ID.json, and only if receipt is a
 * vault-receipt command (kind BC_CMD_VAULT_RECEIPT) whose recording_id is a
 * closed recording here and whose size and sha256 equal its metadata
 * (compared in constant time). The caller MUST have verified the receipt's
 * signature with the vault receipt key (bc_command_verify; the uploader's
 * bc_uploader_on_receipt does). Statuses: BC_OK (both files gone, the
 * directory fsynced); BC_ERR_NOT_FOUND (no closed recording of that id);
 * BC_ERR_DENIED (not a receipt, the recording is still open, size or
 * sha256 differ); BC_ERR_IO. On every failure the recording stays. */
bc_status bc_recorder_delete_with_receipt(bc_recorder *rec, const bc_command *receipt,
                                          bc_error *err);

/* Bytes free (for an unprivileged user) and total of the file system
 * holding the data directory (statvfs). BC_ERR_IO on failure. */
bc_status bc_recorder_storage(const bc_recorder *rec, uint64_t *free_bytes, uint64_t *total_bytes);

/* Changes the pre-event buffer's capacity (a config command). Its content
 * is wiped. BC_ERR_NOMEM (the old buffer is then kept, emptied). */
bc_status bc_recorder_set_pre_event(bc_recorder *rec, size_t pre_event_bytes);

/* Changes the vault recording key for the next recordings (a key
 * rotation); the open one keeps its key. key_id as for open.
 * BC_ERR_INVAL (not an X25519 key, or key_id does not match it). */
bc_status bc_recorder_set_vault_key(bc_recorder *rec, EVP_PKEY *vault_pub, const char *key_id,
                                    bc_error *err);

/* The key id of the current vault recording key (for the birth message).
 * Borrowed from rec. */
const char *bc_recorder_key_id(const bc_recorder *rec);

/* The data directory given to open. Borrowed from rec. */
const char *bc_recorder_data_dir(const bc_recorder *rec);

/* Fills *out. */
void bc_recorder_get_stats(const bc_recorder *rec, bc_recorder_stats *out);

#endif
