"""Run a city of virtual devices against the broker: one MQTT connection each.

Each device behaves like a field node: Last Will ``offline`` on its status
topic, retained ``online`` status and meta on connect, telemetry at a fixed
rate with QoS 1, reconnect with backoff when the broker goes away, and a
retained ``offline`` status on a clean stop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import aiomqtt

from deltasense.contract import Channel, Kind
from deltasense.mqtt import make_client, run_forever
from deltasense.settings import Settings
from simulators.city import MAX_DEVICES, place_devices
from simulators.device import WILL_PAYLOAD, VirtualDevice

_LOG = logging.getLogger(__name__)

MAX_RATE: Final = 10.0
# Boot numbers are seconds since this instant, so every simulator run looks like
# a power cycle with a higher boot than the last: counters restarting from zero
# are then resets, never decreases within one boot.
BOOT_EPOCH: Final = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
_PUBLISH_TIMEOUT_S: Final = 5.0
_STOP_TIMEOUT_S: Final = 10.0
_PROGRESS_EVERY_S: Final = 1.0
_CONNECT_SPREAD_S_PER_DEVICE: Final = 0.01
_CONNECT_SPREAD_MAX_S: Final = 10.0
_SPARE_FDS: Final = 256


@dataclass
class SimStats:
    """What a run did.  ``errors`` counts failed connection attempts and lost
    connections; ``skipped`` counts ticks dropped because publishing fell behind."""

    devices: int
    published: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in Kind})
    errors: int = 0
    connects: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.published.values())


def validate_args(devices: int, rate: float, duration: float | None) -> None:
    """Raise ``ValueError`` with a message fit for a user when an argument is out of range."""
    if isinstance(devices, bool) or not isinstance(devices, int):
        raise ValueError(f"devices must be an integer, got {devices!r}")
    if not 1 <= devices <= MAX_DEVICES:
        raise ValueError(f"devices must be between 1 and {MAX_DEVICES}, got {devices}")
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise ValueError(f"rate must be > 0 and <= {MAX_RATE:g} readings/s, got {rate}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration}")


class _Stopped(Exception):
    """Ends ``run_forever`` after a device's clean stop."""


class _Phase(enum.Enum):
    WAITING = "waiting"  # start delay or reconnect backoff: safe to cancel
    CONNECTING = "connecting"
    CONNECTED = "connected"


class _DeviceRunner:
    """One device's connection life: sessions until the stop event, then a clean goodbye."""

    def __init__(
        self,
        settings: Settings,
        device: VirtualDevice,
        *,
        period_s: float,
        start_delay_s: float,
        phase_s: float,
        stats: SimStats,
        stop: asyncio.Event,
    ) -> None:
        self._settings = settings
        self.device = device
        self._period_s = period_s
        self._start_delay_s = start_delay_s
        self._phase_s = phase_s
        self._stats = stats
        self._stop = stop
        self.phase = _Phase.WAITING
        self._pending: bytes | None = None  # a reading whose publish failed, sent first next time
        site = settings.site
        self._tele = device.topic(site, Channel.TELE)
        self._status = device.topic(site, Channel.STATUS)
        self._meta = device.topic(site, Channel.META)

    async def run(self) -> None:
        await asyncio.sleep(self._start_delay_s)
        try:
            await run_forever(self._session, name=self.device.id, logger=_LOG)
        except _Stopped:
            pass
        finally:
            self.phase = _Phase.WAITING

    async def _session(self) -> None:
        if self._stop.is_set():
            raise _Stopped
        will = aiomqtt.Will(self._status, WILL_PAYLOAD, qos=1, retain=True)
        client = make_client(
            self._settings, identifier=self.device.id, clean_session=False, will=will
        )
        self.phase = _Phase.CONNECTING
        try:
            async with client:
                self.phase = _Phase.CONNECTED
                self._stats.connects += 1
                now = time.time()
                await self._publish(client, self._status, self.device.status_payload("online", now))
                await self._publish(client, self._meta, self.device.meta_payload())
                await self._until_stopped(client)
                await self._publish(
                    client, self._status, self.device.status_payload("offline", time.time())
                )
        except aiomqtt.MqttError:
            self._stats.errors += 1
            raise
        finally:
            self.phase = _Phase.WAITING
        raise _Stopped

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        await client.publish(topic, payload, qos=1, retain=True, timeout=_PUBLISH_TIMEOUT_S)

    async def _until_stopped(self, client: aiomqtt.Client) -> None:
        """Publish telemetry until the stop event; a lost connection raises ``MqttError``."""
        publisher = asyncio.create_task(self._publish_tele(client))
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({publisher, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel(publisher)
            await _cancel(stopper)
        if publisher.done() and not publisher.cancelled():
            exc = publisher.exception()
            if exc is not None:
                raise exc

    async def _publish_tele(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        period = self._period_s
        kind = self.device.kind.value
        next_t = loop.time() + self._phase_s
        while not self._stop.is_set():
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._pending is None:
                self._pending = self.device.tele_payload(time.time())
            await client.publish(self._tele, self._pending, qos=1, timeout=_PUBLISH_TIMEOUT_S)
            self._pending = None
            self._stats.published[kind] += 1
            next_t += period
            behind = loop.time() - next_t
            if behind > period:  # fell behind: drop whole ticks rather than burst
                missed = int(behind // period)
                self._stats.skipped += missed
                next_t += missed * period


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end.  Cancels again while it runs on:
    Python 3.11's ``asyncio.wait_for`` (inside aiomqtt's publish) can swallow a
    cancellation that races with the PUBACK."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)


async def _report_progress(stats: SimStats, on_progress: Callable[[SimStats], None]) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(_PROGRESS_EVERY_S)
        stats.elapsed_s = time.monotonic() - started
        try:
            on_progress(stats)
        except Exception:
            _LOG.exception("on_progress callback failed")


async def _shutdown(runners: list[_DeviceRunner], tasks: list[asyncio.Task[None]]) -> None:
    """Let connected devices say goodbye; cancel those waiting to (re)connect."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STOP_TIMEOUT_S
    pending: set[asyncio.Task[None]] = {t for t in tasks if not t.done()}
    while pending and loop.time() < deadline:
        for runner, task in zip(runners, tasks, strict=True):
            if runner.phase is _Phase.WAITING and not task.done():
                task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    if pending:
        _LOG.warning(
            "%d device tasks did not stop in %.0f s; cancelling them", len(pending), _STOP_TIMEOUT_S
        )
    await asyncio.gather(*(_cancel(t) for t in pending))
    await asyncio.gather(*tasks, return_exceptions=True)  # retrieve every outcome


def _raise_fd_limit(devices: int) -> None:
    """One socket per device: lift the soft open-files limit if it is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = devices + _SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError) as exc:
            _LOG.warning("cannot raise the open-files limit to %d: %s", new, exc)
            return
        if new < want:
            _LOG.warning(
                "open-files limit %d is below the %d that %d devices need", new, want, devices
            )


async def simulate(
    settings: Settings,
    *,
    devices: int,
    rate: float,
    duration: float | None,
    seed: int = 1,
    on_progress: Callable[[SimStats], None] | None = None,
) -> SimStats:
    """Run ``devices`` virtual devices, each publishing ``rate`` readings/s.

    Runs for ``duration`` seconds, or until cancelled when ``duration`` is None
    (cancellation still stops every device cleanly, then propagates).
    ``on_progress(stats)`` is called about once a second and once at the end
    with the same, live :class:`SimStats` object.  Raises ``ValueError`` for
    out-of-range arguments before touching the network.
    """
    validate_args(devices, rate, duration)
    specs = place_devices(devices, seed)
    stats = SimStats(devices=devices)
    stop = asyncio.Event()
    period = 1.0 / rate
    now = time.time()
    boot = max(0, int(now - BOOT_EPOCH))
    spread = min(_CONNECT_SPREAD_MAX_S, devices * _CONNECT_SPREAD_S_PER_DEVICE)
    rng = random.Random(f"run:{seed}")
    # Connect in a shuffled order so every kind is on line early in a large city.
    slots = list(range(devices))
    rng.shuffle(slots)
    runners = [
        _DeviceRunner(
            settings,
            VirtualDevice(spec, boot=boot, boot_ts=now, interval_s=period),
            period_s=period,
            start_delay_s=spread * slot / devices,
            phase_s=rng.uniform(0.0, period),
            stats=stats,
            stop=stop,
        )
        for slot, spec in zip(slots, specs, strict=True)
    ]
    _raise_fd_limit(devices)
    _LOG.info(
        "simulating %d devices at %g readings/s each on %s:%d (site %s)",
        devices,
        rate,
        settings.mqtt_host,
        settings.mqtt_port,
        settings.site,
    )
    started = time.monotonic()
    tasks = [asyncio.create_task(r.run(), name=f"sim-{r.device.id}") for r in runners]
    progress = asyncio.create_task(_report_progress(stats, on_progress)) if on_progress else None
    try:
        done, _ = await asyncio.wait(tasks, timeout=duration, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:  # a device task ends early only through a bug
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
    finally:
        stop.set()
        if progress is not None:
            progress.cancel()
        await _shutdown(runners, tasks)
        stats.elapsed_s = time.monotonic() - started
        if on_progress is not None:
            on_progress(stats)
        _LOG.info(
            "simulator stopped: %d readings published, %d errors, %d ticks skipped",
            stats.total,
            stats.errors,
            stats.skipped,
        )
    return stats
