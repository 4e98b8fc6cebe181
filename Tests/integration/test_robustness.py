"""A client that misbehaves or floods never takes the broker away from the others."""
import socket

import pytest

import mqttwire as w
from conftest import BROKER_KIND
from clients import Canary, raw, raw_connected, raw_subscribe, unique


@pytest.mark.skipif(BROKER_KIND == "mosquitto",
                    reason="mosquitto 2.0.11 counts the fixture's readiness probe against max_connections and then "
                           "leaves a connection over the limit open without CONNACK")
def test_max_connections_closes_extra_connections_without_connack(broker):
    """As mosquitto does when its count is right, a listener at max_connections accepts the TCP connection
    and closes it at once, without CONNACK."""
    b = broker(extra="max_connections 2")
    # The fixture's readiness probe may still hold a slot for a moment after it closed.
    first = _connect_when_a_slot_is_free(b, "one")
    second = _connect_when_a_slot_is_free(b, "two")
    third = raw(b)
    try:
        third.send(w.connect(unique("three")))
    except OSError:
        pass  # already closed: also what we assert below
    assert third.wait_closed() == []
    # a slot frees when a client leaves
    second.send(w.disconnect())
    second.wait_closed()
    fourth = _connect_when_a_slot_is_free(b, "four")
    first.close()
    fourth.close()


def _connect_when_a_slot_is_free(b, name, attempts=50):
    """The broker frees a slot when it has processed a close, asynchronously: retry a bounded number of
    times, each attempt an event (the broker's close or CONNACK), never a sleep."""
    for _ in range(attempts):
        c = raw(b)
        try:
            ack = c.connect(unique(name))
            assert ack.body[1] == 0
            return c
        except (w.Closed, OSError):
            c.close()
    raise AssertionError(f"no connection slot became free for {name}")


def test_client_that_stops_reading_does_not_block_others(broker):
    """A subscriber that never reads while a publisher floods its topic: the publisher finishes, a third
    client keeps publishing and receiving throughout, and the broker stays responsive."""
    b = broker(extra="max_queued_messages 100")
    topic = unique("flood")
    stuck = raw(b)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(unique("stuck"))
    raw_subscribe(stuck, topic, 0)

    canary = Canary(b)
    pub = raw_connected(b, unique("pub"))
    payload = b"x" * 4096
    chunk = b"".join(w.publish(topic, payload) for _ in range(100))
    for round_ in range(50):  # 5,000 messages, 20 MB, far more than the stuck socket can hold
        pub.send(chunk)
        if round_ % 10 == 0:
            canary.roundtrip()
    # the publisher's connection is still served: a PINGREQ is answered
    pub.send(w.pingreq())
    assert pub.expect(w.PINGRESP).ptype == w.PINGRESP
    canary.roundtrip()
    # and the stuck client, once it reads, still gets well-formed packets
    assert stuck.expect(w.PUBLISH, 10).publish_fields()["payload"] == payload
    for c in (stuck, pub):
        c.close()
    canary.close()
