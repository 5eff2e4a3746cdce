/*
 * bench_recording - throughput of the recording writer against raw
 * AES-256-GCM, measured in the same run on the same machine.
 *
 *   raw EVP       AES-256-GCM over 64 KiB buffers (nonce, 41-byte AAD, data,
 *                 tag): the ceiling, what OpenSSL itself does.
 *   raw + SHA-256 the same plus SHA-256 over the ciphertext: the crypto the
 *                 writer cannot avoid, since it reports the file's hash.
 *   segment       bc_recording_segment_encrypt on 64 KiB segments: the
 *                 writer's crypto path without any I/O.
 *   writer DIR    bc_recording_writer_open/write/close into a file in DIR
 *                 (tmpfs /dev/shm: memory copies only; /tmp: the page cache
 *                 and the final fsync), fed in 64 KiB pieces.
 *
 * The first line is `openssl speed -evp aes-256-gcm` on 64 KiB blocks, run
 * as a child process in the same run: the reference the issue names.
 *
 * Each figure is the median of five runs. Usage:
 *   bench_recording [MiB per run (default 256)] [segment size (default 65536)]
 * Build with -DCMAKE_BUILD_TYPE=Release and without sanitizers for
 * meaningful numbers; the program says so when it was not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "proto/recording.h"
#include "proto/sign.h"

#define RUNS 5
#define PIECE (64 * 1024)

typedef double (*bench_fn)(void *arg);

typedef struct bench_ctx {
    size_t total;    /* bytes per run */
    uint32_t seg;    /* segment size */
    uint8_t *src;    /* PIECE or seg bytes of random plaintext, whichever is larger */
    uint8_t *dst;    /* room for one record */
    EVP_PKEY *vault; /* X25519 recording key */
    const char *dir; /* for the writer runs */
    int counter;
} bench_ctx;

static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime");
        exit(1);
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_recording: %s\n", what);
    exit(1);
}

static EVP_CIPHER_CTX *keyed_gcm(EVP_CIPHER **aes)
{
    uint8_t key[32];
    *aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (*aes == NULL || ctx == NULL || RAND_bytes(key, sizeof(key)) != 1 ||
        EVP_EncryptInit_ex(ctx, *aes, NULL, key, NULL) != 1)
        die("cannot set up AES-256-GCM");
    return ctx;
}

/* Raw EVP: the same per-buffer work the format needs, nothing else. */
static double run_raw(void *arg)
{
    bench_ctx *b = arg;
    EVP_CIPHER *aes = NULL;
    EVP_CIPHER_CTX *ctx = keyed_gcm(&aes);
    uint8_t nonce[12] = {0}, aad[41] = {0}, tag[16];
    size_t n = b->total / b->seg;
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        int len = 0;
        nonce[11] = (uint8_t)i;
        aad[39] = (uint8_t)i;
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
            EVP_EncryptUpdate(ctx, NULL, &len, aad, sizeof(aad)) != 1 ||
            EVP_EncryptUpdate(ctx, b->dst, &len, b->src, (int)b->seg) != 1 ||
            EVP_EncryptFinal_ex(ctx, b->dst + len, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) != 1)
            die("raw AES-256-GCM failed");
    }
    double t = now() - t0;
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(aes);
    return (double)(n * b->seg) / t;
}

/* Raw EVP AES-256-GCM plus SHA-256 over the ciphertext: the crypto the
 * writer must do per byte (it hashes the file as it writes it). */
static double run_raw_hashed(void *arg)
{
    bench_ctx *b = arg;
    EVP_CIPHER *aes = NULL;
    EVP_CIPHER_CTX *ctx = keyed_gcm(&aes);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t nonce[12] = {0}, aad[41] = {0}, tag[16], digest[32];
    unsigned int md_len = 0;
    size_t n = b->total / b->seg;
    double t0 = now();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        die("cannot set up SHA-256");
    for (size_t i = 0; i < n; i++) {
        int len = 0;
        nonce[11] = (uint8_t)i;
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
            EVP_EncryptUpdate(ctx, NULL, &len, aad, sizeof(aad)) != 1 ||
            EVP_EncryptUpdate(ctx, b->dst, &len, b->src, (int)b->seg) != 1 ||
            EVP_EncryptFinal_ex(ctx, b->dst + len, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) != 1 ||
            EVP_DigestUpdate(md, b->dst, b->seg) != 1)
            die("raw AES-256-GCM + SHA-256 failed");
    }
    if (EVP_DigestFinal_ex(md, digest, &md_len) != 1)
        die("SHA-256 failed");
    double t = now() - t0;
    EVP_MD_CTX_free(md);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(aes);
    return (double)(n * b->seg) / t;
}

/* The writer's segment encryption, no I/O. */
static double run_segment(void *arg)
{
    bench_ctx *b = arg;
    EVP_CIPHER *aes = NULL;
    EVP_CIPHER_CTX *ctx = keyed_gcm(&aes);
    uint8_t hash[32] = {0};
    size_t n = b->total / b->seg;
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        if (bc_recording_segment_encrypt(ctx, hash, i, 0, b->src, b->seg, b->dst) != BC_OK)
            die("bc_recording_segment_encrypt failed");
    double t = now() - t0;
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(aes);
    return (double)(n * b->seg) / t;
}

/* The whole writer into a file: open (key wrap, sidecar, header), write in
 * 64 KiB pieces, close (final segment, fsync, sidecar removed). */
static double run_writer(void *arg)
{
    bench_ctx *b = arg;
    char path[512];
    snprintf(path, sizeof(path), "%s/bench-rec-%ld-%d.bcrec", b->dir, (long)getpid(), b->counter++);
    bc_recording_writer *w = NULL;
    bc_error err = {{0}};
    bc_recording_info info;
    double t0 = now();
    if (bc_recording_writer_open(path, b->vault, NULL, "bench", "cam-bench", 0, b->seg, &w, &err) !=
        BC_OK) {
        fprintf(stderr, "bench_recording: %s\n", err.text);
        exit(1);
    }
    for (size_t done = 0; done < b->total; done += PIECE)
        if (bc_recording_writer_write(w, b->src, PIECE) != BC_OK)
            die(bc_recording_writer_error(w));
    if (bc_recording_writer_close(w, &info) != BC_OK)
        die("closing the recording failed");
    double t = now() - t0;
    if (unlink(path) != 0)
        perror("unlink");
    return (double)info.plaintext_size / t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(bench_fn fn, bench_ctx *b)
{
    double r[RUNS];
    for (int i = 0; i < RUNS; i++)
        r[i] = fn(b);
    qsort(r, RUNS, sizeof(r[0]), cmp_double);
    return r[RUNS / 2];
}

/* `openssl speed` prints "AES-256-GCM  3364280.63k" (thousands of bytes
 * per second) for -bytes 65536; 0 when the command is missing or fails. */
static double openssl_speed(void)
{
    FILE *p = popen("openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3 2>/dev/null", "r");
    if (p == NULL)
        return 0;
    char line[256];
    double kbps = 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strncmp(line, "AES-256-GCM", 11) == 0 && sscanf(line + 11, " %lfk", &kbps) != 1)
            kbps = 0;
    }
    pclose(p);
    return kbps * 1000.0;
}

static void report(const char *name, double bps, double raw)
{
    printf("%-28s %10.1f MB/s   %5.2f x raw\n", name, bps / 1e6, bps / raw);
}

int main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 256;
    long seg = argc > 2 ? strtol(argv[2], NULL, 10) : BC_RECORDING_SEGMENT_DEFAULT;
    if (mib <= 0 || mib > 65536 || seg < (long)BC_RECORDING_SEGMENT_MIN ||
        seg > (long)BC_RECORDING_SEGMENT_MAX) {
        fprintf(stderr, "usage: bench_recording [MiB 1..65536] [segment size %u..%u]\n",
                BC_RECORDING_SEGMENT_MIN, BC_RECORDING_SEGMENT_MAX);
        return 2;
    }
    bench_ctx b = {0};
    b.total = (size_t)mib * 1024 * 1024;
    b.seg = (uint32_t)seg;
    size_t src_len = b.seg > PIECE ? b.seg : PIECE;
    b.src = malloc(src_len);
    b.dst = malloc(4 + (size_t)b.seg + 16);
    b.vault = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (b.src == NULL || b.dst == NULL || b.vault == NULL || RAND_bytes(b.src, (int)src_len) != 1)
        die("cannot set up");

#ifndef __OPTIMIZE__
    printf("note: built without optimisation: numbers are not representative\n");
#endif
#if defined(__SANITIZE_ADDRESS__)
    printf("note: built with AddressSanitizer: numbers are not representative\n");
#endif
    printf("%ld MiB per run, %u-byte segments, median of %d runs, %s\n", mib, b.seg, RUNS,
           OpenSSL_version(OPENSSL_VERSION));
    double raw = median(run_raw, &b);
    double speed = openssl_speed();
    if (speed > 0)
        report("openssl speed -evp (64 KiB)", speed, raw);
    report("raw EVP AES-256-GCM", raw, raw);
    report("raw EVP GCM + SHA-256", median(run_raw_hashed, &b), raw);
    report("segment encrypt (no I/O)", median(run_segment, &b), raw);
    static const char *const dirs[] = {"/dev/shm", "/tmp"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (access(dirs[i], W_OK) != 0)
            continue;
        b.dir = dirs[i];
        char name[64];
        snprintf(name, sizeof(name), "writer -> %s", dirs[i]);
        report(name, median(run_writer, &b), raw);
    }
    EVP_PKEY_free(b.vault);
    free(b.src);
    free(b.dst);
    return 0;
}
