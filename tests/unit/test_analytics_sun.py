"""NOAA sun position: sunrise/sunset at Bạc Liêu within docs/REFERENCE.md's ranges."""

from __future__ import annotations

import datetime as dt

import numpy as np

from analytics.rules import sun

VN = dt.timezone(dt.timedelta(hours=7))


def local(ms: float) -> dt.time:
    return dt.datetime.fromtimestamp(ms / 1000, VN).time()


def test_sunrise_and_sunset_over_a_year_stay_in_the_reference_ranges() -> None:
    rises, sets = [], []
    for day in range(0, 365, 7):
        t = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000) + day * sun.DAY_MS
        r, s = sun.sunrise_sunset_ms(t, [9.29], [105.72])
        rises.append(local(r[0]))
        sets.append(local(s[0]))
    # docs/REFERENCE.md says "roughly 05:39–06:17 and 17:34–18:19": within a few minutes
    assert dt.time(5, 34) <= min(rises) <= dt.time(5, 44)
    assert dt.time(6, 12) <= max(rises) <= dt.time(6, 22)
    assert dt.time(17, 29) <= min(sets) <= dt.time(17, 39)
    assert dt.time(18, 14) <= max(sets) <= dt.time(18, 24)


def test_agrees_with_the_simulators_independent_formula() -> None:
    from simulators import models

    start = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
    for k in range(0, 365 * 24, 37):  # every 37 h over a year
        ts = start + k * 3600
        ours = sun.elevation_deg(ts * 1000, [models.LAT], [models.LON])[0]
        assert abs(ours - models.solar_elevation_deg(ts)) < 0.5  # ~2 min near the horizon


def test_elevation_is_vectorised_and_signs_day_and_night() -> None:
    noon = int(dt.datetime(2026, 3, 21, 12, 0, tzinfo=VN).timestamp() * 1000)
    midnight = noon + 12 * 3_600_000
    lat, lon = np.asarray([9.29, 9.3]), np.asarray([105.72, 105.7])
    assert (sun.elevation_deg(noon, lat, lon) > 75).all()
    assert (sun.elevation_deg(midnight, lat, lon) < -60).all()
