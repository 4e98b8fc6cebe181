"""A log destination that does not keep up (stderr on a pipe nobody reads) never stalls clients or shutdown:
lines wait in `log_buffer_size` bytes, what does not fit is dropped, counted in /metrics and reported once.
Mosquitto writes its log on its one thread, so a full pipe stops it: Midge only."""
from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest

import mqttwire as w
from clients import WAIT, Canary, raw_connected, unique
from conftest import BROKER_KIND, STOP_TIMEOUT, free_port, midge_bin, stop_process, wait_for_ports
from test_admin_http import get

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Mosquitto's log writes block its loop")

@dataclass
class Address:
    """Where the broker listens (what the raw clients need of a `Broker`)."""
    host: str
    port: int


DROPPED = re.compile(rb"Warning: (\d+) log lines? dropped: the log destination did not keep up")


def metric(port: int, name: str) -> float:
    status, _, body = get(port, "/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def noisy_publishes(b, count: int) -> None:
    """`count` QoS 1 publishes to a 65,535-byte topic, each logged by -v in a line of 999 bytes; every PUBACK
    must come back although nobody reads the log."""
    c = raw_connected(b, unique("noisy"))
    try:
        topic = "noise/" + "x" * (65_535 - len("noise/"))
        for pid in range(1, count + 1):
            c.send(w.publish(topic, b"p", qos=1, pid=pid))
            assert c.expect(w.PUBACK, WAIT).pid == pid
    finally:
        c.close()


class UnreadStderr:
    """A pipe for the broker's stderr that is only read when asked (its 64 KiB fill up first)."""

    def __init__(self):
        self.read_end, self.write_end = os.pipe()
        self.data = b""
        self.reader: threading.Thread | None = None

    def drain_until(self, pattern: re.Pattern, timeout: float = WAIT) -> re.Match:
        """Reads everything (in a thread, from now until the broker exits) until `pattern` appears."""
        if self.reader is None:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
        deadline = time.monotonic() + timeout
        while not (match := pattern.search(self.data)):
            assert time.monotonic() < deadline, self.data[-2000:]
            time.sleep(0.02)  # the thread appends as it reads; poll its buffer, bounded
        return match

    def _read(self) -> None:
        while chunk := os.read(self.read_end, 65536):
            self.data += chunk

    def close(self) -> None:
        os.close(self.read_end)


def start_unread(tmp_path, ports: list[int], extra: str = "") -> tuple[subprocess.Popen, UnreadStderr]:
    """`midge -v` on ports[0] with its stdout and stderr on an UnreadStderr; returns once every port accepts."""
    conf = tmp_path / "broker.conf"
    conf.write_text(f"listener {ports[0]} 127.0.0.1\nallow_anonymous true\n{extra}")
    stderr = UnreadStderr()
    proc = subprocess.Popen([str(midge_bin()), "-c", str(conf), "-v"], stdin=subprocess.DEVNULL,
                            stdout=stderr.write_end, stderr=stderr.write_end, cwd=tmp_path)
    os.close(stderr.write_end)
    log = tmp_path / "unread.log"
    log.write_text("(the log is the unread pipe)")
    try:
        wait_for_ports(proc, ports, log)
    except BaseException:
        stop_process(proc)
        stderr.close()
        raise
    return proc, stderr


def test_a_log_nobody_reads_stalls_no_client_and_no_shutdown(tmp_path):
    port, admin = free_port(), free_port()
    proc, stderr = start_unread(tmp_path, [port, admin], f"admin_listener {admin} 127.0.0.1\nplugin prometheus\n"
                                "log_buffer_size 16384\n")
    try:
        b = Address("127.0.0.1", port)
        # 64 KiB of pipe and 16 KiB of buffer hold about 80 of these lines: 300 fill both, and then some.
        noisy_publishes(b, 300)
        canary = Canary(b)
        canary.roundtrip()
        canary.close()
        dropped = metric(admin, "midge_log_lines_dropped_total")
        assert dropped > 0

        # Reading again lets the writer go on: what it kept is written, then one warning with the count.
        match = stderr.drain_until(DROPPED)
        assert 0 < int(match.group(1)) <= metric(admin, "midge_log_lines_dropped_total")
        assert len(DROPPED.findall(stderr.data)) == 1, "reported once, not per line"
    finally:
        stop_process(proc)
        stderr.close()


def test_sigterm_ends_the_broker_while_its_log_is_blocked(tmp_path):
    port = free_port()
    proc, stderr = start_unread(tmp_path, [port])
    try:
        noisy_publishes(Address("127.0.0.1", port), 200)
        started = time.monotonic()
        proc.terminate()
        # The writer is stuck on the full pipe: the broker waits two seconds for it, then exits anyway.
        assert proc.wait(STOP_TIMEOUT) == 0
        assert time.monotonic() - started < STOP_TIMEOUT
    finally:
        stop_process(proc)
        stderr.close()
