"""gateway-cli: the daemon contract of bodycam-gateway without a stack:
--help, -n, configuration errors (exit 2 with the option named), a clean
stop on SIGTERM (exit 0) while the broker and Redis are unreachable."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import CheckFailed, check, project_binary  # noqa: E402


def gateway(*args, timeout=10):
    return subprocess.run([project_binary("bodycam-gateway"), *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(tmp, **extra):
    readable = os.path.join(tmp, "file.pem")
    with open(readable, "w") as f:
        f.write("not really a certificate\n")
    options = {"ca_file": readable, "cert_file": readable, "key_file": readable,
               "mqtt_port": str(unused_port()), "redis_port": str(unused_port()),
               "backoff_min_ms": "20", "backoff_max_ms": "100"}
    options.update(extra)
    path = os.path.join(tmp, "gateway.conf")
    with open(path, "w") as f:
        f.write("".join(f"{k} = {v}\n" for k, v in options.items()))
    return path


def check_help(tmp):
    out = gateway("--help")
    check(out.returncode == 0, f"--help exited {out.returncode}")
    for name in ("instance", "ca_file", "health_maxlen", "outbox_window", "leave_group_on_stop"):
        check(name in out.stdout, f"--help does not describe {name}")


def check_config_errors(tmp):
    path = config(tmp)
    out = gateway("-n", "--config", path)
    check(out.returncode == 0 and "configuration OK" in out.stdout, f"-n: {out.stdout}")
    cases = [
        (["-n"], "ca_file"),                                          # required, no file
        (["-n", "--config", path, "--set", "mqtt_port=70000"], "mqtt_port"),
        (["-n", "--config", path, "--set", "instance=a/b"], "instance"),
        (["-n", "--config", path, "--set", "nosuch=1"], "nosuch"),
        (["-n", "--config", path, "--set", "key_file=/nonexistent"], "key_file"),
        (["-n", "--config", path, "--set", "log_level=loud"], "log_level"),
        (["--bogus"], "--bogus"),
    ]
    for args, named in cases:
        out = gateway(*args)
        check(out.returncode == 2, f"{args}: exit {out.returncode}, expected 2: {out.stdout}")
        check(named in out.stdout, f"{args}: the error does not name {named}: {out.stdout}")
        check(len(out.stdout.strip().splitlines()) == 1, f"{args}: not one line: {out.stdout}")


def check_sigterm_clean_stop(tmp):
    path = config(tmp)
    proc = subprocess.Popen([project_binary("bodycam-gateway"), "--config", path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)  # it retries Redis with backoff meanwhile
    check(proc.poll() is None, "the gateway exited while Redis was unreachable")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise CheckFailed("no exit within 5 s of SIGTERM")
    out = proc.stdout.read()
    check(rc == 0, f"exit {rc} after SIGTERM:\n{out}")
    check(time.monotonic() - started < 2.5, "the stop took longer than 2.5 s")
    for line in out.splitlines():
        check(" bodycam-gateway: " in line, f"not a one-line log record: {line!r}")


def main():
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="bodycam-gw-cli-") as tmp:
        for name, fn in [("--help lists the options", check_help),
                         ("configuration errors exit 2 naming the option", check_config_errors),
                         ("SIGTERM stops it cleanly with exit 0", check_sigterm_clean_stop)]:
            try:
                fn(tmp)
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL - {name}: {e}", flush=True)
            else:
                passed += 1
                print(f"ok - {name}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
