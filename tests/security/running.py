"""The real ingest, in-process, on the locked-down broker (a helper, not a test module)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from deltasense.influx import InfluxClient
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
