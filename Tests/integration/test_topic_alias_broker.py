"""Topic aliases from the broker to 5.0 clients (`max_topic_alias_broker`, Mosquitto 2.1's directive; off
by default, as Mosquitto 2.0 never sends them). paho-mqtt does not resolve incoming aliases, so these tests
read the raw packets."""
from __future__ import annotations

import pytest

import mqttwire as w
from clients import raw_connected, raw_publish, raw_subscribe, recv_publish, unique
from conftest import BROKER_KIND

TOPIC_ALIAS, TOPIC_ALIAS_MAXIMUM = 0x23, 0x22


def alias_of(fields) -> int | None:
    return next((v for k, v in fields["properties"] if k == TOPIC_ALIAS), None)


def subscriber(b, client_accepts: int):
    c = raw_connected(b, unique("alias"), version=w.V5,
                      properties=w.props((TOPIC_ALIAS_MAXIMUM, client_accepts)) if client_accepts else None)
    raw_subscribe(c, "a/#", version=w.V5)
    return c


def test_no_aliases_by_default(broker):
    b = broker()
    sub = subscriber(b, client_accepts=10)
    pub = raw_connected(b, unique("pub"))
    for _ in range(2):
        raw_publish(pub, "a/x", b"1")
        _, fields = recv_publish(sub, w.V5)
        assert fields["topic"] == "a/x" and alias_of(fields) is None
    sub.close()
    pub.close()


@pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Debian's mosquitto 2.0 has no max_topic_alias_broker")
def test_aliases_first_come_first_served_within_both_limits(broker):
    b = broker(extra="max_topic_alias_broker 2")
    sub = subscriber(b, client_accepts=5)
    plain = subscriber(b, client_accepts=0)  # accepts none: never gets one
    pub = raw_connected(b, unique("pub"))
    sent = ["a/1", "a/2", "a/1", "a/3", "a/2", "a/3"]
    for topic in sent:
        raw_publish(pub, topic, topic.encode())
    got = [recv_publish(sub, w.V5)[1] for _ in sent]
    # a/1 and a/2 get aliases 1 and 2 with their topic the first time, then an empty topic; the broker's
    # limit (2) leaves a/3 without one.
    assert [(f["topic"], alias_of(f), f["payload"]) for f in got] == [
        ("a/1", 1, b"a/1"), ("a/2", 2, b"a/2"), ("", 1, b"a/1"), ("a/3", None, b"a/3"), ("", 2, b"a/2"),
        ("a/3", None, b"a/3")]
    for _ in sent:
        _, fields = recv_publish(plain, w.V5)
        assert alias_of(fields) is None and fields["topic"]
    # A 3.1.1 subscriber never gets properties at all.
    old = raw_connected(b, unique("v311"))
    raw_subscribe(old, "a/#")
    raw_publish(pub, "a/1", b"x")
    assert recv_publish(old)[1]["topic"] == "a/1"
    for c in (sub, plain, pub, old):
        c.close()
