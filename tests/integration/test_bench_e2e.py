"""The end-to-end ingest bench runs: its quick mode's smallest configuration
(single-reading messages, DeltaSense and the bare subscriber) on a broker and
database of its own.  No timing assertions: CI proves the harness, not speed."""

from __future__ import annotations

import pytest

from bench import ingest_e2e
from bench.e2e import report


@pytest.mark.timeout(300)
def test_quick_smoke_configuration_measures_deltasense_and_the_bare_subscriber() -> None:
    config = ingest_e2e.parse(ingest_e2e.SMOKE_ARGS)
    results = ingest_e2e.run(config, out=False)
    runs = {r.peer: r for r in results.runs}
    assert set(runs) == {"subscriber", "deltasense"}
    for r in runs.values():
        assert r.acked > 0 and r.stored > 0 and r.stored_per_s > 0, r
    # PUBACK only after the write: what the broker acknowledged is stored.
    assert runs["deltasense"].lost == 0, runs["deltasense"]
    assert all(c.points_per_s > 0 for c in results.ceilings)
    table = report.render(results, list(config.rates))
    assert "| deltasense | " in table and "| subscriber | " in table
