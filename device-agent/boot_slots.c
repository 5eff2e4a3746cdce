/*
 * boot_slots.c - boot.json, the A/B switch (boot_slots.h has the design).
 *
 * Every change follows one pattern: copy the record, change the copy, save
 * the copy durably, and only then make it the record the camera uses - so
 * the record in memory is never ahead of the one on disk, and a failed save
 * changes nothing.
 */
#include "device-agent/boot_slots.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/file.h"
#include "proto/json.h"
#include "proto/topic.h"

#define BOOT_VERSION 1
#define BOOT_JSON_MAX 8192
#define TRIES_MAX 1000000
#define REPORT_CONFIRMED "confirmed"
#define REPORT_ROLLED_BACK "rolled_back"
#define RESUME_DOCKED "docked"
#define RESUME_STANDBY "standby"

static const char *const SELFTESTS[] = {"pass", "fail", "crash"};

void bc_boot_factory(bc_boot_record *rec, const char *factory_version)
{
    memset(rec, 0, sizeof(*rec));
    rec->active = BC_BOOT_SLOT_A;
    rec->previous = BC_BOOT_SLOT_A;
    snprintf(rec->slots[BC_BOOT_SLOT_A].version, sizeof(rec->slots[0].version), "%s",
             factory_version);
}

const char *bc_boot_slot_name(bc_boot_slot slot)
{
    return slot == BC_BOOT_SLOT_B ? "b" : "a";
}

bc_boot_slot bc_boot_inactive(const bc_boot_record *rec)
{
    return rec->active == BC_BOOT_SLOT_A ? BC_BOOT_SLOT_B : BC_BOOT_SLOT_A;
}

const char *bc_boot_active_version(const bc_boot_record *rec)
{
    return rec->slots[rec->active].version;
}

bc_status bc_boot_path(const char *data_dir, const char *name, char *out, size_t size,
                       bc_error *err)
{
    int n = snprintf(out, size, "%s/%s%s%s", data_dir, BC_BOOT_DIR, name[0] ? "/" : "", name);
    if (n < 0 || (size_t)n >= size)
        return bc_fail(err, BC_ERR_TOO_BIG, "data directory path '%s' is too long", data_dir);
    return BC_OK;
}

bc_status bc_boot_slot_path(const char *data_dir, bc_boot_slot slot, char *out, size_t size,
                            bc_error *err)
{
    return bc_boot_path(data_dir, slot == BC_BOOT_SLOT_B ? "slot-b.img" : "slot-a.img", out, size,
                        err);
}

bc_status bc_boot_dir_make(const char *data_dir, bc_error *err)
{
    char dir[PATH_MAX];
    bc_status st = bc_boot_path(data_dir, "", dir, sizeof(dir), err);
    return st == BC_OK ? bc_file_mkdir_durable(dir, 0700, err) : st;
}

/* ---- the image header ---- */

bc_status bc_boot_header_parse(const void *buf, size_t len, bc_boot_header *out, bc_error *err)
{
    size_t magic = strlen(BC_BOOT_MAGIC);
    if (len < magic || memcmp(buf, BC_BOOT_MAGIC, magic) != 0)
        return bc_fail(err, BC_ERR_PARSE, "the image does not start with the firmware header");
    const char *line = (const char *)buf + magic;
    const char *nl = memchr(line, '\n', len - magic);
    if (nl == NULL)
        return bc_fail(err, BC_ERR_PARSE, "the image header has no JSON line");
    cJSON *root = NULL;
    char selftest[16] = "pass";
    memset(out, 0, sizeof(*out));
    bc_status st = bc_json_parse(line, (size_t)(nl - line), BC_BOOT_HEADER_MAX, &root, err);
    if (st == BC_OK)
        st = bc_json_get_string(root, "version", BC_JSON_REQUIRED, out->version,
                                sizeof(out->version), err);
    if (st == BC_OK)
        st =
            bc_json_get_string(root, "selftest", BC_JSON_OPTIONAL, selftest, sizeof(selftest), err);
    cJSON_Delete(root);
    if (st != BC_OK)
        return bc_fail(err, BC_ERR_PARSE, "the image header is not valid: %s",
                       err ? err->text : "");
    if (!bc_version_valid(out->version))
        return bc_fail(err, BC_ERR_PARSE, "the image header's version is not a version");
    for (size_t i = 0; i < sizeof(SELFTESTS) / sizeof(SELFTESTS[0]); i++) {
        if (strcmp(selftest, SELFTESTS[i]) == 0) {
            out->selftest = (bc_boot_selftest)i;
            return BC_OK;
        }
    }
    return bc_fail(err, BC_ERR_PARSE, "the image header's selftest '%s' is unknown", selftest);
}

bc_status bc_boot_header_read(const char *path, bc_boot_header *out, bc_error *err)
{
    char buf[BC_BOOT_HEADER_MAX];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bc_fail(err, errno == ENOENT ? BC_ERR_NOT_FOUND : BC_ERR_IO, "cannot open %s: %s",
                       path, strerror(errno));
    size_t got = 0;
    while (got < sizeof(buf)) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return bc_fail(err, BC_ERR_IO, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return bc_boot_header_parse(buf, got, out, err);
}

/* ---- boot.json ---- */

static bc_status slot_parse(const char *name, bc_boot_slot *out, bc_error *err)
{
    if (strcmp(name, "a") == 0 || strcmp(name, "b") == 0) {
        *out = name[0] == 'a' ? BC_BOOT_SLOT_A : BC_BOOT_SLOT_B;
        return BC_OK;
    }
    return bc_fail(err, BC_ERR_INVAL, "boot.json: a slot is 'a' or 'b', not '%s'", name);
}

/* The rules load and save share. */
static bc_status check_record(const bc_boot_record *rec, bc_error *err)
{
    for (int i = 0; i < 2; i++) {
        const bc_boot_slot_info *s = &rec->slots[i];
        if (s->version[0] != '\0' && !bc_version_valid(s->version))
            return bc_fail(err, BC_ERR_INVAL, "boot.json: slot %s has a bad version",
                           bc_boot_slot_name((bc_boot_slot)i));
        if (s->sha256[0] != '\0' && !bc_json_hex_valid(s->sha256, BC_SHA256_HEX_LEN))
            return bc_fail(err, BC_ERR_INVAL, "boot.json: slot %s has a bad sha256",
                           bc_boot_slot_name((bc_boot_slot)i));
    }
    if (rec->slots[rec->active].version[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "boot.json: the active slot is empty");
    if (rec->trial && (rec->previous == rec->active || rec->slots[rec->previous].version[0] == 0))
        return bc_fail(err, BC_ERR_INVAL, "boot.json: a trial without a previous slot");
    if (rec->tries < 0 || rec->tries > TRIES_MAX)
        return bc_fail(err, BC_ERR_INVAL, "boot.json: field 'tries' is out of range");
    if (rec->report != BC_BOOT_REPORT_NONE && !bc_version_valid(rec->report_version))
        return bc_fail(err, BC_ERR_INVAL, "boot.json: the report has a bad version");
    if (!bc_json_text_valid(rec->report_detail))
        return bc_fail(err, BC_ERR_INVAL, "boot.json: the report's detail has control characters");
    return BC_OK;
}

static bc_status encode_slot(cJSON *slots, const bc_boot_slot_info *s, const char *name)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return BC_ERR_NOMEM;
    bc_status st = bc_json_add_string(o, "version", s->version);
    if (st == BC_OK)
        st = bc_json_add_string(o, "sha256", s->sha256);
    if (st == BC_OK)
        st = bc_json_add_item(slots, name, o);
    if (st != BC_OK)
        cJSON_Delete(o);
    return st;
}

static bc_status encode_report(cJSON *root, const bc_boot_record *rec)
{
    if (rec->report == BC_BOOT_REPORT_NONE)
        return BC_OK;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return BC_ERR_NOMEM;
    bc_status st = bc_json_add_string(o, "event",
                                      rec->report == BC_BOOT_REPORT_CONFIRMED ? REPORT_CONFIRMED
                                                                              : REPORT_ROLLED_BACK);
    if (st == BC_OK)
        st = bc_json_add_string(o, "version", rec->report_version);
    if (st == BC_OK)
        st = bc_json_add_string(o, "detail", rec->report_detail);
    if (st == BC_OK)
        st = bc_json_add_item(root, "report", o);
    if (st != BC_OK)
        cJSON_Delete(o);
    return st;
}

static bc_status encode(const bc_boot_record *rec, char **out)
{
    cJSON *root = NULL, *slots = cJSON_CreateObject();
    bc_status st = slots != NULL ? bc_json_new_message(&root) : BC_ERR_NOMEM;
    if (st == BC_OK)
        st = bc_json_add_string(root, "active", bc_boot_slot_name(rec->active));
    if (st == BC_OK)
        st = bc_json_add_string(root, "previous", bc_boot_slot_name(rec->previous));
    if (st == BC_OK)
        st = bc_json_add_bool(root, "trial", rec->trial);
    if (st == BC_OK)
        st = bc_json_add_int(root, "tries", rec->tries);
    if (st == BC_OK)
        st =
            bc_json_add_string(root, "resume", rec->resume_docked ? RESUME_DOCKED : RESUME_STANDBY);
    if (st == BC_OK)
        st = encode_slot(slots, &rec->slots[0], "a");
    if (st == BC_OK)
        st = encode_slot(slots, &rec->slots[1], "b");
    if (st == BC_OK) {
        st = bc_json_add_item(root, "slots", slots);
        if (st == BC_OK)
            slots = NULL; /* root owns it */
    }
    if (st == BC_OK)
        st = encode_report(root, rec);
    if (st == BC_OK)
        st = bc_json_print(root, out);
    cJSON_Delete(slots);
    cJSON_Delete(root);
    return st;
}

bc_status bc_boot_save(const char *data_dir, const bc_boot_record *rec, bc_error *err)
{
    char path[PATH_MAX];
    char *json = NULL;
    bc_status st = check_record(rec, err);
    if (st == BC_OK)
        st = bc_boot_path(data_dir, BC_BOOT_FILE, path, sizeof(path), err);
    if (st != BC_OK)
        return st;
    if (encode(rec, &json) != BC_OK)
        return bc_fail(err, BC_ERR_NOMEM, "boot.json: out of memory");
    /* temp, fsync, rename, dir fsync: a power cut leaves the old record or
     * this one, never a torn file - boot.json is the only switch. */
    st = bc_file_write_durable(path, json, strlen(json), 0600, err);
    free(json);
    return st;
}

static bc_status decode_slot(const cJSON *slots, const char *name, bc_boot_slot_info *s,
                             bc_error *err)
{
    const cJSON *o = NULL;
    bc_status st = bc_json_get_object(slots, name, BC_JSON_REQUIRED, &o, err);
    if (st == BC_OK)
        st =
            bc_json_get_string(o, "version", BC_JSON_REQUIRED, s->version, sizeof(s->version), err);
    if (st == BC_OK)
        st = bc_json_get_string(o, "sha256", BC_JSON_REQUIRED, s->sha256, sizeof(s->sha256), err);
    return st;
}

static bc_status decode_report(const cJSON *root, bc_boot_record *rec, bc_error *err)
{
    const cJSON *o = NULL;
    char event[16];
    bc_status st = bc_json_get_object(root, "report", BC_JSON_OPTIONAL, &o, err);
    if (st != BC_OK || o == NULL)
        return st;
    st = bc_json_get_string(o, "event", BC_JSON_REQUIRED, event, sizeof(event), err);
    if (st == BC_OK)
        st = bc_json_get_string(o, "version", BC_JSON_REQUIRED, rec->report_version,
                                sizeof(rec->report_version), err);
    if (st == BC_OK)
        st = bc_json_get_string(o, "detail", BC_JSON_REQUIRED, rec->report_detail,
                                sizeof(rec->report_detail), err);
    if (st != BC_OK)
        return st;
    if (strcmp(event, REPORT_CONFIRMED) == 0)
        rec->report = BC_BOOT_REPORT_CONFIRMED;
    else if (strcmp(event, REPORT_ROLLED_BACK) == 0)
        rec->report = BC_BOOT_REPORT_ROLLED_BACK;
    else
        return bc_fail(err, BC_ERR_INVAL, "boot.json: unknown report '%s'", event);
    return BC_OK;
}

static bc_status decode(const char *text, size_t len, bc_boot_record *rec, bc_error *err)
{
    cJSON *root = NULL;
    const cJSON *slots = NULL;
    char active[4], previous[4], resume[16];
    memset(rec, 0, sizeof(*rec));
    bc_status st = bc_json_parse(text, len, BOOT_JSON_MAX, &root, err);
    if (st == BC_OK)
        st = bc_json_check_version(root, err);
    if (st == BC_OK)
        st = bc_json_get_string(root, "active", BC_JSON_REQUIRED, active, sizeof(active), err);
    if (st == BC_OK)
        st =
            bc_json_get_string(root, "previous", BC_JSON_REQUIRED, previous, sizeof(previous), err);
    if (st == BC_OK)
        st = bc_json_get_bool(root, "trial", BC_JSON_REQUIRED, &rec->trial, err);
    if (st == BC_OK)
        st = bc_json_get_int(root, "tries", BC_JSON_REQUIRED, 0, TRIES_MAX, &rec->tries, err);
    if (st == BC_OK)
        st = bc_json_get_string(root, "resume", BC_JSON_REQUIRED, resume, sizeof(resume), err);
    if (st == BC_OK)
        st = bc_json_get_object(root, "slots", BC_JSON_REQUIRED, &slots, err);
    if (st == BC_OK)
        st = decode_slot(slots, "a", &rec->slots[0], err);
    if (st == BC_OK)
        st = decode_slot(slots, "b", &rec->slots[1], err);
    if (st == BC_OK)
        st = decode_report(root, rec, err);
    cJSON_Delete(root);
    if (st == BC_OK)
        st = slot_parse(active, &rec->active, err);
    if (st == BC_OK)
        st = slot_parse(previous, &rec->previous, err);
    if (st == BC_OK)
        rec->resume_docked = strcmp(resume, RESUME_DOCKED) == 0;
    return st == BC_OK ? check_record(rec, err) : st;
}

/* After a damaged boot.json: slot a, whatever its image says it is. Slot a
 * is the factory slot, so it holds a bootable version even when it never
 * received an image. */
static void safe_record(const char *data_dir, const char *factory_version, bc_boot_record *rec)
{
    char path[PATH_MAX];
    bc_boot_header h;
    bc_boot_factory(rec, factory_version);
    if (bc_boot_slot_path(data_dir, BC_BOOT_SLOT_A, path, sizeof(path), NULL) == BC_OK &&
        bc_boot_header_read(path, &h, NULL) == BC_OK)
        snprintf(rec->slots[0].version, sizeof(rec->slots[0].version), "%s", h.version);
}

bc_status bc_boot_load(const char *data_dir, const char *factory_version, bc_boot_record *rec,
                       bool *found, bc_error *err)
{
    char path[PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    *found = false;
    bc_boot_factory(rec, factory_version);
    bc_status st = bc_boot_path(data_dir, BC_BOOT_FILE, path, sizeof(path), err);
    if (st != BC_OK)
        return st;
    st = bc_file_read_all(path, BOOT_JSON_MAX, &text, &len, err);
    if (st == BC_ERR_NOT_FOUND)
        return BC_OK;
    if (st == BC_OK)
        st = decode(text, len, rec, err);
    free(text);
    if (st != BC_OK) {
        char why[sizeof(err->text)];
        snprintf(why, sizeof(why), "%s", err != NULL ? err->text : "");
        safe_record(data_dir, factory_version, rec);
        return bc_fail(err, st, "%s is damaged (%s); falling back to slot a (%s)", path, why,
                       rec->slots[0].version);
    }
    *found = true;
    return BC_OK;
}

/* Saves next and makes it the record (rec unchanged on failure). */
static bc_status commit(const char *data_dir, bc_boot_record *rec, const bc_boot_record *next,
                        bc_error *err)
{
    bc_status st = bc_boot_save(data_dir, next, err);
    if (st == BC_OK)
        *rec = *next;
    return st;
}

static void set_report(bc_boot_record *r, bc_boot_report kind, const char *version,
                       const char *detail)
{
    r->report = kind;
    snprintf(r->report_version, sizeof(r->report_version), "%s", version);
    snprintf(r->report_detail, sizeof(r->report_detail), "%s", detail);
    for (char *p = r->report_detail; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
}

static void revert_to_previous(bc_boot_record *next, const char *detail)
{
    char bad[BC_VERSION_MAX + 1];
    snprintf(bad, sizeof(bad), "%s", bc_boot_active_version(next));
    bc_boot_slot back = next->previous;
    next->previous = next->active;
    next->active = back;
    next->trial = false;
    next->tries = 0;
    set_report(next, BC_BOOT_REPORT_ROLLED_BACK, bad, detail);
}

bc_status bc_boot_start(const char *data_dir, bc_boot_record *rec, bc_boot_outcome *outcome,
                        bc_error *err)
{
    bc_boot_record next = *rec;
    *outcome = BC_BOOT_NORMAL;
    if (!rec->trial)
        return BC_OK;
    if (rec->tries == 0) {
        /* Counted BEFORE the new version runs: if it never confirms, the
         * next boot sees tries >= 1 and goes back. */
        next.tries = 1;
        *outcome = BC_BOOT_TRIAL;
        return commit(data_dir, rec, &next, err);
    }
    char detail[BC_TEXT_MAX + 1];
    snprintf(detail, sizeof(detail),
             "did not confirm: the trial boot of %s ended before its health check passed "
             "(crash, kill or power loss)",
             bc_boot_active_version(rec));
    revert_to_previous(&next, detail);
    *outcome = BC_BOOT_REVERTED;
    return commit(data_dir, rec, &next, err);
}

bc_status bc_boot_install(const char *data_dir, bc_boot_record *rec, const char *image_path,
                          const char *version, const char *sha256, bool resume_docked,
                          bc_error *err)
{
    if (!bc_version_valid(version) || !bc_json_hex_valid(sha256, BC_SHA256_HEX_LEN))
        return bc_fail(err, BC_ERR_INVAL, "install: bad version or sha256");
    if (rec->trial)
        return bc_fail(err, BC_ERR_STATE, "install: version %s is still on trial",
                       bc_boot_active_version(rec));
    bc_boot_slot target = bc_boot_inactive(rec);
    char slot[PATH_MAX], dir[PATH_MAX];
    bc_status st = bc_boot_slot_path(data_dir, target, slot, sizeof(slot), err);
    if (st == BC_OK)
        st = bc_boot_path(data_dir, "", dir, sizeof(dir), err);
    if (st != BC_OK)
        return st;
    if (image_path != NULL) {
        /* Only ever the inactive slot: the running image is never touched. */
        if (rename(image_path, slot) != 0)
            return bc_fail(err, BC_ERR_IO, "install: cannot move %s to %s: %s", image_path, slot,
                           strerror(errno));
        st = bc_file_fsync_dir(dir, err);
        if (st != BC_OK)
            return st;
    }
    bc_boot_record next = *rec;
    next.previous = rec->active;
    next.active = target;
    next.trial = true;
    next.tries = 0;
    next.resume_docked = resume_docked;
    snprintf(next.slots[target].version, sizeof(next.slots[target].version), "%s", version);
    snprintf(next.slots[target].sha256, sizeof(next.slots[target].sha256), "%s", sha256);
    return commit(data_dir, rec, &next, err);
}

bc_status bc_boot_confirm(const char *data_dir, bc_boot_record *rec, bc_error *err)
{
    if (!rec->trial)
        return bc_fail(err, BC_ERR_STATE, "confirm: no version is on trial");
    bc_boot_record next = *rec;
    next.trial = false;
    next.tries = 0;
    set_report(&next, BC_BOOT_REPORT_CONFIRMED, bc_boot_active_version(rec), "");
    return commit(data_dir, rec, &next, err);
}

bc_status bc_boot_revert(const char *data_dir, bc_boot_record *rec, const char *detail,
                         bc_error *err)
{
    if (!rec->trial)
        return bc_fail(err, BC_ERR_STATE, "revert: no version is on trial");
    bc_boot_record next = *rec;
    revert_to_previous(&next, detail);
    return commit(data_dir, rec, &next, err);
}

bc_status bc_boot_report_done(const char *data_dir, bc_boot_record *rec, bc_error *err)
{
    if (rec->report == BC_BOOT_REPORT_NONE)
        return BC_OK;
    bc_boot_record next = *rec;
    next.report = BC_BOOT_REPORT_NONE;
    next.report_version[0] = '\0';
    next.report_detail[0] = '\0';
    return commit(data_dir, rec, &next, err);
}
