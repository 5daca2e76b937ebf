"""The simulator against the real broker: births, telemetry, goodbyes, Last Will, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest

from deltasense.contract import (
    Channel,
    Kind,
    Reading,
    decode_meta,
    decode_status,
    decode_tele,
    parse_topic,
)
from deltasense.mqtt import make_client
from deltasense.settings import Settings
from simulators.city import place_devices
from simulators.device import FW_VERSION, WILL_PAYLOAD
from simulators.run import SimStats, simulate
from tools.devstack import free_port, mosquitto_process


class Recorder:
    """Collects every message under ``{site}/#`` while its task runs."""

    def __init__(self, client: aiomqtt.Client, barrier_topic: str) -> None:
        self.messages: list[aiomqtt.Message] = []
        self.client = client
        self.barrier_topic = barrier_topic  # outside ``{site}/#``: no other recorder sees it
        self.barrier_seen = asyncio.Event()

    async def settled(self) -> None:
        """Returns once every message the broker had for this recorder when called has
        arrived: the broker delivers to a subscriber in order, so a message the recorder
        sends itself comes after the retained copies and everything published before."""
        self.barrier_seen.clear()
        await self.client.publish(self.barrier_topic, b"barrier", qos=1)
        await asyncio.wait_for(self.barrier_seen.wait(), timeout=5)

    def on(self, channel: Channel) -> list[aiomqtt.Message]:
        return [m for m in self.messages if parse_topic(str(m.topic)).channel is channel]

    def tele(self) -> list[Reading]:
        out: list[Reading] = []
        for m in self.on(Channel.TELE):
            assert isinstance(m.payload, bytes)
            out.extend(decode_tele(parse_topic(str(m.topic)), m.payload, int(time.time() * 1000)))
        return out

    def status(self, device: str) -> list[bytes]:
        return [
            m.payload for m in self.on(Channel.STATUS) if parse_topic(str(m.topic)).device == device
        ]


@contextlib.asynccontextmanager
async def recording(
    settings: Settings, name: str, filters: tuple[str, ...] = ("#",)
) -> AsyncIterator[Recorder]:
    async with make_client(settings, identifier=f"{settings.site}-{name}") as client:
        rec = Recorder(client, f"_barrier/{settings.site}/{name}")
        for f in filters:
            await client.subscribe(f"{settings.site}/{f}", qos=1)
        await client.subscribe(rec.barrier_topic, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                if str(message.topic) == rec.barrier_topic:
                    rec.barrier_seen.set()
                else:
                    rec.messages.append(message)

        task = asyncio.create_task(pump())
        try:
            yield rec
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def retained(settings: Settings, name: str, count: int) -> Recorder:
    """Subscribe afresh and return the retained messages (status + meta of ``count`` devices)."""
    async with recording(settings, name, ("+/+/+/status", "+/+/+/meta")) as rec:
        await rec.settled()  # every retained message has arrived
    rec.messages = [m for m in rec.messages if m.retain]
    assert len(rec.messages) >= count, [m.topic for m in rec.messages]
    return rec


async def test_eight_devices_publish_births_telemetry_and_goodbyes(settings: Settings) -> None:
    specs = place_devices(8, seed=1)
    ids = {s.id for s in specs}
    progress: list[int] = []
    async with recording(settings, "live") as live:
        run = asyncio.create_task(
            simulate(
                settings,
                devices=8,
                rate=2,
                duration=3,
                on_progress=lambda s: progress.append(s.total),
            )
        )
        # While running: each device's retained status says online, with its meta.
        await until(lambda: {m.device for m in live.tele()} == ids, within=5)
        during = await retained(settings, "during", count=16)
        stats: SimStats = await asyncio.wait_for(run, timeout=20)
        await until(lambda: all(b'"offline"' in live.status(i)[-1] for i in ids))
        await live.settled()  # whatever a device sent after its goodbye is here now

    for spec in specs:
        status = [
            decode_status(m.payload)
            for m in during.on(Channel.STATUS)
            if parse_topic(str(m.topic)).device == spec.id
        ]
        assert [s.state for s in status] == ["online"]
        metas = [m for m in during.on(Channel.META) if parse_topic(str(m.topic)).device == spec.id]
        assert len(metas) == 1
        meta = decode_meta(metas[0].payload)
        assert (meta.fw, meta.hw, meta.reset_cause, meta.interval_s) == (
            FW_VERSION,  # the devices are the firmware
            "sim",
            "power_on",
            0.5,
        )
        assert (meta.lat, meta.lon) == (spec.lat, spec.lon)
        topic = parse_topic(str(metas[0].topic))
        assert (topic.site, topic.district, topic.kind) == (settings.site, spec.district, spec.kind)

    readings = live.tele()
    by_device: dict[str, list[Reading]] = {}
    for r in readings:
        by_device.setdefault(r.device, []).append(r)
    assert set(by_device) == ids
    assert {r.kind for r in readings} == set(Kind)
    for device, rs in by_device.items():
        seqs = [r.seq for r in rs]
        assert seqs == list(range(len(seqs))), device  # in order, none lost, none repeated
        assert 3 <= len(seqs) <= 8  # ~2/s for ~3 s
        assert len({r.boot for r in rs}) == 1
        # The live stream ended with a clean goodbye carrying a timestamp.
        goodbye = decode_status(live.status(device)[-1])
        assert goodbye.state == "offline" and goodbye.ts
    assert stats.total == len(readings)
    assert sum(stats.published[k.value] for k in Kind) == stats.total
    assert stats.errors == 0 and stats.connects == 8 and stats.devices == 8
    assert 2.9 <= stats.elapsed_s < 10
    assert progress and progress[-1] == stats.total

    after = await retained(settings, "after", count=16)
    offline = [decode_status(m.payload) for m in after.on(Channel.STATUS)]
    assert len(offline) == 8 and {s.state for s in offline} == {"offline"}
    assert len(after.on(Channel.META)) == 8


async def test_devices_start_staggered_not_in_lockstep(settings: Settings) -> None:
    async with recording(settings, "live") as live:
        await simulate(settings, devices=8, rate=1, duration=2.5, seed=3)
    firsts = sorted(
        min(r.ts_ms for r in live.tele() if r.device == d) for d in {r.device for r in live.tele()}
    )
    assert len(firsts) == 8
    assert firsts[-1] - firsts[0] >= 200  # phases spread over the 1 s period


async def test_cancelling_an_endless_run_still_says_goodbye(settings: Settings) -> None:
    run = asyncio.create_task(simulate(settings, devices=3, rate=5, duration=None))
    async with recording(settings, "live") as live:
        await until(lambda: len({r.device for r in live.tele()}) == 3)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, timeout=20)
    after = await retained(settings, "after", count=6)
    assert {decode_status(m.payload).state for m in after.on(Channel.STATUS)} == {"offline"}


def _simulator_process(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DELTASENSE_SITE": settings.site,
        "DELTASENSE_MQTT_HOST": settings.mqtt_host,
        "DELTASENSE_MQTT_PORT": str(settings.mqtt_port),
        "DELTASENSE_MQTT_TLS": "false",  # the session broker is plain
        "DELTASENSE_MQTT_KEEPALIVE_S": "5",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "simulators", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def test_last_will_marks_a_killed_device_offline(settings: Settings) -> None:
    device = place_devices(1, seed=1)[0].id
    proc = _simulator_process(settings, "--devices", "1", "--rate", "5")
    try:
        async with recording(settings, "live") as live:
            await until(lambda: len(live.tele()) >= 2, within=30)
            assert [decode_status(p).state for p in live.status(device)] == ["online"]
            proc.send_signal(signal.SIGKILL)  # no goodbye: the broker must speak for it
            await until(lambda: len(live.status(device)) >= 2, within=15)
            assert live.status(device)[-1] == WILL_PAYLOAD
    finally:
        proc.kill()
        proc.wait(timeout=10)
    after = await retained(settings, "after", count=2)
    assert [m.payload for m in after.on(Channel.STATUS)] == [WILL_PAYLOAD]


async def test_cli_run_exits_cleanly_on_sigterm(settings: Settings) -> None:
    proc = _simulator_process(settings, "--devices", "2", "--rate", "5")
    try:
        async with recording(settings, "live") as live:
            await until(lambda: len({r.device for r in live.tele()}) == 2, within=30)
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.to_thread(proc.communicate, timeout=20)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert b"readings from 2 devices" in out
    after = await retained(settings, "after", count=4)
    assert {decode_status(m.payload).state for m in after.on(Channel.STATUS)} == {"offline"}


async def test_devices_reconnect_after_a_broker_restart(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    broker = mosquitto_process(tmp_path / "own-broker", port=port, anonymous=True)
    own = settings.model_copy(update={"mqtt_port": port})
    broker.start()
    try:
        seen: list[SimStats] = []
        run = asyncio.create_task(
            simulate(own, devices=2, rate=5, duration=None, on_progress=seen.append)
        )
        async with recording(own, "before") as before:
            await until(lambda: len({r.device for r in before.tele()}) == 2)
        broker.stop()
        await asyncio.sleep(1.0)  # the outage itself: both devices lose the broker for 1 s
        await asyncio.to_thread(broker.start)
        async with recording(own, "after") as after:
            await until(lambda: len({r.device for r in after.tele()}) == 2, within=30)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, timeout=20)
    finally:
        broker.stop()
    stats = seen[-1]
    assert stats.errors >= 2 and stats.connects >= 4  # both lost their link and came back
    # seq continues across the reconnect: same boot, no restart from 0.
    assert min(r.seq for r in after.tele()) > 0
    assert {r.boot for r in before.tele()} == {r.boot for r in after.tele()}


async def test_two_hundred_devices_on_one_process(settings: Settings) -> None:
    ids = {s.id for s in place_devices(200, seed=1)}
    async with recording(settings, "live", ("+/+/+/tele",)) as live:
        stats = await simulate(settings, devices=200, rate=5, duration=4)
        # A message may carry a batch of readings when a node's spool has a backlog.
        await until(lambda: len(live.tele()) >= stats.total, within=5)
    assert {r.device for r in live.tele()} == ids
    assert (stats.connects, stats.errors) == (200, 0)
    # Connections ramp up over 2 s, then every device keeps its 5/s pace.
    assert stats.total >= 200 * 5 * 1.8
    assert stats.skipped <= stats.total // 100
    after = await retained(settings, "after", count=400)
    states = [decode_status(m.payload).state for m in after.on(Channel.STATUS)]
    assert len(states) == 200 and set(states) == {"offline"}
