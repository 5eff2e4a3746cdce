/*
 * identity.c - the camera's TLS identity files and the steps of a rotation
 * (the contract and the start-up rules are at the top of identity.h).
 *
 * Crash safety, step by step (each step is durable before the next):
 *
 *   request   next.crt, next.key removed; new key written to next.key
 *   install   next.crt written; install.json written
 *   promote   rename next.crt -> current.crt   <- the commit
 *             rename next.key -> current.key   (finished at start if cut)
 *   done      install.json removed (after the ack is in the outbox)
 *
 * A crash before the commit restarts on the old identity (whose fingerprint
 * the key-rotation service removes only after the install's ok ack, which
 * is queued only after the commit); a crash after it restarts on the new
 * one. install.json bridges the gap between the commit and the ack: while
 * it exists the camera (re)sends the install's ack at start, ok when the
 * recorded certificate is the one in use, an error otherwise.
 *
 * Everything X.509 is OpenSSL's (X509_REQ for the CSR, X509_STORE for the
 * chain, purpose and validity); keys and certificates are written with
 * services/common/ca (durable, keys 0600).
 */
#include "device-agent/identity.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"
#include "proto/json.h"

#define RECORD_FILE "install.json"
#define RECORD_MAX 4096
#define CERT_PEM_LIMIT (64 * 1024)

struct bc_identity {
    char device[BC_DEVICE_ID_MAX + 1];
    char dir[BC_IDENTITY_PATH_MAX];
    char ca_file[BC_IDENTITY_PATH_MAX];
    char cfg_cert[BC_IDENTITY_PATH_MAX], cfg_key[BC_IDENTITY_PATH_MAX];
    char cur_cert[BC_IDENTITY_PATH_MAX], cur_key[BC_IDENTITY_PATH_MAX];
    char next_cert[BC_IDENTITY_PATH_MAX], next_key[BC_IDENTITY_PATH_MAX];
    char record[BC_IDENTITY_PATH_MAX];
    bool rotated;     /* current.crt is in use */
    bool key_in_next; /* ... with next.key: a promotion whose key rename failed */
    char fingerprint[BC_CERT_FINGERPRINT_LEN + 1];
    bc_identity_stage stage;
    EVP_PKEY *next; /* next.key in memory (REQUESTED, INSTALLED) */
    bool interrupted;
    bool interrupted_promoted;
    char interrupted_cmd[BC_ID_MAX + 1];
};

/* PEM readers prompt on the terminal for an encrypted key without this. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    return -1;
}

/* ---- small file steps ---- */

static int copy_path(char *out, const char *src)
{
    int n = snprintf(out, BC_IDENTITY_PATH_MAX, "%s", src);
    return n >= 0 && n < BC_IDENTITY_PATH_MAX ? 0 : -1;
}

static int join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, BC_IDENTITY_PATH_MAX, "%s/%s", dir, name);
    return n >= 0 && n < BC_IDENTITY_PATH_MAX ? 0 : -1;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Removes path (a missing one is fine); the caller fsyncs the directory. */
static bc_status remove_file(const char *path, bc_error *err)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return BC_OK;
    return bc_fail(err, BC_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
}

/* rename + fsync of the directory: the rename is on disk when this returns. */
static bc_status rename_durable(const bc_identity *id, const char *from, const char *to,
                                bc_error *err)
{
    if (rename(from, to) != 0)
        return bc_fail(err, BC_ERR_IO, "cannot rename '%s' to '%s': %s", from, to, strerror(errno));
    return bc_file_fsync_dir(id->dir, err);
}

/* Removes the leftovers of durable writes a crash cut (never promised to
 * anyone). Best effort. */
static void remove_tmp_files(const bc_identity *id)
{
    bc_file_dir it;
    bc_error err;
    const char *name = NULL;
    char path[BC_IDENTITY_PATH_MAX];
    if (bc_file_dir_open(&it, id->dir, &err) != BC_OK)
        return;
    while (bc_file_dir_next(&it, &name, &err) == BC_OK && name != NULL) {
        if (bc_file_is_tmp(name) && join(path, id->dir, name) == 0 && unlink(path) == 0)
            log_info("%s: identity: removed the leftover %s", id->device, path);
    }
    bc_file_dir_close(&it);
}

/* ---- certificates and keys ---- */

static X509 *load_cert(const char *path)
{
    X509 *cert = NULL;
    if (bc_ca_load_cert(path, &cert, NULL) != BC_OK)
        return NULL;
    return cert;
}

/* 1 when the private key in key_path belongs to cert. */
static int key_matches(X509 *cert, const char *key_path)
{
    EVP_PKEY *key = NULL;
    if (!exists(key_path) || bc_ca_load_key(key_path, &key, NULL) != BC_OK)
        return 0;
    int same = X509_check_private_key(cert, key) == 1;
    ERR_clear_error();
    EVP_PKEY_free(key);
    return same;
}

static void compute_fingerprint(bc_identity *id)
{
    X509 *cert = load_cert(bc_identity_cert_file(id));
    id->fingerprint[0] = '\0';
    if (cert == NULL || bc_ca_fingerprint(cert, id->fingerprint) != BC_OK) {
        id->fingerprint[0] = '\0';
        log_warnx("%s: identity: cannot read the certificate %s", id->device,
                  bc_identity_cert_file(id));
    }
    X509_free(cert);
}

/* 1 when the subject has exactly one CN and it is exactly expected. */
static int cn_is(X509_NAME *subject, const char *expected)
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

/* The chain to the fleet CA, the purpose (TLS client) and the validity at
 * the process clock. */
static bc_status verify_chain(const bc_identity *id, X509 *cert, bc_error *err)
{
    bc_status st = BC_OK;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (store == NULL || ctx == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "out of memory checking the certificate");
        goto cleanup;
    }
    if (X509_STORE_load_file(store, id->ca_file) != 1) {
        ERR_clear_error();
        st = bc_fail(err, BC_ERR_IO, "cannot read the fleet CA file '%s'", id->ca_file);
        goto cleanup;
    }
    if (X509_STORE_CTX_init(ctx, store, cert, NULL) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
        ERR_clear_error();
        st = bc_fail(err, BC_ERR_CRYPTO, "cannot set up the certificate check");
        goto cleanup;
    }
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)(bc_clock_now_ms() / 1000));
    if (X509_verify_cert(ctx) != 1) {
        int code = X509_STORE_CTX_get_error(ctx);
        ERR_clear_error();
        st = bc_fail(err, BC_ERR_SIGNATURE,
                     "the certificate does not verify against the fleet "
                     "CA: %s",
                     X509_verify_cert_error_string(code));
    }
cleanup:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return st;
}

/* The checks of bc_identity_check_cert; the parsed certificate in *out. */
static bc_status check_cert(const bc_identity *id, const char *pem, size_t len, X509 **out,
                            bc_error *err)
{
    *out = NULL;
    if (pem == NULL || len == 0 || len > CERT_PEM_LIMIT)
        return bc_fail(err, BC_ERR_PARSE, "no certificate, or one over %d bytes", CERT_PEM_LIMIT);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory reading the certificate");
    X509 *cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (cert == NULL) {
        ERR_clear_error();
        return bc_fail(err, BC_ERR_PARSE, "not a PEM certificate");
    }
    bc_status st = BC_OK;
    if (!cn_is(X509_get_subject_name(cert), id->device)) {
        st = bc_fail(err, BC_ERR_DENIED, "the certificate's CN is not '%s'", id->device);
    } else if (id->next == NULL) {
        st = bc_fail(err, BC_ERR_STATE, "no key was requested for a new certificate");
    } else if (X509_get0_pubkey(cert) == NULL ||
               EVP_PKEY_eq(X509_get0_pubkey(cert), id->next) != 1) {
        ERR_clear_error();
        st = bc_fail(err, BC_ERR_WRONG_KEY,
                     "the certificate is not for the key of the last identity request");
    } else if (!(X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) ||
               !(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT)) {
        st = bc_fail(err, BC_ERR_DENIED, "the certificate is not for TLS clients (clientAuth)");
    } else {
        st = verify_chain(id, cert, err);
    }
    if (st != BC_OK) {
        X509_free(cert);
        return st;
    }
    *out = cert;
    return BC_OK;
}

/* A CSR for key: subject CN = device, self-signed with key (SHA-256). */
static bc_status make_csr(const bc_identity *id, EVP_PKEY *key, char **out, bc_error *err)
{
    bc_status st = BC_ERR_CRYPTO;
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n = 0;
    if (req == NULL || name == NULL || bio == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "out of memory making the CSR");
        goto cleanup;
    }
    if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)id->device, -1,
                                   -1, 0) != 1 ||
        X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
        X509_REQ_sign(req, key, EVP_sha256()) <= 0 || PEM_write_bio_X509_REQ(bio, req) != 1 ||
        (n = BIO_get_mem_data(bio, &data)) <= 0) {
        ERR_clear_error();
        st = bc_fail(err, BC_ERR_CRYPTO, "cannot make the CSR");
        goto cleanup;
    }
    *out = malloc((size_t)n + 1);
    if (*out == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "out of memory for the CSR");
        goto cleanup;
    }
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    st = BC_OK;
cleanup:
    BIO_free(bio);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return st;
}

/* ---- install.json ---- */

static bc_status write_record(const bc_identity *id, const char *cmd_id, const char *fingerprint,
                              bc_error *err)
{
    cJSON *obj = NULL;
    char *text = NULL;
    bc_status st = bc_json_new_message(&obj);
    if (st == BC_OK)
        st = bc_json_add_string(obj, "cmd_id", cmd_id);
    if (st == BC_OK)
        st = bc_json_add_string(obj, "fingerprint", fingerprint);
    if (st == BC_OK)
        st = bc_json_print(obj, &text);
    if (st != BC_OK)
        st = bc_fail(err, st, "cannot encode the install record");
    else
        st = bc_file_write_durable(id->record, text, strlen(text), 0600, err);
    free(text);
    cJSON_Delete(obj);
    return st;
}

/* Reads install.json into the interrupted fields; false when there is
 * none or it cannot be read (then it is logged and removed). */
static bool read_record(bc_identity *id, char fingerprint[BC_CERT_FINGERPRINT_LEN + 1])
{
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    bc_error err;
    bc_status st = bc_file_read_all(id->record, RECORD_MAX, &text, &len, &err);
    if (st == BC_ERR_NOT_FOUND)
        return false;
    if (st == BC_OK)
        st = bc_json_parse(text, len, RECORD_MAX, &root, &err);
    if (st == BC_OK)
        st = bc_json_get_string(root, "cmd_id", BC_JSON_REQUIRED, id->interrupted_cmd,
                                sizeof(id->interrupted_cmd), &err);
    if (st == BC_OK)
        st = bc_json_get_string(root, "fingerprint", BC_JSON_REQUIRED, fingerprint,
                                BC_CERT_FINGERPRINT_LEN + 1, &err);
    if (st == BC_OK && (!bc_id_valid(id->interrupted_cmd) ||
                        !bc_json_hex_valid(fingerprint, BC_CERT_FINGERPRINT_LEN)))
        st = bc_fail(&err, BC_ERR_INVAL, "bad command id or fingerprint");
    cJSON_Delete(root);
    free(text);
    if (st == BC_OK)
        return true;
    log_errorx("%s: identity: ignoring the unreadable %s: %s", id->device, id->record, err.text);
    if (remove_file(id->record, &err) != BC_OK || bc_file_fsync_dir(id->dir, &err) != BC_OK)
        log_errorx("%s: identity: %s", id->device, err.text);
    id->interrupted_cmd[0] = '\0';
    return false;
}

/* ---- start ---- */

/* current.crt and the key that belongs to it, finishing a promotion whose
 * key rename a crash cut. */
static void resolve_current(bc_identity *id)
{
    bc_error err;
    if (!exists(id->cur_cert))
        return;
    X509 *cert = load_cert(id->cur_cert);
    if (cert == NULL) {
        log_errorx("%s: identity: %s is unreadable; using the configured identity %s", id->device,
                   id->cur_cert, id->cfg_cert);
        return;
    }
    if (key_matches(cert, id->next_key)) {
        id->rotated = true;
        if (rename_durable(id, id->next_key, id->cur_key, &err) == BC_OK) {
            log_info("%s: identity: finished the promotion a restart interrupted", id->device);
        } else {
            id->key_in_next = true;
            log_errorx("%s: identity: %s (using %s as the key)", id->device, err.text,
                       id->next_key);
        }
    } else if (key_matches(cert, id->cur_key)) {
        id->rotated = true;
    } else {
        log_errorx("%s: identity: %s has no matching key; using the configured identity %s",
                   id->device, id->cur_cert, id->cfg_cert);
    }
    X509_free(cert);
}

/* next.* that were never promoted never connected: they go. */
static void discard_leftovers(bc_identity *id)
{
    bc_error err;
    bool removed = false;
    const char *paths[] = {id->next_cert, id->key_in_next ? NULL : id->next_key};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (paths[i] == NULL || !exists(paths[i]))
            continue;
        if (remove_file(paths[i], &err) != BC_OK) {
            log_errorx("%s: identity: %s", id->device, err.text);
            continue;
        }
        removed = true;
        log_info("%s: identity: discarded %s (a new identity that never connected)", id->device,
                 paths[i]);
    }
    if (removed && bc_file_fsync_dir(id->dir, &err) != BC_OK)
        log_errorx("%s: identity: %s", id->device, err.text);
}

static bc_status set_paths(bc_identity *id, const char *data_dir, const char *ca_file,
                           const char *cert_file, const char *key_file, bc_error *err)
{
    char dir[BC_IDENTITY_PATH_MAX];
    if (join(dir, data_dir, BC_IDENTITY_DIR) != 0 || copy_path(id->dir, dir) != 0 ||
        copy_path(id->ca_file, ca_file) != 0 || copy_path(id->cfg_cert, cert_file) != 0 ||
        copy_path(id->cfg_key, key_file) != 0 || join(id->cur_cert, dir, "current.crt") != 0 ||
        join(id->cur_key, dir, "current.key") != 0 || join(id->next_cert, dir, "next.crt") != 0 ||
        join(id->next_key, dir, "next.key") != 0 || join(id->record, dir, RECORD_FILE) != 0)
        return bc_fail(err, BC_ERR_TOO_BIG, "identity: a path under '%s' is too long", data_dir);
    return BC_OK;
}

bc_status bc_identity_open(const char *data_dir, const char *device_id, const char *ca_file,
                           const char *cert_file, const char *key_file, bc_identity **out,
                           bc_error *err)
{
    *out = NULL;
    if (data_dir == NULL || !bc_device_id_valid(device_id) || ca_file == NULL ||
        cert_file == NULL || key_file == NULL || cert_file[0] == '\0' || key_file[0] == '\0')
        return bc_fail(err, BC_ERR_INVAL,
                       "identity: data dir, device id, CA, certificate and key are required");
    bc_identity *id = calloc(1, sizeof(*id));
    if (id == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "identity: out of memory");
    snprintf(id->device, sizeof(id->device), "%s", device_id);
    bc_status st = set_paths(id, data_dir, ca_file, cert_file, key_file, err);
    if (st == BC_OK)
        st = bc_file_mkdir_durable(id->dir, 0700, err);
    if (st != BC_OK) {
        free(id);
        return st;
    }
    remove_tmp_files(id);
    char recorded[BC_CERT_FINGERPRINT_LEN + 1];
    bool interrupted = read_record(id, recorded);
    resolve_current(id);
    discard_leftovers(id);
    compute_fingerprint(id);
    if (interrupted) {
        id->interrupted = true;
        id->interrupted_promoted = id->rotated && strcmp(recorded, id->fingerprint) == 0;
        log_info("%s: identity: the install of command %s was cut by a restart; its certificate "
                 "is %s",
                 id->device, id->interrupted_cmd,
                 id->interrupted_promoted ? "in use" : "not in use (it never connected)");
    }
    log_info("%s: identity: %s (sha256=%s)", id->device, bc_identity_cert_file(id),
             id->fingerprint[0] ? id->fingerprint : "?");
    *out = id;
    return BC_OK;
}

void bc_identity_free(bc_identity *id)
{
    if (id == NULL)
        return;
    EVP_PKEY_free(id->next);
    free(id);
}

/* ---- accessors ---- */

const char *bc_identity_cert_file(const bc_identity *id)
{
    return id->rotated ? id->cur_cert : id->cfg_cert;
}

const char *bc_identity_key_file(const bc_identity *id)
{
    if (!id->rotated)
        return id->cfg_key;
    return id->key_in_next ? id->next_key : id->cur_key;
}

const char *bc_identity_next_cert_file(const bc_identity *id)
{
    return id->next_cert;
}

const char *bc_identity_next_key_file(const bc_identity *id)
{
    return id->next_key;
}

bool bc_identity_rotated(const bc_identity *id)
{
    return id->rotated;
}

const char *bc_identity_fingerprint(const bc_identity *id)
{
    return id->fingerprint;
}

bc_identity_stage bc_identity_get_stage(const bc_identity *id)
{
    return id->stage;
}

bool bc_identity_interrupted(const bc_identity *id, char *cmd_id, bool *promoted)
{
    if (!id->interrupted)
        return false;
    snprintf(cmd_id, BC_ID_MAX + 1, "%s", id->interrupted_cmd);
    *promoted = id->interrupted_promoted;
    return true;
}

/* ---- the rotation ---- */

/* The key rename of a promotion failed earlier: next.key is in use and
 * must become current.key before a new request may replace it. */
static bc_status finish_promotion(bc_identity *id, bc_error *err)
{
    if (!id->key_in_next)
        return BC_OK;
    bc_status st = rename_durable(id, id->next_key, id->cur_key, err);
    if (st == BC_OK)
        id->key_in_next = false;
    return st;
}

/* Removes next.crt and next.key, then fsyncs the directory once. */
static bc_status remove_next(bc_identity *id, bc_error *err)
{
    bc_status st = remove_file(id->next_cert, err);
    if (st == BC_OK)
        st = remove_file(id->next_key, err);
    if (st == BC_OK)
        st = bc_file_fsync_dir(id->dir, err);
    EVP_PKEY_free(id->next);
    id->next = NULL;
    id->stage = BC_IDENTITY_IDLE;
    return st;
}

bc_status bc_identity_request(bc_identity *id, char **csr_pem, bc_error *err)
{
    *csr_pem = NULL;
    if (id->stage == BC_IDENTITY_INSTALLED)
        return bc_fail(err, BC_ERR_STATE, "a new certificate is being tried");
    EVP_PKEY *key = NULL;
    char *csr = NULL;
    bc_status st = finish_promotion(id, err);
    if (st == BC_OK)
        st = remove_next(id, err); /* a failed request leaves no key behind */
    if (st == BC_OK)
        st = bc_ca_new_key(&key, err);
    if (st == BC_OK)
        st = make_csr(id, key, &csr, err);
    if (st == BC_OK)
        st = bc_ca_write_key(id->next_key, key, err);
    if (st != BC_OK) {
        free(csr);
        EVP_PKEY_free(key);
        return st;
    }
    id->next = key;
    id->stage = BC_IDENTITY_REQUESTED;
    *csr_pem = csr;
    log_info("%s: identity: new key %s made for a certificate request", id->device, id->next_key);
    return BC_OK;
}

bc_status bc_identity_check_cert(const bc_identity *id, const char *pem, size_t len, bc_error *err)
{
    X509 *cert = NULL;
    bc_status st = check_cert(id, pem, len, &cert, err);
    X509_free(cert);
    return st;
}

bc_status bc_identity_install(bc_identity *id, const char *cmd_id, const char *pem, size_t len,
                              bc_error *err)
{
    if (cmd_id == NULL || !bc_id_valid(cmd_id))
        return bc_fail(err, BC_ERR_INVAL, "identity: bad command id");
    if (id->stage != BC_IDENTITY_REQUESTED)
        return bc_fail(err, BC_ERR_STATE,
                       id->stage == BC_IDENTITY_IDLE
                           ? "no identity request is waiting for a certificate"
                           : "a new certificate is being tried");
    X509 *cert = NULL;
    char fp[BC_CERT_FINGERPRINT_LEN + 1];
    bc_status st = check_cert(id, pem, len, &cert, err);
    if (st == BC_OK && bc_ca_fingerprint(cert, fp) != BC_OK)
        st = bc_fail(err, BC_ERR_CRYPTO, "cannot compute the certificate's fingerprint");
    if (st == BC_OK)
        st = bc_ca_write_cert(id->next_cert, cert, err);
    if (st == BC_OK)
        st = write_record(id, cmd_id, fp, err);
    X509_free(cert);
    if (st != BC_OK)
        return st;
    id->stage = BC_IDENTITY_INSTALLED;
    id->interrupted = false; /* this install's record replaced an older one */
    log_info("%s: identity: certificate sha256=%s stored as %s", id->device, fp, id->next_cert);
    return BC_OK;
}

bc_status bc_identity_promote(bc_identity *id, bc_error *err)
{
    if (id->stage != BC_IDENTITY_INSTALLED)
        return bc_fail(err, BC_ERR_STATE, "no new certificate to promote");
    if (rename(id->next_cert, id->cur_cert) != 0) /* the commit */
        return bc_fail(err, BC_ERR_IO, "cannot rename '%s' to '%s': %s", id->next_cert,
                       id->cur_cert, strerror(errno));
    bc_error e2;
    if (bc_file_fsync_dir(id->dir, &e2) != BC_OK)
        log_errorx("%s: identity: the promotion may not survive a power cut: %s", id->device,
                   e2.text);
    id->rotated = true;
    id->key_in_next = true;
    if (finish_promotion(id, &e2) != BC_OK)
        log_errorx("%s: identity: %s (using %s as the key)", id->device, e2.text, id->next_key);
    EVP_PKEY_free(id->next);
    id->next = NULL;
    id->stage = BC_IDENTITY_IDLE;
    compute_fingerprint(id);
    log_info("%s: identity: promoted; now %s (sha256=%s)", id->device, id->cur_cert,
             id->fingerprint);
    return BC_OK;
}

bc_status bc_identity_abandon(bc_identity *id, bc_error *err)
{
    if (id->key_in_next) /* only after a promotion (stage IDLE): next.key is in use */
        return BC_OK;
    bc_status st = remove_next(id, err);
    if (st == BC_OK)
        log_info("%s: identity: the new key and certificate were dropped", id->device);
    return st;
}

bc_status bc_identity_install_done(bc_identity *id, bc_error *err)
{
    id->interrupted = false;
    if (!exists(id->record))
        return BC_OK;
    bc_status st = remove_file(id->record, err);
    return st == BC_OK ? bc_file_fsync_dir(id->dir, err) : st;
}
