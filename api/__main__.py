"""``python -m api``: serve the HTTP API with uvicorn until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType
from typing import Any

import uvicorn

from api.app import create_app
from api.auth import WeakTokenError, ensure_admin_token
from deltasense.influx import InfluxUnavailable, influx_client
from deltasense.runtime import setup_logging
from deltasense.settings import Settings, load_settings_or_exit

_LOG = logging.getLogger("api")
SHUTDOWN_GRACE_S = 3


class TlsFilesMissing(RuntimeError):
    """api_tls is on but the certificate or key is not there."""


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's HTTPS options (TLS 1.2 or later, Python's server default) when
    ``api_tls`` is on: the dev stack's var/tls/server.pem and .key unless told."""
    if not settings.api_tls:
        return {}
    cert, key = settings.api_tls_paths
    for path in (cert, key):
        if not path.is_file():
            raise TlsFilesMissing(
                f"api_tls is on but {path} does not exist: start the stack once "
                "(`deltasense up` makes var/tls/) or set DELTASENSE_API_TLS_CERT/_KEY"
            )
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


async def serve(settings: Settings) -> None:
    """Wait for InfluxDB (bounded), make sure the database exists, then serve."""
    async with influx_client(settings) as db:
        await db.wait_ready()
        await db.create_database()
        app = create_app(settings, influx=db)
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,  # keep the service's logging setup
            # uvicorn's access log writes raw query strings; api/accesslog.py does not.
            access_log=False,
            proxy_headers=False,
            # Alert streams never finish by themselves: after this grace period at
            # shutdown uvicorn cancels them (and any other request still running).
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            **tls_options(settings),
        )
        # uvicorn handles SIGTERM/SIGINT with a graceful shutdown, then restores the
        # previous handlers and re-raises the signal; ours make that a clean exit 0.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _note_signal)
        await uvicorn.Server(config).serve()


def _note_signal(signum: int, _frame: FrameType | None) -> None:
    _LOG.info("stopped by %s", signal.Signals(signum).name)


def main() -> None:
    settings = load_settings_or_exit("api")
    try:  # before waiting for anything: a weak token in the file stops start-up at once
        ensure_admin_token(settings.var_dir, settings.admin_token, allow_weak=settings.dev_insecure)
    except WeakTokenError as exc:
        raise SystemExit(f"api: {exc}") from None
    setup_logging(settings)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per InfluxDB query is noise
    _LOG.info("api starting on %s (site %s)", settings.api_base_url, settings.site)
    try:
        tls_options(settings)  # refuse at once, before waiting for InfluxDB
        asyncio.run(serve(settings))
    except TlsFilesMissing as exc:
        _LOG.error("giving up: %s", exc)
        raise SystemExit(1) from None
    except InfluxUnavailable as exc:
        _LOG.error("giving up: %s", exc)
        raise SystemExit(1) from None
    _LOG.info("api stopped")


if __name__ == "__main__":
    main()
