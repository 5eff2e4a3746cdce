/*
 * recorder.c - recordings/ on the camera: the pre-event buffer, the open
 * writer, crash recovery and the pending list.
 *
 * Life of a recording, and what a crash at each step leaves behind:
 *
 *   start:  ID.open.json (durable)     crash -> open.json alone: deleted
 *           ID.bcrec + ID.bcrec.seal   crash -> header incomplete: moved to
 *             (writer_open)                     broken/; else sealed
 *           pre-event buffer drained,  crash -> sealed at the next open with
 *           then feeds; flush/second           what the last flush made durable
 *   stop:   writer close (final        crash -> sealed (or already complete)
 *             segment, sidecar gone)
 *           ID.json (durable)          crash -> ID.json rebuilt from the file
 *           ID.open.json deleted                and ID.open.json
 *   delete: ID.bcrec unlinked, then    crash -> ID.json alone: deleted
 *           ID.json, directory fsynced
 *
 * So at open every ID.bcrec is either listed with a valid ID.json, sealed
 * and listed, moved aside, or (on an I/O error) left for the next open;
 * nothing is ever deleted without a receipt. The invariant of the module:
 * a recording leaves the camera only through bc_recorder_delete_with_receipt.
 *
 * Plaintext lives only in memory (the pre-event ring, which the prebuffer
 * module wipes, and the writer's one-segment buffer); the disk only ever
 * sees the writer's ciphertext and the metadata.
 */
#include "device-agent/recorder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/file.h"
#include "common/log.h"
#include "device-agent/prebuffer.h"
#include "proto/encoding.h"
#include "proto/json.h"
#include "proto/recording.h"
#include "proto/sign.h"

#define OPEN_JSON_MAX 1024

struct bc_recorder {
    char data_dir[PATH_MAX];
    char dir[PATH_MAX]; /* data_dir/recordings */
    char device[BC_DEVICE_ID_MAX + 1];
    EVP_PKEY *vault_pub; /* our reference */
    char key_id[BC_KEY_ID_LEN + 1];
    uint32_t segment_size;
    bc_prebuffer *pb;

    /* the open recording (w != NULL) */
    bc_recording_writer *w;
    bc_recording_meta cur; /* id, device, key_id, recorded_at, warnings, emergency, pre */
    uint64_t cur_bytes;

    /* closed recordings, sorted by (recorded_at, id) */
    bc_recording_meta *pending;
    size_t npending, cap_pending;

    /* found by the open-time scan, until taken */
    bc_recording_meta *recovered;
    size_t nrecovered, cap_recovered;

    size_t broken;
    uint64_t bytes_fed, bytes_recorded;
};

/* ---- small helpers ----------------------------------------------------- */

static bc_status path_of(const bc_recorder *rec, const char *id, const char *ext, char *out,
                         size_t size, bc_error *err)
{
    int n = snprintf(out, size, "%s/%s%s", rec->dir, id, ext);
    if (n < 0 || (size_t)n >= size)
        return bc_fail(err, BC_ERR_TOO_BIG, "path of recording '%s' is too long", id);
    return BC_OK;
}

static int path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Unlinks path; a missing file is fine. 0 or -1 (errno set). */
static int unlink_if_exists(const char *path)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return 0;
    return -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int64_t mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* Keeps a sorted array: inserts m at its (recorded_at, id) place. */
static bc_status meta_insert(bc_recording_meta **arr, size_t *n, size_t *cap,
                             const bc_recording_meta *m)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        bc_recording_meta *grown = realloc(*arr, ncap * sizeof(**arr));
        if (grown == NULL)
            return BC_ERR_NOMEM;
        *arr = grown;
        *cap = ncap;
    }
    size_t at = *n;
    while (at > 0) {
        const bc_recording_meta *prev = &(*arr)[at - 1];
        if (prev->recorded_at < m->recorded_at || (prev->recorded_at == m->recorded_at &&
                                                   strcmp(prev->recording_id, m->recording_id) < 0))
            break;
        at--;
    }
    memmove(&(*arr)[at + 1], &(*arr)[at], (*n - at) * sizeof(**arr));
    (*arr)[at] = *m;
    (*n)++;
    return BC_OK;
}

static size_t pending_index(const bc_recorder *rec, const char *id)
{
    for (size_t i = 0; i < rec->npending; i++)
        if (strcmp(rec->pending[i].recording_id, id) == 0)
            return i;
    return SIZE_MAX;
}

/* ---- metadata files ---------------------------------------------------- */

/* Writes cJSON obj durably to path (mode 0600). */
static bc_status json_save(const char *path, cJSON *obj, bc_error *err)
{
    char *text = NULL;
    bc_status rc = bc_json_print(obj, &text);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot encode '%s'", path);
    rc = bc_file_write_durable(path, text, strlen(text), 0600, err);
    free(text);
    return rc;
}

static bc_status meta_save(const char *path, const bc_recording_meta *m, bc_error *err)
{
    cJSON *obj = NULL;
    bc_status rc = bc_json_new_message(&obj);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot encode '%s'", path);
    if ((rc = bc_json_add_string(obj, "recording_id", m->recording_id)) != BC_OK ||
        (rc = bc_json_add_string(obj, "device", m->device)) != BC_OK ||
        (rc = bc_json_add_string(obj, "key_id", m->key_id)) != BC_OK ||
        (rc = bc_json_add_int(obj, "recorded_at", m->recorded_at)) != BC_OK ||
        (rc = bc_json_add_int(obj, "duration_ms", m->duration_ms)) != BC_OK ||
        (rc = bc_json_add_int(obj, "warnings", m->warnings)) != BC_OK ||
        (rc = bc_json_add_bool(obj, "emergency", m->emergency)) != BC_OK ||
        (rc = bc_json_add_int(obj, "size", (int64_t)m->size)) != BC_OK ||
        (rc = bc_json_add_string(obj, "sha256", m->sha256)) != BC_OK ||
        (rc = bc_json_add_int(obj, "segments", (int64_t)m->segments)) != BC_OK ||
        (rc = bc_json_add_bool(obj, "interrupted", m->interrupted)) != BC_OK ||
        (rc = bc_json_add_int(obj, "pre_event_bytes", (int64_t)m->pre_event_bytes)) != BC_OK) {
        rc = bc_fail(err, rc, "cannot encode '%s'", path);
        goto cleanup;
    }
    rc = json_save(path, obj, err);

cleanup:
    cJSON_Delete(obj);
    return rc;
}

/* Reads path into a parsed, version-checked tree. */
static bc_status json_load(const char *path, size_t max, cJSON **root, bc_error *err)
{
    char *text = NULL;
    size_t len = 0;
    *root = NULL;
    bc_status rc = bc_file_read_all(path, max, &text, &len, err);
    if (rc != BC_OK)
        return rc;
    rc = bc_json_parse(text, len, max, root, err);
    free(text);
    if (rc != BC_OK)
        return rc;
    rc = bc_json_check_version(*root, err);
    if (rc != BC_OK) {
        cJSON_Delete(*root);
        *root = NULL;
    }
    return rc;
}

/* Loads ID.json and checks that it describes recording id. */
static bc_status meta_load(const char *path, const char *id, bc_recording_meta *m, bc_error *err)
{
    cJSON *root = NULL;
    int64_t warnings = 0, size = 0, segments = 0, pre = 0;
    memset(m, 0, sizeof(*m));
    bc_status rc = json_load(path, BC_RECORDER_META_MAX, &root, err);
    if (rc != BC_OK)
        return rc;
    if ((rc = bc_json_get_string(root, "recording_id", BC_JSON_REQUIRED, m->recording_id,
                                 sizeof(m->recording_id), err)) != BC_OK ||
        (rc = bc_json_get_string(root, "device", BC_JSON_REQUIRED, m->device, sizeof(m->device),
                                 err)) != BC_OK ||
        (rc = bc_json_get_string(root, "key_id", BC_JSON_REQUIRED, m->key_id, sizeof(m->key_id),
                                 err)) != BC_OK ||
        (rc = bc_json_get_int(root, "recorded_at", BC_JSON_REQUIRED, 0, BC_JSON_INT_MAX,
                              &m->recorded_at, err)) != BC_OK ||
        (rc = bc_json_get_int(root, "duration_ms", BC_JSON_REQUIRED, 0, BC_JSON_INT_MAX,
                              &m->duration_ms, err)) != BC_OK ||
        (rc = bc_json_get_int(root, "warnings", BC_JSON_REQUIRED, 0, 2, &warnings, err)) != BC_OK ||
        (rc = bc_json_get_bool(root, "emergency", BC_JSON_REQUIRED, &m->emergency, err)) != BC_OK ||
        (rc = bc_json_get_int(root, "size", BC_JSON_REQUIRED, 1, BC_JSON_INT_MAX, &size, err)) !=
            BC_OK ||
        (rc = bc_json_get_string(root, "sha256", BC_JSON_REQUIRED, m->sha256, sizeof(m->sha256),
                                 err)) != BC_OK ||
        (rc = bc_json_get_int(root, "segments", BC_JSON_REQUIRED, 0, BC_JSON_INT_MAX, &segments,
                              err)) != BC_OK ||
        (rc = bc_json_get_bool(root, "interrupted", BC_JSON_REQUIRED, &m->interrupted, err)) !=
            BC_OK ||
        (rc = bc_json_get_int(root, "pre_event_bytes", BC_JSON_REQUIRED, 0, BC_JSON_INT_MAX, &pre,
                              err)) != BC_OK)
        goto cleanup;
    if (strcmp(m->recording_id, id) != 0 || !bc_json_hex_valid(m->sha256, BC_SHA256_HEX_LEN) ||
        !bc_device_id_valid(m->device) || !bc_id_valid(m->key_id)) {
        rc =
            bc_fail(err, BC_ERR_PARSE, "'%s' does not describe recording '%s' correctly", path, id);
        goto cleanup;
    }
    m->warnings = (int)warnings;
    m->size = (uint64_t)size;
    m->segments = (uint64_t)segments;
    m->pre_event_bytes = (uint64_t)pre;

cleanup:
    cJSON_Delete(root);
    return rc;
}

/* ID.open.json: what only start knows, kept for a crash. */
static bc_status open_save(const char *path, const bc_recording_meta *cur, bc_error *err)
{
    cJSON *obj = NULL;
    bc_status rc = bc_json_new_message(&obj);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot encode '%s'", path);
    if ((rc = bc_json_add_string(obj, "recording_id", cur->recording_id)) != BC_OK ||
        (rc = bc_json_add_int(obj, "recorded_at", cur->recorded_at)) != BC_OK ||
        (rc = bc_json_add_int(obj, "warnings", cur->warnings)) != BC_OK ||
        (rc = bc_json_add_bool(obj, "emergency", cur->emergency)) != BC_OK ||
        (rc = bc_json_add_int(obj, "pre_event_bytes", (int64_t)cur->pre_event_bytes)) != BC_OK) {
        rc = bc_fail(err, rc, "cannot encode '%s'", path);
        goto cleanup;
    }
    rc = json_save(path, obj, err);

cleanup:
    cJSON_Delete(obj);
    return rc;
}

/* Fills warnings, emergency and pre_event_bytes of m from ID.open.json. */
static bc_status open_load(const char *path, bc_recording_meta *m, bc_error *err)
{
    cJSON *root = NULL;
    char id[BC_ID_MAX + 1];
    int64_t warnings = 0, pre = 0;
    bool emergency = false;
    bc_status rc = json_load(path, OPEN_JSON_MAX, &root, err);
    if (rc != BC_OK)
        return rc;
    if ((rc = bc_json_get_string(root, "recording_id", BC_JSON_REQUIRED, id, sizeof(id), err)) !=
            BC_OK ||
        (rc = bc_json_get_int(root, "warnings", BC_JSON_REQUIRED, 0, 2, &warnings, err)) != BC_OK ||
        (rc = bc_json_get_bool(root, "emergency", BC_JSON_REQUIRED, &emergency, err)) != BC_OK ||
        (rc = bc_json_get_int(root, "pre_event_bytes", BC_JSON_REQUIRED, 0, BC_JSON_INT_MAX, &pre,
                              err)) != BC_OK)
        goto cleanup;
    if (strcmp(id, m->recording_id) != 0) {
        rc = bc_fail(err, BC_ERR_PARSE, "'%s' names another recording", path);
        goto cleanup;
    }
    m->warnings = (int)warnings;
    m->emergency = emergency;
    m->pre_event_bytes = (uint64_t)pre;

cleanup:
    cJSON_Delete(root);
    return rc;
}

/* ---- the open-time scan ------------------------------------------------ */

/* Renames dir/name into dir/broken/, never over an existing file there. */
static int move_one_aside(const bc_recorder *rec, const char *name)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (snprintf(from, sizeof(from), "%s/%s", rec->dir, name) >= (int)sizeof(from))
        return -1;
    if (!path_exists(from))
        return 0;
    for (int n = 0; n < 1000; n++) {
        int len = n == 0
                      ? snprintf(to, sizeof(to), "%s/%s/%s", rec->dir, BC_RECORDER_BROKEN_DIR, name)
                      : snprintf(to, sizeof(to), "%s/%s/%s.%d", rec->dir, BC_RECORDER_BROKEN_DIR,
                                 name, n);
        if (len < 0 || (size_t)len >= sizeof(to))
            return -1;
        if (!path_exists(to))
            return rename(from, to);
    }
    errno = EEXIST;
    return -1;
}

/* Moves a recording that cannot be sealed, and its companions, to broken/. */
static void move_aside(bc_recorder *rec, const char *id, const char *reason)
{
    char broken[PATH_MAX];
    if (snprintf(broken, sizeof(broken), "%s/%s", rec->dir, BC_RECORDER_BROKEN_DIR) >=
        (int)sizeof(broken))
        return;
    if (mkdir(broken, 0700) != 0 && errno != EEXIST) {
        log_warn("recorder | move_aside_failed | id=%s dir=%s", id, broken);
        return;
    }
    static const char *const exts[] = {BC_RECORDER_EXT, BC_RECORDER_EXT BC_RECORDING_SEAL_SUFFIX,
                                       BC_RECORDER_OPEN_EXT, BC_RECORDER_META_EXT};
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        char name[NAME_MAX + 1];
        if (snprintf(name, sizeof(name), "%s%s", id, exts[i]) >= (int)sizeof(name))
            continue;
        if (move_one_aside(rec, name) != 0)
            log_warn("recorder | move_aside_failed | file=%s", name);
    }
    if (bc_file_fsync_dir(broken, NULL) != BC_OK || bc_file_fsync_dir(rec->dir, NULL) != BC_OK)
        log_warn("recorder | fsync_failed | dir=%s", rec->dir);
    rec->broken++;
    log_warnx("recorder | moved_aside | id=%s to=%s/ reason=%s", id, BC_RECORDER_BROKEN_DIR,
              reason);
}

/* A recording whose ID.json is valid and that has no sidecar: listed. */
static int recover_listed(bc_recorder *rec, const char *id, const char *json, const char *bcrec,
                          const char *open_json)
{
    bc_recording_meta m;
    bc_error e;
    struct stat st;
    if (meta_load(json, id, &m, &e) != BC_OK) {
        log_warnx("recorder | metadata_unreadable | id=%s reason=%s (rebuilt from the file)", id,
                  e.text);
        return 0;
    }
    if (stat(bcrec, &st) != 0 || (uint64_t)st.st_size != m.size) {
        log_warnx("recorder | metadata_stale | id=%s (size differs, rebuilt from the file)", id);
        return 0;
    }
    if (meta_insert(&rec->pending, &rec->npending, &rec->cap_pending, &m) != BC_OK)
        return -1;
    if (unlink_if_exists(open_json) != 0)
        log_warn("recorder | unlink_failed | file=%s", open_json);
    return 1;
}

/* Seals one recording found on disk and lists it; see bc_recorder_open. */
static bc_status recover_one(bc_recorder *rec, const char *id)
{
    char bcrec[PATH_MAX], seal[PATH_MAX], json[PATH_MAX], open_json[PATH_MAX];
    if (path_of(rec, id, BC_RECORDER_EXT, bcrec, sizeof(bcrec), NULL) != BC_OK ||
        path_of(rec, id, BC_RECORDER_EXT BC_RECORDING_SEAL_SUFFIX, seal, sizeof(seal), NULL) !=
            BC_OK ||
        path_of(rec, id, BC_RECORDER_META_EXT, json, sizeof(json), NULL) != BC_OK ||
        path_of(rec, id, BC_RECORDER_OPEN_EXT, open_json, sizeof(open_json), NULL) != BC_OK)
        return BC_OK; /* cannot happen: the name came from this directory */

    if (!path_exists(seal) && path_exists(json)) {
        int listed = recover_listed(rec, id, json, bcrec, open_json);
        if (listed < 0)
            return BC_ERR_NOMEM;
        if (listed > 0)
            return BC_OK;
    }

    bc_recording_info info;
    bc_recording_header hdr;
    bc_error e;
    bc_status rc = bc_recording_seal(bcrec, &info, &e);
    switch (rc) {
    case BC_OK:
        break;
    case BC_ERR_TRUNCATED:
        move_aside(rec, id, "header incomplete (crash before the header was durable)");
        return BC_OK;
    case BC_ERR_PARSE:
    case BC_ERR_VERSION:
    case BC_ERR_STATE:
    case BC_ERR_TAMPERED:
        move_aside(rec, id, e.text);
        return BC_OK;
    default:
        log_errorx("recorder | seal_failed | id=%s reason=%s (left for the next start)", id,
                   e.text);
        return BC_OK;
    }
    if (bc_recording_info_read(bcrec, &hdr, &e) != BC_OK) {
        log_errorx("recorder | header_unreadable | id=%s reason=%s", id, e.text);
        return BC_OK;
    }

    bc_recording_meta m;
    memset(&m, 0, sizeof(m));
    if (strlen(id) >= sizeof(m.recording_id))
        return BC_OK; /* list_dir only passes ids that passed bc_id_valid */
    memcpy(m.recording_id, id, strlen(id) + 1);
    snprintf(m.device, sizeof(m.device), "%s", hdr.device);
    snprintf(m.key_id, sizeof(m.key_id), "%s", hdr.key_id);
    m.recorded_at = hdr.created_at_ms;
    m.size = info.size;
    m.segments = info.segments;
    m.interrupted = info.interrupted != 0;
    if (bc_hex_encode(info.sha256, sizeof(info.sha256), m.sha256, sizeof(m.sha256)) != BC_OK)
        return BC_OK;
    if (open_load(open_json, &m, &e) != BC_OK)
        log_warnx("recorder | start_info_lost | id=%s reason=%s (warnings 0, no emergency)", id,
                  e.text);
    struct stat st;
    if (stat(bcrec, &st) == 0 && mtime_ms(&st) > m.recorded_at)
        m.duration_ms = mtime_ms(&st) - m.recorded_at;

    if (meta_save(json, &m, &e) != BC_OK) {
        log_errorx("recorder | metadata_write_failed | id=%s reason=%s", id, e.text);
        return BC_OK;
    }
    if (unlink_if_exists(open_json) != 0)
        log_warn("recorder | unlink_failed | file=%s", open_json);
    if (meta_insert(&rec->pending, &rec->npending, &rec->cap_pending, &m) != BC_OK ||
        meta_insert(&rec->recovered, &rec->nrecovered, &rec->cap_recovered, &m) != BC_OK)
        return BC_ERR_NOMEM;
    log_warnx("recorder | recovered | id=%s segments=%llu interrupted=%d dropped=%llu size=%llu",
              id, (unsigned long long)m.segments, m.interrupted ? 1 : 0,
              (unsigned long long)info.dropped, (unsigned long long)m.size);
    return BC_OK;
}

/* Deletes a metadata file whose recording is gone (a crash mid-delete or
 * mid-start); moves an orphan seal sidecar aside. */
static void remove_orphan(bc_recorder *rec, const char *name)
{
    char id[NAME_MAX + 1], bcrec[PATH_MAX], path[PATH_MAX];
    snprintf(id, sizeof(id), "%s", name);
    char *dot = strchr(id, '.');
    if (dot == NULL)
        return;
    *dot = '\0';
    if (!bc_id_valid(id) ||
        path_of(rec, id, BC_RECORDER_EXT, bcrec, sizeof(bcrec), NULL) != BC_OK ||
        path_exists(bcrec))
        return;
    if (snprintf(path, sizeof(path), "%s/%s", rec->dir, name) >= (int)sizeof(path) ||
        !path_exists(path))
        return;
    if (ends_with(name, BC_RECORDING_SEAL_SUFFIX)) {
        move_aside(rec, id, "seal sidecar without its recording");
        return;
    }
    if (unlink(path) != 0)
        log_warn("recorder | unlink_failed | file=%s", path);
    else
        log_warnx("recorder | orphan_removed | file=%s (its recording is gone)", name);
}

typedef struct name_list {
    char **names;
    size_t n, cap;
} name_list;

static void names_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
}

static bc_status names_read(const char *dir, name_list *l, bc_error *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return bc_fail(err, BC_ERR_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    bc_status rc = BC_OK;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue; /* ".", ".." and nothing of ours */
        if (l->n == l->cap) {
            size_t ncap = l->cap ? l->cap * 2 : 32;
            char **grown = realloc(l->names, ncap * sizeof(*grown));
            if (grown == NULL) {
                rc = bc_fail(err, BC_ERR_NOMEM, "no memory to list '%s'", dir);
                goto cleanup;
            }
            l->names = grown;
            l->cap = ncap;
        }
        if ((l->names[l->n] = strdup(de->d_name)) == NULL) {
            rc = bc_fail(err, BC_ERR_NOMEM, "no memory to list '%s'", dir);
            goto cleanup;
        }
        l->n++;
        errno = 0;
    }
    if (errno != 0)
        rc = bc_fail(err, BC_ERR_IO, "cannot read directory '%s': %s", dir, strerror(errno));

cleanup:
    closedir(d);
    return rc;
}

static bc_status scan(bc_recorder *rec, bc_error *err)
{
    name_list l = {0};
    bc_status rc = names_read(rec->dir, &l, err);
    if (rc != BC_OK)
        goto cleanup;
    for (size_t i = 0; i < l.n; i++) {
        if (!ends_with(l.names[i], BC_FILE_TMP_SUFFIX))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", rec->dir, l.names[i]) < (int)sizeof(path) &&
            unlink(path) != 0)
            log_warn("recorder | unlink_failed | file=%s", path);
    }
    for (size_t i = 0; i < l.n; i++) {
        const char *name = l.names[i];
        if (!ends_with(name, BC_RECORDER_EXT))
            continue;
        char id[NAME_MAX + 1];
        size_t idlen = strlen(name) - strlen(BC_RECORDER_EXT);
        snprintf(id, sizeof(id), "%.*s", (int)idlen, name);
        if (!bc_id_valid(id)) {
            log_warnx("recorder | ignored | file=%s (not a recording id)", name);
            continue;
        }
        if ((rc = recover_one(rec, id)) != BC_OK) {
            rc = bc_fail(err, rc, "no memory to list the recordings");
            goto cleanup;
        }
    }
    for (size_t i = 0; i < l.n; i++)
        if (ends_with(l.names[i], BC_RECORDER_META_EXT) ||
            ends_with(l.names[i], BC_RECORDING_SEAL_SUFFIX))
            remove_orphan(rec, l.names[i]);
    if (bc_file_fsync_dir(rec->dir, NULL) != BC_OK)
        log_warn("recorder | fsync_failed | dir=%s", rec->dir);

cleanup:
    names_free(&l);
    return rc;
}

/* ---- open / free ------------------------------------------------------- */

bc_status bc_recorder_set_vault_key(bc_recorder *rec, EVP_PKEY *vault_pub, const char *key_id,
                                    bc_error *err)
{
    char id[BC_KEY_ID_LEN + 1];
    if (rec == NULL || vault_pub == NULL)
        return bc_fail(err, BC_ERR_INVAL, "the vault recording key must not be NULL");
    if (EVP_PKEY_get_base_id(vault_pub) != EVP_PKEY_X25519)
        return bc_fail(err, BC_ERR_INVAL, "the vault recording key is not an X25519 key");
    if (bc_key_id(vault_pub, id) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "cannot compute the vault key's id");
    if (key_id != NULL && strcmp(key_id, id) != 0)
        return bc_fail(err, BC_ERR_INVAL, "key_id '%s' is not the id of the vault key (%s)", key_id,
                       id);
    if (EVP_PKEY_up_ref(vault_pub) != 1)
        return bc_fail(err, BC_ERR_CRYPTO, "cannot take a reference to the vault key");
    EVP_PKEY_free(rec->vault_pub);
    rec->vault_pub = vault_pub;
    memcpy(rec->key_id, id, sizeof(id));
    return BC_OK;
}

bc_status bc_recorder_open(const char *data_dir, EVP_PKEY *vault_pub, const char *key_id,
                           const char *device_id, uint32_t segment_size, size_t pre_event_bytes,
                           bc_recorder **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "out must not be NULL");
    *out = NULL;
    if (data_dir == NULL || data_dir[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "data_dir must not be empty");
    if (!bc_device_id_valid(device_id))
        return bc_fail(err, BC_ERR_INVAL, "device_id is not a valid device id");
    if (segment_size != 0 &&
        (segment_size < BC_RECORDING_SEGMENT_MIN || segment_size > BC_RECORDING_SEGMENT_MAX))
        return bc_fail(err, BC_ERR_INVAL, "segment_size %u is out of range", segment_size);

    bc_recorder *rec = calloc(1, sizeof(*rec));
    if (rec == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the recorder");
    bc_status rc = BC_OK;
    int n1 = snprintf(rec->data_dir, sizeof(rec->data_dir), "%s", data_dir);
    int n2 = snprintf(rec->dir, sizeof(rec->dir), "%s/%s", data_dir, BC_RECORDER_DIR);
    if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof(rec->dir) - NAME_MAX) {
        rc = bc_fail(err, BC_ERR_INVAL, "data_dir '%s' is too long", data_dir);
        goto cleanup;
    }
    snprintf(rec->device, sizeof(rec->device), "%s", device_id);
    rec->segment_size = segment_size;
    if ((rc = bc_recorder_set_vault_key(rec, vault_pub, key_id, err)) != BC_OK)
        goto cleanup;
    if (bc_prebuffer_new(pre_event_bytes, &rec->pb) != BC_OK) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory for a pre-event buffer of %zu bytes",
                     pre_event_bytes);
        goto cleanup;
    }
    if (mkdir(rec->dir, 0700) != 0 && errno != EEXIST) {
        rc = bc_fail(err, BC_ERR_IO, "cannot create '%s': %s", rec->dir, strerror(errno));
        goto cleanup;
    }
    if ((rc = scan(rec, err)) != BC_OK)
        goto cleanup;
    *out = rec;
    return BC_OK;

cleanup:
    bc_recorder_free(rec);
    return rc;
}

void bc_recorder_free(bc_recorder *rec)
{
    if (rec == NULL)
        return;
    bc_recording_writer_abort(rec->w); /* as a crash: sealed at the next open */
    bc_prebuffer_free(rec->pb);
    EVP_PKEY_free(rec->vault_pub);
    free(rec->pending);
    free(rec->recovered);
    free(rec);
}

bc_status bc_recorder_take_recovered(bc_recorder *rec, bc_recording_meta **list, size_t *count)
{
    *list = rec->recovered;
    *count = rec->nrecovered;
    rec->recovered = NULL;
    rec->nrecovered = rec->cap_recovered = 0;
    return BC_OK;
}

/* ---- recording --------------------------------------------------------- */

bc_status bc_recorder_feed(bc_recorder *rec, const void *data, size_t len, bc_error *err)
{
    if (data == NULL && len > 0)
        return bc_fail(err, BC_ERR_INVAL, "data must not be NULL");
    if (len == 0)
        return BC_OK;
    rec->bytes_fed += len;
    if (rec->w == NULL) {
        bc_prebuffer_write(rec->pb, data, len);
        return BC_OK;
    }
    bc_status rc = bc_recording_writer_write(rec->w, data, len);
    if (rc != BC_OK)
        return bc_fail(err, rc, "recording '%s': %s", rec->cur.recording_id,
                       bc_recording_writer_error(rec->w));
    rec->bytes_recorded += len;
    rec->cur_bytes += len;
    return BC_OK;
}

static bc_status drain_sink(const uint8_t *data, size_t len, void *userdata)
{
    bc_recorder *rec = userdata;
    bc_status rc = bc_recording_writer_write(rec->w, data, len);
    if (rc == BC_OK) {
        rec->bytes_recorded += len;
        rec->cur_bytes += len;
    }
    return rc;
}

/* Ends the open recording: close, or seal if close cannot; then ID.json,
 * then the pending list. The recorder is on standby afterwards. */
static bc_status finish(bc_recorder *rec, int64_t now_ms, bc_recording_meta *out, bc_error *err)
{
    bc_recording_meta m = rec->cur;
    char bcrec[PATH_MAX], json[PATH_MAX], open_json[PATH_MAX], werr[sizeof(bc_error)];
    bc_recording_info info;
    memset(&info, 0, sizeof(info));
    snprintf(werr, sizeof(werr), "%s", bc_recording_writer_error(rec->w));
    bc_status rc = bc_recording_writer_close(rec->w, &info); /* frees the writer */
    rec->w = NULL;
    memset(&rec->cur, 0, sizeof(rec->cur));
    rec->cur_bytes = 0;
    if (path_of(rec, m.recording_id, BC_RECORDER_EXT, bcrec, sizeof(bcrec), err) != BC_OK ||
        path_of(rec, m.recording_id, BC_RECORDER_META_EXT, json, sizeof(json), err) != BC_OK ||
        path_of(rec, m.recording_id, BC_RECORDER_OPEN_EXT, open_json, sizeof(open_json), err) !=
            BC_OK)
        return BC_ERR_TOO_BIG;
    if (rc != BC_OK) {
        log_warnx("recorder | close_failed | id=%s status=%s writer=%s (sealing it)",
                  m.recording_id, bc_strerror(rc), werr[0] ? werr : "-");
        rc = bc_recording_seal(bcrec, &info, err);
        if (rc != BC_OK) {
            log_errorx("recorder | seal_failed | id=%s reason=%s (recovered at the next start)",
                       m.recording_id, err ? err->text : bc_strerror(rc));
            return rc;
        }
    }
    m.size = info.size;
    m.segments = info.segments;
    m.interrupted = info.interrupted != 0;
    m.duration_ms = now_ms > m.recorded_at ? now_ms - m.recorded_at : 0;
    if (bc_hex_encode(info.sha256, sizeof(info.sha256), m.sha256, sizeof(m.sha256)) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL, "cannot encode the sha256 of '%s'", m.recording_id);
    if ((rc = meta_save(json, &m, err)) != BC_OK) {
        log_errorx("recorder | metadata_write_failed | id=%s reason=%s", m.recording_id,
                   err ? err->text : bc_strerror(rc));
        return rc;
    }
    if (unlink_if_exists(open_json) != 0)
        log_warn("recorder | unlink_failed | file=%s", open_json);
    if (meta_insert(&rec->pending, &rec->npending, &rec->cap_pending, &m) != BC_OK)
        return bc_fail(err, BC_ERR_NOMEM, "no memory to list recording '%s'", m.recording_id);
    if (out != NULL)
        *out = m;
    log_info("recorder | closed | id=%s size=%llu segments=%llu interrupted=%d", m.recording_id,
             (unsigned long long)m.size, (unsigned long long)m.segments, m.interrupted ? 1 : 0);
    return BC_OK;
}

bc_status bc_recorder_start(bc_recorder *rec, const char *recording_id, int64_t now_ms,
                            int warnings, bool emergency, bc_error *err)
{
    if (rec->w != NULL)
        return bc_fail(err, BC_ERR_STATE, "recording '%s' is already open", rec->cur.recording_id);
    if (!bc_id_valid(recording_id))
        return bc_fail(err, BC_ERR_INVAL, "recording_id is not a valid id");
    if (warnings < 0 || warnings > 2)
        return bc_fail(err, BC_ERR_INVAL, "warnings %d is out of range 0..2", warnings);
    if (now_ms < 0)
        return bc_fail(err, BC_ERR_INVAL, "now_ms must not be negative");
    char bcrec[PATH_MAX], json[PATH_MAX], open_json[PATH_MAX];
    bc_status rc;
    if ((rc = path_of(rec, recording_id, BC_RECORDER_EXT, bcrec, sizeof(bcrec), err)) != BC_OK ||
        (rc = path_of(rec, recording_id, BC_RECORDER_META_EXT, json, sizeof(json), err)) != BC_OK ||
        (rc = path_of(rec, recording_id, BC_RECORDER_OPEN_EXT, open_json, sizeof(open_json),
                      err)) != BC_OK)
        return rc;
    if (path_exists(bcrec) || path_exists(json) || path_exists(open_json))
        return bc_fail(err, BC_ERR_EXISTS, "a recording '%s' exists already", recording_id);

    bc_recording_meta cur;
    memset(&cur, 0, sizeof(cur));
    snprintf(cur.recording_id, sizeof(cur.recording_id), "%s", recording_id);
    snprintf(cur.device, sizeof(cur.device), "%s", rec->device);
    snprintf(cur.key_id, sizeof(cur.key_id), "%s", rec->key_id);
    cur.recorded_at = now_ms;
    cur.warnings = warnings;
    cur.emergency = emergency;
    cur.pre_event_bytes = bc_prebuffer_len(rec->pb);
    if ((rc = open_save(open_json, &cur, err)) != BC_OK)
        return rc;
    rc = bc_recording_writer_open(bcrec, rec->vault_pub, rec->key_id, recording_id, rec->device,
                                  now_ms, rec->segment_size, &rec->w, err);
    if (rc != BC_OK) {
        if (unlink_if_exists(open_json) != 0)
            log_warn("recorder | unlink_failed | file=%s", open_json);
        return rc;
    }
    rec->cur = cur;
    rec->cur_bytes = 0;
    log_info("recorder | started | id=%s warnings=%d emergency=%d pre_event_bytes=%llu",
             recording_id, warnings, emergency ? 1 : 0, (unsigned long long)cur.pre_event_bytes);

    rc = bc_prebuffer_drain(rec->pb, drain_sink, rec);
    if (rc != BC_OK) {
        bc_error ferr;
        bc_fail(err, rc, "recording '%s': cannot write the pre-event buffer: %s", recording_id,
                bc_recording_writer_error(rec->w));
        (void)finish(rec, now_ms, NULL, &ferr);
    }
    return rc;
}

bc_status bc_recorder_flush(bc_recorder *rec, bc_error *err)
{
    if (rec->w == NULL)
        return BC_OK;
    bc_status rc = bc_recording_writer_flush(rec->w);
    if (rc != BC_OK)
        return bc_fail(err, rc, "recording '%s': %s", rec->cur.recording_id,
                       bc_recording_writer_error(rec->w));
    return BC_OK;
}

bc_status bc_recorder_stop(bc_recorder *rec, int64_t now_ms, bc_recording_meta *meta, bc_error *err)
{
    if (rec->w == NULL)
        return bc_fail(err, BC_ERR_STATE, "no recording is open");
    return finish(rec, now_ms, meta, err);
}

bool bc_recorder_is_recording(const bc_recorder *rec)
{
    return rec->w != NULL;
}

/* ---- listing ----------------------------------------------------------- */

size_t bc_recorder_pending_count(const bc_recorder *rec)
{
    return rec->npending;
}

bc_status bc_recorder_pending(const bc_recorder *rec, bc_recording_meta *out, size_t cap,
                              size_t *count)
{
    size_t n = rec->npending < cap ? rec->npending : cap;
    if (n > 0)
        memcpy(out, rec->pending, n * sizeof(*out));
    *count = rec->npending;
    return BC_OK;
}

bc_status bc_recorder_pending_at(const bc_recorder *rec, size_t index, bc_recording_meta *out)
{
    if (index >= rec->npending)
        return BC_ERR_NOT_FOUND;
    *out = rec->pending[index];
    return BC_OK;
}

bc_status bc_recorder_find(const bc_recorder *rec, const char *recording_id, bc_recording_meta *out)
{
    size_t i = recording_id != NULL ? pending_index(rec, recording_id) : SIZE_MAX;
    if (i == SIZE_MAX)
        return BC_ERR_NOT_FOUND;
    *out = rec->pending[i];
    return BC_OK;
}

bc_status bc_recorder_open_file(const bc_recorder *rec, const char *recording_id, int *fd,
                                bc_error *err)
{
    char path[PATH_MAX];
    *fd = -1;
    if (recording_id == NULL || pending_index(rec, recording_id) == SIZE_MAX)
        return bc_fail(err, BC_ERR_NOT_FOUND, "no closed recording '%s' on this camera",
                       recording_id != NULL ? recording_id : "(null)");
    bc_status rc = path_of(rec, recording_id, BC_RECORDER_EXT, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    return BC_OK;
}

/* ---- the one way out: a matching receipt ------------------------------- */

bc_status bc_recorder_delete_with_receipt(bc_recorder *rec, const bc_command *receipt,
                                          bc_error *err)
{
    if (receipt == NULL || receipt->kind != BC_CMD_VAULT_RECEIPT)
        return bc_fail(err, BC_ERR_DENIED, "only a vault receipt can delete a recording");
    const bc_cmd_receipt *r = &receipt->params.receipt;
    if (rec->w != NULL && strcmp(rec->cur.recording_id, r->recording_id) == 0)
        return bc_fail(err, BC_ERR_DENIED, "recording '%s' is still being recorded",
                       r->recording_id);
    size_t i = pending_index(rec, r->recording_id);
    if (i == SIZE_MAX)
        return bc_fail(err, BC_ERR_NOT_FOUND, "receipt names unknown recording '%s'",
                       r->recording_id);
    const bc_recording_meta *m = &rec->pending[i];
    /* Both checks run before either decides, so timing says nothing about
     * which one failed; the hash is compared in constant time. */
    int size_ok = r->size >= 1 && (uint64_t)r->size == m->size;
    int hash_ok = strlen(r->sha256) == BC_SHA256_HEX_LEN &&
                  bc_equal_ct(r->sha256, m->sha256, BC_SHA256_HEX_LEN);
    if (!hash_ok)
        return bc_fail(err, BC_ERR_DENIED, "receipt sha256 does not match recording '%s'",
                       r->recording_id);
    if (!size_ok)
        return bc_fail(err, BC_ERR_DENIED,
                       "receipt size %lld does not match recording '%s' (%llu bytes)",
                       (long long)r->size, r->recording_id, (unsigned long long)m->size);

    char bcrec[PATH_MAX], json[PATH_MAX];
    bc_status rc;
    if ((rc = path_of(rec, m->recording_id, BC_RECORDER_EXT, bcrec, sizeof(bcrec), err)) != BC_OK ||
        (rc = path_of(rec, m->recording_id, BC_RECORDER_META_EXT, json, sizeof(json), err)) !=
            BC_OK)
        return rc;
    /* The recording first: a crash after it leaves an orphan ID.json, which
     * the next open removes; the other order could re-list a deleted one. */
    if (unlink_if_exists(bcrec) != 0)
        return bc_fail(err, BC_ERR_IO, "cannot delete '%s': %s", bcrec, strerror(errno));
    if (unlink_if_exists(json) != 0)
        log_warn("recorder | unlink_failed | file=%s", json);
    if (bc_file_fsync_dir(rec->dir, NULL) != BC_OK)
        log_warn("recorder | fsync_failed | dir=%s", rec->dir);
    log_info("recorder | deleted | id=%s sha256=%s size=%llu (vault receipt %s)", m->recording_id,
             m->sha256, (unsigned long long)m->size, receipt->id);
    memmove(&rec->pending[i], &rec->pending[i + 1],
            (rec->npending - i - 1) * sizeof(rec->pending[0]));
    rec->npending--;
    return BC_OK;
}

/* ---- the rest ---------------------------------------------------------- */

bc_status bc_recorder_storage(const bc_recorder *rec, uint64_t *free_bytes, uint64_t *total_bytes)
{
    struct statvfs vfs;
    if (statvfs(rec->data_dir, &vfs) != 0)
        return BC_ERR_IO;
    *free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    *total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    return BC_OK;
}

bc_status bc_recorder_set_pre_event(bc_recorder *rec, size_t pre_event_bytes)
{
    bc_prebuffer *pb = NULL;
    if (bc_prebuffer_new(pre_event_bytes, &pb) != BC_OK) {
        bc_prebuffer_clear(rec->pb);
        return BC_ERR_NOMEM;
    }
    bc_prebuffer_free(rec->pb);
    rec->pb = pb;
    return BC_OK;
}

const char *bc_recorder_key_id(const bc_recorder *rec)
{
    return rec->key_id;
}

const char *bc_recorder_data_dir(const bc_recorder *rec)
{
    return rec->data_dir;
}

void bc_recorder_get_stats(const bc_recorder *rec, bc_recorder_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->recording = rec->w != NULL;
    if (rec->w != NULL) {
        snprintf(out->recording_id, sizeof(out->recording_id), "%s", rec->cur.recording_id);
        out->started_at = rec->cur.recorded_at;
        out->current_bytes = rec->cur_bytes;
        out->current_pre_event_bytes = rec->cur.pre_event_bytes;
    }
    out->prebuffer_len = bc_prebuffer_len(rec->pb);
    out->prebuffer_capacity = bc_prebuffer_capacity(rec->pb);
    out->pending = rec->npending;
    for (size_t i = 0; i < rec->npending; i++)
        out->pending_bytes += rec->pending[i].size;
    out->broken = rec->broken;
    out->bytes_fed = rec->bytes_fed;
    out->bytes_recorded = rec->bytes_recorded;
}
