"""Value models: plausible physical values for Bạc Liêu at a given UTC time.

Pure functions of the time (epoch seconds, UTC) and explicit parameters; noise
comes only from a ``random.Random`` passed in, so a seeded device is
reproducible.  Nothing here knows about MQTT, payloads or device state.
"""

from __future__ import annotations

import math
import random
from typing import Final

from deltasense.runtime import DEFAULT_UTC_OFFSET_MIN

LAT: Final = 9.29
LON: Final = 105.72

# --- time and sun -------------------------------------------------------------------


def local_hour(ts_s: float, utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN) -> float:
    """Hour of the local day, 0 ≤ h < 24; the modelled climate is Bạc Liêu's, so its
    local time is the site's default offset unless one is given."""
    return ((ts_s / 3600.0) + utc_offset_min / 60.0) % 24.0


def solar_elevation_deg(ts_s: float, lat: float = LAT, lon: float = LON) -> float:
    """Sun elevation above the horizon in degrees (USNO low-precision formulae,
    good to ~0.1°; no refraction)."""
    d = ts_s / 86400.0 + 2440587.5 - 2451545.0  # days since J2000.0
    g = math.radians((357.529 + 0.98560028 * d) % 360.0)
    q = (280.459 + 0.98564736 * d) % 360.0
    ecl_lon = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    obliquity = math.radians(23.439 - 0.00000036 * d)
    ra = math.atan2(math.cos(obliquity) * math.sin(ecl_lon), math.cos(ecl_lon))
    decl = math.asin(math.sin(obliquity) * math.sin(ecl_lon))
    gmst_deg = ((18.697374558 + 24.06570982441908 * d) % 24.0) * 15.0
    hour_angle = math.radians(gmst_deg + lon) - ra
    phi = math.radians(lat)
    s = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, s))))


_HORIZON_LUX: Final = 400.0
_CIVIL_DUSK_LUX: Final = 3.4
_NIGHT_LUX: Final = 0.01


def daylight_lux(elevation_deg: float) -> float:
    """Clear-sky horizontal illuminance for a sun elevation (rough but monotone):
    ~100 klx at a high sun, ~400 lx at the horizon, ~3 lx at civil dusk (-6°)."""
    if elevation_deg >= 0:
        return _HORIZON_LUX + 110_000.0 * float(math.sin(math.radians(elevation_deg)) ** 1.2)
    if elevation_deg >= -6:  # civil twilight: log-linear between the two anchors
        f = (elevation_deg + 6.0) / 6.0
        return float(
            10 ** (math.log10(_CIVIL_DUSK_LUX) + f * math.log10(_HORIZON_LUX / _CIVIL_DUSK_LUX))
        )
    if elevation_deg >= -12:
        f = (elevation_deg + 12.0) / 6.0
        return float(10 ** (math.log10(_NIGHT_LUX) + f * math.log10(_CIVIL_DUSK_LUX / _NIGHT_LUX)))
    return _NIGHT_LUX


def ambient_lux(ts_s: float, rng: random.Random, *, cloud: float = 1.0) -> float:
    """Measured ambient light: daylight × cloud factor (0..1] × a few % sensor noise."""
    lux = daylight_lux(solar_elevation_deg(ts_s)) * cloud * rng.uniform(0.95, 1.05)
    return max(0.0, lux)


# --- weather --------------------------------------------------------------------------


def _diurnal(ts_s: float, peak_hour: float, period_h: float = 24.0) -> float:
    """cos wave in [-1, 1] peaking at ``peak_hour`` local time."""
    return math.cos(2 * math.pi * (local_hour(ts_s) - peak_hour) / period_h)


def air_temp_c(ts_s: float) -> float:
    """Noise-free air temperature: 25 °C before dawn, 33 °C around 14:00 local."""
    return 29.0 + 4.0 * _diurnal(ts_s, 14.0)


def rel_humidity_pct(t_c: float) -> float:
    """Relative humidity falling as the day warms (humid delta: ~92 % at 25 °C)."""
    return max(40.0, min(100.0, 92.0 - 4.25 * (t_c - 25.0)))


def station_pressure_hpa(ts_s: float, mean_hpa: float = 1008.0) -> float:
    """Mean pressure plus the tropical semi-diurnal tide, ±1.5 hPa, highs 10:00/22:00."""
    return mean_hpa + 1.5 * _diurnal(ts_s, 10.0, period_h=12.0)


def mean_wind_ms(ts_s: float) -> float:
    """Noise-free mean wind: afternoon sea breeze ~5 m/s, calmer nights ~2 m/s."""
    return 3.5 + 1.5 * _diurnal(ts_s, 15.0)


def wind_dir_deg(ts_s: float) -> float:
    """Noise-free direction: onshore from the south-east by day, north-east at night."""
    return 95.0 + 50.0 * _diurnal(ts_s, 15.0)


SHOWER_SLOT_S: Final = 1800


def rain_rate_mm_h(ts_s: float, seed: int) -> float:
    """Rain intensity: each 30-min slot independently holds a shower or not,
    decided by ``(seed, slot)``, more likely in the convective afternoon."""
    slot = int(ts_s // SHOWER_SLOT_S)
    rng = random.Random(f"rain:{seed}:{slot}")
    h = local_hour(slot * SHOWER_SLOT_S)
    chance = 0.15 if 13.0 <= h < 19.0 else 0.03
    if rng.random() >= chance:
        return 0.0
    return rng.uniform(2.0, 25.0)


RAIN_TIP_MM: Final = 0.2  # tipping-bucket resolution


def rain_counter_mm(accumulated_mm: float) -> float:
    """What a tipping-bucket counter shows for the rain that fell: whole tips only."""
    return round(math.floor(accumulated_mm / RAIN_TIP_MM + 1e-9) * RAIN_TIP_MM, 1)


# --- water ----------------------------------------------------------------------------

# Irregular semi-diurnal tide at the Bạc Liêu coast: M2 + S2 (spring/neap beat
# over ~14.8 days) + diurnal K1, about national gauge datum.  Extremes stay near
# +1.9 m / -1.3 m, i.e. a spring range ~3 m and below the BĐ III alarm (+2.20 m).
_TIDE_MEAN_CM: Final = 30.0
_TIDE_CONSTITUENTS: Final = (  # (amplitude cm, period h, phase h)
    (90.0, 12.4206, 2.0),
    (30.0, 12.0, 1.0),
    (35.0, 23.9345, 6.0),
)


def tide_cm(ts_s: float, phase_h: float = 0.0) -> float:
    """Canal water level above gauge datum, cm; ``phase_h`` delays the tide inland."""
    t_h = ts_s / 3600.0 - phase_h
    return _TIDE_MEAN_CM + sum(
        a * math.cos(2 * math.pi * (t_h - p) / period) for a, period, p in _TIDE_CONSTITUENTS
    )


def drain_level_cm(rng: random.Random) -> float:
    """Street drain in dry weather: the road surface, seen through ultrasonic noise."""
    return rng.gauss(0.0, 0.3)


def distance_mm(mount_mm: float, level_cm: float) -> float:
    """Raw sensor-to-water distance: ``level = mount height - distance``."""
    return mount_mm - level_cm * 10.0


# --- lighting and energy -------------------------------------------------------------

PHOTOCELL_ON_LUX: Final = 16.0  # ANSI C136.10
PHOTOCELL_OFF_LUX: Final = 65.0
LAMP_STANDBY_W: Final = 0.4  # the node and driver, lamp off


def photocell(on: bool, lux: float) -> bool:
    """Switch with hysteresis: on below 16 lx, off above 65 lx, else unchanged."""
    if lux < PHOTOCELL_ON_LUX:
        return True
    if lux > PHOTOCELL_OFF_LUX:
        return False
    return on


def dim_profile_pct(ts_s: float) -> float:
    """Adaptive dimming: 100 % until 22:00, 70 % to midnight, 50 % until 05:00."""
    h = local_hour(ts_s)
    if h < 5.0:
        return 50.0
    if h >= 22.0:
        return 70.0
    return 100.0


def lamp_power_w(on: bool, dim_pct: float, rated_w: float, rng: random.Random) -> float:
    """LED power, proportional to the dim level, with ~1 % metering noise."""
    if not on:
        return LAMP_STANDBY_W
    return rated_w * dim_pct / 100.0 * rng.gauss(1.0, 0.01)


def grid_voltage_v(ts_s: float, rng: random.Random) -> float:
    """Low-voltage supply: 230 V nominal, sagging a few volts in the evening peak."""
    h = local_hour(ts_s)
    sag = 4.0 if 17.5 <= h < 21.5 else 0.0
    return 231.0 - sag + rng.gauss(0.0, 0.8)


def grid_frequency_hz(rng: random.Random) -> float:
    return 50.0 + rng.gauss(0.0, 0.02)


def cabinet_power_w(lamps_on: bool, dim_pct: float, lamp_load_w: float, base_w: float) -> float:
    """Street-lighting cabinet: controller base load plus its lamp circuit."""
    return base_w + (lamp_load_w * dim_pct / 100.0 if lamps_on else 0.0)


def cabinet_pf(lamps_on: bool, rng: random.Random) -> float:
    """LED drivers at load give a good power factor; the idle cabinet a poor one."""
    pf = rng.gauss(0.95, 0.01) if lamps_on else rng.gauss(0.62, 0.03)
    return max(0.3, min(1.0, pf))


def energy_wh(power_w: float, dt_s: float) -> float:
    """Energy used over ``dt_s`` at ``power_w`` (a negative step counts as none)."""
    return max(0.0, power_w) * max(0.0, dt_s) / 3600.0
