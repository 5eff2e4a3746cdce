/*
 * boot_slots.h - the camera's two firmware slots (A/B) and the boot record
 * that chooses between them, inside the data directory:
 *
 *   DATA_DIR/firmware/slot-a.img, slot-b.img   the images (the factory
 *                                              slot a has none)
 *   DATA_DIR/firmware/boot.json                the only switch:
 *     {"v":1,"active":"b","previous":"a","trial":true,"tries":0,
 *      "resume":"standby",
 *      "slots":{"a":{"version":"1.0.0","sha256":""},
 *               "b":{"version":"1.1.0","sha256":"<hex>"}},
 *      "report":{"event":"rolled_back","version":"1.1.0","detail":"..."}}
 *
 * The life of an update as this module sees it:
 *
 *   install ──► image renamed into the INACTIVE slot, dir fsync ──► boot.json
 *               {active: new, previous: old, trial, tries 0} ──► restart
 *   boot    ──► trial && tries == 0: tries = 1 saved, the new version runs
 *               (its health check decides: confirm or revert)
 *           ──► trial && tries >= 1: the trial boot ended unconfirmed (crash,
 *               kill, power loss): back to previous, a rolled_back report
 *   confirm ──► trial false, a confirmed report
 *   revert  ──► active = previous, trial false, a rolled_back report
 *
 * The invariants that make a power cut at any point harmless: the active
 * slot's image is never written; boot.json is replaced atomically (temp,
 * fsync, rename, dir fsync: bc_file_write_durable), so a boot always finds
 * either the old record or the new one; a report (the fw_confirmed or
 * fw_rolled_back event the camera owes the backend) stays in boot.json
 * until the camera has queued the event (bc_boot_report_done).
 *
 * The simulated firmware image: the line "BODYCAM-FW 1\n", one JSON line
 * {"version":"X","selftest":"pass"|"fail"|"crash"}\n (selftest absent =
 * pass), then any bytes (bc_boot_header_read).
 */
#ifndef BC_AGENT_BOOT_SLOTS_H
#define BC_AGENT_BOOT_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/firmware.h"
#include "proto/message.h"
#include "proto/status.h"

#define BC_BOOT_DIR "firmware"
#define BC_BOOT_FILE "boot.json"
#define BC_BOOT_MAGIC "BODYCAM-FW 1\n"
#define BC_BOOT_HEADER_MAX 4096 /* the magic and the JSON line fit in this */

typedef enum bc_boot_slot { BC_BOOT_SLOT_A = 0, BC_BOOT_SLOT_B = 1 } bc_boot_slot;

typedef enum bc_boot_report {
    BC_BOOT_REPORT_NONE,
    BC_BOOT_REPORT_CONFIRMED,   /* fw_confirmed {version} owed */
    BC_BOOT_REPORT_ROLLED_BACK, /* fw_rolled_back {version, detail} owed */
} bc_boot_report;

typedef struct bc_boot_slot_info {
    char version[BC_VERSION_MAX + 1];   /* "" = empty slot */
    char sha256[BC_SHA256_HEX_LEN + 1]; /* "" = unknown (the factory slot) */
} bc_boot_slot_info;

typedef struct bc_boot_record {
    bc_boot_slot active;
    bc_boot_slot previous;
    bool trial;         /* the active slot is not confirmed yet */
    int64_t tries;      /* trial boots started */
    bool resume_docked; /* the state UPDATING returns to at boot: docked, else standby */
    bc_boot_slot_info slots[2];
    bc_boot_report report;
    char report_version[BC_VERSION_MAX + 1];
    char report_detail[BC_TEXT_MAX + 1];
} bc_boot_record;

/* What bc_boot_start found. */
typedef enum bc_boot_outcome {
    BC_BOOT_NORMAL,   /* a confirmed slot (or the factory one) */
    BC_BOOT_TRIAL,    /* the first boot of a new version: its health check runs */
    BC_BOOT_REVERTED, /* a trial boot never confirmed: back on the previous slot */
} bc_boot_outcome;

typedef enum bc_boot_selftest {
    BC_BOOT_SELFTEST_PASS,
    BC_BOOT_SELFTEST_FAIL,
    BC_BOOT_SELFTEST_CRASH,
} bc_boot_selftest;

typedef struct bc_boot_header {
    char version[BC_VERSION_MAX + 1];
    bc_boot_selftest selftest;
} bc_boot_header;

/* A factory camera: slot a active with factory_version (sha256 ""), slot b
 * empty, no trial, no report. */
void bc_boot_factory(bc_boot_record *rec, const char *factory_version);

/* Makes DATA_DIR/firmware (0700, durably) unless it exists. BC_ERR_IO,
 * BC_ERR_TOO_BIG (path). */
bc_status bc_boot_dir_make(const char *data_dir, bc_error *err);

/* DATA_DIR/firmware/<name> into out. BC_ERR_TOO_BIG when it does not fit. */
bc_status bc_boot_path(const char *data_dir, const char *name, char *out, size_t size,
                       bc_error *err);

/* The image file of a slot (DATA_DIR/firmware/slot-a.img or slot-b.img). */
bc_status bc_boot_slot_path(const char *data_dir, bc_boot_slot slot, char *out, size_t size,
                            bc_error *err);

/* "a" or "b". */
const char *bc_boot_slot_name(bc_boot_slot slot);

/* The slot that is not active. */
bc_boot_slot bc_boot_inactive(const bc_boot_record *rec);

/* The version of the active slot (borrowed from rec). */
const char *bc_boot_active_version(const bc_boot_record *rec);

/* Loads boot.json. Missing: *rec = bc_boot_factory(factory_version),
 * *found false, BC_OK. A file that cannot be read (BC_ERR_IO) or is damaged
 * (BC_ERR_PARSE / BC_ERR_VERSION / ..., err names the field) leaves a SAFE
 * record in *rec - slot a, not on trial, its version read from
 * slot-a.img's header when there is one, else factory_version - that the
 * caller may save to repair the file. *found is true only on BC_OK. */
bc_status bc_boot_load(const char *data_dir, const char *factory_version, bc_boot_record *rec,
                       bool *found, bc_error *err);

/* Writes rec durably as boot.json (the firmware dir must exist).
 * BC_ERR_INVAL for a record load would refuse (nothing written),
 * BC_ERR_NOMEM, BC_ERR_IO. */
bc_status bc_boot_save(const char *data_dir, const bc_boot_record *rec, bc_error *err);

/* The boot step, run once per camera start after bc_boot_load: see the
 * top. Everything it changes is saved before it returns; on a failed save
 * rec is unchanged and the status is bc_boot_save's (the caller must not
 * run a trial it could not count). */
bc_status bc_boot_start(const char *data_dir, bc_boot_record *rec, bc_boot_outcome *outcome,
                        bc_error *err);

/* Installs into the inactive slot: image_path (a verified image in the
 * same file system) is renamed over the slot's file and the directory
 * fsynced - or, image_path NULL, the slot already holds the image - then
 * boot.json becomes {active: that slot, previous: the old one, trial, tries
 * 0, the slot's version and sha256, resume_docked}. BC_ERR_INVAL (bad
 * version or sha256), BC_ERR_STATE while the active slot is on trial,
 * BC_ERR_IO. When the rename worked but the record could not be saved, the
 * camera still boots the old slot (and rec is unchanged). */
bc_status bc_boot_install(const char *data_dir, bc_boot_record *rec, const char *image_path,
                          const char *version, const char *sha256, bool resume_docked,
                          bc_error *err);

/* The trial passed its health check: trial false and a CONFIRMED report,
 * saved. BC_ERR_STATE when not on trial; bc_boot_save's statuses (rec
 * unchanged). */
bc_status bc_boot_confirm(const char *data_dir, bc_boot_record *rec, bc_error *err);

/* The trial failed: back to the previous slot, trial false, a ROLLED_BACK
 * report of the bad version with detail, saved. BC_ERR_STATE when not on
 * trial; bc_boot_save's statuses (rec unchanged). */
bc_status bc_boot_revert(const char *data_dir, bc_boot_record *rec, const char *detail,
                         bc_error *err);

/* The report's event is queued: the report is dropped, saved. A no-op
 * without a report. */
bc_status bc_boot_report_done(const char *data_dir, bc_boot_record *rec, bc_error *err);

/* Parses the header of an image from its first len bytes. BC_ERR_PARSE
 * (no magic, no JSON line, bad JSON, a version that is not one, an unknown
 * selftest). */
bc_status bc_boot_header_parse(const void *buf, size_t len, bc_boot_header *out, bc_error *err);

/* Reads the header of the image at path. BC_ERR_NOT_FOUND (no file),
 * BC_ERR_IO, and bc_boot_header_parse's statuses. */
bc_status bc_boot_header_read(const char *path, bc_boot_header *out, bc_error *err);

#endif
