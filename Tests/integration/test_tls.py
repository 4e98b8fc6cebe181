"""TLS listeners (`certfile`/`keyfile`, client certificates, CRLs) with real clients.

Each broker gets the fixture's plain listener plus a second, TLS listener on another
loopback port. The PKI (ECDSA P-256, like Midge's generated certificates) is made once per
module with the openssl command. Runs against Debian's mosquitto too (BROKER=mosquitto);
parts where Midge differs on purpose are marked.
"""
from __future__ import annotations

import queue
import socket
import ssl
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import mqttwire as w
from clients import WAIT, MosquittoSub, unique
from conftest import BROKER_KIND, broker_bin, free_port

MOSQUITTO_PUB = "mosquitto_pub"


# ---------------------------------------------------------------------------------------------
# PKI

def openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stdout}{r.stderr}"


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "30", "-subj", f"/O=Midge tests/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def issue(d: Path, ca: str, name: str, subject: str, extensions: str) -> None:
    (d / f"{name}.ext").write_text(extensions)
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "30", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """ca (server and clients alice, bob), other-ca (a CA nobody trusts), ca.crl revoking bob."""
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    issue(d, "ca", "server", "/CN=localhost",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
          "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    client_ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    issue(d, "ca", "alice", "/O=Midge tests/CN=alice", client_ext)
    issue(d, "ca", "bob", "/CN=bob", client_ext)
    issue(d, "other-ca", "mallory", "/CN=mallory", client_ext)
    # A CRL revoking bob, with `openssl ca`'s minimal database.
    (d / "index.txt").write_text("")
    (d / "crlnumber").write_text("01\n")
    (d / "ca.cnf").write_text(f"[ca]\ndefault_ca = test\n[test]\ndatabase = {d}/index.txt\n"
                              f"crlnumber = {d}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n")
    openssl("ca", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-revoke", "bob.crt", cwd=d)
    openssl("ca", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-gencrl", "-out", "ca.crl", cwd=d)
    return d


# ---------------------------------------------------------------------------------------------
# Brokers and clients

def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {port}") from None
            time.sleep(0.02)


def tls_broker(broker, pki: Path, extra: str = ""):
    """Starts the broker with a TLS listener; returns (plain broker, TLS endpoint)."""
    port = free_port()
    # `user root`: run as root, Mosquitto drops privileges before reading the files (pytest's tmp dir is 0700).
    b = broker(extra=f"user root\nlistener {port} 127.0.0.1\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n{extra}")
    wait_port(port)
    return b, SimpleNamespace(host="127.0.0.1", port=port, kind=b.kind)


def pub(endpoint, topic: str, message: str, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    cmd = [MOSQUITTO_PUB, "-h", endpoint.host, "-p", str(endpoint.port), "-t", topic, "-m", message, *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, -1, e.stdout or "", e.stderr or "")


def paho_tls(endpoint, ca: Path, cert: Path | None = None, key: Path | None = None,
             client_id: str | None = None) -> tuple[mqtt.Client, queue.Queue, object]:
    """Connects paho-mqtt with TLS; returns (client, messages, CONNACK reason) or raises ssl.SSLError/OSError."""
    connected: queue.Queue = queue.Queue()
    messages: queue.Queue = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or unique("paho-tls"))
    c.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None, keyfile=str(key) if key else None)
    c.on_connect = lambda client, userdata, flags, reason, props: connected.put(reason)
    c.on_disconnect = lambda client, userdata, flags, reason, props: connected.put(reason)
    c.on_message = lambda client, userdata, msg: messages.put(msg)
    c.connect(endpoint.host, endpoint.port, keepalive=30)
    c.loop_start()
    try:
        reason = connected.get(timeout=WAIT)
    except queue.Empty:
        reason = None
    return c, messages, reason


def stop(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


def s_client(endpoint, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "s_client", "-connect", f"{endpoint.host}:{endpoint.port}", "-brief",
                           "-verify_return_error", *args],
                          input="", capture_output=True, text=True, timeout=20)


def raw_mqtt_on(endpoint, timeout: float = 5.0) -> bytes:
    """Sends a plain MQTT CONNECT and returns what comes back before the server closes."""
    s = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    received = b""
    try:
        s.sendall(w.connect(unique("plain")))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            received += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    finally:
        s.close()
    return received


# ---------------------------------------------------------------------------------------------
# Tests

def test_mosquitto_clients_over_tls(broker, pki):
    b, tls = tls_broker(broker, pki)
    topic = unique("tls")
    sub = MosquittoSub(tls, topic, qos=1, count=2, extra=("--cafile", str(pki / "ca.crt")))
    try:
        sub.wait_subscribed()
        r = pub(tls, topic, "over tls", "-q", "1", "--cafile", str(pki / "ca.crt"))
        assert r.returncode == 0, r.stderr
        # Across listeners: plain publisher, TLS subscriber.
        r = pub(b, topic, "from plain", "-q", "1")
        assert r.returncode == 0, r.stderr
        # Two mosquitto_pub processes are two connections: MQTT orders messages per connection only.
        assert sorted(sub.finish()) == sorted([(topic, 1, False, "over tls"), (topic, 1, False, "from plain")])
    finally:
        sub.kill()
    # By host name too (the certificate has DNS:localhost).
    local = SimpleNamespace(host="localhost", port=tls.port)
    assert pub(local, topic, "by name", "--cafile", str(pki / "ca.crt")).returncode == 0


def test_paho_over_tls(broker, pki):
    b, tls = tls_broker(broker, pki)
    c, messages, reason = paho_tls(tls, pki / "ca.crt")
    try:
        assert reason is not None and not reason.is_failure, reason
        assert isinstance(c.socket(), ssl.SSLSocket)
        topic = unique("paho-tls")
        subacks: queue.Queue = queue.Queue()
        c.on_subscribe = lambda client, userdata, mid, reason_codes, props: subacks.put((mid, reason_codes))
        result, mid = c.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        try:  # publish only once the subscription is active
            acked, codes = subacks.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no SUBACK within {WAIT} s") from None
        assert acked == mid and [rc.value for rc in codes] == [1], (acked, mid, codes)
        assert pub(b, topic, "hello", "-q", "1").returncode == 0
        msg = messages.get(timeout=WAIT)
        assert (msg.topic, msg.payload) == (topic, b"hello")
    finally:
        stop(c)


def test_openssl_s_client_handshake(broker, pki):
    _, tls = tls_broker(broker, pki)
    r = s_client(tls, "-CAfile", str(pki / "ca.crt"), "-servername", "localhost")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verification: OK" in r.stderr + r.stdout
    assert "Protocol version: TLSv1.3" in r.stderr + r.stdout


def test_wrong_ca_fails(broker, pki):
    _, tls = tls_broker(broker, pki)
    other = str(pki / "other-ca.crt")
    assert s_client(tls, "-CAfile", other).returncode != 0
    r = pub(tls, unique("wrong-ca"), "x", "--cafile", other)
    assert r.returncode != 0
    with pytest.raises(ssl.SSLCertVerificationError):
        c, _, _ = paho_tls(tls, pki / "other-ca.crt")
        stop(c)


def test_tls_version_13_only(broker, pki):
    _, tls = tls_broker(broker, pki, "tls_version tlsv1.3")
    assert s_client(tls, "-CAfile", str(pki / "ca.crt"), "-tls1_2").returncode != 0
    r = s_client(tls, "-CAfile", str(pki / "ca.crt"), "-tls1_3")
    assert r.returncode == 0, r.stdout + r.stderr


def test_tls_12_is_the_minimum_by_default(broker, pki):
    _, tls = tls_broker(broker, pki, "")
    legacy = ("-CAfile", str(pki / "ca.crt"), "-cipher", "DEFAULT:@SECLEVEL=0")  # lets OpenSSL offer TLS 1.1
    r = s_client(tls, *legacy, "-tls1_1")
    assert r.returncode != 0, r.stdout + r.stderr
    r = s_client(tls, *legacy, "-tls1_2")
    assert r.returncode == 0, r.stdout + r.stderr
    if BROKER_KIND == "mosquitto":
        return  # its OpenSSL refuses TLS 1.1 even under tls_version tlsv1.1 (alert 80): no control to run
    # The same client gets in where TLS 1.1 is allowed: what refused it above was the broker's minimum.
    _, lower = tls_broker(broker, pki, "tls_version tlsv1.1")
    r = s_client(lower, *legacy, "-tls1_1")
    assert r.returncode == 0, r.stdout + r.stderr


CERT_ONLY = "require_certificate true\nuse_identity_as_username true\n"


def client_cert_broker(broker, pki, extra: str = ""):
    # No anonymous access and no password file: only the certificate's identity gets a client in;
    # the ACL lets alice (and only alice) use alice/#.
    acl = pki / f"acl-{unique('x')}"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    return tls_broker(broker, pki, f"cafile {pki}/ca.crt\n{CERT_ONLY}{extra}\n"
                                   f"allow_anonymous false\nacl_file {acl}\n")


def identity_args(pki: Path, who: str) -> tuple[str, ...]:
    return ("--cafile", str(pki / "ca.crt"), "--cert", str(pki / f"{who}.crt"), "--key", str(pki / f"{who}.key"))


def test_client_certificate_identity_is_the_username(broker, pki):
    _, tls = client_cert_broker(broker, pki)
    topic = f"alice/{unique('t')}"
    sub = MosquittoSub(tls, topic, qos=1, count=1, extra=identity_args(pki, "alice"))
    try:
        sub.wait_subscribed()
        # A user name and password in CONNECT are ignored: the certificate names the client.
        r = pub(tls, topic, "mine", "-q", "1", "-u", "mallory", "-P", "wrong", *identity_args(pki, "alice"))
        assert r.returncode == 0, r.stderr
        assert sub.finish() == [(topic, 1, False, "mine")]
    finally:
        sub.kill()
    # bob is authenticated by his certificate, but the ACL gives him nothing under alice/.
    watcher = MosquittoSub(tls, topic, qos=1, count=1, timeout=2, extra=identity_args(pki, "alice"))
    try:
        watcher.wait_subscribed()
        assert pub(tls, topic, "not bob's", "-q", "1", *identity_args(pki, "bob")).returncode == 0
        assert watcher.finish() == []
    finally:
        watcher.kill()


def test_client_certificate_is_required(broker, pki):
    _, tls = client_cert_broker(broker, pki)
    # Without a certificate, or with one from a CA the listener does not trust: no connection.
    assert pub(tls, "alice/x", "x", "--cafile", str(pki / "ca.crt"), timeout=5).returncode != 0
    assert pub(tls, "alice/x", "x", *identity_args(pki, "mallory"), timeout=5).returncode != 0
    c = None
    try:
        c, _, reason = paho_tls(tls, pki / "ca.crt")
        assert reason is None or reason.is_failure
    except (ssl.SSLError, OSError):
        pass
    finally:
        if c is not None:
            stop(c)
    # With one: the TLS handshake succeeds (the username check is test_client_certificate_identity_is_the_username).
    r = s_client(tls, "-CAfile", str(pki / "ca.crt"), "-cert", str(pki / "alice.crt"), "-key", str(pki / "alice.key"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_revoked_client_certificate_is_refused(broker, pki):
    _, tls = tls_broker(broker, pki, f"cafile {pki}/ca.crt\nrequire_certificate true\ncrlfile {pki}/ca.crl\n")
    topic = unique("crl")
    sub = MosquittoSub(tls, topic, qos=1, count=1, timeout=3, extra=identity_args(pki, "alice"))
    try:
        sub.wait_subscribed()
        r = pub(tls, topic, "from bob", "-q", "1", *identity_args(pki, "bob"), timeout=5)
        assert r.returncode != 0
        assert sub.finish() == []
    finally:
        sub.kill()
    # openssl s_client sees the alert; alice still gets in.
    bob = s_client(tls, "-CAfile", str(pki / "ca.crt"), "-cert", str(pki / "bob.crt"), "-key", str(pki / "bob.key"),
                   "-tls1_2")
    assert bob.returncode != 0
    assert "revoked" in (bob.stdout + bob.stderr) or BROKER_KIND == "midge"  # Midge's alert: certificate unknown
    assert pub(tls, topic, "from alice", *identity_args(pki, "alice")).returncode == 0


def test_plain_client_on_tls_port_is_refused_and_plain_port_serves(broker, pki):
    b, tls = tls_broker(broker, pki)
    reply = raw_mqtt_on(tls)
    # No CONNACK (0x20): a TLS alert record (content type 21) or nothing, then the server closes.
    assert reply[:1] in (b"", b"\x15"), reply
    # Both listeners keep serving.
    topic = unique("after")
    sub = MosquittoSub(b, topic, qos=1, count=1)
    try:
        sub.wait_subscribed()
        assert pub(tls, topic, "still here", "-q", "1", "--cafile", str(pki / "ca.crt")).returncode == 0
        assert sub.finish() == [(topic, 1, False, "still here")]
    finally:
        sub.kill()


# ---------------------------------------------------------------------------------------------
# Start-up errors: the broker exits and names what is wrong.

def start_fails(tmp_path: Path, conf: str) -> str:
    path = tmp_path / "bad.conf"
    path.write_text(f"user root\nlistener {free_port()} 127.0.0.1\n{conf}\n")
    r = subprocess.run([broker_bin(BROKER_KIND), "-c", str(path)], capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0, f"started with:\n{conf}\n{r.stdout}{r.stderr}"
    return r.stdout + r.stderr


def test_missing_key_stops_startup(tmp_path, pki):
    missing = tmp_path / "missing.key"
    out = start_fails(tmp_path, f"certfile {pki}/server.crt\nkeyfile {missing}")
    assert "keyfile" in out and str(missing) in out, out


def test_missing_certificate_stops_startup(tmp_path, pki):
    missing = tmp_path / "missing.crt"
    out = start_fails(tmp_path, f"certfile {missing}\nkeyfile {pki}/server.key")
    assert "certfile" in out and str(missing) in out, out


def test_mismatched_key_stops_startup(tmp_path, pki):
    out = start_fails(tmp_path, f"certfile {pki}/server.crt\nkeyfile {pki}/alice.key")
    if BROKER_KIND == "midge":  # mosquitto says "Server certificate/key are inconsistent" without the file
        assert f"keyfile {pki}/alice.key: does not match the certificate" in out, out


def test_refused_cipher_string_stops_startup(tmp_path, pki):
    out = start_fails(tmp_path, f"certfile {pki}/server.crt\nkeyfile {pki}/server.key\nciphers NO-SUCH-CIPHER")
    assert "ciphers" in out and "NO-SUCH-CIPHER" in out, out


def test_max_connections_applies_to_the_tls_listener(broker, pki):
    _, tls = tls_broker(broker, pki, "max_connections 1")
    first, _, reason = paho_tls(tls, pki / "ca.crt")
    try:
        assert reason is not None and not reason.is_failure, reason
        # The second client is closed without CONNACK (Mosquitto at accept, Midge after the TLS handshake).
        assert pub(tls, unique("max"), "x", "--cafile", str(pki / "ca.crt"), timeout=5).returncode != 0
    finally:
        stop(first)
    deadline = time.monotonic() + WAIT
    while pub(tls, unique("max"), "x", "--cafile", str(pki / "ca.crt"), timeout=5).returncode != 0:
        assert time.monotonic() < deadline, "the slot was not released"
        time.sleep(0.1)
