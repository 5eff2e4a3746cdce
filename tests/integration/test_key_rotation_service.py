"""key-rotation-service: bodycam-key-rotation alone, against a real stack
(broker with the plugin, gateway, fleet-health, Redis), with the cameras played
by MQTT clients holding the cameras' own certificates (no agents) and the vault
played by the test (--no-vault: it answers a recording-key campaign the way
the vault does, bc_campaign_key_ready).

  recording key     every online camera gets rotate-recording-key at the
                    campaign's pace; an error ack is sent again after the
                    backoff; an offline camera stays pending and gets it
                    when it is back; the campaign is done; fleet-health's
                    summary carries the progress
  timeout           no ack within ack_timeout_s: the same camera gets a new
                    command (a new id); the late ack of the old one changes
                    nothing
  identity          request -> CSR -> install: the install goes out only
                    once the broker applied the new fingerprint (its
                    bodycam:registry:applied entry), so the camera's first
                    reconnect is accepted; the certificate is the
                    camera's new key, issued by the fleet CA with its CN; its
                    fingerprint is in the registry before the install; the
                    broker takes the new certificate; after the install's ok
                    the old certificate is gone from the registry and refused
  forged CSR        another camera's CN: identity_refused alert queued on
                    fleet/alerts, the camera failed; an unsolicited CSR
                    alerts and changes no campaign
  install timeout   no ack of the install: its fingerprint leaves the registry
  reconnect pace    installs are spread by reconnects_max_per_s (1 here)
  pause/resume/abort  nothing is sent while paused, sending goes on after
                    resume, nothing after abort

Timings are shortened with BODYCAM_KEY_ROTATION_SET (the stack runner's
key-rotation component).
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import NameOID

from bodycam_test import CheckFailed, check, project_binary, redis_command, run_checks, wait_for

PREFIX = "bodycam/v1/"
ACK_TIMEOUT_S = 5  # a CSR waits for a reconnect token and the broker to have the certificate
os.environ["BODYCAM_KEY_ROTATION_SET"] = " ".join([
    f"ack_timeout_s={ACK_TIMEOUT_S}", "retry_backoff_s=1", "retry_backoff_max_s=2",
    "attempts_max=4", "offline_recheck_s=1", "reconnects_max_per_s=1", "command_ttl_s=60",
    "send_interval_ms=20"])
# The cameras played here send no health: fleet-health must not take them for
# offline (3 x the agents' 10 s health interval) in the middle of the run.
os.environ["BODYCAM_FLEET_HEALTH_SET"] = "offline_after_s=3600"

CAMERAS = {}  # dev -> FakeCamera (one connection per camera for the whole run)
IDENTITY = {}  # dev -> (cert path, key path) the camera uses now
SCRATCH = tempfile.mkdtemp(prefix="kr-it-")


def now_ms():
    return int(time.time() * 1000)


def rc(stack, *args):
    return redis_command(stack.info["redis"]["port"], *args)


def as_dict(flat):
    flat = flat or []
    return dict(zip(flat[0::2], flat[1::2]))


def ctl(stack, *args, expect=0):
    """bodycamctl on the stack's Redis (no vault: unaudited); returns its JSON."""
    conf = os.path.join(SCRATCH, "bodycamctl.conf")
    if not os.path.exists(conf):
        with open(conf, "w") as f:
            f.write(f"redis_port = {stack.info['redis']['port']}\noperator = kr-test\n")
    out = subprocess.run([project_binary("bodycamctl"), "--config", conf, "--json", *args],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    check(out.returncode == expect, f"bodycamctl {' '.join(args)} exited {out.returncode} "
                                    f"(wanted {expect}): {out.stdout} {out.stderr}")
    return json.loads(out.stdout)


def campaign(stack, cid):
    return ctl(stack, "keys", "show", cid)


def device_states(stack, cid):
    return {d["device"]: d for d in campaign(stack, cid)["devices"]}


def wait_device(stack, cid, dev, state, timeout=15.0):
    def ok():
        d = device_states(stack, cid)[dev]
        return d if d["state"] == state else None
    try:
        return wait_for(ok, timeout, f"{dev} {state} in {cid}", interval=0.1)
    except CheckFailed as e:
        raise CheckFailed(f"{e}; now {device_states(stack, cid)[dev]}")


def fingerprints(stack, dev):
    fps = rc(stack, "HGET", f"bodycam:device:{dev}", "fingerprints") or ""
    return set(f.lower() for f in fps.split(",") if f)


def cert_fingerprint(pem):
    cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def outbox_alerts(stack, kind="identity_refused"):
    out = []
    for _, kv in rc(stack, "XRANGE", "bodycam:stream:outbox", "-", "+") or []:
        e = as_dict(kv)
        if e.get("topic") == PREFIX + "fleet/alerts":
            a = json.loads(e["payload"])
            if a["kind"] == kind:
                out.append(a)
    return out


def outbox_summaries(stack):
    out = []
    for _, kv in rc(stack, "XRANGE", "bodycam:stream:outbox", "-", "+") or []:
        e = as_dict(kv)
        if e.get("topic") == PREFIX + "fleet/summary":
            out.append(json.loads(e["payload"]))
    return out


class FakeCamera:
    """A camera played by an MQTT client: its birth (so fleet-health has it
    online), its commands, its acks and CSRs."""

    def __init__(self, stack, dev, cert=None, key=None, client_id=None):
        self.stack, self.dev = stack, dev
        cert, key = cert or IDENTITY[dev][0], key or IDENTITY[dev][1]
        self.client = stack.tls_client(cert, key, client_id=client_id or dev)
        stack.connected(self.client)
        self.client.subscribe(f"{PREFIX}devices/{dev}/cmd/+")
        self.publish("conn", {"v": 1, "device": dev, "status": "online", "session": now_ms(),
                              "ts": now_ms(), "fw": "1.0.0"}, retain=True)

    def publish(self, kind, msg, retain=False):
        self.client.publish(f"{PREFIX}devices/{self.dev}/{kind}", msg, retain=retain)

    def commands(self, kind):
        return [(m.json(), m) for m in self.client.received(f"{PREFIX}devices/{self.dev}/cmd/{kind}")]

    def wait_command(self, kind, after=(), timeout=15.0):
        """The first command of kind whose id is not in after."""
        def find():
            return next((c for c, _ in self.commands(kind) if c["id"] not in after), None)
        return wait_for(find, timeout, f"{self.dev}: a {kind} command", interval=0.02)

    def ack(self, cmd, ok=True, error=None):
        a = {"v": 1, "device": self.dev, "ts": now_ms(), "cmd_id": cmd["id"], "kind": cmd["kind"],
             "ok": ok}
        if not ok:
            a["error"] = error or "refused"
        self.publish("ack", a)

    def csr(self, cmd_id, pem):
        self.publish("csr", {"v": 1, "device": self.dev, "ts": now_ms(), "cmd_id": cmd_id,
                             "csr": pem})

    def close(self):
        self.client.close()


def camera(stack, dev):
    if dev not in CAMERAS:
        IDENTITY.setdefault(dev, (stack.info["devices"][dev]["cert"],
                                  stack.info["devices"][dev]["key"]))
        CAMERAS[dev] = FakeCamera(stack, dev)
        wait_for(lambda: rc(stack, "HGET", f"bodycam:camera:{dev}", "online") == "1", 15,
                 f"fleet-health to see {dev} online")
    return CAMERAS[dev]


def new_csr(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    req = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, hashes.SHA256()))
    return key, req.public_bytes(serialization.Encoding.PEM).decode()


def play_vault(stack, cid):
    """What the vault does for a recording-key campaign: a new X25519 key,
    its record, then bc_campaign_key_ready (key_id, running)."""
    entries = rc(stack, "XRANGE", "bodycam:stream:vault-control", "-", "+") or []
    asked = [as_dict(kv) for _, kv in entries]
    check(any(e.get("op") == "new-recording-key" and e.get("campaign") == cid
              and e.get("by") == "operator:kr-test" for e in asked),
          f"no vault-control request for {cid}: {asked}")
    raw = x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw).hexdigest()[:16]
    rc(stack, "HSET", f"bodycam:recording-key:{key_id}", "key_id", key_id, "public",
       base64.b64encode(raw).decode(), "created_at", now_ms(), "status", "current")
    rc(stack, "SADD", "bodycam:recording-keys", key_id)
    rc(stack, "SET", "bodycam:recording-keys:current", key_id)
    rc(stack, "HSET", f"bodycam:campaign:{cid}", "key_id", key_id, "state", "running",
       "started_at", now_ms())
    return key_id, base64.b64encode(raw).decode()


# ---------------------------------------------------------------- checks

def check_recording_key(stack):
    cams = ["cam-001", "cam-002", "cam-003", "cam-004"]
    for dev in cams:
        camera(stack, dev)
    created = ctl(stack, "keys", "rotate-recording", "--all", "--pace", "2")["campaign"]
    cid = created["id"]
    check(created["state"] == "awaiting_key" and created["total"] == 5,
          f"created: {created}")
    time.sleep(0.5)  # nothing may be sent before the key exists (a duration, not a condition)
    check(all(not CAMERAS[d].commands("rotate-recording-key") for d in cams),
          "a command went out before the vault made the key")
    key_id, public = play_vault(stack, cid)

    arrivals = {}
    for dev in cams:
        cmd = CAMERAS[dev].wait_command("rotate-recording-key")
        arrivals[dev] = time.monotonic()
        check(cmd["device"] == dev and cmd["params"]["key_id"] == key_id
              and cmd["params"]["public_key"] == public and "sig" in cmd
              and cmd["expires_at"] > cmd["issued_at"], f"{dev}: command {cmd}")
    spread = max(arrivals.values()) - min(arrivals.values())
    check(spread >= 1.2, f"4 cameras at pace 2/s arrived within {spread:.2f} s")

    summary = wait_for(lambda: next((s for s in reversed(outbox_summaries(stack))
                                     if s.get("rotations_active") == 1
                                     and s.get("rotation_cameras") == 5), None),
                       10, "a fleet summary with the campaign's progress")
    check(summary.get("rotation_done", 0) <= 5, f"summary {summary}")

    first = {dev: CAMERAS[dev].commands("rotate-recording-key")[0][0] for dev in cams}
    for dev in ("cam-001", "cam-002", "cam-003"):
        CAMERAS[dev].ack(first[dev])
    CAMERAS["cam-004"].ack(first["cam-004"], ok=False, error="key store busy")
    for dev in ("cam-001", "cam-002", "cam-003"):
        wait_device(stack, cid, dev, "done")
    again = CAMERAS["cam-004"].wait_command("rotate-recording-key", after={first["cam-004"]["id"]})
    d = device_states(stack, cid)["cam-004"]
    check(d["attempts"] == 2 and d["state"] == "sent", f"cam-004 after its error: {d}")
    CAMERAS["cam-004"].ack(again)
    wait_device(stack, cid, "cam-004", "done")

    # cam-005 was never online: still pending, the campaign still running
    c = campaign(stack, cid)["campaign"]
    check(c["state"] == "running" and c["done"] == 4 and c["pending"] == 1,
          f"with cam-005 offline: {c}")
    cam5 = camera(stack, "cam-005")
    cmd5 = cam5.wait_command("rotate-recording-key")
    cam5.ack(cmd5)
    wait_for(lambda: campaign(stack, cid)["campaign"]["state"] == "done", 15,
             f"campaign {cid} done")
    c = campaign(stack, cid)["campaign"]
    check(c["done"] == 5 and c["failed"] == 0, f"done: {c}")
    wait_for(lambda: (outbox_summaries(stack) or [{}])[-1].get("rotations_active", 0) == 0,
             10, "a summary without active rotations")
    def status():  # written at most once a second while the counters move
        st = as_dict(rc(stack, "HGETALL", "bodycam:key-rotation:1"))
        return st if int(st["sent_keys"]) >= 6 and int(st["done"]) >= 5 else None
    wait_for(status, 5, "the status hash to count 6 commands and 5 cameras done")


def check_timeout_resend(stack):
    cam = camera(stack, "cam-001")
    seen = {c["id"] for c, _ in cam.commands("rotate-recording-key")}
    cid = ctl(stack, "keys", "rotate-recording", "--camera", "cam-001")["campaign"]["id"]
    play_vault(stack, cid)
    first = cam.wait_command("rotate-recording-key", after=seen)
    started = time.monotonic()
    second = cam.wait_command("rotate-recording-key", after=seen | {first["id"]},
                              timeout=ACK_TIMEOUT_S + 10)
    waited = time.monotonic() - started
    check(waited >= ACK_TIMEOUT_S - 0.5, f"resent after {waited:.1f} s, before the timeout")
    d = device_states(stack, cid)["cam-001"]
    check(d["attempts"] == 2 and d["cmd_id"] == second["id"], f"after the timeout: {d}")
    cam.ack(first)  # late: the camera's current command is the second
    time.sleep(0.5)
    check(device_states(stack, cid)["cam-001"]["state"] == "sent", "a late ack counted")
    cam.ack(second)
    wait_device(stack, cid, "cam-001", "done")


def seen_ids(cam, kind):
    return {c["id"] for c, _ in cam.commands(kind)}


def identity_round(stack, cam, seen, cn=None):
    """request (an id not in seen) -> ack -> CSR; returns (request, key, csr pem)."""
    req = cam.wait_command("rotate-identity", after=seen)
    check(req["params"] == {"phase": "request"}, f"{cam.dev}: request {req}")
    cam.ack(req)
    key, pem = new_csr(cn or cam.dev)
    cam.csr(req["id"], pem)
    return req, key, pem


def write_identity(dev, cert_pem, key):
    cert_path = os.path.join(SCRATCH, f"{dev}-{now_ms()}.crt")
    key_path = cert_path[:-4] + ".key"
    with open(cert_path, "w") as f:
        f.write(cert_pem)
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def connect_with(stack, cert, key, client_id, timeout=10.0):
    """A client connected with this identity; a refused attempt is tried
    again with a new client (the broker's registry follows within a second)."""
    errors = []

    def attempt():
        c = stack.tls_client(cert, key, client_id=client_id)
        if stack.connect(c):
            return c
        errors.append(c.error)
        c.close()
        return None
    try:
        return wait_for(attempt, timeout, f"the broker to accept {cert}", interval=0.3)
    except CheckFailed as e:
        raise CheckFailed(f"{e}: {errors[-3:]}")


def check_identity(stack):
    cam = camera(stack, "cam-002")
    old = fingerprints(stack, "cam-002")
    seen = seen_ids(cam, "rotate-identity")
    cid = ctl(stack, "keys", "rotate-identity", "--camera", "cam-002")["campaign"]["id"]
    req, key, _ = identity_round(stack, cam, seen)
    install = cam.wait_command("rotate-identity", after=seen | {req["id"]})
    check(install["params"]["phase"] == "install", f"install: {install}")
    cert_pem = install["params"]["cert"]
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    ca = x509.load_pem_x509_certificate(open(stack.info["ca_cert"], "rb").read())
    check(cert.public_key().public_numbers() == key.public_key().public_numbers(),
          "the certificate is not for the camera's new key")
    check(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cam-002"
          and cert.issuer == ca.subject, f"subject {cert.subject}, issuer {cert.issuer}")
    # the broker applied the registry that holds the new fingerprint before
    # the install went out: the camera's FIRST reconnect must be accepted
    # (no retry, unlike connect_with), at once
    cert_path, key_path = write_identity("cam-002", cert_pem, key)
    CAMERAS.pop("cam-002").close()
    fresh = stack.tls_client(cert_path, key_path, client_id="cam-002")
    check(stack.connect(fresh), f"the first reconnect with the new certificate was refused: "
                                f"{fresh.error}")
    version = int(rc(stack, "GET", "bodycam:registry:version"))
    applied = as_dict(rc(stack, "HGETALL", "bodycam:registry:applied"))
    check(len(applied) == 1, f"bodycam:registry:applied: {applied} (one broker)")
    reported, stamp = (int(x) for x in next(iter(applied.values())).split())
    check(reported == version and abs(now_ms() - stamp) < 10000,
          f"the broker reports {reported} at {stamp}, registry version {version}")
    fp = cert_fingerprint(cert_pem)
    check(fingerprints(stack, "cam-002") == old | {fp},
          f"registry before the install's ack: {fingerprints(stack, 'cam-002')}")
    check(device_states(stack, cid)["cam-002"]["state"] == "installing", "not installing")

    # the camera acks the install over its new connection (the same client
    # id: the broker allows a camera no other)
    fresh.publish(f"{PREFIX}devices/cam-002/ack",
                  {"v": 1, "device": "cam-002", "ts": now_ms(), "cmd_id": install["id"],
                   "kind": "rotate-identity", "ok": True})
    wait_device(stack, cid, "cam-002", "done")
    check(fingerprints(stack, "cam-002") == {fp},
          f"registry after the install: {fingerprints(stack, 'cam-002')} (new {fp})")
    # ... and the broker's entry follows that registry change
    after = int(rc(stack, "GET", "bodycam:registry:version"))
    wait_for(lambda: [v for v in as_dict(rc(stack, "HGETALL", "bodycam:registry:applied")).values()
                      if int(v.split()[0]) == after], 5,
             f"bodycam:registry:applied to report version {after}", interval=0.1)
    fresh.close()
    IDENTITY["cam-002"] = (cert_path, key_path)

    def old_refused():
        # the camera's own client id: the plugin refuses any other one for a
        # camera certificate, which would pass even with the old one accepted
        c = stack.device_client("cam-002", client_id="cam-002")
        accepted = stack.connect(c)
        c.close()
        return not accepted
    wait_for(old_refused, 10, "the broker to refuse the old certificate", interval=0.3)
    check(campaign(stack, cid)["campaign"]["state"] == "done", "campaign not done")


def check_forged_and_unsolicited(stack):
    cam = camera(stack, "cam-003")
    before = fingerprints(stack, "cam-003")
    seen = seen_ids(cam, "rotate-identity")
    cid = ctl(stack, "keys", "rotate-identity", "--camera", "cam-003")["campaign"]["id"]
    identity_round(stack, cam, seen, cn="cam-004")
    alert = wait_for(lambda: next((a for a in outbox_alerts(stack) if a["device"] == "cam-003"),
                                  None), 10, "identity_refused for cam-003")
    check(alert["status"] == "raised" and "cam-003" in alert.get("detail", ""),
          f"alert: {alert}")
    d = wait_device(stack, cid, "cam-003", "failed")
    check("CSR refused" in d["detail"], f"detail: {d}")
    check(fingerprints(stack, "cam-003") == before, "the registry changed for a forged CSR")
    check(not [c for c, _ in cam.commands("rotate-identity") if c["params"]["phase"] == "install"],
          "an install went out for a forged CSR")
    check(campaign(stack, cid)["campaign"]["state"] == "done", "campaign not finished")

    # unsolicited: a CSR answering no request
    cam4 = camera(stack, "cam-004")
    n = len(outbox_alerts(stack))
    _, pem = new_csr("cam-004")
    cam4.csr("made-up-request", pem)
    alert = wait_for(lambda: next((a for a in outbox_alerts(stack)[n:]
                                   if a["device"] == "cam-004"), None), 10,
                     "identity_refused for the unsolicited CSR")
    check("no identity request" in alert["detail"], f"alert: {alert}")
    check(not [c for c, _ in cam4.commands("rotate-identity")], "cam-004 got a command")


def check_install_timeout_and_reconnect_pace(stack):
    devs = ["cam-003", "cam-004", "cam-005"]
    cams = [camera(stack, d) for d in devs]
    before = {d: fingerprints(stack, d) for d in devs}
    seen = {c.dev: seen_ids(c, "rotate-identity") for c in cams}
    cid = ctl(stack, "keys", "rotate-identity", "--camera", "cam-003", "--camera", "cam-004",
              "--camera", "cam-005", "--pace", "100")["campaign"]["id"]
    rounds = [identity_round(stack, c, seen[c.dev]) for c in cams]  # three CSRs at once
    installs, arrived = {}, {}
    for c, (req, _, _) in zip(cams, rounds):
        installs[c.dev] = c.wait_command("rotate-identity", after=seen[c.dev] | {req["id"]})
        arrived[c.dev] = time.monotonic()
    spread = max(arrived.values()) - min(arrived.values())
    check(spread >= 1.5, f"3 installs at 1 reconnect/s arrived within {spread:.2f} s")
    fps = {d: cert_fingerprint(installs[d]["params"]["cert"]) for d in devs}
    for d in devs:
        check(fps[d] in fingerprints(stack, d), f"{d}: new fingerprint not registered")
    # nobody acks the installs: after the timeout the camera is asked again,
    # and the new fingerprint stays (the camera may already use it)
    wait_for(lambda: "no answer" in device_states(stack, cid)["cam-003"]["detail"]
             or device_states(stack, cid)["cam-003"]["attempts"] >= 2, ACK_TIMEOUT_S + 10,
             "cam-003's install to time out")
    for d in devs:
        check(set(before[d]) <= set(fingerprints(stack, d)), f"{d}: the old certificate left")
    check(fps["cam-003"] in fingerprints(stack, "cam-003"),
          "the unanswered certificate was withdrawn: a camera that switched would be locked out")
    d3 = device_states(stack, cid)["cam-003"]
    timed_out = d3["state"] == "pending" and "no answer" in d3["detail"]
    asked_again = d3["state"] == "sent" and d3["attempts"] >= 2
    check(timed_out or asked_again, f"cam-003 after the install timeout: {d3}")
    ctl(stack, "keys", "abort", cid)


def check_pause_resume_abort(stack):
    devs = ["cam-001", "cam-003", "cam-004"]
    cams = {d: camera(stack, d) for d in devs}
    seen = {d: {c["id"] for c, _ in cams[d].commands("rotate-recording-key")} for d in devs}
    cid = ctl(stack, "keys", "rotate-recording", "--camera", "cam-001", "--camera", "cam-003",
              "--camera", "cam-004", "--pace", "1")["campaign"]["id"]
    play_vault(stack, cid)

    def got():
        return {d for d in devs if any(c["id"] not in seen[d]
                                       for c, _ in cams[d].commands("rotate-recording-key"))}
    wait_for(lambda: got() or None, 10, "the first command")
    paused = ctl(stack, "keys", "pause", cid)
    check(paused["changed"] and paused["campaign"]["state"] == "paused", f"pause: {paused}")
    check(not ctl(stack, "keys", "pause", cid)["changed"], "a second pause changed something")
    n = len(got())
    time.sleep(2.5)  # at pace 1/s two more would have gone out (a duration, not a condition)
    check(len(got()) == n, f"sent while paused: {got()}")
    ctl(stack, "keys", "resume", cid)
    wait_for(lambda: len(got()) > n, 10, "a command after resume")
    aborted = ctl(stack, "keys", "abort", cid)["campaign"]
    check(aborted["state"] == "aborted" and aborted["pending"] == 0, f"abort: {aborted}")
    n = len(got())
    time.sleep(1.5)
    check(len(got()) == n, "sent after abort")
    ctl(stack, "keys", "resume", cid, expect=3)
    listed = [c["id"] for c in ctl(stack, "keys", "campaigns")["campaigns"]]
    check(cid not in listed, f"aborted campaign still listed as active: {listed}")


def main():
    checks = [
        ("recording key: pace, acks, error ack, offline camera, summary", check_recording_key),
        ("no ack: resent after ack_timeout_s, late ack ignored", check_timeout_resend),
        ("identity: CSR, certificate, registry, reconnect, old one refused", check_identity),
        ("forged CN and unsolicited CSR: identity_refused", check_forged_and_unsolicited),
        ("install timeout withdraws the certificate; reconnect pace",
         check_install_timeout_and_reconnect_pace),
        ("pause, resume, abort", check_pause_resume_abort),
    ]
    try:
        return run_checks(checks, cameras=5, extra_args=["--no-vault"])
    finally:
        for c in CAMERAS.values():
            c.close()
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
