"""The street-flood rule on hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.rules import messages
from deltasense.lifecycle import MessageContext
from deltasense.rulekernels import flood
from deltasense.rulekernels.base import RuleResult
from deltasense.rulekernels.limits import FloodLimits
from deltasense.thresholds import Thresholds


def site_limits(t: Thresholds) -> FloodLimits:
    return FloodLimits(t.flood.street_warning_mm, t.flood.street_critical_mm)


def evaluate(
    t: Thresholds, levels_cm: list[float], excluded: list[bool] | None = None
) -> RuleResult:
    skip = excluded if excluded is not None else [False] * len(levels_cm)
    return flood.street_flood(
        levels_cm,
        excluded=skip,
        flood=t.flood,
        limits=site_limits(t),
        deadband_mm=t.alerting.deadband.level_mm,
    )


def test_shipped_limits_are_the_reference_ones(thresholds: Thresholds) -> None:
    FLOOD = thresholds.flood
    DEADBAND = thresholds.alerting.deadband.level_mm  # 20 mm
    assert (FLOOD.street_warning_mm, FLOOD.street_critical_mm, FLOOD.noise_floor_mm) == (
        76,
        300,
        10,
    )
    assert DEADBAND == 20


def test_depth_severity_and_conditions(thresholds: Thresholds) -> None:
    #          dry   noise  below  at warn  between  at crit  way over
    levels = [-5.0, 1.0, 7.5, 7.6, 15.0, 30.0, 80.0]
    r = evaluate(thresholds, levels)
    np.testing.assert_allclose(r.values["depth_mm"], [0, 0, 75, 76, 150, 300, 800], rtol=1e-6)
    assert r.condition.tolist() == [False, False, False, True, True, True, True]
    assert r.severity.tolist() == [0, 0, 0, 1, 1, 2, 2]
    # clear only below 76 − 20 = 56 mm
    assert r.clear.tolist() == [True, True, False, False, False, False, False]
    assert r.values["depth_mm"].dtype == np.float32 and r.severity.dtype == np.int8


def test_noise_floor_is_inclusive(thresholds: Thresholds) -> None:
    r = evaluate(thresholds, [1.0, 1.1])
    assert r.values["depth_mm"][0] == 0.0  # 10 mm ≤ noise floor → dry
    assert r.values["depth_mm"][1] == pytest.approx(11.0)


def test_deadband_edges(thresholds: Thresholds) -> None:
    r = evaluate(thresholds, [5.5, 5.6, 5.61, 7.59])
    # 55 mm clears; 56 mm (= warning − deadband) does not; neither is a condition
    assert r.clear.tolist() == [True, False, False, False]
    assert not r.condition.any()


def test_nan_holds_state_and_excluded_clears(thresholds: Thresholds) -> None:
    r = evaluate(thresholds, [np.nan, 50.0, 50.0], excluded=[False, True, False])
    assert r.condition.tolist() == [False, False, True]
    assert r.clear.tolist() == [False, True, False]  # NaN: neither; canal station: clear
    assert r.severity.tolist() == [0, 0, 2]
    assert np.isnan(r.values["depth_mm"][:2]).all()


def test_empty_and_mismatched_inputs(thresholds: Thresholds) -> None:
    FLOOD = thresholds.flood
    DEADBAND = thresholds.alerting.deadband.level_mm  # 20 mm
    r = evaluate(thresholds, [])
    assert r.condition.size == 0
    with pytest.raises(ValueError):
        flood.street_flood(
            [1.0, 2.0],
            excluded=[False],
            flood=FLOOD,
            limits=site_limits(thresholds),
            deadband_mm=DEADBAND,
        )


def test_messages_in_vietnamese_and_english() -> None:
    ctx = MessageContext(
        subject="drain-x",
        district="phuong-1",
        severity="warning",
        state="firing",
        values={"depth_mm": 120.0},
    )
    m = messages.street_flood(ctx)
    assert m.vi == "Ngập đường: mực nước 12 cm tại drain-x (Phường 1)"
    assert m.en == "Street flooding: 12 cm of water at drain-x (Phường 1)"
    severe = messages.street_flood(
        MessageContext("drain-x", "phuong-1", "critical", "firing", {"depth_mm": 305.0})
    )
    assert severe.vi == "Ngập đường nghiêm trọng: mực nước 30,5 cm tại drain-x (Phường 1)"
    assert severe.en.startswith("Severe street flooding: 30.5 cm")
    over = messages.street_flood(MessageContext("drain-x", "phuong-1", "warning", "resolved", {}))
    assert over.vi == "Hết ngập đường tại drain-x (Phường 1)"
    assert over.en == "Street flooding over at drain-x (Phường 1)"


# --- noise handling, rise, canals, districts, compound ------------------------------------
def test_impossible_rise_is_dropped_but_a_real_one_returns(thresholds: Thresholds) -> None:
    FLOOD = thresholds.flood
    latest = np.asarray([40.0, 40.0, 40.0, 12.0], np.float32)
    prev = np.asarray([0.0, 0.0, np.nan, 0.0], np.float32)
    gap = np.asarray([1.0, 2.0, np.nan, 0.0], np.float32)
    # The rate test alone (the 250 mm jump hold, tested below, set out of the way)
    rate_only = FLOOD.model_copy(update={"spike_jump_mm": 1000.0})
    got = flood.plausible_latest(latest, prev, gap, rate_only)
    # 400 mm in 1 min: noise; in 2 min: 200 mm/min, fine; no previous: fine; 120 mm: fine
    assert np.isnan(got[0]) and got[1:].tolist() == [40.0, 40.0, 12.0]


def test_big_jump_is_held_until_the_next_reading_confirms_it(thresholds: Thresholds) -> None:
    FLOOD = thresholds.flood
    # A 5-min drain: 0 → 45 cm in one step is held however long the step; the next
    # reading is compared with the held one, so a real rise (46 cm) is then kept and a
    # spike's return to dry reads dry.  No previous reading: judged as is.
    latest = np.asarray([45.0, 46.0, 0.0, 45.0, 20.0, 45.0], np.float32)
    prev = np.asarray([0.0, 45.0, 45.0, np.nan, 0.0, 24.0], np.float32)
    gap = np.asarray([5.0, 1.0, 5.0, np.nan, 5.0, 5.0], np.float32)
    got = flood.plausible_latest(latest, prev, gap, FLOOD)
    assert FLOOD.spike_jump_mm == 250
    assert np.isnan(got[0])
    assert got[1:].tolist() == [46.0, 0.0, 45.0, 20.0, 45.0]  # 200 and 210 mm: plausible


def test_clean_depth_removes_single_spikes_and_keeps_steps(thresholds: Thresholds) -> None:
    FLOOD = thresholds.flood
    level = np.zeros((3, 15), np.float32)
    level[0, 7] = 30.0  # one 300 mm spike
    level[1, 7:] = 15.0  # a real step up
    level[2, 7] = np.nan
    depth = flood.clean_depth(level, FLOOD)
    assert np.isnan(depth[0, 7]) and np.nansum(depth[0]) == 0
    assert (depth[1, 8:] == 150).all()
    assert np.isnan(depth[2, 7]) and (depth[2, :7] == 0).all()


def test_rise_rate_and_time_to_the_next_limit(thresholds: Thresholds) -> None:
    FLOOD = thresholds.flood
    from deltasense.rulekernels.base import linear_fit

    minutes = np.arange(15, dtype=np.float32)
    depth = np.stack([20 + 6 * minutes, 20 + 0 * minutes, np.full(15, np.nan)]).astype(np.float32)
    slope, fitted = linear_fit(depth)
    assert slope[0] == pytest.approx(6.0) and fitted[0] == pytest.approx(104.0)
    r = flood.rise_rule(
        depth[:, -1],
        slope,
        fitted,
        excluded=np.zeros(3, bool),
        flood=FLOOD,
        limits=site_limits(thresholds),
    )
    assert r.condition.tolist() == [True, False, False]  # 30 mm per 5 min ≥ 25
    # next limit from 104 mm is critical (300 mm): (300 − 104) / 6 ≈ 32.7 min
    assert r.values["minutes_to_next_limit"][0] == pytest.approx(196 / 6, abs=0.01)


def test_canal_against_alarm_levels_with_placeholders_unused() -> None:
    level = np.asarray([230.0, 150.0, 219.0, 230.0], np.float32)
    bd = np.asarray([[np.nan, np.nan, 2.2]] * 3 + [[np.nan] * 3], np.float32)
    r = flood.canal_rule(level, bd, deadband_mm=20.0)
    assert r.condition.tolist() == [True, False, False, False]
    assert r.risk is not None and r.risk[0] == 3 and r.severity[0] == 2
    assert r.clear.tolist() == [False, True, False, True]  # 2.19 m inside the deadband
    levels = np.asarray([[1.5, 1.8, 2.2]], np.float32)
    assert flood.canal_rule(np.asarray([185.0], np.float32), levels, 20.0).risk.tolist() == [2]  # type: ignore[union-attr]


def test_district_roll_up_needs_more_than_one_drain(thresholds: Thresholds) -> None:
    FLOOD = thresholds.flood
    flooded = np.asarray([1, 2, 2, 0], np.int64)
    critical = np.asarray([1, 0, 1, 0], np.int64)
    drains = np.asarray([1, 10, 3, 4], np.int64)
    canal = np.asarray([0, 0, 0, 3], np.int8)
    r = flood.district_rule(flooded, critical, drains, canal, FLOOD)
    assert r.condition.tolist() == [False, True, True, True]
    assert r.risk is not None and r.risk.tolist() == [1, 1, 2, 3]
    # Hysteresis on the count: fires at 2 drains, holds while one still floods.
    assert r.clear.tolist() == [False, False, False, False]
    dry = flood.district_rule(
        np.asarray([1, 0, 0], np.int64),
        np.zeros(3, np.int64),
        np.full(3, 3, np.int64),
        np.asarray([0, 0, 1], np.int8),
        FLOOD,
    )
    assert dry.condition.tolist() == [False, False, True]
    assert dry.clear.tolist() == [False, True, False]


def test_compound_rain_on_high_water(thresholds: Thresholds) -> None:
    FLOOD = thresholds.flood
    rain = np.asarray([10.0, 10.0, 2.0, 10.0], np.float32)
    margin = np.asarray([-0.2, -0.5, 0.0, np.nan], np.float32)
    wet = np.asarray([True, False, False, False])
    r = flood.compound_rule(rain, margin, wet, heavy_mm_h=7.6, flood=FLOOD)
    assert r.condition.tolist() == [True, False, False, False]
    assert r.severity[0] == 2  # street water already there


def test_messages_name_the_ward_as_operators_say_it() -> None:
    ward = messages.titled("Ngập lụt khu vực", "District flooding")
    own = ward(MessageContext("hiep-thanh", "hiep-thanh", "warning", "firing", {}))
    assert own.vi == "Ngập lụt khu vực tại xã Hiệp Thành"
    assert own.en == "District flooding at xã Hiệp Thành"
    assert "hiep-thanh" not in own.vi + own.en
    device = messages.street_flood(MessageContext("drain-x", "nha-mat", "warning", "resolved", {}))
    assert device.en == "Street flooding over at drain-x (Nhà Mát)"
    unlisted = messages.street_flood(
        MessageContext("drain-x", "new-ward", "warning", "resolved", {})
    )
    assert unlisted.en == "Street flooding over at drain-x (new-ward)"  # an unknown id as it is
