"""``python -m notifier``: run the notifier until SIGTERM.

The routing file is validated before anything starts, so a typo stops the
service with the file and key named instead of leaving someone out.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Any

from pydantic import ValidationError

from deltasense.routing import Routing, RoutingError, load_routing, routing_path
from deltasense.runtime import run_service
from deltasense.settings import ConfigFileError, Settings, load_settings
from notifier.service import ConfigError, check_channels, serve


def main() -> None:
    try:
        settings = load_settings()
        path = routing_path(settings)
        if settings.notifier_routing_file is None and not path.exists():
            routing = Routing()  # nobody to notify yet: run, and say so
            print(f"notifier: no routing file at {path}; nothing will be sent", file=sys.stderr)
        else:
            routing = load_routing(path)
        check_channels(settings, routing)
    except (ConfigFileError, ValidationError, RoutingError, ConfigError) as exc:
        sys.exit(f"notifier: {exc}")

    def service(s: Settings, r: Routing = routing) -> Coroutine[Any, Any, None]:
        return serve(s, r)

    run_service("notifier", service, settings)


if __name__ == "__main__":
    main()
