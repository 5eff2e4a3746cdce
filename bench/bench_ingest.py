#!/usr/bin/python3
"""bench_ingest - camera ingest rate and latency against mosquitto's raw
forwarding rate, measured in the same run (issue 5, "Benchmark").

  bench_ingest.py [--build-dir D] [--json FILE] [--cameras 5,50]
                  [--messages-per-camera K] [--raw-messages M]
                  [--latency-samples S] [--no-plugin] [--keep]

It starts a real stack (`tools/bodycam-stack up DIR --no-agents --cameras K`,
the broker plugin on unless --no-plugin, its per-camera rate limits off
(--plugin-opt rate_msgs_per_s=0 rate_bytes_per_s=0); gateway and fleet-health start when
built) in a temp dir, then measures over the mutual-TLS listener:

 (1) raw: one publisher with a service certificate to one subscriber (another
     service certificate) on bodycam/v1/bench/raw, a topic no service
     consumes, QoS 1, M payloads of ~200 bytes: messages/s from the first
     publish to the last message received;
 (2) ingest, per N of --cameras: N camera clients (cam-001.., the stack's
     device certificates, one paho client and thread each) publish valid
     state (increasing seq) and health messages at full speed, QoS 1; the
     rate is the messages that reached bodycam:stream:state and
     bodycam:stream:health (XINFO STREAM entries-added deltas: the health
     stream is trimmed, so XLEN would lie) per second until all arrived, and
     its ratio to the raw rate (issue 5's target: >= 50 %);
 (3) latency: S state changes of cam-001, one at a time: time from the
     publish until HGET bodycam:camera:cam-001 state_seq shows the seq
     (fleet-health's record), and until a dashboard subscriber (websockets;
     a service subscriber when the stack has no dashboard listener) on
     bodycam/v1/devices/+/state receives it: p50, p99, max.

Prints Markdown (stdout; progress on stderr), writes JSON (--json). Every
wait has a deadline; the stack is stopped with `bodycam-stack down` on the
way out, also after an error or SIGINT/SIGTERM. Paho clients are each driven
by exactly one thread (paho 1.6 is not safe with a second thread on the
socket). Exit status: 0 done, 1 failure, 2 usage.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

PROGRAM = "bench_ingest"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(REPO, "tools", "bodycam-stack")
HOST = "127.0.0.1"
RAW_TOPIC = "bodycam/v1/bench/raw"
STATE_FILTER = "bodycam/v1/devices/+/state"
STREAMS = ("bodycam:stream:state", "bodycam:stream:health")
STACK_TIMEOUT = 180
CONNECT_TIMEOUT = 20
PHASE_TIMEOUT = 120
SAMPLE_TIMEOUT = 10
INFLIGHT = 100
STALL_S = 3.0
RATE_OFF = ("rate_msgs_per_s=0", "rate_bytes_per_s=0")


class Failure(Exception):
    """Stops the benchmark; the message says why."""


def log(msg):
    print(f"{PROGRAM}: {msg}", file=sys.stderr, flush=True)


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def now_ms():
    return int(time.time() * 1000)


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary_ms(values):
    return {"n": len(values),
            "p50_ms": round(percentile(values, 50) * 1000, 2) if values else None,
            "p99_ms": round(percentile(values, 99) * 1000, 2) if values else None,
            "max_ms": round(max(values) * 1000, 2) if values else None}


# ---------------------------------------------------------------- Redis (RESP, stdlib)

class Redis:
    """One persistent RESP connection (python3-redis is not installed here)."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def __call__(self, *args):
        req = f"*{len(args)}\r\n".encode()
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            req += f"${len(a)}\r\n".encode() + a + b"\r\n"
        self.sock.sendall(req)
        return self._read()

    def _read(self):
        line = self.f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise Failure(f"redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise Failure(f"unexpected redis reply {line!r}")

    def close(self):
        self.f.close()
        self.sock.close()


def entries_added(r, stream):
    """Entries ever added to stream (Redis >= 7; survives trimming), 0 when absent."""
    if r("EXISTS", stream) == 0:
        return 0
    info = r("XINFO", "STREAM", stream)
    fields = dict(zip(info[0::2], info[1::2]))
    if "entries-added" in fields:
        return int(fields["entries-added"])
    return int(fields["length"])


def stream_total(r):
    return sum(entries_added(r, s) for s in STREAMS)


# ---------------------------------------------------------------- MQTT

def tls_context(ca, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    return ctx


class Peer:
    """A paho 1.6 client driven only by the thread that calls its methods
    (or by its own receive thread for subscribers)."""

    def __init__(self, client_id, tls=None, transport="tcp", username=None, password=None):
        self.client_id = client_id
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311, transport=transport,
                             clean_session=True)
        if tls is not None:
            self.c.tls_set_context(tls)
        if username is not None:
            self.c.username_pw_set(username, password)
        if transport == "websockets":
            self.c.ws_set_options(path="/mqtt")
        self.c.max_inflight_messages_set(INFLIGHT)
        self.c.max_queued_messages_set(0)
        self.rc = None
        self.acked = 0
        self.on_msg = None
        self.subscribed = False
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = lambda *a: setattr(self, "subscribed", True)
        self.c.on_message = lambda c, u, m: self.on_msg and self.on_msg(m)
        self.stop_flag = False
        self.thread = None

    def _on_connect(self, client, userdata, flags, rc, *props):
        self.rc = rc

    def _on_publish(self, client, userdata, mid):
        self.acked += 1

    def pump_until(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise Failure(f"{self.client_id}: timed out waiting for {what}")
            rc = self.c.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise Failure(f"{self.client_id}: connection lost ({mqtt.error_string(rc)})")

    def connect(self, port):
        self.c.connect(HOST, port, keepalive=60)
        self.pump_until(lambda: self.rc is not None, CONNECT_TIMEOUT, "CONNACK")
        if self.rc != 0:
            raise Failure(f"{self.client_id}: CONNECT refused (rc {self.rc})")

    def subscribe(self, topic):
        self.c.subscribe(topic, qos=1)
        self.pump_until(lambda: self.subscribed, CONNECT_TIMEOUT, f"SUBACK for {topic}")

    def start_receiving(self):
        """Hands the client to a receive thread; nothing else touches it then."""
        def run():
            while not self.stop_flag:
                if self.c.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                    return
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def publish_all(self, messages, timeout):
        """Publishes [(topic, payload)] at QoS 1 as fast as the in-flight window
        allows; returns once every PUBACK arrived."""
        deadline = time.monotonic() + timeout
        sent = 0
        for topic, payload in messages:
            while sent - self.acked >= INFLIGHT:
                if time.monotonic() > deadline:
                    raise Failure(f"{self.client_id}: publishing timed out")
                self.c.loop(timeout=0.01)
            info = self.c.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise Failure(f"{self.client_id}: publish failed ({mqtt.error_string(info.rc)})")
            sent += 1
        self.pump_until(lambda: self.acked >= sent, max(1.0, deadline - time.monotonic()),
                        "the last PUBACKs")

    def close(self):
        self.stop_flag = True
        if self.thread is not None:
            self.thread.join(timeout=5)
        else:
            try:
                self.c.disconnect()
                self.c.loop(timeout=0.1)
            except (OSError, ssl.SSLError):
                pass
        try:
            self.c.socket() and self.c.socket().close()
        except (OSError, ssl.SSLError):
            pass


# ---------------------------------------------------------------- messages

def state_msg(dev, seq, state="standby"):
    ts = now_ms()
    return json.dumps({"v": 1, "device": dev, "state": state, "warnings": 0, "since": ts,
                       "seq": seq, "ts": ts})


def health_msg(dev, n):
    return json.dumps({"v": 1, "device": dev, "ts": now_ms(), "battery_pct": 80 - n % 50,
                       "charging": False, "storage_free": 1000, "storage_total": 2000,
                       "temperature_c": 30, "signal_dbm": -60, "uptime_s": n, "fw": "1.0.0",
                       "pending_uploads": 0})


def conn_msg(dev):
    return json.dumps({"v": 1, "device": dev, "status": "online", "session": 1, "ts": now_ms(),
                       "fw": "1.0.0"})


def topic(dev, kind):
    return f"bodycam/v1/devices/{dev}/{kind}"


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.build_dir = os.path.abspath(args.build_dir)
        self.dir = tempfile.mkdtemp(prefix="bodycam-bench-ingest-")
        self.stack_up = False
        self.info = {}
        self.peers = []
        self.seq = {}  # device -> last seq published

    def stack_start(self, cameras):
        argv = [RUNNER, "up", self.dir, "--cameras", str(cameras), "--no-agents",
                "--build-dir", self.build_dir,
                "--no-plugin" if self.args.no_plugin else "--plugin"]
        if not self.args.no_plugin:
            # the per-camera token buckets (20 msg/s) would measure the limit, not the path
            for opt in RATE_OFF:
                argv += ["--plugin-opt", opt]
        self.stack_up = True
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=STACK_TIMEOUT)
        if out.returncode != 0:
            raise Failure(f"bodycam-stack up failed:\n{out.stdout[-2000:]}")
        with open(os.path.join(self.dir, "stack.json")) as f:
            self.info = json.load(f)
        procs = self.info.get("processes", {})
        for needed in ("gateway", "fleet-health"):
            if not any(name.startswith(needed) for name in procs):
                raise Failure(f"the stack has no {needed} (not built in {self.build_dir}?)")

    def stop_all(self):
        for p in self.peers:
            p.close()
        self.peers = []
        if self.stack_up:
            out = subprocess.run([RUNNER, "down", self.dir], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=STACK_TIMEOUT)
            if out.returncode != 0:
                log(f"bodycam-stack down failed: {out.stdout.strip()}")
            self.stack_up = False

    def remove_dir(self):
        if self.args.keep:
            log(f"state kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def tls_port(self):
        return self.info["mqtt"]["tls_port"]

    def service_peer(self, service, client_id):
        s = self.info["services"][service]
        p = Peer(client_id, tls=tls_context(self.info["ca_cert"], s["cert"], s["key"]))
        self.peers.append(p)
        p.connect(self.tls_port())
        return p

    def device_peer(self, dev):
        d = self.info["devices"][dev]
        p = Peer(dev, tls=tls_context(self.info["ca_cert"], d["cert"], d["key"]))
        self.peers.append(p)
        p.connect(self.tls_port())
        return p

    def drop(self, peer):
        peer.close()
        self.peers.remove(peer)

    def redis(self):
        return Redis(self.info["redis"]["port"])


def phase_raw(b, count, size):
    log(f"(1) raw forwarding: {count} messages of {size} bytes, QoS 1")
    sub = b.service_peer("key-rotation", "bench-raw-sub")
    got = {"n": 0, "last": 0.0}
    done = threading.Event()

    def on_msg(m):
        got["n"] += 1
        got["last"] = time.monotonic()
        if got["n"] >= count:
            done.set()
    sub.on_msg = on_msg
    sub.subscribe(RAW_TOPIC)
    sub.start_receiving()
    pub = b.service_peer("vault", "bench-raw-pub")
    payload = (b"x" * size)
    load = loadavg()
    t0 = time.monotonic()
    pub.publish_all(((RAW_TOPIC, payload) for _ in range(count)), PHASE_TIMEOUT)
    seen = -1
    while not done.wait(STALL_S) and got["n"] != seen:  # until all arrived or no growth
        seen = got["n"]
    if got["n"] == 0:
        raise Failure("raw: no message arrived")
    if got["n"] < count:
        log(f"(1) {count - got['n']} of {count} raw messages were dropped by the broker")
    seconds = got["last"] - t0
    b.drop(pub)
    b.drop(sub)
    return {"messages": count, "arrived": got["n"], "payload_bytes": size,
            "seconds": round(seconds, 3), "msgs_per_s": round(got["n"] / seconds, 1),
            "loadavg": load}


def phase_ingest(b, n, per_camera, raw_rate):
    devices = [f"cam-{i:03d}" for i in range(1, n + 1)]
    log(f"(2) ingest: {n} cameras x {per_camera} messages (state/health alternating)")
    peers = [b.device_peer(dev) for dev in devices]
    batches = []
    for dev in devices:
        seq = b.seq.get(dev, 0)
        msgs = []
        for k in range(per_camera):
            if k % 2 == 0:
                seq += 1
                msgs.append((topic(dev, "state"), state_msg(dev, seq)))
            else:
                msgs.append((topic(dev, "health"), health_msg(dev, k)))
        b.seq[dev] = seq
        batches.append(msgs)
    total = n * per_camera
    r = b.redis()
    try:
        before = stream_total(r)
        errors = []
        load = loadavg()
        start = threading.Barrier(n + 1)

        def run(peer, msgs):
            try:
                start.wait(timeout=CONNECT_TIMEOUT)
                peer.publish_all(msgs, PHASE_TIMEOUT)
            except Exception as e:  # reported below
                errors.append(f"{peer.client_id}: {e}")
        threads = [threading.Thread(target=run, args=(p, m), daemon=True)
                   for p, m in zip(peers, batches)]
        for t in threads:
            t.start()
        start.wait(timeout=CONNECT_TIMEOUT)
        t0 = time.monotonic()
        deadline = t0 + PHASE_TIMEOUT
        arrived, last_growth = 0, t0
        while arrived < total:
            now = stream_total(r) - before
            if now > arrived:
                arrived, last_growth = now, time.monotonic()
            elif time.monotonic() - last_growth > STALL_S and not any(
                    t.is_alive() for t in threads):
                log(f"(2) N={n}: {total - arrived} of {total} never reached the streams "
                    f"(no growth for {STALL_S} s after the last PUBACK)")
                break
            if time.monotonic() > deadline:
                raise Failure(f"ingest at N={n}: {arrived} of {total} in the streams after "
                              f"{PHASE_TIMEOUT} s; {errors[:1]}")
            time.sleep(0.002)
        seconds = last_growth - t0
        for t in threads:
            t.join(timeout=PHASE_TIMEOUT)
        if errors:
            raise Failure(f"ingest at N={n}: {errors[0]}")
    finally:
        r.close()
        for p in peers:
            b.drop(p)
    rate = arrived / seconds
    return {"cameras": n, "messages": total, "arrived": arrived, "lost": total - arrived, "seconds": round(seconds, 3),
            "msgs_per_s": round(rate, 1), "ratio_to_raw": round(rate / raw_rate, 3),
            "loadavg": load, "loadavg_after": loadavg()}


def dashboard_subscriber(b):
    """A dashboard client over websockets, or a service client when the stack
    has no dashboard listener; returns (peer, kind)."""
    dash = b.info.get("dashboard")
    ws = b.info["mqtt"].get("ws_port")
    if dash and ws and dash.get("username"):
        p = Peer("bench-dash-sub", transport="websockets", username=dash["username"],
                 password=dash["password"])
        b.peers.append(p)
        try:
            p.connect(ws)
            return p, "dashboard (websockets)"
        except Failure as e:
            log(f"dashboard subscriber failed ({e}); using a service subscriber")
            b.drop(p)
    return b.service_peer("key-rotation", "bench-lat-sub"), "service (mTLS)"


def phase_latency(b, samples):
    dev = "cam-001"
    log(f"(3) latency: {samples} state changes of {dev}")
    sub, kind = dashboard_subscriber(b)
    seen = {}
    cond = threading.Condition()

    def on_msg(m):
        t = time.monotonic()
        try:
            seq = json.loads(m.payload)["seq"]
        except (ValueError, KeyError, TypeError):
            return
        if m.topic == topic(dev, "state"):
            with cond:
                seen.setdefault(seq, t)
                cond.notify_all()
    sub.on_msg = on_msg
    sub.subscribe(STATE_FILTER)
    sub.start_receiving()
    cam = b.device_peer(dev)
    cam.publish_all([(topic(dev, "conn"), conn_msg(dev))], SAMPLE_TIMEOUT)
    r = b.redis()
    key = f"bodycam:camera:{dev}"
    to_record, to_sub = [], []
    load = loadavg()
    try:
        for _ in range(samples):
            seq = b.seq.get(dev, 0) + 1
            b.seq[dev] = seq
            payload = state_msg(dev, seq, "warning" if seq % 2 else "standby")
            payload = payload.replace('"warnings": 0', '"warnings": 1') if seq % 2 else payload
            t0 = time.monotonic()
            info = cam.c.publish(topic(dev, "state"), payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise Failure(f"{dev}: publish failed ({mqtt.error_string(info.rc)})")
            deadline = t0 + SAMPLE_TIMEOUT
            while True:
                cam.c.loop(timeout=0)  # PUBACKs (the only thread driving cam)
                v = r("HGET", key, "state_seq")
                if v is not None and int(v) >= seq:
                    to_record.append(time.monotonic() - t0)
                    break
                if time.monotonic() > deadline:
                    raise Failure(f"{key} state_seq stayed at {v} for {SAMPLE_TIMEOUT} s "
                                  f"(published seq {seq})")
                time.sleep(0.0005)
            with cond:
                if not cond.wait_for(lambda: seq in seen, SAMPLE_TIMEOUT):
                    raise Failure(f"the {kind} subscriber did not receive seq {seq}")
                to_sub.append(seen[seq] - t0)
            time.sleep(0.005)
    finally:
        r.close()
    return {"device": dev, "samples": samples, "subscriber": kind, "loadavg": load,
            "to_redis_record": summary_ms(to_record), "to_subscriber": summary_ms(to_sub)}


# ---------------------------------------------------------------- output

def markdown(result):
    raw = result.get("raw")
    out = ["## bench_ingest", "",
           f"plugin: {'off' if result['no_plugin'] else 'on (camera rate limits off)'}; build: `{result['build_dir']}`; "
           f"load average at start {result['loadavg_start']}", ""]
    if raw:
        out += ["| measure | messages | arrived | seconds | messages/s | ratio to raw "
                "| load avg (1/5/15) |",
                "|---|---|---|---|---|---|---|",
                f"| raw mosquitto forwarding (1 service pub -> 1 sub, QoS 1, "
                f"{raw['payload_bytes']} B) | {raw['messages']} | {raw['arrived']} | {raw['seconds']} | "
                f"{raw['msgs_per_s']} | 1.00 | {raw['loadavg']} |"]
        for i in result.get("ingest", []):
            out.append(f"| ingest, {i['cameras']} cameras -> Redis streams | {i['messages']} | "
                       f"{i['arrived']} | "
                       f"{i['seconds']} | {i['msgs_per_s']} | {i['ratio_to_raw']:.2f} | "
                       f"{i['loadavg']} |")
        out.append("")
    lat = result.get("latency")
    if lat:
        out += [f"Latency of {lat['samples']} state changes of {lat['device']} (one at a time; "
                f"load avg {lat['loadavg']}):", "",
                "| path | p50 ms | p99 ms | max ms |", "|---|---|---|---|"]
        for label, k in (("camera -> Redis record (state_seq)", "to_redis_record"),
                         (f"camera -> {lat['subscriber']} subscriber", "to_subscriber")):
            s = lat[k]
            out.append(f"| {label} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} |")
        out.append("")
    if result.get("error"):
        out += [f"**stopped early:** {result['error']}", ""]
    return "\n".join(out)


def parse_args():
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--cameras", default="5,50", help="comma-separated camera counts")
    p.add_argument("--messages-per-camera", type=int, default=0,
                   help="default: 4000 / N rounded up to even, at least 20")
    p.add_argument("--raw-messages", type=int, default=5000)
    p.add_argument("--payload-bytes", type=int, default=200)
    p.add_argument("--latency-samples", type=int, default=200)
    p.add_argument("--no-plugin", action="store_true")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    try:
        args.counts = [int(x) for x in args.cameras.split(",") if x]
    except ValueError:
        p.error("--cameras wants comma-separated integers")
    if not args.counts or min(args.counts) < 1 or max(args.counts) > 999:
        p.error("--cameras: each count 1..999")
    if args.raw_messages < 1 or args.latency_samples < 1:
        p.error("counts must be positive")
    return args


def main():
    args = parse_args()
    b = Bench(args)
    result = {"program": PROGRAM, "build_dir": b.build_dir, "no_plugin": args.no_plugin,
              "loadavg_start": loadavg(), "ingest": []}

    def on_signal(signum, frame):
        raise Failure(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = 0
    try:
        log(f"starting the stack in {b.dir} ({max(args.counts)} cameras)")
        b.stack_start(max(args.counts))
        result["raw"] = phase_raw(b, args.raw_messages, args.payload_bytes)
        for n in args.counts:
            per = args.messages_per_camera or max(20, -(-4000 // n))
            per += per % 2
            result["ingest"].append(phase_ingest(b, n, per, result["raw"]["msgs_per_s"]))
        result["latency"] = phase_latency(b, args.latency_samples)
    except (Failure, OSError, subprocess.TimeoutExpired) as e:
        result["error"] = str(e)
        log(f"failed: {e}")
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            b.stop_all()
        finally:
            b.remove_dir()
    result["loadavg_end"] = loadavg()
    print(markdown(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
