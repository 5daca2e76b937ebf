"""The gateway's test world: a ward broker, a locked-down platform broker, a TCP
proxy on the uplink that the test can cut, and observers that count readings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from deltasense import schema
from deltasense.access import Service
from deltasense.influx import InfluxClient, quote_ident
from deltasense.settings import Settings
from edge.settings import EdgeSettings
from tools import broker
from tools.devstack import (
    ManagedProcess,
    Stack,
    free_port,
    mosquitto_process,
    outside_ephemeral_port,
)
from tools.edgestack import ensure_gateway_account, gateway_process, ward_broker

WARD = "phuong-1"


class TcpProxy:
    """Forwards a port to the platform broker; ``cut()`` drops every connection and
    refuses new ones (an uplink that went down), ``restore()`` lets them in again.

    It runs its own event loop on its own thread, so the test's loop (simulated
    nodes, ingest, observers) never slows the link down.  ``uplink_bytes_per_s``
    paces what goes towards the platform, as a ward's cellular uplink would."""

    def __init__(self, target_port: int, uplink_bytes_per_s: float | None = None) -> None:
        self.port = outside_ephemeral_port()  # it closes and reopens under reconnecting clients
        self.target_port = target_port
        self.uplink_bytes_per_s = uplink_bytes_per_s
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    async def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def start(self) -> None:
        await self._call(self._start())

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, rate: float | None = None
        ) -> None:
            due = time.monotonic()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536 if rate is None else 4096):
                    dst.write(data)
                    await dst.drain()
                    if rate is not None:  # the next bytes go when these would have gone
                        due = max(due, time.monotonic()) + len(data) / rate
                        await asyncio.sleep(due - time.monotonic())
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, self.uplink_bytes_per_s), pipe(up_reader, writer)
        )
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        await self._call(self._cut())

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()  # no FIN, no goodbye: a link that just died
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


@dataclass
class EdgeWorld:
    platform: Settings  # the platform's settings, logged in as svc.ingest
    ward_port: int
    gateway_password: str
    var_dir: Path
    stack: Stack
    extra: list[ManagedProcess] = field(default_factory=list)

    def edge_settings(self, uplink_port: int, **overrides: object) -> EdgeSettings:
        values: dict[str, object] = {
            "site": self.platform.site,
            "district": WARD,
            "var_dir": self.var_dir / "edge",
            "local_port": self.ward_port,
            "uplink_port": uplink_port,
            "uplink_password": self.gateway_password,
            "uplink_keepalive_s": 5,
            "uplink_retry_max_s": 1.0,
            "status_interval_s": 1.0,
            "metrics_port": free_port(),
        }
        values.update(overrides)
        return EdgeSettings(**values)  # type: ignore[arg-type]

    def gateway(self, settings: EdgeSettings) -> ManagedProcess:
        proc = gateway_process(settings)
        self.extra.append(proc)
        return proc


@contextlib.contextmanager
def edge_world(settings: Settings, tmp_path: Path) -> Iterator[EdgeWorld]:
    """Platform broker (dynamic security, the stack's accounts), ward broker, and
    the gateway's account ``gw.phuong-1`` on the platform."""
    var = tmp_path / "platform"
    platform = settings.model_copy(update={"mqtt_port": free_port(), "var_dir": var})
    accounts = broker.prepare(var)
    mosquitto = mosquitto_process(var, port=platform.mqtt_port, dynsec_file=accounts.dynsec_file)
    mosquitto.healthy = broker.ready_check(platform, accounts)
    ward_port = free_port()
    stack = Stack([mosquitto, ward_broker(tmp_path / "ward", port=ward_port)])
    with stack:
        password = asyncio.run(ensure_gateway_account(platform, WARD))
        world = EdgeWorld(
            platform=broker.as_service(platform, Service.INGEST),
            ward_port=ward_port,
            gateway_password=password,
            var_dir=tmp_path,
            stack=stack,
        )
        try:
            yield world
        finally:
            for proc in world.extra:
                with contextlib.suppress(Exception):
                    proc.stop()


def metric(settings: EdgeSettings, name: str) -> float:
    """One sample of the gateway's Prometheus endpoint (sums over labels)."""
    url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as resp:
        text = resp.read().decode()
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(f"deltasense_edge_{name}") and not line.startswith("#"):
            head, value = line.rsplit(" ", 1)
            if head == f"deltasense_edge_{name}" or head.startswith(f"deltasense_edge_{name}{{"):
                total, found = total + float(value), True
    if not found:
        raise KeyError(name)
    return total


@dataclass
class Seen:
    ts: int
    hist: bool
    at: float  # monotonic arrival
    wall_ms: float  # wall-clock arrival


class ReadingWatch:
    """Every reading under ``{site}/+/+/+/tele`` on one broker: (device, boot, seq) →
    its ts, hist and when it arrived; repeats counted."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.client = aiomqtt.Client(
            host,
            port,
            identifier=f"watch-{free_port()}",
            clean_session=True,
            username=username,
            password=password,
        )
        self.site = site
        self.readings: dict[tuple[str, int, int], Seen] = {}
        self.repeats = 0
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def _run(self) -> None:
        async with self.client:
            await self.client.subscribe(f"{self.site}/+/+/+/tele", qos=1)
            self.ready.set()
            async for message in self.client.messages:
                device = message.topic.value.split("/")[3]
                try:
                    doc = json.loads(message.payload)
                except (TypeError, ValueError):
                    continue
                now, wall = time.monotonic(), time.time() * 1000
                for r in doc if isinstance(doc, list) else [doc]:
                    key = (device, int(r["boot"]), int(r["seq"]))
                    if key in self.readings:
                        self.repeats += 1
                    else:
                        self.readings[key] = Seen(int(r["ts"]), bool(r.get("hist")), now, wall)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task


async def stored(db: InfluxClient, site: str) -> dict[tuple[str, int, int], tuple[int, bool]]:
    """(device, boot, seq) → (stored time, hist) for every reading of the site."""
    found: dict[tuple[str, int, int], tuple[int, bool]] = {}
    for kind in schema.READING_MEASUREMENTS:
        series = await db.query(
            f"SELECT {quote_ident(schema.SEQ)}, {quote_ident(schema.BOOT)}, "
            f"{quote_ident(schema.HIST)} FROM {quote_ident(kind)} "
            f"WHERE {quote_ident(schema.SITE)} = $site GROUP BY {quote_ident(schema.DEVICE)}",
            params={"site": site},
        )
        for s in series:
            device = s.tags[schema.DEVICE]
            for row in s.rows():
                key = (device, int(row[schema.BOOT]), int(row[schema.SEQ]))
                found[key] = (int(row["time"]), bool(row[schema.HIST]))
    return found


async def until(check, within: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while True:
        try:
            if await check():
                break
        except Exception:  # the gateway restarting: its endpoint does not answer yet
            pass
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started
