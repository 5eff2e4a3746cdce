"""gateway_helpers - what the gateway integration tests (test_gateway_*.py) share:
camera payloads as the agent would publish them, Redis stream reads, the
gateway's status hash, and a second gateway instance next to the stack's."""

import json
import os
import signal
import subprocess
import time

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from bodycam_test import STACK_RUNNER, CheckFailed, Client, check, redis_command, run, wait_for

STREAMS = ("conn", "state", "health", "event", "ack", "upload", "csr")
OUTBOX = "bodycam:stream:outbox"


def now_ms():
    return int(time.time() * 1000)


def topic(dev, kind):
    return f"bodycam/v1/devices/{dev}/{kind}"


def state_msg(dev, seq, state="standby"):
    ts = now_ms()
    return {"v": 1, "device": dev, "state": state, "warnings": 0, "since": ts, "seq": seq,
            "ts": ts}


def event_msg(dev, seq, score=3):
    return {"v": 1, "device": dev, "seq": seq, "ts": now_ms(), "type": "survey", "score": score}


def health_msg(dev, battery=80):
    return {"v": 1, "device": dev, "ts": now_ms(), "battery_pct": battery, "charging": False,
            "storage_free": 1000, "storage_total": 2000, "temperature_c": 30, "signal_dbm": -60,
            "uptime_s": 5, "fw": "1.0.0", "pending_uploads": 0}


def conn_msg(dev, session=1):
    return {"v": 1, "device": dev, "status": "online", "session": session, "ts": now_ms(),
            "fw": "1.0.0"}


def ack_msg(dev, cmd_id="cmd-1"):
    return {"v": 1, "device": dev, "ts": now_ms(), "cmd_id": cmd_id, "kind": "config",
            "ok": True}


def dumps(msg):
    return json.dumps(msg, separators=(",", ":"))


# ---- Redis

def redis_port(stack):
    return stack.info["redis"]["port"]


def stream_key(kind):
    return f"bodycam:stream:{kind}"


def entries(stack, stream):
    """[(id, {field: value})] of a whole stream, oldest first."""
    out = []
    start = "-"
    while True:
        batch = redis_command(redis_port(stack), "XRANGE", stream, start, "+", "COUNT", "1000")
        for entry_id, kv in batch:
            out.append((entry_id, dict(zip(kv[0::2], kv[1::2]))))
        if len(batch) < 1000:
            return out
        start = "(" + batch[-1][0]


def xlen(stack, stream):
    return redis_command(redis_port(stack), "XLEN", stream)


def seqs_in(stack, kind, dev):
    """The seq of every entry of dev in a stream (duplicates kept)."""
    out = []
    for _, f in entries(stack, stream_key(kind)):
        if f.get("device") == dev:
            out.append(json.loads(f["payload"])["seq"])
    return out


def pending_count(stack, stream=OUTBOX, group="gateway"):
    try:
        return redis_command(redis_port(stack), "XPENDING", stream, group)[0]
    except CheckFailed:
        return 0


def outbox_add(stack, topic_name, payload, qos="1", retain="0"):
    return redis_command(redis_port(stack), "XADD", OUTBOX, "*", "topic", topic_name,
                         "payload", payload, "qos", qos, "retain", retain)


def gateway_status(stack, instance="1"):
    flat = redis_command(redis_port(stack), "HGETALL", f"bodycam:gateway:{instance}") or []
    return dict(zip(flat[0::2], flat[1::2]))


def wait_gateway_online(stack, instance, pid, timeout=20):
    def online():
        s = gateway_status(stack, instance)
        return s.get("state") == "online" and s.get("pid") == str(pid)
    wait_for(online, timeout, f"gateway {instance} (pid {pid}) to be online")


def runner(stack, *args):
    return run([STACK_RUNNER, *args])


def stack_pid(stack, name):
    return stack.reload()["processes"][name]["pid"]


def kill_gateway(stack):
    """SIGKILL to the stack's gateway (no goodbye, no flush)."""
    runner(stack, "kill", stack.dir, "gateway", "--signal", "KILL")


def restart(stack, name):
    stack.restart(name)
    if name == "gateway":
        wait_gateway_online(stack, "1", stack_pid(stack, "gateway"))


# ---- a second gateway

class ExtraGateway:
    """Another bodycam-gateway instance on the stack's broker and Redis, with
    the stack's gateway identity and a config of its own (--set overrides).
    It leaves the share group when stopped (leave_group_on_stop): the tests
    scale down, they do not restart it under the same name."""

    def __init__(self, stack, instance, sets=("leave_group_on_stop=true",)):
        self.stack = stack
        self.instance = instance
        base = stack.info["gateway"]
        self.conf = os.path.join(stack.dir, "conf", f"gateway-{instance}.conf")
        with open(base["config"]) as f:
            text = f.read().replace(f"instance = {base['instance']}", f"instance = {instance}")
        with open(self.conf, "w") as f:
            f.write(text)
        self.log_path = os.path.join(stack.dir, "logs", f"gateway-{instance}.log")
        argv = [base["binary"], "--config", self.conf]
        for s in sets:
            argv += ["--set", s]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_gateway_online(stack, instance, self.proc.pid)

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
        self.kill(signal.SIGTERM)


# ---- MQTT clients

class PersistentClient(Client):
    """A bodycam_test.Client whose session survives disconnects (clean start
    off, session expiry), so the broker queues QoS 1 messages for it."""

    def connect(self, host, port, timeout=10.0, keepalive=30):
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        try:
            self.mqtt.connect(host, port, keepalive=keepalive, clean_start=False,
                              properties=props)
        except OSError as e:
            self.error = str(e)
            return False
        import threading
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        try:
            wait_for(lambda: self.connack is not None or self.closed, timeout, "CONNACK")
        except CheckFailed as e:
            self.error = str(e)
            return False
        return self.connected


def persistent_device(stack, dev):
    from bodycam_test import tls_context
    d = stack.info["devices"][dev]
    ctx = tls_context(stack.info["ca_cert"], d["cert"], d["key"])
    return PersistentClient(dev, tls=ctx, protocol=mqtt.MQTTv5)


def publish_all(client, items, qos=1):
    """Publishes [(topic, payload-dict)] waiting for each PUBACK."""
    for t, msg in items:
        client.publish(t, dumps(msg) if isinstance(msg, dict) else msg, qos=qos)


def check_exactly(values, expected, what):
    missing = sorted(set(expected) - set(values))
    extra = sorted(set(values) - set(expected))
    check(not missing and not extra, f"{what}: missing {missing[:20]} extra {extra[:20]}")
