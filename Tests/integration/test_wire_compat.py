"""Byte-for-byte wire compatibility with mosquitto 2.0.

Each scenario is a short raw-socket script. It runs two ways:
  * test_golden: against the broker under test, compared with the transcript
    recorded from Debian's mosquitto 2.0.11 (kept below as the spec);
  * test_side_by_side: against a live mosquitto and midge with the same config
    (fixture both_brokers; skipped when BROKER=mosquitto), compared with each other.
"""
from dataclasses import dataclass

import pytest

import mqttwire as w
from clients import unique
from conftest import BROKER_KIND

STEP_TIMEOUT = 3.0


# Steps: ("send", bytes) | ("recv",) one packet | ("closed",) all packets until the
# broker closes | ("alive",) PINGREQ answered by PINGRESP | ("new",) fresh connection.
def send(data):
    return ("send", data)


RECV, CLOSED, ALIVE, NEW = ("recv",), ("closed",), ("alive",), ("new",)


@dataclass
class Scenario:
    id: str
    steps: list
    golden: list            # transcript recorded from mosquitto 2.0.11
    extra: str = ""         # config lines
    midge: list | None = None  # where Midge differs on purpose (README, "Where Midge differs"), its transcript

    def expected(self, kind: str) -> list:
        return self.midge if kind == "midge" and self.midge is not None else self.golden


def normalize(p: w.Packet) -> str:
    """Hex of a packet, with a broker-assigned client identifier masked (same length)."""
    raw = p.raw
    if p.ptype == w.CONNACK and len(p.body) > 2:
        for pid, value in p.connack_properties():
            if pid == w.PROP_ASSIGNED_CLIENT_ID:
                raw = raw.replace(value, b"*" * len(value))
    return raw.hex(" ")


def run(b, steps) -> list[str]:
    c = w.RawClient(b.host, b.port, STEP_TIMEOUT)
    out = []
    try:
        for step in steps:
            kind = step[0]
            if kind == "send":
                try:
                    c.send(step[1])
                except OSError:
                    out.append("send failed")
            elif kind == "recv":
                try:
                    out.append(normalize(c.recv_packet(STEP_TIMEOUT)))
                except w.Closed:
                    out.append("closed")
                except w.Timeout:
                    out.append("timeout")
            elif kind == "closed":
                try:
                    out.append("closed after [" + ", ".join(normalize(p) for p in c.wait_closed(STEP_TIMEOUT)) + "]")
                except w.Timeout:
                    out.append("still open")
            elif kind == "alive":
                try:
                    c.send(w.pingreq())
                    out.append("alive" if c.recv_packet(STEP_TIMEOUT).raw == b"\xd0\x00" else "no pingresp")
                except (w.Closed, w.Timeout, OSError) as e:
                    out.append(f"not alive ({e.__class__.__name__})")
            elif kind == "new":
                c.close()
                c = w.RawClient(b.host, b.port, STEP_TIMEOUT)
    finally:
        c.close()
    return out


def closed(*packets: str) -> str:
    return "closed after [" + ", ".join(packets) + "]"


def raw_connect(name: bytes, level: int, flags: int, props: bytes = b"") -> bytes:
    return w.packet(w.CONNECT, 0, w.mstr(name) + bytes([level, flags]) + w.u16(60) + props + w.mstr("x"))


V5_CONNACK = "20 09 00 00 06 22 00 0a 21 00 14"  # topic alias max 10, receive max 20
C311, C5 = w.connect("wire311"), w.connect("wire5", version=w.V5)
SESSION_5 = w.props((w.PROP_SESSION_EXPIRY, 300))
ASSIGNED = "20 35 00 00 32 22 00 0a 12 00 29 " + " ".join(["2a"] * 41) + " 21 00 14"

SCENARIOS = [
    # ---- CONNACK: protocol versions
    Scenario("connack-level-6", [send(w.connect("x", version=6)), CLOSED], [closed("20 02 00 01")]),
    Scenario("connack-level-2", [send(w.connect("x", version=2)), CLOSED], [closed("20 02 00 01")]),
    Scenario("connack-MQTT-name-level-3", [send(raw_connect(b"MQTT", 3, 2)), CLOSED], [closed("20 02 00 01")]),
    Scenario("connack-MQIsdp-name-level-4", [send(raw_connect(b"MQIsdp", 4, 2)), CLOSED], [closed("20 02 00 01")]),
    Scenario("connack-MQIsdp-name-level-5-with-properties",
             [send(raw_connect(b"MQIsdp", 5, 2, props=b"\x00")), CLOSED], [closed("20 02 00 01")]),
    Scenario("connack-level-6-with-v5-properties",
             [send(raw_connect(b"MQTT", 6, 2, props=b"\x00")), CLOSED], [closed("20 02 00 01")]),
    Scenario("connect-level-4-carrying-v5-properties",
             [send(raw_connect(b"MQTT", 4, 2, props=b"\x00")), CLOSED], [closed()]),
    Scenario("connect-unknown-protocol-name", [send(raw_connect(b"MQTX", 4, 2)), CLOSED], [closed()]),
    Scenario("connack-v5-default-properties", [send(C5), RECV, ALIVE], [V5_CONNACK, "alive"]),
    Scenario("connack-v5-assigned-client-id", [send(w.connect("", version=w.V5)), RECV, ALIVE],
             [ASSIGNED, "alive"]),
    Scenario("connack-v5-bad-auth-method",
             [send(w.connect("x", version=w.V5, properties=w.props((0x15, "SCRAM-SHA-1")))), CLOSED],
             [closed("20 03 00 8c 00")]),
    Scenario("connect-v5-duplicate-property",
             [send(w.connect("x", version=w.V5, properties=w.props((0x11, 5), (0x11, 6)))), CLOSED],
             [closed()]),
    Scenario("connack-v5-server-keep-alive", [send(w.connect("x", version=w.V5, keepalive=60)), RECV],
             ["20 0c 00 00 09 22 00 0a 13 00 0a 21 00 14"], extra="max_keepalive 10"),
    # ---- CONNACK: identifier rejected
    Scenario("connack-311-empty-id-persistent", [send(w.connect("", clean=False)), CLOSED],
             [closed("20 02 00 02")]),
    Scenario("connack-31-empty-id", [send(w.connect("", version=w.V31)), CLOSED], [closed("20 02 00 02")]),
    Scenario("connack-311-empty-id-not-allowed", [send(w.connect("")), CLOSED], [closed("20 02 00 02")],
             extra="allow_zero_length_clientid false"),
    Scenario("connack-v5-empty-id-not-allowed", [send(w.connect("", version=w.V5)), CLOSED],
             [closed("20 03 00 80 00")], extra="allow_zero_length_clientid false",
             # MQTT 5 has a code for exactly this (0x85 client identifier not valid); 0x80 says nothing.
             midge=[closed("20 03 00 85 00")]),
    # ---- CONNACK: not authorized
    Scenario("connack-31-anonymous-refused", [send(w.connect("x", version=w.V31)), CLOSED],
             [closed("20 02 00 05")], extra="allow_anonymous false"),
    Scenario("connack-311-anonymous-refused", [send(w.connect("x")), CLOSED],
             [closed("20 02 00 05")], extra="allow_anonymous false"),
    Scenario("connack-v5-anonymous-refused", [send(w.connect("x", version=w.V5)), CLOSED],
             [closed("20 03 00 87 00")], extra="allow_anonymous false"),
    Scenario("connack-311-unknown-user-refused", [send(w.connect("x", username="u", password=b"p")), CLOSED],
             [closed("20 02 00 05")], extra="allow_anonymous false"),
    # ---- CONNACK: session present
    Scenario("connack-311-session-present",
             [send(w.connect("sp311", clean=False)), RECV, send(w.disconnect()), CLOSED, NEW,
              send(w.connect("sp311", clean=False)), RECV, ALIVE],
             ["20 02 00 00", closed(), "20 02 01 00", "alive"]),
    Scenario("connack-v5-session-present",
             [send(w.connect("sp5", version=w.V5, clean=False, properties=SESSION_5)), RECV,
              send(w.disconnect(0)), CLOSED, NEW,
              send(w.connect("sp5", version=w.V5, clean=False, properties=SESSION_5)), RECV, ALIVE],
             [V5_CONNACK, closed(), "20 09 01 00 06 22 00 0a 21 00 14", "alive"]),
    Scenario("connack-v5-expiry-0-no-session",
             [send(w.connect("sp50", version=w.V5, clean=False)), RECV, send(w.disconnect(0)), CLOSED, NEW,
              send(w.connect("sp50", version=w.V5, clean=False)), RECV],
             [V5_CONNACK, closed(), V5_CONNACK]),
    # ---- SUBACK / UNSUBACK
    Scenario("suback-311-mixed-qos",
             [send(C311), RECV, send(w.subscribe(1, ("a", 0), ("b", 1), ("c", 2))), RECV],
             ["20 02 00 00", "90 05 00 01 00 01 02"]),
    Scenario("suback-v5-mixed-qos",
             [send(C5), RECV, send(w.subscribe(1, ("a", 0), ("b", 1), ("c", 2), version=w.V5)), RECV],
             [V5_CONNACK, "90 06 00 01 00 00 01 02"]),
    Scenario("suback-311-max-qos-1",
             [send(C311), RECV, send(w.subscribe(1, ("a", 0), ("b", 1), ("c", 2))), RECV],
             ["20 02 00 00", "90 05 00 01 00 01 01"], extra="max_qos 1"),
    Scenario("suback-311-invalid-filter-disconnects",
             [send(C311), RECV, send(w.subscribe(1, ("a", 0), ("b", 1), ("a/#/b", 2))), CLOSED],
             ["20 02 00 00", closed()]),
    Scenario("suback-v5-invalid-filter-disconnects",
             [send(C5), RECV, send(w.subscribe(1, ("a", 0), ("b", 1), ("a/#/b", 2), version=w.V5)), CLOSED],
             [V5_CONNACK, closed("e0 01 81")]),
    Scenario("suback-v5-shared-and-subscription-id",
             [send(C5), RECV, send(w.subscribe(7, ("$share/g/t", 1), ("s/#", 2), version=w.V5,
                                               properties=w.props((0x0B, 5)))), RECV],
             [V5_CONNACK, "90 05 00 07 00 01 02"]),
    Scenario("unsuback-311", [send(C311), RECV, send(w.subscribe(1, ("t", 1))), RECV,
                              send(w.unsubscribe(2, "t", "nope")), RECV],
             ["20 02 00 00", "90 03 00 01 01", "b0 02 00 02"]),
    Scenario("unsuback-v5", [send(C5), RECV, send(w.subscribe(1, ("t", 1), version=w.V5)), RECV,
                             send(w.unsubscribe(2, "t", "nope", version=w.V5)), RECV],
             [V5_CONNACK, "90 04 00 01 00 01", "b0 05 00 02 00 00 11"]),
    # ---- acks
    Scenario("puback-v5-no-matching-subscribers",
             [send(C5), RECV, send(w.publish(unique("nobody"), b"x", qos=1, pid=1, version=w.V5)), RECV],
             [V5_CONNACK, "40 03 00 01 10"]),
    Scenario("pubrec-v5-no-matching-subscribers",
             [send(C5), RECV, send(w.publish(unique("nobody"), b"x", qos=2, pid=1, version=w.V5)), RECV,
              send(w.ack(w.PUBREL, 1)), RECV],
             [V5_CONNACK, "50 02 00 01", "70 02 00 01"]),
    Scenario("puback-311", [send(C311), RECV, send(w.publish("t", b"x", qos=1, pid=0x1234)), RECV],
             ["20 02 00 00", "40 02 12 34"]),
    Scenario("pubcomp-for-unknown-pubrel-311", [send(C311), RECV, send(w.ack(w.PUBREL, 99)), RECV],
             ["20 02 00 00", "70 02 00 63"]),
    Scenario("pubcomp-for-unknown-pubrel-v5", [send(C5), RECV, send(w.ack(w.PUBREL, 99)), RECV],
             [V5_CONNACK, "70 02 00 63"]),
    Scenario("puback-for-unknown-id-ignored", [send(C311), RECV, send(w.ack(w.PUBACK, 99)), ALIVE],
             ["20 02 00 00", "alive"]),
    Scenario("retained-delivery-flags",
             [send(C311), RECV, send(w.publish("ret/t", b"r", qos=1, pid=1, retain=True)), RECV,
              send(w.subscribe(2, ("ret/#", 1))), RECV, RECV],
             ["20 02 00 00", "40 02 00 01", "90 03 00 02 01", "33 0a 00 05 72 65 74 2f 74 00 01 72"]),
    # ---- malformed input from an MQTT 5 client
    Scenario("v5-publish-qos-3", [send(C5), RECV, send(b"\x36\x06\x00\x01a\x00\x01\x00"), CLOSED],
             [V5_CONNACK, closed("e0 01 81")]),
    Scenario("v5-reserved-packet-type", [send(C5), RECV, send(b"\x00\x00"), CLOSED],
             [V5_CONNACK, closed("e0 01 82")]),
    Scenario("v5-subscribe-bad-flags", [send(C5), RECV, send(w.subscribe(1, ("a", 0), flags=0, version=w.V5)),
                                        CLOSED], [V5_CONNACK, closed("e0 01 81")]),
    Scenario("v5-publish-wildcard-topic", [send(C5), RECV, send(w.publish("a/#", b"x", version=w.V5)), CLOSED],
             [V5_CONNACK, closed("e0 01 82")]),
    Scenario("v5-topic-alias-too-big",
             [send(C5), RECV, send(w.publish("a", b"x", version=w.V5, properties=w.props((0x23, 11)))), CLOSED],
             [V5_CONNACK, closed("e0 01 94")]),
    Scenario("v5-remaining-length-overflow", [send(C5), RECV, send(b"\x30\xff\xff\xff\xff\x01"), CLOSED],
             [V5_CONNACK, closed()],
             # A 5.0 client is told why it is closed (spec 4.13); mosquitto closes silently.
             midge=[V5_CONNACK, closed("e0 01 81")]),
    Scenario("v5-second-connect", [send(C5), RECV, send(C5), CLOSED], [V5_CONNACK, closed()],
             midge=[V5_CONNACK, closed("e0 01 82")]),
    Scenario("v5-packet-too-large",
             [send(C5), RECV, send(w.publish("m/t", b"x" * 120, version=w.V5)), CLOSED],
             ["20 0e 00 00 0b 22 00 0a 27 00 00 00 64 21 00 14", closed("e0 01 95")],
             extra="max_packet_size 100"),
    Scenario("311-publish-qos-3", [send(C311), RECV, send(b"\x36\x05\x00\x01a\x00\x01"), CLOSED],
             ["20 02 00 00", closed()]),
]

BY_ID = pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])


@BY_ID
def test_golden(broker, sc):
    """The broker under test answers exactly what mosquitto 2.0.11 answered."""
    b = broker(extra=sc.extra)
    assert run(b, sc.steps) == sc.expected(BROKER_KIND)


@BY_ID
def test_side_by_side(both_brokers, sc):
    mosq, midge = both_brokers(extra=sc.extra)
    got_mosquitto = run(mosq, sc.steps)
    assert got_mosquitto == sc.golden, "Debian's mosquitto no longer answers as recorded"
    assert run(midge, sc.steps) == (got_mosquitto if sc.midge is None else sc.midge)
