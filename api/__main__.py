"""``python -m api``: serve the HTTP API with uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from api.app import create_app, open_influx
from deltasense.influx import InfluxUnavailable
from deltasense.service import setup_logging
from deltasense.settings import Settings, load_settings

_LOG = logging.getLogger("api")


async def serve(settings: Settings) -> None:
    """Wait for InfluxDB (bounded), make sure the database exists, then serve."""
    async with open_influx(settings) as db:
        await db.wait_ready()
        await db.create_database()
        app = create_app(settings, influx=db)
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,  # keep the service's logging setup
            proxy_headers=False,
        )
        # uvicorn installs its own SIGTERM/SIGINT handlers and shuts down gracefully.
        await uvicorn.Server(config).serve()


def main() -> None:
    settings = load_settings()
    setup_logging(settings)
    _LOG.info("api starting on %s (site %s)", settings.api_base_url, settings.site)
    try:
        asyncio.run(serve(settings))
    except InfluxUnavailable as exc:
        _LOG.error("giving up: %s", exc)
        raise SystemExit(1) from None
    _LOG.info("api stopped")


if __name__ == "__main__":
    main()
