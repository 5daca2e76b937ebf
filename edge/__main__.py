"""``python -m edge``: run the gateway with settings from the environment (and TOML).

Bad settings stop it with a message naming the key and exit code 2 (systemd's
``RestartPreventExitStatus=2`` then stops retrying a gateway that cannot work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from pydantic import ValidationError

from deltasense.runtime import now_ms, start_metrics_server
from deltasense.settings import ConfigFileError
from deltasense.thresholds import ThresholdsError
from edge.gateway import rule_thresholds, serve
from edge.settings import EdgeSettings, load_edge_settings
from edge.spool import Spool

_LOG = logging.getLogger("edge")


def settings_problem(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors()
    )


async def _until_signalled(settings: EdgeSettings) -> None:
    task = asyncio.ensure_future(serve(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run(settings: EdgeSettings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _LOG.info("edge gateway starting (site %s, district %s)", settings.site, settings.district)
    start_metrics_server(settings.metrics_port, _LOG, settings.metrics_host)
    asyncio.run(_until_signalled(settings))
    _LOG.info("edge gateway stopped")


def spool_status() -> tuple[int, str]:
    """The spool's state as the gateway's status reports it, read from its file
    (the gateway may be running: WAL lets a reader in)."""
    try:
        settings = load_edge_settings()
    except ConfigFileError as exc:
        return 2, f"error: configuration file: {exc}"
    except ValidationError as exc:
        return 2, f"error: invalid edge settings ({settings_problem(exc)})"
    path = settings.spool_file
    if not path.exists():
        return 1, f"no spool at {path} (the gateway has not run here)"
    spool = Spool(
        path,
        max_bytes=settings.spool_max_bytes,
        max_age_ms=settings.spool_max_age_s * 1000,
        policy=settings.spool_full_policy,
        clock=now_ms,
    )
    try:
        st = spool.stats()
    finally:
        spool.close()
    age = "-" if st.oldest_ms is None else f"{(now_ms() - st.oldest_ms) / 1000:.0f} s"
    drops = ", ".join(f"{r.value} {n}" for r, n in st.dropped.items())
    return 0, (
        f"spool {path}: {st.records} records, {st.bytes} of {settings.spool_max_bytes} bytes, "
        f"oldest {age}; dropped {drops}; superseded {st.superseded}; "
        f"policy {settings.spool_full_policy.value}"
    )


def main() -> int:
    try:
        settings = load_edge_settings()
    except ConfigFileError as exc:
        print(f"error: configuration file: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: invalid edge settings ({settings_problem(exc)})", file=sys.stderr)
        return 2
    try:
        # The rule thresholds are checked before anything runs, like the settings.
        rule_thresholds(settings)
    except ThresholdsError as exc:
        print(f"error: thresholds: {exc}", file=sys.stderr)
        return 2
    run(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
