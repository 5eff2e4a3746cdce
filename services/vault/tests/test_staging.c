/* Unit tests for services/vault/staging: chunks in any order, twice, before
 * their manifest; a changed manifest; the limits (past the size, the ranges
 * cap); what a crash keeps (only what was synced); reset, remove, list; one
 * open descriptor for two interleaved recordings; and a 1 GiB sparse
 * recording staged without memory or disk in proportion to its size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "proto/encoding.h"
#include "test_util.h"
#include "vault/staging.h"

#define DEV "cam-1"
#define REC "rec-0001"
#define SIZE 10000u
#define CHUNK 1000u
#define NOW 1760000000000LL

typedef struct fixture {
    char root[64];
    char dir[128];
    bc_staging *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || bc_test_tempdir(f->root, sizeof(f->root), "staging") != BC_OK)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "%s/staging", f->root);
    if (bc_staging_open(f->dir, 8, &f->s, NULL) != BC_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_staging_close(f->s);
    bc_test_remove_tree(f->root);
    free(f);
    return 0;
}

/* Closes and reopens the staging area, as a restart does. */
static void reopen(fixture *f, size_t max_open)
{
    bc_error err;
    bc_staging_close(f->s);
    f->s = NULL;
    if (bc_staging_open(f->dir, max_open, &f->s, &err) != BC_OK)
        fail_msg("reopen: %s", err.text);
}

static void sha256_hex(const uint8_t *data, size_t len, char hex[BC_SHA256_HEX_LEN + 1])
{
    uint8_t d[32];
    assert_int_equal(EVP_Digest(data, len, d, NULL, EVP_sha256(), NULL), 1);
    assert_int_equal(bc_hex_encode(d, sizeof(d), hex, BC_SHA256_HEX_LEN + 1), BC_OK);
}

static bc_msg_upload manifest(const char *dev, const char *rec, uint64_t size, const char *sha)
{
    bc_msg_upload m;
    memset(&m, 0, sizeof(m));
    snprintf(m.device, sizeof(m.device), "%s", dev);
    snprintf(m.recording_id, sizeof(m.recording_id), "%s", rec);
    snprintf(m.sha256, sizeof(m.sha256), "%s", sha);
    snprintf(m.key_id, sizeof(m.key_id), "0123456789abcdef");
    m.kind = BC_UPLOAD_MANIFEST;
    m.ts = NOW;
    m.size = (int64_t)size;
    m.recorded_at = NOW - 60000;
    m.duration_ms = 30000;
    m.warnings = 2;
    m.chunk_size = CHUNK;
    return m;
}

static bc_status put_manifest(fixture *f, const bc_msg_upload *m, bool *dup)
{
    bc_error err;
    bc_status rc = bc_staging_put_manifest(f->s, m, NOW, dup, &err);
    if (rc != BC_OK)
        print_message("put_manifest: %s\n", err.text);
    return rc;
}

/* Puts content[offset, offset + len) of recording dev/rec. */
static bc_status put_chunk_of(fixture *f, const char *dev, const char *rec, const uint8_t *content,
                              uint64_t offset, size_t len, bool *dup)
{
    bc_msg_upload m;
    memset(&m, 0, sizeof(m));
    snprintf(m.device, sizeof(m.device), "%s", dev);
    snprintf(m.recording_id, sizeof(m.recording_id), "%s", rec);
    m.kind = BC_UPLOAD_CHUNK;
    m.offset = (int64_t)offset;
    m.data = (uint8_t *)content + offset; /* borrowed: never freed here */
    m.data_len = len;
    bc_error err;
    bc_status rc = bc_staging_put_chunk(f->s, &m, NOW + (int64_t)offset, dup, &err);
    if (rc != BC_OK)
        print_message("put_chunk at %llu: %s\n", (unsigned long long)offset, err.text);
    return rc;
}

static bc_status put_chunk(fixture *f, const uint8_t *content, uint64_t offset, size_t len,
                           bool *dup)
{
    return put_chunk_of(f, DEV, REC, content, offset, len, dup);
}

/* Puts content[from, to) of DEV/REC in CHUNK-sized chunks. */
static void put_chunks(fixture *f, const uint8_t *content, uint64_t from, uint64_t to)
{
    for (uint64_t off = from; off < to; off += CHUNK)
        assert_int_equal(put_chunk(f, content, off, CHUNK, NULL), BC_OK);
}

/* SIZE bytes of pattern (seed) for DEV/REC, with their manifest staged in
 * *m; the caller frees the content. */
static uint8_t *staged_manifest(fixture *f, unsigned seed, bc_msg_upload *m)
{
    uint8_t *content = bc_test_pattern(SIZE, seed);
    char sha[BC_SHA256_HEX_LEN + 1];
    sha256_hex(content, SIZE, sha);
    *m = manifest(DEV, REC, SIZE, sha);
    assert_int_equal(put_manifest(f, m, NULL), BC_OK);
    return content;
}

static void sync_ok(fixture *f)
{
    bc_error err;
    if (bc_staging_sync(f->s, &err) != BC_OK)
        fail_msg("sync: %s", err.text);
}

static bc_staging_status status_of(fixture *f, const char *dev, const char *rec)
{
    bc_staging_status st;
    bc_error err;
    if (bc_staging_status_of(f->s, dev, rec, &st, &err) != BC_OK)
        fail_msg("status of %s/%s: %s", dev, rec, err.text);
    return st;
}

/* The data file of dev/rec equals content[0, len) exactly. */
static void assert_data(fixture *f, const char *dev, const char *rec, const uint8_t *content,
                        size_t len)
{
    char path[512];
    assert_int_equal(bc_staging_data_path(f->s, dev, rec, path, sizeof(path), NULL), BC_OK);
    size_t got = 0;
    uint8_t *data = bc_test_read_file(path, &got);
    assert_int_equal(got, len);
    assert_memory_equal(data, content, len);
    free(data);
}

static void rec_dir(fixture *f, const char *dev, const char *rec, char *out, size_t size)
{
    snprintf(out, size, "%s/%s/%s", f->dir, dev, rec);
}

/* ---- tests ---- */

static void test_in_order(void **state)
{
    fixture *f = *state;
    uint8_t *content = bc_test_pattern(SIZE, 1);
    char sha[BC_SHA256_HEX_LEN + 1];
    sha256_hex(content, SIZE, sha);
    bc_msg_upload m = manifest(DEV, REC, SIZE, sha);
    bool dup = true;
    assert_int_equal(put_manifest(f, &m, &dup), BC_OK);
    assert_false(dup);

    for (uint64_t off = 0; off < SIZE; off += CHUNK) {
        assert_int_equal(put_chunk(f, content, off, CHUNK, &dup), BC_OK);
        assert_false(dup);
        bc_staging_status st = status_of(f, DEV, REC);
        assert_int_equal(st.ranges, 1);
        assert_int_equal(st.received, off + CHUNK);
        assert_int_equal(st.first_missing, off + CHUNK);
        assert_int_equal(st.complete, off + CHUNK == SIZE);
        assert_int_equal(st.updated_at, NOW + (int64_t)off);
    }
    sync_ok(f);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_true(st.complete);
    assert_true(st.has_manifest);
    assert_string_equal(st.manifest.sha256, sha);
    assert_int_equal(st.manifest.size, SIZE);
    assert_null(st.manifest.data);
    assert_int_equal(st.attempts, 0);
    assert_data(f, DEV, REC, content, SIZE);

    char dir[256], path[512];
    rec_dir(f, DEV, REC, dir, sizeof(dir));
    assert_true(bc_test_exists(dir, BC_STAGING_MANIFEST_FILE));
    assert_true(bc_test_exists(dir, BC_STAGING_RANGES_FILE));
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", dir, BC_STAGING_DATA_FILE);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(f->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    /* A restart finds everything that was synced. */
    reopen(f, 8);
    st = status_of(f, DEV, REC);
    assert_true(st.complete);
    assert_int_equal(st.received, SIZE);
    assert_int_equal(st.updated_at, NOW + (int64_t)(SIZE - CHUNK));
    assert_string_equal(st.manifest.sha256, sha);
    assert_string_equal(st.manifest.key_id, m.key_id);
    assert_int_equal(st.manifest.recorded_at, m.recorded_at);
    free(content);
}

static void test_reverse_order(void **state)
{
    fixture *f = *state;
    bc_msg_upload m;
    uint8_t *content = staged_manifest(f, 2, &m);
    for (uint64_t off = SIZE; off > 0; off -= CHUNK) {
        assert_int_equal(put_chunk(f, content, off - CHUNK, CHUNK, NULL), BC_OK);
        bc_staging_status st = status_of(f, DEV, REC);
        assert_int_equal(st.ranges, 1); /* adjacent ranges merge */
        assert_int_equal(st.received, SIZE - off + CHUNK);
        assert_int_equal(st.first_missing, off - CHUNK == 0 ? SIZE : 0);
    }
    sync_ok(f);
    assert_true(status_of(f, DEV, REC).complete);
    assert_data(f, DEV, REC, content, SIZE);
    free(content);
}

static void test_gaps_and_merges(void **state)
{
    fixture *f = *state;
    bc_msg_upload m;
    uint8_t *content = staged_manifest(f, 3, &m);
    /* [2000,3000) [5000,6000) [8000,9000) then one chunk spanning two gaps. */
    assert_int_equal(put_chunk(f, content, 2000, 1000, NULL), BC_OK);
    assert_int_equal(put_chunk(f, content, 5000, 1000, NULL), BC_OK);
    assert_int_equal(put_chunk(f, content, 8000, 1000, NULL), BC_OK);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_int_equal(st.ranges, 3);
    assert_int_equal(st.first_missing, 0);
    assert_int_equal(put_chunk(f, content, 2500, 6000, NULL), BC_OK); /* 2500..8500 */
    st = status_of(f, DEV, REC);
    assert_int_equal(st.ranges, 1);
    assert_int_equal(st.received, 7000);
    assert_int_equal(put_chunk(f, content, 0, 2000, NULL), BC_OK);
    assert_int_equal(put_chunk(f, content, 9000, 1000, NULL), BC_OK);
    st = status_of(f, DEV, REC);
    assert_true(st.complete);
    assert_int_equal(st.ranges, 1);
    sync_ok(f);
    assert_data(f, DEV, REC, content, SIZE);
    free(content);
}

static void test_duplicate(void **state)
{
    fixture *f = *state;
    uint8_t *content = bc_test_pattern(SIZE, 4);
    uint8_t *other = bc_test_pattern(SIZE, 5);
    char sha[BC_SHA256_HEX_LEN + 1];
    sha256_hex(content, SIZE, sha);
    bc_msg_upload m = manifest(DEV, REC, SIZE, sha);
    bool dup = false;
    assert_int_equal(put_manifest(f, &m, NULL), BC_OK);
    assert_int_equal(put_manifest(f, &m, &dup), BC_OK);
    assert_true(dup);

    assert_int_equal(put_chunk(f, content, 0, CHUNK, &dup), BC_OK);
    assert_false(dup);
    sync_ok(f);
    /* The same range again, with other bytes: a duplicate, nothing written. */
    assert_int_equal(put_chunk(f, other, 0, CHUNK, &dup), BC_OK);
    assert_true(dup);
    assert_int_equal(put_chunk(f, other, 100, 200, &dup), BC_OK);
    assert_true(dup);
    sync_ok(f);
    assert_data(f, DEV, REC, content, CHUNK);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_int_equal(st.received, CHUNK);
    assert_int_equal(st.updated_at, NOW); /* a duplicate is not news */

    /* Partly overlapping: written whole and merged. */
    assert_int_equal(put_chunk(f, content, CHUNK / 2, CHUNK, &dup), BC_OK);
    assert_false(dup);
    st = status_of(f, DEV, REC);
    assert_int_equal(st.ranges, 1);
    assert_int_equal(st.received, CHUNK + CHUNK / 2);
    sync_ok(f);
    assert_data(f, DEV, REC, content, CHUNK + CHUNK / 2);
    free(content);
    free(other);
}

static void test_chunks_before_manifest(void **state)
{
    fixture *f = *state;
    uint8_t *content = bc_test_pattern(SIZE + 2 * CHUNK, 6);
    char sha[BC_SHA256_HEX_LEN + 1];
    sha256_hex(content, SIZE, sha);

    bc_staging_status st;
    assert_int_equal(bc_staging_status_of(f->s, DEV, REC, &st, NULL), BC_ERR_NOT_FOUND);
    put_chunks(f, content, 0, SIZE);
    /* Past the size the manifest will have: unknown yet, so accepted. */
    assert_int_equal(put_chunk(f, content, SIZE + CHUNK, CHUNK, NULL), BC_OK);
    sync_ok(f);
    st = status_of(f, DEV, REC);
    assert_false(st.has_manifest);
    assert_false(st.complete);
    assert_int_equal(st.ranges, 2);
    assert_int_equal(st.received, SIZE + CHUNK);
    assert_int_equal(st.first_missing, SIZE);

    bc_msg_upload m = manifest(DEV, REC, SIZE, sha);
    bool dup = true;
    assert_int_equal(put_manifest(f, &m, &dup), BC_OK);
    assert_false(dup);
    st = status_of(f, DEV, REC);
    assert_true(st.has_manifest);
    assert_true(st.complete);
    assert_int_equal(st.ranges, 1);
    assert_int_equal(st.received, SIZE);
    /* The bytes beyond the size are cut: the file is exactly the recording. */
    assert_data(f, DEV, REC, content, SIZE);
    reopen(f, 8);
    st = status_of(f, DEV, REC);
    assert_true(st.complete);
    assert_int_equal(st.received, SIZE);
    free(content);
}

static void test_manifest_change(void **state)
{
    fixture *f = *state;
    bc_msg_upload m;
    uint8_t *content = staged_manifest(f, 7, &m);
    put_chunks(f, content, 0, SIZE / 2);
    sync_ok(f);

    /* Fields outside (size, sha256, key id, chunk_size, recorded_at): same. */
    bool dup = false;
    bc_msg_upload same = m;
    same.ts += 5000;
    same.duration_ms += 1;
    assert_int_equal(put_manifest(f, &same, &dup), BC_OK);
    assert_true(dup);
    assert_int_equal(status_of(f, DEV, REC).received, SIZE / 2);

    /* Every field that defines the file drops what was received. */
    bc_msg_upload changes[5];
    for (int i = 0; i < 5; i++)
        changes[i] = m;
    changes[0].sha256[0] = changes[0].sha256[0] == 'a' ? 'b' : 'a';
    changes[1].size = SIZE - 1;
    snprintf(changes[2].key_id, sizeof(changes[2].key_id), "fedcba9876543210");
    changes[3].chunk_size = CHUNK * 2;
    changes[4].recorded_at += 1;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(put_manifest(f, &m, NULL), BC_OK);
        put_chunks(f, content, 0, SIZE / 2);
        assert_int_equal(status_of(f, DEV, REC).received, SIZE / 2);
        assert_int_equal(put_manifest(f, &changes[i], &dup), BC_OK);
        assert_false(dup);
        bc_staging_status st = status_of(f, DEV, REC);
        assert_int_equal(st.received, 0);
        assert_int_equal(st.ranges, 0);
        assert_int_equal(st.manifest.size, changes[i].size);
        assert_string_equal(st.manifest.sha256, changes[i].sha256);
    }
    /* Durable at once, and the old bytes are gone from the data file. */
    reopen(f, 8);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_true(st.has_manifest);
    assert_int_equal(st.manifest.recorded_at, m.recorded_at + 1);
    assert_int_equal(st.received, 0);
    assert_data(f, DEV, REC, content, 0);
    free(content);
}

static void test_chunk_past_size(void **state)
{
    fixture *f = *state;
    uint8_t *content = bc_test_pattern(SIZE + CHUNK, 8);
    char sha[BC_SHA256_HEX_LEN + 1];
    sha256_hex(content, SIZE, sha);
    bc_msg_upload m = manifest(DEV, REC, SIZE, sha);
    assert_int_equal(put_manifest(f, &m, NULL), BC_OK);
    bc_error err;
    assert_int_equal(put_chunk(f, content, SIZE - 100, 200, NULL), BC_ERR_INVAL);
    assert_int_equal(put_chunk(f, content, SIZE, 1, NULL), BC_ERR_INVAL);
    assert_int_equal(put_chunk(f, content, SIZE - 100, 100, NULL), BC_OK);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_int_equal(st.received, 100);
    assert_int_equal(st.ranges, 1);

    /* Malformed chunks never reach the disk. */
    bc_msg_upload c;
    memset(&c, 0, sizeof(c));
    snprintf(c.device, sizeof(c.device), DEV);
    snprintf(c.recording_id, sizeof(c.recording_id), REC);
    c.kind = BC_UPLOAD_CHUNK;
    c.data = content;
    c.data_len = 0;
    assert_int_equal(bc_staging_put_chunk(f->s, &c, NOW, NULL, &err), BC_ERR_INVAL);
    c.data_len = 10;
    c.offset = -1;
    assert_int_equal(bc_staging_put_chunk(f->s, &c, NOW, NULL, &err), BC_ERR_INVAL);
    c.offset = 0;
    c.kind = BC_UPLOAD_MANIFEST;
    assert_int_equal(bc_staging_put_chunk(f->s, &c, NOW, NULL, &err), BC_ERR_INVAL);
    assert_int_equal(bc_staging_put_manifest(f->s, &c, NOW, NULL, &err), BC_ERR_INVAL);
    assert_int_equal(status_of(f, DEV, REC).received, 100);
    free(content);
}

static void test_ranges_cap(void **state)
{
    fixture *f = *state;
    const uint64_t size = 1u << 20;
    uint8_t *content = bc_test_pattern(size, 9);
    char sha[BC_SHA256_HEX_LEN + 1];
    sha256_hex(content, size, sha);
    bc_msg_upload m = manifest(DEV, REC, size, sha);
    assert_int_equal(put_manifest(f, &m, NULL), BC_OK);
    /* One byte every other byte: BC_STAGING_RANGES_MAX separate ranges. */
    for (uint64_t i = 0; i < BC_STAGING_RANGES_MAX; i++)
        assert_int_equal(put_chunk(f, content, 2 * i, 1, NULL), BC_OK);
    assert_int_equal(status_of(f, DEV, REC).ranges, BC_STAGING_RANGES_MAX);
    const uint64_t end = 2 * BC_STAGING_RANGES_MAX; /* past the last range, not touching */
    bc_error err;
    bc_msg_upload c;
    memset(&c, 0, sizeof(c));
    snprintf(c.device, sizeof(c.device), DEV);
    snprintf(c.recording_id, sizeof(c.recording_id), REC);
    c.kind = BC_UPLOAD_CHUNK;
    c.offset = (int64_t)end + 200;
    c.data = content + end + 200;
    c.data_len = 5;
    assert_int_equal(bc_staging_put_chunk(f->s, &c, NOW, NULL, &err), BC_ERR_TOO_BIG);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_int_equal(st.ranges, BC_STAGING_RANGES_MAX);
    assert_int_equal(st.received, BC_STAGING_RANGES_MAX);

    /* Filling a gap merges two ranges; extending the last one adds none. */
    assert_int_equal(put_chunk(f, content, 1, 1, NULL), BC_OK);
    assert_int_equal(status_of(f, DEV, REC).ranges, BC_STAGING_RANGES_MAX - 1);
    assert_int_equal(put_chunk(f, content, end - 1, 100, NULL), BC_OK);
    assert_int_equal(status_of(f, DEV, REC).ranges, BC_STAGING_RANGES_MAX - 1);
    /* Now there is room for one more separate range. */
    assert_int_equal(bc_staging_put_chunk(f->s, &c, NOW, NULL, &err), BC_OK);
    assert_int_equal(status_of(f, DEV, REC).ranges, BC_STAGING_RANGES_MAX);
    sync_ok(f);

    reopen(f, 8);
    st = status_of(f, DEV, REC);
    assert_int_equal(st.ranges, BC_STAGING_RANGES_MAX);
    assert_int_equal(st.received, BC_STAGING_RANGES_MAX + 1 + 100 + 5);
    assert_int_equal(st.first_missing, 3);
    free(content);
}

static void test_crash_keeps_only_synced(void **state)
{
    fixture *f = *state;
    bc_msg_upload m;
    uint8_t *content = staged_manifest(f, 10, &m);
    put_chunks(f, content, 0, SIZE / 2);
    sync_ok(f);
    put_chunks(f, content, SIZE / 2, SIZE);
    assert_true(status_of(f, DEV, REC).complete);

    /* "Crash": close without sync. */
    reopen(f, 8);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_true(st.has_manifest);
    assert_false(st.complete);
    assert_int_equal(st.received, SIZE / 2);
    assert_int_equal(st.first_missing, SIZE / 2);
    assert_int_equal(st.updated_at, NOW + (int64_t)(SIZE / 2 - CHUNK));

    /* The lost half comes again and completes the recording. */
    bool dup = true;
    for (uint64_t off = SIZE / 2; off < SIZE; off += CHUNK) {
        assert_int_equal(put_chunk(f, content, off, CHUNK, &dup), BC_OK);
        assert_false(dup);
    }
    sync_ok(f);
    assert_true(status_of(f, DEV, REC).complete);
    assert_data(f, DEV, REC, content, SIZE);
    free(content);
}

static void test_reset_from(void **state)
{
    fixture *f = *state;
    bc_msg_upload m;
    uint8_t *content = staged_manifest(f, 11, &m);
    put_chunks(f, content, 0, SIZE);
    sync_ok(f);

    bc_error err;
    assert_int_equal(bc_staging_reset_from(f->s, DEV, REC, 3500, &err), BC_OK);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_false(st.complete);
    assert_int_equal(st.received, 3500);
    assert_int_equal(st.first_missing, 3500);
    assert_int_equal(st.attempts, 1);
    assert_data(f, DEV, REC, content, 3500); /* the rest is cut from the file */

    reopen(f, 8); /* durable without a sync */
    st = status_of(f, DEV, REC);
    assert_int_equal(st.received, 3500);
    assert_int_equal(st.attempts, 1);

    /* The resent bytes are written again, not taken as duplicates. */
    bool dup = true;
    assert_int_equal(put_chunk(f, content, 3000, 1000, &dup), BC_OK);
    assert_false(dup);
    assert_int_equal(status_of(f, DEV, REC).received, 4000);

    assert_int_equal(bc_staging_reset_from(f->s, DEV, REC, 0, &err), BC_OK);
    st = status_of(f, DEV, REC);
    assert_int_equal(st.received, 0);
    assert_int_equal(st.ranges, 0);
    assert_int_equal(st.attempts, 2);
    assert_true(st.has_manifest);
    assert_data(f, DEV, REC, content, 0);

    assert_int_equal(bc_staging_reset_from(f->s, DEV, "rec-none", 0, &err), BC_ERR_NOT_FOUND);
    free(content);
}

static void test_remove(void **state)
{
    fixture *f = *state;
    uint8_t *content = bc_test_pattern(SIZE, 12);
    char sha[BC_SHA256_HEX_LEN + 1];
    sha256_hex(content, SIZE, sha);
    bc_msg_upload a = manifest(DEV, "rec-a", SIZE, sha);
    bc_msg_upload b = manifest(DEV, "rec-b", SIZE, sha);
    assert_int_equal(put_manifest(f, &a, NULL), BC_OK);
    assert_int_equal(put_manifest(f, &b, NULL), BC_OK);
    assert_int_equal(put_chunk_of(f, DEV, "rec-a", content, 0, CHUNK, NULL), BC_OK);
    assert_int_equal(put_chunk_of(f, DEV, "rec-b", content, 0, CHUNK, NULL), BC_OK);
    sync_ok(f);
    /* An unsynced chunk, and a leftover temporary file, go too. */
    assert_int_equal(put_chunk_of(f, DEV, "rec-a", content, CHUNK, CHUNK, NULL), BC_OK);
    char dir[256], path[512];
    rec_dir(f, DEV, "rec-a", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/ranges.json.abc123.tmp", dir);
    bc_test_write_file(path, "x");

    bc_error err;
    assert_int_equal(bc_staging_remove(f->s, DEV, "rec-a", &err), BC_OK);
    assert_false(bc_test_exists(NULL, dir));
    bc_staging_status st;
    assert_int_equal(bc_staging_status_of(f->s, DEV, "rec-a", &st, &err), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_staging_remove(f->s, DEV, "rec-a", &err), BC_OK); /* again: fine */
    assert_int_equal(status_of(f, DEV, "rec-b").received, CHUNK);

    /* The device's directory goes with its last recording. */
    char dev_dir[256];
    snprintf(dev_dir, sizeof(dev_dir), "%s/%s", f->dir, DEV);
    assert_true(bc_test_exists(NULL, dev_dir));
    assert_int_equal(bc_staging_remove(f->s, DEV, "rec-b", &err), BC_OK);
    assert_false(bc_test_exists(NULL, dev_dir));
    assert_int_equal(bc_test_count_entries(f->dir), 0);
    sync_ok(f); /* nothing left to sync, nothing reported lost */

    /* Staged again from scratch after a removal. */
    assert_int_equal(put_chunk_of(f, DEV, "rec-a", content, CHUNK, CHUNK, NULL), BC_OK);
    assert_int_equal(status_of(f, DEV, "rec-a").received, CHUNK);
    assert_int_equal(status_of(f, DEV, "rec-a").first_missing, 0);
    free(content);
}

typedef struct seen {
    char names[8][128];
    size_t count;
    size_t stop_after;
} seen;

static bool collect(const char *device, const char *recording_id, void *userdata)
{
    seen *s = userdata;
    assert_true(s->count < 8);
    snprintf(s->names[s->count++], sizeof(s->names[0]), "%s/%s", device, recording_id);
    return s->stop_after == 0 || s->count < s->stop_after;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_list(void **state)
{
    fixture *f = *state;
    uint8_t *content = bc_test_pattern(CHUNK, 13);
    seen s = {0};
    bc_error err;
    assert_int_equal(bc_staging_list(f->s, collect, &s, &err), BC_OK);
    assert_int_equal(s.count, 0);

    assert_int_equal(put_chunk_of(f, "cam-1", "r1", content, 0, CHUNK, NULL), BC_OK);
    assert_int_equal(put_chunk_of(f, "cam-1", "r2", content, 0, CHUNK, NULL), BC_OK);
    assert_int_equal(put_chunk_of(f, "cam-2", "r1", content, 0, CHUNK, NULL), BC_OK);
    sync_ok(f);
    /* What this module would never make is not listed. */
    char path[256];
    snprintf(path, sizeof(path), "%s/NotADevice", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/cam-1/bad.name", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/cam-2/afile", f->dir);
    bc_test_write_file(path, "x");

    assert_int_equal(bc_staging_list(f->s, collect, &s, &err), BC_OK);
    assert_int_equal(s.count, 3);
    qsort(s.names, s.count, sizeof(s.names[0]), cmp_name);
    assert_string_equal(s.names[0], "cam-1/r1");
    assert_string_equal(s.names[1], "cam-1/r2");
    assert_string_equal(s.names[2], "cam-2/r1");

    seen one = {.stop_after = 1};
    assert_int_equal(bc_staging_list(f->s, collect, &one, &err), BC_OK);
    assert_int_equal(one.count, 1);
    free(content);
}

static size_t open_fds(void)
{
    return bc_test_count_entries("/proc/self/fd");
}

static void test_max_open_one_interleaved(void **state)
{
    fixture *f = *state;
    reopen(f, 1);
    uint8_t *ca = bc_test_pattern(SIZE, 14);
    uint8_t *cb = bc_test_pattern(SIZE, 15);
    char sha_a[BC_SHA256_HEX_LEN + 1], sha_b[BC_SHA256_HEX_LEN + 1];
    sha256_hex(ca, SIZE, sha_a);
    sha256_hex(cb, SIZE, sha_b);
    bc_msg_upload ma = manifest("cam-a", REC, SIZE, sha_a);
    bc_msg_upload mb = manifest("cam-b", REC, SIZE, sha_b);
    size_t base = open_fds();
    assert_int_equal(put_manifest(f, &ma, NULL), BC_OK);
    assert_int_equal(put_manifest(f, &mb, NULL), BC_OK);
    for (uint64_t off = 0; off < SIZE; off += CHUNK) {
        /* a forward, b backward, so each write switches the open file */
        assert_int_equal(put_chunk_of(f, "cam-a", REC, ca, off, CHUNK, NULL), BC_OK);
        assert_true(open_fds() <= base + 1);
        assert_int_equal(put_chunk_of(f, "cam-b", REC, cb, SIZE - CHUNK - off, CHUNK, NULL), BC_OK);
        assert_true(open_fds() <= base + 1);
        if (off == SIZE / 2)
            sync_ok(f);
    }
    sync_ok(f);
    assert_true(status_of(f, "cam-a", REC).complete);
    assert_true(status_of(f, "cam-b", REC).complete);
    assert_data(f, "cam-a", REC, ca, SIZE);
    assert_data(f, "cam-b", REC, cb, SIZE);

    /* An evicted recording's unsynced chunks are still synced by the next sync. */
    assert_int_equal(bc_staging_reset_from(f->s, "cam-a", REC, 0, NULL), BC_OK);
    assert_int_equal(bc_staging_reset_from(f->s, "cam-b", REC, 0, NULL), BC_OK);
    for (uint64_t off = 0; off < SIZE; off += CHUNK) {
        assert_int_equal(put_chunk_of(f, "cam-a", REC, ca, off, CHUNK, NULL), BC_OK);
        assert_int_equal(put_chunk_of(f, "cam-b", REC, cb, off, CHUNK, NULL), BC_OK);
    }
    sync_ok(f);
    reopen(f, 1);
    assert_true(status_of(f, "cam-a", REC).complete);
    assert_true(status_of(f, "cam-b", REC).complete);
    assert_data(f, "cam-a", REC, ca, SIZE);
    assert_data(f, "cam-b", REC, cb, SIZE);
    free(ca);
    free(cb);
}

static long max_rss_kib(void)
{
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

static void test_large_sparse(void **state)
{
    fixture *f = *state;
    const uint64_t size = 1ull << 30;
    const size_t chunk = BC_CHUNK_MAX;
    uint8_t *block = bc_test_pattern(chunk, 16);
    char sha[BC_SHA256_HEX_LEN + 1];
    memset(sha, 'a', BC_SHA256_HEX_LEN);
    sha[BC_SHA256_HEX_LEN] = '\0';
    long before = max_rss_kib();

    bc_msg_upload m = manifest(DEV, REC, size, sha);
    m.chunk_size = (int64_t)chunk;
    assert_int_equal(put_manifest(f, &m, NULL), BC_OK);
    const uint64_t offsets[] = {0, size / 2, size - chunk};
    for (size_t i = 0; i < 3; i++) {
        bc_msg_upload c;
        memset(&c, 0, sizeof(c));
        snprintf(c.device, sizeof(c.device), DEV);
        snprintf(c.recording_id, sizeof(c.recording_id), REC);
        c.kind = BC_UPLOAD_CHUNK;
        c.offset = (int64_t)offsets[i];
        c.data = block;
        c.data_len = chunk;
        assert_int_equal(bc_staging_put_chunk(f->s, &c, NOW, NULL, NULL), BC_OK);
    }
    sync_ok(f);
    bc_staging_status st = status_of(f, DEV, REC);
    assert_int_equal(st.ranges, 3);
    assert_int_equal(st.received, 3 * chunk);
    assert_int_equal(st.first_missing, chunk);
    assert_false(st.complete);
    reopen(f, 8);
    assert_int_equal(status_of(f, DEV, REC).received, 3 * chunk);

    /* Neither memory nor disk grew with the 1 GiB size. */
    long grown = max_rss_kib() - before;
    assert_true(grown < 64 * 1024);
    char path[512];
    assert_int_equal(bc_staging_data_path(f->s, DEV, REC, path, sizeof(path), NULL), BC_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, size);
    assert_true((uint64_t)sb.st_blocks * 512 < 16 * chunk);

    assert_int_equal(bc_staging_reset_from(f->s, DEV, REC, size / 2, NULL), BC_OK);
    assert_int_equal(status_of(f, DEV, REC).received, chunk);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, size / 2);
    free(block);
}

static void test_invalid_ids(void **state)
{
    fixture *f = *state;
    uint8_t *content = bc_test_pattern(CHUNK, 17);
    char sha[BC_SHA256_HEX_LEN + 1];
    sha256_hex(content, CHUNK, sha);
    const char *bad_devices[] = {"..", "../x", "CAM-1", "", "a/b", "-cam"};
    const char *bad_recs[] = {"..", "../../etc", "a/b", "", "a.b"};
    bc_error err;
    for (size_t i = 0; i < sizeof(bad_devices) / sizeof(bad_devices[0]); i++) {
        bc_msg_upload m = manifest("cam-1", REC, CHUNK, sha);
        snprintf(m.device, sizeof(m.device), "%s", bad_devices[i]);
        assert_int_equal(bc_staging_put_manifest(f->s, &m, NOW, NULL, &err), BC_ERR_INVAL);
        assert_int_equal(put_chunk_of(f, bad_devices[i], REC, content, 0, CHUNK, NULL),
                         BC_ERR_INVAL);
        bc_staging_status st;
        assert_int_equal(bc_staging_status_of(f->s, bad_devices[i], REC, &st, &err), BC_ERR_INVAL);
        assert_int_equal(bc_staging_remove(f->s, bad_devices[i], REC, &err), BC_ERR_INVAL);
    }
    for (size_t i = 0; i < sizeof(bad_recs) / sizeof(bad_recs[0]); i++) {
        assert_int_equal(put_chunk_of(f, DEV, bad_recs[i], content, 0, CHUNK, NULL), BC_ERR_INVAL);
        char path[512];
        assert_int_equal(bc_staging_data_path(f->s, DEV, bad_recs[i], path, sizeof(path), &err),
                         BC_ERR_INVAL);
        assert_int_equal(bc_staging_reset_from(f->s, DEV, bad_recs[i], 0, &err), BC_ERR_INVAL);
    }
    assert_int_equal(bc_test_count_entries(f->dir), 0);
    free(content);
}

static void test_open_cleans_and_refuses(void **state)
{
    fixture *f = *state;
    uint8_t *content = bc_test_pattern(CHUNK, 18);
    assert_int_equal(put_chunk(f, content, 0, CHUNK, NULL), BC_OK);
    sync_ok(f);
    char dir[256], path[512];
    rec_dir(f, DEV, REC, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/manifest.json.Ab12Cd.tmp", dir);
    bc_test_write_file(path, "{");
    assert_int_equal(bc_test_count_entries(dir), 3);
    reopen(f, 8);
    assert_false(bc_test_exists(NULL, path));
    assert_int_equal(bc_test_count_entries(dir), 2);
    assert_int_equal(status_of(f, DEV, REC).received, CHUNK);

    /* A damaged ranges.json is "nothing received", never a stuck recording. */
    snprintf(path, sizeof(path), "%s/%s", dir, BC_STAGING_RANGES_FILE);
    bc_test_write_file(path, "{\"v\":1,\"ranges\":[[5,2]],\"attempts\":0,\"updated_at\":0}");
    reopen(f, 8);
    assert_int_equal(status_of(f, DEV, REC).received, 0);

    bc_staging *s = NULL;
    bc_error err;
    assert_int_equal(bc_staging_open(f->dir, 0, &s, &err), BC_ERR_INVAL);
    assert_null(s);
    snprintf(path, sizeof(path), "%s/afile", f->root);
    bc_test_write_file(path, "x");
    assert_int_equal(bc_staging_open(path, 4, &s, &err), BC_ERR_IO);
    assert_null(s);
    free(content);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reverse_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gaps_and_merges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks_before_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_past_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ranges_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_keeps_only_synced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_open_one_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_sparse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_cleans_and_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
