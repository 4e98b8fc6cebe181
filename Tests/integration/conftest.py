"""Fixtures that run a real broker process for the integration tests.

BROKER=midge (default) runs MIDGE_BIN (default <repo>/.build/debug/midge);
BROKER=mosquitto runs Debian's /usr/sbin/mosquitto. Both get the same
mosquitto.conf-style file and the same command line (`-c FILE -v`).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO_BIN = "/usr/sbin/mosquitto"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

BROKER_KIND = os.environ.get("BROKER", "midge").strip().lower()
if BROKER_KIND not in ("midge", "mosquitto"):
    raise pytest.UsageError(f"BROKER must be 'midge' or 'mosquitto', not {BROKER_KIND!r}")


def midge_bin() -> Path:
    return Path(os.environ.get("MIDGE_BIN", REPO / ".build" / "debug" / "midge"))


def broker_bin(kind: str) -> str:
    if kind == "mosquitto":
        return MOSQUITTO_BIN
    path = midge_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"BROKER=midge but the midge binary {path} is missing or not executable: "
                    "build it with `swift build`, point MIDGE_BIN at it, "
                    "or run with BROKER=mosquitto", pytrace=False)
    return str(path)


def on_free_ports(conf_text: str, plain: int | None = None, tls: int | None = None,
                  admin: int | None = None) -> str:
    """The shipped plugins.conf (or the manifest's) with `listener 1883`, `listener 8883` and `admin_listener
    9883` moved to the given (or free) ports on loopback; nothing else changed."""
    replacements = [(r"^listener 1883$", "listener", plain), (r"^listener 8883$", "listener", tls),
                    (r"^admin_listener 9883$", "admin_listener", admin)]
    for pattern, directive, port in replacements:
        conf_text, n = re.subn(pattern, f"{directive} {port or free_port()} 127.0.0.1", conf_text, flags=re.M)
        assert n == 1, (pattern, conf_text)
    return conf_text


_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port free right now that this process has not handed out before. The probe socket is closed
    before the broker binds the port, so the kernel may offer the same port to the next call: a test that asks
    for two ports (the fixture's and a TLS or websockets listener's) would then configure the same port twice
    and the broker would fail to start. Never giving out a port twice rules that out."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port
    raise RuntimeError("no loopback port that was not handed out before")


@dataclass
class Broker:
    """A running broker process (see the `broker` fixture)."""
    kind: str
    host: str
    port: int
    workdir: Path
    proc: subprocess.Popen = field(repr=False)

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL when it has not exited within `timeout`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def wait_for_ports(proc: subprocess.Popen, ports, log: Path, timeout: float = START_TIMEOUT) -> None:
    """Until every port in `ports` accepts on 127.0.0.1 (bounded); fails with `log` if `proc` exits."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            assert proc.poll() is None, f"midge exited: {log.read_text()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"port {port} not open: {log.read_text()}"
                time.sleep(0.02)  # polling for the port is the one accepted busy-wait


def _wait_listening(b: Broker) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if b.proc.poll() is not None:
            raise RuntimeError(f"{b.kind} exited with status {b.proc.returncode} before listening")
        try:
            socket.create_connection(b.addr, timeout=0.5).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{b.kind} did not accept connections on {b.port} "
                               f"within {START_TIMEOUT:.0f} s")
        time.sleep(0.02)  # polling for the port is the one accepted busy-wait


def start_broker(kind: str, workdir: Path, extra: str = "", config: bool = True,
                 verbose: bool = True) -> Broker:
    """Start `kind` with `-c broker.conf -v`, or with `-p PORT -v` only when config is False
    (without `-v` when verbose is False: the config's log_type decides)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "broker.conf"
    text = f"listener {port} 127.0.0.1\n"
    if "allow_anonymous" not in extra:
        text += "allow_anonymous true\n"
    conf.write_text(text + (extra.strip() + "\n" if extra.strip() else ""))
    args = ["-c", str(conf)] if config else ["-p", str(port)]
    log = open(workdir / "broker.log", "wb")
    proc = subprocess.Popen([broker_bin(kind), *args, *(["-v"] if verbose else [])], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    log.close()
    b = Broker(kind, "127.0.0.1", port, workdir, proc)
    try:
        _wait_listening(b)
    except RuntimeError as e:
        b.stop()
        pytest.fail(f"{e}\n--- args: {args}\n--- config ---\n{conf.read_text()}--- log ---\n{b.log()}",
                    pytrace=False)
    return b


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the log of every broker a failed test started to its report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for b in item.stash.get(_BROKERS_KEY, []):
            report.sections.append((f"{b.kind} log (port {b.port})", b.log()))


_BROKERS_KEY = pytest.StashKey[list]()


def _factory(request, tmp_path):
    started: list[Broker] = []
    request.node.stash[_BROKERS_KEY] = started

    def start(kind: str, extra: str = "", config: bool = True, verbose: bool = True) -> Broker:
        b = start_broker(kind, tmp_path / f"{kind}-{len(started)}", extra, config, verbose)
        started.append(b)
        return b

    return start, started


@pytest.fixture
def broker(request, tmp_path):
    """Factory: `b = broker()` or `broker(extra="max_inflight_messages 5")`.

    Starts the broker selected by BROKER with `listener PORT 127.0.0.1`,
    `allow_anonymous true` (unless `extra` sets it) and `extra`; returns a
    Broker with .host/.port. `broker(config=False)` starts it as `-p PORT -v`
    instead. Every broker started is stopped at teardown.
    """
    start, started = _factory(request, tmp_path)
    yield lambda extra="", config=True, verbose=True: start(BROKER_KIND, extra, config, verbose)
    for b in started:
        b.stop()


@pytest.fixture
def both_brokers(request, tmp_path):
    """Factory: `mosq, midge = both_brokers(extra="...")`, same config for both."""
    if BROKER_KIND == "mosquitto":
        pytest.skip("side-by-side comparison needs BROKER=midge")
    start, started = _factory(request, tmp_path)
    yield lambda extra="": (start("mosquitto", extra), start("midge", extra))
    for b in started:
        b.stop()
