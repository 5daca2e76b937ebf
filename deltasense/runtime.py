"""What every platform process shares at run time: the clock and the site's local
time, retry backoff, MQTT payload bytes, Prometheus metrics, logging and signals.

The layout of stored data is :mod:`deltasense.schema`; the wire format is
:mod:`deltasense.contract`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from deltasense.settings import Settings, utc_offset_tz

_T = TypeVar("_T")


# --- clocks --------------------------------------------------------------------------------
def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the platform's one time unit."""
    return time.time_ns() // 1_000_000


def utc_offset_text(utc_offset_min: int) -> str:
    """``+07:00`` for 420: the offset as ISO 8601 writes it."""
    sign = "-" if utc_offset_min < 0 else "+"
    hours, minutes = divmod(abs(utc_offset_min), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def utc_label(utc_offset_min: int) -> str:
    """``UTC+7`` for 420, ``UTC+5:30`` for 330: the offset for people."""
    sign = "-" if utc_offset_min < 0 else "+"
    hours, minutes = divmod(abs(utc_offset_min), 60)
    return f"UTC{sign}{hours}" + (f":{minutes:02d}" if minutes else "")


# Code that runs without Settings (scenario dates, value models, defaults of pure
# functions) uses the settings' own default, so the site's offset is written once.
DEFAULT_UTC_OFFSET_MIN: Final[int] = Settings.model_fields["utc_offset_min"].default
DEFAULT_LOCAL_TZ: Final = utc_offset_tz(DEFAULT_UTC_OFFSET_MIN)


# --- retry backoff -------------------------------------------------------------------------
class Backoff:
    """Exponential backoff: the n-th wait is ``min(cap, base·2ⁿ)``, or with full
    jitter (the default) uniform in ``[0, that]`` so many clients do not retry in step."""

    def __init__(self, base_s: float, cap_s: float, *, jitter: bool = True) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.jitter = jitter
        self.attempt = 0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 20))
        return random.uniform(0, ceiling) if self.jitter else ceiling

    def next(self) -> float:
        """The wait before the next attempt; counts the attempt."""
        wait = self.delay(self.attempt)
        self.attempt += 1
        return wait

    def reset(self) -> None:
        self.attempt = 0


async def retry(
    call: Callable[[], Awaitable[_T]],
    *,
    what: str,
    retry_on: type[Exception] | tuple[type[Exception], ...],
    attempts: int,
    backoff: Backoff,
    log: logging.Logger,
) -> _T:
    """``call()``, retried after ``backoff`` waits while it raises ``retry_on``;
    the last attempt's exception propagates."""
    for attempt in range(attempts):
        try:
            return await call()
        except retry_on as exc:
            if attempt == attempts - 1:
                raise
            log.warning("%s: %s; retrying", what, exc)
            await asyncio.sleep(backoff.next())
    raise ValueError(f"attempts must be at least 1, got {attempts}")


# --- MQTT payloads -------------------------------------------------------------------------
def payload_bytes(payload: bytes | bytearray | str | int | float | None) -> bytes:
    """A received MQTT payload as bytes (aiomqtt types it loosely; paho gives bytes).
    Numbers and text become their UTF-8 text, as aiomqtt publishes them."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


# --- Prometheus metrics --------------------------------------------------------------------
class Metrics:
    """One service's Prometheus metrics, all named ``deltasense_{service}_{name}``.

    Counters are named without ``_total``: the client library adds it.  The
    services' module-level metrics live in the process registry; the API keeps
    one registry per app so tests can build several apps in one process.
    """

    def __init__(self, service: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.prefix = f"deltasense_{service}_"
        self.registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(self.prefix + name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(self.prefix + name, doc, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        return Histogram(self.prefix + name, doc, labels, registry=self.registry, buckets=buckets)


def start_metrics_server(
    port: int, log: logging.Logger, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> None:
    """Serve Prometheus metrics on ``host:port`` (port 0 = off); a port in use is
    logged, not fatal."""
    if not port:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("metrics port %d unavailable: %s", port, exc)


# --- process plumbing ----------------------------------------------------------------------
def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO: one line per InfluxDB write drowns the log.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


async def _until_signalled(main: Awaitable[None]) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run_service(name: str, main: Callable[[Settings], Awaitable[None]], settings: Settings) -> None:
    """Run ``main(settings)`` until SIGTERM/SIGINT, then let it clean up and exit 0."""
    setup_logging(settings)
    log = logging.getLogger(name)
    log.info("%s starting (site %s)", name, settings.site)
    asyncio.run(_until_signalled(main(settings)))
    log.info("%s stopped", name)
