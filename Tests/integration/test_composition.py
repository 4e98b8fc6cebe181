"""The house (issue "The house, part 1"): the broker is a library that imports no plugin, the `midge`
executable is the one place that lists the built-in plugins, and a package outside the tree composes its own
broker with plugins of its own (Examples/custom-broker), driven here with mosquitto_pub / mosquitto_sub."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import BROKER_KIND, REPO, free_port, midge_bin, stop_process, wait_for_ports
from clients import MOSQUITTO_PUB, WAIT, MosquittoSub

EXAMPLE = REPO / "Examples" / "custom-broker"

midge_only = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Midge's own package layout and plugins")


def custom_bin() -> Path:
    path = Path(os.environ.get("CUSTOM_MIDGE_BIN", EXAMPLE / ".build" / "debug" / "custom-midge"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"the example broker {path} is missing: build it with "
                    "`swift build --package-path Examples/custom-broker` (scripts/test does), "
                    "or point CUSTOM_MIDGE_BIN at it", pytrace=False)
    return path


@pytest.fixture(scope="module")
def package() -> dict:
    """Package.swift as SwiftPM reads it."""
    r = subprocess.run(["swift", "package", "dump-package", "--package-path", str(REPO)], capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@midge_only
def test_no_library_target_depends_on_a_plugin(package):
    """The broker library (Host, PluginAPI, MQTT) names no plugin target; the executable names them all."""
    targets = {t["name"]: t for t in package["targets"]}
    plugins = {name for name, t in targets.items() if (t.get("path") or "").startswith("Sources/Plugins")}
    assert {"TCPPlugin", "TLSPlugin", "PasswordFilePlugin"} <= plugins
    for name in ("Host", "PluginAPI", "MQTT"):
        named = {d["byName"][0] for d in targets[name]["dependencies"] if "byName" in d}
        named |= {d["target"][0] for d in targets[name]["dependencies"] if "target" in d}
        assert not named & plugins, f"{name} depends on plugin targets {named & plugins}"
    # The executable is where the built-in plugins are listed.
    executable = targets["midge"]
    assert executable["type"] == "executable"
    assert plugins - {"TLSCipherCheck"} <= {d["byName"][0] for d in executable["dependencies"] if "byName" in d}
    products = {p["name"]: p for p in package["products"]}
    assert "Host" in products["Midge"]["targets"] and "PluginAPI" in products["Midge"]["targets"]


@midge_only
def test_no_library_target_has_unsafe_flags(package):
    """SwiftPM refuses unsafeFlags in a package taken by URL and version (as Examples/custom-broker would take
    Midge outside this tree), so no library target may carry them; an executable may."""
    for target in package["targets"]:
        if target["type"] not in ("regular", "system"):
            continue
        flags = [s for s in target.get("settings", []) if "unsafeFlags" in s["kind"]]
        assert flags == [], f"library target {target['name']} has unsafeFlags {flags}"


@midge_only
def test_a_plugin_line_naming_a_listener_is_refused_with_its_line(tmp_path):
    conf = tmp_path / "t.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\nallow_anonymous true\nplugin tls\n")
    r = subprocess.run([str(midge_bin()), "-c", str(conf)], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 3, r.stdout + r.stderr
    assert f"{conf}:3: plugin 'tls' is a connection decorator" in r.stdout + r.stderr


@midge_only
def test_midge_lists_the_commands_its_plugins_bring():
    r = subprocess.run([str(midge_bin()), "--help"], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    text = " ".join((r.stdout + r.stderr).split())
    for command in ("midge check-config", "midge passwd", "midge users", "midge acl", "midge scram"):
        assert command in text, text


@pytest.fixture
def custom_broker(tmp_path):
    """The example broker with the example's own midge.conf and passwd, on a free loopback port."""
    binary = custom_bin()
    port = free_port()
    conf = (EXAMPLE / "midge.conf").read_text().replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    assert f"listener {port}" in conf
    (tmp_path / "midge.conf").write_text(conf)
    shutil.copy(EXAMPLE / "passwd", tmp_path / "passwd")
    os.chmod(tmp_path / "passwd", 0o640)
    log = tmp_path / "custom.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(binary), "-c", str(tmp_path / "midge.conf"), "-v"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_for_ports(proc, [port], log)
        yield port, log
    finally:
        stop_process(proc)


def pub(port: int, user: str, password: str, topic: str, message: str) -> subprocess.CompletedProcess:
    return subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", password,
                           "-t", topic, "-m", message, "-q", "1"], capture_output=True, text=True, timeout=WAIT)


@midge_only
def test_custom_broker_rewrites_a_prefix_and_refuses_one_user(custom_broker):
    port, log = custom_broker
    sub = MosquittoSub(SimpleNamespace(host="127.0.0.1", port=port), "site-a/#", "legacy/#", qos=1, count=2,
                       timeout=int(WAIT), extra=("-u", "alice", "-P", "alice-secret"))
    try:
        sub.wait_subscribed()
        for topic, message in (("legacy/temperature", "21.5"), ("site-a/humidity", "40")):
            r = pub(port, "alice", "alice-secret", topic, message)
            assert r.returncode == 0, r.stderr
        messages = sub.finish()
    finally:
        sub.kill()
    # The hook moved legacy/temperature under site-a/; nothing arrived under legacy/. (Two publisher
    # connections: compared as a set.)
    received = sorted((topic, payload) for topic, _, _, payload in messages)
    assert received == [("site-a/humidity", "40"), ("site-a/temperature", "21.5")], (sub.all, log.read_text())

    # mallory is in the password file with that password, and still refused: the deny-user plugin answers
    # before the password file. A wrong password and an unknown user are refused by the password file.
    refused = pub(port, "mallory", "mallory-secret", "site-a/x", "y")
    assert refused.returncode != 0 and "not authorised" in (refused.stdout + refused.stderr).lower(), refused
    wrong = pub(port, "alice", "not-her-password", "site-a/x", "y")
    assert wrong.returncode != 0, wrong
    unknown = pub(port, "bob", "bob", "site-a/x", "y")
    assert unknown.returncode != 0, unknown
    text = log.read_text()
    assert "deny-user: refusing the user mallory." in text
    assert "mallory-secret" not in text and "alice-secret" not in text
