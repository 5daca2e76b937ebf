"""``python -m api`` waits for InfluxDB, creates the database, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx

from deltasense.access import admin_token_file
from deltasense.influx import influx_client
from deltasense.settings import Settings


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTASENSE_")}
    env.update(
        DELTASENSE_SITE=settings.site,
        DELTASENSE_VAR_DIR=str(settings.var_dir),
        DELTASENSE_MQTT_PORT=str(settings.mqtt_port),
        DELTASENSE_MQTT_TLS="false",  # the session broker is plain
        DELTASENSE_INFLUX_PORT=str(settings.influx_port),
        DELTASENSE_INFLUX_DB=settings.influx_db,
        DELTASENSE_INFLUX_USERNAME=settings.influx_username or "",
        DELTASENSE_INFLUX_PASSWORD=settings.influx_password or "",
        DELTASENSE_API_PORT=str(settings.api_port),
    )
    return env


async def test_main_serves_and_stops_on_sigterm(settings: Settings) -> None:
    log_path = settings.var_dir.parent / "api.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", env=_env(settings), stderr=log
        )
    try:
        async with httpx.AsyncClient(base_url=settings.api_base_url, timeout=5) as client:
            async with asyncio.timeout(15):
                while True:
                    assert proc.returncode is None, log_path.read_text()
                    try:
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            token = admin_token_file(settings.var_dir).read_text().strip()
            response = await client.get(
                "/api/v1/devices", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200
            assert response.json() == []  # the database exists: created at start-up
            # an open alert stream must not keep the process from stopping
            issued = await client.post(
                "/api/v1/stream/ticket", headers={"Authorization": f"Bearer {token}"}
            )
            ticket = issued.json()["ticket"]
            async with client.stream(
                "GET", "/api/v1/alerts/stream", params={"ticket": ticket}
            ) as stream:
                assert await anext(stream.aiter_lines()) == ": listening"
                proc.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(proc.wait(), 15) == 0, log_path.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    async with influx_client(settings) as db:
        names = [row["name"] for s in await db.query("SHOW DATABASES") for row in s.rows()]
    assert settings.influx_db in names
    # The service's log has its access lines, without the token or the ticket.
    log = log_path.read_text()
    assert '"GET /api/v1/alerts/stream?ticket=*" 200' in log, log
    assert '"POST /api/v1/stream/ticket" 200' in log
    assert token not in log and ticket not in log
