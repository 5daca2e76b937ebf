"""The firmware node (ds.node under CPython, as the simulator runs it) against a real broker.

Outages are real time, not accelerated: the node samples every 0.2 s, so a
10 s outage holds ~50 readings, as a 60 s outage at field rates would hold a
handful.  A network cut goes through a TCP proxy the test can break (the
broker stays up and speaks the Last Will); a broker restart stops Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from deltasense.contract import Channel, Kind, decode_status, decode_tele, parse_topic
from deltasense.devstack import free_port, mosquitto_process
from deltasense.settings import Settings
from simulators.city import DeviceSpec, place_devices
from simulators.device import VirtualDevice

INTERVAL_S = 0.2
OUTAGE_S = 10.0


class Proxy:
    """A TCP forwarder that can cut every connection and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.up = True
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if not self.up:
            w.close()
            return
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            w.close()
            return
        self._writers += [w, uw]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(4096):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    def cut(self) -> None:
        self.up = False
        for w in self._writers:
            w.close()
        self._writers = []

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


class Recorder:
    """Everything under ``{site}/#``, reconnecting with a persistent session."""

    def __init__(self, port: int, site: str) -> None:
        self.port, self.site = port, site
        self.messages: list[tuple[str, bytes, bool]] = []

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=f"rec-{self.site}", clean_session=False
                ) as c:
                    await c.subscribe(f"{self.site}/#", qos=1)
                    async for m in c.messages:
                        assert isinstance(m.payload, bytes)
                        self.messages.append((str(m.topic), m.payload, m.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.3)

    def channel(self, name: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t.endswith("/" + name)]

    def readings(self) -> list[Any]:
        out = []
        for t, p, _ in self.messages:
            if t.endswith("/tele"):
                out.extend(decode_tele(parse_topic(t), p, int(time.time() * 1000)))
        return out


@contextlib.asynccontextmanager
async def running(device: VirtualDevice) -> AsyncIterator[VirtualDevice]:
    task = asyncio.create_task(device.node.run())
    try:
        yield device
    finally:
        await device.node.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        device.close()


async def until(pred: Callable[[], Any], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def spec_of(kind: Kind) -> DeviceSpec:
    return next(s for s in place_devices(8, seed=5) if s.kind is kind)


def node_device(spec: DeviceSpec, site: str, port: int) -> VirtualDevice:
    return VirtualDevice(
        spec,
        boot=3,
        interval_s=INTERVAL_S,
        site=site,
        port=port,
        live=True,
        keepalive_s=5,
        backoff_cap_s=1.0,
        ack_timeout_s=2.0,
    )


def states(rec: Recorder) -> list[str]:
    return [decode_status(p).state for p in rec.channel("status")]


async def test_outage_and_broker_restart_lose_no_reading(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    broker = mosquitto_process(tmp_path / "own-broker", port=port)
    broker.start()
    proxy = Proxy(port)
    await proxy.start()
    rec = Recorder(port, settings.site)
    rec_task = asyncio.create_task(rec.run())
    device = node_device(spec_of(Kind.WATER), settings.site, proxy.port)
    try:
        async with running(device) as dev:
            await until(lambda: len(rec.readings()) >= 5 and "online" in states(rec))
            # 1. The network between node and broker goes away (broker stays up).
            proxy.cut()
            cut_ms = int(time.time() * 1000)
            await until(lambda: "offline" in states(rec), within=5)  # Last Will
            await asyncio.sleep(OUTAGE_S)
            restore_ms = int(time.time() * 1000)
            proxy.up = True
            await until(lambda: states(rec)[-1] == "online", within=10)
            # 2. The broker itself restarts.
            broker.stop()
            await asyncio.sleep(3.0)
            await asyncio.to_thread(broker.start)
            await until(lambda: dev.node.connects >= 3, within=15)
            taken = dev.node.counters["seq"]  # readings taken so far
            await until(lambda: len(dev.node.spool) == 0, within=10)
            await until(lambda: len({r.seq for r in rec.readings()}) >= taken, within=10)
    finally:
        rec_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rec_task
        await proxy.close()
        broker.stop()

    readings = rec.readings()
    assert {r.boot for r in readings} == {3}
    seqs = {r.seq for r in readings}
    assert seqs == set(range(max(seqs) + 1))  # no gaps, none lost
    during = [r for r in readings if cut_ms <= r.ts_ms <= restore_ms]
    expected = OUTAGE_S / INTERVAL_S
    assert len({r.seq for r in during}) >= 0.7 * expected
    assert all(r.hist for r in during)  # replayed from the spool
    assert all(not r.ts_from_platform for r in readings[3:])  # NTP synced at boot
    s = states(rec)
    first_off = s.index("offline")
    assert "online" in s[:first_off] and "online" in s[first_off:]
    assert dev.node.connects >= 3 and dev.node.errors >= 2


async def test_commands_and_cfg_on_a_lamp(settings: Settings) -> None:
    rec = Recorder(settings.mqtt_port, settings.site)
    rec_task = asyncio.create_task(rec.run())
    device = node_device(spec_of(Kind.LAMP), settings.site, settings.mqtt_port)
    base = device.topic(settings.site, Channel.CMD).rsplit("/", 1)[0]
    try:
        async with (
            running(device) as dev,
            aiomqtt.Client(
                "127.0.0.1", settings.mqtt_port, identifier=f"ops-{settings.site}"
            ) as ops,
        ):
            await until(lambda: "online" in states(rec) and dev.node.client.connected)
            now = int(time.time() * 1000)

            async def cmd(body: dict[str, Any] | bytes) -> dict[str, Any]:
                n = len(rec.channel("ack"))
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                await ops.publish(base + "/cmd", raw, qos=1)
                await until(lambda: len(rec.channel("ack")) > n, within=10)
                ack: dict[str, Any] = json.loads(rec.channel("ack")[-1])
                return ack

            dim = {"id": "c1", "name": "set_dim", "args": {"pct": 40}, "expires": now + 60_000}
            ack = await cmd(dim)
            assert ack["id"] == "c1" and ack["ok"] is True
            assert dev.sensors.lamp[1] == 40.0  # the output follows the command
            await until(
                lambda: (
                    any(r.fields.get("dim_pct") == 40 for r in rec.readings() if r.fields["on"])
                    or not dev.node.lamp_on
                )
            )
            expired = {"id": "c2", "name": "set_dim", "args": {"pct": 10}, "expires": now - 1}
            ack = await cmd(expired)
            assert (ack["id"], ack["ok"]) == ("c2", False) and "expired" in ack["error"]
            assert dev.sensors.lamp[1] == 40.0
            bad = await cmd(b"{not json")
            assert bad["ok"] is False and bad["error"]
            unknown = await cmd({"id": "c3", "name": "explode", "expires": now + 60_000})
            assert unknown["ok"] is False
            again = await cmd(dim)  # same id: same ack, action not repeated
            assert again["ok"] is True

            old_hash = dev.node.config.hash
            old_interval = dev.node.config.cfg["photocell_on_lux"]
            await ops.publish(base + "/cfg", b'{"photocell_on_lux": "dark"}', qos=1, retain=True)
            await asyncio.sleep(1.0)
            assert dev.node.config.hash == old_hash
            assert dev.node.config.cfg["photocell_on_lux"] == old_interval
            await ops.publish(base + "/cfg", b'{"photocell_on_lux": 12}', qos=1, retain=True)
            await until(lambda: dev.node.config.cfg["photocell_on_lux"] == 12)
            await until(
                lambda: any(
                    json.loads(m).get("cfg_hash") == dev.node.config.hash
                    for m in rec.channel("meta")
                )
            )
            await ops.publish(base + "/cfg", b"", qos=1, retain=True)  # clear the retained cfg
    finally:
        rec_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rec_task


@pytest.mark.parametrize("kind", list(Kind))
async def test_every_kind_births_with_meta(settings: Settings, kind: Kind) -> None:
    rec = Recorder(settings.mqtt_port, settings.site)
    rec_task = asyncio.create_task(rec.run())
    spec = spec_of(kind)
    try:
        async with running(node_device(spec, settings.site, settings.mqtt_port)):
            await until(lambda: len(rec.readings()) >= 3 and rec.channel("meta"))
        # The clean goodbye is published as the device stops; give the recorder
        # time to receive it (cancelling at once made this test flaky under load).
        await until(lambda: bool(states(rec)) and states(rec)[-1] == "offline", within=10)
    finally:
        rec_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rec_task
    meta = json.loads(rec.channel("meta")[0])
    assert meta["boot"] == 3 and meta["hw"] == "sim" and meta["lat"] == spec.lat
    assert ("station" in meta) is (kind is Kind.WATER)
    assert states(rec)[-1] == "offline"  # clean goodbye
