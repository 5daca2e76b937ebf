"""The street-flood rule on hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.lifecycle import MessageContext
from analytics.rules import flood
from analytics.thresholds import Flood, load_thresholds

T = load_thresholds()
FLOOD: Flood = T.flood
DEADBAND = T.alerting.deadband.level_mm  # 20 mm


def evaluate(levels_cm: list[float], excluded: list[bool] | None = None) -> flood.FloodEval:
    skip = excluded if excluded is not None else [False] * len(levels_cm)
    return flood.street_flood(levels_cm, excluded=skip, flood=FLOOD, deadband_mm=DEADBAND)


def test_shipped_limits_are_the_reference_ones() -> None:
    assert (FLOOD.street_warning_mm, FLOOD.street_critical_mm, FLOOD.noise_floor_mm) == (
        76,
        300,
        10,
    )
    assert DEADBAND == 20


def test_depth_severity_and_conditions() -> None:
    #          dry   noise  below  at warn  between  at crit  way over
    levels = [-5.0, 1.0, 7.5, 7.6, 15.0, 30.0, 80.0]
    r = evaluate(levels)
    np.testing.assert_allclose(r.depth_mm, [0, 0, 75, 76, 150, 300, 800], rtol=1e-6)
    assert r.condition.tolist() == [False, False, False, True, True, True, True]
    assert r.severity.tolist() == [0, 0, 0, 1, 1, 2, 2]
    # clear only below 76 − 20 = 56 mm
    assert r.clear.tolist() == [True, True, False, False, False, False, False]
    assert r.depth_mm.dtype == np.float32 and r.severity.dtype == np.int8


def test_noise_floor_is_inclusive() -> None:
    r = evaluate([1.0, 1.1])
    assert r.depth_mm[0] == 0.0  # 10 mm ≤ noise floor → dry
    assert r.depth_mm[1] == pytest.approx(11.0)


def test_deadband_edges() -> None:
    r = evaluate([5.5, 5.6, 5.61, 7.59])
    # 55 mm clears; 56 mm (= warning − deadband) does not; neither is a condition
    assert r.clear.tolist() == [True, False, False, False]
    assert not r.condition.any()


def test_nan_holds_state_and_excluded_clears() -> None:
    r = evaluate([np.nan, 50.0, 50.0], excluded=[False, True, False])
    assert r.condition.tolist() == [False, False, True]
    assert r.clear.tolist() == [False, True, False]  # NaN: neither; canal station: clear
    assert r.severity.tolist() == [0, 0, 2]
    assert np.isnan(r.depth_mm[:2]).all()


def test_empty_and_mismatched_inputs() -> None:
    r = evaluate([])
    assert r.condition.size == 0
    with pytest.raises(ValueError):
        flood.street_flood([1.0, 2.0], excluded=[False], flood=FLOOD, deadband_mm=DEADBAND)


def test_messages_in_vietnamese_and_english() -> None:
    ctx = MessageContext(
        subject="drain-x",
        district="phuong-1",
        severity="warning",
        state="firing",
        values={"depth_mm": 120.0},
    )
    m = flood.message(ctx)
    assert m.vi == "Ngập đường: mực nước 12 cm tại drain-x (phuong-1)"
    assert m.en == "Street flooding: 12 cm of water at drain-x (phuong-1)"
    severe = flood.message(
        MessageContext("drain-x", "phuong-1", "critical", "firing", {"depth_mm": 305.0})
    )
    assert severe.vi == "Ngập đường nghiêm trọng: mực nước 30,5 cm tại drain-x (phuong-1)"
    assert severe.en.startswith("Severe street flooding: 30.5 cm")
    over = flood.message(MessageContext("drain-x", "phuong-1", "warning", "resolved", {}))
    assert over.vi == "Hết ngập đường tại drain-x (phuong-1)"
    assert over.en == "Street flooding over at drain-x (phuong-1)"
