/*
 * keys.c - the recording keys over their life (services/key-rotation/README.md,
 * "Recording key rotation", steps 2 and 5):
 *
 *   made       bodycam:stream:vault-control {op new-recording-key, campaign, by}
 *              ─► the campaign has a key? (campaign.h) ─► recorded for it? (catalog)
 *              ─► new X25519 pair, encrypted file, durable (keystore)
 *              ─► ONE script: the key current, the previous retired, campaign -> key
 *              ─► audit key_created ─► the campaign's key_id, state running
 *   adopted    at start: keys in the keystore without a record (the PKI's first key)
 *   destroyed  the purge pass: a retired key nothing needs (no recording in the
 *              catalog, nothing staged, every camera on another key with nothing
 *              to upload) ─► begin (point of no return) ─► audit key_destroyed
 *              ─► shred the file ─► status destroyed
 *
 * THE RULE, one key per campaign: a key is given out (made current, named to
 * the campaign and through it to the cameras) only by the record script, which
 * sets the campaign -> key mapping in the same step and answers the existing key
 * for a campaign that has one. The file is written BEFORE that script, so the
 * catalog never names a key whose private half is not on disk. Every step is
 * idempotent and the request stays pending in the stream until the last one
 * is done, so a redelivery picks up where a crash stopped:
 *
 *   - crash before the file is durable: nothing happened; the request makes a key.
 *   - the record's answer is lost (Redis went away mid-call): the key stays
 *     loaded as this campaign's pending key and the retry records THAT key
 *     (the script may have run: then it answers the same key), no second file.
 *   - crash between the durable file and the record: the file is a key nobody
 *     was given. The next start adopts it as retired (the current key does not
 *     change) and the purge pass shreds it; the redelivery makes the campaign's
 *     one and only key.
 *   - crash after the record: the redelivery finds the campaign's key in the
 *     catalog, makes none, and finishes (the audit if not written, key_ready).
 *   - the script answers another key for the campaign (a second vault on the
 *     same Redis: not supported, but harmless): ours was never given out and is
 *     shredded at once.
 *
 * Destruction follows the purge's order: the point of no return and its audit
 * entry come before anything is deleted, so no key goes unaudited, and a crash
 * after the begin is finished by the next pass. The current key is never
 * destroyed (the script refuses it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "key-rotation/campaign.h"
#include "proto/encoding.h"
#include "proto/recording.h"
#include "vault/vault.h"

#define CONTROL_OP_NEW_KEY "new-recording-key"
#define CONTROL_ROUNDS_MAX 8 /* batches of control entries per timer tick */
#define KEY_SUBJECT_MAX (BC_KEY_ID_LEN + 8)

static void key_subject(const char *key_id, char out[KEY_SUBJECT_MAX])
{
    snprintf(out, KEY_SUBJECT_MAX, "key:%s", key_id);
}

/* base64 of the raw 32-byte public half of a loaded key. */
static bc_status public_of(vault *v, const char *key_id, char out[BC_KEY_PUBLIC_MAX + 1],
                           bc_error *err)
{
    uint8_t raw[BC_RAW_KEY_LEN];
    EVP_PKEY *key = bc_keystore_recording_key(v->keys, key_id);
    if (key == NULL)
        return bc_fail(err, BC_ERR_NOT_FOUND, "recording key %s is not loaded", key_id);
    if (bc_key_raw_public(key, raw) != BC_OK ||
        bc_base64_encode(raw, sizeof(raw), out, BC_KEY_PUBLIC_MAX + 1) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "cannot encode the public half of key %s", key_id);
    return BC_OK;
}

/* ---- audit ---- */

/* key_created or key_adopted, then its seq into the record. */
static bc_status audit_key(vault *v, const bc_key_record *k)
{
    cJSON *d = cJSON_CreateObject();
    if (d == NULL)
        return BC_ERR_NOMEM;
    bool ok = cJSON_AddStringToObject(d, "public", k->public_b64) != NULL &&
              cJSON_AddStringToObject(d, "status", bc_key_status_name(k->status)) != NULL;
    if (ok && !k->adopted)
        ok = cJSON_AddStringToObject(d, "campaign", k->campaign) != NULL &&
             cJSON_AddStringToObject(d, "by", k->created_by) != NULL &&
             cJSON_AddStringToObject(d, "replaced", k->replaced) != NULL;
    char subject[KEY_SUBJECT_MAX];
    key_subject(k->key_id, subject);
    uint64_t seq = 0;
    bc_status st = ok ? BC_OK : BC_ERR_NOMEM;
    if (st == BC_OK)
        st = vault_audit(v, k->adopted ? "key_adopted" : "key_created", subject, d, &seq);
    cJSON_Delete(d);
    if (st != BC_OK)
        return st;
    bc_error err;
    bc_error_clear(&err);
    if ((st = bc_catalog_recording_key_audited(&v->cmd, k->key_id, false, seq, &err)) != BC_OK)
        vault_redis_failed(v, "catalog", &err);
    return st;
}

/* ---- making a key for a campaign ---- */

/* The key this campaign gets: a pending one (made before, its record
 * unanswered) or a new one. */
static bc_status key_for(vault *v, const char *campaign, char id[BC_KEY_ID_LEN + 1], bc_error *err)
{
    if (v->pending_key[0] != '\0' && strcmp(v->pending_campaign, campaign) == 0 &&
        bc_keystore_recording_key(v->keys, v->pending_key) != NULL) {
        memcpy(id, v->pending_key, BC_KEY_ID_LEN + 1);
        return BC_OK;
    }
    bc_status st = bc_keystore_create_recording_key(v->keys, id, err);
    if (st != BC_OK)
        return st;
    log_info("keys | key_made | key_id=%s campaign=%s (encrypted at rest)", id, campaign);
    snprintf(v->pending_key, sizeof(v->pending_key), "%s", id);
    snprintf(v->pending_campaign, sizeof(v->pending_campaign), "%s", campaign);
    return BC_OK;
}

/* Makes (or takes the pending) key and records it as the campaign's; k is
 * the campaign's key afterwards. */
static bc_status make_key(vault *v, const char *campaign, const char *by, bc_key_record *k,
                          bc_error *err)
{
    char id[BC_KEY_ID_LEN + 1], pub[BC_KEY_PUBLIC_MAX + 1];
    bc_status st = key_for(v, campaign, id, err);
    if (st == BC_OK)
        st = public_of(v, id, pub, err);
    if (st != BC_OK)
        return st;
    bool created = false;
    st = bc_catalog_recording_key_record(&v->cmd, id, pub, campaign, by, bc_clock_now_ms(), k,
                                         &created, err);
    if (st != BC_OK)
        return st; /* stays pending: the retry records the same key */
    v->pending_key[0] = '\0';
    v->pending_campaign[0] = '\0';
    if (created) {
        v->stats.keys_created++;
        log_info("keys | key_current | key_id=%s campaign=%s replaced=%s", k->key_id, campaign,
                 k->replaced[0] ? k->replaced : "-");
        return BC_OK;
    }
    if (strcmp(k->key_id, id) == 0)
        return BC_OK; /* the script ran before; its answer was lost */
    log_warnx("keys | key_unused | key_id=%s campaign=%s (the campaign has key %s already; "
              "shredding the unused one)",
              id, campaign, k->key_id);
    bc_error serr;
    if (bc_keystore_destroy_recording_key(v->keys, id, &serr) != BC_OK)
        log_errorx("keys | shred_failed | key_id=%s reason=%s", id, serr.text);
    return BC_OK;
}

/* A failed step: DROP what can never succeed (logged), RETRY the rest
 * (Redis, the disk or the audit log may come back). */
static bc_stream_verdict failed(vault *v, const char *campaign, bc_status st, const bc_error *err)
{
    if (st == BC_ERR_NOT_FOUND || st == BC_ERR_INVAL || st == BC_ERR_PARSE) {
        log_errorx("keys | request_dropped | campaign=%s reason=%s", campaign, err->text);
        return BC_STREAM_DROP;
    }
    if (st == BC_ERR_UNAVAILABLE)
        vault_redis_failed(v, "vault-control", err);
    else
        log_errorx("keys | request_failed | campaign=%s reason=%s (tried again)", campaign,
                   err->text);
    return BC_STREAM_RETRY;
}

static bc_stream_verdict new_key_request(vault *v, const char *campaign, const char *by)
{
    bc_error err;
    bc_error_clear(&err);
    char have[BC_ID_MAX + 1] = "";
    bc_status st = bc_campaign_key_of(&v->cmd, campaign, have, sizeof(have), &err);
    if (st != BC_OK)
        return failed(v, campaign, st, &err);
    if (have[0] != '\0') {
        log_info("keys | request_answered | campaign=%s key_id=%s (it has its key)", campaign,
                 have);
        return BC_STREAM_DONE;
    }
    bc_key_record k;
    st = bc_catalog_recording_key_of_campaign(&v->cmd, campaign, &k, &err);
    if (st == BC_ERR_NOT_FOUND) {
        bc_error_clear(&err);
        st = make_key(v, campaign, by, &k, &err);
    }
    if (st != BC_OK)
        return failed(v, campaign, st, &err);
    if (k.audit_seq == 0 && audit_key(v, &k) != BC_OK)
        return BC_STREAM_RETRY; /* nothing goes on unaudited */
    bool already = false;
    st = bc_campaign_key_ready(&v->cmd, campaign, k.key_id, bc_clock_now_ms(), &already, &err);
    if (st == BC_ERR_UNAVAILABLE)
        return failed(v, campaign, st, &err);
    if (st != BC_OK) {
        log_warnx("keys | campaign_not_started | campaign=%s key_id=%s reason=%s", campaign,
                  k.key_id, err.text);
        return BC_STREAM_DONE;
    }
    log_info("keys | campaign_key_ready | campaign=%s key_id=%s%s", campaign, k.key_id,
             already ? " (it had one)" : "");
    return BC_STREAM_DONE;
}

/* Copies a field of the entry into out[size]; false when missing, too
 * long or holding a NUL. */
static bool field_copy(const bc_stream_entry *e, const char *name, char *out, size_t size)
{
    size_t len = 0;
    const char *s = bc_stream_entry_field(e, name, &len);
    if (s == NULL || len >= size || memchr(s, '\0', len) != NULL)
        return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

bc_stream_verdict vault_keys_control_entry(const bc_stream_entry *entry, void *userdata)
{
    vault *v = userdata;
    char op[32], campaign[BC_CAMPAIGN_ID_MAX + 1], by[BC_CATALOG_TEXT_MAX + 1];
    if (!field_copy(entry, "op", op, sizeof(op))) {
        log_warnx("keys | control_dropped | id=%s reason=no op", entry->id);
        return BC_STREAM_DROP;
    }
    if (strcmp(op, CONTROL_OP_NEW_KEY) != 0) {
        log_warnx("keys | control_dropped | id=%s op=%s reason=unknown op", entry->id, op);
        return BC_STREAM_DROP;
    }
    if (!field_copy(entry, "campaign", campaign, sizeof(campaign)) || !bc_id_valid(campaign)) {
        log_warnx("keys | control_dropped | id=%s reason=no valid campaign id", entry->id);
        return BC_STREAM_DROP;
    }
    if (!field_copy(entry, "by", by, sizeof(by)) || !bc_catalog_text_valid(by))
        snprintf(by, sizeof(by), "unknown"); /* who asked is recorded, not checked */
    return new_key_request(v, campaign, by);
}

/* ---- adoption at start ---- */

static bool note_adopted(const bc_key_record *k, void *userdata)
{
    (void)userdata;
    log_info("keys | key_adopted | key_id=%s status=%s (found in the keystore)", k->key_id,
             bc_key_status_name(k->status));
    return true;
}

typedef struct key_list {
    bc_key_record *items;
    size_t n, cap;
    bool overflow;
} key_list;

static bool collect_key(const bc_key_record *k, void *userdata)
{
    key_list *l = userdata;
    if (l->n == l->cap) {
        size_t cap = l->cap == 0 ? 8 : l->cap * 2;
        bc_key_record *p = realloc(l->items, cap * sizeof(*p));
        if (p == NULL) {
            l->overflow = true;
            return false;
        }
        l->items = p;
        l->cap = cap;
    }
    l->items[l->n++] = *k;
    return true;
}

static bc_status keys_list(vault *v, key_list *l)
{
    memset(l, 0, sizeof(*l));
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_catalog_recording_keys_list(&v->cmd, collect_key, l, &err);
    if (st != BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        return st;
    }
    if (l->overflow) {
        log_errorx("keys | list_failed | reason=no memory for %zu key records", l->n);
        return BC_ERR_NOMEM;
    }
    return BC_OK;
}

/* Audits adopted keys not audited yet and says what the keystore lacks. */
static bc_status keys_check(vault *v)
{
    key_list l;
    bc_status st = keys_list(v, &l);
    for (size_t i = 0; st == BC_OK && i < l.n; i++) {
        const bc_key_record *k = &l.items[i];
        bool loaded = bc_keystore_recording_key(v->keys, k->key_id) != NULL;
        if (k->adopted && k->audit_seq == 0)
            st = audit_key(v, k);
        if (k->status == BC_KEY_CURRENT && !loaded)
            log_errorx("keys | current_missing | key_id=%s (the current recording key is not in "
                       "the keystore: uploads sealed for it cannot be verified)",
                       k->key_id);
        else if (k->status == BC_KEY_RETIRED && !loaded && !k->destroying)
            log_warnx("keys | retired_missing | key_id=%s (not in the keystore)", k->key_id);
    }
    free(l.items);
    return st;
}

bc_status vault_keys_adopt(vault *v)
{
    size_t n = bc_keystore_recording_key_count(v->keys);
    const char **ids = calloc(n + 1, sizeof(*ids));
    const char **pubs = calloc(n + 1, sizeof(*pubs));
    char(*pub)[BC_KEY_PUBLIC_MAX + 1] = calloc(n + 1, sizeof(*pub));
    bc_error err;
    bc_error_clear(&err);
    bc_status st = BC_ERR_NOMEM;
    if (ids == NULL || pubs == NULL || pub == NULL)
        goto cleanup;
    for (size_t i = 0; i < n; i++) {
        ids[i] = bc_keystore_recording_key_id(v->keys, i);
        pubs[i] = pub[i];
        if ((st = public_of(v, ids[i], pub[i], &err)) != BC_OK) {
            log_errorx("keys | adopt_failed | reason=%s", err.text);
            goto cleanup;
        }
    }
    size_t left = 0;
    st = bc_catalog_recording_keys_adopt(&v->cmd, ids, pubs, n, bc_clock_now_ms(), note_adopted,
                                         NULL, &left, &err);
    if (st != BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        goto cleanup;
    }
    if (left > 0)
        log_warnx("keys | keys_unrecorded | count=%zu (no current key is recorded and the "
                  "keystore holds several: none is guessed current; rotate the recording key)",
                  left);
    st = keys_check(v);

cleanup:
    free(ids);
    free(pubs);
    free(pub);
    return st;
}

void vault_keys_poll(vault *v)
{
    if (!v->keys_adopted) {
        if (vault_keys_adopt(v) != BC_OK)
            return;
        v->keys_adopted = true;
    }
    for (int i = 0; i < CONTROL_ROUNDS_MAX; i++) {
        uint64_t before = v->control.stats.delivered;
        bc_error err;
        bc_error_clear(&err);
        if (bc_stream_consumer_poll(&v->control, &err) != BC_OK) {
            vault_redis_failed(v, BC_VAULT_CONTROL_STREAM, &err);
            return;
        }
        if (v->control.stats.delivered == before)
            return;
    }
}

/* ---- crypto-shredding ---- */

/* The key ids staged recordings are sealed for: the manifest's, else the
 * data file's header (chunks before their manifest). A staged recording
 * with neither names no key; it cannot be one a camera still needs opened:
 * such a camera reports it among its pending uploads, which keeps every
 * retired key (bc_catalog_recording_key_destroy_begin). */
typedef struct staged_keys {
    vault_ready *items;
    size_t n, cap;
    bool overflow;
    char (*ids)[BC_ID_MAX + 1];
    size_t nids;
} staged_keys;

static bool collect_staged(const char *device, const char *recording_id, void *userdata)
{
    staged_keys *s = userdata;
    if (s->n == s->cap) {
        size_t cap = s->cap == 0 ? 64 : s->cap * 2;
        vault_ready *p = realloc(s->items, cap * sizeof(*p));
        if (p == NULL) {
            s->overflow = true;
            return false;
        }
        s->items = p;
        s->cap = cap;
    }
    vault_ready *it = &s->items[s->n++];
    snprintf(it->device, sizeof(it->device), "%s", device);
    snprintf(it->recording_id, sizeof(it->recording_id), "%s", recording_id);
    return true;
}

static bool staged_key_of(vault *v, const vault_ready *it, char key_id[BC_ID_MAX + 1])
{
    bc_staging_status s;
    bc_error err;
    if (bc_staging_status_of(v->staging, it->device, it->recording_id, &s, &err) == BC_OK &&
        s.has_manifest) {
        snprintf(key_id, BC_ID_MAX + 1, "%s", s.manifest.key_id);
        return true;
    }
    char path[1024];
    bc_recording_header hdr;
    if (bc_staging_data_path(v->staging, it->device, it->recording_id, path, sizeof(path), &err) !=
            BC_OK ||
        bc_recording_info_read(path, &hdr, &err) != BC_OK)
        return false;
    snprintf(key_id, BC_ID_MAX + 1, "%s", hdr.key_id);
    return true;
}

/* Fills s->ids; false when the staging area could not be read whole. */
static bool staged_keys_read(vault *v, staged_keys *s)
{
    bc_error err;
    bc_error_clear(&err);
    if (bc_staging_list(v->staging, collect_staged, s, &err) != BC_OK || s->overflow) {
        log_errorx("keys | staging_unreadable | reason=%s (no key destroyed this pass)",
                   s->overflow ? "no memory" : err.text);
        return false;
    }
    s->ids = calloc(s->n + 1, sizeof(*s->ids));
    if (s->ids == NULL)
        return false;
    for (size_t i = 0; i < s->n; i++) {
        if (staged_key_of(v, &s->items[i], s->ids[s->nids]))
            s->nids++;
    }
    return true;
}

static bool staged_for(const staged_keys *s, const char *key_id)
{
    for (size_t i = 0; i < s->nids; i++) {
        if (strcmp(s->ids[i], key_id) == 0)
            return true;
    }
    return false;
}

static void destroy_key(vault *v, const bc_key_record *k)
{
    bc_error err;
    bc_error_clear(&err);
    char subject[KEY_SUBJECT_MAX];
    key_subject(k->key_id, subject);
    if (k->destroy_audit_seq == 0) {
        cJSON *d = cJSON_CreateObject();
        bool ok = d != NULL &&
                  cJSON_AddNumberToObject(d, "created_at", (double)k->created_at) != NULL &&
                  cJSON_AddNumberToObject(d, "retired_at", (double)k->retired_at) != NULL &&
                  cJSON_AddStringToObject(d, "campaign", k->campaign) != NULL &&
                  cJSON_AddStringToObject(d, "deleted",
                                          "recording private key (overwritten, "
                                          "unlinked)") != NULL;
        uint64_t seq = 0;
        bc_status st = ok ? vault_audit(v, "key_destroyed", subject, d, &seq) : BC_ERR_NOMEM;
        cJSON_Delete(d);
        if (st != BC_OK)
            return; /* nothing is destroyed unaudited */
        if (bc_catalog_recording_key_audited(&v->cmd, k->key_id, true, seq, &err) != BC_OK) {
            vault_redis_failed(v, "catalog", &err);
            return;
        }
    }
    if (bc_keystore_destroy_recording_key(v->keys, k->key_id, &err) != BC_OK) {
        log_errorx("keys | destroy_failed | key_id=%s reason=%s (tried again next pass)", k->key_id,
                   err.text);
        return;
    }
    if (bc_catalog_recording_key_destroyed(&v->cmd, k->key_id, bc_clock_now_ms(), NULL, &err) !=
        BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        return;
    }
    v->stats.keys_destroyed++;
    log_info("keys | key_destroyed | key_id=%s retired_at=%" PRId64, k->key_id, k->retired_at);
}

static void shred_one(vault *v, const bc_key_record *k, const staged_keys *s)
{
    if (!k->destroying && staged_for(s, k->key_id)) {
        log_debug("keys | key_kept | key_id=%s reason=a staged recording is sealed for it",
                  k->key_id);
        return;
    }
    bc_key_record now;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = bc_catalog_recording_key_destroy_begin(&v->cmd, k->key_id, &now, &err);
    if (st == BC_ERR_STATE) {
        log_debug("keys | key_kept | key_id=%s reason=%s", k->key_id, err.text);
        return;
    }
    if (st != BC_OK) {
        vault_redis_failed(v, "catalog", &err);
        return;
    }
    destroy_key(v, &now);
}

void vault_keys_shred_pass(vault *v)
{
    if (!v->keys_adopted)
        return;
    bc_error err;
    bc_error_clear(&err);
    if (!v->key_index_built) {
        bool built = false;
        if (bc_catalog_key_index_build(&v->cmd, &built, &err) != BC_OK) {
            vault_redis_failed(v, "catalog", &err);
            return;
        }
        if (built)
            log_info("keys | key_index_built | from the catalog's time index (once)");
        v->key_index_built = true;
    }
    key_list l;
    if (keys_list(v, &l) != BC_OK)
        return;
    staged_keys s;
    memset(&s, 0, sizeof(s));
    bool any = false;
    for (size_t i = 0; i < l.n && !any; i++)
        any = l.items[i].status == BC_KEY_RETIRED;
    if (any && staged_keys_read(v, &s)) {
        for (size_t i = 0; i < l.n; i++) {
            if (l.items[i].status == BC_KEY_RETIRED)
                shred_one(v, &l.items[i], &s);
        }
    }
    free(s.items);
    free(s.ids);
    free(l.items);
}
