/*
 * ca.c - the fleet's certificate authority (see ca.h for what it issues).
 *
 * Everything X.509 is OpenSSL's: names, extensions (X509V3_EXT_nconf_nid
 * with fixed values, GENERAL_NAMES built from parsed names for the SAN),
 * signatures and PEM. This file only decides *what* goes in a certificate:
 *
 *   issue(subject_key, cn, role, days):
 *     version 3, serial = 128 random bits (top bit set, so never zero),
 *     notBefore = now - 5 min (clock skew between hosts), notAfter = now + days,
 *     subject O=bodycam/OU=<role>/CN=<cn>, issuer = the CA's subject,
 *     basicConstraints critical CA:FALSE, keyUsage critical digitalSignature,
 *     extendedKeyUsage by role, SKI, AKI, SAN (broker only), SHA-256 signature.
 *
 * CSR signing trusts nothing of the request but its public key, and only
 * after its self-signature, its CN and its key type are checked.
 *
 * Files: PEM is made in a memory BIO (the secure-heap one for private keys,
 * which clears itself when freed) and written with bc_file_write_durable
 * (common/file.h): either the old file or the new one survives a power cut,
 * and a key file has mode 0600 from its creation on.
 */
#include "common/ca.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/file.h"
#include "proto/encoding.h"

#define CN_MAX 64
#define DNS_NAME_MAX 253
#define CSR_PEM_MAX (64 * 1024)
#define BACKDATE_SECONDS (5 * 60)
#define SERIAL_BITS 128

static const char *const role_units[] = {
    [BC_CERT_DEVICE] = "device",
    [BC_CERT_SERVICE] = "service",
    [BC_CERT_BROKER] = "broker",
};

static const char *const role_ekus[] = {
    [BC_CERT_DEVICE] = "clientAuth",
    [BC_CERT_SERVICE] = "clientAuth",
    [BC_CERT_BROKER] = "serverAuth",
};

/* Names every broker certificate carries, so that local clients verify it. */
static const char *const broker_default_names[] = {"127.0.0.1", "localhost", NULL};

/* PEM readers prompt on the terminal for an encrypted key unless given a
 * callback; our keys are never encrypted, so refuse instead of prompting. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return -1;
}

static int cn_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':' || c == '@' || c == ' ';
}

static int cn_valid(const char *cn)
{
    if (cn == NULL || cn[0] == '\0' || cn[0] == ' ')
        return 0;
    size_t n = 0;
    for (; cn[n] != '\0'; n++) {
        if (n >= CN_MAX || !cn_char_ok(cn[n]))
            return 0;
    }
    return cn[n - 1] != ' ';
}

static int dns_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > DNS_NAME_MAX || name[0] == '.' || name[0] == '-' || name[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.';
        if (!ok || (c == '.' && name[i + 1] == '.'))
            return 0;
    }
    return 1;
}

static int days_valid(int days)
{
    return days >= 1 && days <= BC_CA_DAYS_MAX;
}

static bc_status crypto_fail(bc_error *err, const char *what)
{
    unsigned long code = ERR_get_error();
    char reason[160] = "no detail";
    if (code != 0)
        ERR_error_string_n(code, reason, sizeof(reason));
    ERR_clear_error();
    return bc_fail(err, BC_ERR_CRYPTO, "%s failed: %s", what, reason);
}

static bc_status set_subject(X509_NAME *name, const char *unit, const char *cn)
{
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"bodycam", -1,
                                   -1, 0) != 1)
        return BC_ERR_CRYPTO;
    if (unit != NULL && X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                                                   (const unsigned char *)unit, -1, -1, 0) != 1)
        return BC_ERR_CRYPTO;
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1)
        return BC_ERR_CRYPTO;
    return BC_OK;
}

static bc_status set_random_serial(X509 *cert)
{
    bc_status rc = BC_ERR_CRYPTO;
    BIGNUM *bn = BN_new();
    if (bn == NULL)
        return BC_ERR_NOMEM;
    if (BN_rand(bn, SERIAL_BITS, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1)
        goto cleanup;
    if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL)
        goto cleanup;
    rc = BC_OK;
cleanup:
    BN_free(bn);
    return rc;
}

static bc_status set_validity(X509 *cert, int days)
{
    if (X509_gmtime_adj(X509_getm_notBefore(cert), -BACKDATE_SECONDS) == NULL)
        return BC_ERR_CRYPTO;
    if (X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) == NULL)
        return BC_ERR_CRYPTO;
    return BC_OK;
}

static bc_status add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    if (ext == NULL)
        return BC_ERR_CRYPTO;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? BC_OK : BC_ERR_CRYPTO;
}

/* One SAN entry: an IP literal if OpenSSL parses it as one, else a DNS name
 * in the hostname alphabet. */
static bc_status push_alt_name(GENERAL_NAMES *names, const char *name, bc_error *err)
{
    GENERAL_NAME *gn = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_IPADD, name, 0);
    if (gn == NULL) {
        ERR_clear_error();
        if (!dns_name_valid(name))
            return bc_fail(err, BC_ERR_INVAL,
                           "subject alternative name '%.64s' is neither an IP address nor a "
                           "DNS name",
                           name);
        gn = a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_DNS, name, 0);
        if (gn == NULL)
            return crypto_fail(err, "DNS subject alternative name");
    }
    if (sk_GENERAL_NAME_push(names, gn) <= 0) {
        GENERAL_NAME_free(gn);
        return bc_fail(err, BC_ERR_NOMEM, "out of memory building subject alternative names");
    }
    return BC_OK;
}

static bc_status add_alt_names(X509 *cert, const char *const *extra, bc_error *err)
{
    bc_status rc = BC_OK;
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    if (names == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory building subject alternative names");
    for (size_t i = 0; broker_default_names[i] != NULL && rc == BC_OK; i++)
        rc = push_alt_name(names, broker_default_names[i], err);
    for (size_t i = 0; extra != NULL && extra[i] != NULL && rc == BC_OK; i++)
        rc = push_alt_name(names, extra[i], err);
    if (rc != BC_OK)
        goto cleanup;
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_APPEND) != 1)
        rc = crypto_fail(err, "adding subjectAltName");
cleanup:
    GENERAL_NAMES_free(names);
    return rc;
}

/* The extensions of a leaf; issuer is the CA certificate. */
static bc_status add_leaf_extensions(X509 *cert, X509 *issuer, bc_cert_role role,
                                     const char *const *extra, bc_error *err)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    if (add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") != BC_OK ||
        add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature") != BC_OK ||
        add_ext(cert, &ctx, NID_ext_key_usage, role_ekus[role]) != BC_OK ||
        add_ext(cert, &ctx, NID_subject_key_identifier, "hash") != BC_OK ||
        add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always") != BC_OK)
        return crypto_fail(err, "adding certificate extensions");
    if (role == BC_CERT_BROKER)
        return add_alt_names(cert, extra, err);
    return BC_OK;
}

static bc_status add_ca_extensions(X509 *cert, bc_error *err)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    if (add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE") != BC_OK ||
        add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") != BC_OK ||
        add_ext(cert, &ctx, NID_subject_key_identifier, "hash") != BC_OK ||
        add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always") != BC_OK)
        return crypto_fail(err, "adding CA extensions");
    return BC_OK;
}

bc_status bc_ca_new_key(EVP_PKEY **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the new key");
    *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (*out == NULL)
        return crypto_fail(err, "EC P-256 key generation");
    return BC_OK;
}

bc_status bc_ca_create(const char *cn, int days, bc_ca *out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the CA");
    memset(out, 0, sizeof(*out));
    if (!cn_valid(cn))
        return bc_fail(err, BC_ERR_INVAL,
                       "CA common name is empty, too long or has a "
                       "character outside [A-Za-z0-9 ._:@-]");
    if (!days_valid(days))
        return bc_fail(err, BC_ERR_INVAL, "CA validity of %d days is outside 1..%d", days,
                       BC_CA_DAYS_MAX);

    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    bc_status rc = bc_ca_new_key(&key, err);
    if (rc != BC_OK)
        return rc;
    cert = X509_new();
    if (cert == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "out of memory making the CA certificate");
        goto cleanup;
    }
    if (X509_set_version(cert, X509_VERSION_3) != 1 || set_random_serial(cert) != BC_OK ||
        set_validity(cert, days) != BC_OK ||
        set_subject(X509_get_subject_name(cert), NULL, cn) != BC_OK ||
        X509_set_issuer_name(cert, X509_get_subject_name(cert)) != 1 ||
        X509_set_pubkey(cert, key) != 1) {
        rc = crypto_fail(err, "filling the CA certificate");
        goto cleanup;
    }
    rc = add_ca_extensions(cert, err);
    if (rc != BC_OK)
        goto cleanup;
    if (X509_sign(cert, key, EVP_sha256()) <= 0) {
        rc = crypto_fail(err, "signing the CA certificate");
        goto cleanup;
    }
    out->key = key;
    out->cert = cert;
    key = NULL;
    cert = NULL;
cleanup:
    EVP_PKEY_free(key);
    X509_free(cert);
    return rc;
}

static BIO *open_for_reading(const char *path, bc_error *err, bc_status *rc)
{
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        int saved = errno;
        ERR_clear_error();
        *rc = bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", path, strerror(saved));
        errno = saved;
    }
    return bio;
}

bc_status bc_ca_load_cert(const char *path, X509 **out, bc_error *err)
{
    if (path == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no certificate path or output");
    bc_status rc = BC_OK;
    BIO *bio = open_for_reading(path, err, &rc);
    if (bio == NULL)
        return rc;
    *out = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (*out == NULL) {
        ERR_clear_error();
        return bc_fail(err, BC_ERR_PARSE, "'%s' holds no PEM certificate", path);
    }
    return BC_OK;
}

bc_status bc_ca_load_key(const char *path, EVP_PKEY **out, bc_error *err)
{
    if (path == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no key path or output");
    bc_status rc = BC_OK;
    BIO *bio = open_for_reading(path, err, &rc);
    if (bio == NULL)
        return rc;
    *out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (*out == NULL) {
        ERR_clear_error();
        return bc_fail(err, BC_ERR_PARSE, "'%s' holds no unencrypted PEM private key", path);
    }
    return BC_OK;
}

bc_status bc_ca_load(const char *cert_path, const char *key_path, bc_ca *out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the CA");
    memset(out, 0, sizeof(*out));
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    bc_status rc = bc_ca_load_cert(cert_path, &cert, err);
    if (rc != BC_OK)
        return rc;
    rc = bc_ca_load_key(key_path, &key, err);
    if (rc != BC_OK)
        goto cleanup;
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        rc = bc_fail(err, BC_ERR_INVAL, "CA key '%s' does not belong to certificate '%s'", key_path,
                     cert_path);
        goto cleanup;
    }
    if (X509_check_ca(cert) < 1) {
        rc = bc_fail(err, BC_ERR_INVAL, "'%s' is not a CA certificate", cert_path);
        goto cleanup;
    }
    out->cert = cert;
    out->key = key;
    cert = NULL;
    key = NULL;
cleanup:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

void bc_ca_free(bc_ca *ca)
{
    if (ca == NULL)
        return;
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    ca->key = NULL;
    ca->cert = NULL;
}

static bc_status check_issue_args(const bc_ca *ca, EVP_PKEY *subject_key, const char *cn,
                                  bc_cert_role role, int days, const char *const *extra, X509 **out,
                                  bc_error *err)
{
    if (ca == NULL || ca->key == NULL || ca->cert == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no CA to issue with");
    if (subject_key == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no subject key or output for the certificate");
    if (!cn_valid(cn))
        return bc_fail(err, BC_ERR_INVAL,
                       "common name is empty, longer than %d or has a "
                       "character outside [A-Za-z0-9 ._:@-]",
                       CN_MAX);
    if ((unsigned)role > BC_CERT_BROKER)
        return bc_fail(err, BC_ERR_INVAL, "unknown certificate role %d", (int)role);
    if (!days_valid(days))
        return bc_fail(err, BC_ERR_INVAL, "validity of %d days is outside 1..%d", days,
                       BC_CA_DAYS_MAX);
    if (role != BC_CERT_BROKER && extra != NULL && extra[0] != NULL)
        return bc_fail(err, BC_ERR_INVAL, "only a broker certificate takes extra names");
    return BC_OK;
}

bc_status bc_ca_issue(const bc_ca *ca, EVP_PKEY *subject_key, const char *cn, bc_cert_role role,
                      int days, const char *const *extra_names, X509 **out, bc_error *err)
{
    bc_status rc = check_issue_args(ca, subject_key, cn, role, days, extra_names, out, err);
    if (rc != BC_OK)
        return rc;
    *out = NULL;
    X509 *cert = X509_new();
    if (cert == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory making a certificate");
    if (X509_set_version(cert, X509_VERSION_3) != 1 || set_random_serial(cert) != BC_OK ||
        set_validity(cert, days) != BC_OK ||
        set_subject(X509_get_subject_name(cert), role_units[role], cn) != BC_OK ||
        X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) != 1 ||
        X509_set_pubkey(cert, subject_key) != 1) {
        rc = crypto_fail(err, "filling the certificate");
        goto cleanup;
    }
    rc = add_leaf_extensions(cert, ca->cert, role, extra_names, err);
    if (rc != BC_OK)
        goto cleanup;
    if (X509_sign(cert, ca->key, EVP_sha256()) <= 0) {
        rc = crypto_fail(err, "signing the certificate");
        goto cleanup;
    }
    *out = cert;
    cert = NULL;
cleanup:
    X509_free(cert);
    return rc;
}

/* EC on P-256 or Ed25519: the key types a camera's secure element and our
 * TLS stack both handle. */
static int csr_key_allowed(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519"))
        return 1;
    if (!EVP_PKEY_is_a(key, "EC"))
        return 0;
    char group[80];
    size_t group_len = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) != 1) {
        ERR_clear_error();
        return 0;
    }
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    return nid == NID_X9_62_prime256v1;
}

/* 1 when the subject has exactly one CN and it is exactly expected. */
static int csr_cn_matches(X509_NAME *subject, const char *expected)
{
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, idx) >= 0)
        return 0;
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    unsigned char *utf8 = NULL;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) {
        ERR_clear_error();
        return 0;
    }
    int same = (size_t)len == strlen(expected) && memcmp(utf8, expected, (size_t)len) == 0;
    OPENSSL_free(utf8);
    return same;
}

bc_status bc_ca_sign_csr(const bc_ca *ca, const char *csr_pem, size_t len, const char *expected_cn,
                         bc_cert_role role, int days, X509 **out, bc_error *err)
{
    if (csr_pem == NULL || len == 0 || expected_cn == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no CSR, expected CN or output");
    if (len > CSR_PEM_MAX)
        return bc_fail(err, BC_ERR_TOO_BIG, "CSR of %zu bytes is over %d", len, CSR_PEM_MAX);
    *out = NULL;
    bc_status rc = BC_OK;
    X509_REQ *req = NULL;
    BIO *bio = BIO_new_mem_buf(csr_pem, (int)len);
    if (bio == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory reading the CSR");
    req = PEM_read_bio_X509_REQ(bio, NULL, no_passphrase, NULL);
    if (req == NULL) {
        ERR_clear_error();
        rc = bc_fail(err, BC_ERR_PARSE, "field 'csr': not a PEM certificate signing request");
        goto cleanup;
    }
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req); /* borrowed from req */
    if (pub == NULL) {
        ERR_clear_error();
        rc = bc_fail(err, BC_ERR_PARSE, "field 'csr': the request has no usable public key");
        goto cleanup;
    }
    if (X509_REQ_verify(req, pub) != 1) {
        ERR_clear_error();
        rc = bc_fail(err, BC_ERR_SIGNATURE, "field 'csr': the request's self-signature fails");
        goto cleanup;
    }
    if (!csr_key_allowed(pub)) {
        rc = bc_fail(err, BC_ERR_DENIED, "field 'csr': key type is neither EC P-256 nor Ed25519");
        goto cleanup;
    }
    if (!csr_cn_matches(X509_REQ_get_subject_name(req), expected_cn)) {
        rc = bc_fail(err, BC_ERR_DENIED, "field 'csr': subject CN is not exactly '%.64s'",
                     expected_cn);
        goto cleanup;
    }
    rc = bc_ca_issue(ca, pub, expected_cn, role, days, NULL, out, err);
cleanup:
    X509_REQ_free(req);
    BIO_free(bio);
    return rc;
}

bc_status bc_ca_fingerprint(X509 *cert, char hex[BC_CERT_FINGERPRINT_LEN + 1])
{
    if (cert == NULL || hex == NULL)
        return BC_ERR_INVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1 || md_len * 2 != BC_CERT_FINGERPRINT_LEN)
        return BC_ERR_CRYPTO;
    return bc_hex_encode(md, md_len, hex, BC_CERT_FINGERPRINT_LEN + 1);
}

bc_status bc_ca_cert_pem(X509 *cert, char **out, size_t *len)
{
    if (cert == NULL || out == NULL)
        return BC_ERR_INVAL;
    *out = NULL;
    bc_status rc = BC_ERR_CRYPTO;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return BC_ERR_NOMEM;
    char *data = NULL;
    if (PEM_write_bio_X509(bio, cert) != 1)
        goto cleanup;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0)
        goto cleanup;
    *out = malloc((size_t)n + 1);
    if (*out == NULL) {
        rc = BC_ERR_NOMEM;
        goto cleanup;
    }
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
    rc = BC_OK;
cleanup:
    BIO_free(bio);
    return rc;
}

/* Writes what a PEM writer put into a memory BIO. The secure-heap BIO is
 * used for private keys: it clears its buffer when freed. */
static bc_status write_bio(const char *path, BIO *bio, unsigned mode, bc_error *err)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0)
        return bc_fail(err, BC_ERR_CRYPTO, "PEM encoding for '%s' is empty", path);
    return bc_file_write_durable(path, data, (size_t)n, (mode_t)mode, err);
}

bc_status bc_ca_write_key(const char *path, EVP_PKEY *key, bc_error *err)
{
    if (path == NULL || key == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no path or key to write");
    BIO *bio = BIO_new(BIO_s_secmem());
    if (bio == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory encoding a private key");
    bc_status rc;
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
        rc = crypto_fail(err, "PEM encoding of a private key");
    else
        rc = write_bio(path, bio, 0600, err);
    BIO_free(bio);
    return rc;
}

bc_status bc_ca_write_public_key(const char *path, EVP_PKEY *key, bc_error *err)
{
    if (path == NULL || key == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no path or key to write");
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory encoding a public key");
    bc_status rc;
    if (PEM_write_bio_PUBKEY(bio, key) != 1)
        rc = crypto_fail(err, "PEM encoding of a public key");
    else
        rc = write_bio(path, bio, 0644, err);
    BIO_free(bio);
    return rc;
}

bc_status bc_ca_write_cert(const char *path, X509 *cert, bc_error *err)
{
    if (path == NULL || cert == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no path or certificate to write");
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory encoding a certificate");
    bc_status rc;
    if (PEM_write_bio_X509(bio, cert) != 1)
        rc = crypto_fail(err, "PEM encoding of a certificate");
    else
        rc = write_bio(path, bio, 0644, err);
    BIO_free(bio);
    return rc;
}

bc_status bc_ca_load_command_key(const char *path, EVP_PKEY **out, bc_error *err)
{
    bc_status st = bc_ca_load_key(path, out, err);
    if (st != BC_OK)
        return st;
    if (EVP_PKEY_get_base_id(*out) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(*out);
        *out = NULL;
        return bc_fail(err, BC_ERR_INVAL, "command_key_file '%s' is not an Ed25519 key", path);
    }
    return BC_OK;
}
