"""gateway-ingest: camera messages, published over mTLS with a device
certificate as the agent does, land in the Redis stream of their kind with
the fields of the contract; invalid ones never reach a stream; the health
stream is bounded and the others are not."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, run_checks, wait_for  # noqa: E402
import gateway_helpers as gh  # noqa: E402


def find_payload(stack, kind, payload):
    for entry_id, f in gh.entries(stack, gh.stream_key(kind)):
        if f.get("payload") == payload:
            return entry_id, f
    return None


def check_lands_with_fields(stack):
    with stack.connected(stack.device_client("cam-001")) as cam:
        sent = {
            "conn": gh.dumps(gh.conn_msg("cam-001")),
            "state": gh.dumps(gh.state_msg("cam-001", 1)),
            "health": gh.dumps(gh.health_msg("cam-001")),
            "event": gh.dumps(gh.event_msg("cam-001", 1)),
            "ack": gh.dumps(gh.ack_msg("cam-001")),
        }
        before = gh.now_ms()
        for kind, payload in sent.items():
            cam.publish(gh.topic("cam-001", kind), payload, qos=0 if kind == "health" else 1)
        for kind, payload in sent.items():
            entry_id, f = wait_for(lambda k=kind, p=payload: find_payload(stack, k, p), 10,
                                   f"the {kind} message in bodycam:stream:{kind}")
            check(set(f) == {"device", "kind", "payload", "received_at", "topic"},
                  f"{kind}: fields are {sorted(f)}")
            check(f["device"] == "cam-001", f"{kind}: device {f['device']!r}")
            check(f["kind"] == kind, f"{kind}: kind {f['kind']!r}")
            check(f["topic"] == gh.topic("cam-001", kind), f"{kind}: topic {f['topic']!r}")
            received = int(f["received_at"])
            check(before - 1000 <= received <= gh.now_ms() + 1000,
                  f"{kind}: received_at {received} is not the gateway's clock now")
            for other in gh.STREAMS:
                if other != kind:
                    check(find_payload(stack, other, payload) is None,
                          f"the {kind} message also landed in {other}")


def check_invalid_never_copied(stack):
    bad = [
        ("state", b"{not json"),
        ("state", gh.dumps(gh.state_msg("cam-002", 7))),          # names another device
        ("event", gh.dumps({"v": 1, "device": "cam-001", "seq": 9})),  # fields missing
        ("state", gh.dumps({**gh.state_msg("cam-001", 8), "v": 99})),  # unknown version
        ("health", gh.dumps({**gh.health_msg("cam-001"), "battery_pct": 140})),
    ]
    lens = {k: gh.xlen(stack, gh.stream_key(k)) for k in gh.STREAMS}
    with stack.connected(stack.device_client("cam-001")) as cam:
        for kind, payload in bad:
            cam.publish(gh.topic("cam-001", kind), payload, qos=1)
        # A valid message after them on each topic: once it is in, the
        # invalid ones before it (same publisher, same gateway) were judged.
        sentinels = {k: gh.dumps(gh.state_msg("cam-001", 100) if k == "state" else
                                 gh.event_msg("cam-001", 100) if k == "event" else
                                 gh.health_msg("cam-001", 42))
                     for k in ("state", "event", "health")}
        for kind, payload in sentinels.items():
            cam.publish(gh.topic("cam-001", kind), payload, qos=1)
        for kind, payload in sentinels.items():
            wait_for(lambda k=kind, p=payload: find_payload(stack, k, p), 10,
                     f"the valid {kind} message after the invalid ones")
    for kind in ("state", "event", "health"):
        check(gh.xlen(stack, gh.stream_key(kind)) == lens[kind] + 1,
              f"{kind}: {gh.xlen(stack, gh.stream_key(kind)) - lens[kind]} new entries, "
              "expected only the valid one")
    for kind, payload in bad:
        p = payload.decode() if isinstance(payload, bytes) else payload
        check(find_payload(stack, kind, p) is None, f"an invalid {kind} message was copied")
    with open(os.path.join(stack.dir, "logs", "gateway.log"), errors="replace") as f:
        log = f.read()
    check(log.count("dropped a message") >= len(bad),
          f"expected a log line per dropped message, got {log.count('dropped a message')}")
    check("names another device" in log, "the device mismatch is not named in the log")


def check_health_bounded_others_not(stack):
    conf = stack.info["gateway"]["config"]
    with open(conf, "a") as f:
        f.write("health_maxlen = 50\n")
    gh.restart(stack, "gateway")
    n = 400
    with stack.connected(stack.device_client("cam-002")) as cam:
        for i in range(n):
            cam.publish(gh.topic("cam-002", "health"), gh.dumps(gh.health_msg("cam-002", i % 100)),
                        qos=1)
            cam.publish(gh.topic("cam-002", "event"), gh.dumps(gh.event_msg("cam-002", 1000 + i)),
                        qos=1)
    wait_for(lambda: len(gh.seqs_in(stack, "event", "cam-002")) >= n, 20, "all events stored")
    health = gh.xlen(stack, gh.stream_key("health"))
    check(50 <= health < n, f"health stream holds {health} entries; expected trimmed to ~50")
    check(sorted(gh.seqs_in(stack, "event", "cam-002")) == list(range(1000, 1000 + n)),
          "the event stream lost or duplicated entries (it must not be trimmed)")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("a camera message lands in its stream with the contract's fields",
         check_lands_with_fields),
        ("invalid messages are dropped, logged and never copied", check_invalid_never_copied),
        ("health is trimmed (MAXLEN ~), events are kept", check_health_bounded_others_not),
    ], cameras=2, extra_args=["--no-agents"], plugin=False))
    # Without the broker plugin: these tests flood and send invalid payloads on
    # purpose to exercise the gateway's own checks, which the plugin (rate
    # limits, validation) would otherwise stop at the broker first.
