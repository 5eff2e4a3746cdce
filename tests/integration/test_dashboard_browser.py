"""dashboard-browser - the operations dashboard in a real browser.

A stack with five real camera agents (the plugin on; the gateway and other
services when built) serves the page from the broker's WebSockets listener.
Debian's Chromium, headless, driven by playwright-core through
tests/browser/dashboard.mjs (JSON lines on stdout, "pressed" on stdin):

- the broker serves the page at stack.json's dashboard.url;
- logging in with the dashboard role shows the five cameras, each in its
  state; a button press on a real agent (bodycam-button ... warn) shows up as
  that camera's "Warning 1" within a timeout; the page has no script error
  and no malformed message; a screenshot is saved (its path is printed);
  with fleet-health running, its retained fleet summary on the page counts the
  warning too;
- a wrong password shows the login error and no camera.

Skips (exit 0, "0 passed, 0 failed, 1 skipped") only when chromium or node is
not installed; scripts/deps installs both, so CI runs it for real. The page and
playwright-core come from the build (targets dashboard and browser-test-deps).
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from bodycam_test import (BUILD_DIR, SOURCE_DIR, CheckFailed, check, project_binary, run,
                          run_checks)

CHROMIUM = "/usr/bin/chromium"
DRIVER = os.path.join(SOURCE_DIR, "tests", "browser", "dashboard.mjs")
MODULES = os.path.join(BUILD_DIR, "tests", "browser", "npm", "node_modules")
WWW = os.path.join(BUILD_DIR, "dashboard", "www")
CAMERAS = 5
WATCH = "cam-003"
CHANGE_TIMEOUT_S = 15
HEALTH_INTERVAL_S = 2
DRIVER_TIMEOUT_S = 120

ARTIFACTS = tempfile.mkdtemp(prefix="bodycam-dashboard-browser-")
# loopback only: never through a proxy from the environment
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Driver:
    """tests/browser/dashboard.mjs as a child: its JSON-line events in a
    queue (a reader thread), its stderr kept for failure messages."""

    def __init__(self, stack, mode, password=None, **extra):
        dash = stack.info["dashboard"]
        self.profile = tempfile.mkdtemp(prefix="profile-", dir=ARTIFACTS)
        argv = [shutil.which("node"), DRIVER, "--modules", MODULES, "--chromium", CHROMIUM,
                "--profile", self.profile, "--url", dash["url"], "--user", dash["username"],
                "--password", dash["password"] if password is None else password,
                "--mode", mode, "--timeout-ms", "30000"]
        for name, value in extra.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.events = queue.Queue()
        self.seen = []
        self.stderr = []
        threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()

    def _read(self, stream, events):
        for line in stream:
            if not events:
                self.stderr.append(line.rstrip())
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "noise", "line": line.rstrip()}
            self.seen.append(event)
            self.events.put(event)
        if events:
            self.events.put({"event": "eof"})

    def expect(self, name, timeout=DRIVER_TIMEOUT_S):
        """The next event called name; a driver error or exit fails the check."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no '{name}' from the browser within {timeout} s; "
                                  f"events so far: {self.seen}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event["event"] == name:
                return event
            if event["event"] in ("error", "eof"):
                if event["event"] == "error":
                    for e in self.seen:
                        if e["event"] == "screenshot":
                            print(f"failure screenshot: {e['path']}", flush=True)
                raise CheckFailed(f"the browser driver failed before '{name}': {event}; "
                                  f"stderr: {' | '.join(self.stderr[-10:])}")

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_page_served(stack):
    dash = stack.info["dashboard"]
    port = stack.info["mqtt"]["ws_port"]
    check(dash["url"] == f"http://127.0.0.1:{port}/",
          f"stack.json dashboard.url is {dash['url']!r}, not the page on the WebSockets port")
    with HTTP.open(dash["url"], timeout=5) as resp:
        body = resp.read().decode()
        check(resp.status == 200, f"GET / answered {resp.status}")
    check("data-bodycam-dashboard" in body and "<title>Bodycam operations</title>" in body,
          f"GET / is not the dashboard page: {body[:200]!r}")
    check("https://" not in body and "http://" not in body.replace("http-equiv", ""),
          "the page refers to another site (it must work with no internet)")
    with HTTP.open(dash["url"] + "app.js", timeout=5) as resp:
        script = resp.read()
    check(len(script) > 50000 and b"bodycam dashboard; mqtt " in script[:200],
          "app.js is not the bundle with the mqtt client")


def check_live_state_change(stack):
    button = project_binary("bodycam-button")
    sock = stack.info["devices"][WATCH]["control_socket"]
    shot = os.path.join(ARTIFACTS, "dashboard.png")
    # with fleet-health running, its retained summary must count the warning too
    fleet_health = "fleet-health" in stack.info["processes"]
    extra = {"summary_warning": 1} if fleet_health else {}
    with Driver(stack, "fleet", cameras=CAMERAS, watch=WATCH, expect="warning-1",
                screenshot=shot, **extra) as d:
        ready = d.expect("ready")
        cams = ready["cameras"]
        check(sorted(cams) == [f"cam-{i:03d}" for i in range(1, CAMERAS + 1)],
              f"the page shows {sorted(cams)}, not the five cameras")
        check(cams[WATCH] == "standby", f"{WATCH} is {cams[WATCH]!r} before the press, "
                                        "not standby")
        answer = run([button, "--socket", sock, "warn"]).stdout.strip()
        check(answer.startswith("ok"), f"bodycam-button warn answered {answer!r}")
        d.send("pressed")
        changed = d.expect("changed", timeout=CHANGE_TIMEOUT_S + 5)
        check(changed["label"].strip() == "Warning 1",
              f"{WATCH}'s badge says {changed['label']!r}, not 'Warning 1'")
        check(changed["ms"] <= CHANGE_TIMEOUT_S * 1000, f"the change took {changed['ms']} ms")
        print(f"  {WATCH}: standby -> warning 1 on the page {changed['ms']} ms after the "
              "press", flush=True)
        if fleet_health:
            counted = d.expect("summary-counted")
            print(f"  fleet-health's summary counts the warning {counted['ms']} ms after the "
                  "press", flush=True)
        d.expect("screenshot")
        summary = d.expect("summary")
        done = d.expect("done")
    print(f"screenshot: {shot}", flush=True)
    check(os.path.getsize(shot) > 10000, f"the screenshot {shot} is nearly empty")
    others = {k: v for k, v in summary["cameras"].items() if k != WATCH}
    check(summary["cameras"][WATCH] == "warning-1", f"final states: {summary['cameras']}")
    check(all(v == "standby" for v in others.values()),
          f"the other cameras changed too: {others}")
    check(all(t.rstrip(" charging").endswith("%") for t in summary["battery"].values()),
          f"battery cells: {summary['battery']}")
    check(summary["status"] == "live", f"the connection pill says {summary['status']!r}")
    check(" malformed 0" in summary["diagnostics"],
          f"the page counted malformed messages: {summary['diagnostics']}")
    check(sorted(summary["placeholders"]) == ["purposes"],
          f"placeholder panels: {summary['placeholders']}")
    check(done["console_errors"] == [], f"the page logged errors: {done['console_errors']}")


def check_wrong_password(stack):
    shot = os.path.join(ARTIFACTS, "wrong-password.png")
    with Driver(stack, "bad-login", password="not-the-password", screenshot=shot) as d:
        result = d.expect("bad-login")
        d.expect("done")
    check("wrong username or password" in result["error"],
          f"the login error says {result['error']!r}")
    check(not result["fleet_visible"] and result["rows"] == 0,
          f"a refused login still shows the fleet ({result['rows']} camera rows)")


def main():
    missing = [what for what, ok in (("chromium", os.access(CHROMIUM, os.X_OK)),
                                     ("node", shutil.which("node") is not None)) if not ok]
    if missing:
        print(f"skipped: {' and '.join(missing)} not installed (scripts/deps installs them)")
        print("0 passed, 0 failed, 1 skipped")
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        return 0
    for path, target in ((os.path.join(WWW, "index.html"), "dashboard"),
                         (os.path.join(MODULES, "playwright-core"), "browser-test-deps")):
        if not os.path.exists(path):
            print(f"FAIL - build: {path} is missing (build the '{target}' target)")
            print("0 passed, 1 failed")
            return 1
    print(f"artifacts (screenshots): {ARTIFACTS}", flush=True)
    return run_checks([
        ("the broker serves the dashboard page", check_page_served),
        ("five cameras shown; a button press appears live", check_live_state_change),
        ("a wrong password shows an error, not the fleet", check_wrong_password),
    ], cameras=CAMERAS, agents=True,
        # the first health report (battery, storage) within 2 s, not 10
        extra_args=["--agent-set", f"health_interval_s={HEALTH_INTERVAL_S}"])


if __name__ == "__main__":
    sys.exit(main())
