"""plugin_helpers - what the bodycam-auth plugin tests (test_plugin_*.py) share.

They run the real stack with `bodycam-stack up --plugin` (Mosquitto loading
broker-plugins/bodycam-auth, a real Redis) through bodycam_test, and assert
by what arrives: a refused publish or subscription is proven by a sentinel
that arrives after the point where the refused message would have.

Here: valid payloads for every camera topic, the registry CLI, the broker's
metrics, certificates with hostile CNs signed by the stack's CA, and a raw
MQTT v5 client for packets that paho refuses to send (empty topics, topic
aliases).
"""

import datetime
import json
import os
import socket
import ssl
import struct
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bodycam_test import Client, CheckFailed, check, project_binary, run, wait_for

PREFIX = "bodycam/v1/"
METRICS = PREFIX + "broker/metrics"
_counter = [0]


def unique():
    _counter[0] += 1
    return _counter[0]


def now_ms():
    return int(time.time() * 1000)


def plugin_stack_args(cameras=2, **options):
    """run_checks/Stack keyword arguments for a stack with the plugin; options
    become plugin_opt_<name> (metrics every second unless given)."""
    options.setdefault("metrics_interval_s", 1)
    extra = ["--plugin", "--no-agents"]  # the tests play the cameras, with their client ids
    for name, value in options.items():
        extra += ["--plugin-opt", f"{name}={value}"]
    return {"cameras": cameras, "extra_args": extra}


def device_topic(device, kind):
    return f"{PREFIX}devices/{device}/{kind}"


def message(kind, device, n=None):
    """A valid message of the given camera topic kind (proto/README.md)."""
    n = unique() if n is None else n
    ts = now_ms()
    base = {"v": 1, "device": device, "ts": ts, "marker": n}  # unknown fields are ignored
    body = {
        "conn": {"status": "online", "session": n},
        "state": {"state": "standby", "warnings": 0, "since": ts, "seq": n},
        "health": {"battery_pct": 80, "charging": False, "storage_free": 1000,
                   "storage_total": 2000, "temperature_c": 30, "signal_dbm": -60,
                   "uptime_s": n, "fw": "1.0.0", "pending_uploads": 0},
        "event": {"seq": n, "type": "docked"},
        "ack": {"cmd_id": f"c{n}", "kind": "config", "ok": True},
        "upload": {"kind": "manifest", "recording_id": f"r{n}", "size": 100,
                   "sha256": "0" * 64, "key_id": "k1", "recorded_at": ts, "duration_ms": 1000,
                   "warnings": 2, "emergency": False, "chunk_size": 65536},
        "csr": {"cmd_id": f"c{n}", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n"
                                          "-----END CERTIFICATE REQUEST-----\n"},
    }[kind]
    base.update(body)
    return base


def marker_is(n):
    """Matches a message whose JSON carries n in marker (or seq, session)."""
    def match(m):
        try:
            j = m.json()
        except ValueError:
            return False
        return isinstance(j, dict) and n in (j.get("marker"), j.get("seq"), j.get("session"))
    return match


def registry(stack, *args, check_rc=True, stdin=None):
    """bodycam-registry against the stack's Redis."""
    redis = stack.info["redis"]
    argv = [project_binary("bodycam-registry"), "--redis", f"{redis['host']}:{redis['port']}",
            *args]
    if stdin is None:
        return run(argv, check_rc=check_rc)
    import subprocess
    out = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=60)
    if check_rc and out.returncode != 0:
        raise CheckFailed(f"{' '.join(argv)} exited {out.returncode}:\n{out.stdout}")
    return out


def dashboard_client(stack, client_id, username=None, password=None):
    """A WebSockets client with a chosen client id (the stack's factory picks one)."""
    dash = stack.info["dashboard"]
    c = Client(client_id, transport="websockets", username=username or dash["username"],
               password=dash["password"] if password is None else password)
    c.mqtt.ws_set_options(path="/mqtt")
    return c


def connect_eventually(stack, make_client, timeout=5.0, what="a connection"):
    """Connects fresh clients from make_client() until one is accepted (the
    plugin learns registry changes within a poll, 200 ms); returns it."""
    deadline = time.monotonic() + timeout
    while True:
        c = make_client()
        if stack.connect(c):
            return c
        c.close()
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {timeout:g} s waiting for {what}: {c.error}")
        time.sleep(0.1)


def refused(stack, client, what):
    """client must be refused at CONNACK (134/135: the plugin's MOSQ_ERR_AUTH)."""
    with client:
        ok = stack.connect(client)
        check(not ok, f"{what} was accepted")
        check(client.connack in (134, 135),
              f"{what}: expected CONNACK 134/135, got {client.connack} ({client.error})")


def fingerprint(cert_path):
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return cert.fingerprint(hashes.SHA256()).hex()


class MetricsWatcher:
    """A service client subscribed to the broker's retained metrics."""

    def __init__(self, stack, name="vault"):
        self.client = stack.connected(stack.service_client(name))
        self.client.subscribe(METRICS)

    def latest(self, after_ts=0, timeout=10.0):
        m = self.client.wait_message(METRICS, lambda m: m.json()["ts"] > after_ts, timeout)
        return max((x.json() for x in self.client.received(METRICS)), key=lambda j: j["ts"])

    def counter(self, name, after_ts=0):
        return self.latest(after_ts)["counters"][name]

    def wait_counter(self, name, predicate, timeout=10.0, what=None):
        """Waits until predicate(value of counter name) holds in a fresh report."""
        def look():
            start = now_ms()
            j = self.latest(start - 1, timeout=5.0)
            return j if predicate(j["counters"][name]) else None
        return wait_for(look, timeout, what or f"metrics counter {name}")

    def close(self):
        self.client.close()


def delivered_before_sentinel(observer, topic, match, send_sentinel, sentinel_topic,
                              sentinel_match):
    """Sends the sentinel (after the message under test was published and
    acknowledged), waits for it at observer, then returns the messages on
    topic that match: the message under test, had it been delivered, is
    among them (one broker thread, in-order delivery per connection)."""
    send_sentinel()
    observer.wait_message(sentinel_topic, sentinel_match)
    return [m for m in observer.received(topic) if match(m)]


# ---------------------------------------------------------------- certificates

def _der_len(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_seq(content):
    return b"\x30" + _der_len(len(content)) + content


UTF8_STRING, T61_STRING = 0x0C, 0x14


def sign_client_cert(stack, cn, name, extra_cns=(), raw_cn=None, raw_tag=UTF8_STRING):
    """A client certificate signed by the stack's fleet CA, written under
    DIR/hostile/<name>.{crt,key}. cn is the CN text; raw_cn (bytes of the same
    length as cn) then replaces it inside the signed certificate, as an ASN.1
    string of type raw_tag, so a CN can carry a NUL or bytes that are not
    UTF-8 (OpenSSL itself refuses to load a UTF8String that is not UTF-8, so
    such bytes travel as a T61String). extra_cns adds more CN attributes.
    Returns (cert_path, key_path)."""
    pki = stack.info["pki_dir"]
    with open(os.path.join(pki, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    with open(stack.info["ca_cert"], "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, c) for c in (cn, *extra_cns)]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    if raw_cn is not None:
        placeholder = bytes([UTF8_STRING, len(cn.encode())]) + cn.encode()
        check(len(raw_cn) == len(cn.encode()), "raw_cn must have the length of cn")
        tbs = cert.tbs_certificate_bytes
        check(tbs.count(placeholder) == 1, "the placeholder CN must occur once")
        tbs = tbs.replace(placeholder, bytes([raw_tag, len(raw_cn)]) + raw_cn)
        sig = ca_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        # Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }
        alg = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256
        bits = b"\x03" + _der_len(len(sig) + 1) + b"\x00" + sig
        der = _der_seq(tbs + alg + bits)
    out_dir = os.path.join(stack.dir, "hostile")
    os.makedirs(out_dir, exist_ok=True)
    cert_path = os.path.join(out_dir, f"{name}.crt")
    key_path = os.path.join(out_dir, f"{name}.key")
    pem = b"-----BEGIN CERTIFICATE-----\n"
    import base64
    b64 = base64.b64encode(der)
    pem += b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    pem += b"\n-----END CERTIFICATE-----\n"
    with open(cert_path, "wb") as f:
        f.write(pem)
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


# ---------------------------------------------------------------- raw MQTT v5

def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("!H", len(b)) + b


class RawClient:
    """A bare MQTT v5 client over the stack's mutual-TLS listener, for packets
    the paho client will not build. Reads are blocking with a timeout."""

    def __init__(self, stack, cert, key):
        self.stack = stack
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(stack.info["ca_cert"])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key)
        mqtt = stack.info["mqtt"]
        raw = socket.create_connection((mqtt["host"], mqtt["tls_port"]), timeout=5.0)
        self.sock = ctx.wrap_socket(raw, server_hostname=mqtt["host"])
        self.buf = b""

    def send(self, packet_type, flags, body):
        self.sock.sendall(bytes([(packet_type << 4) | flags]) + _varint(len(body)) + body)

    def read_packet(self, timeout=5.0):
        """(type, flags, body) or None when the broker closed the connection."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        if len(self.buf) >= i + length:
                            pkt = self.buf[:i + length]
                            self.buf = self.buf[i + length:]
                            return pkt[0] >> 4, pkt[0] & 0x0F, pkt[i:]
                        break
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLError, OSError):
                return None
            if not data:
                return None
            self.buf += data

    def connect(self, client_id, keepalive=30):
        props = b""
        body = _str("MQTT") + bytes([5, 0x02]) + struct.pack("!H", keepalive)
        body += _varint(len(props)) + props + _str(client_id)
        self.send(1, 0, body)
        pkt = self.read_packet()
        check(pkt is not None and pkt[0] == 2, f"no CONNACK: {pkt}")
        return pkt[2][1]  # reason code

    def publish(self, topic, payload, qos=0, retain=False, mid=1, topic_alias=None):
        props = b""
        if topic_alias is not None:
            props += b"\x23" + struct.pack("!H", topic_alias)
        body = _str(topic)
        if qos:
            body += struct.pack("!H", mid)
        body += _varint(len(props)) + props
        body += payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send(3, (qos << 1) | (1 if retain else 0), body)

    def subscribe(self, topic_filter, mid=1, qos=1):
        body = struct.pack("!H", mid) + _varint(0) + _str(topic_filter) + bytes([qos])
        self.send(8, 2, body)

    def close(self):
        try:
            self.send(14, 0, b"\x00")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
