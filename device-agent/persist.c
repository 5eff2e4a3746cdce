/*
 * persist.c - state.json: encode with cJSON, write with the durable writer,
 * load with every field checked.
 *
 * Load is strict on purpose: a camera that silently "repaired" a damaged
 * state file could reuse event seqs or session numbers, which the backend
 * would take for replays or lost messages. So a damaged file is reported
 * (BC_ERR_PARSE, naming the field) and left where it is; the caller decides
 * whether to quarantine it and continue from other evidence (the outbox).
 * Only a missing file means "a fresh camera".
 */
#include "device-agent/persist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/file.h"

#define PERSIST_VERSION 1

void bc_persist_defaults(bc_persist_state *st, int64_t now_ms)
{
    memset(st, 0, sizeof(*st));
    st->state = BC_SM_STANDBY;
    st->next_seq = 1;
    st->since_ms = now_ms;
}

static bc_status state_path(const char *data_dir, char *out, size_t size, bc_error *err)
{
    int n = snprintf(out, size, "%s/%s", data_dir, BC_PERSIST_FILE);
    if (n < 0 || (size_t)n >= size)
        return bc_fail(err, BC_ERR_TOO_BIG, "data directory path '%s' is too long", data_dir);
    return BC_OK;
}

/* The rules shared by load and save; fills err naming the field. */
static bc_status check_state(const bc_persist_state *st, const char *where, bc_error *err)
{
    if ((unsigned)st->state >= BC_SM_STATE_COUNT)
        return bc_fail(err, BC_ERR_INVAL, "%s: field 'state' is not a camera state", where);
    int lo = st->state == BC_SM_WARNING ? 1 : 0;
    int hi = st->state == BC_SM_WARNING || st->state == BC_SM_RECORDING ? 2 : 0;
    if (st->warnings < lo || st->warnings > hi)
        return bc_fail(err, BC_ERR_INVAL,
                       "%s: field 'warnings' is %d, which state '%s' cannot have (%d..%d)", where,
                       st->warnings, bc_sm_state_name(st->state), lo, hi);
    if (st->emergency && st->state != BC_SM_RECORDING)
        return bc_fail(err, BC_ERR_INVAL, "%s: field 'emergency' is set outside a recording",
                       where);
    if (st->recording_id[0] != '\0' && !bc_id_valid(st->recording_id))
        return bc_fail(err, BC_ERR_INVAL, "%s: field 'recording_id' is not a valid id", where);
    if (st->next_seq < 1 || st->next_seq > (uint64_t)BC_PERSIST_INT_MAX)
        return bc_fail(err, BC_ERR_INVAL, "%s: field 'next_seq' is out of range", where);
    if (st->session > (uint64_t)BC_PERSIST_INT_MAX)
        return bc_fail(err, BC_ERR_INVAL, "%s: field 'session' is out of range", where);
    if (st->since_ms < 0 || st->since_ms > BC_PERSIST_INT_MAX)
        return bc_fail(err, BC_ERR_INVAL, "%s: field 'since_ms' is out of range", where);
    return BC_OK;
}

bc_status bc_persist_save(const char *data_dir, const bc_persist_state *st, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = state_path(data_dir, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    rc = check_state(st, "state to save", err);
    if (rc != BC_OK)
        return rc;

    char *text = NULL, *line = NULL;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to encode '%s'", path);
        goto cleanup;
    }
    /* cJSON_Add*ToObject return NULL on failure; the tree owns what they add. */
    if (cJSON_AddNumberToObject(root, "v", PERSIST_VERSION) == NULL ||
        cJSON_AddStringToObject(root, "state", bc_sm_state_name(st->state)) == NULL ||
        cJSON_AddNumberToObject(root, "warnings", st->warnings) == NULL ||
        cJSON_AddBoolToObject(root, "emergency", st->emergency) == NULL ||
        cJSON_AddStringToObject(root, "recording_id", st->recording_id) == NULL ||
        cJSON_AddNumberToObject(root, "next_seq", (double)st->next_seq) == NULL ||
        cJSON_AddNumberToObject(root, "session", (double)st->session) == NULL ||
        cJSON_AddNumberToObject(root, "since_ms", (double)st->since_ms) == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to encode '%s'", path);
        goto cleanup;
    }
    text = cJSON_PrintUnformatted(root);
    if (text == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to encode '%s'", path);
        goto cleanup;
    }
    /* One line with a newline, so `cat state.json` reads well. */
    size_t len = strlen(text);
    line = malloc(len + 2);
    if (line == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to encode '%s'", path);
        goto cleanup;
    }
    memcpy(line, text, len);
    line[len] = '\n';
    line[len + 1] = '\0';
    rc = bc_file_write_durable(path, line, len + 1, 0600, err);

cleanup:
    free(line);
    cJSON_free(text);
    cJSON_Delete(root);
    return rc;
}

/* Reads an integer field in [min, max]; BC_ERR_PARSE naming it otherwise. */
static bc_status get_int(const cJSON *root, const char *path, const char *name, int64_t min,
                         int64_t max, int64_t *out, bc_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (item == NULL)
        return bc_fail(err, BC_ERR_PARSE, "'%s': field '%s' is missing", path, name);
    if (!cJSON_IsNumber(item))
        return bc_fail(err, BC_ERR_PARSE, "'%s': field '%s' is not a number", path, name);
    double d = item->valuedouble;
    /* NaN fails the range test; in range, the cast is exact for integers */
    if (!(d >= (double)min && d <= (double)max) || (double)(int64_t)d != d)
        return bc_fail(err, BC_ERR_PARSE, "'%s': field '%s' is not an integer in %lld..%lld", path,
                       name, (long long)min, (long long)max);
    *out = (int64_t)d;
    return BC_OK;
}

static bc_status get_string(const cJSON *root, const char *path, const char *name, const char **out,
                            bc_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (item == NULL)
        return bc_fail(err, BC_ERR_PARSE, "'%s': field '%s' is missing", path, name);
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return bc_fail(err, BC_ERR_PARSE, "'%s': field '%s' is not a string", path, name);
    *out = item->valuestring; /* borrowed from the tree */
    return BC_OK;
}

/* Fills *st from a parsed tree. */
static bc_status decode(const cJSON *root, const char *path, bc_persist_state *st, bc_error *err)
{
    if (!cJSON_IsObject(root))
        return bc_fail(err, BC_ERR_PARSE, "'%s' is not a JSON object", path);
    int64_t v, warnings, next_seq, session, since;
    bc_status rc = get_int(root, path, "v", 0, INT_MAX, &v, err);
    if (rc != BC_OK)
        return rc;
    if (v != PERSIST_VERSION)
        return bc_fail(err, BC_ERR_VERSION, "'%s': version %lld is not supported (expected %d)",
                       path, (long long)v, PERSIST_VERSION);
    const char *state_name, *recording_id;
    if ((rc = get_string(root, path, "state", &state_name, err)) != BC_OK ||
        (rc = get_int(root, path, "warnings", 0, 2, &warnings, err)) != BC_OK ||
        (rc = get_string(root, path, "recording_id", &recording_id, err)) != BC_OK ||
        (rc = get_int(root, path, "next_seq", 1, BC_PERSIST_INT_MAX, &next_seq, err)) != BC_OK ||
        (rc = get_int(root, path, "session", 0, BC_PERSIST_INT_MAX, &session, err)) != BC_OK ||
        (rc = get_int(root, path, "since_ms", 0, BC_PERSIST_INT_MAX, &since, err)) != BC_OK)
        return rc;
    const cJSON *emergency = cJSON_GetObjectItemCaseSensitive(root, "emergency");
    if (emergency == NULL)
        return bc_fail(err, BC_ERR_PARSE, "'%s': field 'emergency' is missing", path);
    if (!cJSON_IsBool(emergency))
        return bc_fail(err, BC_ERR_PARSE, "'%s': field 'emergency' is not a boolean", path);
    if (bc_sm_state_parse(state_name, &st->state) != BC_OK)
        return bc_fail(err, BC_ERR_PARSE, "'%s': field 'state' is not a camera state", path);
    if (strlen(recording_id) > BC_ID_MAX)
        return bc_fail(err, BC_ERR_PARSE, "'%s': field 'recording_id' is too long", path);
    snprintf(st->recording_id, sizeof(st->recording_id), "%s", recording_id);
    st->warnings = (int)warnings;
    st->emergency = cJSON_IsTrue(emergency);
    st->next_seq = (uint64_t)next_seq;
    st->session = (uint64_t)session;
    st->since_ms = since;
    if (check_state(st, path, err) != BC_OK)
        return BC_ERR_PARSE;
    return BC_OK;
}

bc_status bc_persist_load(const char *data_dir, int64_t now_ms, bc_persist_state *out, bool *found,
                          bc_error *err)
{
    bc_persist_defaults(out, now_ms);
    *found = false;
    char path[PATH_MAX];
    bc_status rc = state_path(data_dir, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    char *text = NULL;
    size_t len = 0;
    rc = bc_file_read_all(path, BC_PERSIST_MAX_BYTES, &text, &len, err);
    if (rc == BC_ERR_NOT_FOUND) {
        bc_error_clear(err);
        return BC_OK; /* a fresh camera */
    }
    if (rc != BC_OK)
        return rc;

    bc_persist_state st;
    bc_persist_defaults(&st, now_ms);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (root == NULL) {
        rc = bc_fail(err, BC_ERR_PARSE, "'%s' is not valid JSON (corrupt state file)", path);
        goto cleanup;
    }
    rc = decode(root, path, &st, err);
    if (rc != BC_OK)
        goto cleanup;
    *out = st;
    *found = true;

cleanup:
    cJSON_Delete(root);
    free(text);
    return rc;
}
