/*
 * staging.h - where a recording is put together while its chunks arrive.
 *
 * One directory per recording, named after the camera and the recording id
 * (both in alphabets that are safe as file names, see proto/README.md):
 *
 *   DIR/<device>/<recording_id>/manifest.json  the manifest as received (durable)
 *   DIR/<device>/<recording_id>/data           the file's bytes at their offsets (sparse)
 *   DIR/<device>/<recording_id>/ranges.json    {"v":1,"ranges":[[from,to],...],"attempts":N,
 *                                              "updated_at":MS}: bytes received, durable
 *
 * Chunks may come before their manifest (several gateways do not keep
 * order), twice (at-least-once delivery, a camera resuming), or again after
 * a refused verification. Receiving is idempotent: a chunk whose range is
 * already covered is a duplicate and is not written again; otherwise its
 * bytes are written at its offset and the range is merged. Memory does not
 * depend on a recording's size: bytes go straight to the data file; only the
 * merged list of received ranges is kept, at most BC_STAGING_RANGES_MAX
 * ranges per recording (a chunk that would need more is refused with
 * BC_ERR_TOO_BIG and comes again when the gap is asked for), and at most
 * max_open recordings keep an open descriptor (least recently used closed).
 *
 * Durability contract: bytes and ranges are durable only after
 * bc_staging_sync() returned BC_OK; the caller acknowledges the stream
 * entries that carried them only after that. After a crash what was not
 * synced is simply not in ranges.json, so it is asked for again; a data
 * file may hold bytes beyond its ranges, which are never trusted.
 *
 * Not thread-safe; one staging area per vault process (a second process on
 * the same directory is not supported: run one vault per store).
 */
#ifndef BC_VAULT_STAGING_H
#define BC_VAULT_STAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/message.h"
#include "proto/status.h"

#define BC_STAGING_RANGES_MAX 4096
#define BC_STAGING_MANIFEST_FILE "manifest.json"
#define BC_STAGING_DATA_FILE "data"
#define BC_STAGING_RANGES_FILE "ranges.json"

typedef struct bc_staging bc_staging;

/* Opens the staging area in dir (created with mode 0700 if missing) and
 * removes temporary files a crash left behind. max_open >= 1. The caller
 * owns *out (bc_staging_close). BC_ERR_IO, BC_ERR_INVAL, BC_ERR_NOMEM. */
bc_status bc_staging_open(const char *dir, size_t max_open, bc_staging **out, bc_error *err);

/* Closes every descriptor and frees s (NULL allowed). Nothing unsynced is
 * synced: call bc_staging_sync first when that matters. */
void bc_staging_close(bc_staging *s);

/* Records a manifest (m->kind must be BC_UPLOAD_MANIFEST). The same
 * manifest again is a duplicate (*duplicate true, may be NULL). A manifest
 * that differs (size, sha256, key id, chunk_size, recorded_at) from the one
 * staged replaces it and drops every received range (the camera's file is
 * the authority; logged by the caller); attempts are kept. Received ranges
 * beyond the size are dropped and the data file is cut to the size.
 * Durable at once (bc_file_write_durable), including the chunks of this
 * recording received before it. now_ms stamps updated_at. BC_ERR_INVAL for
 * a manifest bc_message_validate refuses. */
bc_status bc_staging_put_manifest(bc_staging *s, const bc_msg_upload *m, int64_t now_ms,
                                  bool *duplicate, bc_error *err);

/* Writes one chunk (m->kind BC_UPLOAD_CHUNK; data already checked against
 * its sha256 by bc_message_decode) at its offset. *duplicate (may be NULL)
 * is true when the range was already received (nothing written).
 * BC_ERR_INVAL when the manifest is known and the chunk ends past its size
 * (or for 0 or more than BC_CHUNK_MAX bytes, an offset < 0, an end past
 * 2^53 - 1), BC_ERR_TOO_BIG (see above; also an offset past what the file
 * system can hold), BC_ERR_IO. Not durable until bc_staging_sync. */
bc_status bc_staging_put_chunk(bc_staging *s, const bc_msg_upload *m, int64_t now_ms,
                               bool *duplicate, bc_error *err);

/* Makes every chunk written since the last sync durable: fdatasync of the
 * touched data files, then their ranges.json written durably. BC_ERR_IO
 * when that failed for a recording, or when unsynced chunks had to be
 * dropped since the last sync (a write-back error while closing the least
 * recently used descriptor): then acknowledge nothing received since the
 * last successful sync; the recordings concerned are back at their last
 * synced state and what is missing is simply received again. */
bc_status bc_staging_sync(bc_staging *s, bc_error *err);

typedef struct bc_staging_status {
    bool has_manifest;
    bc_msg_upload manifest;  /* when has_manifest (data NULL) */
    uint64_t received;       /* bytes received (sum of the ranges) */
    uint64_t first_missing;  /* the lowest offset not received (= size when complete) */
    size_t ranges;           /* number of merged ranges */
    bool complete;           /* manifest known and [0, size) received */
    unsigned attempts;       /* verifications that failed (bc_staging_reset_from) */
    int64_t updated_at;      /* ms of the last manifest or new chunk */
} bc_staging_status;

/* The staged state of one recording. BC_ERR_NOT_FOUND when nothing is staged. */
bc_status bc_staging_status_of(bc_staging *s, const char *device, const char *recording_id,
                               bc_staging_status *out, bc_error *err);

/* The path of the recording's data file (exists once a chunk arrived). */
bc_status bc_staging_data_path(const bc_staging *s, const char *device, const char *recording_id,
                               char *buf, size_t size, bc_error *err);

/* After a verification failed: forgets every byte received at or after
 * offset (0: all of it) and cuts the data file there, counts one more
 * attempt, durable (chunks not yet synced below offset become durable too).
 * BC_ERR_NOT_FOUND when nothing is staged. */
bc_status bc_staging_reset_from(bc_staging *s, const char *device, const char *recording_id,
                                uint64_t offset, bc_error *err);

/* Removes the recording's staging directory (after its commit, or when it
 * was already committed). A missing one is BC_OK. Durable (dir fsynced). */
bc_status bc_staging_remove(bc_staging *s, const char *device, const char *recording_id,
                            bc_error *err);

/* Calls fn for every staged recording (order unspecified); fn returns
 * false to stop. Borrowed strings, valid during the call. Do not add or
 * remove staged recordings from fn. */
typedef bool (*bc_staging_visit_fn)(const char *device, const char *recording_id, void *userdata);
bc_status bc_staging_list(bc_staging *s, bc_staging_visit_fn fn, void *userdata, bc_error *err);

#endif
