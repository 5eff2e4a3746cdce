/*
 * shift_script.h - simulated officers: press a camera's buttons in
 * plausible patterns (simulation mode, `--script random:SEED[:MEAN_S]`).
 *
 * Between episodes the officer is on patrol for a random while (around
 * MEAN_S seconds, default 30). An episode is one of:
 *   50 %  escalation: warn, warn (2-10 s later), record (1-5 s), stop (10-60 s)
 *   20 %  de-escalation: one warning that is left to expire
 *   10 %  emergency: the long press, stop 10-40 s later
 *   10 %  a dock break: dock, undock 30-120 s later (the handoff runs)
 *   10 %  the shift-end survey: a score 1-5
 * The in-episode delays scale with MEAN_S / 30. Each camera draws from its
 * own deterministic generator (SEED and the camera's index), so a run can
 * be repeated. The presses go through bc_camera_command, exactly like the
 * control socket's; refusals (e.g. a record after the warnings expired)
 * are part of the realism.
 */
#ifndef BC_AGENT_SHIFT_SCRIPT_H
#define BC_AGENT_SHIFT_SCRIPT_H

#include <stdint.h>

#include "device-agent/camera.h"
#include "device-agent/reactor.h"
#include "proto/status.h"

typedef struct bc_shift_spec {
    uint64_t seed;
    int64_t mean_ms; /* mean patrol time between episodes */
} bc_shift_spec;

/* Parses "random:SEED" or "random:SEED:MEAN_S" (MEAN_S 1..86400).
 * BC_ERR_INVAL with the reason. */
bc_status bc_shift_parse(const char *spec, bc_shift_spec *out, bc_error *err);

typedef struct bc_shift bc_shift;

/* Starts an officer for cam (borrowed; must outlive the shift) on r.
 * index makes each camera's generator different. BC_ERR_NOMEM. */
bc_status bc_shift_new(bc_reactor *r, bc_camera *cam, const bc_shift_spec *spec, uint64_t index,
                       bc_shift **out, bc_error *err);

/* Number of presses made so far. */
uint64_t bc_shift_presses(const bc_shift *s);

/* Stops the timer and frees. NULL is a no-op. */
void bc_shift_free(bc_shift *s);

#endif
