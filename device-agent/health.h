/*
 * health.h - the camera's health report (design.md: devices/{id}/health,
 * QoS 0, every health_interval_s).
 *
 * What a real camera reads from its hardware is simulated here, so that the
 * fleet dashboard and the alerts have something that behaves like a fleet:
 *   - battery: drains at one rate on standby, faster while recording, and
 *     charges while docked (rates in percent per hour, configurable);
 *   - temperature: a base, warmer while recording or charging, plus noise;
 *   - signal: a base in dBm plus noise.
 * The noise comes from a small deterministic generator seeded per camera,
 * so a simulated fleet is reproducible. Storage, pending uploads, uptime,
 * firmware and key id are real and passed in by the camera.
 *
 * Errors: bc_health_note_error() keeps the most recent BC_HEALTH_ERRORS_MAX
 * distinct error sentences until a report carrying them was published
 * (bc_health_errors_reported()), so an error is not lost to an offline spell.
 */
#ifndef BC_AGENT_HEALTH_H
#define BC_AGENT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/message.h"
#include "proto/status.h"

typedef enum bc_health_mode {
    BC_HEALTH_STANDBY,   /* standby, warning: the camera is on, not writing */
    BC_HEALTH_RECORDING, /* writing video */
    BC_HEALTH_DOCKED,    /* in the dock: charging */
} bc_health_mode;

typedef struct bc_health_config {
    int64_t drain_standby_pct_h;   /* 0..100 */
    int64_t drain_recording_pct_h; /* 0..100 */
    int64_t charge_pct_h;          /* 0..1000 */
    int64_t start_battery_pct;     /* 0..100 */
    int64_t temperature_base_c;    /* -40..80 */
    int64_t signal_base_dbm;       /* -150..0 */
    uint64_t seed;                 /* noise generator */
} bc_health_config;

/* What the camera knows that the simulation does not. */
typedef struct bc_health_inputs {
    const char *device;
    int64_t now_ms; /* wall clock, the report's ts */
    int64_t uptime_s;
    const char *fw;
    const char *recording_key_id; /* may be "" */
    uint64_t storage_free;
    uint64_t storage_total;
    uint64_t pending_uploads;
} bc_health_inputs;

typedef struct bc_health bc_health;

/* A simulation starting at mono_ms (monotonic) in STANDBY with the start
 * battery. BC_ERR_INVAL for a value outside the ranges above, BC_ERR_NOMEM.
 * Free with bc_health_free(). */
bc_status bc_health_new(const bc_health_config *cfg, int64_t mono_ms, bc_health **out,
                        bc_error *err);

void bc_health_free(bc_health *h);

/* Integrates the battery up to mono_ms in the current mode, then switches
 * to mode (call on every state change and before a report). Time going
 * backwards is ignored. */
void bc_health_set_mode(bc_health *h, bc_health_mode mode, int64_t mono_ms);

/* The simulated battery level now (after bc_health_set_mode), 0..100. */
double bc_health_battery(const bc_health *h);

/* Remembers an error sentence for the next reports (control characters
 * replaced, cut to BC_HEALTH_ERROR_MAX bytes; a repeat of a kept one is
 * not added twice; the oldest is dropped when full). Empty text is ignored. */
void bc_health_note_error(bc_health *h, const char *text);

/* Number of errors kept. */
size_t bc_health_error_count(const bc_health *h);

/* Fills out (kind BC_TOPIC_HEALTH) from the simulation at mono_ms and in.
 * Values are clamped into the message's ranges (storage_free <= total).
 * BC_ERR_INVAL when in->device or in->fw is missing. */
bc_status bc_health_report(bc_health *h, const bc_health_inputs *in, int64_t mono_ms,
                           bc_message *out, bc_error *err);

/* The errors in the last report were published: forget them. */
void bc_health_errors_reported(bc_health *h);

#endif
