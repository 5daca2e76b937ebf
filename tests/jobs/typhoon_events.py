"""The typhoon backtest's alert events (``run_scenario("typhoon", 1, …)``, 20–100 s of
CPU on this box): what the notifier's typhoon tests replay
(tests/integration/test_notifier_typhoon.py)."""

from __future__ import annotations

from deltasense.alerts import AlertEvent
from tests import background

MODULE = __name__


def compute() -> list[AlertEvent]:
    from analytics.thresholds import load_thresholds
    from backtest.runner import run_scenario

    return list(run_scenario("typhoon", 1, load_thresholds()).events)


def events() -> list[AlertEvent]:
    """The background job's events, or the backtest run here if there were none."""
    return background.result(MODULE, compute, list[AlertEvent])


if __name__ == "__main__":
    background.serve(compute)
