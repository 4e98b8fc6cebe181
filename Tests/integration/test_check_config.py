"""`midge check-config` (and `--test-config`): every error with file and line, what would run, nothing written;
and `log_format json`. Midge only."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from clients import mosquitto_pub, unique
from conftest import BROKER_KIND, REPO, free_port, midge_bin

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Midge's own command and directive")

TIMEOUT = 30


def check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(midge_bin()), "check-config", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT, env=env)


def make_passwd(path: Path, user: str = "alice", password: str = "s3cret-pw") -> None:
    r = subprocess.run([str(midge_bin()), "passwd", "-c", "-b", str(path), user, password],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and modification time (ns)."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def test_valid_config_prints_what_would_run(tmp_path):
    make_passwd(tmp_path / "passwd")
    (tmp_path / "acl").write_text("user alice\ntopic readwrite sensors/#\n")
    plain, ws = free_port(), free_port()
    conf = tmp_path / "midge.conf"
    conf.write_text(f"""listener {plain} 127.0.0.1
listener {ws} 127.0.0.1
protocol websockets
max_connections 50
admin_listener 0 127.0.0.1
password_file passwd
plugin topic-rewrite
plugin_opt_from legacy/
plugin_opt_to sensors/
plugin prometheus
acl_file acl
max_packet_size 65536
max_queued_messages 200
persistent_client_expiration 2d
log_format json
""")
    r = check("-c", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert r.stderr == ""
    assert f"Configuration: {conf}" in out
    assert f"port {plain} on 127.0.0.1 ({conf}:1): mqtt, plain TCP, max_connections unlimited" in out
    assert f"port {ws} on 127.0.0.1 ({conf}:2): websockets, plain TCP, max_connections 50" in out
    assert f"Admin listener: port any free one (0) on 127.0.0.1 ({conf}:5): /healthz, /readyz, /metrics" in out
    # The chain in order: password_file first, plugin lines in config order, acl_file last.
    chain = [line.strip() for line in out.splitlines() if re.match(r"\s+\d+\. ", line)]
    assert len(chain) == 4, out
    assert chain[0] == f"1. passwd (password_file {tmp_path}/passwd): authentication"
    assert chain[1] == f"2. topic-rewrite ({conf}:7): hook (publish)"
    assert chain[2] == f"3. prometheus ({conf}:10): HTTP endpoints (/metrics)"
    assert chain[3] == f"4. acl-file (acl_file {tmp_path}/acl): authorization"
    assert "plugin_opt_from legacy/" in out and "plugin_opt_to sensors/" in out
    assert "Implicit hooks:" in out and "  log: hook (" in out and "  sys: hook (" in out
    for line in ("max_packet_size: 65536 bytes", "message_size_limit: unlimited", "max_inflight_messages: 20",
                 "max_queued_messages: 200", "max_keepalive: 65535 s", "persistent_client_expiration: 172800 s",
                 "log_format: json"):
        assert f"  {line}\n" in out, line
    assert out.rstrip().endswith("Configuration is valid.")

    # --test-config is the same check.
    same = subprocess.run([str(midge_bin()), "-c", str(conf), "--test-config"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert (same.returncode, same.stdout, same.stderr) == (0, out, "")


def test_every_bad_line_is_reported_with_file_and_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\n"
                    "max_keepalive 5\n"
                    "allow_anonymous perhaps\n"
                    "# a comment\n"
                    "no_such_directive 1\n"
                    "max_qos 1\n")
    r = check("-c", str(conf))
    assert r.returncode == 3, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [
        f"Error: {conf}:2: invalid value 5 for 'max_keepalive': must be between 10 and 65535",
        f"Error: {conf}:3: invalid value 'perhaps' for 'allow_anonymous': expected true or false",
        f"Error: {conf}:5: unknown directive 'no_such_directive'",
    ]
    assert "Configuration is not valid: 3 error(s)" in r.stdout

    # Start-up reports them all too, with the same exit status.
    start = subprocess.run([str(midge_bin()), "-c", str(conf)], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert start.returncode == 3
    assert [line for line in start.stderr.splitlines() if line.startswith("Error: ")] == errors


def test_plugin_errors_name_their_files(tmp_path):
    """A missing password file, a corrupt ACL file and a bad certificate: all three, each with its file."""
    (tmp_path / "acl").write_text("user alice\ntopic readwrite a/#\ntopik read b\n")
    (tmp_path / "server.crt").write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    (tmp_path / "server.key").write_text("garbage\n")
    conf = tmp_path / "plugins.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\n"
                    f"listener {free_port()} 127.0.0.1\n"
                    "certfile server.crt\n"
                    "keyfile server.key\n"
                    "password_file missing-passwd\n"
                    "acl_file acl\n")
    r = check("-c", str(conf))
    assert r.returncode == 3, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 3, r.stderr
    passwd, acl, tls = errors  # in the order start-up creates them: the chain, then the second listener
    assert passwd.startswith("Error: plugin 'passwd': unable to open password file "
                             f"'{tmp_path}/missing-passwd'")
    assert acl.startswith(f"Error: {tmp_path}/acl:3: ") and "topik" in acl
    assert tls.startswith(f"Error: {conf}:2: plugin 'tls': ") and "server.crt" in tls
    # The chain is still shown, with the plugins that could not be made marked.
    assert "1. passwd (password_file" in r.stdout and "NOT CREATED" in r.stdout


def test_check_config_writes_nothing(tmp_path):
    """The default deployment without certificates: check-config says it would generate them, and writes no
    file (neither in the config directory nor in the state directory)."""
    d = tmp_path / "midge"
    d.mkdir()
    conf = (REPO / "plugins.conf").read_text()
    conf = re.sub(r"^listener 1883$", f"listener {free_port()} 127.0.0.1", conf, flags=re.M)
    conf = re.sub(r"^listener 8883$", f"listener {free_port()} 127.0.0.1", conf, flags=re.M)
    (d / "plugins.conf").write_text(conf)
    shutil.copy(REPO / "passwd", d / "passwd")
    os.chmod(d / "passwd", 0o640)
    before = tree(tmp_path)
    env = dict(os.environ, MIDGE_STATE_DIR=str(tmp_path / "state"))
    env.pop("MIDGE_CONFIG_DIR", None)
    r = check("--config-dir", str(d), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"would generate a CA and a server certificate in {d}/certs" in r.stdout
    assert "1. passwd (password_file" in r.stdout
    assert tree(tmp_path) == before
    # MIDGE_CONFIG_DIR works as for the broker.
    r = check(env=dict(env, MIDGE_CONFIG_DIR=str(d)))
    assert r.returncode == 0 and f"Configuration: {d}/plugins.conf" in r.stdout
    assert tree(tmp_path) == before


def test_secrets_are_not_printed(tmp_path):
    conf = tmp_path / "secret.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\n"
                    "plugin sqlite\n"
                    "plugin_opt_database users.db\n"
                    "plugin_opt_db_password hunter2-value\n"
                    "plugin_opt_api_key key-value-42\n"
                    "plugin_opt_client_secret secret-value-7\n")
    r = check("-c", str(conf))
    both = r.stdout + r.stderr
    for secret in ("hunter2-value", "key-value-42", "secret-value-7"):
        assert secret not in both
    assert "plugin_opt_db_password (set)" in r.stdout
    assert "plugin_opt_api_key (set)" in r.stdout
    assert "plugin_opt_client_secret (set)" in r.stdout
    assert f"plugin_opt_database {tmp_path}/users.db" in r.stdout
    assert r.returncode == 3  # the sqlite plugin has no such options (and no database here)
    assert f"{conf}:2: plugin 'sqlite': unknown option 'db_password'" in r.stderr


def test_log_format_json(broker):
    b = broker(extra="log_format json")
    topic = unique("json")
    mosquitto_pub(b, topic, "-m", "hello", "-q", "1")
    b.stop()
    lines = [line for line in b.log().splitlines() if line.strip()]
    assert lines
    objects = []
    for line in lines:
        obj = json.loads(line)
        assert {"time", "level", "message", "logger"} <= obj.keys(), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"]), line
        assert obj["level"] in ("trace", "debug", "info", "notice", "warning", "error", "critical")
        objects.append(obj)
    messages = [o["message"] for o in objects]
    assert any("New client connected" in m for m in messages), messages
    assert any(f"Received PUBLISH from" in m and topic in m for m in messages), messages
    assert {o["logger"] for o in objects} >= {"midge"}
