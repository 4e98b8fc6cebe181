"""The admin HTTP listener (`admin_listener PORT [BIND_ADDRESS]`): health and readiness probes over real HTTP.

Midge only (Mosquitto has no admin listener): skipped with BROKER=mosquitto. With `admin_listener 0` the port is
ephemeral; the test reads it from the log line "Admin HTTP listener on port N."
"""
from __future__ import annotations

import http.client
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import BROKER_KIND, START_TIMEOUT, free_port, midge_bin

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="admin_listener is Midge's")

TIMEOUT = 5.0
PORT_LINE = re.compile(r"Admin HTTP listener on port (\d+)\.")


def admin_port(b) -> int:
    """The admin port the broker logged. It binds after the MQTT listeners, so the line may lag the fixture."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        match = PORT_LINE.search(b.log())
        if match:
            return int(match.group(1))
        assert b.proc.poll() is None, f"midge exited with {b.proc.returncode}:\n{b.log()}"
        assert time.monotonic() < deadline, f"no admin listener line in the log:\n{b.log()}"
        time.sleep(0.02)  # a log file gives no event to wait for: poll it, bounded, as conftest polls the port


def wait_ready(port: int):
    """/readyz's answer once it is 200. The MQTT port accepts before start-up has finished (readiness is
    the last step), so a test that expects "ready" right after the fixture raced it on a loaded machine."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        answer = get(port, "/readyz")
        if answer[0] == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)  # as a readiness probe does: poll, bounded


def get(port: int, path: str, method: str = "GET", data: bytes | None = None):
    """(status, headers, body) for one request with urllib; HTTP errors are answers too."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def test_healthz_and_readyz(broker):
    b = broker(extra="admin_listener 0 127.0.0.1")
    port = admin_port(b)
    assert port != b.port

    status, headers, body = get(port, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"

    status, _, body = wait_ready(port)
    assert (status, body) == (200, b"ready\n")


def test_head_unknown_path_and_other_methods(broker):
    port = admin_port(broker(extra="admin_listener 0 127.0.0.1"))
    wait_ready(port)

    status, headers, body = get(port, "/readyz", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(b"ready\n"))

    status, _, _ = get(port, "/metrics")
    assert status == 404, "no plugin publishes /metrics in this config"

    status, headers, _ = get(port, "/healthz", method="POST", data=b"x=1")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_keep_alive_serves_several_requests_on_one_connection(broker):
    port = admin_port(broker(extra="admin_listener 0 127.0.0.1"))
    wait_ready(port)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        assert (first.status, first.read()) == (200, b"ok\n")
        sock = connection.sock
        connection.request("GET", "/readyz")
        second = connection.getresponse()
        assert (second.status, second.read()) == (200, b"ready\n")
        assert connection.sock is sock, "the client had to reconnect: keep-alive was not honoured"
    finally:
        connection.close()


def test_fixed_port_on_all_interfaces(broker):
    port = free_port()
    b = broker(extra=f"admin_listener {port}")
    assert admin_port(b) == port
    assert get(port, "/healthz")[0] == 200


def test_sigterm_closes_the_admin_listener(broker):
    b = broker(extra="admin_listener 0 127.0.0.1")
    port = admin_port(b)
    assert wait_ready(port)[0] == 200
    b.stop()
    assert b.proc.returncode == 0, b.log()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()


@pytest.mark.parametrize("lines, line, message", [
    ("admin_listener 9090\nadmin_listener 9091\n", 3, "duplicate 'admin_listener' (already set at"),
    ("admin_listener 70000\n", 2, "invalid port 70000 for 'admin_listener'"),
    ("admin_listener 9090 127.0.0.1 extra\n", 2, "unexpected 'extra'"),
])
def test_config_errors_name_file_and_line(tmp_path, lines, line, message):
    conf = tmp_path / "broker.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\n{lines}")
    result = subprocess.run([str(midge_bin()), "-c", str(conf)], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=TIMEOUT * 2)
    assert result.returncode == 3, result.stderr
    assert f"{conf}:{line}: " in result.stderr
    assert message in result.stderr


def test_a_busy_admin_port_stops_start_up_before_any_mqtt_port_opens(tmp_path):
    """The admin listener is bound first: when its port is taken, midge exits with the error (file and line)
    and never accepted MQTT connections."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        mqtt_port = free_port()
        conf = tmp_path / "broker.conf"
        conf.write_text(f"listener {mqtt_port} 127.0.0.1\nadmin_listener {blocker.getsockname()[1]} 127.0.0.1\n")
        result = subprocess.run([str(midge_bin()), "-c", str(conf)], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=TIMEOUT * 2)
    finally:
        blocker.close()
    assert result.returncode != 0
    assert f"{conf}:2: cannot listen on admin_listener port" in result.stderr
    assert "listen socket" not in result.stderr
