"""fleet_health_helpers - what the fleet-health tests (test_fleet_health_*.py) share.

  record(stack, dev)                 the camera's Redis record (bodycam:camera:<id>) as a dict
  wait_record(stack, dev, what, pred=None, **expected)
  hourly(stack, dev, ts_ms)          one hourly aggregate hash; hourly_total(stack, dev, field)
  open_alerts(stack)                 bodycam:alerts:open as {field: alert dict}
  outbox_alerts(stack, ...)          the fleet/alerts messages fleet-health queued (outbox stream)
  FleetWatcher(stack)                a dashboard subscriber to fleet/# (summaries and alerts)
  wait_consumed(stack, kinds)        every entry of those streams handled by group fleet-health
  xadd_entries(stack, [(kind, msg)]) camera messages straight into the streams, as the
                                     gateway writes them (pipelined; bulk and crash tests)
  msg_conn/state/health/event(...)   camera payloads with explicit fields
  ExtraFleetHealth(stack, instance)  a second bodycam-fleet-health next to the stack's

Messages published through the broker take the real path (camera -> broker ->
gateway -> stream -> fleet-health); xadd_entries skips the broker and the gateway,
for volume and for exact control of what is in the streams.
"""

import json
import os
import signal
import socket
import subprocess
import time

from bodycam_test import STACK_RUNNER, CheckFailed, _resp_read, check, redis_command, run, wait_for

PREFIX = "bodycam/v1/"
SUMMARY_TOPIC = PREFIX + "fleet/summary"
ALERTS_TOPIC = PREFIX + "fleet/alerts"
OUTBOX = "bodycam:stream:outbox"
GROUP = "fleet-health"
KINDS = ("conn", "state", "health", "event")


def now_ms():
    return int(time.time() * 1000)


def topic(dev, kind):
    return f"{PREFIX}devices/{dev}/{kind}"


def dumps(msg):
    return json.dumps(msg, separators=(",", ":"))


# ---------------------------------------------------------------- payloads

def msg_conn(dev, session, online=True, ts=None, fw="1.0.0"):
    m = {"v": 1, "device": dev, "status": "online" if online else "offline", "session": session,
         "ts": ts or now_ms()}
    if fw:
        m["fw"] = fw
    return m


def msg_state(dev, seq, state="standby", warnings=0, ts=None, recording_id=None):
    ts = ts or now_ms()
    m = {"v": 1, "device": dev, "state": state, "warnings": warnings, "since": ts, "seq": seq,
         "ts": ts}
    if state == "recording":
        m["recording_id"] = recording_id or f"{dev}-{seq}"
    return m


def msg_health(dev, battery=80, ts=None, charging=False, free=1000, total=2000, temp=30,
               pending=0, errors=None):
    m = {"v": 1, "device": dev, "ts": ts or now_ms(), "battery_pct": battery,
         "charging": charging, "storage_free": free, "storage_total": total,
         "temperature_c": temp, "signal_dbm": -60, "uptime_s": 5, "fw": "1.0.0",
         "pending_uploads": pending}
    if errors:
        m["errors"] = errors
    return m


def msg_event(dev, seq, etype="warning_given", ts=None, **fields):
    m = {"v": 1, "device": dev, "seq": seq, "ts": ts or now_ms(), "type": etype}
    if etype in ("warning_given", "warning_expired") and "warnings" not in fields:
        fields["warnings"] = 1
    if etype == "record_refused" and "warnings" not in fields:
        fields["warnings"] = 0
    m.update(fields)
    return m


def recording_started(dev, seq, rec, warnings, emergency=False, ts=None):
    return msg_event(dev, seq, "recording_started", ts, recording_id=rec, warnings=warnings,
                     emergency=emergency)


def recording_stopped(dev, seq, rec, duration_ms, warnings=2, emergency=False, ts=None):
    return msg_event(dev, seq, "recording_stopped", ts, recording_id=rec, warnings=warnings,
                     emergency=emergency, duration_ms=duration_ms, size=1000)


# ---------------------------------------------------------------- Redis

def redis_port(stack):
    return stack.info["redis"]["port"]


def rc(stack, *args):
    return redis_command(redis_port(stack), *args)


def as_dict(flat):
    flat = flat or []
    return dict(zip(flat[0::2], flat[1::2]))


def record(stack, dev):
    return as_dict(rc(stack, "HGETALL", f"bodycam:camera:{dev}"))


def wait_record(stack, dev, what, pred=None, timeout=15.0, **expected):
    """Waits until the record has every expected field (compared as str)
    and pred(record) holds; returns the record."""
    def ok():
        r = record(stack, dev)
        if any(r.get(k) != str(v) for k, v in expected.items()):
            return None
        if pred is not None and not pred(r):
            return None
        return r
    try:
        return wait_for(ok, timeout, f"{dev}: {what}", interval=0.05)
    except CheckFailed as e:
        raise CheckFailed(f"{e}; record now {record(stack, dev)}")


def hour_key(ts_ms):
    return time.strftime("%Y%m%d%H", time.gmtime(ts_ms / 1000))


def hourly(stack, dev, ts_ms):
    return as_dict(rc(stack, "HGETALL", f"bodycam:hourly:{dev}:{hour_key(ts_ms)}"))


def hourly_keys(stack, dev):
    return sorted(rc(stack, "KEYS", f"bodycam:hourly:{dev}:*") or [])


def hourly_total(stack, dev, field):
    total = 0
    for k in hourly_keys(stack, dev):
        v = rc(stack, "HGET", k, field)
        total += int(v) if v is not None else 0
    return total


def open_alerts(stack):
    flat = rc(stack, "HGETALL", "bodycam:alerts:open")
    return {k: json.loads(v) for k, v in as_dict(flat).items()}


def outbox_entries(stack):
    out = []
    start = "-"
    while True:
        batch = rc(stack, "XRANGE", OUTBOX, start, "+", "COUNT", "1000") or []
        for entry_id, kv in batch:
            out.append((entry_id, as_dict(kv)))
        if len(batch) < 1000:
            return out
        start = "(" + batch[-1][0]


def outbox_alerts(stack, device=None, kind=None):
    """The fleet/alerts payloads fleet-health queued, oldest first."""
    out = []
    for _, f in outbox_entries(stack):
        if f.get("topic") != ALERTS_TOPIC:
            continue
        a = json.loads(f["payload"])
        if (device is None or a.get("device") == device) and (kind is None or a["kind"] == kind):
            out.append(a)
    return out


def stream_last_id(stack, kind):
    info = as_dict(rc(stack, "XINFO", "STREAM", f"bodycam:stream:{kind}"))
    return info.get("last-generated-id")


def group_info(stack, kind, group=GROUP):
    try:
        groups = rc(stack, "XINFO", "GROUPS", f"bodycam:stream:{kind}") or []
    except CheckFailed:
        return None
    for g in groups:
        d = as_dict(g)
        if d.get("name") == group:
            return d
    return None


def consumed(stack, kinds=KINDS):
    """True when group fleet-health has been given every entry of the
    streams and acknowledged all of them (so every handler call is over)."""
    for kind in kinds:
        try:
            if rc(stack, "XLEN", f"bodycam:stream:{kind}") == 0:
                continue
        except CheckFailed:
            continue
        g = group_info(stack, kind)
        if g is None or int(g.get("pending", 1)) != 0:
            return False
        if g.get("last-delivered-id") != stream_last_id(stack, kind):
            return False
    return True


def wait_consumed(stack, kinds=KINDS, timeout=30.0):
    wait_for(lambda: consumed(stack, kinds), timeout,
             f"fleet-health to handle every entry of {', '.join(kinds)}", interval=0.05)


def pending(stack, kind):
    g = group_info(stack, kind)
    return int(g["pending"]) if g else 0


def fh_status(stack, instance="1"):
    return as_dict(rc(stack, "HGETALL", f"bodycam:fleet-health:{instance}"))


def redis_pipeline(port, commands, chunk=2000, timeout=60.0):
    """Sends many commands on one connection, chunk at a time, and returns
    the replies (no Redis client library here)."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        for i in range(0, len(commands), chunk):
            buf = bytearray()
            part = commands[i:i + chunk]
            for args in part:
                buf += f"*{len(args)}\r\n".encode()
                for a in args:
                    a = a if isinstance(a, bytes) else str(a).encode()
                    buf += f"${len(a)}\r\n".encode() + a + b"\r\n"
            s.sendall(buf)
            for _ in part:
                replies.append(_resp_read(f))
    return replies


def xadd_entries(stack, items, received_at=None):
    """[(kind, msg dict)] into bodycam:stream:<kind>, with the fields the
    gateway writes; returns the entry ids."""
    cmds = []
    for kind, msg in items:
        dev = msg["device"]
        cmds.append(["XADD", f"bodycam:stream:{kind}", "*", "device", dev, "kind", kind,
                     "payload", dumps(msg), "received_at", str(received_at or now_ms()),
                     "topic", topic(dev, kind)])
    return redis_pipeline(redis_port(stack), cmds)


# ---------------------------------------------------------------- MQTT

class FleetWatcher:
    """A dashboard-role subscriber (MQTT over WebSockets) to fleet/#: what an
    operator's screen would get."""

    def __init__(self, stack):
        self.client = stack.connected(stack.dashboard_client())
        self.client.subscribe(PREFIX + "fleet/#")

    def close(self):
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def alerts(self, device=None, kind=None, status=None):
        out = []
        for m in self.client.received(ALERTS_TOPIC):
            a = m.json()
            if ((device is None or a.get("device") == device)
                    and (kind is None or a["kind"] == kind)
                    and (status is None or a["status"] == status)):
                out.append(a)
        return out

    def wait_alert(self, device, kind, status, timeout=15.0, match=None):
        def find():
            for a in self.alerts(device, kind, status):
                if match is None or match(a):
                    return a
            return None
        return wait_for(find, timeout, f"a {status} {kind} alert of {device} on fleet/alerts")

    def summaries(self):
        return [m.json() for m in self.client.received(SUMMARY_TOPIC)]

    def wait_summary(self, pred, what, timeout=15.0):
        def find():
            for s in reversed(self.summaries()):
                if pred(s):
                    return s
            return None
        try:
            return wait_for(find, timeout, f"a fleet summary with {what}")
        except CheckFailed as e:
            last = self.summaries()[-1:] or None
            raise CheckFailed(f"{e}; last summary {last}")


def retained_summary(stack, pred=None, timeout=10.0):
    """The retained fleet/summary a dashboard that connects now gets
    (waits until pred holds for it)."""
    def fetch():
        c = stack.connected(stack.dashboard_client())
        try:
            c.subscribe(SUMMARY_TOPIC)
            m = c.wait_message(SUMMARY_TOPIC, lambda m: m.retain, 3.0)
            s = m.json()
            return s if pred is None or pred(s) else None
        except CheckFailed:
            return None
        finally:
            c.close()
    return wait_for(fetch, timeout, "the retained fleet summary", interval=0.3)


# ---------------------------------------------------------------- processes

def kill_fleet_health(stack, sig="KILL"):
    run([STACK_RUNNER, "kill", stack.dir, "fleet-health", "--signal", sig])


def restart_fleet_health(stack):
    stack.restart("fleet-health")


def fleet_health_argv(stack):
    return stack.reload()["processes"]["fleet-health"]["argv"]


class ExtraFleetHealth:
    """Another bodycam-fleet-health on the stack's Redis: the stack's own
    configuration with --set instance=<instance> and the extra sets."""

    def __init__(self, stack, instance, sets=()):
        self.stack = stack
        self.instance = instance
        argv = list(fleet_health_argv(stack)) + ["--set", f"instance={instance}"]
        for s in sets:
            argv += ["--set", s]
        self.log_path = os.path.join(stack.dir, "logs", f"fleet-health-{instance}.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: fh_status(stack, instance).get("pid") == str(self.proc.pid)
                 and fh_status(stack, instance).get("state") == "running", 20,
                 f"fleet-health {instance} to run")

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        finally:
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)


def check_counts_once(stack, dev, expected_seqs, what):
    """The camera's event log, record and hourly aggregates hold each of
    expected_seqs exactly once."""
    log = rc(stack, "ZRANGE", f"bodycam:events:{dev}", "0", "-1", "WITHSCORES") or []
    seqs = [int(float(s)) for s in log[1::2]]
    check(sorted(seqs) == sorted(set(expected_seqs)),
          f"{what}: event log of {dev} holds {len(seqs)} seqs, wanted {len(set(expected_seqs))}"
          f" (missing {sorted(set(expected_seqs) - set(seqs))[:10]}, extra "
          f"{sorted(set(seqs) - set(expected_seqs))[:10]})")
    rec = record(stack, dev)
    check(int(rec.get("events", 0)) == len(set(expected_seqs)),
          f"{what}: record of {dev} counts {rec.get('events')} events, wanted "
          f"{len(set(expected_seqs))}")
    total = hourly_total(stack, dev, "events")
    check(total == len(set(expected_seqs)),
          f"{what}: hourly aggregates of {dev} count {total} events, wanted "
          f"{len(set(expected_seqs))}")
