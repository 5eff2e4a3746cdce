/*
 * health.c - the simulated hardware and the health message.
 *
 * Battery model: a level in percent (a double, so slow rates accumulate),
 * integrated piecewise: each bc_health_set_mode() first applies the rate of
 * the mode that held since the last call, then switches. Docked charges at
 * charge_pct_h up to 100; otherwise it drains down to 0.
 *
 * Noise: splitmix64, a tiny well-known mixing generator - good enough for
 * plausible jitter, never used for anything secret.
 */
#include "device-agent/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"

#define MS_PER_HOUR 3600000.0
#define RECORDING_WARMTH_C 6
#define CHARGING_WARMTH_C 3
#define TEMP_NOISE_C 2     /* +- */
#define SIGNAL_NOISE_DBM 6 /* +- */

struct bc_health {
    bc_health_config cfg;
    bc_health_mode mode;
    int64_t last_ms;
    double battery;
    uint64_t rng;
    char errors[BC_HEALTH_ERRORS_MAX][BC_HEALTH_ERROR_MAX + 1];
    size_t error_count;
    size_t reported; /* errors included in the last report */
};

static uint64_t next_random(bc_health *h)
{
    uint64_t z = (h->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A whole number in [-spread, spread]. */
static int64_t noise(bc_health *h, int64_t spread)
{
    return (int64_t)(next_random(h) % (uint64_t)(2 * spread + 1)) - spread;
}

static int in_range(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

bc_status bc_health_new(const bc_health_config *cfg, int64_t mono_ms, bc_health **out,
                        bc_error *err)
{
    *out = NULL;
    if (!in_range(cfg->drain_standby_pct_h, 0, 100) ||
        !in_range(cfg->drain_recording_pct_h, 0, 100) || !in_range(cfg->charge_pct_h, 0, 1000) ||
        !in_range(cfg->start_battery_pct, 0, 100))
        return bc_fail(err, BC_ERR_INVAL, "health: battery rates or start level out of range");
    if (!in_range(cfg->temperature_base_c, -40, 80) || !in_range(cfg->signal_base_dbm, -150, 0))
        return bc_fail(err, BC_ERR_INVAL, "health: temperature or signal base out of range");
    bc_health *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "health: out of memory");
    h->cfg = *cfg;
    h->mode = BC_HEALTH_STANDBY;
    h->last_ms = mono_ms;
    h->battery = (double)cfg->start_battery_pct;
    h->rng = cfg->seed;
    *out = h;
    return BC_OK;
}

void bc_health_free(bc_health *h)
{
    free(h);
}

static double rate_of(const bc_health *h)
{
    switch (h->mode) {
    case BC_HEALTH_RECORDING:
        return -(double)h->cfg.drain_recording_pct_h;
    case BC_HEALTH_DOCKED:
        return (double)h->cfg.charge_pct_h;
    default:
        return -(double)h->cfg.drain_standby_pct_h;
    }
}

void bc_health_set_mode(bc_health *h, bc_health_mode mode, int64_t mono_ms)
{
    if (mono_ms > h->last_ms) {
        h->battery += rate_of(h) * (double)(mono_ms - h->last_ms) / MS_PER_HOUR;
        if (h->battery < 0.0)
            h->battery = 0.0;
        if (h->battery > 100.0)
            h->battery = 100.0;
        h->last_ms = mono_ms;
    }
    h->mode = mode;
}

double bc_health_battery(const bc_health *h)
{
    return h->battery;
}

void bc_health_note_error(bc_health *h, const char *text)
{
    if (text == NULL || text[0] == '\0')
        return;
    char clean[BC_HEALTH_ERROR_MAX + 1];
    size_t n = 0;
    for (const char *p = text; *p != '\0' && n < BC_HEALTH_ERROR_MAX; p++)
        clean[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    clean[n] = '\0';
    for (size_t i = 0; i < h->error_count; i++) {
        if (strcmp(h->errors[i], clean) == 0)
            return;
    }
    if (h->error_count == BC_HEALTH_ERRORS_MAX) {
        memmove(h->errors[0], h->errors[1], sizeof(h->errors[0]) * (BC_HEALTH_ERRORS_MAX - 1));
        h->error_count--;
        if (h->reported > 0)
            h->reported--;
    }
    memcpy(h->errors[h->error_count++], clean, n + 1);
}

size_t bc_health_error_count(const bc_health *h)
{
    return h->error_count;
}

void bc_health_errors_reported(bc_health *h)
{
    size_t n = h->reported <= h->error_count ? h->reported : h->error_count;
    memmove(h->errors[0], h->errors[n], sizeof(h->errors[0]) * (h->error_count - n));
    h->error_count -= n;
    h->reported = 0;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* An unsigned count as a JSON-safe integer in [0, hi]. */
static int64_t clamp_u64(uint64_t v, int64_t hi)
{
    return v > (uint64_t)hi ? hi : (int64_t)v;
}

static void simulated_fields(bc_health *h, bc_msg_health *m)
{
    bool charging = h->mode == BC_HEALTH_DOCKED && h->battery < 100.0;
    int64_t warmth = h->mode == BC_HEALTH_RECORDING ? RECORDING_WARMTH_C
                     : charging                     ? CHARGING_WARMTH_C
                                                    : 0;
    m->battery_pct = clamp((int64_t)(h->battery + 0.5), 0, 100);
    m->charging = charging;
    m->temperature_c =
        clamp(h->cfg.temperature_base_c + warmth + noise(h, TEMP_NOISE_C), -100, 200);
    m->signal_dbm = clamp(h->cfg.signal_base_dbm + noise(h, SIGNAL_NOISE_DBM), -200, 0);
}

bc_status bc_health_report(bc_health *h, const bc_health_inputs *in, int64_t mono_ms,
                           bc_message *out, bc_error *err)
{
    if (in->device == NULL || in->fw == NULL)
        return bc_fail(err, BC_ERR_INVAL, "health: device and fw are required");
    bc_health_set_mode(h, h->mode, mono_ms);
    memset(out, 0, sizeof(*out));
    out->kind = BC_TOPIC_HEALTH;
    bc_msg_health *m = &out->health;
    snprintf(m->device, sizeof(m->device), "%s", in->device);
    snprintf(m->fw, sizeof(m->fw), "%s", in->fw);
    snprintf(m->recording_key_id, sizeof(m->recording_key_id), "%s",
             in->recording_key_id != NULL ? in->recording_key_id : "");
    m->ts = in->now_ms;
    m->uptime_s = in->uptime_s < 0 ? 0 : in->uptime_s;
    int64_t total = clamp_u64(in->storage_total, BC_JSON_INT_MAX);
    m->storage_total = total;
    m->storage_free = clamp_u64(in->storage_free, total);
    m->pending_uploads = clamp_u64(in->pending_uploads, BC_JSON_INT_MAX);
    simulated_fields(h, m);
    m->error_count = h->error_count;
    for (size_t i = 0; i < h->error_count; i++)
        memcpy(m->errors[i], h->errors[i], sizeof(m->errors[i]));
    h->reported = h->error_count;
    return BC_OK;
}
