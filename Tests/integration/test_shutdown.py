"""SIGTERM: the broker ends within a bounded time even while a client never reads (both brokers), and Midge
says what it held only in memory (it has no persistence yet, so a restart loses it; Mosquitto without
persistence says nothing, so that test is Midge's only)."""
from __future__ import annotations

import time

import pytest

import mqttwire as w
from clients import raw_connected, raw_publish, raw_subscribe, unique
from conftest import BROKER_KIND, STOP_TIMEOUT


def terminate(b) -> float:
    """SIGTERM; the seconds until the process exited (fails past STOP_TIMEOUT)."""
    started = time.monotonic()
    b.proc.terminate()
    assert b.proc.wait(STOP_TIMEOUT) == 0
    return time.monotonic() - started


@pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Midge's shutdown line: Mosquitto logs no such count")
def test_shutdown_says_what_is_not_kept(broker):
    b = broker()
    offline = unique("offline")
    c = raw_connected(b, offline, clean=False)
    raw_subscribe(c, "lost/#", 1)
    c.send(w.disconnect())
    c.close()
    p = raw_connected(b, unique("pub"))
    for pid in range(1, 4):
        raw_publish(p, "lost/x", b"m%d" % pid, qos=1, pid=pid)
    raw_publish(p, "kept/r", b"retained", qos=1, pid=4, retain=True)
    terminate(b)
    p.close()
    assert ("Shutting down without persistence: 2 session(s) (1 connected) with 3 message(s) "
            "(3 queued at QoS 1/2, 0 at QoS 0, 0 in flight, 0 incoming QoS 2 not released) "
            "and 1 retained message(s) are not kept.") in b.log()


def test_sigterm_ends_the_broker_while_a_subscriber_never_reads(broker):
    b = broker()
    stuck = raw_connected(b, unique("stuck"))
    raw_subscribe(stuck, "flood", 0)  # and never read again: its socket fills, then the broker's queue
    p = raw_connected(b, unique("flood"))
    payload = b"x" * 60_000
    for _ in range(200):  # 12 MB: more than both socket buffers hold
        p.send(w.publish("flood", payload))
    raw_publish(p, "flood/done", b"", qos=1, pid=1)  # every PUBLISH before it was read
    assert terminate(b) < STOP_TIMEOUT
    stuck.close()
    p.close()
