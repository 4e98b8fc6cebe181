"""MQTT over WebSocket: `protocol websockets` listeners, plain (ws://) and with TLS (wss://).

Each broker gets the fixture's plain MQTT listener plus a websockets listener on another loopback
port (Mosquitto 2.0.11 refuses to start with a websockets listener alone). Clients are paho-mqtt
with transport="websockets" (mosquitto_pub/sub do not speak WebSocket) and a raw WebSocket client
written here, which controls how MQTT packets are cut into frames.

Runs against Debian's mosquitto too (BROKER=mosquitto, which has libwebsockets built in); where
Midge differs on purpose the test says so.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import mqttwire as w
from clients import WAIT, PahoClient, unique
from conftest import BROKER_KIND, free_port
from test_tls import issue, make_ca, wait_port

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BINARY, TEXT, CLOSE, PING, PONG, CONTINUATION = 0x2, 0x1, 0x8, 0x9, 0xA, 0x0


# ---------------------------------------------------------------------------------------------
# Brokers

def ws_broker(broker, extra: str = "", listener_extra: str = ""):
    """Starts the broker with a websockets listener; returns (broker, websockets endpoint).

    `extra` goes before the listeners (global options), `listener_extra` into the websockets listener.
    """
    port = free_port()
    b = broker(extra=f"{extra}\nlistener {port} 127.0.0.1\nprotocol websockets\n{listener_extra}")
    wait_port(port)
    return b, SimpleNamespace(host="127.0.0.1", port=port, kind=b.kind)


@pytest.fixture(scope="module")
def ws_pki(tmp_path_factory) -> Path:
    """A CA and a server certificate for localhost and 127.0.0.1, made with the openssl command."""
    d = tmp_path_factory.mktemp("ws-pki")
    make_ca(d, "ca")
    issue(d, "ca", "server", "/CN=localhost",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
          "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    return d


def wss_broker(broker, pki: Path, listener_extra: str = ""):
    # `user root`: Mosquitto drops privileges before reading the files (pytest's tmp dir is 0700).
    return ws_broker(broker, "user root",
                     f"certfile {pki}/server.crt\nkeyfile {pki}/server.key\n{listener_extra}")


def paho(endpoint, **kw) -> PahoClient:
    return PahoClient(endpoint, transport="websockets", **kw)


# ---------------------------------------------------------------------------------------------
# A raw WebSocket client

def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
    """A client frame (masked, as RFC 6455 requires of clients, unless `masked` is False)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    # XOR with the key repeated: one big-integer operation instead of a Python loop per byte.
    stream = (key * (n // 4 + 1))[:n]
    masked_payload = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big") if n else b""
    return head + key + masked_payload


class WSClient:
    """One WebSocket connection: the HTTP upgrade, then frames both ways.

    Reads are bounded; `Closed` and `Timeout` come from mqttwire, as for RawClient.
    """

    def __init__(self, endpoint, protocols: str | None = "mqtt", path: str = "/mqtt",
                 timeout: float = w.DEFAULT_TIMEOUT, request: bytes | None = None, key: str | None = None):
        """Sends an upgrade request (or `request`, whose Sec-WebSocket-Key is `key`) and reads the answer."""
        self.sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.mqtt = b""         # binary payload bytes not yet parsed into packets
        self.key = key or base64.b64encode(os.urandom(16)).decode()
        if request is None:
            lines = [f"GET {path} HTTP/1.1", f"Host: {endpoint.host}:{endpoint.port}", "Upgrade: websocket",
                     "Connection: Upgrade", f"Sec-WebSocket-Key: {self.key}", "Sec-WebSocket-Version: 13"]
            if protocols is not None:
                lines.append(f"Sec-WebSocket-Protocol: {protocols}")
            request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        try:
            self.sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed at accept (max_connections): _read_head sees the close
        self.status, self.headers = self._read_head(timeout)

    @property
    def accepted(self) -> bool:
        return self.status == 101

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise w.Timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise w.Timeout() from None
        except (ConnectionResetError, BrokenPipeError):
            raise w.Closed() from None
        if not chunk:
            raise w.Closed()
        self.buf += chunk

    def _read_head(self, timeout: float) -> tuple[int | None, dict[str, str]]:
        """The answer's status and headers (names lower-cased); (None, {}) when closed without one."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            try:
                self._fill(deadline)
            except w.Closed:
                assert self.buf == b"", f"closed inside the HTTP answer: {self.buf!r}"
                return None, {}
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 101:
            digest = hashlib.sha1((self.key + GUID).encode()).digest()  # noqa: S324 (RFC 6455 says SHA-1)
            assert headers.get("sec-websocket-accept") == base64.b64encode(digest).decode(), headers
        return status, headers

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_mqtt(self, data: bytes) -> None:
        """MQTT bytes in one binary frame."""
        self.send(frame(BINARY, data))

    def recv_frame(self, timeout: float = w.DEFAULT_TIMEOUT) -> tuple[bool, int, bytes]:
        """The next frame the server sent: (fin, opcode, payload). Server frames are never masked."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                assert self.buf[1] & 0x80 == 0, "the server masked a frame"
                n = self.buf[1] & 0x7F
                pos = {126: 4, 127: 10}.get(n, 2)
                if len(self.buf) >= pos:
                    if n == 126:
                        n = struct.unpack_from("!H", self.buf, 2)[0]
                    elif n == 127:
                        n = struct.unpack_from("!Q", self.buf, 2)[0]
                    if len(self.buf) >= pos + n:
                        fin, opcode = bool(self.buf[0] & 0x80), self.buf[0] & 0x0F
                        payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
                        return fin, opcode, payload
            self._fill(deadline)

    def recv_packet(self, timeout: float = w.DEFAULT_TIMEOUT) -> w.Packet:
        """The next MQTT packet from the binary frames (packets may span frames); pings are answered."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.mqtt) >= 2:
                try:
                    length, pos = w.read_varint(self.mqtt, 1)
                except IndexError:
                    length = None
                if length is not None and len(self.mqtt) >= pos + length:
                    raw, self.mqtt = self.mqtt[:pos + length], self.mqtt[pos + length:]
                    return w.Packet(raw, raw[0] >> 4, raw[0] & 0x0F, raw[pos:])
            _, opcode, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if opcode in (BINARY, CONTINUATION):
                self.mqtt += payload
            elif opcode == CLOSE:
                raise w.Closed()
            else:
                assert opcode == PONG, f"unexpected frame opcode {opcode}"

    def expect(self, ptype: int, timeout: float = w.DEFAULT_TIMEOUT) -> w.Packet:
        p = self.recv_packet(timeout)
        assert p.ptype == ptype, f"expected packet type {ptype}, got {p!r}"
        return p

    def close_status(self, timeout: float = w.DEFAULT_TIMEOUT) -> int | None:
        """Reads until the server's close frame and returns its status (None without one, or when the
        server just closed the connection)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, opcode, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except w.Closed:
                return None
            if opcode == CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def wait_eof(self, timeout: float = w.DEFAULT_TIMEOUT) -> bytes:
        """Reads until the server closes the connection; returns what came (raises Timeout if it stays open)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline)
            except w.Closed:
                rest, self.buf = self.buf, b""
                return rest

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def ws_connected(endpoint, client_id: str, **kw) -> WSClient:
    c = WSClient(endpoint)
    assert c.accepted, (c.status, c.headers)
    c.send_mqtt(w.connect(client_id, **kw))
    ack = c.expect(w.CONNACK)
    assert ack.body[1] == 0, ack
    return c


# ---------------------------------------------------------------------------------------------
# paho over ws:// and wss://

@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_paho_publishes_and_receives_over_websockets(broker, protocol):
    b, ws = ws_broker(broker)
    topic = unique("ws")
    sub = paho(ws, protocol=protocol)
    pub = paho(ws, protocol=protocol)
    plain_sub = PahoClient(b)
    try:
        sub.connect()
        pub.connect()
        plain_sub.connect()
        assert sub.subscribe(f"{topic}/#", qos=1) == [1]
        assert plain_sub.subscribe(f"{topic}/#", qos=1) == [1]
        pub.publish(f"{topic}/a", b"over websockets", qos=1)
        pub.publish(f"{topic}/b", b"qos 2", qos=2)
        for c in (sub, plain_sub):  # to the websockets subscriber and, across listeners, the plain one
            got = c.get_n(2)
            assert [(m.topic, m.payload, m.qos) for m in got] == [
                (f"{topic}/a", b"over websockets", 1), (f"{topic}/b", b"qos 2", 1)]
        # And from the plain listener to the websockets one.
        plain_pub = PahoClient(b)
        try:
            plain_pub.connect()
            plain_pub.publish(f"{topic}/c", b"from plain", qos=1)
        finally:
            plain_pub.stop()
        m = sub.get()
        assert (m.topic, m.payload) == (f"{topic}/c", b"from plain")
    finally:
        for c in (sub, pub, plain_sub):
            c.stop()


def test_paho_mqtt_31_with_the_mqttv31_subprotocol(broker):
    _, ws = ws_broker(broker)
    topic = unique("ws31")
    c = paho(ws, protocol="3.1", ws_headers={"Sec-Websocket-Protocol": "mqttv3.1"})
    try:
        c.connect()
        assert c.subscribe(topic, qos=1) == [1]
        c.publish(topic, b"3.1", qos=1)
        assert c.get().payload == b"3.1"
    finally:
        c.stop()


@pytest.mark.parametrize("size", [200_000, 1_000_000])
def test_large_payloads_over_websockets(broker, size):
    if BROKER_KIND == "mosquitto" and size > 200_000:
        pytest.skip("mosquitto 2.0.11 stalls sending a 1 MB frame to a websockets client (about 400 KB arrive)")
    _, ws = ws_broker(broker)
    topic = unique("ws-large")
    payload = os.urandom(size)
    sub, pub = paho(ws), paho(ws)
    try:
        sub.connect()
        pub.connect()
        assert sub.subscribe(topic, qos=1) == [1]
        pub.publish(topic, payload, qos=1, timeout=15)
        m = sub.get(timeout=15)
        assert m.payload == payload
    finally:
        sub.stop()
        pub.stop()


def test_paho_over_wss(broker, ws_pki):
    b, wss = wss_broker(broker, ws_pki)
    topic = unique("wss")
    ca = str(ws_pki / "ca.crt")
    sub, pub = paho(wss, ca_certs=ca), paho(wss, ca_certs=ca, protocol="5")
    plain_sub = PahoClient(b)
    try:
        sub.connect()
        pub.connect()
        plain_sub.connect()
        assert isinstance(sub.c.socket(), ssl.SSLSocket) or isinstance(getattr(sub.c.socket(), "_socket", None), ssl.SSLSocket)
        assert sub.subscribe(topic, qos=1) == [1]
        assert plain_sub.subscribe(topic, qos=1) == [1]
        big = os.urandom(200_000)
        pub.publish(topic, b"over wss", qos=1)
        pub.publish(topic, big, qos=1, timeout=15)
        for c in (sub, plain_sub):
            got = c.get_n(2, timeout=15)
            assert [m.payload for m in got] == [b"over wss", big]
    finally:
        for c in (sub, pub, plain_sub):
            c.stop()


def test_wss_listener_refuses_plain_websockets(broker, ws_pki):
    _, wss = wss_broker(broker, ws_pki)
    c = paho(wss)  # no TLS
    try:
        with pytest.raises((AssertionError, OSError)):
            c.connect(timeout=3)
    finally:
        c.stop()


# ---------------------------------------------------------------------------------------------
# Frames and packets

def test_one_packet_split_over_several_frames(broker):
    _, ws = ws_broker(broker)
    c = WSClient(ws)
    try:
        assert c.accepted
        connect = w.connect(unique("split"))
        # One fragmented message: binary (not final), continuations, a ping between the fragments.
        c.send(frame(BINARY, connect[:1], fin=False) + frame(CONTINUATION, connect[1:5], fin=False)
               + frame(PING, b"between") + frame(CONTINUATION, connect[5:]))
        assert c.expect(w.CONNACK).body[1] == 0
        # Several complete messages, cut at arbitrary bytes (MQTT does not care where frames end).
        topic = unique("split")
        stream = w.subscribe(1, (topic, 1)) + w.publish(topic, b"x" * 300, qos=1, pid=2)
        for i in range(0, len(stream), 7):
            c.send(frame(BINARY, stream[i:i + 7]))
        assert c.expect(w.SUBACK).pid == 1
        got = {p.ptype: p for p in (c.recv_packet(), c.recv_packet())}  # PUBACK and PUBLISH, any order
        assert set(got) == {w.PUBACK, w.PUBLISH}
        assert got[w.PUBLISH].publish_fields()["payload"] == b"x" * 300
    finally:
        c.close()


def test_several_packets_in_one_frame(broker):
    _, ws = ws_broker(broker)
    c = WSClient(ws)
    try:
        assert c.accepted
        topic = unique("many")
        c.send_mqtt(w.connect(unique("many")) + w.subscribe(1, (topic, 0))
                    + w.publish(topic, b"one") + w.publish(topic, b"two") + w.pingreq())
        assert c.expect(w.CONNACK).body[1] == 0
        assert c.expect(w.SUBACK).pid == 1
        rest = [c.recv_packet() for _ in range(3)]
        # The deliveries go through the router: PINGRESP may come before them.
        assert sorted(p.ptype for p in rest) == [w.PUBLISH, w.PUBLISH, w.PINGRESP]
        assert [p.publish_fields()["payload"] for p in rest if p.ptype == w.PUBLISH] == [b"one", b"two"]
    finally:
        c.close()


def test_the_http_request_and_the_first_frames_in_one_write(broker):
    _, ws = ws_broker(broker)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
    c = WSClient(ws, request=request.encode() + frame(BINARY, w.connect(unique("eager"))), key=key)
    try:
        assert c.status == 101
        assert c.expect(w.CONNACK).body[1] == 0
    finally:
        c.close()


def test_ping_is_answered_with_pong(broker):
    _, ws = ws_broker(broker)
    c = ws_connected(ws, unique("ping"))
    try:
        c.send(frame(PING, b"are you there"))
        assert c.recv_frame() == (True, PONG, b"are you there")
    finally:
        c.close()


def test_close_is_answered_and_the_will_is_published(broker):
    _, ws = ws_broker(broker)
    topic = unique("will")
    watcher = ws_connected(ws, unique("watcher"))
    c = ws_connected(ws, unique("closer"), will=(topic, b"gone", 0, False))
    try:
        watcher.send_mqtt(w.subscribe(1, (topic, 0)))
        assert watcher.expect(w.SUBACK).pid == 1
        c.send(frame(CLOSE, struct.pack("!H", 1000) + b"bye"))
        assert c.close_status() == 1000
        assert c.wait_eof() == b""
        # A WebSocket close is not an MQTT DISCONNECT: the will goes out.
        p = watcher.expect(w.PUBLISH)
        assert p.publish_fields()["payload"] == b"gone"
    finally:
        c.close()
        watcher.close()


def test_mqtt_disconnect_closes_the_connection(broker):
    _, ws = ws_broker(broker)
    c = ws_connected(ws, unique("bye"))
    try:
        c.send_mqtt(w.disconnect())
        # Midge sends a close frame (1000) first; Mosquitto just closes the connection.
        assert c.close_status() in ((None,) if BROKER_KIND == "mosquitto" else (1000,))
        c.wait_eof()
    finally:
        c.close()


def test_text_frames_are_refused(broker):
    _, ws = ws_broker(broker)
    c = WSClient(ws)
    try:
        assert c.accepted
        c.send(frame(TEXT, w.connect(unique("text"))))
        if BROKER_KIND == "mosquitto":
            # Mosquitto (libwebsockets) takes a text frame's payload as MQTT.
            assert c.expect(w.CONNACK).body[1] == 0
        else:
            # MQTT 3.1.1 and 5.0, section 6: any data frame other than binary closes the connection.
            assert c.close_status() == 1003
            c.wait_eof()
    finally:
        c.close()


@pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Mosquitto (libwebsockets) accepts unmasked client frames")
def test_unmasked_frames_are_refused(broker):
    _, ws = ws_broker(broker)
    c = WSClient(ws)
    try:
        assert c.accepted
        c.send(frame(BINARY, w.connect(unique("unmasked")), masked=False))
        assert c.close_status() == 1002
        c.wait_eof()
    finally:
        c.close()


@pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Midge's frame cap follows max_packet_size")
def test_a_frame_over_the_cap_closes_with_1009(broker):
    # max_packet_size 1000: frames up to 64 KiB are read (several small packets may share one).
    _, ws = ws_broker(broker, extra="max_packet_size 1000")
    c = ws_connected(ws, unique("cap"))
    try:
        c.send(frame(BINARY, b"\x00" * 65_537))
        assert c.close_status() == 1009
        c.wait_eof()
    finally:
        c.close()


@pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="Mosquitto (libwebsockets) waits for the gigabyte to arrive")
def test_a_frame_header_announcing_a_gigabyte_is_refused_before_any_payload(broker):
    # No max_packet_size: the cap is MQTT's largest packet (256 MiB). A header announcing 1 GiB, with no payload
    # behind it, is refused from the header alone: nothing is read or kept for the gigabyte.
    _, ws = ws_broker(broker)
    c = ws_connected(ws, unique("giga"))
    try:
        c.send(bytes([0x80 | BINARY, 0x80 | 127]) + struct.pack("!Q", 1 << 30) + os.urandom(4))
        assert c.close_status() == 1009
        c.wait_eof()
    finally:
        c.close()
    canary = ws_connected(ws, unique("after"))  # the listener goes on
    canary.close()


# ---------------------------------------------------------------------------------------------
# The upgrade

def test_any_path_and_no_subprotocol_are_accepted(broker):
    _, ws = ws_broker(broker)
    for path, protocols in (("/", "mqtt"), ("/some/where", "mqtt"), ("/mqtt", None)):
        c = WSClient(ws, protocols=protocols, path=path)
        try:
            assert c.accepted, (path, c.status)
            if protocols is None:
                assert "sec-websocket-protocol" not in c.headers
                if BROKER_KIND == "mosquitto":
                    # Mosquitto answers 101 too, but libwebsockets then gives the connection to its HTTP-only
                    # protocol: MQTT sent on it is never answered. Midge speaks MQTT on it.
                    continue
            c.send_mqtt(w.connect(unique("path")))
            assert c.expect(w.CONNACK).body[1] == 0
        finally:
            c.close()


@pytest.mark.parametrize("offered, answered", [
    ("mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1"), ("mqttv3.1, mqtt", "mqttv3.1"), ("foo, mqtt", "mqtt")])
def test_the_first_acceptable_subprotocol_is_answered(broker, offered, answered):
    _, ws = ws_broker(broker)
    c = WSClient(ws, protocols=offered)
    try:
        assert c.accepted
        assert c.headers.get("sec-websocket-protocol") == answered
    finally:
        c.close()


def test_an_upgrade_without_an_acceptable_subprotocol_is_refused(broker):
    _, ws = ws_broker(broker)
    c = WSClient(ws, protocols="foo")
    try:
        # Midge answers 400; Mosquitto closes without an answer.
        assert c.status == (None if BROKER_KIND == "mosquitto" else 400)
        c.wait_eof()
    finally:
        c.close()


def test_a_plain_http_request_is_refused(broker):
    _, ws = ws_broker(broker)
    c = WSClient(ws, request=b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        # Midge answers 426 Upgrade Required; Mosquitto (no http_dir) closes without an answer.
        assert c.status == (None if BROKER_KIND == "mosquitto" else 426)
        c.wait_eof()
    finally:
        c.close()


def test_mqtt_without_websocket_gets_an_http_error(broker):
    _, ws = ws_broker(broker)
    c = WSClient(ws, request=w.connect(unique("not-ws")))
    try:
        # Midge 400, Mosquitto 403: either way an HTTP client error, then the connection closes.
        assert c.status is not None and 400 <= c.status < 500
        c.wait_eof()
    finally:
        c.close()


@pytest.mark.skipif(BROKER_KIND == "mosquitto",
                    reason="mosquitto 2.0.11 does not apply max_connections to websockets listeners")
def test_max_connections_on_a_websockets_listener(broker):
    _, ws = ws_broker(broker, listener_extra="max_connections 1")
    # The readiness probe may still hold the slot for a moment after it closed: bounded retries, each
    # waiting for an event (the broker's close or its 101).
    first = None
    for _ in range(50):
        c = WSClient(ws)
        if c.accepted:
            first = c
            break
        c.close()
    assert first is not None, "no connection slot became free"
    try:
        first.send_mqtt(w.connect(unique("first")))
        assert first.expect(w.CONNACK).body[1] == 0
        # A second connection is closed at accept, before any HTTP answer.
        second = WSClient(ws)
        assert second.status is None
        second.close()
        # paho sees the same.
        p = paho(ws)
        try:
            with pytest.raises((AssertionError, OSError)):
                p.connect(timeout=3)
        finally:
            p.stop()
    finally:
        first.send_mqtt(w.disconnect())
        first.close()
    deadline = time.monotonic() + WAIT
    while True:  # the slot is released when the broker has processed the close
        c = WSClient(ws)
        if c.accepted:
            c.close()
            break
        c.close()
        assert time.monotonic() < deadline, "the slot was not released"
