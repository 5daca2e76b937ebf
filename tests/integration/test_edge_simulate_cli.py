"""``deltasense simulate --edge WARD``: the ward's devices publish through their own
broker and a gateway; the other wards' devices straight to the platform."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiomqtt

from deltasense.contract import edge_status_topic
from deltasense.settings import Settings
from tests.integration.edge_support import WARD, edge_world
from tools.devstack import free_port


def test_simulate_edge_puts_one_ward_behind_its_gateway(settings: Settings, tmp_path: Path) -> None:
    with edge_world(settings, tmp_path) as world:
        platform = world.platform
        seen: dict[str, set[str]] = {"tele": set(), "edge": set()}

        async def watch() -> None:
            async with aiomqtt.Client(
                "127.0.0.1",
                platform.mqtt_port,
                username=platform.mqtt_username,
                password=platform.mqtt_password,
                identifier=f"watch-{platform.site}",
            ) as c:
                await c.subscribe(f"{platform.site}/+/+/+/tele", qos=1)
                await c.subscribe(edge_status_topic(platform.site, WARD), qos=1)
                async for m in c.messages:
                    parts = m.topic.value.split("/")
                    if parts[1] == "_edge":
                        seen["edge"].add(json.loads(m.payload)["state"])  # type: ignore[arg-type]
                    else:
                        seen["tele"].add(parts[1])

        env = {
            **os.environ,
            "DELTASENSE_CONFIG": os.devnull,
            "DELTASENSE_SITE": platform.site,
            "DELTASENSE_VAR_DIR": str(world.var_dir / "platform"),
            "DELTASENSE_MQTT_PORT": str(platform.mqtt_port),
            "DELTASENSE_MQTT_TLS": "false",  # this test's platform broker is plain
        }
        env.pop("DELTASENSE_MQTT_USERNAME", None)
        metrics_port = free_port()

        async def run() -> subprocess.CompletedProcess[str]:
            watcher = asyncio.create_task(watch())
            proc = await asyncio.to_thread(
                subprocess.run,
                [
                    sys.executable,
                    "-m",
                    "tools.cli",
                    "simulate",
                    "--devices",
                    "40",
                    "--rate",
                    "1",
                    "--duration",
                    "12",
                    "--edge",
                    WARD,
                    "--edge-port",
                    str(free_port()),
                    "--edge-metrics-port",
                    str(metrics_port),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            await asyncio.sleep(1)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            return proc

        proc = asyncio.run(run())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"ward {WARD} behind its gateway" in proc.stdout
        assert WARD in seen["tele"], seen  # through the gateway
        assert len(seen["tele"] - {WARD}) >= 3, seen  # the other wards, directly
        assert "online" in seen["edge"], seen
        spool = world.var_dir / "platform" / "edge" / WARD / "spool.sqlite3"
        assert spool.exists()


def test_simulate_edge_refuses_an_unknown_ward(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tools.cli", "simulate", "--edge", "atlantis", "--duration", "1"],
        env={**os.environ, "DELTASENSE_CONFIG": os.devnull, "DELTASENSE_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "atlantis" in proc.stderr and "not a ward" in proc.stderr
