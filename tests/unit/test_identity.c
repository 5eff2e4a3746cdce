/* Unit tests for device-agent/identity: the camera's TLS identity files
 * and the steps of a rotation, with a real CA (services/common/ca) that
 * signs the camera's CSRs, real files in a scratch directory, and the
 * start-up rules after a crash at each step (a crash is simulated by
 * freeing the identity and leaving the files as that step left them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/ca.h"
#include "common/clock.h"
#include "device-agent/identity.h"
#include "test_util.h"

#define DEV "cam-001"
#define DAY_MS (24LL * 3600 * 1000)

typedef struct fixture {
    bc_test_scratch s; /* s.dir: the camera's data directory */
    char ca_path[256], cert[256], key[256];
    char id_dir[256], cur_cert[256], cur_key[256], next_cert[256], next_key[256], record[256];
    bc_ca ca;
    char configured_fp[BC_CERT_FINGERPRINT_LEN + 1];
    bc_identity *id;
} fixture;

static int64_t g_offset_ms;

static int64_t offset_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + g_offset_ms;
}

/* ---- helpers ---- */

static void write_configured_identity(fixture *f)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    bc_error err;
    assert_int_equal(bc_ca_new_key(&key, &err), BC_OK);
    assert_int_equal(bc_ca_issue(&f->ca, key, DEV, BC_CERT_DEVICE, 30, NULL, &cert, &err), BC_OK);
    assert_int_equal(bc_ca_write_cert(f->cert, cert, &err), BC_OK);
    assert_int_equal(bc_ca_write_key(f->key, key, &err), BC_OK);
    assert_int_equal(bc_ca_fingerprint(cert, f->configured_fp), BC_OK);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    bc_error err;
    void *scratch = NULL;
    if (f == NULL || bc_test_scratch_setup(&scratch, "identity", "data") != 0)
        return -1;
    f->s = *(bc_test_scratch *)scratch;
    free(scratch);
    if (mkdir(f->s.dir, 0700) != 0 || bc_ca_create("test fleet CA", 30, &f->ca, &err) != BC_OK)
        return -1;
    snprintf(f->ca_path, sizeof(f->ca_path), "%s/ca.crt", f->s.root);
    snprintf(f->cert, sizeof(f->cert), "%s/dev.crt", f->s.root);
    snprintf(f->key, sizeof(f->key), "%s/dev.key", f->s.root);
    snprintf(f->id_dir, sizeof(f->id_dir), "%s/identity", f->s.dir);
    snprintf(f->cur_cert, sizeof(f->cur_cert), "%s/current.crt", f->id_dir);
    snprintf(f->cur_key, sizeof(f->cur_key), "%s/current.key", f->id_dir);
    snprintf(f->next_cert, sizeof(f->next_cert), "%s/next.crt", f->id_dir);
    snprintf(f->next_key, sizeof(f->next_key), "%s/next.key", f->id_dir);
    snprintf(f->record, sizeof(f->record), "%s/install.json", f->id_dir);
    if (bc_ca_write_cert(f->ca_path, f->ca.cert, &err) != BC_OK)
        return -1;
    *state = f;
    return 0;
}

static int setup_identity(void **state)
{
    if (setup(state) != 0)
        return -1;
    fixture *f = *state;
    write_configured_identity(f);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_clock_set_source(NULL);
    g_offset_ms = 0;
    bc_identity_free(f->id);
    bc_ca_free(&f->ca);
    bc_test_remove_tree(f->s.root);
    free(f);
    return 0;
}

static void open_identity(fixture *f)
{
    bc_error err;
    bc_identity_free(f->id);
    f->id = NULL;
    bc_status st = bc_identity_open(f->s.dir, DEV, f->ca_path, f->cert, f->key, &f->id, &err);
    if (st != BC_OK)
        fail_msg("bc_identity_open: %s", err.text);
}

static bool exists(const char *path)
{
    return bc_test_exists(NULL, path);
}

static X509_REQ *parse_csr(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    assert_non_null(bio);
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(req);
    return req;
}

static EVP_PKEY *load_key(const char *path)
{
    EVP_PKEY *key = NULL;
    bc_error err;
    assert_int_equal(bc_ca_load_key(path, &key, &err), BC_OK);
    return key;
}

static char *cert_pem(X509 *cert)
{
    char *pem = NULL;
    assert_int_equal(bc_ca_cert_pem(cert, &pem, NULL), BC_OK);
    X509_free(cert);
    return pem;
}

/* A request, and the fleet CA's certificate for its CSR (PEM, malloc'd). */
static char *request_and_sign(fixture *f)
{
    char *csr = NULL;
    X509 *cert = NULL;
    bc_error err;
    assert_int_equal(bc_identity_request(f->id, &csr, &err), BC_OK);
    bc_status st = bc_ca_sign_csr(&f->ca, csr, strlen(csr), DEV, BC_CERT_DEVICE, 30, &cert, &err);
    if (st != BC_OK)
        fail_msg("bc_ca_sign_csr: %s", err.text);
    free(csr);
    return cert_pem(cert);
}

/* A certificate issued directly by ca for key under cn and role. */
static char *issue(const bc_ca *ca, EVP_PKEY *key, const char *cn, bc_cert_role role)
{
    X509 *cert = NULL;
    bc_error err;
    assert_int_equal(bc_ca_issue(ca, key, cn, role, 1, NULL, &cert, &err), BC_OK);
    return cert_pem(cert);
}

static void fingerprint_of(const char *path, char fp[BC_CERT_FINGERPRINT_LEN + 1])
{
    X509 *cert = NULL;
    bc_error err;
    assert_int_equal(bc_ca_load_cert(path, &cert, &err), BC_OK);
    assert_int_equal(bc_ca_fingerprint(cert, fp), BC_OK);
    X509_free(cert);
}

static bool pair_matches(const char *cert_path, const char *key_path)
{
    X509 *cert = NULL;
    bc_error err;
    assert_int_equal(bc_ca_load_cert(cert_path, &cert, &err), BC_OK);
    EVP_PKEY *key = load_key(key_path);
    bool same = X509_check_private_key(cert, key) == 1;
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(cert);
    return same;
}

static void install(fixture *f, const char *cmd_id, const char *pem)
{
    bc_error err;
    bc_status st = bc_identity_install(f->id, cmd_id, pem, strlen(pem), &err);
    if (st != BC_OK)
        fail_msg("bc_identity_install: %s", err.text);
}

/* A whole rotation; returns the new certificate's fingerprint in fp. */
static void rotate(fixture *f, const char *cmd_id, char fp[BC_CERT_FINGERPRINT_LEN + 1])
{
    bc_error err;
    char *pem = request_and_sign(f);
    install(f, cmd_id, pem);
    free(pem);
    fingerprint_of(f->next_cert, fp);
    assert_int_equal(bc_identity_promote(f->id, &err), BC_OK);
    assert_int_equal(bc_identity_install_done(f->id, &err), BC_OK);
}

/* ---- tests ---- */

static void test_start_uses_configured_files(void **state)
{
    fixture *f = *state;
    struct stat st;
    open_identity(f);
    assert_string_equal(bc_identity_cert_file(f->id), f->cert);
    assert_string_equal(bc_identity_key_file(f->id), f->key);
    assert_false(bc_identity_rotated(f->id));
    assert_string_equal(bc_identity_fingerprint(f->id), f->configured_fp);
    assert_int_equal(bc_identity_get_stage(f->id), BC_IDENTITY_IDLE);
    assert_int_equal(stat(f->id_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char cmd[BC_ID_MAX + 1];
    bool promoted = true;
    assert_false(bc_identity_interrupted(f->id, cmd, &promoted));
}

static void test_request_makes_key_and_csr(void **state)
{
    fixture *f = *state;
    char *csr = NULL;
    bc_error err;
    struct stat st;
    open_identity(f);
    assert_int_equal(bc_identity_request(f->id, &csr, &err), BC_OK);
    assert_int_equal(bc_identity_get_stage(f->id), BC_IDENTITY_REQUESTED);
    assert_int_equal(stat(f->next_key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    X509_REQ *req = parse_csr(csr);
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    EVP_PKEY *key = load_key(f->next_key);
    assert_int_equal(X509_REQ_verify(req, pub), 1); /* self-signed */
    assert_int_equal(EVP_PKEY_eq(pub, key), 1);     /* for next.key */
    assert_true(EVP_PKEY_is_a(pub, "EC"));
    char group[64];
    size_t group_len = 0;
    assert_int_equal(EVP_PKEY_get_group_name(pub, group, sizeof(group), &group_len), 1);
    assert_string_equal(group, "prime256v1");
    char cn[64];
    assert_true(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn,
                                          sizeof(cn)) > 0);
    assert_string_equal(cn, DEV);
    /* what the key-rotation service will do with it */
    X509 *cert = NULL;
    assert_int_equal(bc_ca_sign_csr(&f->ca, csr, strlen(csr), DEV, BC_CERT_DEVICE, 30, &cert, &err),
                     BC_OK);
    X509_free(cert);
    EVP_PKEY_free(key);
    X509_REQ_free(req);
    free(csr);
}

static void test_install_promote_and_restart(void **state)
{
    fixture *f = *state;
    bc_error err;
    open_identity(f);
    char *pem = request_and_sign(f);
    install(f, "inst-1", pem);
    free(pem);
    assert_int_equal(bc_identity_get_stage(f->id), BC_IDENTITY_INSTALLED);
    assert_true(exists(f->next_cert));
    assert_true(exists(f->record));
    assert_true(pair_matches(bc_identity_next_cert_file(f->id), bc_identity_next_key_file(f->id)));
    assert_string_equal(bc_identity_cert_file(f->id), f->cert); /* not yet */
    char fp[BC_CERT_FINGERPRINT_LEN + 1];
    fingerprint_of(f->next_cert, fp);

    assert_int_equal(bc_identity_promote(f->id, &err), BC_OK);
    assert_true(bc_identity_rotated(f->id));
    assert_string_equal(bc_identity_cert_file(f->id), f->cur_cert);
    assert_string_equal(bc_identity_key_file(f->id), f->cur_key);
    assert_false(exists(f->next_cert));
    assert_false(exists(f->next_key));
    assert_true(pair_matches(f->cur_cert, f->cur_key));
    assert_string_equal(bc_identity_fingerprint(f->id), fp);
    assert_int_equal(bc_identity_get_stage(f->id), BC_IDENTITY_IDLE);
    assert_true(exists(f->record));
    assert_int_equal(bc_identity_install_done(f->id, &err), BC_OK);
    assert_false(exists(f->record));

    open_identity(f); /* a restart: the rotated identity takes precedence */
    assert_true(bc_identity_rotated(f->id));
    assert_string_equal(bc_identity_cert_file(f->id), f->cur_cert);
    assert_string_equal(bc_identity_fingerprint(f->id), fp);
    char cmd[BC_ID_MAX + 1];
    bool promoted = false;
    assert_false(bc_identity_interrupted(f->id, cmd, &promoted));
}

static void refuse(fixture *f, const char *pem, bc_status want, const char *what)
{
    bc_error err;
    bc_status st = bc_identity_install(f->id, "inst-x", pem, strlen(pem), &err);
    if (st != want)
        fail_msg("%s: got %s (%s), wanted %s", what, bc_strerror(st), err.text, bc_strerror(want));
    assert_false(exists(f->next_cert));
    assert_false(exists(f->record));
    assert_int_equal(bc_identity_get_stage(f->id), BC_IDENTITY_REQUESTED);
}

static void test_install_refuses_bad_certificates(void **state)
{
    fixture *f = *state;
    char *csr = NULL, *pem = NULL;
    bc_error err;
    bc_ca foreign;
    EVP_PKEY *other = NULL;
    open_identity(f);
    const char *garbage = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
    assert_int_equal(bc_identity_install(f->id, "inst-0", garbage, strlen(garbage), &err),
                     BC_ERR_STATE); /* no request yet */

    assert_int_equal(bc_identity_request(f->id, &csr, &err), BC_OK);
    free(csr);
    EVP_PKEY *next = load_key(f->next_key);
    assert_int_equal(bc_ca_new_key(&other, &err), BC_OK);
    assert_int_equal(bc_ca_create("foreign CA", 30, &foreign, &err), BC_OK);

    refuse(f, garbage, BC_ERR_PARSE, "garbage");
    pem = issue(&f->ca, next, "cam-002", BC_CERT_DEVICE);
    refuse(f, pem, BC_ERR_DENIED, "another camera's CN");
    free(pem);
    pem = issue(&f->ca, other, DEV, BC_CERT_DEVICE);
    refuse(f, pem, BC_ERR_WRONG_KEY, "another key");
    free(pem);
    pem = issue(&foreign, next, DEV, BC_CERT_DEVICE);
    refuse(f, pem, BC_ERR_SIGNATURE, "another CA");
    free(pem);
    pem = issue(&f->ca, next, DEV, BC_CERT_BROKER);
    refuse(f, pem, BC_ERR_DENIED, "a server certificate (no clientAuth)");
    free(pem);
    pem = issue(&f->ca, next, DEV, BC_CERT_DEVICE); /* valid 1 day */
    g_offset_ms = 3 * DAY_MS;
    bc_clock_set_source(offset_clock);
    refuse(f, pem, BC_ERR_SIGNATURE, "an expired certificate");
    bc_clock_set_source(NULL);
    assert_int_equal(bc_identity_check_cert(f->id, pem, strlen(pem), &err), BC_OK);
    install(f, "inst-1", pem); /* the request still stands */
    free(pem);
    assert_int_equal(bc_identity_get_stage(f->id), BC_IDENTITY_INSTALLED);

    bc_ca_free(&foreign);
    EVP_PKEY_free(other);
    EVP_PKEY_free(next);
}

static void test_new_request_replaces_the_key(void **state)
{
    fixture *f = *state;
    char *csr = NULL;
    bc_error err;
    open_identity(f);
    char *first = request_and_sign(f);
    assert_int_equal(bc_identity_request(f->id, &csr, &err), BC_OK);
    free(csr);
    refuse(f, first, BC_ERR_WRONG_KEY, "a certificate for the replaced key");
    free(first);
}

static void test_abandon_keeps_the_old_identity(void **state)
{
    fixture *f = *state;
    bc_error err;
    open_identity(f);
    char *pem = request_and_sign(f);
    install(f, "inst-1", pem);
    free(pem);
    assert_int_equal(bc_identity_promote(f->id, &err), BC_OK);
    char first_fp[BC_CERT_FINGERPRINT_LEN + 1];
    snprintf(first_fp, sizeof(first_fp), "%s", bc_identity_fingerprint(f->id));
    assert_int_equal(bc_identity_install_done(f->id, &err), BC_OK);

    pem = request_and_sign(f);
    install(f, "inst-2", pem);
    free(pem);
    assert_int_equal(bc_identity_abandon(f->id, &err), BC_OK);
    assert_int_equal(bc_identity_get_stage(f->id), BC_IDENTITY_IDLE);
    assert_false(exists(f->next_cert));
    assert_false(exists(f->next_key));
    assert_string_equal(bc_identity_cert_file(f->id), f->cur_cert);
    assert_string_equal(bc_identity_fingerprint(f->id), first_fp);
    assert_true(pair_matches(f->cur_cert, f->cur_key));
    assert_int_equal(bc_identity_promote(f->id, &err), BC_ERR_STATE);
}

/* Killed after the install stored next.*, before the broker accepted it. */
static void test_restart_before_commit(void **state)
{
    fixture *f = *state;
    bc_error err;
    open_identity(f);
    char *pem = request_and_sign(f);
    install(f, "inst-7", pem);
    free(pem);

    open_identity(f);
    assert_false(bc_identity_rotated(f->id));
    assert_string_equal(bc_identity_cert_file(f->id), f->cert);
    assert_string_equal(bc_identity_fingerprint(f->id), f->configured_fp);
    assert_false(exists(f->next_cert));
    assert_false(exists(f->next_key));
    assert_int_equal(bc_identity_get_stage(f->id), BC_IDENTITY_IDLE);
    char cmd[BC_ID_MAX + 1];
    bool promoted = true;
    assert_true(bc_identity_interrupted(f->id, cmd, &promoted));
    assert_string_equal(cmd, "inst-7");
    assert_false(promoted);
    assert_int_equal(bc_identity_install_done(f->id, &err), BC_OK);
    assert_false(bc_identity_interrupted(f->id, cmd, &promoted));
    open_identity(f);
    assert_false(bc_identity_interrupted(f->id, cmd, &promoted));
}

/* The same on a second rotation: current.* (the first one) stays, and the
 * interrupted install is not reported as promoted. */
static void test_restart_before_commit_of_a_second_rotation(void **state)
{
    fixture *f = *state;
    char fp[BC_CERT_FINGERPRINT_LEN + 1];
    open_identity(f);
    rotate(f, "inst-1", fp);
    char *pem = request_and_sign(f);
    install(f, "inst-2", pem);
    free(pem);

    open_identity(f);
    assert_true(bc_identity_rotated(f->id));
    assert_string_equal(bc_identity_fingerprint(f->id), fp);
    assert_true(pair_matches(f->cur_cert, f->cur_key));
    assert_false(exists(f->next_cert));
    assert_false(exists(f->next_key));
    char cmd[BC_ID_MAX + 1];
    bool promoted = true;
    assert_true(bc_identity_interrupted(f->id, cmd, &promoted));
    assert_string_equal(cmd, "inst-2");
    assert_false(promoted);
}

/* Killed between the commit (next.crt -> current.crt) and the key rename,
 * on a second rotation (so an old current.key is there to be replaced). */
static void test_restart_after_commit_finishes_the_promotion(void **state)
{
    fixture *f = *state;
    char fp[BC_CERT_FINGERPRINT_LEN + 1];
    open_identity(f);
    rotate(f, "inst-1", fp);
    char *pem = request_and_sign(f);
    install(f, "inst-2", pem);
    free(pem);
    fingerprint_of(f->next_cert, fp);
    assert_int_equal(rename(f->next_cert, f->cur_cert), 0); /* the commit, then the crash */
    assert_false(pair_matches(f->cur_cert, f->cur_key));

    open_identity(f);
    assert_true(bc_identity_rotated(f->id));
    assert_string_equal(bc_identity_fingerprint(f->id), fp);
    assert_string_equal(bc_identity_key_file(f->id), f->cur_key);
    assert_true(pair_matches(f->cur_cert, f->cur_key));
    assert_false(exists(f->next_key));
    char cmd[BC_ID_MAX + 1];
    bool promoted = false;
    assert_true(bc_identity_interrupted(f->id, cmd, &promoted));
    assert_string_equal(cmd, "inst-2");
    assert_true(promoted); /* its ack must still go out: ok */
}

/* Killed after the promotion, before the ack was queued. */
static void test_restart_after_promotion_reports_ok(void **state)
{
    fixture *f = *state;
    bc_error err;
    open_identity(f);
    char *pem = request_and_sign(f);
    install(f, "inst-3", pem);
    free(pem);
    assert_int_equal(bc_identity_promote(f->id, &err), BC_OK);
    open_identity(f);
    char cmd[BC_ID_MAX + 1];
    bool promoted = false;
    assert_true(bc_identity_interrupted(f->id, cmd, &promoted));
    assert_string_equal(cmd, "inst-3");
    assert_true(promoted);
    assert_true(bc_identity_rotated(f->id));
}

static void test_second_rotation_replaces_current(void **state)
{
    fixture *f = *state;
    char fp1[BC_CERT_FINGERPRINT_LEN + 1], fp2[BC_CERT_FINGERPRINT_LEN + 1];
    open_identity(f);
    rotate(f, "inst-1", fp1);
    EVP_PKEY *first_key = load_key(f->cur_key);
    rotate(f, "inst-2", fp2);
    assert_string_not_equal(fp1, fp2);
    assert_string_equal(bc_identity_fingerprint(f->id), fp2);
    EVP_PKEY *second_key = load_key(f->cur_key);
    assert_int_not_equal(EVP_PKEY_eq(first_key, second_key), 1);
    assert_true(pair_matches(f->cur_cert, f->cur_key));
    open_identity(f);
    assert_string_equal(bc_identity_fingerprint(f->id), fp2);
    EVP_PKEY_free(first_key);
    EVP_PKEY_free(second_key);
}

static void test_start_discards_leftovers(void **state)
{
    fixture *f = *state;
    char tmp[300];
    open_identity(f);
    char *pem = request_and_sign(f); /* next.key, and a next.crt as an install would */
    bc_test_write_file(f->next_cert, pem);
    free(pem);
    snprintf(tmp, sizeof(tmp), "%s/next.key.Ab12Cd.tmp", f->id_dir);
    bc_test_write_file(tmp, "half a key");
    open_identity(f);
    assert_false(exists(f->next_cert));
    assert_false(exists(f->next_key));
    assert_false(exists(tmp));
    assert_string_equal(bc_identity_cert_file(f->id), f->cert);
}

static void test_current_without_its_key_is_not_used(void **state)
{
    fixture *f = *state;
    bc_error err;
    char fp[BC_CERT_FINGERPRINT_LEN + 1];
    open_identity(f);
    rotate(f, "inst-1", fp);
    assert_int_equal(unlink(f->cur_key), 0);
    open_identity(f);
    assert_false(bc_identity_rotated(f->id));
    assert_string_equal(bc_identity_cert_file(f->id), f->cert);
    /* and a key that is not current.crt's does not make it usable either */
    EVP_PKEY *key = NULL;
    assert_int_equal(bc_ca_new_key(&key, &err), BC_OK);
    assert_int_equal(bc_ca_write_key(f->cur_key, key, &err), BC_OK);
    EVP_PKEY_free(key);
    open_identity(f);
    assert_false(bc_identity_rotated(f->id));
}

static void test_open_checks_arguments(void **state)
{
    fixture *f = *state;
    bc_identity *id = NULL;
    bc_error err;
    assert_int_equal(
        bc_identity_open(f->s.dir, "Not/An/Id", f->ca_path, f->cert, f->key, &id, &err),
        BC_ERR_INVAL);
    assert_int_equal(bc_identity_open(f->s.dir, DEV, f->ca_path, "", f->key, &id, &err),
                     BC_ERR_INVAL);
    assert_null(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_uses_configured_files, setup_identity, teardown),
        cmocka_unit_test_setup_teardown(test_request_makes_key_and_csr, setup_identity, teardown),
        cmocka_unit_test_setup_teardown(test_install_promote_and_restart, setup_identity, teardown),
        cmocka_unit_test_setup_teardown(test_install_refuses_bad_certificates, setup_identity,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_request_replaces_the_key, setup_identity,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_abandon_keeps_the_old_identity, setup_identity,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_before_commit, setup_identity, teardown),
        cmocka_unit_test_setup_teardown(test_restart_before_commit_of_a_second_rotation,
                                        setup_identity, teardown),
        cmocka_unit_test_setup_teardown(test_restart_after_commit_finishes_the_promotion,
                                        setup_identity, teardown),
        cmocka_unit_test_setup_teardown(test_restart_after_promotion_reports_ok, setup_identity,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_second_rotation_replaces_current, setup_identity,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_start_discards_leftovers, setup_identity, teardown),
        cmocka_unit_test_setup_teardown(test_current_without_its_key_is_not_used, setup_identity,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_checks_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
