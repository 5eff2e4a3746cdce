/*
 * video_source.c - the function-table dispatch, the synthetic source and
 * its verifier, and the file/stdin source.
 *
 * The synthetic source hands out the stream byte by byte in whatever read
 * sizes the caller asks for, generating one 4096-byte frame at a time, so
 * the stream is the same whatever the reads' sizes. The verifier locates
 * the first frame header in the slice it is given, derives the slice's
 * offset in the stream from it, and then regenerates and compares every
 * frame the slice touches.
 */
#include "device-agent/video_source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "proto/encoding.h"

#define SHA256_LEN 32

/* ---- dispatch ---- */

bc_status bc_video_source_read(bc_video_source *src, uint8_t *buf, size_t cap, size_t *got,
                               bool *eof, bc_error *err)
{
    *got = 0;
    *eof = false;
    return src->ops->read(src, buf, cap, got, eof, err);
}

int bc_video_source_fd(const bc_video_source *src)
{
    return src->ops->fd(src);
}

size_t bc_video_source_bytes_per_tick(const bc_video_source *src, int64_t tick_ms)
{
    return src->ops->bytes_per_tick(src, tick_ms);
}

const char *bc_video_source_name(const bc_video_source *src)
{
    return src->ops->name;
}

void bc_video_source_free(bc_video_source *src)
{
    if (src == NULL)
        return;
    src->ops->free(src);
    free(src);
}

static bc_status source_new(const bc_video_source_ops *ops, void *impl, bc_video_source **out)
{
    bc_video_source *src = malloc(sizeof(*src));
    if (src == NULL)
        return BC_ERR_NOMEM;
    src->ops = ops;
    src->impl = impl;
    *out = src;
    return BC_OK;
}

/* ---- synthetic frames ---- */

bc_status bc_synthetic_frame(uint64_t seed, uint64_t frame, uint8_t out[BC_SYNTH_FRAME_SIZE])
{
    memcpy(out, BC_SYNTH_MAGIC, 8);
    bc_be64_store(out + 8, frame);
    bc_be64_store(out + 16, seed);
    bc_status rc = BC_ERR_CRYPTO;
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (md == NULL || ctx == NULL)
        goto cleanup;
    uint8_t input[20];
    bc_be64_store(input, seed);
    bc_be64_store(input + 8, frame);
    size_t pos = BC_SYNTH_HEADER_SIZE;
    for (uint32_t block = 0; pos < BC_SYNTH_FRAME_SIZE; block++) {
        uint8_t digest[SHA256_LEN];
        unsigned int n = 0;
        bc_be32_store(input + 16, block);
        if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 ||
            EVP_DigestUpdate(ctx, input, sizeof(input)) != 1 ||
            EVP_DigestFinal_ex(ctx, digest, &n) != 1 || n != SHA256_LEN)
            goto cleanup;
        size_t take =
            BC_SYNTH_FRAME_SIZE - pos < SHA256_LEN ? BC_SYNTH_FRAME_SIZE - pos : SHA256_LEN;
        memcpy(out + pos, digest, take);
        pos += take;
    }
    rc = BC_OK;

cleanup:
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return rc;
}

/* ---- the synthetic source ---- */

typedef struct synth_source {
    uint64_t seed;
    uint64_t bitrate_bps;
    uint64_t frame; /* number of the frame in buf */
    size_t pos;     /* next byte of buf to hand out; FRAME_SIZE: generate the next */
    bool started;
    uint8_t buf[BC_SYNTH_FRAME_SIZE];
} synth_source;

static bc_status synth_read(bc_video_source *src, uint8_t *buf, size_t cap, size_t *got, bool *eof,
                            bc_error *err)
{
    synth_source *s = src->impl;
    size_t done = 0;
    while (done < cap) {
        if (s->pos == BC_SYNTH_FRAME_SIZE) {
            uint64_t next = s->started ? s->frame + 1 : 0;
            if (bc_synthetic_frame(s->seed, next, s->buf) != BC_OK) {
                *got = done;
                return bc_fail(err, BC_ERR_CRYPTO, "synthetic source: SHA-256 failed");
            }
            s->frame = next;
            s->started = true;
            s->pos = 0;
        }
        size_t take = BC_SYNTH_FRAME_SIZE - s->pos;
        if (take > cap - done)
            take = cap - done;
        memcpy(buf + done, s->buf + s->pos, take);
        s->pos += take;
        done += take;
    }
    *got = done;
    return BC_OK;
}

static int synth_fd(const bc_video_source *src)
{
    return -1;
}

static size_t synth_bytes_per_tick(const bc_video_source *src, int64_t tick_ms)
{
    const synth_source *s = src->impl;
    if (tick_ms <= 0)
        return 0;
    return (size_t)(s->bitrate_bps / 8 * (uint64_t)tick_ms / 1000);
}

static void synth_free(bc_video_source *src)
{
    free(src->impl);
}

static const bc_video_source_ops synth_ops = {
    .name = "synthetic",
    .read = synth_read,
    .fd = synth_fd,
    .bytes_per_tick = synth_bytes_per_tick,
    .free = synth_free,
};

bc_status bc_video_synthetic_new(uint64_t seed, uint64_t bitrate_bps, bc_video_source **out,
                                 bc_error *err)
{
    *out = NULL;
    if (bitrate_bps == 0)
        return bc_fail(err, BC_ERR_INVAL, "synthetic source: the bitrate must be above 0");
    synth_source *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "synthetic source: no memory");
    s->seed = seed;
    s->bitrate_bps = bitrate_bps;
    s->pos = BC_SYNTH_FRAME_SIZE;
    if (source_new(&synth_ops, s, out) != BC_OK) {
        free(s);
        return bc_fail(err, BC_ERR_NOMEM, "synthetic source: no memory");
    }
    return BC_OK;
}

/* ---- the verifier ---- */

/* Finds the first header of seed within buf[0 .. 4096+23]; -1 if none. */
static long find_header(const uint8_t *buf, size_t len, uint64_t seed)
{
    for (size_t p = 0; p < BC_SYNTH_FRAME_SIZE && p + BC_SYNTH_HEADER_SIZE <= len; p++) {
        if (memcmp(buf + p, BC_SYNTH_MAGIC, 8) == 0 && bc_be64_load(buf + p + 16) == seed)
            return (long)p;
    }
    return -1;
}

bc_status bc_synthetic_verify(const uint8_t *buf, size_t len, uint64_t seed, uint64_t *first_frame,
                              uint64_t *frames, bc_error *err)
{
    *first_frame = 0;
    *frames = 0;
    if (len == 0)
        return BC_OK;
    long p = find_header(buf, len, seed);
    if (p < 0)
        return bc_fail(err, BC_ERR_PARSE, "no synthetic frame header of seed %llu found",
                       (unsigned long long)seed);
    uint64_t f = bc_be64_load(buf + p + 8);
    if (f > UINT64_MAX / BC_SYNTH_FRAME_SIZE - len / BC_SYNTH_FRAME_SIZE - 2)
        return bc_fail(err, BC_ERR_PARSE, "frame number %llu is out of range",
                       (unsigned long long)f);
    if (p > 0 && f == 0)
        return bc_fail(err, BC_ERR_TAMPERED, "%ld bytes precede frame 0", p);
    /* the stream offset of buf[0] */
    uint64_t offset = f * BC_SYNTH_FRAME_SIZE - (uint64_t)p;

    uint8_t frame[BC_SYNTH_FRAME_SIZE];
    size_t i = 0;
    uint64_t count = 0;
    while (i < len) {
        uint64_t at = offset + i;
        uint64_t n_frame = at / BC_SYNTH_FRAME_SIZE;
        size_t k = (size_t)(at % BC_SYNTH_FRAME_SIZE);
        size_t n = BC_SYNTH_FRAME_SIZE - k < len - i ? BC_SYNTH_FRAME_SIZE - k : len - i;
        if (bc_synthetic_frame(seed, n_frame, frame) != BC_OK)
            return bc_fail(err, BC_ERR_CRYPTO, "SHA-256 failed");
        if (memcmp(buf + i, frame + k, n) != 0) {
            size_t d = 0;
            while (buf[i + d] == frame[k + d])
                d++;
            return bc_fail(err, BC_ERR_TAMPERED, "byte %zu (frame %llu, offset %zu) differs", i + d,
                           (unsigned long long)n_frame, k + d);
        }
        i += n;
        count++;
    }
    *first_frame = offset / BC_SYNTH_FRAME_SIZE;
    *frames = count;
    return BC_OK;
}

/* ---- the file / stdin source ---- */

typedef struct file_source {
    int fd;
    bool is_stdin;
    int saved_flags;
} file_source;

static bc_status file_read(bc_video_source *src, uint8_t *buf, size_t cap, size_t *got, bool *eof,
                           bc_error *err)
{
    file_source *f = src->impl;
    for (;;) {
        ssize_t n = read(f->fd, buf, cap);
        if (n > 0) {
            *got = (size_t)n;
            return BC_OK;
        }
        if (n == 0) {
            *eof = cap > 0;
            return BC_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return BC_OK;
        return bc_fail(err, BC_ERR_IO, "video source: read failed: %s", strerror(errno));
    }
}

static int file_fd(const bc_video_source *src)
{
    const file_source *f = src->impl;
    return f->fd;
}

static size_t file_bytes_per_tick(const bc_video_source *src, int64_t tick_ms)
{
    return 0;
}

static void file_free(bc_video_source *src)
{
    file_source *f = src->impl;
    if (f->is_stdin)
        fcntl(f->fd, F_SETFL, f->saved_flags);
    else
        close(f->fd);
    free(f);
}

static const bc_video_source_ops file_ops = {
    .name = "file",
    .read = file_read,
    .fd = file_fd,
    .bytes_per_tick = file_bytes_per_tick,
    .free = file_free,
};

bc_status bc_video_file_new(const char *path, bc_video_source **out, bc_error *err)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL, "video source: no file name");
    file_source *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "video source: no memory");
    bc_status rc = BC_OK;
    f->is_stdin = strcmp(path, "-") == 0;
    f->fd = f->is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f->fd < 0) {
        rc = bc_fail(err, BC_ERR_IO, "video source: cannot open '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    f->saved_flags = fcntl(f->fd, F_GETFL);
    if (f->saved_flags < 0 || fcntl(f->fd, F_SETFL, f->saved_flags | O_NONBLOCK) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "video source: cannot make '%s' non-blocking: %s", path,
                     strerror(errno));
        goto cleanup;
    }
    rc = source_new(&file_ops, f, out);
    if (rc != BC_OK)
        bc_fail(err, rc, "video source: no memory");

cleanup:
    if (rc != BC_OK) {
        if (f->fd >= 0 && !f->is_stdin)
            close(f->fd);
        free(f);
    }
    return rc;
}
