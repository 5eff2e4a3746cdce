#!/usr/bin/env python3
"""vault-keys: the vault's side of a recording key rotation (issue 7), on a
real stack (broker with the plugin, gateway, fleet-health, the vault, two
bodycam-agents with synthetic video).

Guarantees checked:
- the PKI's plain recording key is encrypted at rest at the vault's first
  start, under the master key, and recorded as the current key;
- a new-recording-key request on bodycam:stream:vault-control makes ONE new
  X25519 key for the campaign (a repeated request makes none), encrypted at
  rest, recorded current (the old one retired), audited key_created, and
  the campaign gets its key_id and runs;
- recordings sealed before and after the rotation are both committed and
  export to exactly the bytes the camera's video source produced;
- the retired key is NOT destroyed while a recording sealed for it is held,
  even when every camera is on the new key; once that recording is purged
  (29 days later, hold released) it is destroyed: its file gone (the vault
  keeps only the new one), status destroyed, audited key_destroyed, and the
  audit log still verifies.
"""

import base64
import hashlib
import json
import os
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import Observer, press_ok, recording_meta, recording_path, sign, status, \
    unique, verify_synthetic  # noqa: E402
from bodycam_test import check, run_checks, wait_for  # noqa: E402
from vault_helpers import as_dict, audit_entries, catalog, ctl, ctl_json, make_recording, rc, \
    ref_of, set_clock, vault_stack_args, wait_committed  # noqa: E402

DAY_MS = 86400 * 1000
CAMERAS = ["cam-001", "cam-002"]
CAMPAIGN = "C1"
CASE = "PV-2026-K7"
X25519_SPKI_PREFIX = bytes.fromhex("302a300506032b656e032100")
state = {}


def key_record(stack, key_id):
    return as_dict(rc(stack, "HGETALL", f"bodycam:recording-key:{key_id}"))


def key_file(stack, key_id):
    return os.path.join(stack.info["vault"]["keys_dir"], f"{key_id}.key")


def key_files(stack):
    return sorted(n for n in os.listdir(stack.info["vault"]["keys_dir"]) if n.endswith(".key"))


def check_encrypted(stack, key_id):
    path = key_file(stack, key_id)
    with open(path) as f:
        text = f.read()
    check("-----BEGIN ENCRYPTED PRIVATE KEY-----" in text, f"{path} is not encrypted: {text[:40]}")
    check("BEGIN PRIVATE KEY" not in text, f"{path} holds a plain key")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    check(mode == 0o600, f"{path} has mode {oct(mode)}")


def dock_and_commit(stack, recs):
    """recs: {dev: rec_id}; docks, waits for the commits and the cameras'
    deletions, undocks. Returns the catalog records by ref."""
    for dev in recs:
        press_ok(stack, dev, "dock")
    refs = [ref_of(dev, rec) for dev, rec in recs.items()]
    metas = wait_committed(stack, refs)
    for dev, rec in recs.items():
        path = recording_path(stack, dev, rec)
        wait_for(lambda p=path: not os.path.exists(p), 60, f"{dev} to delete {rec}")
        press_ok(stack, dev, "undock")
        wait_for(lambda d=dev: status(stack, d)["state"] == "standby", 10, f"{dev} on standby")
    return metas


def check_first_start(stack):
    k0 = stack.info["keys"]["recording"]["key_id"]
    state["k0"] = k0
    master = stack.info["vault"]["master_key"]
    check(stat.S_IMODE(os.stat(master).st_mode) == 0o600, "the master key file is not 0600")
    check_encrypted(stack, k0)
    rec = key_record(stack, k0)
    check(rec.get("status") == "current", f"the PKI key's record: {rec}")
    check(rc(stack, "GET", "bodycam:recording-keys:current") == k0, "current key")
    raw = base64.b64decode(rec["public"])
    check(hashlib.sha256(raw).hexdigest()[:16] == k0, f"public {rec['public']} is not key {k0}")
    adopted = [e for e in audit_entries(stack, f"key:{k0}") if e["action"] == "key_adopted"]
    check(len(adopted) == 1, f"{len(adopted)} key_adopted entries for {k0}")


def check_record_before(stack):
    recs = {dev: make_recording(stack, dev, 0.4) for dev in CAMERAS}
    for dev, rec in recs.items():
        m = recording_meta(stack, dev, rec)
        check(m["key_id"] == state["k0"], f"{dev}: sealed for {m['key_id']}")
    metas = dock_and_commit(stack, recs)
    state["before"] = {dev: ref_of(dev, rec) for dev, rec in recs.items()}
    for ref in state["before"].values():
        check(metas[ref]["key_id"] == state["k0"], f"{ref}: key {metas[ref]['key_id']}")
        check(rc(stack, "SISMEMBER", f"bodycam:recordings:key:{state['k0']}", ref) == 1,
              f"{ref} is not in the old key's index")


def check_new_key_request(stack):
    now = int(time.time() * 1000)
    rc(stack, "HSET", f"bodycam:campaign:{CAMPAIGN}", "id", CAMPAIGN, "kind", "recording-key",
       "state", "awaiting_key", "pace_per_s", "5", "created_at", str(now), "created_by",
       "operator:tester", "total", "0", "done", "0", "failed", "0")
    rc(stack, "ZADD", "bodycam:campaigns", str(now), CAMPAIGN)
    rc(stack, "SADD", "bodycam:campaigns:active", CAMPAIGN)
    rc(stack, "XADD", "bodycam:stream:vault-control", "*", "op", "new-recording-key",
       "campaign", CAMPAIGN, "by", "operator:tester")

    def ready():
        c = as_dict(rc(stack, "HGETALL", f"bodycam:campaign:{CAMPAIGN}"))
        return c if c.get("key_id") else None
    camp = wait_for(ready, 30, f"campaign {CAMPAIGN} to get its key")
    k1 = camp["key_id"]
    state["k1"] = k1
    check(k1 != state["k0"], "the new key is the old one")
    check(camp["state"] in ("running", "done"), f"campaign state {camp['state']}")
    rec = key_record(stack, k1)
    check(rec.get("status") == "current" and rec.get("campaign") == CAMPAIGN, f"new key: {rec}")
    raw = base64.b64decode(rec["public"])
    check(len(raw) == 32 and hashlib.sha256(raw).hexdigest()[:16] == k1,
          f"public {rec['public']} is not the key {k1}")
    state["public"] = raw
    old = key_record(stack, state["k0"])
    check(old.get("status") == "retired" and int(old.get("retired_at", 0)) > 0, f"old: {old}")
    check(rc(stack, "GET", "bodycam:recording-keys:current") == k1, "current key")
    check(os.path.exists(key_file(stack, k1)), "the new key file is missing")
    check_encrypted(stack, k1)
    created = [e for e in audit_entries(stack, f"key:{k1}") if e["action"] == "key_created"]
    check(len(created) == 1 and created[0]["campaign"] == CAMPAIGN and
          created[0]["by"] == "operator:tester", f"key_created entries: {created}")
    # The request again (a redelivery, an impatient operator): no second key.
    again = rc(stack, "XADD", "bodycam:stream:vault-control", "*", "op", "new-recording-key",
               "campaign", CAMPAIGN, "by", "operator:tester")

    def handled():
        group = as_dict(rc(stack, "XINFO", "GROUPS", "bodycam:stream:vault-control")[0])
        return group["last-delivered-id"] == again and int(group["pending"]) == 0
    wait_for(handled, 20, "the second request handled")
    check(sorted(rc(stack, "SMEMBERS", "bodycam:recording-keys")) == sorted([state["k0"], k1]),
          f"keys: {rc(stack, 'SMEMBERS', 'bodycam:recording-keys')}")
    check(key_files(stack) == sorted([f"{state['k0']}.key", f"{k1}.key"]),
          f"key files: {key_files(stack)}")


def check_cameras_rotate(stack):
    k1 = state["k1"]
    with tempfile.TemporaryDirectory() as tmp:
        pub = os.path.join(tmp, "k1.pub")
        der = X25519_SPKI_PREFIX + state["public"]
        with open(pub, "w") as f:
            f.write("-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() +
                    "\n-----END PUBLIC KEY-----\n")
        for dev in CAMERAS:
            with Observer(stack, dev) as obs:
                cmd_id = unique("rotate")
                obs.publish_command("rotate-recording-key",
                                    sign(stack, "command", dev, "rotate-recording-key", cmd_id,
                                         public_key=pub, key_id=k1))
                ack = obs.wait_ack(cmd_id)
                check(ack["ok"] is True, f"{dev} refused the key: {ack}")


def check_record_after(stack):
    recs = {dev: make_recording(stack, dev, 0.4) for dev in CAMERAS}
    for dev, rec in recs.items():
        m = recording_meta(stack, dev, rec)
        check(m["key_id"] == state["k1"], f"{dev}: sealed for {m['key_id']}, not the new key")
    metas = dock_and_commit(stack, recs)
    state["after"] = {dev: ref_of(dev, rec) for dev, rec in recs.items()}
    for ref in state["after"].values():
        check(metas[ref]["key_id"] == state["k1"], f"{ref}: key {metas[ref]['key_id']}")


def export_and_compare(stack, refs):
    """Exports refs (held for CASE) and compares every media file with the
    synthetic stream of its camera, byte for byte."""
    out = os.path.join(tempfile.mkdtemp(prefix="bodycam-export-"), "bundle")
    ctl_json(stack, "export", "--purpose", "aangifte", "--case", CASE, "--out", out, *refs)
    with open(os.path.join(out, "export.json")) as f:
        bundle = json.load(f)
    check(sorted(r["ref"] for r in bundle["recordings"]) == sorted(refs),
          f"export.json lists {bundle['recordings']}")
    for r in bundle["recordings"]:
        with open(os.path.join(out, r["media"]), "rb") as f:
            data = f.read()
        check(hashlib.sha256(data).hexdigest() == r["plaintext_sha256"], f"{r['ref']}: sha256")
        _first, frames = verify_synthetic(data, int(stack.info["agents"]["seeds"][r["device"]]))
        check(frames >= 1, f"{r['ref']}: no frames")


def check_both_export(stack):
    refs = list(state["before"].values()) + list(state["after"].values())
    state["holds"] = {}
    for ref in refs:
        h = ctl_json(stack, "holds", "place", ref, "--reason", "aangifte", "--case", CASE)
        state["holds"][ref] = h["hold"]["id"] if "hold" in h else h["id"]
    export_and_compare(stack, refs)


def fleet_on_new_key(stack):
    for dev in CAMERAS:
        cam = as_dict(rc(stack, "HGETALL", f"bodycam:camera:{dev}"))
        if cam.get("recording_key_id") != state["k1"] or cam.get("pending_uploads") != "0":
            return None
    return True


def purge_passes(stack):
    return int(rc(stack, "HGET", stack.info["vault"]["status_key"], "purge_passes") or 0)


def check_held_key_kept(stack):
    k0 = state["k0"]
    wait_for(lambda: fleet_on_new_key(stack), 60, "every camera to report the new key, 0 pending")
    # Release the holds of cam-002's old recording and of the new ones: only
    # cam-001's old recording keeps the old key now.
    kept = state["before"]["cam-001"]
    for ref, hid in state["holds"].items():
        if ref != kept:
            ctl_json(stack, "holds", "release", hid, "--note", "case closed")
    set_clock(stack, 29 * DAY_MS)
    gone = state["before"]["cam-002"]
    wait_for(lambda: catalog(stack, gone).get("status") == "purged", 30, f"{gone} purged")
    passes = purge_passes(stack)
    wait_for(lambda: purge_passes(stack) >= passes + 2, 30, "two more purge passes")
    check(catalog(stack, kept)["status"] == "committed", f"held {kept} was purged")
    check(key_record(stack, k0).get("status") == "retired",
          f"the old key went while {kept} is held: {key_record(stack, k0)}")
    check(os.path.exists(key_file(stack, k0)), "the old key file went while a recording needs it")
    check(not [e for e in audit_entries(stack, f"key:{k0}") if e["action"] == "key_destroyed"],
          "key_destroyed audited while a recording needs the key")
    check(fleet_on_new_key(stack), "the cameras left the new key")
    # the held recording still opens with the old key
    export_and_compare(stack, [kept])


def check_old_key_destroyed(stack):
    k0, kept = state["k0"], state["before"]["cam-001"]
    ctl_json(stack, "holds", "release", state["holds"][kept], "--note", "case closed")
    wait_for(lambda: catalog(stack, kept).get("status") == "purged", 30, f"{kept} purged")
    wait_for(lambda: key_record(stack, k0).get("status") == "destroyed", 30,
             f"the old key {k0} destroyed")
    rec = key_record(stack, k0)
    check(int(rec.get("destroyed_at", 0)) > int(rec.get("retired_at", 0)) > 0, f"old: {rec}")
    check(not os.path.exists(key_file(stack, k0)), "the old key file is still there")
    check(key_files(stack) == [f"{state['k1']}.key"], f"key files: {key_files(stack)}")
    leftovers = [n for n in os.listdir(stack.info["vault"]["keys_dir"])
                 if n != f"{state['k1']}.key"]
    check(not leftovers, f"left in the key directory: {leftovers}")
    entries = audit_entries(stack, f"key:{k0}")
    destroyed = [e for e in entries if e["action"] == "key_destroyed"]
    check(len(destroyed) == 1, f"{len(destroyed)} key_destroyed entries")
    purge = [e for e in audit_entries(stack, kept) if e["action"] == "purge"]
    check(purge and purge[0]["seq"] < destroyed[0]["seq"], "the key went before its recording")
    check(key_record(stack, state["k1"]).get("status") == "current", "the new key is not current")
    check(rc(stack, "SCARD", f"bodycam:recordings:key:{k0}") == 0, "old key index not empty")
    code, out, err = ctl(stack, "audit", "verify")
    check(code == 0, f"audit verify exited {code}: {out} {err}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("first start: the PKI's plain key encrypted at rest, current", check_first_start),
        ("recordings under the old key committed", check_record_before),
        ("vault-control: one new key for the campaign, encrypted, current, audited",
         check_new_key_request),
        ("cameras take the new key (rotate-recording-key)", check_cameras_rotate),
        ("recordings under the new key committed", check_record_after),
        ("before and after the rotation both export byte-identical", check_both_export),
        ("a held old-key recording keeps the old key", check_held_key_kept),
        ("old key destroyed once its last recording is purged", check_old_key_destroyed),
    ], **vault_stack_args(cameras=len(CAMERAS), bitrate=800000, health_interval_s=2)))
