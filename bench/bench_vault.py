#!/usr/bin/python3
"""bench_vault - the vault's upload throughput against mosquitto's raw
throughput of the same bytes, and the purge of 100,000 recordings through
the real daemon, measured in the same run (issue 6, "Benchmark").

  bench_vault.py [--build-dir D] [--json FILE] [--quick] [--keep] [--runs R]
                 [--bitrate BPS] [--record-s S] [--cameras N]
                 [--purge-records N] [--skip default,raised,purge,catalog]

(1) Upload, on two stacks: one with the broker plugin's default upload
    limits (8 MiB/s and 200 chunks/s per camera: what a deployment gets) and
    one with them raised out of reach (1e9 bytes/s, 1e6 msgs/s, equal
    bursts: what the pipeline can do). Each: `tools/bodycam-stack up DIR
    --cameras N --agents --agent-bitrate BPS` (real bodycam-agents,
    synthetic video, pre-event buffer 5 s, chunks of 32 KiB with 8 in
    flight: the agent's defaults). R times: one camera, then N at once, make
    a recording (warn, warn, record, S seconds, stop; id "<dev>-<seq>" as
    tests/integration/vault_helpers.make_recording) and are docked; the
    figure is recording bytes (catalog `size`) over the time from the first
    `dock` to the latest `committed_at` in bodycam:recording:<device>/<id>
    (both wall-clock ms of this machine; the stack's test clock is at offset
    0 then). Also the CPU time of every process of the stack per MB.

(2) Baseline, same stack, same TLS listener, right after (1): the gateway
    and the agents are stopped (SIGTERM), then bench/bench_publish publishes
    the same number of bytes per camera as upload chunk messages (valid
    JSON, 32 KiB of data, 8 in flight, QoS 1, MQTT v5) with the cameras' own
    certificates and client ids to one subscriber (the gateway's service
    certificate, bodycam/v1/devices/+/upload, QoS 1; it connects as the
    stopped gateway's client id with a clean start, so the broker drops that
    session and its $share place instead of queueing every chunk for it
    too): delivered MB/s, one
    publisher and N at once, R times each, 2.5 s apart (the plugin keeps a
    camera's buckets across reconnects; they refill meanwhile, as between
    the runs of (1)). A refused chunk is resent as the agent does (rewind,
    pause 250 ms doubling), so under the default limits the baseline is
    what an agent-like client gets through them. Ratio: median vault path /
    median raw (the issue's target: >= 50 %).

(3) Purge, on the raised stack: the vault is stopped, `bench_purge
    --seed-only` commits P records into its Redis through the catalog
    (pipelined; real "commit" audit entries; marked audited), DIR/clock is
    moved 29 days on, the vault is restarted and the time until
    bodycam:vault:1 `purged` reaches the number due is measured (status
    refreshed each second, polled every 50 ms), with the `purge_pass ...
    ms=` line of the vault log. Baselines: `bench_purge P` (the catalog's
    purge scripts alone, own redis-server, same batch of 1,000: run after the
    stacks are down and quoted whole) and P DELs of the tombstones through
    `redis-cli --pipe` on the stack's Redis (Redis' floor for touching P
    keys).

Prints Markdown on stdout (progress on stderr), writes JSON (--json). Never
asserts on time. Every wait has a deadline; every stack started is stopped
with `bodycam-stack down`, also after an error or SIGINT/SIGTERM. Defaults:
32 Mbit/s, 6 s recordings, 5 cameras, R = 3, 100,000 records (about 7
minutes on 2 busy cores). --quick: 16 Mbit/s, 2 s, 3 cameras, R = 1, 20,000
records (about 1 minute). Exit status: 0 done, 1 failure (what was measured
before is printed), 2 usage.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PROGRAM = "bench_vault"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(REPO, "tools", "bodycam-stack")
HOST = "127.0.0.1"
STACK_TIMEOUT = 180
COMMIT_TIMEOUT = 240
PURGE_TIMEOUT = 400
PRE_EVENT_S = 5  # the stack's agent default (tools/bodycam-stack AGENT_DEFAULTS)
DAY_MS = 24 * 3600 * 1000
BUCKET_REFILL_S = 2.5
RAISED = ("upload_bytes_per_s=1000000000", "upload_bytes_burst=1000000000",
          "upload_msgs_per_s=1000000", "upload_msgs_burst=1000000")


class Failure(Exception):
    """Stops the benchmark; the message says why."""


def log(msg):
    print(f"{PROGRAM}: {msg}", file=sys.stderr, flush=True)


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------- Redis (RESP, stdlib)

class Redis:
    """One RESP connection (python3-redis is not installed here)."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def __call__(self, *args):
        req = f"*{len(args)}\r\n".encode()
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            req += f"${len(a)}\r\n".encode() + a + b"\r\n"
        self.sock.sendall(req)
        return self._read()

    def _read(self):
        line = self.f.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise Failure(f"redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise Failure(f"unexpected redis reply {line!r}")

    def hash(self, key):
        flat = self("HGETALL", key) or []
        return dict(zip(flat[0::2], flat[1::2]))

    def close(self):
        self.f.close()
        self.sock.close()


def resp(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        a = str(a).encode()
        out.append(f"${len(a)}\r\n".encode() + a + b"\r\n")
    return b"".join(out)


# ---------------------------------------------------------------- cameras

def control(path, line, timeout=10.0):
    """One line to a camera's control socket; the answer line."""
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
    return data.decode().strip()


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Stack:
    """One `bodycam-stack up` in a directory of its own."""

    def __init__(self, bench, name, plugin_opts):
        self.bench = bench
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"bv-{name}-", dir="/tmp")  # short: socket paths
        self.plugin_opts = plugin_opts
        self.up = False
        self.info = {}
        self.r = None

    def start(self):
        a = self.bench.args
        argv = [RUNNER, "up", self.dir, "--cameras", str(a.cameras), "--agents",
                "--agent-bitrate", str(a.bitrate), "--build-dir", self.bench.build_dir, "--plugin"]
        for opt in self.plugin_opts:
            argv += ["--plugin-opt", opt]
        self.up = True  # from here on `down` runs on the way out
        self.bench.run(argv, STACK_TIMEOUT, "bodycam-stack up")
        with open(os.path.join(self.dir, "stack.json")) as f:
            self.info = json.load(f)
        for needed in ("gateway", "vault", "agent:cam-001"):
            if needed not in self.info.get("processes", {}):
                raise Failure(f"the stack has no {needed} (not built in {self.bench.build_dir}?)")
        self.r = Redis(self.info["redis"]["port"])
        self.started = time.monotonic()

    def down(self):
        if self.r is not None:
            self.r.close()
            self.r = None
        if not self.up:
            return
        out = subprocess.run([RUNNER, "down", self.dir], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=STACK_TIMEOUT)
        if out.returncode != 0:
            log(f"bodycam-stack down {self.dir} failed: {out.stdout.strip()}")
        self.up = False
        self.stop_leftovers()

    def leftovers(self):
        """PIDs of stack.json still running with this stack's directory in
        their command line. `down` stops a process only while it runs the
        executable it started: one rebuilt meanwhile (the build directory is
        shared) would be left running, and load the next measurements."""
        try:
            with open(os.path.join(self.dir, "stack.json")) as f:
                procs = json.load(f).get("processes", {})
        except (OSError, ValueError):
            return []
        pids = []
        for entry in procs.values():
            try:
                with open(f"/proc/{entry['pid']}/cmdline", "rb") as f:
                    if self.dir.encode() in f.read():
                        pids.append(entry["pid"])
            except (OSError, KeyError):
                continue
        return pids

    def stop_leftovers(self):
        pids = self.leftovers()
        if not pids:
            return
        log(f"stopping {len(pids)} process(es) `down` left running (rebuilt binaries?): {pids}")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.leftovers():
                time.sleep(0.1)
            pids = self.leftovers()
            if not pids:
                return
        log(f"still running after SIGKILL: {pids}")

    def remove(self):
        if self.bench.args.keep:
            log(f"state of the {self.name} stack kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def devices(self):
        return [f"cam-{i:03d}" for i in range(1, self.bench.args.cameras + 1)]

    def press(self, dev, line):
        answer = control(self.info["devices"][dev]["control_socket"], line)
        if not answer.startswith("ok"):
            raise Failure(f"{dev} '{line}' answered {answer!r}")
        return answer

    def status(self, dev):
        answer = self.press(dev, "status")
        return dict(item.split("=", 1) for item in answer.split()[1:])

    def pid_of(self, name):
        """The PID of a process of this stack while it runs (its command line
        names this stack's directory), else None."""
        pid = self.info["processes"][name]["pid"]
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return None
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return pid if self.dir.encode() in f.read() else None
        except OSError:
            return None

    def stop_process(self, name, timeout=20.0):
        """SIGTERM by PID (not through `bodycam-stack kill`, which leaves a
        process whose binary was rebuilt meanwhile alone), SIGKILL after
        timeout; waits until it is gone."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            pid = self.pid_of(name)
            if pid is None:
                return
            try:
                os.kill(pid, sig)
            except OSError:
                return
            try:
                wait_for(lambda: self.pid_of(name) is None, wait, f"{name} (pid {pid}) to exit")
                return
            except Failure:
                log(f"{name} (pid {pid}) did not exit after {sig.name}")
        raise Failure(f"{name} does not stop")

    def cpu(self):
        """CPU seconds (utime + stime) so far of each process, by component."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, entry in self.info.get("processes", {}).items():
            try:
                with open(f"/proc/{entry['pid']}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            key = "agents" if name.startswith("agent:") else name
            out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        return out

    def vault_status(self):
        return self.r.hash(self.info["vault"]["status_key"])

    def refused_lines(self, dev):
        path = self.info["processes"][f"agent:{dev}"]["log"]
        with open(path, errors="replace") as f:
            return sum(1 for line in f if "uploader | refused" in line)


# ---------------------------------------------------------------- (1) the vault path

def make_recording(st, dev):
    """warn, warn, record (the id is the seq after the three presses)."""
    base = int(st.status(dev)["seq"])
    for line in ("warn", "warn", "record"):
        st.press(dev, line)
    return f"{dev}-{base + 3}"


def upload_run(st, devs, record_s):
    """Recordings on devs at once, then dock them all; returns the row."""
    for dev in devs:
        wait_for(lambda d=dev: st.status(d)["online"] == "1", 30, f"{dev} online")
    # a full pre-event buffer, so every recording carries the same PRE_EVENT_S
    since = max(0.0, PRE_EVENT_S + 0.5 - (time.monotonic() - st.ready_at))
    time.sleep(since)
    ids = {dev: make_recording(st, dev) for dev in devs}
    time.sleep(record_s)  # video into the recordings (a duration, not a condition)
    for dev in devs:
        st.press(dev, "stop")
    for dev in devs:
        wait_for(lambda d=dev: st.status(d)["recording"] == "-" and
                 int(st.status(d)["pending"]) >= 1, 20, f"{dev}'s recording closed")
    refs = {dev: f"{dev}/{rid}" for dev, rid in ids.items()}
    refused_before = {dev: st.refused_lines(dev) for dev in devs}
    vault_before = st.vault_status()
    cpu_before = st.cpu()
    load = loadavg()
    docked_at = now_ms()
    for dev in devs:
        st.press(dev, "dock")

    def all_committed():
        metas = {dev: st.r.hash(f"bodycam:recording:{ref}") for dev, ref in refs.items()}
        return metas if all(m.get("committed_at") for m in metas.values()) else None
    metas = wait_for(all_committed, COMMIT_TIMEOUT, f"{len(devs)} recording(s) committed",
                     interval=0.1)
    cpu_after = st.cpu()
    commits = sorted(int(m["committed_at"]) - docked_at for m in metas.values())
    # the status hash is refreshed once a second: wait for one written after the last commit
    vault_after = wait_for(lambda: (lambda s: s if int(s.get("updated_at", 0)) > docked_at +
                                    commits[-1] else None)(st.vault_status()), 5,
                           "a vault status written after the last commit")
    total = sum(int(m["size"]) for m in metas.values())
    seconds = commits[-1] / 1000.0
    # back to standby for the next run: the receipt deleted the copy, then undock
    for dev in devs:
        wait_for(lambda d=dev: st.status(d)["pending"] == "0", 60, f"{dev} deleting its copy")
        st.press(dev, "undock")
        wait_for(lambda d=dev: st.status(d)["state"] == "standby", 10, f"{dev} on standby")
    st.ready_at = time.monotonic()
    delta = {k: int(vault_after.get(k, 0)) - int(vault_before.get(k, 0))
             for k in ("chunks", "duplicates", "manifests", "committed")}
    return {"cameras": len(devs), "bytes": total,
            "sizes": {dev: int(m["size"]) for dev, m in metas.items()},
            "seconds": round(seconds, 3), "mb_s": round(total / 1e6 / seconds, 2),
            "first_commit_s": round(commits[0] / 1000.0, 3),
            "agent_refusals": sum(st.refused_lines(d) - refused_before[d] for d in devs),
            "vault": delta, "loadavg": load,
            "cpu_s": {k: round(v - cpu_before.get(k, 0.0), 2) for k, v in cpu_after.items()
                      if k in cpu_before},
            "cpu_ms_per_mb": round(1000 * sum(cpu_after[k] - cpu_before[k] for k in cpu_after
                                              if k in cpu_before) / (total / 1e6))}


def summary(rows):
    """Median (the figure), min and max of the runs' MB/s; the runs kept whole."""
    rates = [r["mb_s"] for r in rows]
    return {"mb_s": round(statistics.median(rates), 2), "min": min(rates), "max": max(rates),
            "runs": rows}


def phase_upload(b, st, out):
    args = b.args
    devs = st.devices()
    st.ready_at = st.started
    ones, alls = [], []
    for i in range(1, args.runs + 1):
        log(f"[{st.name}] (1) run {i}/{args.runs}, one camera: {args.record_s} s at "
            f"{args.bitrate} bit/s + {PRE_EVENT_S} s pre-event, dock, until committed")
        ones.append(upload_run(st, devs[:1], args.record_s))
        log(f"[{st.name}] (1) one camera: {ones[-1]['mb_s']} MB/s")
        log(f"[{st.name}] (1) run {i}/{args.runs}, {len(devs)} cameras at once")
        alls.append(upload_run(st, devs, args.record_s))
        log(f"[{st.name}] (1) {len(devs)} cameras: {alls[-1]['mb_s']} MB/s")
    out["one"], out["all"] = summary(ones), summary(alls)


def raw_run(b, st, pubs, nbytes):
    tool = b.binary("bench_publish")
    # The plugin keeps a camera's buckets across reconnects: let them refill
    # (default bursts: 16 MiB at 8 MiB/s, 400 at 200/s) as they do between
    # the vault-path runs, or a run would start on what the last one left.
    time.sleep(BUCKET_REFILL_S)
    load = loadavg()
    cpu_before = st.cpu()
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the stopped gateway's client id, clean start: its session and share go
    sub_id = f"gateway-{st.info['gateway']['instance']}"
    text = b.run([tool, st.dir, "--devices", ",".join(pubs), "--bytes", str(nbytes),
                  "--subscriber-id", sub_id, "--timeout", "240"], 300, "bench_publish")
    kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_after = st.cpu()
    row = json.loads(text.strip().splitlines()[-1])
    own = (kids_after.ru_utime - kids.ru_utime) + (kids_after.ru_stime - kids.ru_stime)
    stack = sum(cpu_after[k] - cpu_before[k] for k in cpu_after if k in cpu_before)
    row["cpu_s"] = {"bench_publish": round(own, 2), "stack": round(stack, 2),
                    "mosquitto": round(cpu_after.get("mosquitto", 0) -
                                       cpu_before.get("mosquitto", 0), 2)}
    row["cpu_ms_per_mb"] = round(1000 * (own + stack) / (row["data_bytes"] / 1e6))
    row["loadavg"] = load
    return row


def phase_raw(b, st, out):
    devs = st.devices()
    log(f"[{st.name}] (2) stopping the gateway and the agents for the baseline")
    st.stop_process("gateway")
    for dev in devs:
        st.stop_process(f"agent:{dev}")
    for key, pubs in (("one", devs[:1]), ("all", devs)):
        runs = out[key]["runs"]
        nbytes = sum(r["bytes"] for r in runs) // (len(runs) * len(pubs))
        rows = []
        for i in range(1, b.args.runs + 1):
            log(f"[{st.name}] (2) raw run {i}/{b.args.runs}: {len(pubs)} publisher(s) x "
                f"{nbytes} bytes")
            rows.append(raw_run(b, st, pubs, nbytes))
            log(f"[{st.name}] (2) raw {len(pubs)}: {rows[-1]['mb_s']} MB/s")
        out[f"raw_{key}"] = summary(rows)
        out[f"ratio_{key}"] = round(out[key]["mb_s"] / out[f"raw_{key}"]["mb_s"], 3)
        log(f"[{st.name}] (2) {len(pubs)} camera(s): vault/raw {out[f'ratio_{key}']:.2f} "
            "(medians)")


# ---------------------------------------------------------------- (3) the purge

def purge_line(path, offset):
    """The last `purge_pass | purged=N ms=M` of the vault log after offset."""
    found = None
    with open(path, errors="replace") as f:
        f.seek(offset)
        for line in f:
            m = re.search(r"purge_pass \| purged=(\d+) ms=(\d+)", line)
            if m:
                found = {"purged": int(m.group(1)), "ms": int(m.group(2)), "line": line.strip()}
    return found


def phase_purge(b, st, out):
    n = b.args.purge_records
    port = st.info["redis"]["port"]
    log(f"[{st.name}] (3) purge: stopping the vault, seeding {n} records")
    st.stop_process("vault")
    env = dict(os.environ, BODYCAM_CLOCK_FILE=st.info["clock_file"])
    t = time.monotonic()
    seeded = b.run([b.binary("bench_purge"), "--seed-only", str(port), str(n),
                    st.info["vault"]["audit_dir"]], 600, "bench_purge --seed-only", env=env)
    out["seed"] = {"line": seeded.strip(), "seconds": round(time.monotonic() - t, 2)}
    due = st.r("ZCARD", "bodycam:recordings:expiry")  # the seeded ones + what (1) committed
    out["due"] = due
    tmp = st.info["clock_file"] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(29 * DAY_MS))
    os.replace(tmp, st.info["clock_file"])
    vlog = st.info["processes"]["vault"]["log"]
    offset = os.path.getsize(vlog)
    load = loadavg()
    log(f"[{st.name}] (3) clock +29 days; restarting the vault; {due} recordings due")
    t0 = time.monotonic()
    b.run([RUNNER, "restart", st.dir, "vault"], 60, "bodycam-stack restart vault")
    with open(os.path.join(st.dir, "stack.json")) as f:
        st.info = json.load(f)
    pid = str(st.info["processes"]["vault"]["pid"])

    def purged():
        s = st.vault_status()
        return s.get("pid") == pid and int(s.get("purged", 0)) >= due
    wait_for(purged, PURGE_TIMEOUT, f"bodycam:vault:1 purged to reach {due}")
    seconds = time.monotonic() - t0
    line = wait_for(lambda: purge_line(vlog, offset), 10, "the vault's purge_pass line")
    out["daemon"] = {"records": due, "seconds": round(seconds, 2),
                     "per_s": round(due / seconds), "purge_pass": line, "loadavg": load}
    left = st.r("ZCARD", "bodycam:recordings:expiry")
    out["daemon"]["left_in_expiry_index"] = left
    log(f"[{st.name}] (3) daemon: {due} purged in {seconds:.2f} s (pass {line['ms']} ms)")
    # Redis' floor: as many DELs of the tombstones, pipelined by redis-cli
    refs = [f"cam-{i % 500:03d}/seed{i:07d}" for i in range(n)]
    payload = b"".join(resp("DEL", f"bodycam:recording:{r}") for r in refs)
    cli = shutil.which("redis-cli")
    if cli is None:
        log("(3) redis-cli not found: no DEL baseline")
        return
    t = time.monotonic()
    proc = subprocess.run([cli, "-h", HOST, "-p", str(port), "--pipe"], input=payload,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    dels = time.monotonic() - t
    text = proc.stdout.decode(errors="replace")
    m = re.search(r"errors: (\d+), replies: (\d+)", text)
    out["dels"] = {"records": n, "seconds": round(dels, 3), "per_s": round(n / dels),
                   "redis_cli": m.group(0) if m else text.strip()[-200:]}


def phase_catalog(b, out):
    n = b.args.purge_records
    log(f"(3) bench_purge {n} 1000 (catalog only, own redis-server)")
    text = b.run([b.binary("bench_purge"), str(n), "1000"], 600, "bench_purge")
    lines = [line for line in text.splitlines() if line.strip()]
    out["lines"] = lines
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| purge") and len(cells) >= 5:
            out["purge_seconds"] = float(cells[2])
            out["purge_per_s"] = float(cells[3])
        elif line.startswith("| commit") and len(cells) >= 5:
            out["commit_seconds"] = float(cells[2])


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.build_dir = os.path.abspath(args.build_dir)
        self.stacks = []

    def binary(self, name):
        path = os.path.join(self.build_dir, "bench", name)
        if not os.access(path, os.X_OK):
            raise Failure(f"{path} is not built (cmake --build {self.build_dir} --target {name})")
        return path

    def run(self, argv, timeout, what, env=None):
        try:
            out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise Failure(f"{what} took more than {timeout} s")
        if out.returncode != 0:
            raise Failure(f"{what} failed (status {out.returncode}):\n"
                          f"{(out.stderr or out.stdout)[-2000:]}")
        return out.stdout

    def stack(self, name, plugin_opts):
        st = Stack(self, name, plugin_opts)
        self.stacks.append(st)
        log(f"starting the {name} stack in {st.dir}")
        st.start()
        return st

    def stop_all(self):
        for st in self.stacks:
            try:
                st.down()
            finally:
                st.remove()
        self.stacks = []


def limits_run(b, name, plugin_opts, result, purge):
    out = result["upload"].setdefault(name, {"plugin_opts": list(plugin_opts)})
    st = b.stack(name, plugin_opts)
    try:
        phase_upload(b, st, out)
        phase_raw(b, st, out)
        if purge:
            result["purge"] = {}
            phase_purge(b, st, result["purge"])
    finally:
        st.down()
        st.remove()
        b.stacks.remove(st)


# ---------------------------------------------------------------- output

def markdown(result):
    a = result["settings"]
    out = ["## bench_vault", "",
           f"{result['cpus']} CPUs; build `{result['build_dir']}`; load average "
           f"{result['loadavg_start']} at the start, {result.get('loadavg_end')} at the end. "
           f"Recordings: synthetic video {a['bitrate'] / 1e6:g} Mbit/s, {a['record_s']} s "
           f"+ {PRE_EVENT_S} s pre-event; chunks 32 KiB, 8 in flight (agent defaults). "
           "MB = 10^6 bytes of recording data.", ""]
    up = result.get("upload", {})
    if up:
        out += ["| plugin upload limits | cameras | MB per run | vault path MB/s | raw MB/s "
                "| vault / raw | vault path CPU ms/MB | raw CPU ms/MB | load avg |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for name, u in up.items():
            label = "default (8 MiB/s, 200 msg/s)" if name == "default" else "raised (1e9 B/s)"
            for key in ("one", "all"):
                r = u.get(key)
                if not r:
                    continue
                runs = r["runs"]
                raw = u.get(f"raw_{key}")
                ratio = u.get(f"ratio_{key}")
                mb = statistics.mean(x["bytes"] for x in runs) / 1e6
                cpu = statistics.median(x["cpu_ms_per_mb"] for x in runs)
                raw_cpu = statistics.median(x["cpu_ms_per_mb"] for x in raw["runs"]) if raw \
                    else "-"
                pct = f"{100 * ratio:.0f} %" if ratio else "-"
                loads = [x["loadavg"][0] for x in runs] + \
                    ([x["loadavg"][0] for x in raw["runs"]] if raw else [])
                out.append(f"| {label} | {runs[0]['cameras']} | {mb:.1f} | {span(r)} | "
                           f"{span(raw) if raw else '-'} | "
                           f"{pct} | {cpu} | {raw_cpu} | "
                           f"{min(loads)}-{max(loads)} |")
        out += ["", f"Medians of {result['settings']['runs']} run(s), (min-max). Vault path: "
                "first `dock` to the last `committed_at` of the run's recordings; raw: "
                "bench_publish on the same broker and TLS listener, gateway and agents "
                "stopped, the same bytes per camera, first publish to the last delivery. "
                "CPU ms/MB: CPU time of every process of the stack (+ bench_publish for raw) "
                "per MB carried. Target: vault / raw >= 50 %.", ""]
        for name, u in up.items():
            for key in ("one", "all"):
                r = u.get(key)
                if r:
                    x = r["runs"][len(r["runs"]) // 2]
                    cpu = ", ".join(f"{k} {v}" for k, v in sorted(x["cpu_s"].items(),
                                                                   key=lambda kv: -kv[1]))
                    out.append(f"- {name}, vault path, {x['cameras']} camera(s), run "
                               f"{len(r['runs']) // 2 + 1}: {x['mb_s']} MB/s, last commit "
                               f"{x['seconds']} s after the dock (first {x['first_commit_s']} s), "
                               f"agent refusals {x['agent_refusals']}, vault counters "
                               f"{x['vault']}; CPU s: {cpu}")
                raw = u.get(f"raw_{key}")
                if raw:
                    x = raw["runs"][len(raw["runs"]) // 2]
                    out.append(f"- {name}, raw, {x['publishers']} publisher(s), run "
                               f"{len(raw['runs']) // 2 + 1}: {x['mb_s']} MB/s, "
                               f"{x['accepted']} chunks accepted, {x['refused']} refused (resent), "
                               f"{x['received']} delivered in {x['seconds']} s; CPU s {x['cpu_s']}")
        out.append("")
    p = result.get("purge")
    c = result.get("catalog")
    if p or c:
        out += ["| purge of recordings' metadata | records | seconds | per s | ratio |",
                "|---|---:|---:|---:|---:|"]
        cat_s = c.get("purge_seconds") if c else None

        def vs_catalog(seconds):
            return f"{seconds / cat_s:.2f} x catalog" if cat_s else "-"
        if p and p.get("daemon"):
            d = p["daemon"]
            pl = d["purge_pass"]
            pass_s = pl["ms"] / 1000.0
            out.append(f"| bodycam-vault: restart to `purged` = {d['records']} (load "
                       f"{d['loadavg'][0]}) | {d['records']} | {d['seconds']} | {d['per_s']} | "
                       f"{vs_catalog(d['seconds'])} |")
            out.append(f"| bodycam-vault: its `purge_pass` line (ms) | {pl['purged']} | "
                       f"{pass_s:.2f} | {round(pl['purged'] / pass_s) if pass_s else '-'} | "
                       f"{vs_catalog(pass_s)} |")
        if c and cat_s:
            out.append(f"| bench_purge: catalog scripts only (baseline) | "
                       f"{b_records(c)} | {cat_s} | {round(c.get('purge_per_s', 0))} | 1.00 |")
        if p and p.get("dels"):
            dl = p["dels"]
            out.append(f"| Redis floor: {dl['records']} DELs via `redis-cli --pipe` | "
                       f"{dl['records']} | {dl['seconds']} | {dl['per_s']} | "
                       f"{vs_catalog(dl['seconds'])} |")
        out.append("")
        if p and p.get("seed"):
            out.append(f"Seeding (vault stopped): `{p['seed']['line']}`; {p['due']} recordings "
                       f"due after the clock moved 29 days (the seeded ones and those of (1)).")
            out.append("")
        if c and c.get("lines"):
            out += ["bench_purge (own redis-server, after the stacks are down):", "", "```"]
            out += c["lines"]
            out += ["```", ""]
    if result.get("error"):
        out += [f"**stopped early:** {result['error']}", ""]
    return "\n".join(out)


def span(r):
    if len(r["runs"]) == 1:
        return f"{r['mb_s']}"
    return f"{r['mb_s']} ({r['min']}-{r['max']})"


def b_records(c):
    for line in c.get("lines", []):
        if line.startswith("| purge"):
            return line.split("|")[2].strip()
    return "-"


def parse_args():
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0],
                                epilog="Exit status: 0 done, 1 failure, 2 usage.")
    p.add_argument("--build-dir", default=os.environ.get("BODYCAM_BUILD_DIR")
                   or os.path.join(REPO, "build"))
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--quick", action="store_true",
                   help="16 Mbit/s, 2 s recordings, 3 cameras, 20,000 records")
    p.add_argument("--bitrate", type=int, help="synthetic video bit/s (default 32000000)")
    p.add_argument("--record-s", type=float, help="seconds recorded after the presses (default 6)")
    p.add_argument("--cameras", type=int, help="cameras at once (default 5)")
    p.add_argument("--purge-records", type=int, help="records seeded and purged (default 100000)")
    p.add_argument("--runs", type=int, help="upload and raw runs per stack; medians (default 3)")
    p.add_argument("--skip", default="", help="phases to skip: default,raised,purge,catalog")
    p.add_argument("--keep", action="store_true", help="keep the stacks' directories")
    args = p.parse_args()
    quick = {"bitrate": 16000000, "record_s": 2.0, "cameras": 3, "purge_records": 20000,
             "runs": 1}
    full = {"bitrate": 32000000, "record_s": 6.0, "cameras": 5, "purge_records": 100000,
            "runs": 3}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.skip - {"default", "raised", "purge", "catalog"}:
        p.error(f"--skip: unknown phase(s) {sorted(args.skip)}")
    if not 1 <= args.cameras <= 50 or args.bitrate <= 0 or args.record_s <= 0 \
            or args.purge_records < 1 or not 1 <= args.runs <= 9:
        p.error("--cameras 1..50, --runs 1..9; bitrate, record-s and purge-records positive")
    return args


def main():
    args = parse_args()
    b = Bench(args)
    result = {"program": PROGRAM, "build_dir": b.build_dir, "cpus": os.cpu_count(),
              "loadavg_start": loadavg(), "upload": {},
              "settings": {"bitrate": args.bitrate, "record_s": args.record_s,
                           "cameras": args.cameras, "purge_records": args.purge_records,
                           "runs": args.runs}}

    def on_signal(signum, frame):
        raise Failure(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = 0
    try:
        b.binary("bench_publish")
        b.binary("bench_purge")
        if "default" not in args.skip:
            limits_run(b, "default", (), result, purge=False)
        if "raised" not in args.skip:
            limits_run(b, "raised", RAISED, result, purge="purge" not in args.skip)
        if "catalog" not in args.skip:
            result["catalog"] = {}
            phase_catalog(b, result["catalog"])
    except (Failure, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
        log(f"failed: {e}")
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.stop_all()
    result["loadavg_end"] = loadavg()
    print(markdown(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
