"""Energy rules on hand-built arrays: day-burning, lamp out, drift, cycling, dimming
opportunities (kWh and VND), cabinet baseline."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.rules import energy
from deltasense.rulekernels.limits import LightingLimits
from deltasense.thresholds import Thresholds

NAN = np.nan
HOUR = 3_600_000


def a(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def test_normalised_power_scales_to_full_output_while_on() -> None:
    got = energy.normalised_power(
        a(1, 1, 0, 1, NAN), a(50, 100, 100, 10, 100), a(60, 120, 0.4, 5, 90)
    )
    np.testing.assert_allclose(got[:2], [120, 120])
    assert np.isnan(got[2:]).all()  # off, dimmed below 20 %, unknown state


def test_day_burning_needs_sun_and_light_and_power(thresholds: Thresholds) -> None:
    L = thresholds.lighting
    power = a(150, 150, 150, 0.4, 150, 150)
    rated = a(150, 150, 150, 150, NAN, 150)
    on = a(1, 1, 1, 0, 1, 1)
    lux = a(20_000, 30, NAN, 20_000, 20_000, 20_000)
    elev = a(40, 40, 40, 40, 40, -10)
    r = energy.day_burn_rule(power, rated, on, lux, elev, L)
    # dark by its own sensor (30 lx) is not day-burning; unknown lux trusts the sun
    assert r.condition.tolist() == [True, False, True, False, True, False]
    assert r.clear[3] and r.clear[5]


def test_lamp_out_at_night_only(thresholds: Thresholds) -> None:
    L = thresholds.lighting
    power = a(0.4, 140, 0.4, 0.4, 3.0)
    rated = a(150, 150, 150, 150, NAN)
    lux = a(2, 2, 2, NAN, 2)
    elev = a(-20, -20, 30, -20, -20)
    r = energy.lamp_out_rule(power, rated, lux, elev, L)
    assert r.condition.tolist() == [True, False, False, True, True]  # unrated: < 5 W
    assert r.clear.tolist() == [False, True, True, False, False]


def test_drift_needs_enough_on_readings_and_a_rated_power(thresholds: Thresholds) -> None:
    L = thresholds.lighting
    k = 30
    norm = np.full((4, k), 150.0, dtype=np.float32)
    norm[1] = 120.0  # 20 % low
    norm[2, : k - 5] = NAN  # only 5 readings
    norm[2, k - 5 :] = 100.0
    norm[3, ::2] = NAN  # gaps: 15 readings of 150
    norm[3, 3] = 999.0  # one wild value does not move the median
    limits = LightingLimits(L.power_drift_pct)
    r = energy.drift_rule(norm, a(150, 150, 150, 150), L, limits)
    assert r.condition.tolist() == [False, True, False, False]
    assert r.values["drift_pct"][1] == pytest.approx(-20.0)
    assert np.isnan(r.values["drift_pct"][2])
    unrated = energy.drift_rule(norm, a(NAN, NAN, NAN, NAN), L, limits)
    assert not unrated.condition.any()


def test_cycling_counts_switches_across_gaps(thresholds: Thresholds) -> None:
    L = thresholds.lighting
    on = np.full((3, 61), 1.0, dtype=np.float32)
    on[0, 10:20] = 0
    on[0, 30:40] = 0  # 4 switches
    on[1, 10:20] = NAN  # a gap is no switch
    on[2, ::15] = 0  # short offs at 0, 15, 30, 45, 60: 1 + 2 + 2 + 2 + 1 switches
    count = energy.switch_count(on)
    assert count.tolist() == [4, 0, 8]
    r = energy.cycling_rule(count, L)
    assert r.condition.tolist() == [True, False, True]


def test_profile_levels(thresholds: Thresholds) -> None:
    L = thresholds.lighting
    assert energy.profile_level(L.dim_profile, 21.5) == 100
    assert energy.profile_level(L.dim_profile, 23.0) == 70
    assert energy.profile_level(L.dim_profile, 2.0) == 50
    assert energy.profile_level(L.dim_profile, 6.0) == 100
    assert energy.profile_level({}, 2.0) == 100


def test_dimming_opportunity_priced_at_the_tariff(
    thresholds: Thresholds, utc_offset_min: int
) -> None:
    L = thresholds.lighting
    # local midnight
    day0 = 1_780_000_000_000 - 1_780_000_000_000 % (24 * HOUR) - utc_offset_min * 60_000
    at_23 = day0 + 23 * HOUR
    on, dim, power = a(1, 1, 0), a(100, 70, 100), a(150, 105, 0.4)
    r = energy.dimming_rule(on, dim, power, at_23, L, utc_offset_min)
    assert r.condition.tolist() == [True, False, False]  # 70 % follows the profile; off
    # a 150 W lamp at 100 % all night: 2 h × 30 % + 5 h × 50 % = 3.1 h of 150 W = 0.465 kWh
    assert r.values["kwh_per_night"][0] == pytest.approx(0.465, abs=1e-3)
    assert r.values["vnd_per_night"][0] == pytest.approx(0.465 * 2226, rel=1e-3)
    assert r.values["vnd_per_year"][0] == pytest.approx(0.465 * 2226 * 365, rel=1e-3)
    assert r.severity.tolist() == [0, 0, 0]  # info
    evening = energy.dimming_rule(on, dim, power, day0 + 20 * HOUR, L, utc_offset_min)
    assert not evening.condition.any() and evening.clear[0]
    # The profile follows the site's clock: 23:00 at UTC+7 is 16:00 at UTC, undimmed.
    assert not energy.dimming_rule(on, dim, power, at_23, L, 0).condition.any()


def test_cabinet_against_its_own_baseline(thresholds: Thresholds) -> None:
    L = thresholds.lighting
    k = 48
    per_hour = np.full((3, k - 1), 1000.0, dtype=np.float32)
    per_hour[1, -1] = 1600.0  # last complete hour 60 % up
    per_hour[2, -25] = 5000.0  # one odd hour in yesterday's three: the median ignores it
    totals = np.concatenate([np.zeros((3, 1), np.float32), np.cumsum(per_hour, axis=1)], axis=1)
    totals = np.concatenate([totals[:, 1:], totals[:, -1:] + 400], axis=1)  # running hour
    r = energy.cabinet_rule(totals.astype(np.float32), L)
    assert r.condition.tolist() == [False, True, False]
    assert r.values["deviation_pct"][1] == pytest.approx(60.0)
    assert r.severity[1] == 2  # twice the limit: critical
    short = energy.cabinet_rule(totals[:, -10:], L)
    assert not short.condition.any()
