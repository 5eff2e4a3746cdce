/* Unit tests for proto/message: every message (and every event type) round
 * trips; every required field, when removed, is BC_ERR_MISSING and, when of
 * the wrong type, BC_ERR_TYPE; ranges, alphabets and cross-field rules are
 * enforced on decode and on encode; and truncated or randomly mutated
 * input never crashes a decoder nor yields an invalid message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "proto/encoding.h"
#include "proto/message.h"

#define T0 1700000000123LL

/* ------------------------------------------------------------ samples */

static bc_message blank(bc_topic_kind kind)
{
    bc_message m;
    memset(&m, 0, sizeof(m));
    m.kind = kind;
    return m;
}

static bc_message sample_conn(void)
{
    bc_message m = blank(BC_TOPIC_CONN);
    strcpy(m.conn.device, "cam-001");
    m.conn.status = BC_CONN_ONLINE;
    m.conn.session = 7;
    m.conn.ts = T0;
    strcpy(m.conn.fw, "1.2.3");
    strcpy(m.conn.recording_key_id, "0123456789abcdef");
    return m;
}

static bc_message sample_state(bc_device_state st)
{
    bc_message m = blank(BC_TOPIC_STATE);
    strcpy(m.state.device, "cam-001");
    m.state.state = st;
    m.state.warnings = st == BC_STATE_WARNING || st == BC_STATE_RECORDING ? 2 : 0;
    m.state.since = T0 - 5000;
    m.state.seq = 42;
    m.state.ts = T0;
    if (st == BC_STATE_RECORDING)
        strcpy(m.state.recording_id, "rec-20240101-0001");
    return m;
}

static bc_message sample_health(void)
{
    bc_message m = blank(BC_TOPIC_HEALTH);
    bc_msg_health *h = &m.health;
    strcpy(h->device, "cam-001");
    h->ts = T0;
    h->battery_pct = 87;
    h->charging = true;
    h->storage_free = 10000000000LL;
    h->storage_total = 64000000000LL;
    h->temperature_c = -5;
    h->signal_dbm = -67;
    h->uptime_s = 3600;
    strcpy(h->fw, "1.2.3");
    strcpy(h->recording_key_id, "0123456789abcdef");
    h->pending_uploads = 2;
    h->error_count = 2;
    strcpy(h->errors[0], "sd card slow");
    strcpy(h->errors[1], "gps: no fix \xe2\x80\x94 indoors");
    return m;
}

static bc_message sample_event(bc_event_type type)
{
    bc_message m = blank(BC_TOPIC_EVENT);
    bc_msg_event *e = &m.event;
    strcpy(e->device, "cam-001");
    e->seq = 1000 + type;
    e->ts = T0;
    e->type = type;
    switch (type) {
    case BC_EVENT_WARNING_GIVEN:
    case BC_EVENT_WARNING_EXPIRED:
        e->warnings = 1;
        break;
    case BC_EVENT_RECORD_REFUSED:
        e->warnings = 0;
        break;
    case BC_EVENT_RECORDING_STARTED:
        strcpy(e->recording_id, "rec-1");
        e->warnings = 2;
        e->pre_event_ms = 30000;
        break;
    case BC_EVENT_RECORDING_STOPPED:
        strcpy(e->recording_id, "rec-1");
        e->warnings = 1;
        e->emergency = true;
        e->duration_ms = 93000;
        e->size = 12345678;
        break;
    case BC_EVENT_RECORDING_SEALED:
    case BC_EVENT_RECORDING_DELETED:
        strcpy(e->recording_id, "rec-1");
        break;
    case BC_EVENT_RECEIPT_REFUSED:
        strcpy(e->recording_id, "rec-1");
        strcpy(e->detail, "receipt sha256 does not match the recording");
        break;
    case BC_EVENT_TAMPER_DENIED:
        e->action = BC_TAMPER_DELETE;
        strcpy(e->recording_id, "rec-1");
        break;
    case BC_EVENT_SURVEY:
        e->score = 4;
        break;
    case BC_EVENT_KEY_INSTALLED:
        strcpy(e->key_id, "fedcba9876543210");
        break;
    case BC_EVENT_FW_DOWNLOADING:
    case BC_EVENT_FW_INSTALLED:
    case BC_EVENT_FW_CONFIRMED:
    case BC_EVENT_FW_FAILED:
    case BC_EVENT_FW_ROLLED_BACK:
    case BC_EVENT_FW_REFUSED:
        strcpy(e->version, "2.0.1");
        if (type == BC_EVENT_FW_FAILED)
            strcpy(e->detail, "image hash mismatch");
        break;
    default:
        break;
    }
    return m;
}

static bc_message sample_ack(bool ok)
{
    bc_message m = blank(BC_TOPIC_ACK);
    strcpy(m.ack.device, "cam-001");
    m.ack.ts = T0;
    strcpy(m.ack.cmd_id, "cmd-9f2c");
    m.ack.kind = BC_CMD_VAULT_RECEIPT;
    m.ack.ok = ok;
    if (!ok)
        strcpy(m.ack.error, "receipt does not match");
    return m;
}

static bc_message sample_manifest(void)
{
    bc_message m = blank(BC_TOPIC_UPLOAD);
    bc_msg_upload *u = &m.upload;
    strcpy(u->device, "cam-001");
    u->kind = BC_UPLOAD_MANIFEST;
    strcpy(u->recording_id, "rec-1");
    strcpy(u->sha256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    u->ts = T0;
    u->size = 5000000;
    strcpy(u->key_id, "0123456789abcdef");
    u->recorded_at = T0 - 100000;
    u->duration_ms = 60000;
    u->warnings = 2;
    u->emergency = false;
    u->chunk_size = 65536;
    return m;
}

/* The caller frees with bc_message_free. */
static bc_message sample_chunk(size_t len)
{
    bc_message m = blank(BC_TOPIC_UPLOAD);
    bc_msg_upload *u = &m.upload;
    strcpy(u->device, "cam-001");
    u->kind = BC_UPLOAD_CHUNK;
    strcpy(u->recording_id, "rec-1");
    u->offset = 65536;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    assert_int_equal(bc_message_set_chunk_data(&m, data, len), BC_OK);
    free(data);
    return m;
}

#define CSR_PEM                                                                                    \
    "-----BEGIN CERTIFICATE REQUEST-----\n"                                                        \
    "MIGbMEcCAQAwEjEQMA4GA1UEAwwHY2FtLTAwMTAqMAUGAytlcAMhAGRyRJ8ROKFE\n"                           \
    "-----END CERTIFICATE REQUEST-----\n"

static bc_message sample_csr(void)
{
    bc_message m = blank(BC_TOPIC_CSR);
    strcpy(m.csr.device, "cam-001");
    m.csr.ts = T0;
    strcpy(m.csr.cmd_id, "cmd-rot-1");
    assert_int_equal(bc_message_set_csr(&m, CSR_PEM), BC_OK);
    return m;
}

static bc_message sample_summary(void)
{
    bc_message m = blank(BC_TOPIC_FLEET_SUMMARY);
    bc_msg_summary *s = &m.summary;
    s->ts = T0;
    s->cameras = 5;
    s->online = 4;
    s->states[BC_STATE_STANDBY] = 2;
    s->states[BC_STATE_WARNING] = 1;
    s->states[BC_STATE_RECORDING] = 1;
    s->states[BC_STATE_DOCKED] = 1;
    s->alerts_open = 1;
    s->rollouts_active = 1;
    return m;
}

static bc_message sample_alert(bc_alert_kind kind)
{
    bc_message m = blank(BC_TOPIC_FLEET_ALERTS);
    bc_msg_alert *a = &m.alert;
    a->ts = T0;
    strcpy(a->id, "alert-77");
    a->kind = kind;
    a->status = BC_ALERT_RAISED;
    if (kind != BC_ALERT_REQUEST_OVERDUE) {
        strcpy(a->device, "cam-001");
        strcpy(a->detail, "battery at 9%");
        a->has_value = true;
        a->value = 9;
    }
    return m;
}

/* ------------------------------------------------------------- helpers */

static char *encode_ok(const bc_message *m)
{
    char *text = NULL;
    bc_error err = {{0}};
    bc_status rc = bc_message_encode(m, &text, &err);
    if (rc != BC_OK)
        fail_msg("encode failed: %s: %s", bc_strerror(rc), err.text);
    return text;
}

static bc_status decode_text(bc_topic_kind kind, const char *text, bc_error *err)
{
    bc_message m;
    bc_status rc = bc_message_decode(kind, text, strlen(text), &m, err);
    bc_message_free(&m);
    return rc;
}

static void assert_same(const bc_message *a, const bc_message *b)
{
    bc_message x = *a;
    bc_message y = *b;
    if (a->kind == BC_TOPIC_UPLOAD) {
        assert_int_equal(x.upload.data_len, y.upload.data_len);
        if (x.upload.data_len > 0)
            assert_memory_equal(x.upload.data, y.upload.data, x.upload.data_len);
        x.upload.data = y.upload.data = NULL;
    } else if (a->kind == BC_TOPIC_CSR) {
        assert_string_equal(x.csr.csr, y.csr.csr);
        x.csr.csr = y.csr.csr = NULL;
    }
    assert_memory_equal(&x, &y, sizeof(x));
}

static void round_trip(const bc_message *m)
{
    char *text = encode_ok(m);
    bc_message back;
    bc_error err = {{0}};
    bc_status rc = bc_message_decode(m->kind, text, strlen(text), &back, &err);
    if (rc != BC_OK)
        fail_msg("decode of '%s' failed: %s: %s", text, bc_strerror(rc), err.text);
    assert_same(m, &back);
    /* and printing what was decoded gives the same bytes */
    char *again = encode_ok(&back);
    assert_string_equal(again, text);
    free(again);
    bc_message_free(&back);
    free(text);
}

/* Encodes m, sets key to the JSON value raw (or removes key when raw is
 * NULL), decodes the result. */
static bc_status decode_with(const bc_message *m, const char *key, const char *raw, bc_error *err)
{
    char *text = encode_ok(m);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    if (raw == NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    } else {
        cJSON *value = cJSON_Parse(raw);
        assert_non_null(value);
        if (cJSON_HasObjectItem(root, key))
            assert_true(cJSON_ReplaceItemInObjectCaseSensitive(root, key, value));
        else
            assert_true(cJSON_AddItemToObject(root, key, value));
    }
    char *changed = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    bc_status rc = decode_text(m->kind, changed, err);
    free(changed);
    return rc;
}

static void expect_with(const bc_message *m, const char *key, const char *raw, bc_status want)
{
    bc_error err = {{0}};
    bc_status got = decode_with(m, key, raw, &err);
    if (got != want)
        fail_msg("%s=%s: got %s (%s), want %s", key, raw ? raw : "(removed)", bc_strerror(got),
                 err.text, bc_strerror(want));
    bool names_field =
        want == BC_ERR_TYPE || want == BC_ERR_INVAL || (want == BC_ERR_MISSING && raw == NULL);
    if (names_field && strcmp(key, "v") != 0 && strstr(err.text, key) == NULL)
        fail_msg("%s: the error '%s' does not name the field", key, err.text);
}

static const char *wrong_type_for(const cJSON *item)
{
    if (cJSON_IsString(item))
        return "5";
    if (cJSON_IsNumber(item))
        return "\"5\"";
    if (cJSON_IsBool(item))
        return "1";
    if (cJSON_IsArray(item))
        return "{}";
    return "[]";
}

static int listed(const char *const *names, const char *name)
{
    for (size_t i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], name) == 0)
            return 1;
    }
    return 0;
}

/* Each required field (NULL-terminated list, which must all be present):
 * removed -> BC_ERR_MISSING. Every other field removed -> BC_OK. Every
 * field of a wrong JSON type -> BC_ERR_TYPE. */
static void check_fields(const bc_message *m, const char *const *required)
{
    char *text = encode_ok(m);
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    for (size_t i = 0; required[i] != NULL; i++) {
        if (!cJSON_HasObjectItem(root, required[i]))
            fail_msg("'%s' lacks required field %s", text, required[i]);
    }
    for (const cJSON *it = root->child; it != NULL; it = it->next) {
        bool req = listed(required, it->string);
        expect_with(m, it->string, NULL, req ? BC_ERR_MISSING : BC_OK);
        expect_with(m, it->string, wrong_type_for(it), BC_ERR_TYPE);
    }
    expect_with(m, "v", "2", BC_ERR_VERSION);
    expect_with(m, "v", "0", BC_ERR_VERSION);
    expect_with(m, "unknown_field", "{\"x\":[1,2,null]}", BC_OK);
    cJSON_Delete(root);
    free(text);
}

/* --------------------------------------------------------- round trips */

static void test_round_trip_all(void **state)
{
    (void)state;
    bc_message m = sample_conn();
    round_trip(&m);
    m.conn.status = BC_CONN_OFFLINE;
    memset(m.conn.fw, 0, sizeof(m.conn.fw));
    memset(m.conn.recording_key_id, 0, sizeof(m.conn.recording_key_id));
    round_trip(&m);
    for (int st = 0; st < BC_STATE_COUNT; st++) {
        m = sample_state((bc_device_state)st);
        round_trip(&m);
    }
    m = sample_health();
    round_trip(&m);
    m.health.error_count = 0;
    memset(m.health.errors, 0, sizeof(m.health.errors));
    memset(m.health.recording_key_id, 0, sizeof(m.health.recording_key_id));
    round_trip(&m);
    for (int t = 0; t < BC_EVENT_TYPE_COUNT; t++) {
        m = sample_event((bc_event_type)t);
        round_trip(&m);
    }
    m = sample_ack(true);
    round_trip(&m);
    m = sample_ack(false);
    round_trip(&m);
    m = sample_manifest();
    round_trip(&m);
    m = sample_chunk(1000);
    round_trip(&m);
    bc_message_free(&m);
    m = sample_chunk(BC_CHUNK_MAX);
    round_trip(&m);
    bc_message_free(&m);
    m = sample_chunk(1);
    round_trip(&m);
    bc_message_free(&m);
    m = sample_csr();
    round_trip(&m);
    bc_message_free(&m);
    m = sample_summary();
    round_trip(&m);
    for (int k = 0; k < BC_ALERT_KIND_COUNT; k++) {
        m = sample_alert((bc_alert_kind)k);
        round_trip(&m);
    }
    m = sample_alert(BC_ALERT_LOW_BATTERY);
    m.alert.value = 0; /* a meaningful zero survives */
    round_trip(&m);
    m.alert.has_value = false;
    m.alert.value = 0;
    round_trip(&m);
}

static void test_enum_names(void **state)
{
    (void)state;
    bc_event_type t;
    for (int i = 0; i < BC_EVENT_TYPE_COUNT; i++) {
        const char *name = bc_event_type_name((bc_event_type)i);
        assert_non_null(name);
        assert_int_equal(bc_event_type_from_name(name, &t), BC_OK);
        assert_int_equal(t, i);
    }
    assert_null(bc_event_type_name(BC_EVENT_TYPE_COUNT));
    assert_int_equal(bc_event_type_from_name("Warning_Given", &t), BC_ERR_INVAL);
    assert_int_equal(bc_event_type_from_name(NULL, &t), BC_ERR_INVAL);
    bc_device_state s;
    assert_int_equal(bc_device_state_from_name("updating", &s), BC_OK);
    assert_int_equal(s, BC_STATE_UPDATING);
    bc_alert_kind k;
    assert_int_equal(bc_alert_kind_from_name("recording_without_warnings", &k), BC_OK);
    assert_int_equal(k, BC_ALERT_RECORDING_WITHOUT_WARNINGS);
    assert_string_equal(bc_alert_status_name(BC_ALERT_CLEARED), "cleared");
    assert_string_equal(bc_tamper_action_name(BC_TAMPER_EXPORT), "export");
    assert_string_equal(bc_upload_kind_name(BC_UPLOAD_CHUNK), "chunk");
    assert_string_equal(bc_conn_status_name(BC_CONN_OFFLINE), "offline");
    assert_null(bc_conn_status_name((bc_conn_status)7));
}

/* ------------------------------------------------- required and types */

static void test_required_fields(void **state)
{
    (void)state;
    static const char *const conn[] = {"v", "device", "status", "session", "ts", NULL};
    bc_message m = sample_conn();
    check_fields(&m, conn);

    static const char *const st[] = {"v",     "device", "state", "warnings",
                                     "since", "seq",    "ts",    NULL};
    m = sample_state(BC_STATE_STANDBY);
    check_fields(&m, st);
    static const char *const st_rec[] = {"v",   "device", "state",        "warnings", "since",
                                         "seq", "ts",     "recording_id", NULL};
    m = sample_state(BC_STATE_RECORDING);
    check_fields(&m, st_rec);

    static const char *const health[] = {"v",
                                         "device",
                                         "ts",
                                         "battery_pct",
                                         "charging",
                                         "storage_free",
                                         "storage_total",
                                         "temperature_c",
                                         "signal_dbm",
                                         "uptime_s",
                                         "fw",
                                         "pending_uploads",
                                         NULL};
    m = sample_health();
    check_fields(&m, health);

    static const char *const ack_ok[] = {"v", "device", "ts", "cmd_id", "kind", "ok", NULL};
    m = sample_ack(true);
    check_fields(&m, ack_ok);
    static const char *const ack_err[] = {"v",    "device", "ts",    "cmd_id",
                                          "kind", "ok",     "error", NULL};
    m = sample_ack(false);
    check_fields(&m, ack_err);

    static const char *const manifest[] = {
        "v",      "device",      "kind",        "recording_id", "ts",        "size",       "sha256",
        "key_id", "recorded_at", "duration_ms", "warnings",     "emergency", "chunk_size", NULL};
    m = sample_manifest();
    check_fields(&m, manifest);
    static const char *const chunk[] = {"v",      "device", "kind",   "recording_id",
                                        "offset", "data",   "sha256", NULL};
    m = sample_chunk(300);
    check_fields(&m, chunk);
    bc_message_free(&m);

    static const char *const csr[] = {"v", "device", "ts", "cmd_id", "csr", NULL};
    m = sample_csr();
    check_fields(&m, csr);
    bc_message_free(&m);

    static const char *const summary[] = {"v",      "ts",          "cameras", "online",
                                          "states", "alerts_open", NULL};
    m = sample_summary();
    check_fields(&m, summary);

    static const char *const alert[] = {"v", "ts", "id", "device", "kind", "status", NULL};
    m = sample_alert(BC_ALERT_OVERHEATING);
    check_fields(&m, alert);
    static const char *const alert_req[] = {"v", "ts", "id", "kind", "status", NULL};
    m = sample_alert(BC_ALERT_REQUEST_OVERDUE);
    check_fields(&m, alert_req);
}

static void test_event_required_fields(void **state)
{
    (void)state;
    /* proto/README.md, "event": the common fields, then per type. */
    static const struct {
        bc_event_type type;
        const char *fields[6];
    } per_type[] = {
        {BC_EVENT_WARNING_GIVEN, {"warnings"}},
        {BC_EVENT_WARNING_EXPIRED, {"warnings"}},
        {BC_EVENT_RECORD_REFUSED, {"warnings"}},
        {BC_EVENT_RECORDING_STARTED, {"recording_id", "warnings", "emergency"}},
        {BC_EVENT_RECORDING_STOPPED,
         {"recording_id", "warnings", "emergency", "duration_ms", "size"}},
        {BC_EVENT_RECORDING_SEALED, {"recording_id"}},
        {BC_EVENT_RECORDING_DELETED, {"recording_id"}},
        {BC_EVENT_RECEIPT_REFUSED, {"recording_id", "detail"}},
        {BC_EVENT_DOCKED, {NULL}},
        {BC_EVENT_UNDOCKED, {NULL}},
        {BC_EVENT_TAMPER_DENIED, {"action"}},
        {BC_EVENT_SURVEY, {"score"}},
        {BC_EVENT_KEY_INSTALLED, {"key_id"}},
        {BC_EVENT_FW_DOWNLOADING, {"version"}},
        {BC_EVENT_FW_INSTALLED, {"version"}},
        {BC_EVENT_FW_CONFIRMED, {"version"}},
        {BC_EVENT_FW_FAILED, {"version"}},
        {BC_EVENT_FW_ROLLED_BACK, {"version"}},
        {BC_EVENT_FW_REFUSED, {"version"}},
    };
    assert_int_equal(sizeof(per_type) / sizeof(per_type[0]), BC_EVENT_TYPE_COUNT);
    for (size_t i = 0; i < BC_EVENT_TYPE_COUNT; i++) {
        const char *required[12] = {"v", "device", "seq", "ts", "type"};
        size_t n = 5;
        for (size_t k = 0; k < 6 && per_type[i].fields[k] != NULL; k++)
            required[n++] = per_type[i].fields[k];
        required[n] = NULL;
        bc_message m = sample_event(per_type[i].type);
        check_fields(&m, required);
    }
}

/* ------------------------------------------------- ranges and alphabets */

static void test_ranges(void **state)
{
    (void)state;
    bc_message m = sample_health();
    expect_with(&m, "battery_pct", "101", BC_ERR_INVAL);
    expect_with(&m, "battery_pct", "-1", BC_ERR_INVAL);
    expect_with(&m, "battery_pct", "100", BC_OK);
    expect_with(&m, "battery_pct", "0", BC_OK);
    expect_with(&m, "battery_pct", "50.5", BC_ERR_INVAL);
    expect_with(&m, "battery_pct", "9007199254740993", BC_ERR_INVAL);
    expect_with(&m, "temperature_c", "36.6", BC_ERR_INVAL);
    expect_with(&m, "signal_dbm", "1", BC_ERR_INVAL);
    expect_with(&m, "storage_free", "64000000001", BC_ERR_INVAL);
    expect_with(&m, "uptime_s", "-1", BC_ERR_INVAL);
    expect_with(&m, "fw", "\"v1.2\"", BC_ERR_INVAL);
    expect_with(&m, "errors",
                "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\","
                "\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]",
                BC_ERR_INVAL);
    expect_with(&m, "errors", "[\"ok\",1]", BC_ERR_TYPE);
    expect_with(&m, "errors", "[\"two\\nlines\"]", BC_ERR_INVAL);
    expect_with(&m, "errors", "[\"\"]", BC_ERR_INVAL);
    expect_with(&m, "errors", "[]", BC_OK);
    char long_error[200];
    snprintf(long_error, sizeof(long_error), "[\"%0129d\"]", 0);
    expect_with(&m, "errors", long_error, BC_ERR_INVAL);

    m = sample_state(BC_STATE_WARNING);
    expect_with(&m, "warnings", "3", BC_ERR_INVAL);
    expect_with(&m, "warnings", "0", BC_ERR_INVAL); /* warning needs 1 or 2 */
    expect_with(&m, "warnings", "1", BC_OK);
    expect_with(&m, "state", "\"sleeping\"", BC_ERR_INVAL);
    expect_with(&m, "state", "\"Warning\"", BC_ERR_INVAL);
    m = sample_state(BC_STATE_STANDBY);
    expect_with(&m, "warnings", "1", BC_ERR_INVAL);            /* standby carries no warnings */
    expect_with(&m, "state", "\"recording\"", BC_ERR_MISSING); /* needs recording_id */
    m = sample_state(BC_STATE_RECORDING);
    expect_with(&m, "warnings", "0", BC_OK); /* an emergency recording */

    m = sample_event(BC_EVENT_SURVEY);
    expect_with(&m, "score", "0", BC_ERR_INVAL);
    expect_with(&m, "score", "6", BC_ERR_INVAL);
    expect_with(&m, "score", "5", BC_OK);
    expect_with(&m, "score", "1", BC_OK);
    expect_with(&m, "type", "\"unknown_event\"", BC_ERR_INVAL);
    m = sample_event(BC_EVENT_WARNING_GIVEN);
    expect_with(&m, "warnings", "0", BC_ERR_INVAL);
    expect_with(&m, "warnings", "2", BC_OK);
    m = sample_event(BC_EVENT_TAMPER_DENIED);
    expect_with(&m, "action", "\"burn\"", BC_ERR_INVAL);
    expect_with(&m, "action", "\"view\"", BC_OK);
    m = sample_event(BC_EVENT_RECEIPT_REFUSED);
    expect_with(&m, "detail", "\"fake\\u001b[2J\"", BC_ERR_INVAL);
    expect_with(&m, "detail", "\"\"", BC_ERR_INVAL);
    m = sample_event(BC_EVENT_FW_FAILED);
    expect_with(&m, "version", "\"1.x\"", BC_ERR_INVAL);
    m = sample_event(BC_EVENT_RECORDING_STARTED);
    expect_with(&m, "pre_event_ms", "600001", BC_ERR_INVAL);

    m = sample_conn();
    expect_with(&m, "status", "\"maybe\"", BC_ERR_INVAL);
    expect_with(&m, "session", "-1", BC_ERR_INVAL);
    m = sample_ack(false);
    expect_with(&m, "error", "\"\"", BC_ERR_INVAL);
    expect_with(&m, "kind", "\"reboot\"", BC_ERR_INVAL);
    expect_with(&m, "ok", "true", BC_OK); /* the error is then ignored */

    m = sample_manifest();
    expect_with(&m, "chunk_size", "65537", BC_ERR_INVAL);
    expect_with(&m, "chunk_size", "0", BC_ERR_INVAL);
    expect_with(&m, "warnings", "3", BC_ERR_INVAL);
    expect_with(&m, "size", "0", BC_ERR_INVAL);
    expect_with(&m, "kind", "\"other\"", BC_ERR_INVAL);
    expect_with(&m, "sha256",
                "\"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\"",
                BC_ERR_INVAL);
    expect_with(&m, "sha256", "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0\"",
                BC_ERR_INVAL);
    expect_with(&m, "sha256",
                "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0g\"",
                BC_ERR_INVAL);

    m = sample_summary();
    expect_with(&m, "online", "6", BC_ERR_INVAL);
    expect_with(&m, "states", "{\"standby\":6}", BC_ERR_INVAL);
    expect_with(&m, "states", "{\"standby\":3,\"docked\":3}", BC_ERR_INVAL);
    expect_with(&m, "states", "{\"standby\":\"3\"}", BC_ERR_TYPE);
    expect_with(&m, "states", "{\"standby\":-1}", BC_ERR_INVAL);
    expect_with(&m, "states", "{}", BC_OK);
    expect_with(&m, "states", "{\"asleep\":3}", BC_OK); /* unknown names are ignored */

    m = sample_alert(BC_ALERT_LOW_BATTERY);
    expect_with(&m, "kind", "\"fire\"", BC_ERR_INVAL);
    expect_with(&m, "status", "\"open\"", BC_ERR_INVAL);
    expect_with(&m, "value", "1.5", BC_ERR_INVAL);
}

static void test_id_alphabets(void **state)
{
    (void)state;
    static const char *const bad_devices[] = {
        "\"cam/1\"",
        "\"cam+1\"",
        "\"cam#1\"",
        "\"CAM-1\"",
        "\"Cam-1\"",
        "\"cam 1\"",
        "\"\"",
        "\"-cam\"",
        "\"$SYS\"",
        "\"cam\\u00e9\"",
        "\"abcdefghijklmnopqrstuvwxyz0123456\"",
    };
    bc_message msgs[] = {sample_conn(),
                         sample_state(BC_STATE_STANDBY),
                         sample_health(),
                         sample_event(BC_EVENT_DOCKED),
                         sample_ack(true),
                         sample_manifest(),
                         sample_alert(BC_ALERT_STORAGE_LOW)};
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        for (size_t k = 0; k < sizeof(bad_devices) / sizeof(bad_devices[0]); k++)
            expect_with(&msgs[i], "device", bad_devices[k], BC_ERR_INVAL);
    }
    char id65[80];
    char id64[80];
    snprintf(id65, sizeof(id65), "\"%065d\"", 0);
    snprintf(id64, sizeof(id64), "\"%064d\"", 0);
    const char *const bad_ids[] = {
        "\"rec/1\"", "\"rec+1\"", "\"rec#1\"",     "\"rec 1\"",
        "\"rec.1\"", "\"\"",      "\"r\\u00e9c\"", id65,
    };
    bc_message rec = sample_event(BC_EVENT_RECORDING_SEALED);
    bc_message ack = sample_ack(true);
    bc_message key = sample_event(BC_EVENT_KEY_INSTALLED);
    bc_message alert = sample_alert(BC_ALERT_UPLOAD_OVERDUE);
    for (size_t k = 0; k < sizeof(bad_ids) / sizeof(bad_ids[0]); k++) {
        expect_with(&rec, "recording_id", bad_ids[k], BC_ERR_INVAL);
        expect_with(&ack, "cmd_id", bad_ids[k], BC_ERR_INVAL);
        expect_with(&key, "key_id", bad_ids[k], BC_ERR_INVAL);
        expect_with(&alert, "id", bad_ids[k], BC_ERR_INVAL);
    }
    expect_with(&rec, "recording_id", "\"REC_2024-01\"", BC_OK); /* ids may use upper case */
    expect_with(&rec, "recording_id", id64, BC_OK);
}

static void test_chunk_integrity(void **state)
{
    (void)state;
    bc_message m = sample_chunk(2000);
    expect_with(&m, "sha256",
                "\"0000000000000000000000000000000000000000000000000000000000000000\"",
                BC_ERR_TAMPERED);
    expect_with(&m, "data", "\"!!!!\"", BC_ERR_PARSE);
    expect_with(&m, "data", "\"Zh==\"", BC_ERR_PARSE);
    expect_with(&m, "data", "\"Zg=\"", BC_ERR_PARSE);
    expect_with(&m, "data", "\"\"", BC_ERR_INVAL);
    /* A valid chunk of other bytes with the original hash: tampered. */
    expect_with(&m, "data", "\"Zm9vYmFy\"", BC_ERR_TAMPERED);

    /* Encode refuses a chunk whose data changed after its hash was set. */
    m.upload.data[5] ^= 1;
    char *text = (char *)"untouched";
    bc_error err = {{0}};
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_TAMPERED);
    assert_null(text);
    bc_message_free(&m);
    assert_null(m.upload.data);

    bc_message other = sample_conn();
    uint8_t byte = 1;
    assert_int_equal(bc_message_set_chunk_data(&other, &byte, 1), BC_ERR_INVAL);
    m = blank(BC_TOPIC_UPLOAD);
    assert_int_equal(bc_message_set_chunk_data(&m, &byte, 0), BC_ERR_INVAL);
    uint8_t *big = calloc(1, BC_CHUNK_MAX + 1);
    assert_int_equal(bc_message_set_chunk_data(&m, big, BC_CHUNK_MAX + 1), BC_ERR_INVAL);
    free(big);
}

static void test_csr_checks(void **state)
{
    (void)state;
    bc_message m = sample_csr();
    expect_with(&m, "csr", "\"not a pem\"", BC_ERR_INVAL);
    expect_with(&m, "csr", "\"-----BEGIN CERTIFICATE REQUEST-----\\u0001\"", BC_ERR_INVAL);
    expect_with(&m, "csr", "\"-----BEGIN CERTIFICATE-----\\nAAAA\\n\"", BC_ERR_INVAL);
    bc_message_free(&m);
    m = blank(BC_TOPIC_CSR);
    strcpy(m.csr.device, "cam-001");
    strcpy(m.csr.cmd_id, "c1");
    bc_error err = {{0}};
    char *text = NULL;
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_MISSING);
    char *huge = malloc(BC_CSR_PEM_MAX + 2);
    memset(huge, 'A', BC_CSR_PEM_MAX + 1);
    huge[BC_CSR_PEM_MAX + 1] = '\0';
    assert_int_equal(bc_message_set_csr(&m, huge), BC_ERR_INVAL);
    free(huge);
}

/* -------------------------------------------------------- size limits */

static void test_size_limits(void **state)
{
    (void)state;
    /* 16 KiB for a state message, even when the excess is an unknown field. */
    bc_message m = sample_state(BC_STATE_STANDBY);
    char *pad = malloc(20000);
    pad[0] = '"';
    memset(pad + 1, 'x', 17000);
    strcpy(pad + 17001, "\"");
    expect_with(&m, "padding", pad, BC_ERR_TOO_BIG);
    pad[8000] = '"';
    pad[8001] = '\0';
    expect_with(&m, "padding", pad, BC_OK);
    /* An upload message may be 128 KiB: a full 64 KiB chunk fits... */
    bc_message chunk = sample_chunk(BC_CHUNK_MAX);
    char *text = encode_ok(&chunk);
    assert_true(strlen(text) > BC_MESSAGE_MAX);
    assert_true(strlen(text) <= BC_UPLOAD_MESSAGE_MAX);
    bc_error err = {{0}};
    assert_int_equal(decode_text(BC_TOPIC_UPLOAD, text, &err), BC_OK);
    /* ...but the same bytes on another topic are over its limit. */
    assert_int_equal(decode_text(BC_TOPIC_STATE, text, &err), BC_ERR_TOO_BIG);
    free(text);
    bc_message_free(&chunk);
    /* and an upload message past 128 KiB is refused before parsing */
    char *huge = malloc(BC_UPLOAD_MESSAGE_MAX + 2);
    memset(huge, ' ', BC_UPLOAD_MESSAGE_MAX + 1);
    huge[0] = '{';
    huge[BC_UPLOAD_MESSAGE_MAX] = '}';
    huge[BC_UPLOAD_MESSAGE_MAX + 1] = '\0';
    assert_int_equal(decode_text(BC_TOPIC_UPLOAD, huge, &err), BC_ERR_TOO_BIG);
    free(huge);
    free(pad);
    assert_int_equal(bc_message_max_len(BC_TOPIC_UPLOAD), BC_UPLOAD_MESSAGE_MAX);
    assert_int_equal(bc_message_max_len(BC_TOPIC_HEALTH), BC_MESSAGE_MAX);
    assert_int_equal(bc_message_max_len(BC_TOPIC_CMD), 0);
}

static void test_parser_level_refusals(void **state)
{
    (void)state;
    bc_error err = {{0}};
    assert_int_equal(decode_text(BC_TOPIC_CMD, "{\"v\":1}", &err), BC_ERR_INVAL);
    assert_int_equal(decode_text(BC_TOPIC_FIRMWARE_CHUNK, "{\"v\":1}", &err), BC_ERR_INVAL);
    assert_int_equal(decode_text(BC_TOPIC_STATE, "[]", &err), BC_ERR_TYPE);
    bc_message m = sample_conn();
    char *text = encode_ok(&m);
    char buf[512];
    snprintf(buf, sizeof(buf), "%s,", text);
    assert_int_equal(decode_text(BC_TOPIC_CONN, buf, &err), BC_ERR_PARSE);
    snprintf(buf, sizeof(buf), "%s{}", text);
    assert_int_equal(decode_text(BC_TOPIC_CONN, buf, &err), BC_ERR_PARSE);
    /* a duplicated field is refused, whichever copy a reader would take */
    snprintf(buf, sizeof(buf), "{\"device\":\"cam-002\",%s", text + 1);
    assert_int_equal(decode_text(BC_TOPIC_CONN, buf, &err), BC_ERR_PARSE);
    /* invalid UTF-8 inside the optional firmware string */
    char *fw = strstr(text, "1.2.3");
    assert_non_null(fw);
    fw[1] = (char)0xc0;
    fw[2] = (char)0xae;
    assert_int_equal(decode_text(BC_TOPIC_CONN, text, &err), BC_ERR_PARSE);
    free(text);
}

static void test_encode_refuses_invalid(void **state)
{
    (void)state;
    bc_error err = {{0}};
    char *text = (char *)"untouched";
    bc_message m = sample_health();
    m.health.battery_pct = 101;
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    assert_null(text);
    assert_non_null(strstr(err.text, "battery_pct"));
    m = sample_conn();
    strcpy(m.conn.device, "CAM-1");
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_conn();
    memset(m.conn.device, 'a', sizeof(m.conn.device)); /* no terminator */
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_event(BC_EVENT_FW_FAILED);
    strcpy(m.event.detail, "line\nforged");
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_event(BC_EVENT_DOCKED);
    m.event.type = (bc_event_type)99;
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_state(BC_STATE_RECORDING);
    m.state.recording_id[0] = '\0';
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_ack(false);
    m.ack.error[0] = '\0';
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_health();
    m.health.error_count = BC_HEALTH_ERRORS_MAX + 1;
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_summary();
    m.summary.states[BC_STATE_DOCKED] = 3;
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_alert(BC_ALERT_LOW_BATTERY);
    m.alert.device[0] = '\0';
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    m = sample_conn();
    m.kind = BC_TOPIC_CMD;
    assert_int_equal(bc_message_encode(&m, &text, &err), BC_ERR_INVAL);
    assert_int_equal(bc_message_encode(NULL, &text, &err), BC_ERR_INVAL);
    assert_int_equal(bc_message_validate(NULL, &err), BC_ERR_INVAL);

    /* what other kinds' fields hold does not leak into the JSON */
    m = sample_event(BC_EVENT_DOCKED);
    strcpy(m.event.recording_id, "rec-9");
    m.event.score = 5;
    text = encode_ok(&m);
    assert_null(strstr(text, "recording_id"));
    assert_null(strstr(text, "score"));
    free(text);
}

static void test_device_accessor(void **state)
{
    (void)state;
    bc_message m = sample_event(BC_EVENT_DOCKED);
    assert_string_equal(bc_message_device(&m), "cam-001");
    m = sample_summary();
    assert_null(bc_message_device(&m));
    m = sample_alert(BC_ALERT_REQUEST_OVERDUE);
    assert_string_equal(bc_message_device(&m), "");
}

/* ------------------------------------------------------------ fuzzing */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static const char interesting[] = "\"\\/+#A{}[],:0-9e.\x00\xff\xc0\x80 \tZz";

static size_t mutate(char *buf, size_t len, size_t cap)
{
    size_t pos = len > 0 ? rnd() % len : 0;
    char c = rnd() % 2 ? interesting[rnd() % (sizeof(interesting) - 1)] : (char)(rnd() & 0xff);
    switch (rnd() % 3) {
    case 0:
        if (len > 0)
            buf[pos] = c;
        return len;
    case 1:
        if (len + 1 >= cap)
            return len;
        memmove(buf + pos + 1, buf + pos, len - pos);
        buf[pos] = c;
        return len + 1;
    default:
        if (len == 0)
            return len;
        memmove(buf + pos, buf + pos + 1, len - pos - 1);
        return len - 1;
    }
}

/* Whatever a decoder accepts must be a valid message that prints again. */
static void check_accepted(bc_message *m)
{
    bc_error err = {{0}};
    assert_int_equal(bc_message_validate(m, &err), BC_OK);
    const char *device = bc_message_device(m);
    if (device != NULL && (device[0] != '\0' || m->kind != BC_TOPIC_FLEET_ALERTS))
        assert_true(bc_device_id_valid(device));
    char *again = NULL;
    assert_int_equal(bc_message_encode(m, &again, &err), BC_OK);
    free(again);
}

static void fuzz_one(const bc_message *sample, int rounds)
{
    char *text = encode_ok(sample);
    size_t len = strlen(text);
    char *buf = malloc(len + 64);
    assert_non_null(buf);

    for (size_t n = 0; n < len; n++) { /* every truncation is refused */
        bc_message m;
        char *exact = malloc(n + 1); /* exactly n bytes: ASan sees any overread */
        memcpy(exact, text, n);
        bc_status rc = bc_message_decode(sample->kind, exact, n, &m, NULL);
        free(exact);
        if (rc == BC_OK)
            fail_msg("accepted a truncation to %zu of '%s'", n, text);
        assert_null(m.kind == BC_TOPIC_UPLOAD ? (void *)m.upload.data : NULL);
    }
    for (int r = 0; r < rounds; r++) {
        memcpy(buf, text, len);
        size_t n = len;
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++)
            n = mutate(buf, n, len + 64);
        bc_message m;
        char *exact = malloc(n + 1);
        memcpy(exact, buf, n);
        if (bc_message_decode(sample->kind, exact, n, &m, NULL) == BC_OK)
            check_accepted(&m);
        free(exact);
        bc_message_free(&m);
    }
    free(buf);
    free(text);
}

/* Every character of the device id replaced by one outside the alphabet. */
static void poison_device(const bc_message *sample)
{
    char *text = encode_ok(sample);
    char *dev = strstr(text, "\"device\":\"cam-001\"");
    assert_non_null(dev);
    dev += strlen("\"device\":\"");
    static const char poison[] = "/+#A $";
    for (size_t i = 0; i < strlen("cam-001"); i++) {
        for (size_t k = 0; k < sizeof(poison) - 1; k++) {
            char saved = dev[i];
            dev[i] = poison[k];
            bc_error err = {{0}};
            bc_status rc = decode_text(sample->kind, text, &err);
            if (rc == BC_OK)
                fail_msg("accepted device with '%c' in '%s'", poison[k], text);
            dev[i] = saved;
        }
    }
    free(text);
}

static void test_fuzz_decoders(void **state)
{
    (void)state;
    bc_message samples[] = {
        sample_conn(),
        sample_state(BC_STATE_RECORDING),
        sample_state(BC_STATE_WARNING),
        sample_health(),
        sample_ack(true),
        sample_ack(false),
        sample_manifest(),
        sample_summary(),
        sample_alert(BC_ALERT_LOW_BATTERY),
        sample_alert(BC_ALERT_REQUEST_OVERDUE),
    };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        fuzz_one(&samples[i], 3000);
        if (bc_message_device(&samples[i]) != NULL && bc_message_device(&samples[i])[0] != '\0')
            poison_device(&samples[i]);
    }
    for (int t = 0; t < BC_EVENT_TYPE_COUNT; t++) {
        bc_message m = sample_event((bc_event_type)t);
        fuzz_one(&m, 600);
        poison_device(&m);
    }
    bc_message chunk = sample_chunk(200);
    fuzz_one(&chunk, 3000);
    poison_device(&chunk);
    bc_message_free(&chunk);
    bc_message csr = sample_csr();
    fuzz_one(&csr, 3000);
    poison_device(&csr);
    bc_message_free(&csr);
}

/* ------------------------------------------- upload chunks: fast paths */

/* bc_message_encode_chunk prints exactly what bc_message_encode prints. */
static void test_encode_chunk_same_text(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 2, 3, 4, 5, 100, 32768, BC_CHUNK_MAX};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        bc_message m = sample_chunk(lens[i]);
        char *want = encode_ok(&m);
        size_t size = bc_message_chunk_json_max(lens[i]);
        assert_true(size > strlen(want));
        char *out = malloc(size);
        assert_non_null(out);
        size_t n = 0;
        bc_message head = m; /* data and sha256 are the encoder's own: leave junk there */
        head.upload.data = NULL;
        head.upload.data_len = 12345;
        strcpy(head.upload.sha256, "not a hash");
        bc_error err = {{0}};
        assert_int_equal(
            bc_message_encode_chunk(&head, m.upload.data, m.upload.data_len, out, size, &n, &err),
            BC_OK);
        assert_int_equal(n, strlen(want));
        assert_string_equal(out, want);
        /* one byte short of the text and its NUL: refused, nothing half-said */
        assert_int_equal(bc_message_encode_chunk(&head, m.upload.data, m.upload.data_len, out,
                                                 strlen(want), &n, &err),
                         BC_ERR_TOO_BIG);
        assert_int_equal(n, 0);
        free(out);
        free(want);
        bc_message_free(&m);
    }
    assert_int_equal(bc_message_chunk_json_max(BC_CHUNK_MAX + 1), 0);
}

static void test_encode_chunk_refuses(void **state)
{
    (void)state;
    bc_message m = sample_chunk(10);
    char out[1024];
    size_t n = 0;
    bc_error err = {{0}};
    bc_message bad = m;
    strcpy(bad.upload.device, "cam 001");
    assert_int_equal(bc_message_encode_chunk(&bad, m.upload.data, 10, out, sizeof(out), &n, &err),
                     BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "device"));
    bad = m;
    bad.upload.offset = -1;
    assert_int_equal(bc_message_encode_chunk(&bad, m.upload.data, 10, out, sizeof(out), &n, &err),
                     BC_ERR_INVAL);
    assert_non_null(strstr(err.text, "offset"));
    bad = m;
    bad.upload.kind = BC_UPLOAD_MANIFEST;
    assert_int_equal(bc_message_encode_chunk(&bad, m.upload.data, 10, out, sizeof(out), &n, &err),
                     BC_ERR_INVAL);
    bc_message conn = sample_conn();
    assert_int_equal(bc_message_encode_chunk(&conn, m.upload.data, 10, out, sizeof(out), &n, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_message_encode_chunk(&m, m.upload.data, 0, out, sizeof(out), &n, &err),
                     BC_ERR_INVAL);
    assert_int_equal(bc_message_encode_chunk(&m, NULL, 10, out, sizeof(out), &n, &err),
                     BC_ERR_INVAL);
    uint8_t *big = calloc(1, BC_CHUNK_MAX + 1);
    assert_int_equal(bc_message_encode_chunk(&m, big, BC_CHUNK_MAX + 1, out, sizeof(out), &n, &err),
                     BC_ERR_INVAL);
    free(big);
    bc_message_free(&m);
}

static bc_status decode_shallow_with(const bc_message *m, const char *key, const char *raw,
                                     bc_message *out)
{
    char *text = encode_ok(m);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    if (raw != NULL) {
        cJSON *value = cJSON_Parse(raw);
        assert_non_null(value);
        cJSON_AddItemToObject(root, key, value);
    }
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    bc_status rc = bc_message_decode_shallow(m->kind, text, strlen(text), out, NULL);
    free(text);
    return rc;
}

/* Shallow: a chunk's data is a string of the right size, nothing more;
 * every other field, and every other kind, exactly as a full decode. */
static void test_decode_shallow(void **state)
{
    (void)state;
    bc_message m = sample_chunk(2000);
    bc_message out;
    /* what only the data's content shows passes (the vault decodes it) ... */
    static const char *const unchecked[] = {
        "\"!!!!\"",
        "\"Zh==\"",
        "\"Zg=\"",
        "\"Zm9vYmFy\"",
    };
    for (size_t i = 0; i < sizeof(unchecked) / sizeof(unchecked[0]); i++) {
        assert_int_equal(decode_shallow_with(&m, "data", unchecked[i], &out), BC_OK);
        assert_null(out.upload.data);
        assert_int_equal(out.upload.data_len, 0);
        assert_string_equal(out.upload.device, "cam-001");
        assert_string_equal(out.upload.recording_id, "rec-1");
        assert_int_equal(out.upload.offset, 65536);
        assert_string_equal(out.upload.sha256, m.upload.sha256);
        bc_message_free(&out);
    }
    assert_int_equal(decode_shallow_with(&m, "sha256",
                                         "\"00000000000000000000000000000000"
                                         "00000000000000000000000000000000\"",
                                         &out),
                     BC_OK);
    bc_message_free(&out);
    /* ... and nothing else does */
    char long_data[BC_UPLOAD_MESSAGE_MAX];
    size_t over = bc_base64_encoded_len(BC_CHUNK_MAX) + 4;
    long_data[0] = '"';
    memset(long_data + 1, 'A', over);
    strcpy(long_data + 1 + over, "\"");
    static const struct {
        const char *key, *raw;
        bc_status want;
    } refused[] = {
        {"data", "\"\"", BC_ERR_INVAL},
        {"data", NULL, BC_ERR_MISSING},
        {"data", "5", BC_ERR_TYPE},
        {"device", "\"cam 001\"", BC_ERR_INVAL},
        {"recording_id", "\"a/b\"", BC_ERR_INVAL},
        {"sha256", "\"ABC\"", BC_ERR_INVAL},
        {"offset", "-1", BC_ERR_INVAL},
        {"kind", "\"chunky\"", BC_ERR_INVAL},
        {"v", "2", BC_ERR_VERSION},
        {"offset", NULL, BC_ERR_MISSING},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        bc_status got = decode_shallow_with(&m, refused[i].key, refused[i].raw, &out);
        if (got != refused[i].want)
            fail_msg("%s=%s: got %s", refused[i].key, refused[i].raw ? refused[i].raw : "-",
                     bc_strerror(got));
    }
    assert_int_equal(decode_shallow_with(&m, "data", long_data, &out), BC_ERR_INVAL);
    bc_message_free(&m);

    /* other kinds and the manifest: the same verdicts and values as decode */
    bc_message others[] = {sample_manifest(), sample_state(BC_STATE_RECORDING), sample_health(),
                           sample_csr()};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        char *text = encode_ok(&others[i]);
        bc_message a, b;
        assert_int_equal(bc_message_decode_shallow(others[i].kind, text, strlen(text), &a, NULL),
                         BC_OK);
        assert_int_equal(bc_message_decode(others[i].kind, text, strlen(text), &b, NULL), BC_OK);
        assert_same(&a, &b);
        bc_message_free(&a);
        bc_message_free(&b);
        text[strlen(text) / 2] = '\x01'; /* broken: refused by both */
        assert_int_equal(bc_message_decode_shallow(others[i].kind, text, strlen(text), &a, NULL),
                         BC_ERR_PARSE);
        free(text);
        bc_message_free(&others[i]);
    }
}

/* Decodes text as it is - the flat path when it is plain - and with an
 * unknown member holding an array put first, which means the same but is
 * not flat, so the cJSON path reads it: the verdicts and values agree. */
static void expect_paths_agree(const char *text, size_t len, bool shallow)
{
    size_t brace = 0;
    while (brace < len && strchr(" \t\r\n", text[brace]) != NULL && text[brace] != '\0')
        brace++;
    size_t next = brace + 1;
    while (next < len && strchr(" \t\r\n", text[next]) != NULL && text[next] != '\0')
        next++;
    if (brace >= len || text[brace] != '{' || next >= len || text[next] != '"')
        return; /* no first member to put one before */
    static const char nested[] = "\"~cjson~\":[],";
    size_t slow_len = len + sizeof(nested) - 1;
    char *slow = malloc(slow_len);
    assert_non_null(slow);
    memcpy(slow, text, brace + 1);
    memcpy(slow + brace + 1, nested, sizeof(nested) - 1);
    memcpy(slow + brace + sizeof(nested), text + brace + 1, len - brace - 1);
    bc_message a, b;
    bc_status ra = shallow ? bc_message_decode_shallow(BC_TOPIC_UPLOAD, text, len, &a, NULL)
                           : bc_message_decode(BC_TOPIC_UPLOAD, text, len, &a, NULL);
    bc_status rb = shallow ? bc_message_decode_shallow(BC_TOPIC_UPLOAD, slow, slow_len, &b, NULL)
                           : bc_message_decode(BC_TOPIC_UPLOAD, slow, slow_len, &b, NULL);
    if (ra != rb)
        fail_msg("'%.*s' (%s): as is %s, through cJSON %s", (int)(len < 300 ? len : 300), text,
                 shallow ? "shallow" : "full", bc_strerror(ra), bc_strerror(rb));
    if (ra == BC_OK)
        assert_same(&a, &b);
    bc_message_free(&a);
    bc_message_free(&b);
    free(slow);
}

static void expect_agree_both(const char *text)
{
    expect_paths_agree(text, strlen(text), false);
    expect_paths_agree(text, strlen(text), true);
}

static void test_flat_path_agrees(void **state)
{
    (void)state;
    bc_message m = sample_chunk(30);
    char *canon = encode_ok(&m);
    expect_agree_both(canon);
    char data[64], sha[80];
    const char *d = strstr(canon, "\"data\":\"") + 7;
    snprintf(data, sizeof(data), "%.*s", (int)(strchr(d + 1, '"') - d + 1), d);
    snprintf(sha, sizeof(sha), "\"%s\"", m.upload.sha256);
    /* one field at a time in every form that matters to either path */
    static const char *const v[] = {"1", "1.0", "2", "\"1\"", "-1", "01", "1e0", "true", "null"};
    static const char *const dev[] = {"\"cam-001\"",
                                      "\"cam-00\\u0031\"",
                                      "\"cam 001\"",
                                      "\"\"",
                                      "\"cam-002\"",
                                      "\"caf\xc3\xa9\"",
                                      "7"};
    static const char *const kind[] = {"\"chunk\"", "\"manifest\"", "\"Chunk\"",      "\"chunk \"",
                                       "1",         "null",         "\"ch\\u0075nk\""};
    static const char *const off[] = {"65536",
                                      "0",
                                      "-0",
                                      "01",
                                      "1.0",
                                      "1e3",
                                      "65536.5",
                                      "-1",
                                      "999999999999999",
                                      "9007199254740991",
                                      "9007199254740992",
                                      "1234567890123456",
                                      "\"65536\"",
                                      "true",
                                      "[]",
                                      "{}"};
    static const char *const dat[] = {"\"\"",           "\"!!!!\"", "\"Zg==\"", "\"Zh==\"",
                                      "\"\\u0041AAA\"", "\"AAAA\"", "null",     "1"};
    static const char *const extra[] = {"",
                                        ",\"x\":1",
                                        ",\"x\":\"\xc3\xa9\"",
                                        ",\"x\":{\"a\":1}",
                                        ",\"x\":[1]",
                                        ",\"x\":true",
                                        ",\"x\":null",
                                        ",\"x\":1.5",
                                        ",\"x\":\"\n\"",
                                        ",\"offset\":1",
                                        ",\"ts\":\"a\"",
                                        ",\"size\":-5",
                                        ",\"data\":\"AAAA\"",
                                        ",\"v\":1",
                                        ",\"\":0"};
    char text[1024];
#define CHUNK_FMT                                                                                  \
    "{\"v\":%s,\"device\":%s,\"kind\":%s,\"recording_id\":\"rec-1\",\"sha256\":%s,"                \
    "\"offset\":%s,\"data\":%s%s}"
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        snprintf(text, sizeof(text), CHUNK_FMT, v[i], dev[0], kind[0], sha, off[0], data, "");
        expect_agree_both(text);
    }
    for (size_t i = 0; i < sizeof(dev) / sizeof(dev[0]); i++) {
        snprintf(text, sizeof(text), CHUNK_FMT, v[0], dev[i], kind[0], sha, off[0], data, "");
        expect_agree_both(text);
    }
    for (size_t i = 0; i < sizeof(kind) / sizeof(kind[0]); i++) {
        snprintf(text, sizeof(text), CHUNK_FMT, v[0], dev[0], kind[i], sha, off[0], data, "");
        expect_agree_both(text);
    }
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        snprintf(text, sizeof(text), CHUNK_FMT, v[0], dev[0], kind[0], sha, off[i], data, "");
        expect_agree_both(text);
    }
    for (size_t i = 0; i < sizeof(dat) / sizeof(dat[0]); i++) {
        snprintf(text, sizeof(text), CHUNK_FMT, v[0], dev[0], kind[0], sha, off[0], dat[i], "");
        expect_agree_both(text);
    }
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        snprintf(text, sizeof(text), CHUNK_FMT, v[0], dev[0], kind[0], sha, off[0], data, extra[i]);
        expect_agree_both(text);
    }
#undef CHUNK_FMT
    /* the same members in another order and spacing */
    snprintf(text, sizeof(text),
             " {\n\t\"data\" : %s ,\"offset\":65536, \"sha256\":%s,\"recording_id\":\"rec-1\","
             "\"kind\":\"chunk\",\"device\":\"cam-001\",\"v\":1}\r\n",
             data, sha);
    expect_agree_both(text);
    bc_message a;
    assert_int_equal(bc_message_decode(BC_TOPIC_UPLOAD, text, strlen(text), &a, NULL), BC_OK);
    assert_same(&m, &a);
    bc_message_free(&a);

    /* and random edits of the whole text */
    size_t len = strlen(canon);
    char *buf = malloc(len + 64);
    assert_non_null(buf);
    for (int r = 0; r < 4000; r++) {
        memcpy(buf, canon, len);
        size_t n = len;
        int edits = 1 + (int)(rnd() % 3);
        for (int e = 0; e < edits; e++)
            n = mutate(buf, n, len + 64);
        expect_paths_agree(buf, n, r % 2 == 1);
    }
    free(buf);
    free(canon);
    bc_message_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all),
        cmocka_unit_test(test_enum_names),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_event_required_fields),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_id_alphabets),
        cmocka_unit_test(test_chunk_integrity),
        cmocka_unit_test(test_csr_checks),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_parser_level_refusals),
        cmocka_unit_test(test_encode_refuses_invalid),
        cmocka_unit_test(test_device_accessor),
        cmocka_unit_test(test_fuzz_decoders),
        cmocka_unit_test(test_encode_chunk_same_text),
        cmocka_unit_test(test_encode_chunk_refuses),
        cmocka_unit_test(test_decode_shallow),
        cmocka_unit_test(test_flat_path_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
