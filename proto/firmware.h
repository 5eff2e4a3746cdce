/*
 * firmware.h - the signed firmware manifest.
 *
 * A manifest describes one firmware image (version, size, SHA-256, how it
 * is chunked) and is signed with the firmware key, which is not the command
 * key: a stolen command key cannot push firmware. The signature covers the
 * canonical encoding (proto/sign.h) with the domain "bodycam/v1/firmware"
 * and the fields in this order:
 *
 *     version, size, sha256, chunk_size, chunks, min_version, rollback (0/1)
 *
 * JSON form: {"v":1,"version","size","sha256","chunk_size","chunks",
 * "min_version" (omitted when empty),"rollback","sig" (base64)}.
 *
 * A manifest struct holds no pointers; it needs no free.
 */
#ifndef BC_PROTO_FIRMWARE_H
#define BC_PROTO_FIRMWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "proto/sign.h"
#include "proto/status.h"

#define BC_FIRMWARE_DOMAIN "bodycam/v1/firmware"
#define BC_VERSION_MAX 32    /* firmware version characters, see bc_version_valid() */
#define BC_SHA256_HEX_LEN 64 /* lowercase hex digits */
#define BC_FIRMWARE_SIZE_MAX (1LL << 30)
#define BC_FIRMWARE_CHUNK_MAX 65536
#define BC_FIRMWARE_JSON_MAX 16384

typedef struct bc_firmware_manifest {
    char version[BC_VERSION_MAX + 1];     /* dotted digits, bc_version_valid() */
    int64_t size;                         /* image bytes, 1 .. BC_FIRMWARE_SIZE_MAX */
    char sha256[BC_SHA256_HEX_LEN + 1];   /* lowercase hex SHA-256 of the image */
    int64_t chunk_size;                   /* 1 .. BC_FIRMWARE_CHUNK_MAX */
    int64_t chunks;                       /* exactly ceil(size / chunk_size) */
    char min_version[BC_VERSION_MAX + 1]; /* oldest version that may install it; "" = any */
    bool rollback;                        /* may replace a newer or equal version */
    uint8_t sig[BC_ED25519_SIG_LEN];
    bool has_sig;
} bc_firmware_manifest;

/* Checks every field except the signature. BC_ERR_INVAL naming the field
 * (bad version, size out of range, chunks inconsistent with size, ...). */
bc_status bc_firmware_validate(const bc_firmware_manifest *m, bc_error *err);

/* Builds the canonical bytes (domain and fields) into c, which the caller
 * zero-initialises and frees with bc_canon_free(). Returns
 * bc_canon_status(c); it does not validate. */
bc_status bc_firmware_canonical(const bc_firmware_manifest *m, bc_canon *c);

/* Validates m, then signs it with the firmware private key: fills sig and
 * sets has_sig. BC_ERR_INVAL for an invalid manifest, BC_ERR_CRYPTO or
 * BC_ERR_NOMEM on library failure (m->has_sig is then false). */
bc_status bc_firmware_sign(bc_firmware_manifest *m, EVP_PKEY *key, bc_error *err);

/* BC_OK when m is valid and carries a signature by public_key; an unsigned
 * manifest or a bad signature is BC_ERR_SIGNATURE, an invalid one is the
 * status of bc_firmware_validate(). */
bc_status bc_firmware_verify(const bc_firmware_manifest *m, EVP_PKEY *public_key, bc_error *err);

/* The JSON object of a valid, signed manifest, including "v". The caller
 * owns *out (cJSON_Delete). BC_ERR_INVAL when invalid or unsigned. */
bc_status bc_firmware_to_json(const bc_firmware_manifest *m, cJSON **out, bc_error *err);

/* Reads a manifest from a parsed object (e.g. a command's params.manifest):
 * "v", every field and "sig" (64 bytes of base64). Statuses as in json.h;
 * a malformed sig is BC_ERR_PARSE. Fills *m only on success. Does not
 * verify the signature. */
bc_status bc_firmware_from_json(const cJSON *obj, bc_firmware_manifest *m, bc_error *err);

/* bc_firmware_to_json printed to a malloc'd string the caller free()s. */
bc_status bc_firmware_encode(const bc_firmware_manifest *m, char **out, bc_error *err);

/* Parses at most BC_FIRMWARE_JSON_MAX bytes (bc_json_parse) and reads the
 * manifest. Does not verify the signature. */
bc_status bc_firmware_decode(const char *buf, size_t len, bc_firmware_manifest *m, bc_error *err);

/* Compares two dotted numeric versions part by part, a missing part being 0
 * ("1.2" == "1.2.0"), numbers of any length ("1.10" > "1.9"). *out is <0, 0
 * or >0. BC_ERR_INVAL when either is not bc_version_valid(). */
bc_status bc_firmware_version_compare(const char *a, const char *b, int *out);

/* Whether a device running current may install m (signature not checked
 * here; verify first): m->version must be newer unless m->rollback, and
 * current must be at least m->min_version. BC_ERR_DENIED with the reason,
 * BC_ERR_INVAL for a bad current version. */
bc_status bc_firmware_check_install(const bc_firmware_manifest *m, const char *current,
                                    bc_error *err);

#endif
