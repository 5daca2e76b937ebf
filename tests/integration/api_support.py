"""Helpers for the API integration tests: a real uvicorn server and points built by the schema."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from deltasense import schema
from deltasense.contract import (
    Channel,
    DeviceState,
    FieldValue,
    Kind,
    Meta,
    Reading,
    Status,
    Topic,
)
from deltasense.influx import InfluxClient, influx_client
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@contextlib.asynccontextmanager
async def influx(settings: Settings) -> AsyncIterator[InfluxClient]:
    async with influx_client(settings) as db:
        await db.create_database()
        yield db


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app served by uvicorn on ``settings.api_port`` until the block ends; ready first."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.api_port,
        log_config=None,
        access_log=False,  # as python -m api: api/accesslog.py logs, without query values
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=settings.api_base_url, timeout=10) as client:
            await _wait_ready(client, task)
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _wait_ready(client: httpx.AsyncClient, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(10):
        while True:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited before becoming ready")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)


def _topic(settings: Settings, device: str, kind: str, district: str, channel: Channel) -> Topic:
    return Topic(settings.site, district, Kind(kind), device, channel)


def registry_line(settings: Settings, device: str, kind: str, district: str, ts: int) -> str:
    return schema.device_line(_topic(settings, device, kind, district, Channel.TELE), ts, ts)


def status_line(
    settings: Settings, device: str, kind: str, district: str, state: DeviceState, ts: int
) -> str:
    topic = _topic(settings, device, kind, district, Channel.STATUS)
    return schema.status_line(topic, Status(state=state), ts)


def meta_line(
    settings: Settings, device: str, kind: str, district: str, ts: int, **fields: Any
) -> str:
    topic = _topic(settings, device, kind, district, Channel.META)
    line = schema.meta_line(topic, Meta(**fields), ts)
    assert line is not None, "a meta point needs a field"
    return line


def reading_line(
    settings: Settings,
    device: str,
    kind: str,
    district: str,
    ts: int,
    *,
    seq: int,
    boot: int,
    qc: str = "",
    ts_platform: bool = False,
    **fields: FieldValue,
) -> str:
    reading = Reading(
        site=settings.site,
        district=district,
        kind=Kind(kind),
        device=device,
        ts_ms=ts,
        seq=seq,
        boot=boot,
        ts_from_platform=ts_platform,
        fields=fields,
    )
    return schema.reading_line(reading, qc.split(",") if qc else ())
