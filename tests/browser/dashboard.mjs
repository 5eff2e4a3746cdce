// dashboard.mjs - drives Debian's Chromium through the operations dashboard
// for tests/integration/test_dashboard_browser.py.
//
//   node dashboard.mjs --modules DIR --chromium PATH --profile DIR --url URL
//                      --user NAME --password PASS --mode fleet|bad-login
//                      [--cameras N] [--watch DEVICE --expect STATE]
//                      [--screenshot PNG] [--timeout-ms MS] [--summary-warning N]
//
// It talks to the Python test in JSON lines: every step it reaches is one
// line on stdout ({"event": ...}); a failure is {"event": "error", "message"}
// and exit status 1 (with a screenshot of the failure when --screenshot was
// given, as <name>-failure.png).
//
// fleet:     log in, wait until N camera rows are shown (each in a known
//            state and with a health report: battery, storage), print
//            {"event":"ready","cameras":{id: state}}, wait for a line "pressed"
//            on stdin, then until DEVICE's row shows STATE; print "changed",
//            save the screenshot, print "done" with the page's console errors.
//            With --summary-warning N, before the screenshot the fleet summary
//            (fleet-health's) must count N cameras in warning ("summary-counted").
// bad-login: log in with the given (wrong) password; the login error must
//            appear and no camera row.
//
// playwright-core is loaded from --modules (the build directory's npm ci),
// so this file runs from the source tree.

import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", // the stack is on loopback; ignore any proxy of the environment
];

const T0 = Date.now();

// one JSON line; t = ms since this driver started (where the time goes)
function emit(event, fields = {}) {
    process.stdout.write(`${JSON.stringify({ event, t: Date.now() - T0, ...fields })}\n`);
}

function parseArgs(argv) {
    const args = { cameras: 5, timeoutMs: 20000 };
    const names = {
        "--modules": "modules", "--chromium": "chromium", "--profile": "profile", "--url": "url",
        "--user": "user", "--password": "password", "--mode": "mode", "--cameras": "cameras",
        "--watch": "watch", "--expect": "expect", "--screenshot": "screenshot",
        "--timeout-ms": "timeoutMs", "--summary-warning": "summaryWarning",
    };
    for (let i = 0; i < argv.length; i += 2) {
        const key = names[argv[i]];
        if (!key || argv[i + 1] === undefined)
            throw new Error(`bad argument ${argv[i]}`);
        args[key] = argv[i + 1];
    }
    args.cameras = Number(args.cameras);
    args.timeoutMs = Number(args.timeoutMs);
    for (const k of ["modules", "chromium", "profile", "url", "user", "password", "mode"]) {
        if (!args[k])
            throw new Error(`--${k} is required`);
    }
    if (args.mode === "fleet" && (!args.watch || !args.expect))
        throw new Error("--mode fleet wants --watch and --expect");
    return args;
}

// Resolves with the next stdin line (the Python test's "go").
function nextLine() {
    const rl = readline.createInterface({ input: process.stdin });
    return new Promise((resolve, reject) => {
        rl.once("line", (line) => {
            resolve(line.trim()); // before close(), whose event would reject
            rl.close();
        });
        rl.once("close", () => reject(new Error("stdin closed before the test said 'pressed'")));
    });
}

async function login(page, args) {
    await page.goto(args.url, { waitUntil: "load", timeout: args.timeoutMs });
    await page.locator("#login-form").waitFor({ state: "visible", timeout: args.timeoutMs });
    const brokerUrl = await page.locator("#broker-url").inputValue();
    emit("page", { title: await page.title(), broker_url: brokerUrl });
    await page.fill("#username", args.user);
    await page.fill("#password", args.password);
    await page.click("#login-button");
}

async function rowStates(page) {
    return page.$$eval("#camera-rows tr", (rows) => Object.fromEntries(
        rows.map((r) => [r.dataset.device, r.dataset.state])));
}

async function fleetMode(page, args) {
    await login(page, args);
    await page.locator("#fleet").waitFor({ state: "visible", timeout: args.timeoutMs });
    // every camera in a known state, and with its first health report
    await page.waitForFunction(
        (n) => document.querySelectorAll("#camera-rows tr[data-state]").length >= n
            && [...document.querySelectorAll("#camera-rows tr")]
                .every((r) => r.dataset.state !== "unknown" && r.dataset.health === "1"),
        args.cameras, { timeout: args.timeoutMs });
    emit("ready", { cameras: await rowStates(page) });

    const go = await nextLine();
    if (go !== "pressed")
        throw new Error(`expected 'pressed' on stdin, got ${JSON.stringify(go)}`);
    const started = Date.now();
    const row = `#camera-rows tr[data-device="${args.watch}"]`;
    await page.waitForFunction(
        ([sel, state]) => document.querySelector(sel)?.dataset.state === state,
        [row, args.expect], { timeout: args.timeoutMs });
    const label = await page.locator(`${row} .badge`).textContent();
    emit("changed", { device: args.watch, state: args.expect, label, ms: Date.now() - started });
    if (args.summaryWarning !== undefined) {
        // fleet-health runs: its retained summary must count the warning too
        await page.waitForFunction(
            (n) => document.querySelector("#summary-note").textContent.startsWith("From the fleet")
                && document.querySelector('[data-count="warning"] .n').textContent === n,
            String(args.summaryWarning), { timeout: args.timeoutMs });
        emit("summary-counted", { ms: Date.now() - started });
    }
    // let the tick draw a full frame, then keep the evidence
    await page.waitForTimeout(1200);
    if (args.screenshot) {
        await page.screenshot({ path: args.screenshot, fullPage: true });
        emit("screenshot", { path: args.screenshot });
    }
    emit("summary", {
        cameras: await rowStates(page),
        diagnostics: await page.locator("#diagnostics").textContent(),
        status: await page.locator("#conn-status").textContent(),
        counts: await page.$$eval("#counts .tile", (tiles) => Object.fromEntries(
            tiles.map((t) => [t.dataset.count, t.querySelector(".n").textContent]))),
        battery: await page.$$eval("#camera-rows tr", (rows) => Object.fromEntries(
            rows.map((r) => [r.dataset.device, r.querySelector(".cam-battery").textContent]))),
        placeholders: await page.$$eval("[data-placeholder]", (p) => p.map((x) => x.dataset.placeholder)),
    });
}

async function badLoginMode(page, args) {
    await login(page, args);
    const error = page.locator("#login-error");
    await error.waitFor({ state: "visible", timeout: args.timeoutMs });
    // give retained messages a moment: none may arrive for a refused login
    await page.waitForTimeout(1000);
    if (args.screenshot) {
        await page.screenshot({ path: args.screenshot, fullPage: true });
        emit("screenshot", { path: args.screenshot });
    }
    emit("bad-login", {
        error: await error.textContent(),
        fleet_visible: await page.locator("#fleet").isVisible(),
        rows: await page.locator("#camera-rows tr").count(),
    });
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const require = createRequire(path.join(path.resolve(args.modules), "_resolve.js"));
    const { chromium } = require("playwright-core");
    mkdirSync(args.profile, { recursive: true });
    const context = await chromium.launchPersistentContext(args.profile, {
        executablePath: args.chromium,
        headless: true,
        args: FLAGS,
        viewport: { width: 1440, height: 900 },
        timeout: args.timeoutMs,
    });
    const consoleErrors = [];
    const page = context.pages()[0] || await context.newPage();
    emit("launched");
    page.on("console", (m) => {
        if (m.type() === "error")
            consoleErrors.push(m.text().slice(0, 300));
    });
    page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${String(e.message).slice(0, 300)}`));
    try {
        if (args.mode === "fleet")
            await fleetMode(page, args);
        else if (args.mode === "bad-login")
            await badLoginMode(page, args);
        else
            throw new Error(`unknown --mode ${args.mode}`);
        emit("done", { console_errors: consoleErrors });
    } catch (e) {
        if (args.screenshot) {
            const failure = args.screenshot.replace(/\.png$/, "") + "-failure.png";
            await page.screenshot({ path: failure, fullPage: true }).catch(() => {});
            emit("screenshot", { path: failure });
        }
        emit("error", {
            message: String(e.message || e).split("\n").slice(0, 6).join(" | "),
            cameras: await rowStates(page).catch(() => ({})),
            login_error: await page.locator("#login-error").textContent().catch(() => null),
            diagnostics: await page.locator("#diagnostics").textContent().catch(() => null),
            console_errors: consoleErrors,
        });
        process.exitCode = 1;
    } finally {
        await context.close();
    }
}

main().catch((e) => {
    emit("error", { message: String(e.message || e).split("\n").slice(0, 6).join(" | ") });
    process.exitCode = 1;
});
