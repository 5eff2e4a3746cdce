#!/usr/bin/python3
"""plugin-redis: the broker never depends on Redis per message and fails
closed without it.

- Redis down while the broker runs: the plugin keeps the last registry;
  known cameras stay connected, reconnect and publish; a device that was
  not in the last registry is refused; changes apply again once Redis is
  back; the metrics say "redis": "down" meanwhile.
- Redis down when the broker starts: no registry, so every camera and
  dashboard is refused (services are configured in the broker and still
  connect); once Redis is up, cameras get in without a broker restart.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, redis_command, run_checks, wait_for  # noqa: E402
from plugin_helpers import (METRICS, connect_eventually, device_topic,  # noqa: E402
                            marker_is, message, plugin_stack_args, refused, registry, unique)


def redis_pid(stack):
    return stack.reload()["processes"]["redis"]["pid"]


def stop_redis(stack):
    """Stops the stack's Redis (a process this test's stack started)."""
    pid = redis_pid(stack)
    os.kill(pid, signal.SIGTERM)

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    wait_for(gone, 15.0, f"redis (pid {pid}) to stop")


def start_redis(stack):
    """Starts Redis again on the same port with the same data."""
    stack.restart("redis")
    wait_for(lambda: redis_command(stack.info["redis"]["port"], "PING") == "PONG", 10.0,
             "redis to answer")


def redis_state(stack, want):
    """Waits for a metrics report with "redis": want."""
    with stack.connected(stack.service_client("vault")) as svc:
        svc.subscribe(METRICS)
        svc.wait_message(METRICS, lambda m: m.json()["redis"] == want, timeout=10.0)


def check_redis_down_while_running(stack):
    n = unique()
    # cam-002 leaves the registry while Redis is still up
    registry(stack, "remove", "cam-002")
    wait_for(lambda: refused_quietly(stack, "cam-002"), 5.0, "cam-002 to be refused")
    with stack.connected(stack.service_client("gateway")) as gw, \
            stack.connected(stack.device_client("cam-001")) as cam:
        gw.subscribe(device_topic("+", "state"))
        stop_redis(stack)
        try:
            redis_state(stack, "down")
            # the connected camera keeps working ...
            cam.publish(device_topic("cam-001", "state"), message("state", "cam-001", n))
            gw.wait_message(device_topic("cam-001", "state"), marker_is(n))
            check(cam.connected, f"cam-001 was disconnected when Redis went away: {cam.error}")
            # ... a known camera reconnects, an unknown one is refused
            with stack.connected(stack.device_client("cam-003")) as other:
                other.publish(device_topic("cam-003", "state"),
                              message("state", "cam-003", n + 1))
                gw.wait_message(device_topic("cam-003", "state"), marker_is(n + 1))
            refused(stack, stack.device_client("cam-002"), "cam-002, unknown, with Redis down")
            with stack.connected(stack.dashboard_client()) as dash:
                check(dash.connected, "the dashboard user was refused with Redis down")
        finally:
            start_redis(stack)
    redis_state(stack, "up")
    registry(stack, "register", "cam-002", stack.info["devices"]["cam-002"]["cert"])
    connect_eventually(stack, lambda: stack.device_client("cam-002"),
                       what="cam-002 accepted once registered again").close()


def refused_quietly(stack, device):
    with stack.device_client(device) as c:
        return not stack.connect(c)


def check_redis_down_at_broker_start(stack):
    stop_redis(stack)
    try:
        stack.restart("mosquitto")  # ready = a service connects: no Redis needed
        refused(stack, stack.device_client("cam-001"), "cam-001 with no registry loaded")
        refused(stack, stack.dashboard_client(), "the dashboard with no registry loaded")
        with stack.connected(stack.service_client("gateway")) as gw:
            check(gw.connected, "a service was refused without Redis")
    finally:
        start_redis(stack)
    started = time.monotonic()
    cam = connect_eventually(stack, lambda: stack.device_client("cam-001"), timeout=10.0,
                             what="cam-001 accepted after Redis came up")
    cam.close()
    print(f"  cameras accepted {time.monotonic() - started:.1f} s after Redis came back")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("Redis down while running: keep the last registry, refuse the unknown",
         check_redis_down_while_running),
        ("Redis down at broker start: fail closed, recover without a restart",
         check_redis_down_at_broker_start),
    ], **plugin_stack_args(cameras=3)))
