"""Client-side helpers shared by the tests: a paho-mqtt wrapper with bounded,
event-driven waits, raw-socket conveniences and mosquitto_sub/pub runners."""
from __future__ import annotations

import queue
import shutil
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

import mqttwire as w

WAIT = 5.0          # generous bound for things that must happen
QUIET = 1.0         # window in which something must NOT happen

PROTOCOLS = {"3.1": mqtt.MQTTv31, "3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class PahoClient:
    """paho-mqtt 2.x client (CallbackAPIVersion.VERSION2) on a background loop.

    Every call that waits for the broker has a bound and raises AssertionError
    when the bound passes.
    """

    def __init__(self, broker, client_id: str | None = None, protocol: str = "3.1.1",
                 clean: bool = True, keepalive: int = 30, session_expiry: int | None = None,
                 transport: str = "tcp", ws_path: str = "/mqtt", ws_headers: dict | None = None,
                 ca_certs: str | None = None):
        """transport="websockets" speaks MQTT over WebSocket (`ws_path`, extra `ws_headers`);
        `ca_certs` turns TLS on, trusting that CA file."""
        self.broker = broker
        self.protocol = protocol
        self.v5 = protocol == "5"
        self.clean = clean
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.client_id = client_id if client_id is not None else unique("paho")
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=PROTOCOLS[protocol],
                             clean_session=None if self.v5 else clean, transport=transport)
        if transport == "websockets":
            self.c.ws_set_options(path=ws_path, headers=ws_headers)
        if ca_certs is not None:
            self.c.tls_set(ca_certs=ca_certs)
        self.messages: queue.Queue = queue.Queue()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._subacks: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.connack = None
        self.disconnect_reason = None
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda c, u, msg: self.messages.put(msg)
        self.c.on_subscribe = self._on_subscribe

    # -- callbacks (paho's network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = (flags.session_present, reason_code, properties)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_reason = reason_code
        self._disconnected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._lock:
            q = self._subacks.setdefault(mid, queue.Queue())
        q.put(reason_codes)

    # -- API
    def will(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> "PahoClient":
        self.c.will_set(topic, payload, qos, retain)
        return self

    def connect(self, timeout: float = WAIT):
        """Connect and wait for CONNACK; return (session_present, reason_code, properties)."""
        kw = {}
        if self.v5:
            kw["clean_start"] = self.clean
            if self.session_expiry is not None:
                p = Properties(PacketTypes.CONNECT)
                p.SessionExpiryInterval = self.session_expiry
                kw["properties"] = p
        self.c.connect(self.broker.host, self.broker.port, keepalive=self.keepalive, **kw)
        self.c.loop_start()
        assert self._connected.wait(timeout), f"{self.client_id}: no CONNACK within {timeout} s"
        assert not self.connack[1].is_failure, f"{self.client_id}: CONNACK {self.connack[1]}"
        return self.connack

    def subscribe(self, topic, qos: int = 0, timeout: float = WAIT, **kw) -> list:
        """Subscribe and wait for SUBACK; return its reason codes as ints."""
        with self._lock:
            result, mid = self.c.subscribe(topic, qos, **kw)
            assert result == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed to send: {result}"
            q = self._subacks.setdefault(mid, queue.Queue())
        try:
            codes = q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no SUBACK within {timeout} s") from None
        return [rc.value for rc in codes]

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False,
                properties=None, timeout: float = WAIT):
        info = self.c.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(timeout)  # raises on timeout; returns at once for QoS 0 when sent
        assert info.is_published(), f"{self.client_id}: publish to {topic} not completed"
        return info

    def get(self, timeout: float = WAIT) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout} s") from None

    def get_n(self, n: int, timeout: float = WAIT) -> list[mqtt.MQTTMessage]:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                out.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"{self.client_id}: got {len(out)} of {n} messages "
                                     f"within {timeout} s: {[m.payload for m in out]}") from None
        return out

    def get_until(self, payload: bytes, timeout: float = WAIT) -> list[mqtt.MQTTMessage]:
        """All messages up to and including the first whose payload is `payload`."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            try:
                m = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.client_id}: {payload!r} not received within "
                                     f"{timeout} s; got {[m.payload for m in out]}") from None
            out.append(m)
            if m.payload == payload:
                return out

    def assert_no_message(self, within: float = QUIET) -> None:
        try:
            m = self.messages.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message {m.topic} {m.payload!r}")

    def disconnect(self, timeout: float = WAIT) -> None:
        self.c.disconnect()
        self._disconnected.wait(timeout)
        self.c.loop_stop()

    def stop(self) -> None:
        """Tear down without caring about state (for finally blocks)."""
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


# ------------------------------------------------------------------ raw sockets

def raw(broker, timeout: float = w.DEFAULT_TIMEOUT) -> w.RawClient:
    return w.RawClient(broker.host, broker.port, timeout)


def raw_connected(broker, client_id: str, **kw) -> w.RawClient:
    """A raw client that has completed CONNECT/CONNACK (accepted)."""
    c = raw(broker)
    ack = c.connect(client_id, **kw)
    assert ack.body[1] == 0, f"CONNACK refused: {ack!r}"
    return c


def raw_subscribe(c: w.RawClient, topic: str, qos: int = 0, version: int = w.V311,
                  pid: int = 1) -> w.Packet:
    c.send(w.subscribe(pid, (topic, qos), version=version))
    suback = c.expect(w.SUBACK)
    assert suback.pid == pid
    return suback


def raw_publish(c: w.RawClient, topic: str, payload: bytes, qos: int = 0, pid: int = 1,
                version: int = w.V311, retain: bool = False) -> None:
    """Publish and complete the QoS 1/2 handshake from the publisher's side."""
    c.send(w.publish(topic, payload, qos=qos, pid=pid, version=version, retain=retain))
    if qos == 1:
        assert c.expect(w.PUBACK).pid == pid
    elif qos == 2:
        assert c.expect(w.PUBREC).pid == pid
        c.send(w.ack(w.PUBREL, pid))
        assert c.expect(w.PUBCOMP).pid == pid


def recv_publish(c: w.RawClient, version: int = w.V311, timeout: float = WAIT) -> tuple[w.Packet, dict]:
    p = c.expect(w.PUBLISH, timeout)
    return p, p.publish_fields(version)


class Canary:
    """One raw 3.1.1 connection that subscribes to its own topic and proves,
    on demand, that the broker still routes messages."""

    def __init__(self, broker):
        self.topic = unique("canary")
        self.c = raw_connected(broker, unique("canary"))
        raw_subscribe(self.c, self.topic, 1)
        self.n = 0

    def roundtrip(self) -> None:
        self.n += 1
        payload = b"ping %d" % self.n
        self.c.send(w.publish(self.topic, payload, qos=1, pid=self.n))
        got = {}
        for _ in range(2):  # PUBACK for our publish and the delivered PUBLISH, in any order
            p = self.c.recv_packet(WAIT)
            got[p.ptype] = p
        assert set(got) == {w.PUBACK, w.PUBLISH}, got
        f = got[w.PUBLISH].publish_fields()
        assert f["payload"] == payload
        self.c.send(w.ack(w.PUBACK, f["pid"]))

    def close(self) -> None:
        self.c.close()


# ------------------------------------------------------------------ mosquitto clients

MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
STDBUF = shutil.which("stdbuf") or "/usr/bin/stdbuf"


class MosquittoSub:
    """mosquitto_sub as a subprocess; its -d output tells when SUBACK arrived.

    Messages are printed with the format MSG|topic|qos|retain|payload.
    """

    def __init__(self, broker, *topics: str, qos: int = 0, count: int = 1,
                 timeout: int = 10, extra: tuple = ()):
        # stdbuf: line-buffer its stdout so "Subscribed" shows up as it happens
        args = [STDBUF, "-oL", MOSQUITTO_SUB, "-h", broker.host, "-p", str(broker.port), "-d",
                "-q", str(qos), "-C", str(count), "-W", str(timeout),
                "-F", "MSG|%t|%q|%r|%p", *extra]
        for t in topics:
            args += ["-t", t]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.all: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.all.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_subscribed(self, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"mosquitto_sub not subscribed in {timeout} s: {self.all}") from None
            if line is None:
                raise AssertionError(f"mosquitto_sub exited before subscribing: {self.all}")
            if line.startswith("Subscribed (mid:"):
                return

    def finish(self, timeout: float = 15) -> list[tuple[str, int, bool, str]]:
        """Wait for exit; return (topic, qos, retain, payload) per message received."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"mosquitto_sub did not exit: {self.all}") from None
        self._reader.join(timeout)
        msgs = []
        for line in self.all:
            if line.startswith("MSG|"):
                _, topic, qos, retain, payload = line.split("|", 4)
                msgs.append((topic, int(qos), retain == "1", payload))
        return msgs

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def mosquitto_pub(broker, topic: str, *args: str, stdin: str | None = None,
                  timeout: float = 10) -> None:
    cmd = [MOSQUITTO_PUB, "-h", broker.host, "-p", str(broker.port), "-t", topic, *args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}): {r.stdout}{r.stderr}"


def wait_for_log(b, marker: str, after: int, timeout: float = WAIT) -> None:
    """Wait until `marker` appears in the broker log past offset `after`."""
    deadline = time.monotonic() + timeout
    while marker not in b.log()[after:]:
        assert time.monotonic() < deadline, f"{marker!r} not logged within {timeout} s:\n{b.log()[after:]}"
        time.sleep(0.02)
