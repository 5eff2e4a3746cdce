/*
 * state_machine.c - the camera's policy, as a table of small transitions.
 *
 *                 warn                  warn                 record
 *   STANDBY ─────────────► WARNING(1) ─────────► WARNING(2) ─────────► RECORDING
 *    ▲  ▲  │                 │    ▲                │    ▲  │            (warnings=2)
 *    │  │  │                 │    └─ each warn re-arms the timeout ─┘   │
 *    │  │  │                 │   timeout (warning_expired{n})    │      │
 *    │  │  │                 └────────────┬─────────────────────┘      │
 *    │  │  │◄─────────────────────────────┘                            │
 *    │  │  │                                                           │
 *    │  │  │  emergency (from STANDBY or WARNING(n)) ─► RECORDING      │
 *    │  │  │                          (emergency=true, warnings=n)     │
 *    │  └──┼───────────────────── stop (recording_stopped) ◄───────────┘
 *    │     │ dock (STANDBY only)
 *    │     ▼
 *    └── DOCKED ─── undock ──► STANDBY
 *
 *   STANDBY/DOCKED ── update_begin ──► UPDATING ── update_end ──► where it came from
 *   (dock/undock while UPDATING only change where it returns to)
 *
 * Refusals (state unchanged, BC_ERR_STATE with a reason):
 *   - record in STANDBY or WARNING(1): "two warnings are needed before recording",
 *     with a record_refused{warnings} event (the pilot counts refused presses);
 *   - warn in WARNING(2): "already two warnings". Decision: the refusal still
 *     re-arms the timeout. An officer who keeps warning is still in the
 *     escalated situation, and letting the camera drop back to standby while
 *     they are warning would make their next "record" press fail; no event,
 *     since no state changed (the deadline is internal);
 *   - dock while WARNING or RECORDING: a camera in the middle of an incident
 *     cannot be docked; anything else that does not fit the state (stop when
 *     not recording, record while recording, ...).
 *
 * Time: every input first applies a due timeout, so a "record" that arrives
 * after the warnings expired (but before the caller's timer ran) is judged
 * against STANDBY, and both events come out in order.
 */
#include "device-agent/state_machine.h"

#include <string.h>

static const char *const state_names[BC_SM_STATE_COUNT] = {
    [BC_SM_STANDBY] = "standby", [BC_SM_WARNING] = "warning",   [BC_SM_RECORDING] = "recording",
    [BC_SM_DOCKED] = "docked",   [BC_SM_UPDATING] = "updating",
};

static const char *const input_names[BC_SM_INPUT_COUNT] = {
    [BC_SM_WARN] = "warn",
    [BC_SM_RECORD] = "record",
    [BC_SM_EMERGENCY] = "emergency",
    [BC_SM_STOP] = "stop",
    [BC_SM_DOCK] = "dock",
    [BC_SM_UNDOCK] = "undock",
    [BC_SM_UPDATE_BEGIN] = "update_begin",
    [BC_SM_UPDATE_END] = "update_end",
};

static const char *const event_names[BC_SM_EV_TYPE_COUNT] = {
    [BC_SM_EV_WARNING_GIVEN] = "warning_given",
    [BC_SM_EV_WARNING_EXPIRED] = "warning_expired",
    [BC_SM_EV_RECORD_REFUSED] = "record_refused",
    [BC_SM_EV_RECORDING_STARTED] = "recording_started",
    [BC_SM_EV_RECORDING_STOPPED] = "recording_stopped",
    [BC_SM_EV_DOCKED] = "docked",
    [BC_SM_EV_UNDOCKED] = "undocked",
};

const char *bc_sm_state_name(bc_sm_state state)
{
    if ((unsigned)state >= BC_SM_STATE_COUNT)
        return "unknown";
    return state_names[state];
}

const char *bc_sm_input_name(bc_sm_input input)
{
    if ((unsigned)input >= BC_SM_INPUT_COUNT)
        return "unknown";
    return input_names[input];
}

const char *bc_sm_event_name(bc_sm_event_type type)
{
    if ((unsigned)type >= BC_SM_EV_TYPE_COUNT)
        return "unknown";
    return event_names[type];
}

bc_status bc_sm_state_parse(const char *name, bc_sm_state *out)
{
    for (int i = 0; name != NULL && i < BC_SM_STATE_COUNT; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            *out = (bc_sm_state)i;
            return BC_OK;
        }
    }
    return BC_ERR_PARSE;
}

static int64_t sanitize_timeout(int64_t ms)
{
    return ms > 0 ? ms : 1;
}

void bc_sm_init(bc_sm *sm, int64_t warning_timeout_ms, int64_t now_ms)
{
    memset(sm, 0, sizeof(*sm));
    sm->state = BC_SM_STANDBY;
    sm->since_ms = now_ms;
    sm->warning_deadline_ms = BC_SM_NO_DEADLINE;
    sm->warning_timeout_ms = sanitize_timeout(warning_timeout_ms);
    sm->update_return = BC_SM_STANDBY;
}

void bc_sm_set_warning_timeout(bc_sm *sm, int64_t warning_timeout_ms)
{
    sm->warning_timeout_ms = sanitize_timeout(warning_timeout_ms);
}

bc_status bc_sm_restore(bc_sm *sm, bc_sm_state state, int warnings, bool emergency,
                        int64_t since_ms, bc_error *err)
{
    if ((unsigned)state >= BC_SM_STATE_COUNT)
        return bc_fail(err, BC_ERR_INVAL, "state %d is not a camera state", (int)state);
    int lo = 0, hi = 0;
    if (state == BC_SM_WARNING) {
        lo = 1;
        hi = 2;
    } else if (state == BC_SM_RECORDING) {
        hi = 2;
    }
    if (warnings < lo || warnings > hi)
        return bc_fail(err, BC_ERR_INVAL, "%d warnings do not fit state '%s' (expected %d..%d)",
                       warnings, state_names[state], lo, hi);
    sm->state = state;
    sm->warnings = warnings;
    sm->emergency = state == BC_SM_RECORDING && emergency;
    sm->since_ms = since_ms;
    sm->warning_deadline_ms =
        state == BC_SM_WARNING ? since_ms + sm->warning_timeout_ms : BC_SM_NO_DEADLINE;
    sm->update_return = BC_SM_STANDBY;
    return BC_OK;
}

int64_t bc_sm_next_deadline(const bc_sm *sm)
{
    return sm->state == BC_SM_WARNING ? sm->warning_deadline_ms : BC_SM_NO_DEADLINE;
}

/* ---- building results ---- */

static void result_reset(bc_sm_result *out)
{
    memset(out, 0, sizeof(*out));
    out->accepted = true;
}

static void emit(bc_sm_result *out, bc_sm_event_type type, int warnings, bool emergency,
                 int64_t duration_ms)
{
    if (out->event_count >= BC_SM_MAX_EVENTS)
        return; /* cannot happen: at most one expiry plus one transition */
    bc_sm_event *ev = &out->events[out->event_count++];
    ev->type = type;
    ev->warnings = warnings;
    ev->emergency = emergency;
    ev->duration_ms = duration_ms;
}

static bc_status refuse(bc_sm_result *out, const char *reason)
{
    out->accepted = false;
    out->reason = reason;
    return BC_ERR_STATE;
}

static void enter(bc_sm *sm, bc_sm_result *out, bc_sm_state state, int warnings, bool emergency,
                  int64_t now_ms)
{
    sm->state = state;
    sm->warnings = warnings;
    sm->emergency = emergency;
    sm->since_ms = now_ms;
    sm->warning_deadline_ms =
        state == BC_SM_WARNING ? now_ms + sm->warning_timeout_ms : BC_SM_NO_DEADLINE;
    out->state_changed = true;
}

/* Expires due warnings; adds its event to out (which is not reset). */
static void apply_time(bc_sm *sm, int64_t now_ms, bc_sm_result *out)
{
    if (sm->state != BC_SM_WARNING || now_ms < sm->warning_deadline_ms)
        return;
    int expired = sm->warnings;
    enter(sm, out, BC_SM_STANDBY, 0, false, now_ms);
    emit(out, BC_SM_EV_WARNING_EXPIRED, expired, false, 0);
}

bc_status bc_sm_tick(bc_sm *sm, int64_t now_ms, bc_sm_result *out)
{
    result_reset(out);
    apply_time(sm, now_ms, out);
    return BC_OK;
}

/* ---- one function per input ---- */

static bc_status on_warn(bc_sm *sm, int64_t now, bc_sm_result *out)
{
    switch (sm->state) {
    case BC_SM_STANDBY:
    case BC_SM_WARNING:
        if (sm->warnings >= 2) {
            sm->warning_deadline_ms = now + sm->warning_timeout_ms; /* see the top comment */
            return refuse(out, "already two warnings");
        }
        enter(sm, out, BC_SM_WARNING, sm->warnings + 1, false, now);
        emit(out, BC_SM_EV_WARNING_GIVEN, sm->warnings, false, 0);
        return BC_OK;
    case BC_SM_RECORDING:
        return refuse(out, "already recording");
    case BC_SM_DOCKED:
        return refuse(out, "the camera is docked");
    default:
        return refuse(out, "a firmware update is in progress");
    }
}

static bc_status on_record(bc_sm *sm, int64_t now, bc_sm_result *out)
{
    switch (sm->state) {
    case BC_SM_STANDBY:
    case BC_SM_WARNING:
        if (sm->warnings >= 2) {
            enter(sm, out, BC_SM_RECORDING, 2, false, now);
            emit(out, BC_SM_EV_RECORDING_STARTED, 2, false, 0);
            return BC_OK;
        }
        emit(out, BC_SM_EV_RECORD_REFUSED, sm->warnings, false, 0);
        return refuse(out, "two warnings are needed before recording");
    case BC_SM_RECORDING:
        return refuse(out, "already recording");
    case BC_SM_DOCKED:
        return refuse(out, "the camera is docked");
    default:
        return refuse(out, "a firmware update is in progress");
    }
}

static bc_status on_emergency(bc_sm *sm, int64_t now, bc_sm_result *out)
{
    switch (sm->state) {
    case BC_SM_STANDBY:
    case BC_SM_WARNING: {
        int warnings = sm->warnings;
        enter(sm, out, BC_SM_RECORDING, warnings, true, now);
        emit(out, BC_SM_EV_RECORDING_STARTED, warnings, true, 0);
        return BC_OK;
    }
    case BC_SM_RECORDING:
        return refuse(out, "already recording");
    case BC_SM_DOCKED:
        return refuse(out, "the camera is docked");
    default:
        return refuse(out, "a firmware update is in progress");
    }
}

static bc_status on_stop(bc_sm *sm, int64_t now, bc_sm_result *out)
{
    if (sm->state != BC_SM_RECORDING)
        return refuse(out, "not recording");
    int warnings = sm->warnings;
    bool emergency = sm->emergency;
    int64_t duration = now > sm->since_ms ? now - sm->since_ms : 0;
    enter(sm, out, BC_SM_STANDBY, 0, false, now);
    emit(out, BC_SM_EV_RECORDING_STOPPED, warnings, emergency, duration);
    return BC_OK;
}

static bc_status on_dock(bc_sm *sm, int64_t now, bc_sm_result *out)
{
    switch (sm->state) {
    case BC_SM_STANDBY:
        enter(sm, out, BC_SM_DOCKED, 0, false, now);
        emit(out, BC_SM_EV_DOCKED, 0, false, 0);
        return BC_OK;
    case BC_SM_WARNING:
    case BC_SM_RECORDING:
        return refuse(out, "a camera in the middle of an incident cannot be docked");
    case BC_SM_DOCKED:
        return refuse(out, "already docked");
    default:
        if (sm->update_return == BC_SM_DOCKED)
            return refuse(out, "already docked");
        sm->update_return = BC_SM_DOCKED;
        emit(out, BC_SM_EV_DOCKED, 0, false, 0);
        return BC_OK;
    }
}

static bc_status on_undock(bc_sm *sm, int64_t now, bc_sm_result *out)
{
    if (sm->state == BC_SM_UPDATING) {
        if (sm->update_return != BC_SM_DOCKED)
            return refuse(out, "not docked");
        sm->update_return = BC_SM_STANDBY;
        emit(out, BC_SM_EV_UNDOCKED, 0, false, 0);
        return BC_OK;
    }
    if (sm->state != BC_SM_DOCKED)
        return refuse(out, "not docked");
    enter(sm, out, BC_SM_STANDBY, 0, false, now);
    emit(out, BC_SM_EV_UNDOCKED, 0, false, 0);
    return BC_OK;
}

static bc_status on_update_begin(bc_sm *sm, int64_t now, bc_sm_result *out)
{
    if (sm->state == BC_SM_UPDATING)
        return refuse(out, "a firmware update is in progress");
    if (sm->state != BC_SM_STANDBY && sm->state != BC_SM_DOCKED)
        return refuse(out, "a firmware update waits for standby or the dock");
    bc_sm_state back = sm->state;
    enter(sm, out, BC_SM_UPDATING, 0, false, now);
    sm->update_return = back;
    return BC_OK;
}

static bc_status on_update_end(bc_sm *sm, int64_t now, bc_sm_result *out)
{
    if (sm->state != BC_SM_UPDATING)
        return refuse(out, "no firmware update in progress");
    enter(sm, out, sm->update_return, 0, false, now);
    sm->update_return = BC_SM_STANDBY;
    return BC_OK;
}

typedef bc_status (*transition_fn)(bc_sm *sm, int64_t now, bc_sm_result *out);

static const transition_fn transitions[BC_SM_INPUT_COUNT] = {
    [BC_SM_WARN] = on_warn,
    [BC_SM_RECORD] = on_record,
    [BC_SM_EMERGENCY] = on_emergency,
    [BC_SM_STOP] = on_stop,
    [BC_SM_DOCK] = on_dock,
    [BC_SM_UNDOCK] = on_undock,
    [BC_SM_UPDATE_BEGIN] = on_update_begin,
    [BC_SM_UPDATE_END] = on_update_end,
};

bc_status bc_sm_apply(bc_sm *sm, bc_sm_input input, int64_t now_ms, bc_sm_result *out)
{
    result_reset(out);
    if ((unsigned)input >= BC_SM_INPUT_COUNT) {
        out->accepted = false;
        out->reason = "unknown input";
        return BC_ERR_INVAL;
    }
    apply_time(sm, now_ms, out);
    return transitions[input](sm, now_ms, out);
}
