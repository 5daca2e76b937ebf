"""``python -m ingest``: run the ingest service with settings from the environment."""

from __future__ import annotations

import logging

from deltasense.runtime import run_service, start_metrics_server
from deltasense.settings import Settings, load_settings_or_exit
from ingest.service import serve


async def _main(settings: Settings) -> None:
    start_metrics_server(
        settings.ingest_worker_metrics_port, logging.getLogger("ingest"), settings.metrics_host
    )
    await serve(settings)


def main() -> None:
    run_service("ingest", _main, load_settings_or_exit("ingest"))


if __name__ == "__main__":
    main()
