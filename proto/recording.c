/*
 * recording.c - the recording file format, version 1 (proto/README.md).
 *
 *   file     = header record* [trailer]
 *   header   = "BCREC\0\0\1" | u32 body_len | body          (SHA-256 of all of it = H)
 *   body     = u32 segment_size | u8 n key_id | u8 n recording_id | u8 n device |
 *              u64 created_at | eph_pub[32] | wrap_nonce[12] | wrapped_key[48]
 *   record   = u32 len | AES-256-GCM(data_key, nonce = 0^4 || u64 i,
 *                                     aad = H || u64 i || u8 last) | tag[16]
 *   trailer  = u32 0xFFFFFFFF | u64 count | HMAC-SHA256(seal_key, H || u64 count)
 *
 *   kek      = HKDF-SHA256(X25519(eph, vault), salt = eph_pub || vault_pub,
 *                          info = "bodycam/v1 wrap")
 *   wrapped  = AES-256-GCM(kek, wrap_nonce, aad = recording_id, data_key)
 *   seal_key = HKDF-SHA256(data_key, no salt, info = "bodycam/v1 seal")
 *
 * Writer invariants (what crash sealing relies on, without any key):
 *   - every record but the final one holds exactly segment_size bytes; the
 *     final record (last = 1) holds fewer (0 .. segment_size - 1), because a
 *     segment is written the moment it fills up. So a short record at the
 *     end means "complete", a full one means "more was coming".
 *   - order of durability in open: file created (O_EXCL), then the sidecar
 *     made durable (tmp, fsync, rename, fsync dir - the dir fsync also makes
 *     the new file's name durable), then the header written and fsynced.
 *     Hence "complete header and no sidecar" means the file was finished by
 *     close or by a seal, and an incomplete header means nothing was ever
 *     recorded into it.
 *   - close writes the final record and fsyncs BEFORE deleting the sidecar;
 *     seal appends the trailer and fsyncs BEFORE deleting the sidecar. A
 *     crash in between leaves a sidecar next to a finished file, which the
 *     next seal recognises and only removes.
 *
 * The reader decides a record's last flag by what follows it: end of file
 * means last = 1, anything else (another record or the trailer) last = 0.
 * A record at the end that fails as last = 1 but authenticates as last = 0
 * was cut off after it: BC_ERR_TRUNCATED rather than BC_ERR_TAMPERED.
 * Data read is hashed on the way, so the reader reports the file's SHA-256
 * without a second pass.
 */
#include "proto/recording.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "proto/encoding.h"
#include "proto/sign.h"

#define MAGIC "BCREC\0\0\1"
#define MAGIC_LEN 8
#define PREFIX_LEN (MAGIC_LEN + 4)
#define KEY_LEN 32
#define HASH_LEN 32
#define GCM_NONCE_LEN 12
#define TAG_LEN BC_RECORDING_TAG_LEN
#define WRAPPED_LEN (KEY_LEN + TAG_LEN)
#define BODY_FIXED_LEN (4 + 3 + 8 + BC_RAW_KEY_LEN + GCM_NONCE_LEN + WRAPPED_LEN)
#define BODY_MAX (BODY_FIXED_LEN + 2 * BC_ID_MAX + BC_DEVICE_ID_MAX)
#define AAD_LEN (HASH_LEN + 8 + 1)
#define TRAILER_MARK 0xFFFFFFFFu
#define TRAILER_LEN (4 + 8 + HASH_LEN)
#define SIDECAR_MAGIC "BCSEAL\0\1"
#define SIDECAR_LEN (MAGIC_LEN + KEY_LEN)
#define IO_CHUNK (64 * 1024)

static const char wrap_info[] = "bodycam/v1 wrap";
static const char seal_info[] = "bodycam/v1 seal";

/* A header as parsed or built: clear fields, key-wrap fields, its raw
 * bytes and H = SHA-256(raw). */
typedef struct header {
    bc_recording_header pub;
    uint8_t eph_pub[BC_RAW_KEY_LEN];
    uint8_t wrap_nonce[GCM_NONCE_LEN];
    uint8_t wrapped[WRAPPED_LEN];
    uint8_t raw[PREFIX_LEN + BODY_MAX];
    size_t raw_len;
    uint8_t hash[HASH_LEN];
} header;

struct bc_recording_writer {
    int fd;
    char *path;
    char *sidecar;
    uint32_t segment_size;
    uint8_t data_key[KEY_LEN];
    uint8_t header_hash[HASH_LEN];
    EVP_CIPHER *aes;
    EVP_CIPHER_CTX *ctx;
    EVP_MD_CTX *file_hash;
    uint8_t *plain; /* segment_size bytes: the segment being filled */
    size_t plain_len;
    uint8_t *record; /* 4 + segment_size + 16: one encrypted record */
    uint64_t index;
    uint64_t size;
    uint64_t plaintext_size;
    bc_status failed;
    bc_error error;
};

struct bc_recording_reader {
    int fd;
    int own_fd;
    header h;
    uint8_t data_key[KEY_LEN];
    EVP_CIPHER *aes;
    EVP_CIPHER_CTX *ctx;
    EVP_MD_CTX *file_hash;
    uint8_t *rec;    /* segment_size + 16 */
    uint8_t peek[4]; /* the next record's length field */
    size_t peek_len; /* how much of it exists: 0 = end of file */
    uint64_t index;
    uint64_t size;
    uint64_t plaintext_size;
    int done;
    int interrupted;
    bc_status failed;
    bc_error error;
};

/* ---- system calls: EINTR and short transfers handled, errno kept ------- */

static int io_write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int io_pwrite_all(int fd, const uint8_t *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Reads until len bytes or end of file; *got tells how many arrived. */
static int io_read_full(int fd, uint8_t *buf, size_t len, size_t *got)
{
    *got = 0;
    while (*got < len) {
        ssize_t n = read(fd, buf + *got, len - *got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

static int io_pread_full(int fd, uint8_t *buf, size_t len, off_t off, size_t *got)
{
    *got = 0;
    while (*got < len) {
        ssize_t n = pread(fd, buf + *got, len - *got, off + (off_t)*got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

static int io_close(int fd)
{
    /* Linux releases the descriptor even when close() fails with EINTR:
     * retrying could close someone else's descriptor. */
    if (close(fd) != 0 && errno != EINTR)
        return -1;
    return 0;
}

/* fsyncs the directory holding path, so that a created, renamed or
 * removed name in it survives a power loss. */
static int io_fsync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof(dir)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    if (io_close(fd) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

static char *path_with_suffix(const char *path, const char *suffix)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *s = malloc(a + b + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, path, a);
    memcpy(s + a, suffix, b + 1);
    return s;
}

static bc_status io_fail(bc_error *err, const char *what, const char *path)
{
    int saved = errno;
    bc_fail(err, BC_ERR_IO, "%s '%s': %s", what, path, strerror(saved));
    errno = saved;
    return BC_ERR_IO;
}

/* ---- crypto helpers ---------------------------------------------------- */

static bc_status crypto_fail(bc_error *err, const char *what)
{
    ERR_clear_error();
    return bc_fail(err, BC_ERR_CRYPTO, "the crypto library failed to %s", what);
}

static bc_status hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                             size_t salt_len, const char *info, uint8_t out[KEY_LEN])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    bc_status rc = BC_OK;
    OSSL_PARAM params[5];
    size_t n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
    if (salt != NULL)
        params[n++] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    params[n++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    params[n] = OSSL_PARAM_construct_end();
    if (kctx == NULL || EVP_KDF_derive(kctx, out, KEY_LEN, params) != 1) {
        ERR_clear_error();
        rc = BC_ERR_CRYPTO;
    }
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

static bc_status x25519_shared(EVP_PKEY *own, EVP_PKEY *peer, uint8_t out[KEY_LEN])
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, own, NULL);
    size_t len = KEY_LEN;
    bc_status rc = BC_OK;
    /* OpenSSL refuses an all-zero result (a small-order peer point). */
    if (pctx == NULL || EVP_PKEY_derive_init(pctx) != 1 ||
        EVP_PKEY_derive_set_peer(pctx, peer) != 1 || EVP_PKEY_derive(pctx, out, &len) != 1 ||
        len != KEY_LEN) {
        ERR_clear_error();
        rc = BC_ERR_CRYPTO;
    }
    EVP_PKEY_CTX_free(pctx);
    return rc;
}

/* kek from the shared secret; salt = eph_pub || vault_pub. */
static bc_status wrap_kek(EVP_PKEY *own, EVP_PKEY *peer, const uint8_t eph_pub[BC_RAW_KEY_LEN],
                          const uint8_t vault_pub[BC_RAW_KEY_LEN], uint8_t kek[KEY_LEN])
{
    uint8_t shared[KEY_LEN];
    uint8_t salt[2 * BC_RAW_KEY_LEN];
    bc_status rc = x25519_shared(own, peer, shared);
    if (rc == BC_OK) {
        memcpy(salt, eph_pub, BC_RAW_KEY_LEN);
        memcpy(salt + BC_RAW_KEY_LEN, vault_pub, BC_RAW_KEY_LEN);
        rc = hkdf_sha256(shared, sizeof(shared), salt, sizeof(salt), wrap_info, kek);
    }
    OPENSSL_cleanse(shared, sizeof(shared));
    return rc;
}

/* One-shot AES-256-GCM for the 32-byte key wrap. decrypt: BC_ERR_TAMPERED
 * when the tag does not verify. */
static bc_status gcm_once(int encrypt, const uint8_t key[KEY_LEN],
                          const uint8_t nonce[GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                          const uint8_t *in, uint8_t *out, uint8_t tag[TAG_LEN])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return BC_ERR_NOMEM;
    bc_status rc = BC_ERR_CRYPTO;
    int n = 0, fin = 0;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, encrypt) != 1)
        goto cleanup;
    if (EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) != 1)
        goto cleanup;
    if (EVP_CipherUpdate(ctx, out, &n, in, KEY_LEN) != 1)
        goto cleanup;
    if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
        goto cleanup;
    if (EVP_CipherFinal_ex(ctx, out + n, &fin) != 1) {
        rc = encrypt ? BC_ERR_CRYPTO : BC_ERR_TAMPERED;
        goto cleanup;
    }
    if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto cleanup;
    rc = BC_OK;

cleanup:
    if (rc != BC_OK) {
        ERR_clear_error();
        OPENSSL_cleanse(out, KEY_LEN);
    }
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

static bc_status trailer_mac(const uint8_t seal_key[KEY_LEN], const uint8_t hash[HASH_LEN],
                             uint64_t count, uint8_t mac[HASH_LEN])
{
    uint8_t msg[HASH_LEN + 8];
    memcpy(msg, hash, HASH_LEN);
    bc_be64_store(msg + HASH_LEN, count);
    size_t len = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, seal_key, KEY_LEN, msg, sizeof(msg), mac,
                  HASH_LEN, &len) == NULL ||
        len != HASH_LEN) {
        ERR_clear_error();
        return BC_ERR_CRYPTO;
    }
    return BC_OK;
}

/* An AES-256-GCM context keyed once with the data key; each segment then
 * only sets its nonce (no key schedule per segment). */
static bc_status segment_ctx_new(const uint8_t key[KEY_LEN], int encrypt, EVP_CIPHER **aes,
                                 EVP_CIPHER_CTX **ctx)
{
    *aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    *ctx = EVP_CIPHER_CTX_new();
    if (*aes == NULL || *ctx == NULL ||
        EVP_CipherInit_ex(*ctx, *aes, NULL, key, NULL, encrypt) != 1) {
        ERR_clear_error();
        return BC_ERR_CRYPTO;
    }
    return BC_OK;
}

static void segment_aad(const uint8_t hash[HASH_LEN], uint64_t index, int last,
                        uint8_t nonce[GCM_NONCE_LEN], uint8_t aad[AAD_LEN])
{
    memset(nonce, 0, 4);
    bc_be64_store(nonce + 4, index);
    memcpy(aad, hash, HASH_LEN);
    bc_be64_store(aad + HASH_LEN, index);
    aad[HASH_LEN + 8] = last ? 1 : 0;
}

bc_status bc_recording_segment_encrypt(EVP_CIPHER_CTX *ctx, const uint8_t header_hash[32],
                                       uint64_t index, int last, const uint8_t *in, size_t len,
                                       uint8_t *out)
{
    if (ctx == NULL || header_hash == NULL || out == NULL || (in == NULL && len > 0) ||
        len > BC_RECORDING_SEGMENT_MAX)
        return BC_ERR_INVAL;
    uint8_t nonce[GCM_NONCE_LEN], aad[AAD_LEN];
    segment_aad(header_hash, index, last, nonce, aad);
    bc_be32_store(out, (uint32_t)(len + TAG_LEN));
    int n = 0, fin = 0;
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, aad, AAD_LEN) != 1)
        goto fail;
    n = 0;
    if (len > 0 && EVP_EncryptUpdate(ctx, out + 4, &n, in, (int)len) != 1)
        goto fail;
    if (EVP_EncryptFinal_ex(ctx, out + 4 + n, &fin) != 1 || (size_t)(n + fin) != len)
        goto fail;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + 4 + len) != 1)
        goto fail;
    return BC_OK;

fail:
    ERR_clear_error();
    return BC_ERR_CRYPTO;
}

/* Decrypts one record body (ciphertext || tag) into out. BC_ERR_TAMPERED
 * when it does not authenticate under (index, last); out is then wiped. */
static bc_status segment_decrypt(EVP_CIPHER_CTX *ctx, const uint8_t hash[HASH_LEN], uint64_t index,
                                 int last, const uint8_t *rec, size_t rec_len, uint8_t *out)
{
    size_t len = rec_len - TAG_LEN;
    uint8_t nonce[GCM_NONCE_LEN], aad[AAD_LEN];
    segment_aad(hash, index, last, nonce, aad);
    int n = 0, fin = 0;
    bc_status rc = BC_ERR_CRYPTO;
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, aad, AAD_LEN) != 1)
        goto cleanup;
    n = 0;
    if (len > 0 && EVP_DecryptUpdate(ctx, out, &n, rec, (int)len) != 1)
        goto cleanup;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(rec + len)) != 1)
        goto cleanup;
    rc = EVP_DecryptFinal_ex(ctx, out + n, &fin) == 1 ? BC_OK : BC_ERR_TAMPERED;

cleanup:
    if (rc != BC_OK) {
        ERR_clear_error();
        OPENSSL_cleanse(out, len);
    }
    return rc;
}

/* ---- header ------------------------------------------------------------ */

static int put_str8(uint8_t *p, size_t *off, const char *s)
{
    size_t n = strlen(s);
    if (n > 255)
        return -1;
    p[(*off)++] = (uint8_t)n;
    memcpy(p + *off, s, n);
    *off += n;
    return 0;
}

static bc_status header_build(header *h, bc_error *err)
{
    uint8_t *p = h->raw;
    size_t off = PREFIX_LEN;
    memcpy(p, MAGIC, MAGIC_LEN);
    bc_be32_store(p + off, h->pub.segment_size);
    off += 4;
    if (put_str8(p, &off, h->pub.key_id) != 0 || put_str8(p, &off, h->pub.recording_id) != 0 ||
        put_str8(p, &off, h->pub.device) != 0)
        return bc_fail(err, BC_ERR_INVAL, "a header string is over 255 bytes");
    bc_be64_store(p + off, (uint64_t)h->pub.created_at_ms);
    off += 8;
    memcpy(p + off, h->eph_pub, sizeof(h->eph_pub));
    off += sizeof(h->eph_pub);
    memcpy(p + off, h->wrap_nonce, sizeof(h->wrap_nonce));
    off += sizeof(h->wrap_nonce);
    memcpy(p + off, h->wrapped, sizeof(h->wrapped));
    off += sizeof(h->wrapped);
    bc_be32_store(p + MAGIC_LEN, (uint32_t)(off - PREFIX_LEN));
    h->raw_len = off;
    if (EVP_Digest(h->raw, h->raw_len, h->hash, NULL, EVP_sha256(), NULL) != 1)
        return crypto_fail(err, "hash the header");
    return BC_OK;
}

/* Bounds-checked cursor over the header body. */
typedef struct cursor {
    const uint8_t *p;
    size_t len;
    size_t off;
} cursor;

static const uint8_t *cursor_take(cursor *c, size_t n)
{
    if (c->len - c->off < n)
        return NULL;
    const uint8_t *at = c->p + c->off;
    c->off += n;
    return at;
}

static int cursor_str8(cursor *c, char *out, size_t out_size)
{
    const uint8_t *n = cursor_take(c, 1);
    if (n == NULL || *n >= out_size)
        return -1;
    const uint8_t *s = cursor_take(c, *n);
    if (s == NULL)
        return -1;
    memcpy(out, s, *n);
    out[*n] = '\0';
    return 0;
}

static bc_status header_parse_body(header *h, bc_error *err)
{
    cursor c = {h->raw + PREFIX_LEN, h->raw_len - PREFIX_LEN, 0};
    const uint8_t *seg = cursor_take(&c, 4);
    if (seg == NULL)
        return bc_fail(err, BC_ERR_PARSE, "recording header: no segment size");
    h->pub.segment_size = bc_be32_load(seg);
    if (h->pub.segment_size < BC_RECORDING_SEGMENT_MIN ||
        h->pub.segment_size > BC_RECORDING_SEGMENT_MAX)
        return bc_fail(err, BC_ERR_PARSE, "recording header: segment size %u out of range",
                       h->pub.segment_size);
    if (cursor_str8(&c, h->pub.key_id, sizeof(h->pub.key_id)) != 0 || !bc_id_valid(h->pub.key_id))
        return bc_fail(err, BC_ERR_PARSE, "recording header: bad key id");
    if (cursor_str8(&c, h->pub.recording_id, sizeof(h->pub.recording_id)) != 0 ||
        !bc_id_valid(h->pub.recording_id))
        return bc_fail(err, BC_ERR_PARSE, "recording header: bad recording id");
    if (cursor_str8(&c, h->pub.device, sizeof(h->pub.device)) != 0 ||
        !bc_device_id_valid(h->pub.device))
        return bc_fail(err, BC_ERR_PARSE, "recording header: bad device id");
    const uint8_t *ts = cursor_take(&c, 8);
    const uint8_t *eph = cursor_take(&c, sizeof(h->eph_pub));
    const uint8_t *nonce = cursor_take(&c, sizeof(h->wrap_nonce));
    const uint8_t *wrapped = cursor_take(&c, sizeof(h->wrapped));
    if (wrapped == NULL)
        return bc_fail(err, BC_ERR_PARSE, "recording header: body too short for the key wrap");
    if (c.off != c.len)
        return bc_fail(err, BC_ERR_PARSE, "recording header: %zu unexpected bytes at its end",
                       c.len - c.off);
    uint64_t created = bc_be64_load(ts);
    if (created > INT64_MAX)
        return bc_fail(err, BC_ERR_PARSE, "recording header: created_at out of range");
    h->pub.created_at_ms = (int64_t)created;
    memcpy(h->eph_pub, eph, sizeof(h->eph_pub));
    memcpy(h->wrap_nonce, nonce, sizeof(h->wrap_nonce));
    memcpy(h->wrapped, wrapped, sizeof(h->wrapped));
    return BC_OK;
}

/* Reads the header from fd's current position (exactly its bytes). */
static bc_status header_read(int fd, const char *name, header *h, bc_error *err)
{
    memset(h, 0, sizeof(*h));
    size_t got = 0;
    if (io_read_full(fd, h->raw, PREFIX_LEN, &got) != 0)
        return io_fail(err, "cannot read recording", name);
    if (memcmp(h->raw, MAGIC, got < MAGIC_LEN - 1 ? got : MAGIC_LEN - 1) != 0)
        return bc_fail(err, BC_ERR_PARSE, "'%s' is not a recording file", name);
    if (got >= MAGIC_LEN && h->raw[MAGIC_LEN - 1] != MAGIC[MAGIC_LEN - 1])
        return bc_fail(err, BC_ERR_VERSION, "'%s' is recording format version %u, expected %u",
                       name, h->raw[MAGIC_LEN - 1], BC_RECORDING_VERSION);
    if (got < PREFIX_LEN)
        return bc_fail(err, BC_ERR_TRUNCATED, "'%s' ends inside the recording header", name);
    uint32_t body_len = bc_be32_load(h->raw + MAGIC_LEN);
    if (body_len < BODY_FIXED_LEN || body_len > BODY_MAX)
        return bc_fail(err, BC_ERR_PARSE, "'%s': recording header length %u out of range", name,
                       body_len);
    if (io_read_full(fd, h->raw + PREFIX_LEN, body_len, &got) != 0)
        return io_fail(err, "cannot read recording", name);
    if (got < body_len)
        return bc_fail(err, BC_ERR_TRUNCATED, "'%s' ends inside the recording header", name);
    h->raw_len = PREFIX_LEN + body_len;
    bc_status rc = header_parse_body(h, err);
    if (rc != BC_OK)
        return rc;
    if (EVP_Digest(h->raw, h->raw_len, h->hash, NULL, EVP_sha256(), NULL) != 1)
        return crypto_fail(err, "hash the header");
    return BC_OK;
}

bc_status bc_recording_info_read(const char *path, bc_recording_header *hdr, bc_error *err)
{
    if (path == NULL || hdr == NULL)
        return bc_fail(err, BC_ERR_INVAL, "path and header must not be NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(err, "cannot open recording", path);
    header h;
    bc_status rc = header_read(fd, path, &h, err);
    if (rc == BC_OK)
        *hdr = h.pub;
    if (io_close(fd) != 0 && rc == BC_OK)
        rc = io_fail(err, "cannot close recording", path);
    return rc;
}

/* ---- writer ------------------------------------------------------------ */

/* Makes the writer sticky-failed: "<what> '<arg>'" (": strerror" added for
 * BC_ERR_IO); the first failure is the one kept. */
static bc_status writer_fail(bc_recording_writer *w, bc_status rc, const char *what,
                             const char *arg)
{
    int saved = errno;
    if (w->failed == BC_OK) {
        w->failed = rc;
        if (rc == BC_ERR_IO)
            bc_fail(&w->error, rc, "%s '%s': %s", what, arg, strerror(saved));
        else
            bc_fail(&w->error, rc, "%s '%s'", what, arg);
    }
    errno = saved;
    return rc;
}

static void writer_free(bc_recording_writer *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        (void)io_close(w->fd); /* abandoning the file: nothing left to report to */
    OPENSSL_cleanse(w->data_key, sizeof(w->data_key));
    if (w->plain != NULL)
        OPENSSL_cleanse(w->plain, w->segment_size);
    free(w->plain);
    free(w->record);
    EVP_CIPHER_CTX_free(w->ctx); /* wipes the key schedule */
    EVP_CIPHER_free(w->aes);
    EVP_MD_CTX_free(w->file_hash);
    free(w->path);
    free(w->sidecar);
    free(w);
}

/* Sidecar: magic | seal_key, made durable before the header is written. */
static bc_status sidecar_write(const char *sidecar, const uint8_t seal_key[KEY_LEN], bc_error *err)
{
    uint8_t buf[SIDECAR_LEN];
    memcpy(buf, SIDECAR_MAGIC, MAGIC_LEN);
    memcpy(buf + MAGIC_LEN, seal_key, KEY_LEN);
    bc_status rc = BC_OK;
    char *tmp = path_with_suffix(sidecar, ".tmp");
    if (tmp == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory for the sidecar path");
        goto cleanup;
    }
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = io_fail(err, "cannot create seal sidecar", tmp);
        goto cleanup;
    }
    if (io_write_all(fd, buf, sizeof(buf)) != 0 || fsync(fd) != 0) {
        rc = io_fail(err, "cannot write seal sidecar", tmp);
        (void)io_close(fd);
        (void)unlink(tmp);
        goto cleanup;
    }
    if (io_close(fd) != 0) {
        rc = io_fail(err, "cannot close seal sidecar", tmp);
        (void)unlink(tmp);
        goto cleanup;
    }
    if (rename(tmp, sidecar) != 0) {
        rc = io_fail(err, "cannot rename seal sidecar to", sidecar);
        (void)unlink(tmp);
        goto cleanup;
    }
    /* The rename (and the recording's own new name) are durable only once
     * the directory is: a camera may lose power right after this. */
    if (io_fsync_dir(sidecar) != 0)
        rc = io_fail(err, "cannot fsync the directory of", sidecar);

cleanup:
    OPENSSL_cleanse(buf, sizeof(buf));
    free(tmp);
    return rc;
}

/* Makes the data key, wraps it for vault_pub and fills h (not yet built). */
static bc_status writer_wrap_key(bc_recording_writer *w, EVP_PKEY *vault_pub, header *h,
                                 bc_error *err)
{
    uint8_t vault_raw[BC_RAW_KEY_LEN];
    uint8_t kek[KEY_LEN];
    EVP_PKEY *eph = NULL;
    bc_status rc = BC_OK;
    if (bc_key_raw_public(vault_pub, vault_raw) != BC_OK) {
        rc = bc_fail(err, BC_ERR_INVAL, "the vault recording key has no raw public form");
        goto cleanup;
    }
    if (RAND_priv_bytes(w->data_key, sizeof(w->data_key)) != 1 ||
        RAND_bytes(h->wrap_nonce, sizeof(h->wrap_nonce)) != 1) {
        rc = crypto_fail(err, "generate the data key");
        goto cleanup;
    }
    eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (eph == NULL || bc_key_raw_public(eph, h->eph_pub) != BC_OK) {
        rc = crypto_fail(err, "generate the ephemeral X25519 key");
        goto cleanup;
    }
    if (wrap_kek(eph, vault_pub, h->eph_pub, vault_raw, kek) != BC_OK) {
        rc = crypto_fail(err, "derive the key-wrapping key");
        goto cleanup;
    }
    const char *rid = h->pub.recording_id;
    rc = gcm_once(1, kek, h->wrap_nonce, (const uint8_t *)rid, strlen(rid), w->data_key, h->wrapped,
                  h->wrapped + KEY_LEN);
    if (rc != BC_OK)
        rc = crypto_fail(err, "wrap the data key");

cleanup:
    OPENSSL_cleanse(kek, sizeof(kek));
    EVP_PKEY_free(eph); /* the ephemeral private key is wiped on free */
    return rc;
}

static bc_status writer_check_args(const char *path, EVP_PKEY *vault_pub, const char *key_id,
                                   const char *recording_id, const char *device,
                                   int64_t created_at_ms, uint32_t segment_size,
                                   bc_recording_writer **out, char id[BC_KEY_ID_LEN + 1],
                                   bc_error *err)
{
    if (path == NULL || vault_pub == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "path, vault key and output must not be NULL");
    if (EVP_PKEY_get_id(vault_pub) != EVP_PKEY_X25519)
        return bc_fail(err, BC_ERR_INVAL, "the vault recording key is not an X25519 key");
    if (!bc_id_valid(recording_id))
        return bc_fail(err, BC_ERR_INVAL, "recording id is missing or outside [A-Za-z0-9_-]{1,64}");
    if (!bc_device_id_valid(device))
        return bc_fail(err, BC_ERR_INVAL, "device id is missing or not a valid device id");
    if (created_at_ms < 0)
        return bc_fail(err, BC_ERR_INVAL, "created_at must not be negative");
    if (segment_size != 0 &&
        (segment_size < BC_RECORDING_SEGMENT_MIN || segment_size > BC_RECORDING_SEGMENT_MAX))
        return bc_fail(err, BC_ERR_INVAL, "segment size %u outside %u..%u", segment_size,
                       BC_RECORDING_SEGMENT_MIN, BC_RECORDING_SEGMENT_MAX);
    if (bc_key_id(vault_pub, id) != BC_OK)
        return crypto_fail(err, "compute the vault key id");
    if (key_id != NULL && strcmp(key_id, id) != 0)
        return bc_fail(err, BC_ERR_INVAL, "key id '%s' is not the id of the vault key (%s)", key_id,
                       id);
    return BC_OK;
}

bc_status bc_recording_writer_open(const char *path, EVP_PKEY *vault_pub, const char *key_id,
                                   const char *recording_id, const char *device,
                                   int64_t created_at_ms, uint32_t segment_size,
                                   bc_recording_writer **out, bc_error *err)
{
    char id[BC_KEY_ID_LEN + 1];
    bc_status rc = writer_check_args(path, vault_pub, key_id, recording_id, device, created_at_ms,
                                     segment_size, out, id, err);
    if (rc != BC_OK)
        return rc;
    *out = NULL;
    if (segment_size == 0)
        segment_size = BC_RECORDING_SEGMENT_DEFAULT;

    uint8_t seal_key[KEY_LEN] = {0};
    header h;
    memset(&h, 0, sizeof(h));
    int created = 0;
    bc_recording_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for a recording writer");
    w->fd = -1;
    w->segment_size = segment_size;
    w->path = strdup(path);
    w->sidecar = path_with_suffix(path, BC_RECORDING_SEAL_SUFFIX);
    w->plain = malloc(segment_size);
    w->record = malloc(4 + (size_t)segment_size + TAG_LEN);
    w->file_hash = EVP_MD_CTX_new();
    if (w->path == NULL || w->sidecar == NULL || w->plain == NULL || w->record == NULL ||
        w->file_hash == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory for a recording writer");
        goto cleanup;
    }

    /* Validate and compute everything before touching the file system. */
    h.pub.segment_size = segment_size;
    h.pub.created_at_ms = created_at_ms;
    memcpy(h.pub.key_id, id, sizeof(id));
    snprintf(h.pub.recording_id, sizeof(h.pub.recording_id), "%s", recording_id);
    snprintf(h.pub.device, sizeof(h.pub.device), "%s", device);
    rc = writer_wrap_key(w, vault_pub, &h, err);
    if (rc != BC_OK)
        goto cleanup;
    rc = header_build(&h, err);
    if (rc != BC_OK)
        goto cleanup;
    memcpy(w->header_hash, h.hash, HASH_LEN);
    if (hkdf_sha256(w->data_key, KEY_LEN, NULL, 0, seal_info, seal_key) != BC_OK) {
        rc = crypto_fail(err, "derive the seal key");
        goto cleanup;
    }
    if (segment_ctx_new(w->data_key, 1, &w->aes, &w->ctx) != BC_OK ||
        EVP_DigestInit_ex(w->file_hash, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(w->file_hash, h.raw, h.raw_len) != 1) {
        rc = crypto_fail(err, "set up the segment cipher");
        goto cleanup;
    }

    /* Commit: file (exclusive), durable sidecar, durable header. */
    w->fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        if (errno == EEXIST)
            rc = bc_fail(err, BC_ERR_EXISTS, "recording '%s' already exists", path);
        else
            rc = io_fail(err, "cannot create recording", path);
        goto cleanup;
    }
    created = 1;
    rc = sidecar_write(w->sidecar, seal_key, err);
    if (rc != BC_OK)
        goto cleanup;
    if (io_write_all(w->fd, h.raw, h.raw_len) != 0 || fsync(w->fd) != 0) {
        rc = io_fail(err, "cannot write the header of recording", path);
        goto cleanup;
    }
    w->size = h.raw_len;
    *out = w;
    w = NULL;

cleanup:
    OPENSSL_cleanse(seal_key, sizeof(seal_key));
    if (w != NULL && created) {
        int saved = errno;
        (void)unlink(w->sidecar); /* best effort: the error already says what failed */
        (void)unlink(path);
        errno = saved;
    }
    writer_free(w);
    return rc;
}

const char *bc_recording_writer_error(const bc_recording_writer *w)
{
    return w == NULL ? "no writer" : w->error.text;
}

/* Encrypts len bytes as record w->index and appends it. */
static bc_status writer_emit(bc_recording_writer *w, const uint8_t *data, size_t len, int last)
{
    size_t rec_len = 4 + len + TAG_LEN;
    if (bc_recording_segment_encrypt(w->ctx, w->header_hash, w->index, last, data, len,
                                     w->record) != BC_OK)
        return writer_fail(w, BC_ERR_CRYPTO, "cannot encrypt a segment of", w->path);
    if (io_write_all(w->fd, w->record, rec_len) != 0)
        return writer_fail(w, BC_ERR_IO, "cannot write a segment of", w->path);
    if (EVP_DigestUpdate(w->file_hash, w->record, rec_len) != 1) {
        ERR_clear_error();
        return writer_fail(w, BC_ERR_CRYPTO, "cannot hash a segment of", w->path);
    }
    w->size += rec_len;
    w->plaintext_size += len;
    w->index++;
    return BC_OK;
}

bc_status bc_recording_writer_write(bc_recording_writer *w, const void *data, size_t len)
{
    if (w == NULL || (data == NULL && len > 0))
        return BC_ERR_INVAL;
    if (w->failed != BC_OK)
        return BC_ERR_STATE;
    const uint8_t *p = data;
    bc_status rc = BC_OK;
    while (len > 0 && rc == BC_OK) {
        if (w->plain_len == 0 && len >= w->segment_size) {
            /* A whole segment in the caller's buffer: encrypt it in place. */
            rc = writer_emit(w, p, w->segment_size, 0);
            p += w->segment_size;
            len -= w->segment_size;
            continue;
        }
        size_t room = w->segment_size - w->plain_len;
        size_t n = len < room ? len : room;
        memcpy(w->plain + w->plain_len, p, n);
        w->plain_len += n;
        p += n;
        len -= n;
        /* A full segment goes out at once: only the final record is short. */
        if (w->plain_len == w->segment_size) {
            rc = writer_emit(w, w->plain, w->plain_len, 0);
            w->plain_len = 0;
        }
    }
    return rc;
}

bc_status bc_recording_writer_flush(bc_recording_writer *w)
{
    if (w == NULL)
        return BC_ERR_INVAL;
    if (w->failed != BC_OK)
        return BC_ERR_STATE;
    if (fdatasync(w->fd) != 0)
        return writer_fail(w, BC_ERR_IO, "cannot fdatasync recording", w->path);
    return BC_OK;
}

bc_status bc_recording_writer_close(bc_recording_writer *w, bc_recording_info *info)
{
    if (w == NULL)
        return BC_ERR_INVAL;
    bc_status rc = BC_OK;
    if (w->failed != BC_OK) {
        rc = BC_ERR_STATE;
        goto cleanup;
    }
    rc = writer_emit(w, w->plain, w->plain_len, 1);
    if (rc != BC_OK)
        goto cleanup;
    /* Durable before the sidecar goes: see the invariants at the top. */
    if (fsync(w->fd) != 0) {
        rc = writer_fail(w, BC_ERR_IO, "cannot fsync recording", w->path);
        goto cleanup;
    }
    int fd = w->fd;
    w->fd = -1;
    if (io_close(fd) != 0) {
        rc = writer_fail(w, BC_ERR_IO, "cannot close recording", w->path);
        goto cleanup;
    }
    if (info != NULL) {
        memset(info, 0, sizeof(*info));
        unsigned int md_len = 0;
        if (EVP_DigestFinal_ex(w->file_hash, info->sha256, &md_len) != 1) {
            rc = crypto_fail(NULL, "finish the file hash");
            goto cleanup;
        }
        info->size = w->size;
        info->segments = w->index;
        info->plaintext_size = w->plaintext_size;
    }
    /* The file is complete. A sidecar that survives a crash here is
     * harmless: the next bc_recording_seal sees a complete file and only
     * deletes it - which is also the way out if unlink fails now. */
    if (unlink(w->sidecar) != 0)
        rc = writer_fail(w, BC_ERR_IO, "cannot delete seal sidecar", w->sidecar);

cleanup:
    writer_free(w);
    return rc;
}

void bc_recording_writer_abort(bc_recording_writer *w)
{
    writer_free(w);
}

/* ---- crash sealing ----------------------------------------------------- */

typedef enum scan_end {
    END_COMPLETE,   /* a short (final) record ends the file */
    END_TRAILER,    /* a whole trailer ends the file */
    END_UNFINISHED, /* whole full-size records, then maybe a torn tail */
} scan_end;

typedef struct scan_result {
    scan_end end;
    uint64_t records;
    off_t cut; /* where the valid prefix ends (start of a torn tail or trailer) */
    uint8_t trailer[TRAILER_LEN];
} scan_result;

/* Walks the framing from the end of the header without any key. */
static bc_status seal_scan(int fd, const char *path, const header *h, off_t size, scan_result *s,
                           bc_error *err)
{
    memset(s, 0, sizeof(*s));
    off_t pos = (off_t)h->raw_len;
    uint64_t max_len = (uint64_t)h->pub.segment_size + TAG_LEN;
    for (;;) {
        s->cut = pos;
        if (size - pos < 4) {
            s->end = END_UNFINISHED; /* nothing, or a torn length field */
            return BC_OK;
        }
        uint8_t be[4];
        size_t got = 0;
        if (io_pread_full(fd, be, sizeof(be), pos, &got) != 0 || got != sizeof(be))
            return io_fail(err, "cannot read recording", path);
        uint32_t len = bc_be32_load(be);
        if (len == TRAILER_MARK) {
            if (size - pos < TRAILER_LEN) {
                s->end = END_UNFINISHED; /* a trailer torn while it was appended */
                return BC_OK;
            }
            if (size - pos > TRAILER_LEN)
                return bc_fail(err, BC_ERR_PARSE, "'%s' has bytes after its trailer", path);
            if (io_pread_full(fd, s->trailer, TRAILER_LEN, pos, &got) != 0 || got != TRAILER_LEN)
                return io_fail(err, "cannot read recording", path);
            s->end = END_TRAILER;
            return BC_OK;
        }
        if (len < TAG_LEN || len > max_len || (off_t)(4 + len) > size - pos) {
            /* A length that cannot be, or a record cut short: the tail a
             * crash tore. Whatever follows could not be read anyway. */
            s->end = END_UNFINISHED;
            return BC_OK;
        }
        pos += 4 + (off_t)len;
        s->records++;
        if (len < max_len) {
            if (pos != size)
                return bc_fail(err, BC_ERR_PARSE,
                               "'%s': a short (final) segment is followed by more data", path);
            s->cut = pos;
            s->end = END_COMPLETE;
            return BC_OK;
        }
    }
}

static bc_status sidecar_read(const char *sidecar, uint8_t seal_key[KEY_LEN], int *present,
                              bc_error *err)
{
    *present = 0;
    int fd = open(sidecar, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return BC_OK;
    if (fd < 0)
        return io_fail(err, "cannot open seal sidecar", sidecar);
    uint8_t buf[SIDECAR_LEN + 1];
    size_t got = 0;
    bc_status rc = BC_OK;
    if (io_read_full(fd, buf, sizeof(buf), &got) != 0)
        rc = io_fail(err, "cannot read seal sidecar", sidecar);
    else if (got != SIDECAR_LEN || memcmp(buf, SIDECAR_MAGIC, MAGIC_LEN) != 0)
        rc = bc_fail(err, BC_ERR_PARSE, "'%s' is not a seal sidecar", sidecar);
    if (rc == BC_OK) {
        memcpy(seal_key, buf + MAGIC_LEN, KEY_LEN);
        *present = 1;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    (void)io_close(fd); /* read-only: nothing to lose */
    return rc;
}

/* SHA-256 and size of the whole file, read once in constant memory. */
static bc_status hash_file(int fd, const char *path, bc_recording_info *info, bc_error *err)
{
    uint8_t *buf = malloc(IO_CHUNK);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bc_status rc = BC_OK;
    off_t off = 0;
    if (buf == NULL || md == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory to hash '%s'", path);
        goto cleanup;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = crypto_fail(err, "hash the recording");
        goto cleanup;
    }
    for (;;) {
        size_t got = 0;
        if (io_pread_full(fd, buf, IO_CHUNK, off, &got) != 0) {
            rc = io_fail(err, "cannot read recording", path);
            goto cleanup;
        }
        if (got == 0)
            break;
        if (EVP_DigestUpdate(md, buf, got) != 1) {
            rc = crypto_fail(err, "hash the recording");
            goto cleanup;
        }
        off += (off_t)got;
    }
    unsigned int md_len = 0;
    if (EVP_DigestFinal_ex(md, info->sha256, &md_len) != 1) {
        rc = crypto_fail(err, "hash the recording");
        goto cleanup;
    }
    info->size = (uint64_t)off;

cleanup:
    EVP_MD_CTX_free(md);
    free(buf);
    return rc;
}

/* Cuts the file at s->cut, appends the trailer, fsyncs. */
static bc_status seal_append_trailer(int fd, const char *path, const header *h,
                                     const uint8_t seal_key[KEY_LEN], const scan_result *s,
                                     bc_error *err)
{
    uint8_t trailer[TRAILER_LEN];
    bc_be32_store(trailer, TRAILER_MARK);
    bc_be64_store(trailer + 4, s->records);
    if (trailer_mac(seal_key, h->hash, s->records, trailer + 12) != BC_OK)
        return crypto_fail(err, "compute the trailer MAC");
    if (ftruncate(fd, s->cut) != 0)
        return io_fail(err, "cannot cut the torn tail of", path);
    if (io_pwrite_all(fd, trailer, sizeof(trailer), s->cut) != 0)
        return io_fail(err, "cannot write the trailer of", path);
    if (fsync(fd) != 0)
        return io_fail(err, "cannot fsync recording", path);
    return BC_OK;
}

static int trailer_valid(const scan_result *s, const header *h, const uint8_t seal_key[KEY_LEN])
{
    uint8_t mac[HASH_LEN];
    if (bc_be64_load(s->trailer + 4) != s->records)
        return 0;
    if (trailer_mac(seal_key, h->hash, s->records, mac) != BC_OK)
        return 0;
    return CRYPTO_memcmp(mac, s->trailer + 12, HASH_LEN) == 0;
}

/* Decides, for a scanned file, what the seal has to do. */
static bc_status seal_fd(int fd, const char *path, const char *sidecar, bc_recording_info *info,
                         bc_error *err)
{
    header h;
    scan_result s;
    uint8_t seal_key[KEY_LEN] = {0};
    int have_sidecar = 0;
    struct stat st;
    bc_status rc = header_read(fd, path, &h, err);
    if (rc != BC_OK)
        return rc;
    if (fstat(fd, &st) != 0)
        return io_fail(err, "cannot stat recording", path);
    rc = seal_scan(fd, path, &h, st.st_size, &s, err);
    if (rc != BC_OK)
        return rc;
    rc = sidecar_read(sidecar, seal_key, &have_sidecar, err);
    if (rc != BC_OK)
        goto cleanup;

    if (!have_sidecar) {
        if (s.end == END_UNFINISHED)
            rc =
                bc_fail(err, BC_ERR_STATE,
                        "'%s' is unfinished but its seal sidecar is missing: cannot seal it", path);
        else if (s.end == END_TRAILER && bc_be64_load(s.trailer + 4) != s.records)
            rc = bc_fail(err, BC_ERR_TAMPERED, "'%s': the trailer's segment count is wrong", path);
        goto cleanup; /* finished already: nothing to change */
    }
    if (s.end == END_TRAILER && !trailer_valid(&s, &h, seal_key))
        s.end = END_UNFINISHED; /* a trailer from an interrupted seal: redo it */
    if (s.end == END_UNFINISHED) {
        rc = seal_append_trailer(fd, path, &h, seal_key, &s, err);
        if (rc != BC_OK)
            goto cleanup;
        info->sealed_now = 1;
        info->dropped = (uint64_t)(st.st_size - s.cut);
        s.end = END_TRAILER;
    }
    if (unlink(sidecar) != 0 || io_fsync_dir(sidecar) != 0)
        rc = io_fail(err, "cannot delete seal sidecar", sidecar);

cleanup:
    OPENSSL_cleanse(seal_key, sizeof(seal_key));
    if (rc != BC_OK)
        return rc;
    info->segments = s.records;
    info->interrupted = s.end == END_TRAILER;
    return hash_file(fd, path, info, err);
}

bc_status bc_recording_seal(const char *path, bc_recording_info *info, bc_error *err)
{
    if (path == NULL)
        return bc_fail(err, BC_ERR_INVAL, "path must not be NULL");
    bc_recording_info local;
    memset(&local, 0, sizeof(local));
    char *sidecar = path_with_suffix(path, BC_RECORDING_SEAL_SUFFIX);
    if (sidecar == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for the sidecar path");
    bc_status rc = BC_OK;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = io_fail(err, "cannot open recording", path);
        goto cleanup;
    }
    rc = seal_fd(fd, path, sidecar, &local, err);
    if (io_close(fd) != 0 && rc == BC_OK)
        rc = io_fail(err, "cannot close recording", path);
    if (rc == BC_OK && info != NULL)
        *info = local;

cleanup:
    free(sidecar);
    return rc;
}

/* ---- reader ------------------------------------------------------------ */

/* Reads from the file and hashes what arrived. */
static int reader_read(bc_recording_reader *r, uint8_t *buf, size_t len, size_t *got)
{
    if (io_read_full(r->fd, buf, len, got) != 0)
        return -1;
    if (*got > 0 && EVP_DigestUpdate(r->file_hash, buf, *got) != 1) {
        ERR_clear_error();
        errno = EIO;
        return -1;
    }
    r->size += *got;
    return 0;
}

/* Makes the reader sticky-failed with a sentence (": strerror" added for
 * BC_ERR_IO) and copies it to err. */
static bc_status reader_fail(bc_recording_reader *r, bc_error *err, bc_status rc, const char *fmt,
                             ...) __attribute__((format(printf, 4, 5)));

static bc_status reader_fail(bc_recording_reader *r, bc_error *err, bc_status rc, const char *fmt,
                             ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error.text, sizeof(r->error.text), fmt, ap);
    va_end(ap);
    if (rc == BC_ERR_IO) {
        size_t n = strlen(r->error.text);
        snprintf(r->error.text + n, sizeof(r->error.text) - n, ": %s", strerror(saved));
    }
    r->failed = rc;
    if (err != NULL)
        *err = r->error;
    errno = saved;
    return rc;
}

/* Unwraps the data key with the vault's private key. */
static bc_status reader_unwrap(bc_recording_reader *r, EVP_PKEY *vault_priv, bc_error *err)
{
    char id[BC_KEY_ID_LEN + 1];
    uint8_t vault_raw[BC_RAW_KEY_LEN];
    uint8_t kek[KEY_LEN];
    EVP_PKEY *eph = NULL;
    if (bc_key_id(vault_priv, id) != BC_OK || bc_key_raw_public(vault_priv, vault_raw) != BC_OK)
        return crypto_fail(err, "read the vault key");
    if (strcmp(id, r->h.pub.key_id) != 0)
        return bc_fail(err, BC_ERR_WRONG_KEY,
                       "recording '%s' is sealed for key %s, not for this key (%s)",
                       r->h.pub.recording_id, r->h.pub.key_id, id);
    bc_status rc = bc_key_from_raw_public(EVP_PKEY_X25519, r->h.eph_pub, &eph);
    if (rc != BC_OK)
        return crypto_fail(err, "read the ephemeral key");
    rc = wrap_kek(vault_priv, eph, r->h.eph_pub, vault_raw, kek);
    if (rc != BC_OK) {
        rc = bc_fail(err, BC_ERR_WRONG_KEY, "recording '%s': key agreement failed",
                     r->h.pub.recording_id);
        goto cleanup;
    }
    const char *rid = r->h.pub.recording_id;
    uint8_t tag[TAG_LEN];
    memcpy(tag, r->h.wrapped + KEY_LEN, TAG_LEN);
    rc = gcm_once(0, kek, r->h.wrap_nonce, (const uint8_t *)rid, strlen(rid), r->h.wrapped,
                  r->data_key, tag);
    if (rc == BC_ERR_TAMPERED)
        rc = bc_fail(err, BC_ERR_WRONG_KEY, "recording '%s': the data key does not unwrap", rid);
    else if (rc != BC_OK)
        rc = crypto_fail(err, "unwrap the data key");

cleanup:
    OPENSSL_cleanse(kek, sizeof(kek));
    EVP_PKEY_free(eph);
    return rc;
}

static bc_status reader_open(int fd, const char *name, EVP_PKEY *vault_priv,
                             bc_recording_reader **out, bc_error *err)
{
    if (fd < 0 || vault_priv == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "descriptor, vault key and output must be given");
    if (EVP_PKEY_get_id(vault_priv) != EVP_PKEY_X25519)
        return bc_fail(err, BC_ERR_INVAL, "the vault recording key is not an X25519 key");
    *out = NULL;
    bc_recording_reader *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for a recording reader");
    r->fd = fd;
    bc_status rc = header_read(fd, name, &r->h, err);
    if (rc != BC_OK)
        goto cleanup;
    r->file_hash = EVP_MD_CTX_new();
    r->rec = malloc((size_t)r->h.pub.segment_size + TAG_LEN);
    if (r->file_hash == NULL || r->rec == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory for a recording reader");
        goto cleanup;
    }
    if (EVP_DigestInit_ex(r->file_hash, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(r->file_hash, r->h.raw, r->h.raw_len) != 1) {
        rc = crypto_fail(err, "hash the recording");
        goto cleanup;
    }
    r->size = r->h.raw_len;
    rc = reader_unwrap(r, vault_priv, err);
    if (rc != BC_OK)
        goto cleanup;
    if (segment_ctx_new(r->data_key, 0, &r->aes, &r->ctx) != BC_OK) {
        rc = crypto_fail(err, "set up the segment cipher");
        goto cleanup;
    }
    if (reader_read(r, r->peek, sizeof(r->peek), &r->peek_len) != 0) {
        rc = io_fail(err, "cannot read recording", name);
        goto cleanup;
    }
    *out = r;
    r = NULL;

cleanup:
    bc_recording_reader_close(r);
    return rc;
}

bc_status bc_recording_reader_open_fd(int fd, EVP_PKEY *vault_priv, bc_recording_reader **out,
                                      bc_error *err)
{
    return reader_open(fd, "recording", vault_priv, out, err);
}

bc_status bc_recording_reader_open(const char *path, EVP_PKEY *vault_priv,
                                   bc_recording_reader **out, bc_error *err)
{
    if (path == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "path and output must not be NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(err, "cannot open recording", path);
    bc_status rc = reader_open(fd, path, vault_priv, out, err);
    if (rc != BC_OK) {
        (void)io_close(fd); /* read-only: nothing to lose */
        return rc;
    }
    (*out)->own_fd = 1;
    return BC_OK;
}

const bc_recording_header *bc_recording_reader_header(const bc_recording_reader *r)
{
    return r == NULL ? NULL : &r->h.pub;
}

/* The crash trailer: u32 mark (already read) | u64 count | HMAC, then EOF. */
static bc_status reader_trailer(bc_recording_reader *r, bc_error *err)
{
    uint8_t rest[TRAILER_LEN - 4 + 1];
    uint8_t seal_key[KEY_LEN], mac[HASH_LEN];
    size_t got = 0;
    if (reader_read(r, rest, sizeof(rest), &got) != 0)
        return reader_fail(r, err, BC_ERR_IO, "cannot read the trailer after segment %llu",
                           (unsigned long long)r->index);
    if (got < TRAILER_LEN - 4)
        return reader_fail(r, err, BC_ERR_TRUNCATED,
                           "the recording ends inside its trailer after segment %llu",
                           (unsigned long long)r->index);
    if (got > TRAILER_LEN - 4)
        return reader_fail(r, err, BC_ERR_PARSE, "bytes follow the trailer after segment %llu",
                           (unsigned long long)r->index);
    bc_status rc = hkdf_sha256(r->data_key, KEY_LEN, NULL, 0, seal_info, seal_key);
    if (rc == BC_OK)
        rc = trailer_mac(seal_key, r->h.hash, bc_be64_load(rest), mac);
    OPENSSL_cleanse(seal_key, sizeof(seal_key));
    if (rc != BC_OK)
        return reader_fail(r, err, BC_ERR_CRYPTO, "cannot check the trailer after segment %llu",
                           (unsigned long long)r->index);
    if (CRYPTO_memcmp(mac, rest + 8, HASH_LEN) != 0)
        return reader_fail(r, err, BC_ERR_TAMPERED,
                           "the trailer after segment %llu does not authenticate",
                           (unsigned long long)r->index);
    if (bc_be64_load(rest) != r->index)
        return reader_fail(r, err, BC_ERR_TAMPERED, "the trailer's segment count is not %llu",
                           (unsigned long long)r->index);
    r->done = 1;
    r->interrupted = 1;
    return BC_OK;
}

bc_status bc_recording_reader_next(bc_recording_reader *r, uint8_t *buf, size_t cap, size_t *len,
                                   int *done, bc_error *err)
{
    if (r == NULL || buf == NULL || len == NULL || done == NULL)
        return bc_fail(err, BC_ERR_INVAL, "reader, buffer, len and done must be given");
    *len = 0;
    *done = 0;
    if (r->failed != BC_OK) {
        if (err != NULL)
            *err = r->error;
        return r->failed;
    }
    if (r->done) {
        *done = 1;
        return BC_OK;
    }
    if (cap < r->h.pub.segment_size)
        return bc_fail(err, BC_ERR_INVAL, "buffer of %zu bytes is smaller than a segment (%u)", cap,
                       r->h.pub.segment_size);
    unsigned long long i = r->index;
    if (r->peek_len < sizeof(r->peek))
        return reader_fail(r, err, BC_ERR_TRUNCATED,
                           "the recording ends after segment %llu without a last segment or a "
                           "trailer",
                           i);
    uint32_t rec_len = bc_be32_load(r->peek);
    if (rec_len == TRAILER_MARK) {
        bc_status rc = reader_trailer(r, err);
        *done = r->done;
        return rc;
    }
    if (rec_len < TAG_LEN || rec_len > (uint64_t)r->h.pub.segment_size + TAG_LEN)
        return reader_fail(r, err, BC_ERR_PARSE, "segment %llu has an impossible length", i);
    size_t got = 0;
    if (reader_read(r, r->rec, rec_len, &got) != 0)
        return reader_fail(r, err, BC_ERR_IO, "cannot read segment %llu", i);
    if (got < rec_len)
        return reader_fail(r, err, BC_ERR_TRUNCATED, "the recording ends inside segment %llu", i);
    if (reader_read(r, r->peek, sizeof(r->peek), &r->peek_len) != 0)
        return reader_fail(r, err, BC_ERR_IO, "cannot read after segment %llu", i);

    int last = r->peek_len == 0; /* end of file: this must be the last segment */
    bc_status rc = segment_decrypt(r->ctx, r->h.hash, r->index, last, r->rec, rec_len, buf);
    if (rc == BC_ERR_TAMPERED && last &&
        segment_decrypt(r->ctx, r->h.hash, r->index, 0, r->rec, rec_len, buf) == BC_OK) {
        OPENSSL_cleanse(buf, rec_len - TAG_LEN);
        return reader_fail(r, err, BC_ERR_TRUNCATED,
                           "the recording is cut off after segment %llu (no last segment)", i);
    }
    if (rc == BC_ERR_TAMPERED)
        return reader_fail(r, err, rc,
                           "segment %llu does not authenticate (tampered, reordered "
                           "or from another recording)",
                           i);
    if (rc != BC_OK)
        return reader_fail(r, err, rc, "cannot decrypt segment %llu", i);
    *len = rec_len - TAG_LEN;
    r->plaintext_size += *len;
    r->index++;
    if (last) {
        r->done = 1;
        *done = 1;
    }
    return BC_OK;
}

bc_status bc_recording_reader_info(const bc_recording_reader *r, bc_recording_info *info)
{
    if (r == NULL || info == NULL)
        return BC_ERR_INVAL;
    if (!r->done)
        return BC_ERR_STATE;
    memset(info, 0, sizeof(*info));
    /* A copy: the reader's running hash stays usable. */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int md_len = 0;
    if (md == NULL || EVP_MD_CTX_copy_ex(md, r->file_hash) != 1 ||
        EVP_DigestFinal_ex(md, info->sha256, &md_len) != 1) {
        EVP_MD_CTX_free(md);
        ERR_clear_error();
        return BC_ERR_CRYPTO;
    }
    EVP_MD_CTX_free(md);
    info->size = r->size;
    info->segments = r->index;
    info->plaintext_size = r->plaintext_size;
    info->interrupted = r->interrupted;
    return BC_OK;
}

void bc_recording_reader_close(bc_recording_reader *r)
{
    if (r == NULL)
        return;
    if (r->own_fd)
        (void)io_close(r->fd); /* read-only: nothing to lose */
    OPENSSL_cleanse(r->data_key, sizeof(r->data_key));
    EVP_CIPHER_CTX_free(r->ctx);
    EVP_CIPHER_free(r->aes);
    EVP_MD_CTX_free(r->file_hash);
    free(r->rec);
    free(r);
}

/* Reads the whole recording; each segment goes to out_fd unless it is -1. */
static bc_status reader_drain(bc_recording_reader *r, int out_fd, const char *out_path,
                              bc_recording_info *info, bc_error *err)
{
    size_t cap = r->h.pub.segment_size;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory for a segment buffer");
    bc_status rc = BC_OK;
    int done = 0;
    while (!done) {
        size_t len = 0;
        rc = bc_recording_reader_next(r, buf, cap, &len, &done, err);
        if (rc != BC_OK)
            break;
        if (out_fd >= 0 && len > 0 && io_write_all(out_fd, buf, len) != 0) {
            rc = io_fail(err, "cannot write plaintext to", out_path);
            break;
        }
    }
    OPENSSL_cleanse(buf, cap);
    free(buf);
    if (rc == BC_OK && info != NULL && bc_recording_reader_info(r, info) != BC_OK)
        rc = crypto_fail(err, "finish the file hash");
    return rc;
}

bc_status bc_recording_decrypt_file(const char *in_path, const char *out_path, EVP_PKEY *vault_priv,
                                    bc_recording_info *info, bc_error *err)
{
    if (in_path == NULL || out_path == NULL)
        return bc_fail(err, BC_ERR_INVAL, "input and output paths must be given");
    bc_recording_reader *r = NULL;
    bc_status rc = bc_recording_reader_open(in_path, vault_priv, &r, err);
    if (rc != BC_OK)
        return rc;
    int out_fd = open(out_path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (out_fd < 0) {
        if (errno == EEXIST)
            rc = bc_fail(err, BC_ERR_EXISTS, "output '%s' already exists", out_path);
        else
            rc = io_fail(err, "cannot create", out_path);
        goto cleanup;
    }
    rc = reader_drain(r, out_fd, out_path, info, err);
    if (rc == BC_OK && fsync(out_fd) != 0)
        rc = io_fail(err, "cannot fsync", out_path);
    if (io_close(out_fd) != 0 && rc == BC_OK)
        rc = io_fail(err, "cannot close", out_path);
    if (rc != BC_OK)
        (void)unlink(out_path); /* no unauthenticated plaintext stays behind */

cleanup:
    bc_recording_reader_close(r);
    return rc;
}

bc_status bc_recording_verify(const char *path, EVP_PKEY *vault_priv, bc_error *err)
{
    bc_recording_reader *r = NULL;
    bc_status rc = bc_recording_reader_open(path, vault_priv, &r, err);
    if (rc != BC_OK)
        return rc;
    rc = reader_drain(r, -1, NULL, NULL, err);
    bc_recording_reader_close(r);
    return rc;
}
