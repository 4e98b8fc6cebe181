"""Minimal raw MQTT codec and socket client for wire-level tests.

Only what the integration tests need: build packets byte by byte (so tests can
also build *wrong* ones), read exactly one packet back with a bounded wait, and
tell a timeout apart from the broker closing the connection.
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

# Packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

# Protocol levels
V31, V311, V5 = 3, 4, 5

# MQTT 5 property identifiers used here
PROP_SESSION_EXPIRY = 0x11
PROP_ASSIGNED_CLIENT_ID = 0x12
PROP_SERVER_KEEP_ALIVE = 0x13
PROP_REASON_STRING = 0x1F
PROP_RECEIVE_MAXIMUM = 0x21
PROP_TOPIC_ALIAS_MAXIMUM = 0x22
PROP_USER_PROPERTY = 0x26
PROP_MAXIMUM_PACKET_SIZE = 0x27

DEFAULT_TIMEOUT = 3.0


class Closed(Exception):
    """The peer closed the connection (EOF or reset)."""


class Timeout(Exception):
    """Nothing (or only part of a packet) arrived within the timeout."""


# ---------------------------------------------------------------- encoding

def varint(n: int) -> bytes:
    if n < 0 or n > 268_435_455:
        raise ValueError(n)
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def u16(n: int) -> bytes:
    return struct.pack("!H", n)


def u32(n: int) -> bytes:
    return struct.pack("!I", n)


def mstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return u16(len(b)) + b


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def props(*items: tuple[int, object]) -> bytes:
    """Encode an MQTT 5 property block (length prefix included).

    Items are (identifier, value); value is int (size chosen from the id),
    str/bytes (string), or a (key, value) tuple for user properties.
    """
    one_byte = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
    two_byte = {0x13, 0x21, 0x22, 0x23}
    four_byte = {0x02, 0x11, 0x18, 0x27}
    out = bytearray()
    for pid, value in items:
        out.append(pid)
        if isinstance(value, tuple):
            out += mstr(value[0]) + mstr(value[1])
        elif isinstance(value, (str, bytes)):
            out += mstr(value)
        elif pid in one_byte:
            out.append(value)
        elif pid in two_byte:
            out += u16(value)
        elif pid in four_byte:
            out += u32(value)
        else:  # variable byte integer (subscription identifier)
            out += varint(value)
    return varint(len(out)) + bytes(out)


def connect(client_id: str | bytes = "", *, version: int = V311, clean: bool = True,
            keepalive: int = 60, will: tuple | None = None, username: str | None = None,
            password: bytes | None = None, properties: bytes | None = None,
            will_properties: bytes | None = None, reserved_flag: bool = False) -> bytes:
    """will = (topic, payload, qos, retain)."""
    name = b"MQIsdp" if version == V31 else b"MQTT"
    flags = 0x02 if clean else 0
    if reserved_flag:
        flags |= 0x01
    payload = mstr(client_id)
    if will is not None:
        wtopic, wpayload, wqos, wretain = will
        flags |= 0x04 | (wqos << 3) | (0x20 if wretain else 0)
        if version == V5:
            payload += will_properties if will_properties is not None else b"\x00"
        payload += mstr(wtopic) + mstr(wpayload)
    if username is not None:
        flags |= 0x80
        payload += mstr(username)
    if password is not None:
        flags |= 0x40
        payload += mstr(password)
    var = mstr(name) + bytes([version, flags]) + u16(keepalive)
    if version == V5:
        var += properties if properties is not None else b"\x00"
    return packet(CONNECT, 0, var + payload)


def publish(topic: str | bytes, payload: bytes = b"", *, qos: int = 0, retain: bool = False,
            dup: bool = False, pid: int = 1, version: int = V311,
            properties: bytes | None = None) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    var = mstr(topic)
    if qos:
        var += u16(pid)
    if version == V5:
        var += properties if properties is not None else b"\x00"
    return packet(PUBLISH, flags, var + payload)


def subscribe(pid: int, *filters: tuple[str, int], version: int = V311,
              flags: int = 0x02, properties: bytes | None = None) -> bytes:
    """filters are (topic_filter, options byte: QoS plus v5 option bits)."""
    body = u16(pid)
    if version == V5:
        body += properties if properties is not None else b"\x00"
    for topic, opts in filters:
        body += mstr(topic) + bytes([opts])
    return packet(SUBSCRIBE, flags, body)


def unsubscribe(pid: int, *filters: str, version: int = V311) -> bytes:
    body = u16(pid) + (b"\x00" if version == V5 else b"")
    for topic in filters:
        body += mstr(topic)
    return packet(UNSUBSCRIBE, 0x02, body)


def ack(ptype: int, pid: int) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP with the correct fixed-header flags."""
    return packet(ptype, 0x02 if ptype == PUBREL else 0, u16(pid))


def pingreq() -> bytes:
    return b"\xc0\x00"


def disconnect(reason: int | None = None) -> bytes:
    return packet(DISCONNECT, 0, b"" if reason is None else bytes([reason]))


def auth(reason: int, method: str | None = None, data: bytes | None = None) -> bytes:
    """AUTH (MQTT 5.0) with an Authentication Method (0x15) and Data (0x16) when given."""
    items = ([(0x15, method)] if method is not None else []) + ([(0x16, data)] if data is not None else [])
    return packet(AUTH, 0, bytes([reason]) + props(*items))


# ---------------------------------------------------------------- decoding

def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, mult = 0, 1
    for i in range(4):
        b = buf[pos + i]
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos + i + 1
        mult *= 128
    raise ValueError("malformed variable byte integer")


def parse_props(buf: bytes, pos: int) -> tuple[list[tuple[int, object]], int]:
    length, pos = read_varint(buf, pos)
    end, out = pos + length, []
    while pos < end:
        pid = buf[pos]
        pos += 1
        if pid in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            out.append((pid, buf[pos]))
            pos += 1
        elif pid in (0x13, 0x21, 0x22, 0x23):
            out.append((pid, struct.unpack_from("!H", buf, pos)[0]))
            pos += 2
        elif pid in (0x02, 0x11, 0x18, 0x27):
            out.append((pid, struct.unpack_from("!I", buf, pos)[0]))
            pos += 4
        elif pid == 0x0B:
            v, pos = read_varint(buf, pos)
            out.append((pid, v))
        elif pid == PROP_USER_PROPERTY:
            k, pos = _read_str(buf, pos)
            v, pos = _read_str(buf, pos)
            out.append((pid, (k.decode(), v.decode())))
        else:  # strings and binary data
            v, pos = _read_str(buf, pos)
            out.append((pid, v))
    return out, end


def _read_str(buf: bytes, pos: int) -> tuple[bytes, int]:
    n = struct.unpack_from("!H", buf, pos)[0]
    return bytes(buf[pos + 2:pos + 2 + n]), pos + 2 + n


@dataclass
class Packet:
    raw: bytes      # the whole packet, fixed header included
    ptype: int
    flags: int
    body: bytes     # everything after the remaining length

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 3

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def pid(self) -> int:
        """Packet identifier of an ack, SUBACK or UNSUBACK."""
        return struct.unpack_from("!H", self.body, 0)[0]

    def publish_fields(self, version: int = V311) -> dict:
        topic, pos = _read_str(self.body, 0)
        pid = None
        if self.qos:
            pid = struct.unpack_from("!H", self.body, pos)[0]
            pos += 2
        properties = []
        if version == V5:
            properties, pos = parse_props(self.body, pos)
        return {"topic": topic.decode(), "pid": pid, "payload": bytes(self.body[pos:]),
                "properties": properties}

    def connack_properties(self) -> list[tuple[int, object]]:
        return parse_props(self.body, 2)[0] if len(self.body) > 2 else []

    def __repr__(self) -> str:
        return f"Packet(type={self.ptype}, flags={self.flags:#x}, raw={self.raw.hex(' ')})"


class RawClient:
    """One TCP connection to the broker, speaking bytes."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout() from None
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            raise Closed() from None
        if not chunk:
            self.closed = True
            raise Closed()
        self.buf += chunk

    def recv_packet(self, timeout: float = DEFAULT_TIMEOUT) -> Packet:
        """Return the next complete packet; raise Timeout or Closed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    length, pos = read_varint(self.buf, 1)
                except IndexError:
                    length = None  # remaining length not complete yet
                if length is not None and len(self.buf) >= pos + length:
                    raw = self.buf[:pos + length]
                    self.buf = self.buf[pos + length:]
                    return Packet(raw, raw[0] >> 4, raw[0] & 0x0F, raw[pos:])
            self._fill(deadline)

    def expect(self, ptype: int, timeout: float = DEFAULT_TIMEOUT) -> Packet:
        p = self.recv_packet(timeout)
        assert p.ptype == ptype, f"expected packet type {ptype}, got {p!r}"
        return p

    def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> list[Packet]:
        """Wait until the broker closes; return the packets it sent before closing.

        Raises Timeout if the connection is still open after `timeout`.
        """
        deadline = time.monotonic() + timeout
        got = []
        while True:
            try:
                got.append(self.recv_packet(max(0.0, deadline - time.monotonic())))
            except Closed:
                return got

    def connect(self, client_id: str = "", **kw) -> Packet:
        """Send CONNECT and return the CONNACK."""
        self.send(connect(client_id, **kw))
        return self.expect(CONNACK)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Close with a TCP RST instead of a FIN (an abrupt network failure)."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
