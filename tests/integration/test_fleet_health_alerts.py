#!/usr/bin/python3
"""fleet-health-alerts: the alerts of the design, each raised and cleared
exactly once, published as fleet/alerts messages a dashboard receives.

The test plays the cameras itself (their certificates, through the broker with
the bodycam-auth plugin, the gateway and the streams) so it can drive values
through the thresholds: a battery hovering at 14..21 % gives exactly one
raise and one clear (hysteresis); storage and temperature likewise; uploads
waiting on a docked camera past upload_overdue_s; a recording started with
fewer than two warnings (one alert per recording, a repeated event raises
nothing, cleared when the recording is deleted after the vault's receipt,
never raised when the deletion overtook its start); offline while assigned
to an officer (even docked) and cleared when unassigned; a camera that falls
silent without a will (missed health) is offline and alerted, and back.
The summary also sums key rotation campaigns and firmware rollouts written
into Redis by hand (their services' progress fields).

fleet-health runs with health_interval_s=1, offline_after_s=3,
upload_overdue_s=2 and a full pass every second (BODYCAM_FLEET_HEALTH_SET).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ["BODYCAM_FLEET_HEALTH_SET"] = (
    "health_interval_s=1 offline_after_s=3 upload_overdue_s=2 full_scan_interval_s=1 "
    "scan_interval_ms=200 summary_min_interval_ms=200")

from bodycam_test import check, run_checks  # noqa: E402
from fleet_health_helpers import (FleetWatcher, as_dict, dumps, hourly_total,  # noqa: E402
                                  msg_conn, msg_event, msg_health, msg_state, now_ms, open_alerts,
                                  outbox_alerts, rc, recording_started, topic,
                                  wait_consumed, wait_record)


def statuses(alerts):
    return [a["status"] for a in alerts]


def publish(cam, dev, kind, msg):
    cam.publish(topic(dev, kind), dumps(msg), qos=1)


def check_battery_hysteresis(stack):
    dev = "cam-001"
    levels = [50, 16, 15, 14, 15, 16, 14, 19, 20, 14, 20, 21, 19, 16, 15, 16, 15, 20]
    with FleetWatcher(stack) as w, stack.connected(stack.device_client(dev)) as cam:
        base = now_ms()
        for i, b in enumerate(levels):
            publish(cam, dev, "health", msg_health(dev, battery=b, ts=base + i))
        wait_record(stack, dev, "the last health", health_ts=base + len(levels) - 1,
                    battery_pct=levels[-1])
        wait_consumed(stack, ("health",))
        queued = outbox_alerts(stack, dev, "low_battery")
        check(statuses(queued) == ["raised", "cleared"], f"queued: {queued}")
        check(queued[0]["value"] == 14 and queued[1]["value"] == 21,
              f"values {[a.get('value') for a in queued]}, wanted 14 then 21")
        check(queued[0]["id"] == queued[1]["id"], "raise and clear carry different ids")
        w.wait_alert(dev, "low_battery", "cleared")
        seen = w.alerts(dev, "low_battery")
        check(statuses(seen) == ["raised", "cleared"], f"a dashboard saw {seen}")
        check(f"{dev}:low_battery" not in open_alerts(stack), "still open")
        hist = as_dict(rc(stack, "HGETALL", f"bodycam:alert:{queued[0]['id']}"))
        check(hist.get("status") == "cleared" and "raised_at" in hist and "cleared_at" in hist,
              f"history {hist}")
        check(rc(stack, "TTL", f"bodycam:alert:{queued[0]['id']}") > 0,
              "a cleared alert's history does not expire")


def check_storage_and_heat(stack):
    dev = "cam-002"
    with stack.connected(stack.device_client(dev)) as cam:
        base = now_ms()
        for i, (free, temp) in enumerate([(5, 70), (12, 58), (11, 61), (20, 50), (14, 56)]):
            publish(cam, dev, "health", msg_health(dev, free=free, total=100, temp=temp,
                                                   ts=base + i))
        wait_record(stack, dev, "the last health", health_ts=base + 4)
        wait_consumed(stack, ("health",))
    sto = outbox_alerts(stack, dev, "storage_low")
    hot = outbox_alerts(stack, dev, "overheating")
    check(statuses(sto) == ["raised", "cleared"], f"storage_low: {sto}")
    check(sto[0]["value"] == 5 and sto[1]["value"] == 20, f"storage values {sto}")
    check(statuses(hot) == ["raised", "cleared"], f"overheating: {hot}")
    check(hot[0]["value"] == 70 and hot[1]["value"] == 50, f"temperature values {hot}")


def check_upload_overdue(stack):
    dev = "cam-003"
    with FleetWatcher(stack) as w, stack.connected(stack.device_client(dev)) as cam:
        publish(cam, dev, "conn", msg_conn(dev, 1))
        publish(cam, dev, "state", msg_state(dev, 1, "docked"))
        publish(cam, dev, "health", msg_health(dev, charging=True, pending=2))
        rec = wait_record(stack, dev, "docked with 2 uploads waiting", state="docked",
                          pending_uploads=2, pred=lambda r: "pending_since" in r)
        raised = w.wait_alert(dev, "upload_overdue", "raised", timeout=15)
        waited = raised["ts"] - int(rec["pending_since"])
        check(waited >= 2000, f"raised after {waited} ms, before upload_overdue_s (2 s)")
        check(raised["value"] == 2, f"value {raised}")
        publish(cam, dev, "health", msg_health(dev, charging=True, pending=0))
        cleared = w.wait_alert(dev, "upload_overdue", "cleared")
        check(cleared["id"] == raised["id"], "the clear names another alert")
        rec = wait_record(stack, dev, "nothing waiting", pending_uploads=0)
        check("pending_since" not in rec, f"pending_since left: {rec}")
    check(statuses(outbox_alerts(stack, dev, "upload_overdue")) == ["raised", "cleared"],
          "upload_overdue raised or cleared more than once")


def check_recording_without_warnings(stack):
    dev = "cam-004"
    with stack.connected(stack.device_client(dev)) as cam:
        events = [
            recording_started(dev, 1, "rec-a", 1),
            recording_started(dev, 1, "rec-a", 1),          # repeated delivery
            recording_started(dev, 2, "rec-b", 0, emergency=True),
            recording_started(dev, 3, "rec-c", 2),          # two warnings: fine
            msg_event(dev, 5, "recording_deleted", recording_id="rec-a"),
            msg_event(dev, 6, "recording_deleted", recording_id="rec-d"),
            recording_started(dev, 4, "rec-d", 1),          # late, after its deletion
        ]
        for e in events:
            publish(cam, dev, "event", e)
        wait_record(stack, dev, "every event", last_seq=6, missing_seqs=0)
        wait_consumed(stack, ("event",))
    alerts = outbox_alerts(stack, dev, "recording_without_warnings")
    got = [(a["status"], a["detail"].split()[1]) for a in alerts]
    check(got == [("raised", "rec-a"), ("raised", "rec-b"), ("cleared", "rec-a")],
          f"recording alerts: {got}")
    check(alerts[0]["id"] == alerts[2]["id"], "rec-a's clear names another alert")
    check(alerts[0]["value"] == 1 and "without the emergency press" in alerts[0]["detail"],
          f"rec-a: {alerts[0]}")
    check(alerts[1]["value"] == 0 and "with the emergency press" in alerts[1]["detail"],
          f"rec-b: {alerts[1]}")
    open_rw = [k for k in open_alerts(stack) if k.startswith(f"{dev}:recording_without")]
    check(open_rw == [f"{dev}:recording_without_warnings:rec-b"], f"open: {open_rw}")
    check(hourly_total(stack, dev, "recordings") == 4, "recordings not counted once each")
    check(hourly_total(stack, dev, "without_warnings") == 2, "without_warnings count")
    check(hourly_total(stack, dev, "emergency_starts") == 1, "emergency_starts count")


def check_offline_while_assigned(stack):
    dev = "cam-005"
    rc(stack, "HSET", f"bodycam:assignment:{dev}", "officer", "o-17")
    with FleetWatcher(stack) as w:
        with stack.connected(stack.device_client(dev)) as cam:
            publish(cam, dev, "conn", msg_conn(dev, 1))
            publish(cam, dev, "state", msg_state(dev, 1, "docked"))
            wait_record(stack, dev, "docked and assigned", state="docked", online=1,
                        assignment="assigned", officer="o-17")
            publish(cam, dev, "conn", msg_conn(dev, 1, online=False))  # as its will would
        wait_record(stack, dev, "offline", online=0, offline_reason="conn_offline")
        raised = w.wait_alert(dev, "offline_in_shift", "raised")
        check("o-17" in raised["detail"], f"detail does not name the officer: {raised}")
        # the shift ends (unassigned): the next pass over every camera clears it
        rc(stack, "HSET", f"bodycam:assignment:{dev}", "officer", "")
        cleared = w.wait_alert(dev, "offline_in_shift", "cleared", timeout=10)
        check(cleared["id"] == raised["id"], "the clear names another alert")
        wait_record(stack, dev, "unassigned", assignment="unassigned", officer="")
    # cam-003 went silent while docked and not assigned: never in shift
    wait_record(stack, "cam-003", "silent", online=0, timeout=10)
    check(outbox_alerts(stack, "cam-003", "offline_in_shift") == [],
          "a docked, unassigned camera was alerted offline_in_shift")


def check_missed_health(stack):
    dev = "cam-001"
    with FleetWatcher(stack) as w, stack.connected(stack.device_client(dev)) as cam:
        publish(cam, dev, "conn", msg_conn(dev, 7))
        publish(cam, dev, "state", msg_state(dev, 1, "standby"))
        publish(cam, dev, "health", msg_health(dev, 80))
        rec = wait_record(stack, dev, "online in standby", online=1, state="standby")
        before = int(rec.get("disconnects", 0))
        # connected, but silent: no will, only the missing health tells
        rec = wait_record(stack, dev, "offline by missed health", online=0,
                          offline_reason="missed_health", timeout=10)
        check(int(rec["disconnects"]) == before + 1, f"disconnects {rec['disconnects']}")
        check(int(rec["offline_at"]) == int(rec["last_seen"]),
              "offline_at is not the last sign of life")
        raised = w.wait_alert(dev, "offline_in_shift", "raised")
        check("missed_health" in raised["detail"], f"detail {raised}")
        publish(cam, dev, "health", msg_health(dev, 79))
        wait_record(stack, dev, "online again", online=1)
        cleared = w.wait_alert(dev, "offline_in_shift", "cleared")
        check(cleared["id"] == raised["id"], "the clear names another alert")
    status = as_dict(rc(stack, "HGETALL", "bodycam:fleet-health:1"))
    check(int(status.get("offline_missed_health", 0)) >= 1, f"status {status}")


def check_summary_counts_alerts(stack):
    with FleetWatcher(stack) as w:
        n = len(open_alerts(stack))
        check(n >= 1, "no open alert left to count")
        w.wait_summary(lambda s: s["alerts_open"] == n, f"alerts_open {n}")


def check_summary_progress(stack):
    """Rotation campaigns and firmware rollouts, written by hand (paused, so no
    service acts on them): the summary sums the active ones, follows a counter
    that moves (the counts are looked at every 2 s), and drops them when they
    leave the active sets."""
    rc(stack, "HSET", "bodycam:campaign:K900", "state", "paused", "total", 5, "done", 2,
       "failed", 1)
    rc(stack, "SADD", "bodycam:campaigns:active", "K900")
    rc(stack, "HSET", "bodycam:rollout:R900", "state", "paused", "total", 10, "updated", 3,
       "failed", 1, "rolled_back", 2, "current_wave", 1, "wave_count", 4)
    rc(stack, "HSET", "bodycam:rollout:R901", "state", "halted", "total", 2, "updated", 1,
       "failed", 0, "current_wave", 0, "wave_count", 1)
    rc(stack, "SADD", "bodycam:rollouts:active", "R900")
    with FleetWatcher(stack) as w:
        s = w.wait_summary(lambda s: s.get("rollouts_active") == 1
                           and s.get("rotations_active") == 1, "one rollout, one campaign")
        got = {k: s.get(k) for k in ("rotation_cameras", "rotation_done", "rotation_failed",
                                     "rollout_cameras", "rollout_updated", "rollout_failed",
                                     "rollout_wave", "rollout_waves")}
        check(got == {"rotation_cameras": 5, "rotation_done": 2, "rotation_failed": 1,
                      "rollout_cameras": 10, "rollout_updated": 3, "rollout_failed": 3,
                      "rollout_wave": 2, "rollout_waves": 4}, f"summary {s}")
        rc(stack, "HINCRBY", "bodycam:rollout:R900", "updated", 1)
        rc(stack, "HSET", "bodycam:rollout:R900", "current_wave", 2)
        w.wait_summary(lambda s: s.get("rollout_updated") == 4 and s.get("rollout_wave") == 3,
                       "the rollout's progress moved on", timeout=10)
        # a second active rollout (the contract allows one, the summary still
        # sums): the wave is the newest one's
        rc(stack, "SADD", "bodycam:rollouts:active", "R901")
        s = w.wait_summary(lambda s: s.get("rollouts_active") == 2, "two rollouts", timeout=10)
        check(s["rollout_cameras"] == 12 and s["rollout_updated"] == 5
              and s["rollout_failed"] == 3 and s["rollout_wave"] == 1
              and s["rollout_waves"] == 1, f"two rollouts: {s}")
        rc(stack, "SREM", "bodycam:rollouts:active", "R900", "R901")
        rc(stack, "SREM", "bodycam:campaigns:active", "K900")
        s = w.wait_summary(lambda s: s.get("rollouts_active") == 0
                           and s.get("rotations_active") == 0, "nothing active", timeout=10)
        check(s["rollout_cameras"] == 0 and s["rollout_wave"] == 0 and s["rollout_waves"] == 0
              and s["rotation_cameras"] == 0, f"nothing active: {s}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("battery hovering at the thresholds: one raise, one clear", check_battery_hysteresis),
        ("storage and temperature with hysteresis", check_storage_and_heat),
        ("uploads waiting while docked: upload_overdue", check_upload_overdue),
        ("recording without two warnings: one alert per recording",
         check_recording_without_warnings),
        ("offline while assigned to an officer", check_offline_while_assigned),
        ("silent camera: offline by missed health, and back", check_missed_health),
        ("the summary counts the open alerts", check_summary_counts_alerts),
        ("the summary sums the active key rotations and firmware rollouts",
         check_summary_progress),
        # the hand-written rollouts are not for a real bodycam-firmware-rollout
    ], cameras=5, extra_args=["--no-firmware"]))
