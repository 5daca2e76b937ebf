"""Per-district and per-station limits: validation, per-row arrays, and the engine."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from analytics.engine import Engine
from analytics.thresholds import load_thresholds
from deltasense.contract import Kind, Reading
from deltasense.rulekernels.limits import (
    FloodLimits,
    LightingLimits,
    RowLimits,
    StormLimits,
    row_limits,
)
from deltasense.thresholds import (
    FloodOverride,
    LightingOverride,
    Override,
    StormOverride,
    ThresholdsError,
)

EngineFactory = Callable[..., Engine]  # the make_engine fixture (conftest.py)

MIN = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % MIN


def site_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


LOW_LYING = """
[[overrides]]
district = "p5"
flood = { street_warning_mm = 50.0, street_critical_mm = 200.0 }

[[overrides]]
station = "wl-p5-2"
flood = { street_warning_mm = 90.0, street_critical_mm = 300.0 }

[[overrides]]
station = "ws-coast"
storm = { gust_warning_ms = 20.0, gust_critical_ms = 30.0 }
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[overrides]]\nflood = { street_warning_mm = 50.0, street_critical_mm = 90.0 }',
         "exactly one of district or station"),
        ('[[overrides]]\ndistrict = "p5"\nstation = "x"\n'
         'flood = { street_warning_mm = 50.0, street_critical_mm = 90.0 }',
         "exactly one of district or station"),
        ('[[overrides]]\ndistrict = "P 5"\n'
         'flood = { street_warning_mm = 50.0, street_critical_mm = 90.0 }',
         "is not a district or device id"),
        ('[[overrides]]\ndistrict = "p5"', "sets nothing"),
        ('[[overrides]]\ndistrict = "p5"\nflood = { street_warning_mm = 50.0 }',
         "street_critical_mm: Field required"),
        ('[[overrides]]\ndistrict = "p5"\n'
         'flood = { street_warning_mm = 90.0, street_critical_mm = 50.0 }',
         "below street_critical_mm"),
        ('[[overrides]]\ndistrict = "p5"\nflood = { noise_floor_mm = 5.0 }',
         "noise_floor_mm: Extra inputs are not permitted"),
        ('[[overrides]]\ndistrict = "p5"\nlighting = { power_drift_pct = 2.0 }',
         "power_drift_pct: Input should be greater than 2"),
        ('[[overrides]]\ndistrict = "p5"\n'
         'flood = { street_warning_mm = 15.0, street_critical_mm = 90.0 }',
         "deadband.level_mm must be below every street_warning_mm"),
        ('[[overrides]]\nstation = "a"\nlighting = { power_drift_pct = 8.0 }\n'
         '[[overrides]]\nstation = "a"\nlighting = { power_drift_pct = 9.0 }',
         "two overrides for station 'a'"),
    ],
)  # fmt: skip
def test_bad_overrides_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ThresholdsError, match=r"site\.toml") as info:
        load_thresholds(site_file(tmp_path, text))
    assert message in str(info.value)


def test_row_limits_apply_site_then_district_then_station(tmp_path: Path) -> None:
    t = load_thresholds(site_file(tmp_path, LOW_LYING))
    devices = ["wl-p1-1", "wl-p5-1", "wl-p5-2", "wl-x"]
    districts = ["p1", "p5", "p5", "p5"]
    fl = row_limits(FloodLimits, t, devices, districts)
    assert np.asarray(fl.street_warning_mm).tolist() == [76.0, 50.0, 90.0, 50.0]
    assert np.asarray(fl.street_critical_mm).tolist() == [300.0, 200.0, 300.0, 200.0]
    # no override touches lighting: the site's value, a scalar for every row
    lighting = row_limits(LightingLimits, t, devices, districts)
    assert lighting == LightingLimits(power_drift_pct=t.lighting.power_drift_pct)
    assert isinstance(lighting.power_drift_pct, float)
    with pytest.raises(ValueError, match="one length"):
        row_limits(FloodLimits, t, devices, districts[:2])


@pytest.mark.parametrize(
    ("view", "override"),
    [
        (FloodLimits, FloodOverride),
        (StormLimits, StormOverride),
        (LightingLimits, LightingOverride),
    ],
)
def test_each_row_view_holds_exactly_what_its_override_may_set(
    view: type[RowLimits], override: type[BaseModel]
) -> None:
    assert [f.name for f in dataclasses.fields(view)] == list(override.model_fields)
    assert view.section in Override.model_fields


def water(device: str, district: str, minute: int, level_cm: float) -> Reading:
    return Reading(
        site="s",
        district=district,
        kind=Kind.WATER,
        device=device,
        ts_ms=T0 + minute * MIN,
        seq=minute,
        boot=1,
        fields={"level_cm": level_cm},
    )


def flooded(engine: Engine, minute: int) -> dict[str, str]:
    engine.evaluate(T0 + minute * MIN + 1)
    return {e.subject: e.severity for e in engine.open_alerts() if e.rule == "street-flood"}


def test_the_engine_judges_each_drain_by_its_own_limits(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    engine = make_engine(load_thresholds(site_file(tmp_path, LOW_LYING)))
    # 6 cm everywhere: over p5's 50 mm, under the site's 76 mm and wl-p5-2's 90 mm
    engine.ingest([water(d, dist, 0, 0.0) for d, dist in (("a", "p1"), ("b", "p5"))])
    engine.ingest([water("wl-p5-2", "p5", 0, 0.0)])
    engine.evaluate(T0 + 1)
    batch = [water(d, dist, 1, 6.0) for d, dist in (("a", "p1"), ("b", "p5"), ("wl-p5-2", "p5"))]
    engine.ingest(batch)
    assert flooded(engine, 1) == {"b": "warning"}
    # 25 cm: critical for p5's 200 mm, a warning at the site's limits and wl-p5-2's own
    batch = [water(d, dist, 2, 25.0) for d, dist in (("a", "p1"), ("b", "p5"), ("wl-p5-2", "p5"))]
    engine.ingest(batch)
    assert flooded(engine, 2) == {"a": "warning", "b": "critical", "wl-p5-2": "warning"}


def test_a_drain_added_later_gets_its_district_override(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    engine = make_engine(load_thresholds(site_file(tmp_path, LOW_LYING)))
    engine.ingest([water("a", "p1", 0, 0.0)])
    engine.evaluate(T0 + 1)  # the limits are built for one row
    engine.ingest([water("late", "p5", 1, 0.0), water("a", "p1", 1, 0.0)])
    engine.evaluate(T0 + MIN + 1)
    engine.ingest([water("late", "p5", 2, 6.0), water("a", "p1", 2, 6.0)])
    assert flooded(engine, 2) == {"late": "warning"}


def test_a_gust_limit_per_station(tmp_path: Path, make_engine: EngineFactory) -> None:
    engine = make_engine(load_thresholds(site_file(tmp_path, LOW_LYING)))
    readings = [
        Reading(
            site="s",
            district="p1",
            kind=Kind.WEATHER,
            device=device,
            ts_ms=T0,
            seq=0,
            boot=1,
            fields={"wind_ms": 8.0, "gust_ms": 19.0},
        )
        for device in ("ws-coast", "ws-town")
    ]
    engine.ingest(readings)
    events = engine.evaluate(T0 + 1)
    gusts = {e.subject for e in events if e.rule == "gust" and e.state == "firing"}
    # 19 m/s: over the site's cấp 8 (17.2 m/s), under the coastal station's 20 m/s
    assert gusts == {"ws-town"}
