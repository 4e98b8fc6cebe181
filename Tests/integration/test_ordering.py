"""Ordering across connections: what MQTT does not promise, measured.

Two clients, both holding CONNACK: one writes SUBSCRIBE, the other at once (no wait for SUBACK) writes a
PUBLISH to that topic. Whether the subscriber gets it is a race between the two connections, which MQTT leaves
open; a broker should still put a subscription in force about as fast as Mosquitto does (the comparison
script, scripts/order-race, prints both brokers' rates side by side). The bound here is loose (5% of 200
trials) so that two busy cores do not make it fail, and a broker gets three runs, each freshly started: where
the kernel happens to put Midge's two event-loop threads decides a whole run (rarely, nearly every trial of a
run misses: the subscriber's loop waits on the other, idle CPU while the publisher's runs at once).
"""
import pytest

import mqttwire as w
from clients import raw_connected, unique
from conftest import BROKER_KIND

TRIALS = 200
MAX_MISSES = TRIALS * 5 // 100


def misses(b, trials: int = TRIALS) -> int:
    """Trials in which the PUBLISH written right after the SUBSCRIBE missed it. A marker published after the
    SUBACK tells a miss without a timeout: one publisher's messages keep their order."""
    sub, pub = raw_connected(b, unique("race-sub")), raw_connected(b, unique("race-pub"))
    base = unique("race")
    missed = 0
    try:
        for i in range(trials):
            topic = f"{base}/{i}"
            sub.send(w.subscribe(i + 1, (topic, 0)))
            pub.send(w.publish(topic, b"first"))
            first_seen = False
            while (p := sub.recv_packet()).ptype != w.SUBACK:
                assert p.ptype == w.PUBLISH
                first_seen = True  # before the SUBACK: allowed, and a hit
            pub.send(w.publish(topic, b"marker"))
            while (payload := sub.expect(w.PUBLISH).publish_fields()["payload"]) != b"marker":
                assert payload == b"first"
                first_seen = True
            missed += not first_seen
    finally:
        sub.close()
        pub.close()
    return missed


@pytest.mark.xfail(BROKER_KIND == "midge", strict=False,
                   reason="Midge misses 5-30% when the two connections are on different event loops: the kernel "
                          "runs the publisher's loop thread first (see README, Ordering race)")
@pytest.mark.parametrize("acl", [False, True], ids=["no-acl", "acl_file"])
def test_a_subscription_takes_effect_before_a_publish_written_just_after_it(broker, tmp_path, acl):
    extra = ""
    if acl:
        path = tmp_path / "acl"
        path.write_text("topic readwrite #\n")
        # `user root`: Mosquitto would drop privileges before reading the file (pytest's tmp dir is 0700)
        extra = f"user root\nacl_file {path}\n"
    runs = []
    for _ in range(3):
        b = broker(extra=extra)
        runs.append(misses(b))
        b.stop()
        if runs[-1] <= MAX_MISSES:
            return
    pytest.fail(f"PUBLISHes that missed the SUBSCRIBE written just before, of {TRIALS}, in each run: {runs}")
