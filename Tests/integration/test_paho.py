"""Real-client behaviour with paho-mqtt 2.x over MQTT 3.1, 3.1.1 and 5.0."""
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from clients import PahoClient, unique

ALL = pytest.mark.parametrize("protocol", ["3.1", "3.1.1", "5"])


def connected(b, protocol="3.1.1", **kw):
    c = PahoClient(b, protocol=protocol, **kw)
    c.connect()
    return c


@pytest.fixture
def clients():
    made = []
    yield made
    for c in made:
        c.stop()


@ALL
def test_wildcards_and_qos_levels(broker, clients, protocol):
    b = broker()
    root = unique("root")
    plus = connected(b, protocol)
    hash_ = connected(b, protocol)
    pub = connected(b, protocol)
    clients += [plus, hash_, pub]
    assert plus.subscribe(f"{root}/+/x", 2) == [2]
    assert hash_.subscribe(f"{root}/#", 2) == [2]

    sent = [(f"{root}/a/x", b"q0", 0), (f"{root}/b/x", b"q1", 1), (f"{root}/c/x", b"q2", 2),
            (f"{root}/a/y", b"only-hash", 1), (f"{root}/a/x/z", b"deep", 1),
            (root, b"parent", 2), (f"{root}/x", b"one-level", 0)]
    for topic, payload, qos in sent:
        pub.publish(topic, payload, qos)
    # paho hands a QoS 2 message to on_message only after PUBREL, so QoS 0/1 messages
    # published later may overtake it: compare as sets, behind a QoS 2 end marker
    # (whose PUBREL follows those of all earlier QoS 2 messages).
    end = (f"{root}/end/x", b"end", 2)
    pub.publish(*end)

    got_plus = [(m.topic, m.payload, m.qos) for m in plus.get_until(b"end")]
    got_hash = [(m.topic, m.payload, m.qos) for m in hash_.get_until(b"end")]
    assert got_plus[-1] == got_hash[-1] == end
    assert sorted(got_plus[:-1]) == sorted(s for s in sent if s[0].endswith("/x") and s[0].count("/") == 2)
    assert sorted(got_hash[:-1]) == sorted(sent)


@ALL
def test_subscription_qos_caps_delivery_qos(broker, clients, protocol):
    b = broker()
    topic = unique("cap")
    sub, pub = connected(b, protocol), connected(b, protocol)
    clients += [sub, pub]
    assert sub.subscribe(topic, 1) == [1]
    for qos in (0, 1, 2):
        pub.publish(topic, b"%d" % qos, qos)
    assert [(m.payload, m.qos) for m in sub.get_n(3)] == [(b"0", 0), (b"1", 1), (b"2", 1)]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_dollar_topics_not_matched_by_leading_wildcards(broker, clients, protocol):
    b = broker()
    sub_hash, sub_plus, sub_dollar, pub = (connected(b, protocol) for _ in range(4))
    clients += [sub_hash, sub_plus, sub_dollar, pub]
    assert sub_hash.subscribe("#", 0) == [0]
    assert sub_plus.subscribe("+/x", 0) == [0]
    assert sub_dollar.subscribe("$test/#", 0) == [0]

    pub.publish("$test/x", b"dollar", 1)
    pub.publish("marker/x", b"marker", 1)

    assert [m.payload for m in sub_dollar.get_n(1)] == [b"dollar"]
    assert [m.payload for m in sub_hash.get_until(b"marker")] == [b"marker"]
    assert [m.payload for m in sub_plus.get_until(b"marker")] == [b"marker"]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_shared_subscription_delivers_each_message_once(broker, clients, protocol):
    b = broker()
    group, topic = unique("g"), unique("shared")
    marker_topic = topic + "-marker"
    members = [connected(b, protocol) for _ in range(2)]
    pub = connected(b, protocol)
    clients += members + [pub]
    for m in members:
        assert m.subscribe(f"$share/{group}/{topic}", 1) == [1]
        assert m.subscribe(marker_topic, 1) == [1]

    payloads = [b"msg-%02d" % i for i in range(10)]
    for p in payloads:
        pub.publish(topic, p, 1)
    pub.publish(marker_topic, b"marker", 1)  # delivered to both members, after their shares

    received = []
    for m in members:
        got = m.get_until(b"marker")
        assert all(x.topic == topic for x in got[:-1])
        received += [x.payload for x in got[:-1]]
    assert sorted(received) == payloads, "each shared message must reach exactly one member"


def test_v5_user_properties_reach_subscriber(broker, clients):
    b = broker()
    topic = unique("props")
    sub, pub = connected(b, "5"), connected(b, "5")
    clients += [sub, pub]
    assert sub.subscribe(topic, 1) == [1]

    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("trace", "abc-123"), ("unit", "°C"), ("trace", "second")]
    props.ContentType = "text/plain"
    pub.publish(topic, b"21.5", 1, properties=props)

    m = sub.get()
    assert m.payload == b"21.5"
    assert m.properties.UserProperty == [("trace", "abc-123"), ("unit", "°C"), ("trace", "second")]
    assert m.properties.ContentType == "text/plain"


def test_v5_suback_reason_codes(broker, clients):
    b = broker()
    base = unique("rc")
    c = connected(b, "5")
    clients.append(c)
    codes = c.subscribe([(f"{base}/0", SubscribeOptions(qos=0)),
                         (f"{base}/1", SubscribeOptions(qos=1)),
                         (f"{base}/2", SubscribeOptions(qos=2)),
                         (f"$share/{base}/s", SubscribeOptions(qos=2))])
    assert codes == [0, 1, 2, 2]


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_max_qos_limits_granted_qos(broker, clients, protocol):
    b = broker(extra="max_qos 1")
    c = connected(b, protocol)
    clients.append(c)
    assert c.subscribe(unique("mq"), 2) == [1]


def test_v5_no_local_option(broker, clients):
    b = broker()
    topic = unique("nolocal")
    c = connected(b, "5")
    other = connected(b, "5")
    clients += [c, other]
    assert c.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True)) == [1]
    c.publish(topic, b"own", 1)
    other.publish(topic, b"other", 1)
    assert [m.payload for m in c.get_until(b"other")] == [b"other"]
