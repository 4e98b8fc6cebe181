"""Persistent sessions, offline queueing and session takeover."""
import pytest

import mqttwire as w
from conftest import BROKER_KIND
from clients import Canary, PahoClient, raw, raw_connected, raw_publish, raw_subscribe, recv_publish, unique

# (protocol, session_expiry) for a session that outlives the connection.
PERSISTENT = pytest.mark.parametrize("protocol,expiry", [("3.1.1", None), ("5", 300)],
                                     ids=["3.1.1", "5"])


def _publish_offline(b, topic, payloads, qos=1):
    pub = PahoClient(b)
    pub.connect()
    try:
        for p in payloads:
            pub.publish(topic, p, qos=qos)
    finally:
        pub.disconnect()


@PERSISTENT
def test_persistent_session_queues_qos1_while_offline(broker, protocol, expiry):
    b = broker()
    cid, topic = unique("persist"), unique("persist") + "/t"

    first = PahoClient(b, cid, protocol, clean=False, session_expiry=expiry)
    session_present, _, _ = first.connect()
    assert session_present is False
    assert first.subscribe(topic, 1) == [1]
    first.disconnect()

    _publish_offline(b, topic, [b"m1", b"m2", b"m3"])

    again = PahoClient(b, cid, protocol, clean=False, session_expiry=expiry)
    try:
        session_present, _, _ = again.connect()
        assert session_present is True
        msgs = again.get_n(3)
        assert [(m.topic, m.payload, m.qos) for m in msgs] == [(topic, p, 1) for p in (b"m1", b"m2", b"m3")]
    finally:
        again.stop()


@pytest.mark.parametrize("protocol,clean,expiry", [("3.1.1", True, None), ("5", True, 300), ("5", False, 0)],
                         ids=["3.1.1-clean", "5-clean-start", "5-expiry-0"])
def test_session_not_kept_without_persistence(broker, protocol, clean, expiry):
    """Clean session (or MQTT 5 session expiry 0): nothing survives the disconnect."""
    b = broker()
    cid, topic = unique("transient"), unique("transient")

    first = PahoClient(b, cid, protocol, clean=clean, session_expiry=expiry)
    first.connect()
    assert first.subscribe(topic, 1) == [1]
    first.disconnect()

    _publish_offline(b, topic, [b"m1", b"m2", b"m3"])

    again = PahoClient(b, cid, protocol, clean=clean, session_expiry=expiry)
    try:
        session_present, _, _ = again.connect()
        assert session_present is False
        # A queued message would be delivered right after CONNACK, before the marker.
        assert again.subscribe(topic, 1) == [1]
        _publish_offline(b, topic, [b"marker"])
        assert [m.payload for m in again.get_until(b"marker")] == [b"marker"]
    finally:
        again.stop()


def test_raw_session_present_flag_bytes(broker):
    b = broker()
    cid = unique("sp")
    c = raw(b)
    assert c.connect(cid, clean=False).raw == b"\x20\x02\x00\x00"
    c.send(w.disconnect())
    c.wait_closed()
    c = raw(b)
    assert c.connect(cid, clean=False).raw == b"\x20\x02\x01\x00"
    c.send(w.disconnect())
    c.wait_closed()
    # clean session 1 discards the stored session: session present is 0
    c = raw(b)
    assert c.connect(cid, clean=True).raw == b"\x20\x02\x00\x00"
    c.close()


@pytest.mark.parametrize("version", [w.V311, w.V5], ids=["3.1.1", "5"])
def test_takeover_closes_first_connection_and_publishes_its_will(broker, version):
    """mosquitto 2.0.11: the old connection is closed without any packet and its will is published, for
    3.1.1 and 5.0 alike. Midge sends a 5.0 client DISCONNECT 0x8E (session taken over) first, as MQTT 5.0
    section 3.1.4 asks: a deliberate difference listed in README."""
    b = broker()
    cid, will_topic = unique("twin"), unique("will")
    watcher = raw_connected(b, unique("watch"))
    raw_subscribe(watcher, will_topic, 0)

    first = raw_connected(b, cid, version=version, will=(will_topic, b"taken over", 0, False))
    second = raw(b)
    ack = second.connect(cid, version=version)
    assert ack.body[:2] == b"\x00\x00"  # accepted, clean session: no session present

    told = [b"\xe0\x01\x8e"] if version == w.V5 and BROKER_KIND == "midge" else []
    assert [p.raw for p in first.wait_closed()] == told
    p, f = recv_publish(watcher)
    assert f["payload"] == b"taken over"

    # the new connection is the live one
    raw_subscribe(second, "echo/" + cid, 0, version=version)
    pub = raw_connected(b, unique("pub"))
    raw_publish(pub, "echo/" + cid, b"hello")
    p, f = recv_publish(second, version)
    assert f["payload"] == b"hello"


def test_takeover_with_persistent_session_keeps_subscriptions(broker):
    b = broker()
    cid, topic = unique("twin"), unique("topic")
    first = raw_connected(b, cid, clean=False)
    raw_subscribe(first, topic, 1)

    second = raw(b)
    assert second.connect(cid, clean=False).raw == b"\x20\x02\x01\x00"
    assert first.wait_closed() == []

    pub = raw_connected(b, unique("pub"))
    raw_publish(pub, topic, b"to the new owner", qos=1)
    p, f = recv_publish(second)
    assert (f["payload"], p.qos) == (b"to the new owner", 1)


def test_takeover_does_not_disturb_other_clients(broker):
    b = broker()
    canary = Canary(b)
    cid = unique("twin")
    conns = [raw_connected(b, cid)]
    for _ in range(5):
        conns.append(raw_connected(b, cid))
        assert conns[-2].wait_closed() == []
        canary.roundtrip()
