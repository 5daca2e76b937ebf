"""Run a city of virtual devices against the broker: one MQTT connection each.

Each device behaves like a field node: Last Will ``offline`` on its status
topic, retained ``online`` status and meta on connect, telemetry at a fixed
rate with QoS 1, reconnect with backoff when the broker goes away, and a
retained ``offline`` status on a clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from deltasense.contract import Kind
from deltasense.mqtt import ca_der
from deltasense.settings import Settings
from simulators.city import MAX_DEVICES, place_devices
from simulators.device import VirtualDevice

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
_BACKOFF_CAP_S: Final = 5.0  # a simulated city comes back quickly after a broker restart


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


class _DeviceRunner:
    """One virtual device's life: the firmware node runs until the stop event,
    then says goodbye (retained ``offline``); a firmware reset boots it again."""

    def __init__(
        self,
        device: VirtualDevice,
        *,
        start_delay_s: float,
        stats: SimStats,
        stop: asyncio.Event,
    ) -> None:
        self.device = device
        self._start_delay_s = start_delay_s
        self._stats = stats
        self._stop = stop
        self._counted = (0, 0, 0)  # (sent, connects, errors) already in stats

    def _account(self) -> None:
        n = self.device.node
        sent, connects, errors = self._counted
        self._stats.published[self.device.kind.value] += n.sent - sent
        self._stats.connects += n.connects - connects
        self._stats.errors += n.errors - errors
        self._counted = (n.sent, n.connects, n.errors)

    async def run(self) -> None:
        try:
            await asyncio.sleep(self._start_delay_s)
        except asyncio.CancelledError:
            return
        while not self._stop.is_set():
            node_task = asyncio.create_task(self.device.node.run())
            stopper = asyncio.create_task(self._stop.wait())
            try:
                while not node_task.done() and not stopper.done():
                    await asyncio.wait({node_task, stopper}, timeout=_PROGRESS_EVERY_S)
                    self._account()
                    if self.device.reset_requested:
                        break
            except asyncio.CancelledError:
                await self._goodbye(node_task)
                raise
            finally:
                await _cancel(stopper)
            await self._goodbye(node_task)
            if node_task.done() and not node_task.cancelled():
                exc = node_task.exception()
                if exc is not None:
                    raise exc
            if self.device.reset_requested and not self._stop.is_set():
                self.device.reboot(time.time())
                self._counted = (0, 0, 0)

    async def _goodbye(self, node_task: asyncio.Task[None]) -> None:
        try:
            await asyncio.wait_for(self.device.node.stop(), _STOP_TIMEOUT_S)
        except (TimeoutError, OSError):
            self.device.node.client.close()
        await _cancel(node_task)
        self._account()


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again while it runs on."""
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
    """Every device says goodbye (bounded); stragglers are cancelled."""
    pending = {t for t in tasks if not t.done()}
    if pending:
        _, pending = await asyncio.wait(pending, timeout=_STOP_TIMEOUT_S + 2)
    if pending:
        _LOG.warning("%d device tasks did not stop in time; cancelling them", len(pending))
    await asyncio.gather(*(_cancel(t) for t in pending))
    await asyncio.gather(*tasks, return_exceptions=True)  # retrieve every outcome
    for r in runners:
        r.device.close()


def _raise_fd_limit(devices: int) -> None:
    """One socket per device: lift the soft open-files limit if it is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * devices + _SPARE_FDS  # a socket and an open spool file each
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
    districts: Sequence[str] | None = None,
    edge: Mapping[str, tuple[str, int]] | None = None,
) -> SimStats:
    """Run ``devices`` virtual devices, each publishing ``rate`` readings/s.

    Runs for ``duration`` seconds, or until cancelled when ``duration`` is None
    (cancellation still stops every device cleanly, then propagates).
    ``on_progress(stats)`` is called about once a second and once at the end
    with the same, live :class:`SimStats` object.  ``districts`` keeps the city to
    those wards; ``edge`` puts wards behind their gateway: ward → (host, port) of
    the ward's own broker, where its devices publish (without the platform's
    credentials: the ward broker is the gateway's, docs/EDGE.md).  Raises ``ValueError`` for
    out-of-range arguments before touching the network.
    """
    validate_args(devices, rate, duration)
    specs = place_devices(devices, seed, districts)
    edge = dict(edge or {})
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
    ca = ca_der(settings)  # each device pins the broker's CA, as a board does
    runners = [
        _DeviceRunner(
            VirtualDevice(
                spec,
                boot=boot,
                boot_ts=now,
                interval_s=period,
                site=settings.site,
                host=edge[spec.district][0] if spec.district in edge else settings.mqtt_host,
                port=edge[spec.district][1] if spec.district in edge else settings.mqtt_port,
                live=True,
                user=None if spec.district in edge else settings.mqtt_username,
                password=None if spec.district in edge else settings.mqtt_password,
                # The ward's gateway broker is local and plain (docs/EDGE.md); the
                # platform's is TLS with its CA pinned, as a board pins it.
                ca_der=None if spec.district in edge else ca,
                keepalive_s=settings.mqtt_keepalive_s,
                backoff_cap_s=_BACKOFF_CAP_S,
            ),
            # Spread connections, and the sampling phases over one period.
            start_delay_s=spread * slot / devices + rng.uniform(0.0, period),
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
