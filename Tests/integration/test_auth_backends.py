"""Swapping the authentication back end is one config line; chains; reload revokes; secrets stay out of logs.

Midge only (mosquitto has no sqlite plugin): skipped with BROKER=mosquitto.
"""
import queue
import signal
import subprocess

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import mqttwire as w
from clients import WAIT, MosquittoSub, raw, unique
from conftest import BROKER_KIND, midge_bin

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="the sqlite plugin and `midge passwd` are Midge's")

USERS = [("alice", "alice-Secret-1"), ("bob", "bob-Secret-2")]
SECRET = "Never-Log-Me-77"


def midge(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([str(midge_bin()), *args], input=stdin, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"midge {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def passwd_backend(tmp_path, users=USERS) -> str:
    path = tmp_path / "passwd"
    for index, (user, password) in enumerate(users):
        midge("passwd", *(["-c"] if index == 0 else []), "-b", str(path), user, password)
    return f"password_file {path}"


def sqlite_backend(tmp_path, users=USERS) -> str:
    db = tmp_path / "users.db"
    for user, password in users:
        midge("users", "--db", str(db), "add", user, password)
    return f"plugin sqlite\nplugin_opt_database {db}"


def paho_connects(b, user: str, password: str, protocol=mqtt.MQTTv311) -> bool:
    """True if paho-mqtt's CONNECT is accepted."""
    result: queue.Queue = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("paho"), protocol=protocol)
    c.username_pw_set(user, password)
    c.on_connect = lambda client, userdata, flags, reason, props: result.put(reason)
    c.connect(b.host, b.port)
    c.loop_start()
    try:
        reason = result.get(timeout=WAIT)
    finally:
        c.disconnect()
        c.loop_stop()
    return not reason.is_failure


def mosquitto_pub_exit(b, user: str, password: str, topic: str, payload: str) -> int:
    r = subprocess.run(["mosquitto_pub", "-h", b.host, "-p", str(b.port), "-u", user, "-P", password,
                        "-t", topic, "-m", payload, "-q", "1"], capture_output=True, text=True, timeout=WAIT)
    return r.returncode


@pytest.mark.parametrize("backend", [passwd_backend, sqlite_backend], ids=["password_file", "sqlite"])
def test_same_users_accepted_and_refused_whichever_backend(broker, tmp_path, backend):
    """The same users, once in a password file and once in SQLite: only the auth line of the config differs,
    and mosquitto_pub/mosquitto_sub and paho-mqtt see the same answers."""
    b = broker(extra=backend(tmp_path) + "\nallow_anonymous false")
    topic = unique("swap")
    sub = MosquittoSub(b, topic, qos=1, count=1, extra=("-u", "alice", "-P", "alice-Secret-1"))
    try:
        sub.wait_subscribed()
        assert mosquitto_pub_exit(b, "bob", "bob-Secret-2", topic, "from bob") == 0
        assert sub.finish() == [(topic, 1, False, "from bob")]
    finally:
        sub.kill()
    assert mosquitto_pub_exit(b, "bob", "wrong", topic, "x") != 0
    assert mosquitto_pub_exit(b, "mallory", "bob-Secret-2", topic, "x") != 0
    for protocol in (mqtt.MQTTv311, mqtt.MQTTv5):
        assert paho_connects(b, "alice", "alice-Secret-1", protocol)
        assert not paho_connects(b, "alice", "bob-Secret-2", protocol)
        assert not paho_connects(b, "nobody", "alice-Secret-1", protocol)


def test_chain_asks_the_next_plugin_only_when_one_abstains(broker, tmp_path):
    """password_file knows alice; sqlite knows carol. A user unknown to the first is asked of the second; a
    wrong password for a user the first knows is refused without asking on."""
    extra = passwd_backend(tmp_path, [("alice", "alice-pw")]) + "\n" + \
        sqlite_backend(tmp_path, [("carol", "carol-pw"), ("alice", "other-pw")]) + "\nallow_anonymous false"
    b = broker(extra=extra)
    assert paho_connects(b, "alice", "alice-pw")
    assert paho_connects(b, "carol", "carol-pw")
    assert not paho_connects(b, "alice", "other-pw")  # the password file decided: deny
    assert not paho_connects(b, "dave", "x")


def test_reload_disconnects_revoked_users_and_keeps_the_rest(broker, tmp_path):
    extra = passwd_backend(tmp_path) + "\nallow_anonymous false"
    b = broker(extra=extra)
    alice = raw(b)
    assert alice.connect(unique("alice"), username="alice", password=b"alice-Secret-1").body[1] == 0
    bob = raw(b)
    assert bob.connect(unique("bob"), username="bob", password=b"bob-Secret-2").body[1] == 0
    midge("passwd", "-D", str(tmp_path / "passwd"), "bob")
    b.proc.send_signal(signal.SIGHUP)
    assert bob.wait_closed(WAIT) == []          # revoked: closed by the broker
    alice.send(w.pingreq())                     # untouched
    assert alice.expect(w.PINGRESP).ptype == w.PINGRESP
    # a corrupt file on the next reload keeps alice's access
    (tmp_path / "passwd").write_text("this line is not a password entry\n")
    b.proc.send_signal(signal.SIGHUP)
    alice.send(w.pingreq())
    assert alice.expect(w.PINGRESP).ptype == w.PINGRESP
    assert paho_connects(b, "alice", "alice-Secret-1")
    alice.close()


def test_passwords_never_reach_the_log(broker, tmp_path):
    """The fixture runs midge with -v (everything logged); neither a right nor a wrong password shows up."""
    b = broker(extra=passwd_backend(tmp_path, [("erin", SECRET)]) + "\nallow_anonymous false")
    assert paho_connects(b, "erin", SECRET)
    assert not paho_connects(b, "erin", SECRET + "-wrong")
    assert not paho_connects(b, "frank", SECRET)
    canary_user = raw(b)
    canary_user.connect(unique("erin"), username="erin", password=SECRET.encode())
    canary_user.close()
    log = b.log()
    assert "erin" in log or "New client" in log   # the log has content at all
    assert SECRET not in log
