#!/usr/bin/env python3
"""vault-handoff: recordings move from five real cameras into the vault.

Real parts: the stack runner starts Redis, Mosquitto with bodycam-auth and
TLS, the gateway, fleet-health, the vault and five bodycam-agents with
synthetic video; the recordings take the real path (camera -> broker ->
gateway -> bodycam:stream:upload -> vault) and the receipts the way back
(vault -> outbox -> gateway -> broker -> camera).

What is guaranteed, and checked here:
- every recording is committed once (one catalog record, one commit audit
  entry) and the export of it decrypts to exactly the bytes the camera's
  video source produced (the synthetic stream, regenerated here);
- a camera deletes its copy only after the vault's receipt: while the vault
  is down the recording stays on the camera even when all of it was sent;
- a SIGKILL of the vault or a restart of Redis in the middle of an upload
  loses nothing and commits nothing twice;
- a chunk with a flipped byte is refused (audited), the camera is asked to
  send again from the bad segment, and the recording is committed intact.
"""

import base64
import hashlib
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import press_ok, recording_meta, recording_path, status, \
    verify_synthetic  # noqa: E402
from bodycam_test import check, run_checks, wait_for  # noqa: E402
from vault_helpers import audit_entries, catalog, ctl, ctl_json, make_recording, object_path, \
    rc, ref_of, staging_dir, vault_restart, vault_signal, vault_stack_args, vault_status, \
    wait_committed, xadd_upload  # noqa: E402

CAMERAS = ["cam-001", "cam-002", "cam-003", "cam-004", "cam-005"]
BITRATE = 16_000_000  # 2 MB/s: a few seconds make an upload long enough to interrupt


def seed_of(stack, dev):
    return int(stack.info["agents"]["seeds"][dev])


def dock(stack, dev):
    press_ok(stack, dev, "dock")


def undock(stack, dev):
    press_ok(stack, dev, "undock")
    wait_for(lambda: status(stack, dev)["state"] == "standby", 10, f"{dev} back on standby")


def wait_deleted(stack, dev, rec_id, timeout=60):
    path = recording_path(stack, dev, rec_id)
    wait_for(lambda: not os.path.exists(path), timeout,
             f"{dev} to delete {rec_id} after the receipt")


def export_and_compare(stack, refs, case):
    """Holds each ref for an aangifte, exports them and compares every media
    file with the synthetic stream of its camera."""
    for ref in refs:
        ctl_json(stack, "holds", "place", ref, "--reason", "aangifte", "--case", case)
    out = os.path.join(tempfile.mkdtemp(prefix="bodycam-export-"), "bundle")
    ctl_json(stack, "export", "--purpose", "aangifte", "--case", case, "--out", out, *refs)
    with open(os.path.join(out, "export.json")) as f:
        bundle = json.load(f)
    check(len(bundle["recordings"]) == len(refs), f"export.json lists {bundle['recordings']}")
    for r in bundle["recordings"]:
        dev = r["device"]
        with open(os.path.join(out, r["media"]), "rb") as f:
            data = f.read()
        check(hashlib.sha256(data).hexdigest() == r["plaintext_sha256"],
              f"{r['ref']}: plaintext_sha256 in export.json is not the media's")
        first, frames = verify_synthetic(data, seed_of(stack, dev))  # every byte compared
        check(frames >= 1, f"{r['ref']}: no frames")
    with open(os.path.join(out, "manifest.sha256")) as f:
        for line in f:
            digest, name = line.rstrip("\n").split("  ", 1)
            with open(os.path.join(out, name), "rb") as g:
                check(hashlib.sha256(g.read()).hexdigest() == digest, f"manifest: {name} differs")
    return out


def check_five_cameras(stack):
    recs = {dev: make_recording(stack, dev, 0.5) for dev in CAMERAS}
    metas = {dev: recording_meta(stack, dev, rec) for dev, rec in recs.items()}
    for dev in CAMERAS:
        dock(stack, dev)
    refs = [ref_of(dev, rec) for dev, rec in recs.items()]
    committed = wait_committed(stack, refs)
    for dev, rec in recs.items():
        wait_deleted(stack, dev, rec)
        m = committed[ref_of(dev, rec)]
        check(m["sha256"] == metas[dev]["sha256"], f"{dev}: the vault holds another file")
        check(int(m["size"]) == metas[dev]["size"], f"{dev}: size {m['size']}")
        check(os.path.exists(object_path(stack, m["sha256"])), f"{dev}: object missing")
        check(int(m["delete_after"]) == int(m["recorded_at"]) + 28 * 86400 * 1000,
              f"{dev}: delete_after {m['delete_after']} is not recorded_at + 28 days")
        check(m["warnings"] == "2" and m["emergency"] == "0", f"{dev}: {m}")
        commits = [e for e in audit_entries(stack, ref_of(dev, rec)) if e["action"] == "commit"]
        check(len(commits) == 1, f"{dev}: {len(commits)} commit audit entries")
        check(not os.path.exists(staging_dir(stack, dev, rec)), f"{dev}: staging left behind")
    for dev in CAMERAS:
        undock(stack, dev)
    export_and_compare(stack, refs, "PV-2026-0001")
    check(rc(stack, "XLEN", "bodycam:stream:upload") == 0,
          "the upload stream still holds entries the vault has staged")


def check_flipped_byte(stack):
    dev = "cam-002"
    rec = make_recording(stack, dev, 1.0)
    meta = recording_meta(stack, dev, rec)
    with open(recording_path(stack, dev, rec), "rb") as f:
        first = bytearray(f.read(32768))
    first[4000] ^= 0x01  # inside the first segment, after the header
    forged = {"v": 1, "device": dev, "kind": "chunk", "recording_id": rec, "offset": 0,
              "data": base64.b64encode(bytes(first)).decode(),
              "sha256": hashlib.sha256(bytes(first)).hexdigest()}
    # as if it had come through the gateway before the camera's own chunk 0
    xadd_upload(stack, dev, json.dumps(forged, separators=(",", ":")))
    refused_before = int(vault_status(stack).get("refused", 0))
    dock(stack, dev)
    ref = ref_of(dev, rec)
    m = wait_committed(stack, [ref])[ref]
    wait_deleted(stack, dev, rec)
    check(m["sha256"] == meta["sha256"], "the committed file is not the camera's")
    actions = [e["action"] for e in audit_entries(stack, ref)]
    check("upload_refused" in actions and actions.index("upload_refused") <
          actions.index("commit"), f"audit trail of {ref}: {actions}")
    wait_for(lambda: int(vault_status(stack).get("refused", 0)) > refused_before, 10,
             "the vault's refused counter to move")
    undock(stack, dev)
    export_and_compare(stack, [ref], "PV-2026-0002")


def big_recording_while_vault_stopped(stack, dev, seconds):
    """Stops the vault (SIGSTOP), records, docks, and waits until the camera
    sent everything into the stream: a backlog the vault then works off."""
    rec = make_recording(stack, dev, seconds)
    size = recording_meta(stack, dev, rec)["size"]
    vault_signal(stack, "STOP")
    dock(stack, dev)
    chunks = (size + 32767) // 32768
    wait_for(lambda: rc(stack, "XLEN", "bodycam:stream:upload") >= chunks + 1, 60,
             f"{chunks} chunks of {rec} in the stream")
    check(os.path.exists(recording_path(stack, dev, rec)),
          "the camera deleted the recording without a receipt")
    return rec, size


def wait_staging_started(stack, dev, rec):
    ranges = os.path.join(staging_dir(stack, dev, rec), "ranges.json")
    wait_for(lambda: os.path.exists(ranges), 30, f"the vault to stage part of {rec}",
             interval=0.005)


def check_vault_killed(stack):
    dev = "cam-003"
    rec, size = big_recording_while_vault_stopped(stack, dev, 6.0)
    ref = ref_of(dev, rec)
    vault_signal(stack, "CONT")
    wait_staging_started(stack, dev, rec)
    vault_signal(stack, "KILL")
    check(catalog(stack, ref) == {}, "committed before the kill: make the recording longer")
    check(os.path.exists(recording_path(stack, dev, rec)), "deleted while the vault is dead")
    vault_restart(stack)
    m = wait_committed(stack, [ref])[ref]
    wait_deleted(stack, dev, rec)
    check(int(m["size"]) == size, f"size {m['size']} != {size}")
    commits = [e for e in audit_entries(stack, ref) if e["action"] == "commit"]
    check(len(commits) == 1, f"{len(commits)} commit entries after the kill")
    check(rc(stack, "ZSCORE", "bodycam:recordings", ref) is not None, "not in the index")
    undock(stack, dev)
    export_and_compare(stack, [ref], "PV-2026-0003")


def check_redis_restarted(stack):
    dev = "cam-004"
    rec, size = big_recording_while_vault_stopped(stack, dev, 6.0)
    ref = ref_of(dev, rec)
    vault_signal(stack, "CONT")
    wait_staging_started(stack, dev, rec)
    stack.restart("redis")  # the stream, its pending entries and the catalog come back (AOF)
    m = wait_committed(stack, [ref])[ref]
    wait_deleted(stack, dev, rec)
    check(int(m["size"]) == size, f"size {m['size']} != {size}")
    commits = [e for e in audit_entries(stack, ref) if e["action"] == "commit"]
    check(len(commits) == 1, f"{len(commits)} commit entries after the Redis restart")
    undock(stack, dev)
    export_and_compare(stack, [ref], "PV-2026-0004")


def check_audit_verifies(stack):
    code, out, err = ctl(stack, "audit", "verify")
    check(code == 0, f"audit verify exited {code}: {out}{err}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("five cameras: committed once, deleted after the receipt, export identical",
         check_five_cameras),
        ("a flipped byte in a chunk is refused and sent again", check_flipped_byte),
        ("vault SIGKILL mid-upload: nothing lost, committed once", check_vault_killed),
        ("Redis restarted mid-upload: nothing lost, committed once", check_redis_restarted),
        ("the audit log verifies", check_audit_verifies),
    ], **vault_stack_args(cameras=5, bitrate=BITRATE)))
