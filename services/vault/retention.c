/*
 * retention.c - the purge worker: recordings are deleted after the
 * retention (28 days from recording) unless a hold applies, and every
 * deletion is audited before it happens.
 *
 *   catalog purge_begin (one script: due, unheld -> purging, out of the
 *       expiry index; a hold placed at the same moment either came first
 *       and the recording is not selected, or finds it purging and is refused)
 *   audit: one "purge" entry per recording, one fsync per batch
 *   catalog purge_audited (the entry's seq: the proof an access request cites)
 *   store: unlink the object (ciphertext and the wrapped data key in its
 *       header), fsync the directory
 *   catalog purge_done: status purged, kept as a tombstone for tombstone_days
 *
 * A crash between any two steps leaves the recording in the purging set;
 * the next pass finishes it: audits it if its entry is missing, deletes the
 * object if it is still there (a missing one is fine), marks it purged.
 * A recording is therefore never deleted without an audit entry, and never
 * deleted while held: the hold check and the change to purging are one
 * atomic script.
 *
 * After the purges, the recording keys' crypto-shredding (keys.c): a
 * retired key whose last recording just went is destroyed in the same pass.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "vault/vault.h"

#define SWEEP_LIMIT 1000
#define AUDIT_EXPIRE_EVERY_MS (6LL * 3600 * 1000)

static cJSON *purge_entry(const bc_recording_meta *m)
{
    cJSON *e = cJSON_CreateObject();
    if (e == NULL)
        return NULL;
    bool ok = cJSON_AddStringToObject(e, "actor", VAULT_ACTOR) != NULL &&
              cJSON_AddStringToObject(e, "action", "purge") != NULL &&
              cJSON_AddStringToObject(e, "subject", m->ref) != NULL &&
              cJSON_AddStringToObject(e, "device", m->device) != NULL &&
              cJSON_AddStringToObject(e, "officer", m->officer) != NULL &&
              cJSON_AddNumberToObject(e, "recorded_at", (double)m->recorded_at) != NULL &&
              cJSON_AddNumberToObject(e, "delete_after", (double)m->delete_after) != NULL &&
              cJSON_AddStringToObject(e, "sha256", m->sha256) != NULL &&
              cJSON_AddNumberToObject(e, "size", (double)m->size) != NULL &&
              cJSON_AddStringToObject(e, "key_id", m->key_id) != NULL &&
              cJSON_AddStringToObject(e, "deleted", "ciphertext and wrapped data key") != NULL;
    if (!ok) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

/* Audits (the ones without an entry yet), deletes and marks purged. */
static bc_status purge_batch(vault *v, bc_recording_meta *ms, size_t n)
{
    bc_error err;
    bc_error_clear(&err);
    cJSON **entries = calloc(n, sizeof(*entries));
    const char **refs = calloc(n, sizeof(*refs));
    const char **todo = calloc(n, sizeof(*todo));
    uint64_t *seqs = calloc(n, sizeof(*seqs));
    bc_status st = BC_ERR_NOMEM;
    size_t nto = 0;
    if (entries == NULL || refs == NULL || todo == NULL || seqs == NULL)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        refs[i] = ms[i].ref;
        if (ms[i].purge_audit_seq != 0)
            continue;
        if ((entries[nto] = purge_entry(&ms[i])) == NULL)
            goto cleanup;
        todo[nto++] = ms[i].ref;
    }
    if (nto > 0) {
        uint64_t first = 0;
        st = bc_audit_append(v->audit, entries, nto, bc_clock_now_ms(), &first, &err);
        if (st != BC_OK) {
            log_errorx("audit | append_failed | action=purge count=%zu reason=%s (nothing "
                       "deleted)",
                       nto, err.text);
            goto cleanup;
        }
        v->stats.audit_entries += nto;
        for (size_t i = 0; i < nto; i++)
            seqs[i] = first + i;
        if ((st = bc_catalog_purge_audited(&v->cmd, todo, seqs, nto, &err)) != BC_OK) {
            vault_redis_failed(v, "catalog", &err);
            goto cleanup;
        }
    }
    for (size_t i = 0; i < n; i++) {
        bool existed = false;
        if ((st = bc_store_delete(v->store, ms[i].sha256, &existed, &err)) != BC_OK) {
            log_errorx("vault | purge_failed | ref=%s reason=%s (tried again next pass)",
                       ms[i].ref, err.text);
            goto cleanup;
        }
        log_info("vault | purged | ref=%s sha256=%s recorded_at=%" PRId64 "%s", ms[i].ref,
                 ms[i].sha256, ms[i].recorded_at, existed ? "" : " (object was gone already)");
    }
    st = bc_catalog_purge_done(&v->cmd, refs, n, bc_clock_now_ms(), v->cfg.tombstone_days, &err);
    if (st != BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        goto cleanup;
    }
    v->stats.purged += n;

cleanup:
    for (size_t i = 0; entries != NULL && i < nto; i++)
        cJSON_Delete(entries[i]);
    free(entries);
    free(refs);
    free(todo);
    free(seqs);
    return st;
}

typedef struct left_over {
    bc_recording_meta *items;
    size_t n, cap;
} left_over;

static bool collect_purging(const bc_recording_meta *m, void *userdata)
{
    left_over *l = userdata;
    if (l->n == l->cap)
        return false;
    l->items[l->n++] = *m;
    return true;
}

static bc_status finish_interrupted(vault *v, bc_recording_meta *buf, size_t cap)
{
    left_over l = {.items = buf, .n = 0, .cap = cap};
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_catalog_purging(&v->cmd, collect_purging, &l, &err);
    if (st != BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        return st;
    }
    if (l.n == 0)
        return BC_OK;
    log_info("vault | purge_resumed | count=%zu (interrupted before)", l.n);
    return purge_batch(v, l.items, l.n);
}

static void maintenance(vault *v)
{
    static int64_t next_audit_expire_ms;
    bc_error err;
    bc_error_clear(&err);
    size_t removed = 0;
    if (bc_catalog_tombstones_sweep(&v->cmd, SWEEP_LIMIT, &removed, &err) != BC_OK)
        vault_redis_failed(v, "catalog", &err);
    else if (removed > 0)
        log_info("vault | tombstones_swept | count=%zu", removed);
    int64_t mono = bc_clock_monotonic_ms();
    if (mono < next_audit_expire_ms)
        return;
    next_audit_expire_ms = mono + AUDIT_EXPIRE_EVERY_MS;
    bc_error_clear(&err);
    if (bc_audit_expire(v->audit, (int)v->cfg.audit_retention_days, bc_clock_now_ms(), &removed,
                        &err) != BC_OK)
        log_errorx("audit | expire_failed | reason=%s", err.text);
    else if (removed > 0)
        log_info("audit | expired | files=%zu", removed);
}

void vault_retention_pass(vault *v)
{
    size_t cap = (size_t)v->cfg.purge_batch;
    bc_recording_meta *ms = calloc(cap, sizeof(*ms));
    if (ms == NULL) {
        log_errorx("vault | purge_failed | reason=no memory for a batch of %zu", cap);
        return;
    }
    int64_t started = bc_clock_monotonic_ms();
    uint64_t before = v->stats.purged;
    if (finish_interrupted(v, ms, cap) != BC_OK)
        goto cleanup;
    for (;;) {
        size_t n = 0;
        bc_error err;
        bc_error_clear(&err);
        if (bc_catalog_purge_begin(&v->cmd, bc_clock_now_ms(), ms, cap, &n, &err) != BC_OK) {
            vault_redis_failed(v, "catalog", &err);
            break;
        }
        if (n == 0 || purge_batch(v, ms, n) != BC_OK || n < cap)
            break;
    }
    vault_keys_shred_pass(v); /* after the purges: a key's last recording may have gone */
    maintenance(v);
    v->stats.purge_passes++;
    if (v->stats.purged > before)
        log_info("vault | purge_pass | purged=%" PRIu64 " ms=%" PRId64, v->stats.purged - before,
                 bc_clock_monotonic_ms() - started);

cleanup:
    free(ms);
}
