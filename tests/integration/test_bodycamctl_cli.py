#!/usr/bin/env python3
"""bodycamctl-cli: the operators' tool against a real stack (agents, broker
with the plugin, gateway, vault), through its command line only.

Guarantees checked (what test_vault_retention / test_vault_handoff do not):
- help at every level (--help, `help AREA [LEAF]`), usage errors exit 2 with
  one "bodycamctl: ..." line, unknown things exit 4, a refusal exits 3;
- --json prints exactly one JSON document for every command, also on
  failure ({"error": {"exit": N, ...}}), and never a progress bar;
- devices lost/activate reach the broker (the camera is kicked, then comes
  back) and are audited as the --as operator, subject device:<id>;
- holds place is idempotent (one hold, one audit entry); recordings show
  gives the holds and the chain of custody;
- an export bundle verifies with sha256sum -c; an export of a tampered
  object exits 5, leaves neither DIR nor DIR.partial and is audited as
  export_failed;
- requests: register with counts and per-hold audit entries; extend once
  (+2 months from the deadline), a second time exits 3; show of an empty
  window says so; close releases and audits each hold;
- Redis down: exit 1; a missing config file: exit 2.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import press_ok, status  # noqa: E402
from bodycam_test import check, project_binary, run_checks, wait_for  # noqa: E402
from vault_helpers import audit_entries, ctl, ctl_env, ctl_json, make_recording, \
    object_path, ref_of, vault_stack_args, wait_committed  # noqa: E402

CAMS = ["cam-001", "cam-002"]
state = {}


def ctl_raw(stack, *args, config=None):
    """bodycamctl without the stack's --config (for config errors)."""
    env = ctl_env(stack)
    if config is not None:
        env["BODYCAM_CTL_CONFIG"] = config
    out = subprocess.run([project_binary("bodycamctl"), *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=60, env=env)
    return out.returncode, out.stdout, out.stderr


def one_line_error(err):
    lines = [l for l in err.splitlines() if l.strip()]
    return lines and lines[0].startswith("bodycamctl: ")


def commit_recordings(stack):
    recs = {dev: make_recording(stack, dev, 0.3) for dev in CAMS}
    for dev in CAMS:
        press_ok(stack, dev, "dock")
    refs = {dev: ref_of(dev, rec) for dev, rec in recs.items()}
    state["metas"] = wait_committed(stack, refs.values())
    state["refs"] = refs
    for dev in CAMS:
        press_ok(stack, dev, "undock")


def check_help_and_usage(stack):
    commit_recordings(stack)
    for args in (["--help"], ["help"], ["holds", "--help"], ["help", "holds"],
                 ["holds", "place", "--help"], ["help", "holds", "place"], ["export", "--help"],
                 ["help", "requests", "register"], ["audit", "show", "-h"]):
        code, out, err = ctl(stack, *args)
        check(code == 0 and out.strip() and err == "", f"{args}: exit {code}, {err!r}")
    code, out, _ = ctl(stack, "help", "holds", "place")
    check("--reason aangifte|klacht" in out, f"leaf help: {out}")
    usage = [
        ["bogus"], ["holds"], ["holds", "grab"], ["holds", "place", "cam-001/x"],
        ["holds", "place", "not-a-ref", "--reason", "klacht", "--case", "K1"],
        ["holds", "place", "cam-001/x", "--reason", "inzage", "--case", "K1"],
        ["recordings", "list", "--from", "yesterday"], ["recordings", "list", "--status", "gone"],
        ["requests", "register", "--requester", "X", "--from", "2026-01-02", "--to",
         "2026-01-01"],
        ["audit", "show", "--tail", "0"], ["devices", "show", "CAM 1"],
    ]
    for args in usage:
        code, out, err = ctl(stack, *args)
        check(code == 2, f"{args} exited {code}: {err}")
        check(one_line_error(err), f"{args}: stderr {err!r}")
        check(out == "", f"{args}: stdout {out!r}")
    for args in (["recordings", "show", "cam-001/none"], ["holds", "release", "H999"],
                 ["requests", "show", "R999"], ["devices", "show", "cam-999"]):
        code, _, err = ctl(stack, *args)
        check(code == 4, f"{args} exited {code}: {err}")


def check_json_everywhere(stack):
    ref = state["refs"]["cam-001"]
    for args in (["recordings", "list"], ["recordings", "show", ref], ["holds", "list", "--all"],
                 ["requests", "list", "--all"], ["devices", "list"], ["audit", "verify"],
                 ["audit", "show", "--tail", "3"]):
        code, out, err = ctl(stack, "--json", *args)
        check(code == 0, f"--json {args} exited {code}: {err}")
        json.loads(out)  # exactly one document: raises on anything else
    # also after the command, and on failure: one error document
    code, out, _ = ctl(stack, "recordings", "show", "cam-001/none", "--json")
    check(code == 4 and json.loads(out)["error"]["exit"] == 4, f"error document: {out!r}")
    code, out, _ = ctl(stack, "--json", "holds", "place", ref)
    check(code == 2 and json.loads(out)["error"]["exit"] == 2, f"usage error document: {out!r}")
    shown = ctl_json(stack, "recordings", "show", ref)
    check(shown["recording"]["ref"] == ref and
          [e["action"] for e in shown["audit"]][0] == "commit", f"show: {shown}")


def check_devices(stack):
    dev = "cam-002"
    before = len(audit_entries(stack, f"device:{dev}"))
    lost = ctl_json(stack, "--as", "carol", "devices", "lost", dev)
    check(lost["status"] == "lost" and lost["changed"], f"lost: {lost}")
    wait_for(lambda: status(stack, dev).get("online") == "0", 10, f"{dev} kicked by the broker")
    again = ctl_json(stack, "devices", "lost", dev)
    check(not again["changed"], f"lost twice changed something: {again}")
    shown = ctl_json(stack, "devices", "show", dev)
    check(shown["status"] == "lost" and len(shown["fingerprints"]) == 1, f"show: {shown}")
    ctl_json(stack, "devices", "activate", dev)
    wait_for(lambda: status(stack, dev).get("online") == "1", 30, f"{dev} back online")
    entries = audit_entries(stack, f"device:{dev}")[before:]
    check([e["action"] for e in entries] == ["device_lost", "device_activated"],
          f"device audit: {entries}")
    check(entries[0]["actor"] == "operator:carol" and entries[0]["previous"] == "active",
          f"actor/details: {entries[0]}")
    code, _, err = ctl(stack, "devices", "revoke", "cam-777")
    check(code == 4, f"revoke of an unknown device exited {code}: {err}")


def check_holds_and_export(stack):
    ref = state["refs"]["cam-001"]
    first = ctl_json(stack, "holds", "place", ref, "--reason", "klacht", "--case", "K-2026-9")
    second = ctl_json(stack, "holds", "place", ref, "--reason", "klacht", "--case", "K-2026-9")
    check(first["changed"] and not second["changed"] and
          first["hold"]["id"] == second["hold"]["id"], f"place twice: {first} {second}")
    placed = [e for e in audit_entries(stack, ref) if e["action"] == "hold_placed"]
    check(len(placed) == 1, f"{len(placed)} hold_placed entries")
    tmp = tempfile.mkdtemp(prefix="bodycamctl-")
    out = os.path.join(tmp, "bundle")
    code, stdout, err = ctl(stack, "--json", "export", "--purpose", "klacht", "--case",
                            "K-2026-9", "--out", out, "--progress", ref)
    check(code == 0, f"export exited {code}: {err}")
    doc = json.loads(stdout)  # the bar went to stderr, not here
    check(doc["recordings"] == 1 and doc["bundle"] == os.path.realpath(out), f"result: {doc}")
    check("export [" in err, f"no progress bar on stderr: {err!r}")
    sums = subprocess.run(["sha256sum", "-c", "manifest.sha256"], cwd=out,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(sums.returncode == 0, f"sha256sum -c: {sums.stdout}")
    code, _, err = ctl(stack, "export", "--purpose", "klacht", "--case", "K-2026-9", "--out", out,
                       ref)
    check(code == 2, f"export into an existing directory exited {code}: {err}")
    # a tampered object: exit 5, nothing left, audited
    sha = state["metas"][ref]["sha256"]
    path = object_path(stack, sha)
    saved = path + ".saved"
    shutil.copy2(path, saved)
    try:
        os.chmod(path, 0o600)
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x55]))
        out2 = os.path.join(tmp, "tampered")
        code, _, err = ctl(stack, "export", "--purpose", "klacht", "--case", "K-2026-9", "--out",
                           out2, ref)
        check(code == 5, f"export of a tampered object exited {code}: {err}")
        check(not os.path.exists(out2) and not os.path.exists(out2 + ".partial"),
              "a failed export left files")
        check(any(e["action"] == "export_failed" for e in audit_entries(stack, ref)),
              "export_failed not audited")
    finally:
        os.replace(saved, path)
        os.chmod(path, 0o400)
    release = ctl_json(stack, "holds", "release", first["hold"]["id"], "--note", "handled")
    check(not release["hold"]["active"], f"release: {release}")
    code, _, err = ctl(stack, "holds", "release", first["hold"]["id"])
    check(code == 3, f"release twice exited {code}: {err}")


def check_requests(stack):
    ref = state["refs"]["cam-002"]
    t = int(state["metas"][ref]["recorded_at"])
    reg = ctl_json(stack, "requests", "register", "--requester", "A. Bakker", "--from",
                   str(t - 60000), "--to", str(t + 60000), "--camera", "cam-002", "--contact",
                   "a.bakker@example.org")
    rid = reg["request"]["id"]
    check(reg["request"]["held"] == 1 and [m["ref"] for m in reg["matches"]] == [ref],
          f"register: {reg}")
    subject = f"request:{rid}"
    entries = audit_entries(stack, subject)
    check(len(entries) == 1 and entries[0]["held"] == 1 and "contact" not in entries[0],
          f"request_registered: {entries}")
    holds = [e for e in audit_entries(stack, ref) if e["action"] == "hold_placed"
             and e.get("request_id") == rid]
    check(len(holds) == 1, f"hold_placed for the request: {holds}")
    deadline = reg["request"]["deadline"]
    ext = ctl_json(stack, "requests", "extend", rid, "--reason", "many recordings")
    check(ext["request"]["extended"] and ext["request"]["deadline"] > deadline + 55 * 86400000,
          f"extend: {ext['request']}")
    code, _, err = ctl(stack, "requests", "extend", rid, "--reason", "again")
    check(code == 3, f"a second extension exited {code}: {err}")
    empty = ctl_json(stack, "requests", "register", "--requester", "B", "--from",
                     "2020-01-01", "--to", "2020-01-02")
    code, out, err = ctl(stack, "requests", "show", empty["request"]["id"])
    check(code == 0 and "no recordings in this window" in out, f"empty show: {out}{err}")
    closed = ctl_json(stack, "requests", "close", rid, "--answer", "shown at the desk")
    check([h["ref"] for h in closed["released"]] == [ref], f"close: {closed}")
    actions = [e["action"] for e in audit_entries(stack, ref)]
    check(actions[-1] == "hold_released", f"trail of {ref}: {actions}")
    code, _, err = ctl(stack, "requests", "close", rid, "--answer", "again")
    check(code == 3, f"closing twice exited {code}: {err}")
    code, out, err = ctl(stack, "audit", "verify")
    check(code == 0, f"audit verify: {out}{err}")


def check_config_and_redis_errors(stack):
    code, _, err = ctl_raw(stack, "recordings", "list", config="/nonexistent/bodycamctl.conf")
    check(code == 2 and one_line_error(err), f"missing config exited {code}: {err}")
    tmp = tempfile.mkdtemp(prefix="bodycamctl-")
    conf = os.path.join(tmp, "down.conf")
    with open(conf, "w") as f:
        f.write("redis_host = 127.0.0.1\nredis_port = 1\nredis_timeout_ms = 500\n")
    code, out, err = ctl_raw(stack, "--json", "recordings", "list", config=conf)
    check(code == 1 and json.loads(out)["error"]["exit"] == 1, f"redis down: {code} {out} {err}")
    with open(conf, "a") as f:
        f.write(f"audit_dir = {tmp}/nowhere\n")
    code, _, err = ctl_raw(stack, "audit", "verify", config=conf)
    check(code == 2, f"a missing audit_dir exited {code}: {err}")
    check(not os.path.exists(os.path.join(tmp, "nowhere")), "bodycamctl made an audit_dir")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("help at every level; usage errors exit 2, unknown things 4", check_help_and_usage),
        ("--json: one document per command, also on failure", check_json_everywhere),
        ("devices lost/activate reach the broker and are audited", check_devices),
        ("holds are idempotent; export verifies; a tampered export leaves nothing",
         check_holds_and_export),
        ("requests: register, extend once, empty window, close", check_requests),
        ("a missing config exits 2, Redis down exits 1", check_config_and_redis_errors),
    ], **vault_stack_args(cameras=2)))
