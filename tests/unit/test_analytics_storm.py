"""Storm rules on hand-built arrays: cấp scale, gusts, squalls, pressure tendency, gust
front, city-wide risk with N of M stations; gaps and NaN hold state."""

from __future__ import annotations

import numpy as np
import pytest

from deltasense.rulekernels import storm
from deltasense.rulekernels.base import RuleResult
from deltasense.rulekernels.limits import StormLimits
from deltasense.thresholds import Thresholds

NAN = np.nan
HOUR = 3_600_000


def f32(*rows: list[float]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize(
    ("wind", "cap"),
    [(0.0, 0), (10.7, 0), (10.8, 6), (13.9, 7), (17.1, 7), (17.2, 8), (20.8, 9), (24.4, 9),
     (24.5, 10), (28.5, 11), (32.7, 12), (60.0, 12), (NAN, 0)],
)  # fmt: skip
def test_wind_cap_follows_decision_18_2021(wind: float, cap: int, thresholds: Thresholds) -> None:
    S = thresholds.storm
    assert storm.wind_cap(np.asarray([wind], np.float32), S)[0] == cap


def test_wind_rule_severity_risk_and_deadband(thresholds: Thresholds) -> None:
    S = thresholds.storm
    mean = np.asarray([5.0, 11.0, 18.0, 25.0, 33.0, 10.0, 9.7, NAN], np.float32)
    r = storm.wind_rule(mean, S, deadband_ms=1.0)
    assert r.condition.tolist() == [False, True, True, True, True, False, False, False]
    assert r.severity[:5].tolist() == [0, 1, 2, 2, 2]  # depression warning, storm critical
    assert r.risk is not None and r.risk[1:5].tolist() == [3, 3, 4, 5]
    # 10.0 m/s sits inside the deadband (10.8 − 1): neither fires nor clears
    assert r.clear.tolist() == [True, False, False, False, False, False, True, False]


def test_ten_minute_mean_ignores_gaps() -> None:
    wind = f32([NAN] * 5 + [12.0] * 5, [NAN] * 10)
    mean = storm.ten_minute_mean(wind, 10, 1.0)
    assert mean[0] == pytest.approx(12.0) and np.isnan(mean[1])


def test_gust_limits(thresholds: Thresholds) -> None:
    S = thresholds.storm
    limits = StormLimits(S.gust_warning_ms, S.gust_critical_ms)
    r = storm.gust_rule(np.asarray([10.0, 17.2, 26.0, 16.5, NAN], np.float32), limits, 1.0)
    assert r.condition.tolist() == [False, True, True, False, False]
    assert r.severity.tolist() == [0, 1, 2, 0, 0]
    assert r.clear.tolist() == [True, False, False, False, False]  # 16.5 > 17.2 − 1


def test_squall_needs_rise_peak_and_duration(thresholds: Thresholds) -> None:
    S = thresholds.storm
    base = [3.0] * 10
    rows = f32(
        [*base, 12.0, 12.5],  # rose 9 m/s to over 11, held: squall
        [*base, 12.0, NAN],  # the newest minute is missing: cannot say it held
        [6.0] * 10 + [12.0, 12.5],  # only 6 m/s rise
        [*base, 10.0, 9.5],  # never reached 11, and below 11 − 1: clear
    )
    r = storm.squall_rule(rows, S, slot_s=60.0, deadband_ms=1.0)
    assert r.condition.tolist() == [True, False, False, False]
    assert r.clear.tolist() == [False, False, False, True]


@pytest.mark.parametrize("offset_min", [420, 0, 330])
def test_semidiurnal_wave_peaks_at_ten_and_twenty_two_local(
    thresholds: Thresholds, offset_min: int
) -> None:
    S = thresholds.storm
    # local midnight at the site's offset
    day0 = 1_780_000_000_000 - 1_780_000_000_000 % (24 * HOUR) - offset_min * 60_000
    times = np.asarray([day0 + h * HOUR for h in (4, 10, 16, 22)], np.int64)
    wave = storm.semidiurnal_wave(times, S, offset_min)
    np.testing.assert_allclose(wave, [-1.5, 1.5, -1.5, 1.5], atol=1e-5)


def test_pressure_tendency_after_removing_the_wave(
    thresholds: Thresholds, utc_offset_min: int
) -> None:
    S = thresholds.storm
    k, slot = 360, 60_000
    t0 = 1_780_000_000_000 - 1_780_000_000_000 % HOUR
    times = t0 + slot * np.arange(k, dtype=np.int64)
    wave = storm.semidiurnal_wave(times, S, utc_offset_min)
    calm = 1008.0 + wave  # only the daily wave: no tendency once removed
    trough = calm - np.linspace(0, 5, k, dtype=np.float32)  # 5 hPa fall over 6 h
    p = np.stack([calm, trough]).astype(np.float32)
    p[1, 100:140] = np.nan  # a gap in the middle changes nothing
    cols = storm.tendency_columns(k, 1.0)
    f3, f6 = storm.pressure_tendencies(p[:, cols], times[cols], S, utc_offset_min)
    assert abs(f3[0]) < 0.05 and abs(f6[0]) < 0.05
    assert f6[1] == pytest.approx(-5.0 * (k - 5) / (k - 1), abs=0.05)
    r = storm.pressure_rule(f3, f6, S, deadband_hpa=0.5)
    assert r.condition.tolist() == [False, True] and r.clear.tolist() == [True, False]
    # without removing it, the raw wave alone reads as a tendency
    raw3, _ = storm.pressure_tendencies(
        calm[None, cols].astype(np.float32),
        times[cols],
        S.model_copy(update={"detrend_semidiurnal_pressure": False}),
        utc_offset_min,
    )
    assert abs(raw3[0]) > 0.5


def test_gust_front_signature(thresholds: Thresholds) -> None:
    S = thresholds.storm
    w = S.gust_front.window_min
    before, after = [30.0] * (w - 2), [25.0] * 2
    t_c = f32(before + after, before + after, [30.0] * w)
    wind = f32([3.0] * (w - 2) + [12.0] * 2, [3.0] * w, [3.0] * (w - 2) + [12.0] * 2)
    p = f32([1008.0] * (w - 2) + [1010.0] * 2, [1008.0] * w, [1008.0] * w)
    rh = f32([70.0] * w, [70.0] * w, [70.0] * w)
    r = storm.gust_front_rule(t_c, wind, p, rh, S)
    # T drop + wind jump + pressure jump: yes; T drop alone: no; wind alone: no
    assert r.condition.tolist() == [True, False, False]


def _rule(cond: list[bool], sev: list[int] | None = None) -> RuleResult:
    c = np.asarray(cond)
    return RuleResult(c, ~c, np.asarray(sev or [int(x) for x in cond], np.int8))


def test_city_risk_needs_a_quorum_of_stations(thresholds: Thresholds) -> None:
    S = thresholds.storm
    cap = np.asarray([8, 0, 0, 0], np.int8)  # one station in a storm-force wind
    none = _rule([False] * 4)
    levels = storm.station_level(
        cap=cap, gust=none, squall=none, pressure=none, rain_warning=np.zeros(4, bool)
    )
    reporting = np.ones(4, bool)
    assert storm.city_risk(levels, reporting, S, np.zeros(4, bool))[0] == 0  # 1 of 4
    cap = np.asarray([8, 10, 0, 0], np.int8)
    levels = storm.station_level(
        cap=cap, gust=none, squall=none, pressure=none, rain_warning=np.zeros(4, bool)
    )
    level, agreeing, m = storm.city_risk(levels, reporting, S, np.zeros(4, bool))
    assert (level, agreeing, m) == (3, 2, 4)  # 2 of 4 agree on at least level 3
    # coincident very heavy rain at a quorum raises the level by one
    assert storm.city_risk(levels, reporting, S, np.asarray([1, 1, 0, 0], bool))[0] == 4
    # silent stations do not count in M
    assert storm.city_risk(levels, np.asarray([1, 0, 0, 0], bool), S, np.zeros(4, bool))[:3] == (
        3,
        1,
        1,
    )
    assert storm.city_risk(levels, np.zeros(4, bool), S, np.zeros(4, bool)) == (0, 0, 0)
    r = storm.city_rule(3, 2, 4)
    assert r.condition.tolist() == [True] and r.severity.tolist() == [2]
    assert storm.city_rule(0, 0, 4).clear.tolist() == [True]


def test_ten_minute_mean_needs_coverage() -> None:
    # One gusty minute after a start is no 10-minute mean; half the minutes are.
    wind = f32([NAN] * 9 + [12.0], [NAN] * 5 + [12.0] * 5)
    mean = storm.ten_minute_mean(wind, 10, 1.0, coverage=0.5)
    assert np.isnan(mean[0]) and mean[1] == pytest.approx(12.0)


def test_city_level_holds_while_a_release_share_of_stations_still_sees_storm_signs(
    thresholds: Thresholds,
) -> None:
    S = thresholds.storm
    # 8 stations: 4 (the quorum) must agree to raise, 2 (25 %) keep it raised.
    reporting = np.ones(8, bool)
    levels = np.asarray([3, 3, 1, 0, 0, 0, 0, 0], np.int8)
    level, _, m = storm.city_risk(levels, reporting, S, np.zeros(8, bool))
    assert (level, m) == (0, 8)  # 3 of 8 stations: under the quorum, not raised
    hold = storm.city_hold(levels, reporting, S)
    assert hold == 3  # but 2 of 8 still at level 3 or more
    r = storm.city_rule(level, 0, m, hold)
    assert r.condition.tolist() == [False] and r.clear.tolist() == [False]  # held
    levels = np.asarray([2, 0, 0, 0, 0, 0, 0, 0], np.int8)  # one station left
    assert storm.city_hold(levels, reporting, S) == 0
    r = storm.city_rule(0, 0, 8, storm.city_hold(levels, reporting, S))
    assert r.clear.tolist() == [True]
    # a single reporting station holds on its own level; none reporting holds nothing
    assert storm.city_hold(levels, np.asarray([1] + [0] * 7, bool), S) == 2
    assert storm.city_hold(levels, np.zeros(8, bool), S) == 0


def test_release_share_may_not_exceed_the_quorum() -> None:
    from pydantic import ValidationError

    from deltasense.thresholds import StormRisk

    with pytest.raises(ValidationError, match="release_fraction"):
        StormRisk(quorum_fraction=0.5, release_fraction=0.6)
