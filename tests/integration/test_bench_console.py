"""The console benchmark's harness at a small size (300 devices, one round): the API
over InfluxDB seeded, a signed-in chromium, both performance marks read.  No timing
assertions: CI proves the harness (the console's sign-in changing broke it once),
`make bench` measures."""

from __future__ import annotations

import pytest

from bench import console_paint


@pytest.mark.timeout(180)
def test_the_console_benchmark_reads_its_marks_at_a_small_size() -> None:
    cfg = console_paint.parse(["--devices", "300", "--alerts", "10", "--rounds", "1"])
    result = console_paint.run(cfg, command="smoke")
    assert len(result.paint_ms) == 1 and result.paint_ms[0] > 0
    assert len(result.chart_ms) == 1 and result.chart_ms[0] > 0
    drawn = result.map_drawn
    assert drawn["markers"] == 300 and drawn["clustered"] == "true"
    assert 0 < drawn["drawn"] < 300  # clusters, not one marker per device
