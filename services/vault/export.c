/*
 * export.c - decrypting recordings out of the vault into a bundle, for a
 * lawful purpose only (the policy and the bundle's layout: export.h).
 *
 * The order of an export, and why:
 *
 *   1. the request is checked (BC_ERR_INVAL: nothing to audit, it named
 *      no recording it could be about);
 *   2. every recording is authorized against the catalog: committed, and
 *      carrying an ACTIVE hold whose reason is the purpose and whose case
 *      reference is the request's. One refusal refuses the whole export,
 *      and the refusal is audited (one "export_refused" entry per
 *      recording named) before anything is decrypted;
 *   3. OUT.partial is made (mode 0700) and each recording is decrypted into
 *      it segment by segment with the proto reader: a segment is
 *      authenticated before its plaintext is written, the end only at the
 *      last segment, and the file read must be the object the catalog
 *      names (its SHA-256 and size); any failure removes OUT.partial, so
 *      no unauthenticated or partial plaintext is left behind;
 *   4. the authorization is checked again: a hold released while the
 *      bytes were decrypted (another operator) refuses the export, so an
 *      export entry never names a recording that was not held throughout;
 *   5. the "export" entries are appended, then the chain of custody of
 *      each recording is copied from the audit log (it ends with that
 *      entry), export.json and manifest.sha256 are written durably, and
 *      OUT.partial is renamed to OUT without replacing anything
 *      (RENAME_NOREPLACE) and the parent directory is fsynced.
 *
 * A failure once decryption began (a recording that does not authenticate,
 * a full disk, also after step 5's append) appends "export_failed" entries
 * with the reason: plaintext was made, even if it is gone again, and the
 * log never claims a bundle that does not exist.
 *
 * A leftover OUT.partial (a crash in the middle) is not removed here: it is
 * refused as BC_ERR_EXISTS, and a human removes it - this module deletes
 * only what it made itself in this call.
 */
#define _GNU_SOURCE /* renameat2, RENAME_NOREPLACE */

#include "vault/export.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/file.h"
#include "proto/encoding.h"
#include "proto/recording.h"

#define EXPORT_MEDIA_DIR "media"
#define EXPORT_AUDIT_FILE "audit.jsonl"
#define EXPORT_INFO_FILE "export.json"
#define EXPORT_MANIFEST_FILE "manifest.sha256"
#define EXPORT_FILE_MODE 0600
#define EXPORT_DIR_MODE 0700
#define EXPORT_MEDIA_NAME_MAX (BC_DEVICE_ID_MAX + 1 + BC_ID_MAX + 4)
#define EXPORT_JSON_VERSION 1

/* One recording of the export. */
typedef struct export_item {
    const char *ref; /* borrowed from the request */
    bc_recording_meta meta;
    char hold_id[BC_CATALOG_ID_MAX + 1]; /* the hold that authorizes it */
    char media[sizeof(EXPORT_MEDIA_DIR) + EXPORT_MEDIA_NAME_MAX + 1]; /* relative to OUT */
    char plaintext_sha256[BC_SHA256_HEX_LEN + 1];
    uint64_t plaintext_size;
    uint64_t audit_seq; /* its "export" entry */
} export_item;

/* A growable byte buffer (the chain of custody, the manifest). */
typedef struct export_buf {
    char *data;
    size_t len, cap;
    bool failed;
} export_buf;

typedef struct export_progress {
    bc_export_progress_fn fn;
    void *userdata;
    uint64_t done_before; /* ciphertext bytes of the recordings already done */
    uint64_t total;
} export_progress;

/* ---- small helpers ---- */

static void buf_append(export_buf *b, const char *data, size_t len)
{
    if (b->failed)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *next = realloc(b->data, cap);
        if (next == NULL) {
            b->failed = true;
            return;
        }
        b->data = next;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static bc_status sha256_hex(const void *data, size_t len, char hex[BC_SHA256_HEX_LEN + 1])
{
    unsigned char md[32];
    if (EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1)
        return BC_ERR_CRYPTO;
    return bc_hex_encode(md, sizeof(md), hex, BC_SHA256_HEX_LEN + 1);
}

static bool path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/* Unlinks every non-directory entry of dir; best effort (cleanup path). */
static void remove_files_in(const char *dir)
{
    bc_file_dir it;
    if (bc_file_dir_open(&it, dir, NULL) != BC_OK)
        return;
    const char *name = NULL;
    while (bc_file_dir_next(&it, &name, NULL) == BC_OK && name != NULL)
        (void)unlinkat(dirfd(it.d), name, 0);
    bc_file_dir_close(&it);
}

/* Removes OUT.partial as this module makes it: files, and media/ with files. */
static void remove_partial(const char *partial)
{
    char media[PATH_MAX];
    snprintf(media, sizeof(media), "%s/" EXPORT_MEDIA_DIR, partial);
    remove_files_in(media);
    (void)rmdir(media);
    remove_files_in(partial);
    (void)rmdir(partial);
}

/* ---- the request and the policy ---- */

static bc_status check_refs(const bc_export_request *req, bc_error *err)
{
    if (req->refs == NULL || req->ref_count == 0)
        return bc_fail(err, BC_ERR_INVAL, "an export names at least one recording");
    if (req->ref_count > BC_EXPORT_REFS_MAX)
        return bc_fail(err, BC_ERR_INVAL, "an export names at most %d recordings, not %zu",
                       BC_EXPORT_REFS_MAX, req->ref_count);
    char device[BC_DEVICE_ID_MAX + 1], id[BC_ID_MAX + 1];
    for (size_t i = 0; i < req->ref_count; i++) {
        const char *ref = req->refs[i];
        if (ref == NULL || bc_ref_split(ref, device, id) != BC_OK)
            return bc_fail(err, BC_ERR_INVAL, "'%s' is not a recording (<device>/<recording id>)",
                           ref ? ref : "(null)");
        for (size_t k = 0; k < i; k++) {
            if (strcmp(req->refs[k], ref) == 0)
                return bc_fail(err, BC_ERR_INVAL, "recording %s is named twice", ref);
        }
    }
    return BC_OK;
}

/* The hold reason a purpose needs. No or an unknown purpose is a refusal
 * (the policy's word), not a malformed request. */
static bc_status purpose_reason(const char *purpose, bc_hold_reason *out, bc_error *err)
{
    if (purpose == NULL || purpose[0] == '\0')
        return bc_fail(err, BC_ERR_DENIED,
                       "an export needs a purpose (aangifte, klacht or inzage)");
    if (bc_hold_reason_parse(purpose, out, NULL) != BC_OK || !bc_catalog_text_valid(purpose))
        return bc_fail(err, BC_ERR_DENIED,
                       "'%.40s' is not a purpose recordings may be used for (aangifte, klacht "
                       "or inzage)",
                       purpose);
    return BC_OK;
}

typedef struct hold_search {
    bc_hold_reason reason;
    char *hold_id; /* out: the first matching active hold */
    bool found;
} hold_search;

static bool hold_matches(const bc_hold *h, void *userdata)
{
    hold_search *s = userdata;
    if (!h->active || h->reason != s->reason)
        return true;
    snprintf(s->hold_id, BC_CATALOG_ID_MAX + 1, "%s", h->id);
    s->found = true;
    return false;
}

/* One recording: committed and held for this purpose and case. */
static bc_status authorize_one(bc_redis *r, const char *ref, bc_hold_reason reason,
                               const char *purpose, const char *case_ref, export_item *it,
                               bc_error *err)
{
    bc_error e = {{0}};
    bc_status rc = bc_catalog_recording_get(r, ref, &it->meta, &e);
    if (rc == BC_ERR_NOT_FOUND)
        return bc_fail(err, BC_ERR_NOT_FOUND, "recording %s is not in the vault", ref);
    if (rc != BC_OK)
        return bc_fail(err, rc, "recording %s: %s", ref, e.text);
    if (it->meta.status != BC_REC_COMMITTED)
        return bc_fail(err, BC_ERR_DENIED, "recording %s is %s: there is nothing to export", ref,
                       bc_recording_status_name(it->meta.status));
    hold_search s = {.reason = reason, .hold_id = it->hold_id, .found = false};
    bc_hold_filter f = {.ref = ref, .case_ref = case_ref, .active_only = true};
    rc = bc_catalog_holds_list(r, &f, hold_matches, &s, &e);
    if (rc != BC_OK)
        return bc_fail(err, rc, "holds of recording %s: %s", ref, e.text);
    if (!s.found)
        return bc_fail(err, BC_ERR_DENIED,
                       "recording %s has no active %s hold with case reference %s", ref, purpose,
                       case_ref);
    it->ref = ref;
    return BC_OK;
}

static bc_status authorize_all(bc_redis *r, const bc_export_request *req, export_item *items,
                               bc_error *err)
{
    bc_hold_reason reason;
    bc_status rc = purpose_reason(req->purpose, &reason, err);
    if (rc != BC_OK)
        return rc;
    if (req->case_ref == NULL || !bc_catalog_case_valid(req->case_ref))
        return bc_fail(err, BC_ERR_DENIED,
                       "an export needs the case reference of its %s ([A-Za-z0-9_./:-]{1,64})",
                       req->purpose);
    for (size_t i = 0; i < req->ref_count; i++) {
        rc = authorize_one(r, req->refs[i], reason, req->purpose, req->case_ref, &items[i], err);
        if (rc != BC_OK)
            return rc;
    }
    return BC_OK;
}

bc_status bc_export_authorize(bc_redis *r, const bc_export_request *req, bc_error *err)
{
    if (r == NULL || req == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no connection or no export request");
    bc_status rc = check_refs(req, err);
    if (rc != BC_OK)
        return rc;
    export_item *items = calloc(req->ref_count, sizeof(*items));
    if (items == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for %zu recordings", req->ref_count);
    rc = authorize_all(r, req, items, err);
    free(items);
    return rc;
}

/* ---- audit entries ---- */

/* Adds purpose and case_ref as given, when they are printable text (a
 * refused request may carry anything; the log keeps only what is safe). */
static void add_purpose_case(cJSON *o, const bc_export_request *req)
{
    if (req->purpose != NULL && bc_catalog_text_valid(req->purpose))
        cJSON_AddStringToObject(o, "purpose", req->purpose);
    if (req->case_ref != NULL && bc_catalog_case_valid(req->case_ref))
        cJSON_AddStringToObject(o, "case_ref", req->case_ref);
}

static void free_entries(cJSON **entries, size_t count)
{
    for (size_t i = 0; i < count; i++)
        cJSON_Delete(entries[i]);
    free(entries);
}

/* One entry per recording of the request: action, subject ref, purpose,
 * case ref, and reason (when not NULL). NULL when out of memory. */
static cJSON **build_entries(const bc_export_request *req, const char *action, const char *reason)
{
    cJSON **entries = calloc(req->ref_count, sizeof(*entries));
    if (entries == NULL)
        return NULL;
    for (size_t i = 0; i < req->ref_count; i++) {
        cJSON *o = cJSON_CreateObject();
        entries[i] = o;
        if (o == NULL || !cJSON_AddStringToObject(o, "actor", req->actor) ||
            !cJSON_AddStringToObject(o, "action", action) ||
            !cJSON_AddStringToObject(o, "subject", req->refs[i])) {
            free_entries(entries, i + 1);
            return NULL;
        }
        add_purpose_case(o, req);
        if (reason != NULL)
            cJSON_AddStringToObject(o, "reason", reason);
    }
    return entries;
}

/* Audits a refusal (or a failure after the export entries) for every
 * recording named: the refusal belongs to each one's chain of custody. */
static bc_status audit_each(bc_audit *a, const bc_export_request *req, const char *action,
                            const char *reason, int64_t now_ms, bc_error *err)
{
    cJSON **entries = build_entries(req, action, reason);
    if (entries == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for the %s audit entries", action);
    bc_status rc = bc_audit_append(a, entries, req->ref_count, now_ms, NULL, err);
    free_entries(entries, req->ref_count);
    return rc;
}

/* Audits the refusal in *why and returns its status; a refusal that
 * cannot be audited is still refused, with both reasons in err. */
static bc_status refuse(bc_audit *a, const bc_export_request *req, bc_status status,
                        const bc_error *why, int64_t now_ms, bc_error *err)
{
    bc_error e = {{0}};
    if (audit_each(a, req, "export_refused", why->text, now_ms, &e) != BC_OK)
        return bc_fail(err, status, "%s (and the refusal could not be audited: %s)", why->text,
                       e.text);
    return bc_fail(err, status, "%s", why->text);
}

static bc_status audit_exports(bc_audit *a, const bc_export_request *req, export_item *items,
                               const char *bundle, int64_t now_ms, uint64_t *first_seq,
                               bc_error *err)
{
    cJSON **entries = build_entries(req, "export", NULL);
    if (entries == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for the export audit entries");
    for (size_t i = 0; i < req->ref_count; i++) {
        cJSON *o = entries[i];
        cJSON_AddStringToObject(o, "hold_id", items[i].hold_id);
        cJSON_AddStringToObject(o, "plaintext_sha256", items[i].plaintext_sha256);
        cJSON_AddNumberToObject(o, "plaintext_size", (double)items[i].plaintext_size);
        if (bc_catalog_text_valid(bundle))
            cJSON_AddStringToObject(o, "bundle", bundle);
    }
    bc_status rc = bc_audit_append(a, entries, req->ref_count, now_ms, first_seq, err);
    free_entries(entries, req->ref_count);
    if (rc != BC_OK)
        return rc;
    for (size_t i = 0; i < req->ref_count; i++)
        items[i].audit_seq = *first_seq + i;
    return BC_OK;
}

/* ---- decryption ---- */

static void report_progress(const export_progress *p, int fd, const char *ref)
{
    if (p->fn == NULL)
        return;
    off_t pos = lseek(fd, 0, SEEK_CUR);
    p->fn(p->done_before + (pos > 0 ? (uint64_t)pos : 0), p->total, ref, p->userdata);
}

/* The reader's view of the file must be the object the catalog names. */
static bc_status check_object(bc_recording_reader *rd, const export_item *it, bc_error *err)
{
    const bc_recording_header *h = bc_recording_reader_header(rd);
    if (strcmp(h->device, it->meta.device) != 0 ||
        strcmp(h->recording_id, it->meta.recording_id) != 0)
        return bc_fail(err, BC_ERR_TAMPERED, "the object of %s holds recording %s/%s", it->ref,
                       h->device, h->recording_id);
    bc_recording_info info;
    char hex[BC_SHA256_HEX_LEN + 1];
    if (bc_recording_reader_info(rd, &info) != BC_OK ||
        bc_hex_encode(info.sha256, sizeof(info.sha256), hex, sizeof(hex)) != BC_OK)
        return bc_fail(err, BC_ERR_STATE, "the reader of %s has no result", it->ref);
    if (strcmp(hex, it->meta.sha256) != 0 || (int64_t)info.size != it->meta.size)
        return bc_fail(err, BC_ERR_TAMPERED,
                       "the object of %s is not the one committed (sha256 %.16s..., %llu bytes)",
                       it->ref, hex, (unsigned long long)info.size);
    return BC_OK;
}

/* Decrypts rd into out_fd, hashing the plaintext. */
static bc_status decrypt_stream(bc_recording_reader *rd, int in_fd, int out_fd,
                                const char *out_path, export_item *it, const export_progress *p,
                                bc_error *err)
{
    size_t cap = bc_recording_reader_header(rd)->segment_size;
    uint8_t *buf = malloc(cap);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bc_status rc = BC_OK;
    if (buf == NULL || md == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory decrypting %s", it->ref);
        goto cleanup;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = bc_fail(err, BC_ERR_CRYPTO, "SHA-256 is not available");
        goto cleanup;
    }
    int done = 0;
    while (!done) {
        size_t len = 0;
        rc = bc_recording_reader_next(rd, buf, cap, &len, &done, err);
        if (rc != BC_OK)
            goto cleanup;
        rc = bc_file_write_all(out_fd, buf, len, out_path, err);
        if (rc != BC_OK)
            goto cleanup;
        if (EVP_DigestUpdate(md, buf, len) != 1) {
            rc = bc_fail(err, BC_ERR_CRYPTO, "SHA-256 failed");
            goto cleanup;
        }
        it->plaintext_size += len;
        report_progress(p, in_fd, it->ref);
    }
    unsigned char digest[32];
    if (EVP_DigestFinal_ex(md, digest, NULL) != 1 ||
        bc_hex_encode(digest, sizeof(digest), it->plaintext_sha256, sizeof(it->plaintext_sha256)) !=
            BC_OK) {
        rc = bc_fail(err, BC_ERR_CRYPTO, "SHA-256 failed");
        goto cleanup;
    }
cleanup:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
    }
    EVP_MD_CTX_free(md);
    return rc;
}

static bc_status decrypt_item(bc_store *st, const bc_keystore *ks, const char *partial,
                              export_item *it, const export_progress *p, bc_error *err)
{
    char object[PATH_MAX], out_path[PATH_MAX];
    int in_fd = -1, out_fd = -1;
    bc_recording_reader *rd = NULL;
    bc_status rc = bc_store_path(st, it->meta.sha256, object, sizeof(object), NULL, 0, err);
    if (rc != BC_OK)
        return rc;
    EVP_PKEY *key = bc_keystore_recording_key(ks, it->meta.key_id);
    if (key == NULL)
        return bc_fail(err, BC_ERR_WRONG_KEY,
                       "recording %s is sealed for key %s, which is not in the keystore", it->ref,
                       it->meta.key_id);
    snprintf(it->media, sizeof(it->media), EXPORT_MEDIA_DIR "/%s_%s.bin", it->meta.device,
             it->meta.recording_id);
    snprintf(out_path, sizeof(out_path), "%s/%s", partial, it->media);

    in_fd = open(object, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in_fd < 0) {
        rc = bc_fail(err, errno == ENOENT ? BC_ERR_NOT_FOUND : BC_ERR_IO,
                     "cannot open the object of %s: %s", it->ref, strerror(errno));
        goto cleanup;
    }
    rc = bc_recording_reader_open_fd(in_fd, key, &rd, err);
    if (rc != BC_OK)
        goto cleanup;
    out_fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, EXPORT_FILE_MODE);
    if (out_fd < 0) {
        rc = bc_fail(err, errno == EEXIST ? BC_ERR_EXISTS : BC_ERR_IO, "cannot create %s: %s",
                     out_path, strerror(errno));
        goto cleanup;
    }
    rc = decrypt_stream(rd, in_fd, out_fd, out_path, it, p, err);
    if (rc != BC_OK)
        goto cleanup;
    rc = check_object(rd, it, err);
    if (rc != BC_OK)
        goto cleanup;
    if (fsync(out_fd) != 0)
        rc = bc_fail(err, BC_ERR_IO, "cannot fsync %s: %s", out_path, strerror(errno));
cleanup:
    bc_recording_reader_close(rd);
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    return rc;
}

/* ---- the bundle's files ---- */

static bool trail_line(const char *line, size_t len, const cJSON *entry, void *userdata)
{
    (void)entry;
    export_buf *b = userdata;
    buf_append(b, line, len);
    buf_append(b, "\n", 1);
    return !b->failed;
}

static bc_status build_trail(const char *audit_dir, const export_item *items, size_t count,
                             export_buf *out, bc_error *err)
{
    for (size_t i = 0; i < count; i++) {
        bc_status rc = bc_audit_scan(audit_dir, items[i].ref, trail_line, out, err);
        if (rc != BC_OK)
            return rc;
        if (out->failed)
            return bc_fail(err, BC_ERR_NOMEM, "out of memory copying the audit trail");
    }
    if (out->data == NULL)
        buf_append(out, "", 0); /* an empty trail is still a file */
    return out->failed ? bc_fail(err, BC_ERR_NOMEM, "out of memory") : BC_OK;
}

static cJSON *item_json(const export_item *it)
{
    const bc_recording_meta *m = &it->meta;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "ref", it->ref);
    cJSON_AddStringToObject(o, "device", m->device);
    cJSON_AddStringToObject(o, "recording_id", m->recording_id);
    cJSON_AddStringToObject(o, "officer", m->officer);
    cJSON_AddNumberToObject(o, "recorded_at", (double)m->recorded_at);
    cJSON_AddNumberToObject(o, "duration_ms", (double)m->duration_ms);
    cJSON_AddNumberToObject(o, "warnings", (double)m->warnings);
    cJSON_AddBoolToObject(o, "emergency", m->emergency);
    cJSON_AddStringToObject(o, "key_id", m->key_id);
    cJSON_AddStringToObject(o, "sha256", m->sha256);
    cJSON_AddNumberToObject(o, "size", (double)m->size);
    cJSON_AddStringToObject(o, "plaintext_sha256", it->plaintext_sha256);
    cJSON_AddNumberToObject(o, "plaintext_size", (double)it->plaintext_size);
    cJSON_AddStringToObject(o, "media", it->media);
    cJSON_AddStringToObject(o, "hold_id", it->hold_id);
    cJSON_AddNumberToObject(o, "audit_seq", (double)it->audit_seq);
    return o;
}

/* export.json as text (the caller frees it), NULL when out of memory. */
static char *build_info(const bc_export_request *req, const export_item *items, int64_t now_ms,
                        uint64_t head_seq, const char *head_hash)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *head = cJSON_CreateObject();
    cJSON *recs = cJSON_CreateArray();
    char *text = NULL;
    if (root == NULL || head == NULL || recs == NULL) {
        cJSON_Delete(head);
        cJSON_Delete(recs);
        goto cleanup;
    }
    cJSON_AddNumberToObject(root, "v", EXPORT_JSON_VERSION);
    cJSON_AddStringToObject(root, "purpose", req->purpose);
    cJSON_AddStringToObject(root, "case_ref", req->case_ref);
    cJSON_AddStringToObject(root, "actor", req->actor);
    cJSON_AddNumberToObject(root, "exported_at", (double)now_ms);
    cJSON_AddNumberToObject(head, "seq", (double)head_seq);
    cJSON_AddStringToObject(head, "hash", head_hash);
    cJSON_AddItemToObject(root, "audit_head", head); /* takes ownership */
    cJSON_AddItemToObject(root, "recordings", recs); /* takes ownership */
    for (size_t i = 0; i < req->ref_count; i++) {
        cJSON *o = item_json(&items[i]);
        if (o == NULL || !cJSON_AddItemToArray(recs, o)) {
            cJSON_Delete(o);
            goto cleanup;
        }
    }
    text = cJSON_Print(root);
cleanup:
    cJSON_Delete(root);
    return text;
}

static void manifest_line(export_buf *m, const char *hex, const char *path)
{
    buf_append(m, hex, strlen(hex));
    buf_append(m, "  ", 2);
    buf_append(m, path, strlen(path));
    buf_append(m, "\n", 1);
}

/* Writes OUT.partial/name durably. */
static bc_status write_bundle_file(const char *partial, const char *name, const char *data,
                                   size_t len, bc_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", partial, name);
    return bc_file_write_durable(path, data, len, EXPORT_FILE_MODE, err);
}

/* audit.jsonl, export.json and manifest.sha256 (over the media and both). */
static bc_status write_metadata(bc_audit *a, const char *audit_dir, const char *partial,
                                const bc_export_request *req, const export_item *items,
                                int64_t now_ms, bc_error *err)
{
    export_buf trail = {0}, manifest = {0};
    char *info = NULL;
    char hex[BC_SHA256_HEX_LEN + 1], head_hash[BC_AUDIT_HASH_HEX + 1];
    uint64_t head_seq = 0;
    bc_status rc = bc_audit_head(a, &head_seq, head_hash, err);
    if (rc != BC_OK)
        goto cleanup;
    rc = build_trail(audit_dir, items, req->ref_count, &trail, err);
    if (rc != BC_OK)
        goto cleanup;
    info = build_info(req, items, now_ms, head_seq, head_hash);
    if (info == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory building " EXPORT_INFO_FILE);
        goto cleanup;
    }
    for (size_t i = 0; i < req->ref_count; i++)
        manifest_line(&manifest, items[i].plaintext_sha256, items[i].media);
    if ((rc = sha256_hex(trail.data, trail.len, hex)) != BC_OK)
        goto cleanup;
    manifest_line(&manifest, hex, EXPORT_AUDIT_FILE);
    if ((rc = sha256_hex(info, strlen(info), hex)) != BC_OK)
        goto cleanup;
    manifest_line(&manifest, hex, EXPORT_INFO_FILE);
    if (manifest.failed) {
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory building " EXPORT_MANIFEST_FILE);
        goto cleanup;
    }
    rc = write_bundle_file(partial, EXPORT_AUDIT_FILE, trail.data, trail.len, err);
    if (rc == BC_OK)
        rc = write_bundle_file(partial, EXPORT_INFO_FILE, info, strlen(info), err);
    if (rc == BC_OK)
        rc = write_bundle_file(partial, EXPORT_MANIFEST_FILE, manifest.data, manifest.len, err);
cleanup:
    free(trail.data);
    free(manifest.data);
    cJSON_free(info);
    return rc;
}

/* OUT.partial -> OUT, never over something that appeared meanwhile. */
static bc_status publish(const char *partial, const char *out_dir, bc_error *err)
{
    char media[PATH_MAX], parent[PATH_MAX];
    snprintf(media, sizeof(media), "%s/" EXPORT_MEDIA_DIR, partial);
    bc_status rc = bc_file_fsync_dir(media, err);
    if (rc == BC_OK)
        rc = bc_file_fsync_dir(partial, err);
    if (rc != BC_OK)
        return rc;
    if (renameat2(AT_FDCWD, partial, AT_FDCWD, out_dir, RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY)
            return bc_fail(err, BC_ERR_EXISTS, "%s appeared during the export", out_dir);
        return bc_fail(err, BC_ERR_IO, "cannot rename %s to %s: %s", partial, out_dir,
                       strerror(errno));
    }
    bc_file_parent(out_dir, parent, sizeof(parent));
    return bc_file_fsync_dir(parent, err);
}

/* *made tells the cleanup whether OUT.partial is ours to remove. */
static bc_status make_partial(const char *partial, bool *made, bc_error *err)
{
    char media[PATH_MAX];
    if (mkdir(partial, EXPORT_DIR_MODE) != 0)
        return bc_fail(err, errno == EEXIST ? BC_ERR_EXISTS : BC_ERR_IO, "cannot create %s: %s",
                       partial, strerror(errno));
    *made = true;
    snprintf(media, sizeof(media), "%s/" EXPORT_MEDIA_DIR, partial);
    if (mkdir(media, EXPORT_DIR_MODE) != 0)
        return bc_fail(err, BC_ERR_IO, "cannot create %s: %s", media, strerror(errno));
    return BC_OK;
}

/* ---- the export ---- */

static bc_status check_run_args(const bc_export_request *req, char *partial, size_t size,
                                bc_error *err)
{
    bc_status rc = check_refs(req, err);
    if (rc != BC_OK)
        return rc;
    if (req->actor == NULL || !bc_catalog_text_valid(req->actor))
        return bc_fail(err, BC_ERR_INVAL, "an export needs the actor's name for the audit");
    if (req->out_dir == NULL || req->out_dir[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "an export needs an output directory");
    size_t len = strlen(req->out_dir);
    while (len > 1 && req->out_dir[len - 1] == '/')
        len--; /* "out/" and "out" name the same directory */
    if (len + sizeof(BC_EXPORT_PARTIAL_SUFFIX) + sizeof(EXPORT_MEDIA_DIR) + EXPORT_MEDIA_NAME_MAX +
            2 >
        size)
        return bc_fail(err, BC_ERR_TOO_BIG, "the output directory's path is too long");
    snprintf(partial, size, "%.*s" BC_EXPORT_PARTIAL_SUFFIX, (int)len, req->out_dir);
    return BC_OK;
}

/* The basename of out_dir, for the audit entries (the path is local). */
static void bundle_name(const char *out_dir, char *out, size_t size)
{
    size_t len = strlen(out_dir);
    while (len > 1 && out_dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && out_dir[start - 1] != '/')
        start--;
    snprintf(out, size, "%.*s", (int)(len - start), out_dir + start);
}

/* Authorizes the request (step 2, and again in step 4), auditing a
 * refusal. items (NULL: not kept) gets the records. */
static bc_status authorize_audited(bc_redis *r, bc_audit *a, const bc_export_request *req,
                                   export_item *items, int64_t now_ms, bc_error *err)
{
    bc_error why = {{0}};
    export_item *own = items != NULL ? items : calloc(req->ref_count, sizeof(*own));
    if (own == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for %zu recordings", req->ref_count);
    bc_status rc = authorize_all(r, req, own, &why);
    if (own != items)
        free(own);
    if (rc == BC_ERR_DENIED || rc == BC_ERR_NOT_FOUND)
        return refuse(a, req, rc, &why, now_ms, err);
    if (rc != BC_OK)
        return bc_fail(err, rc, "%s", why.text);
    return BC_OK;
}

/* Steps 3-5 of the top comment, once the export is authorized. */
static bc_status export_bundle(bc_redis *r, bc_store *st, const bc_keystore *ks, bc_audit *a,
                               const char *audit_dir, const bc_export_request *req,
                               export_item *items, const char *partial, int64_t now_ms,
                               export_progress *p, bc_export_result *res, bc_error *err)
{
    char bundle[NAME_MAX + 1];
    bool made = false, failure_audited = false;
    uint64_t first_seq = 0, bytes = 0;
    bc_status rc = make_partial(partial, &made, err);
    if (rc != BC_OK)
        goto cleanup;
    for (size_t i = 0; i < req->ref_count; i++) {
        rc = decrypt_item(st, ks, partial, &items[i], p, err);
        if (rc != BC_OK)
            goto cleanup;
        p->done_before += (uint64_t)items[i].meta.size;
        bytes += items[i].plaintext_size;
    }
    rc = authorize_audited(r, a, req, NULL, now_ms, err);
    failure_audited = rc == BC_ERR_DENIED || rc == BC_ERR_NOT_FOUND; /* as export_refused */
    if (rc != BC_OK)
        goto cleanup;
    bundle_name(req->out_dir, bundle, sizeof(bundle));
    rc = audit_exports(a, req, items, bundle, now_ms, &first_seq, err);
    if (rc != BC_OK)
        goto cleanup;
    rc = write_metadata(a, audit_dir, partial, req, items, now_ms, err);
    if (rc == BC_OK)
        rc = publish(partial, req->out_dir, err);
    if (rc != BC_OK)
        goto cleanup;
    if (p->fn != NULL)
        p->fn(p->total, p->total, NULL, p->userdata);
    if (res != NULL) {
        res->recordings = req->ref_count;
        res->plaintext_bytes = bytes;
        res->first_audit_seq = first_seq;
    }
cleanup:
    if (rc != BC_OK) {
        if (made)
            remove_partial(partial);
        if (made && !failure_audited)
            (void)audit_each(a, req, "export_failed", err ? err->text : "", now_ms, NULL);
    }
    return rc;
}

bc_status bc_export_run(bc_redis *r, bc_store *st, const bc_keystore *ks, bc_audit *a,
                        const char *audit_dir, const bc_export_request *req, int64_t now_ms,
                        bc_export_progress_fn progress, void *userdata, bc_export_result *res,
                        bc_error *err)
{
    char partial[PATH_MAX];
    export_progress p = {.fn = progress, .userdata = userdata};
    if (r == NULL || st == NULL || ks == NULL || a == NULL || audit_dir == NULL || req == NULL)
        return bc_fail(err, BC_ERR_INVAL, "an export needs the catalog, store, keys and audit");
    bc_status rc = check_run_args(req, partial, sizeof(partial), err);
    if (rc != BC_OK)
        return rc;
    export_item *items = calloc(req->ref_count, sizeof(*items));
    if (items == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for %zu recordings", req->ref_count);
    rc = authorize_audited(r, a, req, items, now_ms, err);
    if (rc != BC_OK)
        goto cleanup;
    if (path_exists(req->out_dir) || path_exists(partial)) {
        rc = bc_fail(err, BC_ERR_EXISTS, "%s exists; an export makes a new directory",
                     path_exists(req->out_dir) ? req->out_dir : partial);
        goto cleanup;
    }
    for (size_t i = 0; i < req->ref_count; i++)
        p.total += (uint64_t)items[i].meta.size;
    rc = export_bundle(r, st, ks, a, audit_dir, req, items, partial, now_ms, &p, res, err);
cleanup:
    free(items);
    return rc;
}
