/*
 * camera.c - one camera: the modules of device-agent/ on one reactor.
 *
 * An input (button, dock, script) takes this path:
 *
 *   bc_sm_apply ─► refused? answer "error: reason" (+ its events, e.g. record_refused)
 *        │
 *        ├─ recording_stopped in the result: the recorder closes the file first
 *        │  (its size goes into the event)
 *        ├─ recording_started in the result: reserve the seqs (persist
 *        │  next_seq), start the recorder under "<device>-<seq>"; if that
 *        │  fails, the machine is put back and the reserved seq carries a
 *        │  record_refused instead - no gap, no recording that is not one
 *        └─ emit: next_seq and the new state saved durably, THEN the events
 *           appended to the outbox, the retained state published, the link
 *           kicked.
 *
 * The seq rule (persist before enqueue) means a crash can lose an event
 * that was never queued (a gap the backend can see), but never reuse a seq.
 */
#include "device-agent/camera.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/file.h"
#include "common/log.h"
#include "device-agent/boot_slots.h"
#include "device-agent/commands.h"
#include "device-agent/health.h"
#include "device-agent/identity.h"
#include "device-agent/link.h"
#include "device-agent/outbox.h"
#include "device-agent/persist.h"
#include "device-agent/recorder.h"
#include "device-agent/state_machine.h"
#include "device-agent/updater.h"
#include "device-agent/uploader.h"
#include "device-agent/video_source.h"
#include "proto/message.h"
#include "proto/sign.h"

#define SYNTHETIC_PREFIX "synthetic:"
#define VIDEO_READ_MAX (1024 * 1024) /* bytes per pull, caps a late timer's catch-up */
#define VIDEO_READ_MIN (64 * 1024)   /* a pipe read; and the floor of the buffer */
#define VIDEO_TICKS_BUFFERED 4       /* a timer this many ticks late still catches up */
#define PRE_EVENT_MS_MAX 600000
#define KEY_PEM_MAX 4096
#define IDENTITY_GRACE_MS                                                                          \
    1000 /* refusals this soon after a switch do not count (see link_attempt_failed) */

struct bc_camera {
    bc_camera_config cfg;
    bc_reactor *r;
    bc_persist_state st; /* what is on disk (after each save) */
    bc_sm sm;
    EVP_PKEY *command_key, *receipt_key, *recording_key;
    EVP_PKEY *firmware_key; /* NULL: no firmware_pubkey, firmware refused */
    bc_outbox *outbox;
    bc_recorder *recorder;
    bc_uploader *uploader;
    bc_commands *commands;
    bc_health *health;
    bc_video_source *video;
    uint64_t video_bps;
    int video_fd; /* watched fd of a pollable source, -1 */
    uint8_t *video_buf;
    size_t video_buf_size;
    int64_t video_last_ms;
    bc_control *control;
    bc_link *link;
    bc_identity *identity;
    struct {
        bool active; /* an install's certificate is being tried */
        char cmd_id[BC_ID_MAX + 1];
        unsigned failures;
        int64_t started_ms; /* monotonic: when the switch began */
        char last_reason[BC_TEXT_MAX + 1];
    } trial;
    bc_timer sm_timer, video_timer, flush_timer, health_timer, upload_timer, trial_timer;
    bc_boot_record boot; /* what boot.json says (after each change) */
    bc_updater *updater;
    struct {
        bc_boot_outcome outcome; /* of this start */
        bool header_ok;          /* trial: the active image's header could be read */
        char header_error[BC_TEXT_MAX + 1];
        bc_boot_selftest selftest;
        bool confirm_due;                    /* the health check passed while offline */
        unsigned sub[BC_UPDATER_WINDOW_MAX]; /* chunk topics subscribed this session */
        size_t nsub;
        unsigned retries; /* chunk timeouts in a row */
        bool wait_logged; /* "waiting" logged once per update */
    } fw;
    bc_timer fw_chunk_timer, fw_install_timer, fw_confirm_timer, fw_trial_timer;
    bool restart; /* asked main.c to reopen it (a firmware switch) */
    int64_t started_mono_ms;
    uint64_t device_hash; /* seeds the simulations (noise, default video seed) */
    bool shutting_down;
};

/* ---- small helpers ---- */

static void note_error(bc_camera *cam, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note_error(bc_camera *cam, const char *fmt, ...)
{
    char text[BC_HEALTH_ERROR_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_errorx("%s: %s", cam->cfg.device_id, text);
    if (cam->health != NULL)
        bc_health_note_error(cam->health, text);
}

static int path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

static uint64_t last_seq(const bc_camera *cam)
{
    return cam->st.next_seq > 0 ? cam->st.next_seq - 1 : 0;
}

/* The version the camera runs: its active slot's (birth, health, status). */
static const char *fw_active(const bc_camera *cam)
{
    return bc_boot_active_version(&cam->boot);
}

static bc_health_mode health_mode(const bc_camera *cam)
{
    if (cam->sm.state == BC_SM_RECORDING)
        return BC_HEALTH_RECORDING;
    return cam->sm.state == BC_SM_DOCKED ? BC_HEALTH_DOCKED : BC_HEALTH_STANDBY;
}

/* ---- configuration ---- */

/* Parses "synthetic:BPS[:SEED]"; *synthetic false for a path or "-". */
static bc_status parse_video_spec(const char *spec, bool *synthetic, uint64_t *bps, uint64_t *seed,
                                  bool *has_seed, bc_error *err)
{
    *synthetic = false;
    *has_seed = false;
    if (strncmp(spec, SYNTHETIC_PREFIX, strlen(SYNTHETIC_PREFIX)) != 0)
        return spec[0] != '\0' ? BC_OK
                               : bc_fail(err, BC_ERR_INVAL, "option 'video_source' is empty");
    const char *p = spec + strlen(SYNTHETIC_PREFIX);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno != 0 || end == p || v == 0 || (*end != '\0' && *end != ':'))
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'video_source': '%s' is not synthetic:BITRATE[:SEED]", spec);
    *synthetic = true;
    *bps = v;
    if (*end == '\0')
        return BC_OK;
    p = end + 1;
    errno = 0;
    v = strtoull(p, &end, 10);
    if (errno != 0 || end == p || *end != '\0')
        return bc_fail(err, BC_ERR_INVAL, "option 'video_source': bad seed in '%s'", spec);
    *seed = v;
    *has_seed = true;
    return BC_OK;
}

bc_status bc_camera_config_check(const bc_camera_config *c, bc_error *err)
{
    if (!bc_device_id_valid(c->device_id))
        return bc_fail(err, BC_ERR_INVAL, "option 'device_id': '%s' is not a valid device id",
                       c->device_id);
    const struct {
        const char *name, *value;
    } required[] = {
        {"data_dir", c->data_dir},
        {"ca_file", c->ca_file},
        {"cert_file", c->cert_file},
        {"key_file", c->key_file},
        {"command_pubkey", c->command_pubkey},
        {"receipt_pubkey", c->receipt_pubkey},
        {"recording_pubkey", c->recording_pubkey},
        {"mqtt_host", c->mqtt_host},
    };
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (required[i].value[0] == '\0')
            return bc_fail(err, BC_ERR_INVAL, "option '%s' is required", required[i].name);
    }
    if (c->recording_key_id[0] != '\0' && !bc_id_valid(c->recording_key_id))
        return bc_fail(err, BC_ERR_INVAL, "option 'recording_key_id' is not a valid key id");
    if (c->backoff_min_ms > c->backoff_max_ms)
        return bc_fail(err, BC_ERR_INVAL, "option 'backoff_min_ms' is above 'backoff_max_ms'");
    if (c->identity_trial_s < 1 || c->identity_trial_attempts < 1)
        return bc_fail(err, BC_ERR_INVAL,
                       "options 'identity_trial_s' and 'identity_trial_attempts' must be >= 1");
    if (c->fw_min_battery_pct < 0 || c->fw_min_battery_pct > 100 || c->fw_confirm_s < 1 ||
        c->fw_trial_timeout_s < 1 || c->fw_chunk_timeout_s < 1 || c->fw_download_window < 1 ||
        c->fw_download_window > BC_UPDATER_WINDOW_MAX)
        return bc_fail(err, BC_ERR_INVAL,
                       "options fw_*: fw_min_battery_pct 0..100, fw_download_window 1..%d, the "
                       "times >= 1",
                       BC_UPDATER_WINDOW_MAX);
    if (c->fw_version[0] == '\0' || !bc_version_valid(c->fw_version))
        return bc_fail(err, BC_ERR_INVAL, "option 'fw_version': '%s' is not a version",
                       c->fw_version);
    bool synthetic, has_seed;
    uint64_t bps = 0, seed = 0;
    return parse_video_spec(c->video_source, &synthetic, &bps, &seed, &has_seed, err);
}

/* ---- keys ---- */

static bc_status load_keys(bc_camera *cam, bc_error *err)
{
    bc_status st =
        bc_key_load_public(cam->cfg.command_pubkey, EVP_PKEY_ED25519, &cam->command_key, err);
    if (st == BC_OK)
        st = bc_key_load_public(cam->cfg.receipt_pubkey, EVP_PKEY_ED25519, &cam->receipt_key, err);
    if (st == BC_OK && cam->cfg.firmware_pubkey[0] != '\0')
        st =
            bc_key_load_public(cam->cfg.firmware_pubkey, EVP_PKEY_ED25519, &cam->firmware_key, err);
    if (st != BC_OK)
        return st;
    char rotated[PATH_MAX];
    if (path_join(rotated, sizeof(rotated), cam->cfg.data_dir, BC_CAMERA_KEY_FILE) != 0)
        return bc_fail(err, BC_ERR_TOO_BIG, "data dir path is too long");
    if (access(rotated, F_OK) == 0) {
        log_info("%s: using the rotated recording key %s", cam->cfg.device_id, rotated);
        return bc_key_load_public(rotated, EVP_PKEY_X25519, &cam->recording_key, err);
    }
    st = bc_key_load_public(cam->cfg.recording_pubkey, EVP_PKEY_X25519, &cam->recording_key, err);
    if (st != BC_OK || cam->cfg.recording_key_id[0] == '\0')
        return st;
    char id[BC_KEY_ID_LEN + 1];
    if (bc_key_id(cam->recording_key, id) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "cannot compute the recording key id");
    if (strcmp(id, cam->cfg.recording_key_id) != 0)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'recording_key_id': %s is not the id of %s (that is %s)",
                       cam->cfg.recording_key_id, cam->cfg.recording_pubkey, id);
    return BC_OK;
}

/* Writes key's public half durably to DATA_DIR/recording-key.pub. */
static bc_status store_recording_key(bc_camera *cam, EVP_PKEY *key, bc_error *err)
{
    char path[PATH_MAX];
    if (path_join(path, sizeof(path), cam->cfg.data_dir, BC_CAMERA_KEY_FILE) != 0)
        return bc_fail(err, BC_ERR_TOO_BIG, "data dir path is too long");
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory");
    bc_status st = BC_OK;
    char *pem = NULL;
    long len = 0;
    if (PEM_write_bio_PUBKEY(bio, key) != 1 || (len = BIO_get_mem_data(bio, &pem)) <= 0 ||
        len > KEY_PEM_MAX)
        st = bc_fail(err, BC_ERR_CRYPTO, "cannot encode the recording key");
    else
        st = bc_file_write_durable(path, pem, (size_t)len, 0600, err);
    BIO_free(bio);
    return st;
}

/* ---- the outbox and the retained state ---- */

static bc_status enqueue_message(bc_camera *cam, const bc_message *msg, bc_topic_kind kind)
{
    char topic[BC_TOPIC_MAX];
    char *json = NULL;
    bc_error err;
    bc_status st = bc_topic_device(topic, sizeof(topic), cam->cfg.device_id, kind);
    if (st == BC_OK)
        st = bc_message_encode(msg, &json, &err);
    else
        snprintf(err.text, sizeof(err.text), "cannot build the topic");
    if (st == BC_OK)
        st = bc_outbox_append(cam->outbox, topic, 1, json, strlen(json), NULL, &err);
    free(json);
    if (st != BC_OK)
        note_error(cam, "cannot queue a %s message: %s", bc_topic_kind_name(kind), err.text);
    return st;
}

static void publish_state(bc_camera *cam)
{
    if (cam->link == NULL || !bc_link_online(cam->link))
        return;
    bc_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = BC_TOPIC_STATE;
    snprintf(msg.state.device, sizeof(msg.state.device), "%s", cam->cfg.device_id);
    msg.state.state = (bc_device_state)cam->sm.state; /* same order as proto's */
    msg.state.warnings = cam->sm.warnings;
    msg.state.since = cam->sm.since_ms;
    msg.state.seq = (int64_t)last_seq(cam);
    msg.state.ts = bc_clock_now_ms();
    snprintf(msg.state.recording_id, sizeof(msg.state.recording_id), "%s", cam->st.recording_id);
    char topic[BC_TOPIC_MAX];
    char *json = NULL;
    bc_error err;
    if (bc_topic_device(topic, sizeof(topic), cam->cfg.device_id, BC_TOPIC_STATE) != BC_OK ||
        bc_message_encode(&msg, &json, &err) != BC_OK) {
        note_error(cam, "cannot build the state message");
        return;
    }
    if (bc_link_publish(cam->link, topic, json, strlen(json), 1, true, NULL, &err) != BC_OK)
        log_warnx("%s: state not published: %s", cam->cfg.device_id, err.text);
    free(json);
}

/* ---- events ---- */

static void event_init(const bc_camera *cam, bc_message *msg, bc_event_type type)
{
    memset(msg, 0, sizeof(*msg));
    msg->kind = BC_TOPIC_EVENT;
    snprintf(msg->event.device, sizeof(msg->event.device), "%s", cam->cfg.device_id);
    msg->event.type = type;
    msg->event.ts = bc_clock_now_ms();
}

static void sync_persist_from_sm(bc_camera *cam)
{
    cam->st.state = cam->sm.state;
    cam->st.warnings = cam->sm.warnings;
    cam->st.emergency = cam->sm.emergency;
    cam->st.since_ms = cam->sm.since_ms;
    if (cam->sm.state != BC_SM_RECORDING)
        cam->st.recording_id[0] = '\0';
}

static bc_status save_state(bc_camera *cam, bc_error *err)
{
    return bc_persist_save(cam->cfg.data_dir, &cam->st, err);
}

/* Takes n seqs and saves them (and the state as it is in st) durably. */
static bc_status reserve_seqs(bc_camera *cam, size_t n, uint64_t *first)
{
    bc_error err;
    *first = cam->st.next_seq;
    cam->st.next_seq += n;
    bc_status st = save_state(cam, &err);
    if (st != BC_OK) {
        cam->st.next_seq = *first;
        note_error(cam, "cannot save the state: %s", err.text);
    }
    return st;
}

/* Saves the machine's state with next_seq (first = 0: takes n new seqs
 * now), then numbers and queues the n events, publishes the state. */
static bc_status emit(bc_camera *cam, bc_message *evs, size_t n, uint64_t first)
{
    bc_error err;
    bool allocated = first == 0;
    if (allocated) {
        first = cam->st.next_seq;
        cam->st.next_seq += n;
    }
    bc_persist_state before = cam->st;
    sync_persist_from_sm(cam);
    bc_status st = save_state(cam, &err);
    if (st != BC_OK) {
        if (allocated)
            before.next_seq = first;
        cam->st = before;
        note_error(cam, "cannot save the state; %zu event(s) not sent: %s", n, err.text);
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        evs[i].event.seq = (int64_t)(first + i);
        log_info("%s: event %" PRIu64 " %s", cam->cfg.device_id, first + i,
                 bc_event_type_name(evs[i].event.type));
        (void)enqueue_message(cam, &evs[i], BC_TOPIC_EVENT);
    }
    if (cam->health != NULL)
        bc_health_set_mode(cam->health, health_mode(cam), bc_clock_monotonic_ms());
    publish_state(cam);
    if (cam->link != NULL)
        bc_link_kick(cam->link);
    return BC_OK;
}

static void emit_one(bc_camera *cam, bc_message *ev)
{
    (void)emit(cam, ev, 1, 0);
}

static bc_event_type event_type_of(bc_sm_event_type t)
{
    switch (t) {
    case BC_SM_EV_WARNING_GIVEN:
        return BC_EVENT_WARNING_GIVEN;
    case BC_SM_EV_WARNING_EXPIRED:
        return BC_EVENT_WARNING_EXPIRED;
    case BC_SM_EV_RECORD_REFUSED:
        return BC_EVENT_RECORD_REFUSED;
    case BC_SM_EV_RECORDING_STARTED:
        return BC_EVENT_RECORDING_STARTED;
    case BC_SM_EV_RECORDING_STOPPED:
        return BC_EVENT_RECORDING_STOPPED;
    case BC_SM_EV_DOCKED:
        return BC_EVENT_DOCKED;
    default:
        return BC_EVENT_UNDOCKED;
    }
}

/* The proto events of a machine result (recording ids and sizes are filled
 * in by the caller). */
static void events_of(const bc_camera *cam, const bc_sm_result *res, bc_message *evs)
{
    for (size_t i = 0; i < res->event_count; i++) {
        const bc_sm_event *e = &res->events[i];
        event_init(cam, &evs[i], event_type_of(e->type));
        evs[i].event.warnings = e->warnings;
        evs[i].event.emergency = e->emergency;
        evs[i].event.duration_ms = e->duration_ms;
    }
}

static long find_event(const bc_sm_result *res, bc_sm_event_type type)
{
    for (size_t i = 0; i < res->event_count; i++) {
        if (res->events[i].type == type)
            return (long)i;
    }
    return -1;
}

/* ---- timers that follow the state ---- */

static void arm_sm_timer(bc_camera *cam)
{
    int64_t deadline = bc_sm_next_deadline(&cam->sm);
    if (deadline == BC_SM_NO_DEADLINE) {
        bc_reactor_timer_stop(cam->r, &cam->sm_timer);
        return;
    }
    int64_t delay = deadline - bc_clock_now_ms();
    if (bc_reactor_timer_start(cam->r, &cam->sm_timer, delay < 0 ? 0 : delay, 0) != BC_OK)
        note_error(cam, "cannot start the warning timer");
}

static void arm_flush_timer(bc_camera *cam)
{
    if (!bc_recorder_is_recording(cam->recorder)) {
        bc_reactor_timer_stop(cam->r, &cam->flush_timer);
        return;
    }
    if (bc_timer_active(&cam->flush_timer))
        return;
    if (bc_reactor_timer_start(cam->r, &cam->flush_timer, cam->cfg.flush_interval_ms,
                               cam->cfg.flush_interval_ms) != BC_OK)
        note_error(cam, "cannot start the flush timer");
}

/* ---- the uploader follows dock + link ---- */

static void uploader_follow(bc_camera *cam)
{
    bc_error err;
    bool want = cam->cfg.upload_on_dock && cam->sm.state == BC_SM_DOCKED && cam->link != NULL &&
                bc_link_online(cam->link) && !cam->shutting_down;
    bc_uploader_stats us;
    bc_uploader_get_stats(cam->uploader, &us);
    if (want && bc_uploader_start(cam->uploader, &err) != BC_OK)
        log_warnx("%s: upload: %s", cam->cfg.device_id, err.text);
    if (!want && us.active && bc_uploader_pause(cam->uploader, &err) != BC_OK)
        note_error(cam, "upload pause: %s", err.text);
}

/* After a refused chunk the uploader holds for a backoff, and a sent
 * recording waits for its receipt; this timer ends the first of both. */
static void arm_upload_timer(bc_camera *cam)
{
    int64_t hold = bc_uploader_hold_ms(cam->uploader);
    int64_t due = bc_uploader_receipt_due_ms(cam->uploader);
    if (hold <= 0 || (due >= 0 && due < hold))
        hold = due;
    if (bc_timer_active(&cam->upload_timer))
        bc_reactor_timer_stop(cam->r, &cam->upload_timer); /* the nearer one wins */
    if (hold < 0)
        return;
    if (bc_reactor_timer_start(cam->r, &cam->upload_timer, hold > 0 ? hold : 1, 0) != BC_OK)
        note_error(cam, "cannot start the upload timer");
}

static void on_upload_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    bc_error err;
    uploader_follow(cam);
    if (bc_uploader_receipt_retry(cam->uploader, &err) != BC_OK)
        log_warnx("%s: upload: %s", cam->cfg.device_id, err.text);
    arm_upload_timer(cam);
}

/* ---- inputs ---- */

static uint64_t pre_event_ms_of(const bc_camera *cam, uint64_t bytes)
{
    if (cam->video_bps == 0)
        return 0;
    uint64_t ms = bytes * 8 * 1000 / cam->video_bps;
    return ms > PRE_EVENT_MS_MAX ? PRE_EVENT_MS_MAX : ms;
}

/* The result holds recording_started: reserve its seq, start the recorder;
 * on failure put the machine back and turn the start into record_refused. */
static bc_status start_recording(bc_camera *cam, const bc_sm *before, bc_sm_result *res,
                                 bc_message *evs, char *why, size_t why_size)
{
    long idx = find_event(res, BC_SM_EV_RECORDING_STARTED);
    uint64_t first = 0;
    bc_sm after = cam->sm;
    cam->sm = *before; /* st still says "before" until emit saves the new state */
    if (reserve_seqs(cam, res->event_count, &first) != BC_OK) {
        snprintf(why, why_size, "cannot save the camera state");
        return BC_ERR_IO;
    }
    char id[BC_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s-%" PRIu64, cam->cfg.device_id, first + (uint64_t)idx);
    bc_error err;
    bc_status st = bc_recorder_start(cam->recorder, id, bc_clock_now_ms(), after.warnings,
                                     after.emergency, &err);
    if (st != BC_OK) {
        note_error(cam, "recording %s could not start: %s", id, err.text);
        bc_sm_result tick;
        (void)bc_sm_tick(&cam->sm, bc_clock_now_ms(), &tick); /* the expiry apply saw */
        event_init(cam, &evs[idx], BC_EVENT_RECORD_REFUSED);
        evs[idx].event.warnings = cam->sm.warnings;
        (void)emit(cam, evs, res->event_count, first);
        snprintf(why, why_size, "the recording could not start: %s", err.text);
        return st;
    }
    cam->sm = after;
    snprintf(cam->st.recording_id, sizeof(cam->st.recording_id), "%s", id);
    bc_recorder_stats rs;
    bc_recorder_get_stats(cam->recorder, &rs);
    snprintf(evs[idx].event.recording_id, sizeof(evs[idx].event.recording_id), "%s", id);
    evs[idx].event.pre_event_ms = (int64_t)pre_event_ms_of(cam, rs.current_pre_event_bytes);
    log_info("%s: recording %s started (warnings %d%s)", cam->cfg.device_id, id, after.warnings,
             after.emergency ? ", emergency" : "");
    (void)emit(cam, evs, res->event_count, first);
    arm_flush_timer(cam);
    return BC_OK;
}

static void stop_recording(bc_camera *cam, bc_message *ev)
{
    bc_recording_meta meta;
    bc_error err;
    memset(&meta, 0, sizeof(meta));
    snprintf(ev->event.recording_id, sizeof(ev->event.recording_id), "%s", cam->st.recording_id);
    if (bc_recorder_stop(cam->recorder, bc_clock_now_ms(), &meta, &err) != BC_OK)
        note_error(cam, "recording %s did not close cleanly: %s", cam->st.recording_id, err.text);
    ev->event.size = (int64_t)meta.size;
    log_info("%s: recording %s stopped (%" PRIu64 " bytes%s)", cam->cfg.device_id,
             cam->st.recording_id, meta.size, meta.interrupted ? ", sealed" : "");
    arm_flush_timer(cam);
}

/* Applies a machine input; writes the answer. */
static void apply_input(bc_camera *cam, bc_sm_input input, char *answer, size_t size)
{
    bc_sm before = cam->sm;
    bc_sm_result res;
    bc_message evs[BC_SM_MAX_EVENTS];
    bc_status st = bc_sm_apply(&cam->sm, input, bc_clock_now_ms(), &res);
    events_of(cam, &res, evs);
    char why[BC_CONTROL_ANSWER_MAX] = "";
    long stop_idx = find_event(&res, BC_SM_EV_RECORDING_STOPPED);
    if (stop_idx >= 0)
        stop_recording(cam, &evs[stop_idx]);
    if (st == BC_OK && find_event(&res, BC_SM_EV_RECORDING_STARTED) >= 0)
        st = start_recording(cam, &before, &res, evs, why, sizeof(why));
    else if (res.event_count > 0 || res.state_changed)
        (void)emit(cam, evs, res.event_count, 0);
    arm_sm_timer(cam);
    uploader_follow(cam);
    if (st != BC_OK)
        snprintf(answer, size, "error: %s", why[0] ? why : res.reason ? res.reason : "refused");
    else
        snprintf(answer, size, "ok state=%s warnings=%d seq=%" PRIu64,
                 bc_sm_state_name(cam->sm.state), cam->sm.warnings, last_seq(cam));
}

static void tamper(bc_camera *cam, bc_tamper_action action, const char *id, char *answer,
                   size_t size)
{
    bc_message ev;
    event_init(cam, &ev, BC_EVENT_TAMPER_DENIED);
    ev.event.action = action;
    if (bc_id_valid(id))
        snprintf(ev.event.recording_id, sizeof(ev.event.recording_id), "%s", id);
    log_warnx("%s: %s of recording '%s' refused by policy", cam->cfg.device_id,
              bc_tamper_action_name(action), ev.event.recording_id);
    emit_one(cam, &ev);
    snprintf(answer, size, "error: refused by policy");
}

static void survey(bc_camera *cam, int score, char *answer, size_t size)
{
    bc_message ev;
    event_init(cam, &ev, BC_EVENT_SURVEY);
    ev.event.score = score;
    if (emit(cam, &ev, 1, 0) != BC_OK) {
        snprintf(answer, size, "error: the score could not be saved");
        return;
    }
    snprintf(answer, size, "ok survey=%d seq=%" PRIu64, score, last_seq(cam));
}

static void status_answer(bc_camera *cam, char *answer, size_t size)
{
    bc_camera_status s;
    bc_camera_status_get(cam, &s);
    snprintf(answer, size,
             "ok state=%s warnings=%d seq=%" PRIu64 " pending=%zu outbox=%zu online=%d "
             "recording=%s emergency=%d identity=%s cert=%.16s switching=%d fw=%s update=%s",
             s.state, s.warnings, s.last_seq, s.pending, s.outbox, s.online ? 1 : 0,
             s.recording_id[0] ? s.recording_id : "-", s.emergency ? 1 : 0, s.identity,
             s.cert_fingerprint[0] ? s.cert_fingerprint : "-", s.switching ? 1 : 0, s.fw_version,
             s.fw_update);
}

void bc_camera_command(bc_camera *cam, const bc_control_command *cmd, char *answer, size_t size)
{
    static const bc_sm_input inputs[] = {
        [BC_CONTROL_WARN] = BC_SM_WARN,           [BC_CONTROL_RECORD] = BC_SM_RECORD,
        [BC_CONTROL_EMERGENCY] = BC_SM_EMERGENCY, [BC_CONTROL_STOP] = BC_SM_STOP,
        [BC_CONTROL_DOCK] = BC_SM_DOCK,           [BC_CONTROL_UNDOCK] = BC_SM_UNDOCK,
    };
    if (cam->shutting_down) {
        snprintf(answer, size, "error: the camera is shutting down");
        return;
    }
    switch (cmd->verb) {
    case BC_CONTROL_WARN:
    case BC_CONTROL_RECORD:
    case BC_CONTROL_EMERGENCY:
    case BC_CONTROL_STOP:
    case BC_CONTROL_DOCK:
    case BC_CONTROL_UNDOCK:
        apply_input(cam, inputs[cmd->verb], answer, size);
        return;
    case BC_CONTROL_STATUS:
        status_answer(cam, answer, size);
        return;
    case BC_CONTROL_SURVEY:
        survey(cam, cmd->score, answer, size);
        return;
    case BC_CONTROL_VIEW:
        tamper(cam, BC_TAMPER_VIEW, cmd->id, answer, size);
        return;
    case BC_CONTROL_DELETE:
        tamper(cam, BC_TAMPER_DELETE, cmd->id, answer, size);
        return;
    default:
        snprintf(answer, size, "error: unknown command");
        return;
    }
}

static void on_control(const bc_control_command *cmd, char *answer, size_t size, void *userdata)
{
    bc_camera_command(userdata, cmd, answer, size);
}

/* ---- timers ---- */

static void on_sm_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    bc_sm_result res;
    bc_message evs[BC_SM_MAX_EVENTS];
    (void)bc_sm_tick(&cam->sm, bc_clock_now_ms(), &res);
    if (res.event_count > 0) {
        events_of(cam, &res, evs);
        (void)emit(cam, evs, res.event_count, 0);
    }
    arm_sm_timer(cam);
}

static void feed(bc_camera *cam, const uint8_t *data, size_t len)
{
    bc_error err;
    if (len == 0 || bc_recorder_feed(cam->recorder, data, len, &err) == BC_OK)
        return;
    note_error(cam, "recording failed, stopping it: %s", err.text);
    char answer[BC_CONTROL_ANSWER_MAX + 1];
    apply_input(cam, BC_SM_STOP, answer, sizeof(answer));
}

static bool video_wanted(const bc_camera *cam)
{
    bc_recorder_stats rs;
    bc_recorder_get_stats(cam->recorder, &rs);
    return rs.recording || rs.prebuffer_capacity > 0;
}

static void on_video_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    int64_t now = bc_clock_monotonic_ms();
    int64_t elapsed = now - cam->video_last_ms;
    size_t want = bc_video_source_bytes_per_tick(cam->video, elapsed);
    if (want == 0)
        return; /* too little time for a byte: keep counting from video_last_ms */
    cam->video_last_ms = now;
    if (!video_wanted(cam))
        return;
    if (want > cam->video_buf_size)
        want = cam->video_buf_size;
    size_t got = 0;
    bool eof = false;
    bc_error err;
    if (bc_video_source_read(cam->video, cam->video_buf, want, &got, &eof, &err) != BC_OK)
        note_error(cam, "video source: %s", err.text);
    feed(cam, cam->video_buf, got);
}

static void on_video_fd(bc_reactor *r, int fd, unsigned events, void *userdata)
{
    bc_camera *cam = userdata;
    size_t got = 0;
    bool eof = false;
    bc_error err;
    bc_status st =
        bc_video_source_read(cam->video, cam->video_buf, cam->video_buf_size, &got, &eof, &err);
    if (st != BC_OK)
        note_error(cam, "video source: %s", err.text);
    feed(cam, cam->video_buf, got);
    if (st == BC_OK && !eof)
        return;
    log_info("%s: video source %s ended", cam->cfg.device_id, cam->cfg.video_source);
    (void)bc_reactor_remove_fd(cam->r, cam->video_fd);
    cam->video_fd = -1;
}

static void on_flush_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    bc_error err;
    if (bc_recorder_flush(cam->recorder, &err) != BC_OK)
        note_error(cam, "recording flush: %s", err.text);
}

static void on_health_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    if (!bc_link_online(cam->link))
        return;
    bc_health_inputs in;
    memset(&in, 0, sizeof(in));
    in.device = cam->cfg.device_id;
    in.now_ms = bc_clock_now_ms();
    in.uptime_s = (bc_clock_monotonic_ms() - cam->started_mono_ms) / 1000;
    in.fw = fw_active(cam);
    in.recording_key_id = bc_recorder_key_id(cam->recorder);
    if (bc_recorder_storage(cam->recorder, &in.storage_free, &in.storage_total) != BC_OK)
        bc_health_note_error(cam->health, "storage size unknown (statvfs failed)");
    in.pending_uploads = bc_recorder_pending_count(cam->recorder);
    bc_message msg;
    bc_error err;
    char topic[BC_TOPIC_MAX];
    char *json = NULL;
    bc_health_set_mode(cam->health, health_mode(cam), bc_clock_monotonic_ms());
    if (bc_health_report(cam->health, &in, bc_clock_monotonic_ms(), &msg, &err) != BC_OK ||
        bc_topic_device(topic, sizeof(topic), cam->cfg.device_id, BC_TOPIC_HEALTH) != BC_OK ||
        bc_message_encode(&msg, &json, &err) != BC_OK) {
        log_errorx("%s: cannot build the health report: %s", cam->cfg.device_id, err.text);
        return;
    }
    if (bc_link_publish(cam->link, topic, json, strlen(json), 0, false, NULL, &err) == BC_OK)
        bc_health_errors_reported(cam->health);
    free(json);
}

static bc_status start_health_timer(bc_camera *cam)
{
    int64_t period = cam->cfg.health_interval_s * 1000;
    return bc_reactor_timer_start(cam->r, &cam->health_timer, period, period);
}

/* ---- remote configuration (config commands) ---- */

static size_t pre_event_bytes(const bc_camera_config *cfg, uint64_t bps)
{
    return (size_t)((uint64_t)cfg->pre_event_s * bps / 8);
}

static bc_status save_remote_conf(bc_camera *cam, bc_error *err)
{
    char path[PATH_MAX], text[256];
    if (path_join(path, sizeof(path), cam->cfg.data_dir, BC_CAMERA_REMOTE_CONF) != 0)
        return bc_fail(err, BC_ERR_TOO_BIG, "data dir path is too long");
    int n = snprintf(text, sizeof(text),
                     "# written by bodycam-agent: values set by config commands\n"
                     "health_interval_s = %" PRId64 "\nwarning_timeout_s = %" PRId64
                     "\npre_event_s = %" PRId64 "\n",
                     cam->cfg.health_interval_s, cam->cfg.warning_timeout_s, cam->cfg.pre_event_s);
    return bc_file_write_durable(path, text, (size_t)n, 0600, err);
}

/* The options a config command may change, over cfg (for remote.conf). */
static void remote_table(bc_camera_config *cfg, bc_config_option table[3])
{
    const bc_config_option t[3] = {
        {"health_interval_s", BC_CFG_INT, 1, 86400, NULL, &cfg->health_interval_s, 0, "s", ""},
        {"warning_timeout_s", BC_CFG_INT, 1, 3600, NULL, &cfg->warning_timeout_s, 0, "s", ""},
        {"pre_event_s", BC_CFG_INT, 0, 300, NULL, &cfg->pre_event_s, 0, "s", ""},
    };
    memcpy(table, t, sizeof(t));
}

static void load_remote_conf(bc_camera_config *cfg)
{
    char path[PATH_MAX];
    bc_config_option table[3];
    bc_error err;
    if (path_join(path, sizeof(path), cfg->data_dir, BC_CAMERA_REMOTE_CONF) != 0 ||
        access(path, F_OK) != 0)
        return;
    remote_table(cfg, table);
    if (bc_config_load_file(table, 3, path, &err) != BC_OK)
        log_errorx("%s: ignoring part of %s: %s", cfg->device_id, path, err.text);
    else
        log_info("%s: applied the remote configuration in %s", cfg->device_id, path);
}

/* ---- command handlers ---- */

static bc_status cmd_upload(const bc_command *cmd, void *userdata, bc_error *err)
{
    bc_camera *cam = userdata;
    return bc_uploader_request(cam->uploader, cmd->params.upload.recording_id,
                               cmd->params.upload.offset, err);
}

static void receipt_refused(bc_camera *cam, const char *recording_id, const char *why)
{
    bc_message ev;
    event_init(cam, &ev, BC_EVENT_RECEIPT_REFUSED);
    snprintf(ev.event.recording_id, sizeof(ev.event.recording_id), "%s",
             bc_id_valid(recording_id) ? recording_id : "unknown");
    snprintf(ev.event.detail, sizeof(ev.event.detail), "%.*s", BC_TEXT_MAX,
             why[0] ? why : "refused");
    for (char *p = ev.event.detail; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
    emit_one(cam, &ev);
}

static bc_status cmd_receipt(const bc_command *cmd, void *userdata, bc_error *err)
{
    bc_camera *cam = userdata;
    const char *id = cmd->params.receipt.recording_id;
    bc_status st = bc_uploader_on_receipt(cam->uploader, cmd, bc_clock_now_ms(), NULL, err);
    if (st != BC_OK) {
        receipt_refused(cam, id, err != NULL ? err->text : bc_strerror(st));
        return st;
    }
    bc_message ev;
    event_init(cam, &ev, BC_EVENT_RECORDING_DELETED);
    snprintf(ev.event.recording_id, sizeof(ev.event.recording_id), "%s", id);
    log_info("%s: recording %s deleted after the vault's receipt", cam->cfg.device_id, id);
    emit_one(cam, &ev);
    return BC_OK;
}

static void cmd_refused(const bc_command *cmd, bc_status st, const char *reason, void *userdata)
{
    bc_camera *cam = userdata;
    if (cmd->kind == BC_CMD_VAULT_RECEIPT)
        receipt_refused(cam, cmd->params.receipt.recording_id, reason);
}

static bc_status cmd_recording_key(const bc_command *cmd, void *userdata, bc_error *err)
{
    bc_camera *cam = userdata;
    const bc_cmd_recording_key *k = &cmd->params.recording_key;
    EVP_PKEY *key = NULL;
    if (bc_key_from_raw_public(EVP_PKEY_X25519, k->public_key, &key) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL, "the recording key is not an X25519 key");
    bc_status st = store_recording_key(cam, key, err); /* durable before it is used */
    if (st == BC_OK)
        st = bc_recorder_set_vault_key(cam->recorder, key, k->key_id, err);
    if (st == BC_OK) {
        EVP_PKEY_free(cam->recording_key);
        cam->recording_key = key;
        key = NULL;
        bc_link_set_recording_key_id(cam->link, k->key_id);
        bc_message ev;
        event_init(cam, &ev, BC_EVENT_KEY_INSTALLED);
        snprintf(ev.event.key_id, sizeof(ev.event.key_id), "%s", k->key_id);
        log_info("%s: recording key %s installed", cam->cfg.device_id, k->key_id);
        emit_one(cam, &ev);
    }
    EVP_PKEY_free(key);
    return st;
}

static bc_status cmd_config(const bc_command *cmd, void *userdata, bc_error *err)
{
    bc_camera *cam = userdata;
    const bc_cmd_config *c = &cmd->params.config;
    bc_camera_config next = cam->cfg;
    if (c->has_health_interval_s)
        next.health_interval_s = c->health_interval_s;
    if (c->has_warning_timeout_s)
        next.warning_timeout_s = c->warning_timeout_s;
    if (c->has_pre_event_s)
        next.pre_event_s = c->pre_event_s;
    if (c->has_pre_event_s && next.pre_event_s != cam->cfg.pre_event_s &&
        bc_recorder_set_pre_event(cam->recorder, pre_event_bytes(&next, cam->video_bps)) != BC_OK)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for a pre-event buffer of %" PRId64 " s",
                       next.pre_event_s);
    cam->cfg = next;
    bc_sm_set_warning_timeout(&cam->sm, cam->cfg.warning_timeout_s * 1000);
    if (start_health_timer(cam) != BC_OK)
        note_error(cam, "cannot restart the health timer");
    bc_status st = save_remote_conf(cam, err);
    log_info("%s: configuration: health every %" PRId64 " s, warnings expire after %" PRId64
             " s, pre-event %" PRId64 " s",
             cam->cfg.device_id, cam->cfg.health_interval_s, cam->cfg.warning_timeout_s,
             cam->cfg.pre_event_s);
    return st;
}

/* ---- identity rotation (identity.h; camera.h says how it goes) ---- */

#define INTERRUPTED_REASON                                                                         \
    "interrupted: the camera restarted before it connected with the new certificate"

/* Queues an install's ack; the install record goes once the ack is queued
 * (until then a restart sends it again). */
static void identity_ack(bc_camera *cam, const char *cmd_id, const char *error)
{
    bc_error err;
    if (bc_commands_ack(cam->commands, cmd_id, BC_CMD_ROTATE_IDENTITY, error) != BC_OK)
        return;
    if (bc_identity_install_done(cam->identity, &err) != BC_OK)
        note_error(cam, "identity: %s", err.text);
}

static bc_status identity_use(bc_camera *cam, const char *cert, const char *key)
{
    bc_error err;
    bc_status st = bc_link_set_identity(cam->link, cert, key, &err);
    if (st != BC_OK)
        note_error(cam, "identity: %s", err.text);
    return st;
}

/* The new certificate did not get through: back to the identity the
 * camera had, at once, and the install is acked with why. */
static void identity_fall_back(bc_camera *cam, const char *why)
{
    bc_error err;
    char cmd_id[BC_ID_MAX + 1];
    char reason[BC_TEXT_MAX + 1];
    snprintf(cmd_id, sizeof(cmd_id), "%s", cam->trial.cmd_id);
    snprintf(reason, sizeof(reason), "new certificate refused: %s", why);
    cam->trial.active = false;
    bc_reactor_timer_stop(cam->r, &cam->trial_timer);
    if (bc_identity_abandon(cam->identity, &err) != BC_OK)
        note_error(cam, "identity: %s", err.text);
    log_warnx("%s: %s; going back to %s", cam->cfg.device_id, reason,
              bc_identity_cert_file(cam->identity));
    (void)identity_use(cam, bc_identity_cert_file(cam->identity),
                       bc_identity_key_file(cam->identity));
    bc_link_reconnect(cam->link);
    identity_ack(cam, cmd_id, reason); /* delivered once the old identity is back */
}

/* The broker accepted the new certificate (CONNACK): promote it, then ack
 * the install over this connection. */
static void identity_connected(bc_camera *cam)
{
    bc_error err;
    if (bc_identity_promote(cam->identity, &err) != BC_OK) {
        identity_fall_back(cam, err.text); /* not committed: the old one still stands */
        return;
    }
    cam->trial.active = false;
    bc_reactor_timer_stop(cam->r, &cam->trial_timer);
    (void)identity_use(cam, bc_identity_cert_file(cam->identity),
                       bc_identity_key_file(cam->identity));
    log_info("%s: connected with the new certificate (sha256=%s)", cam->cfg.device_id,
             bc_identity_fingerprint(cam->identity));
    identity_ack(cam, cam->trial.cmd_id, NULL);
}

static void link_attempt_failed(bc_link *link, const char *reason, void *userdata)
{
    bc_camera *cam = userdata;
    if (!cam->trial.active)
        return;
    /* The service registers the new fingerprint just before the install,
     * and a broker sees registry changes only at its next poll (200 ms by
     * default): refusals that early say nothing about the certificate. The
     * trial timer still bounds the whole switch. */
    if (bc_clock_monotonic_ms() - cam->trial.started_ms < IDENTITY_GRACE_MS) {
        snprintf(cam->trial.last_reason, sizeof(cam->trial.last_reason), "%s", reason);
        return;
    }
    cam->trial.failures++;
    snprintf(cam->trial.last_reason, sizeof(cam->trial.last_reason), "%s", reason);
    if (cam->trial.failures >= (uint64_t)cam->cfg.identity_trial_attempts)
        identity_fall_back(cam, reason);
}

static void on_trial_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    char why[BC_TEXT_MAX + 1];
    if (!cam->trial.active)
        return;
    snprintf(why, sizeof(why), "no connection within %" PRId64 " s%s%s%s",
             cam->cfg.identity_trial_s, cam->trial.last_reason[0] ? " (last: " : "",
             cam->trial.last_reason, cam->trial.last_reason[0] ? ")" : "");
    identity_fall_back(cam, why);
}

static bc_status identity_request(bc_camera *cam, const bc_command *cmd, bc_error *err)
{
    char *pem = NULL;
    bc_message msg;
    bc_status st = bc_identity_request(cam->identity, &pem, err);
    if (st != BC_OK)
        return st;
    memset(&msg, 0, sizeof(msg));
    msg.kind = BC_TOPIC_CSR;
    snprintf(msg.csr.device, sizeof(msg.csr.device), "%s", cam->cfg.device_id);
    snprintf(msg.csr.cmd_id, sizeof(msg.csr.cmd_id), "%s", cmd->id);
    msg.csr.ts = bc_clock_now_ms();
    st = bc_message_set_csr(&msg, pem);
    free(pem);
    if (st == BC_OK)
        st = enqueue_message(cam, &msg, BC_TOPIC_CSR);
    bc_message_free(&msg);
    if (st != BC_OK) {
        bc_error ignored;
        (void)bc_identity_abandon(cam->identity, &ignored);
        return bc_fail(err, st, "the CSR could not be queued");
    }
    log_info("%s: new key made, CSR queued for request %s", cam->cfg.device_id, cmd->id);
    return BC_OK;
}

static bc_status identity_install(bc_camera *cam, const bc_command *cmd, bc_error *err)
{
    const char *pem = cmd->params.identity.cert;
    bc_error why;
    bc_status st = bc_identity_install(cam->identity, cmd->id, pem, strlen(pem), &why);
    if (st != BC_OK)
        return bc_fail(err, st, "certificate not accepted: %s", why.text);
    st = bc_reactor_timer_start(cam->r, &cam->trial_timer, cam->cfg.identity_trial_s * 1000, 0);
    if (st == BC_OK)
        st = identity_use(cam, bc_identity_next_cert_file(cam->identity),
                          bc_identity_next_key_file(cam->identity));
    if (st != BC_OK) {
        bc_reactor_timer_stop(cam->r, &cam->trial_timer);
        (void)bc_identity_abandon(cam->identity, &why);
        (void)bc_identity_install_done(cam->identity, &why);
        return bc_fail(err, st, "internal: cannot start the switch to the new certificate");
    }
    cam->trial.active = true;
    cam->trial.failures = 0;
    cam->trial.started_ms = bc_clock_monotonic_ms();
    cam->trial.last_reason[0] = '\0';
    snprintf(cam->trial.cmd_id, sizeof(cam->trial.cmd_id), "%s", cmd->id);
    log_info("%s: switching to the new certificate (install %s)", cam->cfg.device_id, cmd->id);
    bc_commands_defer_ack(cam->commands);
    bc_link_reconnect(cam->link);
    return BC_OK;
}

static bc_status cmd_identity(const bc_command *cmd, void *userdata, bc_error *err)
{
    bc_camera *cam = userdata;
    if (cam->trial.active)
        return bc_fail(err, BC_ERR_STATE, "busy: the camera is switching to a new certificate");
    if (cmd->params.identity.phase == BC_IDENTITY_REQUEST)
        return identity_request(cam, cmd, err);
    return identity_install(cam, cmd, err);
}

/* At start: an install a restart cut gets its ack now (see identity.h). */
static void identity_report_interrupted(bc_camera *cam)
{
    char cmd_id[BC_ID_MAX + 1];
    bool promoted = false;
    if (bc_identity_interrupted(cam->identity, cmd_id, &promoted))
        identity_ack(cam, cmd_id, promoted ? NULL : INTERRUPTED_REASON);
}

static bc_status send_ack(const bc_msg_ack *ack, void *userdata)
{
    bc_camera *cam = userdata;
    bc_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = BC_TOPIC_ACK;
    msg.ack = *ack;
    bc_status st = enqueue_message(cam, &msg, BC_TOPIC_ACK);
    if (st == BC_OK && cam->link != NULL) /* at start the link comes later */
        bc_link_kick(cam->link);
    return st;
}

/* ---- firmware (README "Firmware update"; boot_slots.h, updater.h) ---- */

#define FW_CHUNK_RETRIES 3
#define FW_IDLE_POLL_MS 1000
#define FW_TOPIC_PREFIX BC_TOPIC_PREFIX "firmware/"

/* One log line per step: "firmware | STEP | device=.. version=.. detail=..". */
static void fw_log(const bc_camera *cam, const char *step, const char *version, const char *detail)
{
    bool bad = strcmp(step, "refused") == 0 || strcmp(step, "failed") == 0 ||
               strcmp(step, "rolled_back") == 0;
    if (bad)
        log_warnx("firmware | %s | device=%s version=%s detail=%s", step, cam->cfg.device_id,
                  version, detail != NULL && detail[0] ? detail : "-");
    else
        log_info("firmware | %s | device=%s version=%s detail=%s", step, cam->cfg.device_id,
                 version, detail != NULL && detail[0] ? detail : "-");
}

static bc_status fw_event(bc_camera *cam, bc_event_type type, const char *version,
                          const char *detail)
{
    bc_message ev;
    event_init(cam, &ev, type);
    snprintf(ev.event.version, sizeof(ev.event.version), "%s",
             bc_version_valid(version) ? version : "0");
    snprintf(ev.event.detail, sizeof(ev.event.detail), "%.*s", BC_TEXT_MAX,
             detail != NULL ? detail : "");
    for (char *p = ev.event.detail; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
    return emit(cam, &ev, 1, 0);
}

/* The event boot.json owes (fw_confirmed / fw_rolled_back): queued, then
 * dropped from the record - a crash in between sends it twice, never not. */
static void fw_send_report(bc_camera *cam)
{
    bc_error err;
    if (cam->boot.report == BC_BOOT_REPORT_NONE)
        return;
    bc_event_type type = cam->boot.report == BC_BOOT_REPORT_CONFIRMED ? BC_EVENT_FW_CONFIRMED
                                                                      : BC_EVENT_FW_ROLLED_BACK;
    if (fw_event(cam, type, cam->boot.report_version, cam->boot.report_detail) != BC_OK)
        return;
    if (bc_boot_report_done(cam->cfg.data_dir, &cam->boot, &err) != BC_OK)
        note_error(cam, "firmware: %s", err.text);
}

/* The camera restarts into the slot boot.json names: main.c frees it once
 * stopped and opens it again from its data directory. */
static void fw_restart(bc_camera *cam)
{
    if (cam->restart)
        return;
    cam->restart = true;
    log_info("%s: restarting into firmware %s (slot %s)", cam->cfg.device_id, fw_active(cam),
             bc_boot_slot_name(cam->boot.active));
    bc_camera_shutdown(cam);
}

/* ---- the download ---- */

static bool fw_subscribed(const bc_camera *cam, unsigned n)
{
    for (size_t i = 0; i < cam->fw.nsub; i++) {
        if (cam->fw.sub[i] == n)
            return true;
    }
    return false;
}

static void fw_unsubscribe_all(bc_camera *cam)
{
    const bc_firmware_manifest *m = bc_updater_manifest(cam->updater);
    char topic[BC_TOPIC_MAX];
    bc_error err;
    for (size_t i = 0; i < cam->fw.nsub && m != NULL && bc_link_online(cam->link); i++) {
        if (bc_topic_firmware_chunk(topic, sizeof(topic), m->version, cam->fw.sub[i]) == BC_OK)
            (void)bc_link_unsubscribe(cam->link, topic, &err);
    }
    cam->fw.nsub = 0;
    bc_reactor_timer_stop(cam->r, &cam->fw_chunk_timer);
}

/* Subscribes to the chunks the updater wants now (again, when resubscribe)
 * and ends the subscriptions of the chunks it has. Subscriptions belong to
 * one MQTT session: link_online starts over with none. */
static void fw_follow(bc_camera *cam, bool resubscribe)
{
    const bc_firmware_manifest *m = bc_updater_manifest(cam->updater);
    if (m == NULL || bc_updater_get_phase(cam->updater) != BC_UPDATER_DOWNLOADING ||
        cam->link == NULL || !bc_link_online(cam->link) || cam->shutting_down) {
        bc_reactor_timer_stop(cam->r, &cam->fw_chunk_timer);
        return;
    }
    unsigned want[BC_UPDATER_WINDOW_MAX];
    size_t n = bc_updater_wanted(cam->updater, want, BC_UPDATER_WINDOW_MAX);
    char topic[BC_TOPIC_MAX];
    bc_error err;
    size_t kept = 0;
    for (size_t i = 0; i < cam->fw.nsub; i++) { /* what is no longer wanted */
        bool wanted = false;
        for (size_t j = 0; j < n; j++)
            wanted = wanted || want[j] == cam->fw.sub[i];
        if (wanted) {
            cam->fw.sub[kept++] = cam->fw.sub[i];
        } else if (bc_topic_firmware_chunk(topic, sizeof(topic), m->version, cam->fw.sub[i]) ==
                   BC_OK) {
            (void)bc_link_unsubscribe(cam->link, topic, &err);
        }
    }
    cam->fw.nsub = kept;
    for (size_t j = 0; j < n; j++) {
        bool had = fw_subscribed(cam, want[j]);
        if (had && !resubscribe)
            continue;
        if (bc_topic_firmware_chunk(topic, sizeof(topic), m->version, want[j]) != BC_OK ||
            bc_link_subscribe(cam->link, topic, 1, &err) != BC_OK) {
            log_warnx("%s: firmware chunk %u: cannot subscribe", cam->cfg.device_id, want[j]);
            continue;
        }
        if (!had)
            cam->fw.sub[cam->fw.nsub++] = want[j];
    }
    if (!bc_timer_active(&cam->fw_chunk_timer) &&
        bc_reactor_timer_start(cam->r, &cam->fw_chunk_timer, cam->cfg.fw_chunk_timeout_s * 1000,
                               0) != BC_OK)
        note_error(cam, "cannot start the firmware chunk timer");
}

/* The update ends without an install: fw_failed, the download dropped. */
static void fw_fail(bc_camera *cam, const char *detail)
{
    bc_error err;
    const bc_firmware_manifest *m = bc_updater_manifest(cam->updater);
    char version[BC_VERSION_MAX + 1];
    snprintf(version, sizeof(version), "%s", m != NULL ? m->version : "0");
    fw_unsubscribe_all(cam);
    fw_log(cam, "failed", version, detail);
    (void)fw_event(cam, BC_EVENT_FW_FAILED, version, detail);
    if (bc_updater_finish(cam->updater, &err) != BC_OK)
        note_error(cam, "firmware: %s", err.text);
    cam->fw.wait_logged = false;
}

static void fw_schedule_install(bc_camera *cam, int64_t delay_ms)
{
    if (bc_reactor_timer_start(cam->r, &cam->fw_install_timer, delay_ms, 0) != BC_OK)
        note_error(cam, "cannot start the firmware install timer");
}

/* Every chunk is there: the image checked against the manifest. */
static void fw_downloaded(bc_camera *cam)
{
    bc_error err;
    const bc_firmware_manifest *m = bc_updater_manifest(cam->updater);
    fw_unsubscribe_all(cam);
    if (bc_updater_verify(cam->updater, &err) != BC_OK) {
        fw_fail(cam, err.text);
        return;
    }
    fw_log(cam, "downloaded", m->version, m->sha256);
    fw_schedule_install(cam, 0);
}

static void fw_chunk(bc_camera *cam, const char *topic, const void *payload, size_t len)
{
    bc_topic t;
    bc_error err;
    bool stored = false;
    const bc_firmware_manifest *m = bc_updater_manifest(cam->updater);
    if (bc_topic_parse(topic, &t, &err) != BC_OK || t.kind != BC_TOPIC_FIRMWARE_CHUNK ||
        m == NULL || strcmp(t.version, m->version) != 0)
        return; /* a chunk of another version (a late delivery): not ours */
    if (bc_updater_chunk(cam->updater, t.chunk, payload, len, &stored, &err) != BC_OK) {
        if (len > 0) /* an empty retained payload is the service clearing it */
            log_warnx("%s: firmware %s: chunk ignored: %s", cam->cfg.device_id, m->version,
                      err.text);
        return;
    }
    if (!stored)
        return;
    cam->fw.retries = 0;
    bc_reactor_timer_stop(cam->r, &cam->fw_chunk_timer);
    if (bc_updater_get_phase(cam->updater) == BC_UPDATER_COMPLETE)
        fw_downloaded(cam);
    else
        fw_follow(cam, false);
}

static void on_fw_chunk_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    if (bc_updater_get_phase(cam->updater) != BC_UPDATER_DOWNLOADING || !bc_link_online(cam->link))
        return;
    char detail[BC_TEXT_MAX + 1];
    uint64_t missing = bc_updater_first_missing(cam->updater);
    if (cam->fw.retries >= FW_CHUNK_RETRIES) {
        snprintf(detail, sizeof(detail), "chunk %" PRIu64 " not available", missing);
        fw_fail(cam, detail);
        return;
    }
    cam->fw.retries++;
    log_warnx("%s: firmware: no chunk for %" PRId64 " s (chunk %" PRIu64 " missing); subscribing "
              "again (%u of %d)",
              cam->cfg.device_id, cam->cfg.fw_chunk_timeout_s, missing, cam->fw.retries,
              FW_CHUNK_RETRIES);
    fw_follow(cam, true);
}

/* ---- the install ---- */

/* Standby with enough battery, or docked; NULL when idle, else why not. */
static const char *fw_busy(bc_camera *cam)
{
    if (cam->sm.state == BC_SM_DOCKED)
        return NULL;
    if (cam->sm.state != BC_SM_STANDBY)
        return "the camera is not on standby or docked";
    bc_health_set_mode(cam->health, health_mode(cam), bc_clock_monotonic_ms());
    if (bc_health_battery(cam->health) < (double)cam->cfg.fw_min_battery_pct)
        return "the battery is below fw_min_battery_pct";
    return NULL;
}

static void fw_wait(bc_camera *cam, const char *version, const char *why)
{
    if (!cam->fw.wait_logged)
        log_info("firmware | waiting | device=%s version=%s detail=%s", cam->cfg.device_id, version,
                 why);
    cam->fw.wait_logged = true;
    fw_schedule_install(cam, FW_IDLE_POLL_MS);
}

/* A pending version the camera already runs (a rollback to the version a
 * reverted trial went back to): nothing to install. */
static bool fw_already_running(bc_camera *cam, const bc_firmware_manifest *m)
{
    const bc_boot_slot_info *s = &cam->boot.slots[cam->boot.active];
    return strcmp(s->version, m->version) == 0 &&
           (strcmp(s->sha256, m->sha256) == 0 || s->sha256[0] == '\0');
}

static void fw_install(bc_camera *cam)
{
    bc_error err;
    char answer[BC_CONTROL_ANSWER_MAX + 1];
    bc_firmware_manifest m = *bc_updater_manifest(cam->updater);
    const char *image = bc_updater_image_path(cam->updater);
    apply_input(cam, BC_SM_UPDATE_BEGIN, answer, sizeof(answer));
    if (cam->sm.state != BC_SM_UPDATING) {
        fw_wait(cam, m.version, answer);
        return;
    }
    bool docked = cam->sm.update_return == BC_SM_DOCKED;
    if (bc_boot_install(cam->cfg.data_dir, &cam->boot, image, m.version, m.sha256, docked, &err) !=
        BC_OK) {
        char detail[BC_TEXT_MAX + 1];
        snprintf(detail, sizeof(detail), "install: %s", err.text);
        apply_input(cam, BC_SM_UPDATE_END, answer, sizeof(answer));
        fw_fail(cam, detail);
        return;
    }
    fw_log(cam, "installed", m.version, bc_boot_slot_name(cam->boot.active));
    (void)fw_event(cam, BC_EVENT_FW_INSTALLED, m.version, "");
    if (bc_updater_finish(cam->updater, &err) != BC_OK)
        note_error(cam, "firmware: %s", err.text);
    fw_restart(cam);
}

static void on_fw_install_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    bc_error err;
    const bc_firmware_manifest *m = bc_updater_manifest(cam->updater);
    if (m == NULL || bc_updater_get_phase(cam->updater) != BC_UPDATER_READY || cam->shutting_down)
        return;
    if (cam->boot.trial) {
        fw_wait(cam, m->version, "the running version is still on trial");
        return;
    }
    if (fw_already_running(cam, m)) {
        fw_log(cam, "confirmed", m->version, "already running");
        (void)fw_event(cam, BC_EVENT_FW_CONFIRMED, m->version, "");
        if (bc_updater_finish(cam->updater, &err) != BC_OK)
            note_error(cam, "firmware: %s", err.text);
        return;
    }
    if (bc_firmware_check_install(m, fw_active(cam), &err) != BC_OK) {
        fw_fail(cam, err.text); /* the running version changed since the offer */
        return;
    }
    const char *busy = fw_busy(cam);
    if (busy != NULL) {
        fw_wait(cam, m->version, busy);
        return;
    }
    fw_install(cam);
}

/* A pending update is ready when its image is in download.img (verified)
 * or already in the inactive slot. */
static void fw_check_ready(bc_camera *cam)
{
    bc_error err;
    char slot[PATH_MAX];
    bool in_slot = false;
    const bc_firmware_manifest *m = bc_updater_manifest(cam->updater);
    if (m == NULL)
        return;
    if (bc_updater_get_phase(cam->updater) == BC_UPDATER_DOWNLOADING &&
        bc_boot_slot_path(cam->cfg.data_dir, bc_boot_inactive(&cam->boot), slot, sizeof(slot),
                          &err) == BC_OK &&
        bc_updater_use_slot(cam->updater, slot, &in_slot, &err) != BC_OK)
        note_error(cam, "firmware: %s", err.text);
    if (in_slot)
        fw_log(cam, "downloaded", m->version, "the inactive slot already holds the image");
    if (bc_updater_get_phase(cam->updater) == BC_UPDATER_COMPLETE) {
        fw_downloaded(cam);
        return;
    }
    if (bc_updater_get_phase(cam->updater) == BC_UPDATER_READY)
        fw_schedule_install(cam, 0);
    else
        fw_follow(cam, false);
}

/* ---- the firmware command ---- */

static bc_status cmd_firmware(const bc_command *cmd, void *userdata, bc_error *err)
{
    bc_camera *cam = userdata;
    const bc_firmware_manifest *m = &cmd->params.firmware;
    bc_updater_offer_result res;
    bc_error why;
    bc_error_clear(&why);
    bc_status st = bc_updater_offer(cam->updater, m, cmd->id, fw_active(cam), &res, &why);
    const char *version = bc_version_valid(m->version) ? m->version : "0";
    if (st != BC_OK) {
        fw_log(cam, "refused", version, why.text);
        (void)fw_event(cam, BC_EVENT_FW_REFUSED, version, why.text);
        return bc_fail(err, st, "firmware refused: %s", why.text);
    }
    if (res == BC_UPDATER_SAME) {
        fw_log(cam, "accepted", version, "already in progress");
        return BC_OK;
    }
    fw_log(cam, "accepted", version, cmd->id);
    cam->fw.wait_logged = false;
    cam->fw.retries = 0;
    cam->fw.nsub = 0;
    fw_check_ready(cam);
    if (bc_updater_get_phase(cam->updater) == BC_UPDATER_DOWNLOADING) {
        fw_log(cam, "downloading", version, "");
        (void)fw_event(cam, BC_EVENT_FW_DOWNLOADING, version, "");
    }
    return BC_OK;
}

/* ---- the trial of a new version ---- */

static void fw_revert(bc_camera *cam, const char *detail)
{
    bc_error err;
    char bad[BC_VERSION_MAX + 1];
    snprintf(bad, sizeof(bad), "%s", fw_active(cam));
    if (bc_boot_revert(cam->cfg.data_dir, &cam->boot, detail, &err) != BC_OK) {
        note_error(cam, "firmware: cannot go back to the previous slot: %s", err.text);
        return; /* still on trial: the next boot goes back */
    }
    bc_reactor_timer_stop(cam->r, &cam->fw_confirm_timer);
    bc_reactor_timer_stop(cam->r, &cam->fw_trial_timer);
    fw_log(cam, "rolled_back", bad, detail);
    fw_send_report(cam);
    fw_restart(cam);
}

static void fw_confirm(bc_camera *cam)
{
    bc_error err;
    cam->fw.confirm_due = false;
    if (bc_boot_confirm(cam->cfg.data_dir, &cam->boot, &err) != BC_OK) {
        note_error(cam, "firmware: cannot confirm: %s", err.text);
        return;
    }
    bc_reactor_timer_stop(cam->r, &cam->fw_trial_timer);
    fw_log(cam, "confirmed", fw_active(cam), "health check passed");
    fw_send_report(cam);
    if (bc_updater_get_phase(cam->updater) == BC_UPDATER_READY)
        fw_schedule_install(cam, 0); /* an update that waited for the trial */
}

static void on_fw_confirm_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    if (!cam->boot.trial || cam->shutting_down)
        return;
    if (!cam->fw.header_ok) {
        char detail[BC_TEXT_MAX + 1];
        snprintf(detail, sizeof(detail), "health check failed: %s", cam->fw.header_error);
        fw_revert(cam, detail);
        return;
    }
    if (cam->fw.selftest == BC_BOOT_SELFTEST_FAIL) {
        fw_revert(cam, "health check failed: selftest");
        return;
    }
    if (bc_link_online(cam->link))
        fw_confirm(cam);
    else
        cam->fw.confirm_due = true; /* confirmed once online */
}

static void on_fw_trial_timer(bc_reactor *r, bc_timer *t, void *userdata)
{
    bc_camera *cam = userdata;
    char detail[BC_TEXT_MAX + 1];
    if (!cam->boot.trial || cam->shutting_down)
        return;
    snprintf(detail, sizeof(detail), "did not confirm: no confirmation within %" PRId64 " s",
             cam->cfg.fw_trial_timeout_s);
    fw_revert(cam, detail);
}

/* ---- at open ---- */

/* The boot step, before anything else runs: boot.json read (a damaged one
 * replaced by a safe record), the trial counted. A trial image whose
 * selftest says "crash" crashes here, after the count is on disk. */
static bc_status fw_boot(bc_camera *cam, bc_error *err)
{
    bool found = false;
    bc_error why;
    bc_status st = bc_boot_dir_make(cam->cfg.data_dir, err);
    if (st != BC_OK)
        return st;
    if (bc_boot_load(cam->cfg.data_dir, cam->cfg.fw_version, &cam->boot, &found, &why) != BC_OK) {
        note_error(cam, "firmware: %s", why.text);
        if (bc_boot_save(cam->cfg.data_dir, &cam->boot, &why) != BC_OK)
            note_error(cam, "firmware: cannot repair boot.json: %s", why.text);
    }
    st = bc_boot_start(cam->cfg.data_dir, &cam->boot, &cam->fw.outcome, err);
    if (st != BC_OK)
        return st; /* a trial that cannot be counted must not run */
    if (cam->fw.outcome == BC_BOOT_REVERTED)
        fw_log(cam, "rolled_back", cam->boot.report_version, cam->boot.report_detail);
    if (cam->fw.outcome != BC_BOOT_TRIAL)
        return BC_OK;
    char slot[PATH_MAX];
    bc_boot_header h;
    cam->fw.header_ok = false;
    st = bc_boot_slot_path(cam->cfg.data_dir, cam->boot.active, slot, sizeof(slot), err);
    if (st != BC_OK)
        return st;
    if (bc_boot_header_read(slot, &h, &why) != BC_OK) {
        snprintf(cam->fw.header_error, sizeof(cam->fw.header_error), "%s", why.text);
    } else if (strcmp(h.version, fw_active(cam)) != 0) {
        snprintf(cam->fw.header_error, sizeof(cam->fw.header_error), "the image says version %s",
                 h.version);
    } else {
        cam->fw.header_ok = true;
        cam->fw.selftest = h.selftest;
    }
    fw_log(cam, "booted", fw_active(cam), "trial");
    if (cam->fw.header_ok && h.selftest == BC_BOOT_SELFTEST_CRASH) {
        log_errorx("%s: firmware %s crashes at start (simulated: selftest crash)",
                   cam->cfg.device_id, fw_active(cam));
        abort();
    }
    return BC_OK;
}

/* After the modules are open: the owed report, the trial's timers, a
 * pending update resumed. */
static bc_status fw_start(bc_camera *cam, bc_error *err)
{
    bc_error why;
    size_t window = (size_t)cam->cfg.fw_download_window;
    bc_status st =
        bc_updater_open(cam->cfg.data_dir, cam->firmware_key, window, &cam->updater, err);
    if (st != BC_OK)
        return st;
    fw_send_report(cam);
    if (cam->fw.outcome == BC_BOOT_TRIAL) {
        st =
            bc_reactor_timer_start(cam->r, &cam->fw_confirm_timer, cam->cfg.fw_confirm_s * 1000, 0);
        if (st == BC_OK)
            st = bc_reactor_timer_start(cam->r, &cam->fw_trial_timer,
                                        cam->cfg.fw_trial_timeout_s * 1000, 0);
        if (st != BC_OK)
            return bc_fail(err, st, "cannot start the firmware trial timers");
    }
    const bc_firmware_manifest *m = bc_updater_manifest(cam->updater);
    if (m == NULL)
        return BC_OK;
    const bc_boot_slot_info *active = &cam->boot.slots[cam->boot.active];
    if (cam->boot.trial && strcmp(active->version, m->version) == 0 &&
        strcmp(active->sha256, m->sha256) == 0) {
        /* Switched, then cut before the update was closed: finish it. */
        fw_log(cam, "installed", m->version, "finished after a restart");
        (void)fw_event(cam, BC_EVENT_FW_INSTALLED, m->version, "");
        if (bc_updater_finish(cam->updater, &why) != BC_OK)
            note_error(cam, "firmware: %s", why.text);
        return BC_OK;
    }
    uint64_t done = 0, total = 0;
    bc_updater_progress(cam->updater, &done, &total);
    log_info("%s: firmware %s pending (command %s): %" PRIu64 " of %" PRIu64 " chunks",
             cam->cfg.device_id, m->version, bc_updater_cmd_id(cam->updater), done, total);
    fw_check_ready(cam);
    return BC_OK;
}

static const char *fw_update_state(const bc_camera *cam)
{
    switch (cam->updater != NULL ? bc_updater_get_phase(cam->updater) : BC_UPDATER_IDLE) {
    case BC_UPDATER_DOWNLOADING:
    case BC_UPDATER_COMPLETE:
        return "downloading";
    case BC_UPDATER_READY:
        return cam->sm.state == BC_SM_UPDATING ? "installing" : "ready";
    default:
        return cam->boot.trial ? "trial" : "idle";
    }
}

/* ---- link callbacks ---- */

static bc_status link_reserve_session(void *userdata, uint64_t *session)
{
    bc_camera *cam = userdata;
    bc_error err;
    cam->st.session++;
    bc_status st = save_state(cam, &err);
    if (st != BC_OK) {
        cam->st.session--;
        note_error(cam, "cannot save the session number: %s", err.text);
        return st;
    }
    *session = cam->st.session;
    return BC_OK;
}

static void link_online(bc_link *link, void *userdata)
{
    bc_camera *cam = userdata;
    if (cam->trial.active)
        identity_connected(cam);
    publish_state(cam);
    uploader_follow(cam);
    cam->fw.nsub = 0; /* a new session has no chunk subscriptions */
    cam->fw.retries = 0;
    fw_follow(cam, false);
    if (cam->fw.confirm_due && cam->boot.trial)
        fw_confirm(cam);
}

static void link_offline(bc_link *link, const char *reason, void *userdata)
{
    bc_camera *cam = userdata;
    uploader_follow(cam);
    cam->fw.nsub = 0;
    bc_reactor_timer_stop(cam->r, &cam->fw_chunk_timer);
}

static void link_message(bc_link *link, const char *topic, const void *payload, size_t len,
                         void *userdata)
{
    bc_camera *cam = userdata;
    if (strncmp(topic, FW_TOPIC_PREFIX, strlen(FW_TOPIC_PREFIX)) == 0) {
        fw_chunk(cam, topic, payload, len);
        return;
    }
    bc_commands_handle(cam->commands, topic, payload, len);
}

static void link_published(bc_link *link, int mid, int reason, void *userdata)
{
    bc_camera *cam = userdata;
    bc_error err;
    if (reason >= 128)
        log_warnx("%s: the broker refused message %d: reason %d", cam->cfg.device_id, mid, reason);
    if (bc_uploader_on_published(cam->uploader, mid, reason, &err) != BC_OK)
        log_warnx("%s: upload: %s", cam->cfg.device_id, err.text);
    arm_upload_timer(cam);
}

/* The link already wrote the ERROR line; the health reports carry it. */
static void link_outbox_refused(bc_link *link, uint64_t seq, int reason, const char *text,
                                void *userdata)
{
    bc_camera *cam = userdata;
    bc_health_note_error(cam->health, text);
}

static int upload_publish(void *userdata, const char *topic, const char *payload, size_t len,
                          int qos, int *mid)
{
    bc_camera *cam = userdata;
    bc_error err;
    if (bc_link_publish(cam->link, topic, payload, len, qos, false, mid, &err) != BC_OK) {
        log_warnx("%s: upload publish: %s", cam->cfg.device_id, err.text);
        return -1;
    }
    return 0;
}

/* ---- opening ---- */

/* The first 8 bytes of SHA-256(device id): a stable per-camera seed. */
static bc_status device_hash(const char *device, uint64_t *out, bc_error *err)
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(device, strlen(device), digest, &n, EVP_sha256(), NULL) != 1 || n < 8)
        return bc_fail(err, BC_ERR_CRYPTO, "cannot hash the device id");
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | digest[i];
    *out = v;
    return BC_OK;
}

static bc_status make_data_dir(const char *dir, bc_error *err)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return BC_OK;
    return bc_fail(err, BC_ERR_IO, "cannot make the data directory '%s': %s", dir, strerror(errno));
}

static bc_status open_state(bc_camera *cam, bc_error *err)
{
    bool found = false;
    int64_t now = bc_clock_now_ms();
    bc_status st = bc_persist_load(cam->cfg.data_dir, now, &cam->st, &found, err);
    if (st != BC_OK)
        return st;
    bc_sm_init(&cam->sm, cam->cfg.warning_timeout_s * 1000, now);
    if (cam->st.state == BC_SM_UPDATING) /* an update ends at boot (recover() saves it) */
        return bc_sm_restore(&cam->sm, cam->boot.resume_docked ? BC_SM_DOCKED : BC_SM_STANDBY, 0,
                             false, now, err);
    if (cam->st.state == BC_SM_RECORDING)
        return BC_OK; /* resolved once the recorder has looked at its files */
    return bc_sm_restore(&cam->sm, cam->st.state, cam->st.warnings, cam->st.emergency,
                         cam->st.since_ms, err);
}

static bc_status open_video(bc_camera *cam, bc_error *err)
{
    bool synthetic, has_seed;
    uint64_t bps = 0, seed = 0;
    bc_status st = parse_video_spec(cam->cfg.video_source, &synthetic, &bps, &seed, &has_seed, err);
    if (st != BC_OK)
        return st;
    if (synthetic && !has_seed)
        seed = cam->device_hash;
    cam->video_bps = synthetic ? bps : (uint64_t)cam->cfg.video_bitrate_bps;
    st = synthetic ? bc_video_synthetic_new(seed, bps, &cam->video, err)
                   : bc_video_file_new(cam->cfg.video_source, &cam->video, err);
    if (st != BC_OK)
        return st;
    size_t size =
        VIDEO_TICKS_BUFFERED * bc_video_source_bytes_per_tick(cam->video, cam->cfg.video_tick_ms);
    cam->video_buf_size = size < VIDEO_READ_MIN   ? VIDEO_READ_MIN
                          : size > VIDEO_READ_MAX ? VIDEO_READ_MAX
                                                  : size;
    cam->video_buf = malloc(cam->video_buf_size);
    if (cam->video_buf == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the video buffer");
    int fd = bc_video_source_fd(cam->video);
    if (fd < 0) {
        cam->video_last_ms = bc_clock_monotonic_ms();
        st = bc_reactor_timer_start(cam->r, &cam->video_timer, cam->cfg.video_tick_ms,
                                    cam->cfg.video_tick_ms);
        return st == BC_OK ? BC_OK : bc_fail(err, st, "cannot start the video timer");
    }
    st = bc_reactor_add_fd(cam->r, fd, BC_REACTOR_READ, on_video_fd, cam, err);
    if (st == BC_OK)
        cam->video_fd = fd;
    return st;
}

static bc_status open_recorder(bc_camera *cam, bc_error *err)
{
    char key_id[BC_KEY_ID_LEN + 1];
    if (bc_key_id(cam->recording_key, key_id) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "cannot compute the recording key id");
    return bc_recorder_open(cam->cfg.data_dir, cam->recording_key, key_id, cam->cfg.device_id,
                            (uint32_t)cam->cfg.segment_size,
                            pre_event_bytes(&cam->cfg, cam->video_bps), &cam->recorder, err);
}

/* Reports what the recorder recovered and ends a recording a crash cut. */
static void recover(bc_camera *cam)
{
    bc_recording_meta *list = NULL;
    size_t count = 0;
    bool was_recording = cam->st.state == BC_SM_RECORDING;
    bool reported = false;
    char cut[BC_ID_MAX + 1]; /* emit() clears st.recording_id: the machine is on standby */
    snprintf(cut, sizeof(cut), "%s", cam->st.recording_id);
    (void)bc_recorder_take_recovered(cam->recorder, &list, &count);
    for (size_t i = 0; i < count; i++) {
        bc_message ev;
        event_init(cam, &ev, BC_EVENT_RECORDING_SEALED);
        snprintf(ev.event.recording_id, sizeof(ev.event.recording_id), "%s", list[i].recording_id);
        log_info("%s: recording %s was cut by a crash; sealed (%" PRIu64 " bytes)",
                 cam->cfg.device_id, list[i].recording_id, list[i].size);
        if (was_recording && strcmp(list[i].recording_id, cut) == 0)
            reported = true;
        emit_one(cam, &ev); /* the machine is on standby: the state goes with it */
    }
    free(list);
    bc_recording_meta meta;
    if (was_recording && !reported && bc_recorder_find(cam->recorder, cut, &meta) == BC_OK) {
        bc_message ev; /* closed, but the crash came before the state was saved */
        event_init(cam, &ev, BC_EVENT_RECORDING_STOPPED);
        snprintf(ev.event.recording_id, sizeof(ev.event.recording_id), "%s", meta.recording_id);
        ev.event.warnings = meta.warnings;
        ev.event.emergency = meta.emergency;
        ev.event.duration_ms = meta.duration_ms;
        ev.event.size = (int64_t)meta.size;
        emit_one(cam, &ev);
    } else if (cam->st.state != cam->sm.state) {
        bc_error err;
        sync_persist_from_sm(cam);
        if (save_state(cam, &err) != BC_OK)
            note_error(cam, "cannot save the state: %s", err.text);
    }
}

static bc_status open_link(bc_camera *cam, int64_t first_delay_ms, bc_error *err)
{
    bc_link_config lc;
    memset(&lc, 0, sizeof(lc));
    snprintf(lc.device_id, sizeof(lc.device_id), "%s", cam->cfg.device_id);
    snprintf(lc.host, sizeof(lc.host), "%s", cam->cfg.mqtt_host);
    lc.port = (int)cam->cfg.mqtt_port;
    snprintf(lc.ca_file, sizeof(lc.ca_file), "%s", cam->cfg.ca_file);
    snprintf(lc.cert_file, sizeof(lc.cert_file), "%s", bc_identity_cert_file(cam->identity));
    snprintf(lc.key_file, sizeof(lc.key_file), "%s", bc_identity_key_file(cam->identity));
    lc.keepalive_s = (int)cam->cfg.keepalive_s;
    lc.backoff_min_ms = cam->cfg.backoff_min_ms;
    lc.backoff_max_ms = cam->cfg.backoff_max_ms;
    lc.connect_timeout_ms = cam->cfg.connect_timeout_ms;
    lc.inflight_window = (size_t)cam->cfg.inflight_window;
    snprintf(lc.fw_version, sizeof(lc.fw_version), "%s", fw_active(cam)); /* the active slot's */
    const bc_link_callbacks cb = {
        .reserve_session = link_reserve_session,
        .on_online = link_online,
        .on_offline = link_offline,
        .on_attempt_failed = link_attempt_failed,
        .on_message = link_message,
        .on_published = link_published,
        .on_outbox_refused = link_outbox_refused,
    };
    bc_status st = bc_link_new(cam->r, &lc, cam->outbox, &cb, cam, &cam->link, err);
    if (st != BC_OK)
        return st;
    bc_link_set_recording_key_id(cam->link, bc_recorder_key_id(cam->recorder));
    return bc_link_start(cam->link, first_delay_ms, err);
}

static bc_status open_control(bc_camera *cam, bc_error *err)
{
    char path[PATH_MAX];
    if (strcmp(cam->cfg.control_socket, BC_CAMERA_NO_SOCKET) == 0)
        return BC_OK;
    if (cam->cfg.control_socket[0] != '\0')
        snprintf(path, sizeof(path), "%s", cam->cfg.control_socket);
    else if (path_join(path, sizeof(path), cam->cfg.data_dir, "control.sock") != 0)
        return bc_fail(err, BC_ERR_TOO_BIG, "data dir path is too long");
    return bc_control_open(cam->r, path, on_control, cam, &cam->control, err);
}

static bc_status open_modules(bc_camera *cam, bc_error *err)
{
    const bc_commands_handlers handlers = {
        .upload = cmd_upload,
        .vault_receipt = cmd_receipt,
        .rotate_recording_key = cmd_recording_key,
        .config = cmd_config,
        .rotate_identity = cmd_identity,
        .firmware = cmd_firmware,
        .refused = cmd_refused,
        .send_ack = send_ack,
    };
    const bc_health_config hc = {
        .drain_standby_pct_h = cam->cfg.battery_drain_standby_pct_h,
        .drain_recording_pct_h = cam->cfg.battery_drain_recording_pct_h,
        .charge_pct_h = cam->cfg.battery_charge_pct_h,
        .start_battery_pct = cam->cfg.battery_start_pct,
        .temperature_base_c = cam->cfg.temperature_base_c,
        .signal_base_dbm = cam->cfg.signal_base_dbm,
        .seed = cam->device_hash,
    };
    bc_outbox_limits limits = {
        .max_messages = (size_t)cam->cfg.outbox_max_messages,
        .max_bytes = (size_t)cam->cfg.outbox_max_bytes,
    };
    char dir[PATH_MAX];
    if (path_join(dir, sizeof(dir), cam->cfg.data_dir, BC_OUTBOX_DIR) != 0)
        return bc_fail(err, BC_ERR_TOO_BIG, "data dir path is too long");
    bc_status st = bc_health_new(&hc, cam->started_mono_ms, &cam->health, err);
    if (st == BC_OK)
        st = bc_outbox_open(dir, &limits, &cam->outbox, NULL, err);
    if (st == BC_OK)
        st = open_video(cam, err);
    if (st == BC_OK)
        st = open_recorder(cam, err);
    if (st == BC_OK)
        st = bc_uploader_new(cam->recorder, cam->cfg.device_id, cam->receipt_key,
                             (size_t)cam->cfg.upload_chunk_size, (size_t)cam->cfg.upload_window,
                             upload_publish, cam, &cam->uploader, err);
    if (st == BC_OK && cam->cfg.receipt_wait_s > 0)
        bc_uploader_set_receipt_wait(cam->uploader, cam->cfg.receipt_wait_s * 1000);
    if (st == BC_OK)
        st = bc_commands_open(cam->cfg.device_id, cam->cfg.data_dir, cam->command_key,
                              cam->receipt_key, &handlers, cam, &cam->commands, err);
    if (st == BC_OK)
        st = bc_identity_open(cam->cfg.data_dir, cam->cfg.device_id, cam->cfg.ca_file,
                              cam->cfg.cert_file, cam->cfg.key_file, &cam->identity, err);
    return st;
}

bc_status bc_camera_open(bc_reactor *r, const bc_camera_config *cfg, int64_t first_connect_delay_ms,
                         bc_camera **out, bc_error *err)
{
    *out = NULL;
    bc_status st = bc_camera_config_check(cfg, err);
    if (st != BC_OK)
        return st;
    bc_camera *cam = calloc(1, sizeof(*cam));
    if (cam == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "out of memory");
    cam->cfg = *cfg;
    cam->r = r;
    cam->video_fd = -1;
    cam->started_mono_ms = bc_clock_monotonic_ms();
    bc_timer_init(&cam->sm_timer, on_sm_timer, cam);
    bc_timer_init(&cam->video_timer, on_video_timer, cam);
    bc_timer_init(&cam->flush_timer, on_flush_timer, cam);
    bc_timer_init(&cam->health_timer, on_health_timer, cam);
    bc_timer_init(&cam->upload_timer, on_upload_timer, cam);
    bc_timer_init(&cam->trial_timer, on_trial_timer, cam);
    bc_timer_init(&cam->fw_chunk_timer, on_fw_chunk_timer, cam);
    bc_timer_init(&cam->fw_install_timer, on_fw_install_timer, cam);
    bc_timer_init(&cam->fw_confirm_timer, on_fw_confirm_timer, cam);
    bc_timer_init(&cam->fw_trial_timer, on_fw_trial_timer, cam);
    st = device_hash(cam->cfg.device_id, &cam->device_hash, err);
    if (st == BC_OK)
        st = make_data_dir(cam->cfg.data_dir, err);
    if (st == BC_OK) {
        load_remote_conf(&cam->cfg);
        st = bc_camera_config_check(&cam->cfg, err);
    }
    if (st == BC_OK)
        st = load_keys(cam, err);
    if (st == BC_OK)
        st = fw_boot(cam, err);
    if (st == BC_OK)
        st = open_state(cam, err);
    if (st == BC_OK)
        st = open_modules(cam, err);
    if (st == BC_OK) {
        recover(cam);
        bc_health_set_mode(cam->health, health_mode(cam), bc_clock_monotonic_ms());
        identity_report_interrupted(cam);
        arm_sm_timer(cam);
        st = fw_start(cam, err);
    }
    if (st == BC_OK) {
        st = open_control(cam, err);
    }
    if (st == BC_OK)
        st = open_link(cam, first_connect_delay_ms, err);
    if (st == BC_OK && start_health_timer(cam) != BC_OK)
        st = bc_fail(err, BC_ERR_NOMEM, "cannot start the health timer");
    if (st != BC_OK) {
        bc_camera_free(cam);
        return st;
    }
    log_info("%s: camera up: firmware %s (slot %s%s), state %s, next seq %" PRIu64
             ", %zu pending recording(s), %zu queued message(s)",
             cam->cfg.device_id, fw_active(cam), bc_boot_slot_name(cam->boot.active),
             cam->boot.trial ? ", on trial" : "", bc_sm_state_name(cam->sm.state), cam->st.next_seq,
             bc_recorder_pending_count(cam->recorder), bc_outbox_count(cam->outbox));
    *out = cam;
    return BC_OK;
}

/* ---- status, shutdown, free ---- */

void bc_camera_status_get(const bc_camera *cam, bc_camera_status *out)
{
    memset(out, 0, sizeof(*out));
    out->device = cam->cfg.device_id;
    out->state = bc_sm_state_name(cam->sm.state);
    out->warnings = cam->sm.warnings;
    out->emergency = cam->sm.emergency;
    out->last_seq = last_seq(cam);
    out->pending = bc_recorder_pending_count(cam->recorder);
    out->outbox = bc_outbox_count(cam->outbox);
    out->online = cam->link != NULL && bc_link_online(cam->link);
    snprintf(out->recording_id, sizeof(out->recording_id), "%s", cam->st.recording_id);
    out->identity = bc_identity_rotated(cam->identity) ? "rotated" : "configured";
    snprintf(out->cert_fingerprint, sizeof(out->cert_fingerprint), "%s",
             bc_identity_fingerprint(cam->identity));
    out->switching = cam->trial.active;
    snprintf(out->fw_version, sizeof(out->fw_version), "%s", fw_active(cam));
    out->fw_update = fw_update_state(cam);
}

int bc_camera_restart_requested(const bc_camera *cam)
{
    return cam->restart;
}

void bc_camera_shutdown(bc_camera *cam)
{
    if (cam->shutting_down)
        return;
    if (cam->sm.state == BC_SM_RECORDING) {
        char answer[BC_CONTROL_ANSWER_MAX + 1];
        apply_input(cam, BC_SM_STOP, answer, sizeof(answer));
        log_info("%s: recording closed for the shutdown: %s", cam->cfg.device_id, answer);
    }
    cam->shutting_down = true;
    uploader_follow(cam); /* pauses: saves the resume point */
    bc_control_close(cam->control);
    cam->control = NULL;
    bc_reactor_timer_stop(cam->r, &cam->video_timer);
    bc_reactor_timer_stop(cam->r, &cam->health_timer);
    bc_reactor_timer_stop(cam->r, &cam->upload_timer);
    bc_reactor_timer_stop(cam->r, &cam->sm_timer);
    bc_reactor_timer_stop(cam->r, &cam->trial_timer); /* a cut install is acked at the next start */
    bc_reactor_timer_stop(cam->r,
                          &cam->fw_chunk_timer); /* a pending update resumes at the next start */
    bc_reactor_timer_stop(cam->r, &cam->fw_install_timer);
    bc_reactor_timer_stop(cam->r, &cam->fw_confirm_timer); /* an unconfirmed trial goes back then */
    bc_reactor_timer_stop(cam->r, &cam->fw_trial_timer);
    bc_error err;
    if (save_state(cam, &err) != BC_OK)
        note_error(cam, "cannot save the state at shutdown: %s", err.text);
    bc_link_stop(cam->link);
}

int bc_camera_stopped(const bc_camera *cam)
{
    return cam->link == NULL || bc_link_closed(cam->link);
}

void bc_camera_free(bc_camera *cam)
{
    if (cam == NULL)
        return;
    bc_link_free(cam->link);
    bc_control_close(cam->control);
    bc_reactor_timer_stop(cam->r, &cam->sm_timer);
    bc_reactor_timer_stop(cam->r, &cam->video_timer);
    bc_reactor_timer_stop(cam->r, &cam->flush_timer);
    bc_reactor_timer_stop(cam->r, &cam->health_timer);
    bc_reactor_timer_stop(cam->r, &cam->upload_timer);
    bc_reactor_timer_stop(cam->r, &cam->trial_timer);
    bc_reactor_timer_stop(cam->r, &cam->fw_chunk_timer);
    bc_reactor_timer_stop(cam->r, &cam->fw_install_timer);
    bc_reactor_timer_stop(cam->r, &cam->fw_confirm_timer);
    bc_reactor_timer_stop(cam->r, &cam->fw_trial_timer);
    if (cam->video_fd >= 0)
        (void)bc_reactor_remove_fd(cam->r, cam->video_fd);
    bc_commands_free(cam->commands);
    bc_updater_free(cam->updater);
    bc_identity_free(cam->identity);
    bc_uploader_free(cam->uploader);
    bc_recorder_free(cam->recorder);
    bc_video_source_free(cam->video);
    free(cam->video_buf);
    bc_outbox_close(cam->outbox);
    bc_health_free(cam->health);
    EVP_PKEY_free(cam->command_key);
    EVP_PKEY_free(cam->receipt_key);
    EVP_PKEY_free(cam->recording_key);
    EVP_PKEY_free(cam->firmware_key);
    free(cam);
}
