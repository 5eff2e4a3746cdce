/*
 * prebuffer.c - a byte ring: `start` is the oldest byte, `len` bytes follow
 * it (wrapping at capacity). A write that overflows moves `start` on by the
 * overflow, which is exactly "overwrite the oldest".
 */
#include "device-agent/prebuffer.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct bc_prebuffer {
    uint8_t *data;
    size_t capacity;
    size_t start;
    size_t len;
};

bc_status bc_prebuffer_new(size_t capacity, bc_prebuffer **out)
{
    *out = NULL;
    bc_prebuffer *pb = calloc(1, sizeof(*pb));
    if (pb == NULL)
        return BC_ERR_NOMEM;
    if (capacity > 0) {
        pb->data = malloc(capacity);
        if (pb->data == NULL) {
            free(pb);
            return BC_ERR_NOMEM;
        }
    }
    pb->capacity = capacity;
    *out = pb;
    return BC_OK;
}

void bc_prebuffer_clear(bc_prebuffer *pb)
{
    if (pb->data != NULL)
        OPENSSL_cleanse(pb->data, pb->capacity);
    pb->start = 0;
    pb->len = 0;
}

void bc_prebuffer_free(bc_prebuffer *pb)
{
    if (pb == NULL)
        return;
    bc_prebuffer_clear(pb);
    free(pb->data);
    free(pb);
}

void bc_prebuffer_write(bc_prebuffer *pb, const void *data, size_t len)
{
    if (pb->capacity == 0 || len == 0)
        return;
    const uint8_t *p = data;
    if (len >= pb->capacity) {
        memcpy(pb->data, p + (len - pb->capacity), pb->capacity);
        pb->start = 0;
        pb->len = pb->capacity;
        return;
    }
    size_t end = (pb->start + pb->len) % pb->capacity;
    size_t first = pb->capacity - end < len ? pb->capacity - end : len;
    memcpy(pb->data + end, p, first);
    memcpy(pb->data, p + first, len - first);
    size_t total = pb->len + len;
    if (total > pb->capacity) {
        pb->start = (pb->start + (total - pb->capacity)) % pb->capacity;
        pb->len = pb->capacity;
    } else {
        pb->len = total;
    }
}

size_t bc_prebuffer_len(const bc_prebuffer *pb)
{
    return pb->len;
}

size_t bc_prebuffer_capacity(const bc_prebuffer *pb)
{
    return pb->capacity;
}

bc_status bc_prebuffer_drain(bc_prebuffer *pb, bc_prebuffer_sink sink, void *userdata)
{
    bc_status rc = BC_OK;
    if (pb->len == 0)
        return BC_OK;
    size_t first = pb->capacity - pb->start < pb->len ? pb->capacity - pb->start : pb->len;
    rc = sink(pb->data + pb->start, first, userdata);
    if (rc == BC_OK && pb->len > first)
        rc = sink(pb->data, pb->len - first, userdata);
    bc_prebuffer_clear(pb);
    return rc;
}
