// app.js - the page's entry point: the login form, the MQTT connection and
// the once-a-second tick.
//
// Design: the broker is the only server. The page is served by the broker's
// WebSockets listener (http_dir), so the broker URL defaults to the page's own
// host and port. The login is an MQTT CONNECT with the dashboard role's
// username and password (the bodycam-auth plugin checks them); the role can
// only read, so this page only subscribes. The first connection does not
// retry: a refused login shows its reason and stays on the form. Once logged
// in, a lost connection is retried every few seconds and the retained
// messages bring the page back up to date.

import mqtt from "mqtt";
import { Fleet, SUBSCRIPTIONS } from "./model.js";
import { View } from "./view.js";

const RECONNECT_MS = 3000;
const CONNECT_TIMEOUT_MS = 10000;

// MQTT v5 CONNACK reason codes (and their 3.1.1 return codes) that mean the
// credentials were refused.
const AUTH_REFUSED = new Set([4, 5, 134, 135, 140]);

const fleet = new Fleet();
let view = null;
let client = null;
let everConnected = false;

function byId(id) {
    return document.getElementById(id);
}

function setStatus(kind, text) {
    const pill = byId("conn-status");
    pill.className = `pill pill-${kind}`;
    pill.textContent = text;
}

function showLogin(errorText) {
    byId("fleet").hidden = true;
    byId("login").hidden = false;
    byId("logout").hidden = true;
    byId("who").textContent = "";
    byId("login-button").disabled = false;
    const err = byId("login-error");
    err.textContent = errorText || "";
    err.hidden = !errorText;
}

function showFleet(username) {
    byId("login").hidden = true;
    byId("login-error").hidden = true;
    byId("fleet").hidden = false;
    byId("logout").hidden = false;
    byId("who").textContent = `signed in as ${username}`;
}

function defaultBrokerUrl() {
    const { protocol, host } = window.location;
    if (protocol !== "http:" && protocol !== "https:")
        return "";
    return `${protocol === "https:" ? "wss" : "ws"}://${host}/mqtt`;
}

function randomSuffix() {
    const bytes = new Uint8Array(6);
    crypto.getRandomValues(bytes);
    return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function reasonOf(err) {
    const code = err && typeof err.code === "number" ? err.code : -1;
    if (AUTH_REFUSED.has(code))
        return { auth: true, text: "Login refused: wrong username or password." };
    const msg = err && err.message ? String(err.message).slice(0, 200) : "unknown error";
    return { auth: false, text: `Cannot connect: ${msg}` };
}

function stop() {
    if (client) {
        client.removeAllListeners();
        client.on("error", () => {});
        client.end(true);
        client = null;
    }
}

function subscribe(c) {
    const filters = Object.fromEntries(SUBSCRIPTIONS.map((topic) => [topic, { qos: 1 }]));
    c.subscribe(filters, (err, granted) => {
        if (err) {
            view.extra = `subscribe failed: ${String(err.message || err).slice(0, 120)}`;
            return;
        }
        const refused = (granted || []).filter((g) => g.qos > 2).map((g) => g.topic);
        view.extra = refused.length ? `subscriptions refused: ${refused.join(", ")}` : "";
        view.renderDiagnostics();
    });
}

function login(username, password, url) {
    stop();
    everConnected = false;
    fleet.reset();
    view.extra = "";
    view.clear();
    setStatus("connecting", "connecting…");
    byId("login-button").disabled = true;
    byId("login-error").hidden = true;
    let failed = false;
    const fail = (text) => {
        if (failed)
            return;
        failed = true;
        stop();
        setStatus("idle", "not connected");
        showLogin(text);
    };

    let c;
    try {
        c = mqtt.connect(url, {
            username,
            password,
            clientId: `dashboard-${randomSuffix()}`,
            protocolVersion: 5,
            clean: true,
            keepalive: 30,
            connectTimeout: CONNECT_TIMEOUT_MS,
            reconnectPeriod: 0, // the first attempt decides; retries only once logged in
            resubscribe: false, // "connect" subscribes, every time
        });
    } catch (e) {
        fail(`Cannot connect: ${String(e.message || e).slice(0, 200)}`);
        return;
    }
    client = c;

    c.on("connect", () => {
        if (!everConnected) {
            everConnected = true;
            c.options.reconnectPeriod = RECONNECT_MS;
            showFleet(username);
        }
        setStatus("connected", "live");
        subscribe(c);
    });
    c.on("message", (topic, payload) => {
        try {
            view.changed(fleet.apply(topic, payload, Date.now()));
        } catch (e) { // a bug must not stop the messages that follow
            fleet.diag.malformed++;
            fleet.diag.lastMalformed = `${String(topic).slice(0, 120)}: ${String(e).slice(0, 120)}`;
        }
    });
    c.on("error", (err) => {
        const r = reasonOf(err);
        if (!everConnected || r.auth)
            fail(r.text);
        else
            view.extra = r.text;
    });
    c.on("close", () => {
        if (!everConnected) {
            fail(`Cannot reach the broker at ${url}.`);
            return;
        }
        if (client === c)
            setStatus("lost", "connection lost — retrying");
    });
    c.on("reconnect", () => setStatus("connecting", "reconnecting…"));
}

function main() {
    view = new View(fleet);
    byId("broker-url").value = defaultBrokerUrl();
    if (!byId("broker-url").value)
        byId("advanced").open = true;
    byId("login-form").addEventListener("submit", (ev) => {
        ev.preventDefault();
        const username = byId("username").value.trim();
        const password = byId("password").value;
        const url = byId("broker-url").value.trim();
        if (!username || !password || !url) {
            showLogin("Username, password and broker URL are all needed.");
            return;
        }
        if (!/^wss?:\/\//.test(url)) {
            showLogin("The broker URL starts with ws:// or wss://.");
            return;
        }
        login(username, password, url);
    });
    byId("logout").addEventListener("click", () => {
        stop();
        fleet.reset();
        view.clear();
        byId("password").value = "";
        setStatus("idle", "not connected");
        showLogin("");
    });
    setInterval(() => view.safely(() => view.tick(Date.now())), 1000);
    showLogin("");
}

main();
