/*
 * catalog.h - the vault's metadata in Redis: recordings, holds and access
 * requests. Shared by bodycam-vault and bodycamctl; every key is listed in
 * services/vault/README.md ("Redis keys").
 *
 * Every change is one Lua script (check, then change, atomically), so the
 * vault daemon, its purge worker and any number of operators' bodycamctl
 * can act on the same recording at once without a race: a hold placed while
 * a purge runs either lands first (the purge skips the recording) or finds
 * the recording purging/purged and is refused. Scripts are loaded per
 * connection (SCRIPT LOAD on first use; EVAL again after NOSCRIPT).
 *
 * A recording is named by its ref "<device>/<recording_id>" (both ids in
 * their alphabets, proto/README.md): recording ids are chosen by cameras,
 * so the device is part of the name and one camera cannot shadow another's
 * recording.
 *
 * Statuses: BC_ERR_UNAVAILABLE when Redis is not reachable (the connection
 * is then failed; see common/stream.h), BC_ERR_NOT_FOUND, BC_ERR_STATE with
 * err saying why an act is not allowed now, BC_ERR_INVAL for a bad
 * argument, BC_ERR_PARSE for a reply that is not what the script returns.
 * Visitor callbacks get borrowed structs, valid during the call; they
 * return false to stop.
 */
#ifndef BC_VAULT_CATALOG_H
#define BC_VAULT_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/stream.h"
#include "proto/firmware.h"
#include "proto/sign.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_REF_MAX (BC_DEVICE_ID_MAX + 1 + BC_ID_MAX) /* "<device>/<recording_id>" */
#define BC_CATALOG_ID_MAX 32                          /* hold and request ids: "H12", "R7" */
#define BC_CATALOG_TEXT_MAX 200                       /* free text: notes, reasons, names */
#define BC_CATALOG_CASE_MAX 64                        /* case references */
#define BC_CATALOG_DAY_MS (24LL * 3600 * 1000)

/* Builds "<device>/<recording_id>"; BC_ERR_INVAL for ids outside their alphabets. */
bc_status bc_ref_make(const char *device, const char *recording_id, char ref[BC_REF_MAX + 1]);
/* Splits a ref; BC_ERR_INVAL when it is not one. */
bc_status bc_ref_split(const char *ref, char device[BC_DEVICE_ID_MAX + 1],
                       char recording_id[BC_ID_MAX + 1]);

/* Free text (notes, names, reasons): 1..BC_CATALOG_TEXT_MAX bytes of UTF-8
 * without control characters. Case references: [A-Za-z0-9_./:-]{1,64}. */
bool bc_catalog_text_valid(const char *s);
bool bc_catalog_case_valid(const char *s);

/* ---- recordings ---- */

typedef enum bc_recording_status {
    BC_REC_COMMITTED, /* in the store, purged after delete_after unless held */
    BC_REC_PURGING,   /* the purge has begun (audit entry, then the object goes) */
    BC_REC_PURGED,    /* object and wrapped key deleted; the record stays as a tombstone */
} bc_recording_status;

const char *bc_recording_status_name(bc_recording_status s); /* "committed", ... */

typedef struct bc_recording_meta {
    char ref[BC_REF_MAX + 1];
    char device[BC_DEVICE_ID_MAX + 1];
    char recording_id[BC_ID_MAX + 1];
    char officer[BC_ID_MAX + 1]; /* bodycam:assignment:<device> at commit; "" = none */
    int64_t recorded_at;         /* ms, from the manifest */
    int64_t duration_ms;
    int64_t warnings; /* spoken warnings before it, 0..2 */
    bool emergency;   /* started with the emergency press */
    char key_id[BC_ID_MAX + 1];
    char sha256[BC_SHA256_HEX_LEN + 1];
    int64_t size;
    int64_t committed_at;
    int64_t delete_after; /* recorded_at + retention */
    bc_recording_status status;
    int64_t purged_at;         /* BC_REC_PURGED */
    uint64_t commit_audit_seq; /* 0 until the commit entry is written */
    uint64_t purge_audit_seq;  /* 0 until the purge entry is written */
    int64_t active_holds;      /* filled by reads */
} bc_recording_meta;

/* One hold or match an act created, for the caller to audit. */
typedef struct bc_catalog_hold_ref {
    char hold_id[BC_CATALOG_ID_MAX + 1];
    char request_id[BC_CATALOG_ID_MAX + 1];
    char ref[BC_REF_MAX + 1];
} bc_catalog_hold_ref;

#define BC_CATALOG_AUTO_HOLDS_MAX 16

/* Records a committed recording: m's manifest fields, sha256, size,
 * committed_at and delete_after are the caller's; the script fills the
 * officer from bodycam:assignment:<device> (hash field "officer", or a
 * string). If the ref exists already, nothing changes, *created is false
 * and m is overwritten with the stored record (a redelivered upload).
 * Otherwise the record is created (status committed, in the time, device
 * and expiry indexes, in the unaudited set) and every OPEN access request
 * whose window and cameras/officer match it places an inzage hold on it at
 * once; those holds are returned in holds (up to BC_CATALOG_AUTO_HOLDS_MAX,
 * *hold_count set; may be NULL/0 when the caller does not care). Holds
 * beyond holds_cap are placed but not returned (the requests' matches list
 * them). m->ref may be "" (it is built from device and recording_id) or
 * must equal that ref. BC_ERR_INVAL for ids outside their alphabets, a
 * sha256 that is not 64 lowercase hex digits, warnings outside 0..2 or
 * delete_after before recorded_at. An officer id outside the id alphabet
 * in the assignment is stored as "". */
bc_status bc_catalog_commit(bc_redis *r, bc_recording_meta *m, int64_t now_ms, bool *created,
                            bc_catalog_hold_ref *holds, size_t holds_cap, size_t *hold_count,
                            bc_error *err);

/* Loads every catalog script into Redis' script cache (SCRIPT LOAD). The
 * other calls do not need it (they send EVAL after NOSCRIPT), but a
 * pipeline cannot fall back: call it once per connection generation
 * before bc_catalog_commit_append. */
bc_status bc_catalog_scripts_load(bc_redis *r, bc_error *err);

/* bc_catalog_commit on a pipeline (many commits per round trip: a bulk
 * import, the benchmark): _append checks m (and fills m->ref) and queues the
 * script; _reply reads the answers in order and fills m, *created and the
 * holds as bc_catalog_commit. A NOSCRIPT answer is BC_ERR_STATE (the
 * scripts were not loaded on this connection generation). */
bc_status bc_catalog_commit_append(bc_redis *r, bc_recording_meta *m, int64_t now_ms,
                                   bc_error *err);
bc_status bc_catalog_commit_reply(bc_redis *r, bc_recording_meta *m, bool *created,
                                  bc_catalog_hold_ref *holds, size_t holds_cap, size_t *hold_count,
                                  bc_error *err);

/* The commit's audit entry is written: stores its seq, leaves the unaudited set. */
bc_status bc_catalog_commit_audited(bc_redis *r, const char *ref, uint64_t seq, bc_error *err);

/* Refs committed but not yet audited (a crash between the two), for the
 * vault to audit at start. */
typedef bool (*bc_catalog_ref_fn)(const char *ref, void *userdata);
bc_status bc_catalog_unaudited(bc_redis *r, bc_catalog_ref_fn fn, void *userdata, bc_error *err);

/* One recording (with active_holds). BC_ERR_NOT_FOUND. */
bc_status bc_catalog_recording_get(bc_redis *r, const char *ref, bc_recording_meta *out,
                                   bc_error *err);

typedef struct bc_recording_filter {
    const char *device;  /* NULL: any */
    const char *officer; /* NULL: any */
    int64_t from, to;    /* recorded_at in [from, to]; to 0 = no upper bound */
    int status;          /* -1: any, else a bc_recording_status */
    bool held_only;      /* only recordings with an active hold */
    size_t limit;        /* 0: no limit */
} bc_recording_filter;

/* Recordings in recorded_at order that match the filter. */
typedef bool (*bc_catalog_recording_fn)(const bc_recording_meta *m, void *userdata);
bc_status bc_catalog_recordings_list(bc_redis *r, const bc_recording_filter *f,
                                     bc_catalog_recording_fn fn, void *userdata, bc_error *err);

/* ---- purge (the retention worker) ---- */

/* Selects up to limit committed recordings with delete_after <= now_ms and
 * no active hold (held ones are not in the expiry index), marks them
 * purging (they leave the expiry index and enter the purging set) and
 * returns them, in one script. *count gets how many (<= limit). */
bc_status bc_catalog_purge_begin(bc_redis *r, int64_t now_ms, bc_recording_meta *out, size_t limit,
                                 size_t *count, bc_error *err);

/* Recordings left purging by a crash, to finish first. */
bc_status bc_catalog_purging(bc_redis *r, bc_catalog_recording_fn fn, void *userdata,
                             bc_error *err);

/* The purge's audit entries are written (seqs[i] for refs[i]). */
bc_status bc_catalog_purge_audited(bc_redis *r, const char *const *refs, const uint64_t *seqs,
                                   size_t count, bc_error *err);

/* Their objects are deleted: status purged, purged_at = now_ms, out of the
 * purging set; the record is kept as a tombstone for tombstone_days (EXPIRE),
 * so an access request can still be answered with the purge's audit seq.
 * tombstone_days 0 keeps the tombstone for ever; BC_ERR_INVAL outside
 * 0..36500. Refs that are not purging are only taken out of the purging set. */
bc_status bc_catalog_purge_done(bc_redis *r, const char *const *refs, size_t count, int64_t now_ms,
                                int64_t tombstone_days, bc_error *err);

/* Drops index entries of tombstones that expired (at most limit per call). */
bc_status bc_catalog_tombstones_sweep(bc_redis *r, size_t limit, size_t *removed, bc_error *err);

/* ---- holds ---- */

typedef enum bc_hold_reason {
    BC_HOLD_AANGIFTE, /* a police report: the police may seize it */
    BC_HOLD_KLACHT,   /* a complaint */
    BC_HOLD_INZAGE,   /* an access request (case ref = the request id) */
} bc_hold_reason;

const char *bc_hold_reason_name(bc_hold_reason r); /* "aangifte", "klacht", "inzage" */
bc_status bc_hold_reason_parse(const char *name, bc_hold_reason *out, bc_error *err);

typedef struct bc_hold {
    char id[BC_CATALOG_ID_MAX + 1]; /* "H<n>" */
    char ref[BC_REF_MAX + 1];
    bc_hold_reason reason;
    char case_ref[BC_CATALOG_CASE_MAX + 1];
    char placed_by[BC_CATALOG_TEXT_MAX + 1];
    int64_t placed_at;
    char note[BC_CATALOG_TEXT_MAX + 1];
    bool active;
    int64_t released_at;
    char released_by[BC_CATALOG_TEXT_MAX + 1];
    char release_note[BC_CATALOG_TEXT_MAX + 1];
    char request_id[BC_CATALOG_ID_MAX + 1]; /* inzage holds placed for a request */
} bc_hold;

/* Places a hold on a committed recording. An active hold with the same
 * ref, reason and case ref is returned instead (*created false). The
 * recording leaves the expiry index while it has an active hold.
 * BC_ERR_NOT_FOUND (no such recording), BC_ERR_STATE (purging or purged:
 * err names when), BC_ERR_INVAL (reason inzage: use an access request;
 * a bad case ref or text). */
bc_status bc_catalog_hold_place(bc_redis *r, const char *ref, bc_hold_reason reason,
                                const char *case_ref, const char *placed_by, const char *note,
                                int64_t now_ms, bc_hold *out, bool *created, bc_error *err);

/* Releases an active hold. When it was the recording's last one, the
 * recording goes back into the expiry index with its delete_after (if that
 * has passed, the next purge pass deletes it). BC_ERR_NOT_FOUND,
 * BC_ERR_STATE (already released, or an inzage hold of an access request
 * that is still open: closing the request releases it). */
bc_status bc_catalog_hold_release(bc_redis *r, const char *hold_id, const char *released_by,
                                  const char *note, int64_t now_ms, bc_hold *out, bc_error *err);

bc_status bc_catalog_hold_get(bc_redis *r, const char *hold_id, bc_hold *out, bc_error *err);

typedef struct bc_hold_filter {
    const char *ref;      /* NULL: any */
    const char *case_ref; /* NULL: any */
    bool active_only;
} bc_hold_filter;

typedef bool (*bc_catalog_hold_fn)(const bc_hold *h, void *userdata);
bc_status bc_catalog_holds_list(bc_redis *r, const bc_hold_filter *f, bc_catalog_hold_fn fn,
                                void *userdata, bc_error *err);

/* ---- access requests (inzage) ---- */

typedef enum bc_request_status {
    BC_REQ_OPEN,   /* registered; its matches are held */
    BC_REQ_CLOSED, /* answered and closed: its holds are released */
} bc_request_status;

#define BC_REQUEST_CAMERAS_MAX 16

typedef struct bc_access_request {
    char id[BC_CATALOG_ID_MAX + 1]; /* "R<n>" */
    char requester[BC_CATALOG_TEXT_MAX + 1];
    char contact[BC_CATALOG_TEXT_MAX + 1]; /* optional */
    int64_t window_from, window_to;        /* ms; from < to */
    char place[BC_CATALOG_TEXT_MAX + 1];   /* optional, recorded as said */
    char cameras[BC_REQUEST_CAMERAS_MAX][BC_DEVICE_ID_MAX + 1];
    size_t camera_count;         /* 0: every camera */
    char officer[BC_ID_MAX + 1]; /* optional: only this officer's recordings */
    int64_t registered_at;
    char registered_by[BC_CATALOG_TEXT_MAX + 1];
    int64_t deadline; /* set by the caller (one calendar month) */
    bool extended;
    char extension_reason[BC_CATALOG_TEXT_MAX + 1];
    bc_request_status status;
    int64_t closed_at;
    char answer[BC_CATALOG_TEXT_MAX + 1];
    bool overdue_alerted;
    int64_t held;   /* matching recordings held for it (so far) */
    int64_t purged; /* matching recordings already purged when it came */
} bc_access_request;

const char *bc_request_status_name(bc_request_status s); /* "open", "closed" */

/* One recording that matched a request. */
typedef struct bc_request_match {
    char ref[BC_REF_MAX + 1];
    bc_recording_status status;          /* committed: held now; purged/purging: too late */
    char hold_id[BC_CATALOG_ID_MAX + 1]; /* the inzage hold placed ("" if purged) */
    int64_t recorded_at;
    int64_t purged_at;
    uint64_t purge_audit_seq; /* the proof of the purge (purged) */
} bc_request_match;

typedef bool (*bc_catalog_match_fn)(const bc_request_match *m, void *userdata);

/* Registers req (id, status, counts and registered_at = now_ms are set
 * here; the caller sets the rest, deadline included, which must be after
 * now_ms; req is overwritten with the stored request) and, in the same
 * script, places an inzage hold on every committed recording whose
 * recorded_at is in the window [from, to] and whose camera / officer
 * match; purged (and purging) ones are recorded as such. fn (may be NULL)
 * sees every match. Later commits that match are held by bc_catalog_commit
 * while the request is open. BC_ERR_INVAL for a bad text, window, camera
 * or officer. */
bc_status bc_catalog_request_register(bc_redis *r, bc_access_request *req, int64_t now_ms,
                                      bc_catalog_match_fn fn, void *userdata, bc_error *err);

bc_status bc_catalog_request_get(bc_redis *r, const char *id, bc_access_request *out,
                                 bc_error *err);

/* The request's matches so far (held and purged). */
bc_status bc_catalog_request_matches(bc_redis *r, const char *id, bc_catalog_match_fn fn,
                                     void *userdata, bc_error *err);

/* Moves the deadline to new_deadline once, with the reason (out may be
 * NULL). BC_ERR_STATE when already extended or closed; BC_ERR_INVAL when
 * new_deadline is not after the current deadline. */
bc_status bc_catalog_request_extend(bc_redis *r, const char *id, int64_t new_deadline,
                                    const char *reason, const char *by, int64_t now_ms,
                                    bc_access_request *out, bc_error *err);

/* Closes an open request with its answer and releases its inzage holds
 * (each as bc_catalog_hold_release would; fn sees the released ones).
 * BC_ERR_STATE when already closed. */
bc_status bc_catalog_request_close(bc_redis *r, const char *id, const char *answer, const char *by,
                                   int64_t now_ms, bc_catalog_hold_fn fn, void *userdata,
                                   bc_error *err);

typedef bool (*bc_catalog_request_fn)(const bc_access_request *q, void *userdata);

/* Requests by registration time; open_only limits to open ones. */
bc_status bc_catalog_requests_list(bc_redis *r, bool open_only, bc_catalog_request_fn fn,
                                   void *userdata, bc_error *err);

/* Open requests past their deadline at now_ms whose overdue alert was not
 * raised yet. */
bc_status bc_catalog_requests_overdue(bc_redis *r, int64_t now_ms, bc_catalog_request_fn fn,
                                      void *userdata, bc_error *err);

/* Records that the overdue alert was raised (true) or cleared (false). */
bc_status bc_catalog_request_mark_alerted(bc_redis *r, const char *id, bool alerted, bc_error *err);

/* ---- recording keys (services/key-rotation/README.md) ----
 *
 * bodycam:recording-key:<key_id> records each recording key the vault
 * holds or held (never the private half): made for a rotation campaign
 * (bodycam:recording-keys:campaign:<campaign> names it), or adopted at
 * start (a key found in the keystore without a record: the PKI's first
 * key). bodycam:recordings:key:<key_id> is the key index: the refs of
 * committed and purging recordings sealed for the key (commit adds,
 * purge_done removes), so "may this key go" is one SCARD. */

typedef enum bc_key_status {
    BC_KEY_CURRENT,   /* the key cameras are given now; never destroyed */
    BC_KEY_RETIRED,   /* replaced; kept while anything may be sealed for it */
    BC_KEY_DESTROYED, /* its private half was shredded */
} bc_key_status;

const char *bc_key_status_name(bc_key_status s); /* "current", "retired", "destroyed" */

#define BC_KEY_PUBLIC_MAX 44 /* base64 of the raw 32-byte public key */

typedef struct bc_key_record {
    char key_id[BC_KEY_ID_LEN + 1];
    char public_b64[BC_KEY_PUBLIC_MAX + 1];
    int64_t created_at;
    bc_key_status status;
    int64_t retired_at;                       /* 0 while current */
    int64_t destroyed_at;                     /* 0 until destroyed */
    char campaign[BC_CATALOG_ID_MAX + 1];     /* "" for an adopted key */
    char created_by[BC_CATALOG_TEXT_MAX + 1]; /* who asked (the campaign's actor), "vault" */
    char replaced[BC_KEY_ID_LEN + 1];         /* the key it retired ("" none) */
    bool adopted;                             /* found in the keystore, not made on request */
    bool destroying;                          /* the destruction began: it goes */
    uint64_t audit_seq;                       /* key_created / key_adopted entry; 0 = not yet */
    uint64_t destroy_audit_seq;               /* key_destroyed entry; 0 = not yet */
} bc_key_record;

typedef bool (*bc_catalog_key_fn)(const bc_key_record *k, void *userdata);

/* Records key_id (public_b64: base64 of its raw 32-byte public half) as
 * the key made for campaign, asked for by `by`, in one script: the key
 * becomes current (bodycam:recording-keys:current, in the set
 * bodycam:recording-keys), the previous current key is retired
 * (retired_at = now_ms; named in the new key's `replaced`), and the
 * campaign -> key mapping is set. If the campaign has a key recorded
 * already, nothing changes: *created is false and out is THAT key (the
 * caller's key_id was made for nothing and never given out). BC_ERR_STATE
 * when key_id is recorded already (for another campaign, or adopted);
 * BC_ERR_INVAL for a bad key id, public key, campaign id or name. */
bc_status bc_catalog_recording_key_record(bc_redis *r, const char *key_id, const char *public_b64,
                                          const char *campaign, const char *by, int64_t now_ms,
                                          bc_key_record *out, bool *created, bc_error *err);

/* The key recorded for campaign; BC_ERR_NOT_FOUND when none. */
bc_status bc_catalog_recording_key_of_campaign(bc_redis *r, const char *campaign,
                                               bc_key_record *out, bc_error *err);

/* One key; BC_ERR_NOT_FOUND. */
bc_status bc_catalog_recording_key_get(bc_redis *r, const char *key_id, bc_key_record *out,
                                       bc_error *err);

/* Records the keys of the keystore that have no record yet (adopted,
 * created_by "vault"), in one script:
 *   - no key is current and exactly one is new: it becomes current (the
 *     first start, the PKI's key);
 *   - no key is current and several are new: none is recorded (*left gets
 *     how many; which one the cameras use is not guessed, and an
 *     unrecorded key is never destroyed): an operator's rotation makes a
 *     current key, and the next start adopts them as below;
 *   - a key is current: the new ones are retired at now_ms (a key a crash
 *     left between its file and its record was never given out; the purge
 *     pass destroys it once nothing needs it, like any retired key).
 * fn (may be NULL) sees each key recorded now; left may be NULL. */
bc_status bc_catalog_recording_keys_adopt(bc_redis *r, const char *const *key_ids,
                                          const char *const *publics, size_t count, int64_t now_ms,
                                          bc_catalog_key_fn fn, void *userdata, size_t *left,
                                          bc_error *err);

/* Every key record, by created_at. */
bc_status bc_catalog_recording_keys_list(bc_redis *r, bc_catalog_key_fn fn, void *userdata,
                                         bc_error *err);

/* The key's audit entry is written: key_created / key_adopted (destroyed
 * false, audit_seq) or key_destroyed (destroyed true, destroy_audit_seq). */
bc_status bc_catalog_recording_key_audited(bc_redis *r, const char *key_id, bool destroyed,
                                           uint64_t seq, bc_error *err);

/* May the retired key go? In one script: it is retired (never the current
 * key), the key index is built and holds no recording for it, and every
 * camera record (fleet-health's bodycam:camera:<id> of the members of
 * bodycam:cameras; a removed record is no camera) reports another
 * recording_key_id and pending_uploads 0. Then its destruction begins
 * (destroying, the point of no return: a later call says yes again) and
 * out is the key. BC_ERR_STATE, err saying why it stays; BC_ERR_NOT_FOUND.
 * The caller checks its staging area BEFORE (catalog.c cannot see it). */
bc_status bc_catalog_recording_key_destroy_begin(bc_redis *r, const char *key_id,
                                                 bc_key_record *out, bc_error *err);

/* The key's private half is shredded: status destroyed, destroyed_at =
 * now_ms (again: nothing changes). BC_ERR_STATE when the destruction was
 * not begun; out may be NULL. */
bc_status bc_catalog_recording_key_destroyed(bc_redis *r, const char *key_id, int64_t now_ms,
                                             bc_key_record *out, bc_error *err);

/* Builds the key index from the time index once (marked by
 * bodycam:recordings:key-index; until then no key may be destroyed):
 * recordings committed before the index existed. *built (may be NULL) is
 * true when this call built it. Call it from the process that commits and
 * purges, between those (pages are offsets into bodycam:recordings). */
bc_status bc_catalog_key_index_build(bc_redis *r, bool *built, bc_error *err);

/* Adds months calendar months to a UTC time (the day is clamped to the end
 * of a shorter month: 31 January + 1 month = 28/29 February). */
int64_t bc_catalog_add_months(int64_t ms, int months);

#endif
