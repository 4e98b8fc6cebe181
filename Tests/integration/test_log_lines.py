"""Log lines are cut at 1,000 bytes, newline included, as Mosquitto cuts them (`log__vprintf` formats each line
into `char log_line[1000]`): a 65,535-byte topic is not written whole."""
import mqttwire as w
from clients import raw_connected, unique, wait_for_log

LIMIT = 999  # bytes before the newline


def test_a_denied_publish_to_a_65535_byte_topic_is_logged_cut(broker, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite allowed/#\n")
    # `user root`: Mosquitto would drop privileges before reading the file (pytest's tmp dir is 0700)
    b = broker(extra=f"user root\nacl_file {acl}\n")
    cid = unique("long")
    topic = "denied/" + "x" * (65_535 - len("denied/"))
    c = raw_connected(b, cid)
    try:
        c.send(w.publish(topic, b"payload", qos=1, pid=1))
        assert c.expect(w.PUBACK).pid == 1  # 3.1.1: a denied PUBLISH is acknowledged and dropped
        wait_for_log(b, f"Denied PUBLISH from {cid}", 0)
    finally:
        c.close()
    lines = b.log_path.read_bytes().split(b"\n")
    denied = [line for line in lines if f"Denied PUBLISH from {cid}".encode() in line]
    assert denied, b.log()[-2000:]
    assert all(len(line) == LIMIT for line in denied), [len(line) for line in denied]
    assert max(len(line) for line in lines) <= LIMIT
