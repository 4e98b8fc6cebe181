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


def test_daemon_flag_detaches_writes_pid_file_and_stops_on_sigterm(tmp_path):
    """`-d` (as mosquitto's): the command returns, the broker serves, pid_file names it, SIGTERM stops it."""
    import os
    import signal
    import socket
    import subprocess
    import time

    from conftest import BROKER_KIND, broker_bin, free_port

    port, pid_file = free_port(), tmp_path / "broker.pid"
    conf = tmp_path / "d.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npid_file {pid_file}\nuser root\n")
    r = subprocess.run([broker_bin(BROKER_KIND), "-c", str(conf), "-d"], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "no pid file"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "daemon not listening"
                time.sleep(0.05)
        mosquitto_pub(type("B", (), {"host": "127.0.0.1", "port": port})(), "d/t", "-m", "x")
    finally:
        os.kill(pid, signal.SIGTERM)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline + 10, "daemon did not stop on SIGTERM"
        time.sleep(0.05)
