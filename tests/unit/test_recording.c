/* Unit tests for proto/recording: round trips of every shape, the format
 * checked independently against proto/README.md, a one-byte change at every
 * offset and a cut at every offset refused, reordering and duplication
 * refused, the wrong key refused, and crash sealing (abort, seal, read the
 * prefix, idempotence, torn tails, forged trailers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "proto/recording.h"
#include "proto/sign.h"
#include "test_util.h"

#define SEG 32 /* small segments: every offset of a multi-segment file is cheap to flip */

typedef struct fixture {
    char dir[64];
    EVP_PKEY *vault;
    EVP_PKEY *vault_pub;
    EVP_PKEY *other;
    int counter;
} fixture;

typedef struct bytes {
    uint8_t *p;
    size_t len;
} bytes;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    if (bc_test_tempdir(f->dir, sizeof(f->dir), "recording") != BC_OK ||
        bc_test_x25519_pair(&f->vault, &f->vault_pub) != BC_OK)
        return -1;
    f->other = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (f->other == NULL)
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
    EVP_PKEY_free(f->other);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static void new_path(fixture *f, char *out, size_t size)
{
    snprintf(out, size, "%s/rec-%d.bcrec", f->dir, f->counter++);
}

static void sidecar_of(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s%s", path, BC_RECORDING_SEAL_SUFFIX);
}

static bytes slurp(const char *path)
{
    bytes b = {0};
    b.p = bc_test_read_file(path, &b.len);
    return b;
}

static int contains(const bytes *hay, const uint8_t *needle, size_t n)
{
    for (size_t i = 0; i + n <= hay->len; i++)
        if (memcmp(hay->p + i, needle, n) == 0)
            return 1;
    return 0;
}

/* Writes data in pieces of the sizes in steps (cycled; NULL = one piece). */
static void write_recording(fixture *f, const char *path, const uint8_t *data, size_t len,
                            uint32_t seg, const size_t *steps, size_t nsteps,
                            bc_recording_info *info)
{
    bc_recording_writer *w = NULL;
    bc_error err = {{0}};
    assert_int_equal(bc_recording_writer_open(path, f->vault_pub, NULL, "rec-1", "cam-1",
                                              1700000000123, seg, &w, &err),
                     BC_OK);
    size_t off = 0;
    for (size_t i = 0; off < len; i++) {
        size_t n = steps == NULL ? len : steps[i % nsteps];
        if (n > len - off)
            n = len - off;
        assert_int_equal(bc_recording_writer_write(w, data + off, n), BC_OK);
        off += n;
    }
    assert_int_equal(bc_recording_writer_close(w, info), BC_OK);
}

/* Reads the whole recording; returns the status and the plaintext. */
static bc_status read_all(const char *path, EVP_PKEY *key, bytes *out, bc_recording_info *info)
{
    bc_recording_reader *r = NULL;
    bc_error err = {{0}};
    out->p = NULL;
    out->len = 0;
    bc_status rc = bc_recording_reader_open(path, key, &r, &err);
    if (rc != BC_OK)
        return rc;
    size_t cap = bc_recording_reader_header(r)->segment_size;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    int done = 0;
    while (!done) {
        size_t n = 0;
        rc = bc_recording_reader_next(r, buf, cap, &n, &done, &err);
        if (rc != BC_OK)
            break;
        assert_true(n <= cap);
        uint8_t *p = realloc(out->p, out->len + n + 1);
        assert_non_null(p);
        out->p = p;
        if (n > 0)
            memcpy(out->p + out->len, buf, n);
        out->len += n;
    }
    if (rc == BC_OK && info != NULL)
        assert_int_equal(bc_recording_reader_info(r, info), BC_OK);
    if (rc != BC_OK)
        assert_true(err.text[0] != '\0'); /* every failure says what was wrong */
    free(buf);
    bc_recording_reader_close(r);
    return rc;
}

static void sha256_of(const bytes *b, uint8_t out[32])
{
    assert_int_equal(EVP_Digest(b->p, b->len, out, NULL, EVP_sha256(), NULL), 1);
}

/* Offsets of the records after the header: offs[i] is record i's length field. */
static size_t record_offsets(const bytes *b, size_t *offs, size_t max)
{
    uint32_t body =
        (uint32_t)b->p[8] << 24 | (uint32_t)b->p[9] << 16 | (uint32_t)b->p[10] << 8 | b->p[11];
    size_t pos = 12 + body, n = 0;
    while (pos + 4 <= b->len && n < max) {
        uint32_t len = (uint32_t)b->p[pos] << 24 | (uint32_t)b->p[pos + 1] << 16 |
                       (uint32_t)b->p[pos + 2] << 8 | b->p[pos + 3];
        if (len == 0xFFFFFFFFu)
            break;
        offs[n++] = pos;
        pos += 4 + len;
    }
    offs[n] = pos;
    return n;
}

/* ---- round trips ------------------------------------------------------- */

static void round_trip(fixture *f, size_t len, uint32_t seg, const size_t *steps, size_t nsteps,
                       uint64_t expect_segments)
{
    char path[256], side[300];
    new_path(f, path, sizeof(path));
    sidecar_of(path, side, sizeof(side));
    uint8_t *data = bc_test_pattern(len, (unsigned)len);
    bc_recording_info winfo, rinfo;
    write_recording(f, path, data, len, seg, steps, nsteps, &winfo);
    assert_false(bc_test_exists(NULL, side));

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(winfo.size, (uint64_t)st.st_size);
    assert_int_equal(winfo.segments, expect_segments);
    assert_int_equal(winfo.plaintext_size, len);
    assert_int_equal(winfo.interrupted, 0);

    bytes file = slurp(path);
    uint8_t digest[32];
    sha256_of(&file, digest);
    assert_memory_equal(winfo.sha256, digest, 32); /* hashed while writing = hash of the file */

    bytes plain;
    assert_int_equal(read_all(path, f->vault, &plain, &rinfo), BC_OK);
    assert_int_equal(plain.len, len);
    if (len > 0)
        assert_memory_equal(plain.p, data, len);
    assert_int_equal(rinfo.size, winfo.size);
    assert_int_equal(rinfo.segments, expect_segments);
    assert_int_equal(rinfo.plaintext_size, len);
    assert_int_equal(rinfo.interrupted, 0);
    assert_memory_equal(rinfo.sha256, digest, 32);
    assert_int_equal(bc_recording_verify(path, f->vault, NULL), BC_OK);
    if (len >= 64) /* the plaintext is nowhere in the file */
        assert_false(contains(&file, data, 64));
    free(plain.p);
    free(file.p);
    free(data);
}

static void test_round_trips(void **state)
{
    fixture *f = *state;
    round_trip(f, 0, SEG, NULL, 0, 1);            /* empty: one empty last segment */
    round_trip(f, 1, SEG, NULL, 0, 1);            /* one byte */
    round_trip(f, SEG, SEG, NULL, 0, 2);          /* exactly one segment + empty last */
    round_trip(f, 5 * SEG + 17, SEG, NULL, 0, 6); /* many segments and a partial */
    static const size_t ones[] = {1};
    round_trip(f, 3 * SEG + 5, SEG, ones, 1, 4); /* byte by byte */
    static const size_t odd[] = {1, 7, 4099, 65537, 123457, 13, 65535, 65536, 300001};
    size_t big = 5 * 1000 * 1000 + 3;
    round_trip(f, big, 0, odd, sizeof(odd) / sizeof(odd[0]),
               big / BC_RECORDING_SEGMENT_DEFAULT + 1); /* 5 MB, default 64 KiB segments */
}

static void test_header_info(void **state)
{
    fixture *f = *state;
    char path[256];
    new_path(f, path, sizeof(path));
    uint8_t one = 7;
    write_recording(f, path, &one, 1, 1000, NULL, 0, NULL);
    bc_recording_header h;
    bc_error err = {{0}};
    assert_int_equal(bc_recording_info_read(path, &h, &err), BC_OK);
    char id[BC_KEY_ID_LEN + 1];
    assert_int_equal(bc_key_id(f->vault, id), BC_OK);
    assert_string_equal(h.key_id, id);
    assert_string_equal(h.recording_id, "rec-1");
    assert_string_equal(h.device, "cam-1");
    assert_int_equal(h.created_at_ms, 1700000000123);
    assert_int_equal(h.segment_size, 1000);

    /* Not a recording; another version; cut inside the header; missing. */
    bytes file = slurp(path);
    char bad[256];
    new_path(f, bad, sizeof(bad));
    bc_test_write_bytes(bad, (const uint8_t *)"hello, world, this is text", 26);
    assert_int_equal(bc_recording_info_read(bad, &h, &err), BC_ERR_PARSE);
    file.p[7] = 2;
    new_path(f, bad, sizeof(bad));
    bc_test_write_bytes(bad, file.p, file.len);
    assert_int_equal(bc_recording_info_read(bad, &h, &err), BC_ERR_VERSION);
    file.p[7] = 1;
    for (size_t cut = 0; cut < 60; cut++) {
        new_path(f, bad, sizeof(bad));
        bc_test_write_bytes(bad, file.p, cut);
        assert_int_equal(bc_recording_info_read(bad, &h, &err), BC_ERR_TRUNCATED);
    }
    assert_int_equal(bc_recording_info_read("/nonexistent/x", &h, &err), BC_ERR_IO);
    free(file.p);
}

static void test_writer_arguments(void **state)
{
    fixture *f = *state;
    char path[256];
    new_path(f, path, sizeof(path));
    bc_recording_writer *w = NULL;
    bc_error err = {{0}};
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    assert_int_equal(bc_recording_writer_open(path, ed, NULL, "r", "cam-1", 0, 0, &w, &err),
                     BC_ERR_INVAL);
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "r/1", "cam-1", 0, 0, &w, &err),
        BC_ERR_INVAL);
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "r", "CAM-1", 0, 0, &w, &err),
        BC_ERR_INVAL);
    assert_int_equal(bc_recording_writer_open(path, f->vault_pub, NULL, "r", "cam-1", 0,
                                              BC_RECORDING_SEGMENT_MIN - 1, &w, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_recording_writer_open(path, f->vault_pub, NULL, "r", "cam-1", 0,
                                              BC_RECORDING_SEGMENT_MAX + 1, &w, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_recording_writer_open(path, f->vault_pub, "0123456789abcdef", "r", "cam-1",
                                              0, 0, &w, &err),
                     BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "key id"));
    assert_null(w);
    assert_false(bc_test_exists(NULL, path)); /* nothing was created by a refused open */

    char id[BC_KEY_ID_LEN + 1];
    assert_int_equal(bc_key_id(f->vault_pub, id), BC_OK);
    assert_int_equal(bc_recording_writer_open(path, f->vault_pub, id, "r", "cam-1", 0, 0, &w, &err),
                     BC_OK);
    bc_recording_writer *w2 = NULL;
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, id, "r", "cam-1", 0, 0, &w2, &err),
        BC_ERR_EXISTS);
    assert_null(w2);
    assert_string_equal(bc_recording_writer_error(w), "");
    assert_int_equal(bc_recording_writer_close(w, NULL), BC_OK);
    EVP_PKEY_free(ed);
}

/* ---- the format, checked independently of recording.c ----------------- */

static void hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                 const char *info, uint8_t out[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    assert_non_null(kdf);
    EVP_KDF_CTX *k = EVP_KDF_CTX_new(kdf);
    assert_non_null(k);
    OSSL_PARAM params[5];
    int n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    if (salt != NULL)
        params[n++] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    params[n++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    params[n] = OSSL_PARAM_construct_end();
    assert_int_equal(EVP_KDF_derive(k, out, 32, params), 1);
    EVP_KDF_CTX_free(k);
    EVP_KDF_free(kdf);
}

static int gcm_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *aad,
                    size_t aad_len, const uint8_t *ct, size_t len, const uint8_t *tag, uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok = 0;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
        EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1 &&
        (len == 0 || EVP_DecryptUpdate(c, out, &n, ct, (int)len) == 1) &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) == 1 &&
        EVP_DecryptFinal_ex(c, out + n, &n) == 1)
        ok = 1;
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* Unwraps the data key following proto/README.md, byte by byte. */
static void spec_unwrap(fixture *f, const bytes *b, uint8_t data_key[32], uint8_t hhash[32],
                        size_t *header_len)
{
    assert_memory_equal(b->p, "BCREC\0\0\1", 8);
    size_t body = (size_t)b->p[8] << 24 | (size_t)b->p[9] << 16 | (size_t)b->p[10] << 8 | b->p[11];
    const uint8_t *p = b->p + 12 + 4; /* skip segment_size */
    for (int i = 0; i < 3; i++)
        p += 1 + p[0]; /* key_id, recording_id, device */
    const uint8_t *rid = b->p + 12 + 4 + 1 + b->p[16] + 1;
    size_t rid_len = rid[-1];
    p += 8; /* created_at */
    const uint8_t *eph = p, *nonce = p + 32, *wrapped = p + 44;
    assert_int_equal((size_t)(wrapped + 48 - b->p), 12 + body);
    *header_len = 12 + body;

    EVP_PKEY *eph_key = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, eph, 32);
    assert_non_null(eph_key);
    EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new_from_pkey(NULL, f->vault, NULL);
    uint8_t shared[32];
    size_t slen = sizeof(shared);
    assert_int_equal(EVP_PKEY_derive_init(dc), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(dc, eph_key), 1);
    assert_int_equal(EVP_PKEY_derive(dc, shared, &slen), 1);
    uint8_t salt[64], kek[32];
    memcpy(salt, eph, 32);
    assert_int_equal(bc_key_raw_public(f->vault, salt + 32), BC_OK);
    hkdf(shared, 32, salt, 64, "bodycam/v1 wrap", kek);
    assert_true(gcm_open(kek, nonce, rid, rid_len, wrapped, 32, wrapped + 32, data_key));
    assert_int_equal(EVP_Digest(b->p, *header_len, hhash, NULL, EVP_sha256(), NULL), 1);
    EVP_PKEY_CTX_free(dc);
    EVP_PKEY_free(eph_key);
}

static void test_format_matches_spec(void **state)
{
    fixture *f = *state;
    char path[256], side[300];
    new_path(f, path, sizeof(path));
    sidecar_of(path, side, sizeof(side));
    uint8_t *data = bc_test_pattern(2 * SEG + 3, 42);
    bc_recording_writer *w = NULL;
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "rec-1", "cam-1", 5, SEG, &w, NULL),
        BC_OK);
    assert_int_equal(bc_recording_writer_write(w, data, 2 * SEG + 3), BC_OK);
    assert_int_equal(bc_recording_writer_flush(w), BC_OK);
    bytes sidecar = slurp(side); /* while the recording is open */
    assert_int_equal(bc_recording_writer_close(w, NULL), BC_OK);

    bytes b = slurp(path);
    uint8_t key[32], hh[32];
    size_t hlen = 0;
    spec_unwrap(f, &b, key, hh, &hlen);

    /* The data key is in neither the recording nor the sidecar; the
     * sidecar holds HKDF(data_key, "bodycam/v1 seal") instead. */
    assert_false(contains(&b, key, sizeof(key)));
    assert_false(contains(&sidecar, key, sizeof(key)));
    uint8_t seal_key[32];
    hkdf(key, 32, NULL, 0, "bodycam/v1 seal", seal_key);
    assert_true(contains(&sidecar, seal_key, sizeof(seal_key)));
    assert_false(contains(&b, seal_key, sizeof(seal_key)));

    /* Every segment opens with nonce 0^4 || u64 i and AAD H || u64 i || last. */
    size_t offs[8];
    size_t n = record_offsets(&b, offs, 7);
    assert_int_equal(n, 3);
    assert_int_equal(offs[n], b.len);
    uint8_t out[SEG];
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)b.p[offs[i] + 2] << 8 | b.p[offs[i] + 3];
        uint8_t nonce[12] = {0}, aad[41];
        nonce[11] = (uint8_t)i;
        memcpy(aad, hh, 32);
        memset(aad + 32, 0, 8);
        aad[39] = (uint8_t)i;
        aad[40] = i == n - 1;
        const uint8_t *ct = b.p + offs[i] + 4;
        assert_true(gcm_open(key, nonce, aad, 41, ct, len - 16, ct + len - 16, out));
        assert_memory_equal(out, data + i * SEG, len - 16);
        aad[40] ^= 1; /* the other last flag must not open it */
        assert_false(gcm_open(key, nonce, aad, 41, ct, len - 16, ct + len - 16, out));
    }
    free(b.p);
    free(sidecar.p);
    free(data);
}

/* ---- tampering --------------------------------------------------------- */

/* A small complete file (3 full segments + a short last) and a sealed one. */
static void make_small(fixture *f, char *complete, char *sealed, size_t size)
{
    uint8_t *data = bc_test_pattern(3 * SEG + 4, 9);
    new_path(f, complete, size);
    write_recording(f, complete, data, 3 * SEG + 4, SEG, NULL, 0, NULL);
    new_path(f, sealed, size);
    bc_recording_writer *w = NULL;
    assert_int_equal(
        bc_recording_writer_open(sealed, f->vault_pub, NULL, "rec-2", "cam-1", 1, SEG, &w, NULL),
        BC_OK);
    assert_int_equal(bc_recording_writer_write(w, data, 3 * SEG + 4), BC_OK);
    bc_recording_writer_abort(w);
    bc_recording_info info;
    assert_int_equal(bc_recording_seal(sealed, &info, NULL), BC_OK);
    assert_int_equal(info.segments, 3);
    free(data);
}

static void every_byte_flipped(fixture *f, const char *path)
{
    bytes b = slurp(path);
    char mut[256];
    new_path(f, mut, sizeof(mut));
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    for (size_t off = 0; off < b.len; off++) {
        for (size_t m = 0; m < sizeof(masks); m++) {
            b.p[off] ^= masks[m];
            bc_test_write_bytes(mut, b.p, b.len);
            bc_error err = {{0}};
            bc_status rc = bc_recording_verify(mut, f->vault, &err);
            if (rc == BC_OK)
                fail_msg("a changed byte at offset %zu (mask %02x) of %zu was accepted", off,
                         masks[m], b.len);
            assert_true(err.text[0] != '\0');
            b.p[off] ^= masks[m];
        }
    }
    bc_test_write_bytes(mut, b.p, b.len);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_OK); /* restored: fine again */
    free(b.p);
}

static void test_flip_every_byte(void **state)
{
    fixture *f = *state;
    char complete[256], sealed[256];
    make_small(f, complete, sealed, sizeof(complete));
    every_byte_flipped(f, complete);
    every_byte_flipped(f, sealed);
}

static void every_cut(fixture *f, const char *path)
{
    bytes b = slurp(path);
    char mut[256];
    new_path(f, mut, sizeof(mut));
    size_t offs[16];
    size_t n = record_offsets(&b, offs, 15);
    for (size_t cut = 0; cut < b.len; cut++) {
        bc_test_write_bytes(mut, b.p, cut);
        bytes plain;
        bc_status rc = read_all(mut, f->vault, &plain, NULL);
        if (rc == BC_OK)
            fail_msg("a file cut to %zu of %zu bytes was accepted", cut, b.len);
        assert_int_equal(rc, BC_ERR_TRUNCATED);
        free(plain.p);
    }
    /* Cut at a record boundary: still reported as truncated, not tampered. */
    for (size_t i = 1; i <= n && offs[i] < b.len; i++) {
        bc_test_write_bytes(mut, b.p, offs[i]);
        assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TRUNCATED);
    }
    free(b.p);
}

static void test_truncate_every_offset(void **state)
{
    fixture *f = *state;
    char complete[256], sealed[256];
    make_small(f, complete, sealed, sizeof(complete));
    every_cut(f, complete);
    every_cut(f, sealed);
}

static void test_reorder_duplicate_splice(void **state)
{
    fixture *f = *state;
    char complete[256], sealed[256], mut[256];
    make_small(f, complete, sealed, sizeof(complete));
    new_path(f, mut, sizeof(mut));
    bytes b = slurp(complete);
    size_t offs[16];
    assert_int_equal(record_offsets(&b, offs, 15), 4);
    size_t rec = offs[1] - offs[0]; /* all full records have the same size */

    /* Swap records 0 and 1. */
    uint8_t *m = malloc(b.len + rec);
    assert_non_null(m);
    memcpy(m, b.p, b.len);
    memcpy(m + offs[0], b.p + offs[1], rec);
    memcpy(m + offs[1], b.p + offs[0], rec);
    bc_test_write_bytes(mut, m, b.len);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TAMPERED);

    /* Duplicate record 1 (inserted after itself). */
    memcpy(m, b.p, offs[2]);
    memcpy(m + offs[2], b.p + offs[1], rec);
    memcpy(m + offs[2] + rec, b.p + offs[2], b.len - offs[2]);
    bc_test_write_bytes(mut, m, b.len + rec);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TAMPERED);

    /* Drop record 1. */
    memcpy(m, b.p, offs[1]);
    memcpy(m + offs[1], b.p + offs[2], b.len - offs[2]);
    bc_test_write_bytes(mut, m, b.len - rec);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TAMPERED);

    /* Bytes appended after the last segment. */
    memcpy(m, b.p, b.len);
    memcpy(m + b.len, "junk", 4);
    bc_test_write_bytes(mut, m, b.len + 4);
    assert_int_not_equal(bc_recording_verify(mut, f->vault, NULL), BC_OK);

    /* A record of another recording under the same key, same position. */
    bytes o = slurp(sealed);
    size_t ooffs[16];
    assert_int_equal(record_offsets(&o, ooffs, 15), 3);
    memcpy(m, b.p, b.len);
    memcpy(m + offs[1], o.p + ooffs[1], rec);
    bc_test_write_bytes(mut, m, b.len);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TAMPERED);

    /* A length field over segment_size + 16: malformed framing. */
    memcpy(m, b.p, b.len);
    m[offs[1] + 2] = 0x10;
    bc_test_write_bytes(mut, m, b.len);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_PARSE);
    free(m);
    free(o.p);
    free(b.p);
}

static void test_wrong_key(void **state)
{
    fixture *f = *state;
    char complete[256], sealed[256], out[256];
    make_small(f, complete, sealed, sizeof(complete));
    bc_recording_reader *r = NULL;
    bc_error err = {{0}};
    assert_int_equal(bc_recording_reader_open(complete, f->other, &r, &err), BC_ERR_WRONG_KEY);
    assert_null(r);
    assert_int_equal(bc_recording_verify(sealed, f->other, NULL), BC_ERR_WRONG_KEY);
    new_path(f, out, sizeof(out));
    assert_int_equal(bc_recording_decrypt_file(complete, out, f->other, NULL, NULL),
                     BC_ERR_WRONG_KEY);
    assert_false(bc_test_exists(NULL, out));

    /* The header rewritten to name the other key: the unwrap still fails. */
    char other_id[BC_KEY_ID_LEN + 1], mut[256];
    assert_int_equal(bc_key_id(f->other, other_id), BC_OK);
    bytes b = slurp(complete);
    memcpy(b.p + 12 + 4 + 1, other_id, BC_KEY_ID_LEN);
    new_path(f, mut, sizeof(mut));
    bc_test_write_bytes(mut, b.p, b.len);
    assert_int_equal(bc_recording_verify(mut, f->other, NULL), BC_ERR_WRONG_KEY);
    free(b.p);
    /* An Ed25519 key is not a recording key. */
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_int_equal(bc_recording_verify(complete, ed, NULL), BC_ERR_INVAL);
    EVP_PKEY_free(ed);
}

static void test_reader_api(void **state)
{
    fixture *f = *state;
    char complete[256], sealed[256], out[256];
    make_small(f, complete, sealed, sizeof(complete));

    /* A buffer smaller than a segment is refused, and the reader still works. */
    int fd = open(complete, O_RDONLY);
    assert_true(fd >= 0);
    bc_recording_reader *r = NULL;
    assert_int_equal(bc_recording_reader_open_fd(fd, f->vault, &r, NULL), BC_OK);
    uint8_t buf[SEG];
    size_t len = 0;
    int done = 0;
    bc_recording_info info;
    assert_int_equal(bc_recording_reader_info(r, &info), BC_ERR_STATE);
    assert_int_equal(bc_recording_reader_next(r, buf, SEG - 1, &len, &done, NULL), BC_ERR_INVAL);
    size_t total = 0, calls = 0;
    while (!done) {
        assert_int_equal(bc_recording_reader_next(r, buf, sizeof(buf), &len, &done, NULL), BC_OK);
        total += len;
        calls++;
    }
    assert_int_equal(total, 3 * SEG + 4);
    assert_int_equal(calls, 4);
    assert_int_equal(bc_recording_reader_next(r, buf, sizeof(buf), &len, &done, NULL), BC_OK);
    assert_int_equal(len, 0);
    assert_int_equal(done, 1);
    bc_recording_reader_close(r);
    assert_int_equal(close(fd), 0); /* still ours */

    /* decrypt_file: plaintext out, refused over an existing file. */
    new_path(f, out, sizeof(out));
    assert_int_equal(bc_recording_decrypt_file(complete, out, f->vault, &info, NULL), BC_OK);
    bytes plain = slurp(out);
    uint8_t *data = bc_test_pattern(3 * SEG + 4, 9);
    assert_int_equal(plain.len, 3 * SEG + 4);
    assert_memory_equal(plain.p, data, plain.len);
    assert_int_equal(info.plaintext_size, plain.len);
    assert_int_equal(bc_recording_decrypt_file(complete, out, f->vault, NULL, NULL), BC_ERR_EXISTS);

    /* A tampered last segment: the output file is removed. */
    bytes b = slurp(complete);
    b.p[b.len - 1] ^= 1;
    char mut[256], out2[256];
    new_path(f, mut, sizeof(mut));
    new_path(f, out2, sizeof(out2));
    bc_test_write_bytes(mut, b.p, b.len);
    assert_int_equal(bc_recording_decrypt_file(mut, out2, f->vault, NULL, NULL), BC_ERR_TAMPERED);
    assert_false(bc_test_exists(NULL, out2));

    /* Errors are sticky: the reader keeps returning the first failure. */
    r = NULL;
    assert_int_equal(bc_recording_reader_open(mut, f->vault, &r, NULL), BC_OK);
    bc_status rc;
    done = 0;
    size_t good = 0;
    while ((rc = bc_recording_reader_next(r, buf, sizeof(buf), &len, &done, NULL)) == BC_OK)
        good += len;
    assert_int_equal(good, 3 * SEG); /* the intact segments came through first */
    assert_int_equal(rc, BC_ERR_TAMPERED);
    assert_int_equal(bc_recording_reader_next(r, buf, sizeof(buf), &len, &done, NULL),
                     BC_ERR_TAMPERED);
    assert_int_equal(done, 0);
    bc_recording_reader_close(r);
    free(b.p);
    free(plain.p);
    free(data);
}

/* ---- crash sealing ----------------------------------------------------- */

static void test_crash_then_seal(void **state)
{
    fixture *f = *state;
    char path[256], side[300];
    new_path(f, path, sizeof(path));
    sidecar_of(path, side, sizeof(side));
    size_t len = 3 * SEG + 20;
    uint8_t *data = bc_test_pattern(len, 3);
    bc_recording_writer *w = NULL;
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "rec-9", "cam-1", 1, SEG, &w, NULL),
        BC_OK);
    assert_int_equal(bc_recording_writer_write(w, data, 2 * SEG + 7), BC_OK);
    assert_int_equal(bc_recording_writer_flush(w), BC_OK);
    assert_int_equal(bc_recording_writer_write(w, data + 2 * SEG + 7, len - 2 * SEG - 7), BC_OK);
    bc_recording_writer_abort(w); /* the power goes */
    assert_true(bc_test_exists(NULL, side));

    /* Before sealing, the reader refuses the unfinished file. */
    assert_int_equal(bc_recording_verify(path, f->vault, NULL), BC_ERR_TRUNCATED);

    /* A torn tail record as the crash left it. */
    bytes before = slurp(path);
    uint8_t torn[4 + 10] = {0, 0, 0, SEG + 16, 1, 2, 3};
    uint8_t *m = malloc(before.len + sizeof(torn));
    assert_non_null(m);
    memcpy(m, before.p, before.len);
    memcpy(m + before.len, torn, sizeof(torn));
    bc_test_write_bytes(path, m, before.len + sizeof(torn));

    bc_recording_info info;
    bc_error err = {{0}};
    assert_int_equal(bc_recording_seal(path, &info, &err), BC_OK);
    assert_false(bc_test_exists(NULL, side));
    assert_int_equal(info.sealed_now, 1);
    assert_int_equal(info.interrupted, 1);
    assert_int_equal(info.segments, 3);
    assert_int_equal(info.dropped, sizeof(torn));
    bytes sealed = slurp(path);
    assert_int_equal(info.size, sealed.len);
    assert_int_equal(sealed.len, before.len + 44);
    uint8_t digest[32];
    sha256_of(&sealed, digest);
    assert_memory_equal(info.sha256, digest, 32);

    /* Readable: exactly the whole segments written, reported as interrupted. */
    bytes plain;
    bc_recording_info rinfo;
    assert_int_equal(read_all(path, f->vault, &plain, &rinfo), BC_OK);
    assert_int_equal(plain.len, 3 * SEG);
    assert_memory_equal(plain.p, data, 3 * SEG);
    assert_int_equal(rinfo.interrupted, 1);
    assert_int_equal(rinfo.segments, 3);
    assert_memory_equal(rinfo.sha256, digest, 32);

    /* Idempotent: sealing again changes nothing. */
    bc_recording_info again;
    assert_int_equal(bc_recording_seal(path, &again, NULL), BC_OK);
    assert_int_equal(again.sealed_now, 0);
    assert_int_equal(again.interrupted, 1);
    assert_int_equal(again.segments, 3);
    assert_memory_equal(again.sha256, digest, 32);
    bytes after = slurp(path);
    assert_int_equal(after.len, sealed.len);
    assert_memory_equal(after.p, sealed.p, sealed.len);

    free(m);
    free(before.p);
    free(sealed.p);
    free(after.p);
    free(plain.p);
    free(data);
}

static void test_seal_edge_cases(void **state)
{
    fixture *f = *state;
    char path[256], side[300];
    bc_recording_info info;
    bc_error err = {{0}};
    bc_recording_writer *w = NULL;

    /* Crash right after open: an empty, interrupted recording. */
    new_path(f, path, sizeof(path));
    sidecar_of(path, side, sizeof(side));
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "r0", "cam-1", 1, SEG, &w, NULL), BC_OK);
    bytes side_bytes = slurp(side);
    bc_recording_writer_abort(w);
    assert_int_equal(bc_recording_seal(path, &info, &err), BC_OK);
    assert_int_equal(info.segments, 0);
    bytes plain;
    bc_recording_info rinfo;
    assert_int_equal(read_all(path, f->vault, &plain, &rinfo), BC_OK);
    assert_int_equal(plain.len, 0);
    assert_int_equal(rinfo.interrupted, 1);
    free(plain.p);

    /* A trailer torn during a previous seal (sidecar still there): redone. */
    bytes b = slurp(path);
    bc_test_write_bytes(path, b.p, b.len - 5);
    bc_test_write_bytes(side, side_bytes.p, side_bytes.len);
    assert_int_equal(bc_recording_seal(path, &info, &err), BC_OK);
    assert_int_equal(info.sealed_now, 1);
    assert_int_equal(info.dropped, 44 - 5);
    assert_false(bc_test_exists(NULL, side));
    assert_int_equal(bc_recording_verify(path, f->vault, NULL), BC_OK);
    bytes resealed = slurp(path);
    assert_int_equal(resealed.len, b.len);
    assert_memory_equal(resealed.p, b.p, b.len);
    free(resealed.p);

    /* An unfinished file whose sidecar is gone cannot be sealed. */
    bc_test_write_bytes(path, b.p, b.len - 44);
    assert_int_equal(bc_recording_seal(path, &info, &err), BC_ERR_STATE);
    assert_true(err.text[0] != '\0');

    /* A crash before the header was durable: reported distinctly. */
    bc_test_write_bytes(path, b.p, 30);
    bc_test_write_bytes(side, side_bytes.p, side_bytes.len);
    assert_int_equal(bc_recording_seal(path, &info, &err), BC_ERR_TRUNCATED);
    bc_test_write_bytes(path, b.p, 0);
    assert_int_equal(bc_recording_seal(path, &info, &err), BC_ERR_TRUNCATED);
    assert_int_equal(bc_recording_seal("/nonexistent/rec", &info, &err), BC_ERR_IO);
    free(b.p);
    free(side_bytes.p);

    /* A complete file: seal changes nothing; a sidecar left by a crash in
     * close (after the final fsync) is only removed. */
    new_path(f, path, sizeof(path));
    sidecar_of(path, side, sizeof(side));
    uint8_t *data = bc_test_pattern(2 * SEG, 5);
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "r1", "cam-1", 1, SEG, &w, NULL), BC_OK);
    side_bytes = slurp(side);
    assert_int_equal(bc_recording_writer_write(w, data, 2 * SEG), BC_OK);
    bc_recording_info winfo;
    assert_int_equal(bc_recording_writer_close(w, &winfo), BC_OK);
    assert_int_equal(bc_recording_seal(path, &info, &err), BC_OK);
    assert_int_equal(info.sealed_now, 0);
    assert_int_equal(info.interrupted, 0);
    assert_int_equal(info.segments, 3);
    assert_memory_equal(info.sha256, winfo.sha256, 32);
    bc_test_write_bytes(side, side_bytes.p, side_bytes.len);
    assert_int_equal(bc_recording_seal(path, &info, &err), BC_OK);
    assert_int_equal(info.sealed_now, 0);
    assert_false(bc_test_exists(NULL, side));
    assert_memory_equal(info.sha256, winfo.sha256, 32);
    assert_int_equal(read_all(path, f->vault, &plain, &rinfo), BC_OK);
    assert_int_equal(rinfo.interrupted, 0);
    assert_int_equal(plain.len, 2 * SEG);
    free(plain.p);
    free(side_bytes.p);
    free(data);
}

/* A write that fails (file size limit hit mid-record) makes the writer
 * sticky-failed; the torn file is then recovered by seal. */
static void test_writer_io_failure_then_seal(void **state)
{
    fixture *f = *state;
    char path[256], side[300];
    new_path(f, path, sizeof(path));
    sidecar_of(path, side, sizeof(side));
    uint8_t *data = bc_test_pattern(10 * SEG, 17);
    bc_recording_writer *w = NULL;
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "r-io", "cam-1", 1, SEG, &w, NULL),
        BC_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    size_t rec = 4 + SEG + 16;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size + 2 * rec + rec / 2; /* in the middle of record 2 */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bc_status rc = bc_recording_writer_write(w, data, 10 * SEG);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);

    assert_int_equal(rc, BC_ERR_IO);
    assert_non_null(strstr(bc_recording_writer_error(w), path));
    assert_int_equal(bc_recording_writer_write(w, data, 1), BC_ERR_STATE);
    assert_int_equal(bc_recording_writer_flush(w), BC_ERR_STATE);
    assert_int_equal(bc_recording_writer_close(w, NULL), BC_ERR_STATE);
    assert_true(bc_test_exists(NULL, side)); /* a failed close leaves the file sealable */

    bc_recording_info info;
    assert_int_equal(bc_recording_seal(path, &info, NULL), BC_OK);
    assert_int_equal(info.segments, 2);
    assert_int_equal(info.dropped, rec / 2);
    bytes plain;
    assert_int_equal(read_all(path, f->vault, &plain, NULL), BC_OK);
    assert_int_equal(plain.len, 2 * SEG);
    assert_memory_equal(plain.p, data, 2 * SEG);
    free(plain.p);
    free(data);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void test_forged_trailers(void **state)
{
    fixture *f = *state;
    char path[256], side[300], mut[256];
    new_path(f, path, sizeof(path));
    sidecar_of(path, side, sizeof(side));
    new_path(f, mut, sizeof(mut));
    uint8_t *data = bc_test_pattern(4 * SEG, 11);
    bc_recording_writer *w = NULL;
    assert_int_equal(
        bc_recording_writer_open(path, f->vault_pub, NULL, "r2", "cam-1", 1, SEG, &w, NULL), BC_OK);
    bytes side_bytes = slurp(side);
    const uint8_t *seal_key = side_bytes.p + side_bytes.len - 32; /* who holds the sidecar */
    assert_int_equal(bc_recording_writer_write(w, data, 3 * SEG + 1), BC_OK);
    bc_recording_writer_abort(w);
    assert_int_equal(bc_recording_seal(path, NULL, NULL), BC_OK);
    bytes b = slurp(path);
    size_t t = b.len - 44; /* trailer offset */
    uint8_t digest[32], hh[32], key[32];
    size_t hlen = 0;
    spec_unwrap(f, &b, key, hh, &hlen);

    /* Wrong HMAC. */
    b.p[b.len - 1] ^= 0x40;
    bc_test_write_bytes(mut, b.p, b.len);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TAMPERED);
    b.p[b.len - 1] ^= 0x40;

    /* Count changed (HMAC kept). */
    b.p[t + 11] ^= 1;
    bc_test_write_bytes(mut, b.p, b.len);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TAMPERED);
    b.p[t + 11] ^= 1;

    /* Even the seal-key holder cannot claim a different count... */
    uint8_t msg[40], *tr = malloc(b.len);
    assert_non_null(tr);
    memcpy(tr, b.p, b.len);
    memcpy(msg, hh, 32);
    put64(msg + 32, 2);
    size_t mlen = 0;
    assert_non_null(
        EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, seal_key, 32, msg, 40, digest, 32, &mlen));
    put64(tr + t + 4, 2);
    memcpy(tr + t + 12, digest, 32);
    bc_test_write_bytes(mut, tr, b.len);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TAMPERED);

    /* ...nor end a complete recording with a trailer after its last segment. */
    char full[256];
    new_path(f, full, sizeof(full));
    write_recording(f, full, data, 2 * SEG + 5, SEG, NULL, 0, NULL);
    bytes c = slurp(full);
    /* (different recording, so use its own header hash and a guessed key: refused anyway) */
    uint8_t ckey[32], chh[32];
    spec_unwrap(f, &c, ckey, chh, &hlen);
    uint8_t cseal[32];
    hkdf(ckey, 32, NULL, 0, "bodycam/v1 seal", cseal);
    uint8_t *ct = malloc(c.len + 44);
    assert_non_null(ct);
    memcpy(ct, c.p, c.len);
    ct[c.len] = ct[c.len + 1] = ct[c.len + 2] = ct[c.len + 3] = 0xff;
    put64(ct + c.len + 4, 3);
    memcpy(msg, chh, 32);
    put64(msg + 32, 3);
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, cseal, 32, msg, 40,
                              ct + c.len + 12, 32, &mlen));
    bc_test_write_bytes(mut, ct, c.len + 44);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_TAMPERED);

    /* Bytes after the trailer. */
    memcpy(tr, b.p, b.len);
    uint8_t *longer = malloc(b.len + 1);
    assert_non_null(longer);
    memcpy(longer, b.p, b.len);
    longer[b.len] = 0;
    bc_test_write_bytes(mut, longer, b.len + 1);
    assert_int_equal(bc_recording_verify(mut, f->vault, NULL), BC_ERR_PARSE);

    /* The untouched sealed file is fine. */
    assert_int_equal(bc_recording_verify(path, f->vault, NULL), BC_OK);
    free(longer);
    free(ct);
    free(c.p);
    free(tr);
    free(b.p);
    free(side_bytes.p);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_matches_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flip_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reorder_duplicate_splice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_then_seal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_edge_cases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_io_failure_then_seal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_trailers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
