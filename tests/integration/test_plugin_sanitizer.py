#!/usr/bin/python3
"""plugin-sanitizer: a broker loading bodycam-auth under a memory checker
shows no leak and no memory error from the plugin over a session that
touches every callback: certificate and password logins (accepted and
refused), publishes (valid, invalid, foreign), subscriptions, a revocation
with kick, metrics, and a clean shutdown (plugin cleanup, worker join).

An ASan-built plugin (the sanitizer build) runs in a broker with the ASan
runtime preloaded and leak detection on; otherwise the broker runs under
valgrind memcheck. Only reports whose stack passes through the plugin (its
.so, a bc_* function, its sources) count: the broker's own exit-time leaks
are not ours to judge.

The same broker also has a listener misconfigured with
use_identity_as_username: Mosquitto 2.0.11 then skips the plugin's
BASIC_AUTH, and the plugin must give such a client no role at all.
"""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import Client, check, run_checks, tls_context, wait_for  # noqa: E402
from plugin_helpers import (PREFIX, device_topic, marker_is, message,  # noqa: E402
                            plugin_stack_args, registry, sign_client_cert, unique)

# A frame of the plugin; "<unknown module>" would be a plugin unmapped
# before the report (it is linked -z nodelete so that it is not), counted too.
PLUGIN_FRAME = re.compile(r"bodycam-auth|broker-plugins/|/proto/|\bbc_[a-z_]+|"
                          r"mosquitto_plugin_(init|cleanup)|<unknown module>")


def free_ports(count):
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def asan_runtime(plugin):
    out = subprocess.run(["ldd", plugin], stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("libasan.so") and len(parts) >= 3:
            return parts[2]
    return None


class CheckedBroker:
    """A second broker with the stack's plugin, PKI and Redis, under ASan or
    valgrind, on its own ports."""

    def __init__(self, stack):
        self.stack = stack
        self.dir = os.path.join(stack.dir, "checked-broker")
        os.makedirs(self.dir, exist_ok=True)
        self.plugin = stack.info["plugin"]["path"]
        self.tls_port, self.ws_port, self.bad_port = free_ports(3)
        self.asan = asan_runtime(self.plugin)
        self.report = os.path.join(self.dir, "asan" if self.asan else "valgrind.log")
        self.log = os.path.join(self.dir, "broker.log")
        self.proc = None

    def config(self):
        info, pki = self.stack.info, self.stack.info["pki_dir"]
        tls = [f"cafile {info['ca_cert']}", f"certfile {pki}/broker.crt",
               f"keyfile {pki}/broker.key", "require_certificate true", "tls_version tlsv1.3"]
        opts = dict(info["plugin"]["options"], metrics_interval_s="1")
        return "\n".join([
            "per_listener_settings false", "allow_anonymous false", "check_retain_source true",
            f"log_dest file {self.log}", "log_type all", f"user {os.environ.get('USER', 'root')}",
            f"plugin {self.plugin}", *[f"plugin_opt_{k} {v}" for k, v in opts.items()],
            f"listener {self.tls_port} 127.0.0.1", *tls,
            f"listener {self.ws_port} 127.0.0.1", "protocol websockets",
            "# misconfigured on purpose: the broker skips the plugin's BASIC_AUTH here",
            f"listener {self.bad_port} 127.0.0.1", *tls, "use_identity_as_username true", ""])

    def start(self):
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(self.config())
        broker = shutil.which("mosquitto", path=os.environ.get("PATH", "") + ":/usr/sbin")
        env = dict(os.environ)
        if self.asan:
            argv = [broker, "-c", conf]
            env["LD_PRELOAD"] = self.asan
            env["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={self.report}:abort_on_error=0"
            env["UBSAN_OPTIONS"] = f"print_stacktrace=1:log_path={self.report}-ubsan"
        else:
            argv = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite",
                    "--num-callers=40", f"--log-file={self.report}", broker, "-c", conf]
        out = open(os.path.join(self.dir, "stdout.log"), "wb")
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
        out.close()
        wait_for(self.ready, 120.0, "the checked broker to accept a service", interval=0.5)

    def client(self, cert, key, client_id, port=None):
        c = Client(client_id, tls=tls_context(self.stack.info["ca_cert"], cert, key))
        c.port = port or self.tls_port
        return c

    def connect(self, c, timeout=60.0):
        if c.transport == "websockets":
            return c.connect("127.0.0.1", self.ws_port, timeout)
        return c.connect("127.0.0.1", c.port, timeout)

    def service(self, name="gateway", client_id=None):
        s = self.stack.info["services"][name]
        return self.client(s["cert"], s["key"], client_id or f"{name}-{unique()}")

    def device(self, dev, port=None):
        d = self.stack.info["devices"][dev]
        return self.client(d["cert"], d["key"], dev, port)

    def ready(self):
        check(self.proc.poll() is None, f"the checked broker exited ({self.proc.returncode})")
        with self.service() as c:
            return self.connect(c, timeout=20.0)

    def stop(self):
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def plugin_reports(self):
        """The leak and error reports whose stacks pass through the plugin."""
        texts = []
        for path in glob.glob(self.report + "*"):
            with open(path, errors="replace") as f:
                texts.append(f.read())
        text = "\n".join(texts)
        if self.asan:
            blocks = re.split(r"\n(?=(?:Direct|Indirect) leak of |==\d+==ERROR: |.*runtime error:)",
                              text)
            bad = [b for b in blocks if ("leak of" in b or "ERROR:" in b or
                                         "runtime error" in b) and PLUGIN_FRAME.search(b)]
        else:
            blocks = re.split(r"\n==\d+== \n", text)
            bad = [b for b in blocks
                   if re.search(r"definitely lost in loss record|Invalid (read|write|free)|"
                                r"uninitialised|Mismatched free|overlap", b)
                   and PLUGIN_FRAME.search(b)]
        return text, bad


def exercise(stack, broker):
    n = unique()
    gw = broker.service("gateway")
    check(broker.connect(gw), f"gateway: {gw.error}")
    gw.subscribe(PREFIX + "#")
    cam = broker.device("cam-001")
    check(broker.connect(cam), f"cam-001: {cam.error}")
    cam.subscribe(device_topic("cam-001", "cmd/#"))
    cam.subscribe(PREFIX + "#")  # refused
    cam.publish(device_topic("cam-001", "state"), message("state", "cam-001", n), retain=True)
    cam.publish(device_topic("cam-001", "state"), b"{broken")
    cam.publish(device_topic("cam-002", "state"), message("state", "cam-002"))
    cam.publish(device_topic("cam-001", "upload"), message("upload", "cam-001"))
    gw.publish(device_topic("cam-001", "cmd/config"), {"v": 1, "marker": n})
    cam.wait_message(device_topic("cam-001", "cmd/config"), marker_is(n), timeout=60)
    gw.wait_message(device_topic("cam-001", "state"), marker_is(n), timeout=60)

    # password logins: right, wrong, unknown
    dash = stack.info["dashboard"]
    for user, password, want in ((dash["username"], dash["password"], True),
                                 (dash["username"], "wrong", False), ("nobody", "x", False)):
        c = Client(f"dash-{unique()}", transport="websockets", username=user, password=password)
        c.mqtt.ws_set_options(path="/mqtt")
        ok = broker.connect(c)
        check(ok == want, f"dashboard {user}: connected={ok}, expected {want} ({c.error})")
        if ok:
            c.subscribe(PREFIX + "fleet/#")
        c.close()

    # a hostile certificate
    cert, key = sign_client_cert(stack, "cam+1", "sanitizer-plus")
    bad = broker.client(cert, key, "cam+1")
    check(not broker.connect(bad), "CN cam+1 accepted")
    bad.close()

    # the misconfigured listener: connected, but refused everything
    sneaky = broker.device("cam-002", port=broker.bad_port)
    if broker.connect(sneaky):
        sneaky.subscribe(device_topic("cam-002", "cmd/#"))
        sneaky.publish(device_topic("cam-002", "state"), message("state", "cam-002", n + 1))
        gw.publish(device_topic("cam-002", "cmd/config"), {"v": 1, "marker": n + 1})
        gw.publish(PREFIX + "sentinel", {"v": 1, "marker": n + 2})
        gw.wait_message(PREFIX + "sentinel", marker_is(n + 2), timeout=60)
        check(not gw.received(device_topic("cam-002", "state")),
              "a client of the use_identity_as_username listener could publish")
        time.sleep(0.5)
        check(not sneaky.received(), "a client of the use_identity_as_username listener "
                                     "received a command")
    sneaky.close()

    # revocation: kicked, refused, back
    registry(stack, "status", "cam-001", "revoked")
    wait_for(lambda: cam.closed, 30.0, "cam-001 to be kicked")
    cam.close()
    registry(stack, "status", "cam-001", "active")
    time.sleep(2)  # a metrics report or two, registry hand-over on the broker thread
    gw.close()


def check_no_plugin_leaks_or_errors(stack):
    broker = CheckedBroker(stack)
    print(f"  checker: {'ASan (' + broker.asan + ')' if broker.asan else 'valgrind memcheck'}")
    if not broker.asan and shutil.which("valgrind") is None:
        check(False, "valgrind is not installed and the plugin is not an ASan build")
    broker.start()
    try:
        exercise(stack, broker)
    finally:
        rc = broker.stop()
    text, bad = broker.plugin_reports()
    check(rc is not None, "the checked broker did not stop on SIGTERM")
    with open(broker.log, errors="replace") as f:
        log = f.read()
    check("bodycam-auth | start" in log and "bodycam-auth | revoke | kick camera:cam-001" in log,
          "the session did not go through the plugin (start and kick lines missing)")
    if broker.asan:
        check("AddressSanitizer" not in text or not bad,
              "ASan reported memory errors or leaks through the plugin:\n" + "\n".join(bad))
    else:
        check("ERROR SUMMARY" in text, f"no valgrind summary in {broker.report}")
    check(not bad, f"{len(bad)} report(s) through the plugin:\n" + "\n----\n".join(bad)[:6000])
    print(f"  {len(text.splitlines())} lines of checker output, none through the plugin")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("no leak or memory error from the plugin over a full session",
         check_no_plugin_leaks_or_errors),
    ], **plugin_stack_args(cameras=2)))
