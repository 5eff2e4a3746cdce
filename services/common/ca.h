/*
 * ca.h - a small certificate authority for the fleet's PKI.
 *
 * One CA (EC P-256, self-signed) issues every identity of the fleet:
 *
 *   role            subject                        extendedKeyUsage  subjectAltName
 *   BC_CERT_DEVICE  O=bodycam, OU=device,  CN=id   clientAuth        -
 *   BC_CERT_SERVICE O=bodycam, OU=service, CN=name clientAuth        -
 *   BC_CERT_BROKER  O=bodycam, OU=broker,  CN=name serverAuth        IP:127.0.0.1, DNS:localhost,
 *                                                                    plus the extra names asked for
 *
 * Every leaf has basicConstraints CA:FALSE, keyUsage digitalSignature, a
 * random positive 128-bit serial, SKI and AKI, and is signed with SHA-256.
 * The OU carries the role so that a policy point (the broker plugin) can
 * tell a device from a service even where their CNs look alike.
 *
 * A CSR (identity rotation) is signed only when its self-signature
 * verifies, its CN equals the CN the caller expects and its key is EC P-256
 * or Ed25519. Nothing else of the CSR is copied: the CA decides the subject
 * and the extensions.
 *
 * Files are written durably (bc_file_write_durable: temporary file, fsync,
 * rename, fsync of the directory); private keys with mode 0600,
 * certificates and public keys 0644.
 *
 * Ownership: a bc_ca owns its key and certificate (bc_ca_free). X509 and
 * EVP_PKEY results belong to the caller (X509_free, EVP_PKEY_free).
 */
#ifndef BC_COMMON_CA_H
#define BC_COMMON_CA_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "proto/status.h"

#define BC_CERT_FINGERPRINT_LEN 64 /* hex digits of SHA-256, without the NUL */
#define BC_CA_DAYS_MAX 36500

typedef enum bc_cert_role {
    BC_CERT_DEVICE,  /* a camera: TLS client */
    BC_CERT_SERVICE, /* gateway, vault, ...: TLS client */
    BC_CERT_BROKER,  /* the MQTT broker: TLS server */
} bc_cert_role;

typedef struct bc_ca {
    EVP_PKEY *key;
    X509 *cert;
} bc_ca;

/* Makes a new CA: a fresh EC P-256 key and a self-signed certificate with
 * subject "O=bodycam, CN=<cn>" valid for days (1..BC_CA_DAYS_MAX).
 * On failure *out is left zeroed. Free with bc_ca_free. */
bc_status bc_ca_create(const char *cn, int days, bc_ca *out, bc_error *err);

/* Loads a CA from its PEM certificate and private key files and checks that
 * they belong together and that the certificate is a CA. BC_ERR_IO when a
 * file cannot be read, BC_ERR_PARSE when it is not PEM, BC_ERR_INVAL when
 * the key does not match or the certificate is not a CA. */
bc_status bc_ca_load(const char *cert_path, const char *key_path, bc_ca *out, bc_error *err);

/* Frees the key and certificate and zeroes the struct; NULL is fine. */
void bc_ca_free(bc_ca *ca);

/* A fresh EC P-256 key for a leaf. The caller owns *out. */
bc_status bc_ca_new_key(EVP_PKEY **out, bc_error *err);

/* Issues a certificate for subject_key's public half. cn must be 1..64
 * printable characters without '/', ',', '+', '=' or quotes; days
 * 1..BC_CA_DAYS_MAX. extra_names (NULL-terminated array, may be NULL) is
 * only allowed for BC_CERT_BROKER: each an IPv4/IPv6 literal or a DNS name
 * ([A-Za-z0-9.-], at most 253). BC_ERR_INVAL names the bad argument.
 * The caller owns *out. */
bc_status bc_ca_issue(const bc_ca *ca, EVP_PKEY *subject_key, const char *cn, bc_cert_role role,
                      int days, const char *const *extra_names, X509 **out, bc_error *err);

/* Signs a PEM CSR of len bytes. BC_ERR_PARSE when it is not one PEM CSR,
 * BC_ERR_SIGNATURE when its self-signature fails, BC_ERR_DENIED when its
 * CN is not exactly expected_cn or its key is neither EC P-256 nor Ed25519.
 * The issued certificate is made as bc_ca_issue(role, days) makes it. */
bc_status bc_ca_sign_csr(const bc_ca *ca, const char *csr_pem, size_t len, const char *expected_cn,
                         bc_cert_role role, int days, X509 **out, bc_error *err);

/* SHA-256 over the DER certificate as 64 lowercase hex digits and a NUL. */
bc_status bc_ca_fingerprint(X509 *cert, char hex[BC_CERT_FINGERPRINT_LEN + 1]);

/* The certificate as a NUL-terminated PEM string in *out (malloc'd; the
 * caller frees it with free()); *len (may be NULL) gets its length. */
bc_status bc_ca_cert_pem(X509 *cert, char **out, size_t *len);

/* Loads one PEM certificate. BC_ERR_IO / BC_ERR_PARSE as bc_ca_load. */
bc_status bc_ca_load_cert(const char *path, X509 **out, bc_error *err);

/* Loads any PEM private key (PKCS#8 or traditional). BC_ERR_IO / BC_ERR_PARSE. */
bc_status bc_ca_load_key(const char *path, EVP_PKEY **out, bc_error *err);

/* Loads the Ed25519 key a daemon signs its commands with (the option
 * command_key_file). *out is the caller's (EVP_PKEY_free); NULL on error.
 * BC_ERR_INVAL for another kind of key; else as bc_ca_load_key. */
bc_status bc_ca_load_command_key(const char *path, EVP_PKEY **out, bc_error *err);

/* Durable writes (see the top of this file). The private key is PKCS#8
 * PEM, mode 0600; the public key SubjectPublicKeyInfo PEM and the
 * certificate PEM, mode 0644. An existing file is replaced atomically.
 * BC_ERR_IO (errno kept) when a system call fails. */
bc_status bc_ca_write_key(const char *path, EVP_PKEY *key, bc_error *err);
bc_status bc_ca_write_public_key(const char *path, EVP_PKEY *key, bc_error *err);
bc_status bc_ca_write_cert(const char *path, X509 *cert, bc_error *err);

#endif
