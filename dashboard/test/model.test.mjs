// The dashboard's model under node's test runner: what is accepted, what is
// counted as malformed, and how the fleet state follows the messages.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
    ALERT_KINDS, Fleet, decodeMessage, displayState, formatAge, parseTopic, rolloutProgress,
    rotationProgress,
} from "../src/model.js";

const T = "bodycam/v1/";
const enc = (obj) => new TextEncoder().encode(JSON.stringify(obj));

const state = (device, fields = {}) => ({
    v: 1, device, state: "standby", warnings: 0, since: 1000, seq: 1, ts: 1000, ...fields,
});
const conn = (device, fields = {}) => ({
    v: 1, device, status: "online", session: 1, ts: 1000, fw: "1.0.0", ...fields,
});
const health = (device, fields = {}) => ({
    v: 1, device, ts: 2000, battery_pct: 80, charging: false, storage_free: 10,
    storage_total: 100, temperature_c: 30, signal_dbm: -60, uptime_s: 5, fw: "1.0.0",
    pending_uploads: 0, ...fields,
});
const summary = (fields = {}) => ({
    v: 1, ts: 5000, cameras: 5, online: 4, states: { standby: 3, warning: 1 }, alerts_open: 2,
    ...fields,
});
const alert = (fields = {}) => ({
    v: 1, ts: 6000, id: "a-1", kind: "low_battery", status: "raised", device: "cam-001",
    detail: "battery 9 %", value: 9, ...fields,
});

test("topics: only the five the dashboard reads", () => {
    assert.deepEqual(parseTopic(`${T}devices/cam-001/state`), { kind: "state", device: "cam-001" });
    assert.deepEqual(parseTopic(`${T}fleet/summary`), { kind: "summary" });
    assert.deepEqual(parseTopic(`${T}fleet/alerts`), { kind: "alerts" });
    for (const bad of [`${T}devices/cam-001/event`, `${T}devices/CAM/state`,
        `${T}devices/cam-001/state/x`, "bodycam/v2/fleet/summary", `${T}fleet/other`,
        `${T}devices//state`])
        assert.equal(parseTopic(bad), null, bad);
});

test("a valid state, with unknown fields ignored", () => {
    const d = decodeMessage(`${T}devices/cam-001/state`,
        enc(state("cam-001", { state: "warning", warnings: 2, extra: { x: 1 } })));
    assert.equal(d.ok, true);
    assert.equal(d.msg.state, "warning");
    assert.equal(d.msg.warnings, 2);
    assert.equal(d.msg.extra, undefined);
});

test("malformed messages are refused with a reason", () => {
    const cases = [
        [`${T}devices/cam-001/state`, new Uint8Array([0xff, 0xfe]), "UTF-8"],
        [`${T}devices/cam-001/state`, "{not json", "JSON"],
        [`${T}devices/cam-001/state`, "[1,2]", "object"],
        [`${T}devices/cam-001/state`, enc(state("cam-001", { v: 2 })), "'v'"],
        [`${T}devices/cam-001/state`, enc(state("cam-002")), "another device"],
        [`${T}devices/cam-001/state`, enc(state("cam-001", { state: "dancing" })), "'state'"],
        [`${T}devices/cam-001/state`, enc(state("cam-001", { state: "warning", warnings: 0 })),
            "'warnings'"],
        [`${T}devices/cam-001/state`, enc(state("cam-001", { state: "recording" })),
            "'recording_id'"],
        [`${T}devices/cam-001/state`, enc(state("cam-001", { seq: 1.5 })), "'seq'"],
        [`${T}devices/cam-001/health`, enc(health("cam-001", { battery_pct: 101 })),
            "'battery_pct'"],
        [`${T}devices/cam-001/health`, enc(health("cam-001", { storage_free: 101 })),
            "'storage_free'"],
        [`${T}devices/cam-001/health`, enc(health("cam-001", { charging: "yes" })), "'charging'"],
        [`${T}devices/cam-001/health`, enc(health("cam-001", { errors: ["ok", "\u0007"] })),
            "errors[1]"],
        [`${T}devices/cam-001/conn`, enc(conn("cam-001", { status: null })), "'status'"],
        [`${T}fleet/summary`, enc(summary({ online: 6 })), "'online'"],
        [`${T}fleet/summary`, enc(summary({ states: { standby: 5, docked: 1 } })), "more cameras"],
        [`${T}fleet/alerts`, enc(alert({ kind: "meteor" })), "'kind'"],
        [`${T}fleet/alerts`, enc(alert({ device: undefined })), "'device'"],
        [`${T}fleet/alerts`, enc(alert({ detail: "x".repeat(201) })), "'detail'"],
        [`${T}fleet/alerts`, new Uint8Array(16385).fill(0x20), "16384"],
    ];
    for (const [topic, payload, why] of cases) {
        const d = decodeMessage(topic, payload);
        assert.equal(d.ok, false, `accepted: ${why}`);
        assert.ok(d.reason.includes(why), `${d.reason} should mention ${why}`);
    }
});

test("request_overdue needs no device", () => {
    const d = decodeMessage(`${T}fleet/alerts`,
        enc(alert({ kind: "request_overdue", device: undefined })));
    assert.equal(d.ok, true);
    assert.equal(d.msg.device, "");
});

test("fleet: states, warnings and the offline will", () => {
    const f = new Fleet();
    f.apply(`${T}devices/cam-001/conn`, enc(conn("cam-001")), 0);
    assert.equal(displayState(f.cameras.get("cam-001")), "unknown");
    f.apply(`${T}devices/cam-001/state`, enc(state("cam-001")), 0);
    assert.equal(displayState(f.cameras.get("cam-001")), "standby");
    f.apply(`${T}devices/cam-001/state`,
        enc(state("cam-001", { state: "warning", warnings: 1, seq: 2, ts: 3000 })), 0);
    assert.equal(displayState(f.cameras.get("cam-001")), "warning-1");
    // an older state arriving late does not win
    f.apply(`${T}devices/cam-001/state`, enc(state("cam-001", { seq: 1, ts: 1000 })), 0);
    assert.equal(displayState(f.cameras.get("cam-001")), "warning-1");
    assert.equal(f.diag.ignored, 1);
    // the will of an older session does not mark the camera offline
    f.apply(`${T}devices/cam-001/conn`, enc(conn("cam-001", { session: 2, ts: 3500 })), 0);
    f.apply(`${T}devices/cam-001/conn`, enc(conn("cam-001", { status: "offline", session: 1 })), 0);
    assert.equal(displayState(f.cameras.get("cam-001")), "warning-1");
    f.apply(`${T}devices/cam-001/conn`,
        enc(conn("cam-001", { status: "offline", session: 2, ts: 4000 })), 0);
    assert.equal(displayState(f.cameras.get("cam-001")), "offline");
    assert.equal(f.cameras.get("cam-001").lastSeen, 4000);
});

test("fleet: malformed messages are counted and change nothing", () => {
    const f = new Fleet();
    f.apply(`${T}devices/cam-001/state`, enc(state("cam-001")), 0);
    assert.equal(f.apply(`${T}devices/cam-001/state`, "<img src=x onerror=alert(1)>", 0), null);
    assert.equal(f.diag.messages, 2);
    assert.equal(f.diag.malformed, 1);
    assert.match(f.diag.lastMalformed, /devices\/cam-001\/state: payload is not JSON/);
    assert.equal(displayState(f.cameras.get("cam-001")), "standby");
});

test("fleet: alerts raised and cleared, summary kept", () => {
    const f = new Fleet();
    assert.deepEqual(f.apply(`${T}fleet/alerts`, enc(alert()), 0), { alerts: true, device: "cam-001" });
    f.apply(`${T}fleet/alerts`, enc(alert({ id: "a-2", kind: "overheating" })), 0);
    assert.equal(f.alertsOf("cam-001").length, 2);
    f.apply(`${T}fleet/alerts`, enc(alert({ status: "cleared" })), 0);
    assert.deepEqual([...f.alerts.keys()], ["a-2"]);
    // a clear for an alert this page never saw changes nothing
    assert.equal(f.apply(`${T}fleet/alerts`, enc(alert({ id: "zz", status: "cleared" })), 0), null);
    f.apply(`${T}fleet/summary`, enc(summary()), 7);
    assert.equal(f.summary.alertsOpen, 2);
    assert.equal(f.summary.states.docked, 0);
    assert.equal(f.summaryReceivedAt, 7);
});

test("ages", () => {
    assert.equal(formatAge(500), "just now");
    assert.equal(formatAge(-5000), "just now");
    assert.equal(formatAge(7000), "7 s ago");
    assert.equal(formatAge(300000), "5 min ago");
});

test("firmware: the last one reported survives the offline will", () => {
    const f = new Fleet();
    f.apply(`${T}devices/cam-001/conn`, enc(conn("cam-001", { fw: "1.0.0" })), 0);
    f.apply(`${T}devices/cam-001/health`, enc(health("cam-001", { fw: "1.1.0" })), 0);
    f.apply(`${T}devices/cam-001/conn`,
        enc(conn("cam-001", { status: "offline", fw: undefined, ts: 9000 })), 0);
    assert.equal(f.cameras.get("cam-001").fw, "1.1.0");
});

test("timestamps up to 2^53 are accepted and do not break the ages", () => {
    const f = new Fleet();
    const big = Number.MAX_SAFE_INTEGER;
    assert.ok(f.apply(`${T}devices/cam-001/state`, enc(state("cam-001", { ts: big, since: big })), 0));
    assert.equal(formatAge(0 - f.cameras.get("cam-001").lastSeen), "just now");
    assert.equal(formatAge(big), `${Math.floor(big / 86400000)} d ago`);
});

test("summary: key rotation progress, optional and checked", () => {
    const f = new Fleet();
    f.apply(`${T}fleet/summary`, enc(summary()), 0);
    assert.equal(f.summary.rotationCameras, 0);
    assert.equal(rotationProgress(f.summary), "No key rotation in progress");
    f.apply(`${T}fleet/summary`, enc(summary({
        ts: 6000, rotations_active: 1, rotation_cameras: 5, rotation_done: 3, rotation_failed: 1,
    })), 0);
    assert.equal(f.summary.rotationDone, 3);
    assert.equal(rotationProgress(f.summary), "Key rotation: 3/5, 1 failed");
    f.apply(`${T}fleet/summary`, enc(summary({
        ts: 7000, rotations_active: 2, rotation_cameras: 9, rotation_done: 0, rotation_failed: 0,
    })), 0);
    assert.equal(rotationProgress(f.summary), "Key rotation: 0/9, 0 failed (2 campaigns)");
    assert.equal(rotationProgress(null), "–");
    for (const [field, value] of [["rotation_done", -1], ["rotation_cameras", 1.5],
        ["rotation_failed", "2"]]) {
        const d = decodeMessage(`${T}fleet/summary`, enc(summary({ [field]: value })));
        assert.equal(d.ok, false, `${field} = ${value} accepted`);
        assert.ok(d.reason.includes(field), d.reason);
    }
});

test("alerts: identity_refused has its label", () => {
    const d = decodeMessage(`${T}fleet/alerts`, enc(alert({
        id: "idref-cam-001-0123456789abcdef", kind: "identity_refused",
        detail: "CSR refused: common name is not cam-001",
    })));
    assert.equal(d.ok, true, d.reason);
    assert.equal(ALERT_KINDS[d.msg.kind], "Identity refused");
});

test("summary: firmware rollout progress, optional and checked", () => {
    const f = new Fleet();
    f.apply(`${T}fleet/summary`, enc(summary()), 0);
    assert.equal(f.summary.rolloutCameras, 0);
    assert.deepEqual(rolloutProgress(f.summary), {
        active: false, line: "No firmware rollout in progress", wave: "", updated: 0, failed: 0,
        cameras: 0,
    });
    f.apply(`${T}fleet/summary`, enc(summary({
        ts: 6000, rollouts_active: 1, rollout_cameras: 20, rollout_updated: 7, rollout_failed: 1,
        rollout_wave: 2, rollout_waves: 4,
    })), 0);
    assert.equal(f.summary.rolloutWave, 2);
    assert.deepEqual(rolloutProgress(f.summary), {
        active: true, line: "Rollout: 7/20 updated, 1 failed", wave: "Wave 2 of 4", updated: 7,
        failed: 1, cameras: 20,
    });
    // an older fleet-health without the wave fields: no wave line
    f.apply(`${T}fleet/summary`, enc(summary({
        ts: 7000, rollouts_active: 2, rollout_cameras: 3, rollout_updated: 0,
    })), 0);
    const r = rolloutProgress(f.summary);
    assert.equal(r.line, "Rollout: 0/3 updated, 0 failed (2 rollouts)");
    assert.equal(r.wave, "");
    assert.equal(rolloutProgress(null).line, "–");
    for (const [field, value] of [["rollout_updated", -1], ["rollout_cameras", 1.5],
        ["rollout_failed", "2"], ["rollout_wave", null], ["rollout_waves", -3]]) {
        const d = decodeMessage(`${T}fleet/summary`, enc(summary({ [field]: value })));
        assert.equal(d.ok, false, `${field} = ${value} accepted`);
        assert.ok(d.reason.includes(field), d.reason);
    }
});

test("alerts: rollout_halted has its label and is listed like the others", () => {
    const f = new Fleet();
    const halted = alert({
        id: "rollout-R3-halted", kind: "rollout_halted", device: "cam-004",
        detail: "rollout R3 wave 1: 2 of 3 cameras failed", value: 2,
    });
    const d = decodeMessage(`${T}fleet/alerts`, enc(halted));
    assert.equal(d.ok, true, d.reason);
    assert.equal(ALERT_KINDS[d.msg.kind], "Firmware rollout halted");
    assert.ok(f.apply(`${T}fleet/alerts`, enc(halted), 0));
    assert.deepEqual([...f.alerts.keys()], ["rollout-R3-halted"]);
    f.apply(`${T}fleet/alerts`, enc({ ...halted, status: "cleared", ts: 7000 }), 0);
    assert.equal(f.alerts.size, 0);
});
