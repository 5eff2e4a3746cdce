/* Unit tests for proto/command: every kind signs, encodes, decodes and
 * verifies; a one-byte change to any signed field, a wrong key, a missing
 * signature, an expired or future command, a replay (also across a saved
 * and reloaded cache) and a command for another device are each refused
 * with their own status; the replay cache stays bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "proto/command.h"
#include "test_util.h"

#define T0 1700000000000LL
#define HOUR (3600LL * 1000)
#define NOW (T0 + 1000)

static EVP_PKEY *cmd_key;
static EVP_PKEY *receipt_key;
static EVP_PKEY *fw_key;
static EVP_PKEY *recording_key; /* X25519 */
static char tmpdir[64];

#define CERT_PEM                                                                                   \
    "-----BEGIN CERTIFICATE-----\n"                                                                \
    "MIIBJzCB2qADAgECAhQFake0nlyForTestsXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n"                         \
    "-----END CERTIFICATE-----\n"

static int setup(void **state)
{
    (void)state;
    cmd_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    receipt_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    fw_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    recording_key = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (bc_test_tempdir(tmpdir, sizeof(tmpdir), "command") != BC_OK)
        return -1;
    return cmd_key && receipt_key && fw_key && recording_key ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(cmd_key);
    EVP_PKEY_free(receipt_key);
    EVP_PKEY_free(fw_key);
    EVP_PKEY_free(recording_key);
    bc_test_remove_tree(tmpdir);
    return 0;
}

static EVP_PKEY *signer_key(bc_command_kind kind)
{
    return bc_command_signer_of(kind) == BC_SIGNER_RECEIPT_KEY ? receipt_key : cmd_key;
}

/* An unsigned command of the given kind with valid params. The caller
 * frees with bc_command_free. */
static bc_command sample(bc_command_kind kind)
{
    bc_command c;
    memset(&c, 0, sizeof(c));
    strcpy(c.id, "cmd-0001");
    strcpy(c.device, "cam-001");
    c.kind = kind;
    c.issued_at = T0;
    c.expires_at = T0 + HOUR;
    switch (kind) {
    case BC_CMD_UPLOAD:
        strcpy(c.params.upload.recording_id, "rec-1");
        c.params.upload.offset = 4096;
        break;
    case BC_CMD_VAULT_RECEIPT:
        strcpy(c.params.receipt.recording_id, "rec-1");
        strcpy(c.params.receipt.sha256,
               "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        c.params.receipt.size = 5000000;
        c.params.receipt.committed_at = T0 - 1000;
        break;
    case BC_CMD_ROTATE_RECORDING_KEY:
        assert_int_equal(bc_key_raw_public(recording_key, c.params.recording_key.public_key),
                         BC_OK);
        assert_int_equal(bc_key_id(recording_key, c.params.recording_key.key_id), BC_OK);
        break;
    case BC_CMD_ROTATE_IDENTITY:
        c.params.identity.phase = BC_IDENTITY_INSTALL;
        assert_int_equal(bc_command_set_cert(&c, CERT_PEM), BC_OK);
        break;
    case BC_CMD_FIRMWARE: {
        bc_firmware_manifest *m = &c.params.firmware;
        strcpy(m->version, "2.4.1");
        m->size = 100000;
        strcpy(m->sha256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
        m->chunk_size = 65536;
        m->chunks = 2;
        assert_int_equal(bc_firmware_sign(m, fw_key, NULL), BC_OK);
        break;
    }
    case BC_CMD_CONFIG:
        c.params.config.has_health_interval_s = true;
        c.params.config.health_interval_s = 30;
        c.params.config.has_pre_event_s = true;
        c.params.config.pre_event_s = 0;
        break;
    default:
        break;
    }
    return c;
}

static bc_command signed_sample(bc_command_kind kind)
{
    bc_command c = sample(kind);
    bc_error err = {{0}};
    bc_status rc = bc_command_sign(&c, signer_key(kind), &err);
    if (rc != BC_OK)
        fail_msg("sign %s: %s", bc_command_kind_name(kind), err.text);
    return c;
}

static bc_replay_cache *new_cache(void)
{
    bc_replay_cache *cache = NULL;
    assert_int_equal(bc_replay_cache_new(BC_REPLAY_CACHE_DEFAULT, &cache), BC_OK);
    return cache;
}

static bc_status verify_fresh(const bc_command *c, const char *self, EVP_PKEY *key, int64_t now,
                              bc_error *err)
{
    bc_replay_cache *cache = new_cache();
    bc_status rc = bc_command_verify(c, self, key, now, cache, err);
    bc_replay_cache_free(cache);
    return rc;
}

static char *encode_ok(const bc_command *c)
{
    char *text = NULL;
    bc_error err = {{0}};
    bc_status rc = bc_command_encode(c, &text, &err);
    if (rc != BC_OK)
        fail_msg("encode: %s", err.text);
    return text;
}

static void assert_same(const bc_command *a, const bc_command *b)
{
    bc_command x = *a;
    bc_command y = *b;
    if (a->kind == BC_CMD_ROTATE_IDENTITY) {
        if (x.params.identity.cert != NULL || y.params.identity.cert != NULL)
            assert_string_equal(x.params.identity.cert, y.params.identity.cert);
        x.params.identity.cert = y.params.identity.cert = NULL;
    }
    assert_memory_equal(&x, &y, sizeof(x));
}

/* ---------------------------------------------------------- round trip */

static void test_round_trip_every_kind(void **state)
{
    (void)state;
    for (int k = 0; k < BC_CMD_KIND_COUNT; k++) {
        bc_command c = signed_sample((bc_command_kind)k);
        char *text = encode_ok(&c);
        bc_command back;
        bc_error err = {{0}};
        bc_status rc = bc_command_decode(text, strlen(text), &back, &err);
        if (rc != BC_OK)
            fail_msg("decode '%s': %s", text, err.text);
        assert_same(&c, &back);
        assert_int_equal(verify_fresh(&back, "cam-001", signer_key(back.kind), NOW, &err), BC_OK);
        char *again = encode_ok(&back);
        assert_string_equal(again, text);
        free(again);
        free(text);
        bc_command_free(&back);
        bc_command_free(&c);
    }
    /* the other shapes of some params */
    bc_command c = sample(BC_CMD_UPLOAD);
    memset(c.params.upload.recording_id, 0, sizeof(c.params.upload.recording_id));
    c.params.upload.offset = 0;
    assert_int_equal(bc_command_sign(&c, cmd_key, NULL), BC_OK);
    char *text = encode_ok(&c);
    assert_non_null(strstr(text, "\"params\":{\"offset\":0}"));
    bc_command back;
    assert_int_equal(bc_command_decode(text, strlen(text), &back, NULL), BC_OK);
    assert_same(&c, &back);
    free(text);
    c = sample(BC_CMD_ROTATE_IDENTITY);
    bc_command_free(&c);
    c.params.identity.phase = BC_IDENTITY_REQUEST;
    assert_int_equal(bc_command_sign(&c, cmd_key, NULL), BC_OK);
    text = encode_ok(&c);
    assert_int_equal(bc_command_decode(text, strlen(text), &back, NULL), BC_OK);
    assert_same(&c, &back);
    assert_int_equal(verify_fresh(&back, "cam-001", cmd_key, NOW, NULL), BC_OK);
    free(text);
}

static void test_kind_names(void **state)
{
    (void)state;
    static const char *const names[] = {"upload",          "vault-receipt", "rotate-recording-key",
                                        "rotate-identity", "firmware",      "config"};
    for (int k = 0; k < BC_CMD_KIND_COUNT; k++) {
        assert_string_equal(bc_command_kind_name((bc_command_kind)k), names[k]);
        bc_command_kind back;
        assert_int_equal(bc_command_kind_from_name(names[k], &back), BC_OK);
        assert_int_equal(back, k);
        assert_true(bc_id_valid(names[k])); /* usable as the topic's last level */
    }
    bc_command_kind back;
    assert_int_equal(bc_command_kind_from_name("reboot", &back), BC_ERR_INVAL);
    assert_null(bc_command_kind_name(BC_CMD_KIND_COUNT));
    assert_int_equal(bc_command_signer_of(BC_CMD_VAULT_RECEIPT), BC_SIGNER_RECEIPT_KEY);
    assert_int_equal(bc_command_signer_of(BC_CMD_FIRMWARE), BC_SIGNER_COMMAND_KEY);
}

/* ------------------------------------------------------------ tampering */

/* Applies change number n to c (one byte of one field); returns 0 when the
 * kind has no change n. */
static int change(bc_command *c, int n)
{
    switch (n) {
    case 0:
        c->id[3] ^= 1;
        return 1;
    case 1:
        c->device[6] = '2';
        return 1;
    case 2:
        c->issued_at += 1;
        return 1;
    case 3:
        c->expires_at -= 1;
        return 1;
    case 4:
        c->sig[0] ^= 1;
        return 1;
    case 5:
        c->sig[BC_ED25519_SIG_LEN - 1] ^= 0x40;
        return 1;
    default:
        break;
    }
    n -= 6;
    switch (c->kind) {
    case BC_CMD_UPLOAD:
        if (n == 0)
            c->params.upload.recording_id[4] = '2';
        else if (n == 1)
            c->params.upload.offset += 1;
        return n < 2;
    case BC_CMD_VAULT_RECEIPT:
        if (n == 0)
            c->params.receipt.recording_id[0] = 'R';
        else if (n == 1)
            c->params.receipt.sha256[63] = '9';
        else if (n == 2)
            c->params.receipt.size += 1;
        else if (n == 3)
            c->params.receipt.committed_at -= 1;
        return n < 4;
    case BC_CMD_ROTATE_RECORDING_KEY:
        if (n == 0)
            c->params.recording_key.public_key[7] ^= 1;
        else if (n == 1)
            c->params.recording_key.key_id[0] =
                c->params.recording_key.key_id[0] == 'a' ? 'b' : 'a';
        return n < 2;
    case BC_CMD_ROTATE_IDENTITY:
        if (n == 0)
            c->params.identity.cert[40] ^= 1;
        else if (n == 1)
            c->params.identity.phase = BC_IDENTITY_REQUEST;
        return n < 2;
    case BC_CMD_FIRMWARE:
        if (n == 0)
            c->params.firmware.version[0] = '3';
        else if (n == 1)
            c->params.firmware.size += 1;
        else if (n == 2)
            c->params.firmware.sha256[0] = 'e';
        else if (n == 3)
            c->params.firmware.rollback = true;
        else if (n == 4)
            c->params.firmware.sig[9] ^= 1;
        else if (n == 5)
            strcpy(c->params.firmware.min_version, "1");
        return n < 6;
    case BC_CMD_CONFIG:
        if (n == 0)
            c->params.config.health_interval_s += 1;
        else if (n == 1)
            c->params.config.pre_event_s = 1;
        else if (n == 2)
            c->params.config.has_warning_timeout_s = true;
        else if (n == 3)
            c->params.config.has_pre_event_s = false;
        return n < 4;
    default:
        return 0;
    }
}

static void test_any_change_breaks_signature(void **state)
{
    (void)state;
    int tried = 0;
    for (int k = 0; k < BC_CMD_KIND_COUNT; k++) {
        for (int n = 0;; n++) {
            bc_command c = signed_sample((bc_command_kind)k);
            if (!change(&c, n)) {
                bc_command_free(&c);
                break;
            }
            bc_error err = {{0}};
            /* verify as the device it names, so the signature is what fails */
            bc_status rc = verify_fresh(&c, c.device, signer_key(c.kind), NOW, &err);
            if (rc != BC_ERR_SIGNATURE)
                fail_msg("%s change %d: got %s (%s)", bc_command_kind_name(c.kind), n,
                         bc_strerror(rc), err.text);
            tried++;
            bc_command_free(&c);
        }
    }
    assert_true(tried >= 30);

    /* Changing the kind reinterprets the params: still refused. */
    bc_command c = signed_sample(BC_CMD_CONFIG);
    c.kind = BC_CMD_UPLOAD;
    assert_int_not_equal(verify_fresh(&c, "cam-001", cmd_key, NOW, NULL), BC_OK);

    /* And a change made in the JSON text decodes but does not verify. */
    c = signed_sample(BC_CMD_VAULT_RECEIPT);
    char *text = encode_ok(&c);
    char *size = strstr(text, "\"size\":5000000");
    assert_non_null(size);
    size[strlen("\"size\":")] = '6';
    bc_command back;
    assert_int_equal(bc_command_decode(text, strlen(text), &back, NULL), BC_OK);
    assert_int_equal(back.params.receipt.size, 6000000);
    assert_int_equal(verify_fresh(&back, "cam-001", receipt_key, NOW, NULL), BC_ERR_SIGNATURE);
    free(text);
}

static void test_keys(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_command c = signed_sample(BC_CMD_CONFIG);
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, NOW, &err), BC_OK);
    assert_int_equal(verify_fresh(&c, "cam-001", receipt_key, NOW, &err), BC_ERR_SIGNATURE);
    assert_int_equal(verify_fresh(&c, "cam-001", fw_key, NOW, &err), BC_ERR_SIGNATURE);

    /* A receipt verifies with the receipt key and not with the command key. */
    c = signed_sample(BC_CMD_VAULT_RECEIPT);
    assert_int_equal(verify_fresh(&c, "cam-001", receipt_key, NOW, &err), BC_OK);
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, NOW, &err), BC_ERR_SIGNATURE);
    assert_non_null(strstr(err.text, "signature"));

    /* A firmware command carries a manifest signed by the firmware key,
     * checked on its own: a command key cannot stand in for it. */
    c = signed_sample(BC_CMD_FIRMWARE);
    assert_int_equal(bc_firmware_verify(&c.params.firmware, fw_key, &err), BC_OK);
    assert_int_equal(bc_firmware_verify(&c.params.firmware, cmd_key, &err), BC_ERR_SIGNATURE);
    assert_int_equal(bc_firmware_sign(&c.params.firmware, cmd_key, &err), BC_OK);
    assert_int_equal(bc_command_sign(&c, cmd_key, &err), BC_OK);
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, NOW, &err), BC_OK);
    assert_int_equal(bc_firmware_verify(&c.params.firmware, fw_key, &err), BC_ERR_SIGNATURE);
}

static void test_unsigned(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_command c = sample(BC_CMD_UPLOAD);
    assert_false(c.has_sig);
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, NOW, &err), BC_ERR_SIGNATURE);
    char *text = (char *)"untouched";
    assert_int_equal(bc_command_encode(&c, &text, &err), BC_ERR_INVAL);
    assert_null(text);

    c = signed_sample(BC_CMD_UPLOAD);
    text = encode_ok(&c);
    char *sig = strstr(text, ",\"sig\":");
    assert_non_null(sig);
    strcpy(sig, "}");
    bc_command back;
    assert_int_equal(bc_command_decode(text, strlen(text), &back, &err), BC_ERR_MISSING);
    assert_non_null(strstr(err.text, "sig"));
    free(text);

    text = encode_ok(&c);
    sig = strstr(text, ",\"sig\":\"");
    char buf[1024];
    snprintf(buf, sizeof(buf), "%.*s,\"sig\":\"\"}", (int)(sig - text), text);
    assert_int_equal(bc_command_decode(buf, strlen(buf), &back, &err), BC_ERR_PARSE);
    snprintf(buf, sizeof(buf), "%.*s,\"sig\":\"AAAA\"}", (int)(sig - text), text);
    assert_int_equal(bc_command_decode(buf, strlen(buf), &back, &err), BC_ERR_PARSE);
    snprintf(buf, sizeof(buf), "%.*s,\"sig\":null}", (int)(sig - text), text);
    assert_int_equal(bc_command_decode(buf, strlen(buf), &back, &err), BC_ERR_TYPE);
    free(text);
}

static void test_time_window(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_command c = signed_sample(BC_CMD_UPLOAD);
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, c.expires_at - 1, &err), BC_OK);
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, c.expires_at, &err), BC_ERR_EXPIRED);
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, c.expires_at + HOUR, &err),
                     BC_ERR_EXPIRED);
    /* issued a little ahead of a camera's clock is fine, far ahead is not */
    assert_int_equal(
        verify_fresh(&c, "cam-001", cmd_key, c.issued_at - BC_COMMAND_MAX_SKEW_MS, &err), BC_OK);
    assert_int_equal(
        verify_fresh(&c, "cam-001", cmd_key, c.issued_at - BC_COMMAND_MAX_SKEW_MS - 1, &err),
        BC_ERR_EXPIRED);
    assert_non_null(strstr(err.text, "future"));

    /* lifetimes are bounded so the replay cache can forget */
    c = sample(BC_CMD_UPLOAD);
    c.expires_at = c.issued_at + BC_COMMAND_MAX_LIFETIME_MS + 1;
    assert_int_equal(bc_command_sign(&c, cmd_key, &err), BC_ERR_INVAL);
    assert_false(c.has_sig);
    c.expires_at = c.issued_at;
    assert_int_equal(bc_command_validate(&c, &err), BC_ERR_INVAL);
}

static void test_addressee(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_command c = signed_sample(BC_CMD_UPLOAD);
    assert_int_equal(verify_fresh(&c, "cam-002", cmd_key, NOW, &err), BC_ERR_DENIED);
    assert_int_equal(verify_fresh(&c, "cam-00", cmd_key, NOW, &err), BC_ERR_DENIED);
    assert_int_equal(verify_fresh(&c, "cam-0011", cmd_key, NOW, &err), BC_ERR_DENIED);
    /* the addressee is checked first: a foreign, expired, forged command is DENIED */
    c.sig[0] ^= 1;
    assert_int_equal(verify_fresh(&c, "cam-002", cmd_key, c.expires_at + 1, &err), BC_ERR_DENIED);
    /* and the signature before the time: forged and expired is SIGNATURE */
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, c.expires_at + 1, &err),
                     BC_ERR_SIGNATURE);
}

/* --------------------------------------------------------------- replay */

static void test_replay(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_replay_cache *cache = new_cache();
    bc_command c = signed_sample(BC_CMD_CONFIG);
    assert_int_equal(bc_command_verify(&c, "cam-001", cmd_key, NOW, cache, &err), BC_OK);
    assert_int_equal(bc_replay_cache_count(cache), 1);
    assert_int_equal(bc_command_verify(&c, "cam-001", cmd_key, NOW + 10, cache, &err),
                     BC_ERR_REPLAY);
    /* a forged copy does not reach the cache: it fails on its signature */
    bc_command forged = c;
    strcpy(forged.id, "cmd-0002");
    assert_int_equal(bc_command_verify(&forged, "cam-001", cmd_key, NOW, cache, &err),
                     BC_ERR_SIGNATURE);
    assert_int_equal(bc_replay_cache_count(cache), 1);
    /* a new id is a new command */
    bc_command second = sample(BC_CMD_CONFIG);
    strcpy(second.id, "cmd-0002");
    assert_int_equal(bc_command_sign(&second, cmd_key, &err), BC_OK);
    assert_int_equal(bc_command_verify(&second, "cam-001", cmd_key, NOW, cache, &err), BC_OK);

    /* saved and loaded by a restarted camera, the cache still refuses it */
    char path[256];
    snprintf(path, sizeof(path), "%s/replay", tmpdir);
    assert_int_equal(bc_replay_cache_save(cache, path, &err), BC_OK);
    bc_replay_cache_free(cache);
    cache = new_cache();
    assert_int_equal(bc_replay_cache_load(cache, path, &err), BC_OK);
    assert_int_equal(bc_replay_cache_count(cache), 2);
    assert_int_equal(bc_command_verify(&c, "cam-001", cmd_key, NOW + 20, cache, &err),
                     BC_ERR_REPLAY);
    assert_int_equal(bc_command_verify(&second, "cam-001", cmd_key, NOW + 20, cache, &err),
                     BC_ERR_REPLAY);
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* no temporary left behind */

    /* once expired, entries are forgotten: memory stays bounded */
    bc_command later = sample(BC_CMD_CONFIG);
    strcpy(later.id, "cmd-0003");
    later.issued_at = c.expires_at + 10;
    later.expires_at = later.issued_at + HOUR;
    assert_int_equal(bc_command_sign(&later, cmd_key, &err), BC_OK);
    assert_int_equal(bc_command_verify(&later, "cam-001", cmd_key, later.issued_at, cache, &err),
                     BC_OK);
    assert_int_equal(bc_replay_cache_count(cache), 1);
    /* and the expired one is refused for its expiry, not let through */
    assert_int_equal(bc_command_verify(&c, "cam-001", cmd_key, later.issued_at, cache, &err),
                     BC_ERR_EXPIRED);
    /* even if the clock jumps back: the floor remembers what was forgotten */
    assert_int_equal(bc_command_verify(&c, "cam-001", cmd_key, NOW, cache, &err), BC_ERR_REPLAY);
    bc_replay_cache_free(cache);
}

static void test_replay_cache_bounded(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_replay_cache *cache = NULL;
    assert_int_equal(bc_replay_cache_new(0, &cache), BC_ERR_INVAL);
    assert_int_equal(bc_replay_cache_new(4, &cache), BC_OK);
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        assert_int_equal(bc_replay_cache_remember(cache, id, 1000 + i, 0, &err), BC_OK);
        assert_true(bc_replay_cache_count(cache) <= 4);
    }
    /* the ones pushed out are still refused, through the floor */
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        assert_int_equal(bc_replay_cache_remember(cache, id, 1000 + i, 0, &err), BC_ERR_REPLAY);
    }
    /* a new command expiring later than the floor is accepted */
    assert_int_equal(bc_replay_cache_remember(cache, "fresh", 2000, 0, &err), BC_OK);
    /* a new command expiring before the floor cannot be told from a replay */
    assert_int_equal(bc_replay_cache_remember(cache, "old", 1001, 0, &err), BC_ERR_REPLAY);
    /* a full cache and a new id that expires first: accepted, then refused */
    assert_int_equal(bc_replay_cache_remember(cache, "soon", 1007, 0, &err), BC_OK);
    assert_int_equal(bc_replay_cache_remember(cache, "soon", 1007, 0, &err), BC_ERR_REPLAY);
    assert_int_equal(bc_replay_cache_remember(cache, "bad/id", 5000, 0, &err), BC_ERR_INVAL);

    /* loading a file with more entries than the capacity keeps it bounded */
    char path[256];
    snprintf(path, sizeof(path), "%s/replay", tmpdir);
    bc_replay_cache *big = NULL;
    assert_int_equal(bc_replay_cache_new(100, &big), BC_OK);
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "b%d", i);
        assert_int_equal(bc_replay_cache_remember(big, id, 3000 + i, 0, &err), BC_OK);
    }
    assert_int_equal(bc_replay_cache_save(big, path, &err), BC_OK);
    assert_int_equal(bc_replay_cache_load(cache, path, &err), BC_OK);
    assert_int_equal(bc_replay_cache_count(cache), 4);
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "b%d", i);
        assert_int_equal(bc_replay_cache_remember(cache, id, 3000 + i, 0, &err), BC_ERR_REPLAY);
    }
    bc_replay_cache_free(big);
    bc_replay_cache_free(cache);
}

static void test_replay_cache_load_errors(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_replay_cache *cache = new_cache();
    assert_int_equal(bc_replay_cache_remember(cache, "keep", 5000, 0, &err), BC_OK);
    char path[256];
    snprintf(path, sizeof(path), "%s/replay", tmpdir);
    unlink(path);
    assert_int_equal(bc_replay_cache_load(cache, path, &err), BC_ERR_NOT_FOUND);
    static const char *const bad[] = {
        "",
        "not a cache\n",
        "bodycam-replay-cache 1\n",
        "bodycam-replay-cache 1\nfloor x\n",
        "bodycam-replay-cache 1\nfloor 0\nid-only\n",
        "bodycam-replay-cache 1\nfloor 0\nbad/id 100\n",
        "bodycam-replay-cache 1\nfloor 0\nok 12x\n",
        "bodycam-replay-cache 1\nfloor 0\nok 100", /* cut short */
        "bodycam-replay-cache 2\nfloor 0\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bc_test_write_file(path, bad[i]);
        bc_status rc = bc_replay_cache_load(cache, path, &err);
        if (rc != BC_ERR_PARSE)
            fail_msg("file %zu: got %s", i, bc_strerror(rc));
        /* the cache is unchanged */
        assert_int_equal(bc_replay_cache_count(cache), 1);
        assert_int_equal(bc_replay_cache_remember(cache, "keep", 5000, 0, &err), BC_ERR_REPLAY);
    }
    bc_test_write_file(path, "bodycam-replay-cache 1\nfloor 10\nx1 100\nx2 5\n");
    assert_int_equal(bc_replay_cache_load(cache, path, &err), BC_OK);
    assert_int_equal(bc_replay_cache_count(cache), 1); /* x2 is under the floor */
    assert_int_equal(bc_replay_cache_remember(cache, "x1", 100, 0, &err), BC_ERR_REPLAY);
    assert_int_equal(bc_replay_cache_remember(cache, "keep", 5000, 0, &err), BC_OK);
    assert_int_equal(bc_replay_cache_save(cache, "/nonexistent-dir/replay", &err), BC_ERR_IO);
    unlink(path);
    bc_replay_cache_free(cache);
}

/* -------------------------------------------------------------- decode */

static bc_status decode_with(const bc_command *c, const char *key, const char *raw, bool in_params,
                             bc_error *err)
{
    char *text = encode_ok(c);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *obj = in_params ? cJSON_GetObjectItemCaseSensitive(root, "params") : root;
    if (raw == NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    } else {
        cJSON *value = cJSON_Parse(raw);
        assert_non_null(value);
        if (cJSON_HasObjectItem(obj, key))
            cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
        else
            cJSON_AddItemToObject(obj, key, value);
    }
    char *changed = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    bc_command back;
    bc_status rc = bc_command_decode(changed, strlen(changed), &back, err);
    bc_command_free(&back);
    free(changed);
    return rc;
}

static void expect(bc_command_kind kind, const char *key, const char *raw, bool in_params,
                   bc_status want)
{
    bc_command c = signed_sample(kind);
    bc_error err = {{0}};
    bc_status got = decode_with(&c, key, raw, in_params, &err);
    if (got != want)
        fail_msg("%s %s=%s: got %s (%s), want %s", bc_command_kind_name(kind), key,
                 raw ? raw : "(removed)", bc_strerror(got), err.text, bc_strerror(want));
    bc_command_free(&c);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    static const char *const top[] = {"v",         "id",         "device", "kind",
                                      "issued_at", "expires_at", "params", "sig"};
    for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
        expect(BC_CMD_UPLOAD, top[i], NULL, false, BC_ERR_MISSING);
        expect(BC_CMD_UPLOAD, top[i], "[1]", false, BC_ERR_TYPE);
    }
    expect(BC_CMD_UPLOAD, "v", "2", false, BC_ERR_VERSION);
    expect(BC_CMD_UPLOAD, "kind", "\"reboot\"", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "device", "\"CAM-001\"", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "device", "\"cam/001\"", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "device", "\"cam+\"", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "id", "\"cmd#1\"", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "id", "\"\"", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "issued_at", "-1", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "expires_at", "1700000000000", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "expires_at", "1700086400001", false, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "unknown", "{\"deep\":[1]}", false, BC_OK);

    expect(BC_CMD_UPLOAD, "recording_id", NULL, true, BC_ERR_INVAL); /* offset without it */
    expect(BC_CMD_UPLOAD, "recording_id", "\"rec/1\"", true, BC_ERR_INVAL);
    expect(BC_CMD_UPLOAD, "offset", "-5", true, BC_ERR_INVAL);
    static const char *const receipt[] = {"recording_id", "sha256", "size", "committed_at"};
    for (size_t i = 0; i < 4; i++) {
        expect(BC_CMD_VAULT_RECEIPT, receipt[i], NULL, true, BC_ERR_MISSING);
        expect(BC_CMD_VAULT_RECEIPT, receipt[i], "true", true, BC_ERR_TYPE);
    }
    expect(BC_CMD_VAULT_RECEIPT, "sha256", "\"abc\"", true, BC_ERR_INVAL);
    expect(BC_CMD_VAULT_RECEIPT, "size", "0", true, BC_ERR_INVAL);
    expect(BC_CMD_ROTATE_RECORDING_KEY, "key_id", NULL, true, BC_ERR_MISSING);
    expect(BC_CMD_ROTATE_RECORDING_KEY, "public_key", NULL, true, BC_ERR_MISSING);
    expect(BC_CMD_ROTATE_RECORDING_KEY, "public_key", "\"AAAA\"", true, BC_ERR_PARSE);
    expect(BC_CMD_ROTATE_RECORDING_KEY, "key_id", "\"0000000000000000\"", true, BC_ERR_INVAL);
    expect(BC_CMD_ROTATE_IDENTITY, "phase", "\"destroy\"", true, BC_ERR_INVAL);
    expect(BC_CMD_ROTATE_IDENTITY, "cert", NULL, true, BC_ERR_MISSING);
    expect(BC_CMD_ROTATE_IDENTITY, "cert", "\"not a certificate\"", true, BC_ERR_INVAL);
    expect(BC_CMD_FIRMWARE, "manifest", NULL, true, BC_ERR_MISSING);
    expect(BC_CMD_FIRMWARE, "manifest", "\"x\"", true, BC_ERR_TYPE);
    expect(BC_CMD_FIRMWARE, "manifest", "{\"v\":1}", true, BC_ERR_MISSING);
    expect(BC_CMD_CONFIG, "health_interval_s", "0", true, BC_ERR_INVAL);
    expect(BC_CMD_CONFIG, "pre_event_s", "301", true, BC_ERR_INVAL);
    expect(BC_CMD_CONFIG, "warning_timeout_s", "\"10\"", true, BC_ERR_TYPE);
    bc_command c = signed_sample(BC_CMD_CONFIG);
    bc_error err = {{0}};
    char *text = encode_ok(&c);
    char *params = strstr(text, "\"params\":{");
    assert_non_null(params);
    char buf[1024];
    char *end = strchr(params, '}');
    snprintf(buf, sizeof(buf), "%.*s\"params\":{}%s", (int)(params - text), text, end + 1);
    bc_command back;
    assert_int_equal(bc_command_decode(buf, strlen(buf), &back, &err), BC_ERR_MISSING);
    free(text);

    /* over 16 KiB is refused before parsing */
    char *huge = malloc(BC_COMMAND_JSON_MAX + 2);
    memset(huge, ' ', BC_COMMAND_JSON_MAX + 1);
    huge[0] = '{';
    huge[BC_COMMAND_JSON_MAX] = '}';
    assert_int_equal(bc_command_decode(huge, BC_COMMAND_JSON_MAX + 1, &back, &err), BC_ERR_TOO_BIG);
    assert_int_equal(bc_command_decode(huge, BC_COMMAND_JSON_MAX, &back, &err), BC_ERR_PARSE);
    free(huge);
}

static void test_validate_params(void **state)
{
    (void)state;
    bc_error err = {{0}};
    bc_command c = sample(BC_CMD_CONFIG);
    c.params.config.has_health_interval_s = false;
    c.params.config.has_pre_event_s = false;
    assert_int_equal(bc_command_validate(&c, &err), BC_ERR_MISSING);
    c = sample(BC_CMD_ROTATE_IDENTITY);
    bc_command_free(&c);
    assert_int_equal(bc_command_validate(&c, &err), BC_ERR_MISSING);
    c = sample(BC_CMD_FIRMWARE);
    c.params.firmware.has_sig = false;
    assert_int_equal(bc_command_validate(&c, &err), BC_ERR_MISSING);
    assert_int_equal(bc_command_sign(&c, cmd_key, &err), BC_ERR_MISSING);
    c = sample(BC_CMD_ROTATE_RECORDING_KEY);
    c.params.recording_key.public_key[0] ^= 1;
    assert_int_equal(bc_command_validate(&c, &err), BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "key_id"));
    c = sample(BC_CMD_UPLOAD);
    c.kind = BC_CMD_KIND_COUNT;
    assert_int_equal(bc_command_validate(&c, &err), BC_ERR_INVAL);
    c = sample(BC_CMD_UPLOAD);
    memset(c.device, 'a', sizeof(c.device)); /* unterminated */
    assert_int_equal(bc_command_validate(&c, &err), BC_ERR_INVAL);
    c = sample(BC_CMD_UPLOAD);
    assert_int_equal(bc_command_sign(&c, cmd_key, &err), BC_OK);
    memset(c.id, 'a', sizeof(c.id));
    assert_int_equal(verify_fresh(&c, "cam-001", cmd_key, NOW, &err), BC_ERR_INVAL);
}

/* ------------------------------------------------------------- fuzzing */

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static const char interesting[] = "\"\\/+#A{}[],:0-9e.\x00\xff\xc0 Zz=";

static void test_fuzz_decode(void **state)
{
    (void)state;
    int accepted = 0;
    for (int k = 0; k < BC_CMD_KIND_COUNT; k++) {
        bc_command c = signed_sample((bc_command_kind)k);
        char *text = encode_ok(&c);
        size_t len = strlen(text);
        char *buf = malloc(len + 8);
        for (size_t n = 0; n < len; n++) {
            bc_command back;
            char *exact = malloc(n + 1); /* exactly n bytes: ASan sees any overread */
            memcpy(exact, text, n);
            bc_status rc = bc_command_decode(exact, n, &back, NULL);
            free(exact);
            if (rc == BC_OK)
                fail_msg("accepted a truncation to %zu of '%s'", n, text);
        }
        for (int r = 0; r < 3000; r++) {
            memcpy(buf, text, len);
            size_t n = len;
            size_t pos = rnd() % len;
            char ch =
                rnd() % 2 ? interesting[rnd() % (sizeof(interesting) - 1)] : (char)(rnd() & 0xff);
            if (rnd() % 2) {
                buf[pos] = ch;
            } else {
                memmove(buf + pos + 1, buf + pos, len - pos);
                buf[pos] = ch;
                n++;
            }
            bc_command back;
            char *exact = malloc(n + 1);
            memcpy(exact, buf, n);
            bc_status rc = bc_command_decode(exact, n, &back, NULL);
            free(exact);
            if (rc != BC_OK)
                continue;
            accepted++;
            assert_int_equal(bc_command_validate(&back, NULL), BC_OK);
            /* whatever still verifies must mean exactly what was signed */
            if (verify_fresh(&back, back.device, signer_key(back.kind), NOW, NULL) == BC_OK) {
                char *again = encode_ok(&back);
                assert_string_equal(again, text);
                free(again);
            }
            bc_command_free(&back);
        }
        free(buf);
        free(text);
        bc_command_free(&c);
    }
    assert_true(accepted > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_kind),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_any_change_breaks_signature),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_unsigned),
        cmocka_unit_test(test_time_window),
        cmocka_unit_test(test_addressee),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_replay_cache_bounded),
        cmocka_unit_test(test_replay_cache_load_errors),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_validate_params),
        cmocka_unit_test(test_fuzz_decode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
