"""The typhoon backtest's alert events (``run_scenario("typhoon", 1, …)``, 20–100 s of
CPU on this box): what the notifier's typhoon tests replay
(tests/integration/test_notifier_typhoon.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from deltasense.alerts import AlertEvent
from tests import background

MODULE = __name__


def compute() -> list[AlertEvent]:
    from analytics.thresholds import load_thresholds
    from backtest.runner import run_scenario

    return list(run_scenario("typhoon", 1, load_thresholds()).events)


def events() -> list[AlertEvent]:
    """The background job's events, or the backtest run here if there were none."""
    data = background.output(MODULE)
    if data is None:
        return compute()
    return msgspec.msgpack.decode(data, type=list[AlertEvent])


if __name__ == "__main__":
    background.write(Path(sys.argv[1]), msgspec.msgpack.encode(compute()))
