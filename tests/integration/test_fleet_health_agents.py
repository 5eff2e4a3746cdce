#!/usr/bin/python3
"""fleet-health-agents: the first end-to-end path with real cameras. A button
pressed on a real bodycam-agent reaches the camera's Redis record and the
retained fleet summary a dashboard gets; a camera killed with SIGKILL (no
goodbye) is marked offline through its last will and alerted
(offline_in_shift, it was not docked), and cleared when it is back; the
camera's events land in its event log and hourly aggregates once each, with
no gap; an emergency recording raises recording_without_warnings.

Real stack: broker with the bodycam-auth plugin, Redis, gateway, fleet-health
and two agents (health every 2 s, warnings expire after 3 s).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import (agent_kill, agent_restart, agent_stack_args, press_ok,  # noqa: E402
                           status)
from bodycam_test import check, run_checks, wait_for  # noqa: E402
from fleet_health_helpers import (FleetWatcher, hourly_keys, hourly_total, open_alerts, rc,  # noqa: E402
                                  record, retained_summary, wait_consumed, wait_record)


def states(s):
    return s.get("states", {})


def check_state_change(stack):
    dev = "cam-001"
    wait_record(stack, "cam-001", "online in standby", online=1, state="standby")
    wait_record(stack, "cam-002", "online in standby", online=1, state="standby")
    with FleetWatcher(stack) as w:
        w.wait_summary(lambda s: s["cameras"] == 2 and s["online"] == 2
                       and states(s).get("standby") == 2, "2 cameras online in standby")
        base = int(status(stack, dev)["seq"])
        press_ok(stack, dev, "warn")
        rec = wait_record(stack, dev, "in warning 1", state="warning", warnings=1)
        check(int(rec["state_seq"]) == base + 1, f"state seq {rec['state_seq']}, wanted {base + 1}")
        s = w.wait_summary(lambda s: states(s).get("warning") == 1
                           and states(s).get("standby") == 1, "one camera in warning")
        check(s["online"] == 2 and s["cameras"] == 2, f"summary {s}")
        # what a dashboard that connects only now is given
        retained_summary(stack, lambda s: states(s).get("warning") == 1)
        # the warning expires (3 s): de-escalated, back to standby
        wait_record(stack, dev, "back in standby", state="standby", timeout=15)
        w.wait_summary(lambda s: states(s).get("standby") == 2, "both in standby again")
    wait_consumed(stack, ("event",))
    check(hourly_total(stack, dev, "warnings") == 1, "the warning is not counted once")
    check(hourly_total(stack, dev, "deescalations") == 1, "the de-escalation is not counted once")


def check_sigkill_offline(stack):
    dev = "cam-002"
    with FleetWatcher(stack) as w:
        before = record(stack, dev)
        check(before.get("online") == "1", f"{dev} not online before: {before}")
        session = int(before["session"])
        agent_kill(stack, dev, "KILL")
        rec = wait_record(stack, dev, "offline by its will", online=0,
                          offline_reason="conn_offline", timeout=15)
        check(int(rec["session"]) == session, f"session moved: {rec['session']} vs {session}")
        check(rec.get("disconnects") == "1", f"disconnects {rec.get('disconnects')}")
        raised = w.wait_alert(dev, "offline_in_shift", "raised")
        check("not docked" in raised.get("detail", ""), f"detail: {raised}")
        check(f"{dev}:offline_in_shift" in open_alerts(stack), "not in bodycam:alerts:open")
        w.wait_summary(lambda s: s["online"] == 1 and s["alerts_open"] >= 1,
                       "one camera online and the alert open")

        agent_restart(stack, dev)
        rec = wait_record(stack, dev, "online again", online=1, timeout=20)
        check(int(rec["session"]) > session, f"no new session: {rec['session']}")
        cleared = w.wait_alert(dev, "offline_in_shift", "cleared")
        check(cleared["id"] == raised["id"], f"cleared {cleared['id']}, raised {raised['id']}")
        check(len(w.alerts(dev, "offline_in_shift", "raised")) == 1, "raised more than once")
        check(f"{dev}:offline_in_shift" not in open_alerts(stack), "still open")
        w.wait_summary(lambda s: s["online"] == 2, "both online again")
        n = hourly_total(stack, dev, "disconnects")
        check(n == 1, f"the disconnect is not counted once: {n} in {[(k, rc(stack, 'HGETALL', k)) for k in hourly_keys(stack, dev)]}, record {record(stack, dev)}")


def check_events_and_emergency(stack):
    dev = "cam-001"
    with FleetWatcher(stack) as w:
        for line in ("warn", "warn", "record"):
            press_ok(stack, dev, line)
        wait_record(stack, dev, "recording", state="recording")
        press_ok(stack, dev, "stop")
        wait_record(stack, dev, "standby after the recording", state="standby")
        press_ok(stack, dev, "emergency")
        rec = wait_record(stack, dev, "emergency recording", state="recording")
        raised = w.wait_alert(dev, "recording_without_warnings", "raised")
        check(raised.get("value") == 0 and "with the emergency press" in raised.get("detail", ""),
              f"alert {raised}")
        check(rec["recording_id"] in raised["detail"], f"{raised} names {rec['recording_id']}?")
        press_ok(stack, dev, "stop")
        wait_record(stack, dev, "standby", state="standby")
    last = int(status(stack, dev)["seq"])
    wait_for(lambda: int(record(stack, dev).get("last_seq", 0)) == last, 15,
             f"{dev}: last_seq {last} in the record")
    wait_consumed(stack, ("event",))
    rec = record(stack, dev)
    logged = rc(stack, "ZCARD", f"bodycam:events:{dev}")
    check(logged == last, f"event log holds {logged} events, the camera made {last}")
    check(int(rec.get("events", 0)) == last, f"record counts {rec.get('events')} events")
    check(int(rec.get("missing_seqs", 0)) == 0, f"gap recorded: {rec.get('missing_seqs')}")
    check(hourly_total(stack, dev, "events") == last, "hourly events differ from the camera's")
    check(hourly_total(stack, dev, "recordings") == 2, "two recordings are not counted")
    check(hourly_total(stack, dev, "emergency_starts") == 1, "the emergency start is not counted")
    check(hourly_total(stack, dev, "recordings_stopped") == 2, "two stops are not counted")
    # the first recording had two warnings: no alert for it
    alerts = [a for a in open_alerts(stack).values()
              if a["kind"] == "recording_without_warnings" and a["device"] == dev]
    check(len(alerts) == 1, f"open recording alerts of {dev}: {alerts}")


def check_health_reaches_record(stack):
    """The agents' periodic health fills the record (battery, storage, fw)."""
    for dev in ("cam-001", "cam-002"):
        rec = wait_record(stack, dev, "a health report",
                          pred=lambda r: "battery_pct" in r and "storage_total" in r)
        check(0 <= int(rec["battery_pct"]) <= 100, f"battery {rec['battery_pct']}")
        check(rec.get("fw"), f"no firmware version: {rec}")
        check(rec.get("recording_key_id") == stack.info["keys"]["recording"]["key_id"],
              f"recording key id {rec.get('recording_key_id')}")
    check(hourly_total(stack, "cam-001", "health") >= 1, "no health counted per hour")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("a button press reaches the record and the retained summary", check_state_change),
        ("health reports fill the record", check_health_reaches_record),
        ("a camera killed with SIGKILL is offline by its will and alerted", check_sigkill_offline),
        ("events counted once, emergency recording alerted", check_events_and_emergency),
    ], **agent_stack_args(2, health_interval_s=2, warning_timeout_s=3)))
