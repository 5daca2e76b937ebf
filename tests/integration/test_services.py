"""The project-started Mosquitto and InfluxDB answer like the real servers they are."""

from __future__ import annotations

import asyncio

from deltasense.influx import influx_client
from deltasense.mqtt import make_client
from deltasense.settings import Settings


async def test_broker_round_trip(settings: Settings) -> None:
    topic = f"{settings.site}/probe"
    async with make_client(settings, identifier=f"{settings.site}-probe") as client:
        await client.subscribe(topic, qos=1)
        await client.publish(topic, b"hello", qos=1)
        message = await asyncio.wait_for(anext(aiter(client.messages)), timeout=5)
    assert message.payload == b"hello"


async def test_influx_write_and_query(settings: Settings) -> None:
    async with influx_client(settings) as db:
        await db.create_database()
        await db.write_lines(["probe,device=d1 x=1.5 1700000000000"])
        series = await db.query('SELECT "x" FROM "probe" WHERE "device" = $d', params={"d": "d1"})
    assert series[0].rows() == [{"time": 1700000000000, "x": 1.5}]
