"""The `prometheus` hook: /metrics on the admin listener, scraped with a real HTTP client (urllib), with figures
that follow real clients' traffic (paho-mqtt, mosquitto_pub)."""
from __future__ import annotations

import re
import time

import pytest

from clients import WAIT, PahoClient, mosquitto_pub, unique, wait_for_log
from conftest import BROKER_KIND
from test_admin_http import admin_port, get

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="the prometheus hook is Midge's")

SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$')


def scrape(port: int) -> dict[str, float]:
    status, headers, body = get(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_metrics_follow_traffic(broker):
    b = broker(extra="admin_listener 0 127.0.0.1\nplugin prometheus\n")
    port = admin_port(b)
    before = scrape(port)
    assert before["midge_clients_connected"] == 0
    keeper = PahoClient(b, client_id=unique("keeper"))
    keeper.connect()
    keeper.subscribe("m/#", qos=1)
    try:
        for i in range(5):
            mosquitto_pub(b, "m/x", "-m", f"payload-{i}", "-q", "1")
        keeper.get_n(5)
        listener = f'midge_listener_connections{{listener="{b.port}"}}'
        # The last mosquitto_pub has exited, but the broker handles its DISCONNECT and close on its own event
        # loop, possibly after this scrape: wait (bounded) until both gauges count only the keeper.
        deadline = time.monotonic() + WAIT
        while True:
            after = scrape(port)
            if (after["midge_clients_connected"], after.get(listener)) == (1, 1) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert after["midge_clients_connected"] == 1
        assert after["midge_clients_maximum"] >= 2  # keeper + one mosquitto_pub at a time
        assert after["midge_subscriptions"] == 1
        assert after["midge_publish_received_total"] - before.get("midge_publish_received_total", 0) == 5
        assert after["midge_publish_sent_total"] - before.get("midge_publish_sent_total", 0) == 5
        assert after["midge_bytes_received_total"] > before.get("midge_bytes_received_total", 0)
        assert after["midge_connections_accepted_total"] >= 6
        assert after[listener] == 1, after
        # Counters never go down between scrapes.
        again = scrape(port)
        for name, value in after.items():
            if name.endswith("_total"):
                assert again[name] >= value, name
    finally:
        keeper.stop()


def test_metrics_without_admin_listener_warns(broker):
    b = broker(extra="plugin prometheus\n")
    wait_for_log(b, "no admin_listener is configured", 0)  # logged at start-up: no need to idle 2 s first
