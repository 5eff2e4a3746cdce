// view.js - puts the Fleet model on the page.
//
// Design: one table row per camera, created once and then updated in place
// (only the rows that changed since the last frame, plus the ages every
// second), so hundreds of cameras stay cheap. Every piece of text that came
// from a message goes through textContent: nothing received is ever parsed
// as HTML. The rows carry data-device and data-state for tests and scripts.

import {
    ALERT_KINDS, STATE_LABELS, displayState, formatAge, formatBytes, rolloutProgress,
    rotationProgress,
} from "./model.js";

const STALE_MS = 60000;
const LOW_BATTERY_PCT = 20;

function el(tag, className, textContent) {
    const node = document.createElement(tag);
    if (className)
        node.className = className;
    if (textContent !== undefined)
        node.textContent = textContent;
    return node;
}

function byId(id) {
    return document.getElementById(id);
}

// A time for a tooltip or a label; "" for one a Date cannot hold (a camera
// may send any integer up to 2^53, beyond the range of Date).
function isoTime(ms) {
    const d = new Date(ms);
    return Number.isFinite(d.getTime()) ? d.toISOString() : "";
}

function clockTime(ms) {
    const d = new Date(ms);
    return Number.isFinite(d.getTime()) ? d.toLocaleTimeString() : "?";
}

const TILES = [
    ["cameras", "Cameras"],
    ["online", "Online"],
    ["standby", "Standby"],
    ["warning", "Warning"],
    ["recording", "Recording"],
    ["docked", "Docked"],
    ["updating", "Updating"],
    ["offline", "Offline"],
    ["alerts", "Open alerts"],
];

const TILE_EDGE = {
    standby: "standby", warning: "warning-1", recording: "recording", docked: "docked",
    updating: "updating", offline: "offline",
};

export class View {
    constructor(fleet) {
        this.fleet = fleet;
        this.rows = new Map(); // device -> {tr, cells}
        this.tiles = new Map();
        this.dirty = new Set();
        this.summaryDirty = true;
        this.alertsDirty = true;
        this.frame = 0;
        this.buildTiles();
    }

    buildTiles() {
        const box = byId("counts");
        box.replaceChildren();
        for (const [key, label] of TILES) {
            const tile = el("div", "tile");
            tile.dataset.count = key;
            if (TILE_EDGE[key])
                tile.classList.add(`edge-${TILE_EDGE[key]}`);
            const n = el("span", "n value", "–");
            tile.append(n, el("span", "k", label));
            box.append(tile);
            this.tiles.set(key, n);
        }
    }

    clear() {
        byId("camera-rows").replaceChildren();
        byId("alert-list").replaceChildren();
        this.rows.clear();
        this.dirty.clear();
        this.summaryDirty = true;
        this.alertsDirty = true;
        this.render(Date.now());
    }

    // What Fleet.apply returned; the page is redrawn on the next frame.
    changed(what) {
        if (!what)
            return;
        if (what.device)
            this.dirty.add(what.device);
        if (what.summary)
            this.summaryDirty = true;
        if (what.alerts)
            this.alertsDirty = true;
        this.schedule();
    }

    schedule() {
        if (this.frame)
            return;
        const run = () => {
            this.frame = 0;
            this.safely(() => this.render(Date.now()));
        };
        // rAF does not run in a hidden tab; the timer keeps counts current.
        this.frame = document.hidden ? setTimeout(run, 250) : requestAnimationFrame(run);
    }

    render(now) {
        if (this.summaryDirty)
            this.alertsDirty = true; // the alerts note compares with the summary's count
        if (this.alertsDirty) {
            // a camera's alert tags change with the alert list
            for (const id of this.fleet.cameras.keys())
                this.dirty.add(id);
        }
        for (const id of this.dirty) {
            const cam = this.fleet.cameras.get(id);
            if (cam)
                this.renderCamera(cam);
        }
        this.dirty.clear();
        if (this.alertsDirty)
            this.renderAlerts(now);
        this.renderCounts();
        this.alertsDirty = false;
        this.summaryDirty = false;
        this.tick(now);
    }

    // Runs a drawing step; an exception is shown in the diagnostics line
    // instead of stopping every later frame.
    safely(step) {
        try {
            step();
        } catch (e) {
            this.extra = `display error: ${String(e).slice(0, 120)}`;
            this.dirty.clear();
            byId("diagnostics").textContent = this.extra;
        }
    }

    // Once a second: ages, stale marks, diagnostics.
    tick(now) {
        for (const [id, row] of this.rows) {
            const cam = this.fleet.cameras.get(id);
            if (!cam)
                continue;
            const age = now - cam.lastSeen;
            row.seen.textContent = cam.lastSeen ? formatAge(age) : "never";
            row.seen.title = cam.lastSeen ? isoTime(cam.lastSeen) : "";
            row.seen.classList.toggle("stale", cam.lastSeen > 0 && age > STALE_MS
                                               && displayState(cam) !== "offline");
        }
        for (const li of byId("alert-list").children) {
            const ts = Number(li.dataset.ts);
            li.querySelector(".age").textContent = `raised ${formatAge(now - ts)}`;
        }
        this.renderSummaryNote(now);
        this.renderDiagnostics();
    }

    row(cam) {
        let row = this.rows.get(cam.id);
        if (row)
            return row;
        const tr = el("tr");
        tr.dataset.device = cam.id;
        const cells = {
            id: el("td", "cam-id", cam.id),
            state: el("td", "cam-state"),
            battery: el("td", "cam-battery value"),
            storage: el("td", "cam-storage value"),
            seen: el("td", "cam-seen value"),
            fw: el("td", "cam-fw value"),
            alerts: el("td", "cam-alerts"),
        };
        cells.badge = el("span", "badge");
        cells.stateSub = el("span", "sub");
        cells.state.append(cells.badge, cells.stateSub);
        tr.append(cells.id, cells.state, cells.battery, cells.storage, cells.seen, cells.fw,
                  cells.alerts);
        row = { tr, ...cells };
        // keep the rows sorted by device id
        const body = byId("camera-rows");
        const after = [...this.rows.keys()].filter((k) => k > cam.id).sort()[0];
        body.insertBefore(tr, after ? this.rows.get(after).tr : null);
        this.rows.set(cam.id, row);
        return row;
    }

    renderCamera(cam) {
        const row = this.row(cam);
        const state = displayState(cam);
        row.tr.dataset.state = state;
        row.tr.className = state === "offline" ? "offline" : "";
        row.id.className = `cam-id edge-${state}`;
        row.badge.className = `badge state-${state}`;
        row.badge.textContent = STATE_LABELS[state];
        let sub = "";
        if (state === "offline" && cam.state)
            sub = `last: ${STATE_LABELS[displayState({ state: cam.state })]}`;
        else if (cam.state && state !== "unknown")
            sub = `since ${clockTime(cam.state.since)}`;
        row.stateSub.textContent = sub;

        const h = cam.health;
        row.tr.dataset.health = h ? "1" : "0";
        if (h) {
            const bar = el("span", h.batteryPct < LOW_BATTERY_PCT ? "bar low" : "bar");
            const fill = el("span");
            fill.style.width = `${h.batteryPct}%`;
            bar.append(fill);
            row.battery.replaceChildren(bar, `${h.batteryPct}%${h.charging ? " charging" : ""}`);
            const used = h.storageTotal > 0
                ? Math.round(100 * (h.storageTotal - h.storageFree) / h.storageTotal) : 0;
            row.storage.replaceChildren(
                `${formatBytes(h.storageFree)} free`,
                el("span", "sub", `of ${formatBytes(h.storageTotal)} (${used}% used)`));
        } else {
            row.battery.textContent = "–";
            row.storage.textContent = "–";
        }
        row.fw.textContent = cam.fw || "–";

        const alerts = this.fleet.alertsOf(cam.id);
        row.alerts.replaceChildren(...alerts.map(
            (a) => el("span", "alert-tag", ALERT_KINDS[a.kind] || a.kind)));
    }

    renderAlerts(now) {
        const list = byId("alert-list");
        const alerts = [...this.fleet.alerts.values()].sort((a, b) => b.ts - a.ts);
        list.replaceChildren(...alerts.map((a) => {
            const li = el("li");
            li.dataset.alert = a.id;
            li.dataset.ts = String(a.ts);
            const what = `${ALERT_KINDS[a.kind] || a.kind}${a.device ? ` — ${a.device}` : ""}`;
            li.append(el("span", "what", what));
            const detail = [a.detail, a.value !== undefined ? `value ${a.value}` : ""]
                .filter(Boolean).join(" · ");
            if (detail)
                li.append(el("span", "detail", detail));
            li.append(el("span", "sub age", `raised ${formatAge(now - a.ts)}`));
            return li;
        }));
        byId("alert-count").textContent = `(${alerts.length} listed)`;
        const s = this.fleet.summary;
        let note = alerts.length ? "" : "No open alert seen since this page connected.";
        if (s && s.alertsOpen > alerts.length)
            note = `${s.alertsOpen} open according to the fleet summary; alerts raised before `
                + "this page connected are counted there but not listed here.";
        byId("alerts-note").textContent = note;
    }

    renderCounts() {
        const s = this.fleet.summary;
        const local = this.fleet.localCounts();
        const values = s ? {
            cameras: s.cameras,
            online: s.online,
            standby: s.states.standby,
            warning: s.states.warning,
            recording: s.states.recording,
            docked: s.states.docked,
            updating: s.states.updating,
            offline: s.cameras - s.online,
            alerts: s.alertsOpen,
        } : {
            cameras: local.cameras,
            online: local.online,
            standby: local.standby,
            warning: local["warning-1"] + local["warning-2"],
            recording: local.recording,
            docked: local.docked,
            updating: local.updating,
            offline: local.offline,
            alerts: this.fleet.alerts.size,
        };
        for (const [key, node] of this.tiles)
            node.textContent = String(values[key]);
        this.tiles.get("alerts").parentElement.classList.toggle("alerts-open", values.alerts > 0);
        byId("camera-count").textContent = `(${local.cameras} reporting)`;
        byId("no-cameras").hidden = local.cameras > 0;
        byId("rollouts-active").textContent = s ? String(s.rolloutsActive) : "–";
        byId("rotations-active").textContent = s ? String(s.rotationsActive) : "–";
        byId("rotation-progress").textContent = rotationProgress(s);
        this.renderRollout(s);
    }

    renderRollout(s) {
        const r = rolloutProgress(s);
        byId("rollout-progress").textContent = r.line;
        const wave = byId("rollout-wave");
        wave.textContent = r.wave;
        wave.hidden = r.wave === "";
        const bar = byId("rollout-bar");
        bar.hidden = !r.active;
        bar.max = Math.max(r.cameras, 1);
        bar.value = Math.min(r.updated, bar.max);
        bar.title = `${r.updated} of ${r.cameras} cameras updated, ${r.failed} failed`;
        byId("rollouts-title").parentElement.classList.toggle("rollout-failing", r.failed > 0);
    }

    renderSummaryNote(now) {
        const s = this.fleet.summary;
        byId("summary-note").textContent = s
            ? `From the fleet-health summary, published ${formatAge(now - s.ts)}.`
            : "Waiting for the fleet summary (published by fleet-health); "
              + "counting the cameras this page has seen meanwhile.";
    }

    renderDiagnostics() {
        const d = this.fleet.diag;
        const line = byId("diagnostics");
        let text = `messages ${d.messages} · malformed ${d.malformed}`;
        if (d.ignored)
            text += ` · out of date ${d.ignored}`;
        if (d.lastMalformed)
            text += ` · last malformed: ${d.lastMalformed}`;
        if (this.extra)
            text += ` · ${this.extra}`;
        line.textContent = text;
        line.classList.toggle("bad", d.malformed > 0 || Boolean(this.extra));
    }
}
