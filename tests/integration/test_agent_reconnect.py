#!/usr/bin/python3
"""agent-reconnect: the broker goes away while the officer keeps pressing
buttons; the camera keeps the events (and acks) in its on-disk outbox,
reconnects by itself (backoff with jitter) with a new session number, and
delivers every event in order without a gap.

Delivery is at least once: an event whose PUBACK was lost with the broker
may arrive twice. So the checks remove duplicates by seq, then require the
distinct seqs to be contiguous and in increasing order.

The backend side is a subscriber with a persistent MQTT v5 session (clean
start off, session expiry) on a broker with persistence: what the camera
delivers right after the restart is queued for it even if it reconnects a
moment later than the camera.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import (Observer, agent_stack_args, check_contiguous,  # noqa: E402
                           distinct_events, press, press_ok, retained, status, unique,
                           wait_status)
from bodycam_test import STACK_RUNNER, check, run, run_checks, wait_for  # noqa: E402

DEV = "cam-001"


def broker_stop(stack):
    run([STACK_RUNNER, "kill", stack.dir, "mosquitto", "--signal", "TERM"])


def broker_start(stack):
    run([STACK_RUNNER, "restart", stack.dir, "mosquitto"])
    stack.reload()


def check_outbox_across_broker_restart(stack):
    with Observer(stack, DEV, client_id=unique("backend")) as obs:
        wait_status(stack, DEV, "online", online=1)
        session_before = retained(stack, DEV, "conn", lambda c: c["status"] == "online")["session"]
        base = int(status(stack, DEV)["seq"])
        press_ok(stack, DEV, "warn")
        obs.wait_event(lambda e: e["seq"] == base + 1, "the first warning while online")

        broker_stop(stack)
        wait_status(stack, DEV, "offline", online=0)
        offline_presses = ["warn", "record", "stop", "warn", "warn", "record", "stop",
                           "survey 3", "view x-1"]
        for line in offline_presses:
            answer = press(stack, DEV, line)
            check(answer.startswith("ok") or line.startswith("view"), f"{line}: {answer}")
        queued = int(status(stack, DEV)["outbox"])
        check(queued >= len(offline_presses), f"only {queued} messages queued while offline")
        last = int(status(stack, DEV)["seq"])
        check(last == base + 1 + len(offline_presses), f"seq {last} after the offline presses")

        broker_start(stack)
        obs.reconnect()
        obs.wait_event(lambda e: e["seq"] == last, f"event {last} after the reconnect",
                       timeout=30)
        wait_status(stack, DEV, "outbox drained", online=1, outbox=0)
        events = [e for e in obs.events() if e["seq"] > base]
        seqs = check_contiguous(events, base + 1, last)
        dupes = len(events) - len(distinct_events(events))
        print(f"  seqs {seqs[0]}..{seqs[-1]} arrived in order, {dupes} duplicate(s)")
        types = [e["type"] for e in distinct_events(events)]
        check(types[1:4] == ["warning_given", "recording_started", "recording_stopped"],
              f"event types: {types}")
        check(types[-1] == "tamper_denied", f"last event: {types[-1]}")
        conn = retained(stack, DEV, "conn",
                        lambda c: c["status"] == "online" and c["session"] > session_before)
        print(f"  session {session_before} -> {conn['session']}")
        retained(stack, DEV, "state", lambda s: s["seq"] == last and s["state"] == "standby")


def check_commands_while_reconnecting(stack):
    """The other cameras came back on their own too (each with a growing
    session number), and a camera restarted while the broker is down
    delivers its queue once the broker is back."""
    dev = "cam-002"
    with Observer(stack, dev, client_id=unique("backend")) as obs:
        wait_status(stack, dev, "online", online=1)
        broker_stop(stack)
        base = int(status(stack, dev)["seq"])
        press_ok(stack, dev, "warn")
        press_ok(stack, dev, "warn")
        run([STACK_RUNNER, "restart", stack.dir, f"agent:{dev}"])
        press_ok(stack, dev, "record")
        press_ok(stack, dev, "stop")
        broker_start(stack)
        obs.reconnect()
        obs.wait_event(lambda e: e["seq"] == base + 4, "the last event", timeout=30)
        check_contiguous([e for e in obs.events() if e["seq"] > base], base + 1, base + 4)
        wait_for(lambda: int(status(stack, dev)["outbox"]) == 0, 20, "cam-002's outbox to drain")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("broker restart while pressing: every event, in order, no gap",
         check_outbox_across_broker_restart),
        ("agent restarted while the broker is down: queue survives",
         check_commands_while_reconnecting),
    ], **agent_stack_args(cameras=2)))
