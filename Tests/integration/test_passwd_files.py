"""password_file: Mosquitto password files, on Debian's mosquitto 2.0.11 and on midge.

Files come from the real /usr/bin/mosquitto_passwd (so midge is checked against the real format) and, for the
`midge passwd` tests, from midge's own tool (so the real mosquitto is checked against midge's output). Those
tests need a midge binary whose `passwd` subcommand is wired; they are skipped until it is.

Refusal codes: Mosquitto 2.0 refuses a wrong password or an unknown user with "not authorised" (3.1.1: 5,
5.0: 0x87). Midge answers 3.1.1 clients the same 5, and 5.0 clients 0x86 (bad user name or password), the code
MQTT 5 has for it. A client sending no user name at all is refused with 5 / 0x87 by both.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import mqttwire as w
from clients import WAIT, raw, unique, wait_for_log
from conftest import BROKER_KIND, midge_bin, start_broker

MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"

BAD_PASSWORD = {
    "mosquitto": {w.V311: 5, w.V5: 0x87},
    # 3.x: Mosquitto's 5 (not authorized); 5.0: 0x86 (bad user name or password), the code MQTT 5 has for it.
    "midge": {w.V311: 5, w.V5: 0x86},
}
ANONYMOUS_REFUSED = {w.V311: 5, w.V5: 0x87}

# Users written with the real mosquitto_passwd: default $7$ (101 iterations), $6$, more iterations, and a
# password with non-ASCII characters and a colon.
USERS = [
    ("alice", "alice-pw", []),
    ("legacy", "old-style", ["-H", "sha512"]),
    ("costly", "many rounds", ["-I", "1000"]),
    ("ünï", "pä55:wörd", []),
]


def mosquitto_passwd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MOSQUITTO_PASSWD, *args], capture_output=True, text=True, timeout=30)


def write_with_mosquitto_passwd(path: Path, users=USERS) -> None:
    first = True
    for user, password, flags in users:
        r = mosquitto_passwd(*flags, *(["-c"] if first else []), "-b", str(path), user, password)
        assert r.returncode == 0, r.stderr
        first = False


def connack(b, user: str | None, password: str | None, version: int = w.V311) -> int:
    """The CONNACK return/reason code for one connection attempt."""
    c = raw(b, WAIT)
    try:
        ack = c.connect(unique("pw"), username=user, version=version,
                        password=None if password is None else password.encode())
        return ack.body[1]
    finally:
        c.close()


def start_with(broker, pw: Path):
    # `user root`: run as root, Mosquitto drops privileges before reading the file (pytest's tmp dir is 0700).
    return broker(extra=f"user root\npassword_file {pw}\nallow_anonymous false")


def wait_for_connack(b, user: str, password: str, expected: int, timeout: float = 10) -> None:
    """Retry a connection until it gets `expected` (a reload is applied asynchronously)."""
    deadline = time.monotonic() + timeout
    while (got := connack(b, user, password)) != expected:
        assert time.monotonic() < deadline, f"{user}: CONNACK {got}, not {expected}, within {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("version", [w.V311, w.V5], ids=["3.1.1", "5"])
def test_file_from_mosquitto_passwd(broker, tmp_path, version):
    pw = tmp_path / "passwd"
    write_with_mosquitto_passwd(pw)
    b = start_with(broker, pw)
    bad = BAD_PASSWORD[BROKER_KIND][version]
    for user, password, _ in USERS:
        assert connack(b, user, password, version) == 0, user
        assert connack(b, user, password + "x", version) == bad, user
    assert connack(b, "nobody", "alice-pw", version) == bad
    assert connack(b, "alice", None, version) == bad
    assert connack(b, None, None, version) == ANONYMOUS_REFUSED[version]


def one_line(tmp_path: Path, user: str, password: str) -> str:
    """A `user:hash` line from the real mosquitto_passwd."""
    f = tmp_path / unique("line")
    assert mosquitto_passwd("-c", "-b", str(f), user, password).returncode == 0
    return f.read_text().strip()


def test_comments_blank_lines_crlf_blanks_and_duplicates(broker, tmp_path):
    alice_first = one_line(tmp_path, "alice", "first")
    alice_second = one_line(tmp_path, "alice", "second")
    bob_user, bob_hash = one_line(tmp_path, "bob", "bob-pw").split(":", 1)
    text = ("# users for the test\n"
            "\n"
            "   \n"
            f"{alice_first}\r\n"
            f"  {bob_user}  :  {bob_hash}  \n"
            f"{alice_second}\n")  # alice twice: the last line wins, as in Mosquitto
    pw = tmp_path / "passwd"
    pw.write_text(text)
    b = start_with(broker, pw)
    assert connack(b, "bob", "bob-pw") == 0
    assert connack(b, "alice", "second") == 0
    assert connack(b, "alice", "first") == BAD_PASSWORD[BROKER_KIND][w.V311]


def test_sighup_reloads_the_file(broker, tmp_path):
    pw = tmp_path / "passwd"
    write_with_mosquitto_passwd(pw, [("alice", "old-pw", [])])
    b = start_with(broker, pw)
    bad = BAD_PASSWORD[BROKER_KIND][w.V311]
    assert connack(b, "alice", "old-pw") == 0
    assert connack(b, "bob", "bob-pw") == bad

    assert mosquitto_passwd("-b", str(pw), "alice", "new-pw").returncode == 0
    assert mosquitto_passwd("-b", str(pw), "bob", "bob-pw").returncode == 0
    b.proc.send_signal(signal.SIGHUP)
    wait_for_connack(b, "bob", "bob-pw", 0)
    assert connack(b, "alice", "new-pw") == 0
    assert connack(b, "alice", "old-pw") == bad


def test_sighup_with_a_broken_file(broker, tmp_path):
    """Midge keeps the whole last good file; Mosquitto loads what it can (it skips a line without ':'
    and drops entries whose hash it cannot decode)."""
    pw = tmp_path / "passwd"
    write_with_mosquitto_passwd(pw, [("alice", "old-pw", [])])
    b = start_with(broker, pw)
    assert connack(b, "alice", "old-pw") == 0

    fresh = tmp_path / "fresh"
    write_with_mosquitto_passwd(fresh, [("alice", "new-pw", [])])
    pw.write_text(fresh.read_text() + "this line has no colon\n")
    offset = len(b.log())
    b.proc.send_signal(signal.SIGHUP)
    if BROKER_KIND == "midge":
        wait_for_log(b, "failed with 1 error(s)", offset)
        assert "this line has no colon" not in b.log()[offset:]
        assert connack(b, "alice", "old-pw") == 0
        assert connack(b, "alice", "new-pw") == BAD_PASSWORD["midge"][w.V311]
    else:
        wait_for_connack(b, "alice", "new-pw", 0)
        assert connack(b, "alice", "old-pw") == BAD_PASSWORD["mosquitto"][w.V311]


# ------------------------------------------------------------------ midge passwd (the CLI)

def midge_passwd_cmd() -> list[str]:
    """`[midge, "passwd"]`; fails when the binary is missing or the subcommand does not answer as expected
    (these tests exercise the real binary, also under BROKER=mosquitto)."""
    path = midge_bin()
    assert path.is_file() and os.access(path, os.X_OK), f"midge binary {path} not built"
    probe = subprocess.run([str(path), "passwd"], capture_output=True, text=True, timeout=30)
    assert "midge passwd is a tool for managing password files" in probe.stdout, probe.stdout + probe.stderr
    return [str(path), "passwd"]


def midge_passwd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*midge_passwd_cmd(), *args], input=stdin, capture_output=True, text=True,
                          timeout=30)


def test_midge_passwd_file_accepted_by_real_mosquitto_and_midge(tmp_path):
    pw = tmp_path / "passwd"
    assert midge_passwd("-c", "-b", str(pw), "user", "pw").returncode == 0
    assert pw.stat().st_mode & 0o777 == 0o600
    assert midge_passwd("-H", "sha512", "-b", str(pw), "legacy", "old:style").returncode == 0
    assert midge_passwd("-I", "2000", "-b", str(pw), "costly", "slow pw").returncode == 0
    # The real tool edits our file, and ours edits it back.
    assert mosquitto_passwd("-b", str(pw), "theirs", "their-pw").returncode == 0
    assert midge_passwd("-b", str(pw), "user", "pw2").returncode == 0
    plain = tmp_path / "plain"
    plain.write_text("upgraded:plain-pw\n")
    assert midge_passwd("-U", str(plain)).returncode == 0
    pw.write_text(pw.read_text() + plain.read_text())

    kinds = ["mosquitto"] + (["midge"] if BROKER_KIND == "midge" else [])
    for kind in kinds:
        b = start_broker(kind, tmp_path / kind, f"user root\npassword_file {pw}\nallow_anonymous false")
        try:
            for user, password in [("user", "pw2"), ("legacy", "old:style"), ("costly", "slow pw"),
                                   ("theirs", "their-pw"), ("upgraded", "plain-pw")]:
                assert connack(b, user, password) == 0, (kind, user, b.log())
            assert connack(b, "user", "pw") == BAD_PASSWORD[kind][w.V311], kind
            assert "removing entry" not in b.log(), b.log()
        finally:
            b.stop()


def test_midge_passwd_prompts_twice_without_b(tmp_path):
    pw = tmp_path / "passwd"
    r = midge_passwd("-c", str(pw), "alice", stdin="typed\ntyped\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Password: \nReenter password: \n"
    r = midge_passwd(str(pw), "bob", stdin="one\ntwo\n")
    assert (r.returncode, r.stderr) == (1, "Error: Passwords do not match.\n")


@pytest.mark.parametrize("args", [
    ["-c", "-D", "{f}", "u"],
    ["-c", "-U", "{f}"],
    ["-D", "-U", "{f}"],
    ["-b", "-D", "{f}", "u"],
    ["-H", "md5", "-b", "{f}", "u", "p"],
    ["-I", "0", "-b", "{f}", "u", "p"],
    ["-b", "{f}", "a:b", "p"],
    ["-b", "{missing}", "u", "p"],
    ["-D", "{f}", "nobody"],
    ["-c", "{f}"],
    ["-U"],
], ids=lambda a: " ".join(a))
def test_midge_passwd_errors_match_mosquitto_passwd(tmp_path, args):
    cmd = midge_passwd_cmd()
    f = tmp_path / "passwd"
    assert mosquitto_passwd("-c", "-b", str(f), "someone", "pw").returncode == 0
    argv = [a.format(f=f, missing=tmp_path / "missing") for a in args]
    theirs = mosquitto_passwd(*argv)
    ours = subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=30)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
