"""Helpers for the API integration tests: a real uvicorn server and schema-shaped data."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from deltasense.influx import InfluxClient
from deltasense.lineprotocol import FieldValue, encode_point
from deltasense.settings import Settings

ADMIN = {"Authorization": "Bearer test-admin-token"}


@contextlib.asynccontextmanager
async def influx(settings: Settings) -> AsyncIterator[InfluxClient]:
    async with InfluxClient(url=settings.influx_base_url, database=settings.influx_db) as db:
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


def registry_line(settings: Settings, device: str, kind: str, district: str, ts: int) -> str:
    fields: dict[str, FieldValue] = {
        "site": settings.site,
        "district": district,
        "kind": kind,
        "last_seen": ts,
    }
    return encode_point("devices", {"device": device}, fields, ts)


def _tags(settings: Settings, device: str, kind: str, district: str) -> dict[str, str]:
    return {"site": settings.site, "district": district, "kind": kind, "device": device}


def status_line(
    settings: Settings, device: str, kind: str, district: str, state: str, ts: int
) -> str:
    return encode_point("status", _tags(settings, device, kind, district), {"state": state}, ts)


def meta_line(
    settings: Settings, device: str, kind: str, district: str, ts: int, **fields: Any
) -> str:
    return encode_point("meta", _tags(settings, device, kind, district), fields, ts)


def reading_line(
    settings: Settings, device: str, kind: str, district: str, ts: int, **fields: Any
) -> str:
    tags = {"site": settings.site, "district": district, "device": device}
    return encode_point(kind, tags, fields, ts)
