/*
 * registry_admin.c - the registry's writers (contract in registry_admin.h).
 *
 * A change is read-modify-write of one device hash, so it runs as
 *
 *   WATCH key; HGET status, fingerprints; (decide)
 *   MULTI; HSET ...; SADD/SREM ...; INCR version; EXEC
 *
 * and EXEC answering nil (the key changed after WATCH) starts it again.
 * A decision that needs no write ends with UNWATCH. Any failure between
 * MULTI and EXEC DISCARDs, so a connection is never left in a transaction.
 */
#include "registry_admin.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>

#include "common/ca.h"
#include "proto/encoding.h"
#include "proto/topic.h"

_Static_assert(BC_REGISTRY_FP_HEX_LEN == BC_CERT_FINGERPRINT_LEN,
               "the registry keeps the CA's fingerprints");

#define KEY_MAX (sizeof(BC_REGISTRY_KEY_DASHBOARD) + BC_DASHBOARD_USER_MAX + 1)
#define STATUS_MAX 32

/* ---- Redis ---- */

/* Runs one command of NUL-terminated arguments; *out (may be NULL) gets
 * the reply, else it is freed. */
static bc_status run(bc_redis *r, redisReply **out, int argc, const char **argv, bc_error *err)
{
    redisReply *reply = NULL;
    bc_status rc = bc_redis_command(r, argc, argv, NULL, &reply, err);
    if (rc != BC_OK)
        return rc;
    if (out != NULL)
        *out = reply;
    else
        freeReplyObject(reply);
    return BC_OK;
}

#define RUN(r, out, err, ...)                                                                      \
    run(r, out, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),               \
        (const char *[]){__VA_ARGS__}, err)

/* EXEC: BC_OK with *committed, or the failure (an error inside counts). */
static bc_status exec_transaction(bc_redis *r, bool *committed, bc_error *err)
{
    redisReply *reply = NULL;
    bc_status rc = RUN(r, &reply, err, "EXEC");
    if (rc != BC_OK)
        return rc;
    *committed = reply->type == REDIS_REPLY_ARRAY;
    if (reply->type != REDIS_REPLY_ARRAY && reply->type != REDIS_REPLY_NIL)
        rc = bc_fail(err, BC_ERR_STATE, "redis EXEC: unexpected reply");
    for (size_t i = 0; rc == BC_OK && *committed && i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_ERROR)
            rc = bc_fail(err, BC_ERR_STATE, "redis: %s", reply->element[i]->str);
    }
    freeReplyObject(reply);
    return rc;
}

/* After a failure inside MULTI: leave the transaction (best effort). */
static void discard(bc_redis *r)
{
    (void)RUN(r, NULL, NULL, "DISCARD");
}

static void unwatch(bc_redis *r)
{
    (void)RUN(r, NULL, NULL, "UNWATCH");
}

/* HGET into out ("" when absent). */
static bc_status read_field(bc_redis *r, const char *key, const char *field, char *out, size_t size,
                            bc_error *err)
{
    redisReply *reply = NULL;
    bc_status rc = RUN(r, &reply, err, "HGET", key, field);
    if (rc != BC_OK)
        return rc;
    out[0] = '\0';
    if (reply->type == REDIS_REPLY_STRING) {
        if (reply->len >= size)
            rc = bc_fail(err, BC_ERR_TOO_BIG, "%s %s is too long", key, field);
        else
            memcpy(out, reply->str, reply->len + 1);
    } else if (reply->type != REDIS_REPLY_NIL) {
        rc = bc_fail(err, BC_ERR_STATE, "%s %s has the wrong type", key, field);
    }
    freeReplyObject(reply);
    return rc;
}

static bc_status device_key(char *out, size_t size, const char *id, bc_error *err)
{
    if (!bc_device_id_valid(id))
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a device id ([a-z0-9][a-z0-9_-]{0,31})",
                       id ? id : "(null)");
    snprintf(out, size, BC_REGISTRY_KEY_DEVICE "%s", id);
    return BC_OK;
}

/* ---- fingerprints ---- */

bc_status bc_registry_admin_cert_fingerprint(const char *pem_path,
                                             char hex[BC_REGISTRY_FP_HEX_LEN + 1], bc_error *err)
{
    X509 *cert = NULL;
    bc_status rc = bc_ca_load_cert(pem_path, &cert, err);
    if (rc != BC_OK)
        return rc;
    if (bc_ca_fingerprint(cert, hex) != BC_OK)
        rc = bc_fail(err, BC_ERR_CRYPTO, "cannot hash the certificate in %s", pem_path);
    X509_free(cert);
    return rc;
}

/* The canonical (lowercase) form of a fingerprint argument. */
static bc_status normalize_fingerprint(const char *in, char out[BC_REGISTRY_FP_HEX_LEN + 1],
                                       bc_error *err)
{
    uint8_t raw[BC_FINGERPRINT_LEN];
    if (in == NULL || strlen(in) != BC_REGISTRY_FP_HEX_LEN ||
        bc_hex_decode(in, raw, sizeof(raw)) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL, "a fingerprint is %d hex digits", BC_REGISTRY_FP_HEX_LEN);
    return bc_hex_encode(raw, sizeof(raw), out, BC_REGISTRY_FP_HEX_LEN + 1);
}

/* Edits a comma list: adds hex (when add) unless present, or removes it. */
static bc_status edit_list(const char *list, const char *hex, bool add, char *out, size_t size,
                           bool *changed, bc_error *err)
{
    char copy[BC_REGISTRY_FP_LIST_MAX + 1];
    snprintf(copy, sizeof(copy), "%s", list);
    out[0] = '\0';
    *changed = false;
    int count = 0;
    bool present = false;
    char *save = NULL;
    for (char *fp = strtok_r(copy, ",", &save); fp; fp = strtok_r(NULL, ",", &save)) {
        if (strcasecmp(fp, hex) == 0) {
            present = true;
            if (!add) {
                *changed = true;
                continue;
            }
        }
        snprintf(out + strlen(out), size - strlen(out), "%s%s", count ? "," : "", fp);
        count++;
    }
    if (add && !present) {
        if (count >= BC_REGISTRY_MAX_FINGERPRINTS)
            return bc_fail(err, BC_ERR_TOO_BIG,
                           "the device already has %d fingerprints; remove one first",
                           BC_REGISTRY_MAX_FINGERPRINTS);
        snprintf(out + strlen(out), size - strlen(out), "%s%s", count ? "," : "", hex);
        *changed = true;
    }
    return BC_OK;
}

/* ---- device changes ---- */

typedef struct device_state {
    char status[STATUS_MAX];
    char fingerprints[BC_REGISTRY_FP_LIST_MAX + 1];
} device_state;

/* What a change wants written, decided from the state read under WATCH. */
typedef struct device_edit {
    const char *hex;        /* fingerprint to add or remove, or NULL */
    bool add;               /* add (creating the device) or remove hex */
    const char *new_status; /* status to set, or NULL */
} device_edit;

static bc_status read_device(bc_redis *r, const char *key, device_state *s, bc_error *err)
{
    bc_status rc = read_field(r, key, BC_REGISTRY_FIELD_STATUS, s->status, sizeof(s->status), err);
    if (rc == BC_OK)
        rc = read_field(r, key, BC_REGISTRY_FIELD_FINGERPRINTS, s->fingerprints,
                        sizeof(s->fingerprints), err);
    return rc;
}

static bc_status write_device(bc_redis *r, const char *key, const char *id, const char *status,
                              const char *fingerprints, bool *committed, bc_error *err)
{
    bc_status rc = RUN(r, NULL, err, "MULTI");
    if (rc != BC_OK)
        return rc;
    rc = RUN(r, NULL, err, "HSET", key, BC_REGISTRY_FIELD_STATUS, status,
             BC_REGISTRY_FIELD_FINGERPRINTS, fingerprints);
    if (rc == BC_OK)
        rc = RUN(r, NULL, err, "SADD", BC_REGISTRY_KEY_DEVICES, id);
    if (rc == BC_OK)
        rc = RUN(r, NULL, err, "INCR", BC_REGISTRY_KEY_VERSION);
    if (rc != BC_OK) {
        discard(r);
        return rc;
    }
    return exec_transaction(r, committed, err);
}

/* One attempt: decide under WATCH, then write. *committed false = retry. */
static bc_status device_attempt(bc_redis *r, const char *key, const char *id, const device_edit *e,
                                bc_registry_change *out, bool *committed, bc_error *err)
{
    device_state s;
    char next[BC_REGISTRY_FP_LIST_MAX + 1];
    bool changed = false;
    bc_status rc = RUN(r, NULL, err, "WATCH", key);
    if (rc == BC_OK)
        rc = read_device(r, key, &s, err);
    if (rc != BC_OK)
        goto unwatch;
    memset(out, 0, sizeof(*out));
    out->existed = s.status[0] != '\0';
    if (out->existed && bc_device_status_parse(s.status, &out->previous) != BC_OK) {
        rc = bc_fail(err, BC_ERR_PARSE, "device %s has an unknown status '%s'", id, s.status);
        goto unwatch;
    }
    if (!out->existed && !(e->hex != NULL && e->add)) {
        rc = bc_fail(err, BC_ERR_NOT_FOUND, "no device '%s' in the registry", id);
        goto unwatch;
    }
    snprintf(next, sizeof(next), "%s", s.fingerprints);
    if (e->hex != NULL) {
        rc = edit_list(s.fingerprints, e->hex, e->add, next, sizeof(next), &changed, err);
        if (rc != BC_OK)
            goto unwatch;
    }
    const char *status = out->existed ? s.status : bc_device_status_name(BC_DEVICE_ACTIVE);
    if (e->new_status != NULL && strcmp(e->new_status, status) != 0) {
        status = e->new_status;
        changed = true;
    }
    changed = changed || !out->existed;
    (void)bc_device_status_parse(status, &out->status);
    snprintf(out->fingerprints, sizeof(out->fingerprints), "%s", next);
    if (!changed) {
        *committed = true;
        goto unwatch;
    }
    rc = write_device(r, key, id, status, next, committed, err);
    out->changed = *committed;
    return rc;
unwatch:
    unwatch(r);
    return rc;
}

static bc_status device_change(bc_redis *r, const char *id, const device_edit *e,
                               bc_registry_change *out, bc_error *err)
{
    char key[KEY_MAX];
    bc_registry_change scratch;
    bc_status rc = device_key(key, sizeof(key), id, err);
    if (rc != BC_OK)
        return rc;
    if (out == NULL)
        out = &scratch;
    for (int attempt = 0; attempt < BC_REGISTRY_ADMIN_RETRIES; attempt++) {
        bool committed = false;
        rc = device_attempt(r, key, id, e, out, &committed, err);
        if (rc != BC_OK || committed)
            return rc;
    }
    return bc_fail(err, BC_ERR_STATE, "device %s kept changing under us; try again", id);
}

bc_status bc_registry_admin_add_fingerprint(bc_redis *r, const char *id, const char *hex,
                                            bc_registry_change *out, bc_error *err)
{
    char norm[BC_REGISTRY_FP_HEX_LEN + 1];
    bc_status rc = normalize_fingerprint(hex, norm, err);
    if (rc != BC_OK)
        return rc;
    device_edit e = {.hex = norm, .add = true};
    return device_change(r, id, &e, out, err);
}

bc_status bc_registry_admin_remove_fingerprint(bc_redis *r, const char *id, const char *hex,
                                               bc_registry_change *out, bc_error *err)
{
    char norm[BC_REGISTRY_FP_HEX_LEN + 1];
    bc_status rc = normalize_fingerprint(hex, norm, err);
    if (rc != BC_OK)
        return rc;
    device_edit e = {.hex = norm, .add = false};
    return device_change(r, id, &e, out, err);
}

bc_status bc_registry_admin_set_status(bc_redis *r, const char *id, bc_device_status status,
                                       bc_registry_change *out, bc_error *err)
{
    device_edit e = {.new_status = bc_device_status_name(status)};
    return device_change(r, id, &e, out, err);
}

/* DEL key, SREM set member, INCR version in one transaction; *existed from DEL. */
static bc_status remove_entry(bc_redis *r, const char *key, const char *set, const char *member,
                              bool *existed, bc_error *err)
{
    redisReply *reply = NULL;
    bc_status rc = RUN(r, NULL, err, "MULTI");
    if (rc != BC_OK)
        return rc;
    rc = RUN(r, NULL, err, "DEL", key);
    if (rc == BC_OK)
        rc = RUN(r, NULL, err, "SREM", set, member);
    if (rc == BC_OK)
        rc = RUN(r, NULL, err, "INCR", BC_REGISTRY_KEY_VERSION);
    if (rc != BC_OK) {
        discard(r);
        return rc;
    }
    rc = RUN(r, &reply, err, "EXEC");
    if (rc != BC_OK)
        return rc;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER)
        rc = bc_fail(err, BC_ERR_STATE, "redis EXEC: unexpected reply");
    else if (existed != NULL)
        *existed = reply->element[0]->integer > 0;
    freeReplyObject(reply);
    return rc;
}

bc_status bc_registry_admin_remove_device(bc_redis *r, const char *id, bool *existed, bc_error *err)
{
    char key[KEY_MAX];
    bc_status rc = device_key(key, sizeof(key), id, err);
    if (rc != BC_OK)
        return rc;
    return remove_entry(r, key, BC_REGISTRY_KEY_DEVICES, id, existed, err);
}

bc_status bc_registry_admin_device_get(bc_redis *r, const char *id, bc_registry_device *out,
                                       bc_error *err)
{
    char key[KEY_MAX];
    device_state s;
    bc_status rc = device_key(key, sizeof(key), id, err);
    if (rc == BC_OK)
        rc = read_device(r, key, &s, err);
    if (rc != BC_OK)
        return rc;
    if (s.status[0] == '\0')
        return bc_fail(err, BC_ERR_NOT_FOUND, "no device '%s' in the registry", id);
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", id);
    if (bc_device_status_parse(s.status, &out->status) != BC_OK)
        return bc_fail(err, BC_ERR_PARSE, "device %s has an unknown status '%s'", id, s.status);
    bc_error e = {{0}};
    if (bc_registry_parse_fingerprints(s.fingerprints, out->fingerprints, &out->fingerprint_count,
                                       &e) != BC_OK)
        return bc_fail(err, BC_ERR_PARSE, "device %s: %s", id, e.text);
    return BC_OK;
}

/* ---- dashboard users ---- */

bool bc_registry_admin_user_valid(const char *name)
{
    return name != NULL && bc_id_valid(name) && strlen(name) <= BC_DASHBOARD_USER_MAX;
}

static bc_status user_key(char *out, size_t size, const char *name, bc_error *err)
{
    if (!bc_registry_admin_user_valid(name))
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a user name ([A-Za-z0-9_-]{1,64})",
                       name ? name : "(null)");
    snprintf(out, size, BC_REGISTRY_KEY_DASHBOARD "%s", name);
    return BC_OK;
}

bc_status bc_registry_admin_dashboard_set(bc_redis *r, const char *name, const char *hash,
                                          bc_error *err)
{
    char key[KEY_MAX];
    bool committed = false;
    bc_status rc = user_key(key, sizeof(key), name, err);
    if (rc != BC_OK)
        return rc;
    rc = RUN(r, NULL, err, "MULTI");
    if (rc != BC_OK)
        return rc;
    rc = RUN(r, NULL, err, "HSET", key, BC_REGISTRY_FIELD_HASH, hash);
    if (rc == BC_OK)
        rc = RUN(r, NULL, err, "SADD", BC_REGISTRY_KEY_DASHBOARDS, name);
    if (rc == BC_OK)
        rc = RUN(r, NULL, err, "INCR", BC_REGISTRY_KEY_VERSION);
    if (rc != BC_OK) {
        discard(r);
        return rc;
    }
    rc = exec_transaction(r, &committed, err);
    if (rc == BC_OK && !committed)
        rc = bc_fail(err, BC_ERR_STATE, "redis aborted the transaction");
    return rc;
}

bc_status bc_registry_admin_dashboard_remove(bc_redis *r, const char *name, bool *existed,
                                             bc_error *err)
{
    char key[KEY_MAX];
    bc_status rc = user_key(key, sizeof(key), name, err);
    if (rc != BC_OK)
        return rc;
    return remove_entry(r, key, BC_REGISTRY_KEY_DASHBOARDS, name, existed, err);
}
