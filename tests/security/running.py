"""The real ingest, in-process, on the locked-down broker (a helper, not a test module)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiomqtt

from deltasense.influx import InfluxClient
from deltasense.mqtt import tls_context
from deltasense.settings import Settings
from ingest.service import Ingest


@contextlib.asynccontextmanager
async def running_ingest(settings: Settings, influx: InfluxClient) -> AsyncIterator[Ingest]:
    svc = Ingest(settings, influx)
    task = asyncio.create_task(svc.run())
    try:
        await asyncio.wait_for(svc.connected.wait(), timeout=10)
        yield svc
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await _discard_session(settings)


async def _discard_session(settings: Settings) -> None:
    """End the test ingest's persistent session.  Left behind, it would stay in the
    shared group ``$share/ingest/{site}/#`` of every later test on the same site,
    and the broker would queue every other reading for it instead of the live
    ingest (seen: a later rotation test storing only odd sequence numbers)."""
    async with aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.mqtt_username,
        password=settings.mqtt_password,
        identifier=settings.ingest_session_id,
        clean_session=True,
        tls_context=tls_context(settings),
    ):
        pass
