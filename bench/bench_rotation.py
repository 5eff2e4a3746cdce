#!/usr/bin/python3
"""bench_rotation - identity rotation of a fleet of simulated cameras at a
set pace: total time, reconnects per second, failed connections (issue 7).

  bench_rotation.py [--build-dir D] [--json FILE] [--quick | --cameras N]
                    [--pace N] [--processes P] [--spread-ms-per-camera MS]
                    [--rotation-set NAME=VALUE]... [--sim-data-dir DIR] [--keep]

One run, on a stack of its own (`tools/bodycam-stack up TMPDIR --cameras 1
--no-agents`, broker plugin on, key-rotation with the service's own
defaults instead of the runner's short test timings; BODYCAM_KEY_ROTATION_SET
carries them and any --rotation-set):

 (1) the fleet comes up (the baseline): N identities sim-00001.. are added to
     the stack's PKI (bodycam-pki) and registry (bodycam-registry), as
     bench_agent.py does, and P `bodycam-agent --simulate` processes (N/P
     cameras each; P from the descriptor limit unless given) connect them,
     the first connections spread over N * MS ms. Figures: process start to
     the last camera's first CONNACK, connects per second (mean from the
     first to the last CONNACK; peak over any 1 s from the agents' `online`
     lines, millisecond timestamps, and per calendar second from the
     broker's "New client connected" lines), failed attempts (the agents'
     `connection attempt ... failed` lines) and broker refusals (the plugin's
     `auth | refused`, mosquitto's `not authorised`, OpenSSL errors).
 (2) when fleet-health has every camera online (bodycam:cameras:online), an
     identity campaign over all of them: `bodycamctl keys rotate-identity
     --all --pace PACE` (cam-001, the runner's camera without an agent, is
     set revoked first so that --all means the simulated fleet). Polled with
     `bodycamctl --json keys show ID` every second until `done` (or a
     deadline). Figures: campaign started_at -> finished_at (the service's
     clock, ms), cameras done / failed, reconnects (the agents' `online`
     lines in that window; each camera's install reconnects it once) peak
     and mean per second as in (1), failed attempts, broker refusals, and
     the key-rotation daemon's own counters and log (timeouts, retries,
     refusals). Anything that did not go to plan is quoted from the logs.

Markdown on stdout (progress on stderr), everything as JSON (--json). Never
asserts on time. Every wait has a deadline; the agents are stopped by PID
and the stack with `bodycam-stack down`, also after an error or
SIGINT/SIGTERM. Defaults: 1,000 cameras at 20/s (the service's
reconnects_max_per_s default): about 1.5-2 minutes; --quick: 200 cameras.
Exit status: 0 done, 1 failure (what was measured is printed), 2 usage.
"""

import collections
import json
import math
import os
import re
import resource
import sys
import time

import bench_agent as ba  # the stack, the simulated identities, /proc and log helpers

PROGRAM = "bench_rotation"
ba.PROGRAM = PROGRAM  # bench_agent's helpers log under this program's name
DEV_SKIPPED = ba.DEV  # the runner's camera: no agent runs for it
FD_PER_CAMERA = 3.5  # a TLS socket and libmosquitto's socket pair, and some slack
QUICK_CAMERAS = 200
POLL_S = 1.0
SETTLE_S = 2  # quiet seconds between the fleet being up and the campaign
# The service's own defaults (services/key-rotation/README.md) where the stack
# runner shortens them for tests: the benchmark measures a deployment.
ROTATION_DEFAULTS = {
    "reconnects_max_per_s": "20", "send_max_per_s": "100", "ack_timeout_s": "120",
    "attempts_max": "5", "retry_backoff_s": "30", "retry_backoff_max_s": "600",
    "offline_recheck_s": "10", "scan_interval_ms": "1000", "send_interval_ms": "50",
}
HEALTH_INTERVAL_S = "60"  # agents and fleet-health alike (the stack's 10 s is for tests)
AGENT_SETS = ["video_source=synthetic:8000", "video_tick_ms=10000", "pre_event_s=0",
              "connect_timeout_ms=30000", f"health_interval_s={HEALTH_INTERVAL_S}"]

# the camera events counted; the group that matched names the kind
AGENT_LINE = re.compile(r"(sim-\d+): (?:(?P<online>online \(session )"
                        r"|(?P<failed>connection attempt \d+ failed)|(?P<offline>offline: )"
                        r"|(?P<promoted>identity: promoted)"
                        r"|(?P<dropped>identity: the new key and certificate were dropped))")
BROKER_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d): (.*)$")
# the plugin's refusal (mosquitto's "not authorised" line repeats it) and TLS failures
BROKER_REFUSALS = ("| auth | refused", "OpenSSL Error")
SERVICE_EVENT = re.compile(r"\b(rotation|identity) \| (\w+) \|")
SERVICE_DEVICE = re.compile(r" device=(\S+)")


# ---------------------------------------------------------------- logs

def agent_events(paths):
    """Every camera event of the agents' logs: (time s, kind, device), in
    time order."""
    events = []
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                m = AGENT_LINE.search(line)
                ts = ba.log_time(line) if m else None
                if ts is not None:
                    events.append((ts, m.lastgroup, m.group(1)))
    events.sort(key=lambda e: e[0])
    return events


def broker_events(path):
    """(time s, kind, line) of new sim-* clients and refusals; the broker's
    timestamps are local time to the second."""
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            m = BROKER_TS.match(line)
            if m is None:
                continue
            ts = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
            text = m.group(2)
            if text.startswith("New client connected") and " as sim-" in text:
                events.append((ts, "connected", text))
            elif any(r in text for r in BROKER_REFUSALS):
                events.append((ts, "refused", text.strip()))
    return events


def peak_in_window(times, window=1.0):
    """The most events in any interval of `window` seconds (sorted times)."""
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def per_second_peak(times):
    counts = collections.Counter(int(t) for t in times)
    return max(counts.values()) if counts else 0


def rates(agent_times, broker_times, start, end):
    """Connections in [start, end): count, mean, peaks (broker_times are
    already cut to whole seconds of the window)."""
    a = [t for t in agent_times if start <= t < end]
    span = max(end - start, 1e-3)
    return {"connections": len(a), "seconds": round(span, 2),
            "mean_per_s": round(len(a) / span, 1),
            "peak_1s_agents": peak_in_window(a),
            "peak_second_broker": per_second_peak(broker_times),
            "broker_connections": len(broker_times)}


# ---------------------------------------------------------------- the run

class Run:
    def __init__(self, args):
        self.args = args
        self.b = ba.Bench(args)
        self.ids = None
        self.logs = []
        self.ctl_conf = None

    def redis_cli(self, *argv):
        r = self.b.info["redis"]
        out = self.b.run(["redis-cli", "-h", r["host"], "-p", str(r["port"]), "--raw", *argv],
                         30, f"redis-cli {argv[0]}")
        return out.strip()

    def ctl(self, *argv, timeout=60):
        tool = self.b.binary("bodycamctl", os.path.join("tools", "bodycamctl"))
        out = self.b.run([tool, "--config", self.ctl_conf, "--json", *argv], timeout,
                         f"bodycamctl {' '.join(argv[:2])}")
        return json.loads(out)

    def start_stack(self):
        sets = dict(ROTATION_DEFAULTS)
        sets.update(item.split("=", 1) for item in self.args.rotation_set)
        os.environ["BODYCAM_KEY_ROTATION_SET"] = " ".join(f"{k}={v}" for k, v in sets.items())
        os.environ["BODYCAM_FLEET_HEALTH_SET"] = f"health_interval_s={HEALTH_INTERVAL_S}"
        ba.log(f"starting a stack in {self.b.dir}")
        self.b.stack_start()
        if "key_rotation" not in self.b.info:
            raise ba.Failure("the stack has no key-rotation service (bodycam-key-rotation built?)")
        self.ctl_conf = self.b.info["vault"]["ctl_config"]
        r = self.b.info["redis"]
        self.b.run([self.b.binary("bodycam-registry", "tools"), "--redis",
                    f"{r['host']}:{r['port']}", "status", DEV_SKIPPED, "revoked"], 30,
                   f"bodycam-registry status {DEV_SKIPPED} revoked")
        return sets

    def stack_files(self, n, processes):
        """One stack.json per process, each naming its slice of sim-00001..N."""
        with open(self.ids.stack_file(n)) as f:
            whole = json.load(f)
        names = list(whole["devices"])
        files = []
        for p in range(processes):
            part = names[p * n // processes:(p + 1) * n // processes]
            whole_p = dict(whole, devices={d: whole["devices"][d] for d in part})
            path = os.path.join(self.b.dir, f"rotation-stack-{p + 1}.json")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(whole_p, out)
            files.append((path, len(part)))
        return files

    def fleet_up(self, n, processes):
        """(1): identities, P processes, until every camera had its CONNACK."""
        self.ids = ba.Identities(self.b)
        ident_s = self.ids.ensure(n, timeout=120 + n / 10)
        agent = self.b.binary("bodycam-agent", "device-agent")
        spread = int(n / processes * self.args.spread_ms_per_camera)
        ba.log(f"(1) {n} cameras in {processes} process(es), first connections spread over "
               f"{spread} ms")
        states, offsets = [], []
        load = ba.loadavg()
        time.sleep(1 - time.time() % 1)  # whole broker seconds: the identities' probe stays out
        started = time.time()
        for p, (path, count) in enumerate(self.stack_files(n, processes)):
            argv = [agent, "--simulate", str(count), "--stack", path, "--report-s", "10",
                    "--connect-spread-ms", str(spread)]
            for item in AGENT_SETS:
                argv += ["--set", item]
            log_path = os.path.join(self.b.dir, "logs", f"rotation-sim-{p + 1}.log")
            self.b.spawn(f"sim-{p + 1}", argv, log_path)
            self.logs.append(log_path)
            states.append({"online": {}, "failed": 0, "offline": 0, "running": None})
            offsets.append(0)

        def all_online():
            for i, path in enumerate(self.logs):
                offsets[i] = ba.scan_log(path, offsets[i], states[i])
            dead = [name for name, proc in self.b.procs.items() if proc.poll() is not None]
            if dead:
                raise ba.Failure(f"{dead[0]} exited; see {self.b.dir}/logs")
            return sum(len(s["online"]) for s in states) >= n
        ba.wait_until(all_online, 60 + n * 0.05, f"{n} cameras online", interval=0.25)
        first = sorted(t for s in states for t in s["online"].values() if t is not None)
        return {"cameras": n, "processes": processes, "spread_ms": spread,
                "identities_s": ident_s, "started": started, "first": first[0],
                "last": first[-1], "all_online_s": round(first[-1] - started, 2),
                "loadavg": load}

    def wait_fleet_health(self, n):
        """The campaign hands out only cameras fleet-health has online."""
        started = time.monotonic()
        ba.wait_until(lambda: int(self.redis_cli("SCARD", "bodycam:cameras:online") or 0) >= n,
                      60 + n * 0.02, f"fleet-health to see {n} cameras online", interval=0.5)
        return round(time.monotonic() - started, 2)

    def campaign(self, n, pace):
        """(2): one identity campaign over the fleet, polled until done."""
        load = ba.loadavg()
        ba.log(f"(2) rotate-identity --all --pace {pace} ({n} cameras)")
        created = self.ctl("keys", "rotate-identity", "--all", "--pace", str(pace))["campaign"]
        cid = created["id"]
        limit = min(pace, int(self.sets["reconnects_max_per_s"]))
        deadline = time.monotonic() + 120 + 3 * n / max(limit, 1)
        samples = []
        while True:
            shown = self.ctl("keys", "show", cid)
            k = shown["campaign"]
            samples.append({"t": round(time.time(), 2), **{f: k[f] for f in (
                "done", "failed", "pending", "in_flight")}})
            if k["state"] in ("done", "aborted") or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        states = collections.Counter(d["state"] for d in shown["devices"])
        odd = [d for d in shown["devices"] if d["state"] != "done"][:10]
        return {"id": cid, "pace": pace, "state": k["state"], "total": k["total"],
                "done": k["done"], "failed": k["failed"], "device_states": dict(states),
                "not_done_examples": odd, "created_at": k["created_at"] / 1000.0,
                "started_at": (k["started_at"] or k["created_at"]) / 1000.0,
                "finished_at": k["finished_at"] / 1000.0 if k["finished_at"] else None,
                "timed_out": k["state"] not in ("done", "aborted"), "samples": samples,
                "loadavg": load}

    def service_counters(self):
        key = self.b.info["key_rotation"]["status_key"]
        flat = self.redis_cli("HGETALL", key).splitlines()
        return dict(zip(flat[0::2], flat[1::2]))


def service_log(path, start, end):
    """The key-rotation daemon's `rotation | X` and `identity | X` lines in
    the window: counts, the first warnings and errors, and when each
    camera's certificate was issued (its install sent)."""
    counts, quoted, issued = collections.Counter(), [], {}
    with open(path, errors="replace") as f:
        for line in f:
            ts = ba.log_time(line)
            m = SERVICE_EVENT.search(line)
            if ts is None or m is None or not start - 1 <= ts <= end + 1:
                continue
            event = f"{m.group(1)} {m.group(2)}"
            counts[event] += 1
            device = SERVICE_DEVICE.search(line)
            if event == "identity cert_issued" and device:
                issued.setdefault(device.group(1), ts)
            if (" WARN " in line or " ERROR " in line) and len(quoted) < 8:
                quoted.append(line.strip())
    return dict(counts), quoted, issued


def install_latency(issued, agents, start):
    """Per camera: its install sent (the service) -> its first CONNACK with
    the new certificate (the agent), in ms: p50, p95, max."""
    online = {}
    for ts, kind, dev in agents:
        if kind == "online" and ts >= issued.get(dev, math.inf):
            online.setdefault(dev, ts)
    lat = sorted(1000 * (online[d] - issued[d]) for d in online)
    if not lat:
        return {}
    return {"cameras": len(lat), "p50_ms": round(lat[len(lat) // 2]),
            "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))]),
            "max_ms": round(lat[-1])}


def window_figures(agents, broker, start, end, last_second_too=False):
    """Connections, failures and refusals in [start, end); the broker's
    whole-second lines from the second of start up to that of end,
    included only when last_second_too (the next phase starts in it)."""
    broker_end = int(end) + (1 if last_second_too else 0)

    def agent(kind):
        return [e for e in agents if e[1] == kind and start <= e[0] < end]

    def broker_lines(kind):
        return [e for e in broker if e[1] == kind and int(start) <= e[0] < broker_end]
    figures = rates([e[0] for e in agent("online")],
                    [e[0] for e in broker_lines("connected")], start, end)
    failed, refused = agent("failed"), broker_lines("refused")
    attempts = sorted(e[0] for e in agent("online") + failed)  # each one a TLS handshake
    figures.update({"attempts_peak_1s": peak_in_window(attempts),
                    "failed_attempts": len(failed), "broker_refusals": len(refused),
                    "cameras_failing": len({e[2] for e in failed}),
                    "max_failed_per_camera": max(
                        collections.Counter(e[2] for e in failed).values(), default=0),
                    "refusal_examples": [e[2] for e in refused[:5]],
                    "offline_lines": len(agent("offline"))})
    return figures


def analyse(run, up, camp, result):
    """Fleet up: [agents started, campaign created); the campaign: [its
    started_at, finished_at] (or now, past its deadline)."""
    agents = agent_events(run.logs)
    broker = broker_events(os.path.join(run.b.dir, "logs", "broker.log"))
    end = (camp["finished_at"] or time.time()) if camp else time.time()
    split = camp["created_at"] if camp else end
    connect = window_figures(agents, broker, up["started"], split)
    connect["first_to_last_s"] = round(up["last"] - up["first"], 2)
    connect["mean_first_to_last_per_s"] = round(
        (up["cameras"] - 1) / max(up["last"] - up["first"], 1e-3), 1)
    result["fleet_up"] = {**{k: v for k, v in up.items() if k not in ("started", "first",
                                                                       "last")}, **connect}
    if camp is None:
        return
    camp.update(window_figures(agents, broker, split, end + 0.001, last_second_too=True))
    promoted = {e[2] for e in agents if e[1] == "promoted" and e[0] >= split}
    dropped = [e[2] for e in agents if e[1] == "dropped" and e[0] >= split]
    counts, quoted, issued = service_log(
        os.path.join(run.b.dir, "logs", "key-rotation.log"), split, end)
    limit = min(camp["pace"], int(run.sets["reconnects_max_per_s"]))
    camp.update({"total_s": round(end - camp["started_at"], 2),
                 "ideal_s": round(camp["total"] / limit, 1),
                 "cameras_promoted": len(promoted), "identities_dropped": len(dropped),
                 "service_log": counts, "service_warnings": quoted,
                 "installs_peak_1s": peak_in_window(sorted(issued.values())),
                 "install_to_online": install_latency(issued, agents, split),
                 "service_counters": run.service_counters()})
    result["campaign"] = camp


# ---------------------------------------------------------------- output

def markdown(result):
    out = [f"# Identity rotation benchmark ({result['date']})\n",
           f"{result['cpus']} CPUs; load average {result['loadavg_start']} at the start, "
           f"{result['loadavg_end']} at the end (other builds and tests share the machine). "
           f"Key-rotation options: {result.get('rotation_options', {})}.\n"]
    up = result.get("fleet_up")
    camp = result.get("campaign")
    if up:
        out += ["| phase | cameras | seconds | connections | mean /s | peak /s (agents, any 1 s) "
                "| peak /s (broker, per second) | attempts incl. refused, peak /s | "
                "failed attempts | broker refusals | load avg |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        out.append(f"| fleet comes up ({up['processes']} process(es), spread "
                   f"{up['spread_ms']} ms): start → last first CONNACK (first → last: "
                   f"{up['first_to_last_s']} s) | {up['cameras']} | "
                   f"{up['all_online_s']} | {up['connections']} | "
                   f"{up['mean_first_to_last_per_s']} | {up['peak_1s_agents']} | "
                   f"{up['peak_second_broker']} | {up['attempts_peak_1s']} | "
                   f"{up['failed_attempts']} | "
                   f"{up['broker_refusals']} | {up['loadavg'][0]} |")
    if camp:
        out.append(f"| identity campaign {camp['id']} at --pace {camp['pace']}: started → "
                   f"finished | {camp['total']} | {camp['total_s']} | {camp['connections']} | "
                   f"{camp['mean_per_s']} | {camp['peak_1s_agents']} | "
                   f"{camp['peak_second_broker']} | {camp['attempts_peak_1s']} | "
                   f"{camp['failed_attempts']} | "
                   f"{camp['broker_refusals']} | {camp['loadavg'][0]} |")
        out += ["", "| campaign | state | done | failed | total s | ideal s (total / limit) | "
                "installs sent, peak /s | install → online ms p50 / p95 / max | cameras refused "
                "(most refusals of one) | timeouts | retries | CSRs refused |",
                "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
        c, lat = camp["service_counters"], camp["install_to_online"]
        out.append(f"| {camp['id']} | {camp['state']}{' (deadline)' if camp['timed_out'] else ''}"
                   f" | {camp['done']} | {camp['failed']} | {camp['total_s']} | "
                   f"{camp['ideal_s']} | {camp['installs_peak_1s']} | {lat.get('p50_ms', '-')} / "
                   f"{lat.get('p95_ms', '-')} / {lat.get('max_ms', '-')} | "
                   f"{camp['cameras_failing']} ({camp['max_failed_per_camera']}) | "
                   f"{c.get('timeouts', '?')} | {c.get('retried', '?')} | "
                   f"{c.get('csrs_refused', '?')} |")
        if camp["done"] != camp["total"] or camp["failed_attempts"] or camp["broker_refusals"]:
            out += ["", "Not to plan (quoted from the logs):", ""]
            out += [f"- device: `{json.dumps(d)}`" for d in camp["not_done_examples"]]
            out += [f"- broker: `{line}`" for line in camp["refusal_examples"]]
            out += [f"- key-rotation: `{line}`" for line in camp["service_warnings"]]
            out.append(f"- key-rotation log counts: {camp['service_log']}")
    out.append("\nseconds: (1) agent process start → the last camera's first CONNACK; (2) the "
               "campaign's started_at → finished_at. Connections: the agents' `online` lines in "
               "that window (a rotated camera reconnects once). mean /s: (1) over first → last "
               "CONNACK, (2) over the campaign. Peaks: the most `online` lines in any 1 s "
               "(millisecond timestamps) and the most broker `New client connected` lines in "
               "one calendar second.\n")
    if result.get("error"):
        out.append(f"**Stopped early:** {result['error']}\n")
    return "\n".join(out)


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = ba.fleet_bench_parser(PROGRAM, __doc__, f"{QUICK_CAMERAS} cameras")
    p.add_argument("--pace", type=int, default=20, help="campaign pace, cameras/s (default 20)")
    p.add_argument("--rotation-set", action="append", default=[], metavar="NAME=VALUE",
                   help="a key-rotation option (repeatable; after the service defaults)")
    ba.add_fleet_agent_args(p, ba.SIM_DATA_DEFAULT,
                            "the simulated cameras' data dirs (default /dev/shm)")
    args = p.parse_args(argv)
    if args.quick:
        args.cameras = QUICK_CAMERAS
    if args.cameras < 1 or args.pace < 1 or args.processes < 0:
        p.error("--cameras and --pace must be positive")
    if any("=" not in item for item in args.rotation_set):
        p.error("--rotation-set wants NAME=VALUE")
    args.no_plugin = False  # identity rotation is the plugin's registry at work
    return args


def processes_for(n, wanted):
    if wanted:
        return wanted
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(1, math.ceil(n * FD_PER_CAMERA / (ba.FD_HEADROOM * limit - 64)))


def measure(run, args, result):
    run.sets = run.start_stack()
    result["rotation_options"] = run.sets
    n = args.cameras
    up = run.fleet_up(n, processes_for(n, args.processes))
    up["fleet_health_s"] = run.wait_fleet_health(n)
    # the broker logs whole seconds: no second may hold lines of (1) and (2)
    time.sleep(SETTLE_S + 1 - time.time() % 1)
    camp = None
    try:
        camp = run.campaign(n, args.pace)
    finally:
        time.sleep(1.0)  # the last lines reach the logs
        analyse(run, up, camp, result)


def main(argv):
    return ba.run_stack_bench(parse_args(argv), Run, measure, markdown)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
