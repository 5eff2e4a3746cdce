/* Unit tests for device-agent/updater: the manifest checks of a firmware
 * offer with real Ed25519 keys (unsigned, another key, downgrade, the
 * same version, a signed rollback, another update in progress), the
 * download into real files (window, wrong lengths, resume after a
 * restart), the SHA-256 and header checks, and an image already in the
 * inactive slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "device-agent/boot_slots.h"
#include "device-agent/updater.h"
#include "proto/encoding.h"
#include "test_util.h"

#define CHUNK 1000
#define IMAGE_SIZE 4500 /* 5 chunks, the last one 500 bytes */

typedef struct fixture {
    bc_test_scratch *s;
    EVP_PKEY *key, *other;
    uint8_t *image;
    bc_updater *u;
} fixture;

static void make_image(uint8_t *buf, size_t size, const char *version)
{
    uint8_t *noise = bc_test_pattern(size, 7);
    memcpy(buf, noise, size);
    free(noise);
    int n = snprintf((char *)buf, size, "BODYCAM-FW 1\n{\"version\":\"%s\"}\n", version);
    assert_true(n > 0 && (size_t)n < size);
}

static void sha256_hex(const uint8_t *data, size_t len, char *hex)
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, d, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(bc_hex_encode(d, n, hex, BC_SHA256_HEX_LEN + 1), BC_OK);
}

static bc_firmware_manifest manifest_for(const uint8_t *image, size_t size, const char *version,
                                         bool rollback, EVP_PKEY *key)
{
    bc_firmware_manifest m;
    bc_error err;
    memset(&m, 0, sizeof(m));
    snprintf(m.version, sizeof(m.version), "%s", version);
    m.size = (int64_t)size;
    sha256_hex(image, size, m.sha256);
    m.chunk_size = CHUNK;
    m.chunks = ((int64_t)size + CHUNK - 1) / CHUNK;
    m.rollback = rollback;
    if (key != NULL)
        assert_int_equal(bc_firmware_sign(&m, key, &err), BC_OK);
    return m;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    void *scratch = NULL;
    bc_error err;
    if (f == NULL || bc_test_scratch_setup(&scratch, "updater", "data") != 0)
        return -1;
    f->s = scratch;
    if (mkdir(f->s->dir, 0700) != 0 || bc_boot_dir_make(f->s->dir, &err) != BC_OK)
        return -1;
    f->key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->image = malloc(IMAGE_SIZE);
    if (f->key == NULL || f->other == NULL || f->image == NULL)
        return -1;
    if (bc_updater_open(f->s->dir, f->key, 2, &f->u, &err) != BC_OK)
        return -1;
    bc_updater_set_checkpoint(f->u, 1); /* a resume point per chunk: the test's */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    void *s = f->s;
    bc_updater_free(f->u);
    EVP_PKEY_free(f->key);
    EVP_PKEY_free(f->other);
    free(f->image);
    free(f);
    return bc_test_scratch_teardown(&s);
}

static void reopen(fixture *f)
{
    bc_error err;
    bc_updater_free(f->u);
    f->u = NULL;
    assert_int_equal(bc_updater_open(f->s->dir, f->key, 2, &f->u, &err), BC_OK);
    bc_updater_set_checkpoint(f->u, 1);
}

static bc_status offer(fixture *f, const bc_firmware_manifest *m, const char *current,
                       bc_updater_offer_result *res, bc_error *err)
{
    return bc_updater_offer(f->u, m, "cmd-1", current, res, err);
}

static void give(fixture *f, unsigned n)
{
    bool stored = false;
    bc_error err;
    size_t off = (size_t)n * CHUNK;
    size_t len = off + CHUNK > IMAGE_SIZE ? IMAGE_SIZE - off : CHUNK;
    assert_int_equal(bc_updater_chunk(f->u, n, f->image + off, len, &stored, &err), BC_OK);
    assert_true(stored);
}

/* ---- offers ---- */

static void test_refusals(void **state)
{
    fixture *f = *state;
    bc_updater_offer_result res;
    bc_error err;
    make_image(f->image, IMAGE_SIZE, "1.1.0");
    bc_firmware_manifest unsigned_m = manifest_for(f->image, IMAGE_SIZE, "1.1.0", false, NULL);
    assert_int_equal(offer(f, &unsigned_m, "1.0.0", &res, &err), BC_ERR_SIGNATURE);
    assert_non_null(strstr(err.text, "bad signature"));
    bc_firmware_manifest other = manifest_for(f->image, IMAGE_SIZE, "1.1.0", false, f->other);
    assert_int_equal(offer(f, &other, "1.0.0", &res, &err), BC_ERR_SIGNATURE);
    bc_firmware_manifest tampered = manifest_for(f->image, IMAGE_SIZE, "1.1.0", false, f->key);
    tampered.size--; /* the signature covers the size */
    tampered.chunks = (tampered.size + CHUNK - 1) / CHUNK;
    assert_int_equal(offer(f, &tampered, "1.0.0", &res, &err), BC_ERR_SIGNATURE);
    bc_firmware_manifest down = manifest_for(f->image, IMAGE_SIZE, "0.9.0", false, f->key);
    assert_int_equal(offer(f, &down, "1.0.0", &res, &err), BC_ERR_DENIED);
    bc_firmware_manifest same = manifest_for(f->image, IMAGE_SIZE, "1.0.0", false, f->key);
    assert_int_equal(offer(f, &same, "1.0.0", &res, &err), BC_ERR_DENIED);
    bc_firmware_manifest low = manifest_for(f->image, IMAGE_SIZE, "2.0.0", false, NULL);
    snprintf(low.min_version, sizeof(low.min_version), "1.5");
    assert_int_equal(bc_firmware_sign(&low, f->key, &err), BC_OK);
    assert_int_equal(offer(f, &low, "1.0.0", &res, &err), BC_ERR_DENIED);
    assert_int_equal(bc_updater_get_phase(f->u), BC_UPDATER_IDLE);
    assert_false(bc_test_exists(f->s->dir, "firmware/update.json"));
}

static void test_no_key_refuses(void **state)
{
    fixture *f = *state;
    bc_updater *none = NULL;
    bc_updater_offer_result res;
    bc_error err;
    make_image(f->image, IMAGE_SIZE, "1.1.0");
    bc_firmware_manifest m = manifest_for(f->image, IMAGE_SIZE, "1.1.0", false, f->key);
    assert_int_equal(bc_updater_open(f->s->dir, NULL, 4, &none, &err), BC_OK);
    assert_int_equal(bc_updater_offer(none, &m, "cmd-1", "1.0.0", &res, &err), BC_ERR_DENIED);
    assert_string_equal(err.text, "no firmware key");
    bc_updater_free(none);
}

static void test_accept_same_and_other(void **state)
{
    fixture *f = *state;
    bc_updater_offer_result res;
    bc_error err;
    make_image(f->image, IMAGE_SIZE, "1.1.0");
    bc_firmware_manifest m = manifest_for(f->image, IMAGE_SIZE, "1.1.0", false, f->key);
    assert_int_equal(offer(f, &m, "1.0.0", &res, &err), BC_OK);
    assert_int_equal(res, BC_UPDATER_ACCEPTED);
    assert_true(bc_test_exists(f->s->dir, "firmware/update.json")); /* durable before the ack */
    assert_int_equal(offer(f, &m, "1.0.0", &res, &err), BC_OK);
    assert_int_equal(res, BC_UPDATER_SAME);
    bc_firmware_manifest next = manifest_for(f->image, IMAGE_SIZE, "1.2.0", false, f->key);
    assert_int_equal(offer(f, &next, "1.0.0", &res, &err), BC_ERR_STATE);
    /* a restart resumes the pending update */
    reopen(f);
    assert_int_equal(bc_updater_get_phase(f->u), BC_UPDATER_DOWNLOADING);
    assert_string_equal(bc_updater_manifest(f->u)->version, "1.1.0");
    assert_string_equal(bc_updater_cmd_id(f->u), "cmd-1");
}

static void test_rollback_allowed(void **state)
{
    fixture *f = *state;
    bc_updater_offer_result res;
    bc_error err;
    make_image(f->image, IMAGE_SIZE, "1.0.0");
    bc_firmware_manifest m = manifest_for(f->image, IMAGE_SIZE, "1.0.0", true, f->key);
    assert_int_equal(offer(f, &m, "1.1.0", &res, &err), BC_OK);
    assert_int_equal(res, BC_UPDATER_ACCEPTED);
    /* the old image still sits in the inactive slot: no download */
    char slot[512];
    bool in_slot = false;
    assert_int_equal(bc_boot_slot_path(f->s->dir, BC_BOOT_SLOT_A, slot, sizeof(slot), &err), BC_OK);
    bc_test_write_bytes(slot, f->image, IMAGE_SIZE);
    assert_int_equal(bc_updater_use_slot(f->u, slot, &in_slot, &err), BC_OK);
    assert_true(in_slot);
    assert_int_equal(bc_updater_get_phase(f->u), BC_UPDATER_READY);
    assert_null(bc_updater_image_path(f->u));
}

static void test_slot_with_other_image_downloads(void **state)
{
    fixture *f = *state;
    bc_updater_offer_result res;
    bc_error err;
    char slot[512];
    bool in_slot = true;
    make_image(f->image, IMAGE_SIZE, "1.0.0");
    bc_firmware_manifest m = manifest_for(f->image, IMAGE_SIZE, "1.0.0", true, f->key);
    assert_int_equal(offer(f, &m, "1.1.0", &res, &err), BC_OK);
    assert_int_equal(bc_boot_slot_path(f->s->dir, BC_BOOT_SLOT_A, slot, sizeof(slot), &err), BC_OK);
    bc_test_write_file(slot, "BODYCAM-FW 1\n{\"version\":\"0.5\"}\n");
    assert_int_equal(bc_updater_use_slot(f->u, slot, &in_slot, &err), BC_OK);
    assert_false(in_slot);
    assert_int_equal(bc_updater_get_phase(f->u), BC_UPDATER_DOWNLOADING);
}

/* ---- the download ---- */

static void test_download_window_resume_verify(void **state)
{
    fixture *f = *state;
    bc_updater_offer_result res;
    bc_error err;
    unsigned want[8];
    bool stored = true;
    make_image(f->image, IMAGE_SIZE, "1.1.0");
    bc_firmware_manifest m = manifest_for(f->image, IMAGE_SIZE, "1.1.0", false, f->key);
    assert_int_equal(offer(f, &m, "1.0.0", &res, &err), BC_OK);
    assert_int_equal(bc_updater_wanted(f->u, want, 8), 2); /* window 2 */
    assert_int_equal(want[0], 0);
    assert_int_equal(want[1], 1);
    /* outside the window, or of the wrong length: not written */
    assert_int_equal(bc_updater_chunk(f->u, 3, f->image + 3000, CHUNK, &stored, &err), BC_OK);
    assert_false(stored);
    assert_int_equal(bc_updater_chunk(f->u, 0, f->image, CHUNK - 1, &stored, &err), BC_ERR_INVAL);
    give(f, 1); /* out of order: written, the resume point waits for 0 */
    assert_int_equal(bc_updater_wanted(f->u, want, 8), 1);
    assert_int_equal(want[0], 0);
    assert_int_equal(bc_updater_first_missing(f->u), 0);
    give(f, 0);
    assert_int_equal(bc_updater_first_missing(f->u), 2);
    give(f, 2);
    /* a restart resumes from the saved point: chunk 3 on */
    reopen(f);
    assert_int_equal(bc_updater_first_missing(f->u), 3);
    assert_int_equal(bc_updater_wanted(f->u, want, 8), 2);
    assert_int_equal(want[0], 3);
    /* with a checkpoint larger than what came since, a restart goes back
     * to the last saved point: chunk 3 again */
    bc_updater_set_checkpoint(f->u, 1 << 20);
    give(f, 3);
    assert_int_equal(bc_updater_first_missing(f->u), 4);
    reopen(f);
    assert_int_equal(bc_updater_first_missing(f->u), 3);
    give(f, 4);
    assert_int_equal(bc_updater_chunk(f->u, 4, f->image + 4000, 500, &stored, &err), BC_OK);
    assert_false(stored); /* already written */
    assert_int_equal(bc_updater_chunk(f->u, 3, f->image + 3000, 500, &stored, &err),
                     BC_ERR_INVAL); /* only the last chunk may be short */
    give(f, 3);
    assert_int_equal(bc_updater_get_phase(f->u), BC_UPDATER_COMPLETE);
    assert_int_equal(bc_updater_verify(f->u, &err), BC_OK);
    assert_int_equal(bc_updater_get_phase(f->u), BC_UPDATER_READY);
    size_t len = 0;
    uint8_t *got = bc_test_read_file(bc_updater_image_path(f->u), &len);
    assert_int_equal(len, IMAGE_SIZE);
    assert_memory_equal(got, f->image, IMAGE_SIZE);
    free(got);
    assert_int_equal(bc_updater_finish(f->u, &err), BC_OK);
    assert_int_equal(bc_test_count_entries(f->s->dir), 1); /* firmware/ */
    assert_false(bc_test_exists(f->s->dir, "firmware/update.json"));
    assert_false(bc_test_exists(f->s->dir, "firmware/download.img"));
}

static void download_all(fixture *f, const uint8_t *data)
{
    for (unsigned n = 0; n < 5; n++) {
        bool stored = false;
        bc_error err;
        size_t off = (size_t)n * CHUNK;
        size_t len = n == 4 ? 500 : CHUNK;
        assert_int_equal(bc_updater_chunk(f->u, n, data + off, len, &stored, &err), BC_OK);
        assert_true(stored);
    }
    assert_int_equal(bc_updater_get_phase(f->u), BC_UPDATER_COMPLETE);
}

static void test_sha_mismatch_discards(void **state)
{
    fixture *f = *state;
    bc_updater_offer_result res;
    bc_error err;
    make_image(f->image, IMAGE_SIZE, "1.1.0");
    bc_firmware_manifest m = manifest_for(f->image, IMAGE_SIZE, "1.1.0", false, f->key);
    assert_int_equal(offer(f, &m, "1.0.0", &res, &err), BC_OK);
    uint8_t *tampered = malloc(IMAGE_SIZE);
    assert_non_null(tampered);
    memcpy(tampered, f->image, IMAGE_SIZE);
    tampered[IMAGE_SIZE - 1] ^= 1;
    download_all(f, tampered);
    free(tampered);
    assert_int_equal(bc_updater_verify(f->u, &err), BC_ERR_TAMPERED);
    assert_string_equal(err.text, "image does not match its manifest");
    assert_false(bc_test_exists(f->s->dir, "firmware/download.img"));
    assert_int_equal(bc_updater_first_missing(f->u), 0);
}

static void test_header_must_name_version(void **state)
{
    fixture *f = *state;
    bc_updater_offer_result res;
    bc_error err;
    make_image(f->image, IMAGE_SIZE, "1.2.0"); /* signed as 1.1.0, says 1.2.0 */
    bc_firmware_manifest m = manifest_for(f->image, IMAGE_SIZE, "1.1.0", false, f->key);
    assert_int_equal(offer(f, &m, "1.0.0", &res, &err), BC_OK);
    download_all(f, f->image);
    assert_int_equal(bc_updater_verify(f->u, &err), BC_ERR_TAMPERED);
    assert_non_null(strstr(err.text, "another version"));
}

static void test_corrupt_update_dropped(void **state)
{
    fixture *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/firmware/update.json", f->s->dir);
    bc_test_write_file(path, "{\"v\":1,\"cmd_id\":\"x\"");
    reopen(f);
    assert_int_equal(bc_updater_get_phase(f->u), BC_UPDATER_IDLE);
    assert_false(bc_test_exists(f->s->dir, "firmware/update.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_key_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_same_and_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_with_other_image_downloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_download_window_resume_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sha_mismatch_discards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_must_name_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_update_dropped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
