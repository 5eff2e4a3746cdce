/* Unit tests for services/common/ca: what the CA issues verifies against it
 * (and only against it) with the CN, role, EKU and SAN asked for; a CSR is
 * signed only with the expected CN, an allowed key and a valid
 * self-signature; fingerprints are stable; files land with the right modes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/ca.h"
#include "test_util.h"

typedef struct fixture {
    bc_ca ca;
    bc_ca other; /* a foreign CA */
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    if (bc_ca_create("bodycam test CA", 30, &f->ca, NULL) != BC_OK ||
        bc_ca_create("foreign CA", 30, &f->other, NULL) != BC_OK)
        return -1;
    if (bc_test_tempdir(f->dir, sizeof(f->dir), "ca") != BC_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bc_test_remove_tree(f->dir);
    bc_ca_free(&f->ca);
    bc_ca_free(&f->other);
    free(f);
    return 0;
}

/* X509_verify_cert against a store holding only ca_cert, for a purpose;
 * returns the verify error (X509_V_OK on success). */
static int verify_with(X509 *ca_cert, X509 *leaf, int purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_non_null(store);
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_add_cert(store, ca_cert), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
    int ok = X509_verify_cert(ctx);
    int error = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok == 1 ? X509_V_OK : (error == X509_V_OK ? -1 : error);
}

static void name_entry(X509_NAME *name, int nid, char *out, size_t size)
{
    out[0] = '\0';
    assert_true(X509_NAME_get_text_by_NID(name, nid, out, (int)size) > 0);
}

static X509 *issue(const bc_ca *ca, const char *cn, bc_cert_role role, const char *const *extra,
                   EVP_PKEY **key_out)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    assert_int_equal(bc_ca_new_key(&key, NULL), BC_OK);
    bc_error err = {""};
    assert_int_equal(bc_ca_issue(ca, key, cn, role, 10, extra, &cert, &err), BC_OK);
    assert_non_null(cert);
    if (key_out != NULL)
        *key_out = key;
    else
        EVP_PKEY_free(key);
    return cert;
}

static void test_ca_certificate(void **state)
{
    fixture *f = *state;
    X509 *ca = f->ca.cert;
    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(verify_with(ca, ca, X509_PURPOSE_ANY), X509_V_OK);
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    uint32_t ku = X509_get_key_usage(ca);
    assert_true(ku & KU_KEY_CERT_SIGN);
    assert_true(ku & KU_CRL_SIGN);
    assert_false(ku & KU_DIGITAL_SIGNATURE);
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_non_null(X509_get0_authority_key_id(ca));
    assert_true(EVP_PKEY_is_a(X509_get0_pubkey(ca), "EC"));
    char cn[80];
    name_entry(X509_get_subject_name(ca), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "bodycam test CA");
}

static void test_device_certificate(void **state)
{
    fixture *f = *state;
    EVP_PKEY *key = NULL;
    X509 *cert = issue(&f->ca, "cam-001", BC_CERT_DEVICE, NULL, &key);
    assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    /* clientAuth only: not usable as a TLS server */
    assert_int_not_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_equal(X509_get_extended_key_usage(cert), XKU_SSL_CLIENT);
    assert_int_equal(X509_get_key_usage(cert), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_check_ca(cert), 0);
    assert_int_equal(X509_check_private_key(cert, key), 1);

    char text[80];
    name_entry(X509_get_subject_name(cert), NID_commonName, text, sizeof(text));
    assert_string_equal(text, "cam-001");
    name_entry(X509_get_subject_name(cert), NID_organizationalUnitName, text, sizeof(text));
    assert_string_equal(text, "device");
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(f->ca.cert)),
                     0);
    assert_null(X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL));
    /* AKI names the CA's SKI */
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert),
                                           X509_get0_subject_key_id(f->ca.cert)),
                     0);

    /* validity: about ten days from now */
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)), 1);
    assert_true(days == 9 || days == 10);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(cert)) < 0);

    /* serial: 128 random bits, different each time */
    BIGNUM *a = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    X509 *second = issue(&f->ca, "cam-001", BC_CERT_DEVICE, NULL, NULL);
    BIGNUM *b = ASN1_INTEGER_to_BN(X509_get0_serialNumber(second), NULL);
    assert_int_equal(BN_num_bits(a), 128);
    assert_int_equal(BN_is_negative(a), 0);
    assert_int_not_equal(BN_cmp(a, b), 0);
    BN_free(a);
    BN_free(b);
    X509_free(second);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void test_service_certificate(void **state)
{
    fixture *f = *state;
    X509 *cert = issue(&f->ca, "gateway", BC_CERT_SERVICE, NULL, NULL);
    assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_int_equal(X509_get_extended_key_usage(cert), XKU_SSL_CLIENT);
    char text[80];
    name_entry(X509_get_subject_name(cert), NID_organizationalUnitName, text, sizeof(text));
    assert_string_equal(text, "service");
    X509_free(cert);
}

static void test_broker_certificate(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"broker.example.org", "10.1.2.3", "::1", NULL};
    X509 *cert = issue(&f->ca, "bodycam-broker", BC_CERT_BROKER, extra, NULL);
    assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    assert_int_not_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_int_equal(X509_get_extended_key_usage(cert), XKU_SSL_SERVER);
    assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(cert, "broker.example.org", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(cert, "10.1.2.3", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
    assert_int_equal(X509_check_host(cert, "other.example.org", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(cert, "10.1.2.4", 0), 0);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    assert_non_null(names);
    assert_int_equal(sk_GENERAL_NAME_num(names), 5);
    GENERAL_NAMES_free(names);
    X509_free(cert);
}

static void test_foreign_ca_does_not_verify(void **state)
{
    fixture *f = *state;
    X509 *foreign = issue(&f->other, "cam-001", BC_CERT_DEVICE, NULL, NULL);
    assert_int_equal(verify_with(f->other.cert, foreign, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_int_equal(verify_with(f->ca.cert, foreign, X509_PURPOSE_SSL_CLIENT),
                     X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    /* the foreign CA itself is not trusted either */
    assert_int_not_equal(verify_with(f->ca.cert, f->other.cert, X509_PURPOSE_ANY), X509_V_OK);
    X509_free(foreign);
}

static void test_issue_refuses_bad_arguments(void **state)
{
    fixture *f = *state;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    bc_error err = {""};
    assert_int_equal(bc_ca_new_key(&key, NULL), BC_OK);
    assert_int_equal(bc_ca_issue(&f->ca, key, "", BC_CERT_DEVICE, 10, NULL, &cert, &err),
                     BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "common name"));
    assert_int_equal(bc_ca_issue(&f->ca, key, "cam/1", BC_CERT_DEVICE, 10, NULL, &cert, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_ca_issue(&f->ca, key, "cam,OU=x", BC_CERT_DEVICE, 10, NULL, &cert, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_ca_issue(&f->ca, key, "cam-1", BC_CERT_DEVICE, 0, NULL, &cert, &err),
                     BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "days"));
    const char *extra[] = {"host.example", NULL};
    assert_int_equal(bc_ca_issue(&f->ca, key, "cam-1", BC_CERT_DEVICE, 5, extra, &cert, &err),
                     BC_ERR_INVAL);
    const char *bad_name[] = {"bad name!", NULL};
    assert_int_equal(bc_ca_issue(&f->ca, key, "broker", BC_CERT_BROKER, 5, bad_name, &cert, &err),
                     BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "bad name!"));
    assert_null(cert);
    bc_ca empty = {0};
    assert_int_equal(bc_ca_issue(&empty, key, "cam-1", BC_CERT_DEVICE, 5, NULL, &cert, &err),
                     BC_ERR_INVAL);
    EVP_PKEY_free(key);
}

/* A PEM CSR for key with the given CNs, signed by signer (normally key). */
static char *make_csr(EVP_PKEY *key, EVP_PKEY *signer, const char *const *cns)
{
    X509_REQ *req = X509_REQ_new();
    assert_non_null(req);
    assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
    X509_NAME *name = X509_REQ_get_subject_name(req);
    for (size_t i = 0; cns[i] != NULL; i++)
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                                    (const unsigned char *)cns[i], -1, -1, 0),
                         1);
    const EVP_MD *md = EVP_PKEY_is_a(signer, "ED25519") ? NULL : EVP_sha256();
    assert_true(X509_REQ_sign(req, signer, md) > 0);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509_REQ(bio, req), 1);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *pem = calloc(1, (size_t)n + 1);
    assert_non_null(pem);
    memcpy(pem, data, (size_t)n);
    BIO_free(bio);
    X509_REQ_free(req);
    return pem;
}

static bc_status sign_csr(fixture *f, const char *pem, const char *expected, X509 **out,
                          bc_error *err)
{
    return bc_ca_sign_csr(&f->ca, pem, strlen(pem), expected, BC_CERT_DEVICE, 10, out, err);
}

static void test_csr_signing(void **state)
{
    fixture *f = *state;
    const char *cam1[] = {"cam-001", NULL};
    bc_error err = {""};
    X509 *cert = NULL;

    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    char *pem = make_csr(ed, ed, cam1);
    assert_int_equal(sign_csr(f, pem, "cam-001", &cert, &err), BC_OK);
    assert_int_equal(verify_with(f->ca.cert, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    assert_int_equal(X509_check_private_key(cert, ed), 1);
    char cn[80];
    name_entry(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "cam-001");
    X509_free(cert);
    cert = NULL;

    /* the CSR's CN must be exactly the identity that asked */
    assert_int_equal(sign_csr(f, pem, "cam-002", &cert, &err), BC_ERR_DENIED);
    assert_non_null(strstr(err.text, "CN"));
    assert_int_equal(sign_csr(f, pem, "cam-00", &cert, &err), BC_ERR_DENIED);
    assert_null(cert);
    free(pem);

    EVP_PKEY *ec = NULL;
    assert_int_equal(bc_ca_new_key(&ec, NULL), BC_OK);
    pem = make_csr(ec, ec, cam1);
    assert_int_equal(sign_csr(f, pem, "cam-001", &cert, &err), BC_OK);
    X509_free(cert);
    cert = NULL;
    free(pem);

    /* two CNs: refused even if one matches */
    const char *two[] = {"cam-001", "cam-002", NULL};
    pem = make_csr(ec, ec, two);
    assert_int_equal(sign_csr(f, pem, "cam-001", &cert, &err), BC_ERR_DENIED);
    free(pem);

    /* self-signature by another key than the one in the request */
    pem = make_csr(ec, ed, cam1);
    assert_int_equal(sign_csr(f, pem, "cam-001", &cert, &err), BC_ERR_SIGNATURE);
    free(pem);

    /* key types other than P-256 and Ed25519 */
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(p384);
    pem = make_csr(p384, p384, cam1);
    assert_int_equal(sign_csr(f, pem, "cam-001", &cert, &err), BC_ERR_DENIED);
    assert_non_null(strstr(err.text, "key type"));
    free(pem);
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(rsa);
    pem = make_csr(rsa, rsa, cam1);
    assert_int_equal(sign_csr(f, pem, "cam-001", &cert, &err), BC_ERR_DENIED);
    free(pem);

    assert_int_equal(sign_csr(f, "not a csr", "cam-001", &cert, &err), BC_ERR_PARSE);
    assert_null(cert);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
}

static int is_lower_hex(const char *s)
{
    for (; *s != '\0'; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    }
    return 1;
}

static void test_fingerprint(void **state)
{
    fixture *f = *state;
    X509 *a = issue(&f->ca, "cam-001", BC_CERT_DEVICE, NULL, NULL);
    X509 *b = issue(&f->ca, "cam-001", BC_CERT_DEVICE, NULL, NULL);
    char fa[BC_CERT_FINGERPRINT_LEN + 1], fa2[BC_CERT_FINGERPRINT_LEN + 1];
    char fb[BC_CERT_FINGERPRINT_LEN + 1], reloaded[BC_CERT_FINGERPRINT_LEN + 1];
    assert_int_equal(bc_ca_fingerprint(a, fa), BC_OK);
    assert_int_equal(bc_ca_fingerprint(a, fa2), BC_OK);
    assert_int_equal(bc_ca_fingerprint(b, fb), BC_OK);
    assert_int_equal(strlen(fa), 64);
    assert_true(is_lower_hex(fa));
    assert_string_equal(fa, fa2);
    assert_string_not_equal(fa, fb);

    /* same value after a PEM round trip, and equal to SHA-256 of the DER */
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(bc_ca_cert_pem(a, &pem, &len), BC_OK);
    assert_int_equal(strlen(pem), len);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *copy = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(copy);
    assert_int_equal(bc_ca_fingerprint(copy, reloaded), BC_OK);
    assert_string_equal(fa, reloaded);
    unsigned char *der = NULL;
    int der_len = i2d_X509(a, &der);
    assert_true(der_len > 0);
    unsigned char md[32];
    assert_int_equal(EVP_Digest(der, (size_t)der_len, md, NULL, EVP_sha256(), NULL), 1);
    char expected[3];
    snprintf(expected, sizeof(expected), "%02x", md[0]);
    assert_memory_equal(fa, expected, 2);
    snprintf(expected, sizeof(expected), "%02x", md[31]);
    assert_memory_equal(fa + 62, expected, 2);
    OPENSSL_free(der);
    BIO_free(bio);
    X509_free(copy);
    free(pem);
    X509_free(a);
    X509_free(b);
}

static unsigned file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (unsigned)(st.st_mode & 07777);
}

static void test_files(void **state)
{
    fixture *f = *state;
    char ca_crt[128], ca_key[128], other_key[128], pub[128];
    snprintf(ca_crt, sizeof(ca_crt), "%s/ca.crt", f->dir);
    snprintf(ca_key, sizeof(ca_key), "%s/ca.key", f->dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", f->dir);
    snprintf(pub, sizeof(pub), "%s/ca.pub", f->dir);
    bc_error err = {""};
    mode_t old_umask = umask(0);
    assert_int_equal(bc_ca_write_key(ca_key, f->ca.key, &err), BC_OK);
    assert_int_equal(bc_ca_write_cert(ca_crt, f->ca.cert, &err), BC_OK);
    assert_int_equal(bc_ca_write_public_key(pub, f->ca.key, &err), BC_OK);
    umask(old_umask);
    assert_int_equal(file_mode(ca_key), 0600);
    assert_int_equal(file_mode(ca_crt), 0644);
    assert_int_equal(file_mode(pub), 0644);
    /* overwrite in place: still one file each, no temporaries left */
    assert_int_equal(bc_ca_write_cert(ca_crt, f->ca.cert, &err), BC_OK);
    assert_int_equal(bc_test_count_entries(f->dir), 3);

    bc_ca loaded;
    assert_int_equal(bc_ca_load(ca_crt, ca_key, &loaded, &err), BC_OK);
    assert_int_equal(X509_cmp(loaded.cert, f->ca.cert), 0);
    X509 *leaf = issue(&loaded, "cam-003", BC_CERT_DEVICE, NULL, NULL);
    assert_int_equal(verify_with(f->ca.cert, leaf, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    bc_ca_free(&loaded);

    /* a key that is not the CA's, a leaf that is not a CA, missing and junk files */
    assert_int_equal(bc_ca_write_key(other_key, f->other.key, &err), BC_OK);
    assert_int_equal(bc_ca_load(ca_crt, other_key, &loaded, &err), BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "does not belong"));
    assert_null(loaded.cert);
    char leaf_crt[128];
    snprintf(leaf_crt, sizeof(leaf_crt), "%s/leaf.crt", f->dir);
    assert_int_equal(bc_ca_write_cert(leaf_crt, leaf, &err), BC_OK);
    EVP_PKEY *key = NULL;
    assert_int_equal(bc_ca_load_key(ca_key, &key, &err), BC_OK);
    EVP_PKEY_free(key);
    assert_int_equal(bc_ca_load(leaf_crt, ca_key, &loaded, &err), BC_ERR_INVAL);
    assert_int_equal(bc_ca_load("/nonexistent/ca.crt", ca_key, &loaded, &err), BC_ERR_IO);
    assert_int_equal(bc_ca_load(ca_key, ca_key, &loaded, &err), BC_ERR_PARSE);
    assert_int_equal(bc_ca_write_cert("/nonexistent/dir/x.crt", leaf, &err), BC_ERR_IO);
    X509_free(leaf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_certificate),
        cmocka_unit_test(test_device_certificate),
        cmocka_unit_test(test_service_certificate),
        cmocka_unit_test(test_broker_certificate),
        cmocka_unit_test(test_foreign_ca_does_not_verify),
        cmocka_unit_test(test_issue_refuses_bad_arguments),
        cmocka_unit_test(test_csr_signing),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
