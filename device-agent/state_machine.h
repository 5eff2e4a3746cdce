/*
 * state_machine.h - the camera's policy state machine (design.md), pure:
 * no I/O, no clock of its own; the caller passes the time.
 *
 * The caller feeds inputs (the buttons, the dock, the firmware updater)
 * and calls bc_sm_tick() when bc_sm_next_deadline() is reached; each call
 * fills a bc_sm_result with the refusal reason (if any) and the events to
 * publish, in order. The caller numbers the events with its persisted,
 * monotonic seq and maps them onto proto's event messages (the event type
 * names are proto's). Times are milliseconds of one clock the caller keeps
 * consistent (the agent uses bc_clock_now_ms(), so since_ms can be
 * published as is).
 */
#ifndef BC_AGENT_STATE_MACHINE_H
#define BC_AGENT_STATE_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

typedef enum bc_sm_state {
    BC_SM_STANDBY,
    BC_SM_WARNING,   /* warnings = 1 or 2 */
    BC_SM_RECORDING, /* warnings = warnings given before it, emergency flag */
    BC_SM_DOCKED,
    BC_SM_UPDATING,
    BC_SM_STATE_COUNT
} bc_sm_state;

typedef enum bc_sm_input {
    BC_SM_WARN,
    BC_SM_RECORD,
    BC_SM_EMERGENCY,
    BC_SM_STOP,
    BC_SM_DOCK,
    BC_SM_UNDOCK,
    BC_SM_UPDATE_BEGIN,
    BC_SM_UPDATE_END,
    BC_SM_INPUT_COUNT
} bc_sm_input;
/* The warning timeout is not an input: it is time, see bc_sm_tick(). */

typedef enum bc_sm_event_type {
    BC_SM_EV_WARNING_GIVEN,     /* warnings: the new count (1 or 2) */
    BC_SM_EV_WARNING_EXPIRED,   /* warnings: the count that expired (de-escalated) */
    BC_SM_EV_RECORD_REFUSED,    /* warnings: the count when record was pressed (0 or 1) */
    BC_SM_EV_RECORDING_STARTED, /* warnings, emergency */
    BC_SM_EV_RECORDING_STOPPED, /* warnings, emergency, duration_ms */
    BC_SM_EV_DOCKED,
    BC_SM_EV_UNDOCKED,
    BC_SM_EV_TYPE_COUNT
} bc_sm_event_type;

typedef struct bc_sm_event {
    bc_sm_event_type type;
    int warnings;
    bool emergency;
    int64_t duration_ms; /* RECORDING_STOPPED only */
} bc_sm_event;

#define BC_SM_MAX_EVENTS 4

typedef struct bc_sm_result {
    bool accepted;      /* false: refused; reason says why */
    bool state_changed; /* publish (and persist) the new state */
    const char *reason; /* static text, NULL when accepted */
    size_t event_count;
    bc_sm_event events[BC_SM_MAX_EVENTS]; /* in order */
} bc_sm_result;

/* No deadline pending (bc_sm_next_deadline). */
#define BC_SM_NO_DEADLINE INT64_MAX

/* The machine. Read the fields freely; change them only through the
 * functions below. */
typedef struct bc_sm {
    bc_sm_state state;
    int warnings;                /* WARNING: 1-2; RECORDING: before it; else 0 */
    bool emergency;              /* RECORDING only */
    int64_t since_ms;            /* when the current state was entered */
    int64_t warning_deadline_ms; /* WARNING only: when the warnings expire */
    int64_t warning_timeout_ms;
    bc_sm_state update_return; /* UPDATING only: STANDBY or DOCKED */
} bc_sm;

/* Starts in STANDBY at now_ms. warning_timeout_ms <= 0 is taken as 1. */
void bc_sm_init(bc_sm *sm, int64_t warning_timeout_ms, int64_t now_ms);

/* Restores a persisted state (after a restart). For WARNING the warnings
 * expire at since_ms + timeout (a tick right after may expire them);
 * UPDATING returns to STANDBY when it ends. BC_ERR_INVAL (machine
 * unchanged) for an out-of-range state, or warnings that do not fit the
 * state (WARNING needs 1-2, RECORDING 0-2, others 0). */
bc_status bc_sm_restore(bc_sm *sm, bc_sm_state state, int warnings, bool emergency,
                        int64_t since_ms, bc_error *err);

/* Changes the timeout for warnings given from now on (the deadline of a
 * pending warning is kept). <= 0 is taken as 1. */
void bc_sm_set_warning_timeout(bc_sm *sm, int64_t warning_timeout_ms);

/* Applies an input at now_ms (first expiring warnings that are due, which
 * adds a WARNING_EXPIRED event). Fills *out (always). Returns BC_OK when
 * accepted, BC_ERR_STATE when refused (out->reason says why, in words fit
 * for the control socket's "error: ..." answer; a refusal may still carry
 * events: RECORD_REFUSED, or a WARNING_EXPIRED that happened first),
 * BC_ERR_INVAL for an unknown input (machine unchanged). */
bc_status bc_sm_apply(bc_sm *sm, bc_sm_input input, int64_t now_ms, bc_sm_result *out);

/* When bc_sm_tick() next has something to do, or BC_SM_NO_DEADLINE. */
int64_t bc_sm_next_deadline(const bc_sm *sm);

/* Applies the time: at or after the deadline, WARNING -> STANDBY with a
 * WARNING_EXPIRED event. Fills *out; out->event_count is 0 when nothing
 * was due. Always BC_OK. */
bc_status bc_sm_tick(bc_sm *sm, int64_t now_ms, bc_sm_result *out);

/* Static names, as proto spells them: "standby", "warning", "recording",
 * "docked", "updating"; "warn", "record", ...; "warning_given", ...
 * "unknown" for an out-of-range value. */
const char *bc_sm_state_name(bc_sm_state state);
const char *bc_sm_input_name(bc_sm_input input);
const char *bc_sm_event_name(bc_sm_event_type type);

/* Parses a state name (as bc_sm_state_name writes it). BC_ERR_PARSE if
 * unknown. */
bc_status bc_sm_state_parse(const char *name, bc_sm_state *out);

#endif
