#!/usr/bin/python3
"""plugin-identity: who a client is, with the bodycam-auth plugin.

A camera is its certificate CN and must be in the registry with that
certificate's fingerprint; it cannot impersonate another camera (not by
topic, not by payload, not by client id / session takeover); a service is a
configured CN; a dashboard is a user with a password checked against a slow
salted hash; an identity outside its alphabet (+ # / NUL, non-UTF-8) is
refused before it could ever reach a topic pattern.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, redis_command, run_checks  # noqa: E402
from plugin_helpers import (PREFIX, MetricsWatcher, connect_eventually,  # noqa: E402
                            dashboard_client, device_topic, marker_is, message, now_ms,
                            plugin_stack_args, refused, registry, sign_client_cert, unique)


def check_camera_accepted_and_fingerprint_pinned(stack):
    """cam-001's own certificate is accepted; a new certificate for the same
    CN, signed by the same fleet CA but not registered, is refused."""
    with stack.connected(stack.device_client("cam-001")) as cam:
        check(cam.connected, "cam-001 with its registered certificate was refused")
    cert, key = sign_client_cert(stack, "cam-001", "cam-001-unregistered")
    refused(stack, stack.tls_client(cert, key, client_id="cam-001"),
            "a second, unregistered certificate for cam-001")


def check_unknown_device_refused(stack):
    """A device the CA signed but the registry does not list is refused."""
    cert, key = sign_client_cert(stack, "cam-999", "cam-999")
    refused(stack, stack.tls_client(cert, key, client_id="cam-999"), "unregistered cam-999")
    registry(stack, "register", "cam-999", cert)
    connect_eventually(stack, lambda: stack.tls_client(cert, key, client_id="cam-999"),
                       what="cam-999 accepted once registered").close()


def check_impersonation_by_payload(stack):
    """cam-001 publishing on its own topic a payload that names cam-002 is
    dropped; its own payload right after flows."""
    n = unique()
    with stack.connected(stack.service_client("gateway")) as gw, \
            stack.connected(stack.device_client("cam-001")) as cam:
        gw.subscribe(PREFIX + "devices/+/state")
        forged = message("state", "cam-002", n)
        cam.publish(device_topic("cam-001", "state"), forged)
        cam.publish(device_topic("cam-001", "state"), message("state", "cam-001", n + 1))
        gw.wait_message(device_topic("cam-001", "state"), marker_is(n + 1))
        got = [m for m in gw.received() if marker_is(n)(m)]
        check(not got, f"a payload naming cam-002 on cam-001's topic was delivered: {got}")


def check_no_session_takeover(stack):
    """cam-001 connecting with client id cam-002 is refused and cam-002's
    session survives; so does a dashboard or a service using cam-002's id."""
    n = unique()
    with stack.connected(stack.service_client("gateway")) as gw, \
            stack.connected(stack.device_client("cam-002")) as victim:
        victim.subscribe(device_topic("cam-002", "cmd/#"))
        refused(stack, stack.device_client("cam-001", client_id="cam-002"),
                "cam-001 with client id cam-002")
        refused(stack, stack.service_client("vault", client_id="cam-002"),
                "a service with client id cam-002")
        refused(stack, dashboard_client(stack, "cam-002"), "a dashboard with client id cam-002")
        refused(stack, dashboard_client(stack, "gateway-1"),
                "a dashboard with a service's client id")
        check(victim.connected, f"cam-002 lost its session: {victim.error}")
        gw.publish(device_topic("cam-002", "cmd/config"), {"v": 1, "marker": n})
        victim.wait_message(device_topic("cam-002", "cmd/config"), marker_is(n))


def check_service_identity(stack):
    """A configured service name is a service; a CN the CA signed that is
    neither a service nor a registered device is refused."""
    with stack.connected(stack.service_client("vault")) as svc:
        check(svc.connected, "vault refused")
    cert, key = sign_client_cert(stack, "billing", "billing")
    refused(stack, stack.tls_client(cert, key, client_id="billing-1"), "unknown service billing")


def check_dashboard_passwords(stack):
    dash = stack.info["dashboard"]
    with stack.connected(stack.dashboard_client()) as ok:
        check(ok.connected, "the dashboard user was refused")
    refused(stack, stack.dashboard_client(password=dash["password"] + "x"), "a wrong password")
    refused(stack, stack.dashboard_client(password=""), "an empty password")
    refused(stack, stack.dashboard_client(username="nobody", password=dash["password"]),
            "an unknown user")
    refused(stack, stack.dashboard_client(username="gateway", password=dash["password"]),
            "a service name as dashboard user")
    # the password is stored only as a slow salted hash
    stored = redis_command(stack.info["redis"]["port"], "HGET",
                           f"bodycam:dashboard:{dash['username']}", "hash")
    check(stored.startswith("pbkdf2-sha256$") and dash["password"] not in stored,
          f"the stored dashboard credential is not a PBKDF2 hash: {stored!r}")
    # a new user set with the CLI works at once
    registry(stack, "dashboard-user", "alice", "-", stdin="correct horse\n")
    connect_eventually(stack, lambda: stack.dashboard_client(username="alice",
                                                             password="correct horse"),
                       what="the new dashboard user alice accepted").close()


def check_counters(stack):
    """The refusals above are counted by reason in the metrics."""
    watcher = MetricsWatcher(stack)
    try:
        j = watcher.latest(now_ms())
        c = j["counters"]
        for name in ("auth.fingerprint", "auth.unknown", "auth.client_id", "auth.password",
                     "msg.wrong_device"):
            check(c[name] > 0, f"counter {name} is {c[name]} after a refusal of that kind")
        check(j["registry"]["loaded"] and j["redis"] == "up", f"registry state: {j}")
    finally:
        watcher.close()


if __name__ == "__main__":
    sys.exit(run_checks([
        ("a camera's certificate fingerprint is pinned", check_camera_accepted_and_fingerprint_pinned),
        ("an unregistered device is refused until registered", check_unknown_device_refused),
        ("a payload naming another device is dropped", check_impersonation_by_payload),
        ("no session takeover through another identity's client id", check_no_session_takeover),
        ("services are identified by configured CN", check_service_identity),
        ("dashboard users: slow salted hash, wrong and unknown refused",
         check_dashboard_passwords),
        ("refusals are counted by reason", check_counters),
    ], **plugin_stack_args(cameras=2)))
