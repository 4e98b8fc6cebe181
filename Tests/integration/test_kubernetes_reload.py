"""The Kubernetes story: install-time files from a Secret, changed while the broker runs.

Midge only. The config directory is laid out the way the kubelet mounts a Secret or a projected volume
(its AtomicWriter): the files live in a hidden timestamped directory, `..data` points at it, and each visible
name is a symlink through `..data`. An update writes a new timestamped directory and swaps `..data` with one
rename, so every file changes at once. Nobody sends SIGHUP: the broker notices through `watch_interval`.

Starting from the shipped plugins.conf and passwd (admin / admin) plus a certificate Secret, the test swaps in
a new password file and new certificates and shows, without a restart: the new password is accepted and the
old one refused, the client that used the old one is disconnected, new TLS connections get the new
certificate, and a connection whose credentials still hold (over TLS, with the old certificate) is untouched.
Then a replacement with one broken file (a key that does not match its certificate) next to a valid new
password file changes nothing at all, is logged with the file and counted in /metrics.
"""
from __future__ import annotations

import os
import subprocess
import time
import types
import urllib.request
from pathlib import Path

import pytest

from clients import WAIT, PahoClient, unique, wait_for_log
from conftest import BROKER_KIND, REPO, free_port, midge_bin, on_free_ports, stop_process, wait_for_ports
from test_tls import issue, make_ca

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Midge's file watching and environment")

SERVER_EXT = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
              "subjectAltName=DNS:localhost,IP:127.0.0.1\n")


class KubeletVolume:
    """A directory updated as the kubelet updates a Secret volume: all files at once, by a `..data` swap."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir()
        self.generation = 0

    def write(self, files: dict[str, bytes], mode: int = 0o440) -> None:
        self.generation += 1
        stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{self.generation:09d}"
        for path, content in files.items():
            target = self.dir / stamp / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            os.chmod(target, mode)
        old = os.readlink(self.dir / "..data") if (self.dir / "..data").is_symlink() else None
        os.symlink(stamp, self.dir / "..data_tmp")
        os.rename(self.dir / "..data_tmp", self.dir / "..data")     # the one atomic step
        for top in {Path(p).parts[0] for p in files}:
            if not (self.dir / top).is_symlink():
                os.symlink(f"..data/{top}", self.dir / top)
        if old:
            subprocess.run(["rm", "-rf", str(self.dir / old)], check=True)


def password_file(tmp: Path, users: dict[str, str]) -> bytes:
    path = tmp / f"passwd-{unique('p')}"
    for i, (user, password) in enumerate(users.items()):
        flags = ["-c"] if i == 0 else []
        r = subprocess.run([str(midge_bin()), "passwd", *flags, "-b", str(path), user, password],
                           capture_output=True, text=True, timeout=WAIT)
        assert r.returncode == 0, r.stderr
    return path.read_bytes()


def certificates(d: Path, name: str) -> dict[str, bytes]:
    """A CA and a localhost server certificate from it, as the files of a kubernetes.io/tls Secret."""
    d.mkdir()
    make_ca(d, f"{name}-ca")
    issue(d, f"{name}-ca", f"{name}-server", "/CN=localhost", SERVER_EXT)
    return {"certs/server.crt": (d / f"{name}-server.crt").read_bytes(),
            "certs/server.key": (d / f"{name}-server.key").read_bytes(),
            "certs/ca.crt": (d / f"{name}-ca.crt").read_bytes()}


class Pod:
    def __init__(self, top: Path, conf_dir: Path, conf_text: str):
        self.top, self.conf_dir = top, conf_dir
        self.host = "localhost"
        self.plain, self.tls, self.admin = free_port(), free_port(), free_port()
        self.conf = on_free_ports(conf_text, self.plain, self.tls, self.admin) + "\nwatch_interval 0.3\n"
        self.logfile = top / "midge.log"
        self.proc = None

    def start(self):
        env = dict(os.environ, MIDGE_CONFIG_DIR=str(self.conf_dir), MIDGE_STATE_DIR=str(self.top / "state"))
        with open(self.logfile, "wb") as out:
            self.proc = subprocess.Popen([str(midge_bin())], env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        wait_for_ports(self.proc, (self.plain, self.tls, self.admin), self.logfile, WAIT)
        return self

    def stop(self):
        if self.proc:
            stop_process(self.proc, WAIT)

    def log(self) -> str:
        return self.logfile.read_text()

    def endpoint(self, tls: bool):
        return types.SimpleNamespace(host="localhost", port=self.tls if tls else self.plain)

    def pub(self, user: str, password: str, cafile: Path | None = None) -> subprocess.CompletedProcess:
        cmd = ["mosquitto_pub", "-h", "localhost", "-t", "k8s/pub", "-m", "x", "-u", user, "-P", password]
        cmd += ["-p", str(self.tls), "--cafile", str(cafile)] if cafile else ["-p", str(self.plain)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT)

    def client(self, user: str, password: str, cafile: Path | None = None) -> PahoClient:
        c = PahoClient(self.endpoint(cafile is not None), ca_certs=str(cafile) if cafile else None)
        c.c.username_pw_set(user, password)
        c.connect()
        return c

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=WAIT) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not in /metrics")


def test_secret_updates_reload_live_and_a_broken_one_changes_nothing(tmp_path):
    volume = KubeletVolume(tmp_path / "etc-midge")
    pod = Pod(tmp_path, volume.dir, (REPO / "plugins.conf").read_text())
    first, second = certificates(tmp_path / "pki-1", "first"), certificates(tmp_path / "pki-2", "second")
    ca1, ca2 = tmp_path / "ca1.crt", tmp_path / "ca2.crt"
    ca1.write_bytes(first["certs/ca.crt"])
    ca2.write_bytes(second["certs/ca.crt"])
    volume.write({"plugins.conf": pod.conf.encode(), "passwd": (REPO / "passwd").read_bytes() + password_file(
        tmp_path, {"sensor": "sensor-pw"}), **first})
    pod.start()
    clients = []
    try:
        assert pod.pub("admin", "admin").returncode == 0
        assert pod.pub("sensor", "sensor-pw", cafile=ca1).returncode == 0
        old_admin = pod.client("admin", "admin")
        sensor = pod.client("sensor", "sensor-pw", cafile=ca1)          # TLS, first certificate
        clients += [old_admin, sensor]
        assert sensor.subscribe("k8s/#", qos=1) == [1]

        # The installer's update: a new password for admin (sensor unchanged) and new certificates.
        offset = len(pod.log())
        volume.write({"plugins.conf": pod.conf.encode(),
                      "passwd": password_file(tmp_path, {"admin": "new-admin-pw", "sensor": "sensor-pw"}), **second})
        wait_for_log(pod, "Reloaded (files changed)", offset)
        assert pod.pub("admin", "new-admin-pw").returncode == 0
        refused = pod.pub("admin", "admin")
        assert refused.returncode != 0 and "not authorised" in refused.stderr
        assert old_admin._disconnected.wait(WAIT), "the client with the old password stayed connected"
        assert pod.pub("admin", "new-admin-pw", cafile=ca2).returncode == 0      # the new certificate
        assert pod.pub("admin", "new-admin-pw", cafile=ca1).returncode != 0      # no longer the old one
        # Untouched: the TLS connection made with the first certificate still works both ways.
        assert not sensor._disconnected.is_set()
        sensor.publish("k8s/after", b"still here", qos=1)
        assert any(m.payload == b"still here" for m in sensor.get_until(b"still here"))
        assert pod.metric("midge_reloads_failed_total") == 0

        # A broken update: a valid new password file, but the key belongs to another certificate. Nothing of
        # it takes effect, not even the valid password file.
        offset = len(pod.log())
        broken = dict(second, **{"certs/server.key": first["certs/server.key"]})
        volume.write({"plugins.conf": pod.conf.encode(),
                      "passwd": password_file(tmp_path, {"admin": "third-pw", "sensor": "sensor-pw"}), **broken})
        wait_for_log(pod, "the last good state stays in force", offset)
        report = pod.log()[offset:]
        assert f"{volume.dir}/certs/server.key" in report and "does not match the certificate" in report, report
        assert pod.pub("admin", "third-pw").returncode != 0
        assert pod.pub("admin", "new-admin-pw").returncode == 0
        assert pod.pub("admin", "new-admin-pw", cafile=ca2).returncode == 0
        assert not sensor._disconnected.is_set()
        # The broken files are not retried over and over: still one failure several intervals later (a quiet
        # period: there is no event to wait for).
        time.sleep(1.5)
        assert pod.metric("midge_reloads_failed_total") == 1
        assert pod.log()[offset:].count("failed with 1 error(s)") == 1

        # Fixed: the next update goes through.
        offset = len(pod.log())
        volume.write({"plugins.conf": pod.conf.encode(),
                      "passwd": password_file(tmp_path, {"admin": "third-pw", "sensor": "sensor-pw"}), **second})
        wait_for_log(pod, "Reloaded (files changed)", offset)
        assert pod.pub("admin", "third-pw", cafile=ca2).returncode == 0
    finally:
        for c in clients:
            c.stop()
        pod.stop()
    log = pod.log()
    for secret in ("sensor-pw", "new-admin-pw", "third-pw"):
        assert secret not in log


def test_environment_overrides_and_what_start_up_says(tmp_path):
    """MIDGE_ADMIN_USERNAME / MIDGE_ADMIN_PASSWORD replace admin / admin; the port and log level variables
    move listeners; start-up names each variable that set something, never the password."""
    d = tmp_path / "midge"
    d.mkdir()
    (d / "plugins.conf").write_text(on_free_ports((REPO / "plugins.conf").read_text()))
    (d / "passwd").write_bytes((REPO / "passwd").read_bytes())
    os.chmod(d / "passwd", 0o640)
    plain, tls, admin = free_port(), free_port(), free_port()
    env = dict(os.environ, MIDGE_CONFIG_DIR=str(d), MIDGE_STATE_DIR=str(tmp_path / "state"),
               MIDGE_PORT=str(plain), MIDGE_TLS_PORT=str(tls), MIDGE_ADMIN_PORT=str(admin),
               MIDGE_ADMIN_USERNAME="installer", MIDGE_ADMIN_PASSWORD="installer-secret-1",
               MIDGE_LOG_LEVEL="debug")
    logfile = tmp_path / "log.txt"
    with open(logfile, "wb") as out:
        proc = subprocess.Popen([str(midge_bin())], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        wait_for_ports(proc, (plain, tls, admin), logfile, WAIT)

        def pub(user, password):
            return subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(plain), "-t", "t", "-m", "x",
                                   "-u", user, "-P", password], capture_output=True, text=True, timeout=WAIT)
        assert pub("installer", "installer-secret-1").returncode == 0
        assert pub("installer", "wrong").returncode != 0
        assert pub("admin", "admin").returncode != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=WAIT) as r:
            assert r.status == 200
        # -E: exit once subscribed.
        r = subprocess.run(["mosquitto_sub", "-h", "localhost", "-p", str(plain), "-t", "t", "-E", "-i", "sub-1",
                            "-u", "installer", "-P", "installer-secret-1"], capture_output=True, timeout=WAIT)
        assert r.returncode == 0
    finally:
        stop_process(proc, WAIT)
    log = logfile.read_text()
    assert "installer-secret-1" not in log
    for variable in ("MIDGE_PORT", "MIDGE_TLS_PORT", "MIDGE_ADMIN_PORT", "MIDGE_LOG_LEVEL", "MIDGE_CONFIG_DIR",
                     "MIDGE_ADMIN_PASSWORD"):
        assert variable in log, (variable, log)
    assert "default password" not in log        # admin / admin no longer works: no warning about it
    assert "Received SUBSCRIBE from sub-1" in log   # MIDGE_LOG_LEVEL=debug: debug lines are on


@pytest.mark.parametrize("env, message", [
    ({"MIDGE_PORT": "http"}, "MIDGE_PORT='http': expected a port"),
    ({"MIDGE_ADMIN_USERNAME": "ops"}, "MIDGE_ADMIN_USERNAME is set but MIDGE_ADMIN_PASSWORD is not"),
    ({"MIDGE_LOG_LEVEL": "loud"}, "MIDGE_LOG_LEVEL='loud'"),
])
def test_a_bad_environment_variable_stops_start_up(tmp_path, env, message):
    (tmp_path / "plugins.conf").write_text(on_free_ports((REPO / "plugins.conf").read_text()))
    r = subprocess.run([str(midge_bin()), "-c", str(tmp_path / "plugins.conf")], capture_output=True, text=True,
                       timeout=WAIT, env=dict(os.environ, **env), stdin=subprocess.DEVNULL)
    assert r.returncode == 3
    assert message in r.stderr


def test_check_config_applies_the_environment_too(tmp_path):
    (tmp_path / "plugins.conf").write_text(on_free_ports((REPO / "plugins.conf").read_text()))
    (tmp_path / "passwd").write_bytes((REPO / "passwd").read_bytes())
    env = dict(os.environ, MIDGE_TLS_PORT="18883", MIDGE_ADMIN_PASSWORD="check-secret-9", MIDGE_LOG_FORMAT="json")
    r = subprocess.run([str(midge_bin()), "check-config", "-c", str(tmp_path / "plugins.conf")], capture_output=True,
                       text=True, timeout=WAIT, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "port 18883 from MIDGE_TLS_PORT" in r.stdout
    assert "log_format json from MIDGE_LOG_FORMAT" in r.stdout
    assert "MIDGE_ADMIN_PASSWORD" in r.stdout and "check-secret-9" not in r.stdout + r.stderr
    assert "default password" not in r.stdout          # admin / admin is refused with MIDGE_ADMIN_PASSWORD
    plain = subprocess.run([str(midge_bin()), "check-config", "-c", str(tmp_path / "plugins.conf")],
                           capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL,
                           env={k: v for k, v in os.environ.items() if not k.startswith("MIDGE_")})
    assert plain.returncode == 0 and "The user admin still has the default password admin." in plain.stdout
    bad = subprocess.run([str(midge_bin()), "check-config", "-c", str(tmp_path / "plugins.conf")], capture_output=True,
                         text=True, timeout=WAIT, env=dict(env, MIDGE_LOG_FORMAT="xml"), stdin=subprocess.DEVNULL)
    assert bad.returncode == 3 and "MIDGE_LOG_FORMAT='xml'" in bad.stderr
