/* Unit tests for device-agent/recorder: the pre-event buffer is only in
 * memory and is the start of the recording; the vault's private key
 * decrypts exactly what was fed; a recording abandoned mid-way (a crash)
 * is sealed, listed and readable after a reopen; an incomplete header is
 * moved aside, never deleted; only a matching receipt deletes. Real files
 * in a temp dir, real keys; the recorder only ever gets the public key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "device-agent/recorder.h"
#include "proto/encoding.h"
#include "proto/recording.h"
#include "proto/sign.h"
#include "test_util.h"

#define DEVICE "cam-1"

typedef struct fixture {
    char dir[64];
    EVP_PKEY *vault;     /* private: the vault's, used only to check */
    EVP_PKEY *vault_pub; /* what the camera gets */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    if (bc_test_tempdir(f->dir, sizeof(f->dir), "recorder") != BC_OK ||
        bc_test_x25519_pair(&f->vault, &f->vault_pub) != BC_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_test_remove_tree(f->dir);
    EVP_PKEY_free(f->vault);
    EVP_PKEY_free(f->vault_pub);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

/* 1 when needle occurs in hay. */
static int has_bytes(const uint8_t *hay, size_t hlen, const void *needle, size_t nlen)
{
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (memcmp(hay + i, needle, nlen) == 0)
            return 1;
    return 0;
}

/* 1 when needle occurs in any file under dir (recursively). */
static int tree_contains(const char *dir, const void *needle, size_t nlen)
{
    int found = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[512];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        assert_int_equal(lstat(p, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            found = tree_contains(p, needle, nlen);
            continue;
        }
        size_t got = 0;
        uint8_t *buf = bc_test_read_file(p, &got);
        found = has_bytes(buf, got, needle, nlen);
        free(buf);
    }
    closedir(d);
    return found;
}

/* Decrypts a recording with the vault key into a malloc'd buffer. */
static uint8_t *decrypt(const fixture *f, const char *id, size_t *len, bc_recording_info *info)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/recordings/%s.bcrec", f->dir, id);
    bc_recording_reader *r = NULL;
    bc_error e;
    assert_int_equal(bc_recording_reader_open(path, f->vault, &r, &e), BC_OK);
    size_t cap = bc_recording_reader_header(r)->segment_size;
    uint8_t *seg = malloc(cap);
    uint8_t *all = NULL;
    size_t total = 0;
    int done = 0;
    while (!done) {
        size_t n = 0;
        assert_int_equal(bc_recording_reader_next(r, seg, cap, &n, &done, &e), BC_OK);
        all = realloc(all, total + n + 1);
        assert_non_null(all);
        memcpy(all + total, seg, n);
        total += n;
    }
    assert_int_equal(bc_recording_reader_info(r, info), BC_OK);
    bc_recording_reader_close(r);
    free(seg);
    *len = total;
    return all;
}

static void file_sha256_hex(const fixture *f, const char *id, char hex[65], uint64_t *size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/recordings/%s.bcrec", f->dir, id);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_non_null(c);
    assert_int_equal(EVP_DigestInit_ex(c, EVP_sha256(), NULL), 1);
    uint8_t buf[4096], md[32];
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
        assert_int_equal(EVP_DigestUpdate(c, buf, n), 1);
        *size += n;
    }
    fclose(fp);
    assert_int_equal(EVP_DigestFinal_ex(c, md, NULL), 1);
    EVP_MD_CTX_free(c);
    assert_int_equal(bc_hex_encode(md, 32, hex, 65), BC_OK);
}

static bc_recorder *open_rec(const fixture *f, uint32_t seg, size_t pre)
{
    bc_recorder *rec = NULL;
    bc_error e;
    bc_status rc = bc_recorder_open(f->dir, f->vault_pub, NULL, DEVICE, seg, pre, &rec, &e);
    if (rc != BC_OK)
        fail_msg("open: %s", e.text);
    return rec;
}

static void receipt_for(bc_command *cmd, const bc_recording_meta *m)
{
    memset(cmd, 0, sizeof(*cmd));
    snprintf(cmd->id, sizeof(cmd->id), "receipt-%.50s", m->recording_id);
    snprintf(cmd->device, sizeof(cmd->device), DEVICE);
    cmd->kind = BC_CMD_VAULT_RECEIPT;
    cmd->issued_at = 1000;
    cmd->expires_at = 2000;
    snprintf(cmd->params.receipt.recording_id, sizeof(cmd->params.receipt.recording_id), "%s",
             m->recording_id);
    memcpy(cmd->params.receipt.sha256, m->sha256, sizeof(m->sha256));
    cmd->params.receipt.size = (int64_t)m->size;
    cmd->params.receipt.committed_at = 1500;
}

/* ---- tests ------------------------------------------------------------- */

static void test_prebuffer_in_memory_then_first(void **state)
{
    fixture *f = *state;
    const char marker[] = "PRE-EVENT-MARKER-7f3a";
    const size_t pre = 4096;
    bc_recorder *rec = open_rec(f, 1024, pre);
    bc_error e;

    /* 10000 bytes of standby video with the marker near its end: the ring
     * keeps the last 4096 of them. */
    uint8_t *standby = bc_test_pattern(10000, 1);
    memcpy(standby + 9000, marker, sizeof(marker) - 1);
    assert_int_equal(bc_recorder_feed(rec, standby, 6000, &e), BC_OK);
    assert_int_equal(bc_recorder_feed(rec, standby + 6000, 4000, &e), BC_OK);
    assert_false(tree_contains(f->dir, marker, sizeof(marker) - 1));
    assert_false(bc_test_exists(f->dir, "recordings/rec-1.bcrec"));
    bc_recorder_stats st;
    bc_recorder_get_stats(rec, &st);
    assert_int_equal(st.prebuffer_len, pre);
    assert_false(st.recording);

    assert_int_equal(bc_recorder_start(rec, "rec-1", 1000000, 2, false, &e), BC_OK);
    assert_true(bc_recorder_is_recording(rec));
    assert_true(bc_test_exists(f->dir, "recordings/rec-1.bcrec"));
    assert_true(bc_test_exists(f->dir, "recordings/rec-1.bcrec.seal"));
    assert_true(bc_test_exists(f->dir, "recordings/rec-1.open.json"));
    uint8_t *live = bc_test_pattern(50000, 2);
    for (size_t off = 0; off < 50000; off += 7000)
        assert_int_equal(
            bc_recorder_feed(rec, live + off, off + 7000 > 50000 ? 50000 - off : 7000, &e), BC_OK);
    assert_int_equal(bc_recorder_flush(rec, &e), BC_OK);
    bc_recorder_get_stats(rec, &st);
    assert_true(st.recording);
    assert_string_equal(st.recording_id, "rec-1");
    assert_int_equal(st.current_pre_event_bytes, pre);
    assert_int_equal(st.current_bytes, pre + 50000);
    assert_int_equal(st.prebuffer_len, 0);
    assert_int_equal(bc_recorder_pending_count(rec), 0); /* open is not pending */

    bc_recording_meta m;
    assert_int_equal(bc_recorder_stop(rec, 1000000 + 12345, &m, &e), BC_OK);
    assert_false(bc_recorder_is_recording(rec));
    assert_false(bc_test_exists(f->dir, "recordings/rec-1.bcrec.seal"));
    assert_false(bc_test_exists(f->dir, "recordings/rec-1.open.json"));
    assert_true(bc_test_exists(f->dir, "recordings/rec-1.json"));
    /* encrypted on disk: the marker is nowhere, before or after */
    assert_false(tree_contains(f->dir, marker, sizeof(marker) - 1));

    assert_string_equal(m.recording_id, "rec-1");
    assert_string_equal(m.device, DEVICE);
    assert_int_equal(m.recorded_at, 1000000);
    assert_int_equal(m.duration_ms, 12345);
    assert_int_equal(m.warnings, 2);
    assert_false(m.emergency);
    assert_false(m.interrupted);
    assert_int_equal(m.pre_event_bytes, pre);
    char key_id[BC_KEY_ID_LEN + 1];
    assert_int_equal(bc_key_id(f->vault, key_id), BC_OK);
    assert_string_equal(m.key_id, key_id);
    assert_string_equal(bc_recorder_key_id(rec), key_id);
    char hex[65];
    uint64_t size = 0;
    file_sha256_hex(f, "rec-1", hex, &size);
    assert_string_equal(m.sha256, hex);
    assert_int_equal(m.size, size);

    /* the vault's private key gives back exactly pre-event + live */
    size_t plen = 0;
    bc_recording_info info;
    uint8_t *plain = decrypt(f, "rec-1", &plen, &info);
    assert_int_equal(plen, pre + 50000);
    assert_memory_equal(plain, standby + 10000 - pre, pre);
    assert_memory_equal(plain + pre, live, 50000);
    assert_true(has_bytes(plain, pre, marker, sizeof(marker) - 1));
    assert_false(info.interrupted);

    /* listed, with the metadata file saying the same */
    assert_int_equal(bc_recorder_pending_count(rec), 1);
    bc_recording_meta listed[4];
    size_t count = 0;
    assert_int_equal(bc_recorder_pending(rec, listed, 4, &count), BC_OK);
    assert_int_equal(count, 1);
    assert_memory_equal(&listed[0], &m, sizeof(m));
    bc_recorder_get_stats(rec, &st);
    assert_int_equal(st.bytes_fed, 60000);
    assert_int_equal(st.bytes_recorded, pre + 50000);
    assert_int_equal(st.pending_bytes, m.size);
    bc_recorder_free(rec);

    /* a reopen lists it from ID.json, recovering nothing */
    rec = open_rec(f, 1024, pre);
    bc_recording_meta *rl = NULL;
    assert_int_equal(bc_recorder_take_recovered(rec, &rl, &count), BC_OK);
    assert_int_equal(count, 0);
    assert_int_equal(bc_recorder_find(rec, "rec-1", &listed[0]), BC_OK);
    assert_memory_equal(&listed[0], &m, sizeof(m));
    bc_recorder_free(rec);
    free(plain);
    free(standby);
    free(live);
}

static void test_prebuffer_off_and_argument_checks(void **state)
{
    fixture *f = *state;
    bc_recorder *rec = open_rec(f, 0, 0);
    bc_error e;
    uint8_t *standby = bc_test_pattern(3000, 3);
    assert_int_equal(bc_recorder_feed(rec, standby, 3000, &e), BC_OK);
    assert_int_equal(bc_recorder_stop(rec, 0, NULL, &e), BC_ERR_STATE);
    assert_int_equal(bc_recorder_start(rec, "bad/id", 1, 0, false, &e), BC_ERR_INVAL);
    assert_int_equal(bc_recorder_start(rec, "ok", 1, 3, false, &e), BC_ERR_INVAL);
    assert_int_equal(bc_recorder_start(rec, "r-2", 5000, 0, true, &e), BC_OK);
    assert_int_equal(bc_recorder_start(rec, "r-3", 5000, 0, true, &e), BC_ERR_STATE);
    assert_int_equal(bc_recorder_feed(rec, "abc", 3, &e), BC_OK);
    bc_recording_meta m;
    assert_int_equal(bc_recorder_stop(rec, 6000, &m, &e), BC_OK);
    assert_int_equal(m.pre_event_bytes, 0);
    assert_true(m.emergency);
    size_t plen = 0;
    bc_recording_info info;
    uint8_t *plain = decrypt(f, "r-2", &plen, &info);
    assert_int_equal(plen, 3); /* nothing of the standby video */
    assert_memory_equal(plain, "abc", 3);
    free(plain);
    /* the same id again is refused, the recording untouched */
    assert_int_equal(bc_recorder_start(rec, "r-2", 7000, 0, false, &e), BC_ERR_EXISTS);
    assert_int_equal(bc_recorder_pending_count(rec), 1);

    uint64_t fr = 0, tot = 0;
    assert_int_equal(bc_recorder_storage(rec, &fr, &tot), BC_OK);
    assert_true(tot > 0);
    assert_true(fr <= tot);
    bc_recorder_free(rec);

    /* a key that is not X25519 and a key id that is not the key's */
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_int_equal(bc_recorder_open(f->dir, ed, NULL, DEVICE, 0, 0, &rec, &e), BC_ERR_INVAL);
    assert_null(rec);
    assert_int_equal(
        bc_recorder_open(f->dir, f->vault_pub, "0000000000000000", DEVICE, 0, 0, &rec, &e),
        BC_ERR_INVAL);
    assert_int_equal(bc_recorder_open(f->dir, f->vault_pub, NULL, "CAM", 0, 0, &rec, &e),
                     BC_ERR_INVAL);
    EVP_PKEY_free(ed);
    free(standby);
}

static void test_crash_mid_recording_sealed_on_reopen(void **state)
{
    fixture *f = *state;
    const uint32_t seg = 1024;
    bc_recorder *rec = open_rec(f, seg, 2048);
    bc_error e;
    uint8_t *pre = bc_test_pattern(2048, 4);
    uint8_t *live = bc_test_pattern(10 * seg + 300, 5); /* 300 bytes sit in the writer's buffer */
    assert_int_equal(bc_recorder_feed(rec, pre, 2048, &e), BC_OK);
    assert_int_equal(bc_recorder_start(rec, "crash-1", 2000000, 1, true, &e), BC_OK);
    assert_int_equal(bc_recorder_feed(rec, live, 10 * seg + 300, &e), BC_OK);
    assert_int_equal(bc_recorder_flush(rec, &e), BC_OK);
    bc_recorder_free(rec); /* the crash: no stop */
    assert_true(bc_test_exists(f->dir, "recordings/crash-1.bcrec.seal"));
    assert_true(bc_test_exists(f->dir, "recordings/crash-1.open.json"));
    assert_false(bc_test_exists(f->dir, "recordings/crash-1.json"));

    rec = open_rec(f, seg, 2048);
    bc_recording_meta *list = NULL;
    size_t count = 0;
    assert_int_equal(bc_recorder_take_recovered(rec, &list, &count), BC_OK);
    assert_int_equal(count, 1);
    assert_string_equal(list[0].recording_id, "crash-1");
    assert_true(list[0].interrupted);
    assert_true(list[0].emergency); /* from the start information */
    assert_int_equal(list[0].warnings, 1);
    assert_int_equal(list[0].pre_event_bytes, 2048);
    assert_int_equal(list[0].recorded_at, 2000000);
    char hex[65];
    uint64_t size = 0;
    file_sha256_hex(f, "crash-1", hex, &size);
    assert_string_equal(list[0].sha256, hex);
    assert_int_equal(list[0].size, size);
    assert_false(bc_test_exists(f->dir, "recordings/crash-1.bcrec.seal"));
    assert_false(bc_test_exists(f->dir, "recordings/crash-1.open.json"));
    assert_true(bc_test_exists(f->dir, "recordings/crash-1.json"));
    assert_int_equal(bc_recorder_pending_count(rec), 1);
    bc_recording_meta m;
    assert_int_equal(bc_recorder_find(rec, "crash-1", &m), BC_OK);
    assert_memory_equal(&m, &list[0], sizeof(m));
    free(list);
    /* handed over once */
    assert_int_equal(bc_recorder_take_recovered(rec, &list, &count), BC_OK);
    assert_int_equal(count, 0);
    assert_null(list);

    /* readable with the vault key: every whole segment that was written */
    size_t plen = 0;
    bc_recording_info info;
    uint8_t *plain = decrypt(f, "crash-1", &plen, &info);
    assert_true(info.interrupted);
    size_t whole = (2048 + 10 * seg + 300) / seg * seg;
    assert_int_equal(plen, whole);
    assert_memory_equal(plain, pre, 2048);
    assert_memory_equal(plain + 2048, live, whole - 2048);
    free(plain);
    bc_recorder_free(rec);

    /* idempotent: a third open changes nothing and recovers nothing */
    rec = open_rec(f, seg, 2048);
    assert_int_equal(bc_recorder_take_recovered(rec, &list, &count), BC_OK);
    assert_int_equal(count, 0);
    assert_int_equal(bc_recorder_pending_count(rec), 1);
    bc_recorder_free(rec);
    free(pre);
    free(live);
}

static void test_crash_before_header_moved_aside(void **state)
{
    fixture *f = *state;
    char dir[256], path[300], sidecar[320], extra[320];
    bc_error e;
    snprintf(dir, sizeof(dir), "%s/recordings", f->dir);
    assert_int_equal(mkdir(dir, 0700), 0);

    /* a real writer's file, cut inside the header as a power loss can */
    snprintf(path, sizeof(path), "%s/torn-1.bcrec", dir);
    bc_recording_writer *w = NULL;
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "torn-1", DEVICE, 1, 0, &w, &e), BC_OK);
    bc_recording_writer_abort(w);
    assert_int_equal(truncate(path, 20), 0);
    snprintf(sidecar, sizeof(sidecar), "%s%s", path, BC_RECORDING_SEAL_SUFFIX);
    assert_int_equal(access(sidecar, F_OK), 0);

    /* leftovers: a durable-write temporary and a metadata file whose
     * recording was deleted (a crash mid-delete) */
    snprintf(extra, sizeof(extra), "%s/gone.json.ab12cd.tmp", dir);
    bc_test_write_file(extra, "");
    snprintf(extra, sizeof(extra), "%s/gone.json", dir);
    bc_test_write_file(extra, "{\"v\":1}");

    bc_recorder *rec = open_rec(f, 0, 0);
    bc_recorder_stats st;
    bc_recorder_get_stats(rec, &st);
    assert_int_equal(st.broken, 1);
    assert_int_equal(st.pending, 0);
    assert_false(bc_test_exists(f->dir, "recordings/torn-1.bcrec"));
    assert_false(bc_test_exists(f->dir, "recordings/torn-1.bcrec.seal"));
    assert_true(bc_test_exists(f->dir, "recordings/broken/torn-1.bcrec"));
    assert_true(bc_test_exists(f->dir, "recordings/broken/torn-1.bcrec.seal"));
    assert_false(bc_test_exists(f->dir, "recordings/gone.json.ab12cd.tmp"));
    assert_false(bc_test_exists(f->dir, "recordings/gone.json"));
    bc_recording_meta *list = NULL;
    size_t count = 0;
    assert_int_equal(bc_recorder_take_recovered(rec, &list, &count), BC_OK);
    assert_int_equal(count, 0);
    /* the broken file keeps its 20 bytes */
    struct stat sb;
    char moved[320];
    snprintf(moved, sizeof(moved), "%s/broken/torn-1.bcrec", dir);
    assert_int_equal(stat(moved, &sb), 0);
    assert_int_equal(sb.st_size, 20);
    bc_recorder_free(rec);

    /* the same crash again: the first broken copy is not overwritten */
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "torn-1", DEVICE, 1, 0, &w, &e), BC_OK);
    bc_recording_writer_abort(w);
    assert_int_equal(truncate(path, 10), 0);
    rec = open_rec(f, 0, 0);
    assert_true(bc_test_exists(f->dir, "recordings/broken/torn-1.bcrec.1"));
    assert_int_equal(stat(moved, &sb), 0);
    assert_int_equal(sb.st_size, 20);
    bc_recorder_free(rec);
}

static void test_delete_only_with_matching_receipt(void **state)
{
    fixture *f = *state;
    bc_recorder *rec = open_rec(f, 0, 0);
    bc_error e;
    uint8_t *data = bc_test_pattern(5000, 6);
    bc_recording_meta a, b;
    assert_int_equal(bc_recorder_start(rec, "del-a", 100, 2, false, &e), BC_OK);
    assert_int_equal(bc_recorder_feed(rec, data, 5000, &e), BC_OK);
    assert_int_equal(bc_recorder_stop(rec, 200, &a, &e), BC_OK);
    assert_int_equal(bc_recorder_start(rec, "del-b", 50, 2, false, &e), BC_OK);
    assert_int_equal(bc_recorder_feed(rec, data, 100, &e), BC_OK);
    assert_int_equal(bc_recorder_stop(rec, 60, &b, &e), BC_OK);
    /* ordered by recorded_at, not by creation */
    bc_recording_meta first;
    assert_int_equal(bc_recorder_pending_at(rec, 0, &first), BC_OK);
    assert_string_equal(first.recording_id, "del-b");
    assert_int_equal(bc_recorder_pending_at(rec, 2, &first), BC_ERR_NOT_FOUND);

    bc_command r;
    receipt_for(&r, &a);
    r.params.receipt.sha256[0] = r.params.receipt.sha256[0] == 'a' ? 'b' : 'a';
    assert_int_equal(bc_recorder_delete_with_receipt(rec, &r, &e), BC_ERR_DENIED);
    assert_non_null(strstr(e.text, "sha256"));

    receipt_for(&r, &a);
    r.params.receipt.size = (int64_t)a.size + 1;
    assert_int_equal(bc_recorder_delete_with_receipt(rec, &r, &e), BC_ERR_DENIED);
    assert_non_null(strstr(e.text, "size"));

    receipt_for(&r, &a); /* b's hash with a's id */
    memcpy(r.params.receipt.sha256, b.sha256, sizeof(b.sha256));
    r.params.receipt.size = (int64_t)b.size;
    assert_int_equal(bc_recorder_delete_with_receipt(rec, &r, &e), BC_ERR_DENIED);

    receipt_for(&r, &a);
    snprintf(r.params.receipt.recording_id, sizeof(r.params.receipt.recording_id), "nope");
    assert_int_equal(bc_recorder_delete_with_receipt(rec, &r, &e), BC_ERR_NOT_FOUND);

    receipt_for(&r, &a);
    r.kind = BC_CMD_UPLOAD; /* any other command */
    assert_int_equal(bc_recorder_delete_with_receipt(rec, &r, &e), BC_ERR_DENIED);
    assert_int_equal(bc_recorder_delete_with_receipt(rec, NULL, &e), BC_ERR_DENIED);

    assert_true(bc_test_exists(f->dir, "recordings/del-a.bcrec"));
    assert_true(bc_test_exists(f->dir, "recordings/del-a.json"));
    assert_int_equal(bc_recorder_pending_count(rec), 2);

    /* an open recording cannot be deleted, even by a matching-looking receipt */
    assert_int_equal(bc_recorder_start(rec, "del-c", 300, 0, true, &e), BC_OK);
    bc_recording_meta c = a;
    snprintf(c.recording_id, sizeof(c.recording_id), "del-c");
    receipt_for(&r, &c);
    assert_int_equal(bc_recorder_delete_with_receipt(rec, &r, &e), BC_ERR_DENIED);
    assert_true(bc_test_exists(f->dir, "recordings/del-c.bcrec"));

    receipt_for(&r, &a);
    assert_int_equal(bc_recorder_delete_with_receipt(rec, &r, &e), BC_OK);
    assert_false(bc_test_exists(f->dir, "recordings/del-a.bcrec"));
    assert_false(bc_test_exists(f->dir, "recordings/del-a.json"));
    assert_int_equal(bc_recorder_pending_count(rec), 1);
    assert_int_equal(bc_recorder_find(rec, "del-a", &first), BC_ERR_NOT_FOUND);
    int fd = 0;
    assert_int_equal(bc_recorder_open_file(rec, "del-a", &fd, &e), BC_ERR_NOT_FOUND);
    assert_int_equal(fd, -1);
    /* the same receipt again: nothing left to delete */
    assert_int_equal(bc_recorder_delete_with_receipt(rec, &r, &e), BC_ERR_NOT_FOUND);
    assert_true(bc_test_exists(f->dir, "recordings/del-b.bcrec"));
    assert_int_equal(bc_recorder_stop(rec, 400, NULL, &e), BC_OK);
    bc_recorder_free(rec);

    /* after a restart the deleted one stays deleted */
    rec = open_rec(f, 0, 0);
    assert_int_equal(bc_recorder_pending_count(rec), 2);
    assert_int_equal(bc_recorder_find(rec, "del-a", &first), BC_ERR_NOT_FOUND);
    bc_recorder_free(rec);
    free(data);
}

static void test_metadata_rebuilt_when_missing(void **state)
{
    fixture *f = *state;
    bc_recorder *rec = open_rec(f, 0, 0);
    bc_error e;
    bc_recording_meta m;
    assert_int_equal(bc_recorder_start(rec, "meta-1", 100, 2, false, &e), BC_OK);
    assert_int_equal(bc_recorder_feed(rec, "hello", 5, &e), BC_OK);
    assert_int_equal(bc_recorder_stop(rec, 200, &m, &e), BC_OK);
    bc_recorder_free(rec);
    /* a crash between close and the metadata: the file is complete, the
     * start information still there */
    char p[512], q[512];
    snprintf(p, sizeof(p), "%s/recordings/meta-1.json", f->dir);
    assert_int_equal(unlink(p), 0);
    snprintf(q, sizeof(q), "%s/recordings/meta-1.open.json", f->dir);
    bc_test_write_file(q, "{\"v\":1,\"recording_id\":\"meta-1\",\"recorded_at\":100,\"warnings\":2,"
                          "\"emergency\":false,\"pre_event_bytes\":0}");

    rec = open_rec(f, 0, 0);
    bc_recording_meta *list = NULL;
    size_t count = 0;
    assert_int_equal(bc_recorder_take_recovered(rec, &list, &count), BC_OK);
    assert_int_equal(count, 1);
    assert_false(list[0].interrupted);
    assert_int_equal(list[0].warnings, 2);
    assert_string_equal(list[0].sha256, m.sha256);
    assert_int_equal(list[0].size, m.size);
    assert_true(bc_test_exists(f->dir, "recordings/meta-1.json"));
    assert_false(bc_test_exists(f->dir, "recordings/meta-1.open.json"));
    free(list);

    /* the written metadata file is the JSON the header documents */
    size_t text_len = 0;
    char *text = (char *)bc_test_read_file(p, &text_len);
    assert_true(text_len > 0);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "recording_id")->valuestring, "meta-1");
    assert_string_equal(cJSON_GetObjectItem(root, "sha256")->valuestring, m.sha256);
    assert_int_equal(cJSON_GetObjectItem(root, "size")->valuedouble, (double)m.size);
    assert_true(cJSON_IsBool(cJSON_GetObjectItem(root, "interrupted")));
    cJSON_Delete(root);
    free(text);
    bc_recorder_free(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prebuffer_in_memory_then_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prebuffer_off_and_argument_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_mid_recording_sealed_on_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_before_header_moved_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_only_with_matching_receipt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_rebuilt_when_missing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
