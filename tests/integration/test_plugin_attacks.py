#!/usr/bin/python3
"""plugin-attacks: regressions for known attack classes on MQTT brokers, each
against the real broker with the bodycam-auth plugin.

- An identity (certificate CN or dashboard username) containing '+', '#',
  '/', NUL or non-UTF-8 bytes - or anything else outside its alphabet - is
  refused at CONNECT, so it can never reach a topic pattern; the same ids
  written straight into Redis are skipped by the registry loader.
- A '$share/<group>/<filter>' subscription is judged by its real filter.
- A zero-length topic (with or without a topic alias), '$'-prefixed topics
  and wildcards in a publish neither crash the broker nor get anything
  through.
(A retained message of a since-revoked camera: test_plugin_revocation.py.)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, redis_command, run_checks  # noqa: E402
from plugin_helpers import (PREFIX, T61_STRING, UTF8_STRING, MetricsWatcher,  # noqa: E402
                            RawClient, device_topic, fingerprint, marker_is, message, now_ms,
                            plugin_stack_args, refused, sign_client_cert, unique)

# (name, CN text, raw bytes replacing the CN inside the signed certificate,
#  ASN.1 string type of the raw bytes)
HOSTILE_CNS = [
    ("plus", "cam+1", None, UTF8_STRING),
    ("hash", "cam#1", None, UTF8_STRING),
    ("slash", "cam-001/#", None, UTF8_STRING),
    ("wildcard-only", "+", None, UTF8_STRING),
    ("nul", "cam-001zz", b"cam-001\x00z", UTF8_STRING),
    ("non-utf8", "cam-abc", b"cam-\xff\xfe1", T61_STRING),
    ("nul-t61", "cam-002zz", b"cam-002\x00z", T61_STRING),
    ("non-ascii", "cam\u00e9", None, UTF8_STRING),
    ("upper-case", "CAM-001", None, UTF8_STRING),
    ("colon", "camera:cam-001", None, UTF8_STRING),
    ("space", "cam 001", None, UTF8_STRING),
]


def check_hostile_cns_refused(stack):
    watcher = MetricsWatcher(stack)
    try:
        before = watcher.latest(now_ms())["counters"]["auth.bad_identity"]
        for name, cn, raw, tag in HOSTILE_CNS:
            cert, key = sign_client_cert(stack, cn, f"cn-{name}", raw_cn=raw, raw_tag=tag)
            refused(stack, stack.tls_client(cert, key, client_id=f"x-{name}"),
                    f"a fleet certificate with CN {raw or cn!r}")
        # two CNs: which one would be the identity? Neither.
        cert, key = sign_client_cert(stack, "cam-001", "cn-two", extra_cns=("cam-002",))
        refused(stack, stack.tls_client(cert, key, client_id="cam-001"),
                "a certificate with two CNs")
        watcher.wait_counter("auth.bad_identity",
                             lambda v: v >= before + len(HOSTILE_CNS) + 1,
                             what="every hostile CN counted as bad_identity")
    finally:
        watcher.close()


def check_hostile_registry_entries_skipped(stack):
    """Ids outside the alphabet written into Redis by hand are skipped by the
    loader (the device stays unknown), even with a matching fingerprint."""
    cert, key = sign_client_cert(stack, "cam+9", "cn-registry-plus")
    port = stack.info["redis"]["port"]
    for dev in ("cam+9", "cam/9", "CAM-9"):
        redis_command(port, "HSET", f"bodycam:device:{dev}", "status", "active",
                      "fingerprints", fingerprint(cert))
        redis_command(port, "SADD", "bodycam:devices", dev)
    redis_command(port, "INCR", "bodycam:registry:version")
    watcher = MetricsWatcher(stack)
    try:
        watcher.wait_counter("registry.load", lambda v: v >= 1)
        j = watcher.latest(now_ms())
        check(j["registry"]["devices"] == 2,
              f"hostile ids were loaded as devices: {j['registry']}")
    finally:
        watcher.close()
    refused(stack, stack.tls_client(cert, key, client_id="cam+9"), "CN cam+9 written into Redis")


HOSTILE_USERS = ["a+b", "#", "a/b", "dashboard:dashboard", "caf\u00e9", "a b", "x" * 65]


def check_hostile_usernames_refused(stack):
    password = stack.info["dashboard"]["password"]
    for user in HOSTILE_USERS:
        refused(stack, stack.dashboard_client(username=user, password=password),
                f"dashboard username {user!r}")
    with stack.dashboard_client(username="dash\x00board", password=password) as c:
        check(not stack.connect(c), "a username with a NUL was accepted")


def check_share_judged_by_real_filter(stack):
    n = unique()
    with stack.connected(stack.service_client("gateway")) as gw, \
            stack.connected(stack.device_client("cam-001")) as cam:
        sentinel = device_topic("cam-001", "cmd/sentinel")
        cam.subscribe(sentinel)
        for f in ("$share/g/" + PREFIX + "devices/+/state", "$share/g/" + PREFIX + "#",
                  "$share/g/#", "$share/cam-001/" + PREFIX + "devices/cam-002/cmd/#",
                  "$share/g/$SYS/#"):
            codes = cam.subscribe(f)
            check(all(c >= 0x80 for c in codes), f"SUBACK {codes} for {f}")
        gw.publish(device_topic("cam-002", "state"), message("state", "cam-002", n))
        gw.publish(device_topic("cam-002", "cmd/config"), {"v": 1, "marker": n})
        gw.publish(sentinel, {"v": 1, "marker": n})
        cam.wait_message(sentinel, marker_is(n))
        leaked = [m for m in cam.received() if m.topic != sentinel]
        check(not leaked, f"shared subscriptions widened the camera's reach: {leaked}")


def alive(stack):
    """The broker still serves: a service round-trips a message."""
    n = unique()
    with stack.connected(stack.service_client("gateway")) as gw:
        gw.subscribe(PREFIX + "sentinel")
        gw.publish(PREFIX + "sentinel", {"v": 1, "marker": n})
        gw.wait_message(PREFIX + "sentinel", marker_is(n))


def raw_camera(stack, device="cam-001"):
    d = stack.info["devices"][device]
    raw = RawClient(stack, d["cert"], d["key"])
    rc = raw.connect(device)
    check(rc == 0, f"raw CONNACK {rc}")
    return raw


def check_empty_and_alias_topics(stack):
    n = unique()
    own, foreign = device_topic("cam-001", "state"), device_topic("cam-002", "state")
    with stack.connected(stack.service_client("gateway")) as gw:
        gw.subscribe(PREFIX + "devices/+/state")
        # an empty topic without an alias: a protocol error, the broker lives on
        raw = raw_camera(stack)
        raw.publish("", message("state", "cam-001", n), qos=0)
        pkt = raw.read_packet(timeout=5.0)
        check(pkt is None or pkt[0] == 14, f"an empty topic without alias was answered {pkt}")
        raw.close()
        alive(stack)
        # aliases: one bound to a foreign topic stays refused when used alone
        raw = raw_camera(stack)
        raw.publish(foreign, message("state", "cam-002", n + 1), qos=1, mid=1, topic_alias=2)
        raw.publish("", message("state", "cam-002", n + 2), qos=1, mid=2, topic_alias=2)
        raw.publish(own, message("state", "cam-001", n + 3), qos=1, mid=3, topic_alias=1)
        raw.publish("", message("state", "cam-001", n + 4), qos=1, mid=4, topic_alias=1)
        gw.wait_message(own, marker_is(n + 4))
        got = gw.received(own)
        check(any(marker_is(n + 3)(m) for m in got), "the plain own publish did not arrive")
        leaked = gw.received(foreign)
        check(not leaked, f"a topic alias carried a publish to a foreign topic: {leaked}")
        check(not any(marker_is(n)(m) for m in gw.received()), "the empty topic got through")
        raw.close()
    alive(stack)


def check_dollar_and_wildcard_topics(stack):
    watcher = MetricsWatcher(stack)
    try:
        before = watcher.latest(now_ms())["counters"]["acl.write.system_topic"]
        raw = raw_camera(stack)
        for i, topic in enumerate(("$CONTROL/dynamic-security/v1", "$foo/bar",
                                   "$share/g/" + device_topic("cam-001", "state"))):
            raw.publish(topic, {"v": 1}, qos=1, mid=10 + i)
            pkt = raw.read_packet()
            check(pkt is None or pkt[0] == 4, f"{topic}: unexpected answer {pkt}")
            if pkt is None:  # the broker may close the connection: reconnect
                raw.close()
                raw = raw_camera(stack)
        raw.subscribe("$SYS/#", mid=20)
        pkt = raw.read_packet()
        check(pkt is not None and pkt[0] == 9 and pkt[2][-1] >= 0x80,
              f"SUBACK for $SYS/#: {pkt}")
        raw.close()
        for bad in ("bodycam/v1/devices/+/state", "bodycam/v1/devices/#",
                    "bodycam/v1/devices/cam-001/state\x00x"):
            raw = raw_camera(stack)
            raw.publish(bad, {"v": 1}, qos=1, mid=30)
            pkt = raw.read_packet(timeout=5.0)
            check(pkt is None or pkt[0] == 14 or (pkt[0] == 4 and pkt[2][2] >= 0x80),
                  f"publish to {bad!r} answered with {pkt}")
            raw.close()
        watcher.wait_counter("acl.write.system_topic", lambda v: v >= before + 2,
                             what="the $-topic publishes counted as refused")
    finally:
        watcher.close()
    alive(stack)


if __name__ == "__main__":
    sys.exit(run_checks([
        ("certificate CNs with + # / NUL non-UTF-8 (and more) are refused",
         check_hostile_cns_refused),
        ("hostile ids written into Redis are skipped", check_hostile_registry_entries_skipped),
        ("dashboard usernames outside the alphabet are refused", check_hostile_usernames_refused),
        ("$share/<group>/<filter> is judged by the real filter", check_share_judged_by_real_filter),
        ("zero-length topics and topic aliases get nothing through",
         check_empty_and_alias_topics),
        ("$-prefixed and wildcard publish topics get nothing through",
         check_dollar_and_wildcard_topics),
    ], **plugin_stack_args(cameras=2)))
