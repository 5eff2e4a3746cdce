"""agent_helpers - what the camera agent tests (test_agent_*.py) share.

They run the real stack with real bodycam-agent processes (the stack
runner's `agents` component: one agent per camera, a synthetic video source
with seed 1, 2, ... in device order) and check what a backend subscriber
receives, what the control socket answers, and what is on the camera's disk.

  agent_stack_args(cameras, **agent_options)   -> run_checks/Stack kwargs
  press(stack, dev, "warn")                     -> the answer line
  Observer(stack, dev)                          a gateway-role subscriber to one
                                                camera's topics; events(), acks()
  sign(stack, key_name, dev, kind, id, **params) a signed command (helpers/command-sign)
  recording_check(stack, path, plaintext=None)  decrypts with the vault key
  verify_synthetic(data, seed)                  the bytes are the synthetic stream

Events may arrive more than once (the outbox delivers at least once after a
reconnect); `distinct_events` keeps the first copy of each seq.
"""

import hashlib
import json
import os
import socket
import threading

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bodycam_test import (STACK_RUNNER, CheckFailed, Client, check, project_binary, run,
                          tls_context, wait_for)

PREFIX = "bodycam/v1/"
SYNTH_FRAME = 4096
SYNTH_MAGIC = b"BCSYNTH1"
_counter = [0]


def unique(prefix="t"):
    _counter[0] += 1
    return f"{prefix}-{os.getpid()}-{_counter[0]}"


def agent_stack_args(cameras=2, **options):
    """Stack kwargs: agents on, each option an --agent-set NAME=VALUE. The
    vault is left out: these tests sign the vault's receipts themselves."""
    extra = ["--agents", "--no-vault"]
    for name, value in options.items():
        extra += ["--agent-set", f"{name}={value}"]
    return {"cameras": cameras, "extra_args": extra}


def device_topic(dev, kind):
    return f"{PREFIX}devices/{dev}/{kind}"


# ---------------------------------------------------------------- the buttons

def control(path, line, timeout=10.0):
    """One line to a control socket; the answer line (without newline)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def press(stack, dev, line):
    return control(stack.info["devices"][dev]["control_socket"], line)


def status(stack, dev):
    """The status answer as a dict (answer 'ok k=v ...')."""
    answer = press(stack, dev, "status")
    check(answer.startswith("ok "), f"status of {dev}: {answer!r}")
    return dict(item.split("=", 1) for item in answer.split()[1:])


def wait_status(stack, dev, what, timeout=20.0, **expected):
    """Waits until every expected key of the status has the given value."""
    def ok():
        s = status(stack, dev)
        return s if all(s.get(k) == str(v) for k, v in expected.items()) else None
    return wait_for(ok, timeout, f"{dev}: {what} ({expected})", interval=0.05)


def press_ok(stack, dev, line):
    answer = press(stack, dev, line)
    check(answer.startswith("ok"), f"{dev} '{line}' answered {answer!r}")
    return answer


def agent_restart(stack, dev):
    return stack.restart(f"agent:{dev}")


def agent_kill(stack, dev, sig="KILL"):
    run([STACK_RUNNER, "kill", stack.dir, f"agent:{dev}", "--signal", sig])


# ---------------------------------------------------------------- the backend side

class PersistentClient(Client):
    """A Client whose MQTT v5 session survives disconnects and broker
    restarts (clean start off, session expiry 1 h): QoS 1 messages for it
    are queued by the broker while it is away."""

    def connect(self, host, port, timeout=10.0, keepalive=30):
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        try:
            self.mqtt.connect(host, port, keepalive=keepalive, clean_start=False,
                              properties=props)
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"
            self.closed = True
            return False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        try:
            wait_for(lambda: self.connack is not None or self.closed, timeout, "CONNACK")
        except CheckFailed as e:
            self.error = str(e)
            return False
        return self.connected


class Observer:
    """A gateway-role subscriber to devices/{dev}/# (QoS 1). With a
    client_id it keeps a persistent session (see PersistentClient), so
    `reconnect()` after a broker restart gets what was published meanwhile."""

    def __init__(self, stack, dev, client_id=None):
        self.stack = stack
        self.dev = dev
        self.client_id = client_id
        self.older = []  # messages of earlier connections
        self.client = None
        self.reconnect()

    def reconnect(self):
        if self.client is not None:
            self.older += self.client.received()
            self.client.close()
        svc = self.stack.info["services"]["gateway"]
        ctx = tls_context(self.stack.info["ca_cert"], svc["cert"], svc["key"])
        cls = PersistentClient if self.client_id else Client
        self.client = cls(self.client_id or unique("observer"), tls=ctx)
        self.stack.connected(self.client)
        self.client.subscribe(device_topic(self.dev, "#"))
        return self

    def close(self):
        if self.client is not None:
            self.older += self.client.received()
            self.client.close()
            self.client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def messages(self, kind):
        topic = device_topic(self.dev, kind)
        now = self.client.received(topic) if self.client is not None else []
        return [m for m in self.older if m.topic == topic] + now

    def events(self):
        """Every event as received (duplicates kept), as dicts."""
        return [m.json() for m in self.messages("event")]

    def wait_event(self, match, what, timeout=20.0):
        def find():
            for e in self.events():
                if match(e):
                    return e
            return None
        return wait_for(find, timeout, f"{self.dev}: {what}")

    def wait_event_type(self, etype, timeout=20.0, **fields):
        return self.wait_event(
            lambda e: e["type"] == etype and all(e.get(k) == v for k, v in fields.items()),
            f"a {etype} event {fields or ''}", timeout)

    def acks(self):
        return [m.json() for m in self.messages("ack")]

    def wait_ack(self, cmd_id, timeout=20.0):
        return wait_for(lambda: next((a for a in self.acks() if a["cmd_id"] == cmd_id), None),
                        timeout, f"{self.dev}: the ack of {cmd_id}")

    def publish_command(self, kind, payload):
        self.client.publish(device_topic(self.dev, f"cmd/{kind}"), payload)


def distinct_events(events):
    """First copy of each seq, in arrival order."""
    seen, out = set(), []
    for e in events:
        if e["seq"] not in seen:
            seen.add(e["seq"])
            out.append(e)
    return out


def check_contiguous(events, first=None, last=None):
    """The distinct seqs arrived in increasing order and without a gap
    (between first and last when given)."""
    seqs = [e["seq"] for e in distinct_events(events)]
    check(seqs == sorted(seqs), f"events out of order: {seqs}")
    if seqs:
        lo = seqs[0] if first is None else first
        hi = seqs[-1] if last is None else last
        check(seqs == list(range(lo, hi + 1)), f"events with a gap: {seqs} (wanted {lo}..{hi})")
    return seqs


def new_subscriber_state(stack, dev, timeout=10.0):
    """The retained state a subscriber that connects now gets."""
    with Observer(stack, dev) as o:
        return o.client.wait_message(device_topic(dev, "state"), lambda m: m.retain,
                                     timeout).json()


def retained(stack, dev, kind, match=None, timeout=10.0):
    """The retained message on devices/{dev}/{kind} a new subscriber gets
    (match: a predicate that must hold; waits until it does)."""
    def fetch():
        with Observer(stack, dev) as o:
            try:
                m = o.client.wait_message(device_topic(dev, kind), lambda m: m.retain, 2.0)
            except CheckFailed:
                return None
            data = m.json()
            return data if match is None or match(data) else None
    return wait_for(fetch, timeout, f"the retained {kind} of {dev}", interval=0.2)


# ---------------------------------------------------------------- commands and recordings

def sign(stack, key_name, dev, kind, cmd_id, key_path=None, **params):
    """A signed command (JSON text) by helpers/command-sign, with the stack's
    key_name key ("command", "receipt") or any Ed25519 key at key_path."""
    key = key_path or stack.info["keys"][key_name]["private"]
    argv = [project_binary("command-sign"), key, dev, kind, cmd_id]
    argv += [f"{k}={v}" for k, v in params.items()]
    return run(argv).stdout.strip()


def recording_path(stack, dev, rec_id):
    return os.path.join(stack.info["devices"][dev]["data_dir"], "recordings", f"{rec_id}.bcrec")


def recording_meta(stack, dev, rec_id):
    path = os.path.join(stack.info["devices"][dev]["data_dir"], "recordings", f"{rec_id}.json")
    with open(path) as f:
        return json.load(f)


def recording_check(stack, path, plaintext=None, key=None):
    """Decrypts path with the vault's recording private key (or key); the
    helper's fields as a dict."""
    argv = [project_binary("recording-check"), key or stack.info["keys"]["recording"]["private"],
            path]
    if plaintext is not None:
        argv += ["--plaintext", plaintext]
    out = run(argv).stdout.strip()
    check(out.startswith("ok "), f"recording-check: {out}")
    return dict(item.split("=", 1) for item in out.split()[1:])


def synthetic_frame(seed, n):
    head = SYNTH_MAGIC + n.to_bytes(8, "big") + seed.to_bytes(8, "big")
    body = b"".join(hashlib.sha256(seed.to_bytes(8, "big") + n.to_bytes(8, "big")
                                   + b.to_bytes(4, "big")).digest() for b in range(128))
    return head + body[:SYNTH_FRAME - len(head)]


def verify_synthetic(data, seed):
    """data is one contiguous piece of the synthetic stream of seed (it may
    start and end inside a frame); returns (first frame number, frames)."""
    check(len(data) > 0, "no content")
    at = data.find(SYNTH_MAGIC)
    check(0 <= at < SYNTH_FRAME + 24, "no synthetic frame header near the start")
    frame = int.from_bytes(data[at + 8:at + 16], "big")
    check(int.from_bytes(data[at + 16:at + 24], "big") == seed,
          f"the content is not from seed {seed}")
    start = frame * SYNTH_FRAME - at  # stream offset of data[0]
    first = start // SYNTH_FRAME
    pos, n = 0, first
    while pos < len(data):
        f = synthetic_frame(seed, n)
        lo = (start + pos) - n * SYNTH_FRAME
        piece = f[lo:lo + (len(data) - pos)]
        check(data[pos:pos + len(piece)] == piece,
              f"content differs from the synthetic stream in frame {n}")
        pos += len(piece)
        n += 1
    return first, n - first


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def wait_gone(path, what, timeout=10.0):
    wait_for(lambda: not os.path.exists(path), timeout, what)


