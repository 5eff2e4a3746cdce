#!/usr/bin/python3
"""agent-buttons: real cameras (bodycam-agent) on the real stack, pressed
through their control sockets, as a backend subscriber sees them.

The policy of design.md: record only after two spoken warnings (else refused
and counted as record_refused), the emergency long press records at once and
is flagged, warnings expire back to standby, view/delete on the camera are
refused and reported; every transition is an event with the next seq, and
the state is retained.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import (Observer, agent_stack_args, check_contiguous,  # noqa: E402
                           distinct_events, press, press_ok, recording_check, recording_meta,
                           recording_path, retained, sign, status, unique, verify_synthetic,
                           wait_status)
from bodycam_test import check, run_checks  # noqa: E402

SEEDS = {"cam-001": 1, "cam-002": 2, "cam-003": 3}


def events_after(obs, seq):
    return [e for e in distinct_events(obs.events()) if e["seq"] > seq]


def check_birth(stack):
    """Each agent connected by itself: retained conn online with its session,
    firmware and the vault's recording key id; retained state."""
    key_id = stack.info["keys"]["recording"]["key_id"]
    for dev in SEEDS:
        wait_status(stack, dev, "online", online=1)
        conn = retained(stack, dev, "conn", lambda c: c["status"] == "online")
        check(conn["device"] == dev and conn["session"] >= 1, f"birth of {dev}: {conn}")
        check(conn["recording_key_id"] == key_id, f"{dev} announces key {conn}")
        check(conn.get("fw"), f"no firmware version in {conn}")
        state = retained(stack, dev, "state")
        check(state["state"] == "standby", f"{dev} retained state {state}")


def check_full_sequence(stack):
    """warn, warn, record, stop: four events with consecutive seqs, the
    retained state follows, and the recording holds the synthetic video."""
    dev = "cam-001"
    with Observer(stack, dev) as obs:
        base = int(status(stack, dev)["seq"])
        answers = [press_ok(stack, dev, line) for line in ("warn", "warn", "record")]
        check(answers[0].startswith("ok state=warning warnings=1"), f"first warn: {answers[0]}")
        check(answers[1].startswith("ok state=warning warnings=2"), f"second warn: {answers[1]}")
        check(answers[2].startswith("ok state=recording"), f"record: {answers[2]}")
        rec_state = retained(stack, dev, "state", lambda s: s["state"] == "recording")
        press_ok(stack, dev, "stop")
        obs.wait_event_type("recording_stopped")
        events = events_after(obs, base)
        check([e["type"] for e in events] ==
              ["warning_given", "warning_given", "recording_started", "recording_stopped"],
              f"events: {events}")
        check_contiguous(events, base + 1, base + 4)
        check([e.get("warnings") for e in events] == [1, 2, 2, 2], f"warnings: {events}")
        started, stopped = events[2], events[3]
        rec_id = f"{dev}-{started['seq']}"
        check(started["recording_id"] == rec_id and stopped["recording_id"] == rec_id,
              f"recording ids: {started} {stopped}")
        check(started["emergency"] is False and stopped["emergency"] is False, "flagged")
        check(stopped["size"] > 0 and stopped["duration_ms"] >= 0, f"stopped: {stopped}")
        check(rec_state["recording_id"] == rec_id and rec_state["warnings"] == 2,
              f"retained state while recording: {rec_state}")
        state = retained(stack, dev, "state",
                         lambda s: s["state"] == "standby" and s["seq"] == stopped["seq"])
        check(state["warnings"] == 0, f"retained state after stop: {state}")

    meta = recording_meta(stack, dev, rec_id)
    check(meta["size"] == stopped["size"] and meta["warnings"] == 2, f"metadata {meta}")
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "plain")
        info = recording_check(stack, recording_path(stack, dev, rec_id), plain)
        check(info["interrupted"] == "0" and info["recording_id"] == rec_id, f"check: {info}")
        check(info["file_sha256"] == meta["sha256"], "the file's hash is not the metadata's")
        with open(plain, "rb") as f:
            first, frames = verify_synthetic(f.read(), SEEDS[dev])
        print(f"  {rec_id}: {info['size']} plaintext bytes, synthetic frames {first}.."
              f"{first + frames - 1}, pre-event {started.get('pre_event_ms', 0)} ms")


def check_record_refused(stack):
    """record on standby and after one warning: 'error: ...' and a
    record_refused event each; the state does not change."""
    dev = "cam-002"
    with Observer(stack, dev) as obs:
        base = int(status(stack, dev)["seq"])
        refused0 = press(stack, dev, "record")
        check(refused0.startswith("error:") and "warning" in refused0, f"record: {refused0}")
        press_ok(stack, dev, "warn")
        refused1 = press(stack, dev, "record")
        check(refused1.startswith("error:"), f"record after one warning: {refused1}")
        s = status(stack, dev)
        check(s["state"] == "warning" and s["warnings"] == "1", f"state changed: {s}")
        obs.wait_event(lambda e: e["seq"] == base + 3, "three events")
        events = events_after(obs, base)
        check([(e["type"], e["warnings"]) for e in events] ==
              [("record_refused", 0), ("warning_given", 1), ("record_refused", 1)],
              f"events: {events}")
        check_contiguous(events, base + 1, base + 3)


def check_emergency(stack):
    """The long press records at once, flagged, with the warnings given so
    far; stop ends it (flag kept)."""
    dev = "cam-002"
    with Observer(stack, dev) as obs:
        warnings = int(status(stack, dev)["warnings"])
        base = int(status(stack, dev)["seq"])
        answer = press_ok(stack, dev, "emergency")
        check("state=recording" in answer, f"emergency: {answer}")
        check(status(stack, dev)["emergency"] == "1", "status does not say emergency")
        started = obs.wait_event_type("recording_started")
        check(started["emergency"] is True and started["warnings"] == warnings,
              f"started: {started}")
        press_ok(stack, dev, "stop")
        stopped = obs.wait_event_type("recording_stopped")
        check(stopped["emergency"] is True and stopped["recording_id"] == started["recording_id"],
              f"stopped: {stopped}")
        check_contiguous(events_after(obs, base), base + 1, stopped["seq"])
    meta = recording_meta(stack, dev, started["recording_id"])
    check(meta["emergency"] is True and meta["warnings"] == warnings, f"metadata: {meta}")


def check_tamper_denied(stack):
    """view and delete on the camera are refused and reported; the file stays."""
    dev = "cam-001"
    rec = [n for n in os.listdir(os.path.join(stack.info["devices"][dev]["data_dir"],
                                              "recordings")) if n.endswith(".bcrec")]
    check(rec, "no recording on cam-001 to try it on")
    rec_id = rec[0][:-len(".bcrec")]
    with Observer(stack, dev) as obs:
        for action in ("view", "delete"):
            answer = press(stack, dev, f"{action} {rec_id}")
            check(answer == "error: refused by policy", f"{action}: {answer!r}")
            obs.wait_event_type("tamper_denied", action=action, recording_id=rec_id)
    check(os.path.exists(recording_path(stack, dev, rec_id)), "the recording is gone")


def check_survey(stack):
    dev = "cam-003"
    with Observer(stack, dev) as obs:
        answer = press_ok(stack, dev, "survey 4")
        seq = int(answer.split("seq=")[1])
        obs.wait_event_type("survey", score=4, seq=seq)
        check(press(stack, dev, "survey 9").startswith("error:"), "a score of 9 was taken")


def check_warning_expires(stack):
    """A config command shortens the warning timeout to 1 s; a warning then
    expires back to standby with a warning_expired (de-escalated) event."""
    dev = "cam-003"
    with Observer(stack, dev) as obs:
        cmd_id = unique("cfg")
        obs.publish_command("config", sign(stack, "command", dev, "config", cmd_id,
                                           warning_timeout_s=1))
        ack = obs.wait_ack(cmd_id)
        check(ack["ok"] is True, f"config refused: {ack}")
        base = int(status(stack, dev)["seq"])
        press_ok(stack, dev, "warn")
        expired = obs.wait_event_type("warning_expired", timeout=10)
        check(expired["warnings"] == 1 and expired["seq"] == base + 2, f"expired: {expired}")
        wait_status(stack, dev, "back on standby", state="standby", warnings=0)
        retained(stack, dev, "state", lambda s: s["state"] == "standby" and s["seq"] == base + 2)


def check_dock(stack):
    """dock/undock are events; dock is refused while recording."""
    dev = "cam-003"
    with Observer(stack, dev) as obs:
        press_ok(stack, dev, "emergency")
        check(press(stack, dev, "dock").startswith("error:"), "docked while recording")
        press_ok(stack, dev, "stop")
        press_ok(stack, dev, "dock")
        docked = obs.wait_event_type("docked")
        retained(stack, dev, "state", lambda s: s["state"] == "docked")
        press_ok(stack, dev, "undock")
        undocked = obs.wait_event_type("undocked")
        check(undocked["seq"] == docked["seq"] + 1, f"dock seqs {docked} {undocked}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("agents connect: birth and retained state", check_birth),
        ("full button sequence: ordered events, retained state, readable recording",
         check_full_sequence),
        ("record without two warnings is refused", check_record_refused),
        ("emergency records at once, flagged", check_emergency),
        ("view/delete on the camera refused: tamper_denied", check_tamper_denied),
        ("survey score", check_survey),
        ("warnings expire after the configured timeout", check_warning_expires),
        ("dock and undock", check_dock),
    ], **agent_stack_args(cameras=3)))
