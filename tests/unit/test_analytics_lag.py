"""Analytics' consumer lag (``deltasense_analytics_lag_seconds``): the median over a
batch of telemetry messages of (taken in − the reading's own ts), live device-stamped
readings only, on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import REGISTRY

from analytics import service as service_mod
from analytics.engine import Engine
from analytics.service import AnalyticsService, batch_lag_s
from deltasense.influx import InfluxClient
from deltasense.settings import Settings

SITE = "s"
T0 = 1_780_000_000_000
LAG = "deltasense_analytics_lag_seconds"


def _lag() -> float | None:
    return REGISTRY.get_sample_value(LAG)


@pytest.fixture
def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> AnalyticsService:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(service_mod, "now_ms", lambda: T0)  # the batch is taken in at T0
    return AnalyticsService(
        Settings(site=SITE, analytics_metrics_port=0), make_engine(), cast(InfluxClient, None)
    )


def _tele(device: str, body: str) -> tuple[str, bytes]:
    return f"{SITE}/phuong-1/water/{device}/tele", body.encode()


def test_the_lag_is_the_median_over_the_batch_of_now_minus_the_newest_live_ts(
    service: AnalyticsService,
) -> None:
    batch = [
        _tele("d1", f'{{"ts":{T0 - 2_000},"seq":1,"boot":1,"level_cm":1.0}}'),
        # a batch message counts once, by its newest reading (3 s behind, not 9)
        _tele(
            "d2",
            f'[{{"ts":{T0 - 9_000},"seq":1,"boot":1,"level_cm":1.0}},'
            f'{{"ts":{T0 - 3_000},"seq":2,"boot":1,"level_cm":1.0}}]',
        ),
        # a device with a wrong clock (a day behind) does not make the batch's lag
        _tele("d3", f'{{"ts":{T0 - 86_400_000},"seq":1,"boot":1,"level_cm":1.0}}'),
        _tele("d4", f'{{"ts":{T0 - 5_000},"seq":1,"boot":1,"level_cm":1.0}}'),
        # not judged: history sent late on purpose, and a reading the platform stamped
        _tele("d5", f'{{"ts":{T0 - 600_000},"seq":1,"boot":1,"hist":true,"level_cm":1.0}}'),
        _tele("d6", '{"seq":1,"boot":1,"level_cm":1.0}'),
        (f"{SITE}/phuong-1/water/d1/status", b'{"state":"online"}'),  # not telemetry
    ]
    assert service.handle_many(batch) == 7
    # medians of 2, 3, 5 and 86 400 s behind: (3 + 5) / 2
    assert _lag() == pytest.approx(4.0)


def test_a_batch_without_live_readings_leaves_the_last_lag(service: AnalyticsService) -> None:
    service.handle(*_tele("d1", f'{{"ts":{T0 - 1_500},"seq":1,"boot":1,"level_cm":1.0}}'))
    assert _lag() == pytest.approx(1.5)
    service.handle(*_tele("d2", '{"seq":1,"boot":1,"level_cm":1.0}'))
    service.handle(*_tele("d3", "{not json"))
    assert _lag() == pytest.approx(1.5)


def test_batch_lag_of_nothing_is_none_and_a_reading_ahead_is_negative() -> None:
    assert batch_lag_s([], T0) is None
    assert batch_lag_s([T0 + 250], T0) == pytest.approx(-0.25)
    assert batch_lag_s([T0 - 1_000, T0 - 2_000, T0 - 60_000], T0) == pytest.approx(2.0)
