/*
 * recording-check - a test helper (built only with the tests, never
 * installed): decrypts a recording with the vault's X25519 private key and
 * prints what the integration tests compare.
 *
 *   recording-check KEY.pem RECORDING [--plaintext OUT]
 *
 * Prints one line:
 *   ok sha256=<plaintext SHA-256> size=<plaintext bytes> interrupted=<0|1>
 *      segments=<n> file_sha256=<SHA-256 of the file> recording_id=<id> device=<id>
 * and, with --plaintext, writes the plaintext to OUT (created, mode 0600).
 * Exit status: 0 ok, 1 the recording does not decrypt or authenticate
 * (reason on stderr), 2 usage.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "proto/encoding.h"
#include "proto/recording.h"
#include "proto/sign.h"

typedef struct check {
    EVP_PKEY *key;
    bc_recording_reader *reader;
    EVP_MD_CTX *md;
    uint8_t *buf;
    int out_fd;
} check;

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads every segment; 0 when the end authenticated. */
static int read_all(check *c, uint64_t *size, bc_error *err)
{
    const bc_recording_header *h = bc_recording_reader_header(c->reader);
    size_t cap = h->segment_size;
    c->buf = malloc(cap);
    if (c->buf == NULL || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
        return -1;
    for (int done = 0; !done;) {
        size_t len = 0;
        if (bc_recording_reader_next(c->reader, c->buf, cap, &len, &done, err) != BC_OK)
            return -1;
        if (EVP_DigestUpdate(c->md, c->buf, len) != 1)
            return -1;
        if (c->out_fd >= 0 && write_all(c->out_fd, c->buf, len) != 0) {
            snprintf(err->text, sizeof(err->text), "cannot write the plaintext");
            return -1;
        }
        *size += len;
    }
    return 0;
}

static int report(check *c, uint64_t size)
{
    uint8_t digest[32];
    unsigned int n = 0;
    char hex[65], file_hex[65];
    bc_recording_info info;
    if (EVP_DigestFinal_ex(c->md, digest, &n) != 1 || n != 32 ||
        bc_recording_reader_info(c->reader, &info) != BC_OK ||
        bc_hex_encode(digest, 32, hex, sizeof(hex)) != BC_OK ||
        bc_hex_encode(info.sha256, 32, file_hex, sizeof(file_hex)) != BC_OK)
        return -1;
    const bc_recording_header *h = bc_recording_reader_header(c->reader);
    printf("ok sha256=%s size=%llu interrupted=%d segments=%llu file_sha256=%s recording_id=%s "
           "device=%s\n",
           hex, (unsigned long long)size, info.interrupted, (unsigned long long)info.segments,
           file_hex, h->recording_id, h->device);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--plaintext") == 0)) {
        fprintf(stderr, "usage: recording-check KEY.pem RECORDING [--plaintext OUT]\n");
        return 2;
    }
    check c = {.out_fd = -1};
    bc_error err = {{0}};
    uint64_t size = 0;
    int rc = 1;
    if (bc_key_load_private(argv[1], EVP_PKEY_X25519, &c.key, &err) != BC_OK)
        goto cleanup;
    if (bc_recording_reader_open(argv[2], c.key, &c.reader, &err) != BC_OK)
        goto cleanup;
    c.md = EVP_MD_CTX_new();
    if (c.md == NULL)
        goto cleanup;
    if (argc == 5 && (c.out_fd = open(argv[4], O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0) {
        snprintf(err.text, sizeof(err.text), "cannot create %s", argv[4]);
        goto cleanup;
    }
    if (read_all(&c, &size, &err) == 0 && report(&c, size) == 0)
        rc = 0;

cleanup:
    if (rc != 0)
        fprintf(stderr, "recording-check: %s: %s\n", argv[2], err.text[0] ? err.text : "failed");
    if (c.out_fd >= 0 && close(c.out_fd) != 0)
        rc = 1;
    if (rc != 0 && argc == 5 && c.out_fd >= 0)
        unlink(argv[4]);
    free(c.buf);
    EVP_MD_CTX_free(c.md);
    bc_recording_reader_close(c.reader);
    EVP_PKEY_free(c.key);
    return rc;
}
