"""MQTT client construction and the reconnect loop shared by the platform services.

Every service talks MQTT through aiomqtt (paho-mqtt 2 underneath).  This module
only builds clients from :class:`~deltasense.settings.Settings` and runs a
session function forever with exponential backoff and jitter, so each service
writes its own message handling and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from deltasense.runtime import Backoff
from deltasense.settings import Settings

_LOG = logging.getLogger(__name__)


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
        **kwargs,
    )


async def run_forever(
    session: Callable[[], Awaitable[None]],
    *,
    name: str,
    logger: logging.Logger | None = None,
    base_s: float = 0.5,
    cap_s: float = 30.0,
) -> None:
    """Run ``session`` (one MQTT connection's life) again and again until cancelled.

    A session that ends with :class:`aiomqtt.MqttError` (broker gone, refused)
    is retried after a jittered backoff; a session that ran for a while resets
    the backoff.  Any other exception propagates: it is a bug, not weather.
    """
    log = logger or _LOG
    backoff = Backoff(base_s, cap_s)
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await session()
            log.info("%s: MQTT session ended; reconnecting", name)
        except aiomqtt.MqttError as exc:
            if asyncio.get_running_loop().time() - started > cap_s:
                backoff.reset()
            wait = backoff.next()
            log.warning("%s: MQTT connection lost (%s); retrying in %.1f s", name, exc, wait)
            await asyncio.sleep(wait)
