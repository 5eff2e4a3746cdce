/*
 * audit.h - the vault's audit log: append-only, hash-chained, on disk.
 *
 * Every act on a recording (commit, hold, release, export, refusal, purge)
 * and on an access request is one entry. The log lives in its own directory,
 * independent of Redis and of the recordings' 28 days, one file per UTC month:
 *
 *   DIR/audit-YYYY-MM.log   one entry per line (below)
 *   DIR/head                {"seq":N,"hash":"<hex>"} of the last entry, durable
 *   DIR/anchor              {"seq":N,"hash":"<hex>","file":"...","removed_at":MS}: the
 *                           last entry of the newest file removed by retention
 *                           (absent until a file was removed)
 *   DIR/lock                flock(2) target: appenders of several processes
 *                           (the vault, bodycamctl) take turns
 *
 * A line is one JSON object, written by this module in this order:
 *
 *   {"seq":N,"ts":MS,"actor":"...","action":"...","subject":"...",<details>,"prev":"<hex>","hash":"<hex>"}
 *
 * seq counts from 1 without gaps across files; prev is the hash of the entry
 * before (64 zeros for seq 1, the anchor's hash after a removal); hash is
 * the lowercase hex SHA-256 of the line's bytes with the final
 * `,"hash":"<64 hex>"` member removed (so of `{...,"prev":"<hex>"}`).
 * So an edited entry fails its hash, a removed or reordered one breaks seq
 * and prev, and a removed tail differs from DIR/head.
 *
 * Durability: an append writes its lines with one write(2) each batch,
 * fsyncs the file (and the directory when it made a new file), then rewrites
 * DIR/head durably. A crash can leave a torn last line; the next open
 * truncates a final line without '\n' (it was never acknowledged) and
 * refuses to append after a damaged log (BC_ERR_TAMPERED: verify says
 * where). Appends are serialised by flock on DIR/lock, and each append
 * re-reads the head under the lock, so processes can share the directory.
 * Every append (not only an open) first checks the end of the newest file
 * against the head: a torn final line is cut off; whole entries beyond the
 * head that chain on from it (a crash after the fsync, before the head
 * write) are adopted by rewriting the head; anything else is
 * BC_ERR_TAMPERED. An entry goes to the file of its ts month, or to the
 * newest file when the clock went back (never into an older file).
 *
 * A handle is for one thread at a time. flock is per open file description:
 * after fork(), a child opens its own handle rather than use the parent's.
 *
 * Retention: bc_audit_expire() removes month files whose every entry is
 * older than the retention (at least 365 days), newest-removed first
 * recorded in DIR/anchor, and appends an "audit_expired" entry naming them.
 */
#ifndef BC_VAULT_AUDIT_H
#define BC_VAULT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "proto/status.h"

#define BC_AUDIT_HASH_HEX 64
#define BC_AUDIT_LINE_MAX (16 * 1024) /* bytes of one entry line, '\n' included */
#define BC_AUDIT_RETENTION_MIN_DAYS 365

typedef struct bc_audit bc_audit;

/* Opens (creating with mode 0700 if needed) the log in dir. Repairs a torn
 * final line (see above). BC_ERR_IO, BC_ERR_TAMPERED when the last entry
 * does not match DIR/head, BC_ERR_NOMEM. The caller owns *out. */
bc_status bc_audit_open(const char *dir, bc_audit **out, bc_error *err);

/* Closes and frees (NULL allowed). */
void bc_audit_close(bc_audit *a);

/* Appends count entries as one durable batch at time now_ms. Each entries[i]
 * is a JSON object built by the caller with at least string members
 * "actor", "action" and "subject"; its other members (strings, integers,
 * booleans, arrays of those) are the details, written in their order. The
 * module adds seq, ts, prev and hash; members named so by the caller are
 * refused (BC_ERR_INVAL), as is a line over BC_AUDIT_LINE_MAX (BC_ERR_TOO_BIG).
 * A missing or non-string actor/action/subject (actor and action also
 * non-empty) is BC_ERR_MISSING/BC_ERR_TYPE, a detail of another type
 * BC_ERR_TYPE, a member named twice BC_ERR_INVAL; all are checked before
 * anything is written. BC_ERR_TAMPERED when the log's end does not match
 * its head (nothing is appended), BC_ERR_STATE when now_ms falls in a month
 * already expired, BC_ERR_IO. count 0 does nothing (*first_seq 0).
 * The caller keeps ownership of entries. On BC_OK *first_seq (may be NULL)
 * is the seq of entries[0] and the batch is on disk; on failure nothing of
 * the batch counts (a partly written batch is cut off again before return;
 * after a crash the next append or open cuts a torn line, and whole lines
 * written before the crash are kept as above - the caller never saw BC_OK
 * or a failure for them). */
bc_status bc_audit_append(bc_audit *a, cJSON *const *entries, size_t count, int64_t now_ms,
                          uint64_t *first_seq, bc_error *err);

/* The same for one entry built from fields, for the common case:
 * actor, action, subject and a JSON object of details (may be NULL). */
bc_status bc_audit_append1(bc_audit *a, const char *actor, const char *action, const char *subject,
                           const cJSON *details, int64_t now_ms, uint64_t *seq, bc_error *err);

/* The head: seq and hash of the last entry (0 and 64 zeros when empty). */
bc_status bc_audit_head(bc_audit *a, uint64_t *seq, char hash[BC_AUDIT_HASH_HEX + 1],
                        bc_error *err);

typedef struct bc_audit_verify_result {
    uint64_t entries; /* entries checked */
    uint64_t first_seq, last_seq;
    size_t files;
    char last_hash[BC_AUDIT_HASH_HEX + 1];
} bc_audit_verify_result;

/* Verifies the whole log in dir (no lock needed; read only): every line's
 * hash, seq without gaps, prev chaining across files (from DIR/anchor when
 * files were removed), and the last entry against DIR/head. BC_OK or
 * BC_ERR_TAMPERED with err naming the file, the line and what is wrong
 * ("entry 12 was edited: its hash does not match", "entry 13 is missing",
 * "entries out of order", "the log ends at 40 but its head says 41"),
 * BC_ERR_PARSE for a line that is not an entry (also a final line without
 * '\n' that a crash left and the next open cuts), BC_ERR_IO. Holds a shared
 * flock on DIR/lock while reading when the file can be opened (a read-only
 * copy of a log is verified without). res may be NULL; on failure it holds
 * what was checked before the problem. */
bc_status bc_audit_verify(const char *dir, bc_audit_verify_result *res, bc_error *err);

/* Calls fn for every entry (in seq order) whose "subject" equals subject,
 * or every entry when subject is NULL; the line (without '\n') and the
 * parsed entry are borrowed for the call. fn returns false to stop. The
 * files are read sequentially (memory does not grow with the log). Hashes
 * are not checked (that is verify's job); a final line without '\n' (an
 * append in progress) is skipped. Takes no lock, so fn may append.
 * BC_ERR_PARSE for a line that is not a JSON object with a string
 * "subject", BC_ERR_IO. */
typedef bool (*bc_audit_visit_fn)(const char *line, size_t len, const cJSON *entry, void *userdata);
bc_status bc_audit_scan(const char *dir, const char *subject, bc_audit_visit_fn fn, void *userdata,
                        bc_error *err);

/* Removes month files all of whose entries are older than now_ms minus
 * retention_days (>= BC_AUDIT_RETENTION_MIN_DAYS, else BC_ERR_INVAL), never
 * the file holding the head; records DIR/anchor durably before unlinking
 * and appends one "audit_expired" entry (actor "vault") listing the files.
 * Only a run of files from the oldest on is removed, so that the rest
 * chains on from the anchor. The entry: subject "audit", details "files"
 * (the names), "anchor_seq", "anchor_hash", "retention_days"; none is
 * written when nothing was removed. The files to remove are read first and
 * must check (hashes, seq, prev), else BC_ERR_TAMPERED and nothing is
 * removed. Files at or before the anchor's (an expiry interrupted after its
 * anchor write) are ignored by readers and removed by the next expiry.
 * *removed (may be NULL) gets the number of files removed. */
bc_status bc_audit_expire(bc_audit *a, int retention_days, int64_t now_ms, size_t *removed,
                          bc_error *err);

#endif
