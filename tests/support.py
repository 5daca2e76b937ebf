"""Small helpers and types shared by the tests (never a test module: tests import only this)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deltasense.runtime import now_ms
from tools.devstack import outside_ephemeral_port

__all__ = ["ADMIN_TOKEN", "Services", "eventually", "now_ms", "stack_env"]

# The tests' bootstrap admin token: long and random-looking, as start-up demands
# (deltasense/settings.py refuses short or placeholder secrets).
ADMIN_TOKEN = "tests-admin-7Qf2xK9pLm4Zr8Vb1Nc6Hd3Jw5Ty0Ge"


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


def stack_env(var_dir: Path) -> dict[str, str]:
    """Environment for a stack of its own: free ports, its own var dir, no TOML file,
    and no ``DELTASENSE_*`` variable of the caller's (a stray dev flag, say)."""
    # Below the ephemeral range: a port the kernel handed out as "free" can be taken
    # by one of the stack's own outgoing connections before its listener binds it
    # (CI once saw analytics' metrics port taken so, and the stack never got healthy).
    names = (
        "MQTT_PORT",
        "INFLUX_PORT",
        "INFLUX_RPC_PORT",
        "API_PORT",
        "INGEST_METRICS_PORT",
        "ANALYTICS_METRICS_PORT",
        "NOTIFIER_HTTP_PORT",
    )
    picked: set[int] = set()
    while len(picked) < len(names):
        picked.add(outside_ephemeral_port())
    ports = {name: str(port) for name, port in zip(names, sorted(picked), strict=True)}
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DELTASENSE_")},
        "DELTASENSE_CONFIG": os.devnull,
        "DELTASENSE_VAR_DIR": str(var_dir),
        **{f"DELTASENSE_{name}": port for name, port in ports.items()},
    }
