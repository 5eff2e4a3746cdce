/*
 * images.h - firmware images in Redis (library bc_fwrollout, shared by
 * bodycamctl, which publishes, and bodycam-firmware-rollout, which sends
 * the manifests and publishes the chunks). The keys are in
 * services/firmware-rollout/README.md ("Images"):
 *
 *   bodycam:firmware:<version>          hash: version, manifest (signed
 *                                       JSON), size, sha256, chunk_size,
 *                                       chunks, min_version, published_at,
 *                                       published_by
 *   bodycam:firmware:<version>:chunks   hash: <n> -> the raw bytes of chunk n
 *   bodycam:firmware:versions           zset: version -> published_at
 *
 * An image is visible once complete: the chunks are written first, the
 * record and the zset last, in one script that refuses another image
 * under the same version. Statuses: BC_ERR_UNAVAILABLE (Redis),
 * BC_ERR_NOT_FOUND, BC_ERR_STATE (another image has that version),
 * BC_ERR_INVAL, BC_ERR_PARSE (a record that does not read back).
 */
#ifndef BC_FWROLLOUT_IMAGES_H
#define BC_FWROLLOUT_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/firmware.h"
#include "proto/status.h"

#define BC_IMAGE_ACTOR_MAX 80

typedef struct bc_image {
    bc_firmware_manifest manifest; /* signed, as published (its version, size, ...) */
    int64_t published_at;          /* ms */
    char published_by[BC_IMAGE_ACTOR_MAX + 1];
} bc_image;

/* The SHA-256 of data (len bytes) in lowercase hex, as a manifest's sha256.
 * BC_ERR_CRYPTO when OpenSSL fails. */
bc_status bc_image_sha256_hex(const uint8_t *data, size_t len, char out[BC_SHA256_HEX_LEN + 1]);

/* Publishes the image data (len bytes) with its signed manifest m (not a
 * rollback manifest): checks that m is valid and signed and that len and
 * the SHA-256 of data match it (BC_ERR_INVAL saying which), writes the
 * chunks, then the record. The same image again changes nothing and sets
 * *already (may be NULL); another image under m's version is BC_ERR_STATE
 * and leaves the published one alone. The signature itself is not checked
 * here (the caller holds the public key: bc_firmware_verify). */
bc_status bc_image_publish(bc_redis *r, const bc_firmware_manifest *m, const uint8_t *data,
                           size_t len, const char *published_by, int64_t now_ms, bool *already,
                           bc_error *err);

/* One published image. BC_ERR_NOT_FOUND, BC_ERR_PARSE. */
bc_status bc_image_get(bc_redis *r, const char *version, bc_image *out, bc_error *err);

typedef bool (*bc_image_fn)(const bc_image *img, void *userdata);

/* Every published image, oldest first; fn returns false to stop. */
bc_status bc_image_list(bc_redis *r, bc_image_fn fn, void *userdata, bc_error *err);

/* Chunk n of version: *data (the caller's, free()) and *len.
 * BC_ERR_NOT_FOUND when the image or the chunk is not there. */
bc_status bc_image_chunk(bc_redis *r, const char *version, int64_t n, uint8_t **data, size_t *len,
                         bc_error *err);

#endif
