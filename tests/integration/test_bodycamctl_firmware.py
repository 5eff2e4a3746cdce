#!/usr/bin/env python3
"""bodycamctl-firmware: `bodycamctl firmware ...` against a real redis-server
(started here on a free loopback port: the command needs nothing else; the
rollouts' progress is bodycam-firmware-rollout's, tested in
test_firmware_rollout.py).

Guarantees checked:
- publish builds the manifest (size, SHA-256, chunks) and signs it with
  firmware_key_file: the stored manifest verifies with the public key here
  (Python's own Ed25519 over the canonical bytes of proto/firmware.h) and the
  stored chunks are the image; the same image again is a no-op
  (published: false), another image under that version is refused (exit 3)
  and leaves the first alone;
- a manifest signed offline is accepted when it verifies with
  firmware_pubkey_file and describes the image, refused (exit 5, nothing
  stored) when signed by another key or for another image; a
  firmware_key_file that does not match firmware_pubkey_file is refused
  before anything is stored;
- start with explicit --wave lists (a camera named twice stays in its
  first wave), the --json rollout hash with numbers; status (the active
  one) and show; pause / resume / approve in and out of their states;
  abort, and abort --rollback signing a rollback manifest of the version a
  camera came from (exit 4 until that version is published);
- exit codes: 2 usage (bad waves, bad ids), 3 refused (second active
  rollout, inactive camera), 4 unknown rollout / version / camera, and one
  {"error": ...} document with --json.
"""

import base64
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

from bodycam_test import CheckFailed, check, project_binary, redis_command  # noqa: E402

CAMS = ["cam-001", "cam-002", "cam-003", "cam-004", "cam-005"]
INACTIVE = "cam-006"
DOMAIN = b"bodycam/v1/firmware"


class Env:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bodycamctl-fw-")
        self.redis = None
        self.port = None

    # ---- processes and files

    def start_redis(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
             "--save", "", "--appendonly", "no"],
            stdout=open(os.path.join(self.dir, "redis.log"), "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.rc("PING") == "PONG":
                    return
            except (OSError, CheckFailed):
                pass
            check(time.monotonic() < deadline, "redis-server did not answer")
            time.sleep(0.05)

    def stop(self):
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
        if os.environ.get("BODYCAM_KEEP_STATE"):
            print(f"state kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def keypair(self, name):
        key, pub = self.path(f"{name}.key"), self.path(f"{name}.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", key], check=True)
        subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True)
        return key, pub

    def config(self, name, **options):
        path = self.path(name)
        lines = ["redis_host = 127.0.0.1", f"redis_port = {self.port}", "operator = tester"]
        lines += [f"{k} = {v}" for k, v in options.items()]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def image(self, name, size, seed):
        data = hashlib.sha256(seed.encode()).digest() * (size // 32 + 1)
        data = data[:size]
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(data)
        return path, data

    def rc(self, *args):
        return redis_command(self.port, *args)

    # ---- bodycamctl

    def ctl(self, *args, config=None):
        out = subprocess.run([project_binary("bodycamctl"), "--config", config or self.conf,
                              *[str(a) for a in args]],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=60)
        return out.returncode, out.stdout, out.stderr

    def fw(self, *args, expect=0, config=None):
        """bodycamctl --json firmware ARGS: the exit code checked, the JSON returned."""
        code, out, err = self.ctl("--json", "firmware", *args, config=config)
        check(code == expect, f"firmware {' '.join(map(str, args))}: exit {code}, wanted "
                              f"{expect}: {out.strip()} {err.strip()}")
        doc = json.loads(out)  # exactly one document, also on failure
        if expect != 0:
            check(doc["error"]["exit"] == expect, f"error document {doc}")
            lines = [ln for ln in err.splitlines() if ln.strip()]
            check(lines and lines[0].startswith("bodycamctl: "), f"stderr {err!r}")
        return doc


# ---- manifests, as proto/firmware.h defines them

def canonical(m):
    def field(b):
        return struct.pack(">I", len(b)) + b

    def i64(v):
        return field(struct.pack(">q", v))
    return (DOMAIN + field(m["version"].encode()) + i64(m["size"]) +
            field(m["sha256"].encode()) + i64(m["chunk_size"]) + i64(m["chunks"]) +
            field(m.get("min_version", "").encode()) + i64(1 if m["rollback"] else 0))


def load_pub(path):
    with open(path, "rb") as f:
        return serialization.load_pem_public_key(f.read())


def verifies(m, pub_path):
    try:
        load_pub(pub_path).verify(base64.b64decode(m["sig"]), canonical(m))
        return True
    except InvalidSignature:
        return False


def sign_manifest(m, key_path):
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    m = dict(m)
    m["sig"] = base64.b64encode(key.sign(canonical(m))).decode()
    return m


def manifest_of(data, version, chunk_size=65536):
    return {"v": 1, "version": version, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "chunk_size": chunk_size,
            "chunks": (len(data) + chunk_size - 1) // chunk_size, "rollback": False}


def stored(env, version):
    flat = env.rc("HGETALL", f"bodycam:firmware:{version}") or []
    return dict(zip(flat[0::2], flat[1::2]))


# ---- the checks

def check_help_and_usage(env):
    for args in (["firmware", "--help"], ["help", "firmware"], ["help", "firmware", "publish"],
                 ["firmware", "start", "--help"], ["firmware", "abort", "-h"]):
        code, out, err = env.ctl(*args)
        check(code == 0 and out.strip() and err == "", f"{args}: exit {code} {err!r}")
    code, out, _ = env.ctl("--help")
    check("firmware_key_file" in out and "firmware publish" in out, "top help lists firmware")
    for args in (["start", "1.1.0", "--waves", "10,5,100"], ["start", "1.1.0", "--waves", "1,50"],
                 ["start", "1.1.0", "--waves", "0,100"], ["start", "x.y"],
                 ["start", "1.1.0", "--wave", "cam-001", "--camera", "cam-002"],
                 ["start", "1.1.0", "--wave", ","], ["start", "1.1.0", "--success-pct", "0"],
                 ["status", "C1"], ["pause", "R1x"], ["publish", env.path("none.img")],
                 ["publish", env.path("none.img"), "--version", "1.0"], ["bogus"]):
        env.fw(*args, expect=2)


def check_publish_signs_and_stores(env):
    path, data = env.image("a.img", 200_000, "a")
    out = env.fw("publish", path, "--version", "1.1.0")
    sha = hashlib.sha256(data).hexdigest()
    check(out == {"version": "1.1.0", "sha256": sha, "size": 200_000, "chunks": 4,
                  "chunk_size": 65536, "min_version": "", "published": True}, f"publish {out}")
    rec = stored(env, "1.1.0")
    m = json.loads(rec["manifest"])
    check(m["sha256"] == sha and m["size"] == 200_000 and m["rollback"] is False, f"manifest {m}")
    check(verifies(m, env.pub), "the stored manifest does not verify with the firmware key")
    check(not verifies(m, env.other_pub), "it verifies with another key too?")
    check(rec["published_by"] == "operator:tester", f"record {rec}")
    raw = [raw_hget(env, "bodycam:firmware:1.1.0:chunks", str(n)) for n in range(4)]
    chunks = b"".join(raw)
    check(chunks == data and [len(r) for r in raw] == [65536, 65536, 65536, 3392],
          f"chunks {[len(r) for r in raw]}")
    check(env.rc("ZSCORE", "bodycam:firmware:versions", "1.1.0") is not None, "versions zset")

    # the same image again: nothing changes
    again = env.fw("publish", path, "--version", "1.1.0")
    check(again["published"] is False and again["sha256"] == sha, f"again {again}")
    check(stored(env, "1.1.0")["published_at"] == rec["published_at"], "republished")
    # another image under that version: refused, the first stays
    other, _ = env.image("b.img", 1000, "b")
    env.fw("publish", other, "--version", "1.1.0", expect=3)
    check(stored(env, "1.1.0")["sha256"] == sha, "the published image was replaced")
    check(b"".join(raw_hget(env, "bodycam:firmware:1.1.0:chunks", str(n)) for n in range(4))
          == data, "the refused image overwrote the published chunks")
    # a smaller chunk size and a minimum version go into the signed manifest
    small, sdata = env.image("c.img", 1000, "c")
    out = env.fw("publish", small, "--version", "1.0.0", "--chunk-size", "300",
                 "--min-version", "0.9")
    m = json.loads(stored(env, "1.0.0")["manifest"])
    check(out["chunks"] == 4 and m["chunk_size"] == 300 and m["min_version"] == "0.9" and
          verifies(m, env.pub), f"small {out} {m}")
    images = env.fw("images")["images"]
    check([i["version"] for i in images] == ["1.1.0", "1.0.0"], f"images {images}")


def raw_hget(env, key, field):
    """HGET returning bytes (the chunks are binary)."""
    req = f"*3\r\n$4\r\nHGET\r\n${len(key)}\r\n{key}\r\n${len(field)}\r\n{field}\r\n".encode()
    with socket.create_connection(("127.0.0.1", env.port), timeout=5) as s:
        s.sendall(req)
        f = s.makefile("rb")
        head = f.readline()
        check(head.startswith(b"$") and head != b"$-1\r\n", f"HGET {key} {field}: {head!r}")
        n = int(head[1:])
        body = f.read(n + 2)
        return body[:n]


def check_given_manifest(env):
    path, data = env.image("d.img", 70_000, "d")
    good = sign_manifest(manifest_of(data, "2.0.0"), env.key)
    with open(env.path("good.json"), "w") as f:
        json.dump(good, f)
    # signed by another key: refused, nothing stored
    forged = sign_manifest(manifest_of(data, "2.0.0"), env.other_key)
    with open(env.path("forged.json"), "w") as f:
        json.dump(forged, f)
    env.fw("publish", path, "--manifest", env.path("forged.json"), expect=5)
    check(env.rc("EXISTS", "bodycam:firmware:2.0.0") == 0, "a forged manifest was stored")
    # a good signature over another image: refused
    other, _ = env.image("e.img", 70_000, "e")
    env.fw("publish", other, "--manifest", env.path("good.json"), expect=5)
    # a field changed after signing
    bent = dict(good, chunks=3, chunk_size=32768)
    with open(env.path("bent.json"), "w") as f:
        json.dump(bent, f)
    env.fw("publish", path, "--manifest", env.path("bent.json"), expect=5)
    check(env.rc("EXISTS", "bodycam:firmware:2.0.0") == 0, "a bad manifest was stored")
    # --version must be the manifest's
    env.fw("publish", path, "--manifest", env.path("good.json"), "--version", "2.0.1", expect=2)
    out = env.fw("publish", path, "--manifest", env.path("good.json"))
    check(out["published"] and out["version"] == "2.0.0", f"given manifest {out}")
    check(json.loads(stored(env, "2.0.0")["manifest"])["sig"] == good["sig"], "not as given")
    # without firmware_pubkey_file a given manifest cannot be checked
    nopub = env.config("nopub.conf", firmware_key_file=env.key)
    env.fw("publish", path, "--manifest", env.path("good.json"), expect=2, config=nopub)

    # a signing key that is not the pinned one is refused before storing
    wrong = env.config("wrong.conf", firmware_key_file=env.other_key,
                       firmware_pubkey_file=env.pub)
    img, _ = env.image("f.img", 5000, "f")
    env.fw("publish", img, "--version", "2.1.0", expect=5, config=wrong)
    check(env.rc("EXISTS", "bodycam:firmware:2.1.0") == 0, "wrongly signed image stored")
    check(env.rc("EXISTS", "bodycam:firmware:2.1.0:chunks") == 0, "its chunks were written")
    # no key configured: a configuration error
    env.fw("publish", img, "--version", "2.1.0", expect=2, config=env.config("none.conf"))


def register(env):
    for dev in CAMS + [INACTIVE]:
        env.rc("SADD", "bodycam:devices", dev)
        env.rc("HSET", f"bodycam:device:{dev}", "status",
               "lost" if dev == INACTIVE else "active")


def check_start_waves(env):
    register(env)
    env.fw("start", "9.9.9", expect=4)
    env.fw("status", expect=4)  # no active rollout
    env.fw("start", "1.1.0", "--camera", "cam-999", expect=4)
    env.fw("start", "1.1.0", "--camera", INACTIVE, expect=3)
    out = env.fw("start", "1.1.0", "--wave", "cam-001", "--wave", "cam-002,cam-003",
                 "--wave", "cam-003,cam-004", "--wait", "5", "--success-pct", "50",
                 "--max-failure-pct", "20", "--approve", "--camera-timeout", "600",
                 "--min-battery", "40")
    rid = out["rollout"]
    check(rid.startswith("R") and out["id"] == rid, f"start {out}")
    expect = {"version": "1.1.0", "state": "running", "target": "list", "wave_count": 3,
              "current_wave": 0, "total": 4, "pending": 4, "updated": 0, "wait_s": 5,
              "success_pct": 50, "max_failure_pct": 20, "approve": 1, "camera_timeout_s": 600,
              "min_battery_pct": 40, "created_by": "operator:tester",
              "waves": [["cam-001"], ["cam-002", "cam-003"], ["cam-004"]],
              "w0_total": 1, "w1_total": 2, "w2_total": 1, "w1_pending": 2}
    for k, v in expect.items():
        check(out.get(k) == v, f"start: {k} is {out.get(k)!r}, not {v!r}")
    # a second active rollout is refused
    env.fw("start", "1.0.0", "--camera", "cam-005", expect=3)

    status = env.fw("status")
    check(status["id"] == rid and status["state"] == "running" and
          isinstance(status["created_at"], int), f"status {status}")
    check(env.fw("status", rid) == status, "status ID differs from status")
    show = env.fw("show", rid)
    cams = {c["device"]: c for c in show["cameras"]}
    check(sorted(cams) == ["cam-001", "cam-002", "cam-003", "cam-004"], f"show {cams}")
    check([cams[d]["wave"] for d in sorted(cams)] == [0, 1, 1, 2] and
          all(c["status"] == "pending" for c in cams.values()), f"show {cams}")
    listed = env.fw("list")["rollouts"]
    check([r["id"] for r in listed] == [rid], f"list {listed}")

    code, text, _ = env.ctl("firmware", "status")
    check(code == 0 and f"rollout {rid}" in text and "running" in text and "[" not in text,
          f"text status (no terminal: no bar) {text}")
    # on a terminal: a progress bar per wave
    tty = subprocess.run(["script", "-qec", f"{project_binary('bodycamctl')} --config "
                          f"{env.conf} firmware status {rid}", "/dev/null"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, timeout=30)
    check("[....................]   0%" in tty.stdout, f"status on a terminal {tty.stdout!r}")
    env.state["rid"] = rid


def check_pause_resume(env):
    rid = env.state["rid"]
    out = env.fw("pause", rid)
    check(out["state"] == "paused" and out["changed"] is True, f"pause {out}")
    out = env.fw("pause", rid)
    check(out["state"] == "paused" and out["changed"] is False, f"pause again {out}")
    env.fw("approve", rid, expect=3)  # only from awaiting_approval
    out = env.fw("resume", rid)
    check(out["state"] == "running" and out["changed"] is True and out["reason"] == "",
          f"resume {out}")
    out = env.fw("resume", rid)
    check(out["changed"] is False, f"resume again {out}")
    for act in ("pause", "resume", "approve", "abort", "show", "status"):
        env.fw(act, "R999", expect=4)


def check_abort(env):
    rid = env.state["rid"]
    out = env.fw("abort", rid)
    check(out["state"] == "aborted" and out["changed"] is True and out["finished_at"] > 0,
          f"abort {out}")
    env.fw("abort", rid, expect=3)
    env.fw("resume", rid, expect=3)
    env.fw("status", expect=4)
    check(env.fw("list")["rollouts"] == [], "an aborted rollout listed as active")
    every = env.fw("list", "--all")["rollouts"]
    check([r["id"] for r in every] == [rid] and every[0]["state"] == "aborted", f"{every}")


def took_version(env, rid, dev, from_version, status="updated"):
    """What bodycam-firmware-rollout records when a camera confirmed: the
    entry and the counters (the service's scripts do this; it is not
    running here)."""
    key = f"bodycam:rollout:{rid}"
    entry = env.rc("HGET", f"{key}:cameras", dev)
    wave = entry.split("|")[0]
    now = int(time.time() * 1000)
    env.rc("HSET", f"{key}:cameras", dev, f"{wave}|{status}|c-{dev}|{now}|{from_version}|")
    for field, by in (("pending", -1), (status, 1), (f"w{wave}_pending", -1),
                      (f"w{wave}_{status}", 1)):
        env.rc("HINCRBY", key, field, by)


def check_abort_rollback(env):
    rid = env.fw("start", "1.1.0", "--camera", "cam-001", "--camera", "cam-002",
                 "--waves", "100")["rollout"]
    took_version(env, rid, "cam-001", "1.0.5")
    took_version(env, rid, "cam-002", "1.0.0", "installed")
    # 1.0.5 is not published: nothing to sign a rollback to
    env.fw("abort", rid, "--rollback", expect=4)
    check(env.fw("status", rid)["state"] == "running", "a refused abort changed the rollout")
    path, _ = env.image("g.img", 3000, "g")
    env.fw("publish", path, "--version", "1.0.5")
    out = env.fw("abort", rid, "--rollback")
    check(out["state"] in ("aborting",) and out["rollback"] == 1 and
          sorted(out["rollback_versions"]) == ["1.0.0", "1.0.5"], f"abort --rollback {out}")
    manifests = out["rollback_manifests"]
    for version in ("1.0.0", "1.0.5"):
        m = manifests[version]
        check(m["rollback"] is True and m["version"] == version and
              m["sha256"] == stored(env, version)["sha256"], f"rollback manifest {m}")
        check(verifies(m, env.pub), f"the rollback manifest of {version} does not verify")
    cams = {c["device"]: c for c in env.fw("show", rid)["cameras"]}
    check(cams["cam-001"]["status"] == "reverting" and cams["cam-002"]["status"] == "reverting",
          f"cameras {cams}")
    out = env.fw("abort", rid, "--rollback")
    check(out["changed"] is False and out["state"] == "aborting", f"abort again {out}")

    # a camera that ran the version before the rollout has nothing to undo:
    # it is left alone, and nothing else holds the abort up
    env.rc("HSET", f"bodycam:rollout:{rid}", "state", "aborted")  # end it the short way
    env.rc("SREM", "bodycam:rollouts:active", rid)
    rid = env.fw("start", "1.1.0", "--camera", "cam-003", "--waves", "100")["rollout"]
    took_version(env, rid, "cam-003", "1.1.0")
    out = env.fw("abort", rid, "--rollback")
    check(out["state"] == "aborted", f"abort {out}")
    cams = {c["device"]: c for c in env.fw("show", rid)["cameras"]}
    check(cams["cam-003"]["status"] == "updated", f"cameras {cams}")


def main():
    env = Env()
    env.state = {}
    passed = failed = 0
    checks = [
        ("help and usage errors", check_help_and_usage),
        ("publish signs, stores, is idempotent, refuses another image",
         check_publish_signs_and_stores),
        ("a given manifest is checked; a wrong signing key is refused", check_given_manifest),
        ("start with explicit waves; status, show, list", check_start_waves),
        ("pause, resume, approve; unknown rollouts", check_pause_resume),
        ("abort", check_abort),
        ("abort --rollback signs rollback manifests", check_abort_rollback),
    ]
    try:
        env.start_redis()
        env.key, env.pub = env.keypair("firmware")
        env.other_key, env.other_pub = env.keypair("other")
        env.conf = env.config("bodycamctl.conf", firmware_key_file=env.key,
                              firmware_pubkey_file=env.pub)
        for name, fn in checks:
            started = time.monotonic()
            try:
                fn(env)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                failed += 1
                print(f"FAIL - {name}: {e}", flush=True)
                if not isinstance(e, CheckFailed):
                    traceback.print_exc()
            else:
                passed += 1
                print(f"ok - {name} ({time.monotonic() - started:.1f} s)", flush=True)
    finally:
        env.stop()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
