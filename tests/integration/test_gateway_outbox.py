"""gateway-outbox: what services put in bodycam:stream:outbox reaches the
broker and the camera, and is XACKed only after the broker confirmed it;
invalid entries are dropped; a broker restart (clean, or killed with the
entry in flight) loses no outbox entry."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, run_checks, wait_for  # noqa: E402
import gateway_helpers as gh  # noqa: E402

CMD = "bodycam/v1/devices/cam-001/cmd/config"


def payloads(client, topic):
    return [m.payload.decode() for m in client.received(topic)]


def check_acked_only_after_puback(stack):
    with stack.connected(stack.device_client("cam-001")) as cam:
        cam.subscribe("bodycam/v1/devices/cam-001/cmd/+")
        # A stopped broker takes the PUBLISH into its socket buffer but
        # answers nothing: the entry must stay pending, not acknowledged.
        gh.runner(stack, "kill", stack.dir, "mosquitto", "--signal", "STOP")
        try:
            entry = gh.outbox_add(stack, CMD, '{"first":1}')
            wait_for(lambda: gh.pending_count(stack) == 1, 10,
                     "the gateway to take the entry (pending, unconfirmed)")
            time.sleep(1.0)
            check(gh.pending_count(stack) == 1,
                  "the entry was acknowledged before the broker confirmed it")
        finally:
            gh.runner(stack, "kill", stack.dir, "mosquitto", "--signal", "CONT")
        cam.wait_message(CMD, lambda m: m.payload == b'{"first":1}')
        wait_for(lambda: gh.pending_count(stack) == 0, 10, "the XACK after the PUBACK")
        pending_ids = gh.redis_command(gh.redis_port(stack), "XPENDING", gh.OUTBOX, "gateway",
                                       "-", "+", "10")
        check(entry not in [p[0] for p in pending_ids], "the entry is still pending")


def check_qos0_retained(stack):
    summary = '{"v":1,"ts":1,"cameras":0,"online":0,"states":{},"alerts_open":0}'
    gh.outbox_add(stack, "bodycam/v1/fleet/summary", summary, qos="0", retain="1")
    wait_for(lambda: gh.pending_count(stack) == 0 and gh.xlen(stack, gh.OUTBOX) > 0, 10,
             "the QoS 0 entry to be acknowledged")
    # retained: a subscriber arriving later still gets it
    with stack.connected(stack.service_client("fleet-health")) as svc:
        svc.subscribe("bodycam/v1/fleet/summary")
        m = svc.wait_message("bodycam/v1/fleet/summary")
        check(m.retain and m.payload.decode() == summary, f"got {m!r}")


def check_invalid_entries_dropped(stack):
    with stack.connected(stack.service_client("vault")) as spy:
        spy.subscribe("bodycam/v1/#")
        bad = [
            ("bodycam/v1/devices/cam-001/state", '{"forged":1}', "1", "0"),  # a camera topic
            ("bodycam/v1/devices/cam-001/cmd/+", '{"wild":1}', "1", "0"),     # a wildcard
            ("not/ours", '{"x":1}', "1", "0"),
            (CMD, '{"qos2":1}', "2", "0"),
        ]
        for t, p, q, r in bad:
            gh.outbox_add(stack, t, p, q, r)
        gh.redis_command(gh.redis_port(stack), "XADD", gh.OUTBOX, "*", "payload", "no topic")
        gh.outbox_add(stack, CMD, '{"sentinel":1}')
        spy.wait_message(CMD, lambda m: m.payload == b'{"sentinel":1}')
        wait_for(lambda: gh.pending_count(stack) == 0, 10, "every entry acknowledged")
        got = [m.payload.decode() for m in spy.received()]
        for _, p, _, _ in bad:
            check(p not in got, f"invalid outbox entry {p} was published")
    with open(os.path.join(stack.dir, "logs", "gateway.log"), errors="replace") as f:
        check(f.read().count("dropped:") >= len(bad) + 1, "each dropped entry is logged")


def receive_all(stack, wanted, what):
    """A persistent cam-001 session: connects, waits for every wanted
    payload on CMD (queued while it was away or sent live), disconnects."""
    cam = gh.persistent_device(stack, "cam-001")
    check(stack.connect(cam), f"cam-001: {cam.error}")
    cam.subscribe("bodycam/v1/devices/cam-001/cmd/+")
    try:
        wait_for(lambda: set(wanted) <= set(payloads(cam, CMD)), 20, what)
    finally:
        cam.close()  # its session (and subscription) stays on the broker


def check_broker_restart_loses_nothing(stack):
    receive_all(stack, [], "nothing")  # makes the persistent session

    # 1. entries added while the broker is down (a clean stop and start)
    gh.runner(stack, "kill", stack.dir, "mosquitto", "--signal", "TERM")
    wanted = [f'{{"down":{i}}}' for i in range(5)]
    for p in wanted:
        gh.outbox_add(stack, CMD, p)
    gh.restart(stack, "mosquitto")
    receive_all(stack, wanted, "the entries added while the broker was down")
    wait_for(lambda: gh.pending_count(stack) == 0, 10, "all acknowledged")

    # 2. an entry in flight (published, no PUBACK yet) when the broker dies
    gh.wait_gateway_online(stack, "1", gh.stack_pid(stack, "gateway"))
    gh.runner(stack, "kill", stack.dir, "mosquitto", "--signal", "STOP")
    inflight = '{"inflight":1}'
    gh.outbox_add(stack, CMD, inflight)
    wait_for(lambda: gh.pending_count(stack) >= 1, 10, "the entry to be in flight")
    gh.runner(stack, "kill", stack.dir, "mosquitto", "--signal", "KILL")
    check(gh.pending_count(stack) >= 1, "the in-flight entry was acknowledged without a PUBACK")
    gh.restart(stack, "mosquitto")
    receive_all(stack, [inflight], "the in-flight entry after the broker was killed")
    wait_for(lambda: gh.pending_count(stack) == 0, 10, "the in-flight entry acknowledged")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("an outbox entry reaches the camera; XACK only after the PUBACK",
         check_acked_only_after_puback),
        ("QoS 0 retained entries are published and acknowledged", check_qos0_retained),
        ("invalid outbox entries are dropped, not published", check_invalid_entries_dropped),
        ("a broker restart (clean or killed) loses no outbox entry",
         check_broker_restart_loses_nothing),
    ], cameras=2, extra_args=["--no-agents"]))
