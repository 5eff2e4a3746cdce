#!/usr/bin/python3
"""agent-valgrind: one real bodycam-agent under valgrind memcheck, against
the real stack (broker with the plugin, gateway), through a whole shift:
warn, warn, record (seconds of synthetic video through the pre-event buffer
and the recording writer), stop, dock (manifest and chunks of the upload),
the vault's signed receipt (the recording is deleted), view and delete
refused by policy, a signed command and its replay, undock, a survey, then
SIGTERM. The agent must exit 0 (valgrind's --error-exitcode is 99) and
valgrind must report no error and no definitely or indirectly lost bytes.

valgrind cannot run a sanitizer (ASan) build: then the test is skipped with
a reason. scripts/test's first build is not sanitized, so CI runs it for
real. Under valgrind everything is ~20x slower: every wait is generous, and
nothing sleeps for a condition.
"""

import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import (Observer, check_contiguous, control, device_topic,  # noqa: E402
                           recording_path, sign, unique)
from bodycam_test import Stack, check, project_binary, wait_for  # noqa: E402

DEV = "cam-001"
BITRATE = 800000     # bit/s of the synthetic video (the stack runner's default)
PRE_EVENT_S = 2
VIDEO_S = 3          # seconds of video recorded after the press
SLOW = 60.0          # one step of the agent under valgrind
START_TIMEOUT = 180.0
STOP_TIMEOUT = 180.0


def sanitizer_runtime(binary):
    """The sanitizer runtime the binary links, or None."""
    out = subprocess.run(["ldd", binary], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True).stdout
    for lib in ("libasan", "libubsan", "libtsan", "liblsan"):
        if lib in out:
            return lib
    return None


def agent_config(stack, path, data_dir, sock):
    """Like the stack runner's agent configuration (tools/bodycam-stack)."""
    info, d, keys = stack.info, stack.info["devices"][DEV], stack.info["keys"]
    options = {
        "device_id": DEV, "data_dir": data_dir, "control_socket": sock,
        "mqtt_host": info["mqtt"]["host"], "mqtt_port": info["mqtt"]["tls_port"],
        "ca_file": info["ca_cert"], "cert_file": d["cert"], "key_file": d["key"],
        "command_pubkey": keys["command"]["public"],
        "receipt_pubkey": keys["receipt"]["public"],
        "recording_pubkey": keys["recording"]["public"],
        "recording_key_id": keys["recording"]["key_id"],
        "video_source": f"synthetic:{BITRATE}:1", "pre_event_s": PRE_EVENT_S,
        "health_interval_s": 2, "backoff_min_ms": 200, "backoff_max_ms": 5000,
        "connect_timeout_ms": 60000,
    }
    with open(path, "w") as f:
        f.write("".join(f"{k} = {v}\n" for k, v in options.items()))


class ValgrindAgent:
    def __init__(self, stack):
        self.stack = stack
        self.binary = project_binary("bodycam-agent")
        self.conf = os.path.join(stack.dir, "conf", "valgrind-agent.conf")
        self.data_dir = stack.info["devices"][DEV]["data_dir"]
        self.sock = stack.info["devices"][DEV]["control_socket"]
        self.report = os.path.join(stack.dir, "logs", "valgrind-agent.report.log")
        self.log = os.path.join(stack.dir, "logs", "valgrind-agent.log")
        self.proc = None

    def start(self):
        agent_config(self.stack, self.conf, self.data_dir, self.sock)
        argv = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
                "--show-leak-kinds=definite,indirect", "--error-exitcode=99",
                "--num-callers=30", f"--log-file={self.report}",
                self.binary, "--config", self.conf]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def press(self, line):
        check(self.alive(), f"the agent exited ({self.proc.returncode})")
        return control(self.sock, line, timeout=SLOW)

    def press_ok(self, line):
        answer = self.press(line)
        check(answer.startswith("ok"), f"'{line}' answered {answer!r}")
        return answer

    def status(self):
        answer = self.press("status")
        check(answer.startswith("ok "), f"status: {answer!r}")
        return dict(item.split("=", 1) for item in answer.split()[1:])

    def wait_status(self, what, timeout=SLOW, **expected):
        def ok():
            try:
                s = self.status()
            except OSError:
                return None
            return s if all(s.get(k) == str(v) for k, v in expected.items()) else None
        return wait_for(ok, timeout, f"{what} ({expected})", interval=0.2)

    def stop(self):
        """SIGTERM; the exit status, or None when it had to be killed."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def upload_of(obs, rec_id, timeout):
    """The manifest and the reassembled bytes of rec_id from the upload topic."""
    topic = device_topic(DEV, "upload")

    def complete():
        msgs = [m.json() for m in obs.client.received(topic)]
        manifest = next((m for m in msgs if m["kind"] == "manifest"
                         and m["recording_id"] == rec_id), None)
        if manifest is None:
            return None
        chunks = {m["offset"]: base64.b64decode(m["data"]) for m in msgs
                  if m["kind"] == "chunk" and m["recording_id"] == rec_id}
        body, offset = b"", 0
        while offset in chunks:
            body += chunks[offset]
            offset += len(chunks[offset])
        return (manifest, body) if offset == manifest["size"] else None
    return wait_for(complete, timeout, f"the whole upload of {rec_id}", interval=0.2)


def shift(stack, agent):
    with Observer(stack, DEV) as obs:
        wait_for(lambda: os.path.exists(agent.sock), START_TIMEOUT, "the control socket")
        agent.wait_status("online", START_TIMEOUT, online=1)
        base = int(agent.status()["seq"])
        agent.press_ok("warn")
        agent.press_ok("warn")
        agent.press_ok("record")
        rec_id = f"{DEV}-{base + 3}"
        path = recording_path(stack, DEV, rec_id)
        start = os.path.getsize(path) if os.path.exists(path) else 0
        want = start + VIDEO_S * BITRATE // 8
        wait_for(lambda: os.path.exists(path) and os.path.getsize(path) >= want, 120,
                 f"{VIDEO_S} s of video in the recording")
        agent.press_ok("stop")
        stopped = obs.wait_event_type("recording_stopped", timeout=SLOW, recording_id=rec_id)
        check(stopped["size"] == os.path.getsize(path), f"recording_stopped {stopped}")

        agent.press_ok("dock")
        manifest, body = upload_of(obs, rec_id, 120)
        with open(path, "rb") as f:
            check(body == f.read(), "the uploaded bytes are not the recording file")
        check(manifest["sha256"] == hashlib.sha256(body).hexdigest(), "the manifest's SHA-256")
        cmd_id = unique("rcpt")
        obs.publish_command("vault-receipt", sign(
            stack, "receipt", DEV, "vault-receipt", cmd_id, recording_id=rec_id,
            sha256=manifest["sha256"], size=manifest["size"],
            committed_at=int(time.time() * 1000)))
        check(obs.wait_ack(cmd_id, timeout=SLOW)["ok"] is True, "the vault's receipt was refused")
        obs.wait_event_type("recording_deleted", timeout=SLOW, recording_id=rec_id)
        wait_for(lambda: not os.path.exists(path), SLOW, "the recording to be deleted")

        for line in (f"view {rec_id}", f"delete {rec_id}"):
            answer = agent.press(line)
            check(answer == "error: refused by policy", f"'{line}' answered {answer!r}")
        cfg_id = unique("cfg")
        cfg = sign(stack, "command", DEV, "config", cfg_id, health_interval_s=3)
        obs.publish_command("config", cfg)
        check(obs.wait_ack(cfg_id, timeout=SLOW)["ok"] is True, "the config command was refused")
        obs.publish_command("config", cfg)  # its replay
        wait_for(lambda: len([a for a in obs.acks() if a["cmd_id"] == cfg_id]) == 2, SLOW,
                 "the ack of the replay")
        replay = [a for a in obs.acks() if a["cmd_id"] == cfg_id][1]
        check(replay["ok"] is False and replay["error"].startswith("replayed"),
              f"the replay was not refused: {replay}")
        agent.press_ok("undock")
        agent.press_ok("survey 4")
        last = int(agent.status()["seq"])
        obs.wait_event(lambda e: e["seq"] == last, "the survey event", timeout=SLOW)
        agent.wait_status("outbox drained", outbox=0)
        types = [e["type"] for e in obs.events() if e["seq"] > base]
        check_contiguous([e for e in obs.events() if e["seq"] > base], base + 1, last)
        for t in ("recording_started", "recording_stopped", "docked", "recording_deleted",
                  "tamper_denied", "undocked", "survey"):
            check(t in types, f"no {t} event: {types}")
        check(obs.messages("health"), "no health report")
        print(f"  events {base + 1}..{last}: {' '.join(types)}")


def valgrind_summary(path):
    with open(path, errors="replace") as f:
        text = f.read()
    check("ERROR SUMMARY:" in text, f"no valgrind summary in {path}")
    errors = int(re.findall(r"ERROR SUMMARY: ([\d,]+) errors", text)[-1].replace(",", ""))

    def lost(kind):
        m = re.findall(rf"{kind} lost: ([\d,]+) bytes", text)
        return int(m[-1].replace(",", "")) if m else 0
    no_leaks = "All heap blocks were freed" in text
    return text, errors, lost("definitely"), lost("indirectly"), no_leaks


def check_agent_under_valgrind(stack, agent):
    agent.start()
    try:
        shift(stack, agent)
    finally:
        rc = agent.stop()
    check(rc is not None, f"the agent did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM")
    text, errors, definite, indirect, no_leaks = valgrind_summary(agent.report)
    for line in text.splitlines():
        if re.search(r"ERROR SUMMARY|definitely lost:|indirectly lost:|in use at exit|"
                     r"All heap blocks", line):
            print(f"  {line.split('== ', 1)[-1]}")
    problems = "\n".join(text.splitlines()[-80:])
    check(rc == 0, f"the agent exited {rc} (99: valgrind found errors)\n{problems}")
    check(errors == 0, f"valgrind: {errors} errors\n{problems}")
    check(definite == 0 and indirect == 0,
          f"valgrind: {definite} bytes definitely and {indirect} indirectly lost\n{problems}")
    check(no_leaks or "definitely lost: 0 bytes" in text, "no leak summary")
    with open(agent.log, errors="replace") as f:
        check("stopped cleanly" in f.read(), "no clean stop in the agent's log")


def main():
    name = "one agent under valgrind: a whole shift, SIGTERM, no error, no leak"
    binary = project_binary("bodycam-agent")
    runtime = sanitizer_runtime(binary)
    if runtime is not None:
        print(f"skip - {name}: {binary} is a sanitizer build (links {runtime}); valgrind "
              "cannot run it. The non-sanitized build (scripts/test's first) runs this test.")
        print("0 passed, 0 failed, 1 skipped", flush=True)
        return 0
    if shutil.which("valgrind") is None:
        print(f"FAIL - {name}: valgrind is not installed (scripts/deps installs it)")
        print("0 passed, 1 failed", flush=True)
        return 1
    passed = failed = 0
    started = time.monotonic()
    try:
        with Stack(cameras=1, agents=False, extra_args=["--no-vault"]) as stack:
            agent = ValgrindAgent(stack)
            try:
                check_agent_under_valgrind(stack, agent)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                stack.failed = True
                failed += 1
                print(f"FAIL - {name}: {e}", flush=True)
            else:
                passed += 1
                print(f"ok - {name} ({time.monotonic() - started:.1f} s)", flush=True)
            finally:
                if agent.alive():
                    agent.proc.kill()
                    agent.proc.wait()
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL - stack: {e}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
