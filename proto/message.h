/*
 * message.h - every device -> backend and fleet message of proto/README.md
 * ("Messages"): one struct each, gathered in the tagged bc_message, and one
 * encode / decode / validate for all of them.
 *
 * A bc_message is selected by the topic kind it travels on (bc_topic_kind:
 * CONN, STATE, HEALTH, EVENT, ACK, UPLOAD, CSR, FLEET_SUMMARY, FLEET_ALERTS).
 * Struct members carry the JSON field names. Optional strings are "" when
 * absent and are then left out of the JSON; optional integers are 0 when
 * absent (alert's value has a has_value flag because 0 means something).
 *
 * Validation is the same on both sides: decode refuses a message that
 * bc_message_validate() would refuse, and encode refuses to print one, so
 * no component can emit what another would drop. Decode checks the payload
 * alone; the caller compares msg.<x>.device with the topic's device and the
 * client's identity.
 *
 * Memory: all strings are fixed arrays except upload.data and csr.csr,
 * which the struct owns once set (by decode, or by the bc_message_set_*
 * helpers, which copy). bc_message_free() releases them; call it after
 * every successful decode and after filling an upload or csr message.
 */
#ifndef BC_PROTO_MESSAGE_H
#define BC_PROTO_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/command.h"
#include "proto/firmware.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_MESSAGE_MAX 16384         /* bytes of JSON, every message but upload */
#define BC_UPLOAD_MESSAGE_MAX 131072 /* bytes of JSON of an upload message */
#define BC_CHUNK_MAX 65536           /* decoded bytes in one upload chunk */
#define BC_TEXT_MAX 200              /* detail, ack error (bytes of UTF-8) */
#define BC_HEALTH_ERRORS_MAX 16
#define BC_HEALTH_ERROR_MAX 128 /* bytes of one health error string */
#define BC_CSR_PEM_MAX 8192

/* --- enumerations: each has a wire name (NULL when out of range) and a
 * parser (BC_ERR_INVAL for an unknown name, out unchanged). */

typedef enum bc_conn_status {
    BC_CONN_ONLINE,
    BC_CONN_OFFLINE,
    BC_CONN_STATUS_COUNT
} bc_conn_status;
const char *bc_conn_status_name(bc_conn_status v);
bc_status bc_conn_status_from_name(const char *name, bc_conn_status *out);

typedef enum bc_device_state {
    BC_STATE_STANDBY,
    BC_STATE_WARNING,
    BC_STATE_RECORDING,
    BC_STATE_DOCKED,
    BC_STATE_UPDATING,
    BC_STATE_COUNT
} bc_device_state;
const char *bc_device_state_name(bc_device_state v);
bc_status bc_device_state_from_name(const char *name, bc_device_state *out);

typedef enum bc_event_type {
    BC_EVENT_WARNING_GIVEN,
    BC_EVENT_WARNING_EXPIRED,
    BC_EVENT_RECORD_REFUSED,
    BC_EVENT_RECORDING_STARTED,
    BC_EVENT_RECORDING_STOPPED,
    BC_EVENT_RECORDING_SEALED,
    BC_EVENT_RECORDING_DELETED,
    BC_EVENT_RECEIPT_REFUSED,
    BC_EVENT_DOCKED,
    BC_EVENT_UNDOCKED,
    BC_EVENT_TAMPER_DENIED,
    BC_EVENT_SURVEY,
    BC_EVENT_KEY_INSTALLED,
    BC_EVENT_FW_DOWNLOADING,
    BC_EVENT_FW_INSTALLED,
    BC_EVENT_FW_CONFIRMED,
    BC_EVENT_FW_FAILED,
    BC_EVENT_FW_ROLLED_BACK,
    BC_EVENT_FW_REFUSED,
    BC_EVENT_TYPE_COUNT
} bc_event_type;
const char *bc_event_type_name(bc_event_type v);
bc_status bc_event_type_from_name(const char *name, bc_event_type *out);

typedef enum bc_tamper_action {
    BC_TAMPER_VIEW,
    BC_TAMPER_DELETE,
    BC_TAMPER_EXPORT,
    BC_TAMPER_ACTION_COUNT
} bc_tamper_action;
const char *bc_tamper_action_name(bc_tamper_action v);
bc_status bc_tamper_action_from_name(const char *name, bc_tamper_action *out);

typedef enum bc_upload_kind {
    BC_UPLOAD_MANIFEST,
    BC_UPLOAD_CHUNK,
    BC_UPLOAD_KIND_COUNT
} bc_upload_kind;
const char *bc_upload_kind_name(bc_upload_kind v);
bc_status bc_upload_kind_from_name(const char *name, bc_upload_kind *out);

typedef enum bc_alert_kind {
    BC_ALERT_LOW_BATTERY,
    BC_ALERT_STORAGE_LOW,
    BC_ALERT_OVERHEATING,
    BC_ALERT_OFFLINE_IN_SHIFT,
    BC_ALERT_RECORDING_WITHOUT_WARNINGS,
    BC_ALERT_UPLOAD_OVERDUE,
    BC_ALERT_REQUEST_OVERDUE,  /* about an access request: device optional */
    BC_ALERT_IDENTITY_REFUSED, /* a CSR refused: another camera's CN, a revoked camera, ... */
    BC_ALERT_ROLLOUT_HALTED,   /* a firmware rollout passed its error threshold */
    BC_ALERT_KIND_COUNT
} bc_alert_kind;
const char *bc_alert_kind_name(bc_alert_kind v);
bc_status bc_alert_kind_from_name(const char *name, bc_alert_kind *out);

typedef enum bc_alert_status {
    BC_ALERT_RAISED,
    BC_ALERT_CLEARED,
    BC_ALERT_STATUS_COUNT
} bc_alert_status;
const char *bc_alert_status_name(bc_alert_status v);
bc_status bc_alert_status_from_name(const char *name, bc_alert_status *out);

/* --- the messages. Times are ms since the epoch; "[a, b]" are the ranges
 * validate enforces; ids are checked with bc_device_id_valid / bc_id_valid,
 * versions with bc_version_valid, sha256 as 64 lowercase hex digits, text
 * must hold no control character. */

typedef struct bc_msg_conn {
    char device[BC_DEVICE_ID_MAX + 1];
    bc_conn_status status;
    int64_t session; /* [0, 2^53): grows with every connection */
    int64_t ts;
    char fw[BC_VERSION_MAX + 1];          /* optional */
    char recording_key_id[BC_ID_MAX + 1]; /* optional */
} bc_msg_conn;

typedef struct bc_msg_state {
    char device[BC_DEVICE_ID_MAX + 1];
    bc_device_state state;
    int64_t warnings; /* warning: [1, 2]; recording: [0, 2]; otherwise 0 */
    int64_t since;    /* when this state was entered */
    int64_t seq;
    int64_t ts;
    char recording_id[BC_ID_MAX + 1]; /* required when recording, ignored otherwise */
} bc_msg_state;

typedef struct bc_msg_health {
    char device[BC_DEVICE_ID_MAX + 1];
    int64_t ts;
    int64_t battery_pct; /* [0, 100] */
    bool charging;
    int64_t storage_free;  /* bytes, [0, storage_total] */
    int64_t storage_total; /* bytes */
    int64_t temperature_c; /* whole degrees, [-100, 200] */
    int64_t signal_dbm;    /* [-200, 0] */
    int64_t uptime_s;
    char fw[BC_VERSION_MAX + 1];
    char recording_key_id[BC_ID_MAX + 1]; /* optional */
    int64_t pending_uploads;
    size_t error_count; /* [0, BC_HEALTH_ERRORS_MAX]; "errors" is left out when 0 */
    char errors[BC_HEALTH_ERRORS_MAX][BC_HEALTH_ERROR_MAX + 1]; /* non-empty text */
} bc_msg_health;

/* Which fields an event type carries (required, (optional)); the others
 * are ignored by decode and left out by encode:
 *   warning_given, warning_expired   warnings [1, 2]
 *   record_refused                   warnings
 *   recording_started                recording_id, warnings, emergency, (pre_event_ms)
 *   recording_stopped                recording_id, warnings, emergency, duration_ms, size
 *   recording_sealed, _deleted       recording_id
 *   receipt_refused                  recording_id, detail
 *   docked, undocked                 -
 *   tamper_denied                    action, (recording_id)
 *   survey                           score [1, 5]
 *   key_installed                    key_id
 *   fw_*                             version, (detail) */
typedef struct bc_msg_event {
    char device[BC_DEVICE_ID_MAX + 1];
    int64_t seq;
    int64_t ts;
    bc_event_type type;
    int64_t warnings; /* [0, 2] */
    char recording_id[BC_ID_MAX + 1];
    bool emergency;       /* the long press: recording without two warnings */
    int64_t pre_event_ms; /* [0, 600000] of buffered video put in front */
    int64_t duration_ms;
    int64_t size; /* bytes */
    char detail[BC_TEXT_MAX + 1];
    bc_tamper_action action;
    int64_t score; /* [1, 5] */
    char key_id[BC_ID_MAX + 1];
    char version[BC_VERSION_MAX + 1];
} bc_msg_event;

typedef struct bc_msg_ack {
    char device[BC_DEVICE_ID_MAX + 1];
    int64_t ts;
    char cmd_id[BC_ID_MAX + 1];
    bc_command_kind kind;
    bool ok;
    char error[BC_TEXT_MAX + 1]; /* required (non-empty) when !ok, left out when ok */
} bc_msg_ack;

/* manifest: ts, size [1, 2^53), sha256 (of the whole file), key_id,
 *           recorded_at, duration_ms, warnings [0, 2], emergency,
 *           chunk_size [1, BC_CHUNK_MAX]
 * chunk:    offset, data (1 .. BC_CHUNK_MAX bytes, base64 in JSON),
 *           sha256 (of data; a mismatch is BC_ERR_TAMPERED) */
typedef struct bc_msg_upload {
    char device[BC_DEVICE_ID_MAX + 1];
    bc_upload_kind kind;
    char recording_id[BC_ID_MAX + 1];
    char sha256[BC_SHA256_HEX_LEN + 1];
    int64_t ts;
    int64_t size;
    char key_id[BC_ID_MAX + 1];
    int64_t recorded_at;
    int64_t duration_ms;
    int64_t warnings;
    bool emergency;
    int64_t chunk_size;
    int64_t offset;
    uint8_t *data; /* owned; see bc_message_set_chunk_data() */
    size_t data_len;
} bc_msg_upload;

typedef struct bc_msg_csr {
    char device[BC_DEVICE_ID_MAX + 1];
    int64_t ts;
    char cmd_id[BC_ID_MAX + 1]; /* the rotate-identity command it answers */
    char *csr; /* owned PEM "-----BEGIN CERTIFICATE REQUEST-----", <= BC_CSR_PEM_MAX */
} bc_msg_csr;

typedef struct bc_msg_summary {
    int64_t ts;
    int64_t cameras;
    int64_t online;                 /* [0, cameras] */
    int64_t states[BC_STATE_COUNT]; /* JSON object state name -> count; sum <= cameras */
    int64_t alerts_open;
    int64_t rollouts_active;  /* optional */
    int64_t rotations_active; /* optional */
    /* optional: cameras of the active key rotation campaigns, and of those
     * the ones done and failed (progress for the dashboard) */
    int64_t rotation_cameras;
    int64_t rotation_done;
    int64_t rotation_failed;
    /* optional: cameras of the active firmware rollouts, and of those the
     * ones updated, failed (failed or rolled back) and the current wave
     * (1-based, of wave_count) */
    int64_t rollout_cameras;
    int64_t rollout_updated;
    int64_t rollout_failed;
    int64_t rollout_wave;
    int64_t rollout_waves;
} bc_msg_summary;

typedef struct bc_msg_alert {
    int64_t ts;
    char id[BC_ID_MAX + 1];
    char device[BC_DEVICE_ID_MAX + 1]; /* optional only for request_overdue */
    bc_alert_kind kind;
    bc_alert_status status;
    char detail[BC_TEXT_MAX + 1]; /* optional */
    bool has_value;
    int64_t value; /* optional: the measured value (pct, degrees, hours, ...) */
} bc_msg_alert;

typedef struct bc_message {
    bc_topic_kind kind; /* selects the member below */
    union {
        bc_msg_conn conn;
        bc_msg_state state;
        bc_msg_health health;
        bc_msg_event event;
        bc_msg_ack ack;
        bc_msg_upload upload;
        bc_msg_csr csr;
        bc_msg_summary summary;
        bc_msg_alert alert;
    };
} bc_message;

/* Largest JSON accepted for kind (BC_MESSAGE_MAX, or BC_UPLOAD_MESSAGE_MAX
 * for upload); 0 when kind carries no bc_message (cmd, firmware chunks). */
size_t bc_message_max_len(bc_topic_kind kind);

/* Parses len bytes of JSON for a message of the given topic kind into *out
 * (zeroed first, out->kind set) and validates it. Statuses: BC_ERR_INVAL for
 * a kind without a message; the bc_json_parse statuses (BC_ERR_TOO_BIG over
 * bc_message_max_len); BC_ERR_VERSION; BC_ERR_MISSING / BC_ERR_TYPE /
 * BC_ERR_INVAL naming the field; BC_ERR_PARSE for chunk data that is not
 * canonical base64; BC_ERR_TAMPERED when a chunk's sha256 does not match its
 * data. On failure nothing is left to free. */
bc_status bc_message_decode(bc_topic_kind kind, const char *buf, size_t len, bc_message *out,
                            bc_error *err);

/* As bc_message_decode, except that an upload chunk's data is only required
 * to be a non-empty JSON string no longer than the base64 of BC_CHUNK_MAX
 * bytes: it is neither decoded nor compared with sha256 (upload.data stays
 * NULL, data_len 0; sha256 is still checked to be 64 lowercase hex digits).
 * Every other field, and every other kind, is checked exactly as by
 * bc_message_decode. For a reader that passes the payload on, unchanged, to
 * one that decodes it fully before using the bytes (the gateway in front of
 * the vault; the broker plugin has decoded it in full before): it must not
 * rely on the data being canonical base64 or matching sha256. */
bc_status bc_message_decode_shallow(bc_topic_kind kind, const char *buf, size_t len,
                                    bc_message *out, bc_error *err);

/* Checks every field as decode does; BC_OK or the first failure. */
bc_status bc_message_validate(const bc_message *msg, bc_error *err);

/* Validates msg, then prints it as JSON into a malloc'd NUL-terminated
 * string the caller free()s. On failure *out is NULL. */
bc_status bc_message_encode(const bc_message *msg, char **out, bc_error *err);

/* Encodes an upload chunk (msg: kind BC_TOPIC_UPLOAD, upload.kind
 * BC_UPLOAD_CHUNK, with device, recording_id and offset; its data, data_len
 * and sha256 are ignored) carrying the len bytes at data (1..BC_CHUNK_MAX)
 * and their SHA-256, into out: out_size bytes, at least
 * bc_message_chunk_json_max(len); NUL-terminated, *out_len the JSON's
 * length. The text is exactly what bc_message_encode prints for that
 * message with that data, and is refused (BC_ERR_INVAL naming the field)
 * exactly when it would be; BC_ERR_TOO_BIG when out is too small. For the
 * camera's upload path: the data is hashed once and nothing of its size is
 * allocated. */
bc_status bc_message_encode_chunk(const bc_message *msg, const uint8_t *data, size_t len, char *out,
                                  size_t out_size, size_t *out_len, bc_error *err);

/* Buffer size that bc_message_encode_chunk always fits a chunk of len data
 * bytes in; 0 when len is over BC_CHUNK_MAX. */
size_t bc_message_chunk_json_max(size_t len);

/* Encodes a fleet message (BC_TOPIC_FLEET_SUMMARY or _ALERTS) as
 * bc_message_encode does and writes the topic it is published on into
 * topic. BC_ERR_INVAL for another kind; on failure *out is NULL. */
bc_status bc_message_encode_fleet(const bc_message *msg, char *topic, size_t topic_size, char **out,
                                  bc_error *err);

/* Releases upload.data or csr.csr and sets the pointer to NULL. */
void bc_message_free(bc_message *msg);

/* The device a message is about ("" possible for an alert), or NULL for a
 * summary or an unknown kind. Borrowed from msg. */
const char *bc_message_device(const bc_message *msg);

/* For an upload message: copies len (1..BC_CHUNK_MAX) bytes into a new
 * upload.data (freeing the old one) and sets data_len and sha256 to match.
 * BC_ERR_INVAL for another kind or a bad length; BC_ERR_NOMEM. */
bc_status bc_message_set_chunk_data(bc_message *msg, const uint8_t *data, size_t len);

/* For a csr message: copies pem into a new csr.csr (freeing the old one).
 * BC_ERR_INVAL for another kind or a pem over BC_CSR_PEM_MAX bytes. */
bc_status bc_message_set_csr(bc_message *msg, const char *pem);

#endif
