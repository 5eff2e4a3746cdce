#!/usr/bin/python3
"""bench_agent - what one camera agent costs, and how many simulated cameras
one bodycam-agent process holds connected over mutual TLS 1.3 (issue 3).

  bench_agent.py [--build-dir D] [--json FILE] [--standby-s S] [--recording-s S]
                 [--bitrate BPS] [--sim-counts 100,500,...] [--no-sim-max]
                 [--sim-spread-ms-per-camera MS] [--no-plugin] [--writer-mib M]
                 [--skip single,sim,writer] [--keep]

It starts a real stack with tools/bodycam-stack (`up DIR --no-agents`, the
broker plugin on unless --no-plugin) in a temp dir, then measures:

 (a) one agent (cam-001, a configuration like the runner's agent config)
     with synthetic video at --bitrate (8 Mbit/s) and the pre-event buffer at
     its default 30 s: on standby (measured over the last --standby-s seconds
     of a standby long enough to fill the pre-event buffer) and while
     recording for --recording-s seconds: VmRSS and VmHWM (/proc/PID/status)
     and CPU % of one core (utime + stime from /proc/PID/stat over wall time);
 (b) simulation mode (`bodycam-agent --simulate N --stack FILE`) at growing N:
     the cameras' identities (sim-00001, ...) are added to the stack's PKI
     with bodycam-pki and registered for the plugin with bodycam-registry;
     video is nearly off (synthetic 8 kbit/s, pulled every 10 s) and the
     pre-event buffer is 0, so the memory figures are those of the
     connections and the cameras' state, not of video buffers. Per N: time
     from the process start until every camera had its CONNACK (from the
     agent's own "online" log lines, millisecond timestamps), the connect
     rate, failed connection attempts, the process's VmRSS (and per camera:
     RSS / N and the marginal cost between two steps), its descriptors, and
     the broker's VmRSS growth per connection. N grows through --sim-counts
     and then (unless --no-sim-max) to the largest multiple of 500 whose
     descriptors fit in 95 % of the per-process limit (RLIMIT_NOFILE, raised
     to its hard limit for everything this program starts);
 (c) the recording writer's throughput against `openssl speed -evp
     aes-256-gcm`, by running build/bench/bench_recording and quoting it.

It prints Markdown tables (stdout) and writes everything as JSON (--json).
Every phase has a deadline; everything it started (the agents by PID, the
stack through `bodycam-stack down`, which stops exactly the PIDs it
recorded) is stopped on the way out, also after an error or SIGINT/SIGTERM.
Progress goes to stderr. Build without sanitizers (RelWithDebInfo or
Release) for meaningful figures. Exit status: 0 done, 1 failure, 2 usage.
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

PROGRAM = "bench_agent"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(REPO, "tools", "bodycam-stack")
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
DEV = "cam-001"
SIM_PREFIX = "sim-"
DEFAULT_COUNTS = "100,500,1000,2000,4000"
FD_HEADROOM = 0.95
SIM_DATA_DEFAULT = "/dev/shm" if os.path.isdir("/dev/shm") else None
STACK_TIMEOUT = 180
STOP_TIMEOUT = 60
ONLINE_TIMEOUT = 60
WRITER_TIMEOUT = 300
LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z")


class Failure(Exception):
    """Stops the benchmark; the message says why."""


def log(msg):
    print(f"{PROGRAM}: {msg}", file=sys.stderr, flush=True)


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def wait_until(predicate, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- /proc

def proc_status(pid):
    """VmRSS and VmHWM of pid in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def proc_cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Window:
    """CPU % of one core and the memory of pid over a wall-clock window."""

    def __init__(self, pid):
        self.pid = pid
        self.wall = time.monotonic()
        self.ticks = proc_cpu_ticks(pid)

    def close(self):
        wall = time.monotonic() - self.wall
        cpu_s = (proc_cpu_ticks(self.pid) - self.ticks) / CLK_TCK
        mem = proc_status(self.pid)
        return {"seconds": round(wall, 1), "cpu_pct": round(100.0 * cpu_s / wall, 1),
                "vmrss_kb": mem["VmRSS"], "vmhwm_kb": mem["VmHWM"]}


# ---------------------------------------------------------------- processes and the stack

class Bench:
    def __init__(self, args):
        self.args = args
        self.build_dir = os.path.abspath(args.build_dir)
        self.dir = tempfile.mkdtemp(prefix="bodycam-bench-")
        self.info = {}
        self.stack_up = False
        self.procs = {}  # name -> Popen, everything this program started itself
        self.extra_dirs = []  # made elsewhere (--sim-data-dir), removed with the temp dir

    def binary(self, name, sub):
        path = os.path.join(self.build_dir, sub, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise Failure(f"{path} is not built")
        return path

    def run(self, argv, timeout, what):
        try:
            out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{what} took more than {timeout} s")
        if out.returncode != 0:
            raise Failure(f"{what} failed (status {out.returncode}):\n{out.stdout[-2000:]}")
        return out.stdout

    def stack_start(self):
        argv = [RUNNER, "up", self.dir, "--cameras", "1", "--no-agents",
                "--build-dir", self.build_dir,
                "--no-plugin" if self.args.no_plugin else "--plugin"]
        self.stack_up = True  # from here on `down` runs on the way out
        self.run(argv, STACK_TIMEOUT, "bodycam-stack up")
        with open(os.path.join(self.dir, "stack.json")) as f:
            self.info = json.load(f)

    def spawn(self, name, argv, log_path):
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def stop(self, name, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout; returns (exit status, seconds)."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None, 0.0
        started = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {proc.pid}) did not stop within {timeout} s; killing it")
                proc.kill()
                proc.wait()
        return proc.returncode, round(time.monotonic() - started, 1)

    def stop_all(self):
        """Stops every agent this program started and the stack. Idempotent."""
        for name in list(self.procs):
            self.stop(name, timeout=20)
        if self.stack_up:
            out = subprocess.run([RUNNER, "down", self.dir], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=STACK_TIMEOUT)
            if out.returncode != 0:
                log(f"bodycam-stack down failed: {out.stdout.strip()}")
            self.stack_up = False

    def remove_dir(self):
        if self.args.keep:
            log(f"state kept in {self.dir} {' '.join(self.extra_dirs)}")
            return
        for d in [*self.extra_dirs, self.dir]:
            shutil.rmtree(d, ignore_errors=True)

    def broker_pid(self):
        return self.info["processes"]["mosquitto"]["pid"]


def control(path, line, timeout=10.0):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(line.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").strip()


def status_of(sock):
    try:
        answer = control(sock, "status")
    except OSError:
        return None
    if not answer.startswith("ok "):
        return None
    return dict(item.split("=", 1) for item in answer.split()[1:])


def log_time(line):
    m = LOG_TS.match(line)
    if m is None:
        return None
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


# ---------------------------------------------------------------- (a) one agent

def single_config(b, path, bitrate):
    """Like the stack runner's agent configuration; pre_event_s left at its
    default (30 s)."""
    info, d, keys = b.info, b.info["devices"][DEV], b.info["keys"]
    options = {
        "device_id": DEV, "data_dir": d["data_dir"], "control_socket": d["control_socket"],
        "mqtt_host": info["mqtt"]["host"], "mqtt_port": info["mqtt"]["tls_port"],
        "ca_file": info["ca_cert"], "cert_file": d["cert"], "key_file": d["key"],
        "command_pubkey": keys["command"]["public"], "receipt_pubkey": keys["receipt"]["public"],
        "recording_pubkey": keys["recording"]["public"],
        "recording_key_id": keys["recording"]["key_id"],
        "video_source": f"synthetic:{bitrate}:1", "health_interval_s": 10,
        "backoff_min_ms": 200, "backoff_max_ms": 5000,
    }
    with open(path, "w") as f:
        f.write("".join(f"{k} = {v}\n" for k, v in options.items()))


def press(sock, line):
    answer = control(sock, line)
    if not answer.startswith("ok"):
        raise Failure(f"{DEV} '{line}' answered {answer!r}")
    return answer


def phase_single(b, args):
    agent = b.binary("bodycam-agent", "device-agent")
    conf = os.path.join(b.dir, "conf", "bench-agent.conf")
    single_config(b, conf, args.bitrate)
    sock = b.info["devices"][DEV]["control_socket"]
    proc = b.spawn("agent", [agent, "--config", conf],
                   os.path.join(b.dir, "logs", "bench-agent.log"))
    wait_until(lambda: proc.poll() is not None or (status_of(sock) or {}).get("online") == "1",
               ONLINE_TIMEOUT, f"{DEV} to come online")
    if proc.poll() is not None:
        raise Failure(f"the agent exited with status {proc.returncode}")
    pre_event_s = 30  # the default, not overridden in the configuration
    total = max(args.standby_s, pre_event_s + 2)  # ends with the pre-event buffer full
    log(f"(a) standby: {total:.0f} s (measured over the last {args.standby_s:.0f} s)")
    load_before = loadavg()
    time.sleep(total - args.standby_s)
    w = Window(proc.pid)
    time.sleep(args.standby_s)
    standby = w.close()
    standby["loadavg"] = load_before

    log(f"(a) recording at {args.bitrate / 1e6:g} Mbit/s: {args.recording_s:.0f} s")
    press(sock, "warn")
    press(sock, "warn")
    answer = press(sock, "record")
    seq = re.search(r"seq=(\d+)", answer).group(1)
    path = os.path.join(b.info["devices"][DEV]["data_dir"], "recordings", f"{DEV}-{seq}.bcrec")
    size0 = os.path.getsize(path) if os.path.exists(path) else 0
    w = Window(proc.pid)
    time.sleep(args.recording_s)
    size1 = os.path.getsize(path)
    recording = w.close()
    recording["loadavg"] = loadavg()
    recording["file_mbit_s"] = round((size1 - size0) * 8 / recording["seconds"] / 1e6, 2)
    press(sock, "stop")
    rc, stop_s = b.stop("agent")
    if rc != 0:
        raise Failure(f"the agent exited {rc} on SIGTERM")
    return {"device": DEV, "bitrate_bps": args.bitrate, "pre_event_s": pre_event_s,
            "standby": standby, "recording": recording, "stop_s": stop_s}


# ---------------------------------------------------------------- (b) simulation

def sim_id(i):
    return f"{SIM_PREFIX}{i:05d}"


def tls_probe(b, dev, cert, key):
    """True when the broker takes a CONNECT of dev (its own client id)."""
    cid = dev.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(cid).to_bytes(2, "big") + cid
    packet = bytes([0x10, len(body)]) + body
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=b.info["ca_cert"])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key)
        port = b.info["mqtt"]["tls_port"]
        with socket.create_connection((HOST, port), timeout=5.0) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST) as s:
                s.sendall(packet)
                ack = s.recv(4)
                s.sendall(b"\xe0\x00")
                return ack == b"\x20\x02\x00\x00"
    except (OSError, ssl.SSLError):
        return False


class Identities:
    """sim-00001.. in the stack's PKI and (with the plugin) its registry."""

    def __init__(self, b):
        self.b = b
        self.made = 0
        self.pki = b.info["pki_dir"]
        # the cameras' data dirs (state.json is fsync'ed before every connection attempt)
        self.sim_dir = tempfile.mkdtemp(prefix="bodycam-bench-sim-",
                                        dir=b.args.sim_data_dir or b.dir)
        b.extra_dirs.append(self.sim_dir)

    def cert(self, dev):
        return (os.path.join(self.pki, "devices", f"{dev}.crt"),
                os.path.join(self.pki, "devices", f"{dev}.key"))

    def ensure(self, n, timeout):
        if n <= self.made:
            return 0.0
        started = time.monotonic()
        new = [sim_id(i) for i in range(self.made + 1, n + 1)]
        log(f"(b) {len(new)} new identities (PKI{'' if self.b.args.no_plugin else ' + registry'})")
        self.b.run([self.b.binary("bodycam-pki", "tools"), "init", self.pki,
                    "--devices", ",".join(new)], timeout, "bodycam-pki init")
        if not self.b.args.no_plugin:
            self.register(new, timeout - (time.monotonic() - started))
            cert, key = self.cert(new[-1])
            wait_until(lambda: tls_probe(self.b, new[-1], cert, key), 30,
                       f"the broker to accept {new[-1]}", interval=0.5)
        self.made = n
        return round(time.monotonic() - started, 1)

    def register(self, devices, timeout):
        tool = self.b.binary("bodycam-registry", "tools")
        redis = self.b.info["redis"]
        deadline = time.monotonic() + timeout

        def one(dev):
            if time.monotonic() > deadline:
                return f"{dev}: deadline"
            out = subprocess.run([tool, "--redis", f"{redis['host']}:{redis['port']}",
                                  "register", dev, self.cert(dev)[0]],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=30)
            return None if out.returncode == 0 else f"{dev}: {out.stdout.strip()}"
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            errors = [e for e in pool.map(one, devices) if e]
        if errors:
            raise Failure(f"registering {len(errors)} identities failed, e.g. {errors[0]}")

    def stack_file(self, n):
        info = dict(self.b.info)
        devices = {}
        for i in range(1, n + 1):
            dev = sim_id(i)
            cert, key = self.cert(dev)
            devices[dev] = {"cert": cert, "key": key,
                            "data_dir": os.path.join(self.sim_dir, dev),
                            "control_socket": "none"}
        info["devices"] = devices
        path = os.path.join(self.b.dir, f"sim-stack-{n}.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a password
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        return path


def scan_log(path, offset, state):
    """Reads the agent's log from offset; updates state (first online time
    per camera, failures, the 'running' line). Returns the new offset."""
    with open(path, errors="replace") as f:
        f.seek(offset)
        for line in f:
            if ": online (session " in line:
                dev = line.split(": online (session ", 1)[0].rsplit(" ", 1)[-1]
                if dev not in state["online"]:
                    state["online"][dev] = log_time(line)
            elif "connection attempt" in line and "failed" in line:
                state["failed"] += 1
            elif ": offline: " in line:
                state["offline"] += 1
            elif "running " in line and " camera(s)" in line:
                state["running"] = log_time(line)
        return f.tell()


def sim_step(b, ids, n, args, previous):
    """One process with n cameras: start, wait until all are online (or a
    deadline), measure, SIGTERM. A step that falls short is recorded, not
    fatal (all_connected / exit_status say how it went)."""
    agent = b.binary("bodycam-agent", "device-agent")
    ident_s = ids.ensure(n, timeout=120 + n / 20)
    stack_file = ids.stack_file(n)
    spread = int(n * args.sim_spread_ms_per_camera)
    argv = [agent, "--simulate", str(n), "--stack", stack_file, "--report-s", "5",
            "--connect-spread-ms", str(spread),
            "--set", "video_source=synthetic:8000", "--set", "video_tick_ms=10000",
            "--set", "pre_event_s=0", "--set", "connect_timeout_ms=30000"]
    log_path = os.path.join(b.dir, "logs", f"bench-sim-{n}.log")
    broker_before = proc_status(b.broker_pid())["VmRSS"]
    load_before = loadavg()
    log(f"(b) {n} cameras in one process (connections spread over {spread} ms)")
    started = time.time()
    proc = b.spawn(f"sim-{n}", argv, log_path)
    state = {"online": {}, "failed": 0, "offline": 0, "running": None}
    offset = 0
    # deadlines: opening the cameras, then connecting them (from the "running" line)
    deadline = time.monotonic() + 30 + n * 0.03
    connect_deadline_s = 60 + n / 50
    while time.monotonic() < deadline and proc.poll() is None:
        offset = scan_log(log_path, offset, state)
        if len(state["online"]) >= n:
            break
        if state["running"] is not None and deadline - time.monotonic() > connect_deadline_s:
            deadline = time.monotonic() + connect_deadline_s
        time.sleep(0.25)
    if proc.poll() is not None:
        b.procs.pop(f"sim-{n}", None)
        raise Failure(f"--simulate {n} exited with status {proc.returncode}; see {log_path}")
    time.sleep(2.0)  # let the last handshakes' buffers settle before reading memory
    offset = scan_log(log_path, offset, state)
    connected = len(state["online"])
    mem = proc_status(proc.pid)
    fds = proc_fds(proc.pid)
    broker_after = proc_status(b.broker_pid())["VmRSS"]
    times = sorted(t for t in state["online"].values() if t is not None)
    failed = state["failed"]
    offline_during_run = state["offline"]
    rc, stop_s = b.stop(f"sim-{n}", timeout=30 + n * 0.03)
    row = {
        "cameras": n, "connected": connected, "all_connected": connected >= n,
        "identities_s": ident_s, "spread_ms": spread,
        "open_s": round(state["running"] - started, 2) if state["running"] else None,
        "all_online_s": round(times[-1] - started, 2) if times and connected >= n else None,
        "connect_s": round(times[-1] - times[0], 2) if len(times) > 1 else None,
        "failed_attempts": failed, "offline_during_run": offline_during_run,
        "vmrss_kb": mem["VmRSS"], "vmhwm_kb": mem["VmHWM"],
        "rss_per_camera_kb": round(mem["VmRSS"] / n, 1),
        "fds": fds, "fds_per_camera": round(fds / n, 2),
        "broker_rss_before_kb": broker_before, "broker_rss_after_kb": broker_after,
        "broker_kb_per_connection": round((broker_after - broker_before) / max(connected, 1), 1),
        "exit_status": rc, "stop_s": stop_s, "loadavg": load_before,
    }
    if row["connect_s"]:
        row["connect_per_s"] = round((len(times) - 1) / row["connect_s"], 1)
    if previous is not None and n > previous["cameras"]:
        row["marginal_kb_per_camera"] = round(
            (mem["VmRSS"] - previous["vmrss_kb"]) / (n - previous["cameras"]), 1)
    return row


def phase_sim(b, args, out):
    """Fills out (the result's "simulation" entry) step by step, so that an
    error keeps what was measured."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    ids = Identities(b)
    rows = []
    out.update({"fd_limit": limit, "plugin": not args.no_plugin,
                "video": "synthetic 8 kbit/s pulled every 10 s, pre-event 0",
                "data_dir": ids.sim_dir, "steps": rows})
    planned = [int(x) for x in args.sim_counts.split(",") if x.strip()]
    previous = None
    per_camera = 4.0  # descriptors per camera until measured
    i = 0
    while i < len(planned):
        n = planned[i]
        i += 1
        if n * per_camera + 64 > FD_HEADROOM * limit:
            log(f"(b) {n} cameras would need ~{n * per_camera:.0f} descriptors "
                f"(limit {limit}); stopping here")
            break
        row = sim_step(b, ids, n, args, previous)
        rows.append(row)
        previous = row
        per_camera = max(row["fds_per_camera"], 1.0)
        if not row["all_connected"] or row["exit_status"] != 0:
            log(f"(b) {row['connected']} of {n} connected, exit status {row['exit_status']} "
                f"after SIGTERM (stop took {row['stop_s']} s); not growing further")
            break
        if i == len(planned) and not args.no_sim_max:
            fit = int((FD_HEADROOM * limit - 64) / per_camera) // 500 * 500
            if fit > n:
                planned.append(fit)


# ---------------------------------------------------------------- (c) the writer

def phase_writer(b, args):
    tool = b.binary("bench_recording", "bench")
    log(f"(c) bench_recording {args.writer_mib} MiB per run")
    out = b.run([tool, str(args.writer_mib)], WRITER_TIMEOUT, "bench_recording")
    lines = [line for line in out.splitlines() if line.strip()]
    figures = {}
    for line in lines:
        m = re.match(r"^(.*?)\s{2,}([\d.]+) MB/s", line)
        if m:
            figures[m.group(1).strip()] = float(m.group(2))
    speed = next((v for k, v in figures.items() if k.startswith("openssl speed")), None)
    ratios = {k: round(v / speed, 3) for k, v in figures.items()
              if speed and k.startswith("writer")}
    return {"lines": lines, "mb_s": figures, "writer_vs_openssl_speed": ratios}


# ---------------------------------------------------------------- output

def mb(kb):
    return f"{kb / 1024:.1f}"


def markdown(result):
    out = []
    m = result["machine"]
    out.append(f"# bodycam-agent benchmark ({m['date']})\n")
    out.append(f"{m['cpus']} CPUs, {m['kernel']}, {m['openssl']}; load average "
               f"{m['loadavg_start']} at the start, {m['loadavg_end']} at the end "
               "(other builds and tests may share the machine).\n")
    single = result.get("single")
    if single:
        out.append(f"## (a) One agent: synthetic video {single['bitrate_bps'] / 1e6:g} Mbit/s, "
                   f"pre-event buffer {single['pre_event_s']} s\n")
        out.append("| mode | window s | CPU % of one core | VmRSS MB | VmHWM MB | "
                   "written Mbit/s | load avg |")
        out.append("|---|---:|---:|---:|---:|---:|---|")
        for mode in ("standby", "recording"):
            r = single[mode]
            out.append(f"| {mode} | {r['seconds']} | {r['cpu_pct']} | {mb(r['vmrss_kb'])} | "
                       f"{mb(r['vmhwm_kb'])} | {r.get('file_mbit_s', '-')} | "
                       f"{r['loadavg'][0]} |")
        out.append("")
    sim = result.get("simulation")
    if sim:
        out.append(f"## (b) Simulated cameras in one process over mTLS 1.3 "
                   f"(plugin {'on' if sim['plugin'] else 'off'}; {sim['video']}; "
                   f"descriptor limit {sim['fd_limit']}; data dirs in "
                   f"{os.path.dirname(sim['data_dir'])})\n")
        out.append("| cameras | connected | open s | all online s | connect/s | "
                   "failed attempts | RSS MB | RSS/camera KB | marginal KB/camera | fds | "
                   "broker RSS MB | broker KB/conn | stop s (exit) | load avg |")
        out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in sim["steps"]:
            out.append(f"| {r['cameras']} | {r['connected']} | {r['open_s']} | "
                       f"{r['all_online_s']} | {r.get('connect_per_s', '-')} | "
                       f"{r['failed_attempts']} | {mb(r['vmrss_kb'])} | "
                       f"{r['rss_per_camera_kb']} | {r.get('marginal_kb_per_camera', '-')} | "
                       f"{r['fds']} | {mb(r['broker_rss_after_kb'])} | "
                       f"{r['broker_kb_per_connection']} | {r['stop_s']} ({r['exit_status']}) | "
                       f"{r['loadavg'][0]} |")
        out.append("\nopen s: process start to all cameras opened (state, outbox, keys); "
                   "all online s: process start to the last CONNACK; connect/s: CONNACKs per "
                   "second between the first and the last; stop s: SIGTERM to exit (-9: "
                   "killed after the stop deadline).\n")
    writer = result.get("writer")
    if writer:
        out.append("## (c) Recording writer vs `openssl speed -evp aes-256-gcm` "
                   "(bench/bench_recording)\n")
        out.append("```")
        out.extend(writer["lines"])
        out.append("```")
        for k, v in writer["writer_vs_openssl_speed"].items():
            out.append(f"- {k}: {100 * v:.0f} % of openssl speed (target: at least 80 %)")
        out.append("")
    if result.get("error"):
        out.append(f"**Stopped early:** {result['error']}\n")
    return "\n".join(out)


def openssl_version():
    try:
        return subprocess.run(["openssl", "version"], stdout=subprocess.PIPE, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "openssl ?"


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Exit status: 0 done, 1 failure, 2 usage.")
    p.add_argument("--build-dir", default=os.environ.get("BODYCAM_BUILD_DIR")
                   or os.path.join(REPO, "build"),
                   help="the build (default $BODYCAM_BUILD_DIR, else <repo>/build)")
    p.add_argument("--json", default="bench_agent.json", metavar="FILE",
                   help="where the results go (default ./bench_agent.json)")
    p.add_argument("--standby-s", type=float, default=20.0)
    p.add_argument("--recording-s", type=float, default=20.0)
    p.add_argument("--bitrate", type=int, default=8000000, help="bit/s for (a)")
    p.add_argument("--sim-counts", default=DEFAULT_COUNTS, metavar="N,N,...")
    p.add_argument("--no-sim-max", action="store_true",
                   help="do not add the largest N that fits the descriptor limit")
    p.add_argument("--sim-spread-ms-per-camera", type=float, default=1.0, metavar="MS",
                   help="the first connections are spread over N * MS ms (default 1)")
    p.add_argument("--sim-data-dir", metavar="DIR", default=SIM_DATA_DEFAULT,
                   help="where the simulated cameras' data dirs go (default /dev/shm when it "
                        "exists: thousands of simulated cameras share one disk, whose fsyncs "
                        "would dominate; a real camera has its own storage); e.g. /tmp to "
                        "include them")
    p.add_argument("--no-plugin", action="store_true", help="broker without bodycam-auth")
    p.add_argument("--writer-mib", type=int, default=64, help="bench_recording MiB per run")
    p.add_argument("--skip", default="", help="phases to skip: single,sim,writer")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args(argv)
    if args.standby_s <= 0 or args.recording_s <= 0 or args.bitrate <= 0:
        p.error("durations and the bitrate must be positive")
    return args


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def on_signal(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def fleet_bench_parser(program, doc, quick_help):
    """The parser of a benchmark over a stack and a fleet of simulated cameras
    (bench_rotation, bench_firmware) with the options they share before their
    own: --build-dir, --json, --cameras, --quick (quick_help)."""
    p = argparse.ArgumentParser(prog=program, description=doc.split("\n\n")[0],
                                epilog="Exit status: 0 done, 1 failure, 2 usage.")
    p.add_argument("--build-dir", default=os.environ.get("BODYCAM_BUILD_DIR")
                   or os.path.join(REPO, "build"))
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--cameras", type=int, default=1000, help="simulated cameras (default 1000)")
    p.add_argument("--quick", action="store_true", help=quick_help)
    return p


def add_fleet_agent_args(p, sim_default, sim_help):
    """The options of the simulated cameras' processes after a benchmark's own:
    --processes, --spread-ms-per-camera, --sim-data-dir (sim_default,
    sim_help), --keep."""
    p.add_argument("--processes", type=int, default=0,
                   help="agent processes (default: as few as the descriptor limit allows)")
    p.add_argument("--spread-ms-per-camera", type=float, default=1.0, metavar="MS",
                   help="first connections of a process spread over its cameras * MS ms")
    p.add_argument("--sim-data-dir", metavar="DIR", default=sim_default, help=sim_help)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")


def run_stack_bench(args, make_run, measure, render):
    """The main of a benchmark over a stack (bench_rotation, bench_firmware):
    make_run(args) builds the run (its .b the Bench), measure(run, args,
    result) fills result, render(result) is the markdown printed; the result
    is also written to args.json when given. Returns the exit status."""
    signal.signal(signal.SIGTERM, on_signal)
    raise_fd_limit()  # inherited by the stack (the broker) and the agents
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
              "loadavg_start": loadavg(), "build_dir": os.path.abspath(args.build_dir)}
    run = make_run(args)
    status = 0
    try:
        measure(run, args, result)
    except (Failure, KeyboardInterrupt, OSError, ValueError, KeyError,
            subprocess.SubprocessError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        log(f"error: {e}")
        status = 1
    finally:
        run.b.stop_all()
        run.b.remove_dir()
    result["loadavg_end"] = loadavg()
    print(render(result), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(result, indent=2) + "\n")
    return status


def main(argv):
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    signal.signal(signal.SIGTERM, on_signal)
    raise_fd_limit()  # inherited by the stack (the broker) and the agents
    result = {"machine": {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(),
                          "kernel": platform.release(), "openssl": openssl_version(),
                          "loadavg_start": loadavg()}}
    b = Bench(args)
    status = 0
    try:
        if not {"single", "sim"} <= skip:
            log(f"starting a stack in {b.dir}")
            b.stack_start()
        if "single" not in skip:
            result["single"] = phase_single(b, args)
        if "sim" not in skip:
            result["simulation"] = {}
            phase_sim(b, args, result["simulation"])
        b.stop_all()  # the writer runs without the stack
        if "writer" not in skip:
            result["writer"] = phase_writer(b, args)
    except (Failure, KeyboardInterrupt, OSError, subprocess.SubprocessError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        log(f"error: {e}")
        status = 1
    finally:
        b.stop_all()
        b.remove_dir()
    result["machine"]["loadavg_end"] = loadavg()
    print(markdown(result), flush=True)
    try:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        log(f"results in {args.json}")
    except OSError as e:
        log(f"cannot write {args.json}: {e}")
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
