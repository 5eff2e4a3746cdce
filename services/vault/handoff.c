/*
 * handoff.c - recordings move from the cameras into the vault.
 *
 * THE INVARIANT: a camera deletes a recording only after a vault receipt,
 * and the vault sends a receipt only for a recording that is committed:
 * every byte arrived, every segment authenticates under the vault's
 * recording key, the SHA-256 of the whole file equals the manifest's, the
 * header names the camera that sent it, and the file is in the store
 * (fsynced, renamed) and in the catalog. So at every moment each recording
 * exists whole in at least one place.
 *
 *   upload entry ──decode──► staging (DEFER) ─┐
 *   ... a batch later:  staging fsync ─► XACK + XDEL (the stream is trimmed
 *                       only of what is durable in staging)
 *                       complete? ─► verify ─► store ─► catalog ─► audit ─► receipt
 *                                      │ fails
 *                                      └─► audit "upload_refused", forget the bytes
 *                                          from the failing segment on, ask the
 *                                          camera to send again from there
 *
 * Every step is idempotent, so a crash anywhere is repaired by doing it
 * again: a redelivered entry is a duplicate in staging; a recording that
 * is in the catalog already gets its receipt again (its manifest comes
 * back each time the camera docks until the receipt arrived); a commit left
 * unaudited is audited by the scan; a stalled upload is asked for again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/clock.h"
#include "common/log.h"
#include "proto/command.h"
#include "proto/encoding.h"
#include "proto/recording.h"
#include "vault/vault.h"

#define SCAN_MAX 1024 /* staged recordings looked at per scan */

/* ---- commands to the camera (through the outbox) ---- */

static bc_status command_id(char out[BC_ID_MAX + 1])
{
    uint8_t rnd[12];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return BC_ERR_CRYPTO;
    out[0] = 'v';
    return bc_hex_encode(rnd, sizeof(rnd), out + 1, BC_ID_MAX);
}

static bc_status send_command(vault *v, bc_command *cmd, EVP_PKEY *key, bc_error *err)
{
    bc_status st = command_id(cmd->id);
    if (st != BC_OK)
        return bc_fail(err, st, "cannot make a command id");
    cmd->issued_at = bc_clock_now_ms();
    cmd->expires_at = cmd->issued_at + v->cfg.receipt_ttl_s * 1000;
    if ((st = bc_command_sign(cmd, key, err)) != BC_OK)
        return st;
    char *payload = NULL;
    if ((st = bc_command_encode(cmd, &payload, err)) != BC_OK)
        return st;
    char topic[BC_TOPIC_MAX + 1];
    st = bc_topic_command(topic, sizeof(topic), cmd->device, bc_command_kind_name(cmd->kind));
    if (st != BC_OK)
        bc_fail(err, st, "cannot build the command topic for %s", cmd->device);
    else
        st = bc_outbox_add(&v->cmd, topic, payload, 1, false, err);
    free(payload);
    return st;
}

static bc_status send_receipt(vault *v, const bc_recording_meta *m)
{
    bc_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    snprintf(cmd.device, sizeof(cmd.device), "%s", m->device);
    cmd.kind = BC_CMD_VAULT_RECEIPT;
    snprintf(cmd.params.receipt.recording_id, sizeof(cmd.params.receipt.recording_id), "%s",
             m->recording_id);
    snprintf(cmd.params.receipt.sha256, sizeof(cmd.params.receipt.sha256), "%s", m->sha256);
    cmd.params.receipt.size = m->size;
    cmd.params.receipt.committed_at = m->committed_at;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = send_command(v, &cmd, bc_keystore_receipt_key(v->keys), &err);
    if (st != BC_OK) {
        log_warnx("vault | receipt_failed | ref=%s reason=%s", m->ref, err.text);
        return st;
    }
    v->stats.receipts++;
    log_info("vault | receipt_sent | ref=%s sha256=%s cmd=%s", m->ref, m->sha256, cmd.id);
    return BC_OK;
}

/* Asks the camera to send recording_id again from offset. */
static bc_status request_upload(vault *v, const char *device, const char *recording_id,
                                uint64_t offset, const char *why)
{
    bc_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    snprintf(cmd.device, sizeof(cmd.device), "%s", device);
    cmd.kind = BC_CMD_UPLOAD;
    snprintf(cmd.params.upload.recording_id, sizeof(cmd.params.upload.recording_id), "%s",
             recording_id);
    cmd.params.upload.offset = (int64_t)offset;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = send_command(v, &cmd, bc_keystore_command_key(v->keys), &err);
    if (st != BC_OK) {
        log_warnx("vault | resend_request_failed | device=%s recording=%s reason=%s", device,
                  recording_id, err.text);
        return st;
    }
    v->stats.resend_requests++;
    log_info("vault | resend_requested | device=%s recording=%s offset=%" PRIu64 " why=%s",
             device, recording_id, offset, why);
    return BC_OK;
}

/* ---- stream entries into the staging area ---- */

static void ready_add(vault *v, const char *device, const char *recording_id)
{
    for (size_t i = 0; i < v->nready; i++) {
        if (strcmp(v->ready[i].device, device) == 0 &&
            strcmp(v->ready[i].recording_id, recording_id) == 0)
            return;
    }
    if (v->nready == v->ready_cap)
        return; /* the scan finds it */
    snprintf(v->ready[v->nready].device, sizeof(v->ready[0].device), "%s", device);
    snprintf(v->ready[v->nready].recording_id, sizeof(v->ready[0].recording_id), "%s",
             recording_id);
    v->nready++;
}

/* A manifest or chunk of a recording that is not staged: it may be in the
 * vault already (a camera that resumed before its receipt arrived). */
static bc_stream_verdict already_committed(vault *v, const bc_msg_upload *u, bool *committed)
{
    char ref[BC_REF_MAX + 1];
    *committed = false;
    if (bc_ref_make(u->device, u->recording_id, ref) != BC_OK)
        return BC_STREAM_DROP;
    bc_recording_meta m;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_catalog_recording_get(&v->cmd, ref, &m, &err);
    if (st == BC_ERR_NOT_FOUND)
        return BC_STREAM_DEFER;
    if (st != BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        return BC_STREAM_RETRY;
    }
    *committed = true;
    v->stats.duplicates++;
    if (u->kind != BC_UPLOAD_MANIFEST)
        return BC_STREAM_DEFER;
    if (m.status == BC_REC_COMMITTED && strcmp(m.sha256, u->sha256) == 0) {
        (void)send_receipt(v, &m); /* the camera still waits for it */
    } else {
        log_warnx("vault | manifest_conflict | ref=%s status=%s stored_sha256=%s sent_sha256=%s "
                  "(ignored: a recording id is committed once)",
                  ref, bc_recording_status_name(m.status), m.sha256, u->sha256);
    }
    return BC_STREAM_DEFER;
}

static bc_stream_verdict stage(vault *v, const bc_msg_upload *u)
{
    int64_t now = bc_clock_now_ms();
    bc_staging_status s;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_staging_status_of(v->staging, u->device, u->recording_id, &s, &err);
    if (st == BC_ERR_NOT_FOUND) {
        bool committed = false;
        bc_stream_verdict verdict = already_committed(v, u, &committed);
        if (verdict != BC_STREAM_DEFER || committed)
            return verdict;
    } else if (st != BC_OK) {
        log_errorx("vault | staging_failed | device=%s recording=%s reason=%s", u->device,
                   u->recording_id, err.text);
        return BC_STREAM_RETRY;
    }
    bool duplicate = false;
    bc_error_clear(&err);
    if (u->kind == BC_UPLOAD_MANIFEST) {
        st = bc_staging_put_manifest(v->staging, u, now, &duplicate, &err);
        v->stats.manifests++;
    } else {
        st = bc_staging_put_chunk(v->staging, u, now, &duplicate, &err);
        v->stats.chunks++;
    }
    if (st == BC_ERR_IO || st == BC_ERR_NOMEM) {
        log_errorx("vault | staging_failed | device=%s recording=%s reason=%s", u->device,
                   u->recording_id, err.text);
        return BC_STREAM_RETRY; /* e.g. a full disk: stop here, keep the entry */
    }
    if (st != BC_OK) {
        v->stats.invalid++;
        log_warnx("vault | chunk_refused | device=%s recording=%s offset=%" PRId64 " reason=%s",
                  u->device, u->recording_id, u->offset, err.text);
        return BC_STREAM_DEFER; /* the gap is asked for again by the scan */
    }
    if (duplicate)
        v->stats.duplicates++;
    bc_error_clear(&err);
    if (bc_staging_status_of(v->staging, u->device, u->recording_id, &s, &err) == BC_OK &&
        s.complete)
        ready_add(v, u->device, u->recording_id);
    return BC_STREAM_DEFER;
}

bc_stream_verdict vault_handoff_entry(const bc_stream_entry *entry, void *userdata)
{
    vault *v = userdata;
    if (v->nacks == v->acks_cap)
        return BC_STREAM_RETRY; /* cannot happen with batch == acks_cap; be safe */
    size_t plen = 0;
    const char *device = bc_stream_entry_field(entry, BC_FIELD_DEVICE, NULL);
    const char *payload = bc_stream_entry_field(entry, BC_FIELD_PAYLOAD, &plen);
    bc_stream_verdict verdict = BC_STREAM_DEFER;
    bc_message msg;
    bc_error err;
    bc_error_clear(&err);
    if (device == NULL || payload == NULL) {
        v->stats.invalid++;
        log_warnx("vault | entry_invalid | id=%s reason=no device or payload field", entry->id);
    } else if (bc_message_decode(BC_TOPIC_UPLOAD, payload, plen, &msg, &err) != BC_OK) {
        v->stats.invalid++;
        log_warnx("vault | entry_invalid | id=%s device=%s reason=%s", entry->id, device,
                  err.text);
    } else {
        if (strcmp(msg.upload.device, device) != 0) {
            v->stats.invalid++;
            log_warnx("vault | entry_invalid | id=%s reason=payload names %s, entry names %s",
                      entry->id, msg.upload.device, device);
        } else {
            verdict = stage(v, &msg.upload);
        }
        bc_message_free(&msg);
    }
    if (verdict == BC_STREAM_DEFER || verdict == BC_STREAM_DROP) {
        snprintf(v->acks[v->nacks++], sizeof(v->acks[0]), "%s", entry->id);
        return BC_STREAM_DEFER;
    }
    return verdict;
}

/* ---- verification ---- */

/* Reads the u32 header length after the 8-byte magic: records start at 12 + it. */
static bc_status records_start(int fd, uint64_t *out)
{
    uint8_t head[12];
    if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head))
        return BC_ERR_TRUNCATED;
    *out = 12 + (uint64_t)bc_be32_load(head + 8);
    return BC_OK;
}

/* Authenticates every segment and compares size and SHA-256 with the
 * manifest. On failure *bad_offset is where the camera must send again
 * from: the start of the first record that fails, or 0. */
static bc_status verify_staged(vault *v, const char *path, const bc_msg_upload *man,
                               uint64_t *bad_offset, bc_error *err)
{
    *bad_offset = 0;
    bc_recording_header hdr;
    bc_status st = bc_recording_info_read(path, &hdr, err);
    if (st != BC_OK)
        return st;
    if (strcmp(hdr.device, man->device) != 0 || strcmp(hdr.recording_id, man->recording_id) != 0)
        return bc_fail(err, BC_ERR_TAMPERED,
                       "the file's header names %s/%s, the upload %s/%s", hdr.device,
                       hdr.recording_id, man->device, man->recording_id);
    if (strcmp(hdr.key_id, man->key_id) != 0)
        return bc_fail(err, BC_ERR_TAMPERED, "the file is sealed for key %s, the manifest says %s",
                       hdr.key_id, man->key_id);
    EVP_PKEY *key = bc_keystore_recording_key(v->keys, hdr.key_id);
    if (key == NULL)
        return bc_fail(err, BC_ERR_WRONG_KEY, "the vault holds no private key with id %s",
                       hdr.key_id);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return bc_fail(err, BC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    bc_recording_reader *r = NULL;
    uint8_t *buf = NULL;
    uint64_t offset = 0;
    /* bytes past the manifest's size (an older, longer manifest) are not the file */
    if (ftruncate(fd, (off_t)man->size) != 0) {
        st = bc_fail(err, BC_ERR_IO, "cannot truncate %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if ((st = records_start(fd, &offset)) != BC_OK) {
        bc_fail(err, st, "the file ends inside its header");
        goto cleanup;
    }
    if ((st = bc_recording_reader_open_fd(fd, key, &r, err)) != BC_OK)
        goto cleanup;
    size_t cap = bc_recording_reader_header(r)->segment_size;
    buf = malloc(cap);
    if (buf == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "no memory for a segment of %zu bytes", cap);
        goto cleanup;
    }
    for (int done = 0; !done;) {
        size_t len = 0;
        if ((st = bc_recording_reader_next(r, buf, cap, &len, &done, err)) != BC_OK) {
            *bad_offset = offset;
            goto cleanup;
        }
        offset += 4 + (uint64_t)len + BC_RECORDING_TAG_LEN;
    }
    bc_recording_info info;
    if ((st = bc_recording_reader_info(r, &info)) != BC_OK) {
        bc_fail(err, st, "the reader ended without its summary");
        goto cleanup;
    }
    char hex[BC_SHA256_HEX_LEN + 1];
    if ((st = bc_hex_encode(info.sha256, sizeof(info.sha256), hex, sizeof(hex))) != BC_OK)
        goto cleanup;
    if (info.size != (uint64_t)man->size || strcmp(hex, man->sha256) != 0)
        st = bc_fail(err, BC_ERR_TAMPERED,
                     "the file (%" PRIu64 " bytes, sha256 %s) differs from the manifest",
                     info.size, hex);

cleanup:
    free(buf);
    bc_recording_reader_close(r);
    close(fd);
    return st;
}

/* ---- commit ---- */

static cJSON *commit_details(const bc_recording_meta *m)
{
    cJSON *d = cJSON_CreateObject();
    if (d == NULL)
        return NULL;
    bool ok = cJSON_AddStringToObject(d, "device", m->device) != NULL &&
              cJSON_AddStringToObject(d, "recording_id", m->recording_id) != NULL &&
              cJSON_AddStringToObject(d, "officer", m->officer) != NULL &&
              cJSON_AddNumberToObject(d, "recorded_at", (double)m->recorded_at) != NULL &&
              cJSON_AddNumberToObject(d, "duration_ms", (double)m->duration_ms) != NULL &&
              cJSON_AddNumberToObject(d, "warnings", (double)m->warnings) != NULL &&
              cJSON_AddBoolToObject(d, "emergency", m->emergency) != NULL &&
              cJSON_AddStringToObject(d, "key_id", m->key_id) != NULL &&
              cJSON_AddStringToObject(d, "sha256", m->sha256) != NULL &&
              cJSON_AddNumberToObject(d, "size", (double)m->size) != NULL &&
              cJSON_AddNumberToObject(d, "committed_at", (double)m->committed_at) != NULL &&
              cJSON_AddNumberToObject(d, "delete_after", (double)m->delete_after) != NULL;
    if (!ok) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

/* The commit's audit entry, then the automatic holds of open requests. */
static void audit_commit(vault *v, const bc_recording_meta *m, const bc_catalog_hold_ref *holds,
                         size_t nholds)
{
    cJSON *d = commit_details(m);
    uint64_t seq = 0;
    bc_status st = d == NULL ? BC_ERR_NOMEM : vault_audit(v, "commit", m->ref, d, &seq);
    cJSON_Delete(d);
    if (st != BC_OK)
        return; /* stays in the unaudited set: the scan tries again */
    for (size_t i = 0; i < nholds; i++) {
        cJSON *h = cJSON_CreateObject();
        if (h == NULL || cJSON_AddStringToObject(h, "hold_id", holds[i].hold_id) == NULL ||
            cJSON_AddStringToObject(h, "reason", "inzage") == NULL ||
            cJSON_AddStringToObject(h, "case_ref", holds[i].request_id) == NULL ||
            cJSON_AddStringToObject(h, "request_id", holds[i].request_id) == NULL)
            log_errorx("audit | no memory for hold %s", holds[i].hold_id);
        else
            (void)vault_audit(v, "hold_placed", m->ref, h, NULL);
        cJSON_Delete(h);
    }
    bc_error err;
    bc_error_clear(&err);
    if (bc_catalog_commit_audited(&v->cmd, m->ref, seq, &err) != BC_OK)
        vault_redis_failed(v, "catalog", &err);
}

/* After a failed verification: audit, forget the bad bytes, ask again. */
static void refuse(vault *v, const char *ref, const bc_staging_status *s, uint64_t offset,
                   const char *reason)
{
    const bc_msg_upload *man = &s->manifest;
    unsigned attempt = s->attempts + 1;
    v->stats.refused++;
    log_warnx("vault | upload_refused | ref=%s attempt=%u offset=%" PRIu64 " reason=%s", ref,
              attempt, offset, reason);
    cJSON *d = cJSON_CreateObject();
    if (d != NULL && cJSON_AddStringToObject(d, "reason", reason) != NULL &&
        cJSON_AddNumberToObject(d, "resend_from", (double)offset) != NULL &&
        cJSON_AddNumberToObject(d, "attempt", attempt) != NULL &&
        cJSON_AddStringToObject(d, "sha256", man->sha256) != NULL)
        (void)vault_audit(v, "upload_refused", ref, d, NULL);
    cJSON_Delete(d);
    bc_error err;
    bc_error_clear(&err);
    if (bc_staging_reset_from(v->staging, man->device, man->recording_id, offset, &err) != BC_OK) {
        log_errorx("vault | staging_failed | ref=%s reason=%s", ref, err.text);
        return;
    }
    if ((int64_t)attempt >= v->cfg.verify_attempts_max) {
        v->stats.quarantined++;
        log_errorx("vault | upload_quarantined | ref=%s attempts=%u: not asking again; the camera "
                   "keeps the recording until an operator looks",
                   ref, attempt);
        (void)vault_audit(v, "upload_quarantined", ref, NULL, NULL);
        return;
    }
    (void)request_upload(v, man->device, man->recording_id, offset, "verification failed");
}

static void meta_from_manifest(const vault *v, const bc_msg_upload *man, const char *ref,
                               bc_recording_meta *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->ref, sizeof(m->ref), "%s", ref);
    snprintf(m->device, sizeof(m->device), "%s", man->device);
    snprintf(m->recording_id, sizeof(m->recording_id), "%s", man->recording_id);
    m->recorded_at = man->recorded_at;
    m->duration_ms = man->duration_ms;
    m->warnings = man->warnings;
    m->emergency = man->emergency;
    snprintf(m->key_id, sizeof(m->key_id), "%s", man->key_id);
    snprintf(m->sha256, sizeof(m->sha256), "%s", man->sha256);
    m->size = man->size;
    m->committed_at = bc_clock_now_ms();
    m->delete_after = man->recorded_at + v->cfg.retention_days * BC_CATALOG_DAY_MS;
    m->status = BC_REC_COMMITTED;
}

/* A recording that is in the catalog already: receipt again, drop staging. */
static void recommit(vault *v, const bc_staging_status *s, bc_recording_meta *m)
{
    const bc_msg_upload *man = &s->manifest;
    bc_error err;
    bc_error_clear(&err);
    if (m->status == BC_REC_COMMITTED && strcmp(m->sha256, man->sha256) == 0) {
        v->stats.recommitted++;
        if (m->commit_audit_seq == 0)
            audit_commit(v, m, NULL, 0);
        (void)send_receipt(v, m);
    } else {
        log_warnx("vault | manifest_conflict | ref=%s status=%s stored_sha256=%s staged_sha256=%s "
                  "(staging dropped: a recording id is committed once)",
                  m->ref, bc_recording_status_name(m->status), m->sha256, man->sha256);
    }
    if (bc_staging_remove(v->staging, man->device, man->recording_id, &err) != BC_OK)
        log_errorx("vault | staging_failed | ref=%s reason=%s", m->ref, err.text);
}

static void commit_one(vault *v, const char *device, const char *recording_id)
{
    char ref[BC_REF_MAX + 1], path[1024];
    bc_staging_status s;
    bc_error err;
    bc_error_clear(&err);
    if (bc_ref_make(device, recording_id, ref) != BC_OK ||
        bc_staging_status_of(v->staging, device, recording_id, &s, &err) != BC_OK || !s.complete)
        return;
    if ((int64_t)s.attempts >= v->cfg.verify_attempts_max)
        return; /* quarantined */
    bc_recording_meta m;
    bc_status st = bc_catalog_recording_get(&v->cmd, ref, &m, &err);
    if (st == BC_OK) {
        recommit(v, &s, &m);
        return;
    }
    if (st != BC_ERR_NOT_FOUND) {
        vault_redis_failed(v, "catalog", &err);
        return;
    }
    if (bc_staging_data_path(v->staging, device, recording_id, path, sizeof(path), &err) != BC_OK)
        return;
    uint64_t bad_offset = 0;
    bc_error_clear(&err);
    st = verify_staged(v, path, &s.manifest, &bad_offset, &err);
    if (st == BC_ERR_WRONG_KEY || st == BC_ERR_IO || st == BC_ERR_NOMEM) {
        log_errorx("vault | verify_failed | ref=%s reason=%s (kept staged; tried again later)", ref,
                   err.text);
        return;
    }
    if (st != BC_OK) {
        refuse(v, ref, &s, bad_offset, err.text);
        return;
    }
    bool existed = false;
    if (bc_store_commit(v->store, path, s.manifest.sha256, (uint64_t)s.manifest.size, &existed,
                        &err) != BC_OK) {
        log_errorx("vault | store_failed | ref=%s reason=%s (kept staged)", ref, err.text);
        return;
    }
    meta_from_manifest(v, &s.manifest, ref, &m);
    bool created = false;
    bc_catalog_hold_ref holds[BC_CATALOG_AUTO_HOLDS_MAX];
    size_t nholds = 0;
    st = bc_catalog_commit(&v->cmd, &m, m.committed_at, &created, holds,
                           BC_CATALOG_AUTO_HOLDS_MAX, &nholds, &err);
    if (st != BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        return; /* the object is stored; the scan commits it again */
    }
    if (created || m.commit_audit_seq == 0)
        audit_commit(v, &m, holds, nholds);
    v->stats.committed++;
    log_info("vault | committed | ref=%s size=%" PRId64 " sha256=%s officer=%s held=%zu", ref,
             m.size, m.sha256, m.officer[0] ? m.officer : "-", nholds);
    (void)send_receipt(v, &m);
    if (bc_staging_remove(v->staging, device, recording_id, &err) != BC_OK)
        log_errorx("vault | staging_failed | ref=%s reason=%s", ref, err.text);
}

/* ---- after a batch ---- */

static void ack_batch(vault *v)
{
    const char *ids[v->nacks];
    for (size_t i = 0; i < v->nacks; i++)
        ids[i] = v->acks[i];
    bc_error err;
    bc_error_clear(&err);
    if (bc_stream_ack(&v->cmd, BC_STREAM_UPLOAD, VAULT_GROUP, ids, v->nacks, NULL, &err) != BC_OK) {
        vault_redis_failed(v, "ack", &err);
        bc_stream_consumer_rewind(&v->consumer); /* they come again: duplicates in staging */
        return;
    }
    if (!v->cfg.delete_processed)
        return;
    const char *argv[2 + v->nacks];
    argv[0] = "XDEL";
    argv[1] = BC_STREAM_UPLOAD;
    for (size_t i = 0; i < v->nacks; i++)
        argv[2 + i] = ids[i];
    redisReply *reply = NULL;
    if (bc_redis_command(&v->cmd, (int)(2 + v->nacks), argv, NULL, &reply, &err) != BC_OK)
        vault_redis_failed(v, "xdel", &err);
    else
        freeReplyObject(reply);
}

void vault_handoff_flush(vault *v)
{
    if (v->nacks > 0) {
        bc_error err;
        bc_error_clear(&err);
        if (bc_staging_sync(v->staging, &err) != BC_OK) {
            log_errorx("vault | staging_sync_failed | reason=%s (the batch is read again)",
                       err.text);
            bc_stream_consumer_rewind(&v->consumer);
            v->nacks = 0;
            v->nready = 0;
            return;
        }
        ack_batch(v);
        v->nacks = 0;
    }
    for (size_t i = 0; i < v->nready; i++)
        commit_one(v, v->ready[i].device, v->ready[i].recording_id);
    v->nready = 0;
}

/* ---- the scan ---- */

typedef struct scan_list {
    vault_ready items[SCAN_MAX];
    size_t n;
} scan_list;

static bool collect(const char *device, const char *recording_id, void *userdata)
{
    scan_list *l = userdata;
    if (l->n == SCAN_MAX)
        return false;
    snprintf(l->items[l->n].device, sizeof(l->items[0].device), "%s", device);
    snprintf(l->items[l->n].recording_id, sizeof(l->items[0].recording_id), "%s", recording_id);
    l->n++;
    return true;
}

static bool audit_left_over(const char *ref, void *userdata)
{
    vault *v = userdata;
    bc_recording_meta m;
    bc_error err;
    bc_error_clear(&err);
    if (bc_catalog_recording_get(&v->cmd, ref, &m, &err) != BC_OK)
        return false;
    if (m.commit_audit_seq == 0) {
        log_info("vault | commit_audit_redone | ref=%s", ref);
        audit_commit(v, &m, NULL, 0);
    }
    return true;
}

/* Only a camera that is online and docked can answer; fleet-health keeps
 * that in bodycam:camera:<id>. Unknown (no fleet-health): ask anyway. */
static bool camera_can_send(vault *v, const char *device)
{
    char key[BC_DEVICE_ID_MAX + 32];
    snprintf(key, sizeof(key), "bodycam:camera:%s", device);
    const char *argv[] = {"HMGET", key, "online", "state"};
    redisReply *reply = NULL;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_command(&v->cmd, 4, argv, NULL, &reply, &err) != BC_OK)
        return false;
    bool can = true;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING)
        can = strcmp(reply->element[0]->str, "1") == 0 &&
              strcmp(reply->element[1]->str, "docked") == 0;
    freeReplyObject(reply);
    return can;
}

/* SET NX PX: at most one ask per recording per resend_after_s, across restarts. */
static bool resend_due(vault *v, const char *ref)
{
    char key[BC_REF_MAX + 64], px[24];
    snprintf(key, sizeof(key), VAULT_RESEND_KEY_PREFIX "%s", ref);
    snprintf(px, sizeof(px), "%" PRId64, v->cfg.resend_after_s * 1000);
    const char *argv[] = {"SET", key, "1", "NX", "PX", px};
    redisReply *reply = NULL;
    bc_error err;
    bc_error_clear(&err);
    if (bc_redis_command(&v->cmd, 6, argv, NULL, &reply, &err) != BC_OK)
        return false;
    bool set = reply->type == REDIS_REPLY_STATUS;
    freeReplyObject(reply);
    return set;
}

static void scan_one(vault *v, const vault_ready *it, int64_t now)
{
    bc_staging_status s;
    bc_error err;
    bc_error_clear(&err);
    if (bc_staging_status_of(v->staging, it->device, it->recording_id, &s, &err) != BC_OK)
        return;
    if (s.complete) {
        commit_one(v, it->device, it->recording_id);
        return;
    }
    if ((int64_t)s.attempts >= v->cfg.verify_attempts_max ||
        now - s.updated_at < v->cfg.resend_after_s * 1000)
        return;
    char ref[BC_REF_MAX + 1];
    if (bc_ref_make(it->device, it->recording_id, ref) != BC_OK ||
        !camera_can_send(v, it->device) || !resend_due(v, ref))
        return;
    (void)request_upload(v, it->device, it->recording_id, s.has_manifest ? s.first_missing : 0,
                         s.has_manifest ? "stalled" : "no manifest");
}

void vault_handoff_scan(vault *v)
{
    bc_error err;
    bc_error_clear(&err);
    if (bc_catalog_unaudited(&v->cmd, audit_left_over, v, &err) != BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        return;
    }
    scan_list *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return;
    if (bc_staging_list(v->staging, collect, l, &err) != BC_OK)
        log_errorx("vault | staging_failed | reason=%s", err.text);
    int64_t now = bc_clock_now_ms();
    for (size_t i = 0; i < l->n; i++)
        scan_one(v, &l->items[i], now);
    free(l);
}
