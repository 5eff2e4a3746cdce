/*
 * identity.h - the camera's TLS identity on disk, and its rotation
 * (services/key-rotation/README.md "Identity rotation", steps 3, 5 and 7).
 *
 *   DATA_DIR/identity/current.key .crt   the identity a rotation promoted; takes
 *                                         precedence over the configured
 *                                         cert_file / key_file from then on
 *   DATA_DIR/identity/next.key           the key of the last rotate-identity
 *                                         request (EC P-256, PKCS#8 PEM, 0600)
 *   DATA_DIR/identity/next.crt           the certificate an install offered for it
 *   DATA_DIR/identity/install.json       the install being tried: its command id
 *                                         and the new certificate's fingerprint
 *
 * A rotation, as the camera sees it:
 *
 *   request ─► bc_identity_request: next.key (durable), CSR (CN = device id)
 *   install ─► bc_identity_install: the certificate checked, next.crt and
 *              install.json (durable) ─► the link tries next.* ─┬─ CONNACK ok ─►
 *              bc_identity_promote (next ─► current) ─► ack ok  │
 *                                     refused / timeout ────────┴─► bc_identity_abandon
 *                                                                   ─► ack error
 *   and after either ack: bc_identity_install_done (install.json removed).
 *
 * The invariant: the camera always starts with the last identity that
 * connected. A promotion is committed by ONE rename (next.crt over
 * current.crt) - only after the broker accepted the new identity; the key
 * follows by a second rename. So at start (bc_identity_open):
 *   - current.crt whose key is next.key: a promotion a crash cut after its
 *     commit; it is finished (next.key becomes current.key);
 *   - current.crt with its current.key: used;
 *   - anything else: the configured files are used (and a current.crt
 *     without its key is logged as an error);
 *   - next.* left over (never connected) are discarded and logged;
 *   - an install.json left over means the install's ack may never have
 *     gone out: bc_identity_interrupted() says which command and whether
 *     the promotion happened, so the camera can (re)send it.
 * Every rename and removal is followed by an fsync of the directory.
 *
 * Not thread-safe; one per camera. Paths returned are borrowed from the
 * bc_identity and valid until the next call that changes it.
 */
#ifndef BC_AGENT_IDENTITY_H
#define BC_AGENT_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/ca.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_IDENTITY_DIR "identity"
#define BC_IDENTITY_PATH_MAX 4096

typedef struct bc_identity bc_identity;

/* Where a rotation stands. */
typedef enum bc_identity_stage {
    BC_IDENTITY_IDLE,      /* no next.* */
    BC_IDENTITY_REQUESTED, /* next.key made, no certificate yet */
    BC_IDENTITY_INSTALLED, /* next.crt stored: the link may try it */
} bc_identity_stage;

/* Opens the identity of device_id under data_dir (which must exist; the
 * identity directory is made 0700 if missing) and resolves the files to
 * use at start (see the top). ca_file is the fleet CA an offered
 * certificate must verify against; cert_file / key_file are the configured
 * identity. All strings are copied. BC_ERR_INVAL (an argument),
 * BC_ERR_TOO_BIG (a path), BC_ERR_IO (the directory, a rename or removal;
 * errno kept), BC_ERR_NOMEM. Free with bc_identity_free. */
bc_status bc_identity_open(const char *data_dir, const char *device_id, const char *ca_file,
                           const char *cert_file, const char *key_file, bc_identity **out,
                           bc_error *err);

/* NULL is a no-op. Leaves the files as they are. */
void bc_identity_free(bc_identity *id);

/* The certificate and key the camera connects with: current.* after a
 * promotion, else the configured files. */
const char *bc_identity_cert_file(const bc_identity *id);
const char *bc_identity_key_file(const bc_identity *id);

/* DATA_DIR/identity/next.crt and next.key (whether they exist or not). */
const char *bc_identity_next_cert_file(const bc_identity *id);
const char *bc_identity_next_key_file(const bc_identity *id);

/* true when current.* (a rotated identity) is in use. */
bool bc_identity_rotated(const bc_identity *id);

/* SHA-256 fingerprint (64 lowercase hex digits) of the certificate in use,
 * "" when it could not be read. */
const char *bc_identity_fingerprint(const bc_identity *id);

bc_identity_stage bc_identity_get_stage(const bc_identity *id);

/* A rotate-identity request: a fresh EC P-256 key written durably to
 * next.key (0600; an older next.key and next.crt are replaced), and a CSR
 * for it (subject CN = the device id, signed with the new key) as a
 * malloc'd NUL-terminated PEM string in *csr_pem (the caller frees it).
 * BC_ERR_STATE while an install is being tried (stage INSTALLED),
 * BC_ERR_CRYPTO, BC_ERR_IO, BC_ERR_NOMEM; on failure *csr_pem is NULL and
 * the stage is IDLE (a failed request leaves no key behind). */
bc_status bc_identity_request(bc_identity *id, char **csr_pem, bc_error *err);

/* Checks an offered certificate (PEM, len bytes) without storing it, in
 * this order: one PEM certificate (BC_ERR_PARSE); its subject has exactly
 * one CN and it is the device id (BC_ERR_DENIED); its public key is
 * next.key's (BC_ERR_WRONG_KEY; BC_ERR_STATE when there is no next.key);
 * extendedKeyUsage with clientAuth (BC_ERR_DENIED); it verifies against
 * the CA file, valid at bc_clock_now_ms() (BC_ERR_SIGNATURE, naming
 * OpenSSL's reason; BC_ERR_IO when the CA file cannot be read). */
bc_status bc_identity_check_cert(const bc_identity *id, const char *pem, size_t len, bc_error *err);

/* bc_identity_check_cert, then stores the certificate durably as next.crt
 * and the install record (cmd_id, the certificate's fingerprint) as
 * install.json: stage INSTALLED. BC_ERR_STATE unless the stage is
 * REQUESTED; BC_ERR_INVAL for a bad cmd_id; the check's statuses;
 * BC_ERR_IO. On failure the stage is unchanged. */
bc_status bc_identity_install(bc_identity *id, const char *cmd_id, const char *pem, size_t len,
                              bc_error *err);

/* The broker accepted next.*: next.crt is renamed over current.crt (the
 * commit) and next.key over current.key, each followed by an fsync of the
 * directory; current.* is in use from now on, stage IDLE. BC_ERR_STATE
 * unless INSTALLED. BC_ERR_IO when the commit rename fails: nothing
 * changed (the caller falls back to the old identity). A failure of the
 * second rename after the commit is logged and still BC_OK: the pair in
 * use is then current.crt + next.key, finished at the next request or
 * start. */
bc_status bc_identity_promote(bc_identity *id, bc_error *err);

/* Drops next.crt and next.key (the new identity was refused, or the
 * request is superseded): stage IDLE. BC_ERR_IO when a removal fails
 * (the stage is IDLE anyway; what is left is discarded at the next start). */
bc_status bc_identity_abandon(bc_identity *id, bc_error *err);

/* After the install's ack was queued: removes install.json (durably).
 * BC_ERR_IO. A missing file is fine. */
bc_status bc_identity_install_done(bc_identity *id, bc_error *err);

/* true when the last start found an install.json: an install whose ack
 * may not have gone out. cmd_id (BC_ID_MAX + 1) gets its command id and
 * *promoted whether its certificate is the one in use now (ack ok) or not
 * (it never connected: ack error). Stays true until bc_identity_install_done
 * or the next install. */
bool bc_identity_interrupted(const bc_identity *id, char *cmd_id, bool *promoted);

#endif
