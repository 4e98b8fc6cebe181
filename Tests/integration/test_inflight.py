"""Outbound QoS 1/2 state across reconnects (DUP resend, PUBREL resend) and the
in-flight window, observed byte by byte with raw sockets."""
import pytest

import mqttwire as w
from clients import raw, raw_connected, raw_publish, raw_subscribe, recv_publish, unique

SESSION = {w.V311: {}, w.V5: {"properties": w.props((w.PROP_SESSION_EXPIRY, 300))}}
VERSIONS = pytest.mark.parametrize("version", [w.V311, w.V5], ids=["3.1.1", "5"])


def reconnect(b, cid, version):
    """Resume the persistent session; assert CONNACK says session present."""
    c = raw(b)
    ack = c.connect(cid, clean=False, version=version, **SESSION[version])
    assert ack.body[:2] == b"\x01\x00", f"expected session present: {ack!r}"
    return c


def leave(c, version):
    c.send(w.disconnect(0) if version == w.V5 else w.disconnect())
    assert c.wait_closed() == []


def assert_next_is_marker(c, b, topic, version):
    """Nothing else pending: a fresh publish is the next packet and is not DUP."""
    pub = raw_connected(b, unique("marker"))
    raw_publish(pub, topic, b"marker", qos=1)
    p, f = recv_publish(c, version)
    assert f["payload"] == b"marker" and p.raw[0] == 0x32, p
    c.send(w.ack(w.PUBACK, f["pid"]))


@VERSIONS
def test_unacked_qos1_is_resent_with_dup_after_reconnect(broker, version):
    b = broker()
    cid, topic = unique("dup"), unique("dup")
    sub = raw_connected(b, cid, clean=False, version=version, **SESSION[version])
    raw_subscribe(sub, topic, 1, version)
    pub = raw_connected(b, unique("pub"))
    raw_publish(pub, topic, b"first", qos=1, pid=10)
    raw_publish(pub, topic, b"second", qos=1, pid=11)

    originals = [recv_publish(sub, version) for _ in range(2)]
    for p, f in originals:
        assert p.raw[0] == 0x32, f"first delivery must be QoS 1 without DUP: {p!r}"
    leave(sub, version)  # no PUBACK sent

    sub = reconnect(b, cid, version)
    for p, f in originals:
        again, fa = recv_publish(sub, version)
        assert again.raw[0] == 0x3A, f"resend must set DUP (0x3A): {again!r}"
        assert again.raw[1:] == p.raw[1:], "resend must repeat packet id, topic and payload"
    for p, f in originals:
        sub.send(w.ack(w.PUBACK, f["pid"]))
    leave(sub, version)

    sub = reconnect(b, cid, version)  # acknowledged: nothing is resent
    assert_next_is_marker(sub, b, topic, version)


@VERSIONS
def test_pubrel_is_resent_when_pubcomp_missing(broker, version):
    b = broker()
    cid, topic = unique("rel"), unique("rel")
    sub = raw_connected(b, cid, clean=False, version=version, **SESSION[version])
    raw_subscribe(sub, topic, 2, version)
    pub = raw_connected(b, unique("pub"))
    raw_publish(pub, topic, b"exactly once", qos=2)

    p, f = recv_publish(sub, version)
    assert p.raw[0] == 0x34
    pid = f["pid"]
    sub.send(w.ack(w.PUBREC, pid))
    assert sub.expect(w.PUBREL).raw == b"\x62\x02" + w.u16(pid)
    leave(sub, version)  # before PUBCOMP

    sub = reconnect(b, cid, version)
    assert sub.recv_packet().raw == b"\x62\x02" + w.u16(pid), "broker must resend PUBREL, not PUBLISH"
    sub.send(w.ack(w.PUBCOMP, pid))
    assert_next_is_marker(sub, b, topic, version)


def test_unreceived_qos2_publish_is_resent_with_dup(broker):
    b = broker()
    cid, topic = unique("q2"), unique("q2")
    sub = raw_connected(b, cid, clean=False)
    raw_subscribe(sub, topic, 2)
    pub = raw_connected(b, unique("pub"))
    raw_publish(pub, topic, b"payload", qos=2)
    p, f = recv_publish(sub)
    leave(sub, w.V311)  # no PUBREC

    sub = reconnect(b, cid, w.V311)
    again, fa = recv_publish(sub)
    assert again.raw[0] == 0x3C and again.raw[1:] == p.raw[1:]
    sub.send(w.ack(w.PUBREC, fa["pid"]))
    assert sub.expect(w.PUBREL).pid == fa["pid"]
    sub.send(w.ack(w.PUBCOMP, fa["pid"]))


def test_inbound_qos2_is_delivered_on_pubrel_not_on_publish(broker):
    """mosquitto 2.0 holds an incoming QoS 2 message until the publisher's PUBREL."""
    b = broker()
    topic = unique("q2in")
    sub = raw_connected(b, unique("sub"))
    raw_subscribe(sub, topic, 0)
    pub = raw_connected(b, unique("pub"))
    pub.send(w.publish(topic, b"held", qos=2, pid=7))
    assert pub.expect(w.PUBREC).raw == b"\x50\x02\x00\x07"
    with pytest.raises(w.Timeout):
        sub.recv_packet(0.5)
    pub.send(w.ack(w.PUBREL, 7))
    assert pub.expect(w.PUBCOMP).raw == b"\x70\x02\x00\x07"
    p, f = recv_publish(sub)
    assert f["payload"] == b"held"


def test_duplicate_qos2_publish_is_delivered_once(broker):
    b = broker()
    topic = unique("q2dup")
    sub = raw_connected(b, unique("sub"))
    raw_subscribe(sub, topic, 1)
    pub = raw_connected(b, unique("pub"))
    for dup in (False, True):
        pub.send(w.publish(topic, b"once", qos=2, pid=9, dup=dup))
        assert pub.expect(w.PUBREC).pid == 9
    pub.send(w.ack(w.PUBREL, 9))
    assert pub.expect(w.PUBCOMP).pid == 9
    raw_publish(pub, topic, b"marker", qos=1, pid=10)
    got = []
    while not got or got[-1] != b"marker":
        p, f = recv_publish(sub)
        got.append(f["payload"])
        sub.send(w.ack(w.PUBACK, f["pid"]))
    assert got == [b"once", b"marker"]


def test_inflight_window_limits_unacked_qos1(broker):
    b = broker(extra="max_inflight_messages 5")
    topic = unique("window")
    sub = raw_connected(b, unique("sub"))
    raw_subscribe(sub, topic, 1)
    pub = raw_connected(b, unique("pub"))
    for i in range(8):
        raw_publish(pub, topic, b"%d" % i, qos=1, pid=i + 1)

    first = [recv_publish(sub)[1] for _ in range(5)]
    assert [f["payload"] for f in first] == [b"0", b"1", b"2", b"3", b"4"]
    with pytest.raises(w.Timeout):  # window full: the 6th waits for an ack
        sub.recv_packet(0.5)

    for f in first:
        sub.send(w.ack(w.PUBACK, f["pid"]))
    rest = [recv_publish(sub)[1] for _ in range(3)]
    assert [f["payload"] for f in rest] == [b"5", b"6", b"7"]
