"""Analytics holds decoded telemetry out of the windows until it evaluates
(``AnalyticsService.take`` / ``flush``): what an evaluation sees, the order against
status messages, and each reading's own arrival time, on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from analytics import service as service_mod
from analytics.engine import Engine
from analytics.registry import ONLINE
from analytics.service import HOLD_MAX_READINGS, AnalyticsService
from deltasense.contract import Kind, Reading
from deltasense.influx import InfluxClient
from deltasense.settings import Settings

SITE = "s"
T0 = 1_780_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(service_mod, "now_ms", clock)
    return clock


@pytest.fixture
def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> AnalyticsService:
    monkeypatch.chdir(tmp_path)
    return AnalyticsService(
        Settings(site=SITE, analytics_metrics_port=0), make_engine(), cast(InfluxClient, None)
    )


def _water(device: str, ts: int, level_cm: float, seq: int = 1) -> tuple[str, bytes]:
    body = f'{{"ts":{ts},"seq":{seq},"boot":1,"level_cm":{level_cm}}}'
    return f"{SITE}/phuong-1/water/{device}/tele", body.encode()


def _levels(service: AnalyticsService) -> int:
    """How many level values the water window holds."""
    return int(np.count_nonzero(~np.isnan(service.engine.water.series("level_cm"))))


def test_taken_readings_wait_out_of_the_windows_until_an_evaluation_flushes_them(
    service: AnalyticsService, clock: Clock
) -> None:
    assert service.take([_water("d1", T0 - 1_000, 2.0), _water("d2", T0 - 1_000, 3.0)]) == 2
    assert _levels(service) == 0  # held: no NumPy insert for a handful of messages
    clock.ms += 100
    assert service.take([_water("d3", T0, 1.0)]) == 1
    assert _levels(service) == 0
    service.evaluate()  # what the rules judge includes every reading taken so far
    assert _levels(service) == 3
    service.evaluate()  # nothing held: a second flush adds nothing
    assert _levels(service) == 3


def test_a_status_message_lands_after_the_readings_taken_before_it(
    service: AnalyticsService, clock: Clock
) -> None:
    """The goodbye of drain-1 comes after its reading, and drain-2's reading after its
    goodbye: held readings go in before any other message is applied."""
    service.take([_water("drain-1", T0 - 2_000, 2.0)])
    service.take(
        [
            (f"{SITE}/phuong-1/water/drain-1/status", b'{"state":"offline","ts":%d}' % T0),
            (f"{SITE}/phuong-1/water/drain-2/status", b'{"state":"offline","ts":%d}' % T0),
            _water("drain-2", T0, 1.0),
        ]
    )
    assert _levels(service) == 1  # drain-1's reading went in before its goodbye
    service.flush()
    reg = service.engine.registry
    assert reg.status[reg.row("drain-1", "phuong-1", "water")] != ONLINE
    assert reg.status[reg.row("drain-2", "phuong-1", "water")] == ONLINE


def test_each_held_reading_keeps_the_arrival_time_of_its_own_wake_up(
    service: AnalyticsService, clock: Clock
) -> None:
    """Clock skew is device time against arrival: a reading taken at T0 and one taken
    5 s later, flushed together, are each judged against their own arrival."""
    service.take([_water("d1", T0, 2.0)])  # on time
    clock.ms += 5_000
    service.take([_water("d2", T0 - 60_000, 2.0)])  # a minute behind its arrival
    service.flush()
    reg = service.engine.registry
    assert reg.skew_s[reg.row("d1", "phuong-1", "water")] == pytest.approx(0.0)
    assert reg.skew_s[reg.row("d2", "phuong-1", "water")] == pytest.approx(-65.0)
    assert reg.last_seen[reg.row("d1", "phuong-1", "water")] == T0
    assert reg.last_seen[reg.row("d2", "phuong-1", "water")] == T0 + 5_000


def test_what_is_held_is_bounded(service: AnalyticsService, clock: Clock) -> None:
    messages = [_water(f"d{i}", T0, 1.0) for i in range(HOLD_MAX_READINGS - 1)]
    service.take(messages)
    assert _levels(service) == 0
    # The bound is checked message by message, not once per call.
    service.take([_water("last", T0, 1.0), _water("over", T0, 1.0)])
    assert _levels(service) == HOLD_MAX_READINGS  # flushed when the bound was reached
    service.flush()
    assert _levels(service) == HOLD_MAX_READINGS + 1


def test_handle_many_leaves_nothing_held(service: AnalyticsService, clock: Clock) -> None:
    assert service.handle_many([_water("d1", T0, 2.0), _water("d2", T0, 3.0)]) == 2
    assert _levels(service) == 2


def test_arrival_times_must_match_the_readings(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    reading = Reading(
        site=SITE,
        district="phuong-1",
        kind=Kind.WATER,
        device="d1",
        ts_ms=T0,
        seq=1,
        boot=1,
        fields={"level_cm": 1.0},
    )
    with pytest.raises(ValueError, match="2 arrival times for 1 readings"):
        engine.ingest([reading], arrival_ms=[T0, T0])
