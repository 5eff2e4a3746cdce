/*
 * firmware.c - the signed firmware manifest: validate, canonical bytes,
 * sign, verify, JSON, and the version rules a camera applies before it
 * installs anything.
 *
 * Order of trust on a camera: decode (well-formed) -> bc_firmware_verify
 * (signed by the pinned firmware key) -> bc_firmware_check_install (newer
 * than what runs, unless the signed manifest itself says rollback) -> fetch
 * the chunks and compare the image's SHA-256 with the manifest's.
 */
#include "proto/firmware.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "proto/encoding.h"
#include "proto/json.h"
#include "proto/topic.h"

bc_status bc_firmware_validate(const bc_firmware_manifest *m, bc_error *err)
{
    if (m == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no firmware manifest");
    if (memchr(m->version, '\0', sizeof(m->version)) == NULL ||
        memchr(m->min_version, '\0', sizeof(m->min_version)) == NULL)
        return bc_fail(err, BC_ERR_INVAL, "manifest version fields are not terminated");
    if (!bc_version_valid(m->version))
        return bc_fail(err, BC_ERR_INVAL, "field 'version' is not a dotted numeric version");
    if (m->size < 1 || m->size > BC_FIRMWARE_SIZE_MAX)
        return bc_fail(err, BC_ERR_INVAL, "field 'size' is outside [1, %lld]",
                       (long long)BC_FIRMWARE_SIZE_MAX);
    if (!bc_json_hex_valid(m->sha256, BC_SHA256_HEX_LEN))
        return bc_fail(err, BC_ERR_INVAL, "field 'sha256' is not 64 lowercase hex digits");
    if (m->chunk_size < 1 || m->chunk_size > BC_FIRMWARE_CHUNK_MAX)
        return bc_fail(err, BC_ERR_INVAL, "field 'chunk_size' is outside [1, %d]",
                       BC_FIRMWARE_CHUNK_MAX);
    if (m->chunks != (m->size + m->chunk_size - 1) / m->chunk_size)
        return bc_fail(err, BC_ERR_INVAL, "field 'chunks' does not match size and chunk_size");
    if (m->min_version[0] != '\0' && !bc_version_valid(m->min_version))
        return bc_fail(err, BC_ERR_INVAL, "field 'min_version' is not a dotted numeric version");
    return BC_OK;
}

bc_status bc_firmware_canonical(const bc_firmware_manifest *m, bc_canon *c)
{
    if (m == NULL || c == NULL)
        return BC_ERR_INVAL;
    bc_canon_begin(c, BC_FIRMWARE_DOMAIN);
    bc_canon_str(c, m->version);
    bc_canon_i64(c, m->size);
    bc_canon_str(c, m->sha256);
    bc_canon_i64(c, m->chunk_size);
    bc_canon_i64(c, m->chunks);
    bc_canon_str(c, m->min_version);
    bc_canon_i64(c, m->rollback ? 1 : 0);
    return bc_canon_status(c);
}

bc_status bc_firmware_sign(bc_firmware_manifest *m, EVP_PKEY *key, bc_error *err)
{
    if (m == NULL || key == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no manifest or no key to sign with");
    m->has_sig = false;
    bc_status rc = bc_firmware_validate(m, err);
    if (rc != BC_OK)
        return rc;
    bc_canon c = {0};
    rc = bc_firmware_canonical(m, &c);
    if (rc == BC_OK)
        rc = bc_sign(key, c.data, c.len, m->sig);
    bc_canon_free(&c);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot sign the firmware manifest: %s", bc_strerror(rc));
    m->has_sig = true;
    return BC_OK;
}

bc_status bc_firmware_verify(const bc_firmware_manifest *m, EVP_PKEY *public_key, bc_error *err)
{
    if (m == NULL || public_key == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no manifest or no key to verify with");
    if (!m->has_sig)
        return bc_fail(err, BC_ERR_SIGNATURE, "firmware manifest is not signed");
    bc_status rc = bc_firmware_validate(m, err);
    if (rc != BC_OK)
        return rc;
    bc_canon c = {0};
    rc = bc_firmware_canonical(m, &c);
    if (rc == BC_OK)
        rc = bc_verify(public_key, c.data, c.len, m->sig);
    bc_canon_free(&c);
    if (rc == BC_ERR_SIGNATURE)
        return bc_fail(err, rc, "firmware manifest signature does not verify");
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot verify the firmware manifest: %s", bc_strerror(rc));
    return BC_OK;
}

static bc_status add_fields(cJSON *obj, const bc_firmware_manifest *m)
{
    char sig[BC_ED25519_SIG_LEN * 2];
    bc_status rc = bc_base64_encode(m->sig, sizeof(m->sig), sig, sizeof(sig));
    if (rc == BC_OK)
        rc = bc_json_add_string(obj, "version", m->version);
    if (rc == BC_OK)
        rc = bc_json_add_int(obj, "size", m->size);
    if (rc == BC_OK)
        rc = bc_json_add_string(obj, "sha256", m->sha256);
    if (rc == BC_OK)
        rc = bc_json_add_int(obj, "chunk_size", m->chunk_size);
    if (rc == BC_OK)
        rc = bc_json_add_int(obj, "chunks", m->chunks);
    if (rc == BC_OK && m->min_version[0] != '\0')
        rc = bc_json_add_string(obj, "min_version", m->min_version);
    if (rc == BC_OK)
        rc = bc_json_add_bool(obj, "rollback", m->rollback);
    if (rc == BC_OK)
        rc = bc_json_add_string(obj, "sig", sig);
    return rc;
}

bc_status bc_firmware_to_json(const bc_firmware_manifest *m, cJSON **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the manifest");
    *out = NULL;
    bc_status rc = bc_firmware_validate(m, err);
    if (rc != BC_OK)
        return rc;
    if (!m->has_sig)
        return bc_fail(err, BC_ERR_INVAL, "firmware manifest is not signed");
    cJSON *obj = NULL;
    rc = bc_json_new_message(&obj);
    if (rc == BC_OK)
        rc = add_fields(obj, m);
    if (rc != BC_OK) {
        cJSON_Delete(obj);
        return bc_fail(err, rc, "cannot build the manifest JSON: %s", bc_strerror(rc));
    }
    *out = obj;
    return BC_OK;
}

static bc_status read_sig(const cJSON *obj, uint8_t sig[BC_ED25519_SIG_LEN], bc_error *err)
{
    const char *text = NULL;
    size_t len = 0;
    bc_status rc = bc_json_get_string_ref(obj, "sig", BC_JSON_REQUIRED, BC_ED25519_SIG_LEN * 2,
                                          &text, &len, err);
    if (rc != BC_OK)
        return rc;
    size_t n = 0;
    if (bc_base64_decode(text, len, sig, BC_ED25519_SIG_LEN, &n) != BC_OK ||
        n != BC_ED25519_SIG_LEN)
        return bc_fail(err, BC_ERR_PARSE, "field 'sig' is not base64 of %d bytes",
                       BC_ED25519_SIG_LEN);
    return BC_OK;
}

static bc_status read_fields(const cJSON *obj, bc_firmware_manifest *m, bc_error *err)
{
    bc_status rc = bc_json_check_version(obj, err);
    if (rc == BC_OK)
        rc = bc_json_get_string(obj, "version", BC_JSON_REQUIRED, m->version, sizeof(m->version),
                                err);
    if (rc == BC_OK)
        rc = bc_json_get_int(obj, "size", BC_JSON_REQUIRED, 1, BC_FIRMWARE_SIZE_MAX, &m->size, err);
    if (rc == BC_OK)
        rc = bc_json_get_string(obj, "sha256", BC_JSON_REQUIRED, m->sha256, sizeof(m->sha256), err);
    if (rc == BC_OK)
        rc = bc_json_get_int(obj, "chunk_size", BC_JSON_REQUIRED, 1, BC_FIRMWARE_CHUNK_MAX,
                             &m->chunk_size, err);
    if (rc == BC_OK)
        rc = bc_json_get_int(obj, "chunks", BC_JSON_REQUIRED, 1, BC_FIRMWARE_SIZE_MAX, &m->chunks,
                             err);
    if (rc == BC_OK)
        rc = bc_json_get_string(obj, "min_version", BC_JSON_OPTIONAL, m->min_version,
                                sizeof(m->min_version), err);
    if (rc == BC_OK)
        rc = bc_json_get_bool(obj, "rollback", BC_JSON_REQUIRED, &m->rollback, err);
    if (rc == BC_OK)
        rc = read_sig(obj, m->sig, err);
    return rc;
}

bc_status bc_firmware_from_json(const cJSON *obj, bc_firmware_manifest *m, bc_error *err)
{
    if (obj == NULL || m == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no manifest object or no output");
    bc_firmware_manifest tmp = {0};
    bc_status rc = read_fields(obj, &tmp, err);
    if (rc == BC_OK)
        rc = bc_firmware_validate(&tmp, err);
    if (rc != BC_OK)
        return rc;
    tmp.has_sig = true;
    *m = tmp;
    return BC_OK;
}

bc_status bc_firmware_encode(const bc_firmware_manifest *m, char **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the manifest");
    *out = NULL;
    cJSON *obj = NULL;
    bc_status rc = bc_firmware_to_json(m, &obj, err);
    if (rc != BC_OK)
        return rc;
    rc = bc_json_print(obj, out);
    cJSON_Delete(obj);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot print the manifest JSON");
    return BC_OK;
}

bc_status bc_firmware_decode(const char *buf, size_t len, bc_firmware_manifest *m, bc_error *err)
{
    if (m == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the manifest");
    cJSON *root = NULL;
    bc_status rc = bc_json_parse(buf, len, BC_FIRMWARE_JSON_MAX, &root, err);
    if (rc != BC_OK)
        return rc;
    rc = bc_firmware_from_json(root, m, err);
    cJSON_Delete(root);
    return rc;
}

/* Compares one dotted part given by its digits [a, a + alen): leading zeros
 * do not count, then the longer number is larger, then digit order. */
static int compare_part(const char *a, size_t alen, const char *b, size_t blen)
{
    while (alen > 1 && *a == '0') {
        a++;
        alen--;
    }
    while (blen > 1 && *b == '0') {
        b++;
        blen--;
    }
    if (alen != blen)
        return alen < blen ? -1 : 1;
    int c = memcmp(a, b, alen);
    return (c > 0) - (c < 0);
}

bc_status bc_firmware_version_compare(const char *a, const char *b, int *out)
{
    if (out == NULL || !bc_version_valid(a) || !bc_version_valid(b))
        return BC_ERR_INVAL;
    static const char zero[] = "0";
    while (*a != '\0' || *b != '\0') {
        size_t alen = strcspn(a, ".");
        size_t blen = strcspn(b, ".");
        int c = compare_part(alen ? a : zero, alen ? alen : 1, blen ? b : zero, blen ? blen : 1);
        if (c != 0) {
            *out = c;
            return BC_OK;
        }
        a += alen + (a[alen] == '.');
        b += blen + (b[blen] == '.');
    }
    *out = 0;
    return BC_OK;
}

bc_status bc_firmware_check_install(const bc_firmware_manifest *m, const char *current,
                                    bc_error *err)
{
    if (m == NULL || !bc_version_valid(m->version))
        return bc_fail(err, BC_ERR_INVAL, "no valid manifest");
    int order = 0;
    if (bc_firmware_version_compare(m->version, current, &order) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL, "current version is not a dotted numeric version");
    if (order <= 0 && !m->rollback)
        return bc_fail(err, BC_ERR_DENIED,
                       "firmware %s is not newer than the running %s and is not a rollback",
                       m->version, current);
    if (m->min_version[0] != '\0') {
        if (bc_firmware_version_compare(current, m->min_version, &order) != BC_OK)
            return bc_fail(err, BC_ERR_INVAL, "field 'min_version' is not a dotted version");
        if (order < 0)
            return bc_fail(err, BC_ERR_DENIED, "running %s is older than the minimum %s", current,
                           m->min_version);
    }
    return BC_OK;
}
