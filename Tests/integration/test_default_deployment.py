"""The default deployment (plugins.conf + passwd + generated certs in one directory), as a new user runs it.

Midge only. The shipped plugins.conf is copied into a temporary directory with its ports replaced by free ones;
everything else is the file as shipped.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from clients import WAIT, MosquittoSub, unique
from conftest import BROKER_KIND, REPO, free_port, midge_bin, on_free_ports, stop_process, wait_for_ports

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Midge's own default deployment")


class Deployment:
    def __init__(self, directory: Path, user: str | None = None):
        self.dir = directory
        self.plain, self.tls, self.admin = free_port(), free_port(), free_port()
        self.user = user
        self.proc = None
        self.log = directory.parent / f"log-{directory.name}-{time.monotonic_ns()}.txt"

    def start(self):
        conf = on_free_ports((REPO / "plugins.conf").read_text(), self.plain, self.tls, self.admin)
        if os.access(self.dir, os.W_OK):
            (self.dir / "plugins.conf").write_text(conf)
        cmd = [str(midge_bin()), "--config-dir", str(self.dir), "-v"]
        if self.user:
            cmd = ["setpriv", "--reuid", self.user, "--regid", "0", "--clear-groups"] + cmd
        env = dict(os.environ, MIDGE_STATE_DIR=str(self.dir.parent / "state"))
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        wait_for_ports(self.proc, (self.plain, self.tls), self.log, WAIT)
        return self

    def stop(self):
        if self.proc:
            stop_process(self.proc, WAIT)


def installed_copy(tmp_path: Path) -> Path:
    d = tmp_path / "midge"
    d.mkdir()
    shutil.copy(REPO / "passwd", d / "passwd")
    os.chmod(d / "passwd", 0o640)
    return d


def seed_commands_work(dep: Deployment, cafile: Path):
    """The seed's two client commands, verbatim but for the port: publish with admin/admin on the plain
    port; subscribe over TLS with --cafile, with --insecure and without it (against localhost)."""
    for insecure in (["--insecure"], []):
        topic = unique("foo")
        sub = MosquittoSub(type("B", (), {"host": "localhost", "port": dep.tls})(), topic, count=1,
                           extra=("--cafile", str(cafile), *insecure, "-u", "admin", "-P", "admin"))
        try:
            sub.wait_subscribed()
            r = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(dep.plain), "-t", topic,
                                "-m", "Some text", "-u", "admin", "-P", "admin"],
                               capture_output=True, text=True, timeout=WAIT)
            assert r.returncode == 0, r.stderr
            assert [m[3] for m in sub.finish()] == ["Some text"]
        finally:
            sub.kill()


def test_first_start_generates_certificates_and_the_seed_commands_work(tmp_path):
    d = installed_copy(tmp_path)
    dep = Deployment(d).start()
    try:
        assert (d / "certs" / "ca.crt").exists() and (d / "certs" / "server.key").exists()
        assert oct((d / "certs" / "server.key").stat().st_mode & 0o777) == "0o600"
        seed_commands_work(dep, d / "certs" / "ca.crt")
        refused = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(dep.plain), "-t", "x", "-m", "x",
                                  "-u", "admin", "-P", "wrong"], capture_output=True, text=True, timeout=WAIT)
        assert refused.returncode != 0
        anonymous = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(dep.plain), "-t", "x", "-m", "x"],
                                   capture_output=True, text=True, timeout=WAIT)
        assert anonymous.returncode != 0
    finally:
        dep.stop()
    log = dep.log.read_text()
    assert "admin still has the default password" in log
    assert str(d / "certs" / "ca.crt") in log      # says where clients find the CA


def test_restart_keeps_the_ca_and_deleting_the_files_regenerates(tmp_path):
    d = installed_copy(tmp_path)
    dep = Deployment(d).start()
    dep.stop()
    first_ca = (d / "certs" / "ca.crt").read_bytes()
    dep = Deployment(d).start()
    dep.stop()
    assert (d / "certs" / "ca.crt").read_bytes() == first_ca
    shutil.rmtree(d / "certs")
    dep = Deployment(d).start()
    try:
        assert (d / "certs" / "ca.crt").read_bytes() != first_ca
        seed_commands_work(dep, d / "certs" / "ca.crt")
    finally:
        dep.stop()


def test_read_only_directory_and_an_arbitrary_non_root_uid():
    """OpenShift: any UID with group 0, the config directory a read-only mount. The certificates go to the
    state directory, and the broker says where."""
    # pytest's tmp_path sits under directories only root may enter: use one anybody may.
    with tempfile.TemporaryDirectory(prefix="midge-ro-") as top:
        os.chmod(top, 0o777)
        _read_only_case(Path(top))


def _read_only_case(tmp_path: Path):
    d = installed_copy(tmp_path)
    dep = Deployment(d, user="12345")
    conf = on_free_ports((REPO / "plugins.conf").read_text(), dep.plain, dep.tls, dep.admin)
    (d / "plugins.conf").write_text(conf)
    os.chmod(d / "passwd", 0o640)
    os.chown(d / "passwd", 0, 0)
    os.chmod(d, 0o555)                         # read-only for everyone (root ignores it; UID 12345 does not)
    os.chmod(tmp_path, 0o777)                  # the state directory is created beside it
    try:
        dep.start()
        state = tmp_path / "state"
        assert (state / "ca.crt").exists()
        assert not (d / "certs").exists()
        seed_commands_work(dep, state / "ca.crt")
    finally:
        dep.stop()
        os.chmod(d, 0o755)
    assert "read-only" in dep.log.read_text()
