"""The analytics acceptance, checked on every run of `make test`.

Every labelled scenario, seeds 1–5, through the same engine as the service
(``deltasense backtest-matrix``): storm and flood recall 100 %, precision ≥ 95 %
per alert kind, no flaps, median detection delay within two reporting intervals,
and no alert at all on the hot dry day.  Minutes of CPU: the matrix is made in
the background at idle priority while the rest of the suite runs, and this test
runs last (tests/background.py, tests/jobs/acceptance_matrix.py); run alone, it
makes the matrix itself.  docs/ANALYTICS.md quotes the same table.
"""

from __future__ import annotations

import pytest

from backtest import matrix as bm
from backtest import scenarios
from tests.jobs import acceptance_matrix


@pytest.mark.timeout(1200)
@pytest.mark.background_job(acceptance_matrix.MODULE)
def test_every_scenario_and_seed_meets_the_analytics_acceptance() -> None:
    runs = acceptance_matrix.runs()
    assert len(runs) == len(scenarios.names()) * len(acceptance_matrix.SEEDS)
    assert [(r.scenario, r.seed) for r in runs] == [
        (name, seed) for name in scenarios.names() for seed in acceptance_matrix.SEEDS
    ]
    # the quiet day ran and raised nothing; the storm scenarios had events to find
    assert {r.total_alerts for r in runs if r.scenario == bm.QUIET_SCENARIO} == {0}
    assert all(r.kinds["flood"]["events"] > 0 for r in runs if r.scenario == "typhoon")
    failed = [f"{v.criterion}: {v.detail}" for v in bm.acceptance(runs) if not v.met]
    assert failed == [], "\n" + bm.markdown(runs)
