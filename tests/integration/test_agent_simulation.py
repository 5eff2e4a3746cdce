#!/usr/bin/python3
"""agent-simulation: one bodycam-agent process runs several cameras in one
event loop (--simulate N --stack stack.json), each with its own identity
and data directory, while a scripted officer per camera presses buttons
(--script random:SEED:MEAN_S). Every camera comes online as itself, its
events arrive in order without a gap, and SIGTERM stops them all cleanly
(exit 0, each camera's retained conn goes offline).
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import Observer, check_contiguous, distinct_events, retained  # noqa: E402
from bodycam_test import check, project_binary, run_checks, wait_for  # noqa: E402

CAMERAS = ["cam-001", "cam-002", "cam-003"]


def check_simulated_fleet(stack):
    observers = [Observer(stack, dev) for dev in CAMERAS]
    log_path = os.path.join(stack.dir, "logs", "simulation.log")
    argv = [project_binary("bodycam-agent"), "--simulate", str(len(CAMERAS)),
            "--stack", os.path.join(stack.dir, "stack.json"), "--script", "random:7:1",
            "--report-s", "1", "--set", "video_source=synthetic:64000",
            "--set", "pre_event_s=1", "--set", "health_interval_s=1"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        for dev in CAMERAS:
            conn = retained(stack, dev, "conn", lambda c: c["status"] == "online", timeout=20)
            check(conn["device"] == dev, f"birth {conn}")
        # let the scripted officers press for a while (about 1 s per episode)
        wait_for(lambda: all(len(distinct_events(o.events())) >= 4 for o in observers), 60,
                 "four events from every simulated camera")
        for o in observers:
            events = o.events()
            check(all(e["device"] == o.dev for e in events), f"{o.dev}: foreign events")
            check_contiguous(events, 1)
            check(o.messages("health"), f"{o.dev}: no health report")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=20)
        check(rc == 0, f"the simulation exited {rc} on SIGTERM")
        for dev in CAMERAS:
            retained(stack, dev, "conn", lambda c: c["status"] == "offline")
        with open(log_path, errors="replace") as f:
            text = f.read()
        check("simulation | cameras=3 online=3" in text, "no report with all 3 online")
        check("stopped cleanly" in text, "no clean stop in the log")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for o in observers:
            o.close()


def runtime_failure_conf(stack):
    """A valid configuration whose data directory cannot be made."""
    info, dev = stack.info, stack.info["devices"]["cam-001"]
    path = os.path.join(stack.dir, "conf", "unstartable.conf")
    with open(path, "w") as f:
        f.write("\n".join([
            "device_id = cam-001", "data_dir = /proc/bodycam-cannot-exist",
            f"mqtt_port = {info['mqtt']['tls_port']}", f"ca_file = {info['ca_cert']}",
            f"cert_file = {dev['cert']}", f"key_file = {dev['key']}",
            f"command_pubkey = {info['keys']['command']['public']}",
            f"receipt_pubkey = {info['keys']['receipt']['public']}",
            f"recording_pubkey = {info['keys']['recording']['public']}", ""]))
    return path


def check_bad_invocations(stack):
    agent = project_binary("bodycam-agent")
    stack_json = os.path.join(stack.dir, "stack.json")
    cases = [
        ([agent], 2),
        ([agent, "--simulate", "2"], 2),
        ([agent, "--simulate", "9", "--stack", stack_json], 2),
        ([agent, "--simulate", "1", "--stack", stack_json, "--script", "sometimes"], 2),
        ([agent, "--simulate", "1", "--stack", stack_json, "--set", "nope=1"], 2),
        ([agent, "--simulate", "1", "--stack", stack_json, "-n"], 0),
        ([agent, "--help"], 0),
        ([agent, "--config", runtime_failure_conf(stack)], 1),
    ]
    for argv, want in cases:
        started = time.monotonic()
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=30)
        check(out.returncode == want, f"{' '.join(argv[1:])}: exit {out.returncode}, wanted "
                                      f"{want}:\n{out.stdout[-500:]}")
        check(time.monotonic() - started < 20, f"{argv[1:]} took too long")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("one process, three cameras, scripted shifts, clean SIGTERM", check_simulated_fleet),
        ("usage/configuration errors exit 2, a camera that cannot start 1",
         check_bad_invocations),
    ], cameras=3, extra_args=["--no-agents"]))
