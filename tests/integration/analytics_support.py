"""Helpers for the analytics service's integration tests: the service as a restartable
task, a drain node publishing readings, and a watcher of the alert events on MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiomqtt
import msgspec

from analytics.service import run
from deltasense import alerts
from deltasense.influx import influx_client
from deltasense.settings import Settings

Event = alerts.AlertEvent
WAIT_S = 5.0


@dataclass
class Watcher:
    """Alert events seen on ``{site}/_alerts/#``, in arrival order."""

    queue: asyncio.Queue[tuple[str, Event]] = field(default_factory=asyncio.Queue)
    seen: list[tuple[str, Event]] = field(default_factory=list)

    async def consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            try:
                event = alerts.decode(message.payload)
            except msgspec.DecodeError:
                continue  # the bad-input test's own garbage
            await self.queue.put((str(message.topic), event))

    async def until(self, pred: Callable[[str, Event], bool]) -> tuple[str, Event, list[Event]]:
        """The next event matching ``pred`` (within WAIT_S) and the events skipped on the way."""
        skipped: list[Event] = []
        async with asyncio.timeout(WAIT_S):
            while True:
                topic, event = await self.queue.get()
                self.seen.append((topic, event))
                if pred(topic, event):
                    return topic, event, skipped
                skipped.append(event)


class Service:
    """The analytics service as an asyncio task that can be restarted."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self.task = asyncio.create_task(run(self.settings, ready=ready))
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, self.task}, timeout=20, return_when="FIRST_COMPLETED")
        if self.task in done:
            self.task.result()  # surface a start-up crash
        assert waiter in done, "analytics did not subscribe in time"

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Service]:
    service = Service(settings)
    await service.start()
    try:
        yield service
    finally:
        if service.task is not None:
            await service.stop()


class Drains:
    """Publishes water readings the way a drain node does (QoS 1, increasing seq)."""

    def __init__(self, client: aiomqtt.Client, site: str) -> None:
        self.client = client
        self.site = site
        self.seq: dict[str, int] = {}
        self.ts = 0

    async def level(self, device: str, level_cm: float, district: str = "phuong-1") -> None:
        seq = self.seq.get(device, 0) + 1
        self.seq[device] = seq
        self.ts = max(int(time.time() * 1000), self.ts + 1)  # a real node never repeats a ms
        payload = {"seq": seq, "boot": 1, "ts": self.ts, "level_cm": level_cm}
        await self.client.publish(
            f"{self.site}/{district}/water/{device}/tele", json.dumps(payload).encode(), qos=1
        )


def subject_is(device: str, state: str = "firing") -> Callable[[str, Event], bool]:
    return lambda _topic, e: e.subject == device and e.state == state


async def stored_alerts(settings: Settings) -> dict[str, Event]:
    """The latest stored event of every alert id in InfluxDB."""
    async with influx_client(settings) as db:
        series = await db.query('SELECT last("body") AS "body" FROM "alerts" GROUP BY "id"')
    return {s.tags["id"]: alerts.decode(s.rows()[0]["body"].encode()) for s in series}


async def wait_stored(
    settings: Settings, alert_id: str, state: str, within: float = WAIT_S
) -> Event:
    """Until InfluxDB holds ``alert_id`` in ``state`` (what a restart adopts)."""
    async with asyncio.timeout(within):
        while True:
            found = (await stored_alerts(settings)).get(alert_id)
            if found is not None and found.state == state:
                return found
            await asyncio.sleep(0.1)
