/*
 * updater.h - a firmware update before it is installed: the signed manifest
 * checked, the pending update kept durably, the image fetched chunk by
 * chunk into a file and checked against the manifest. No MQTT here: the
 * camera subscribes to what bc_updater_wanted() names and hands over what
 * arrives (bc_updater_chunk); installing is boot_slots' job.
 *
 *   DATA_DIR/firmware/update.json     the pending update: {"v":1,"cmd_id",
 *                                     "manifest":{signed manifest}}; written
 *                                     durably BEFORE the command is acked
 *   DATA_DIR/firmware/download.img    the image being fetched; chunk n at
 *                                     n * chunk_size
 *   DATA_DIR/firmware/download.json   the resume point: {"v":1,"version",
 *                                     "sha256","next"}: chunks [0, next)
 *                                     are in download.img, fsynced before
 *                                     this file was written
 *
 *   offer ─► verify (firmware key) ─► check_install(current) ─► update.json
 *         ─► DOWNLOADING ─► chunks (window of `window` chunks past `next`)
 *         ─► all there: fsync, SHA-256 == manifest's, header names the
 *            version ─► READY (download.img, or the inactive slot already
 *            holds the image: bc_updater_use_slot) ─► the camera installs
 *            it ─► bc_updater_finish.
 * A restart resumes from update.json and download.json. Not thread-safe;
 * one per camera.
 */
#ifndef BC_AGENT_UPDATER_H
#define BC_AGENT_UPDATER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/firmware.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_UPDATER_FILE "update.json"
#define BC_UPDATER_IMAGE "download.img"
#define BC_UPDATER_PROGRESS "download.json"
#define BC_UPDATER_WINDOW_MAX 64
#define BC_UPDATER_WINDOW_DEFAULT 4

typedef struct bc_updater bc_updater;

typedef enum bc_updater_phase {
    BC_UPDATER_IDLE,        /* no pending update */
    BC_UPDATER_DOWNLOADING, /* chunks missing */
    BC_UPDATER_COMPLETE,    /* every chunk written; bc_updater_verify next */
    BC_UPDATER_READY,       /* verified: waiting to be installed */
} bc_updater_phase;

typedef enum bc_updater_offer_result {
    BC_UPDATER_ACCEPTED, /* a new pending update (saved) */
    BC_UPDATER_SAME,     /* this very update is already pending: nothing restarts */
} bc_updater_offer_result;

/* Opens the updater of the camera at data_dir (DATA_DIR/firmware must
 * exist: bc_boot_dir_make). firmware_key (Ed25519 public; NULL: every offer
 * is refused) is referenced, not taken. window: chunks asked for at a time
 * (1..BC_UPDATER_WINDOW_MAX). A pending update on disk is resumed (phase
 * DOWNLOADING or COMPLETE) when its manifest still verifies; an unusable
 * one is logged and dropped. BC_ERR_INVAL, BC_ERR_TOO_BIG (path),
 * BC_ERR_NOMEM, BC_ERR_IO. Free with bc_updater_free. */
bc_status bc_updater_open(const char *data_dir, EVP_PKEY *firmware_key, size_t window,
                          bc_updater **out, bc_error *err);

/* Frees memory; the files stay. NULL is a no-op. */
void bc_updater_free(bc_updater *u);

/* How much contiguous prefix is downloaded between two saved resume points
 * (fsync of the data, then download.json): BC_UPDATER_CHECKPOINT_BYTES
 * unless changed; < 1 is taken as 1 (every chunk). */
#define BC_UPDATER_CHECKPOINT_BYTES (1024 * 1024)
void bc_updater_set_checkpoint(bc_updater *u, int64_t bytes);

/* Checks a manifest from a firmware command (cmd_id) against the version
 * running now, in this order: a firmware key is configured (BC_ERR_DENIED
 * "no firmware key"), the signature and the fields (bc_firmware_verify's
 * BC_ERR_SIGNATURE, BC_ERR_INVAL), the same update already pending
 * (BC_OK, *res SAME), another one pending (BC_ERR_STATE), the version rules
 * (bc_firmware_check_install's BC_ERR_DENIED: downgrade or the same version
 * without rollback, below min_version). Accepted: update.json is written
 * durably (any older download is discarded), phase DOWNLOADING, *res
 * ACCEPTED. err's text is the reason alone, e.g. "bad signature: ..."; the
 * caller prefixes "firmware refused: ". BC_ERR_IO when it cannot be saved. */
bc_status bc_updater_offer(bc_updater *u, const bc_firmware_manifest *m, const char *cmd_id,
                           const char *current_version, bc_updater_offer_result *res,
                           bc_error *err);

bc_updater_phase bc_updater_get_phase(const bc_updater *u);

/* The pending manifest (borrowed), NULL when idle. */
const bc_firmware_manifest *bc_updater_manifest(const bc_updater *u);

/* The pending update's command id (borrowed), "" when idle. */
const char *bc_updater_cmd_id(const bc_updater *u);

/* When the file at slot_path (the inactive slot) is already the pending
 * image (its SHA-256 is the manifest's), no download is needed: *in_slot
 * true, the download is dropped and the phase READY with no image file
 * (bc_updater_image_path NULL). A missing file is *in_slot false, BC_OK.
 * BC_ERR_IO when it cannot be read. A no-op unless DOWNLOADING. */
bc_status bc_updater_use_slot(bc_updater *u, const char *slot_path, bool *in_slot, bc_error *err);

/* The chunks to subscribe now: up to the window, the first ones not yet
 * written from the resume point on, in order, into out (room for max).
 * Returns how many. 0 unless DOWNLOADING. */
size_t bc_updater_wanted(const bc_updater *u, unsigned *out, size_t max);

/* The first chunk not yet written (for "chunk N not available"). */
uint64_t bc_updater_first_missing(const bc_updater *u);

/* Chunks written in order from the start, and the total. */
void bc_updater_progress(const bc_updater *u, uint64_t *done, uint64_t *total);

/* Writes chunk n (len bytes) at n * chunk_size. *stored is false when the
 * chunk is not wanted (not downloading, outside the window, already
 * written): ignored, BC_OK. A length other than chunk_size (the last chunk:
 * the remainder) is BC_ERR_INVAL (nothing written). When the resume point
 * advances, the data is fsynced and then download.json written durably.
 * The phase becomes COMPLETE with the last chunk. BC_ERR_IO. */
bc_status bc_updater_chunk(bc_updater *u, unsigned n, const void *data, size_t len, bool *stored,
                           bc_error *err);

/* COMPLETE: fsyncs the image, then checks that its SHA-256 is the
 * manifest's (BC_ERR_TAMPERED "image does not match its manifest") and
 * that its header names the manifest's version (BC_ERR_TAMPERED). BC_OK:
 * phase READY. On a failed check the download is discarded and the phase
 * is DOWNLOADING from chunk 0 again (the caller usually gives up with
 * bc_updater_finish). BC_ERR_STATE unless COMPLETE, BC_ERR_IO. */
bc_status bc_updater_verify(bc_updater *u, bc_error *err);

/* READY: the verified image to install (borrowed), or NULL when it is
 * already in the inactive slot. */
const char *bc_updater_image_path(const bc_updater *u);

/* Ends the pending update (installed, failed or superseded): update.json,
 * download.img and download.json are removed (durably), phase IDLE.
 * BC_ERR_IO (the phase is IDLE anyway; leftovers are dropped at the next
 * open). */
bc_status bc_updater_finish(bc_updater *u, bc_error *err);

/* The SHA-256 of the file at path as 64 lowercase hex digits into hex
 * (65 bytes). BC_ERR_NOT_FOUND, BC_ERR_IO, BC_ERR_CRYPTO. */
bc_status bc_updater_file_sha256(const char *path, char *hex, bc_error *err);

#endif
