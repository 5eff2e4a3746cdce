"""firmware_helpers - what the firmware rollout tests (issue 8) share.

  make_image(path, version, selftest="pass", size=200000)
                                   a simulated firmware image (the format the camera
                                   agent's updater reads); returns {path, version, size, sha256}
  bodycamctl(stack, *args)         bodycamctl with the stack's config and clock (the vault's
                                   bodycamctl.conf: it has the firmware key pair); returns
                                   (exit code, stdout, stderr) - vault_helpers.ctl
  firmware(stack, *args, expect=0) `bodycamctl --json firmware ARGS`: checks the exit code,
                                   returns the JSON it printed ({"error": ...} on failure)
  rollout_status(stack, rid)       bodycam:rollout:<rid> as a dict (numbers as int, waves as
                                   a list); {} when there is no such rollout
  camera_entry(stack, rid, dev)    one camera of the rollout: {wave, status, cmd_id, since,
                                   from_version, detail}, or None
  camera_entries(stack, rid)       every camera of the rollout: {dev: entry}
  wait_rollout(stack, rid, what, pred=None, timeout=30, **expected)
                                   until the rollout hash has the expected fields (and pred)
  wait_camera(stack, rid, dev, statuses, timeout=30)
                                   until the camera's status is one of statuses

The stack needs the vault (bodycamctl.conf is written with it) and, for the
service itself, a built bodycam-firmware-rollout (tools/bodycam-stack starts it
when it exists).
"""

import hashlib
import json
import os

from bodycam_test import CheckFailed, check, wait_for
from vault_helpers import as_dict, ctl, rc

IMAGE_MAGIC = b"BODYCAM-FW 1\n"
SELFTESTS = ("pass", "fail", "crash")
CAMERA_FIELDS = ("wave", "status", "cmd_id", "since", "from_version", "detail")


def make_image(path, version, selftest="pass", size=200000):
    """Writes `BODYCAM-FW 1\\n` + {"version":..,"selftest":..}\\n + random bytes up to
    size bytes in all (no padding when the header alone is longer)."""
    check(selftest in SELFTESTS, f"selftest {selftest!r} is not one of {SELFTESTS}")
    head = IMAGE_MAGIC + json.dumps({"version": version, "selftest": selftest},
                                    separators=(",", ":")).encode() + b"\n"
    data = head + os.urandom(max(0, size - len(head)))
    with open(path, "wb") as f:
        f.write(data)
    return {"path": path, "version": version, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def bodycamctl(stack, *args, timeout=120):
    return ctl(stack, *args, timeout=timeout)


def firmware(stack, *args, expect=0):
    code, out, err = ctl(stack, "--json", "firmware", *args)
    check(code == expect, f"bodycamctl firmware {' '.join(map(str, args))} exited {code} "
                          f"(wanted {expect}): {out.strip()} {err.strip()}")
    try:
        return json.loads(out) if out.strip() else {}
    except ValueError:
        raise CheckFailed(f"bodycamctl firmware {' '.join(map(str, args))} printed no JSON: "
                          f"{out!r}")


# fields of the rollout hash that stay text even when they look like a number
TEXT_FIELDS = {"id", "version", "state", "created_by", "target", "reason", "waves",
               "rollback_manifests"}


def _value(name, text):
    if name in TEXT_FIELDS or not text.lstrip("-").isdigit():
        return text
    return int(text)


def rollout_status(stack, rid):
    flat = as_dict(rc(stack, "HGETALL", f"bodycam:rollout:{rid}"))
    r = {k: _value(k, v) for k, v in flat.items()}
    if isinstance(r.get("waves"), str):
        r["waves"] = json.loads(r["waves"])
    return r


def parse_camera_entry(text):
    """`wave|status|cmd_id|since|from_version|detail` (detail last, may hold '|')."""
    parts = text.split("|", len(CAMERA_FIELDS) - 1)
    if len(parts) != len(CAMERA_FIELDS):
        raise CheckFailed(f"camera entry {text!r} has {len(parts)} fields, not 6")
    e = dict(zip(CAMERA_FIELDS, parts))
    e["wave"] = int(e["wave"])
    e["since"] = int(e["since"] or 0)
    return e


def camera_entry(stack, rid, dev):
    text = rc(stack, "HGET", f"bodycam:rollout:{rid}:cameras", dev)
    return parse_camera_entry(text) if text is not None else None


def camera_entries(stack, rid):
    flat = as_dict(rc(stack, "HGETALL", f"bodycam:rollout:{rid}:cameras"))
    return {dev: parse_camera_entry(text) for dev, text in flat.items()}


def wait_rollout(stack, rid, what, pred=None, timeout=30.0, **expected):
    """expected: field=value of the hash (values compared after int conversion),
    e.g. state="done", updated=3."""
    last = {}

    def ok():
        last.clear()
        last.update(rollout_status(stack, rid))
        if any(last.get(k) != v for k, v in expected.items()):
            return None
        return dict(last) if pred is None or pred(last) else None
    try:
        return wait_for(ok, timeout, f"rollout {rid}: {what}", interval=0.1)
    except CheckFailed as e:
        raise CheckFailed(f"{e}; last {last}")


def wait_camera(stack, rid, dev, statuses, timeout=30.0):
    """statuses: one status or a tuple of them; returns the entry."""
    wanted = (statuses,) if isinstance(statuses, str) else tuple(statuses)
    last = {}

    def ok():
        e = camera_entry(stack, rid, dev)
        last["entry"] = e
        return e if e is not None and e["status"] in wanted else None
    try:
        return wait_for(ok, timeout, f"{dev} {'/'.join(wanted)} in rollout {rid}", interval=0.1)
    except CheckFailed as e:
        raise CheckFailed(f"{e}; last {last.get('entry')}; rollout {rollout_status(stack, rid)}")
