/*
 * staging.c - recordings put together from chunks, with bounded memory.
 *
 * What is kept in memory: one entry per recording that holds an open data
 * file, or that has ranges not yet synced. An entry is the recording's
 * manifest, its merged received ranges (sorted, disjoint, never adjacent,
 * at most BC_STAGING_RANGES_MAX) and two dirty flags. Nothing depends on a
 * recording's size: chunk bytes go straight to the data file with pwrite.
 * An entry that has no descriptor and nothing to sync is freed at once and
 * read back from its directory the next time (two small files). Entries are
 * kept in a list in order of use; when a recording needs a descriptor and
 * max_open are open, the least recently used one is closed.
 *
 * The invariant that makes a crash harmless: ranges.json never names a
 * byte that is not durable in the data file. Hence the order of every step:
 *
 *   sync          fdatasync(data) before ranges.json is written;
 *   close an fd   fdatasync first when it wrote anything (a write-back error
 *                 is reported to the descriptors open at the time, so it
 *                 must be collected before the last one goes);
 *   shrink        (reset_from, a manifest that changes or comes after its
 *                 chunks) ranges.json first, then the data file is cut: a
 *                 crash in between leaves bytes beyond the ranges, which are
 *                 never trusted, never ranges beyond the bytes;
 *   manifest      ranges.json, the cut, then manifest.json, so a manifest on
 *                 disk always has its ranges clipped to its size.
 *
 * When a step fails, the entry is dropped from memory: the directory holds
 * the truth (the last synced state), and anything not synced comes again
 * because its stream entries are not acknowledged. A dropped entry that
 * held unsynced ranges makes the next bc_staging_sync fail (s->lost), so
 * the caller does not acknowledge chunks that are no longer staged.
 */
#include "vault/staging.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/file.h"
#include "common/log.h"
#include "proto/json.h"
#include "proto/topic.h"

/* "[9007199254740991,9007199254740991]," per range, plus the rest. */
#define RANGES_JSON_MAX (256 + (size_t)BC_STAGING_RANGES_MAX * 40)
#define FILE_MODE 0600
#define DIR_MODE 0700

typedef struct range {
    uint64_t from, to; /* [from, to) */
} range;

typedef struct entry {
    struct entry *prev, *next; /* the use list, most recent first */
    char device[BC_DEVICE_ID_MAX + 1];
    char recording_id[BC_ID_MAX + 1];
    bool has_manifest;
    bc_msg_upload manifest; /* data always NULL */
    range *ranges;          /* sorted, disjoint, not adjacent */
    size_t count, cap;
    unsigned attempts;
    int64_t updated_at;
    int fd;            /* the data file, or -1 */
    bool data_dirty;   /* bytes written since the last fdatasync */
    bool ranges_dirty; /* ranges changed since ranges.json was written */
} entry;

struct bc_staging {
    char dir[PATH_MAX];
    size_t max_open;
    size_t open_fds;
    entry *head, *tail;
    bool lost; /* unsynced ranges were dropped since the last sync */
};

/* ---- paths ---- */

static bc_status ids_check(const char *device, const char *recording_id, bc_error *err)
{
    /* The ids become directory names: only their alphabets are safe. */
    if (!bc_device_id_valid(device))
        return bc_fail(err, BC_ERR_INVAL, "device id is not valid for staging");
    if (!bc_id_valid(recording_id))
        return bc_fail(err, BC_ERR_INVAL, "recording id of device '%s' is not valid for staging",
                       device);
    return BC_OK;
}

/* DIR/<device>/<recording_id>[/<name>] (name NULL: the directory). */
static bc_status rec_path(const bc_staging *s, const char *device, const char *recording_id,
                          const char *name, char *buf, size_t size, bc_error *err)
{
    int n = name == NULL ? snprintf(buf, size, "%s/%s/%s", s->dir, device, recording_id)
                         : snprintf(buf, size, "%s/%s/%s/%s", s->dir, device, recording_id, name);
    if (n < 0 || (size_t)n >= size)
        return bc_fail(err, BC_ERR_TOO_BIG, "staging path for recording '%s' is too long",
                       recording_id);
    return BC_OK;
}

static bc_status entry_path(const bc_staging *s, const entry *e, const char *name, char *buf,
                            size_t size, bc_error *err)
{
    return rec_path(s, e->device, e->recording_id, name, buf, size, err);
}

/* ---- ranges ---- */

/* The first range that ends at or after x (it touches or follows x). */
static size_t ranges_lower(const entry *e, uint64_t x)
{
    size_t lo = 0, hi = e->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->ranges[mid].to < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first range that starts after x. */
static size_t ranges_upper(const entry *e, uint64_t x)
{
    size_t lo = 0, hi = e->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->ranges[mid].from <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool ranges_cover(const entry *e, uint64_t from, uint64_t to)
{
    size_t i = ranges_lower(e, from);
    return i < e->count && e->ranges[i].from <= from && e->ranges[i].to >= to;
}

/* How many ranges there would be once [from, to) is merged in. */
static size_t ranges_count_after(const entry *e, uint64_t from, uint64_t to)
{
    size_t lo = ranges_lower(e, from);
    size_t hi = ranges_upper(e, to);
    return e->count - (hi - lo) + 1;
}

static bc_status ranges_reserve(entry *e, size_t need, bc_error *err)
{
    if (need <= e->cap)
        return BC_OK;
    size_t cap = e->cap == 0 ? 4 : e->cap * 2;
    while (cap < need)
        cap *= 2;
    range *p = realloc(e->ranges, cap * sizeof(*p));
    if (p == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the ranges of recording '%s'",
                       e->recording_id);
    e->ranges = p;
    e->cap = cap;
    return BC_OK;
}

/* Merges [from, to) in; room for ranges_count_after() was reserved. */
static void ranges_merge(entry *e, uint64_t from, uint64_t to)
{
    size_t lo = ranges_lower(e, from);
    size_t hi = ranges_upper(e, to);
    if (lo < hi) {
        if (e->ranges[lo].from < from)
            from = e->ranges[lo].from;
        if (e->ranges[hi - 1].to > to)
            to = e->ranges[hi - 1].to;
    }
    size_t removed = hi - lo;
    if (removed != 1) /* shift the tail to leave exactly one slot at lo */
        memmove(&e->ranges[lo + 1], &e->ranges[hi], (e->count - hi) * sizeof(range));
    e->ranges[lo] = (range){from, to};
    e->count = e->count - removed + 1;
}

/* Forgets every byte at or after offset. */
static void ranges_cut(entry *e, uint64_t offset)
{
    if (offset > (uint64_t)BC_JSON_INT_MAX)
        return;                                /* every range ends at or below 2^53 - 1 */
    size_t keep = ranges_lower(e, offset + 1); /* ranges ending at or before offset stay */
    if (keep < e->count && e->ranges[keep].from < offset) {
        e->ranges[keep].to = offset;
        keep++;
    }
    e->count = keep;
}

static uint64_t ranges_received(const entry *e)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < e->count; i++)
        sum += e->ranges[i].to - e->ranges[i].from;
    return sum;
}

/* ---- ranges.json ---- */

static bc_status json_add_pair(cJSON *array, uint64_t a, uint64_t b)
{
    /* Raw numbers: cJSON's printer rounds past 15 digits (see json.h). */
    char ta[24], tb[24];
    snprintf(ta, sizeof(ta), "%" PRIu64, a);
    snprintf(tb, sizeof(tb), "%" PRIu64, b);
    cJSON *pair = cJSON_CreateArray();
    if (pair == NULL)
        return BC_ERR_NOMEM;
    cJSON *na = cJSON_CreateRaw(ta);
    if (na == NULL || !cJSON_AddItemToArray(pair, na)) {
        cJSON_Delete(na);
        cJSON_Delete(pair);
        return BC_ERR_NOMEM;
    }
    cJSON *nb = cJSON_CreateRaw(tb);
    if (nb == NULL || !cJSON_AddItemToArray(pair, nb)) {
        cJSON_Delete(nb);
        cJSON_Delete(pair);
        return BC_ERR_NOMEM;
    }
    if (!cJSON_AddItemToArray(array, pair)) {
        cJSON_Delete(pair);
        return BC_ERR_NOMEM;
    }
    return BC_OK;
}

static bc_status ranges_to_json(const entry *e, char **out)
{
    *out = NULL;
    cJSON *root = NULL;
    bc_status rc = bc_json_new_message(&root);
    if (rc != BC_OK)
        return rc;
    cJSON *array = cJSON_AddArrayToObject(root, "ranges");
    if (array == NULL) {
        rc = BC_ERR_NOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < e->count && rc == BC_OK; i++)
        rc = json_add_pair(array, e->ranges[i].from, e->ranges[i].to);
    if (rc == BC_OK)
        rc = bc_json_add_int(root, "attempts", (int64_t)e->attempts);
    if (rc == BC_OK)
        rc = bc_json_add_int(root, "updated_at", e->updated_at);
    if (rc == BC_OK)
        rc = bc_json_print(root, out);

cleanup:
    cJSON_Delete(root);
    return rc;
}

static bc_status ranges_write(const bc_staging *s, const entry *e, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = entry_path(s, e, BC_STAGING_RANGES_FILE, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    char *text = NULL;
    rc = ranges_to_json(e, &text);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot build the ranges of recording '%s'", e->recording_id);
    rc = bc_file_write_durable(path, text, strlen(text), FILE_MODE, err);
    free(text);
    return rc;
}

/* An integer in [0, 2^53 - 1] (what ranges.json may hold). */
static bool json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    if (!(d >= 0 && d <= (double)BC_JSON_INT_MAX) || (double)(uint64_t)d != d)
        return false;
    *out = (uint64_t)d;
    return true;
}

/* Parses ranges.json into e (count, attempts, updated_at). BC_ERR_PARSE
 * (or another bc_json status) when it is not what ranges_write writes. */
static bc_status ranges_parse(entry *e, const char *text, size_t len, bc_error *err)
{
    cJSON *root = NULL;
    bc_status rc = bc_json_parse(text, len, RANGES_JSON_MAX, &root, err);
    if (rc != BC_OK)
        return rc;
    const cJSON *array = NULL;
    int64_t attempts = 0, updated_at = 0;
    rc = bc_json_check_version(root, err);
    if (rc == BC_OK)
        rc =
            bc_json_get_array(root, "ranges", BC_JSON_REQUIRED, BC_STAGING_RANGES_MAX, &array, err);
    if (rc == BC_OK)
        rc = bc_json_get_int(root, "attempts", BC_JSON_REQUIRED, 0, UINT32_MAX, &attempts, err);
    if (rc == BC_OK)
        rc = bc_json_get_int(root, "updated_at", BC_JSON_REQUIRED, BC_JSON_INT_MIN, BC_JSON_INT_MAX,
                             &updated_at, err);
    if (rc == BC_OK)
        rc = ranges_reserve(e, (size_t)cJSON_GetArraySize(array), err);
    if (rc != BC_OK)
        goto cleanup;
    e->count = 0;
    const cJSON *pair = NULL;
    cJSON_ArrayForEach(pair, array)
    {
        range r;
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 ||
            !json_uint(cJSON_GetArrayItem(pair, 0), &r.from) ||
            !json_uint(cJSON_GetArrayItem(pair, 1), &r.to) || r.from >= r.to ||
            (e->count > 0 && e->ranges[e->count - 1].to >= r.from)) {
            rc = bc_fail(err, BC_ERR_PARSE, "range %zu is not an increasing [from, to) pair",
                         e->count);
            e->count = 0;
            goto cleanup;
        }
        e->ranges[e->count++] = r;
    }
    e->attempts = (unsigned)attempts;
    e->updated_at = updated_at;

cleanup:
    cJSON_Delete(root);
    return rc;
}

/* ---- loading an entry from its directory ---- */

static bc_status load_manifest(const bc_staging *s, entry *e, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = entry_path(s, e, BC_STAGING_MANIFEST_FILE, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    char *text = NULL;
    size_t len = 0;
    rc = bc_file_read_all(path, bc_message_max_len(BC_TOPIC_UPLOAD), &text, &len, err);
    if (rc == BC_ERR_NOT_FOUND)
        return BC_OK;
    if (rc != BC_OK && rc != BC_ERR_TOO_BIG)
        return rc;
    bc_message msg;
    bc_error perr;
    bc_status prc = rc == BC_OK ? bc_message_decode(BC_TOPIC_UPLOAD, text, len, &msg, &perr)
                                : bc_fail(&perr, rc, "it is too large");
    free(text);
    if (prc == BC_OK) {
        bc_message_free(&msg);
        if (msg.upload.kind != BC_UPLOAD_MANIFEST || strcmp(msg.upload.device, e->device) != 0 ||
            strcmp(msg.upload.recording_id, e->recording_id) != 0)
            prc = bc_fail(&perr, BC_ERR_INVAL, "it is not this recording's manifest");
    }
    if (prc != BC_OK) {
        /* Only this process writes it, durably; treat damage as "not
         * received": the camera sends its manifest again. */
        log_warnx("staging: ignoring '%s': %s", path, perr.text);
        return BC_OK;
    }
    e->manifest = msg.upload;
    e->has_manifest = true;
    return BC_OK;
}

static bc_status load_ranges(const bc_staging *s, entry *e, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = entry_path(s, e, BC_STAGING_RANGES_FILE, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    char *text = NULL;
    size_t len = 0;
    rc = bc_file_read_all(path, RANGES_JSON_MAX, &text, &len, err);
    if (rc == BC_ERR_NOT_FOUND)
        return BC_OK;
    if (rc != BC_OK && rc != BC_ERR_TOO_BIG)
        return rc;
    bc_error perr;
    bc_status prc =
        rc == BC_OK ? ranges_parse(e, text, len, &perr) : bc_fail(&perr, rc, "it is too large");
    free(text);
    if (prc == BC_ERR_NOMEM)
        return bc_fail(err, prc, "%s", perr.text);
    if (prc != BC_OK) {
        /* Fewer ranges than the truth is always safe: they are asked for again. */
        log_warnx("staging: ignoring '%s': %s", path, perr.text);
        e->count = 0;
        e->attempts = 0;
        e->updated_at = 0;
        return BC_OK;
    }
    if (e->has_manifest) /* a manifest on disk has its ranges clipped; be sure */
        ranges_cut(e, (uint64_t)e->manifest.size);
    return BC_OK;
}

static void list_push_front(bc_staging *s, entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head != NULL)
        s->head->prev = e;
    s->head = e;
    if (s->tail == NULL)
        s->tail = e;
}

static void list_remove(bc_staging *s, entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void entry_touch(bc_staging *s, entry *e)
{
    if (s->head == e)
        return;
    list_remove(s, e);
    list_push_front(s, e);
}

/* Frees e without syncing anything (its descriptor is closed). */
static void entry_free(bc_staging *s, entry *e)
{
    if (e->fd >= 0) {
        close(e->fd); /* nothing to report: what it wrote is not trusted */
        s->open_fds--;
    }
    list_remove(s, e);
    free(e->ranges);
    free(e);
}

/* After a failure: forget e, the directory holds the truth. */
static void entry_discard(bc_staging *s, entry *e)
{
    if (e->ranges_dirty)
        s->lost = true;
    entry_free(s, e);
}

/* Frees e when nothing needs it in memory. */
static void entry_release_if_idle(bc_staging *s, entry *e)
{
    if (e->fd < 0 && !e->ranges_dirty)
        entry_free(s, e);
}

static entry *entry_find(const bc_staging *s, const char *device, const char *recording_id)
{
    for (entry *e = s->head; e != NULL; e = e->next) {
        if (strcmp(e->recording_id, recording_id) == 0 && strcmp(e->device, device) == 0)
            return e;
    }
    return NULL;
}

/* Creates DIR/<device>/<recording_id> durably when missing. */
static bc_status rec_dir_create(const bc_staging *s, const char *device, const char *recording_id,
                                bc_error *err)
{
    char dev_dir[PATH_MAX], dir[PATH_MAX];
    int n = snprintf(dev_dir, sizeof(dev_dir), "%s/%s", s->dir, device);
    if (n < 0 || (size_t)n >= sizeof(dev_dir))
        return bc_fail(err, BC_ERR_TOO_BIG, "staging path for device '%s' is too long", device);
    bc_status rc = rec_path(s, device, recording_id, NULL, dir, sizeof(dir), err);
    if (rc == BC_OK)
        rc = bc_file_mkdir_durable(dev_dir, DIR_MODE, err);
    if (rc == BC_OK)
        rc = bc_file_mkdir_durable(dir, DIR_MODE, err);
    return rc;
}

/* Finds the recording's entry, or loads it from its directory (create:
 * making the directory when missing; otherwise BC_ERR_NOT_FOUND). The
 * entry is moved to the front of the use list. */
static bc_status entry_get(bc_staging *s, const char *device, const char *recording_id, bool create,
                           entry **out, bc_error *err)
{
    *out = entry_find(s, device, recording_id);
    if (*out != NULL) {
        entry_touch(s, *out);
        return BC_OK;
    }
    char dir[PATH_MAX];
    bc_status rc = rec_path(s, device, recording_id, NULL, dir, sizeof(dir), err);
    if (rc != BC_OK)
        return rc;
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT)
            return bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", dir, strerror(errno));
        if (!create)
            return bc_fail(err, BC_ERR_NOT_FOUND, "recording '%s' of device '%s' is not staged",
                           recording_id, device);
        rc = rec_dir_create(s, device, recording_id, err);
        if (rc != BC_OK)
            return rc;
    } else if (!S_ISDIR(st.st_mode)) {
        return bc_fail(err, BC_ERR_IO, "'%s' is not a directory", dir);
    }

    entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory to stage recording '%s'", recording_id);
    e->fd = -1;
    snprintf(e->device, sizeof(e->device), "%s", device);
    snprintf(e->recording_id, sizeof(e->recording_id), "%s", recording_id);
    rc = load_manifest(s, e, err);
    if (rc == BC_OK)
        rc = load_ranges(s, e, err);
    if (rc != BC_OK) {
        free(e->ranges);
        free(e);
        return rc;
    }
    list_push_front(s, e);
    *out = e;
    return BC_OK;
}

/* The entry of a recording that is staged: ids checked, then entry_get
 * without creating (BC_ERR_NOT_FOUND when nothing is staged). */
static bc_status entry_staged(bc_staging *s, const char *device, const char *recording_id,
                              entry **out, bc_error *err)
{
    bc_status rc = ids_check(device, recording_id, err);
    if (rc == BC_OK)
        rc = entry_get(s, device, recording_id, false, out, err);
    return rc;
}

/* ---- descriptors and syncing ---- */

/* Closes e's data file, fdatasync first when it wrote anything. On a
 * failure e is discarded (freed) and BC_ERR_IO returned. */
static bc_status entry_close_fd(bc_staging *s, entry *e, bc_error *err)
{
    if (e->fd < 0)
        return BC_OK;
    if (e->data_dirty && fdatasync(e->fd) != 0) {
        int saved = errno;
        entry_discard(s, e);
        return bc_fail(err, BC_ERR_IO, "cannot fdatasync a staged data file: %s", strerror(saved));
    }
    int fd = e->fd;
    e->fd = -1;
    s->open_fds--;
    e->data_dirty = false;
    if (close(fd) != 0) {
        int saved = errno;
        entry_discard(s, e);
        return bc_fail(err, BC_ERR_IO, "cannot close a staged data file: %s", strerror(saved));
    }
    return BC_OK;
}

/* Opens e's data file (created 0600), closing the least recently used
 * descriptor when max_open are open. */
static bc_status entry_open_fd(bc_staging *s, entry *e, bc_error *err)
{
    if (e->fd >= 0)
        return BC_OK;
    while (s->open_fds >= s->max_open) {
        entry *victim = s->tail;
        while (victim != NULL && (victim == e || victim->fd < 0))
            victim = victim->prev;
        if (victim == NULL)
            break;
        bc_error verr;
        if (entry_close_fd(s, victim, &verr) != BC_OK) {
            /* victim is gone and s->lost set: the next sync says so. */
            log_warnx("staging: %s", verr.text);
            continue;
        }
        entry_release_if_idle(s, victim);
    }
    char path[PATH_MAX];
    bc_status rc = entry_path(s, e, BC_STAGING_DATA_FILE, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
    if (fd < 0)
        return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    e->fd = fd;
    s->open_fds++;
    return BC_OK;
}

/* Makes e's bytes, then its ranges, durable. On failure e is discarded. */
static bc_status entry_sync(bc_staging *s, entry *e, bc_error *err)
{
    if (e->data_dirty) {
        if (fdatasync(e->fd) != 0) {
            int saved = errno;
            bc_fail(err, BC_ERR_IO, "cannot fdatasync the data of recording '%s': %s",
                    e->recording_id, strerror(saved));
            entry_discard(s, e);
            return BC_ERR_IO;
        }
        e->data_dirty = false;
    }
    if (e->ranges_dirty) {
        bc_status rc = ranges_write(s, e, err);
        if (rc != BC_OK) {
            entry_discard(s, e);
            return rc;
        }
        e->ranges_dirty = false;
    }
    return BC_OK;
}

/* Cuts the data file to at most len bytes, durably. A missing file is fine. */
static bc_status data_truncate(const bc_staging *s, const entry *e, uint64_t len, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = entry_path(s, e, BC_STAGING_DATA_FILE, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    int fd = e->fd >= 0 ? e->fd : open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return BC_OK;
        return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    if ((uint64_t)st.st_size <= len)
        goto cleanup;
    if (ftruncate(fd, (off_t)len) != 0 || fdatasync(fd) != 0)
        rc = bc_fail(err, BC_ERR_IO, "cannot cut '%s' to %" PRIu64 " bytes: %s", path, len,
                     strerror(errno));

cleanup:
    if (fd != e->fd)
        close(fd); /* read-only use of the result: a close error changes nothing */
    return rc;
}

static bc_status pwrite_all(int fd, const uint8_t *data, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, data, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return BC_ERR_IO;
        }
        data += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return BC_OK;
}

/* ---- open, close ---- */

/* Calls fn(dir/name, name) for every entry of dir but "." and "..".
 * A missing dir is BC_OK. fn returns false to stop. */
typedef bool (*dir_visit_fn)(const char *path, const char *name, void *userdata);

static bc_status dir_walk(const char *dir, dir_visit_fn fn, void *userdata, bc_error *err)
{
    bc_file_dir it;
    bc_status rc = bc_file_dir_open(&it, dir, err);
    if (rc != BC_OK)
        return rc == BC_ERR_NOT_FOUND ? BC_OK : rc;
    const char *name = NULL;
    while ((rc = bc_file_dir_next(&it, &name, err)) == BC_OK && name != NULL) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (n < 0 || (size_t)n >= sizeof(path))
            continue; /* not a name this module makes */
        if (!fn(path, name, userdata))
            break;
    }
    bc_file_dir_close(&it);
    return rc;
}

typedef struct walk_ctx {
    bc_status rc;
    bc_error *err;
    bc_staging_visit_fn fn;
    void *userdata;
    const char *device;
    bool stop;
} walk_ctx;

static bool visit_tmp(const char *path, const char *name, void *userdata)
{
    walk_ctx *w = userdata;
    if (bc_file_is_tmp(name) && unlink(path) != 0 && errno != ENOENT) {
        w->rc = bc_fail(w->err, BC_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
        return false;
    }
    return true;
}

static bool visit_rec_for_tmp(const char *path, const char *name, void *userdata)
{
    walk_ctx *w = userdata;
    if (!bc_id_valid(name))
        return true;
    bc_status rc = dir_walk(path, visit_tmp, w, w->err);
    if (rc != BC_OK && w->rc == BC_OK)
        w->rc = rc;
    return w->rc == BC_OK;
}

static bool visit_dev_for_tmp(const char *path, const char *name, void *userdata)
{
    walk_ctx *w = userdata;
    if (!bc_device_id_valid(name))
        return true;
    bc_status rc = dir_walk(path, visit_rec_for_tmp, w, w->err);
    if (rc != BC_OK && w->rc == BC_OK)
        w->rc = rc;
    return w->rc == BC_OK;
}

bc_status bc_staging_open(const char *dir, size_t max_open, bc_staging **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "staging open: no result pointer");
    *out = NULL;
    if (dir == NULL || dir[0] == '\0' || max_open < 1)
        return bc_fail(err, BC_ERR_INVAL, "staging open: a directory and max_open >= 1 are needed");
    if (strlen(dir) >= PATH_MAX - 2 * (BC_ID_MAX + 16))
        return bc_fail(err, BC_ERR_INVAL, "staging directory path '%s' is too long", dir);
    bc_staging *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the staging area");
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    s->max_open = max_open;

    bc_status rc = bc_file_mkdir_durable(s->dir, DIR_MODE, err);
    if (rc == BC_OK) {
        /* Durable writes interrupted by a crash leave "<name>.XXXXXX.tmp". */
        walk_ctx w = {.rc = BC_OK, .err = err};
        rc = dir_walk(s->dir, visit_dev_for_tmp, &w, err);
        if (rc == BC_OK)
            rc = w.rc;
    }
    if (rc != BC_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return BC_OK;
}

void bc_staging_close(bc_staging *s)
{
    if (s == NULL)
        return;
    while (s->head != NULL)
        entry_free(s, s->head);
    free(s);
}

/* ---- receiving ---- */

static bool manifest_same(const bc_msg_upload *a, const bc_msg_upload *b)
{
    return a->size == b->size && strcmp(a->sha256, b->sha256) == 0 &&
           strcmp(a->key_id, b->key_id) == 0 && a->chunk_size == b->chunk_size &&
           a->recorded_at == b->recorded_at;
}

/* Writes e's manifest durably after its ranges were cut (see the top). */
static bc_status manifest_apply(bc_staging *s, entry *e, const char *text, bool changed,
                                bc_error *err)
{
    uint64_t size = (uint64_t)e->manifest.size;
    e->ranges_dirty = true;
    bc_status rc = entry_sync(s, e, err);
    if (rc != BC_OK)
        return rc; /* e discarded */
    rc = data_truncate(s, e, changed ? 0 : size, err);
    char path[PATH_MAX];
    if (rc == BC_OK)
        rc = entry_path(s, e, BC_STAGING_MANIFEST_FILE, path, sizeof(path), err);
    if (rc == BC_OK)
        rc = bc_file_write_durable(path, text, strlen(text), FILE_MODE, err);
    if (rc != BC_OK)
        entry_discard(s, e);
    return rc;
}

bc_status bc_staging_put_manifest(bc_staging *s, const bc_msg_upload *m, int64_t now_ms,
                                  bool *duplicate, bc_error *err)
{
    if (duplicate != NULL)
        *duplicate = false;
    if (s == NULL || m == NULL || m->kind != BC_UPLOAD_MANIFEST)
        return bc_fail(err, BC_ERR_INVAL, "staging: not a manifest");
    bc_status rc = ids_check(m->device, m->recording_id, err);
    if (rc != BC_OK)
        return rc;
    /* Validate (encode checks every field) before anything changes. */
    bc_message msg = {.kind = BC_TOPIC_UPLOAD, .upload = *m};
    msg.upload.data = NULL;
    msg.upload.data_len = 0;
    char *text = NULL;
    rc = bc_message_encode(&msg, &text, err);
    if (rc != BC_OK)
        return rc;

    entry *e = NULL;
    rc = entry_get(s, m->device, m->recording_id, true, &e, err);
    if (rc != BC_OK)
        goto cleanup;
    if (e->has_manifest && manifest_same(&e->manifest, m)) {
        if (duplicate != NULL)
            *duplicate = true;
        entry_release_if_idle(s, e);
        goto cleanup;
    }
    /* The camera's file is the authority: a new manifest means new bytes. */
    bool changed = e->has_manifest;
    if (changed)
        e->count = 0;
    else
        ranges_cut(e, (uint64_t)m->size);
    e->manifest = msg.upload;
    e->has_manifest = true;
    e->updated_at = now_ms;
    rc = manifest_apply(s, e, text, changed, err);
    if (rc == BC_OK)
        entry_release_if_idle(s, e);

cleanup:
    free(text);
    return rc;
}

bc_status bc_staging_put_chunk(bc_staging *s, const bc_msg_upload *m, int64_t now_ms,
                               bool *duplicate, bc_error *err)
{
    if (duplicate != NULL)
        *duplicate = false;
    if (s == NULL || m == NULL || m->kind != BC_UPLOAD_CHUNK)
        return bc_fail(err, BC_ERR_INVAL, "staging: not a chunk");
    bc_status rc = ids_check(m->device, m->recording_id, err);
    if (rc != BC_OK)
        return rc;
    if (m->data == NULL || m->data_len == 0 || m->data_len > BC_CHUNK_MAX || m->offset < 0 ||
        (uint64_t)m->offset > (uint64_t)BC_JSON_INT_MAX - m->data_len)
        return bc_fail(err, BC_ERR_INVAL,
                       "chunk of recording '%s' has a bad offset or length (offset %" PRId64
                       ", %zu bytes)",
                       m->recording_id, m->offset, m->data_len);
    uint64_t from = (uint64_t)m->offset;
    uint64_t to = from + m->data_len;

    entry *e = NULL;
    rc = entry_get(s, m->device, m->recording_id, true, &e, err);
    if (rc != BC_OK)
        return rc;
    if (e->has_manifest && to > (uint64_t)e->manifest.size) {
        rc = bc_fail(err, BC_ERR_INVAL,
                     "chunk [%" PRIu64 ", %" PRIu64
                     ") of recording '%s' ends past its size %" PRId64,
                     from, to, m->recording_id, e->manifest.size);
        goto cleanup;
    }
    if (ranges_cover(e, from, to)) {
        if (duplicate != NULL)
            *duplicate = true;
        goto cleanup;
    }
    size_t need = ranges_count_after(e, from, to);
    if (need > BC_STAGING_RANGES_MAX) {
        rc = bc_fail(err, BC_ERR_TOO_BIG,
                     "recording '%s' would have more than %d separate ranges; chunk at %" PRIu64
                     " refused",
                     m->recording_id, BC_STAGING_RANGES_MAX, from);
        goto cleanup;
    }
    rc = ranges_reserve(e, need, err);
    if (rc == BC_OK)
        rc = entry_open_fd(s, e, err);
    if (rc != BC_OK)
        goto cleanup;
    /* Written whole even when it overlaps: an honest camera's bytes are the
     * same, and a dishonest one fails the manifest's hash anyway. */
    if (pwrite_all(e->fd, m->data, m->data_len, from) != BC_OK) {
        /* EFBIG: an offset past what the file system holds, not a passing fault. */
        rc = bc_fail(err, errno == EFBIG ? BC_ERR_TOO_BIG : BC_ERR_IO,
                     "cannot write chunk at %" PRIu64 " of recording '%s': %s", from,
                     m->recording_id, strerror(errno));
        goto cleanup;
    }
    ranges_merge(e, from, to);
    e->data_dirty = true;
    e->ranges_dirty = true;
    e->updated_at = now_ms;

cleanup:
    entry_release_if_idle(s, e);
    return rc;
}

bc_status bc_staging_sync(bc_staging *s, bc_error *err)
{
    if (s == NULL)
        return bc_fail(err, BC_ERR_INVAL, "staging sync: no staging area");
    bc_status rc = BC_OK;
    entry *next = NULL;
    for (entry *e = s->head; e != NULL; e = next) {
        next = e->next;
        bc_error eerr;
        bc_status erc = entry_sync(s, e, &eerr);
        if (erc != BC_OK) { /* e was discarded; go on with the others */
            if (rc == BC_OK)
                rc = bc_fail(err, erc, "%s", eerr.text);
            continue;
        }
        entry_release_if_idle(s, e);
    }
    if (rc == BC_OK && s->lost)
        rc = bc_fail(err, BC_ERR_IO,
                     "chunks received since the last sync were dropped after a write error");
    s->lost = false; /* reported once: the caller does not acknowledge them */
    return rc;
}

/* ---- state, reset, remove, list ---- */

bc_status bc_staging_status_of(bc_staging *s, const char *device, const char *recording_id,
                               bc_staging_status *out, bc_error *err)
{
    if (s == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "staging status: missing argument");
    memset(out, 0, sizeof(*out));
    entry *e = NULL;
    bc_status rc = entry_staged(s, device, recording_id, &e, err);
    if (rc != BC_OK)
        return rc;
    out->has_manifest = e->has_manifest;
    if (e->has_manifest)
        out->manifest = e->manifest;
    out->received = ranges_received(e);
    out->first_missing = e->count > 0 && e->ranges[0].from == 0 ? e->ranges[0].to : 0;
    out->ranges = e->count;
    out->complete = e->has_manifest && out->first_missing >= (uint64_t)e->manifest.size;
    out->attempts = e->attempts;
    out->updated_at = e->updated_at;
    entry_release_if_idle(s, e);
    return BC_OK;
}

bc_status bc_staging_data_path(const bc_staging *s, const char *device, const char *recording_id,
                               char *buf, size_t size, bc_error *err)
{
    if (s == NULL || buf == NULL)
        return bc_fail(err, BC_ERR_INVAL, "staging data path: missing argument");
    bc_status rc = ids_check(device, recording_id, err);
    if (rc != BC_OK)
        return rc;
    return rec_path(s, device, recording_id, BC_STAGING_DATA_FILE, buf, size, err);
}

bc_status bc_staging_reset_from(bc_staging *s, const char *device, const char *recording_id,
                                uint64_t offset, bc_error *err)
{
    if (s == NULL)
        return bc_fail(err, BC_ERR_INVAL, "staging reset: no staging area");
    entry *e = NULL;
    bc_status rc = entry_staged(s, device, recording_id, &e, err);
    if (rc != BC_OK)
        return rc;
    ranges_cut(e, offset);
    e->attempts++;
    e->ranges_dirty = true;
    rc = entry_sync(s, e, err); /* ranges first, then the cut (see the top) */
    if (rc != BC_OK)
        return rc; /* e discarded */
    /* On failure the ranges are durable and right already; the bytes
     * beyond them are not trusted. */
    rc = data_truncate(s, e, offset, err);
    entry_release_if_idle(s, e);
    return rc;
}

static bool visit_unlink(const char *path, const char *name, void *userdata)
{
    walk_ctx *w = userdata;
    if (unlink(path) != 0 && errno != ENOENT) {
        w->rc = bc_fail(w->err, BC_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
        return false;
    }
    return true;
}

bc_status bc_staging_remove(bc_staging *s, const char *device, const char *recording_id,
                            bc_error *err)
{
    if (s == NULL)
        return bc_fail(err, BC_ERR_INVAL, "staging remove: no staging area");
    bc_status rc = ids_check(device, recording_id, err);
    if (rc != BC_OK)
        return rc;
    entry *e = entry_find(s, device, recording_id);
    if (e != NULL)
        entry_free(s, e); /* removed on purpose: nothing is lost */

    char dir[PATH_MAX], dev_dir[PATH_MAX];
    rc = rec_path(s, device, recording_id, NULL, dir, sizeof(dir), err);
    if (rc != BC_OK)
        return rc;
    bc_file_parent(dir, dev_dir, sizeof(dev_dir));
    walk_ctx w = {.rc = BC_OK, .err = err};
    rc = dir_walk(dir, visit_unlink, &w, err);
    if (rc == BC_OK)
        rc = w.rc;
    if (rc != BC_OK)
        return rc;
    if (rmdir(dir) != 0) {
        if (errno == ENOENT)
            return BC_OK;
        return bc_fail(err, BC_ERR_IO, "cannot remove directory '%s': %s", dir, strerror(errno));
    }
    rc = bc_file_fsync_dir(dev_dir, err);
    if (rc != BC_OK)
        return rc;
    /* The device's directory goes with its last recording. */
    if (rmdir(dev_dir) != 0) {
        if (errno == ENOTEMPTY || errno == EEXIST || errno == ENOENT)
            return BC_OK;
        return bc_fail(err, BC_ERR_IO, "cannot remove directory '%s': %s", dev_dir,
                       strerror(errno));
    }
    return bc_file_fsync_dir(s->dir, err);
}

static bool visit_rec(const char *path, const char *name, void *userdata)
{
    walk_ctx *w = userdata;
    struct stat st;
    if (!bc_id_valid(name) || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return true;
    if (!w->fn(w->device, name, w->userdata))
        w->stop = true;
    return !w->stop;
}

static bool visit_dev(const char *path, const char *name, void *userdata)
{
    walk_ctx *w = userdata;
    struct stat st;
    if (!bc_device_id_valid(name) || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return true;
    w->device = name;
    bc_status rc = dir_walk(path, visit_rec, w, w->err);
    if (rc != BC_OK && w->rc == BC_OK)
        w->rc = rc;
    return w->rc == BC_OK && !w->stop;
}

bc_status bc_staging_list(bc_staging *s, bc_staging_visit_fn fn, void *userdata, bc_error *err)
{
    if (s == NULL || fn == NULL)
        return bc_fail(err, BC_ERR_INVAL, "staging list: missing argument");
    walk_ctx w = {.rc = BC_OK, .err = err, .fn = fn, .userdata = userdata};
    bc_status rc = dir_walk(s->dir, visit_dev, &w, err);
    return rc != BC_OK ? rc : w.rc;
}
