#!/usr/bin/python3
"""agent-crash: a camera killed with SIGKILL in the middle of a recording
(the power-loss case) seals the recording when it restarts: a
recording_sealed event, the file readable with the vault's private key up
to what was made durable (marked interrupted), its content the camera's
video, and listed for upload (status, health, and the manifest once docked).
SIGTERM instead closes the recording cleanly. Events queued in the outbox
survive a SIGKILL too.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import (Observer, agent_kill, agent_restart, agent_stack_args,  # noqa: E402
                           check_contiguous, press_ok, recording_check, recording_path,
                           retained, status, unique, verify_synthetic, wait_status)
from bodycam_test import STACK_RUNNER, check, run, run_checks, wait_for  # noqa: E402

SEGMENT = 64 * 1024  # the recording format's default segment size
HEADER_MAX = 512


def check_sigkill_mid_recording(stack):
    dev, seed = "cam-001", 1
    with Observer(stack, dev) as obs:
        base = int(status(stack, dev)["seq"])
        for line in ("warn", "warn", "record"):
            press_ok(stack, dev, line)
        rec_id = f"{dev}-{base + 3}"
        path = recording_path(stack, dev, rec_id)
        # two segments on disk: what the camera made durable before the crash
        wait_for(lambda: os.path.getsize(path) > 2 * SEGMENT + HEADER_MAX, 20,
                 "two segments of the recording on disk")
        check(os.path.exists(path + ".seal"), "no sealing sidecar while recording")
        agent_kill(stack, dev, "KILL")
        check(os.path.exists(path + ".seal"), "the sidecar vanished with the crash")

        agent_restart(stack, dev)
        sealed = obs.wait_event_type("recording_sealed", recording_id=rec_id)
        check_contiguous([e for e in obs.events() if e["seq"] > base], base + 1, sealed["seq"])
        check(not os.path.exists(path + ".seal"), "the sidecar is still there after sealing")
        s = wait_status(stack, dev, "standby with the recording pending", state="standby")
        check(int(s["pending"]) >= 1, f"not listed for upload: {s}")
        retained(stack, dev, "state", lambda st: st["state"] == "standby")

        with tempfile.TemporaryDirectory() as tmp:
            plain = os.path.join(tmp, "plain")
            info = recording_check(stack, path, plain)
            check(info["interrupted"] == "1", f"not marked interrupted: {info}")
            check(int(info["size"]) >= 2 * SEGMENT, f"lost durable content: {info}")
            with open(plain, "rb") as f:
                first, frames = verify_synthetic(f.read(), seed)
        print(f"  sealed {rec_id}: {info['size']} bytes readable, synthetic frames {first}.."
              f"{first + frames - 1}")

        health = obs.client.wait_message(
            f"bodycam/v1/devices/{dev}/health", lambda m: m.json()["pending_uploads"] >= 1, 15)
        check(health.json()["pending_uploads"] == int(s["pending"]), "health disagrees")

        press_ok(stack, dev, "dock")
        manifest = obs.client.wait_message(
            f"bodycam/v1/devices/{dev}/upload",
            lambda m: m.json()["kind"] == "manifest" and m.json()["recording_id"] == rec_id, 20)
        check(manifest.json()["sha256"] == info["file_sha256"], "manifest hash is not the file's")
        press_ok(stack, dev, "undock")


def check_sigterm_mid_recording(stack):
    """SIGTERM: the recording is closed properly (recording_stopped with its
    size, not interrupted) before the agent exits."""
    dev = "cam-002"
    with Observer(stack, dev) as obs:
        base = int(status(stack, dev)["seq"])
        press_ok(stack, dev, "emergency")
        rec_id = f"{dev}-{base + 1}"
        path = recording_path(stack, dev, rec_id)
        wait_for(lambda: os.path.getsize(path) > SEGMENT, 20, "a segment on disk")
        agent_kill(stack, dev, "TERM")
        stopped = obs.wait_event_type("recording_stopped", recording_id=rec_id)
        check(stopped["emergency"] is True and stopped["size"] == os.path.getsize(path),
              f"stopped: {stopped}")
        info = recording_check(stack, path)
        check(info["interrupted"] == "0", f"a clean stop left an interrupted file: {info}")
        offline = retained(stack, dev, "conn", lambda c: c["status"] == "offline")
        print(f"  offline announced for session {offline['session']}")
        agent_restart(stack, dev)
        wait_status(stack, dev, "back", state="standby", online=1)


def check_outbox_survives_sigkill(stack):
    """Events queued while the broker is away survive a SIGKILL of the agent."""
    dev = "cam-001"
    with Observer(stack, dev, client_id=unique("backend")) as obs:
        wait_status(stack, dev, "online", online=1)
        run([STACK_RUNNER, "kill", stack.dir, "mosquitto", "--signal", "TERM"])
        wait_status(stack, dev, "offline", online=0)
        base = int(status(stack, dev)["seq"])
        for line in ("warn", "warn", "survey 5"):
            press_ok(stack, dev, line)
        check(int(status(stack, dev)["outbox"]) >= 3, "nothing queued")
        agent_kill(stack, dev, "KILL")
        run([STACK_RUNNER, "restart", stack.dir, "mosquitto"])
        stack.reload()
        agent_restart(stack, dev)
        obs.reconnect()
        obs.wait_event(lambda e: e["seq"] == base + 3, "the queued events", timeout=30)
        check_contiguous([e for e in obs.events() if e["seq"] > base], base + 1, base + 3)


if __name__ == "__main__":
    sys.exit(run_checks([
        ("SIGKILL mid-recording: sealed, readable, listed for upload",
         check_sigkill_mid_recording),
        ("SIGTERM mid-recording: closed cleanly", check_sigterm_mid_recording),
        ("SIGKILL with a full outbox: nothing lost", check_outbox_survives_sigkill),
    ], **agent_stack_args(cameras=2, health_interval_s=1)))
