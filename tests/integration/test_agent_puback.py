#!/usr/bin/python3
"""agent-puback: what the camera does with the broker's PUBACK reason codes
(MQTT v5) for its outbox messages (events and acks).

- 0x10 "no matching subscribers": nobody (no gateway) took the event, the
  broker dropped it. The camera keeps it in the outbox, pauses the messages
  behind it (so the order holds), warns once, and retries by itself; when a
  subscriber appears every event arrives, in order, without a gap.
- >= 0x80 (here 0x87 "not authorized": the broker plugin refuses a payload
  that does not validate): the broker will never take it. The camera drops
  it with an ERROR line and reports it in its health errors, and the queue
  behind it goes on.

The stack's gateway holds a persistent shared subscription to every device
topic, so it is stopped and its session is cleared (a clean-start connect
with its client id) before the first check; the second check subscribes
before it acts.
"""

import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import (Observer, agent_stack_args, check_contiguous,  # noqa: E402
                           device_topic, press, press_ok, status, wait_status)
from bodycam_test import STACK_RUNNER, check, run, run_checks, wait_for  # noqa: E402

OUTBOX_MAGIC = b"BCOUTBX1"
QUIET_S = 3.0  # how long an unrouted event must stay queued (several retries)


def agent_log(stack, dev):
    try:
        with open(os.path.join(stack.dir, "logs", f"agent:{dev}.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def clear_gateway(stack):
    """Stops the stack's gateway (if it runs) and ends its persistent MQTT
    session, so that no subscription matches the device topics."""
    procs = stack.info.get("processes", {})
    if "gateway" in procs:
        run([STACK_RUNNER, "kill", stack.dir, "gateway", "--signal", "TERM"])
    instance = stack.info.get("gateway", {}).get("instance", "1")
    # clean start + session expiry 0: the broker drops the old session and
    # its subscriptions, and this one ends with the disconnect
    with stack.connected(stack.service_client("gateway", client_id=f"gateway-{instance}")):
        pass


def check_no_subscriber_keeps_the_event(stack):
    dev = "cam-001"
    wait_status(stack, dev, "online", online=1)
    clear_gateway(stack)
    base = int(status(stack, dev)["seq"])
    press_ok(stack, dev, "warn")
    press_ok(stack, dev, "warn")
    wait_for(lambda: "nobody subscribes to" in agent_log(stack, dev), 20,
             f"{dev}'s warning about PUBACK 0x10")
    # the events stay queued (several retries go by); a new one waits behind them
    press_ok(stack, dev, "survey 4")
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline:
        s = status(stack, dev)
        check(int(s["outbox"]) == 3 and s["online"] == "1",
              f"the unrouted events left the outbox: {s}")
        time.sleep(0.2)
    check(agent_log(stack, dev).count("nobody subscribes to") == 1,
          "the 0x10 warning was logged more than once in one episode")

    with Observer(stack, dev) as obs:  # somebody subscribes now
        obs.wait_event(lambda e: e["seq"] == base + 3, "the survey event after the retry",
                       timeout=30)
        seqs = check_contiguous([e for e in obs.events() if e["seq"] > base], base + 1, base + 3)
        types = [e["type"] for e in obs.events() if e["seq"] > base]
        check(types[:3] == ["warning_given", "warning_given", "survey"], f"events: {types}")
        wait_status(stack, dev, "outbox drained", outbox=0)
        wait_for(lambda: "delivered again" in agent_log(stack, dev), 10,
                 f"{dev}'s line that the episode is over")
        # the episode is over: a new event goes straight through
        check(press(stack, dev, "view x-1").startswith("error"), "view was not refused")
        obs.wait_event(lambda e: e["seq"] == base + 4 and e["type"] == "tamper_denied",
                       "the next event at once", timeout=5)
        print(f"  seqs {seqs[0]}..{seqs[-1]} kept while nobody subscribed, then delivered in order")


def outbox_file(seq, topic, payload, qos=1):
    """A message file in the agent's outbox format (device-agent/outbox.h)."""
    t, p = topic.encode(), payload.encode()
    body = (OUTBOX_MAGIC + seq.to_bytes(8, "big") + bytes([qos, 0, 0, 0])
            + len(t).to_bytes(4, "big") + len(p).to_bytes(4, "big") + t + p)
    return body + hashlib.sha256(body).digest()


def check_refused_message_is_dropped(stack):
    dev = "cam-002"
    with Observer(stack, dev) as obs:
        wait_status(stack, dev, "online", online=1, outbox=0)
        run([STACK_RUNNER, "kill", stack.dir, f"agent:{dev}", "--signal", "TERM"])
        outbox = os.path.join(stack.info["devices"][dev]["data_dir"], "outbox")
        seqs = [int(n[:16]) for n in os.listdir(outbox) if n.endswith(".msg")]
        seq = max(seqs, default=0) + 1
        marker = f"not-an-event-{os.getpid()}"
        path = os.path.join(outbox, f"{seq:016d}.msg")
        with open(path, "wb") as f:  # what a buggy firmware might have queued
            f.write(outbox_file(seq, device_topic(dev, "event"), '{"v":1,"' + marker))
        run([STACK_RUNNER, "restart", stack.dir, f"agent:{dev}"])
        stack.reload()
        wait_for(lambda: f"refused outbox message {seq}" in agent_log(stack, dev), 30,
                 f"{dev}'s ERROR line about the refused message")
        line = next(x for x in agent_log(stack, dev).splitlines()
                    if f"refused outbox message {seq}" in x)
        check("ERROR" in line.upper() and "0x87" in line, f"not an error line: {line!r}")
        wait_status(stack, dev, "the refused message dropped", outbox=0)
        check(not os.path.exists(path), "the refused message's file is still in the outbox")
        base = int(status(stack, dev)["seq"])
        press_ok(stack, dev, "warn")  # the queue goes on behind it
        obs.wait_event(lambda e: e["seq"] == base + 1, "the next event")
        health = obs.client.wait_message(
            device_topic(dev, "health"),
            lambda m: any(f"refused outbox message {seq}" in e
                          for e in m.json().get("errors", [])), 30)
        check(not any(marker.encode() in m.payload for m in obs.client.received()),
              "the invalid payload reached a subscriber")
        print(f"  health errors: {health.json()['errors']}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("PUBACK 0x10 (nobody subscribes): kept, paused, delivered in order later",
         check_no_subscriber_keeps_the_event),
        ("PUBACK 0x87 (the plugin refuses the payload): dropped, ERROR, health error",
         check_refused_message_is_dropped),
    ], **agent_stack_args(cameras=2, health_interval_s=1)))
