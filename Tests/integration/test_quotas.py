"""Quotas (README, Quotas): the limited client sees the documented behaviour, the others never notice.

Midge only: every directive here is Midge's (mosquitto 2.0 has only a listener's max_connections).
"""
from __future__ import annotations

import socket
import time

import pytest

import mqttwire as w
from clients import (WAIT, Canary, PahoClient, raw, raw_connected, raw_publish, raw_subscribe, recv_publish, unique,
                     wait_for_log)
from conftest import BROKER_KIND, free_port, midge_bin
from test_prometheus import scrape
from test_admin_http import admin_port

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="quota directives are Midge's")

METRICS = "admin_listener 0 127.0.0.1\nplugin prometheus\n"
CONNACK_311_SERVER_UNAVAILABLE = b"\x20\x02\x00\x03"


def quota(samples: dict, name: str) -> float:
    return samples.get(f'midge_quota_exceeded_total{{quota="{name}"}}', 0)


def connect_when_a_slot_is_free(host, port, name, attempts=50, **kw) -> w.RawClient:
    """Slots free when the broker has processed a close (the fixture's readiness probe, a client that left):
    retry a bounded number of times, each attempt ending on an event (CONNACK or the broker's close)."""
    for _ in range(attempts):
        c = w.RawClient(host, port)
        try:
            ack = c.connect(unique(name), **kw)
            assert ack.body[1] == 0, ack
            return c
        except (w.Closed, OSError):
            c.close()
    raise AssertionError(f"no free slot for {name} after {attempts} attempts")


def closed_without_connack(host, port) -> bool:
    c = w.RawClient(host, port)
    try:
        c.send(w.connect(unique("over")))
    except OSError:
        pass  # closed already: what we check below
    try:
        return c.wait_closed() == []
    finally:
        c.close()


def from_address(b, source: str) -> w.RawClient:
    """A raw client whose connection comes from `source` (any 127.x.y.z address reaches the loopback
    listener on Linux)."""
    c = w.RawClient.__new__(w.RawClient)
    c.sock = socket.create_connection(b.addr, timeout=w.DEFAULT_TIMEOUT, source_address=(source, 0))
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.buf = b""
    c.closed = False
    return c


def roundtrip(publisher: w.RawClient, subscriber: w.RawClient, topic: str, payload: bytes,
              version=w.V311, pid=1) -> None:
    """`publisher` publishes at QoS 1, `subscriber` (subscribed to `topic`) receives it."""
    raw_publish(publisher, topic, payload, qos=1, pid=pid, version=version)
    p, f = recv_publish(subscriber)
    assert f["payload"] == payload
    if p.qos:
        subscriber.send(w.ack(w.PUBACK, f["pid"]))


# ------------------------------------------------------------------ connections

def test_max_connections_total_closes_without_connack_across_listeners(broker):
    second_port = free_port()
    b = broker(extra=f"max_connections_total 2\nlistener {second_port} 127.0.0.1\n{METRICS}")
    first = connect_when_a_slot_is_free(b.host, b.port, "one")
    second = connect_when_a_slot_is_free(b.host, second_port, "two")
    try:
        # Over the total on either listener: closed at once, no CONNACK (as max_connections).
        assert closed_without_connack(b.host, second_port)
        assert closed_without_connack(b.host, b.port)
        # The two connected clients never notice.
        topic = unique("total")
        raw_subscribe(second, topic, 1)
        roundtrip(first, second, topic, b"still here")
        assert quota(scrape(admin_port(b)), "max_connections_total") >= 2
        # A slot frees when a client leaves.
        second.send(w.disconnect())
        second.wait_closed()
        connect_when_a_slot_is_free(b.host, second_port, "three").close()
    finally:
        first.close()
        second.close()
    assert "denied: max_connections_total (2) reached" in b.log()


@pytest.fixture
def users(tmp_path):
    """A password file with alice and bob (password = name), made with `midge passwd`."""
    import subprocess
    path = tmp_path / "passwd"
    for index, user in enumerate(["alice", "bob"]):
        subprocess.run([str(midge_bin()), "passwd", *(["-c"] if index == 0 else []), "-b", str(path), user, user],
                       check=True, capture_output=True, timeout=30)
    return path


def login(b, user: str, client_id: str, version=w.V311) -> tuple[w.RawClient, bytes]:
    c = raw(b)
    return c, c.connect(client_id, username=user, password=user.encode(), version=version).raw


def test_max_connections_per_user(broker, users):
    b = broker(extra=f"password_file {users}\nmax_connections_per_user 2\n{METRICS}")
    one, ack = login(b, "alice", "alice-1")
    assert ack == b"\x20\x02\x00\x00"
    two, ack = login(b, "alice", "alice-2", version=w.V5)
    assert ack[0] == 0x20 and ack[2:4] == b"\x00\x00"
    # A third client of alice: 3.1.1 gets 3 (server unavailable), 5.0 gets 0x97 (quota exceeded); then closed.
    three, ack = login(b, "alice", "alice-3")
    assert ack == CONNACK_311_SERVER_UNAVAILABLE
    assert three.wait_closed() == []
    three, ack = login(b, "alice", "alice-3", version=w.V5)
    assert ack == b"\x20\x03\x00\x97\x00"
    assert three.wait_closed() == []
    # bob is not affected.
    bob, ack = login(b, "bob", "bob-1")
    assert ack == b"\x20\x02\x00\x00"
    # alice-1 reconnecting (a takeover) is not refused because of its own old connection.
    again, ack = login(b, "alice", "alice-1")
    assert ack == b"\x20\x02\x00\x00"
    assert one.wait_closed() == []
    # The connections alice has keep working.
    topic = unique("user")
    raw_subscribe(bob, topic, 1)
    roundtrip(again, bob, topic, b"from alice")
    # When one of alice's clients leaves, another may come.
    two.send(w.disconnect())
    two.wait_closed()
    for _ in range(50):  # the slot frees when the broker has processed the close: retry, bounded
        three, ack = login(b, "alice", "alice-3")
        if ack == b"\x20\x02\x00\x00":
            break
        three.wait_closed()
    assert ack == b"\x20\x02\x00\x00"
    assert quota(scrape(admin_port(b)), "max_connections_per_user") >= 2
    for c in (again, bob, three):
        c.close()
    assert "max_connections_per_user (2) reached for user alice" in b.log()


def test_max_connection_rate_per_source_address(broker):
    b = broker(extra=f"max_connection_rate 3 60\n{METRICS}")
    accepted = []
    for _ in range(3):
        c = from_address(b, "127.0.0.1")
        assert c.connect(unique("rate")).raw == b"\x20\x02\x00\x00"
        accepted.append(c)
    # The fourth CONNECT from 127.0.0.1 within the window: 0x9F (5.0), 3 (3.x); then closed.
    c = from_address(b, "127.0.0.1")
    assert c.connect(unique("rate"), version=w.V5).raw == b"\x20\x03\x00\x9f\x00"
    assert c.wait_closed() == []
    c = from_address(b, "127.0.0.1")
    assert c.connect(unique("rate")).raw == CONNACK_311_SERVER_UNAVAILABLE
    assert c.wait_closed() == []
    # Another address is not affected, and the clients already connected keep working.
    other = from_address(b, "127.0.0.2")
    assert other.connect(unique("other")).raw == b"\x20\x02\x00\x00"
    topic = unique("rate")
    raw_subscribe(other, topic, 1)
    roundtrip(accepted[0], other, topic, b"unaffected")
    assert quota(scrape(admin_port(b)), "max_connection_rate") == 2
    log = b.log()
    assert log.count("Connections from 127.0.0.1 are refused: more than max_connection_rate 3") == 1, log
    for c in accepted + [other]:
        c.close()


# ------------------------------------------------------------------ publish rate

def publish_burst(c: w.RawClient, topic: str, count: int, version: int, payload: bytes = b"") -> None:
    c.send(b"".join(w.publish(topic, payload or b"%d" % i, version=version) for i in range(count)))


@pytest.mark.parametrize("version", [w.V311, w.V5], ids=["3.1.1", "5"])
def test_publish_rate_slows_the_client_down_and_nothing_is_lost(broker, version):
    """max_publish_rate 20: 60 QoS 0 messages written at once all arrive, over about 2 s (the first second's
    worth at once, the other 40 at 20/s); the client is not disconnected (what it wrote ahead is far below ten
    seconds' worth); a client publishing meanwhile is not slowed."""
    b = broker(extra=f"max_publish_rate 20\n{METRICS}")
    topic = unique("rate")
    sub = raw_connected(b, unique("sub"))
    raw_subscribe(sub, topic, 0)
    canary = Canary(b)
    fast = raw_connected(b, unique("fast"), version=version)
    start = time.monotonic()
    publish_burst(fast, topic, 60, version)
    got = [recv_publish(sub)[1]["payload"]]
    # While the fast client is held back, another client's round trips are immediate.
    for _ in range(3):
        before = time.monotonic()
        canary.roundtrip()
        assert time.monotonic() - before < 0.5
    got += [recv_publish(sub, timeout=10)[1]["payload"] for _ in range(59)]
    elapsed = time.monotonic() - start
    assert got == [b"%d" % i for i in range(60)]
    assert elapsed >= 1.5, f"60 messages at 20/s took only {elapsed:.2f} s"
    assert elapsed < 8, elapsed
    # Still connected: a PINGREQ is answered.
    fast.send(w.pingreq())
    assert fast.expect(w.PINGRESP).ptype == w.PINGRESP
    assert quota(scrape(admin_port(b)), "max_publish_rate") == 1  # once per client
    assert b.log().count("publishes faster than max_publish_rate 20 per second") == 1
    for c in (fast, sub, canary):
        c.close()


def test_publish_bytes_rate_slows_the_client_down(broker):
    """max_publish_bytes_rate 2000: 60 messages of 100 bytes (+ topic), about 6.8 KB, take about 2.4 s (the
    first 2000 bytes at once)."""
    b = broker(extra="max_publish_bytes_rate 2000")
    topic = unique("bytes")
    sub = raw_connected(b, unique("sub"))
    raw_subscribe(sub, topic, 0)
    fast = raw_connected(b, unique("fast"))
    start = time.monotonic()
    publish_burst(fast, topic, 60, w.V311, payload=b"x" * 100)
    got = [recv_publish(sub, timeout=10)[1]["payload"] for _ in range(60)]
    elapsed = time.monotonic() - start
    assert len(got) == 60
    assert elapsed >= 1.8, f"{60 * (100 + len(topic))} bytes at 2000/s took only {elapsed:.2f} s"
    assert elapsed < 8, elapsed
    fast.close()
    sub.close()


def test_publish_rate_far_over_disconnects_a_v5_client_with_0x96(broker):
    """A 5.0 client that writes thousands of messages at once against max_publish_rate 10 has far more than
    ten seconds' worth waiting: DISCONNECT 0x96 (message rate too high). Others keep working."""
    b = broker(extra=f"max_publish_rate 10\n{METRICS}")
    canary = Canary(b)
    flood = raw_connected(b, unique("flood"), version=w.V5)
    try:
        publish_burst(flood, "flood/x", 3000, w.V5)
    except OSError:
        pass  # the broker may close while we still write
    assert [p.raw for p in flood.wait_closed(timeout=20)] == [b"\xe0\x01\x96"]
    canary.roundtrip()
    samples = scrape(admin_port(b))
    assert samples["midge_publish_rate_disconnects_total"] == 1
    assert "disconnected: publishing far over max_publish_rate 10" in b.log()
    canary.close()


def test_publish_rate_far_over_only_slows_a_311_client(broker):
    """A 3.x client cannot be told why: the same flood only slows it down; it stays connected."""
    b = broker(extra="max_publish_rate 10")
    canary = Canary(b)
    flood = raw_connected(b, unique("flood"))
    publish_burst(flood, "flood/x", 3000, w.V311)
    with pytest.raises(w.Timeout):  # neither a packet nor a close: it is being held back
        flood.recv_packet(timeout=3)
    canary.roundtrip()
    assert "publishes faster than max_publish_rate 10 per second" in b.log()
    assert "disconnected" not in b.log().split("publishes faster than", 1)[1]
    flood.close()
    canary.close()


# ------------------------------------------------------------------ queued bytes

def offline_subscriber(b, topic: str) -> str:
    cid = unique("offline")
    c = raw_connected(b, cid, clean=False)
    raw_subscribe(c, topic, 1)
    c.send(w.disconnect())
    c.wait_closed()
    return cid


def test_max_queued_bytes_total(broker):
    """max_queued_bytes_total 1000: an offline client's queue takes 4 messages of 205 bytes (topic + payload);
    the fifth would pass 1000: refused. A 5.0 QoS 1 publisher whose message nobody could queue gets PUBACK
    0x97 (QoS 2: PUBREC 0x97); a 3.x one cannot be told (PUBACK 0). Online subscribers keep getting messages."""
    b = broker(extra=f"max_queued_bytes_total 1000\n{METRICS}")
    hog = "hog/x"
    cid = offline_subscriber(b, hog)
    pub = raw_connected(b, unique("pub"), version=w.V5)
    payload = b"p" * 200
    codes = []
    for pid in range(1, 7):
        pub.send(w.publish(hog, payload, qos=1, pid=pid, version=w.V5))
        ack = pub.expect(w.PUBACK)
        codes.append(ack.body[2] if len(ack.body) > 2 else 0)
    assert codes == [0, 0, 0, 0, 0x97, 0x97]
    pub.send(w.publish(hog, payload, qos=2, pid=7, version=w.V5))
    rec = pub.expect(w.PUBREC)
    assert rec.body[2] == 0x97
    old = raw_connected(b, unique("old"))  # 3.1.1: PUBACK 0, dropped all the same
    old.send(w.publish(hog, payload, qos=1, pid=1))
    assert old.expect(w.PUBACK).raw == b"\x40\x02\x00\x01"

    # Everyone else keeps working: an online subscriber gets messages at once, even on the same topic.
    live_id = unique("live")
    live = raw_connected(b, live_id)
    raw_subscribe(live, hog, 1)
    pub.send(w.publish(hog, payload, qos=1, pid=8, version=w.V5))
    assert pub.expect(w.PUBACK).raw == b"\x40\x02\x00\x08"  # queued for someone: success
    p, f = recv_publish(live)
    assert f["payload"] == payload
    live.send(w.ack(w.PUBACK, f["pid"]))

    samples = scrape(admin_port(b))
    assert samples["midge_queued_bytes"] == 820
    # Refused for the offline session: pid 5, 6, 8 and the 3.1.1 one; pid 7 (QoS 2) at once.
    assert quota(samples, "max_queued_bytes_total") == 5

    # The offline client comes back: it gets the 4 that were queued, and the total is free again.
    back = raw(b)
    assert back.connect(cid, clean=False).raw == b"\x20\x02\x01\x00"
    got = []
    for _ in range(4):
        p, f = recv_publish(back)
        got.append(f["payload"])
        back.send(w.ack(w.PUBACK, f["pid"]))
    assert got == [payload] * 4
    assert scrape(admin_port(b))["midge_queued_bytes"] == 0
    # And the quota admits new queued messages again: with the online subscriber gone and the offline client
    # gone once more, a message queued only for it is accepted (0x00, not 0x97) and counted.
    offset = len(b.log())
    live.close()
    back.close()
    wait_for_log(b, f"Client {live_id} closed its connection.", offset)
    wait_for_log(b, f"Client {cid} closed its connection.", offset)
    check = raw_connected(b, unique("check"), version=w.V5)
    check.send(w.publish(hog, payload, qos=1, pid=1, version=w.V5))
    ack = check.expect(w.PUBACK)
    assert (ack.body[2] if len(ack.body) > 2 else 0) == 0
    assert scrape(admin_port(b))["midge_queued_bytes"] == 205
    assert b.log().count(f"Outgoing messages for client {cid} are being dropped: max_queued_bytes_total") == 1
    for c in (pub, old, check):
        c.close()


def test_a_long_publish_rate_hold_does_not_count_against_keep_alive(broker):
    """max_publish_bytes_rate 2000 and a 10 KB PUBLISH: about 4 s of debt, during which the broker reads
    nothing from the client. With keepalive 2 (a 3 s window) the client must not be closed as silent: the
    next packet is handled once the debt is paid, and the connection stays up."""
    b = broker(extra="max_publish_bytes_rate 2000\n")
    c = raw_connected(b, unique("slow"), keepalive=2)
    try:
        started = time.monotonic()
        c.send(w.publish("rate/big", b"b" * 10_000, qos=1, pid=1))
        assert c.expect(w.PUBACK).raw == b"\x40\x02\x00\x01"
        c.send(w.publish("rate/small", b"s", qos=1, pid=2))
        ack = c.expect(w.PUBACK, timeout=15)
        assert ack.raw == b"\x40\x02\x00\x02"
        assert time.monotonic() - started >= 3.0, "the second PUBLISH was not held back"
        c.send(w.pingreq())
        c.expect(w.PINGRESP)
    finally:
        c.close()
