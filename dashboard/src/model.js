// model.js - what the dashboard knows about the fleet, and the checks every
// incoming message passes before it counts.
//
// Design: this module is pure (no DOM, no network, no clock of its own: the
// caller passes `now`), so node's test runner exercises it directly. The wire
// contract it reads is proto/README.md; the rules below mirror proto's decode
// for the five topics a dashboard may read: required fields with the right
// JSON type and range, `v` = 1, the device named inside = the device of the
// topic, unknown fields ignored. A message that fails is counted and its
// reason kept for the diagnostics line; it never changes what is shown.
//
// Everything a camera sends is untrusted text: the view only ever puts it on
// the page through textContent, never as HTML.

export const PREFIX = "bodycam/v1/";

// The dashboard role may read exactly these (broker-plugins/README.md).
export const SUBSCRIPTIONS = [
    `${PREFIX}fleet/#`,
    `${PREFIX}devices/+/conn`,
    `${PREFIX}devices/+/state`,
    `${PREFIX}devices/+/health`,
];

export const MAX_PAYLOAD = 16384;
export const STATES = ["standby", "warning", "recording", "docked", "updating"];
export const ALERT_KINDS = {
    low_battery: "Low battery",
    storage_low: "Storage nearly full",
    overheating: "Overheating",
    offline_in_shift: "Offline during shift",
    recording_without_warnings: "Recording without two warnings",
    upload_overdue: "Upload overdue",
    request_overdue: "Access request overdue",
    identity_refused: "Identity refused",
    rollout_halted: "Firmware rollout halted",
};

const DEVICE_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const VERSION_RE = /^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const INT_MAX = Number.MAX_SAFE_INTEGER;
const TEXT_MAX = 200;
const ERRORS_MAX = 16;

class Malformed extends Error {}

function fail(text) {
    throw new Malformed(text);
}

/* ------------------------------------------------------------------ topics */

// {kind: "conn"|"state"|"health", device} or {kind: "summary"|"alerts"},
// or null for a topic the dashboard does not read.
export function parseTopic(topic) {
    if (typeof topic !== "string" || !topic.startsWith(PREFIX))
        return null;
    const parts = topic.slice(PREFIX.length).split("/");
    if (parts.length === 2 && parts[0] === "fleet") {
        if (parts[1] === "summary")
            return { kind: "summary" };
        if (parts[1] === "alerts")
            return { kind: "alerts" };
        return null;
    }
    if (parts.length === 3 && parts[0] === "devices" && DEVICE_RE.test(parts[1])
        && ["conn", "state", "health"].includes(parts[2]))
        return { kind: parts[2], device: parts[1] };
    return null;
}

/* ------------------------------------------------------------------ fields */

function has(obj, name) {
    return Object.prototype.hasOwnProperty.call(obj, name);
}

function int(obj, name, lo, hi, optional = false) {
    if (!has(obj, name)) {
        if (optional)
            return undefined;
        fail(`field '${name}' is missing`);
    }
    const v = obj[name];
    if (typeof v !== "number" || !Number.isSafeInteger(v))
        fail(`field '${name}' is not an integer`);
    if (v < lo || v > hi)
        fail(`field '${name}' is outside [${lo}, ${hi}]`);
    return v;
}

function bool(obj, name) {
    if (!has(obj, name))
        fail(`field '${name}' is missing`);
    if (typeof obj[name] !== "boolean")
        fail(`field '${name}' is not a boolean`);
    return obj[name];
}

function str(obj, name, re, optional = false) {
    if (!has(obj, name)) {
        if (optional)
            return "";
        fail(`field '${name}' is missing`);
    }
    const v = obj[name];
    if (typeof v !== "string")
        fail(`field '${name}' is not a string`);
    if (re && !re.test(v))
        fail(`field '${name}' is not in its alphabet`);
    return v;
}

function text(value, name) {
    if (typeof value !== "string")
        fail(`field '${name}' is not a string`);
    if (value.length === 0 || value.length > TEXT_MAX || CONTROL_RE.test(value))
        fail(`field '${name}' is empty, too long or has a control character`);
    return value;
}

function optionalText(obj, name) {
    return has(obj, name) ? text(obj[name], name) : "";
}

function oneOf(obj, name, allowed) {
    const v = str(obj, name, null);
    if (!allowed.includes(v))
        fail(`field '${name}' has an unknown value`);
    return v;
}

function common(obj, device) {
    if (obj === null || typeof obj !== "object" || Array.isArray(obj))
        fail("not a JSON object");
    if (!has(obj, "v"))
        fail("field 'v' is missing");
    if (obj.v !== 1)
        fail("field 'v' is not 1 (unknown schema version)");
    if (device !== undefined && str(obj, "device", DEVICE_RE) !== device)
        fail("field 'device' names another device than the topic");
    return int(obj, "ts", 0, INT_MAX);
}

/* ---------------------------------------------------------------- messages */

function decodeConn(o, device) {
    return {
        ts: common(o, device),
        status: oneOf(o, "status", ["online", "offline"]),
        session: int(o, "session", 0, INT_MAX),
        fw: str(o, "fw", VERSION_RE, true),
        recordingKeyId: str(o, "recording_key_id", ID_RE, true),
    };
}

function decodeState(o, device) {
    const ts = common(o, device);
    const state = oneOf(o, "state", STATES);
    const hi = state === "warning" || state === "recording" ? 2 : 0;
    const warnings = int(o, "warnings", state === "warning" ? 1 : 0, hi);
    return {
        ts,
        state,
        warnings,
        since: int(o, "since", 0, INT_MAX),
        seq: int(o, "seq", 0, INT_MAX),
        recordingId: state === "recording" ? str(o, "recording_id", ID_RE) : "",
    };
}

function decodeHealth(o, device) {
    const h = {
        ts: common(o, device),
        batteryPct: int(o, "battery_pct", 0, 100),
        charging: bool(o, "charging"),
        storageFree: int(o, "storage_free", 0, INT_MAX),
        storageTotal: int(o, "storage_total", 0, INT_MAX),
        temperatureC: int(o, "temperature_c", -100, 200),
        signalDbm: int(o, "signal_dbm", -200, 0),
        uptimeS: int(o, "uptime_s", 0, INT_MAX),
        fw: str(o, "fw", VERSION_RE),
        recordingKeyId: str(o, "recording_key_id", ID_RE, true),
        pendingUploads: int(o, "pending_uploads", 0, INT_MAX),
        errors: [],
    };
    if (h.storageFree > h.storageTotal)
        fail("field 'storage_free' is larger than 'storage_total'");
    if (has(o, "errors")) {
        if (!Array.isArray(o.errors) || o.errors.length > ERRORS_MAX)
            fail(`field 'errors' is not an array of at most ${ERRORS_MAX} items`);
        h.errors = o.errors.map((e, i) => text(e, `errors[${i}]`));
    }
    return h;
}

function decodeSummary(o) {
    const ts = common(o, undefined);
    const cameras = int(o, "cameras", 0, INT_MAX);
    const online = int(o, "online", 0, cameras);
    if (!has(o, "states"))
        fail("field 'states' is missing");
    const raw = o.states;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw))
        fail("field 'states' is not an object");
    const states = {};
    let sum = 0;
    for (const name of STATES) {
        states[name] = int(raw, name, 0, cameras, true) ?? 0;
        sum += states[name];
    }
    if (sum > cameras)
        fail("field 'states' counts more cameras than 'cameras'");
    return {
        ts,
        cameras,
        online,
        states,
        alertsOpen: int(o, "alerts_open", 0, INT_MAX),
        rolloutsActive: int(o, "rollouts_active", 0, INT_MAX, true) ?? 0,
        rotationsActive: int(o, "rotations_active", 0, INT_MAX, true) ?? 0,
        rotationCameras: int(o, "rotation_cameras", 0, INT_MAX, true) ?? 0,
        rotationDone: int(o, "rotation_done", 0, INT_MAX, true) ?? 0,
        rotationFailed: int(o, "rotation_failed", 0, INT_MAX, true) ?? 0,
        rolloutCameras: int(o, "rollout_cameras", 0, INT_MAX, true) ?? 0,
        rolloutUpdated: int(o, "rollout_updated", 0, INT_MAX, true) ?? 0,
        rolloutFailed: int(o, "rollout_failed", 0, INT_MAX, true) ?? 0,
        rolloutWave: int(o, "rollout_wave", 0, INT_MAX, true) ?? 0,
        rolloutWaves: int(o, "rollout_waves", 0, INT_MAX, true) ?? 0,
    };
}

// The key rotation line of the summary: "Key rotation: done/cameras, failed"
// while a campaign is active, else "No key rotation in progress".
export function rotationProgress(summary) {
    if (!summary)
        return "–";
    if (!summary.rotationsActive)
        return "No key rotation in progress";
    const campaigns = summary.rotationsActive === 1 ? "" : ` (${summary.rotationsActive} campaigns)`;
    return `Key rotation: ${summary.rotationDone}/${summary.rotationCameras}, `
        + `${summary.rotationFailed} failed${campaigns}`;
}

// The firmware rollout of the summary (services/firmware-rollout: one
// active rollout at a time): {active, line, wave, updated, failed, cameras}.
// line is "Rollout: updated/cameras updated, failed failed" while one is
// active, else "No firmware rollout in progress"; wave is "Wave k of n" ("" when
// the summary does not say). The bar's value is updated of cameras.
export function rolloutProgress(summary) {
    if (!summary)
        return { active: false, line: "–", wave: "", updated: 0, failed: 0, cameras: 0 };
    const s = summary;
    if (!s.rolloutsActive) {
        return { active: false, line: "No firmware rollout in progress", wave: "",
            updated: 0, failed: 0, cameras: 0 };
    }
    const several = s.rolloutsActive === 1 ? "" : ` (${s.rolloutsActive} rollouts)`;
    return {
        active: true,
        line: `Rollout: ${s.rolloutUpdated}/${s.rolloutCameras} updated, `
            + `${s.rolloutFailed} failed${several}`,
        wave: s.rolloutWave > 0 && s.rolloutWaves > 0
            ? `Wave ${s.rolloutWave} of ${s.rolloutWaves}` : "",
        updated: s.rolloutUpdated,
        failed: s.rolloutFailed,
        cameras: s.rolloutCameras,
    };
}

function decodeAlert(o) {
    const ts = common(o, undefined);
    const kind = oneOf(o, "kind", Object.keys(ALERT_KINDS));
    return {
        ts,
        id: str(o, "id", ID_RE),
        kind,
        status: oneOf(o, "status", ["raised", "cleared"]),
        device: str(o, "device", DEVICE_RE, kind === "request_overdue"),
        detail: optionalText(o, "detail"),
        value: int(o, "value", -INT_MAX, INT_MAX, true),
    };
}

const DECODERS = {
    conn: decodeConn,
    state: decodeState,
    health: decodeHealth,
    summary: decodeSummary,
    alerts: decodeAlert,
};

// payload: a Uint8Array (what the MQTT client hands over) or a string.
// Returns {ok: true, kind, device, msg} or {ok: false, reason}; never throws.
export function decodeMessage(topic, payload) {
    const where = parseTopic(topic);
    if (where === null)
        return { ok: false, reason: "a topic the dashboard does not read" };
    let textPayload = payload;
    if (typeof payload !== "string") {
        if (!(payload instanceof Uint8Array))
            return { ok: false, reason: "payload is not bytes" };
        if (payload.length > MAX_PAYLOAD)
            return { ok: false, reason: `payload is over ${MAX_PAYLOAD} bytes` };
        try {
            textPayload = new TextDecoder("utf-8", { fatal: true }).decode(payload);
        } catch {
            return { ok: false, reason: "payload is not UTF-8" };
        }
    } else if (payload.length > MAX_PAYLOAD) {
        return { ok: false, reason: `payload is over ${MAX_PAYLOAD} bytes` };
    }
    let obj;
    try {
        obj = JSON.parse(textPayload);
    } catch {
        return { ok: false, reason: "payload is not JSON" };
    }
    try {
        return { ok: true, kind: where.kind, device: where.device,
                 msg: DECODERS[where.kind](obj, where.device) };
    } catch (e) {
        if (e instanceof Malformed)
            return { ok: false, reason: e.message };
        throw e;
    }
}

/* ------------------------------------------------------------------- fleet */

// The state a camera is shown in: "offline" when its last will said so,
// else its reported state ("warning-1", "warning-2" for the two warnings),
// else "unknown" (nothing but health seen yet, or an online birth only).
export function displayState(cam) {
    if (cam.conn && cam.conn.status === "offline")
        return "offline";
    if (!cam.state)
        return "unknown";
    if (cam.state.state === "warning")
        return `warning-${cam.state.warnings}`;
    return cam.state.state;
}

export const STATE_LABELS = {
    "standby": "Standby",
    "warning-1": "Warning 1",
    "warning-2": "Warning 2",
    "recording": "Recording",
    "docked": "Docked",
    "updating": "Updating",
    "offline": "Offline",
    "unknown": "Unknown",
};

export class Fleet {
    constructor() {
        this.reset();
    }

    reset() {
        this.cameras = new Map(); // device -> {id, conn, state, health, lastSeen}
        this.alerts = new Map(); // alert id -> alert (raised, not yet cleared)
        this.summary = null;
        this.summaryReceivedAt = 0;
        this.diag = { messages: 0, malformed: 0, lastMalformed: "", ignored: 0 };
    }

    camera(id) {
        let cam = this.cameras.get(id);
        if (!cam) {
            cam = { id, conn: null, state: null, health: null, lastSeen: 0, fw: "" };
            this.cameras.set(id, cam);
        }
        return cam;
    }

    // Applies one incoming message (a camera's fw is the last one its health
    // or its birth reported). Returns what changed: {device} for a
    // camera, {summary: true}, {alerts: true, device?}, or null when nothing
    // did (malformed, or older than what is already known).
    apply(topic, payload, now) {
        this.diag.messages++;
        const d = decodeMessage(topic, payload);
        if (!d.ok) {
            this.diag.malformed++;
            this.diag.lastMalformed = `${String(topic).slice(0, 120)}: ${d.reason}`;
            return null;
        }
        switch (d.kind) {
        case "conn":
            return this.applyConn(d.device, d.msg);
        case "state":
            return this.applyState(d.device, d.msg);
        case "health":
            return this.applyHealth(d.device, d.msg);
        case "summary":
            return this.applySummary(d.msg, now);
        default:
            return this.applyAlert(d.msg);
        }
    }

    seen(cam, ts) {
        cam.lastSeen = Math.max(cam.lastSeen, ts);
    }

    applyConn(id, m) {
        const cam = this.camera(id);
        const old = cam.conn;
        // A will of an older session must not mark a live camera offline;
        // within one session, offline (the will) is the later word.
        if (old && (m.session < old.session
                    || (m.session === old.session && old.status === "offline"))) {
            this.diag.ignored++;
            return null;
        }
        cam.conn = m;
        if (m.fw)
            cam.fw = m.fw; // a will carries none: keep the last known
        this.seen(cam, m.ts);
        return { device: id };
    }

    applyState(id, m) {
        const cam = this.camera(id);
        if (cam.state && m.seq < cam.state.seq && m.ts <= cam.state.ts) {
            this.diag.ignored++;
            return null;
        }
        cam.state = m;
        this.seen(cam, m.ts);
        return { device: id };
    }

    applyHealth(id, m) {
        const cam = this.camera(id);
        if (cam.health && m.ts < cam.health.ts) {
            this.diag.ignored++;
            return null;
        }
        cam.health = m;
        cam.fw = m.fw;
        this.seen(cam, m.ts);
        return { device: id };
    }

    applySummary(m, now) {
        if (this.summary && m.ts < this.summary.ts) {
            this.diag.ignored++;
            return null;
        }
        this.summary = m;
        this.summaryReceivedAt = now;
        return { summary: true };
    }

    applyAlert(m) {
        if (m.status === "raised") {
            this.alerts.set(m.id, m);
        } else if (!this.alerts.delete(m.id)) {
            return null; // cleared before this page saw it raised
        }
        return { alerts: true, device: m.device || undefined };
    }

    alertsOf(device) {
        return [...this.alerts.values()].filter((a) => a.device === device);
    }

    // Counts over the cameras this page has seen (shown until fleet-health's
    // summary arrives, and next to it).
    localCounts() {
        const counts = { cameras: this.cameras.size, online: 0 };
        for (const k of Object.keys(STATE_LABELS))
            counts[k] = 0;
        for (const cam of this.cameras.values()) {
            const s = displayState(cam);
            counts[s]++;
            if (s !== "offline" && cam.conn)
                counts.online++;
        }
        return counts;
    }
}

/* -------------------------------------------------------------- formatting */

export function formatAge(ms) {
    if (!Number.isFinite(ms) || ms < 1000)
        return "just now";
    const s = Math.floor(ms / 1000);
    if (s < 120)
        return `${s} s ago`;
    const m = Math.floor(s / 60);
    if (m < 120)
        return `${m} min ago`;
    const h = Math.floor(m / 60);
    if (h < 48)
        return `${h} h ago`;
    return `${Math.floor(h / 24)} d ago`;
}

export function formatBytes(n) {
    const units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let v = n;
    let i = 0;
    while (v >= 1000 && i < units.length - 1) {
        v /= 1000;
        i++;
    }
    return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
