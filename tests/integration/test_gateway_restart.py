"""gateway-restart: no camera message is lost when the gateway is killed
with SIGKILL and restarted, when Redis is restarted (AOF) under load, or
when the broker restarts while the gateway is away. Duplicates are allowed
(README.md, "Guarantees": at least once); the checks count distinct seqs
and print how many duplicates there were."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, run_checks, wait_for  # noqa: E402
import gateway_helpers as gh  # noqa: E402


class Publisher(threading.Thread):
    """Publishes events seq first..first+n-1 of dev at QoS 1, each waiting
    for its PUBACK from the broker (which does not wait for the gateway)."""

    def __init__(self, stack, dev, first, n, interval=0.01):
        super().__init__(daemon=True)
        self.stack, self.dev, self.first, self.n, self.interval = stack, dev, first, n, interval
        self.sent = 0
        self.error = None

    def run(self):
        try:
            with self.stack.connected(self.stack.device_client(self.dev)) as cam:
                for seq in range(self.first, self.first + self.n):
                    cam.publish(gh.topic(self.dev, "event"), gh.dumps(gh.event_msg(self.dev, seq)))
                    self.sent += 1
                    time.sleep(self.interval)
        except Exception as e:  # noqa: BLE001 - reported by the check
            self.error = e


def expect_all(stack, dev, first, n, what):
    want = set(range(first, first + n))

    def arrived():
        return want <= set(gh.seqs_in(stack, "event", dev))
    try:
        wait_for(arrived, 30, what)
    except Exception:
        got = set(gh.seqs_in(stack, "event", dev))
        missing = sorted(want - got)
        check(False, f"{what}: {len(missing)} of {n} missing, e.g. {missing[:10]}")
    seqs = [s for s in gh.seqs_in(stack, "event", dev) if s in want]
    dups = len(seqs) - len(set(seqs))
    print(f"# {what}: {n} distinct, {dups} duplicate(s)", flush=True)


def check_sigkill_during_load(stack):
    pub = Publisher(stack, "cam-001", 1, 300)
    pub.start()
    wait_for(lambda: pub.sent >= 60, 20, "publishing to be under way")
    gh.kill_gateway(stack)
    sent_at_kill = pub.sent
    wait_for(lambda: pub.sent >= sent_at_kill + 60, 20, "publishing while the gateway is dead")
    gh.restart(stack, "gateway")
    pub.join(60)
    check(pub.error is None and pub.sent == 300, f"publisher: {pub.error}, sent {pub.sent}")
    expect_all(stack, "cam-001", 1, 300, "events across a SIGKILL of the gateway")


def check_redis_restart_under_load(stack):
    before = len(gh.seqs_in(stack, "event", "cam-001"))
    pub = Publisher(stack, "cam-002", 1, 300)
    pub.start()
    wait_for(lambda: pub.sent >= 60, 20, "publishing to be under way")
    gh.runner(stack, "kill", stack.dir, "redis", "--signal", "TERM")
    sent_at_stop = pub.sent
    wait_for(lambda: pub.sent >= sent_at_stop + 60, 20, "publishing while Redis is down")
    gh.restart(stack, "redis")
    pub.join(60)
    check(pub.error is None and pub.sent == 300, f"publisher: {pub.error}, sent {pub.sent}")
    expect_all(stack, "cam-002", 1, 300, "events across a Redis restart")
    # what was stored before the restart is still there (AOF)
    check(len(gh.seqs_in(stack, "event", "cam-001")) == before,
          "entries stored before the Redis restart are gone")
    wait_for(lambda: gh.gateway_status(stack).get("state") == "online", 20,
             "the gateway online again")


def check_redis_hung_then_killed(stack):
    """The sharpest case of "PUBACK only after XADD": Redis stops answering
    (SIGSTOP) while messages arrive, then dies (SIGKILL) with their XADDs
    unanswered. A gateway that acknowledged a message before storing it
    loses it here; this one must not."""
    publish_events = [(gh.topic("cam-002", "event"), gh.event_msg("cam-002", seq))
                      for seq in range(2001, 2011)]
    with stack.connected(stack.device_client("cam-002")) as cam:
        gh.publish_all(cam, publish_events)
        wait_for(lambda: set(range(2001, 2011)) <= set(gh.seqs_in(stack, "event", "cam-002")),
                 20, "the first events stored")
        time.sleep(1.5)  # appendfsync everysec: what Redis answered is on disk now
        gh.runner(stack, "kill", stack.dir, "redis", "--signal", "STOP")
        try:
            gh.publish_all(cam, [(gh.topic("cam-002", "event"), gh.event_msg("cam-002", seq))
                                 for seq in range(2011, 2021)])
            # the gateway's XADD times out (redis_timeout_ms) and it drops
            # the session without PUBACKs
            wait_for(lambda: "could not be stored" in open(os.path.join(
                stack.dir, "logs", "gateway.log"), errors="replace").read(), 20,
                "the gateway to give up on the hung Redis")
        finally:
            gh.runner(stack, "kill", stack.dir, "redis", "--signal", "KILL")
    gh.restart(stack, "redis")
    expect_all(stack, "cam-002", 2001, 20, "events across a hung and killed Redis")


def check_broker_restart_while_gateway_away(stack):
    gh.kill_gateway(stack)
    with stack.connected(stack.device_client("cam-001")) as cam:
        for seq in range(1001, 1101):
            cam.publish(gh.topic("cam-001", "event"), gh.dumps(gh.event_msg("cam-001", seq)))
    # the broker keeps them in the gateway's persistent session, also
    # across its own clean restart
    gh.restart(stack, "mosquitto")
    gh.restart(stack, "gateway")
    expect_all(stack, "cam-001", 1001, 100, "events queued for the gateway across a broker "
                                            "restart")


if __name__ == "__main__":
    sys.exit(run_checks([
        ("gateway SIGKILL + restart under load: no event lost", check_sigkill_during_load),
        ("Redis restart (AOF) under load: no event lost", check_redis_restart_under_load),
        ("Redis hung (SIGSTOP) then killed: no event lost", check_redis_hung_then_killed),
        ("broker restart while the gateway is away: no event lost",
         check_broker_restart_while_gateway_away),
    ], cameras=2, extra_args=["--no-agents"], plugin=False))
    # Without the broker plugin: these tests flood and send invalid payloads on
    # purpose to exercise the gateway's own checks, which the plugin (rate
    # limits, validation) would otherwise stop at the broker first.
