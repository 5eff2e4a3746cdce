#!/usr/bin/python3
"""fleet-health-order: at-least-once delivery and independent streams must not
corrupt the record or the aggregates.

- A late will of an older session does not mark a live camera offline (sent
  by hand after the newer birth, and for real: a camera reconnecting under
  the same client id while its old connection is taken over); a late birth
  of an old session does not bring back its session; a new session whose
  health report comes before its birth does not count the old session's end
  twice.
- Duplicate and out-of-order events are counted once; a seq gap is recorded
  and filled by the late events.
- An older state (lower seq) and an older health report (lower ts) do not
  overwrite newer ones.
- Hourly aggregates are keyed by the message's own hour (UTC): warnings,
  de-escalations, refusals, tamper attempts, survey scores, short recordings,
  battery drain while not charging; availability (online_ms) and disconnects
  from the record's online periods.

The test plays the cameras (their certificates, through the broker with the
plugin and the gateway).
"""

import json
import os
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, run_checks, wait_for  # noqa: E402
from fleet_health_helpers import (as_dict, dumps, fh_status, hourly, hourly_total,  # noqa: E402
                                  msg_conn, msg_event, msg_health, msg_state, now_ms, rc,
                                  record, recording_stopped, topic, wait_consumed, wait_record)


def publish(cam, dev, kind, msg):
    cam.publish(topic(dev, kind), dumps(msg), qos=1)


def check_late_will_by_hand(stack):
    dev = "cam-001"
    with stack.connected(stack.device_client(dev)) as cam:
        publish(cam, dev, "conn", msg_conn(dev, 5))
        wait_record(stack, dev, "online in session 5", online=1, session=5)
        stale_before = int(fh_status(stack).get("stale", 0))
        publish(cam, dev, "conn", msg_conn(dev, 4, online=False))  # late will of session 4
        publish(cam, dev, "conn", msg_conn(dev, 3))                # late birth of session 3
        wait_consumed(stack, ("conn",))
        rec = record(stack, dev)
        check(rec["online"] == "1" and rec["session"] == "5", f"late messages won: {rec}")
        # (the status hash is refreshed about once a second)
        wait_for(lambda: int(fh_status(stack).get("stale", 0)) >= stale_before + 2, 5,
                 "the late messages to be counted as stale")
        publish(cam, dev, "conn", msg_conn(dev, 5, online=False))  # the live session's will
        wait_record(stack, dev, "offline by session 5's will", online=0, session=5)
        publish(cam, dev, "conn", msg_conn(dev, 6))
        rec = wait_record(stack, dev, "online in session 6", online=1, session=6)
        check(rec.get("disconnects") == "1", f"disconnects {rec.get('disconnects')}")
        # session 6 ends by its will; session 7's first health report (its own
        # stream) is consumed before its birth: the end of session 6 is
        # counted once, not again when the birth finds the record online
        publish(cam, dev, "conn", msg_conn(dev, 6, online=False))
        wait_record(stack, dev, "offline by session 6's will", online=0, session=6)
        publish(cam, dev, "health", msg_health(dev))
        wait_record(stack, dev, "online again by the health report", online=1, session=6)
        publish(cam, dev, "conn", msg_conn(dev, 7))
        rec = wait_record(stack, dev, "online in session 7", online=1, session=7)
        check(rec.get("disconnects") == "2", f"disconnects {rec.get('disconnects')}, wanted 2")


class WillClient:
    """A camera connection with a last will ({offline, session}), as the agent
    makes it; MQTT v5, clean start."""

    def __init__(self, stack, dev, session):
        self.client = stack.device_client(dev)
        self.client.mqtt.will_set(topic(dev, "conn"), dumps(msg_conn(dev, session, online=False)),
                                  qos=1, retain=True)
        stack.connected(self.client)
        publish(self.client, dev, "conn", msg_conn(dev, session))


def check_late_will_takeover(stack):
    """Session 10 is taken over by session 11 under the same client id: the
    broker publishes 10's will when 11 connects, close to 11's birth; in
    whichever order fleet-health sees them, the camera ends online in 11."""
    dev = "cam-002"
    old = WillClient(stack, dev, 10)
    wait_record(stack, dev, "online in session 10", online=1, session=10)
    new = WillClient(stack, dev, 11)
    try:
        wait_for(lambda: old.client.closed, 10, "the old connection to be taken over")

        def conn_entries():
            out = []
            for _, kv in rc(stack, "XRANGE", "bodycam:stream:conn", "-", "+") or []:
                f = as_dict(kv)
                if f.get("device") == dev:
                    m = json.loads(f["payload"])
                    out.append((m["status"], m["session"]))
            return out
        wait_for(lambda: ("offline", 10) in conn_entries(), 10, "session 10's will in the stream")
        order = conn_entries()
        print(f"  conn messages of {dev} in stream order: {order}")
        wait_consumed(stack, ("conn",))
        rec = wait_record(stack, dev, "online in session 11", online=1, session=11)
        check(int(rec.get("disconnects", 0)) == 1, f"disconnects {rec.get('disconnects')}")
        # and the will of 11, when 11 goes away without a goodbye
        new.client.mqtt.socket().close()
        wait_record(stack, dev, "offline by session 11's will", online=0, session=11, timeout=20)
    finally:
        new.client.close()
        old.client.close()


def check_duplicates_and_order(stack):
    dev = "cam-003"
    seqs = [1, 2, 3, 3, 2, 6, 5, 4, 7, 1]
    dup_before = int(fh_status(stack).get("duplicates", 0))
    with stack.connected(stack.device_client(dev)) as cam:
        ts = now_ms()
        for s in seqs:
            publish(cam, dev, "event", msg_event(dev, s, "warning_given", ts=ts + s))
        rec = wait_record(stack, dev, "seq 7", last_seq=7)
        wait_consumed(stack, ("event",))
        rec = record(stack, dev)
        check(rc(stack, "ZCARD", f"bodycam:events:{dev}") == 7, "event log size is not 7")
        check(rec["events"] == "7", f"record counts {rec['events']} events")
        check(hourly_total(stack, dev, "warnings") == 7,
              f"hourly warnings {hourly_total(stack, dev, 'warnings')}, wanted 7")
        check(rec.get("missing_seqs") == "0", f"missing {rec.get('missing_seqs')}")
        check(rec.get("gaps_filled") == "2", f"gaps filled {rec.get('gaps_filled')}")
        check(rc(stack, "ZCARD", f"bodycam:gaps:{dev}") == 0, "a filled gap is still recorded")
        wait_for(lambda: int(fh_status(stack)["duplicates"]) >= dup_before + 3, 5,
                 "the three duplicates to be counted")
        # a real gap stays recorded
        publish(cam, dev, "event", msg_event(dev, 10, "warning_given", ts=ts + 10))
        rec = wait_record(stack, dev, "seq 10", last_seq=10)
        check(rec.get("missing_seqs") == "2", f"missing {rec.get('missing_seqs')}")
        check(rc(stack, "ZRANGE", f"bodycam:gaps:{dev}", "0", "-1") == ["8-9"],
              f"gaps {rc(stack, 'ZRANGE', f'bodycam:gaps:{dev}', '0', '-1')}")


def check_state_and_health_order(stack):
    dev = "cam-004"
    with stack.connected(stack.device_client(dev)) as cam:
        t = now_ms()
        publish(cam, dev, "state", msg_state(dev, 5, "warning", warnings=2, ts=t))
        publish(cam, dev, "state", msg_state(dev, 3, "standby", ts=t + 1))      # older seq
        publish(cam, dev, "state", msg_state(dev, 5, "warning", warnings=2, ts=t))  # again
        publish(cam, dev, "health", msg_health(dev, battery=60, ts=t + 100))
        publish(cam, dev, "health", msg_health(dev, battery=90, ts=t + 50))       # older ts
        wait_consumed(stack, ("state", "health"))
        rec = record(stack, dev)
        check(rec["state"] == "warning" and rec["warnings"] == "2" and rec["state_seq"] == "5",
              f"an older state won: {rec}")
        check(rec["battery_pct"] == "60" and rec["health_ts"] == str(t + 100),
              f"an older health report won: {rec}")
        check(rc(stack, "SISMEMBER", "bodycam:cameras:state:warning", dev) == 1
              and rc(stack, "SISMEMBER", "bodycam:cameras:state:standby", dev) == 0,
              "the per-state sets disagree with the record")
        publish(cam, dev, "state", msg_state(dev, 6, "standby", ts=t + 2))
        wait_record(stack, dev, "standby at seq 6", state="standby", state_seq=6)
        check(rc(stack, "SISMEMBER", "bodycam:cameras:state:warning", dev) == 0,
              "still counted in warning")


def ms(text):
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)


def check_hourly_keys(stack):
    dev = "cam-005"
    h1, h2 = ms("2025-03-04T05:10:00"), ms("2025-03-04T06:00:00")
    events = [
        msg_event(dev, 1, "warning_given", ts=h1),
        msg_event(dev, 2, "warning_given", ts=h1 + 1000, warnings=2),
        msg_event(dev, 3, "warning_expired", ts=h1 + 2000),
        msg_event(dev, 4, "record_refused", ts=h1 + 3000),
        msg_event(dev, 5, "tamper_denied", ts=h1 + 4000, action="view"),
        msg_event(dev, 6, "survey", ts=h1 + 5000, score=4),
        msg_event(dev, 7, "survey", ts=h2 - 1, score=2),
        recording_stopped(dev, 8, "r8", 3000, ts=h2),          # short (< 10 s)
        recording_stopped(dev, 9, "r9", 60000, ts=h2 + 1000),
        msg_event(dev, 10, "docked", ts=h2 + 2000),
    ]
    health = [msg_health(dev, battery=80, ts=h2 + 10000),
              msg_health(dev, battery=79, ts=h2 + 15000),
              msg_health(dev, battery=77, ts=h2 + 20000),
              msg_health(dev, battery=78, ts=h2 + 25000, charging=True),
              msg_health(dev, battery=79, ts=h2 + 30000, charging=True)]
    with stack.connected(stack.device_client(dev)) as cam:
        for e in events:
            publish(cam, dev, "event", e)
        for hm in health:
            publish(cam, dev, "health", hm)
        wait_record(stack, dev, "all of it", last_seq=10, health_ts=h2 + 30000)
        wait_consumed(stack, ("event", "health"))
    a, b = hourly(stack, dev, h1), hourly(stack, dev, h2)
    check(rc(stack, "EXISTS", f"bodycam:hourly:{dev}:2025030405") == 1,
          "no key bodycam:hourly:cam-005:2025030405")
    want_a = {"events": "7", "warnings": "2", "deescalations": "1", "refused": "1",
              "tamper_denied": "1", "survey_count": "2", "survey_sum": "6"}
    check(all(a.get(k) == v for k, v in want_a.items()), f"05:00 hour: {a}, wanted {want_a}")
    want_b = {"events": "3", "recordings_stopped": "2", "recording_ms": "63000",
              "short_recordings": "1", "docked": "1", "health": "5", "drain_pct": "3",
              "drain_ms": "10000", "battery_min": "77", "battery_last": "79"}
    check(all(b.get(k) == v for k, v in want_b.items()), f"06:00 hour: {b}, wanted {want_b}")
    check(rc(stack, "TTL", f"bodycam:hourly:{dev}:2025030405") > 300 * 86400,
          "hourly aggregates do not keep for the pilot's months")


def check_availability(stack):
    dev = "cam-006"
    with stack.connected(stack.device_client(dev)) as cam:
        publish(cam, dev, "conn", msg_conn(dev, 1))
        start = time.monotonic()
        while time.monotonic() - start < 3.0:
            publish(cam, dev, "health", msg_health(dev))
            time.sleep(0.25)
        publish(cam, dev, "conn", msg_conn(dev, 1, online=False))
        elapsed = (time.monotonic() - start) * 1000
    rec = wait_record(stack, dev, "offline", online=0)
    wait_consumed(stack, ("conn", "health"))
    online = hourly_total(stack, dev, "online_ms")
    check(0.8 * elapsed <= online <= elapsed + 500,
          f"online_ms {online} for about {elapsed:.0f} ms online")
    check(hourly_total(stack, dev, "disconnects") == 1, "disconnects not counted once")
    check(rec.get("disconnects") == "1", f"record disconnects {rec.get('disconnects')}")
    # offline time is not credited
    time.sleep(1.0)
    with stack.connected(stack.device_client(dev)) as cam:
        publish(cam, dev, "conn", msg_conn(dev, 2))
        wait_record(stack, dev, "online in session 2", online=1, session=2)
    check(hourly_total(stack, dev, "online_ms") <= online + 300,
          "the offline second was credited as online")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("a late will or birth of an older session changes nothing", check_late_will_by_hand),
        ("session takeover: the old will does not win", check_late_will_takeover),
        ("duplicate and out-of-order events are counted once", check_duplicates_and_order),
        ("older states and health reports do not overwrite newer ones",
         check_state_and_health_order),
        ("hourly aggregates by the message's hour", check_hourly_keys),
        ("availability and disconnects", check_availability),
    ], cameras=6))
