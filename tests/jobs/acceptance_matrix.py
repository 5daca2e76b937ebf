"""The analytics acceptance matrix: every labelled scenario, seeds 1–5, through the
same engine as the service (``deltasense backtest-matrix``), in two worker
processes.  tests/acceptance/test_analytics_acceptance.py judges the runs."""

from __future__ import annotations

from backtest import matrix as bm
from backtest import scenarios
from tests import background

SEEDS = (1, 2, 3, 4, 5)
MODULE = __name__


def compute() -> list[bm.Run]:
    return bm.run_matrix(scenarios.names(), SEEDS, thresholds_file=None, site="baclieu", jobs=2)


def runs() -> list[bm.Run]:
    """The background job's runs, or the matrix run here if there were none."""
    return background.result(MODULE, compute, list[bm.Run])


if __name__ == "__main__":
    background.serve(compute)
