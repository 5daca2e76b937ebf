"""Small helpers and types shared by the tests (never a test module: tests import only this)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deltasense.runtime import now_ms

__all__ = ["Services", "eventually", "now_ms"]


@dataclass(frozen=True)
class Services:
    mqtt_port: int
    influx_port: int
    influx_rpc_port: int
    var_dir: Path
    # The session InfluxDB runs with authentication; tests log in as its admin
    # (they create a database each), the services' own users are tests/security's.
    influx_username: str
    influx_password: str

    @property
    def influx_url(self) -> str:
        return f"http://127.0.0.1:{self.influx_port}"


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy or ``within`` seconds pass;
    returns the last result, so the caller's assertion shows what was seen."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)
