"""bodycam_test - what every integration test (tests/integration/test_*.py) shares.

An integration test is a script that ctest runs with /usr/bin/python3 (Debian's
interpreter, which sees python3-paho-mqtt). It starts a real stack with the
stack runner in a temp dir, finds everything through stack.json, and checks
behaviour by what arrives, never by sleeping:

    from bodycam_test import Stack, check, run_checks, wait_for

    def my_check(stack):
        with stack.device_client("cam-001") as cam:
            check(cam.connect(), f"cam-001 connects: {cam.error}")

    sys.exit(run_checks([("device connects", my_check)], cameras=2))

run_checks prints "ok - name" or "FAIL - name: reason" per check and a last
line "N passed, M failed"; the exit status is non-zero when any check failed.
On a failure the tail of every log of the stack is printed.

Environment: BODYCAM_BUILD_DIR (the build, set by ctest; default <repo>/build),
BODYCAM_SOURCE_DIR (the sources; default the repo this file is in),
BODYCAM_KEEP_STATE=1 keeps the temp dir for a post-mortem.
"""

import glob
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import paho.mqtt.client as mqtt

SOURCE_DIR = os.environ.get("BODYCAM_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("BODYCAM_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
STACK_RUNNER = os.path.join(SOURCE_DIR, "tools", "bodycam-stack")
DEFAULT_TIMEOUT = 10.0


class CheckFailed(AssertionError):
    pass


def check(condition, message):
    """assert that survives python -O, with the reason to print."""
    if not condition:
        raise CheckFailed(message)


def wait_for(predicate, timeout=DEFAULT_TIMEOUT, what="a condition", interval=0.02):
    """Polls predicate until it returns something true and returns that;
    raises CheckFailed naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def run(argv, timeout=120, check_rc=True):
    """Runs a command; returns CompletedProcess (text). Raises CheckFailed with
    its output when check_rc and the status is not 0."""
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check_rc and out.returncode != 0:
        raise CheckFailed(f"{' '.join(argv)} exited {out.returncode}:\n{out.stdout}")
    return out


def project_binary(name):
    """A binary of the build (any depth up to 3 below BUILD_DIR)."""
    for depth in ("", "*", "*/*", "*/*/*"):
        for path in sorted(glob.glob(os.path.join(BUILD_DIR, depth, name))):
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    raise CheckFailed(f"{name} is not built in {BUILD_DIR}")


def pki(*args, check_rc=True):
    """Runs bodycam-pki with args."""
    return run([project_binary("bodycam-pki"), *args], check_rc=check_rc)


def tls_context(ca=None, cert=None, key=None, min_version=ssl.TLSVersion.TLSv1_3,
                max_version=None):
    """A client TLS context: verifies the broker against ca (hostname
    127.0.0.1 is in its SAN) and presents cert/key when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is not None:
        ctx.load_verify_locations(ca)
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _reason_code(value):
    """An int from paho's ReasonCodes (MQTT v5) or plain int (3.1.1)."""
    return int(getattr(value, "value", value))


class Message:
    def __init__(self, msg):
        self.topic = msg.topic
        self.payload = bytes(msg.payload)
        self.retain = bool(msg.retain)
        self.qos = msg.qos

    def json(self):
        return json.loads(self.payload)

    def __repr__(self):
        return f"<{self.topic} {self.payload[:60]!r}{' retained' if self.retain else ''}>"


class Client:
    """A paho-mqtt 1.6 client (1.x callback API) on its own network thread.

    It never reconnects by itself: a refused or lost connection stays
    visible (connected False, error set). Messages that arrive are kept in
    arrival order; the waits poll them (wait_for), never sleep.

    Thread hazard: paho's loop_start() lets its thread SSL_read while the
    caller's publish() does SSL_write on the same SSL object, which OpenSSL
    does not allow (it shows up as a random SSLEOFError, e.g. when a TLS 1.3
    session ticket is read during a write). So this thread waits for input
    without the lock, and every paho call that touches the socket, on either
    thread, holds io_lock."""

    def __init__(self, client_id, transport="tcp", protocol=mqtt.MQTTv5, tls=None,
                 username=None, password=None):
        self.client_id = client_id
        self.protocol = protocol
        self.transport = transport
        self.mqtt = mqtt.Client(client_id=client_id, protocol=protocol, transport=transport)
        if tls is not None:
            self.mqtt.tls_set_context(tls)
        if username is not None:
            self.mqtt.username_pw_set(username, password)
        self.lock = threading.Lock()     # the received/acked lists
        self.io_lock = threading.Lock()  # the socket (see above)
        self.messages = []
        self.connack = None   # reason code of the CONNACK, once one arrived
        self.connected = False
        self.closed = False   # the connection ended (refused, lost or closed)
        self.error = None     # why it failed, for messages
        self.published = set()
        self.subacks = {}
        self._stop = threading.Event()
        self._thread = None
        m = self.mqtt
        m.on_connect = self._on_connect
        m.on_disconnect = self._on_disconnect
        m.on_message = self._on_message
        m.on_publish = self._on_publish
        m.on_subscribe = self._on_subscribe

    # callbacks: signatures differ between MQTT 3.1.1 and v5 in paho 1.6
    def _on_connect(self, client, userdata, flags, rc, *properties):
        self.connack = _reason_code(rc)
        self.connected = self.connack == 0
        if not self.connected:
            self.error = f"CONNACK refused with reason code {self.connack}"

    def _on_disconnect(self, client, userdata, rc, *properties):
        self.connected = False
        self.closed = True
        if self.error is None:
            self.error = f"disconnected (reason {_reason_code(rc)})"

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append(Message(msg))

    def _on_publish(self, client, userdata, mid):
        with self.lock:
            self.published.add(mid)

    def _on_subscribe(self, client, userdata, mid, granted, *properties):
        with self.lock:
            self.subacks[mid] = [_reason_code(g) for g in granted]

    def _wait_readable(self, timeout):
        sock = self.mqtt.socket()
        if sock is None:
            return
        pending = getattr(sock, "pending", None)
        if pending is not None and pending():
            return
        try:
            select.select([sock], [], [], timeout)
        except (OSError, ValueError):
            pass

    def _loop(self):
        while not self._stop.is_set():
            self._wait_readable(0.05)
            try:
                with self.io_lock:
                    rc = self.mqtt.loop(timeout=0)
            except (OSError, ssl.SSLError) as e:  # paho 1.6 lets TLS alerts through
                self.error = self.error or f"{type(e).__name__}: {e}"
                self.connected = False
                self.closed = True
                return
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self.connected = False
                self.closed = True
                if self.error is None:
                    self.error = f"network loop ended: {mqtt.error_string(rc)}"
                return

    def connect(self, host, port, timeout=DEFAULT_TIMEOUT, keepalive=30):
        """True when the broker accepted the connection; False when the TCP
        or TLS handshake failed, the broker refused it or closed it
        (self.error says which)."""
        try:
            self.mqtt.connect(host, port, keepalive=keepalive)
        except (OSError, ssl.SSLError) as e:
            self.error = f"{type(e).__name__}: {e}"
            self.closed = True
            return False
        self._thread = threading.Thread(target=self._loop, name=f"mqtt-{self.client_id}",
                                        daemon=True)
        self._thread.start()
        try:
            wait_for(lambda: self.connack is not None or self.closed, timeout,
                     f"CONNACK for {self.client_id}")
        except CheckFailed as e:
            self.error = str(e)
            return False
        return self.connected

    def subscribe(self, topic, qos=1, timeout=DEFAULT_TIMEOUT):
        """Subscribes and waits for the SUBACK; returns its reason codes.
        (A plain ACL grants a foreign subscription too: test by what arrives.)"""
        with self.io_lock:
            rc, mid = self.mqtt.subscribe(topic, qos)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: {mqtt.error_string(rc)}")
        wait_for(lambda: mid in self.subacks, timeout, f"SUBACK for {topic}")
        return self.subacks[mid]

    def publish(self, topic, payload, qos=1, retain=False, timeout=DEFAULT_TIMEOUT):
        """Publishes; for QoS 1 waits for the PUBACK (which a broker sends
        for a message its ACL dropped as well)."""
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload, separators=(",", ":"))
        with self.io_lock:
            info = self.mqtt.publish(topic, payload, qos=qos, retain=retain)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish {topic}: {mqtt.error_string(info.rc)}")
        if qos > 0:
            wait_for(lambda: info.mid in self.published, timeout, f"PUBACK for {topic}")
        return info.mid

    def received(self, topic=None):
        with self.lock:
            return [m for m in self.messages if topic is None or m.topic == topic]

    def wait_message(self, topic, match=None, timeout=DEFAULT_TIMEOUT):
        """Waits for a message on topic (for which match(Message) is true, if
        given) and returns it."""
        def find():
            for m in self.received(topic):
                if match is None or match(m):
                    return m
            return None
        return wait_for(find, timeout, f"a message on {topic} at {self.client_id}")

    def tls_version(self):
        sock = self.mqtt.socket()
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    def close(self):
        try:
            if self.connected:
                with self.io_lock:
                    self.mqtt.disconnect()
                wait_for(lambda: self.closed, 2.0, f"{self.client_id} to disconnect")
        except CheckFailed:
            pass
        finally:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            sock = self.mqtt.socket()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Stack:
    """A real stack in a temp dir for the length of a with-block:
    `bodycam-stack up` on enter, `down` always on exit; the tail of every
    log is printed when the block raised or a check failed."""

    def __init__(self, cameras=2, extra_args=(), build_dir=None, agents=False, plugin=True):
        # Tests that play cameras themselves (with the cameras' own client
        # ids) must not race a running agent for the same session: agents
        # are off unless a test asks for them (or passes --agents).
        self.agents = agents
        self.plugin = plugin
        self.cameras = cameras
        self.extra_args = list(extra_args)
        self.build_dir = build_dir or BUILD_DIR
        self.dir = None
        self.info = {}
        self.failed = False
        self._counter = 0

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="bodycam-it-")
        try:
            run([STACK_RUNNER, "up", self.dir, "--cameras", str(self.cameras),
                 "--build-dir", self.build_dir,
                 "--agents" if self.agents else "--no-agents",
                 "--plugin" if self.plugin else "--no-plugin", *self.extra_args])
            self.reload()
        except BaseException:
            self.failed = True
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None or self.failed:
                self.print_logs()
        finally:
            down = run([STACK_RUNNER, "down", self.dir], check_rc=False)
            if down.returncode != 0:
                print(f"bodycam-stack down failed:\n{down.stdout}", file=sys.stderr)
            if os.environ.get("BODYCAM_KEEP_STATE"):
                print(f"state kept in {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def reload(self):
        with open(os.path.join(self.dir, "stack.json")) as f:
            self.info = json.load(f)
        return self.info

    def print_logs(self, lines=40):
        for path in sorted(glob.glob(os.path.join(self.dir, "logs", "*.log"))):
            print(f"----- last {lines} lines of {path}", file=sys.stderr)
            try:
                with open(path, errors="replace") as f:
                    print("".join(f.readlines()[-lines:]), file=sys.stderr)
            except OSError as e:
                print(f"(unreadable: {e})", file=sys.stderr)

    def restart(self, name):
        """bodycam-stack restart DIR name; returns the new stack.json."""
        run([STACK_RUNNER, "restart", self.dir, name])
        return self.reload()

    # ---- clients

    def _client_id(self, base):
        self._counter += 1
        return f"{base}-{os.getpid()}-{self._counter}"

    def tls_client(self, cert=None, key=None, client_id=None, max_version=None,
                   min_version=ssl.TLSVersion.TLSv1_3, ca=None, protocol=mqtt.MQTTv5):
        """An MQTT client for the mutual-TLS listener (not connected yet)."""
        ctx = tls_context(ca or self.info["ca_cert"], cert, key, min_version, max_version)
        return Client(client_id or self._client_id("tls"), tls=ctx, protocol=protocol)

    def device_client(self, device_id, **kw):
        d = self.info["devices"][device_id]
        return self.tls_client(d["cert"], d["key"], client_id=kw.pop("client_id", device_id),
                               **kw)

    def service_client(self, name="gateway", **kw):
        s = self.info["services"][name]
        return self.tls_client(s["cert"], s["key"],
                               client_id=kw.pop("client_id", self._client_id(name)), **kw)

    def dashboard_client(self, password=None, username=None, protocol=mqtt.MQTTv5):
        """An MQTT-over-WebSockets client with the dashboard's credentials
        (or the ones given)."""
        dash = self.info["dashboard"]
        c = Client(self._client_id("dashboard"), transport="websockets", protocol=protocol,
                   username=username or dash["username"],
                   password=dash["password"] if password is None else password)
        c.mqtt.ws_set_options(path="/mqtt")
        return c

    def connect(self, client, timeout=DEFAULT_TIMEOUT):
        """Connects a client from the factories to the listener it is for."""
        mqtt_info = self.info["mqtt"]
        port = mqtt_info["ws_port"] if client.transport == "websockets" else mqtt_info["tls_port"]
        return client.connect(mqtt_info["host"], port, timeout)

    def connected(self, client, timeout=DEFAULT_TIMEOUT):
        """connect() that must succeed; returns the client."""
        check(self.connect(client, timeout), f"{client.client_id} could not connect: "
                                             f"{client.error}")
        return client


def redis_command(port, *args, host="127.0.0.1", timeout=5.0):
    """One Redis command over RESP; returns str/int/None/list, raises
    CheckFailed on an error reply. (python3-redis is not installed here.)"""
    req = f"*{len(args)}\r\n".encode()
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        req += f"${len(a)}\r\n".encode() + a + b"\r\n"
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(req)
        f = s.makefile("rb")
        return _resp_read(f)


def _resp_read(f):
    line = f.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise CheckFailed(f"redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise CheckFailed(f"unexpected redis reply {line!r}")


def run_checks(checks, **stack_args):
    """Runs [(name, function(stack)), ...] against one Stack(**stack_args)
    and returns the exit status. A stack that does not come up counts as
    one failed check."""
    passed = failed = 0
    try:
        with Stack(**stack_args) as stack:
            for name, fn in checks:
                started = time.monotonic()
                try:
                    fn(stack)
                except Exception as e:  # noqa: BLE001 - every failure is reported
                    failed += 1
                    stack.failed = True
                    print(f"FAIL - {name}: {e}", flush=True)
                    if not isinstance(e, CheckFailed):
                        traceback.print_exc()
                else:
                    passed += 1
                    print(f"ok - {name} ({time.monotonic() - started:.1f} s)", flush=True)
    except Exception as e:  # noqa: BLE001
        failed += 1
        print(f"FAIL - stack: {e}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1
