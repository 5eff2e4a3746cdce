"""gateway-multi: several gateways side by side. The shared subscription
gives each camera message to one of them (each lands once, both take part);
the outbox group gives each entry to one of them (each published once); a
gateway that dies has its outbox entries claimed by another, and the camera
messages the broker queued for it arrive when it comes back."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bodycam_test import check, redis_command, run_checks, wait_for  # noqa: E402
import gateway_helpers as gh  # noqa: E402

CMD = "bodycam/v1/devices/cam-002/cmd/config"


def publish_events(stack, dev, seqs):
    with stack.connected(stack.device_client(dev)) as cam:
        for seq in seqs:
            cam.publish(gh.topic(dev, "event"), gh.dumps(gh.event_msg(dev, seq)))


def check_each_message_once(stack):
    with gh.ExtraGateway(stack, "2"):
        s1 = int(gh.gateway_status(stack, "1").get("stored", 0))
        s2 = int(gh.gateway_status(stack, "2").get("stored", 0))
        publish_events(stack, "cam-001", range(1, 201))
        publish_events(stack, "cam-002", range(1, 201))
        for dev in ("cam-001", "cam-002"):
            wait_for(lambda d=dev: len(set(gh.seqs_in(stack, "event", d))) >= 200, 20,
                     f"all events of {dev}")
        time.sleep(0.5)  # a duplicate would show up by now
        for dev in ("cam-001", "cam-002"):
            seqs = gh.seqs_in(stack, "event", dev)
            check(sorted(seqs) == list(range(1, 201)),
                  f"{dev}: {len(seqs)} entries for 200 events ({len(set(seqs))} distinct)")

        def both_took_part():
            d1 = int(gh.gateway_status(stack, "1").get("stored", 0)) - s1
            d2 = int(gh.gateway_status(stack, "2").get("stored", 0)) - s2
            return d1 > 0 and d2 > 0 and d1 + d2 >= 400
        wait_for(both_took_part, 10, "both gateways to have stored a share")


def check_outbox_entry_published_once(stack):
    with gh.ExtraGateway(stack, "3"), stack.connected(stack.device_client("cam-002")) as cam:
        cam.subscribe("bodycam/v1/devices/cam-002/cmd/+")
        wanted = [f'{{"n":{i}}}' for i in range(100)]
        for p in wanted:
            gh.outbox_add(stack, CMD, p)
        wait_for(lambda: len(cam.received(CMD)) >= 100, 20, "every entry at the camera")
        wait_for(lambda: gh.pending_count(stack) == 0, 10, "all acknowledged")
        time.sleep(0.5)
        got = [m.payload.decode() for m in cam.received(CMD)]
        check(sorted(got) == sorted(wanted), f"{len(got)} deliveries of 100 entries")
        consumers = redis_command(gh.redis_port(stack), "XINFO", "CONSUMERS", gh.OUTBOX,
                                  "gateway")
        names = [dict(zip(c[0::2], c[1::2]))["name"] for c in consumers]
        check("gateway-1" in names and "gateway-3" in names, f"consumers: {names}")


def check_dead_gateways_outbox_is_claimed(stack):
    # The stack's gateway is stopped so that it cannot take the entries; a
    # consumer "gateway-dead" reads them and never acknowledges (it died).
    gh.runner(stack, "kill", stack.dir, "gateway", "--signal", "TERM")
    wanted = [f'{{"orphan":{i}}}' for i in range(5)]
    for p in wanted:
        gh.outbox_add(stack, CMD, p)
    redis_command(gh.redis_port(stack), "XREADGROUP", "GROUP", "gateway", "gateway-dead",
                  "COUNT", "100", "STREAMS", gh.OUTBOX, ">")
    check(gh.pending_count(stack) == 5, "the dead consumer holds the 5 entries")
    try:
        with stack.connected(stack.device_client("cam-002")) as cam:
            cam.subscribe("bodycam/v1/devices/cam-002/cmd/+")
            with gh.ExtraGateway(stack, "4", ["outbox_claim_idle_ms=1000",
                                              "outbox_claim_interval_ms=200",
                                              "leave_group_on_stop=true"]):
                wait_for(lambda: sorted(m.payload.decode() for m in cam.received(CMD))
                         == sorted(wanted), 20, "the claimed entries at the camera")
                wait_for(lambda: gh.pending_count(stack) == 0, 10, "the claimed entries acked")
    finally:
        gh.restart(stack, "gateway")


def check_a_gateway_dies_and_comes_back(stack):
    extra = gh.ExtraGateway(stack, "5")
    try:
        publish_events(stack, "cam-001", range(501, 601))
        extra.kill(signal.SIGKILL)
        # half of these go to gateway-5's session, queued by the broker
        publish_events(stack, "cam-001", range(601, 701))
        wait_for(lambda: set(range(501, 601)) <= set(gh.seqs_in(stack, "event", "cam-001")), 20,
                 "the events published before the kill")
    finally:
        extra.kill(signal.SIGKILL)
    with gh.ExtraGateway(stack, "5"):
        wait_for(lambda: set(range(501, 701)) <= set(gh.seqs_in(stack, "event", "cam-001")), 20,
                 "every event once gateway-5 is back")
    seqs = [s for s in gh.seqs_in(stack, "event", "cam-001") if 501 <= s <= 700]
    print(f"# 200 distinct, {len(seqs) - len(set(seqs))} duplicate(s)", flush=True)


if __name__ == "__main__":
    sys.exit(run_checks([
        ("two gateways: each camera message lands once, both take part", check_each_message_once),
        ("two gateways: each outbox entry is published once", check_outbox_entry_published_once),
        ("a dead gateway's outbox entries are claimed by another",
         check_dead_gateways_outbox_is_claimed),
        ("a gateway killed among two: nothing lost once it is back",
         check_a_gateway_dies_and_comes_back),
    ], cameras=2, extra_args=["--no-agents"], plugin=False))
    # Without the broker plugin: these tests flood and send invalid payloads on
    # purpose to exercise the gateway's own checks, which the plugin (rate
    # limits, validation) would otherwise stop at the broker first.
