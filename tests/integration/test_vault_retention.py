#!/usr/bin/env python3
"""vault-retention: 28 days later, holds, access requests, refused exports
and a tampered audit log, on a real stack (agents, broker with the plugin,
gateway, fleet-health, vault) driven through bodycamctl.

Guarantees checked: a recording without a hold is purged once its 28 days
are over (object and wrapped key gone, a purge audit entry first) and never
before; a held one stays (aangifte hold, an open inzage request's automatic
hold); a request for a period already purged is answered with the purge's
audit entry; an overdue request raises request_overdue; closing it releases
its holds; an export without a valid case reference is refused, audited and
writes nothing; audit verify fails after one entry is edited.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import press_ok, recording_path, status  # noqa: E402
from bodycam_test import check, run_checks, wait_for  # noqa: E402
from vault_helpers import audit_entries, catalog, ctl, ctl_json, make_recording, object_path, \
    rc, ref_of, set_clock, vault_stack_args, wait_committed  # noqa: E402

DAY_MS = 86400 * 1000
CAMS = ["cam-001", "cam-002", "cam-003"]
state = {}


def iso(ms):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def outbox_alerts(stack, kind):
    found = []
    for _id, fields in rc(stack, "XRANGE", "bodycam:stream:outbox", "-", "+") or []:
        f = dict(zip(fields[0::2], fields[1::2]))
        if f.get("topic", "").endswith("fleet/alerts"):
            msg = json.loads(f["payload"])
            if msg["kind"] == kind:
                found.append(msg)
    return found


def check_commit_with_officer(stack):
    rc(stack, "HSET", "bodycam:assignment:cam-001", "officer", "h-1234")
    recs = {dev: make_recording(stack, dev, 0.3) for dev in CAMS}
    for dev in CAMS:
        press_ok(stack, dev, "dock")
    refs = {dev: ref_of(dev, rec) for dev, rec in recs.items()}
    metas = wait_committed(stack, refs.values())
    for dev, rec in recs.items():
        wait_for(lambda d=dev, r=rec: not os.path.exists(recording_path(stack, d, r)), 60,
                 f"{dev} to delete after the receipt")
        press_ok(stack, dev, "undock")
    check(metas[refs["cam-001"]]["officer"] == "h-1234", f"officer: {metas[refs['cam-001']]}")
    state["refs"] = refs
    state["metas"] = metas
    listed = ctl_json(stack, "recordings", "list", "--device", "cam-001")
    check(any(r["ref"] == refs["cam-001"] for r in listed["recordings"]), f"list: {listed}")


def check_refused_exports(stack):
    refs = state["refs"]
    ref = refs["cam-001"]
    ctl_json(stack, "holds", "place", ref, "--reason", "aangifte", "--case", "PV-2026-77",
             "--note", "seized for the investigation")
    out = os.path.join(tempfile.mkdtemp(prefix="bodycam-export-"), "bundle")
    cases = [
        ("aangifte", "PV-2026-78", ref),          # another case
        ("klacht", "PV-2026-77", ref),            # the case, another purpose
        ("aangifte", "PV-2026-77", refs["cam-003"]),  # a recording without that hold
    ]
    for purpose, case, r in cases:
        code, _out, err = ctl(stack, "export", "--purpose", purpose, "--case", case, "--out",
                              out, r)
        check(code == 3, f"export {purpose}/{case} of {r} exited {code}: {err}")
        check(not os.path.exists(out) and not os.path.exists(out + ".partial"),
              "a refused export wrote files")
    code, _out, err = ctl(stack, "export", "--purpose", "curiosity", "--case", "x", "--out", out,
                          ref)
    check(code in (2, 3), f"an unknown purpose exited {code}: {err}")
    refused = [e for e in audit_entries(stack) if e["action"] == "export_refused"]
    check(len(refused) >= 3, f"{len(refused)} export_refused entries")


def check_request_holds(stack):
    m = state["metas"][state["refs"]["cam-002"]]
    t = int(m["recorded_at"])
    req = ctl_json(stack, "requests", "register", "--requester", "J. Jansen", "--from",
                   str(t - 60000), "--to", str(t + 60000), "--camera", "cam-002", "--place",
                   "Markt, Utrecht")
    rid = req["request"]["id"] if "request" in req else req["id"]
    state["request"] = rid
    shown = ctl_json(stack, "requests", "show", rid)
    refs = [x["ref"] for x in shown["matches"]]
    check(state["refs"]["cam-002"] in refs, f"request {rid} matched {refs}")
    holds = ctl_json(stack, "holds", "list", "--ref", state["refs"]["cam-002"])
    check(any(h["reason"] == "inzage" and h["case_ref"] == rid for h in holds["holds"]),
          f"no inzage hold: {holds}")


def check_purge_after_28_days(stack):
    refs, metas = state["refs"], state["metas"]
    gone = refs["cam-003"]
    passes = int(rc(stack, "HGET", "bodycam:vault:1", "purge_passes") or 0)
    set_clock(stack, 28 * DAY_MS - 60 * 60 * 1000)  # one hour before: nothing may go
    wait_for(lambda: int(rc(stack, "HGET", "bodycam:vault:1", "purge_passes") or 0) >= passes + 2,
             20, "two purge passes at 28 days minus an hour")
    check(catalog(stack, gone)["status"] == "committed", "purged before its 28 days")
    set_clock(stack, 28 * DAY_MS + 60 * 1000)
    wait_for(lambda: catalog(stack, gone).get("status") == "purged", 30, f"{gone} purged")
    check(not os.path.exists(object_path(stack, metas[gone]["sha256"])), "object still there")
    purge = [e for e in audit_entries(stack, gone) if e["action"] == "purge"]
    check(len(purge) == 1, f"{len(purge)} purge entries for {gone}")
    for dev in ("cam-001", "cam-002"):
        m = catalog(stack, refs[dev])
        check(m["status"] == "committed", f"held {refs[dev]} is {m['status']}")
        check(os.path.exists(object_path(stack, m["sha256"])), f"held {refs[dev]}: object gone")


def check_request_for_purged_period(stack):
    m = state["metas"][state["refs"]["cam-003"]]
    t = int(m["recorded_at"])
    req = ctl_json(stack, "requests", "register", "--requester", "P. de Vries", "--from",
                   str(t - 1000), "--to", str(t + 1000), "--camera", "cam-003")
    rid = req["request"]["id"] if "request" in req else req["id"]
    shown = ctl_json(stack, "requests", "show", rid)
    match = [x for x in shown["matches"] if x["ref"] == state["refs"]["cam-003"]]
    check(len(match) == 1 and match[0]["status"] == "purged", f"matches: {shown['matches']}")
    seq = int(match[0]["purge_audit_seq"])
    proof = [e for e in audit_entries(stack) if e["seq"] == seq]
    check(len(proof) == 1 and proof[0]["action"] == "purge" and
          proof[0]["subject"] == state["refs"]["cam-003"], f"proof entry {seq}: {proof}")
    ctl_json(stack, "requests", "close", rid, "--answer", "recording was purged; proof sent")


def check_overdue_then_close(stack):
    rid = state["request"]
    set_clock(stack, 28 * DAY_MS + 40 * DAY_MS)  # past the one-month deadline
    wait_for(lambda: [a for a in outbox_alerts(stack, "request_overdue")
                      if a["status"] == "raised" and a["id"] == f"request-{rid}"], 30,
             f"request_overdue for {rid}")
    ref = state["refs"]["cam-002"]
    check(catalog(stack, ref)["status"] == "committed", "held by an open request, yet purged")
    ctl_json(stack, "requests", "close", rid, "--answer", "footage shown on 2026-12-20")
    wait_for(lambda: [a for a in outbox_alerts(stack, "request_overdue")
                      if a["status"] == "cleared" and a["id"] == f"request-{rid}"], 30,
             f"request_overdue cleared for {rid}")
    wait_for(lambda: catalog(stack, ref).get("status") == "purged", 30,
             f"{ref} purged once its request was closed")
    actions = [e["action"] for e in audit_entries(stack, ref)]
    check(actions.index("hold_released") < actions.index("purge"), f"trail {actions}")


def check_release_then_purge(stack):
    ref = state["refs"]["cam-001"]
    holds = ctl_json(stack, "holds", "list", "--ref", ref)["holds"]
    active = [h for h in holds if h.get("active")]
    check(len(active) == 1, f"holds of {ref}: {holds}")
    ctl_json(stack, "holds", "release", active[0]["id"], "--note", "case closed")
    wait_for(lambda: catalog(stack, ref).get("status") == "purged", 30, f"{ref} purged")
    code, _o, err = ctl(stack, "holds", "place", ref, "--reason", "klacht", "--case", "K-1")
    check(code == 3, f"a hold on a purged recording exited {code}: {err}")


def check_audit_tamper(stack):
    code, out, err = ctl(stack, "audit", "verify")
    check(code == 0, f"a clean log does not verify: {out}{err}")
    audit_dir = stack.info["vault"]["audit_dir"]
    files = sorted(f for f in os.listdir(audit_dir) if f.startswith("audit-"))
    path = os.path.join(audit_dir, files[0])
    with open(path) as f:
        lines = f.readlines()
    check(len(lines) > 3, "too few entries to tamper with")
    victim = json.loads(lines[1])
    lines[1] = lines[1].replace(f'"subject":"{victim["subject"]}"',
                                f'"subject":"{victim["subject"]}x"', 1)
    with open(path, "w") as f:
        f.writelines(lines)
    code, out, err = ctl(stack, "audit", "verify")
    check(code == 5, f"verify of an edited log exited {code}: {out}{err}")
    check(str(victim["seq"]) in (out + err), f"verify does not name entry {victim['seq']}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("commit with the assigned officer; bodycamctl lists it", check_commit_with_officer),
        ("exports without a valid case reference are refused and audited",
         check_refused_exports),
        ("an access request holds its matches", check_request_holds),
        ("28 days later: unheld purged, held kept", check_purge_after_28_days),
        ("a request for a purged period is answered with the purge's audit entry",
         check_request_for_purged_period),
        ("an overdue request is alerted; closing it releases its hold",
         check_overdue_then_close),
        ("releasing the last hold lets the purge take it", check_release_then_purge),
        ("audit verify fails after one entry is edited", check_audit_tamper),
    ], **vault_stack_args(cameras=3)))
