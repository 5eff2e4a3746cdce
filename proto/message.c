/*
 * message.c - encode, decode and validate every message of proto/README.md.
 *
 * Each message is described once, by a table of its fields:
 *
 *     { JSON name = struct member, type, offset, range, when required,
 *       when allowed }
 *
 * and three small interpreters walk that table: read (JSON -> struct, type
 * checks), check (struct -> ranges and alphabets) and write (struct ->
 * JSON). Decode is read then check; encode is check then write. Because the
 * same rows drive all three, a field cannot be spelled one way on the way
 * out and another on the way in, nor be range-checked on one side only.
 *
 * Messages whose fields depend on a discriminator (the event's type, the
 * upload's kind, the state, the ack's ok, the alert's kind) have a
 * "variant" function; a row says in which variants it is required and in
 * which it is allowed, as bit masks. The discriminator is always an earlier
 * row than the fields it governs, so decode has read it before it asks.
 * Rows not allowed in the current variant are ignored on decode (like any
 * unknown field) and left out on encode.
 *
 * What a table cannot say - lists, nested objects, owned buffers and rules
 * spanning two fields - is in each message's read_extra / check_extra /
 * write_extra hooks.
 *
 * Upload messages are first offered to a fourth interpreter that reads the
 * rows from bc_json_scan_flat's members instead of a cJSON tree (a chunk is
 * ~44 KB of base64, decoded by the broker plugin, the gateway and the
 * vault: cJSON's copy of it was the largest cost of a decode after the
 * base64 itself). It only ever answers "decoded": on any doubt - not flat,
 * a field missing, of another type or out of range, bad data - it lets go
 * and the cJSON path decodes the text from scratch and reports the reason,
 * so both paths accept the same texts with the same values (unit-tested
 * against each other on mutated chunks).
 */
#include "proto/message.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "proto/encoding.h"
#include "proto/json.h"

/* ------------------------------------------------------------ enum names */

static const char *const conn_status_names[BC_CONN_STATUS_COUNT] = {
    [BC_CONN_ONLINE] = "online",
    [BC_CONN_OFFLINE] = "offline",
};

static const char *const device_state_names[BC_STATE_COUNT] = {
    [BC_STATE_STANDBY] = "standby",     [BC_STATE_WARNING] = "warning",
    [BC_STATE_RECORDING] = "recording", [BC_STATE_DOCKED] = "docked",
    [BC_STATE_UPDATING] = "updating",
};

static const char *const event_type_names[BC_EVENT_TYPE_COUNT] = {
    [BC_EVENT_WARNING_GIVEN] = "warning_given",
    [BC_EVENT_WARNING_EXPIRED] = "warning_expired",
    [BC_EVENT_RECORD_REFUSED] = "record_refused",
    [BC_EVENT_RECORDING_STARTED] = "recording_started",
    [BC_EVENT_RECORDING_STOPPED] = "recording_stopped",
    [BC_EVENT_RECORDING_SEALED] = "recording_sealed",
    [BC_EVENT_RECORDING_DELETED] = "recording_deleted",
    [BC_EVENT_RECEIPT_REFUSED] = "receipt_refused",
    [BC_EVENT_DOCKED] = "docked",
    [BC_EVENT_UNDOCKED] = "undocked",
    [BC_EVENT_TAMPER_DENIED] = "tamper_denied",
    [BC_EVENT_SURVEY] = "survey",
    [BC_EVENT_KEY_INSTALLED] = "key_installed",
    [BC_EVENT_FW_DOWNLOADING] = "fw_downloading",
    [BC_EVENT_FW_INSTALLED] = "fw_installed",
    [BC_EVENT_FW_CONFIRMED] = "fw_confirmed",
    [BC_EVENT_FW_FAILED] = "fw_failed",
    [BC_EVENT_FW_ROLLED_BACK] = "fw_rolled_back",
    [BC_EVENT_FW_REFUSED] = "fw_refused",
};

static const char *const tamper_action_names[BC_TAMPER_ACTION_COUNT] = {
    [BC_TAMPER_VIEW] = "view",
    [BC_TAMPER_DELETE] = "delete",
    [BC_TAMPER_EXPORT] = "export",
};

static const char *const upload_kind_names[BC_UPLOAD_KIND_COUNT] = {
    [BC_UPLOAD_MANIFEST] = "manifest",
    [BC_UPLOAD_CHUNK] = "chunk",
};

static const char *const alert_kind_names[BC_ALERT_KIND_COUNT] = {
    [BC_ALERT_LOW_BATTERY] = "low_battery",
    [BC_ALERT_STORAGE_LOW] = "storage_low",
    [BC_ALERT_OVERHEATING] = "overheating",
    [BC_ALERT_OFFLINE_IN_SHIFT] = "offline_in_shift",
    [BC_ALERT_RECORDING_WITHOUT_WARNINGS] = "recording_without_warnings",
    [BC_ALERT_UPLOAD_OVERDUE] = "upload_overdue",
    [BC_ALERT_REQUEST_OVERDUE] = "request_overdue",
    [BC_ALERT_IDENTITY_REFUSED] = "identity_refused",
    [BC_ALERT_ROLLOUT_HALTED] = "rollout_halted",
};

static const char *const alert_status_names[BC_ALERT_STATUS_COUNT] = {
    [BC_ALERT_RAISED] = "raised",
    [BC_ALERT_CLEARED] = "cleared",
};

static const char *name_at(const char *const *names, int count, int v)
{
    return v >= 0 && v < count ? names[v] : NULL;
}

static int index_of(const char *const *names, int count, const char *name)
{
    for (int i = 0; name != NULL && i < count; i++) {
        if (strcmp(names[i], name) == 0)
            return i;
    }
    return -1;
}

/* The public name/from_name pair of one enum, and an int-typed adapter for
 * the field tables (enum and int are not interchangeable function types). */
#define ENUM_NAMES(type, fn, names, count)                                                         \
    const char *fn##_name(type v)                                                                  \
    {                                                                                              \
        return name_at(names, count, (int)v);                                                      \
    }                                                                                              \
    bc_status fn##_from_name(const char *name, type *out)                                          \
    {                                                                                              \
        int i = index_of(names, count, name);                                                      \
        if (i < 0 || out == NULL)                                                                  \
            return BC_ERR_INVAL;                                                                   \
        *out = (type)i;                                                                            \
        return BC_OK;                                                                              \
    }                                                                                              \
    static const char *fn##_name_int(int v)                                                        \
    {                                                                                              \
        return name_at(names, count, v);                                                           \
    }

ENUM_NAMES(bc_conn_status, bc_conn_status, conn_status_names, BC_CONN_STATUS_COUNT)
ENUM_NAMES(bc_device_state, bc_device_state, device_state_names, BC_STATE_COUNT)
ENUM_NAMES(bc_event_type, bc_event_type, event_type_names, BC_EVENT_TYPE_COUNT)
ENUM_NAMES(bc_tamper_action, bc_tamper_action, tamper_action_names, BC_TAMPER_ACTION_COUNT)
ENUM_NAMES(bc_upload_kind, bc_upload_kind, upload_kind_names, BC_UPLOAD_KIND_COUNT)
ENUM_NAMES(bc_alert_kind, bc_alert_kind, alert_kind_names, BC_ALERT_KIND_COUNT)
ENUM_NAMES(bc_alert_status, bc_alert_status, alert_status_names, BC_ALERT_STATUS_COUNT)

static const char *command_kind_name_int(int v)
{
    return v >= 0 && v < BC_CMD_KIND_COUNT ? bc_command_kind_name((bc_command_kind)v) : NULL;
}

/* Enum members are read and written as int through memcpy. */
_Static_assert(sizeof(bc_device_state) == sizeof(int), "enums are int-sized");
_Static_assert(sizeof(bc_command_kind) == sizeof(int), "enums are int-sized");

/* ------------------------------------------------------------ field rows */

typedef enum field_type {
    F_DEVICE,
    F_ID,
    F_VERSION,
    F_SHA256,
    F_TEXT,
    F_INT,
    F_BOOL,
    F_ENUM
} field_type;

typedef enum need { NEED_NONE, NEED_OPTIONAL, NEED_REQUIRED } need;

typedef struct field {
    const char *name; /* JSON name, the same as the struct member */
    field_type type;
    size_t offset;
    size_t size;                     /* string members: the array size */
    int64_t min, max;                /* F_INT */
    const char *(*enum_name)(int v); /* F_ENUM */
    int enum_count;
    bool has_flag; /* F_INT: a bool member says whether it is present */
    size_t has_offset;
    uint32_t required; /* bit v set: required in variant v */
    uint32_t optional; /* bit v set: allowed in variant v */
} field;

#define ALL UINT32_MAX
#define NONE 0u
#define BIT(v) (1u << (v))
#define NO_VARIANT 31 /* a discriminator out of range: only ALL rows apply */
#define MAXI BC_JSON_INT_MAX

#define F_STR(st, m, t, req, opt)                                                                  \
    {                                                                                              \
        .name = #m, .type = t, .offset = offsetof(st, m), .size = sizeof(((st *)0)->m),            \
        .required = req, .optional = opt                                                           \
    }
#define F_NUM(st, m, lo, hi, req, opt)                                                             \
    {                                                                                              \
        .name = #m, .type = F_INT, .offset = offsetof(st, m), .min = lo, .max = hi,                \
        .required = req, .optional = opt                                                           \
    }
#define F_NUM_HAS(st, m, has, lo, hi, req, opt)                                                    \
    {                                                                                              \
        .name = #m, .type = F_INT, .offset = offsetof(st, m), .min = lo, .max = hi,                \
        .has_flag = true, .has_offset = offsetof(st, has), .required = req, .optional = opt        \
    }
#define F_FLAG(st, m, req, opt)                                                                    \
    {                                                                                              \
        .name = #m, .type = F_BOOL, .offset = offsetof(st, m), .required = req, .optional = opt    \
    }
#define F_ENUMERATED(st, m, fn, count, req, opt)                                                   \
    {                                                                                              \
        .name = #m, .type = F_ENUM, .offset = offsetof(st, m), .enum_name = fn,                    \
        .enum_count = count, .required = req, .optional = opt                                      \
    }

/* A flat text's members (bc_json_scan_flat). */
#define FLAT_MEMBERS_MAX 32

typedef struct flat_doc {
    bc_json_flat_member members[FLAT_MEMBERS_MAX];
    size_t count;
} flat_doc;

typedef struct message_desc {
    const char *name; /* for error sentences */
    size_t max_len;
    const field *fields;
    size_t field_count;
    int (*variant)(const void *body);
    bc_status (*read_extra)(const cJSON *root, void *body, bc_error *err);
    bc_status (*check_extra)(const void *body, bc_error *err);
    /* bc_message_decode_shallow: read instead of read_extra, and then
     * check_extra is not run (NULL: shallow is the same as full). */
    bc_status (*read_shallow)(const cJSON *root, void *body, bc_error *err);
    bc_status (*write_extra)(cJSON *obj, const void *body);
    /* read_extra (or read_shallow) on a flat text; NULL: no flat path */
    bool (*read_flat)(const flat_doc *doc, void *body, bool shallow);
} message_desc;

static const bc_json_flat_member *flat_get(const flat_doc *doc, const char *name)
{
    return bc_json_flat_find(doc->members, doc->count, name);
}

static int clamp_variant(int v, int count)
{
    return v >= 0 && v < count ? v : NO_VARIANT;
}

/* ---------------------------------------------------------------- conn */

static const field conn_fields[] = {
    F_STR(bc_msg_conn, device, F_DEVICE, ALL, NONE),
    F_ENUMERATED(bc_msg_conn, status, bc_conn_status_name_int, BC_CONN_STATUS_COUNT, ALL, NONE),
    F_NUM(bc_msg_conn, session, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_conn, ts, 0, MAXI, ALL, NONE),
    F_STR(bc_msg_conn, fw, F_VERSION, NONE, ALL),
    F_STR(bc_msg_conn, recording_key_id, F_ID, NONE, ALL),
};

/* --------------------------------------------------------------- state */

static int state_variant(const void *body)
{
    return clamp_variant((int)((const bc_msg_state *)body)->state, BC_STATE_COUNT);
}

static const field state_fields[] = {
    F_STR(bc_msg_state, device, F_DEVICE, ALL, NONE),
    F_ENUMERATED(bc_msg_state, state, bc_device_state_name_int, BC_STATE_COUNT, ALL, NONE),
    F_NUM(bc_msg_state, warnings, 0, 2, ALL, NONE),
    F_NUM(bc_msg_state, since, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_state, seq, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_state, ts, 0, MAXI, ALL, NONE),
    F_STR(bc_msg_state, recording_id, F_ID, BIT(BC_STATE_RECORDING), NONE),
};

/* The warning count belongs to the escalation in progress: one or two while
 * warning, what was given before a recording, none otherwise. */
static bc_status state_check(const void *body, bc_error *err)
{
    const bc_msg_state *s = body;
    if (s->state == BC_STATE_WARNING && s->warnings < 1)
        return bc_fail(err, BC_ERR_INVAL, "field 'warnings' must be 1 or 2 in state warning");
    if (s->state != BC_STATE_WARNING && s->state != BC_STATE_RECORDING && s->warnings != 0)
        return bc_fail(err, BC_ERR_INVAL, "field 'warnings' must be 0 in state %s",
                       bc_device_state_name(s->state));
    return BC_OK;
}

/* -------------------------------------------------------------- health */

static const field health_fields[] = {
    F_STR(bc_msg_health, device, F_DEVICE, ALL, NONE),
    F_NUM(bc_msg_health, ts, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_health, battery_pct, 0, 100, ALL, NONE),
    F_FLAG(bc_msg_health, charging, ALL, NONE),
    F_NUM(bc_msg_health, storage_free, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_health, storage_total, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_health, temperature_c, -100, 200, ALL, NONE),
    F_NUM(bc_msg_health, signal_dbm, -200, 0, ALL, NONE),
    F_NUM(bc_msg_health, uptime_s, 0, MAXI, ALL, NONE),
    F_STR(bc_msg_health, fw, F_VERSION, ALL, NONE),
    F_STR(bc_msg_health, recording_key_id, F_ID, NONE, ALL),
    F_NUM(bc_msg_health, pending_uploads, 0, MAXI, ALL, NONE),
};

static bc_status health_read(const cJSON *root, void *body, bc_error *err)
{
    bc_msg_health *h = body;
    const cJSON *list = NULL;
    bc_status rc =
        bc_json_get_array(root, "errors", BC_JSON_OPTIONAL, BC_HEALTH_ERRORS_MAX, &list, err);
    if (rc != BC_OK || list == NULL)
        return rc;
    for (const cJSON *it = list->child; it != NULL; it = it->next) {
        if (!cJSON_IsString(it) || it->valuestring == NULL)
            return bc_fail(err, BC_ERR_TYPE, "field 'errors': item %zu is not a string",
                           h->error_count);
        size_t n = strlen(it->valuestring);
        if (n > BC_HEALTH_ERROR_MAX)
            return bc_fail(err, BC_ERR_INVAL, "field 'errors': item %zu is longer than %d bytes",
                           h->error_count, BC_HEALTH_ERROR_MAX);
        memcpy(h->errors[h->error_count++], it->valuestring, n + 1);
    }
    return BC_OK;
}

static bc_status health_check(const void *body, bc_error *err)
{
    const bc_msg_health *h = body;
    if (h->storage_free > h->storage_total)
        return bc_fail(err, BC_ERR_INVAL, "field 'storage_free' is larger than storage_total");
    if (h->error_count > BC_HEALTH_ERRORS_MAX)
        return bc_fail(err, BC_ERR_INVAL, "field 'errors' has more than %d items",
                       BC_HEALTH_ERRORS_MAX);
    for (size_t i = 0; i < h->error_count; i++) {
        const char *e = h->errors[i];
        if (memchr(e, '\0', sizeof(h->errors[i])) == NULL || e[0] == '\0' || !bc_json_text_valid(e))
            return bc_fail(err, BC_ERR_INVAL, "field 'errors': item %zu is empty or not text", i);
    }
    return BC_OK;
}

static bc_status health_write(cJSON *obj, const void *body)
{
    const bc_msg_health *h = body;
    if (h->error_count == 0)
        return BC_OK;
    cJSON *list = cJSON_CreateArray();
    if (list == NULL)
        return BC_ERR_NOMEM;
    for (size_t i = 0; i < h->error_count; i++) {
        cJSON *s = cJSON_CreateString(h->errors[i]);
        if (s == NULL || !cJSON_AddItemToArray(list, s)) { /* the array owns s once added */
            cJSON_Delete(s);
            cJSON_Delete(list);
            return BC_ERR_NOMEM;
        }
    }
    bc_status rc = bc_json_add_item(obj, "errors", list);
    if (rc != BC_OK)
        cJSON_Delete(list);
    return rc;
}

/* --------------------------------------------------------------- event */

#define EV(t) BIT(BC_EVENT_##t)
#define EV_WARNINGS                                                                                \
    (EV(WARNING_GIVEN) | EV(WARNING_EXPIRED) | EV(RECORD_REFUSED) | EV(RECORDING_STARTED) |        \
     EV(RECORDING_STOPPED))
#define EV_RECORDING_ID                                                                            \
    (EV(RECORDING_STARTED) | EV(RECORDING_STOPPED) | EV(RECORDING_SEALED) |                        \
     EV(RECORDING_DELETED) | EV(RECEIPT_REFUSED))
#define EV_FW                                                                                      \
    (EV(FW_DOWNLOADING) | EV(FW_INSTALLED) | EV(FW_CONFIRMED) | EV(FW_FAILED) |                    \
     EV(FW_ROLLED_BACK) | EV(FW_REFUSED))

static int event_variant(const void *body)
{
    return clamp_variant((int)((const bc_msg_event *)body)->type, BC_EVENT_TYPE_COUNT);
}

static const field event_fields[] = {
    F_STR(bc_msg_event, device, F_DEVICE, ALL, NONE),
    F_NUM(bc_msg_event, seq, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_event, ts, 0, MAXI, ALL, NONE),
    F_ENUMERATED(bc_msg_event, type, bc_event_type_name_int, BC_EVENT_TYPE_COUNT, ALL, NONE),
    F_NUM(bc_msg_event, warnings, 0, 2, EV_WARNINGS, NONE),
    F_STR(bc_msg_event, recording_id, F_ID, EV_RECORDING_ID, EV(TAMPER_DENIED)),
    F_FLAG(bc_msg_event, emergency, EV(RECORDING_STARTED) | EV(RECORDING_STOPPED), NONE),
    F_NUM(bc_msg_event, pre_event_ms, 0, 600000, NONE, EV(RECORDING_STARTED)),
    F_NUM(bc_msg_event, duration_ms, 0, MAXI, EV(RECORDING_STOPPED), NONE),
    F_NUM(bc_msg_event, size, 0, MAXI, EV(RECORDING_STOPPED), NONE),
    F_STR(bc_msg_event, detail, F_TEXT, EV(RECEIPT_REFUSED), EV_FW),
    F_ENUMERATED(bc_msg_event, action, bc_tamper_action_name_int, BC_TAMPER_ACTION_COUNT,
                 EV(TAMPER_DENIED), NONE),
    F_NUM(bc_msg_event, score, 1, 5, EV(SURVEY), NONE),
    F_STR(bc_msg_event, key_id, F_ID, EV(KEY_INSTALLED), NONE),
    F_STR(bc_msg_event, version, F_VERSION, EV_FW, NONE),
};

static bc_status event_check(const void *body, bc_error *err)
{
    const bc_msg_event *e = body;
    if ((e->type == BC_EVENT_WARNING_GIVEN || e->type == BC_EVENT_WARNING_EXPIRED) &&
        e->warnings < 1)
        return bc_fail(err, BC_ERR_INVAL, "field 'warnings' must be 1 or 2 for %s",
                       bc_event_type_name(e->type));
    return BC_OK;
}

/* ----------------------------------------------------------------- ack */

static int ack_variant(const void *body)
{
    return ((const bc_msg_ack *)body)->ok ? 1 : 0;
}

static const field ack_fields[] = {
    F_STR(bc_msg_ack, device, F_DEVICE, ALL, NONE),
    F_NUM(bc_msg_ack, ts, 0, MAXI, ALL, NONE),
    F_STR(bc_msg_ack, cmd_id, F_ID, ALL, NONE),
    F_ENUMERATED(bc_msg_ack, kind, command_kind_name_int, BC_CMD_KIND_COUNT, ALL, NONE),
    F_FLAG(bc_msg_ack, ok, ALL, NONE),
    F_STR(bc_msg_ack, error, F_TEXT, BIT(0), NONE),
};

/* -------------------------------------------------------------- upload */

#define UP_MANIFEST BIT(BC_UPLOAD_MANIFEST)
#define UP_CHUNK BIT(BC_UPLOAD_CHUNK)
#define CHUNK_DATA "data"   /* the JSON name of a chunk's bytes: always the last member */
#define CHUNK_HEAD_MAX 1024 /* JSON of a chunk without its data, at most (all ids at max) */

static int upload_variant(const void *body)
{
    return clamp_variant((int)((const bc_msg_upload *)body)->kind, BC_UPLOAD_KIND_COUNT);
}

static const field upload_fields[] = {
    F_STR(bc_msg_upload, device, F_DEVICE, ALL, NONE),
    F_ENUMERATED(bc_msg_upload, kind, bc_upload_kind_name_int, BC_UPLOAD_KIND_COUNT, ALL, NONE),
    F_STR(bc_msg_upload, recording_id, F_ID, ALL, NONE),
    F_STR(bc_msg_upload, sha256, F_SHA256, ALL, NONE),
    F_NUM(bc_msg_upload, ts, 0, MAXI, UP_MANIFEST, NONE),
    F_NUM(bc_msg_upload, size, 1, MAXI, UP_MANIFEST, NONE),
    F_STR(bc_msg_upload, key_id, F_ID, UP_MANIFEST, NONE),
    F_NUM(bc_msg_upload, recorded_at, 0, MAXI, UP_MANIFEST, NONE),
    F_NUM(bc_msg_upload, duration_ms, 0, MAXI, UP_MANIFEST, NONE),
    F_NUM(bc_msg_upload, warnings, 0, 2, UP_MANIFEST, NONE),
    F_FLAG(bc_msg_upload, emergency, UP_MANIFEST, NONE),
    F_NUM(bc_msg_upload, chunk_size, 1, BC_CHUNK_MAX, UP_MANIFEST, NONE),
    F_NUM(bc_msg_upload, offset, 0, MAXI, UP_CHUNK, NONE),
};

/* A chunk's data: a non-empty string no longer than the base64 of
 * BC_CHUNK_MAX bytes (borrowed from the tree). */
static bc_status upload_data_text(const cJSON *root, const char **text, size_t *len, bc_error *err)
{
    bc_status rc = bc_json_get_string_ref(root, CHUNK_DATA, BC_JSON_REQUIRED,
                                          bc_base64_encoded_len(BC_CHUNK_MAX), text, len, err);
    if (rc == BC_OK && *len == 0)
        rc = bc_fail(err, BC_ERR_INVAL, "field 'data' is empty");
    return rc;
}

/* Shallow: the text's presence and size only; see bc_message_decode_shallow. */
static bc_status upload_read_shallow(const cJSON *root, void *body, bc_error *err)
{
    const bc_msg_upload *u = body;
    if (u->kind != BC_UPLOAD_CHUNK)
        return BC_OK;
    const char *text = NULL;
    size_t len = 0;
    return upload_data_text(root, &text, &len, err);
}

/* Decodes a chunk's base64 text into a new u->data. */
static bc_status upload_data_decode(bc_msg_upload *u, const char *text, size_t len, bc_error *err)
{
    size_t cap = (len / 4 + 1) * 3;
    uint8_t *data = malloc(cap);
    if (data == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for field 'data'");
    size_t n = 0;
    if (bc_base64_decode(text, len, data, cap, &n) != BC_OK) {
        free(data);
        return bc_fail(err, BC_ERR_PARSE, "field 'data' is not canonical base64");
    }
    u->data = data;
    u->data_len = n;
    return BC_OK;
}

static bc_status upload_read(const cJSON *root, void *body, bc_error *err)
{
    bc_msg_upload *u = body;
    if (u->kind != BC_UPLOAD_CHUNK)
        return BC_OK;
    const char *text = NULL;
    size_t len = 0;
    bc_status rc = upload_data_text(root, &text, &len, err);
    if (rc != BC_OK)
        return rc;
    return upload_data_decode(u, text, len, err);
}

/* upload_read / upload_read_shallow on a flat text; false: let go. */
static bool upload_read_flat(const flat_doc *doc, void *body, bool shallow)
{
    bc_msg_upload *u = body;
    if (u->kind != BC_UPLOAD_CHUNK)
        return true;
    const bc_json_flat_member *m = flat_get(doc, CHUNK_DATA);
    if (m == NULL || m->type != BC_JSON_FLAT_STRING || m->text_len == 0 ||
        m->text_len > bc_base64_encoded_len(BC_CHUNK_MAX))
        return false;
    return shallow || upload_data_decode(u, m->text, m->text_len, NULL) == BC_OK;
}

static bc_status sha256_hex(const uint8_t *data, size_t len, char hex[BC_SHA256_HEX_LEN + 1])
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    if (EVP_Digest(data, len, digest, NULL, EVP_sha256(), NULL) != 1) {
        ERR_clear_error();
        return BC_ERR_CRYPTO;
    }
    return bc_hex_encode(digest, sizeof(digest), hex, BC_SHA256_HEX_LEN + 1);
}

static bc_status upload_check(const void *body, bc_error *err)
{
    const bc_msg_upload *u = body;
    if (u->kind != BC_UPLOAD_CHUNK)
        return BC_OK;
    if (u->data == NULL || u->data_len == 0 || u->data_len > BC_CHUNK_MAX)
        return bc_fail(err, BC_ERR_INVAL, "field 'data' must hold 1 to %d bytes", BC_CHUNK_MAX);
    char hex[BC_SHA256_HEX_LEN + 1];
    bc_status rc = sha256_hex(u->data, u->data_len, hex);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot hash field 'data'");
    if (!bc_equal_ct(hex, u->sha256, sizeof(hex)))
        return bc_fail(err, BC_ERR_TAMPERED, "field 'sha256' does not match the chunk data");
    return BC_OK;
}

static bc_status upload_write(cJSON *obj, const void *body)
{
    const bc_msg_upload *u = body;
    if (u->kind != BC_UPLOAD_CHUNK)
        return BC_OK;
    size_t size = bc_base64_encoded_len(u->data_len) + 1;
    char *text = malloc(size);
    if (text == NULL)
        return BC_ERR_NOMEM;
    bc_status rc = bc_base64_encode(u->data, u->data_len, text, size);
    if (rc == BC_OK)
        rc = bc_json_add_string(obj, CHUNK_DATA, text);
    free(text);
    return rc;
}

/* ----------------------------------------------------------------- csr */

static const field csr_fields[] = {
    F_STR(bc_msg_csr, device, F_DEVICE, ALL, NONE),
    F_NUM(bc_msg_csr, ts, 0, MAXI, ALL, NONE),
    F_STR(bc_msg_csr, cmd_id, F_ID, ALL, NONE),
};

#define CSR_PEM_BEGIN "-----BEGIN CERTIFICATE REQUEST-----"

static bc_status csr_read(const cJSON *root, void *body, bc_error *err)
{
    bc_msg_csr *c = body;
    const char *pem = NULL;
    size_t len = 0;
    bc_status rc =
        bc_json_get_string_ref(root, "csr", BC_JSON_REQUIRED, BC_CSR_PEM_MAX, &pem, &len, err);
    if (rc != BC_OK)
        return rc;
    c->csr = malloc(len + 1);
    if (c->csr == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for field 'csr'");
    memcpy(c->csr, pem, len + 1);
    return BC_OK;
}

/* Only the PEM envelope is checked here; the CA parses the request. */
static bc_status csr_check(const void *body, bc_error *err)
{
    const bc_msg_csr *c = body;
    if (c->csr == NULL)
        return bc_fail(err, BC_ERR_MISSING, "field 'csr' is missing");
    size_t len = strnlen(c->csr, BC_CSR_PEM_MAX + 1);
    if (len > BC_CSR_PEM_MAX)
        return bc_fail(err, BC_ERR_INVAL, "field 'csr' is longer than %d bytes", BC_CSR_PEM_MAX);
    if (strncmp(c->csr, CSR_PEM_BEGIN, strlen(CSR_PEM_BEGIN)) != 0)
        return bc_fail(err, BC_ERR_INVAL, "field 'csr' is not a PEM certificate request");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)c->csr[i];
        if ((ch < 0x20 || ch > 0x7e) && ch != '\n' && ch != '\r')
            return bc_fail(err, BC_ERR_INVAL, "field 'csr' holds a byte PEM cannot contain");
    }
    return BC_OK;
}

static bc_status csr_write(cJSON *obj, const void *body)
{
    return bc_json_add_string(obj, "csr", ((const bc_msg_csr *)body)->csr);
}

/* ------------------------------------------------------- fleet summary */

static const field summary_fields[] = {
    F_NUM(bc_msg_summary, ts, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_summary, cameras, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_summary, online, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_summary, alerts_open, 0, MAXI, ALL, NONE),
    F_NUM(bc_msg_summary, rollouts_active, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rotations_active, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rotation_cameras, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rotation_done, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rotation_failed, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rollout_cameras, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rollout_updated, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rollout_failed, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rollout_wave, 0, MAXI, NONE, ALL),
    F_NUM(bc_msg_summary, rollout_waves, 0, MAXI, NONE, ALL),
};

/* "states": {"standby": n, ...}; an absent state counts 0, unknown names
 * are ignored like any unknown field. */
static bc_status summary_read(const cJSON *root, void *body, bc_error *err)
{
    bc_msg_summary *s = body;
    const cJSON *states = NULL;
    bc_status rc = bc_json_get_object(root, "states", BC_JSON_REQUIRED, &states, err);
    for (int i = 0; rc == BC_OK && i < BC_STATE_COUNT; i++)
        rc = bc_json_get_int(states, device_state_names[i], BC_JSON_OPTIONAL, 0, MAXI,
                             &s->states[i], err);
    if (rc != BC_OK && err != NULL) {
        bc_error inner = *err;
        bc_fail(err, rc, "field 'states': %s", inner.text);
    }
    return rc;
}

static bc_status summary_check(const void *body, bc_error *err)
{
    const bc_msg_summary *s = body;
    if (s->online > s->cameras)
        return bc_fail(err, BC_ERR_INVAL, "field 'online' is larger than cameras");
    int64_t sum = 0;
    for (int i = 0; i < BC_STATE_COUNT; i++) {
        if (s->states[i] < 0 || s->states[i] > s->cameras)
            return bc_fail(err, BC_ERR_INVAL, "field 'states.%s' is outside [0, cameras]",
                           device_state_names[i]);
        sum += s->states[i];
    }
    if (sum > s->cameras)
        return bc_fail(err, BC_ERR_INVAL, "field 'states' counts more cameras than cameras");
    return BC_OK;
}

static bc_status summary_write(cJSON *obj, const void *body)
{
    const bc_msg_summary *s = body;
    cJSON *states = cJSON_CreateObject();
    if (states == NULL)
        return BC_ERR_NOMEM;
    bc_status rc = BC_OK;
    for (int i = 0; rc == BC_OK && i < BC_STATE_COUNT; i++)
        rc = bc_json_add_int(states, device_state_names[i], s->states[i]);
    if (rc == BC_OK)
        rc = bc_json_add_item(obj, "states", states);
    if (rc != BC_OK)
        cJSON_Delete(states);
    return rc;
}

/* --------------------------------------------------------- fleet alert */

static int alert_variant(const void *body)
{
    return clamp_variant((int)((const bc_msg_alert *)body)->kind, BC_ALERT_KIND_COUNT);
}

static const field alert_fields[] = {
    F_NUM(bc_msg_alert, ts, 0, MAXI, ALL, NONE),
    F_STR(bc_msg_alert, id, F_ID, ALL, NONE),
    F_ENUMERATED(bc_msg_alert, kind, bc_alert_kind_name_int, BC_ALERT_KIND_COUNT, ALL, NONE),
    F_ENUMERATED(bc_msg_alert, status, bc_alert_status_name_int, BC_ALERT_STATUS_COUNT, ALL, NONE),
    F_STR(bc_msg_alert, device, F_DEVICE, ALL & ~BIT(BC_ALERT_REQUEST_OVERDUE),
          BIT(BC_ALERT_REQUEST_OVERDUE)),
    F_STR(bc_msg_alert, detail, F_TEXT, NONE, ALL),
    F_NUM_HAS(bc_msg_alert, value, has_value, BC_JSON_INT_MIN, MAXI, NONE, ALL),
};

/* ---------------------------------------------------------- the catalog */

#define ROWS(a) .fields = (a), .field_count = sizeof(a) / sizeof((a)[0])

static const message_desc catalog[BC_TOPIC_KIND_COUNT] = {
    [BC_TOPIC_CONN] = {.name = "conn", .max_len = BC_MESSAGE_MAX, ROWS(conn_fields)},
    [BC_TOPIC_STATE] = {.name = "state",
                        .max_len = BC_MESSAGE_MAX,
                        ROWS(state_fields),
                        .variant = state_variant,
                        .check_extra = state_check},
    [BC_TOPIC_HEALTH] = {.name = "health",
                         .max_len = BC_MESSAGE_MAX,
                         ROWS(health_fields),
                         .read_extra = health_read,
                         .check_extra = health_check,
                         .write_extra = health_write},
    [BC_TOPIC_EVENT] = {.name = "event",
                        .max_len = BC_MESSAGE_MAX,
                        ROWS(event_fields),
                        .variant = event_variant,
                        .check_extra = event_check},
    [BC_TOPIC_ACK] = {.name = "ack",
                      .max_len = BC_MESSAGE_MAX,
                      ROWS(ack_fields),
                      .variant = ack_variant},
    [BC_TOPIC_UPLOAD] = {.name = "upload",
                         .max_len = BC_UPLOAD_MESSAGE_MAX,
                         ROWS(upload_fields),
                         .variant = upload_variant,
                         .read_extra = upload_read,
                         .check_extra = upload_check,
                         .write_extra = upload_write,
                         .read_shallow = upload_read_shallow,
                         .read_flat = upload_read_flat},
    [BC_TOPIC_CSR] = {.name = "csr",
                      .max_len = BC_MESSAGE_MAX,
                      ROWS(csr_fields),
                      .read_extra = csr_read,
                      .check_extra = csr_check,
                      .write_extra = csr_write},
    [BC_TOPIC_FLEET_SUMMARY] = {.name = "fleet summary",
                                .max_len = BC_MESSAGE_MAX,
                                ROWS(summary_fields),
                                .read_extra = summary_read,
                                .check_extra = summary_check,
                                .write_extra = summary_write},
    [BC_TOPIC_FLEET_ALERTS] = {.name = "fleet alert",
                               .max_len = BC_MESSAGE_MAX,
                               ROWS(alert_fields),
                               .variant = alert_variant},
};

static const message_desc *desc_of(bc_topic_kind kind)
{
    if ((unsigned)kind >= BC_TOPIC_KIND_COUNT || catalog[kind].fields == NULL)
        return NULL;
    return &catalog[kind];
}

/* ------------------------------------------------------ the interpreters */

static need field_need(const message_desc *d, const field *f, const void *body)
{
    uint32_t bit = BIT(d->variant != NULL ? d->variant(body) : 0);
    if (f->required & bit)
        return NEED_REQUIRED;
    if (f->optional & bit)
        return NEED_OPTIONAL;
    return NEED_NONE;
}

static int enum_get(const void *body, const field *f)
{
    int v;
    memcpy(&v, (const char *)body + f->offset, sizeof(v));
    return v;
}

static bc_status read_enum(const cJSON *root, const field *f, void *body, bc_json_need jn,
                           bc_error *err)
{
    char text[48] = "";
    bc_status rc = bc_json_get_string(root, f->name, jn, text, sizeof(text), err);
    if (rc != BC_OK || (text[0] == '\0' && !bc_json_has(root, f->name)))
        return rc;
    for (int i = 0; i < f->enum_count; i++) {
        if (strcmp(f->enum_name(i), text) == 0) {
            memcpy((char *)body + f->offset, &i, sizeof(i));
            return BC_OK;
        }
    }
    return bc_fail(err, BC_ERR_INVAL, "field '%s' has an unknown value", f->name);
}

static bc_status read_field(const cJSON *root, const field *f, void *body, need n, bc_error *err)
{
    bc_json_need jn = n == NEED_REQUIRED ? BC_JSON_REQUIRED : BC_JSON_OPTIONAL;
    char *p = (char *)body + f->offset;
    switch (f->type) {
    case F_INT:
        if (f->has_flag)
            *(bool *)((char *)body + f->has_offset) = bc_json_has(root, f->name);
        return bc_json_get_int(root, f->name, jn, f->min, f->max, (int64_t *)(void *)p, err);
    case F_BOOL:
        return bc_json_get_bool(root, f->name, jn, (bool *)(void *)p, err);
    case F_ENUM:
        return read_enum(root, f, body, jn, err);
    default:
        return bc_json_get_string(root, f->name, jn, p, f->size, err);
    }
}

static int string_valid(field_type type, const char *s)
{
    switch (type) {
    case F_DEVICE:
        return bc_device_id_valid(s);
    case F_ID:
        return bc_id_valid(s);
    case F_VERSION:
        return bc_version_valid(s);
    case F_SHA256:
        return bc_json_hex_valid(s, BC_SHA256_HEX_LEN);
    default:
        return bc_json_text_valid(s);
    }
}

static bc_status check_string(const field *f, const char *s, need n, bc_error *err)
{
    if (memchr(s, '\0', f->size) == NULL)
        return bc_fail(err, BC_ERR_INVAL, "field '%s' is not terminated", f->name);
    if (s[0] == '\0') {
        if (n == NEED_OPTIONAL)
            return BC_OK;
        return bc_fail(err, BC_ERR_INVAL, "field '%s' is empty", f->name);
    }
    if (!string_valid(f->type, s))
        return bc_fail(err, BC_ERR_INVAL, "field '%s' has characters or a form it may not have",
                       f->name);
    return BC_OK;
}

static bc_status check_field(const field *f, const void *body, need n, bc_error *err)
{
    const char *p = (const char *)body + f->offset;
    if (n == NEED_NONE)
        return BC_OK;
    switch (f->type) {
    case F_INT: {
        if (f->has_flag && !*(const bool *)((const char *)body + f->has_offset))
            return BC_OK;
        int64_t v;
        memcpy(&v, p, sizeof(v));
        if (v < f->min || v > f->max)
            return bc_fail(err, BC_ERR_INVAL,
                           "field '%s': %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]", f->name,
                           v, f->min, f->max);
        return BC_OK;
    }
    case F_BOOL:
        return BC_OK;
    case F_ENUM: {
        int v = enum_get(body, f);
        if (v < 0 || v >= f->enum_count || f->enum_name(v) == NULL)
            return bc_fail(err, BC_ERR_INVAL, "field '%s' has no valid value", f->name);
        return BC_OK;
    }
    default:
        return check_string(f, p, n, err);
    }
}

static bc_status write_field(cJSON *obj, const field *f, const void *body, need n)
{
    const char *p = (const char *)body + f->offset;
    if (n == NEED_NONE)
        return BC_OK;
    switch (f->type) {
    case F_INT: {
        if (f->has_flag && !*(const bool *)((const char *)body + f->has_offset))
            return BC_OK;
        int64_t v;
        memcpy(&v, p, sizeof(v));
        return bc_json_add_int(obj, f->name, v);
    }
    case F_BOOL:
        return bc_json_add_bool(obj, f->name, *(const bool *)(const void *)p);
    case F_ENUM:
        return bc_json_add_string(obj, f->name, f->enum_name(enum_get(body, f)));
    default:
        if (p[0] == '\0')
            return BC_OK; /* optional and absent; a required one passed check */
        return bc_json_add_string(obj, f->name, p);
    }
}

/* ---- the flat interpreter: the same rows, read from flat members. Each
 * returns false where read_field would fail (or might: then the cJSON path
 * decides), so the values it fills are the ones read_field would. ---- */

static bool flat_text_into(const bc_json_flat_member *m, char *out, size_t size)
{
    if (m->type != BC_JSON_FLAT_STRING || m->text_len >= size)
        return false;
    memcpy(out, m->text, m->text_len);
    out[m->text_len] = '\0';
    return true;
}

static bool flat_enum(const bc_json_flat_member *m, const field *f, void *body)
{
    char text[48]; /* as read_enum */
    if (!flat_text_into(m, text, sizeof(text)))
        return false;
    for (int i = 0; i < f->enum_count; i++) {
        const char *name = f->enum_name(i);
        if (name != NULL && strcmp(name, text) == 0) {
            memcpy((char *)body + f->offset, &i, sizeof(i));
            return true;
        }
    }
    return false;
}

static bool read_field_flat(const flat_doc *doc, const field *f, void *body, need n)
{
    const bc_json_flat_member *m = flat_get(doc, f->name);
    if (f->type == F_INT && f->has_flag)
        *(bool *)((char *)body + f->has_offset) = m != NULL;
    if (m == NULL)
        return n != NEED_REQUIRED;
    char *p = (char *)body + f->offset;
    switch (f->type) {
    case F_INT:
        if (m->type != BC_JSON_FLAT_INT || m->number < f->min || m->number > f->max)
            return false;
        memcpy(p, &m->number, sizeof(m->number));
        return true;
    case F_BOOL:
        if (m->type != BC_JSON_FLAT_TRUE && m->type != BC_JSON_FLAT_FALSE)
            return false;
        *(bool *)(void *)p = m->type == BC_JSON_FLAT_TRUE;
        return true;
    case F_ENUM:
        return flat_enum(m, f, body);
    default:
        return flat_text_into(m, p, f->size);
    }
}

static bool read_body_flat(const message_desc *d, const flat_doc *doc, void *body, bool shallow)
{
    const bc_json_flat_member *v = flat_get(doc, "v");
    if (v == NULL || v->type != BC_JSON_FLAT_INT || v->number != BC_JSON_SCHEMA_VERSION)
        return false;
    for (size_t i = 0; i < d->field_count; i++) {
        const field *f = &d->fields[i];
        need n = field_need(d, f, body);
        if (n != NEED_NONE && !read_field_flat(doc, f, body, n))
            return false;
    }
    return d->read_flat(doc, body, shallow);
}

static bool is_shallow(const message_desc *d, bool shallow)
{
    return shallow && d->read_shallow != NULL;
}

static bc_status read_body(const message_desc *d, const cJSON *root, void *body, bool shallow,
                           bc_error *err)
{
    for (size_t i = 0; i < d->field_count; i++) {
        const field *f = &d->fields[i];
        need n = field_need(d, f, body);
        if (n == NEED_NONE)
            continue;
        bc_status rc = read_field(root, f, body, n, err);
        if (rc != BC_OK)
            return rc;
    }
    if (is_shallow(d, shallow))
        return d->read_shallow(root, body, err);
    return d->read_extra != NULL ? d->read_extra(root, body, err) : BC_OK;
}

static bc_status check_body(const message_desc *d, const void *body, bool shallow, bc_error *err)
{
    for (size_t i = 0; i < d->field_count; i++) {
        const field *f = &d->fields[i];
        bc_status rc = check_field(f, body, field_need(d, f, body), err);
        if (rc != BC_OK)
            return rc;
    }
    if (is_shallow(d, shallow))
        return BC_OK;
    return d->check_extra != NULL ? d->check_extra(body, err) : BC_OK;
}

static bc_status write_rows(const message_desc *d, cJSON *obj, const void *body)
{
    for (size_t i = 0; i < d->field_count; i++) {
        const field *f = &d->fields[i];
        bc_status rc = write_field(obj, f, body, field_need(d, f, body));
        if (rc != BC_OK)
            return rc;
    }
    return BC_OK;
}

static bc_status write_body(const message_desc *d, cJSON *obj, const void *body)
{
    bc_status rc = write_rows(d, obj, body);
    if (rc != BC_OK)
        return rc;
    return d->write_extra != NULL ? d->write_extra(obj, body) : BC_OK;
}

/* ---------------------------------------------------------- public API */

/* Every member of the anonymous union starts at the same address. */
static void *body_of(bc_message *m)
{
    return &m->conn;
}

static const void *cbody_of(const bc_message *m)
{
    return &m->conn;
}

size_t bc_message_max_len(bc_topic_kind kind)
{
    const message_desc *d = desc_of(kind);
    return d != NULL ? d->max_len : 0;
}

/* The flat path (see the top): true when it decoded buf into out. */
static bool decode_flat(const message_desc *d, const char *buf, size_t len, bool shallow,
                        bc_message *out)
{
    flat_doc doc;
    if (d->read_flat == NULL ||
        !bc_json_scan_flat(buf, len, d->max_len, doc.members, FLAT_MEMBERS_MAX, &doc.count))
        return false;
    if (read_body_flat(d, &doc, body_of(out), shallow) &&
        check_body(d, body_of(out), shallow, NULL) == BC_OK)
        return true;
    bc_message_free(out);
    return false;
}

static bc_status decode(bc_topic_kind kind, const char *buf, size_t len, bool shallow,
                        bc_message *out, bc_error *err)
{
    const message_desc *d = desc_of(kind);
    if (d == NULL || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "topic kind %d carries no message", (int)kind);
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    if (decode_flat(d, buf, len, shallow, out))
        return BC_OK;
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    cJSON *root = NULL;
    bc_status rc = bc_json_parse(buf, len, d->max_len, &root, err);
    if (rc != BC_OK)
        return rc;
    rc = bc_json_check_version(root, err);
    if (rc == BC_OK)
        rc = read_body(d, root, body_of(out), shallow, err);
    cJSON_Delete(root);
    if (rc == BC_OK)
        rc = check_body(d, body_of(out), shallow, err);
    if (rc != BC_OK) {
        bc_message_free(out);
        memset(out, 0, sizeof(*out));
        out->kind = kind;
    }
    return rc;
}

bc_status bc_message_decode(bc_topic_kind kind, const char *buf, size_t len, bc_message *out,
                            bc_error *err)
{
    return decode(kind, buf, len, false, out, err);
}

bc_status bc_message_decode_shallow(bc_topic_kind kind, const char *buf, size_t len,
                                    bc_message *out, bc_error *err)
{
    return decode(kind, buf, len, true, out, err);
}

bc_status bc_message_validate(const bc_message *msg, bc_error *err)
{
    const message_desc *d = msg != NULL ? desc_of(msg->kind) : NULL;
    if (d == NULL)
        return bc_fail(err, BC_ERR_INVAL, "not a message kind");
    return check_body(d, cbody_of(msg), false, err);
}

bc_status bc_message_encode(const bc_message *msg, char **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no output for the message");
    *out = NULL;
    bc_status rc = bc_message_validate(msg, err);
    if (rc != BC_OK)
        return rc;
    const message_desc *d = desc_of(msg->kind);
    cJSON *obj = NULL;
    rc = bc_json_new_message(&obj);
    if (rc == BC_OK)
        rc = write_body(d, obj, cbody_of(msg));
    if (rc == BC_OK)
        rc = bc_json_print(obj, out);
    cJSON_Delete(obj);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot build the %s JSON: %s", d->name, bc_strerror(rc));
    return BC_OK;
}

size_t bc_message_chunk_json_max(size_t len)
{
    if (len > BC_CHUNK_MAX)
        return 0;
    return CHUNK_HEAD_MAX + bc_base64_encoded_len(len) + 1;
}

/* The chunk's JSON without its data, printed by cJSON from the same rows as
 * bc_message_encode: "{"v":1,...,"offset":N}" (malloc'd). */
static bc_status chunk_head(const bc_message *head, char **text)
{
    cJSON *obj = NULL;
    bc_status rc = bc_json_new_message(&obj);
    if (rc == BC_OK)
        rc = write_rows(desc_of(BC_TOPIC_UPLOAD), obj, cbody_of(head));
    if (rc == BC_OK)
        rc = bc_json_print(obj, text);
    cJSON_Delete(obj);
    return rc;
}

/*
 * Why not bc_message_encode: it hashes the data twice (set_chunk_data,
 * then validate), and puts ~44 KB of base64 through cJSON (a copy into
 * the tree, a character-by-character escape scan into a print buffer
 * that grows by doubling) - the camera's largest cost per uploaded MB
 * after TLS. Here the data is hashed once, base64 goes straight into the
 * caller's buffer, and only the small head is printed by cJSON. The data
 * member is last in bc_message_encode's output and base64 needs no JSON
 * escaping, so appending it gives exactly the same text (unit-tested).
 */
bc_status bc_message_encode_chunk(const bc_message *msg, const uint8_t *data, size_t len, char *out,
                                  size_t out_size, size_t *out_len, bc_error *err)
{
    if (out_len != NULL)
        *out_len = 0;
    if (msg == NULL || out == NULL || out_len == NULL || msg->kind != BC_TOPIC_UPLOAD ||
        msg->upload.kind != BC_UPLOAD_CHUNK)
        return bc_fail(err, BC_ERR_INVAL, "not an upload chunk message");
    if (data == NULL || len == 0 || len > BC_CHUNK_MAX)
        return bc_fail(err, BC_ERR_INVAL, "field 'data' must hold 1 to %d bytes", BC_CHUNK_MAX);
    bc_message head = *msg;
    head.upload.data = NULL;
    head.upload.data_len = 0;
    bc_status rc = sha256_hex(data, len, head.upload.sha256);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot hash field 'data'");
    /* every row as decode checks it; the data's own rule holds by construction */
    rc = check_body(desc_of(BC_TOPIC_UPLOAD), cbody_of(&head), true, err);
    if (rc != BC_OK)
        return rc;
    char *text = NULL;
    if ((rc = chunk_head(&head, &text)) != BC_OK)
        return bc_fail(err, rc, "cannot build the upload JSON: %s", bc_strerror(rc));
    static const char open_data[] = ",\"" CHUNK_DATA "\":\"";
    size_t head_len = strlen(text) - 1; /* without its closing brace */
    size_t b64_len = bc_base64_encoded_len(len);
    size_t total = head_len + sizeof(open_data) - 1 + b64_len + 2;
    if (total + 1 > out_size) {
        free(text);
        return bc_fail(err, BC_ERR_TOO_BIG, "the chunk JSON needs %zu bytes, the buffer has %zu",
                       total + 1, out_size);
    }
    memcpy(out, text, head_len);
    free(text);
    size_t pos = head_len;
    memcpy(out + pos, open_data, sizeof(open_data) - 1);
    pos += sizeof(open_data) - 1;
    if ((rc = bc_base64_encode(data, len, out + pos, out_size - pos)) != BC_OK)
        return bc_fail(err, rc, "cannot encode field 'data'");
    pos += b64_len;
    out[pos++] = '"';
    out[pos++] = '}';
    out[pos] = '\0';
    *out_len = pos;
    return BC_OK;
}

bc_status bc_message_encode_fleet(const bc_message *msg, char *topic, size_t topic_size, char **out,
                                  bc_error *err)
{
    if (out != NULL)
        *out = NULL;
    if (msg == NULL || topic == NULL ||
        (msg->kind != BC_TOPIC_FLEET_SUMMARY && msg->kind != BC_TOPIC_FLEET_ALERTS))
        return bc_fail(err, BC_ERR_INVAL, "not a fleet message (summary or alert)");
    bc_status rc = bc_topic_fixed(topic, topic_size, msg->kind);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot build the topic of a fleet message");
    return bc_message_encode(msg, out, err);
}

void bc_message_free(bc_message *msg)
{
    if (msg == NULL)
        return;
    if (msg->kind == BC_TOPIC_UPLOAD) {
        free(msg->upload.data);
        msg->upload.data = NULL;
        msg->upload.data_len = 0;
    } else if (msg->kind == BC_TOPIC_CSR) {
        free(msg->csr.csr);
        msg->csr.csr = NULL;
    }
}

const char *bc_message_device(const bc_message *msg)
{
    if (msg == NULL)
        return NULL;
    switch (msg->kind) {
    case BC_TOPIC_CONN:
        return msg->conn.device;
    case BC_TOPIC_STATE:
        return msg->state.device;
    case BC_TOPIC_HEALTH:
        return msg->health.device;
    case BC_TOPIC_EVENT:
        return msg->event.device;
    case BC_TOPIC_ACK:
        return msg->ack.device;
    case BC_TOPIC_UPLOAD:
        return msg->upload.device;
    case BC_TOPIC_CSR:
        return msg->csr.device;
    case BC_TOPIC_FLEET_ALERTS:
        return msg->alert.device;
    default:
        return NULL;
    }
}

bc_status bc_message_set_chunk_data(bc_message *msg, const uint8_t *data, size_t len)
{
    if (msg == NULL || msg->kind != BC_TOPIC_UPLOAD || data == NULL || len == 0 ||
        len > BC_CHUNK_MAX)
        return BC_ERR_INVAL;
    char hex[BC_SHA256_HEX_LEN + 1];
    bc_status rc = sha256_hex(data, len, hex);
    if (rc != BC_OK)
        return rc;
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return BC_ERR_NOMEM;
    memcpy(copy, data, len);
    free(msg->upload.data);
    msg->upload.data = copy;
    msg->upload.data_len = len;
    memcpy(msg->upload.sha256, hex, sizeof(hex));
    return BC_OK;
}

bc_status bc_message_set_csr(bc_message *msg, const char *pem)
{
    if (msg == NULL || msg->kind != BC_TOPIC_CSR || pem == NULL)
        return BC_ERR_INVAL;
    size_t len = strnlen(pem, BC_CSR_PEM_MAX + 1);
    if (len > BC_CSR_PEM_MAX)
        return BC_ERR_INVAL;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return BC_ERR_NOMEM;
    memcpy(copy, pem, len + 1);
    free(msg->csr.csr);
    msg->csr.csr = copy;
    return BC_OK;
}
