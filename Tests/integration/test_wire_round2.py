"""Drop-in on the wire, round two (issue 16): the cases where Midge answered otherwise than the MQTT
specification or than Mosquitto 2.0.11, each as raw bytes and the answer expected.

Single-connection cases are Scenarios, run as in test_wire_compat (against the broker under test with
mosquitto's recorded transcript as the spec, and side by side with a live mosquitto). Cases that need
several connections or time to pass are plain tests that run against either broker (BROKER=mosquitto too).
"""
import time

import pytest

import mqttwire as w
from clients import unique
from conftest import BROKER_KIND
from test_wire_compat import ALIVE, CLOSED, NEW, RECV, V5_CONNACK, Scenario, closed, run, send

C5 = w.connect("wire5", version=w.V5)
C311 = w.connect("wire311")


def levels(count: int) -> str:
    return "/".join(["l"] * count)


def publish_with_levels(count: int, version: int) -> bytes:
    return w.publish(levels(count), b"x", version=version)


def v5_subscribe_props(pid: int, filt: str, props: bytes) -> bytes:
    return w.subscribe(pid, (filt, 0), version=w.V5, properties=props)


def v5_unsubscribe_props(pid: int, filt: str, props: bytes) -> bytes:
    return w.packet(w.UNSUBSCRIBE, 0x02, w.u16(pid) + props + w.mstr(filt))


# A 5.0 CONNECT asking for packets of at most `size` bytes.
def c5_max_packet(size: int, client_id: str = "small") -> bytes:
    return w.connect(client_id, version=w.V5, properties=w.props((w.PROP_MAXIMUM_PACKET_SIZE, size)))


SCENARIOS = [
    # 1. MQTT 3.1 has no session-present flag: the byte is reserved, 0, even for a resumed session.
    Scenario("31-connack-no-session-present",
             [send(w.connect("r31", version=w.V31, clean=False)), RECV, send(w.disconnect()), CLOSED, NEW,
              send(w.connect("r31", version=w.V31, clean=False)), RECV],
             ["20 02 00 00", closed(), "20 02 00 00"]),
    # 3. Nothing larger than the client's Maximum Packet Size goes out (MQTT-3.1.2-24): a CONNACK (11 bytes)
    # to a client taking 8 closes the connection instead, as Mosquitto does; so does a SUBACK of 17 bytes to a
    # client taking 14, which Mosquitto sends anyway (README, "Where Midge differs").
    Scenario("v5-connack-over-client-maximum", [send(c5_max_packet(8)), CLOSED], [closed()]),
    Scenario("v5-suback-over-client-maximum",
             [send(c5_max_packet(14)), RECV,
              send(w.subscribe(1, *[(f"s/{i}", 0) for i in range(12)], version=w.V5)), CLOSED],
             [V5_CONNACK, "still open"],  # Mosquitto sends the SUBACK and stays open
             midge=[V5_CONNACK, closed()]),
    # 4. A property SUBSCRIBE / UNSUBSCRIBE may not carry: malformed (0x81).
    Scenario("v5-subscribe-disallowed-property",
             [send(C5), RECV, send(v5_subscribe_props(1, "a", w.props((0x01, 1)))), CLOSED],
             [V5_CONNACK, closed("e0 01 81")]),
    Scenario("v5-unsubscribe-disallowed-property",
             [send(C5), RECV, send(v5_unsubscribe_props(1, "a", w.props((0x1F, "why")))), CLOSED],
             [V5_CONNACK, closed("e0 01 81")]),
    # 7. More than 200 `/` in a topic (Mosquitto's TOPIC_HIERARCHY_LIMIT: 201 levels pass, 202 do not).
    Scenario("311-publish-202-levels", [send(C311), RECV, send(publish_with_levels(202, w.V311)), CLOSED],
             ["20 02 00 00", closed()]),
    Scenario("311-publish-201-levels", [send(C311), RECV, send(publish_with_levels(201, w.V311)), ALIVE],
             ["20 02 00 00", "alive"]),
    Scenario("v5-publish-202-levels", [send(C5), RECV, send(publish_with_levels(202, w.V5)), CLOSED],
             [V5_CONNACK, closed("e0 01 82")]),
    Scenario("v5-subscribe-202-levels",
             [send(C5), RECV, send(w.subscribe(1, (levels(202), 0), version=w.V5)), CLOSED],
             [V5_CONNACK, closed("e0 01 81")]),
    Scenario("311-subscribe-202-levels",
             [send(C311), RECV, send(w.subscribe(1, (levels(202), 0))), CLOSED],
             ["20 02 00 00", closed()]),
    # 9. A match skipped for No Local is still a match: PUBACK success, not 0x10.
    Scenario("v5-no-local-match-is-a-match",
             [send(C5), RECV, send(w.subscribe(1, ("nl/t", 0x05), version=w.V5)), RECV,
              send(w.publish("nl/t", b"x", qos=1, pid=2, version=w.V5)), RECV, ALIVE],
             [V5_CONNACK, "90 04 00 01 00 01", "40 02 00 02", "alive"]),
    # 12. Any payload format indicator is forwarded unchanged.
    Scenario("v5-payload-format-indicator-2-forwarded",
             [send(C5), RECV, send(w.subscribe(1, ("pf/t", 0), version=w.V5)), RECV,
              send(w.publish("pf/t", b"x", version=w.V5, properties=w.props((0x01, 2)))), RECV],
             [V5_CONNACK, "90 04 00 01 00 00", "30 0a 00 04 70 66 2f 74 02 01 02 78"]),
    # 13. SUBSCRIBE / UNSUBSCRIBE with packet identifier 0: malformed (0x81).
    Scenario("v5-subscribe-packet-id-0", [send(C5), RECV, send(w.subscribe(0, ("a", 0), version=w.V5)), CLOSED],
             [V5_CONNACK, closed("e0 01 81")]),
    Scenario("v5-unsubscribe-packet-id-0", [send(C5), RECV, send(w.unsubscribe(0, "a", version=w.V5)), CLOSED],
             [V5_CONNACK, closed("e0 01 81")]),
]

BY_ID = pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])


@BY_ID
def test_golden(broker, sc):
    """The broker under test answers exactly what mosquitto 2.0.11 answered (or, where listed, Midge's own)."""
    b = broker(extra=sc.extra)
    assert run(b, sc.steps) == sc.expected(BROKER_KIND)


@BY_ID
def test_side_by_side(both_brokers, sc):
    mosq, midge = both_brokers(extra=sc.extra)
    got_mosquitto = run(mosq, sc.steps)
    assert got_mosquitto == sc.golden, "Debian's mosquitto no longer answers as recorded"
    assert run(midge, sc.steps) == (got_mosquitto if sc.midge is None else sc.midge)


# ---- cases that need several connections or time to pass (against either broker)

def v5_session(expiry: int = 300) -> bytes:
    return w.props((w.PROP_SESSION_EXPIRY, expiry))


def subscribed(b, client_id: str, filt: str, qos: int, version: int = w.V311, clean: bool = True,
               properties: bytes | None = None) -> w.RawClient:
    c = w.RawClient(b.host, b.port)
    c.connect(client_id, version=version, clean=clean, properties=properties)
    c.send(w.subscribe(1, (filt, qos), version=version))
    c.expect(w.SUBACK)
    return c


def test_takeover_of_a_clean_session_does_not_resume_it(broker):
    """2. MQTT-3.1.2-6: a clean session ends with its connection, even when a persistent connection with the
    same id takes it over while it is open: session present 0, and none of its subscriptions."""
    b = broker()
    cid, topic = unique("clean"), unique("t")
    old = subscribed(b, cid, topic, 0, clean=True)
    new = w.RawClient(b.host, b.port)
    connack = new.connect(cid, clean=False)
    assert connack.raw == b"\x20\x02\x00\x00"
    assert old.wait_closed() == []
    # The subscription of the old session did not come along: a message to its topic reaches nobody.
    new.send(w.publish(topic, b"x", qos=1, pid=5))
    assert new.expect(w.PUBACK).raw == b"\x40\x02\x00\x05"
    new.send(w.pingreq())
    assert new.recv_packet().raw == b"\xd0\x00"   # no PUBLISH came before the PINGRESP
    new.close()


@pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Mosquitto 2.0.11 does not enforce Receive Maximum")
def test_receive_maximum_is_enforced(broker):
    """5. More unacknowledged QoS 2 PUBLISH than the Receive Maximum CONNACK announced: DISCONNECT 0x93."""
    b = broker(extra="max_inflight_messages 3")
    c = w.RawClient(b.host, b.port)
    connack = c.connect(unique("rm"), version=w.V5)
    assert (w.PROP_RECEIVE_MAXIMUM, 3) in connack.connack_properties()
    for pid in (1, 2, 3):
        c.send(w.publish("rm/t", b"x", qos=2, pid=pid, version=w.V5))
        assert c.expect(w.PUBREC).pid == pid
    c.send(w.publish("rm/t", b"x", qos=2, pid=2, dup=True, version=w.V5))  # a resend is no new one
    assert c.expect(w.PUBREC).pid == 2
    c.send(w.publish("rm/t", b"x", qos=2, pid=4, version=w.V5))
    assert [p.raw for p in c.wait_closed()] == [b"\xe0\x01\x93"]


@pytest.mark.parametrize("version", [w.V311, w.V5], ids=["311", "v5"])
@pytest.mark.parametrize("sent_qos,ack", [(1, w.PUBREC), (1, w.PUBCOMP), (2, w.PUBACK), (2, w.PUBCOMP)],
                         ids=["qos1-pubrec", "qos1-pubcomp", "qos2-puback", "qos2-pubcomp-before-pubrec"])
def test_an_acknowledgement_of_the_wrong_kind_closes_the_connection(broker, version, sent_qos, ack):
    """6. As Mosquitto: PUBREC / PUBCOMP for a QoS 1 message, PUBACK for QoS 2, PUBCOMP before PUBREC are
    protocol violations. 3.1.1: closed silently; 5.0: Midge says DISCONNECT 0x82 first (Mosquitto closes)."""
    b = broker()
    topic = unique("ack")
    c = subscribed(b, unique("acker"), topic, sent_qos, version=version)
    p = w.RawClient(b.host, b.port)
    p.connect(unique("pub"))
    p.send(w.publish(topic, b"x", qos=sent_qos, pid=1))
    if sent_qos == 2:   # a QoS 2 message is routed on PUBREL
        p.expect(w.PUBREC)
        p.send(w.ack(w.PUBREL, 1))
    got = c.expect(w.PUBLISH)
    pid = got.publish_fields(version)["pid"]
    c.send(w.ack(ack, pid))
    expected = [b"\xe0\x01\x82"] if version == w.V5 and BROKER_KIND == "midge" else []
    assert [x.raw for x in c.wait_closed()] == expected
    p.close()


def test_a_delayed_will_is_cancelled_by_a_clean_start_reconnect(broker):
    """8. As Mosquitto: any reconnect with the client id cancels a will waiting for its delay."""
    b = broker()
    topic, cid = unique("will"), unique("w")
    watcher = subscribed(b, unique("watch"), topic, 0)
    c = w.RawClient(b.host, b.port)
    c.connect(cid, version=w.V5, clean=True, properties=v5_session(60), will=(topic, b"gone", 0, False),
              will_properties=w.props((0x18, 1)))   # will delay 1 s
    c.abort()
    back = w.RawClient(b.host, b.port)
    back.connect(cid, version=w.V5, clean=True)
    # Past the delay (and a margin), no will arrived; a message published now is the first thing seen.
    time.sleep(2)
    marker = w.RawClient(b.host, b.port)
    marker.connect(unique("marker"))
    marker.send(w.publish(topic, b"marker", qos=1, pid=1))
    marker.expect(w.PUBACK)
    assert watcher.expect(w.PUBLISH).publish_fields()["payload"] == b"marker"
    for x in (watcher, back, marker):
        x.close()


def offline_subscriber(b, cid: str, topic: str) -> None:
    """A 5.0 persistent session subscribed to `topic` at QoS 1, then disconnected."""
    c = subscribed(b, cid, topic, 1, version=w.V5, clean=True, properties=v5_session())
    c.send(w.disconnect())
    c.wait_closed()


def test_message_expiry_left_is_counted_in_whole_seconds(broker):
    """10. As Mosquitto: the expiry left is the expiry second minus the current second, so within the second
    the message arrived in, a subscriber is told the full interval."""
    b = broker()
    topic, cid = unique("exp"), unique("sub")
    offline_subscriber(b, cid, topic)
    p = w.RawClient(b.host, b.port)
    p.connect(unique("pub"), version=w.V5)
    for _ in range(5):
        start = int(time.time())
        p.send(w.publish(topic, b"x", qos=1, pid=1, version=w.V5, properties=w.props((0x02, 10))))
        p.expect(w.PUBACK)
        c = w.RawClient(b.host, b.port)
        c.connect(cid, version=w.V5, clean=False, properties=v5_session())
        got = c.expect(w.PUBLISH).publish_fields(w.V5)
        c.send(w.ack(w.PUBACK, got["pid"]))
        c.send(w.disconnect())
        c.wait_closed()
        if int(time.time()) == start:   # all within one second: the interval is whole
            assert (0x02, 10) in got["properties"]
            break
    else:
        pytest.fail("never managed to publish and receive within one wall-clock second")
    p.close()


def test_a_queued_message_keeps_the_packet_id_it_was_queued_with(broker):
    """11. As Mosquitto: ids are given at queue time, so after a queued message expires the next one goes
    out with the id it was given (2), not the next free one (1)."""
    b = broker()
    topic, cid = unique("ids"), unique("sub")
    offline_subscriber(b, cid, topic)
    p = w.RawClient(b.host, b.port)
    p.connect(unique("pub"), version=w.V5)
    p.send(w.publish(topic, b"soon gone", qos=1, pid=1, version=w.V5, properties=w.props((0x02, 1))))
    p.expect(w.PUBACK)
    p.send(w.publish(topic, b"kept", qos=1, pid=2, version=w.V5))
    p.expect(w.PUBACK)
    time.sleep(2.1)   # the first message's expiry second has passed
    c = w.RawClient(b.host, b.port)
    c.connect(cid, version=w.V5, clean=False, properties=v5_session())
    got = c.expect(w.PUBLISH).publish_fields(w.V5)
    assert (got["payload"], got["pid"]) == (b"kept", 2)
    c.close()
    p.close()
