"""Process plumbing every platform service shares: logging, signals, metrics port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from deltasense.settings import Settings


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


def start_metrics_server(port: int, log: logging.Logger, host: str = "127.0.0.1") -> None:
    """Serve Prometheus metrics on ``host:port`` (port 0 = off); a port in use is
    logged, not fatal."""
    if not port:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics port %d unavailable: %s", port, exc)
