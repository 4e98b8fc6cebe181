"""MQTT 5.0 enhanced authentication end to end: the `scram` plugin (SCRAM-SHA-256, RFC 5802/7677) with
credentials made by `midge scram`, spoken by a raw-socket client; re-authentication; request problem
information.

Midge only (Mosquitto has no built-in SCRAM method): skipped with BROKER=mosquitto.
"""
import base64
import hashlib
import hmac
import os
import subprocess

import pytest

import mqttwire as w
from clients import raw
from conftest import BROKER_KIND, free_port, midge_bin

pytestmark = pytest.mark.skipif(BROKER_KIND == "mosquitto", reason="the scram plugin is Midge's")

METHOD = "SCRAM-SHA-256"
PROP_AUTH_METHOD, PROP_AUTH_DATA = 0x15, 0x16
CONTINUE, REAUTH = 0x18, 0x19


def midge(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(midge_bin()), *args], input=stdin, capture_output=True, text=True, timeout=30)


class Scram:
    """The client side of SCRAM-SHA-256 (no channel binding)."""

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={self.nonce}"

    def first(self) -> bytes:
        return ("n,," + self.bare).encode()

    def final(self, server_first: bytes) -> bytes:
        fields = dict(item.split("=", 1) for item in server_first.decode().split(","))
        assert fields["r"].startswith(self.nonce) and len(fields["r"]) > len(self.nonce)
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), base64.b64decode(fields["s"]),
                                     int(fields["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        self.auth_message = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, self.auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self.server_key = hmac.digest(salted, b"Server Key", "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> bool:
        expected = hmac.digest(self.server_key, self.auth_message, "sha256")
        return server_final == b"v=" + base64.b64encode(expected)


def props_of(p: w.Packet, offset: int) -> dict:
    return dict(w.parse_props(p.body, offset)[0]) if len(p.body) > offset else {}


def exchange(c: w.RawClient, scram: Scram, *, first: bytes, reason: int = CONTINUE):
    """Sends `first` (CONNECT or AUTH 0x19), answers the server-first message; returns the final packet."""
    c.send(first)
    challenge = c.expect(w.AUTH)
    assert challenge.body[0] == CONTINUE
    fields = props_of(challenge, 1)
    assert fields[PROP_AUTH_METHOD] == METHOD.encode()
    c.send(w.auth(CONTINUE, METHOD, scram.final(fields[PROP_AUTH_DATA])))
    return c.recv_packet()


@pytest.fixture
def scram_broker(broker, tmp_path):
    creds = tmp_path / "scram"
    r = midge("scram", "-c", "-I", "4096", str(creds), "alice", "Alice-Secret-1")
    assert r.returncode == 0, r.stderr
    r = midge("scram", str(creds), "bob", stdin="Bob-Secret-2\n")
    assert r.returncode == 0, r.stderr
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    lines = creds.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["alice", "bob"]
    assert "Alice-Secret-1" not in creds.read_text()
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    return broker(extra=f"allow_anonymous false\nplugin scram\nplugin_opt_scram_file {creds}\nacl_file {acl}\n")


def connect_scram(user, password, **kw) -> tuple[Scram, bytes]:
    scram = Scram(user, password)
    return scram, w.connect("c-" + user, version=w.V5, properties=w.props(
        (PROP_AUTH_METHOD, METHOD), (PROP_AUTH_DATA, scram.first()), *kw.get("extra", ())))


def test_scram_connect_reauthenticate_and_authorize(scram_broker):
    with raw(scram_broker) as c:
        scram, first = connect_scram("alice", "Alice-Secret-1", extra=[(0x17, 0)])
        connack = exchange(c, scram, first=first)
        assert connack.ptype == w.CONNACK and connack.body[1] == 0, connack
        fields = dict(connack.connack_properties())
        assert fields[PROP_AUTH_METHOD] == METHOD.encode()
        assert scram.verify(fields[PROP_AUTH_DATA]), "the server proved it knows the server key"
        # The ACL sees the user SCRAM established.
        c.send(w.subscribe(1, ("alice/#", 1), ("bob/#", 1), version=w.V5))
        suback = c.expect(w.SUBACK)
        assert suback.body[-2:] == bytes([1, 0x87])
        assert props_of(suback, 2) == {}, "request problem information 0: no reason string"
        # Re-authentication: AUTH 0x19 ... AUTH 0x00 carrying the server signature.
        again = Scram("alice", "Alice-Secret-1")
        done = exchange(c, again, first=w.auth(REAUTH, METHOD, again.first()))
        assert done.ptype == w.AUTH and done.body[0] == 0x00, done
        fields = props_of(done, 1)
        assert set(fields) == {PROP_AUTH_METHOD, PROP_AUTH_DATA}
        assert again.verify(fields[PROP_AUTH_DATA])
        c.send(w.pingreq())
        c.expect(w.PINGRESP)
        # A failed re-authentication disconnects (0x87).
        wrong = Scram("alice", "not-it")
        gone = exchange(c, wrong, first=w.auth(REAUTH, METHOD, wrong.first()))
        assert gone.ptype == w.DISCONNECT and gone.body[0] == 0x87, gone
        assert c.wait_closed() == []


@pytest.mark.parametrize("user,password", [("bob", "wrong"), ("nobody", "whatever")])
def test_scram_refuses_wrong_password_and_unknown_user_alike(scram_broker, user, password):
    with raw(scram_broker) as c:
        scram, first = connect_scram(user, password)
        connack = exchange(c, scram, first=first)
        assert connack.ptype == w.CONNACK and connack.body[1] == 0x87, connack
        assert c.wait_closed() == []


def test_unknown_method_and_auth_without_method(scram_broker):
    with raw(scram_broker) as c:
        c.send(w.connect("x", version=w.V5, properties=w.props((PROP_AUTH_METHOD, "SCRAM-SHA-1"))))
        connack = c.expect(w.CONNACK)
        assert connack.body[1] == 0x8C
        assert c.wait_closed() == []
    with raw(scram_broker) as c:
        scram, first = connect_scram("bob", "Bob-Secret-2")
        assert exchange(c, scram, first=first).body[1] == 0
        c.send(w.auth(REAUTH, "PLAIN", b"x"))
        assert c.wait_closed()[0].raw == w.disconnect(0x82)


def test_bad_credentials_file_names_file_and_line(tmp_path):
    listener = f"listener {free_port()} 127.0.0.1\n"
    creds = tmp_path / "scram"
    creds.write_text("# users\nalice:4096:c2FsdA==:short:short\n")
    conf = tmp_path / "bad.conf"
    conf.write_text(f"{listener}plugin scram\nplugin_opt_scram_file {creds}\n")
    r = subprocess.run([str(midge_bin()), "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"{creds}:2:" in r.stdout + r.stderr
    conf.write_text(f"{listener}plugin scram\nplugin_opt_scram_fil x\n")
    r = subprocess.run([str(midge_bin()), "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"{conf}:2:" in r.stdout + r.stderr
