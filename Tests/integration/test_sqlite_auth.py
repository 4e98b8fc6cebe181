"""The `sqlite` plugin end to end: `midge users` writes the database, the broker authenticates and authorizes
from it (`plugin sqlite` / `plugin_opt_database FILE`).

Midge only (Mosquitto has no SQLite plugin). Needs a midge binary whose `users` subcommand forwards to
`SQLiteAdmin.run` and whose plugin chain knows `sqlite`.

Refusal codes follow the passwd plugin's: a wrong password, no password or an unknown user is refused with
"bad user name or password" (5.0: 0x86; 3.1.1: 4, or Mosquitto's 5); a client without a user name with
5 / 0x87. ACL decisions are those of the acl-file
plugin (test_acl_file.py): a denied 3.1.1 PUBLISH still gets its PUBACK and reaches nobody; a SUBSCRIBE whose
topics are all denied gets 0x80.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import mqttwire as w
from clients import WAIT, raw, unique, wait_for_log
from conftest import BROKER_KIND, free_port, midge_bin

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="mosquitto has no sqlite plugin")

# 3.1.1 has no exact code: the host answers 4 (bad user name or password) or Mosquitto's 5 (not authorised).
BAD_PASSWORD = {w.V311: {4, 5}, w.V5: {0x86}}
ANONYMOUS_REFUSED = {w.V311: 5, w.V5: 0x87}

USERS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}

# (user or "*" or None for anonymous, access, topic)
ACLS = [
    ("alice", "readwrite", "home/alice/#"),
    ("alice", "write", "home/bob/inbox"),
    ("bob", "read", "home/#"),
    ("bob", "deny", "home/alice/secret"),
    ("bob", "read", "clients/#"),
    ("*", "write", "clients/%c/status"),
    ("*", "deny", "vault/#"),
    (None, "read", "public/#"),
]


# ---------------------------------------------------------------- the CLI

def users_cmd() -> list[str]:
    path = midge_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"midge binary {path} not built", pytrace=False)
    return [str(path), "users"]


def midge_users(db: Path, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`midge users --db DB ARGS...`; with check, asserts exit status 0."""
    r = subprocess.run([*users_cmd(), "--db", str(db), *args], input=stdin, capture_output=True, text=True,
                       timeout=30)
    if check:
        assert r.returncode == 0, f"midge users {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}"
    return r


def make_database(db: Path) -> None:
    midge_users(db, "init")
    for user, password in USERS.items():
        midge_users(db, "add", *(["--superuser"] if user == "root" else []), user, password)
    for user, access, topic in ACLS:
        midge_users(db, "acl", "add", "--anonymous" if user is None else user, access, topic)


def start(broker, db: Path, anonymous: bool = False, extra: str = ""):
    return broker(extra=f"plugin sqlite\nplugin_opt_database {db}\n{extra}"
                        f"allow_anonymous {'true' if anonymous else 'false'}")


# ---------------------------------------------------------------- MQTT helpers

def connack(b, user: str | None, password: str | None, version: int = w.V311, client_id: str | None = None) -> int:
    c = raw(b, WAIT)
    try:
        ack = c.connect(client_id or unique("sq"), username=user, version=version,
                        password=None if password is None else password.encode())
        return ack.body[1]
    finally:
        c.close()


def connect(b, client_id: str, user: str | None) -> w.RawClient:
    c = raw(b, WAIT)
    password = USERS[user].encode() if user else None
    ack = c.connect(client_id, username=user, password=password)
    assert ack.body[1] == 0, f"CONNACK refused for {client_id}/{user}: {ack!r}"
    return c


def subscribe(c: w.RawClient, *filters: str, pid: int = 1) -> list[int]:
    c.send(w.subscribe(pid, *[(f, 1) for f in filters]))
    suback = c.expect(w.SUBACK, WAIT)
    assert suback.pid == pid
    return list(suback.body[2:])


def publish_all(c: w.RawClient, topics: list[str]) -> None:
    """QoS 1 publishes, each acknowledged (a denied 3.1.1 PUBLISH is acknowledged too)."""
    for pid, topic in enumerate(topics, start=1):
        c.send(w.publish(topic, b"x", qos=1, pid=pid))
        assert c.expect(w.PUBACK, WAIT).pid == pid


def collect_until(c: w.RawClient, sentinel: str) -> list[str]:
    got = []
    deadline = time.monotonic() + WAIT
    while True:
        p = c.expect(w.PUBLISH, max(0.1, deadline - time.monotonic()))
        f = p.publish_fields()
        if p.qos:
            c.send(w.ack(w.PUBACK, f["pid"]))
        if f["topic"] == sentinel:
            return got
        got.append(f["topic"])


# ---------------------------------------------------------------- tests

def test_users_command(tmp_path):
    db = tmp_path / "auth.db"
    midge_users(db, "add", "alice", "pw")                     # creates the database
    midge_users(db, "add", "--superuser", "root", "pw")
    midge_users(db, "add", "carol", stdin="from-stdin\n")       # no tty: one line from stdin
    assert midge_users(db, "list").stdout.splitlines() == ["alice", "carol", "root\tsuperuser"]

    dup = midge_users(db, "add", "alice", "again", check=False)
    assert dup.returncode == 1 and "exists" in dup.stderr
    midge_users(db, "passwd", "alice", "new-pw")
    assert midge_users(db, "passwd", "nobody", "x", check=False).returncode == 1
    midge_users(db, "superuser", "root", "off")
    midge_users(db, "del", "carol")
    assert midge_users(db, "del", "carol", check=False).returncode == 1
    assert midge_users(db, "users", "list").stdout.splitlines() == ["alice", "root"]

    assert midge_users(db, "acl", "add", "alice", "readwrite", "home/alice/#").stdout.strip() == "1"
    assert midge_users(db, "acl", "add", "--anonymous", "read", "public/#").stdout.strip() == "2"
    assert midge_users(db, "acl", "add", "*", "write", "clients/%c/status").stdout.strip() == "3"
    assert midge_users(db, "acl", "list").stdout.splitlines() == [
        "1\talice\treadwrite\thome/alice/#",
        "2\t--anonymous\tread\tpublic/#",
        "3\t*\twrite\tclients/%c/status",
    ]
    midge_users(db, "acl", "del", "2")
    assert len(midge_users(db, "acl", "list").stdout.splitlines()) == 2
    assert midge_users(db, "acl", "add", "alice", "everything", "x", check=False).returncode == 2
    assert midge_users(db, "acl", "add", "alice", "read", "a/#/b", check=False).returncode == 1

    missing = midge_users(tmp_path / "none.db", "list", check=False)
    assert missing.returncode == 1 and "none.db" in missing.stderr
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("version", [w.V311, w.V5], ids=["3.1.1", "5"])
def test_authentication(broker, tmp_path, version):
    db = tmp_path / "auth.db"
    make_database(db)
    b = start(broker, db)
    assert connack(b, "alice", "alice-pw", version) == 0
    assert connack(b, "alice", "alice-pw!", version) in BAD_PASSWORD[version]
    assert connack(b, "alice", None, version) in BAD_PASSWORD[version]
    assert connack(b, "mallory", "alice-pw", version) in BAD_PASSWORD[version]
    assert connack(b, None, None, version) == ANONYMOUS_REFUSED[version]
    assert "alice-pw" not in b.log()


def test_acl_rows_filter_publishes_and_deliveries(broker, tmp_path):
    db = tmp_path / "auth.db"
    make_database(db)
    b = start(broker, db)
    bob = connect(b, unique("bob"), "bob")
    root = connect(b, unique("root"), "root")
    alice_id = unique("alice")
    alice = connect(b, alice_id, "alice")
    try:
        assert subscribe(bob, "home/#", "clients/#") == [1, 1]
        assert subscribe(root, "#", "vault/#") == [1, 1]       # a superuser may do everything
        assert subscribe(alice, "vault/#") == [0x80]            # every topic under it is denied
        publish_all(alice, [
            "home/alice/lamp",           # own readwrite row
            "home/alice/secret",         # alice may write it; bob's deny row keeps it from him
            "home/bob/lamp",             # no row: denied
            "home/bob/inbox",            # own write row
            f"clients/{alice_id}/status",  # '*' row with %c
            "clients/other/status",      # %c is not alice's id: denied
            "vault/gold",                # '*' deny row
            "home/alice/end",
        ])
        assert collect_until(bob, "home/alice/end") == [
            "home/alice/lamp", "home/bob/inbox", f"clients/{alice_id}/status"]
        assert collect_until(root, "home/alice/end") == [
            "home/alice/lamp", "home/alice/secret", "home/bob/inbox", f"clients/{alice_id}/status"]
    finally:
        for c in (bob, root, alice):
            c.close()


def test_anonymous_clients_get_the_anonymous_rows(broker, tmp_path):
    db = tmp_path / "auth.db"
    make_database(db)
    b = start(broker, db, anonymous=True)
    anon = connect(b, unique("anon"), None)
    observer = connect(b, unique("root"), "root")
    writer = connect(b, unique("root"), "root")
    try:
        assert subscribe(anon, "public/#") == [1]
        assert subscribe(observer, "public/#") == [1]
        publish_all(writer, ["public/news", "public/end"])
        assert collect_until(anon, "public/end") == ["public/news"]
        assert collect_until(observer, "public/end") == ["public/news"]
        # The anonymous rows are read only: the anonymous client's publish reaches nobody.
        publish_all(anon, ["public/from-anon"])
        publish_all(writer, ["public/end"])
        assert collect_until(observer, "public/end") == []
    finally:
        for c in (anon, observer, writer):
            c.close()


def test_sighup_reloads_the_database(broker, tmp_path):
    db = tmp_path / "auth.db"
    make_database(db)
    # Only SIGHUP reloads here: the file watcher (every 2 s by default) could reload between the three
    # `midge users` commands below, so that "dave is accepted" no longer meant "all three are in force"
    # (it failed that way once in CI).
    b = start(broker, db, extra="watch_interval 0\n")
    bob = connect(b, unique("bob"), "bob")
    alice = connect(b, unique("alice"), "alice")
    try:
        assert subscribe(bob, "home/#") == [1]
        publish_all(alice, ["home/garden", "home/bob/inbox", "home/alice/end"])
        assert collect_until(bob, "home/alice/end") == ["home/bob/inbox"]

        midge_users(db, "add", "dave", "dave-pw")
        midge_users(db, "acl", "add", "alice", "write", "home/garden")
        midge_users(db, "acl", "del", "2")                      # alice's write on home/bob/inbox
        b.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while connack(b, "dave", "dave-pw") != 0:
            assert time.monotonic() < deadline, "dave not accepted after SIGHUP"
            time.sleep(0.05)

        # alice stayed connected (her password did not change); her rows are the new ones.
        publish_all(alice, ["home/garden", "home/bob/inbox", "home/alice/end"])
        assert collect_until(bob, "home/alice/end") == ["home/garden"]

        midge_users(db, "passwd", "alice", "changed")
        b.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while connack(b, "alice", "changed") != 0:
            assert time.monotonic() < deadline, "new password not accepted after SIGHUP"
            time.sleep(0.05)
        assert connack(b, "alice", "alice-pw") in BAD_PASSWORD[w.V311]
    finally:
        bob.close()
        alice.close()


def test_midge_users_takes_effect_without_sighup(broker, tmp_path):
    """The database file is watched: a change made with `midge users` reloads it by itself."""
    db = tmp_path / "auth.db"
    make_database(db)
    b = start(broker, db, extra="watch_interval 0.2\n")
    assert connack(b, "dave", "dave-pw") in BAD_PASSWORD[w.V311]
    offset = len(b.log())
    midge_users(db, "add", "dave", "dave-pw")
    wait_for_log(b, "Reloaded (files changed)", offset)
    assert connack(b, "dave", "dave-pw") == 0


@pytest.mark.parametrize("version", [w.V311, w.V5], ids=["3.1.1", "5"])
def test_locked_database_refuses_within_the_deadline(broker, tmp_path, version):
    """A database locked by a writer: the lookup gives up after timeout_ms and the client is refused with
    "server unavailable" (3.1.1: 3, 5.0: 0x88) instead of waiting; once the lock is gone it connects."""
    db = tmp_path / "auth.db"
    make_database(db)
    b = start(broker, db, extra="plugin_opt_timeout_ms 300\n")
    locker = sqlite3.connect(db, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        began = time.monotonic()
        assert connack(b, "alice", "alice-pw", version) == (3 if version == w.V311 else 0x88)
        assert time.monotonic() - began < 3
        locker.execute("COMMIT")
        assert connack(b, "alice", "alice-pw", version) == 0
    finally:
        locker.close()
    assert "alice-pw" not in b.log()


def test_missing_database_stops_start_up(tmp_path):
    db = tmp_path / "missing.db"
    conf = tmp_path / "broker.conf"
    conf.write_text(f"listener {free_port()} 127.0.0.1\nplugin sqlite\nplugin_opt_database {db}\n"
                    "allow_anonymous false\n")
    r = subprocess.run([str(midge_bin()), "-c", str(conf)], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert str(db) in r.stdout + r.stderr
    assert not db.exists()
