"""Sun position per lamp (NOAA "General Solar Position Calculations"), vectorised.

The NOAA Global Monitoring Division's fractional-year series for the equation
of time and the declination, good to about a minute for sunrise and sunset at
our latitude.  Sunrise/sunset use the zenith 90°50′ (90.833°: refraction and the
sun's radius), as in the "Almanac for computers" algorithm cited in
docs/REFERENCE.md.  All functions take one time and arrays of positions.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

SUNRISE_ZENITH_DEG: Final = 90.833
DAY_MS: Final = 86_400_000


def _gamma(ts_ms: int) -> tuple[float, float]:
    """(equation of time in minutes, declination in radians) at ``ts_ms``."""
    t = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
    leap = t.year % 4 == 0 and (t.year % 100 != 0 or t.year % 400 == 0)
    hour = t.hour + t.minute / 60 + t.second / 3600
    g = 2.0 * math.pi / (366 if leap else 365) * (t.timetuple().tm_yday - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    return eqtime, decl


def elevation_deg(ts_ms: int, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike) -> F64:
    """Sun elevation above the horizon (degrees, no refraction) at each position."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.asarray(lon_deg, dtype=np.float64)
    eqtime, decl = _gamma(ts_ms)
    minutes_utc = (ts_ms % DAY_MS) / 60_000.0
    true_solar_min = minutes_utc + eqtime + 4.0 * lon
    hour_angle = np.radians(true_solar_min / 4.0 - 180.0)
    cos_zenith = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return np.asarray(np.degrees(np.arcsin(np.clip(cos_zenith, -1.0, 1.0))), dtype=np.float64)


def sunrise_sunset_ms(
    ts_ms: int, lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike
) -> tuple[F64, F64]:
    """Sunrise and sunset (ms since epoch, UTC) of the UTC day holding ``ts_ms``;
    NaN where the sun does not rise or set that day."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lon = np.asarray(lon_deg, dtype=np.float64)
    eqtime, decl = _gamma(ts_ms - ts_ms % DAY_MS + DAY_MS // 2)
    with np.errstate(invalid="ignore"):
        cos_ha = np.cos(np.radians(SUNRISE_ZENITH_DEG)) / (np.cos(lat) * np.cos(decl)) - np.tan(
            lat
        ) * np.tan(decl)
        ha = np.degrees(np.arccos(cos_ha))  # NaN outside [-1, 1]: polar day or night
    day0 = ts_ms - ts_ms % DAY_MS
    rise = day0 + (720.0 - 4.0 * (lon + ha) - eqtime) * 60_000.0
    sets = day0 + (720.0 - 4.0 * (lon - ha) - eqtime) * 60_000.0
    return rise, sets
