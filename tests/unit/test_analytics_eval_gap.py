"""Evaluations that water readings trigger are at most one per ``analytics_eval_gap_s``.

A stream of small batches evaluated after each one (about 12 ms per evaluation) and
analytics fell 17–113 s behind at 1 000–2 000 msg/s (docs/BENCHMARKS.md, "Publish →
alert on SSE").  The first reading after a quiet spell is still judged at once, one
inside the gap within the gap, and a backlog still at least every
``EVAL_EVERY_MESSAGES`` messages.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from analytics.engine import Engine
from analytics.service import EVAL_EVERY_MESSAGES, AnalyticsService
from deltasense.influx import InfluxClient
from deltasense.settings import Settings


def _service(make_engine: Callable[..., Engine], gap_s: float) -> tuple[AnalyticsService, list]:
    service = AnalyticsService(
        Settings(site="s", analytics_metrics_port=0, analytics_eval_gap_s=gap_s),
        make_engine(),
        cast(InfluxClient, None),
    )
    evaluations: list[float] = []
    real = service.evaluate

    def counted() -> None:
        evaluations.append(time.monotonic())
        real()

    service.evaluate = counted  # type: ignore[method-assign]
    return service, evaluations


async def test_a_stream_of_small_batches_is_evaluated_once_per_gap_and_none_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> None:
    monkeypatch.chdir(tmp_path)
    service, evaluations = _service(make_engine, gap_s=0.2)
    soon = asyncio.create_task(service._evaluate_soon())
    try:
        service._water_arrived(1)  # after a quiet spell: at once
        assert len(evaluations) == 1
        started = time.monotonic()
        while time.monotonic() - started < 1.0:  # 4 small batches every 10 ms for 1 s
            service._water_arrived(4)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the last batch's evaluation, within the gap
        assert not service._eval_soon.is_set()
    finally:
        soon.cancel()
        with pytest.raises(asyncio.CancelledError):
            await soon
    # 1 s at one per 0.2 s: 5–7 evaluations (one at once, then one per gap), not ~100
    assert 5 <= len(evaluations) <= 8, len(evaluations)
    gaps = [b - a for a, b in itertools.pairwise(evaluations)]
    assert min(gaps) >= 0.19, gaps


async def test_a_backlog_is_evaluated_every_chunk_even_inside_the_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> None:
    monkeypatch.chdir(tmp_path)
    service, evaluations = _service(make_engine, gap_s=5.0)
    service._water_arrived(1)
    for _ in range(3):
        service._water_arrived(EVAL_EVERY_MESSAGES)
    assert len(evaluations) == 4  # the gap does not hold back a backlog


async def test_a_gap_of_zero_evaluates_after_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> None:
    monkeypatch.chdir(tmp_path)
    service, evaluations = _service(make_engine, gap_s=0.0)
    for _ in range(10):
        service._water_arrived(1)
    assert len(evaluations) == 10
