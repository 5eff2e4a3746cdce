#!/usr/bin/python3
"""plugin-validation: what a camera publishes is checked with proto's
decoders before anyone gets it. Malformed JSON, a payload naming another
device than its topic, a wrong schema version, an oversize payload, a
missing or mistyped field: each is dropped and counted by reason, while the
valid messages around it keep flowing in order; so is a will. Per-camera rate limits
(messages/s and bytes/s, a separate larger allowance for upload chunks)
stop a flooding camera without touching the others. The counters are
published as a retained bodycam/v1/broker/metrics that services can read.

This stack runs with small rate limits (plugin options below); each check
uses its own camera, because rate buckets are per camera.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, run_checks  # noqa: E402
from plugin_helpers import (METRICS, MetricsWatcher, device_topic, marker_is,  # noqa: E402
                            message, now_ms, plugin_stack_args, unique)

RATE = {"rate_msgs_per_s": 2, "rate_msgs_burst": 40, "rate_bytes_per_s": 2000,
        "rate_bytes_burst": 40000, "upload_msgs_per_s": 50, "upload_msgs_burst": 200}


def bad_payloads(device):
    """(reason counter, topic kind, raw payload bytes)"""
    good = message("state", device)
    return [
        ("msg.malformed", "state", b"not json at all"),
        ("msg.malformed", "state", b'{"v":1,"device":"' + device.encode() + b'"'),
        ("msg.malformed", "state", b""),
        # a repeated key: cJSON would read the first "device", a browser the last
        ("msg.malformed", "state", json.dumps(good).encode().replace(
            b'"device": "' + device.encode() + b'"',
            b'"device": "' + device.encode() + b'", "device": "cam-002"')),
        ("msg.malformed", "state", json.dumps(good).encode().replace(b"standby", b"stand\xffby")),
        ("msg.wrong_device", "state", json.dumps(message("state", "cam-002")).encode()),
        ("msg.wrong_device", "health", json.dumps(message("health", "cam-002")).encode()),
        ("msg.version", "state", json.dumps(dict(good, v=2)).encode()),
        ("msg.version", "event", json.dumps(dict(message("event", device), v=0)).encode()),
        ("msg.invalid", "event", json.dumps(dict(message("event", device), v="1")).encode()),
        ("msg.invalid", "state", json.dumps({k: v for k, v in good.items()
                                             if k != "seq"}).encode()),
        ("msg.invalid", "state", json.dumps(dict(good, warnings="none")).encode()),
        ("msg.invalid", "health", json.dumps(dict(message("health", device),
                                                  battery_pct=140)).encode()),
        ("msg.too_big", "state", json.dumps(dict(good, pad="x" * 17000)).encode()),
        ("msg.too_big", "upload", json.dumps(dict(message("upload", device),
                                                  pad="x" * 140000)).encode()),
    ]


def check_bad_payloads_dropped_good_flow(stack):
    device = "cam-001"
    watcher = MetricsWatcher(stack)
    try:
        before = watcher.latest(now_ms())["counters"]
        cases = bad_payloads(device)
        expected = {}
        with stack.connected(stack.service_client("gateway")) as gw, \
                stack.connected(stack.device_client(device)) as cam:
            gw.subscribe(device_topic(device, "#"))
            for reason, kind, raw in cases:
                good = message("state", device)
                cam.publish(device_topic(device, kind), raw)
                cam.publish(device_topic(device, "state"), good)
                expected[reason] = expected.get(reason, 0) + 1
                # the valid message right after the bad one arrives ...
                gw.wait_message(device_topic(device, "state"), marker_is(good["marker"]))
            # ... and no bad one ever did: everything received is a valid message
            for m in gw.received():
                j = m.json()
                check(j.get("device") == device and j.get("v") == 1 and "pad" not in j,
                      f"a bad payload was delivered: {m}")
            check(len(gw.received()) == len(cases),
                  f"{len(gw.received())} messages arrived, expected the {len(cases)} valid ones")
            check(cam.connected, f"the camera was disconnected: {cam.error}")
        after = watcher.wait_counter("msg.accepted", lambda v: v >= before["msg.accepted"] +
                                     len(cases), what="the valid messages counted")
        for reason, count in expected.items():
            got = after["counters"][reason] - before[reason]
            check(got >= count, f"{reason}: counted {got}, expected {count}")
            print(f"  {reason}: {got} dropped")
    finally:
        watcher.close()


def check_message_rate_limit(stack):
    """cam-002 publishes 100 health reports at once: about the burst (40)
    pass, the rest is dropped as msg.rate_messages; cam-003 is unaffected,
    and upload messages have their own, larger allowance."""
    watcher = MetricsWatcher(stack)
    try:
        before = watcher.latest(now_ms())["counters"]
        with stack.connected(stack.service_client("gateway")) as gw, \
                stack.connected(stack.device_client("cam-002")) as flood, \
                stack.connected(stack.device_client("cam-003")) as calm:
            gw.subscribe(device_topic("+", "#"))
            started = time.monotonic()
            for _ in range(100):
                flood.publish(device_topic("cam-002", "health"), message("health", "cam-002"))
            most = 40 + RATE["rate_msgs_per_s"] * (time.monotonic() - started) + 1
            n = unique()
            calm.publish(device_topic("cam-003", "health"), message("health", "cam-003", n))
            gw.wait_message(device_topic("cam-003", "health"), marker_is(n))
            passed = len(gw.received(device_topic("cam-002", "health")))
            check(40 <= passed <= most, f"{passed} of 100 passed, expected the burst of 40 "
                                        f"plus the refill, at most {most:.0f}")
            # the same camera's upload class has its own bucket
            n = unique()
            flood.publish(device_topic("cam-002", "upload"), message("upload", "cam-002", n))
            gw.wait_message(device_topic("cam-002", "upload"), marker_is(n))
        after = watcher.wait_counter("msg.rate_messages",
                                     lambda v: v >= before["msg.rate_messages"] + 50,
                                     what="the dropped floods counted")
        print(f"  passed {passed}, counted msg.rate_messages "
              f"+{after['counters']['msg.rate_messages'] - before['msg.rate_messages']}")
    finally:
        watcher.close()


def check_byte_rate_limit(stack):
    """cam-003 publishes 10 health reports of ~10 KB: the byte bucket (40 KB)
    lets about 4 through, then msg.rate_bytes."""
    watcher = MetricsWatcher(stack)
    try:
        before = watcher.latest(now_ms())["counters"]
        with stack.connected(stack.service_client("gateway")) as gw, \
                stack.connected(stack.device_client("cam-003")) as cam:
            gw.subscribe(device_topic("cam-003", "health"))
            started = time.monotonic()
            for _ in range(10):
                big = message("health", "cam-003")
                big["errors"] = ["e" * 120] * 16  # valid: <= 16 strings of <= 128 bytes
                big["pad"] = "p" * 8000           # unknown fields are ignored
                size = len(json.dumps(big))
                cam.publish(device_topic("cam-003", "health"), big)
            budget = 40000 + RATE["rate_bytes_per_s"] * (time.monotonic() - started)
            least, most = int(40000 // size) - 1, int(budget // size) + 1
            n = unique()
            gw.publish(device_topic("cam-003", "health"), {"v": 1, "marker": n})
            gw.wait_message(device_topic("cam-003", "health"), marker_is(n))
            passed = len(gw.received(device_topic("cam-003", "health"))) - 1
            check(least <= passed <= most, f"{passed} of 10 messages of {size} bytes passed, "
                                           f"expected {least}..{most} of a 40000-byte bucket")
        watcher.wait_counter("msg.rate_bytes", lambda v: v >= before["msg.rate_bytes"] + 5,
                             what="the byte-limited messages counted")
    finally:
        watcher.close()


def drop_connection(client):
    """Ends a client's connection without DISCONNECT, so the broker sends its will."""
    client._stop.set()
    if client._thread is not None:
        client._thread.join(timeout=5)
    client.connected = False
    sock = client.mqtt.socket()
    if sock is not None:
        sock.close()


def check_wills_validated(stack):
    """A camera's will is a publish too: a garbage will (on state) or one
    naming another device (on conn) is not delivered when the camera drops
    off; a valid will on conn is (the control)."""
    n = unique()
    with stack.connected(stack.service_client("gateway")) as gw:
        gw.subscribe(device_topic("+", "#"))
        wills = [("cam-001", "state", b"{garbage"),
                 ("cam-001", "conn", json.dumps(dict(message("conn", "cam-002", n),
                                                     status="offline")).encode()),
                 ("cam-003", "conn", json.dumps(dict(message("conn", "cam-003", n + 1),
                                                     status="offline")).encode())]
        for device, kind, payload in wills:
            c = stack.device_client(device)
            c.mqtt.will_set(device_topic(device, kind), payload, qos=1)
            check(stack.connect(c), f"{device}: {c.error}")
            drop_connection(c)
        gw.wait_message(device_topic("cam-003", "conn"), marker_is(n + 1))
        bad = [m for m in gw.received(device_topic("cam-001", "state")) +
               gw.received(device_topic("cam-001", "conn"))]
        check(not bad, f"an invalid will was delivered: {bad}")


def check_metrics_message(stack):
    """The metrics are a retained message with the schema version, a time,
    the Redis and registry state and the counters; a service reads them."""
    with stack.connected(stack.service_client("fleet-health")) as svc:
        svc.subscribe(METRICS)
        m = svc.wait_message(METRICS)
        check(m.retain, "the first metrics message did not arrive as retained")
        j = m.json()
        check(j["v"] == 1 and isinstance(j["ts"], int) and j["redis"] == "up",
              f"metrics header: {j}")
        check(j["registry"]["devices"] == 3 and j["registry"]["loaded"], f"registry: {j}")
        for name in ("auth.ok.camera", "msg.accepted", "msg.malformed", "acl.write.allow"):
            check(isinstance(j["counters"].get(name), int), f"counter {name} missing: {j}")
        later = svc.wait_message(METRICS, lambda x: x.json()["ts"] > j["ts"], timeout=5.0)
        check(later.json()["ts"] > j["ts"], "the metrics are not republished periodically")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("bad payloads are dropped and counted, valid ones flow",
         check_bad_payloads_dropped_good_flow),
        ("messages/s limit per camera, uploads separate", check_message_rate_limit),
        ("bytes/s limit per camera", check_byte_rate_limit),
        ("a camera's will is validated like a publish", check_wills_validated),
        ("metrics: retained, periodic, readable by services", check_metrics_message),
    ], **plugin_stack_args(cameras=3, **RATE)))
