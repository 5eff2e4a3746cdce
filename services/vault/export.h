/*
 * export.h - decrypting recordings out of the vault, for a lawful purpose only.
 *
 * Policy (design.md "Vault, retention and access"): recordings may be used
 * only for an aangifte (the police may seize them) or a klacht, and shown to
 * a filmed citizen for an inzage. An export therefore names a purpose and a
 * case reference, and every recording in it must carry an ACTIVE hold of
 * that reason with that case reference (for inzage: the hold the open access
 * request placed, case ref = the request id). Anything else - no or an
 * unknown purpose, a case ref without such a hold, a purged recording - is
 * refused as a whole (BC_ERR_DENIED, err says which recording and why) and
 * audited as refused ("export_refused"), before any byte is decrypted.
 *
 * The bundle, made in OUT.partial (removed on any failure, so no
 * unauthenticated or partial plaintext is left) and renamed to OUT at the end:
 *
 *   OUT/media/<device>_<recording_id>.bin   the decrypted content, mode 0600
 *   OUT/audit.jsonl     the chain of custody: for each recording, every audit
 *                       line whose subject is its ref (commit, holds, the
 *                       export itself, ...), verbatim, so each line can be
 *                       checked against the audit log
 *   OUT/export.json     purpose, case_ref, actor, exported_at, the audit head
 *                       at export, and per recording: ref, device, officer,
 *                       recorded_at, duration_ms, warnings, emergency, key_id,
 *                       sha256 (of the ciphertext), size, plaintext_sha256,
 *                       plaintext_size, media file
 *   OUT/manifest.sha256 "<sha256>  <path>" per file above (sha256sum -c format)
 *
 * Each exported recording gets an "export" audit entry (actor, purpose,
 * case_ref, plaintext_sha256) before the bundle is renamed into place.
 * A failure once decryption began (a recording that does not authenticate,
 * I/O) is audited as "export_failed" (with the reason) for each recording.
 */
#ifndef BC_VAULT_EXPORT_H
#define BC_VAULT_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "vault/audit.h"
#include "vault/catalog.h"
#include "vault/keystore.h"
#include "vault/store.h"

#define BC_EXPORT_REFS_MAX 1000 /* recordings in one bundle */
#define BC_EXPORT_PARTIAL_SUFFIX ".partial"

typedef struct bc_export_request {
    const char *purpose;  /* "aangifte", "klacht" or "inzage" */
    const char *case_ref; /* the police report / complaint number, or the request id */
    const char *actor;    /* who exports (operator name), for the audit */
    const char *const *refs;
    size_t ref_count;    /* 1..BC_EXPORT_REFS_MAX, each ref once (else BC_ERR_INVAL) */
    const char *out_dir; /* must not exist */
} bc_export_request;

typedef struct bc_export_result {
    size_t recordings;
    uint64_t plaintext_bytes;
    uint64_t first_audit_seq; /* of the export entries */
} bc_export_result;

/* Progress over all recordings: bytes decrypted so far of total ciphertext bytes. */
typedef void (*bc_export_progress_fn)(uint64_t done, uint64_t total, const char *ref,
                                      void *userdata);

/* Checks the policy only (see above); nothing is audited or written.
 * BC_OK or BC_ERR_DENIED / BC_ERR_NOT_FOUND / BC_ERR_INVAL with the reason. */
bc_status bc_export_authorize(bc_redis *r, const bc_export_request *req, bc_error *err);

/* Authorizes (auditing a refusal), decrypts, writes and audits the bundle.
 * audit_dir is the directory of a (for the trail). progress may be NULL.
 * Errors: BC_ERR_DENIED (refused; audited), BC_ERR_EXISTS (out_dir exists),
 * the reader's errors for a recording that does not authenticate
 * (BC_ERR_TAMPERED, ...; nothing is left behind), BC_ERR_IO,
 * BC_ERR_UNAVAILABLE (Redis). */
bc_status bc_export_run(bc_redis *r, bc_store *st, const bc_keystore *ks, bc_audit *a,
                        const char *audit_dir, const bc_export_request *req, int64_t now_ms,
                        bc_export_progress_fn progress, void *userdata, bc_export_result *res,
                        bc_error *err);

#endif
