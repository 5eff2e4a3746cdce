/*
 * updater.c - the pending update and its download (updater.h).
 *
 * The resume point is a contiguous prefix: chunks [0, next) are in the
 * file and fsynced, and download.json says so. Chunks of the window past
 * next may arrive in any order; they are written at once but only counted
 * (the bit mask `have`, bit i = chunk next + i) until the prefix reaches
 * them. The resume point is saved every checkpoint_bytes of prefix (and
 * at the end), not per chunk: three fsyncs per 64 KiB chunk made the
 * download disk-bound (bench_firmware: 4 MB/s for one camera). A crash
 * re-fetches at most one checkpoint interval and one window. The data is
 * fsynced before the resume point that covers it is saved: the file never
 * claims bytes a power cut could take back.
 */
#include "device-agent/updater.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/file.h"
#include "common/log.h"
#include "device-agent/boot_slots.h"
#include "proto/encoding.h"
#include "proto/json.h"

#define UPDATE_JSON_MAX (BC_FIRMWARE_JSON_MAX + 1024)
#define PROGRESS_JSON_MAX 1024
#define HASH_BUF (64 * 1024)

struct bc_updater {
    char dir[PATH_MAX];
    char update_path[PATH_MAX];
    char image_path[PATH_MAX];
    char progress_path[PATH_MAX];
    EVP_PKEY *key; /* referenced; NULL: no firmware key */
    size_t window;
    bc_updater_phase phase;
    bc_firmware_manifest m;
    char cmd_id[BC_ID_MAX + 1];
    uint64_t next;  /* chunks [0, next) written */
    uint64_t saved; /* chunks [0, saved) fsynced and in download.json */
    uint64_t checkpoint_bytes;
    uint64_t have; /* bit i: chunk next + i written */
    bool in_slot;  /* READY with the image already in the inactive slot */
};

/* ---- files ---- */

static bc_status remove_file(const char *path, bc_error *err)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return BC_OK;
    return bc_fail(err, BC_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
}

/* Drops download.img and download.json (durably). */
static bc_status drop_download(bc_updater *u, bc_error *err)
{
    bc_status st = remove_file(u->progress_path, err);
    if (st == BC_OK)
        st = remove_file(u->image_path, err);
    if (st == BC_OK)
        st = bc_file_fsync_dir(u->dir, err);
    u->next = 0;
    u->saved = 0;
    u->have = 0;
    return st;
}

static bc_status save_progress(bc_updater *u, bc_error *err)
{
    cJSON *root = NULL;
    char *json = NULL;
    bc_status st = bc_json_new_message(&root);
    if (st == BC_OK)
        st = bc_json_add_string(root, "version", u->m.version);
    if (st == BC_OK)
        st = bc_json_add_string(root, "sha256", u->m.sha256);
    if (st == BC_OK)
        st = bc_json_add_int(root, "next", (int64_t)u->next);
    if (st == BC_OK)
        st = bc_json_print(root, &json);
    cJSON_Delete(root);
    if (st != BC_OK)
        return bc_fail(err, BC_ERR_NOMEM, "download.json: out of memory");
    st = bc_file_write_durable(u->progress_path, json, strlen(json), 0600, err);
    free(json);
    return st;
}

static bc_status save_update(bc_updater *u, const bc_firmware_manifest *m, const char *cmd_id,
                             bc_error *err)
{
    cJSON *root = NULL, *manifest = NULL;
    char *json = NULL;
    bc_status st = bc_firmware_to_json(m, &manifest, err);
    if (st != BC_OK)
        return st;
    st = bc_json_new_message(&root);
    if (st == BC_OK)
        st = bc_json_add_string(root, "cmd_id", cmd_id);
    if (st == BC_OK) {
        st = bc_json_add_item(root, "manifest", manifest);
        if (st == BC_OK)
            manifest = NULL; /* root owns it */
    }
    if (st == BC_OK)
        st = bc_json_print(root, &json);
    cJSON_Delete(manifest);
    cJSON_Delete(root);
    if (st != BC_OK)
        return bc_fail(err, BC_ERR_NOMEM, "update.json: out of memory");
    st = bc_file_write_durable(u->update_path, json, strlen(json), 0600, err);
    free(json);
    return st;
}

static int64_t chunk_len(const bc_firmware_manifest *m, uint64_t n)
{
    int64_t off = (int64_t)n * m->chunk_size;
    return n + 1 == (uint64_t)m->chunks ? m->size - off : m->chunk_size;
}

/* ---- opening: resume what is on disk ---- */

static bc_status load_update(bc_updater *u, bc_error *err)
{
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    const cJSON *manifest = NULL;
    bc_status st = bc_file_read_all(u->update_path, UPDATE_JSON_MAX, &text, &len, err);
    if (st == BC_OK)
        st = bc_json_parse(text, len, UPDATE_JSON_MAX, &root, err);
    if (st == BC_OK)
        st =
            bc_json_get_string(root, "cmd_id", BC_JSON_REQUIRED, u->cmd_id, sizeof(u->cmd_id), err);
    if (st == BC_OK)
        st = bc_json_get_object(root, "manifest", BC_JSON_REQUIRED, &manifest, err);
    if (st == BC_OK)
        st = bc_firmware_from_json(manifest, &u->m, err);
    cJSON_Delete(root);
    free(text);
    if (st == BC_OK && u->key == NULL)
        st = bc_fail(err, BC_ERR_DENIED, "no firmware key is configured");
    if (st == BC_OK) /* the key may have changed since it was accepted */
        st = bc_firmware_verify(&u->m, u->key, err);
    return st;
}

/* The resume point, when download.json is this update's and the file holds
 * at least what it claims. */
static void load_progress(bc_updater *u)
{
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    char version[BC_VERSION_MAX + 1], sha[BC_SHA256_HEX_LEN + 1];
    int64_t next = 0;
    struct stat sb;
    bc_status st = bc_file_read_all(u->progress_path, PROGRESS_JSON_MAX, &text, &len, NULL);
    if (st == BC_OK)
        st = bc_json_parse(text, len, PROGRESS_JSON_MAX, &root, NULL);
    if (st == BC_OK)
        st = bc_json_get_string(root, "version", BC_JSON_REQUIRED, version, sizeof(version), NULL);
    if (st == BC_OK)
        st = bc_json_get_string(root, "sha256", BC_JSON_REQUIRED, sha, sizeof(sha), NULL);
    if (st == BC_OK)
        st = bc_json_get_int(root, "next", BC_JSON_REQUIRED, 0, u->m.chunks, &next, NULL);
    cJSON_Delete(root);
    free(text);
    if (st != BC_OK || strcmp(version, u->m.version) != 0 || strcmp(sha, u->m.sha256) != 0 ||
        stat(u->image_path, &sb) != 0 ||
        (next > 0 &&
         sb.st_size < (next - 1) * u->m.chunk_size + chunk_len(&u->m, (uint64_t)next - 1)))
        next = 0;
    u->next = (uint64_t)next;
    u->saved = u->next;
    u->have = 0;
}

static bc_status set_paths(bc_updater *u, const char *data_dir, bc_error *err)
{
    bc_status st = bc_boot_path(data_dir, "", u->dir, sizeof(u->dir), err);
    if (st == BC_OK)
        st = bc_boot_path(data_dir, BC_UPDATER_FILE, u->update_path, sizeof(u->update_path), err);
    if (st == BC_OK)
        st = bc_boot_path(data_dir, BC_UPDATER_IMAGE, u->image_path, sizeof(u->image_path), err);
    if (st == BC_OK)
        st = bc_boot_path(data_dir, BC_UPDATER_PROGRESS, u->progress_path, sizeof(u->progress_path),
                          err);
    return st;
}

bc_status bc_updater_open(const char *data_dir, EVP_PKEY *firmware_key, size_t window,
                          bc_updater **out, bc_error *err)
{
    *out = NULL;
    if (data_dir == NULL || window < 1 || window > BC_UPDATER_WINDOW_MAX)
        return bc_fail(err, BC_ERR_INVAL, "updater: a data dir and a window of 1..%d are needed",
                       BC_UPDATER_WINDOW_MAX);
    bc_updater *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "updater: out of memory");
    bc_status st = set_paths(u, data_dir, err);
    if (st == BC_OK && firmware_key != NULL) {
        if (EVP_PKEY_up_ref(firmware_key) != 1)
            st = bc_fail(err, BC_ERR_CRYPTO, "updater: cannot reference the firmware key");
        else
            u->key = firmware_key;
    }
    if (st != BC_OK) {
        bc_updater_free(u);
        return st;
    }
    u->window = window;
    u->checkpoint_bytes = BC_UPDATER_CHECKPOINT_BYTES;
    bc_error why;
    if (access(u->update_path, F_OK) != 0) {
        st = drop_download(u, err); /* leftovers of a finished update */
    } else if (load_update(u, &why) != BC_OK) {
        log_errorx("firmware | failed | detail=the pending update in %s is unusable (%s); dropped",
                   u->update_path, why.text);
        memset(&u->m, 0, sizeof(u->m));
        u->cmd_id[0] = '\0';
        st = remove_file(u->update_path, err);
        if (st == BC_OK)
            st = drop_download(u, err);
    } else {
        load_progress(u);
        u->phase = u->next == (uint64_t)u->m.chunks ? BC_UPDATER_COMPLETE : BC_UPDATER_DOWNLOADING;
    }
    if (st != BC_OK) {
        bc_updater_free(u);
        return st;
    }
    *out = u;
    return BC_OK;
}

void bc_updater_set_checkpoint(bc_updater *u, int64_t bytes)
{
    u->checkpoint_bytes = bytes < 1 ? 1 : (uint64_t)bytes;
}

void bc_updater_free(bc_updater *u)
{
    if (u == NULL)
        return;
    EVP_PKEY_free(u->key);
    free(u);
}

/* ---- offers ---- */

bc_status bc_updater_offer(bc_updater *u, const bc_firmware_manifest *m, const char *cmd_id,
                           const char *current_version, bc_updater_offer_result *res, bc_error *err)
{
    bc_error why;
    bc_error_clear(&why);
    if (u->key == NULL)
        return bc_fail(err, BC_ERR_DENIED, "no firmware key");
    if (!bc_id_valid(cmd_id))
        return bc_fail(err, BC_ERR_INVAL, "invalid command id");
    bc_status st = bc_firmware_verify(m, u->key, &why);
    if (st == BC_ERR_SIGNATURE)
        return bc_fail(err, st, "bad signature: %s", why.text);
    if (st != BC_OK)
        return bc_fail(err, st, "invalid manifest: %s", why.text);
    if (u->phase != BC_UPDATER_IDLE) {
        if (strcmp(u->m.version, m->version) == 0 && strcmp(u->m.sha256, m->sha256) == 0) {
            *res = BC_UPDATER_SAME;
            return BC_OK;
        }
        return bc_fail(err, BC_ERR_STATE, "another update (version %s) is in progress",
                       u->m.version);
    }
    st = bc_firmware_check_install(m, current_version, &why);
    if (st != BC_OK)
        return bc_fail(err, st, "%s", why.text);
    st = drop_download(u, err);
    if (st == BC_OK) /* durable before the command is acked */
        st = save_update(u, m, cmd_id, err);
    if (st != BC_OK)
        return st;
    u->m = *m;
    snprintf(u->cmd_id, sizeof(u->cmd_id), "%s", cmd_id);
    u->phase = BC_UPDATER_DOWNLOADING;
    u->in_slot = false;
    *res = BC_UPDATER_ACCEPTED;
    return BC_OK;
}

bc_updater_phase bc_updater_get_phase(const bc_updater *u)
{
    return u->phase;
}

const bc_firmware_manifest *bc_updater_manifest(const bc_updater *u)
{
    return u->phase == BC_UPDATER_IDLE ? NULL : &u->m;
}

const char *bc_updater_cmd_id(const bc_updater *u)
{
    return u->phase == BC_UPDATER_IDLE ? "" : u->cmd_id;
}

/* ---- hashing ---- */

bc_status bc_updater_file_sha256(const char *path, char *hex, bc_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bc_fail(err, errno == ENOENT ? BC_ERR_NOT_FOUND : BC_ERR_IO, "cannot open %s: %s",
                       path, strerror(errno));
    uint8_t *buf = malloc(HASH_BUF);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bc_status st = BC_OK;
    if (buf == NULL || ctx == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "out of memory hashing %s", path);
        goto cleanup;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        st = bc_fail(err, BC_ERR_CRYPTO, "cannot start SHA-256");
        goto cleanup;
    }
    for (;;) {
        ssize_t n = read(fd, buf, HASH_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = bc_fail(err, BC_ERR_IO, "cannot read %s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            st = bc_fail(err, BC_ERR_CRYPTO, "SHA-256 failed");
            goto cleanup;
        }
    }
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 || dlen != 32 ||
        bc_hex_encode(digest, dlen, hex, BC_SHA256_HEX_LEN + 1) != BC_OK)
        st = bc_fail(err, BC_ERR_CRYPTO, "SHA-256 failed");
cleanup:
    EVP_MD_CTX_free(ctx);
    free(buf);
    close(fd);
    return st;
}

bc_status bc_updater_use_slot(bc_updater *u, const char *slot_path, bool *in_slot, bc_error *err)
{
    char hex[BC_SHA256_HEX_LEN + 1];
    *in_slot = false;
    if (u->phase != BC_UPDATER_DOWNLOADING)
        return BC_OK;
    bc_status st = bc_updater_file_sha256(slot_path, hex, err);
    if (st == BC_ERR_NOT_FOUND)
        return BC_OK;
    if (st != BC_OK || strcmp(hex, u->m.sha256) != 0)
        return st;
    st = drop_download(u, err);
    if (st != BC_OK)
        return st;
    *in_slot = true;
    u->in_slot = true;
    u->phase = BC_UPDATER_READY;
    return BC_OK;
}

/* ---- the download ---- */

size_t bc_updater_wanted(const bc_updater *u, unsigned *out, size_t max)
{
    size_t k = 0;
    if (u->phase != BC_UPDATER_DOWNLOADING)
        return 0;
    for (size_t i = 0; i < u->window && k < max; i++) {
        uint64_t c = u->next + i;
        if (c >= (uint64_t)u->m.chunks)
            break;
        if (!(u->have & (1ULL << i)))
            out[k++] = (unsigned)c;
    }
    return k;
}

uint64_t bc_updater_first_missing(const bc_updater *u)
{
    return u->next;
}

void bc_updater_progress(const bc_updater *u, uint64_t *done, uint64_t *total)
{
    *done = u->phase == BC_UPDATER_IDLE ? 0 : u->next;
    *total = u->phase == BC_UPDATER_IDLE ? 0 : (uint64_t)u->m.chunks;
}

static bc_status write_at(int fd, const void *data, size_t len, off_t off, const char *path,
                          bc_error *err)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return bc_fail(err, BC_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return BC_OK;
}

bc_status bc_updater_chunk(bc_updater *u, unsigned n, const void *data, size_t len, bool *stored,
                           bc_error *err)
{
    *stored = false;
    if (u->phase != BC_UPDATER_DOWNLOADING || n < u->next || n >= u->next + u->window ||
        n >= (uint64_t)u->m.chunks || (u->have & (1ULL << (n - u->next))))
        return BC_OK;
    int64_t want = chunk_len(&u->m, n);
    if ((int64_t)len != want)
        return bc_fail(err, BC_ERR_INVAL, "chunk %u has %zu bytes, %lld expected", n, len,
                       (long long)want);
    int fd = open(u->image_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return bc_fail(err, BC_ERR_IO, "cannot open %s: %s", u->image_path, strerror(errno));
    bc_status st =
        write_at(fd, data, len, (off_t)((int64_t)n * u->m.chunk_size), u->image_path, err);
    uint64_t before = u->next;
    if (st == BC_OK) {
        u->have |= 1ULL << (n - u->next);
        while (u->have & 1) {
            u->have >>= 1;
            u->next++;
        }
    }
    bool checkpoint = u->next != before &&
                      ((u->next - u->saved) * (uint64_t)u->m.chunk_size >= u->checkpoint_bytes ||
                       u->next == (uint64_t)u->m.chunks);
    /* The bytes are on disk before the resume point says they are. */
    if (st == BC_OK && checkpoint && fdatasync(fd) != 0)
        st = bc_fail(err, BC_ERR_IO, "cannot sync %s: %s", u->image_path, strerror(errno));
    if (close(fd) != 0 && st == BC_OK)
        st = bc_fail(err, BC_ERR_IO, "cannot close %s: %s", u->image_path, strerror(errno));
    if (st == BC_OK && checkpoint) {
        st = save_progress(u, err);
        if (st == BC_OK)
            u->saved = u->next;
    }
    if (st != BC_OK)
        return st;
    *stored = true;
    if (u->next == (uint64_t)u->m.chunks)
        u->phase = BC_UPDATER_COMPLETE;
    return BC_OK;
}

bc_status bc_updater_verify(bc_updater *u, bc_error *err)
{
    char hex[BC_SHA256_HEX_LEN + 1];
    bc_boot_header h;
    bc_error why;
    if (u->phase != BC_UPDATER_COMPLETE)
        return bc_fail(err, BC_ERR_STATE, "the download is not complete");
    int fd = open(u->image_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bc_fail(err, BC_ERR_IO, "cannot open %s: %s", u->image_path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0)
        return bc_fail(err, BC_ERR_IO, "cannot sync %s: %s", u->image_path, strerror(errno));
    bc_status st = bc_updater_file_sha256(u->image_path, hex, err);
    if (st != BC_OK)
        return st;
    const char *bad = NULL;
    if (strcmp(hex, u->m.sha256) != 0)
        bad = "image does not match its manifest";
    else if (bc_boot_header_read(u->image_path, &h, &why) != BC_OK)
        bad = "the image has no valid firmware header";
    else if (strcmp(h.version, u->m.version) != 0)
        bad = "the image header names another version";
    if (bad != NULL) {
        (void)drop_download(u, NULL);
        u->phase = BC_UPDATER_DOWNLOADING;
        return bc_fail(err, BC_ERR_TAMPERED, "%s", bad);
    }
    u->phase = BC_UPDATER_READY;
    return BC_OK;
}

const char *bc_updater_image_path(const bc_updater *u)
{
    return u->phase == BC_UPDATER_READY && !u->in_slot ? u->image_path : NULL;
}

bc_status bc_updater_finish(bc_updater *u, bc_error *err)
{
    u->phase = BC_UPDATER_IDLE;
    u->in_slot = false;
    u->cmd_id[0] = '\0';
    bc_status st = remove_file(u->update_path, err);
    if (st == BC_OK)
        st = drop_download(u, err);
    return st;
}
