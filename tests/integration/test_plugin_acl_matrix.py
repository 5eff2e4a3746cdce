#!/usr/bin/python3
"""plugin-acl-matrix: every role x topic class x publish / subscribe through
the real broker with the bodycam-auth plugin, each cell asserted by what
arrives.

Publish cells: the actor publishes (QoS 1, so the broker has routed or
dropped it when the PUBACK comes), then the gateway publishes a sentinel;
the observer (the gateway, subscribed to bodycam/v1/#) must have received
the actor's message before the sentinel exactly when the cell allows it.

Subscribe cells: a fresh actor connection subscribes to the cell's filter,
the gateway publishes a probe that the filter matches, then a sentinel on a
topic the actor may read; the probe must arrive before the sentinel exactly
when the cell allows it, and the SUBACK must agree (granted or 0x87).

Publishes outside bodycam/v1/ cannot be observed by anyone (no role may read
there), so those cells are asserted with the plugin's own counters.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, run_checks  # noqa: E402
from plugin_helpers import (PREFIX, METRICS, MetricsWatcher, device_topic,  # noqa: E402
                            marker_is, message, now_ms, plugin_stack_args, unique)

CAM, OTHER = "cam-001", "cam-002"
ALLOW, DENY = True, False


def actor(stack, role):
    if role == "camera":
        return stack.device_client(CAM)
    if role == "service":
        return stack.service_client("fleet-health")
    return stack.dashboard_client()


# sentinel topic an actor of each role may read (and the gateway may write)
SENTINEL = {
    "camera": device_topic(CAM, "cmd/sentinel"),
    "service": PREFIX + "sentinel",
    "dashboard": PREFIX + "fleet/sentinel",
}


def own(kind):
    return lambda n: (device_topic(CAM, kind), message(kind, CAM, n))


def other(kind):
    return lambda n: (device_topic(OTHER, kind), message(kind, OTHER, n))


def plain(topic):
    return lambda n: (topic, {"v": 1, "marker": n, "ts": now_ms()})


# (role, what: n -> (topic, payload), retain, expected)
PUBLISH_CELLS = [
    ("camera", own("conn"), True, ALLOW),
    ("camera", own("state"), True, ALLOW),
    ("camera", own("health"), False, ALLOW),
    ("camera", own("event"), False, ALLOW),
    ("camera", own("ack"), False, ALLOW),
    ("camera", own("upload"), False, ALLOW),
    ("camera", own("csr"), False, ALLOW),
    ("camera", own("event"), True, DENY),          # retain only on conn and state
    ("camera", own("health"), True, DENY),
    ("camera", other("state"), False, DENY),       # impersonating cam-002
    ("camera", other("event"), False, DENY),
    ("camera", plain(device_topic(CAM, "cmd/config")), False, DENY),
    ("camera", plain(PREFIX + "fleet/summary"), True, DENY),
    ("camera", plain(PREFIX + "firmware/1.0.0/chunk/0"), True, DENY),
    ("camera", plain(METRICS), True, DENY),
    ("service", plain(device_topic(CAM, "cmd/config")), False, ALLOW),
    ("service", plain(PREFIX + "fleet/summary"), True, ALLOW),
    ("service", plain(PREFIX + "firmware/1.0.0/chunk/0"), True, ALLOW),
    ("service", other("state"), False, ALLOW),
    ("service", plain(METRICS), True, DENY),       # only the broker writes its metrics
    ("dashboard", plain(PREFIX + "fleet/summary"), False, DENY),
    ("dashboard", own("state"), False, DENY),
    ("dashboard", plain(device_topic(CAM, "cmd/config")), False, DENY),
]

# (role, filter, probe topic the gateway publishes (or a special), expected)
SYS_PROBE = "$SYS"        # the broker's retained $SYS messages
METRICS_PROBE = METRICS   # the broker's retained metrics
SUBSCRIBE_CELLS = [
    ("camera", device_topic(CAM, "cmd/#"), device_topic(CAM, "cmd/config"), ALLOW),
    ("camera", device_topic(CAM, "cmd/+"), device_topic(CAM, "cmd/upload"), ALLOW),
    ("camera", "$share/g/" + device_topic(CAM, "cmd/#"), device_topic(CAM, "cmd/firmware"), ALLOW),
    ("camera", PREFIX + "firmware/#", PREFIX + "firmware/1.0.0/chunk/0", ALLOW),
    ("camera", PREFIX + "firmware/+/chunk/+", PREFIX + "firmware/2.0.0/chunk/1", ALLOW),
    ("camera", device_topic(OTHER, "cmd/#"), device_topic(OTHER, "cmd/config"), DENY),
    ("camera", PREFIX + "devices/+/cmd/#", device_topic(OTHER, "cmd/config"), DENY),
    ("camera", PREFIX + "devices/+/state", device_topic(OTHER, "state"), DENY),
    ("camera", device_topic(CAM, "state"), device_topic(CAM, "state"), DENY),
    ("camera", device_topic(CAM, "#"), device_topic(CAM, "event"), DENY),
    ("camera", PREFIX + "fleet/#", PREFIX + "fleet/summary", DENY),
    ("camera", PREFIX + "#", PREFIX + "fleet/alerts", DENY),
    ("camera", "#", PREFIX + "fleet/alerts", DENY),
    ("camera", "$share/g/" + PREFIX + "#", device_topic(OTHER, "state"), DENY),
    ("camera", METRICS, METRICS_PROBE, DENY),
    ("camera", "$SYS/#", SYS_PROBE, DENY),
    ("service", PREFIX + "#", device_topic(OTHER, "event"), ALLOW),
    ("service", PREFIX + "devices/+/+", device_topic(OTHER, "state"), ALLOW),
    ("service", "$share/g/" + PREFIX + "devices/+/state", device_topic(OTHER, "state"), ALLOW),
    ("service", METRICS, METRICS_PROBE, ALLOW),
    ("service", "#", PREFIX + "fleet/alerts", DENY),
    ("service", "$SYS/#", SYS_PROBE, DENY),
    ("dashboard", PREFIX + "fleet/#", PREFIX + "fleet/alerts", ALLOW),
    ("dashboard", PREFIX + "devices/+/state", device_topic(OTHER, "state"), ALLOW),
    ("dashboard", PREFIX + "devices/+/conn", device_topic(OTHER, "conn"), ALLOW),
    ("dashboard", PREFIX + "devices/+/health", device_topic(OTHER, "health"), ALLOW),
    ("dashboard", "$share/g/" + PREFIX + "fleet/#", PREFIX + "fleet/summary", ALLOW),
    ("dashboard", PREFIX + "devices/+/event", device_topic(OTHER, "event"), DENY),
    ("dashboard", PREFIX + "devices/+/+", device_topic(OTHER, "upload"), DENY),
    ("dashboard", device_topic(CAM, "cmd/#"), device_topic(CAM, "cmd/config"), DENY),
    ("dashboard", PREFIX + "firmware/#", PREFIX + "firmware/1.0.0/chunk/0", DENY),
    ("dashboard", METRICS, METRICS_PROBE, DENY),
    ("dashboard", PREFIX + "#", PREFIX + "fleet/alerts", DENY),
    ("dashboard", "$share/g/" + PREFIX + "devices/+/event", device_topic(OTHER, "event"), DENY),
    ("dashboard", "$SYS/#", SYS_PROBE, DENY),
]


def cell_name(role, op, target, retain, expected):
    return f"{role} {op} {target}{' (retained)' if retain else ''}: " \
           f"{'allowed' if expected else 'refused'}"


def check_publish_matrix(stack):
    failures = []
    with stack.connected(stack.service_client("gateway")) as gw:
        gw.subscribe(PREFIX + "#")
        for role, what, retain, expected in PUBLISH_CELLS:
            n = unique()
            topic, payload = what(n)
            with stack.connected(actor(stack, role)) as a:
                a.publish(topic, payload, qos=1, retain=retain)
            sentinel = PREFIX + "sentinel"
            gw.publish(sentinel, {"v": 1, "marker": n})
            gw.wait_message(sentinel, marker_is(n))
            got = [m for m in gw.received(topic) if marker_is(n)(m)]
            name = cell_name(role, "publish", topic, retain, expected)
            if bool(got) != expected:
                failures.append(f"{name}: {'not ' if expected else ''}delivered")
            else:
                print(f"  ok: {name}")
    check(not failures, "; ".join(failures))


def probe_match(probe, n):
    if probe == SYS_PROBE:
        return lambda m: m.topic.startswith("$SYS")
    if probe == METRICS_PROBE:
        return lambda m: m.topic == METRICS
    return marker_is(n)


def check_subscribe_matrix(stack):
    failures = []
    with stack.connected(stack.service_client("gateway")) as gw:
        for role, topic_filter, probe, expected in SUBSCRIBE_CELLS:
            n = unique()
            with stack.connected(actor(stack, role)) as a:
                a.subscribe(SENTINEL[role])
                codes = a.subscribe(topic_filter)
                if probe not in (SYS_PROBE, METRICS_PROBE):
                    gw.publish(probe, {"v": 1, "marker": n, "ts": now_ms()})
                gw.publish(SENTINEL[role], {"v": 1, "marker": n})
                a.wait_message(SENTINEL[role], marker_is(n))
                match = probe_match(probe, n)
                got = [m for m in a.received() if m.topic != SENTINEL[role] and match(m)]
            granted = all(c < 0x80 for c in codes)
            name = cell_name(role, "subscribe", topic_filter, False, expected)
            if bool(got) != expected:
                failures.append(f"{name}: probe {probe} {'not ' if expected else ''}delivered")
            elif granted != expected:
                failures.append(f"{name}: SUBACK {codes} disagrees")
            else:
                print(f"  ok: {name} (SUBACK {codes})")
    check(not failures, "; ".join(failures))


def check_outside_prefix_counted(stack):
    """Publishes outside bodycam/v1/ reach no reader at all, so their refusal
    is asserted on the plugin's counter acl.write.outside_role."""
    watcher = MetricsWatcher(stack)
    try:
        before = watcher.counter("acl.write.outside_role", after_ts=now_ms())
        with stack.connected(stack.device_client(CAM)) as cam, \
                stack.connected(stack.service_client("fleet-health")) as svc:
            cam.publish("other/topic", {"v": 1}, qos=1)
            svc.publish("other/topic", {"v": 1}, qos=1)
            svc.publish("bodycam/v2/devices/cam-001/state", {"v": 1}, qos=1)
        watcher.wait_counter("acl.write.outside_role", lambda v: v >= before + 3,
                             what="three outside-prefix publishes counted as refused")
    finally:
        watcher.close()


if __name__ == "__main__":
    sys.exit(run_checks([
        ("publish matrix: camera, service, dashboard x every topic class", check_publish_matrix),
        ("subscribe matrix: camera, service, dashboard x every filter class",
         check_subscribe_matrix),
        ("publishes outside bodycam/v1/ are refused (counted)", check_outside_prefix_counted),
    ], **plugin_stack_args(cameras=2)))
