"""End to end with the stock mosquitto_pub / mosquitto_sub command-line clients."""
import pytest

from clients import MosquittoSub, mosquitto_pub, unique


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub_end_to_end(broker, qos):
    b = broker()
    topic = unique("cli") + "/t"
    sub = MosquittoSub(b, topic, qos=qos, count=3)
    try:
        sub.wait_subscribed()
        mosquitto_pub(b, topic, "-q", str(qos), "-l", stdin="one\ntwo\nthree\n")
        msgs = sub.finish()
    finally:
        sub.kill()
    assert msgs == [(topic, qos, False, p) for p in ("one", "two", "three")]


def test_pub_sub_qos_is_downgraded_to_subscription(broker):
    b = broker()
    topic = unique("cli")
    sub = MosquittoSub(b, topic, qos=1, count=1)
    try:
        sub.wait_subscribed()
        mosquitto_pub(b, topic, "-q", "2", "-m", "down")
        assert sub.finish() == [(topic, 1, False, "down")]
    finally:
        sub.kill()


def test_retained_message_reaches_late_subscriber_and_empty_payload_clears_it(broker):
    b = broker()
    topic = unique("retained")
    mosquitto_pub(b, topic, "-r", "-q", "1", "-m", "kept")

    late = MosquittoSub(b, topic, qos=1, count=1)
    try:
        assert late.finish() == [(topic, 1, True, "kept")]
    finally:
        late.kill()

    mosquitto_pub(b, topic, "-r", "-q", "1", "-n")  # zero-length retained payload deletes it

    # --retained-only exits at the first non-retained message: the marker. A
    # surviving retained message would be delivered (and printed) before it.
    check = MosquittoSub(b, topic, qos=1, count=5, extra=("--retained-only",))
    try:
        check.wait_subscribed()
        mosquitto_pub(b, topic, "-q", "1", "-m", "marker")
        assert check.finish() == []
    finally:
        check.kill()
