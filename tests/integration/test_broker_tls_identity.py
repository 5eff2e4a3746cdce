#!/usr/bin/python3
"""broker-tls-identity: the broker of the real stack admits only fleet
identities over TLS 1.3, an identity is its certificate CN, and the
dashboard's WebSockets role is authenticated and read-only.

Denials are asserted by what arrives: a subscriber that receives a later
legitimate message (the sentinel) from the same publisher must not have
received the forbidden one before it (one connection, QoS 1: in order).
"""

import glob
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, pki, redis_command, run_checks, wait_for  # noqa: E402

PREFIX = "bodycam/v1/"
CHECK_NUMBER = iter(range(1, 1_000_000))


def now_ms():
    return int(time.time() * 1000)


def state_msg(device, seq):
    ts = now_ms()
    return {"v": 1, "device": device, "state": "standby", "warnings": 0, "since": ts,
            "seq": seq, "ts": ts}


def summary_msg(marker):
    return {"v": 1, "ts": now_ms(), "cameras": 2, "online": marker, "states": {"standby": 1},
            "alerts_open": 0}


def config_cmd(device, cmd_id):
    ts = now_ms()
    return {"v": 1, "id": cmd_id, "device": device, "kind": "config", "issued_at": ts,
            "expires_at": ts + 60000, "params": {"health_interval_s": 30}, "sig": ""}


def device_topic(device, kind):
    return f"{PREFIX}devices/{device}/{kind}"


def seq_is(seq):
    return lambda m: m.json().get("seq") == seq


def check_identity_is_cn(stack):
    """cam-001 over TLS 1.3 may publish as cam-001 and not as cam-002."""
    seq = next(CHECK_NUMBER) * 1000
    with stack.connected(stack.service_client("gateway")) as gw, \
            stack.connected(stack.device_client("cam-001")) as cam:
        check(cam.tls_version() == "TLSv1.3", f"negotiated {cam.tls_version()}, not TLS 1.3")
        gw.subscribe(PREFIX + "devices/+/state")
        cam.publish(device_topic("cam-002", "state"), state_msg("cam-002", seq))
        cam.publish(device_topic("cam-001", "state"), state_msg("cam-001", seq + 1))
        gw.wait_message(device_topic("cam-001", "state"), seq_is(seq + 1))
        forged = gw.received(device_topic("cam-002", "state"))
        check(not forged, f"cam-001 published on cam-002's topic and it was delivered: {forged}")


def check_device_reads_only_own_commands(stack):
    """cam-002 subscribed to cam-001's commands does not get them."""
    n = next(CHECK_NUMBER)
    with stack.connected(stack.service_client("gateway")) as gw, \
            stack.connected(stack.device_client("cam-002")) as cam:
        cam.subscribe(device_topic("cam-001", "cmd/#"))
        cam.subscribe(device_topic("cam-002", "cmd/#"))
        gw.publish(device_topic("cam-001", "cmd/config"), config_cmd("cam-001", f"c{n}-1"))
        gw.publish(device_topic("cam-002", "cmd/config"), config_cmd("cam-002", f"c{n}-2"))
        cam.wait_message(device_topic("cam-002", "cmd/config"),
                         lambda m: m.json()["id"] == f"c{n}-2")
        leaked = cam.received(device_topic("cam-001", "cmd/config"))
        check(not leaked, f"cam-002 received cam-001's command: {leaked}")


def check_no_certificate_refused(stack):
    with stack.tls_client(client_id="no-cert") as c:
        check(not stack.connect(c), "a client without a certificate was accepted")
        check(c.connack is None, f"refused only at CONNACK ({c.connack}), not in the handshake")
        print(f"  refused: {c.error}")


def check_foreign_ca_refused(stack):
    foreign = os.path.join(stack.dir, "foreign-pki")
    pki("ca", foreign)
    pki("device", foreign, "cam-001")
    cert = os.path.join(foreign, "devices", "cam-001.crt")
    key = os.path.join(foreign, "devices", "cam-001.key")
    with stack.tls_client(cert, key, client_id="cam-001") as c:
        check(not stack.connect(c), "a cam-001 certificate from a foreign CA was accepted")
        check(c.connack is None, f"refused only at CONNACK ({c.connack}), not in the handshake")
        print(f"  refused: {c.error}")
    # the same name from the fleet CA is fine: it is the CA that was refused
    with stack.device_client("cam-001", client_id="cam-001-control") as c:
        check(stack.connect(c), f"the fleet's own cam-001 certificate was refused: {c.error}")


def check_tls12_refused(stack):
    with stack.device_client("cam-001", min_version=ssl.TLSVersion.TLSv1_2,
                             max_version=ssl.TLSVersion.TLSv1_2) as c:
        check(not stack.connect(c), "a TLS 1.2-only client was accepted")
        check(c.connack is None, "a TLS 1.2-only client got as far as a CONNACK")
        print(f"  refused: {c.error}")


def check_dashboard(stack):
    """Right password: reads fleet/# and device state; cannot read events or
    publish. Wrong password: refused at CONNACK."""
    n = next(CHECK_NUMBER)
    with stack.connected(stack.service_client("fleet-health")) as fh, \
            stack.connected(stack.device_client("cam-001")) as cam:
        fh.publish(PREFIX + "fleet/summary", summary_msg(n), retain=True)
        with stack.connected(stack.dashboard_client()) as dash:
            dash.subscribe(PREFIX + "fleet/#")
            dash.subscribe(PREFIX + "devices/+/state")
            dash.subscribe(PREFIX + "devices/+/event")
            got = dash.wait_message(PREFIX + "fleet/summary", lambda m: m.json()["online"] == n)
            check(got.retain, "the retained summary did not arrive as retained")

            # events are not for dashboards; state is (sentinel)
            cam.publish(device_topic("cam-001", "event"),
                        {"v": 1, "device": "cam-001", "seq": n, "ts": now_ms(), "type": "docked"})
            cam.publish(device_topic("cam-001", "state"), state_msg("cam-001", n))
            dash.wait_message(device_topic("cam-001", "state"), seq_is(n))
            check(not dash.received(device_topic("cam-001", "event")),
                  "the dashboard received a device event")

            # read-only: a publish by the dashboard is not delivered
            fh.subscribe(PREFIX + "fleet/#")
            dash.publish(PREFIX + "fleet/summary", summary_msg(-n))
            fh.publish(PREFIX + "fleet/alerts", {"v": 1, "ts": now_ms(), "id": f"a{n}",
                                                 "device": "cam-001", "kind": "low_battery",
                                                 "status": "raised"})
            fh.wait_message(PREFIX + "fleet/alerts", lambda m: m.json()["id"] == f"a{n}")
            forged = [m for m in fh.received(PREFIX + "fleet/summary")
                      if m.json()["online"] == -n]
            check(not forged, "a publish by the dashboard was delivered")

    with stack.dashboard_client(password="wrong-" + stack.info["dashboard"]["password"]) as bad:
        check(not stack.connect(bad), "the dashboard user with a wrong password was accepted")
        check(bad.connack in (134, 135), f"expected CONNACK 134/135, got {bad.connack} "
                                         f"({bad.error})")
    with stack.dashboard_client(username="cam-001", password="") as bad:
        check(not stack.connect(bad), "an unknown WebSockets user was accepted")


def check_pki_added_identity(stack):
    """bodycam-pki device adds cam-009 to the running PKI: it connects as
    itself at once; init again keeps every key; bad ids are refused."""
    pki_dir = stack.info["pki_dir"]
    keys = sorted(glob.glob(os.path.join(pki_dir, "**", "*.key"), recursive=True))
    before = {path: open(path, "rb").read() for path in keys}

    pki("device", pki_dir, "cam-009")
    cert = os.path.join(pki_dir, "devices", "cam-009.crt")
    key = os.path.join(pki_dir, "devices", "cam-009.key")
    check(os.stat(key).st_mode & 0o777 == 0o600, "a device key is not mode 0600")
    n = next(CHECK_NUMBER)
    with stack.connected(stack.service_client("gateway")) as gw, \
            stack.connected(stack.tls_client(cert, key, client_id="cam-009")) as cam:
        gw.subscribe(PREFIX + "devices/+/state")
        cam.publish(device_topic("cam-001", "state"), state_msg("cam-001", n))
        cam.publish(device_topic("cam-009", "state"), state_msg("cam-009", n))
        gw.wait_message(device_topic("cam-009", "state"), seq_is(n))
        check(not gw.received(device_topic("cam-001", "state")),
              "cam-009 published as cam-001")

    again = pki("init", pki_dir, "--devices", "cam-001,cam-002")
    check("created" not in again.stdout, f"a second init created something:\n{again.stdout}")
    for path, data in before.items():
        check(open(path, "rb").read() == data, f"init changed {path}")
    bad = pki("device", pki_dir, "CAM-1", check_rc=False)
    check(bad.returncode == 1 and "not valid" in bad.stdout,
          f"an upper-case device id: status {bad.returncode}: {bad.stdout}")
    check(not os.path.exists(os.path.join(pki_dir, "devices", "CAM-1.key")),
          "a key was written for an invalid id")
    usage = pki("device", pki_dir, check_rc=False)
    check(usage.returncode == 2, f"a usage error exited {usage.returncode}")


def check_stack_restart(stack):
    """restart mosquitto: same ports, new process, retained state kept;
    restart redis: same port, data kept (AOF)."""
    n = next(CHECK_NUMBER)
    before = dict(stack.info)
    with stack.connected(stack.service_client("fleet-health")) as fh:
        fh.publish(PREFIX + "fleet/summary", summary_msg(1000 + n), retain=True)
    redis_port = stack.info["redis"]["port"]
    check(redis_command(redis_port, "SET", "bodycam:test:restart", str(n)) == "OK", "SET failed")

    after = stack.restart("mosquitto")
    check(after["mqtt"] == before["mqtt"], f"ports changed: {before['mqtt']} -> {after['mqtt']}")
    old_pid = before["processes"]["mosquitto"]["pid"]
    check(after["processes"]["mosquitto"]["pid"] != old_pid, "mosquitto has the same PID")
    with stack.connected(stack.dashboard_client()) as dash:
        dash.subscribe(PREFIX + "fleet/summary")
        dash.wait_message(PREFIX + "fleet/summary", lambda m: m.json()["online"] == 1000 + n)
    with stack.connected(stack.device_client("cam-001")) as cam:
        check(cam.tls_version() == "TLSv1.3", "not TLS 1.3 after the restart")

    after = stack.restart("redis")
    check(after["redis"]["port"] == redis_port, "the Redis port changed")
    check(after["processes"]["redis"]["pid"] != before["processes"]["redis"]["pid"],
          "redis has the same PID")
    value = wait_for(lambda: redis_command(redis_port, "GET", "bodycam:test:restart"),
                     what="the key written before the restart")
    check(value == str(n), f"Redis lost data across the restart: {value!r}")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("device identity is its certificate CN (TLS 1.3)", check_identity_is_cn),
        ("a device reads only its own commands", check_device_reads_only_own_commands),
        ("a client without a certificate is refused", check_no_certificate_refused),
        ("a certificate from a foreign CA is refused", check_foreign_ca_refused),
        ("a TLS 1.2-only client is refused", check_tls12_refused),
        ("dashboard over WebSockets: authenticated, read-only", check_dashboard),
        ("an identity added by bodycam-pki connects as itself", check_pki_added_identity),
        ("stack-restart: mosquitto and redis keep ports and state", check_stack_restart),
    ], cameras=2, plugin=False, extra_args=["--no-services"]))
    # The TLS layer alone: no plugin (plugin-* tests cover it) and no services,
    # since the test plays fleet-health itself with its retained summary.
