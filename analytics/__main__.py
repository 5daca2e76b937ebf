"""``python -m analytics``: run the analytics service until SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Any

from pydantic import ValidationError

from analytics.service import run
from analytics.thresholds import load_thresholds
from deltasense.runtime import run_service
from deltasense.settings import ConfigFileError, Settings, load_settings
from deltasense.thresholds import Thresholds, ThresholdsError


def main() -> None:
    try:
        settings = load_settings()
        # Validated before anything starts, so a bad file stops us with its key named.
        thresholds = load_thresholds(settings.thresholds_file)
    except (ConfigFileError, ValidationError, ThresholdsError) as exc:
        sys.exit(f"analytics: {exc}")

    def service(s: Settings, t: Thresholds = thresholds) -> Coroutine[Any, Any, None]:
        return run(s, thresholds=t)

    run_service("analytics", service, settings)


if __name__ == "__main__":
    main()
