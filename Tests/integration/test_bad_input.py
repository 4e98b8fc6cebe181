"""Malformed and out-of-order input closes only the offending connection.

Expected answers are mosquitto 2.0's, byte for byte: for MQTT 3.1.1 it closes
without sending anything; for MQTT 5 it sends DISCONNECT with a reason code
for some errors and closes silently for others.
"""
import pytest

import mqttwire as w
from clients import Canary, raw, unique
from conftest import BROKER_KIND

CONNECT311 = "connect311"
CONNECT5 = "connect5"
NONE = "none"

# (id, how the connection starts, bad bytes, packets the broker sends before closing)
BAD_311 = [
    ("remaining-length-5-bytes", CONNECT311, b"\x30\xff\xff\xff\xff\x01", []),
    ("reserved-type-0", CONNECT311, b"\x00\x00", []),
    ("type-15-auth-in-311", CONNECT311, b"\xf0\x00", []),
    ("publish-qos-3", CONNECT311, b"\x36\x05\x00\x01a\x00\x01", []),
    ("publish-qos1-packet-id-0", CONNECT311, w.publish("a", b"x", qos=1, pid=0), []),
    ("publish-wildcard-topic", CONNECT311, w.publish("a/+", b"x"), []),
    ("publish-topic-with-nul", CONNECT311, w.publish(b"a\x00b", b"x"), []),
    ("subscribe-flags-0", CONNECT311, w.subscribe(1, ("a", 0), flags=0), []),
    ("subscribe-no-filters", CONNECT311, w.packet(w.SUBSCRIBE, 2, w.u16(1)), []),
    ("subscribe-qos-3", CONNECT311, w.subscribe(1, ("a", 3)), []),
    ("subscribe-invalid-filter", CONNECT311, w.subscribe(1, ("a", 0), ("a/#/b", 0)), []),
    ("unsubscribe-flags-0", CONNECT311, w.packet(w.UNSUBSCRIBE, 0, w.u16(1) + w.mstr("a")), []),
    ("pubrel-flags-0", CONNECT311, w.packet(w.PUBREL, 0, w.u16(1)), []),
    ("second-connect", CONNECT311, w.connect(unique("again")), []),
    ("connack-from-client", CONNECT311, b"\x20\x02\x00\x00", []),
    ("publish-before-connect", NONE, w.publish("a", b"x"), []),
    ("pingreq-before-connect", NONE, w.pingreq(), []),
    ("subscribe-before-connect", NONE, w.subscribe(1, ("a", 0)), []),
    ("connect-reserved-flag", NONE, w.connect(unique("r"), reserved_flag=True), []),
    ("connect-bad-protocol-name", NONE,
     w.packet(w.CONNECT, 0, w.mstr(b"MQTX") + b"\x04\x02" + w.u16(60) + w.mstr("x")), []),
    ("connect-will-qos-3", NONE, w.connect(unique("w"), will=("w", b"p", 3, False)), []),
    ("connect-will-topic-wildcard", NONE, w.connect(unique("w"), will=("w/#", b"p", 0, False)), []),
    ("connect-password-without-username", NONE,
     w.packet(w.CONNECT, 0, w.mstr(b"MQTT") + b"\x04\x42" + w.u16(60) + w.mstr("x") + w.mstr("pw")), []),
    ("connect-trailing-bytes", NONE, w.packet(w.CONNECT, 0, w.connect("x")[2:] + b"zz"), []),
]

DISCONNECT_MALFORMED = b"\xe0\x01\x81"
DISCONNECT_PROTOCOL_ERROR = b"\xe0\x01\x82"
DISCONNECT_TOPIC_ALIAS_INVALID = b"\xe0\x01\x94"

BAD_5 = [
    ("reserved-type-0", b"\x00\x00", [DISCONNECT_PROTOCOL_ERROR]),
    ("publish-qos-3", b"\x36\x06\x00\x01a\x00\x01\x00", [DISCONNECT_MALFORMED]),
    ("publish-wildcard-topic", w.publish("a/+", b"x", version=w.V5), [DISCONNECT_PROTOCOL_ERROR]),
    ("publish-empty-topic-no-alias", w.publish("", b"x", version=w.V5), [DISCONNECT_PROTOCOL_ERROR]),
    ("publish-topic-alias-0", w.publish("a", b"x", version=w.V5, properties=w.props((0x23, 0))),
     [DISCONNECT_MALFORMED]),
    ("publish-topic-alias-over-max", w.publish("a", b"x", version=w.V5, properties=w.props((0x23, 100))),
     [DISCONNECT_TOPIC_ALIAS_INVALID]),
    ("subscribe-flags-0", w.subscribe(1, ("a", 0), flags=0, version=w.V5), [DISCONNECT_MALFORMED]),
    ("subscribe-qos-3", w.subscribe(1, ("a", 3), version=w.V5), [DISCONNECT_MALFORMED]),
    ("subscribe-reserved-option-bits", w.subscribe(1, ("a", 0xC0), version=w.V5), [DISCONNECT_MALFORMED]),
    ("subscribe-invalid-filter", w.subscribe(1, ("a/#/b", 0), version=w.V5), [DISCONNECT_MALFORMED]),
    # mosquitto closes these silently, even for MQTT 5; Midge tells a 5.0 client why (spec 4.13), a
    # deliberate difference listed in README:
    ("remaining-length-5-bytes", b"\x30\xff\xff\xff\xff\x01", {"mosquitto": [], "midge": [DISCONNECT_MALFORMED]}),
    ("second-connect", w.connect(unique("again"), version=w.V5),
     {"mosquitto": [], "midge": [DISCONNECT_PROTOCOL_ERROR]}),
    ("pubrel-flags-0", w.packet(w.PUBREL, 0, w.u16(1)), {"mosquitto": [], "midge": [DISCONNECT_MALFORMED]}),
    ("empty-auth", b"\xf0\x00", {"mosquitto": [], "midge": [DISCONNECT_PROTOCOL_ERROR]}),
    ("connack-from-client", b"\x20\x03\x00\x00\x00", {"mosquitto": [], "midge": [DISCONNECT_PROTOCOL_ERROR]}),
]


@pytest.fixture
def canary(broker):
    b = broker()
    c = Canary(b)
    c.roundtrip()
    yield b, c
    c.close()


def _open(b, how):
    c = raw(b)
    if how == CONNECT311:
        assert c.connect(unique("bad")).raw == b"\x20\x02\x00\x00"
    elif how == CONNECT5:
        assert c.connect(unique("bad"), version=w.V5).body[:2] == b"\x00\x00"
    return c


@pytest.mark.parametrize("how,data,expected", [c[1:] for c in BAD_311], ids=[c[0] for c in BAD_311])
def test_bad_input_311_closes_connection_only(canary, how, data, expected):
    b, can = canary
    c = _open(b, how)
    c.send(data)
    if isinstance(expected, dict):
        expected = expected[BROKER_KIND]
    assert [p.raw for p in c.wait_closed()] == expected
    can.roundtrip()


@pytest.mark.parametrize("data,expected", [c[1:] for c in BAD_5], ids=[c[0] for c in BAD_5])
def test_bad_input_v5_disconnect_reason(canary, data, expected):
    b, can = canary
    c = _open(b, CONNECT5)
    c.send(data)
    if isinstance(expected, dict):
        expected = expected[BROKER_KIND]
    assert [p.raw for p in c.wait_closed()] == expected
    can.roundtrip()


def test_many_bad_clients_in_a_row_broker_keeps_serving(canary):
    b, can = canary
    for _, how, data, _ in BAD_311:
        c = _open(b, how)
        c.send(data)
        c.wait_closed()
    can.roundtrip()


def test_client_that_never_sends_connect_does_not_block_others(canary):
    b, can = canary
    idle = raw(b)       # TCP only, no CONNECT
    half = raw(b)
    half.send(w.connect(unique("half"))[:5])  # a CONNECT cut short
    can.roundtrip()
    idle.close()
    half.close()
    can.roundtrip()
