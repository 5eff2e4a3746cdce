#!/usr/bin/python3
"""agent-identity: a camera rotates its TLS identity (services/key-rotation/
README.md "Identity rotation", the camera's steps 3, 5 and 7).

The test plays the key-rotation service: it publishes signed rotate-identity
commands (helpers/command-sign) with a service client, reads the camera's CSR
from devices/{id}/csr, has the stack's CA sign it (bodycam-pki sign-csr),
adds the new certificate's fingerprint to the registry (bodycam-registry)
and sends the install. Then, against the real broker and its plugin:
  - the camera reconnects with the new certificate (a conn birth with a
    higher session) and acks the install over that connection; once the old
    fingerprint is removed a client with the OLD certificate is refused while
    the camera stays connected, and after a restart it still uses the new one;
  - a certificate for another key or another CN is refused with an error ack
    and the camera keeps its identity and its session;
  - a new certificate the broker refuses (not in the registry): the camera
    goes back to its old identity and acks "new certificate refused";
  - a camera killed after the install, before the broker accepted the new
    certificate, comes back with its old identity, and the install gets an
    "interrupted" ack;
  - the same camera code in --simulate mode (with a 2-attempt limit).
"""

import hashlib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent_helpers import (Observer, agent_kill, agent_restart, agent_stack_args,  # noqa: E402
                           device_topic, retained, sign, status, unique, wait_status)
from bodycam_test import (STACK_RUNNER, check, pki, project_binary, run, run_checks,  # noqa: E402
                          wait_for)

TRIAL_S = 6  # identity_trial_s of the stack's agents (attempts: unlimited, 1000)


# ---------------------------------------------------------------- the service's side

def fingerprint(path):
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def registry(stack, *args):
    redis = stack.info["redis"]
    return run([project_binary("bodycam-registry"), "--redis",
                f"{redis['host']}:{redis['port']}", *args]).stdout


def data_file(stack, dev, name):
    return os.path.join(stack.info["devices"][dev]["data_dir"], "identity", name)


def conn(stack, dev, match=None, timeout=20.0):
    """The retained conn message of dev (that match accepts)."""
    return retained(stack, dev, "conn", match=match, timeout=timeout)


def online_session(stack, dev):
    return conn(stack, dev, lambda c: c["status"] == "online")["session"]


def request(obs, stack, dev):
    """A rotate-identity request; the CSR the camera published for it."""
    cmd_id = unique("idreq")
    obs.publish_command("rotate-identity",
                        sign(stack, "command", dev, "rotate-identity", cmd_id, phase="request"))
    csr = obs.client.wait_message(device_topic(dev, "csr"),
                                  lambda m: m.json()["cmd_id"] == cmd_id, 20).json()
    check(csr["device"] == dev, f"csr names {csr['device']}")
    ack = obs.wait_ack(cmd_id)
    check(ack["ok"] is True, f"the request was refused: {ack}")
    return csr["csr"]


def sign_csr(stack, dev, csr_pem, tmp, cn=None):
    """The stack's CA signs csr_pem for cn (default dev); (cert path, fingerprint)."""
    csr_path = os.path.join(tmp, f"{unique('csr')}.pem")
    cert_path = csr_path[:-len(".pem")] + ".crt"
    with open(csr_path, "w") as f:
        f.write(csr_pem)
    out = pki("sign-csr", stack.info["pki_dir"], cn or dev, csr_path, cert_path).stdout
    check("sha256=" in out, f"sign-csr printed {out!r}")
    fp = out.split("sha256=")[1].split()[0]
    check(fp == fingerprint(cert_path), "sign-csr printed another fingerprint")
    return cert_path, fp


def install(obs, stack, dev, cert_path):
    cmd_id = unique("idinst")
    obs.publish_command("rotate-identity",
                        sign(stack, "command", dev, "rotate-identity", cmd_id, phase="install",
                             cert=f"@{cert_path}"))
    return cmd_id


def answers(stack, dev):
    """True once dev's control socket answers (a process that is starting)."""
    try:
        return status(stack, dev) is not None
    except OSError:
        return False


def refused(ack, word):
    return ack["ok"] is False and ack["error"].startswith(word)


def foreign_key_csr(tmp, cn):
    """A CSR with CN cn for a key that is not the camera's."""
    key, csr = os.path.join(tmp, f"{unique('k')}.key"), os.path.join(tmp, f"{unique('r')}.csr")
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-subj", f"/CN={cn}", "-out", csr])
    with open(csr) as f:
        return f.read()


# ---------------------------------------------------------------- checks

def check_wrong_certificates_refused(stack):
    """An install whose certificate is for another key, or for another
    camera, is refused; the camera keeps its identity and its session."""
    dev = "cam-002"
    with tempfile.TemporaryDirectory() as tmp, Observer(stack, dev) as obs:
        session = online_session(stack, dev)
        request(obs, stack, dev)
        other_key, _ = sign_csr(stack, dev, foreign_key_csr(tmp, dev), tmp)
        cmd = install(obs, stack, dev, other_key)
        ack = obs.wait_ack(cmd)
        check(refused(ack, "certificate not accepted") and "key" in ack["error"],
              f"a certificate for another key: {ack}")
        cmd = install(obs, stack, dev, stack.info["devices"]["cam-001"]["cert"])
        ack = obs.wait_ack(cmd)
        check(refused(ack, "certificate not accepted") and "CN" in ack["error"],
              f"cam-001's certificate: {ack}")
        s = wait_status(stack, dev, "still on its old identity", online=1, identity="configured",
                        switching=0)
        check(s["cert"] == fingerprint(stack.info["devices"][dev]["cert"])[:16],
              f"cert in use {s['cert']}")
        check(not os.path.exists(data_file(stack, dev, "next.crt")), "next.crt was stored")
        check(online_session(stack, dev) == session, "the camera reconnected")


def check_rotation(stack):
    """request -> CSR -> certificate -> install: the camera reconnects with
    the new certificate and acks; the old one is refused once its
    fingerprint is removed, while the camera stays connected."""
    dev = "cam-001"
    old_cert = stack.info["devices"][dev]["cert"]
    old_fp = fingerprint(old_cert)
    with tempfile.TemporaryDirectory() as tmp, Observer(stack, dev) as obs:
        before = online_session(stack, dev)
        csr = request(obs, stack, dev)
        check(csr.startswith("-----BEGIN CERTIFICATE REQUEST-----"), "not a PEM CSR")
        check(os.path.exists(data_file(stack, dev, "next.key")), "no next.key")
        cert, new_fp = sign_csr(stack, dev, csr, tmp)
        registry(stack, "register", dev, cert)
        cmd = install(obs, stack, dev, cert)
        ack = obs.wait_ack(cmd, timeout=30)
        check(ack["ok"] is True, f"install refused: {ack}")
        after = conn(stack, dev, lambda c: c["status"] == "online" and c["session"] > before)
        s = wait_status(stack, dev, "on the new identity", online=1, identity="rotated",
                        switching=0)
        check(s["cert"] == new_fp[:16], f"cert in use {s['cert']}, new one {new_fp[:16]}")
        check(fingerprint(data_file(stack, dev, "current.crt")) == new_fp, "current.crt")
        for name in ("next.crt", "next.key", "install.json"):
            check(not os.path.exists(data_file(stack, dev, name)), f"{name} left behind")

        # the service's last step: only the new certificate from now on
        registry(stack, "remove-cert", dev, old_fp)

        # The plugin polls the registry every 200 ms (redis_poll_ms); a client
        # the broker still accepted would take the camera's session over, so
        # this waits a duration rather than polling with the camera's id.
        time.sleep(1.0)
        with stack.device_client(dev) as c:  # the old certificate, the camera's client id
            check(not stack.connect(c), "the old certificate is still accepted")
            check(c.connack is not None or c.closed, f"no answer to the old certificate: {c.error}")
        cmd = unique("cfg")
        obs.publish_command("config", sign(stack, "command", dev, "config", cmd,
                                           health_interval_s=10))
        check(obs.wait_ack(cmd)["ok"] is True, "a command after the rotation")
        check(status(stack, dev)["online"] == "1", "the camera went offline")
        check(online_session(stack, dev) == after["session"],
              "the camera was kicked when the old fingerprint went")

    agent_restart(stack, dev)  # current.* takes precedence over the configured files
    wait_status(stack, dev, "back on the new identity", online=1, identity="rotated")
    check(status(stack, dev)["cert"] == new_fp[:16], "another certificate after a restart")


def check_refused_certificate_falls_back(stack):
    """A new certificate the broker refuses (not in the registry): after
    identity_trial_s the camera goes back to its old identity and says so."""
    dev = "cam-002"
    with tempfile.TemporaryDirectory() as tmp, Observer(stack, dev) as obs:
        before = online_session(stack, dev)
        cert, _ = sign_csr(stack, dev, request(obs, stack, dev), tmp)
        t0 = time.monotonic()
        cmd = install(obs, stack, dev, cert)
        ack = obs.wait_ack(cmd, timeout=TRIAL_S + 20)
        check(refused(ack, "new certificate refused"), f"unregistered certificate: {ack}")
        check(time.monotonic() - t0 >= TRIAL_S - 1, "fell back before identity_trial_s")
        conn(stack, dev, lambda c: c["status"] == "online" and c["session"] > before)
        s = wait_status(stack, dev, "back on its old identity", online=1, identity="configured",
                        switching=0)
        check(s["cert"] == fingerprint(stack.info["devices"][dev]["cert"])[:16], "cert in use")
        for name in ("next.crt", "next.key", "install.json"):
            check(not os.path.exists(data_file(stack, dev, name)), f"{name} left behind")


def check_killed_mid_rotation(stack):
    """Killed after the install, before the broker accepted the new
    certificate: the camera comes back with its old identity and connects,
    and the install is acked "interrupted"."""
    dev = "cam-002"
    with tempfile.TemporaryDirectory() as tmp, Observer(stack, dev) as obs:
        before = online_session(stack, dev)
        cert, _ = sign_csr(stack, dev, request(obs, stack, dev), tmp)
        cmd = install(obs, stack, dev, cert)  # not registered: it cannot connect
        wait_status(stack, dev, "trying the new certificate", switching=1)
        for name in ("next.crt", "next.key", "install.json"):
            check(os.path.exists(data_file(stack, dev, name)), f"no {name} during the switch")
        agent_kill(stack, dev, "KILL")
        agent_restart(stack, dev)
        s = wait_status(stack, dev, "online again", online=1, identity="configured")
        check(s["cert"] == fingerprint(stack.info["devices"][dev]["cert"])[:16], "cert in use")
        conn(stack, dev, lambda c: c["status"] == "online" and c["session"] > before)
        ack = obs.wait_ack(cmd, timeout=30)
        check(refused(ack, "interrupted"), f"the cut install's ack: {ack}")
        for name in ("next.crt", "next.key", "install.json"):
            check(not os.path.exists(data_file(stack, dev, name)), f"{name} left behind")


def check_simulation(stack):
    """--simulate runs the same camera: cam-001 (rotated above) in a
    simulation process with identity_trial_attempts=2 - an unregistered
    certificate is given up after two refused attempts, a registered one
    is used."""
    dev = "cam-001"
    log_path = os.path.join(stack.dir, "logs", "simulate.log")
    run([STACK_RUNNER, "kill", stack.dir, f"agent:{dev}", "--signal", "TERM"])
    with open(log_path, "w") as log, tempfile.TemporaryDirectory() as tmp:
        sim = subprocess.Popen(
            [project_binary("bodycam-agent"), "--simulate", "1",
             "--stack", os.path.join(stack.dir, "stack.json"), "--report-s", "0",
             "--set", "identity_trial_attempts=2", "--set", "identity_trial_s=60",
             "--set", "backoff_min_ms=200", "--set", "backoff_max_ms=2000",
             "--set", "video_source=synthetic:800000", "--set", "pre_event_s=5"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: answers(stack, dev), 30, "the simulated camera's control socket")
            wait_status(stack, dev, "the simulated camera online", timeout=30, online=1,
                        identity="rotated")
            with Observer(stack, dev) as obs:
                cert, _ = sign_csr(stack, dev, request(obs, stack, dev), tmp)
                t0 = time.monotonic()
                ack = obs.wait_ack(install(obs, stack, dev, cert), timeout=40)
                check(refused(ack, "new certificate refused"), f"unregistered: {ack}")
                check(time.monotonic() - t0 < 30, "the attempt limit did not apply")
                wait_status(stack, dev, "back on its identity", online=1, identity="rotated")

                cert, fp = sign_csr(stack, dev, request(obs, stack, dev), tmp)
                registry(stack, "register", dev, cert)
                ack = obs.wait_ack(install(obs, stack, dev, cert), timeout=40)
                check(ack["ok"] is True, f"registered certificate: {ack}")
                s = wait_status(stack, dev, "on the newest identity", online=1,
                                identity="rotated")
                check(s["cert"] == fp[:16], f"cert in use {s['cert']}")
        finally:
            sim.send_signal(signal.SIGTERM)
            try:
                sim.wait(timeout=20)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
    check(sim.returncode == 0, f"the simulation exited {sim.returncode}")
    agent_restart(stack, dev)
    s = wait_status(stack, dev, "the agent back on the newest identity", online=1,
                    identity="rotated")
    check(s["cert"] == fp[:16], "the agent does not use the simulation's certificate")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("a certificate for another key or CN is refused", check_wrong_certificates_refused),
        ("rotation: new certificate connects, the old one is refused after removal",
         check_rotation),
        ("a certificate the broker refuses: back to the old identity",
         check_refused_certificate_falls_back),
        ("killed mid-rotation: back with the old identity", check_killed_mid_rotation),
        ("--simulate: the same rotation, with an attempt limit", check_simulation),
    ], **agent_stack_args(cameras=2, identity_trial_s=TRIAL_S, identity_trial_attempts=1000)))
