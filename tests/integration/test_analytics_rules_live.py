"""The analytics service's new inputs and outputs against the real broker and database:
a flood orders the district's lamps to full brightness (a contract ``cmd``, recorded),
and a Last Will ``offline`` raises a device-health alert."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import msgspec
import pytest

from deltasense import alerts, schema
from deltasense.contract import Command
from deltasense.influx import influx_client, quote_ident
from deltasense.mqtt import make_client
from deltasense.settings import Settings

from .analytics_support import WAIT_S, Drains, running, subject_is

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
async def test_flood_orders_lamps_to_full_brightness_and_last_will_raises_offline(
    settings: Settings,
) -> None:
    site = settings.site
    async with (
        make_client(settings, identifier=f"{site}-lamp") as lamp,
        running(settings),
    ):
        cmd_topic = f"{site}/phuong-4/lamp/lp-x/cmd"
        await lamp.subscribe(cmd_topic, qos=1)
        await lamp.subscribe(alerts.alerts_filter(site), qos=1)
        now = int(time.time() * 1000)
        reading = {"seq": 1, "boot": 1, "ts": now, "on": True, "dim_pct": 50.0, "power_w": 60.0}
        await lamp.publish(f"{site}/phuong-4/lamp/lp-x/tele", json.dumps(reading).encode(), qos=1)
        await lamp.publish(f"{site}/phuong-4/lamp/lp-y/tele", json.dumps(reading).encode(), qos=1)
        await lamp.publish(
            f"{site}/phuong-4/lamp/lp-y/status", b'{"state":"offline"}', qos=1, retain=True
        )
        await Drains(lamp, site).level("drain-l", 15, district="phuong-4")

        command: Command | None = None
        offline = False
        async with asyncio.timeout(WAIT_S):
            async for message in lamp.messages:
                assert isinstance(message.payload, bytes)
                if str(message.topic) == cmd_topic:
                    command = msgspec.json.decode(message.payload, type=Command)
                else:
                    with contextlib.suppress(msgspec.DecodeError):
                        event = alerts.decode(message.payload)
                        offline |= subject_is("lp-y")("", event) and event.rule == "device-offline"
                if command is not None and offline:
                    break
        assert command is not None and command.name == "set_dim"
        assert command.args == {"pct": 100, "duration_s": 1800}  # a lease, renewed
        assert command.expires > now
        await lamp.publish(f"{site}/phuong-4/lamp/lp-y/status", b"", qos=1, retain=True)

    async with influx_client(settings) as db:
        async with asyncio.timeout(WAIT_S):
            while True:
                series = await db.query(f"SELECT * FROM {quote_ident(schema.COMMANDS)}")
                rows = [row for s in series for row in s.rows() if row.get("device") == "lp-x"]
                if rows:
                    break
                await asyncio.sleep(0.1)
    (row,) = rows
    assert (row["device"], row["name"], row["id"], row["source"]) == (
        "lp-x", "set_dim", command.id, "analytics",
    )  # fmt: skip
    assert json.loads(row["args"]) == {"pct": 100, "duration_s": 1800}
