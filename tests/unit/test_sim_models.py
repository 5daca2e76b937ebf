"""Value models: sun, weather, tide, lighting at known local times."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from simulators import models

# 2025-11-26 00:00 local = 2025-11-25 17:00 UTC
DAY0 = datetime(2025, 11, 25, 17, 0, tzinfo=UTC).timestamp()


def at_local(hour: float, day: int = 0) -> float:
    return DAY0 + day * 86400 + hour * 3600


def test_local_hour_is_utc_plus_7() -> None:
    assert models.local_hour(datetime(2025, 6, 1, 0, 0, tzinfo=UTC).timestamp()) == 7.0
    assert models.local_hour(datetime(2025, 6, 1, 20, 30, tzinfo=UTC).timestamp()) == 3.5


def test_local_hour_takes_another_offset() -> None:
    assert models.local_hour(datetime(2025, 6, 1, 20, 30, tzinfo=UTC).timestamp(), 330) == 2.0
    assert models.local_hour(datetime(2025, 6, 1, 0, 0, tzinfo=UTC).timestamp(), -60) == 23.0


@pytest.mark.parametrize("month", [1, 4, 6, 9, 12])
def test_sunrise_and_sunset_match_the_reference_window(month: int) -> None:
    # docs/REFERENCE.md: sunrise 05:39-06:17, sunset 17:34-18:19 local (refraction: -0.833°).
    start = datetime(2025, month, 15, 17, 0, tzinfo=UTC)  # local midnight
    crossings = []
    prev = models.solar_elevation_deg(start.timestamp())
    for minute in range(1, 24 * 60):
        t = start + timedelta(minutes=minute)
        e = models.solar_elevation_deg(t.timestamp())
        if (prev < -0.833) != (e < -0.833):
            crossings.append(models.local_hour(t.timestamp()))
        prev = e
    sunrise, sunset = crossings
    assert 5 + 39 / 60 - 0.05 <= sunrise <= 6 + 17 / 60 + 0.05
    assert 17 + 34 / 60 - 0.05 <= sunset <= 18 + 19 / 60 + 0.05


def test_lux_is_dark_at_night_and_bright_at_noon() -> None:
    rng = random.Random(1)
    assert models.ambient_lux(at_local(0), rng) < 1
    assert models.ambient_lux(at_local(12), rng) > 50_000
    elevations = [-20, -12, -8, -6, -3, 0, 10, 45, 90]
    lux = [models.daylight_lux(e) for e in elevations]
    assert lux == sorted(lux)


def test_temperature_range_and_afternoon_peak() -> None:
    temps = {h: models.air_temp_c(at_local(h)) for h in range(24)}
    assert max(temps, key=lambda h: temps[h]) == 14
    assert min(temps.values()) >= 24.9 and max(temps.values()) <= 33.1
    assert models.rel_humidity_pct(temps[14]) < models.rel_humidity_pct(temps[5])


def test_pressure_semidiurnal_wave() -> None:
    p = {h: models.station_pressure_hpa(at_local(h)) for h in range(24)}
    highs = sorted(sorted(p, key=lambda h: p[h])[-2:])
    lows = sorted(sorted(p, key=lambda h: p[h])[:2])
    assert highs == [10, 22] and lows == [4, 16]
    assert max(p.values()) == pytest.approx(1009.5) and min(p.values()) == pytest.approx(1006.5)


def test_wind_within_the_light_breeze_band() -> None:
    for h in range(24):
        assert 1.0 <= models.mean_wind_ms(at_local(h)) <= 6.0
        assert 0.0 <= models.wind_dir_deg(at_local(h)) <= 360.0


def test_rain_is_occasional_and_deterministic() -> None:
    rates = [
        models.rain_rate_mm_h(at_local(h / 2, day), seed=9) for day in range(20) for h in range(48)
    ]
    wet = [r for r in rates if r > 0]
    assert 0 < len(wet) < len(rates) / 4
    assert all(2.0 <= r <= 25.0 for r in wet)
    assert rates == [
        models.rain_rate_mm_h(at_local(h / 2, d), seed=9) for d in range(20) for h in range(48)
    ]


def test_rain_counter_counts_whole_tips_and_is_monotone() -> None:
    assert models.rain_counter_mm(0.19) == 0.0
    assert models.rain_counter_mm(0.2) == 0.2
    assert models.rain_counter_mm(1.0) == 1.0
    values = [models.rain_counter_mm(x / 100) for x in range(2000)]
    assert values == sorted(values)


def test_tide_is_semidiurnal_with_a_spring_range_near_three_metres() -> None:
    levels = [models.tide_cm(at_local(m / 60)) for m in range(0, 30 * 24 * 60, 10)]
    assert 250 <= max(levels) - min(levels) <= 400
    assert max(levels) < 220  # below the Gành Hào BĐ III alarm level: no false floods
    day = [models.tide_cm(at_local(m / 60, 3)) for m in range(0, 25 * 60, 10)]
    highs = [i for i in range(1, len(day) - 1) if day[i - 1] < day[i] >= day[i + 1]]
    assert len(highs) == 2  # two highs a day


def test_distance_is_mount_height_minus_level() -> None:
    assert models.distance_mm(2000.0, 5.0) == 1950.0
    assert models.distance_mm(4000.0, -100.0) == 5000.0


@pytest.mark.parametrize(
    ("on", "lux", "expected"),
    [(False, 10, True), (True, 10, True), (True, 40, True), (False, 40, False), (True, 70, False)],
)
def test_photocell_hysteresis(on: bool, lux: float, expected: bool) -> None:
    assert models.photocell(on, lux) is expected


@pytest.mark.parametrize(
    ("hour", "pct"),
    [(18, 100), (21.99, 100), (22, 70), (23.5, 70), (0, 50), (4.99, 50), (5, 100), (12, 100)],
)
def test_dim_profile(hour: float, pct: float) -> None:
    assert models.dim_profile_pct(at_local(hour)) == pct


def test_lamp_power_follows_dim_level() -> None:
    rng = random.Random(2)
    assert models.lamp_power_w(False, 100, 150, rng) == models.LAMP_STANDBY_W
    assert models.lamp_power_w(True, 50, 150, rng) == pytest.approx(75, rel=0.05)


def test_energy_never_negative() -> None:
    assert models.energy_wh(360.0, 10.0) == pytest.approx(1.0)
    assert models.energy_wh(360.0, -10.0) == 0.0
    assert models.energy_wh(-5.0, 10.0) == 0.0
