#!/usr/bin/python3
"""fleet-health-restart: no event lost and none counted twice in a camera's
event log, record and hourly aggregates when

- fleet-health is killed with SIGKILL while it holds delivered but
  unacknowledged entries (its consumer group's pending list) and restarted:
  the restarted instance reads its own pending entries first;
- Redis is restarted (SIGTERM, AOF) while fleet-health is working: it
  reconnects with backoff and loads its scripts again (NOSCRIPT -> EVAL);
- two instances share the streams, and one of them is killed while holding
  entries: the other claims them after claim_idle_ms.

The load is written straight into the event stream, as the gateway writes it
(thousands of entries, with exact repeats mixed in: at-least-once delivery
upstream). fleet-health runs with claim_idle_ms=2000.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ["BODYCAM_FLEET_HEALTH_SET"] = "claim_idle_ms=2000 claim_interval_ms=500"

from bodycam_test import check, run_checks, wait_for  # noqa: E402
from fleet_health_helpers import (ExtraFleetHealth, as_dict, check_counts_once,  # noqa: E402
                                  fh_status, hourly_total, kill_fleet_health, msg_event, now_ms,
                                  pending, rc, restart_fleet_health, wait_consumed, xadd_entries)

DEVICES = ["cam-001", "cam-002", "cam-003"]
PER_ROUND = 1500  # events per camera and round
expected = {d: [] for d in DEVICES}


def load(first):
    """PER_ROUND new events per camera from seq first, every 5th repeated
    right away and every 7th again later: the entries in stream order."""
    items = []
    ts = now_ms()
    earlier = []
    for s in range(first, first + PER_ROUND):
        for d in DEVICES:
            m = msg_event(d, s, "warning_given", ts=ts + s)
            items.append(("event", m))
            expected[d].append(s)
            if s % 5 == 0:
                items.append(("event", m))
            if s % 7 == 0:
                earlier.append(("event", m))
            if len(earlier) > 30:
                items.append(earlier.pop(0))
    return items + earlier


def check_all_counted(stack, what):
    wait_consumed(stack, ("event",), timeout=120)
    for d in DEVICES:
        check_counts_once(stack, d, expected[d], what)
        check(hourly_total(stack, d, "warnings") == len(expected[d]),
              f"{what}: hourly warnings of {d} differ from {len(expected[d])}")
        rec = as_dict(rc(stack, "HGETALL", f"bodycam:camera:{d}"))
        check(rec.get("missing_seqs", "0") == "0", f"{what}: {d} has a gap: {rec}")


def group(stack):
    for g in rc(stack, "XINFO", "GROUPS", "bodycam:stream:event") or []:
        d = as_dict(g)
        if d.get("name") == "fleet-health":
            return d
    return {}


def busy(stack, progress=300):
    """Waits until fleet-health has read `progress` entries of the newest
    load and holds some delivered, unacknowledged ones; False when it
    handled everything first."""
    start = int(group(stack).get("entries-read") or 0)

    def seen():
        g = group(stack)
        if int(g.get("pending", 0)) > 0 and int(g.get("entries-read") or 0) >= start + progress:
            return "pending"
        return "done" if g.get("lag") == 0 else None
    return wait_for(seen, 30, "fleet-health to take entries", interval=0.002) == "pending"


def check_sigkill(stack):
    caught = 0
    first = 1
    for attempt in range(6):
        xadd_entries(stack, load(first))
        first += PER_ROUND
        if not busy(stack):
            continue
        kill_fleet_health(stack, "KILL")
        held = pending(stack, "event")
        if held == 0:
            restart_fleet_health(stack)
            continue
        caught = held
        print(f"  killed with {held} entries pending, {group(stack).get('entries-read')} "
              "entries of the event stream read")
        restart_fleet_health(stack)
        break
    check(caught > 0, "never caught fleet-health holding pending entries")
    check_all_counted(stack, "after SIGKILL")


def check_redis_restart(stack):
    first = max(expected[DEVICES[0]]) + 1
    xadd_entries(stack, load(first))
    check(busy(stack), "fleet-health finished before Redis could be restarted")
    stack.restart("redis")
    check_all_counted(stack, "after a Redis restart")
    wait_for(lambda: fh_status(stack).get("state") == "running", 10, "fleet-health's status")


def consumer_pending(stack, name):
    for c in rc(stack, "XINFO", "CONSUMERS", "bodycam:stream:event", "fleet-health") or []:
        d = as_dict(c)
        if d.get("name") == name:
            return int(d.get("pending", 0))
    return 0


def check_two_instances(stack):
    claimed_before = int(fh_status(stack).get("claimed", 0))
    with ExtraFleetHealth(stack, "2") as extra:
        # Instance 2 may finish a batch between "seen holding entries" and the
        # kill; freeze it first (SIGSTOP) and only kill it once it is frozen
        # while holding entries, with a new batch per attempt.
        held = 0
        for _ in range(10):
            first = max(expected[DEVICES[0]]) + 1
            xadd_entries(stack, load(first))
            wait_for(lambda: consumer_pending(stack, "fleet-health-2"), 30,
                     "instance 2 to hold entries", interval=0.002)
            extra.proc.send_signal(signal.SIGSTOP)
            held = consumer_pending(stack, "fleet-health-2")
            if held > 0:
                break
            extra.proc.send_signal(signal.SIGCONT)
        extra.kill()
        check(held > 0, "never caught instance 2 holding entries when frozen")
        check(consumer_pending(stack, "fleet-health-2") > 0, "instance 2 holds nothing any more")
        print(f"  instance 2 killed holding {held}+ entries")
        check_all_counted(stack, "after instance 2 died")
        check(consumer_pending(stack, "fleet-health-2") == 0, "instance 2's entries unclaimed")
    wait_for(lambda: int(fh_status(stack).get("claimed", 0)) > claimed_before, 5,
             "instance 1 to report claimed entries")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("SIGKILL with pending entries, restart: each event counted once", check_sigkill),
        ("Redis restarted (AOF) mid-work: each event counted once", check_redis_restart),
        ("two instances, one killed: its entries claimed, each counted once",
         check_two_instances),
    ], cameras=3))
