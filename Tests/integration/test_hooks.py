"""Hooks against the running broker: the `log` hook (Mosquitto's log_type / connection_messages), the `sys`
hook ($SYS/broker/... read with mosquitto_sub, side by side with Mosquitto's), and the example
`topic-rewrite` hook as the README's "Write your own hook" section configures it.

The hook API's failure rules (a hook that throws, one whose future never completes, a rewrite into a topic
the client may not write) are tested in-process with misbehaving hooks: Tests/HostTests/HookTests.swift.
"""
from __future__ import annotations

import queue
import subprocess
import time

import pytest

from clients import QUIET, WAIT, MosquittoSub, PahoClient, mosquitto_pub, unique, wait_for_log
from conftest import BROKER_KIND, broker_bin

midge_only = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Midge's own hook plugins")

SYS_TOPICS = [
    "$SYS/broker/version",
    "$SYS/broker/uptime",
    "$SYS/broker/clients/connected",
    "$SYS/broker/clients/total",
    "$SYS/broker/clients/maximum",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
    "$SYS/broker/publish/messages/received",
    "$SYS/broker/subscriptions/count",
    "$SYS/broker/retained messages/count",
    "$SYS/broker/load/messages/received/1min",
]


def sys_snapshot(b, topics=SYS_TOPICS, timeout: float = 10, until=lambda latest: True):
    """Reads $SYS topics until each has arrived and `until(latest values)` holds (bounded).

    Returns (first, latest): first = {topic: (retain flag, payload)} as a new subscriber first sees each one
    (the retained value), latest = {topic: payload}, the newest value seen.
    """
    sub = MosquittoSub(b, *topics, count=10000, timeout=int(timeout) + 5)
    first: dict[str, tuple[bool, str]] = {}
    latest: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    try:
        while not (set(first) == set(topics) and until(latest)) and time.monotonic() < deadline:
            try:
                line = sub.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("MSG|"):
                _, topic, _, retain, payload = line.split("|", 4)
                first.setdefault(topic, (retain == "1", payload))
                latest[topic] = payload
    finally:
        sub.kill()
    return first, latest


def test_sys_tree_is_published_retained(broker):
    b = broker(extra="sys_interval 1")
    # A client that stays connected, with a subscription and a retained message to count.
    keeper = PahoClient(b, client_id=unique("keeper"))
    keeper.connect()
    keeper.subscribe("count/me")
    keeper.publish("count/retained", "r", qos=1, retain=True)
    try:
        # Load averages need two samples: wait for the second interval's values.
        first, latest = sys_snapshot(
            b, until=lambda v: int(v.get("$SYS/broker/clients/connected", "0")) >= 2
            and int(v.get("$SYS/broker/retained messages/count", "0")) >= 1
            and int(v.get("$SYS/broker/messages/received", "0")) > 0
            and int(v.get("$SYS/broker/bytes/sent", "0")) > 0)
        assert set(first) == set(SYS_TOPICS), first
        # Retained: a new subscriber gets them at once.
        # (Mosquitto publishes some counters only once they change, so check those published at start.)
        assert all(first[t][0] for t in ["$SYS/broker/version", "$SYS/broker/uptime",
                                          "$SYS/broker/clients/connected", "$SYS/broker/messages/received"]), first
        assert latest["$SYS/broker/version"].startswith(
            "midge version " if BROKER_KIND == "midge" else "mosquitto version ")
        assert latest["$SYS/broker/uptime"].endswith(" seconds")
        # keeper and the mosquitto_sub reading these values
        assert int(latest["$SYS/broker/clients/connected"]) >= 2
        assert int(latest["$SYS/broker/clients/maximum"]) >= 2
        if BROKER_KIND == "midge":  # Debian's mosquitto 2.0.11 reports 0 here whatever is subscribed
            assert int(latest["$SYS/broker/subscriptions/count"]) >= 2
        assert int(latest["$SYS/broker/retained messages/count"]) >= 1
        assert int(latest["$SYS/broker/messages/received"]) > 0
        assert int(latest["$SYS/broker/bytes/sent"]) > 0
        float(latest["$SYS/broker/load/messages/received/1min"])
    finally:
        keeper.stop()


def test_sys_counters_follow_clients(broker):
    b = broker(extra="sys_interval 1")
    watcher = MosquittoSub(b, "$SYS/broker/clients/connected", count=50, timeout=15)
    watcher.wait_subscribed()
    extra = [PahoClient(b, client_id=unique("extra")) for _ in range(3)]
    for c in extra:
        c.connect()
    try:
        # The value goes up to at least 4 (the watcher and three clients) within a couple of intervals.
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = watcher.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                break
            if line.startswith("MSG|"):
                seen.append(int(line.split("|")[4]))
                if seen[-1] >= 4:
                    break
        assert seen and seen[-1] >= 4, seen
    finally:
        for c in extra:
            c.stop()
        watcher.kill()


def test_sys_interval_zero_publishes_nothing(broker):
    b = broker(extra="sys_interval 0")
    sub = MosquittoSub(b, "$SYS/#", count=1, timeout=2)
    assert sub.finish() == []


def test_clients_cannot_publish_to_sys(broker):
    b = broker(extra="sys_interval 1")
    mosquitto_pub(b, "$SYS/broker/version", "-m", "fake", "-r")
    first, _ = sys_snapshot(b, ["$SYS/broker/version"])
    assert first["$SYS/broker/version"][1] != "fake"


# --- log hook -----------------------------------------------------------------------------------------------


def test_log_type_subscribe_logs_subscriptions_but_not_messages(broker):
    b = broker(extra="log_dest stderr\nlog_type subscribe\nlog_type notice\n", verbose=False)
    cid = unique("sublog")
    sub = MosquittoSub(b, "logs/#", qos=1, count=1, extra=("-i", cid))
    sub.wait_subscribed()
    mosquitto_pub(b, "logs/x", "-m", "hi")
    sub.finish()
    wait_for_log(b, f"{cid} 1 logs/#", 0)
    assert "New client connected from" in b.log()
    assert "Received PUBLISH from" not in b.log()


def test_debug_log_shows_messages_and_never_passwords(broker, tmp_path):
    b = broker(extra="log_dest stderr\nlog_type all\n", verbose=False)
    cid = unique("dbg")
    mosquitto_pub(b, "dbg/topic", "-m", "payload", "-i", cid, "-u", "someone", "-P", "Sup3rSecretPw")
    wait_for_log(b, f"Received PUBLISH from {cid}", 0)
    log = b.log()
    assert f"as {cid} (p2, c1, k60, u'someone')" in log
    assert "'dbg/topic'" in log
    assert "Sup3rSecretPw" not in log


def test_connection_messages_false_silences_connects(broker):
    b = broker(extra="log_dest stderr\nconnection_messages false\n", verbose=False)
    cid = unique("quiet")
    mosquitto_pub(b, "q", "-m", "x", "-i", cid)
    # A client's line that is logged regardless, to know the broker handled the connection.
    mosquitto_pub(b, "$SYS/x", "-m", "x", "-i", cid + "-marker")
    wait_for_log(b, "Denied PUBLISH from " + cid + "-marker" if BROKER_KIND == "midge" else "", 0)
    assert f"as {cid}" not in b.log()


# --- the example hook ----------------------------------------------------------------------------------------

REWRITE = "plugin topic-rewrite\nplugin_opt_from sensors/\nplugin_opt_to site-a/sensors/\n"


@midge_only
def test_topic_rewrite_example_moves_messages(broker):
    b = broker(extra=REWRITE)
    sub = MosquittoSub(b, "#", count=1)
    sub.wait_subscribed()
    mosquitto_pub(b, "sensors/t1", "-m", "21.5")
    assert sub.finish() == [("site-a/sensors/t1", 0, False, "21.5")]


@midge_only
def test_topic_rewrite_cannot_carry_a_message_where_its_client_may_not_write(broker, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite sensors/#\ntopic read #\n")
    b = broker(extra=REWRITE + f"acl_file {acl}\n")
    sub = PahoClient(b, client_id=unique("all"))
    sub.connect()
    sub.subscribe("#", qos=1)
    try:
        mosquitto_pub(b, "sensors/t1", "-m", "21.5", "-q", "1")
        sub.assert_no_message(QUIET)
        wait_for_log(b, "Denied PUBLISH from", 0)
        assert "rewritten by a hook from sensors/t1" in b.log()
    finally:
        sub.stop()


@midge_only
def test_hook_option_errors_stop_startup_with_file_and_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("listener 18999 127.0.0.1\nplugin topic-rewrite\nplugin_opt_from sensors/\n")
    r = subprocess.run([broker_bin("midge"), "-c", str(conf)], capture_output=True, text=True, timeout=WAIT)
    assert r.returncode != 0
    assert f"{conf}:2" in r.stderr + r.stdout and "'to'" in r.stderr + r.stdout
