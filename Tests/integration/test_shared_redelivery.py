"""A shared-subscription member whose session ends with messages it never acknowledged: Midge gives them to
another member of the group (MQTT 5.0 section 4.8.2 recommends it); Mosquitto 2.0 drops them."""
from __future__ import annotations

import mqttwire as w
from clients import QUIET, raw_connected, raw_publish, raw_subscribe, recv_publish, unique
from conftest import BROKER_KIND


def test_unacknowledged_shared_messages_go_to_another_member_when_a_session_ends(broker):
    b = broker()
    group = "$share/workers/jobs/#"
    quiet = raw_connected(b, unique("quiet"), version=w.V5)   # reads, never acknowledges
    raw_subscribe(quiet, group, qos=1, version=w.V5)
    worker = raw_connected(b, unique("worker"), version=w.V5)
    raw_subscribe(worker, group, qos=1, version=w.V5)
    pub = raw_connected(b, unique("pub"), version=w.V5)
    sent = [f"job-{i}".encode() for i in range(6)]
    for i, payload in enumerate(sent):
        raw_publish(pub, "jobs/x", payload, qos=1, pid=i + 1, version=w.V5)

    def take(client, expected: int) -> list[bytes]:
        got = []
        for _ in range(expected):
            packet, fields = recv_publish(client, w.V5)
            got.append(fields["payload"])
            if client is worker:
                client.send(w.ack(w.PUBACK, fields["pid"]))
        return got

    # Round robin: each member gets half.
    unacked = take(quiet, 3)
    done = take(worker, 3)
    assert sorted(unacked + done) == sorted(sent)
    quiet.abort()  # session expiry 0: the session ends with three messages unacknowledged
    if BROKER_KIND == "midge":
        assert sorted(take(worker, 3)) == sorted(unacked)
    else:
        try:
            extra = worker.recv_packet(timeout=QUIET)
        except w.Timeout:
            extra = None
        assert extra is None, f"mosquitto redelivered {extra!r}"
    for c in (worker, pub):
        c.close()
