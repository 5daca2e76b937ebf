"""Commands reach the device's own cmd topic as contract messages."""

from __future__ import annotations

import asyncio
import time

import msgspec

from api.auth import add_token
from deltasense.contract import Command
from deltasense.mqtt import make_client
from deltasense.settings import Settings

from .api_support import ADMIN, influx, registry_line, running_api


async def test_command_is_published_to_the_device(settings: Settings) -> None:
    now = int(time.time() * 1000)
    async with influx(settings) as db:
        await db.write_lines([registry_line(settings, "lamp7", "lamp", "phuong-3", now)])
    topic = f"{settings.site}/phuong-3/lamp/lamp7/cmd"
    viewer = add_token(settings.var_dir, "wall", "viewer")
    async with (
        running_api(settings) as api,
        make_client(settings, identifier=f"{settings.site}-dev") as device,
    ):
        await device.subscribe(topic, qos=1)
        url = "/api/v1/devices/lamp7/commands"
        body = {"name": "set_dim", "args": {"pct": 40}, "ttl_s": 60}
        denied = await api.post(url, json=body, headers={"Authorization": f"Bearer {viewer}"})
        assert denied.status_code == 403
        response = await api.post(url, json=body, headers=ADMIN)
        assert response.status_code == 202, response.text
        sent = response.json()
        assert sent["topic"] == topic

        message = await asyncio.wait_for(anext(aiter(device.messages)), timeout=5)
        assert message.qos == 1
        command = msgspec.json.decode(message.payload, type=Command)
        assert command.id == sent["id"] and len(command.id) == 32
        assert (command.name, command.args) == ("set_dim", {"pct": 40})
        assert now + 59_000 <= command.expires <= int(time.time() * 1000) + 60_000
        assert command.expires == sent["expires"]

        unknown = await api.post("/api/v1/devices/lamp8/commands", json=body, headers=ADMIN)
        assert unknown.status_code == 404
        bad = await api.post("/api/v1/devices/a' OR '1'='1/commands", json=body, headers=ADMIN)
        assert bad.status_code == 422
