"""MQTT 5.0 will delay interval: the will waits; a client that comes back in time cancels it."""
import time

import mqttwire as w
from clients import WAIT, raw, raw_connected, raw_subscribe, recv_publish, unique


def _connect_with_delayed_will(b, cid, topic, delay, expiry=300):
    c = raw(b)
    will_props = w.props((0x18, delay))
    ack = c.connect(cid, version=w.V5, clean=False, properties=w.props((0x11, expiry)),
                    will=(topic, b"gone", 0, False), will_properties=will_props)
    assert ack.body[1] == 0, ack
    return c


def test_will_is_published_after_its_delay(broker):
    b = broker()
    topic = unique("wd")
    watcher = raw_connected(b, unique("watch"), version=w.V5)
    raw_subscribe(watcher, topic, 0, version=w.V5)
    c = _connect_with_delayed_will(b, unique("delayed"), topic, 2)
    lost_at = time.monotonic()
    c.close()                                        # abnormal loss: no DISCONNECT
    p, f = recv_publish(watcher, w.V5, timeout=WAIT)
    assert f["payload"] == b"gone"
    assert time.monotonic() - lost_at >= 1.9         # not before the delay
    assert 0x18 not in [k for k, _ in f.get("properties", [])]  # the will's own property is not forwarded


def test_reconnecting_within_the_delay_cancels_the_will(broker):
    b = broker()
    topic, cid = unique("wd"), unique("back")
    watcher = raw_connected(b, unique("watch"), version=w.V5)
    raw_subscribe(watcher, topic, 0, version=w.V5)
    _connect_with_delayed_will(b, cid, topic, 2).close()
    again = raw(b)
    assert again.connect(cid, version=w.V5, clean=False, properties=w.props((0x11, 300))).body[:2] == b"\x01\x00"
    # A plain message after the delay proves the watcher would have seen the will by then.
    time.sleep(2.5)  # the will delay itself is what is being tested: nothing to await but time
    pub = raw_connected(b, unique("pub"), version=w.V5)
    pub.send(w.publish(topic, b"after", version=w.V5))
    p, f = recv_publish(watcher, w.V5, timeout=WAIT)
    assert f["payload"] == b"after"
