"""Commands reach the device's own cmd topic as contract messages."""

from __future__ import annotations

import asyncio
import json
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


async def test_a_command_status_follows_the_device_ack(settings: Settings) -> None:
    """sent → acked or failed from the device's own ack; a wrong device's, a malformed or
    a repeated ack changes nothing; unanswered past its expiry reads expired."""
    now = int(time.time() * 1000)
    async with influx(settings) as db:
        await db.write_lines(
            [
                registry_line(settings, "lamp7", "lamp", "phuong-3", now),
                registry_line(settings, "lamp9", "lamp", "phuong-3", now),
            ]
        )
    base = f"{settings.site}/phuong-3/lamp"
    async with (
        running_api(settings) as api,
        make_client(settings, identifier=f"{settings.site}-dev7") as device,
    ):
        url = "/api/v1/devices/lamp7/commands"

        async def send(args: dict[str, int], ttl_s: int = 60) -> str:
            r = await api.post(
                url, json={"name": "set_dim", "args": args, "ttl_s": ttl_s}, headers=ADMIN
            )
            assert r.status_code == 202, r.text
            return str(r.json()["id"])

        async def statuses() -> dict[str, str]:
            r = await api.get(url, headers=ADMIN)
            assert r.status_code == 200, r.text
            return {c["id"]: c["status"] for c in r.json()}

        ok_id, bad_id, quiet_id = (
            await send({"pct": 40}),
            await send({"pct": 500}),
            await send({"pct": 1}, ttl_s=1),
        )
        assert set((await statuses()).values()) == {"sent"}
        hostile = [
            (f"{base}/lamp9/ack", {"id": ok_id, "ok": False}),  # another device
            (f"{base}/lamp7/ack", "not json"),
            (f"{base}/lamp7/ack", {"id": ok_id}),  # no ok
            (f"{base}/lamp7/ack", {"id": "x" * 5000, "ok": True}),  # too large
        ]
        for topic, body in hostile:
            payload = body if isinstance(body, str) else json.dumps(body)
            await device.publish(topic, payload, qos=1)
        await device.publish(f"{base}/lamp7/ack", json.dumps({"id": ok_id, "ok": True}), qos=1)
        await device.publish(
            f"{base}/lamp7/ack",
            json.dumps({"id": bad_id, "ok": False, "error": "pct 0..100"}),
            qos=1,
        )
        await device.publish(f"{base}/lamp7/ack", json.dumps({"id": ok_id, "ok": False}), qos=1)
        for _ in range(100):  # up to 5 s for the acks to come round
            if (await statuses())[bad_id] != "sent":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.2)  # the 1 s command expires meanwhile
        listed = (await api.get(url, headers=ADMIN)).json()
        got = {c["id"]: c for c in listed}
        assert got[ok_id]["status"] == "acked" and got[ok_id]["answered"] is not None
        assert got[bad_id]["status"] == "failed" and got[bad_id]["error"] == "pct 0..100"
        assert got[quiet_id]["status"] == "expired"
        assert [c["id"] for c in listed] == [quiet_id, bad_id, ok_id]  # newest first
        assert got[ok_id]["by"] == "admin"
        assert (await api.get("/api/v1/devices/nope/commands", headers=ADMIN)).status_code == 404
        assert (await api.get(url)).status_code == 401
