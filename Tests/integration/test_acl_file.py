"""acl_file: Mosquitto's ACL file format and semantics, on Debian's mosquitto 2.0.11 and on midge.

One ACL file (ACL below) and one password file serve every test. Checks that a message was NOT delivered
use a sentinel: the publisher sends the sentinel last on a topic the reader may read, and the reader
collects everything up to it (one publisher to one subscriber keeps order).

Where midge deliberately differs from Mosquitto 2.0 (SUBSCRIBE), the expected values are keyed by
BROKER_KIND:

- Mosquitto 2.0's default ACL check grants every SUBSCRIBE (its source: "FIXME - implement ACL subscription
  strings") and only filters deliveries.
- Midge refuses a SUBSCRIBE at once (0x80 for 3.1.1, 0x87 for 5.0) when no topic the filter can match is
  readable for the client; a filter with some readable topics (`#` under partial rights) is granted and
  filtered per delivery, as in Mosquitto.
"""
from __future__ import annotations

import signal
import subprocess
import time

import pytest

import mqttwire as w
from clients import WAIT, raw
from conftest import BROKER_KIND

ACL = """\
# Anonymous clients (no user name): the lines before the first `user` line.
topic read public/#
topic deny public/private/#
topic write anon/out
topic readwrite shared/#
topic readwrite spaced topic/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic read public/#
topic readwrite shared/#

user bob
topic read alice/#
topic readwrite shared/#

user writer
topic write #
topic write $app/allowed/#

user monitor
topic read #
topic read $app/#

# Patterns apply to every client, whatever `user` line came before.
pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern write users/%u/outbox
"""

USERS = {"alice": "alice-pw", "bob": "bob-pw", "writer": "writer-pw", "monitor": "monitor-pw",
         "carol": "carol-pw"}  # carol: a user with no section of her own

SENTINEL = "shared/end"  # readable and writable by anonymous clients, alice and bob


def own(client_id: str) -> str:
    """A sentinel topic for a client: `pattern readwrite devices/%c/#` lets it publish there, `writer` may
    publish there for it, and `monitor` (`topic read #`) reads it."""
    return f"devices/{client_id}/end"


@pytest.fixture
def acl_broker(broker, tmp_path):
    """Start the selected broker with ACL and the users; returns (broker, acl_path)."""
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    pw = tmp_path / "passwd"
    first = True
    for user, password in USERS.items():
        args = ["/usr/bin/mosquitto_passwd", *(["-c"] if first else []), "-b", str(pw), user, password]
        subprocess.run(args, check=True, capture_output=True)
        first = False
    # `user root`: run as root, Mosquitto drops privileges before reading the files (pytest's tmp dir is 0700)
    b = broker(extra=f"user root\nacl_file {acl}\npassword_file {pw}\nallow_anonymous true")
    return b, acl


def connect(b, client_id: str, user: str | None = None, version: int = w.V311) -> w.RawClient:
    c = raw(b, WAIT)
    password = USERS[user].encode() if user else None
    ack = c.connect(client_id, username=user, password=password, version=version)
    assert ack.body[1] == 0, f"CONNACK refused for {client_id}/{user}: {ack!r}"
    return c


def subscribe(c: w.RawClient, *filters: str, qos: int = 0, version: int = w.V311, pid: int = 1) -> list[int]:
    c.send(w.subscribe(pid, *[(f, qos) for f in filters], version=version))
    suback = c.expect(w.SUBACK, WAIT)
    assert suback.pid == pid
    body = suback.body[2:]
    if version == w.V5:
        _, pos = w.parse_props(body, 0)
        body = body[pos:]
    return list(body)


def publish(c: w.RawClient, topic: str, payload: bytes = b"x", qos: int = 1, pid: int = 1,
            version: int = w.V311, retain: bool = False) -> int | None:
    """Publish; for QoS 1 wait for the PUBACK and return its 5.0 reason code (None for 3.1.1)."""
    c.send(w.publish(topic, payload, qos=qos, pid=pid, version=version, retain=retain))
    if qos == 1:
        ack = c.expect(w.PUBACK, WAIT)
        assert ack.pid == pid
        return ack.body[2] if version == w.V5 and len(ack.body) > 2 else (0 if version == w.V5 else None)
    return None


def collect_until(c: w.RawClient, sentinel: str = SENTINEL, version: int = w.V311) -> list[str]:
    """Topics of the PUBLISHes received before the sentinel topic."""
    got = []
    deadline = time.monotonic() + WAIT
    while True:
        p = c.expect(w.PUBLISH, max(0.1, deadline - time.monotonic()))
        f = p.publish_fields(version)
        if p.qos:
            c.send(w.ack(w.PUBACK, f["pid"]))
        if f["topic"] == sentinel:
            return got
        got.append(f["topic"])


def publish_all(c: w.RawClient, topics: list[str], sentinel: str = SENTINEL) -> None:
    for i, topic in enumerate([*topics, sentinel]):
        publish(c, topic, pid=i + 1)


# ---------------------------------------------------------------- publish

def test_publish_allowed_and_denied_311(acl_broker):
    """A denied 3.1.1 PUBLISH is dropped silently: the PUBACK still comes, nobody receives it."""
    b, _ = acl_broker
    monitor = connect(b, "monitor", "monitor")
    assert subscribe(monitor, "#") == [0]
    anonymous = connect(b, "anon-pub")
    alice = connect(b, "alice-pub", "alice")
    try:
        # anonymous: anon/out (write), public/x is read-only, alice/x has no rule, public/private denied
        publish_all(anonymous, ["anon/out", "public/x", "alice/x", "public/private/x", "spaced topic/a b"],
                    own("anon-pub"))
        assert collect_until(monitor, own("anon-pub")) == ["anon/out", "spaced topic/a b"]
        # alice: her section; the deny wins although it comes after `alice/#` in the file
        publish_all(alice, ["alice/x", "alice/secret", "alice/secret/deeper", "public/x", "anon/out"],
                    own("alice-pub"))
        assert collect_until(monitor, own("alice-pub")) == ["alice/x", "alice/secret/deeper"]
    finally:
        for c in (monitor, anonymous, alice):
            c.close()


def test_denied_publish_v5_gets_not_authorized(acl_broker):
    b, _ = acl_broker
    c = connect(b, "v5-pub", version=w.V5)
    try:
        assert publish(c, "anon/out", version=w.V5, pid=1) in (0, 0x10)  # 0x10: no matching subscribers
        assert publish(c, "public/x", version=w.V5, pid=2) == 0x87
        assert publish(c, "nowhere", version=w.V5, pid=3) == 0x87
    finally:
        c.close()


def test_dollar_topics_need_a_filter_starting_with_dollar(acl_broker):
    """`topic write #` does not cover `$app/...`; `topic write $app/allowed/#` does."""
    b, _ = acl_broker
    monitor = connect(b, "monitor", "monitor")
    assert subscribe(monitor, "#", "$app/#") == [0, 0]
    writer = connect(b, "writer", "writer")
    try:
        publish_all(writer, ["$app/other", "$app/allowed/x", "plain"], own("writer"))
        assert collect_until(monitor, own("writer")) == ["$app/allowed/x", "plain"]
    finally:
        monitor.close()
        writer.close()


# ---------------------------------------------------------------- delivery

def test_delivery_filtered_per_reader(acl_broker):
    """Everyone subscribes to `#` (granted on both brokers); each receives only what it may read."""
    b, _ = acl_broker
    readers = {
        "anon": connect(b, "reader-anon"),
        "alice": connect(b, "reader-alice", "alice"),
        "bob": connect(b, "reader-bob", "bob"),
        "carol": connect(b, "reader-carol", "carol"),
    }
    writer = connect(b, "writer", "writer")
    try:
        for c in readers.values():
            assert subscribe(c, "#") == [0]
        topics = ["public/news", "public/private/x", "alice/x", "alice/secret", "anon/out",
                  "users/carol/inbox", "users/alice/inbox", "devices/reader-bob/t"]
        publish_all(writer, topics, own("reader-anon"))
        for reader in ("reader-alice", "reader-bob", "reader-carol"):
            publish(writer, own(reader), pid=100)
        got = {name: collect_until(c, own(f"reader-{name}")) for name, c in readers.items()}
        assert got == {
            "anon": ["public/news"],
            # alice's section has no deny for public/private: the anonymous section's deny is not hers
            "alice": ["public/news", "public/private/x", "alice/x", "users/alice/inbox"],
            "bob": ["alice/x", "alice/secret", "devices/reader-bob/t"],
            # no section: the anonymous section does not apply to a named user, only the patterns
            "carol": ["users/carol/inbox"],
        }
    finally:
        writer.close()
        for c in readers.values():
            c.close()


def test_retained_messages_filtered_at_subscribe(acl_broker):
    b, _ = acl_broker
    writer = connect(b, "writer", "writer")
    try:
        for i, topic in enumerate(["public/r", "alice/r", "public/private/r"]):
            publish(writer, topic, b"kept", pid=i + 1, retain=True)
    finally:
        writer.close()
    anonymous = connect(b, "late-anon")
    try:
        assert subscribe(anonymous, "public/#", "alice/#", "shared/#", qos=0) == (
            [0, 0, 0] if BROKER_KIND == "mosquitto" else [0, 0x80, 0])
        sender = connect(b, "sentinel")
        publish(sender, SENTINEL)
        sender.close()
        assert collect_until(anonymous) == ["public/r"]
    finally:
        anonymous.close()


# ---------------------------------------------------------------- patterns

def test_patterns_substitute_client_id_and_username(acl_broker):
    b, _ = acl_broker
    monitor = connect(b, "monitor", "monitor")
    assert subscribe(monitor, "#") == [0]
    device = connect(b, "dev1")
    carol = connect(b, "carol-dev", "carol")
    try:
        # %u patterns do not apply to a client without a user name
        publish_all(device, ["devices/dev1/temp", "devices/dev2/temp", "users/dev1/outbox"], own("dev1"))
        assert collect_until(monitor, own("dev1")) == ["devices/dev1/temp"]
        publish_all(carol, ["users/carol/outbox", "users/carol/inbox", "users/alice/outbox",
                            "devices/carol-dev/x"], own("carol-dev"))
        assert collect_until(monitor, own("carol-dev")) == ["users/carol/outbox", "devices/carol-dev/x"]
    finally:
        for c in (monitor, device, carol):
            c.close()


def test_wildcard_client_id_gets_nothing_through_patterns(acl_broker):
    """Client id `+` would turn `devices/%c/#` into `devices/+/#`: Mosquitto denies such clients
    everything their own section does not allow."""
    b, _ = acl_broker
    monitor = connect(b, "monitor", "monitor")
    assert subscribe(monitor, "#") == [0]
    sneaky = connect(b, "+")
    try:
        publish_all(sneaky, ["devices/victim/x", "devices/plus/x", "anon/out"])
        assert collect_until(monitor) == ["anon/out"]
    finally:
        monitor.close()
        sneaky.close()


# ---------------------------------------------------------------- SUBSCRIBE (midge differs)

SUBSCRIBE_CASES = [
    # filter,             readable for an anonymous client?
    ("public/#", True),
    ("#", True),                    # partial rights: granted, filtered per delivery
    ("+/news", True),
    ("public/private/#", False),    # a deny covers the whole filter
    ("public/private/x", False),
    ("alice/#", False),             # no rule for anonymous clients
    ("anon/out", False),            # write-only
    ("shared/+", True),
    ("devices/sub-anon/#", True),   # pattern devices/%c/#
    ("devices/other/#", False),
]


@pytest.mark.parametrize("version", [w.V311, w.V5], ids=["3.1.1", "5.0"])
def test_subscribe_refused_where_nothing_is_readable(acl_broker, version):
    b, _ = acl_broker
    c = connect(b, "sub-anon", version=version)
    try:
        codes = subscribe(c, *[f for f, _ in SUBSCRIBE_CASES], qos=1, version=version)
        if BROKER_KIND == "mosquitto":
            expected = [1] * len(SUBSCRIBE_CASES)  # Mosquitto 2.0 grants every SUBSCRIBE
        else:
            refused = 0x87 if version == w.V5 else 0x80
            expected = [1 if readable else refused for _, readable in SUBSCRIBE_CASES]
        assert codes == expected
    finally:
        c.close()


def test_subscribe_for_a_user(acl_broker):
    b, _ = acl_broker
    alice = connect(b, "sub-alice", "alice")
    try:
        codes = subscribe(alice, "alice/secret", "alice/+", "users/alice/inbox", "users/alice/outbox",
                          "users/bob/inbox", qos=1)
        assert codes == ([1, 1, 1, 1, 1] if BROKER_KIND == "mosquitto" else [0x80, 1, 1, 0x80, 0x80])
    finally:
        alice.close()


# ---------------------------------------------------------------- reload

def test_sighup_reloads_the_acl_for_connected_clients(acl_broker):
    b, acl = acl_broker
    monitor = connect(b, "monitor", "monitor")
    assert subscribe(monitor, "#") == [0]
    anonymous = connect(b, "reload-anon")
    try:
        publish_all(anonymous, ["later/x"], own("reload-anon"))
        assert collect_until(monitor, own("reload-anon")) == []
        acl.write_text(ACL.replace("topic write anon/out", "topic write anon/out\ntopic write later/#"))
        b.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while True:
            publish_all(anonymous, ["later/x"], own("reload-anon"))
            if collect_until(monitor, own("reload-anon")) == ["later/x"]:
                break
            assert time.monotonic() < deadline, "the new ACL was not applied after SIGHUP"
            time.sleep(0.1)
    finally:
        monitor.close()
        anonymous.close()


def test_bad_acl_file_stops_start_up(broker, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic read a\ntopic bogus b\n")
    with pytest.raises(pytest.fail.Exception):
        broker(extra=f"acl_file {acl}")
