"""MQTT client construction and the reconnect loop shared by the platform services.

Every service talks MQTT through aiomqtt (paho-mqtt 2 underneath).  This module
only builds clients from :class:`~deltasense.settings.Settings` and runs a
session function forever with exponential backoff and jitter, so each service
writes its own message handling and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt

from deltasense.runtime import Backoff
from deltasense.settings import Settings

_LOG = logging.getLogger(__name__)


class MqttTlsError(RuntimeError):
    """TLS is on but the CA to pin cannot be used (the message names the file)."""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The client side of MQTT over TLS: only ``mqtt_ca_file`` (the dev stack's
    ``var/tls/ca.pem`` by default) is trusted, the broker's name is checked
    against ``mqtt_host``, TLS 1.2 or later; ``None`` when ``mqtt_tls`` is off."""
    if not settings.mqtt_tls:
        return None
    ca = settings.mqtt_ca_path
    try:
        ctx = ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise MqttTlsError(
            f"mqtt_tls is on but the CA file {ca} cannot be used ({exc}); start the stack "
            "once (`deltasense up` makes var/tls/), set DELTASENSE_MQTT_CA_FILE, or turn "
            "TLS off with DELTASENSE_MQTT_TLS=false"
        ) from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def ca_der(settings: Settings) -> bytes | None:
    """The pinned CA in DER, as a node keeps it (``/ca.der``); ``None`` without TLS."""
    if not settings.mqtt_tls:
        return None
    return pem_ca_to_der(settings.mqtt_ca_path)


def pem_ca_to_der(ca: Path) -> bytes:
    """The one CA certificate in the PEM file ``ca``, in DER; MqttTlsError if not."""
    try:
        pem = ca.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise MqttTlsError(f"mqtt_tls is on but the CA file {ca} cannot be read ({exc})") from None
    if pem.count("-----BEGIN CERTIFICATE-----") != 1:
        raise MqttTlsError(f"{ca}: a node pins exactly one CA certificate (PEM)")
    try:
        return ssl.PEM_cert_to_DER_cert(pem.strip())
    except ValueError as exc:
        raise MqttTlsError(f"{ca}: not a PEM certificate ({exc})") from None


def paho_tls(client: Any, settings: Settings) -> None:
    """Put a paho client (tools that speak paho directly) on TLS when it is on."""
    ctx = tls_context(settings)
    if ctx is not None:
        client.tls_set_context(ctx)


def make_client(
    settings: Settings,
    *,
    identifier: str | None = None,
    clean_session: bool | None = None,
    will: aiomqtt.Will | None = None,
    logger: logging.Logger | None = None,
    **kwargs: Any,
) -> aiomqtt.Client:
    """An aiomqtt client for the configured broker (MQTT 3.1.1)."""
    return aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        identifier=identifier,
        clean_session=clean_session,
        will=will,
        keepalive=settings.mqtt_keepalive_s,
        logger=logger,
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=tls_context(settings),
        **kwargs,
    )


def received(client: aiomqtt.Client) -> Iterator[aiomqtt.Message]:
    """The messages ``client`` has already received, without waiting.

    ``async for message in client.messages`` costs a task and an ``asyncio.wait``
    per message; a consumer takes one message that way (which also notices a lost
    connection) and then the rest of what has arrived from here, in order, as one
    batch.  Bounded: nothing arrives while the loop runs this synchronously.
    """
    queue = client._queue  # aiomqtt has no public non-blocking get
    while True:
        try:
            yield queue.get_nowait()
        except asyncio.QueueEmpty:
            return


async def run_forever(
    session: Callable[[], Awaitable[None]],
    *,
    name: str,
    logger: logging.Logger | None = None,
    base_s: float = 0.5,
    cap_s: float = 30.0,
    stable_s: float = 5.0,
) -> None:
    """Run ``session`` (one MQTT connection's life) again and again until cancelled.

    A session that ends with :class:`aiomqtt.MqttError` (broker gone, refused)
    is retried after a jittered backoff; a session that lived ``stable_s`` resets
    the backoff, so a broker that crashes and comes back again and again is
    rejoined within ``base_s``, not after a wait grown towards ``cap_s`` (on a
    broker restored from a store older than ingest's session, a reading published
    before the subscription is back is dropped).  Any other exception propagates:
    it is a bug, not weather.
    """
    log = logger or _LOG
    backoff = Backoff(base_s, cap_s)
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await session()
            log.info("%s: MQTT session ended; reconnecting", name)
        except aiomqtt.MqttError as exc:
            if asyncio.get_running_loop().time() - started >= stable_s:
                backoff.reset()
            wait = backoff.next()
            log.warning("%s: MQTT connection lost (%s); retrying in %.1f s", name, exc, wait)
            await asyncio.sleep(wait)
