#!/usr/bin/python3
"""agent-commands: signed commands to a real camera, and the handoff.

The test plays the backend (gateway role): it signs commands with the
stack's keys through helpers/command-sign (proto's own canonical encoding),
publishes them on devices/{id}/cmd/{kind} and reads the acks. It also plays
the vault: it reassembles an upload from its manifest and chunks and answers
with a receipt. A camera deletes a recording only after a receipt signed by
the vault's receipt key naming the recording and its SHA-256; a forged or
mismatched one is refused (ack error, receipt_refused event) and the file
stays. Replayed, expired, unsigned, malformed or misaddressed commands are
refused with a reason.
"""

import base64
import hashlib
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import (Observer, agent_stack_args, device_topic, press_ok,  # noqa: E402
                           recording_check, recording_meta, recording_path, sign, status,
                           unique, wait_gone, wait_status)
from bodycam_test import CheckFailed, check, run, run_checks, wait_for  # noqa: E402

DEV = "cam-001"


def now_ms():
    return int(time.time() * 1000)


def make_recording(stack, dev):
    base = int(status(stack, dev)["seq"])
    for line in ("warn", "warn", "record"):
        press_ok(stack, dev, line)
    time.sleep(0.3)  # some video into the recording (a duration, not a condition)
    press_ok(stack, dev, "stop")
    return f"{dev}-{base + 3}"


def refused(ack, word):
    return ack["ok"] is False and ack["error"].startswith(word)


def upload_of(obs, rec_id, timeout=30):
    """The manifest and the reassembled bytes of rec_id from the upload topic."""
    topic = device_topic(obs.dev, "upload")

    def complete():
        msgs = [m.json() for m in obs.client.received(topic)]
        manifest = next((m for m in msgs if m["kind"] == "manifest"
                         and m["recording_id"] == rec_id), None)
        if manifest is None:
            return None
        chunks = {}
        for m in msgs:
            if m["kind"] == "chunk" and m["recording_id"] == rec_id:
                data = base64.b64decode(m["data"])
                check(hashlib.sha256(data).hexdigest() == m["sha256"], "a chunk's hash is wrong")
                chunks[m["offset"]] = data
        body, offset = b"", 0
        while offset in chunks:
            body += chunks[offset]
            offset += len(chunks[offset])
        return (manifest, body) if offset == manifest["size"] else None
    return wait_for(complete, timeout, f"the whole upload of {rec_id}")


def receipt(stack, rec_id, sha256, size, key="receipt", key_path=None):
    cmd_id = unique("rcpt")
    return cmd_id, sign(stack, key, DEV, "vault-receipt", cmd_id, key_path=key_path,
                        recording_id=rec_id, sha256=sha256, size=size, committed_at=now_ms())


def check_handoff_and_receipts(stack):
    """dock: manifest + chunks reassemble to the file; a forged receipt and a
    mismatched one are refused (file stays); the vault's receipt deletes it."""
    with Observer(stack, DEV) as obs:
        rec_id = make_recording(stack, DEV)
        path = recording_path(stack, DEV, rec_id)
        press_ok(stack, DEV, "dock")
        manifest, body = upload_of(obs, rec_id)
        with open(path, "rb") as f:
            on_disk = f.read()
        check(body == on_disk, "the uploaded bytes are not the recording file")
        check(manifest["sha256"] == hashlib.sha256(body).hexdigest(), "manifest hash")
        check(manifest["key_id"] == stack.info["keys"]["recording"]["key_id"], "manifest key")
        sha, size = manifest["sha256"], manifest["size"]

        forged_id, forged = receipt(stack, rec_id, sha, size, key="command")
        obs.publish_command("vault-receipt", forged)
        ack = obs.wait_ack(forged_id)
        check(refused(ack, "bad signature"), f"forged receipt: {ack}")
        obs.wait_event_type("receipt_refused", recording_id=rec_id)

        wrong_id, wrong = receipt(stack, rec_id, "0" * 64, size)
        obs.publish_command("vault-receipt", wrong)
        ack = obs.wait_ack(wrong_id)
        check(ack["ok"] is False, f"a receipt with the wrong hash was accepted: {ack}")
        check(os.path.exists(path), "the recording was deleted after a refused receipt")
        check(int(status(stack, DEV)["pending"]) >= 1, "no longer listed as pending")

        good_id, good = receipt(stack, rec_id, sha, size)
        obs.publish_command("vault-receipt", good)
        ack = obs.wait_ack(good_id)
        check(ack["ok"] is True, f"the vault's receipt was refused: {ack}")
        obs.wait_event_type("recording_deleted", recording_id=rec_id)
        wait_gone(path, "the recording to be deleted")
        check(not os.path.exists(path[:-len(".bcrec")] + ".json"), "metadata left behind")
        press_ok(stack, DEV, "undock")


def check_replay_and_refusals(stack):
    with Observer(stack, DEV) as obs:
        cmd_id = unique("cfg")
        cmd = sign(stack, "command", DEV, "config", cmd_id, health_interval_s=30)
        obs.publish_command("config", cmd)
        check(obs.wait_ack(cmd_id)["ok"] is True, "the config command was refused")
        obs.publish_command("config", cmd)
        wait_for(lambda: len([a for a in obs.acks() if a["cmd_id"] == cmd_id]) == 2, 20,
                 "the ack of the replay")
        replay = [a for a in obs.acks() if a["cmd_id"] == cmd_id][1]
        check(refused(replay, "replayed"), f"replay: {replay}")

        cases = []
        old = sign(stack, "command", DEV, "config", unique("old"), health_interval_s=30,
                   issued_at=now_ms() - 120000, ttl_ms=60000)
        cases.append(("config", old, "expired"))
        unsigned = json.loads(sign(stack, "command", DEV, "config", unique("nosig"),
                                   health_interval_s=30))
        del unsigned["sig"]
        cases.append(("config", json.dumps(unsigned), "malformed"))
        cases.append(("config", json.dumps({"v": 1, "id": unique("bad"), "kind": "config"}),
                      "malformed"))
        other = sign(stack, "command", "cam-002", "config", unique("other"), health_interval_s=30)
        cases.append(("config", other, "not for this camera"))
        wrong_topic = sign(stack, "command", DEV, "config", unique("topic"), health_interval_s=30)
        cases.append(("upload", wrong_topic, "wrong topic"))
        identity = sign(stack, "command", DEV, "rotate-identity", unique("ident"), phase="install",
                        cert="@" + stack.info["devices"][DEV]["cert"])  # no request before it
        cases.append(("rotate-identity", identity, "certificate not accepted"))
        for kind, payload, word in cases:
            obs.publish_command(kind, payload)
        for kind, payload, word in cases:
            ack = obs.wait_ack(json.loads(payload)["id"])
            check(refused(ack, word), f"expected '{word}', got {ack}")
        # no id at all: nothing to ack, but the camera lives on
        obs.publish_command("config", "{not json")
        later = unique("after")
        obs.publish_command("config", sign(stack, "command", DEV, "config", later,
                                           health_interval_s=30))
        check(obs.wait_ack(later)["ok"] is True, "the camera stopped taking commands")


def check_config_health_interval(stack):
    """config health_interval_s=1: health reports come about every second."""
    with Observer(stack, DEV) as obs:
        cmd_id = unique("cfg")
        obs.publish_command("config", sign(stack, "command", DEV, "config", cmd_id,
                                           health_interval_s=1))
        check(obs.wait_ack(cmd_id)["ok"] is True, "config refused")
        t0 = time.monotonic()
        wait_for(lambda: len(obs.messages("health")) >= 3, 10, "three health reports")
        elapsed = time.monotonic() - t0
        check(elapsed < 6, f"three reports took {elapsed:.1f} s")
        h = obs.messages("health")[-1].json()
        check(0 <= h["battery_pct"] <= 100 and h["storage_total"] >= h["storage_free"] > 0,
              f"health: {h}")
        check(h["fw"] and h["uptime_s"] >= 0, f"health: {h}")


def check_rotate_recording_key(stack):
    """A new vault recording key: ack ok, key_installed, the next recording is
    sealed for it (opens with the new private key, not the old one)."""
    with tempfile.TemporaryDirectory() as tmp, Observer(stack, DEV) as obs:
        priv, pub = os.path.join(tmp, "new.key"), os.path.join(tmp, "new.pub")
        run(["openssl", "genpkey", "-algorithm", "X25519", "-out", priv])
        run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub])
        cmd_id = unique("key")
        obs.publish_command("rotate-recording-key",
                            sign(stack, "command", DEV, "rotate-recording-key", cmd_id,
                                 public_key=pub))
        ack = obs.wait_ack(cmd_id)
        check(ack["ok"] is True, f"rotation refused: {ack}")
        installed = obs.wait_event_type("key_installed")
        rec_id = make_recording(stack, DEV)
        meta = recording_meta(stack, DEV, rec_id)
        check(meta["key_id"] == installed["key_id"], f"sealed for {meta['key_id']}")
        info = recording_check(stack, recording_path(stack, DEV, rec_id), key=priv)
        check(info["recording_id"] == rec_id, f"check: {info}")
        try:
            recording_check(stack, recording_path(stack, DEV, rec_id))
        except CheckFailed:
            pass
        else:
            raise CheckFailed("the old vault key still opens the new recording")
        health = obs.client.wait_message(
            device_topic(DEV, "health"),
            lambda m: m.json().get("recording_key_id") == installed["key_id"], 90)
        check(health is not None, "health does not carry the new key id")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("handoff: upload reassembles; forged receipt refused, real one deletes",
         check_handoff_and_receipts),
        ("replayed, expired, unsigned, malformed, misaddressed commands refused",
         check_replay_and_refusals),
        ("config command changes the health interval", check_config_health_interval),
        ("rotate-recording-key: the next recording is for the new key",
         check_rotate_recording_key),
    ], **agent_stack_args(cameras=2)))
