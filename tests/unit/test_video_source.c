/* Unit tests for device-agent/video_source: the synthetic stream is the
 * documented byte layout (checked against OpenSSL's SHA-256 here), is the
 * same whatever the read sizes, and the verifier accepts any contiguous
 * slice and rejects a changed, missing or foreign byte; the file source
 * reads without blocking and reports EOF distinctly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "device-agent/reactor.h"
#include "device-agent/video_source.h"
#include "test_util.h"

#define SEED 0x0123456789abcdefULL
#define FS BC_SYNTH_FRAME_SIZE

static void block_hash(uint64_t seed, uint64_t frame, uint32_t block, uint8_t out[32])
{
    uint8_t in[20];
    for (int i = 0; i < 8; i++) {
        in[i] = (uint8_t)(seed >> (56 - 8 * i));
        in[8 + i] = (uint8_t)(frame >> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++)
        in[16 + i] = (uint8_t)(block >> (24 - 8 * i));
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(in, sizeof(in), out, &n, EVP_sha256(), NULL), 1);
}

static void test_frame_layout(void **state)
{
    (void)state;
    uint8_t frame[FS], h[32];
    assert_int_equal(bc_synthetic_frame(SEED, 258, frame), BC_OK);
    assert_memory_equal(frame, "BCSYNTH1", 8);
    static const uint8_t frame_be[8] = {0, 0, 0, 0, 0, 0, 1, 2};
    static const uint8_t seed_be[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_memory_equal(frame + 8, frame_be, 8);
    assert_memory_equal(frame + 16, seed_be, 8);
    block_hash(SEED, 258, 0, h);
    assert_memory_equal(frame + 24, h, 32);
    block_hash(SEED, 258, 1, h);
    assert_memory_equal(frame + 56, h, 32);
    /* 4072 payload bytes = 127 whole blocks + 8 bytes of block 127 */
    block_hash(SEED, 258, 126, h);
    assert_memory_equal(frame + 24 + 126 * 32, h, 32);
    block_hash(SEED, 258, 127, h);
    assert_memory_equal(frame + 24 + 127 * 32, h, 8);

    uint8_t other[FS];
    assert_int_equal(bc_synthetic_frame(SEED + 1, 258, other), BC_OK);
    assert_memory_not_equal(frame + 24, other + 24, FS - 24);
}

static uint8_t *stream_of(uint64_t seed, size_t frames)
{
    uint8_t *s = malloc(frames * FS);
    assert_non_null(s);
    for (size_t i = 0; i < frames; i++)
        assert_int_equal(bc_synthetic_frame(seed, i, s + i * FS), BC_OK);
    return s;
}

static void test_synthetic_source_reads(void **state)
{
    (void)state;
    bc_video_source *src = NULL;
    bc_error err;
    assert_int_equal(bc_video_synthetic_new(SEED, 0, &src, &err), BC_ERR_INVAL);
    assert_int_equal(bc_video_synthetic_new(SEED, 4000000, &src, &err), BC_OK);
    assert_string_equal(bc_video_source_name(src), "synthetic");
    assert_int_equal(bc_video_source_fd(src), -1);
    assert_int_equal(bc_video_source_bytes_per_tick(src, 100), 50000);
    assert_int_equal(bc_video_source_bytes_per_tick(src, 1000), 500000);
    assert_int_equal(bc_video_source_bytes_per_tick(src, 0), 0);

    size_t total = 6 * FS;
    uint8_t *want = stream_of(SEED, 6);
    uint8_t *got = malloc(total);
    static const size_t sizes[] = {1, 1000, 4095, 7000, 3, 4096, 5000};
    size_t off = 0;
    for (size_t i = 0; off < total; i++) {
        size_t ask = sizes[i % 7];
        if (ask > total - off)
            ask = total - off;
        size_t n = 0;
        bool eof = true;
        assert_int_equal(bc_video_source_read(src, got + off, ask, &n, &eof, &err), BC_OK);
        assert_int_equal(n, ask);
        assert_false(eof);
        off += n;
    }
    assert_memory_equal(got, want, total);
    free(got);
    free(want);
    bc_video_source_free(src);
    bc_video_source_free(NULL);
}

static void test_verify(void **state)
{
    (void)state;
    uint8_t *s = stream_of(SEED, 8);
    uint64_t first = 99, frames = 99;
    bc_error err;

    assert_int_equal(bc_synthetic_verify(s, 8 * FS, SEED, &first, &frames, &err), BC_OK);
    assert_int_equal(first, 0);
    assert_int_equal(frames, 8);
    /* any contiguous slice: starts and ends mid-frame */
    assert_int_equal(bc_synthetic_verify(s + 5000, 20000, SEED, &first, &frames, &err), BC_OK);
    assert_int_equal(first, 1);           /* byte 5000 is in frame 1 */
    assert_int_equal(frames, 24999 / FS); /* frames 1..6 */
    assert_int_equal(bc_synthetic_verify(s + 1, 2 * FS, SEED, &first, &frames, &err), BC_OK);
    assert_int_equal(first, 0);
    assert_int_equal(frames, 3);
    assert_int_equal(bc_synthetic_verify(s + 3 * FS, FS, SEED, &first, &frames, &err), BC_OK);
    assert_int_equal(first, 3);
    assert_int_equal(frames, 1);
    assert_int_equal(bc_synthetic_verify(s, 0, SEED, &first, &frames, &err), BC_OK);
    assert_int_equal(frames, 0);

    /* a flipped byte anywhere, in a header or a payload */
    size_t spots[] = {0, 9, 30, FS - 1, 3 * FS + 2000, 8 * FS - 1};
    for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
        s[spots[i]] ^= 0x40;
        bc_status rc = bc_synthetic_verify(s, 8 * FS, SEED, &first, &frames, &err);
        assert_true(rc == BC_ERR_TAMPERED || (spots[i] < 24 && rc == BC_ERR_PARSE));
        s[spots[i]] ^= 0x40;
    }
    assert_int_equal(bc_synthetic_verify(s, 8 * FS, SEED, &first, &frames, &err), BC_OK);

    /* a missing piece in the middle */
    uint8_t *gap = malloc(8 * FS);
    memcpy(gap, s, 3 * FS + 100);
    memcpy(gap + 3 * FS + 100, s + 3 * FS + 200, 5 * FS - 200);
    assert_int_equal(bc_synthetic_verify(gap, 8 * FS - 100, SEED, &first, &frames, &err),
                     BC_ERR_TAMPERED);
    assert_non_null(strstr(err.text, "frame 3"));
    /* frames out of order */
    memcpy(gap, s + FS, FS);
    memcpy(gap + FS, s, FS);
    assert_int_equal(bc_synthetic_verify(gap, 2 * FS, SEED, &first, &frames, &err),
                     BC_ERR_TAMPERED);
    free(gap);

    /* another camera's seed, or too little to find a header */
    assert_int_equal(bc_synthetic_verify(s, 8 * FS, SEED + 1, &first, &frames, &err), BC_ERR_PARSE);
    assert_int_equal(bc_synthetic_verify(s + 30, 100, SEED, &first, &frames, &err), BC_ERR_PARSE);
    /* bytes claimed to precede frame 0 */
    uint8_t pre[FS + 10];
    memset(pre, 0, 10);
    memcpy(pre + 10, s, FS);
    assert_int_equal(bc_synthetic_verify(pre, sizeof(pre), SEED, &first, &frames, &err),
                     BC_ERR_TAMPERED);
    free(s);
}

static void test_file_source(void **state)
{
    (void)state;
    char dir[64], path[128];
    assert_int_equal(bc_test_tempdir(dir, sizeof(dir), "video"), BC_OK);
    snprintf(path, sizeof(path), "%s/video.bin", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 10000; i++)
        fputc(i & 0xff, fp);
    fclose(fp);

    bc_video_source *src = NULL;
    bc_error err;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    assert_int_equal(bc_video_file_new(missing, &src, &err), BC_ERR_IO);
    assert_int_equal(bc_video_file_new(path, &src, &err), BC_OK);
    assert_string_equal(bc_video_source_name(src), "file");
    assert_true(bc_video_source_fd(src) >= 0);
    assert_int_equal(bc_video_source_bytes_per_tick(src, 100), 0);
    uint8_t buf[4096];
    size_t total = 0, n = 0;
    bool eof = false;
    int reads = 0;
    while (!eof) {
        assert_int_equal(bc_video_source_read(src, buf, sizeof(buf), &n, &eof, &err), BC_OK);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(buf[i], (total + i) & 0xff);
        total += n;
        assert_true(++reads < 10);
    }
    assert_int_equal(total, 10000);
    assert_int_equal(n, 0);
    bc_video_source_free(src);
    unlink(path);

    /* a FIFO with a writer: no data is "nothing now", not EOF */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(bc_video_file_new(path, &src, &err), BC_OK);
    int wfd = open(path, O_WRONLY | O_NONBLOCK);
    assert_true(wfd >= 0);
    assert_int_equal(bc_video_source_read(src, buf, sizeof(buf), &n, &eof, &err), BC_OK);
    assert_int_equal(n, 0);
    assert_false(eof);

    assert_int_equal(write(wfd, "frame", 5), 5);
    assert_int_equal(bc_video_source_read(src, buf, sizeof(buf), &n, &eof, &err), BC_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "frame", 5);
    close(wfd);
    assert_int_equal(bc_video_source_read(src, buf, sizeof(buf), &n, &eof, &err), BC_OK);
    assert_int_equal(n, 0);
    assert_true(eof);
    bc_video_source_free(src);
    unlink(path);
    rmdir(dir);
}

static int readable_calls;

static void on_readable(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    readable_calls++;
    bc_video_source *src = userdata;
    uint8_t buf[64];
    size_t n = 0;
    bool eof = false;
    assert_int_equal(bc_video_source_read(src, buf, sizeof(buf), &n, &eof, NULL), BC_OK);
    if (eof) {
        bc_reactor_remove_fd(r, fd);
        bc_reactor_stop(r);
    }
}

static void test_stdin_through_reactor(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved_stdin = dup(STDIN_FILENO);
    assert_true(saved_stdin >= 0);
    assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
    close(p[0]);
    int before = fcntl(STDIN_FILENO, F_GETFL);
    assert_false(before & O_NONBLOCK);

    bc_video_source *src = NULL;
    bc_error err;
    assert_int_equal(bc_video_file_new("-", &src, &err), BC_OK);
    assert_int_equal(bc_video_source_fd(src), STDIN_FILENO);
    assert_true(fcntl(STDIN_FILENO, F_GETFL) & O_NONBLOCK);

    bc_reactor *r = NULL;
    assert_int_equal(bc_reactor_new(&r, &err), BC_OK);
    assert_int_equal(bc_reactor_add_fd(r, STDIN_FILENO, BC_REACTOR_READ, on_readable, src, &err),
                     BC_OK);
    assert_int_equal(write(p[1], "abc", 3), 3);
    close(p[1]); /* then EOF */
    readable_calls = 0;
    assert_int_equal(bc_reactor_run(r, &err), BC_OK);
    assert_true(readable_calls >= 2); /* the data, then the EOF */
    bc_reactor_free(r);

    bc_video_source_free(src);
    assert_int_equal(fcntl(STDIN_FILENO, F_GETFL), before); /* flags restored, not closed */
    assert_int_equal(dup2(saved_stdin, STDIN_FILENO), STDIN_FILENO);
    close(saved_stdin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_layout),
        cmocka_unit_test(test_synthetic_source_reads),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_file_source),
        cmocka_unit_test(test_stdin_through_reactor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
