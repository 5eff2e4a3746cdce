/*
 * camera.h - one camera: its configuration, and the object that ties the
 * agent's modules together on one reactor.
 *
 *   control socket / script ──► camera ──► state machine ──► persist (seq, state)
 *                                 │                     └──► outbox ──► link ──► broker
 *   video source ──► recorder ◄───┤ (start / stop / feed / flush)
 *   link (cmd/+) ──► commands ────┤ (upload, vault-receipt, rotate key, config,
 *                                 │  rotate identity ──► identity ──► link)
 *   uploader ◄────────────────────┘ (docked and online)
 *   health timer ──► link (QoS 0)
 *
 * Rules the camera keeps:
 *   - every state-machine event gets the next persisted seq, and the new
 *     next_seq (with the new state) is saved durably BEFORE the event is
 *     put into the outbox: a crash can leave a gap, never a reused seq;
 *   - a recording's id is "<device>-<seq of its recording_started event>";
 *   - the retained state is published on every transition and on every
 *     (re)connect; events and acks only through the outbox;
 *   - view / delete on the device are refused by policy and reported as a
 *     tamper_denied event;
 *   - after a crash mid-recording the recorder seals the file on open and
 *     the camera reports it (recording_sealed) and returns to standby.
 *
 * Files in the data directory besides those of the modules:
 *   recording-key.pub   a recording key installed by rotate-recording-key
 *                       (PEM; overrides the configured one from then on)
 *   remote.conf         values set by config commands (health_interval_s,
 *                       warning_timeout_s, pre_event_s), applied at start
 *   identity/           the TLS identity and its rotation (identity.h)
 *   firmware/           slots, boot record, pending update (boot_slots.h, updater.h)
 *
 * Firmware (device-agent/README.md "Firmware update"): a firmware command's
 * manifest is checked by the updater (updater.h) and kept on disk; the
 * image is fetched from retained chunk topics a window at a time; once the
 * camera is idle (standby with enough battery, or docked) it goes UPDATING,
 * the image is moved into the inactive slot and boot.json switched
 * (boot_slots.h), and the camera restarts in-process (bc_camera_restart_
 * requested). The new version is on trial until its health check passes
 * (fw_confirmed) or fails / times out (back to the previous slot,
 * fw_rolled_back). A trial boot whose image says selftest "crash" aborts
 * the process right after the boot record counted it.
 *
 * Identity rotation (rotate-identity): a request makes a new key and
 * queues a CSR on devices/{id}/csr (cmd_id = the request), then acks. An
 * install whose certificate passes the checks switches the link to it at
 * once; the first accepted CONNACK promotes it and the install is acked ok
 * over that connection. identity_trial_attempts refused attempts, or no
 * connection within identity_trial_s, and the camera goes back to the
 * identity it had and acks "new certificate refused: ...".
 */
#ifndef BC_AGENT_CAMERA_H
#define BC_AGENT_CAMERA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device-agent/control.h"
#include "device-agent/reactor.h"
#include "proto/status.h"
#include "proto/topic.h"

#define BC_CAMERA_PATH_MAX 1024
#define BC_CAMERA_KEY_FILE "recording-key.pub"
#define BC_CAMERA_REMOTE_CONF "remote.conf"
#define BC_CAMERA_NO_SOCKET "none" /* control_socket value: no control socket */

/* Everything one camera is configured with (main.c fills it from the
 * config file table; simulation mode derives one per camera). Integers are
 * int64_t and booleans int because bc_config's table writes them. */
typedef struct bc_camera_config {
    char device_id[BC_DEVICE_ID_MAX + 1];
    char data_dir[BC_CAMERA_PATH_MAX];
    char mqtt_host[256];
    int64_t mqtt_port;
    char ca_file[BC_CAMERA_PATH_MAX];
    char cert_file[BC_CAMERA_PATH_MAX];
    char key_file[BC_CAMERA_PATH_MAX];
    char command_pubkey[BC_CAMERA_PATH_MAX];   /* Ed25519, PEM */
    char receipt_pubkey[BC_CAMERA_PATH_MAX];   /* Ed25519, PEM */
    char recording_pubkey[BC_CAMERA_PATH_MAX]; /* X25519, PEM */
    char recording_key_id[BC_ID_MAX + 1];      /* "" or bc_key_id of it (checked) */
    char control_socket[BC_CAMERA_PATH_MAX];   /* "" = DATA_DIR/control.sock; "none" */
    char fw_version[33];
    int64_t keepalive_s;
    int64_t backoff_min_ms;
    int64_t backoff_max_ms;
    int64_t connect_timeout_ms;
    int64_t inflight_window;
    int64_t health_interval_s;
    int64_t warning_timeout_s;
    int64_t pre_event_s;
    char video_source[BC_CAMERA_PATH_MAX]; /* synthetic:BPS[:SEED] | PATH | - */
    int64_t video_bitrate_bps;             /* sizes the pre-event buffer of a file source */
    int64_t video_tick_ms;                 /* synthetic source: pull period */
    int64_t flush_interval_ms;             /* recording: fdatasync period */
    int64_t segment_size;                  /* recording segment bytes, 0 = default */
    int64_t upload_chunk_size;             /* 0 = default */
    int64_t upload_window;                 /* 0 = default */
    int64_t receipt_wait_s;                /* before a fully sent manifest goes again */
    int upload_on_dock;                    /* start the handoff when docked and online */
    int64_t outbox_max_messages;
    int64_t outbox_max_bytes;
    int64_t battery_drain_standby_pct_h;
    int64_t battery_drain_recording_pct_h;
    int64_t battery_charge_pct_h;
    int64_t battery_start_pct;
    int64_t temperature_base_c;
    int64_t signal_base_dbm;
    int64_t identity_trial_s;                 /* a new certificate must connect within this */
    int64_t identity_trial_attempts;          /* refused attempts with it before going back */
    char firmware_pubkey[BC_CAMERA_PATH_MAX]; /* Ed25519, PEM; "" = firmware refused */
    int64_t fw_min_battery_pct;               /* install on standby only above this */
    int64_t fw_confirm_s;                     /* health check time after the switch */
    int64_t fw_trial_timeout_s;               /* an unconfirmed trial boot goes back after this */
    int64_t fw_download_window;               /* chunk topics subscribed at a time */
    int64_t fw_chunk_timeout_s;               /* no chunk this long: subscribe again (3 times) */
} bc_camera_config;

typedef struct bc_camera bc_camera;

/* A snapshot for the status answer, the simulation and tests. */
typedef struct bc_camera_status {
    const char *device; /* borrowed */
    const char *state;  /* static name */
    int warnings;
    bool emergency;
    uint64_t last_seq; /* seq of the last event, 0 before the first */
    size_t pending;    /* recordings waiting for a vault receipt */
    size_t outbox;     /* events and acks not yet acknowledged by the broker */
    bool online;
    char recording_id[BC_ID_MAX + 1];
    const char *identity;      /* static: "configured" or "rotated" (identity.h) */
    char cert_fingerprint[65]; /* SHA-256 of the certificate in use, "" unknown */
    bool switching;            /* a new certificate is being tried */
    char fw_version[33];       /* the active slot's version */
    const char *fw_update;     /* static: idle, downloading, ready, installing, trial */
} bc_camera_status;

/* Checks a configuration without opening anything: ranges and the
 * combinations (backoff_min <= backoff_max, a parsable video source, ids).
 * BC_ERR_INVAL naming the option. */
bc_status bc_camera_config_check(const bc_camera_config *cfg, bc_error *err);

/* Opens the camera on r: data directory (made 0700 if missing), keys,
 * persisted state, outbox, recorder (sealing what a crash left), uploader,
 * commands, health, video source, control socket, link (connecting starts
 * after first_connect_delay_ms, which lets a simulated fleet spread its
 * connections). Recovered recordings are reported as events. BC_ERR_INVAL
 * (configuration), BC_ERR_IO (files, socket; errno kept), BC_ERR_PARSE /
 * BC_ERR_VERSION (a persisted file that cannot be read), BC_ERR_CRYPTO,
 * BC_ERR_NOMEM, BC_ERR_EXISTS (a live control socket). On failure nothing
 * is left open. Free with bc_camera_free. */
bc_status bc_camera_open(bc_reactor *r, const bc_camera_config *cfg, int64_t first_connect_delay_ms,
                         bc_camera **out, bc_error *err);

/* Applies one control command (the buttons, the dock, status, survey,
 * view/delete) exactly as if it came from the control socket and writes
 * the answer line ("ok ..." / "error: ...", no newline) into answer. */
void bc_camera_command(bc_camera *cam, const bc_control_command *cmd, char *answer, size_t size);

/* Fills *out. */
void bc_camera_status_get(const bc_camera *cam, bc_camera_status *out);

/* Starts a clean shutdown: closes an open recording properly (its
 * recording_stopped event is queued), stops the control socket and the
 * video, saves the state and the upload resume point, and ends the MQTT
 * session (DISCONNECT with will). Keep running the reactor until
 * bc_camera_stopped() (or a deadline), then bc_camera_free. Idempotent. */
void bc_camera_shutdown(bc_camera *cam);

/* 1 once the MQTT session is closed after bc_camera_shutdown. */
int bc_camera_stopped(const bc_camera *cam);

/* 1 when the camera asks to be restarted (a firmware switch): it has
 * started its own shutdown; once bc_camera_stopped (or a deadline), the
 * owner frees it and opens it again with the same configuration, and the
 * new camera boots the slot boot.json names. */
int bc_camera_restart_requested(const bc_camera *cam);

/* Frees everything (an open recording is abandoned as a crash would leave
 * it: use bc_camera_shutdown first). NULL is a no-op. Not from a callback
 * of the camera. */
void bc_camera_free(bc_camera *cam);

#endif
