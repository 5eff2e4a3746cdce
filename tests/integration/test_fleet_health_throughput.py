#!/usr/bin/python3
"""fleet-health-throughput: how many camera messages one fleet-health instance
handles per second, and that a large backlog is handled exactly (every event
once, every health report applied).

fleet-health is stopped, a backlog is written straight into the streams (as
the gateway writes them), then fleet-health is started and timed until its
consumer group has acknowledged everything. Figures are printed; the check
asserts exact counts and a floor far below what is expected, so that a
slow sanitizer build on a loaded machine still passes. Then the same with two
instances side by side.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, run_checks  # noqa: E402
from fleet_health_helpers import (ExtraFleetHealth, hourly_total, kill_fleet_health,  # noqa: E402
                                  msg_event, msg_health, now_ms, rc, record, restart_fleet_health,
                                  wait_consumed, xadd_entries)

CAMERAS = 20
EVENTS_PER_CAMERA = 1000
HEALTH_PER_CAMERA = 1000
FLOOR_PER_S = 100
DEVS = [f"sim-{i:03d}" for i in range(1, CAMERAS + 1)]


def timed(stack, kind, items, extra=None):
    kill_fleet_health(stack, "TERM")
    xadd_entries(stack, items)
    start = time.monotonic()
    restart_fleet_health(stack)
    if extra is not None:
        extra()
    wait_consumed(stack, (kind,), timeout=600)
    elapsed = time.monotonic() - start
    return elapsed, len(items) / elapsed


def check_events(stack):
    ts = now_ms()
    items = [("event", msg_event(d, s, "warning_given", ts=ts + s))
             for s in range(1, EVENTS_PER_CAMERA + 1) for d in DEVS]
    elapsed, rate = timed(stack, "event", items)
    print(f"  {len(items)} events of {CAMERAS} cameras in {elapsed:.2f} s: {rate:.0f} events/s "
          "(one instance, from a cold start)")
    for d in DEVS[:3] + DEVS[-1:]:
        check(int(record(stack, d).get("events", 0)) == EVENTS_PER_CAMERA, f"{d}: events")
        check(hourly_total(stack, d, "warnings") == EVENTS_PER_CAMERA, f"{d}: hourly warnings")
    check(rate >= FLOOR_PER_S, f"{rate:.0f} events/s is below {FLOOR_PER_S}")


def check_health(stack):
    ts = now_ms()
    items = [("health", msg_health(d, battery=90 - s // 100, ts=ts + s * 1000))
             for s in range(1, HEALTH_PER_CAMERA + 1) for d in DEVS]
    elapsed, rate = timed(stack, "health", items)
    print(f"  {len(items)} health reports in {elapsed:.2f} s: {rate:.0f} reports/s")
    last = ts + HEALTH_PER_CAMERA * 1000
    for d in DEVS[:3]:
        r = record(stack, d)
        check(r.get("health_ts") == str(last),
              f"{d}: the last health report is not applied: {r.get('health_ts')}")
    check(rate >= FLOOR_PER_S, f"{rate:.0f} health reports/s is below {FLOOR_PER_S}")


def check_two_instances(stack):
    base = int(record(stack, DEVS[0]).get("last_seq", 0))
    ts = now_ms()
    items = [("event", msg_event(d, base + s, "warning_given", ts=ts + s))
             for s in range(1, EVENTS_PER_CAMERA + 1) for d in DEVS]
    holder = {}

    def second():
        holder["x"] = ExtraFleetHealth(stack, "2")
    try:
        elapsed, rate = timed(stack, "event", items, second)
    finally:
        if "x" in holder:
            holder["x"].kill()
    print(f"  {len(items)} events in {elapsed:.2f} s with two instances: {rate:.0f} events/s "
          f"(2 cores shared with Redis and the test)")
    for d in DEVS[:3]:
        check(int(record(stack, d).get("events", 0)) == 2 * EVENTS_PER_CAMERA, f"{d}: events")
    check(rc(stack, "XLEN", "bodycam:stream:event") == 2 * len(items), "stream length")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("events per second, one instance", check_events),
        ("health reports per second, one instance", check_health),
        ("events per second, two instances", check_two_instances),
    ], cameras=1))
