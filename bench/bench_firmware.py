#!/usr/bin/python3
"""bench_firmware - delivery of a firmware image to a fleet of simulated
cameras through the broker's retained chunk topics, and the broker's memory
while it happens (issue 8).

  bench_firmware.py [--build-dir D] [--json FILE] [--quick | --cameras N]
                    [--image-mib M] [--processes P] [--sim-data-dir DIR] [--keep]

One run, on a stack of its own (`tools/bodycam-stack up TMPDIR --cameras 1
--no-agents`, plugin on, the firmware-rollout service offering up to
OFFER_MAX_PER_S cameras a second):

 (1) the fleet comes up as in bench_rotation.py: N identities sim-00001..
     in the PKI and the registry, P `bodycam-agent --simulate` processes
     (each camera with the fleet's firmware public key), until fleet-health
     has every camera online. cam-001 (the runner's camera without an agent)
     is revoked so that `--all` means the simulated fleet.
 (2) the baseline, in the same run: an M MiB image (version 1.1.0) rolled out
     to ONE camera alone: offer -> installed (fetched chunk by chunk from
     the retained topics, written, SHA-256 and signature checked) is the
     single-camera delivery time, size / time its rate.
 (3) the fleet: another M MiB image (1.2.0) to every camera in one wave
     (`bodycamctl firmware start 1.2.0 --all --waves 100`). Sampled every
     0.5 s from the rollout's counters in Redis: when 50 %, 90 % and all
     cameras had the image (installed or beyond), when all were updated
     (restarted into it and confirmed); the broker's RSS (VmRSS) and CPU
     before and during the delivery.

Figures: delivery time to the fleet, aggregate delivered MB/s and its ratio
to the single-camera rate (how well the broker shares one retained image
among many subscribers), the broker's peak RSS above its idle RSS with the
fleet connected (the image is held once as retained messages; per camera only
its window of chunks), per camera. Markdown on stdout (progress on stderr),
everything as JSON (--json). Never asserts on time; every wait has a
deadline; what it started is stopped by PID and the stack with `bodycam-stack
down`. Defaults: 1,000 cameras, 8 MiB; --quick: 100 cameras, 2 MiB. The
cameras' data dirs are on disk under the temp dir (each camera stores the
image: N x M MiB), unless --sim-data-dir says otherwise.
Exit status: 0 done, 1 failure (what was measured is printed), 2 usage.
"""

import json
import os
import sys
import time

import bench_agent as ba
import bench_rotation as br  # the fleet of simulated cameras (Run.fleet_up, processes_for)

PROGRAM = "bench_firmware"
QUICK_CAMERAS = 100
OFFER_MAX_PER_S = 500
SAMPLE_S = 0.5
# a camera is offered only once fleet-health knows its battery (its first
# health report): every 10 s, as issue 12's realistic traffic
HEALTH_INTERVAL_S = 10
DELIVERED = ("installed", "updated")
UNFINISHED = ("pending", "offered", "downloading", "installed")


class FwRun(br.Run):
    """bench_rotation's fleet, with the firmware settings on every camera."""

    def start_stack(self):
        os.environ["BODYCAM_FIRMWARE_ROLLOUT_SET"] = " ".join([
            f"offer_max_per_s={OFFER_MAX_PER_S}", "offer_interval_ms=50",
            "scan_interval_ms=250"])
        os.environ["BODYCAM_FLEET_HEALTH_SET"] = f"health_interval_s={HEALTH_INTERVAL_S}"
        ba.log(f"starting a stack in {self.b.dir}")
        self.b.stack_start()
        if "firmware_rollout" not in self.b.info:
            raise ba.Failure("the stack has no firmware-rollout service (built?)")
        self.ctl_conf = self.b.info["vault"]["ctl_config"]
        r = self.b.info["redis"]
        self.b.run([self.b.binary("bodycam-registry", "tools"), "--redis",
                    f"{r['host']}:{r['port']}", "status", br.DEV_SKIPPED, "revoked"], 30,
                   f"bodycam-registry status {br.DEV_SKIPPED} revoked")
        pub = self.b.info["keys"]["firmware"]["public"]
        # read by Run.fleet_up for every agent process
        br.AGENT_SETS = br.AGENT_SETS + [f"firmware_pubkey={pub}", "fw_confirm_s=2",
                                         "fw_trial_timeout_s=600", "fw_chunk_timeout_s=60",
                                         f"health_interval_s={HEALTH_INTERVAL_S}"]

    def image(self, version, mib):
        path = os.path.join(self.b.dir, f"fw-{version}.img")
        head = b"BODYCAM-FW 1\n" + json.dumps({"version": version, "selftest": "pass"}).encode()
        with open(path, "wb") as f:
            f.write(head + b"\n")
            f.write(os.urandom(mib * 1024 * 1024 - len(head) - 1))
        ba.log(f"publishing {version} ({mib} MiB)")
        self.ctl("firmware", "publish", path, "--version", version, timeout=300)
        return mib * 1024 * 1024

    def rollout(self, version, *target):
        out = self.ctl("firmware", "start", version, *target, "--waves", "100", "--wait", "0",
                       "--success-pct", "100", "--camera-timeout", "3600")
        return out.get("rollout") or out["id"]

    def counters(self, rid):
        flat = self.redis_cli("HGETALL", f"bodycam:rollout:{rid}").split("\n")
        h = dict(zip(flat[0::2], flat[1::2]))
        return {k: int(h.get(k) or 0) for k in (*UNFINISHED, "updated", "failed",
                                                   "rolled_back", "total")}, h.get("state")


def broker_sample(b):
    pid = b.broker_pid()
    st = ba.proc_status(pid)
    agents = sum(ba.proc_cpu_ticks(p.pid) for p in b.procs.values() if p.poll() is None)
    return {"t": time.monotonic(), "rss_kb": st.get("VmRSS", 0),
            "cpu_ticks": ba.proc_cpu_ticks(pid), "agent_ticks": agents}


def follow(run, rid, n, timeout, interval=SAMPLE_S):
    """Samples the rollout and the broker until every camera is final."""
    started = time.monotonic()
    marks, samples = {}, []
    while True:
        c, state = run.counters(rid)
        s = broker_sample(run.b)
        samples.append(s)
        have = sum(c[k] for k in DELIVERED) + c["rolled_back"]
        t = round(s["t"] - started, 2)
        for frac, name in ((0.5, "p50_s"), (0.9, "p90_s"), (1.0, "all_delivered_s")):
            if name not in marks and have >= frac * n:
                marks[name] = t
        if "all_updated_s" not in marks and c["updated"] >= n:
            marks["all_updated_s"] = t
        if state not in ("running",) or sum(c[k] for k in UNFINISHED) == 0:
            marks.setdefault("finished_s", t)
            return marks, samples, c, state
        if time.monotonic() - started > timeout:
            raise ba.Failure(f"rollout {rid} not finished after {timeout} s: {c} ({state})")
        time.sleep(interval)


def cpu_pct(samples, key="cpu_ticks"):
    if len(samples) < 2:
        return 0.0
    dt = samples[-1]["t"] - samples[0]["t"]
    ticks = samples[-1][key] - samples[0][key]
    return round(100.0 * ticks / ba.CLK_TCK / dt, 1) if dt > 0 else 0.0


def measure(run, args, result):
    run.start_stack()
    n = args.cameras
    up = run.fleet_up(n, br.processes_for(n, args.processes))
    up["fleet_health_s"] = run.wait_fleet_health(n)
    time.sleep(HEALTH_INTERVAL_S + 2)  # every camera's first health report (its battery)
    result["fleet"] = {k: v for k, v in up.items() if k not in ("started", "first", "last")}
    idle = broker_sample(run.b)
    result["broker_idle_rss_kb"] = idle["rss_kb"]

    size = run.image("1.1.0", args.image_mib)
    ba.log("(2) baseline: the image to one camera")
    rid = run.rollout("1.1.0", "--camera", ba.sim_id(1))
    marks, samples, c, state = follow(run, rid, 1, 600, interval=0.05)
    single_s = marks.get("all_delivered_s")
    result["baseline"] = {"rollout": rid, "state": state, "counters": c, **marks,
                          "mb_s": round(size / 1e6 / single_s, 1) if single_s else None}

    size = run.image("1.2.0", args.image_mib)
    ba.log(f"(3) the image to {n} cameras")
    before = broker_sample(run.b)
    rid = run.rollout("1.2.0", "--all")
    marks, samples, c, state = follow(run, rid, n, 600 + n * 2)
    deliver_s = marks.get("all_delivered_s")
    peak = max(s["rss_kb"] for s in samples)
    fleet = {"rollout": rid, "state": state, "counters": c, **marks,
             "broker_rss_before_kb": before["rss_kb"], "broker_rss_peak_kb": peak,
             "broker_rss_growth_kb": peak - before["rss_kb"],
             "broker_cpu_pct": cpu_pct([before] + samples),
             "agents_cpu_pct": cpu_pct([before] + samples, "agent_ticks")}
    if deliver_s:
        fleet["aggregate_mb_s"] = round(n * size / 1e6 / deliver_s, 1)
        base = result["baseline"].get("mb_s")
        if base:
            fleet["ratio_to_single"] = round(fleet["aggregate_mb_s"] / base, 2)
    fleet["rss_growth_per_camera_kb"] = round((peak - before["rss_kb"]) / n, 1)
    result["rollout"] = fleet
    result["image_bytes"] = size


def markdown(result):
    out = [f"## bench_firmware — {result.get('date')} ({result.get('cpus')} CPUs)", ""]
    f, b, r = result.get("fleet", {}), result.get("baseline", {}), result.get("rollout", {})
    mib = result.get("image_bytes", 0) / 1048576
    out += ["| figure | value |", "|---|---:|",
            f"| cameras (processes) | {f.get('cameras')} ({f.get('processes')}) |",
            f"| image | {mib:.0f} MiB |",
            f"| baseline: one camera, offer → image verified | {b.get('all_delivered_s')} s "
            f"({b.get('mb_s')} MB/s) |",
            f"| fleet: 50 % / 90 % / all cameras have the image | {r.get('p50_s')} / "
            f"{r.get('p90_s')} / {r.get('all_delivered_s')} s |",
            f"| fleet: all updated (restarted, confirmed) | {r.get('all_updated_s')} s |",
            f"| aggregate delivery | {r.get('aggregate_mb_s')} MB/s "
            f"(× {r.get('ratio_to_single')} the single camera) |",
            f"| broker RSS idle with the fleet → peak | {r.get('broker_rss_before_kb')} → "
            f"{r.get('broker_rss_peak_kb')} KB (+{r.get('rss_growth_per_camera_kb')} KB per "
            "camera) |",
            f"| CPU during the rollout: broker / simulated cameras | {r.get('broker_cpu_pct')} % "
            f"/ {r.get('agents_cpu_pct')} % |",
            f"| final counters | {r.get('counters')} ({r.get('state')}) |"]
    if "error" in result:
        out += ["", f"**error**: {result['error']}"]
    return "\n".join(out)


def parse_args(argv):
    p = ba.fleet_bench_parser(PROGRAM, __doc__, f"{QUICK_CAMERAS} cameras, 2 MiB")
    p.add_argument("--image-mib", type=int, default=8, help="image size in MiB (default 8)")
    ba.add_fleet_agent_args(p, None, "the simulated cameras' data dirs (default: the temp dir, "
                            "on disk)")
    args = p.parse_args(argv)
    if args.quick:
        args.cameras, args.image_mib = QUICK_CAMERAS, 2
    if args.cameras < 1 or args.image_mib < 1 or args.processes < 0:
        p.error("--cameras and --image-mib must be positive")
    args.no_plugin = False
    args.rotation_set = []
    return args


def main(argv):
    return ba.run_stack_bench(parse_args(argv), FwRun, measure, markdown)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
