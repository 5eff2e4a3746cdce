#!/usr/bin/python3
"""firmware-rollout: signed images in staged waves to five real agents, with
automatic halt and rollback (issue 8).

Real stack: broker with the bodycam-auth plugin and TLS, Redis, gateway,
fleet-health, bodycam-firmware-rollout and five bodycam-agent processes
(cam-001 .. cam-005, factory firmware 1.0.0); images are published and
rollouts driven with bodycamctl, exactly as an operator does. The images are
the simulated firmware format (device-agent/README.md): a header naming the
version and how its self test goes after the switch (pass, fail, crash).

  tampered image      chunk bytes changed in Redis after publishing: the
                      camera's SHA-256 check fails, nothing is installed, the
                      rollout halts on the error threshold
  canary first        1.1.0 to all five, canary cam-001 alone in wave 1: no
                      other camera is offered before the canary confirmed;
                      cam-003 is recording (deferred: offered only after it
                      stopped and docked, the recording intact), cam-004 is
                      offline during its wave (updated once it is back); the
                      rollout is done, every camera reports 1.1.0, fleet/
                      summary showed the progress
  downgrade           a signed 1.0.5 (not a rollback) is refused by the camera
  forged manifest     a manifest signed by another key is refused
  bad version         1.2.0 fails its health check on the canary: the canary
                      goes back to 1.1.0 by itself, the rollout halts before
                      the next wave (no other camera offered), rollout_halted
                      on fleet/alerts
  killed mid-update   an agent SIGKILLed while downloading starts again on its
                      old version and completes the update
  crash at start      1.4.0 crashes the agent at its trial boot; restarted (as
                      a watchdog would), the camera is back on its previous
                      slot and reports fw_rolled_back
  abort --rollback    two cameras that took 1.6.0 go back to 1.1.0 (a signed
                      rollback manifest; the image is still in the other slot)
  service killed      bodycam-firmware-rollout SIGKILLed mid-rollout and
                      restarted: the rollout completes (its state is Redis)
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import Observer, agent_kill, agent_restart, press_ok, status  # noqa: E402
from bodycam_test import STACK_RUNNER, check, project_binary, run, run_checks, wait_for  # noqa: E402
from fleet_health_helpers import retained_summary  # noqa: E402
from firmware_helpers import (camera_entry, firmware, make_image, rollout_status,  # noqa: E402
                              wait_camera, wait_rollout)
from vault_helpers import as_dict, rc  # noqa: E402

CAMERAS = [f"cam-00{i}" for i in range(1, 6)]
SCRATCH = tempfile.mkdtemp(prefix="fw-it-")
os.environ["BODYCAM_FIRMWARE_ROLLOUT_SET"] = "scan_interval_ms=200 offer_interval_ms=50"


def publish(stack, version, selftest="pass", size=200_000):
    path = os.path.join(SCRATCH, f"fw-{version}-{selftest}.img")
    image = make_image(path, version, selftest, size)
    out = firmware(stack, "publish", path, "--version", version)
    check(out.get("sha256") == image["sha256"], f"published {out}, made {image}")
    return image


def start(stack, version, *args):
    # a check that failed may have left its rollout active (one at a time)
    for rid in rc(stack, "SMEMBERS", "bodycam:rollouts:active") or []:
        firmware(stack, "abort", rid)
    out = firmware(stack, "start", version, "--wait", "0", *args)
    rid = out.get("rollout") or out.get("id")
    check(rid, f"no rollout id in {out}")
    return rid


def process_gone(stack, name):
    """True once the stack's process `name` has exited (its pid no longer runs)."""
    pid = stack.info["processes"][name]["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie the runner has not reaped
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def fw_of(stack, dev):
    """The version the camera runs; None while it restarts into another slot
    (its control socket is away for a moment) or while its process is down."""
    try:
        return status(stack, dev).get("fw")
    except OSError:
        return None


def wait_fw(stack, dev, version, timeout=60):
    wait_for(lambda: fw_of(stack, dev) == version, timeout, f"{dev} running {version}")


def record(stack, dev):
    return as_dict(rc(stack, "HGETALL", f"bodycam:camera:{dev}"))


def abort(stack, rid):
    firmware(stack, "abort", rid)
    wait_rollout(stack, rid, "aborted", state="aborted")


# ---------------------------------------------------------------- the checks

def check_tampered(stack):
    dev = "cam-001"
    publish(stack, "1.0.9")
    # an attacker (or a bad disk) changes a chunk after it was signed
    key = "bodycam:firmware:1.0.9:chunks"
    length = rc(stack, "HSTRLEN", key, "1")
    check(length and length > 0, "chunk 1 of 1.0.9 not in Redis")
    rc(stack, "HSET", key, "1", os.urandom(length))
    with Observer(stack, dev) as obs:
        rid = start(stack, "1.0.9", "--camera", dev)
        ev = obs.wait_event_type("fw_failed", timeout=60, version="1.0.9")
        check("manifest" in ev.get("detail", ""), f"failure reason: {ev}")
    e = wait_camera(stack, rid, dev, "failed")
    check("manifest" in e["detail"], f"entry detail {e}")
    wait_rollout(stack, rid, "halted", state="halted")
    check(fw_of(stack, dev) == "1.0.0", f"{dev} runs {fw_of(stack, dev)}")
    abort(stack, rid)


def check_canary_waves(stack):
    canary, recording, offline = "cam-001", "cam-003", "cam-004"
    publish(stack, "1.1.0")
    press_ok(stack, recording, "emergency")
    wait_for(lambda: status(stack, recording).get("state") == "recording", 10, "recording")
    agent_kill(stack, offline, "TERM")
    wait_for(lambda: record(stack, offline).get("online") == "0", 20, f"{offline} offline")
    rid = start(stack, "1.1.0", "--wave", canary, "--wave", ",".join(CAMERAS[1:]),
                "--success-pct", "60")
    def canary_alone():
        # no camera of wave 2 is offered before the canary confirmed (the
        # canary is read first: a wave started after that read is legal)
        if camera_entry(stack, rid, canary)["status"] == "updated":
            return True
        for dev in CAMERAS[1:]:
            st = camera_entry(stack, rid, dev)["status"]
            check(st == "pending", f"{dev} is {st} before the canary confirmed")
        return False
    wait_for(canary_alone, 90, "the canary updated", interval=0.05)
    canary_done = camera_entry(stack, rid, canary)["since"]
    for dev in ("cam-002", "cam-005"):
        wait_camera(stack, rid, dev, ("updated",), timeout=90)
    r = rollout_status(stack, rid)
    check(r.get("current_wave") == 1 and r.get("wave_started_at", 0) >= canary_done,
          f"wave 2 started before the canary confirmed: {r}")
    # the dashboard's view: the fleet summary carries the rollout's progress
    summary = retained_summary(stack, lambda m: m.get("rollout_cameras") == 5
                               and m.get("rollout_updated", 0) >= 3, timeout=15)
    check(summary.get("rollouts_active") == 1 and summary.get("rollout_waves") == 2
          and summary.get("rollout_wave") == 2, f"summary {summary}")
    check(camera_entry(stack, rid, recording)["status"] == "pending",
          f"{recording} offered while recording: {camera_entry(stack, rid, recording)}")
    check(camera_entry(stack, rid, offline)["status"] == "pending", "offline camera offered")
    check(rollout_status(stack, rid)["state"] == "running", "rollout done with cameras left")
    press_ok(stack, recording, "stop")
    press_ok(stack, recording, "dock")
    wait_camera(stack, rid, recording, ("updated",), timeout=90)
    agent_restart(stack, offline)
    wait_camera(stack, rid, offline, ("updated",), timeout=90)
    r = wait_rollout(stack, rid, "done", state="done", timeout=60)
    check(r.get("updated") == 5 and r.get("failed", 0) == 0, f"counters {r}")
    for dev in CAMERAS:
        wait_fw(stack, dev, "1.1.0")
        rec = record(stack, dev)
        check(rec.get("fw") == "1.1.0", f"{dev} record fw {rec.get('fw')}")
    press_ok(stack, recording, "undock")


def check_downgrade_and_forged(stack):
    dev = "cam-002"
    publish(stack, "1.0.5")
    with Observer(stack, dev) as obs:
        rid = start(stack, "1.0.5", "--camera", dev)
        ev = obs.wait_event_type("fw_refused", timeout=30, version="1.0.5")
        check("downgrade" in ev.get("detail", "") or "newer" in ev.get("detail", ""),
              f"refusal reason: {ev}")
    wait_camera(stack, rid, dev, "failed")
    check(fw_of(stack, dev) == "1.1.0", f"{dev} runs {fw_of(stack, dev)}")
    wait_rollout(stack, rid, "halted", state="halted")
    abort(stack, rid)

    # a manifest signed by a key that is not the fleet's firmware key (an
    # operator CLI configured without the public key to check it against)
    other = os.path.join(SCRATCH, "other-firmware.key")
    run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", other])
    with open(stack.info["vault"]["ctl_config"]) as f:
        lines = [ln for ln in f.read().splitlines()
                 if not ln.startswith(("firmware_key_file", "firmware_pubkey_file"))]
    forged_conf = os.path.join(SCRATCH, "forged-bodycamctl.conf")
    with open(forged_conf, "w") as f:
        f.write("\n".join(lines + [f"firmware_key_file = {other}", ""]))
    path = os.path.join(SCRATCH, "fw-1.5.0-forged.img")
    make_image(path, "1.5.0")
    run([project_binary("bodycamctl"), "--config", forged_conf, "firmware", "publish", path,
         "--version", "1.5.0"])
    with Observer(stack, dev) as obs:
        rid = start(stack, "1.5.0", "--camera", dev)
        ev = obs.wait_event_type("fw_refused", timeout=30, version="1.5.0")
        check("signature" in ev.get("detail", ""), f"refusal reason: {ev}")
    e = wait_camera(stack, rid, dev, "failed")
    check("signature" in e["detail"], f"entry {e}")
    check(fw_of(stack, dev) == "1.1.0", f"{dev} runs {fw_of(stack, dev)}")
    abort(stack, rid)


def check_bad_version(stack):
    canary = "cam-002"
    publish(stack, "1.2.0", "fail")
    rid = start(stack, "1.2.0", "--wave", canary,
                "--wave", ",".join(c for c in CAMERAS if c != canary))
    e = wait_camera(stack, rid, canary, ("rolled_back", "failed"), timeout=90)
    check(e["status"] == "rolled_back", f"canary {e}")
    r = wait_rollout(stack, rid, "halted", state="halted")
    check(r.get("rolled_back") == 1, f"counters {r}")
    wait_fw(stack, canary, "1.1.0")
    time.sleep(1.5)  # a few offer passes: none may offer the next wave
    for dev in CAMERAS:
        if dev != canary:
            st = camera_entry(stack, rid, dev)["status"]
            check(st == "pending", f"{dev} is {st} after the halt")
            check(fw_of(stack, dev) == "1.1.0", f"{dev} runs {fw_of(stack, dev)}")
    alerts = rc(stack, "XREVRANGE", "bodycam:stream:outbox", "+", "-", "COUNT", "200")
    found = [f for _, f in alerts
             if "rollout_halted" in (as_dict(f).get("payload") or "")]
    check(found, "no rollout_halted alert in the outbox")
    abort(stack, rid)


def check_killed_mid_update(stack):
    dev = "cam-005"
    publish(stack, "1.3.0", "pass", 24_000_000)
    part = os.path.join(stack.info["devices"][dev]["data_dir"], "firmware", "download.img")
    rid = start(stack, "1.3.0", "--camera", dev)
    # killed as soon as the download is under way (power loss mid-download)
    wait_for(lambda: os.path.exists(part), 30, f"{dev} downloading", interval=0.002)
    agent_kill(stack, dev, "KILL")
    check(os.path.exists(part), "the download was over before the kill: nothing tested")
    log = os.path.join(stack.dir, "logs", f"agent:{dev}.log")
    seen = os.path.getsize(log)
    agent_restart(stack, dev)
    # it starts on its old version (its log's first line about it after the
    # restart: the resumed download may finish before a status call comes)...
    def first_up():
        with open(log, errors="replace") as f:
            f.seek(seen)
            return next((ln for ln in f if "camera up: firmware" in ln), None)
    line = wait_for(first_up, 20, f"{dev} up again")
    check("camera up: firmware 1.1.0 " in line, f"{dev} came back with: {line.strip()}")
    # ...and completes the update
    wait_camera(stack, rid, dev, ("updated",), timeout=120)
    wait_fw(stack, dev, "1.3.0")
    wait_rollout(stack, rid, "done", state="done", timeout=60)


def check_crash_at_start(stack):
    dev = "cam-001"
    publish(stack, "1.4.0", "crash")
    rid = start(stack, "1.4.0", "--camera", dev)
    # the agent aborts at its trial boot: the process is gone by itself (a
    # restart of a live agent would also end the trial, so this is checked)
    wait_camera(stack, rid, dev, ("installed", "rolled_back", "failed"), timeout=60)
    wait_for(lambda: process_gone(stack, f"agent:{dev}"), 30, f"agent:{dev} crashed")
    agent_restart(stack, dev)  # the watchdog
    e = wait_camera(stack, rid, dev, ("rolled_back",), timeout=60)
    check("confirm" in e["detail"], f"detail {e}")
    wait_fw(stack, dev, "1.1.0")
    wait_rollout(stack, rid, "halted", state="halted")
    abort(stack, rid)


def check_abort_rollback(stack):
    devs, away = ["cam-002", "cam-003"], "cam-004"
    publish(stack, "1.6.0")
    agent_kill(stack, away, "TERM")  # keeps the rollout from being done
    wait_for(lambda: record(stack, away).get("online") == "0", 20, f"{away} offline")
    rid = start(stack, "1.6.0", "--camera", devs[0], "--camera", devs[1], "--camera", away,
                "--waves", "100")
    for dev in devs:
        wait_camera(stack, rid, dev, "updated", timeout=60)
        wait_fw(stack, dev, "1.6.0")
    # the operator changes their mind: back to what each camera ran before
    out = firmware(stack, "abort", rid, "--rollback")
    check(out, "abort --rollback printed nothing")
    for dev in devs:
        e = wait_camera(stack, rid, dev, ("reverted", "failed"), timeout=60)
        check(e["status"] == "reverted", f"{dev}: {e}")
        wait_fw(stack, dev, "1.1.0")
    wait_rollout(stack, rid, "aborted", state="aborted", timeout=30)
    check(camera_entry(stack, rid, away)["status"] == "pending", "the offline camera moved")
    agent_restart(stack, away)
    wait_for(lambda: record(stack, away).get("online") == "1", 20, f"{away} online")
    time.sleep(1)  # a few offer passes: an aborted rollout offers nothing
    check(fw_of(stack, away) == "1.1.0", f"{away} runs {fw_of(stack, away)}")


def check_service_killed(stack):
    devs = ["cam-004", "cam-005"]
    publish(stack, "1.7.0")
    rid = start(stack, "1.7.0", "--camera", devs[0], "--camera", devs[1], "--waves", "100")
    # the service dies mid-rollout (SIGKILL: no clean shutdown) and comes back:
    # the rollout's state is in Redis, every step one script
    wait_for(lambda: rollout_status(stack, rid).get("offered", 0)
             + rollout_status(stack, rid).get("downloading", 0) > 0, 30, "a camera offered")
    run([STACK_RUNNER, "kill", stack.dir, "firmware-rollout", "--signal", "KILL"])
    wait_for(lambda: process_gone(stack, "firmware-rollout"), 10, "the service gone")
    stack.restart("firmware-rollout")
    for dev in devs:
        wait_camera(stack, rid, dev, "updated", timeout=60)
        wait_fw(stack, dev, "1.7.0")
    r = wait_rollout(stack, rid, "done", state="done", timeout=30)
    check(r.get("updated") == 2 and r.get("failed") == 0, f"counters {r}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("a tampered image is refused by the camera's SHA-256 check", check_tampered),
        ("canary first; a recording camera deferred; an offline camera updated on return",
         check_canary_waves),
        ("a downgrade and a manifest signed by another key are refused", check_downgrade_and_forged),
        ("a bad version rolls back on the canary and halts the rollout", check_bad_version),
        ("an agent killed mid-update starts and completes it", check_killed_mid_update),
        ("a version that crashes at start goes back to the previous slot", check_crash_at_start),
        ("abort --rollback takes the cameras back to their previous version",
         check_abort_rollback),
        ("the service killed mid-rollout: restarted, the rollout completes", check_service_killed),
    ], cameras=5, extra_args=["--agents", "--agent-set", "health_interval_s=1"]))
