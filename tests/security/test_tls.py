"""Issue 9, item 3: MQTT over TLS with the dev CA pinned, and the plain listener off.

Against the real Mosquitto (conftest.py: the locked-down broker with the dynamic
security plugin on a TLS listener and a plain one) and, for "plain off", a
broker of the test's own started the way ``deltasense up`` starts it
(``tools.stack.broker_listeners``). Every refusal has its positive control: the
same client with the right CA gets in, on the same broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import ssl
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization

from deltasense import dynsec, provisioning
from deltasense.access import Service
from deltasense.contract import Kind
from deltasense.mqtt import MqttTlsError, make_client, tls_context
from deltasense.settings import Settings
from tests.security.conftest import LockedBroker
from tests.support import now_ms
from tools import broker, tls
from tools.devstack import Stack, free_port, mosquitto_process, tcp_open
from tools.stack import broker_listeners

D1 = "phuong-1"


def other_ca(tmp_path: Path) -> Path:
    """A second CA, unrelated to the broker's (same subject name, other key)."""
    cert, _ = tls.make_ca("DeltaSense dev CA", dt.datetime.now(dt.UTC))
    path = tmp_path / "other-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def handshake(port: int, ctx: ssl.SSLContext, name: str = "127.0.0.1") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=name)


def test_tls_handshake_with_the_dev_ca_succeeds(locked: LockedBroker, tmp_path: Path) -> None:
    ctx = tls_context(locked.tls_settings(Settings(var_dir=tmp_path)))
    assert ctx is not None
    with handshake(locked.tls_port, ctx) as s:
        assert s.version() in {"TLSv1.2", "TLSv1.3"}
        cert = s.getpeercert()
        sans = {v for _, v in cert["subjectAltName"]}
        assert {"localhost", "127.0.0.1"} <= sans
    with handshake(locked.tls_port, ctx, name="localhost") as s:  # a DNS name in the SANs
        assert s.version() in {"TLSv1.2", "TLSv1.3"}


def test_a_wrong_ca_fails_the_handshake(locked: LockedBroker, tmp_path: Path) -> None:
    wrong = Settings(var_dir=tmp_path, mqtt_ca_file=other_ca(tmp_path))
    ctx = tls_context(locked.tls_settings(Settings(var_dir=tmp_path)))
    bad = tls_context(wrong)
    assert ctx is not None and bad is not None
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(locked.tls_port, bad)
    # The system's CAs do not vouch for the dev broker either.
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(locked.tls_port, ssl.create_default_context())
    # A name the certificate does not carry fails even with the right CA.
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
        handshake(locked.tls_port, ctx, name="broker.example")
    with handshake(locked.tls_port, ctx):  # control: the dev CA gets through
        pass


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_older_than_1_2_is_refused(locked: LockedBroker, tmp_path: Path) -> None:
    ctx = tls_context(locked.tls_settings(Settings(var_dir=tmp_path)))
    assert ctx is not None
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer 1.0/1.1 at all
    with pytest.raises(ssl.SSLError):
        handshake(locked.tls_port, ctx)


async def test_device_connects_and_publishes_over_tls_and_a_wrong_ca_is_refused(
    locked: LockedBroker, admin: dynsec.Dynsec, tag: str, tmp_path: Path
) -> None:
    """A provisioned node publishes its reading over TLS and the platform's ingest
    account receives it over TLS; the same node with another CA never connects."""
    device = f"{tag}-ws"
    secret = await provisioning.add_device(
        admin, site=locked.site, district=D1, kind=Kind.WEATHER, device=device
    )
    topic = f"{locked.site}/{D1}/weather/{device}/tele"
    base = Settings(var_dir=tmp_path)
    as_node = locked.tls_settings(base).model_copy(
        update={"mqtt_username": device, "mqtt_password": secret}
    )
    as_ingest = locked.tls_settings(base, Service.INGEST)
    body = json.dumps({"ts": now_ms(), "seq": 1, "boot": 1, "t_c": 29.5}).encode()
    async with make_client(as_ingest, identifier=f"{tag}-ingest", clean_session=True) as sub:
        await sub.subscribe(f"{locked.site}/+/+/{device}/#", qos=1)
        async with make_client(as_node, identifier=device) as pub:
            await pub.publish(topic, body, qos=1)
        async with asyncio.timeout(5):
            async for message in sub.messages:
                assert str(message.topic) == topic and message.payload == body
                break
    wrong = as_node.model_copy(update={"mqtt_ca_file": other_ca(tmp_path)})
    with pytest.raises(aiomqtt.MqttError):
        async with make_client(wrong, identifier=device):
            pass


async def test_tls_is_no_way_around_the_identities(locked: LockedBroker, tmp_path: Path) -> None:
    """The plugin applies to the TLS listener too: anonymous is refused there."""
    anonymous = locked.tls_settings(Settings(var_dir=tmp_path))
    assert anonymous.mqtt_username is None
    with pytest.raises(aiomqtt.MqttCodeError):
        async with make_client(anonymous, identifier="anon-tls"):
            pass
    wrong = anonymous.model_copy(update={"mqtt_username": "svc.api", "mqtt_password": "nope"})
    with pytest.raises(aiomqtt.MqttCodeError):
        async with make_client(wrong, identifier="wrong-tls"):
            pass


def mqtt_connect_answered(port: int) -> bytes:
    """What a plain MQTT 3.1.1 CONNECT gets from ``port`` (b"" if the peer closed)."""
    connect = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(connect)
        try:
            return s.recv(4)
        except (ConnectionResetError, TimeoutError):
            return b""


@pytest.mark.parametrize("plain_on", [False, True])
def test_plain_listener_follows_the_setting(tmp_path: Path, plain_on: bool) -> None:
    """``deltasense up`` with mqtt_plain_listener off (the default): no plain port at
    all, and plain MQTT on the TLS port gets no CONNACK; on, the plain port opens."""
    var = tmp_path / "var"
    settings = Settings(
        var_dir=var,
        mqtt_port=free_port(),
        mqtt_plain_port=free_port(),
        mqtt_plain_listener=plain_on,
    )
    accounts = broker.prepare(var)
    listeners = broker_listeners(settings)
    assert ("plain_port" in listeners) is plain_on
    proc = mosquitto_process(
        var, port=settings.mqtt_port, dynsec_file=accounts.dynsec_file, **listeners
    )
    proc.healthy = broker.ready_check(settings, accounts)  # over TLS, the dev CA
    with Stack([proc]):
        assert tcp_open("127.0.0.1", settings.mqtt_plain_port) is plain_on
        # Plain MQTT spoken to the TLS port: no CONNACK (0x20), the broker drops it.
        assert not mqtt_connect_answered(settings.mqtt_port).startswith(b"\x20")
        if plain_on:  # control: the plain listener answers CONNECT (refused: anonymous)
            assert mqtt_connect_answered(settings.mqtt_plain_port).startswith(b"\x20")


def test_tls_settings_refuse_a_missing_or_bad_ca(tmp_path: Path) -> None:
    with pytest.raises(MqttTlsError, match=r"ca\.pem cannot be used"):
        tls_context(Settings(var_dir=tmp_path / "nothing-here"))
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(MqttTlsError, match=r"junk\.pem"):
        tls_context(Settings(mqtt_ca_file=junk))
    assert tls_context(Settings(mqtt_tls=False, mqtt_ca_file=junk)) is None  # TLS off: unused
