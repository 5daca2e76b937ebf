"""`python -m bench`: run every benchmark and print a report."""

from __future__ import annotations

import platform
import sys

from bench import (
    alert_e2e,
    analytics_consume,
    analytics_tick,
    console_paint,
    ingest_decode,
    ingest_e2e,
    mqtt_reads,
)


def main() -> None:
    print(
        f"# DeltaSense benchmarks — {platform.processor() or platform.machine()}, "
        f"Python {sys.version.split()[0]}, {platform.system()} {platform.release()}"
    )
    ingest_decode.main()
    analytics_tick.main()
    analytics_consume.main()
    mqtt_reads.main([])
    print()
    ingest_e2e.main([], command="python -m bench")
    print()
    alert_e2e.main([], command="python -m bench")
    console_paint.main([], command="python -m bench")


if __name__ == "__main__":
    main()
