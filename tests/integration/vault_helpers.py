"""vault_helpers - what the vault tests (test_vault_*.py) share.

  vault_stack_args(cameras, bitrate, vault_set)  Stack kwargs: agents and the vault on
  make_recording(stack, dev, seconds)       warn, warn, record, stop; returns the recording id
  ref_of(dev, rec_id)                       the vault's name of a recording, "<dev>/<rec>"
  catalog(stack, ref)                       bodycam:recording:<ref> as a dict ({} if none)
  wait_committed(stack, refs)               until every ref is committed in the catalog
  vault_status(stack)                       bodycam:vault:<instance> as a dict of ints/strs
  vault_signal(stack, sig) / vault_restart  the stack runner's kill / restart of "vault"
  ctl(stack, *args)                         bodycamctl with the stack's config (and clock);
                                            returns (exit code, stdout, stderr)
  ctl_json(stack, *args)                    the same with --json, asserting exit 0
  audit_entries(stack, subject=None)        the audit log's entries (parsed), in seq order
  set_clock(stack, offset_ms)               moves every process's clock (DIR/clock)
  object_path(stack, sha256)                where the vault keeps a committed object
"""

import glob
import json
import os
import subprocess
import time

from agent_helpers import press_ok, status
from bodycam_test import STACK_RUNNER, CheckFailed, check, project_binary, redis_command, run, \
    wait_for

PREFIX = "bodycam/v1/"


def vault_stack_args(cameras=5, bitrate=800000, vault_set=(), **agent_options):
    extra = ["--agents", "--agent-bitrate", str(bitrate)]
    for name, value in agent_options.items():
        extra += ["--agent-set", f"{name}={value}"]
    if vault_set:
        os.environ["BODYCAM_VAULT_SET"] = " ".join(vault_set)
    return {"cameras": cameras, "extra_args": extra}


def make_recording(stack, dev, seconds=0.5):
    base = int(status(stack, dev)["seq"])
    for line in ("warn", "warn", "record"):
        press_ok(stack, dev, line)
    time.sleep(seconds)  # some video into the recording (a duration, not a condition)
    press_ok(stack, dev, "stop")
    return f"{dev}-{base + 3}"


def ref_of(dev, rec_id):
    return f"{dev}/{rec_id}"


def rc(stack, *args):
    return redis_command(stack.info["redis"]["port"], *args)


def as_dict(flat):
    flat = flat or []
    return dict(zip(flat[0::2], flat[1::2]))


def catalog(stack, ref):
    return as_dict(rc(stack, "HGETALL", f"bodycam:recording:{ref}"))


def wait_committed(stack, refs, timeout=60.0):
    refs = list(refs)

    def done():
        metas = {r: catalog(stack, r) for r in refs}
        return metas if all(m.get("status") == "committed" for m in metas.values()) else None
    try:
        return wait_for(done, timeout, f"{len(refs)} recording(s) committed", interval=0.1)
    except CheckFailed as e:
        states = {r: catalog(stack, r).get("status") for r in refs}
        raise CheckFailed(f"{e}; catalog states {states}; vault {vault_status(stack)}")


def vault_status(stack):
    return as_dict(rc(stack, "HGETALL", stack.info["vault"]["status_key"]))


def vault_signal(stack, sig):
    run([STACK_RUNNER, "kill", stack.dir, "vault", "--signal", sig])


def vault_restart(stack):
    return stack.restart("vault")


def ctl_env(stack):
    env = dict(os.environ)
    env["BODYCAM_CLOCK_FILE"] = stack.info["clock_file"]
    env["BODYCAM_CTL_CONFIG"] = stack.info["vault"]["ctl_config"]
    return env


def ctl(stack, *args, timeout=120):
    argv = [project_binary("bodycamctl"), "--config", stack.info["vault"]["ctl_config"],
            *[str(a) for a in args]]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=timeout, env=ctl_env(stack))
    return out.returncode, out.stdout, out.stderr


def ctl_json(stack, *args):
    code, out, err = ctl(stack, "--json", *args)
    check(code == 0, f"bodycamctl {' '.join(map(str, args))} exited {code}: {err.strip()}")
    return json.loads(out)


def audit_entries(stack, subject=None):
    entries = []
    for path in sorted(glob.glob(os.path.join(stack.info["vault"]["audit_dir"], "audit-*.log"))):
        with open(path) as f:
            for line in f:
                if line.strip():
                    e = json.loads(line)
                    if subject is None or e.get("subject") == subject:
                        entries.append(e)
    return sorted(entries, key=lambda e: e["seq"])


def set_clock(stack, offset_ms):
    tmp = stack.info["clock_file"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(int(offset_ms)))
    os.replace(tmp, stack.info["clock_file"])


def object_path(stack, sha256):
    return os.path.join(stack.info["vault"]["dir"], "objects", sha256[0:2], sha256[2:4], sha256)


def staging_dir(stack, dev, rec_id):
    return os.path.join(stack.info["vault"]["dir"], "staging", dev, rec_id)


def xadd_upload(stack, dev, payload):
    """An upload message straight into the stream, as the gateway writes it."""
    return rc(stack, "XADD", "bodycam:stream:upload", "*", "device", dev, "kind", "upload",
              "payload", payload, "received_at", str(int(time.time() * 1000)),
              "topic", f"{PREFIX}devices/{dev}/upload")
