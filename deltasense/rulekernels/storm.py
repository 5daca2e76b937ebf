"""Storm rules over weather stations (pure, over window arrays).

* ``wind-cap``: the 10-minute mean wind on the Vietnamese "cấp" (Beaufort) scale of
  Decision 18/2021/QĐ-TTg, Appendix III.  cấp 6–7 is a tropical depression, ≥ 8 a
  storm.  Risk levels (same decision, Art. 4: storms and depressions use 3–5):
  cấp 6–9 → 3, 10–11 → 4, ≥ 12 → 5 [design mapping].
* ``gust``: the newest 3-s gust against cấp 8 (warning) and the US NWS severe
  thunderstorm gust of 25.7 m/s (critical).
* ``squall`` (WMO 1962): the wind rose by ≥ 8 m/s to ≥ 11 m/s and stayed there ≥ 1 min.
* ``pressure-fall``: 3 h and 6 h pressure tendency after removing the tropical
  semi-diurnal wave (see :func:`detrend_pressure`).
* ``gust-front``: temperature drop + wind jump + (pressure jump or humidity rise)
  within a few minutes.
* ``storm-risk``: one city-wide level 1–5 from the stations, counted only when N of
  the M reporting stations agree (:func:`city_risk`); it clears only when fewer than
  a smaller share still see storm signs (:func:`city_hold`).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from deltasense.rulekernels.base import (
    CRITICAL,
    F32,
    I8,
    I64,
    WARNING,
    Bool,
    RuleResult,
    f32,
    last_valid,
    row_max,
    row_mean,
    row_min,
    severity_of,
)
from deltasense.rulekernels.limits import StormLimits
from deltasense.thresholds import Storm

HOUR_MS: Final = 3_600_000


# --- wind -----------------------------------------------------------------------------
def wind_cap(mean_ms: F32, storm: Storm) -> I8:
    """cấp level per station for a 10-min mean wind (0 below the lowest level; NaN → 0)."""
    levels = sorted(storm.wind_cap_ms)
    bounds = np.asarray([storm.wind_cap_ms[lv] for lv in levels], dtype=np.float32)
    idx = np.searchsorted(bounds, np.nan_to_num(mean_ms, nan=-1.0), side="right")
    table = np.asarray([0, *levels], dtype=np.int8)
    return table[idx]


def cap_risk(cap: I8) -> I8:
    return np.select([cap >= 12, cap >= 10, cap >= 6], [5, 4, 3], 0).astype(np.int8)


def wind_rule(mean_ms: F32, storm: Storm, deadband_ms: float) -> RuleResult:
    cap = wind_cap(mean_ms, storm)
    lowest = min(storm.wind_cap_ms)
    storm_cap = 8
    condition = cap >= lowest
    with np.errstate(invalid="ignore"):
        clear = mean_ms < storm.wind_cap_ms[lowest] - deadband_ms
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=severity_of(condition, cap >= storm_cap),
        values={"wind_10min_ms": mean_ms, "cap": cap.astype(np.float32)},
        risk=np.maximum(cap_risk(cap), 1).astype(np.int8),
    )


def gust_rule(gust_ms: F32, limits: StormLimits, deadband_ms: float) -> RuleResult:
    with np.errstate(invalid="ignore"):
        warn = gust_ms >= limits.gust_warning_ms
        crit = gust_ms >= limits.gust_critical_ms
        clear = gust_ms < limits.gust_warning_ms - deadband_ms
    return RuleResult(
        condition=warn,
        clear=clear,
        severity=severity_of(warn, crit),
        values={"gust_ms": gust_ms},
        risk=np.where(crit, 3, 2).astype(np.int8),
    )


def squall_rule(wind: F32, storm: Storm, slot_s: float, deadband_ms: float) -> RuleResult:
    """``wind``: (stations × slots) of interval-mean wind, newest last; the squall needs
    ``min_s`` of slots at the end all over the peak, and a base ``rise_ms`` lower in
    the ten minutes before them."""
    hold = max(1, math.ceil(storm.squall.min_s / slot_s))
    base_len = max(1, round(600 / slot_s))
    recent = wind[:, -hold:]
    sustained = row_min(recent)
    sustained[np.isnan(recent).any(axis=1)] = np.nan  # every slot of the hold must report
    base = row_min(wind[:, -(hold + base_len) : -hold])
    with np.errstate(invalid="ignore"):
        condition = (sustained >= storm.squall.peak_ms) & (sustained - base >= storm.squall.rise_ms)
        latest, _ = last_valid(recent)
        clear = latest < storm.squall.peak_ms - deadband_ms
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"wind_ms": sustained, "rise_ms": sustained - base},
        risk=np.full(condition.shape, 2, dtype=np.int8),
    )


# --- pressure -------------------------------------------------------------------------
def semidiurnal_wave(slot_times_ms: I64, storm: Storm, utc_offset_min: int) -> F32:
    """The fixed S2 model: A·cos(2π(h − h_high)/12) with h the site's local hour.

    Why fixed and not fitted: the wave's amplitude and phase are stable
    climatology in the tropics (docs/REFERENCE.md: ±1.5 hPa, highs ~10:00/22:00), while
    a per-station fit needs a day or more of clean data and would partly absorb
    the very storm trough we look for.  Both parameters are in the config.
    """
    hour = (slot_times_ms / HOUR_MS + utc_offset_min / 60) % 24.0
    phase = 2.0 * np.pi * (hour - storm.semidiurnal_high_local_h) / 12.0
    return f32(storm.semidiurnal_amplitude_hpa * np.cos(phase))


def detrend_pressure(p_hpa: F32, slot_times_ms: I64, storm: Storm, utc_offset_min: int) -> F32:
    if not storm.detrend_semidiurnal_pressure:
        return p_hpa
    return f32(p_hpa - semidiurnal_wave(slot_times_ms, storm, utc_offset_min)[None, :])


def pressure_tendency(p: F32, hours: float, slot_min: float, avg: int = 5) -> F32:
    """Change (hPa) between the mean of the newest ``avg`` slots and the mean of
    ``avg`` slots ``hours`` earlier (clipped to the window), per station."""
    k = p.shape[1]
    lag = min(k - avg, round(hours * 60 / slot_min))
    if lag <= 0:
        return np.full(p.shape[0], np.nan, dtype=np.float32)
    now = row_mean(p[:, k - avg :])
    then = row_mean(p[:, k - avg - lag : k - lag])
    return f32(now - then)


def tendency_columns(k: int, slot_min: float, avg: int = 5) -> npt.NDArray[np.int64]:
    """Window columns (0 = oldest of ``k``) of the three blocks of ``avg`` slots the
    tendencies read: the newest, 3 h earlier and 6 h earlier (clipped to the window)."""
    lag3 = max(0, min(k - avg, round(3 * 60 / slot_min)))
    lag6 = max(0, min(k - avg, round(6 * 60 / slot_min)))
    return np.concatenate(
        [
            np.arange(k - avg, k),
            np.arange(k - avg - lag3, k - lag3),
            np.arange(k - avg - lag6, k - lag6),
        ]
    ).astype(np.int64)


def pressure_tendencies(
    blocks: F32, block_times_ms: I64, storm: Storm, utc_offset_min: int, avg: int = 5
) -> tuple[F32, F32]:
    """(3 h, 6 h) tendencies of the detrended pressure from the columns
    :func:`tendency_columns` picks (only those are detrended)."""
    if blocks.shape[1] != 3 * avg:
        raise ValueError("blocks must hold the three tendency blocks")
    block = detrend_pressure(blocks, block_times_ms, storm, utc_offset_min)
    now, then3, then6 = (row_mean(block[:, i * avg : (i + 1) * avg]) for i in range(3))
    return f32(now - then3), f32(now - then6)


def pressure_rule(fall_3h: F32, fall_6h: F32, storm: Storm, deadband_hpa: float) -> RuleResult:
    t3, t6 = storm.pressure_fall_3h_hpa, storm.pressure_fall_6h_hpa
    with np.errstate(invalid="ignore"):
        warn = (fall_3h <= -t3) | (fall_6h <= -t6)
        crit = fall_6h <= -2 * t6  # [design] twice the storm-signal fall
        clear = (fall_3h > -(t3 - deadband_hpa)) & (fall_6h > -(t6 - deadband_hpa))
    return RuleResult(
        condition=warn,
        clear=clear,
        severity=severity_of(warn, crit),
        values={"tendency_3h_hpa": fall_3h, "tendency_6h_hpa": fall_6h},
    )


# --- gust front -----------------------------------------------------------------------
def _before_after(x: F32, window: int) -> tuple[F32, F32]:
    window = min(window, x.shape[1])
    half = max(1, window // 2)
    before = row_mean(x[:, -window:-half] if window > half else x[:, :0])
    after = row_mean(x[:, -2:])
    return before, after


def gust_front_rule(t_c: F32, wind: F32, p_hpa: F32, rh: F32, storm: Storm) -> RuleResult:
    gf = storm.gust_front
    tb, ta = _before_after(t_c, gf.window_min)
    wb, wa = _before_after(wind, gf.window_min)
    pb, pa = _before_after(p_hpa, gf.window_min)
    hb, ha = _before_after(rh, gf.window_min)
    with np.errstate(invalid="ignore"):
        t_drop = tb - ta >= gf.t_drop_c
        w_jump = wa - wb >= gf.wind_jump_ms
        p_jump = pa - pb >= gf.p_jump_hpa
        rh_rise = ha - hb >= gf.rh_rise_pct
    condition = t_drop & w_jump & (p_jump | rh_rise)
    return RuleResult(
        condition=condition,
        clear=~condition,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={
            "t_drop_c": f32(tb - ta),
            "wind_jump_ms": f32(wa - wb),
            "p_jump_hpa": f32(pa - pb),
            "rh_rise_pct": f32(ha - hb),
        },
        risk=np.full(condition.shape, 2, dtype=np.int8),
    )


# --- city-wide risk -------------------------------------------------------------------
def station_level(
    *,
    cap: I8,
    gust: RuleResult,
    squall: RuleResult,
    pressure: RuleResult,
    rain_warning: Bool,
) -> I8:
    """Per-station level 0–5 [design]: 1 storm signs (pressure fall or heavy rain),
    2 damaging gusts or a squall, 3–5 from the cấp of the mean wind (3 also for a
    gust over the critical limit)."""
    level = np.zeros(cap.shape, dtype=np.int8)
    level[pressure.condition | rain_warning] = 1
    level[gust.condition | squall.condition] = 2
    level[gust.severity >= CRITICAL] = 3
    return np.maximum(level, cap_risk(cap)).astype(np.int8)


def quorum(m: int, storm: Storm) -> int:
    """Stations that must agree among ``m`` reporting ones (at least 1)."""
    if m <= 0:
        return 0
    return max(
        1, min(m, max(storm.risk.quorum_min_stations, math.ceil(storm.risk.quorum_fraction * m)))
    )


def city_risk(
    levels: I8, reporting: Bool, storm: Storm, rain_critical: Bool
) -> tuple[int, int, int]:
    """(level, stations agreeing, stations reporting): the highest level that a quorum
    of reporting stations reach or exceed; +1 (to 5) for a coincident very heavy rain
    at a quorum of stations (Decision 18/2021 Art. 4: coincident hazards)."""
    reported = levels[reporting]
    m = int(reported.size)
    k = quorum(m, storm)
    if k == 0:
        return 0, 0, 0
    ranked = np.sort(reported)[::-1]
    level = int(ranked[k - 1])
    agreeing = int(np.count_nonzero(reported >= level)) if level else 0
    if level >= 1 and int(np.count_nonzero(rain_critical[reporting])) >= k:
        level = min(5, level + 1)
    return level, agreeing, m


def city_hold(levels: I8, reporting: Bool, storm: Storm) -> int:
    """The level that ``release_fraction`` of the reporting stations (at least one)
    still reach: an open city alert clears only when this is 0, so stations dropping
    in and out around the quorum do not flap it."""
    reported = levels[reporting]
    m = int(reported.size)
    if m == 0:
        return 0
    k = max(1, min(quorum(m, storm), math.ceil(storm.risk.release_fraction * m)))
    return int(np.sort(reported)[::-1][k - 1])


def city_rule(level: int, agreeing: int, reporting: int, hold: int = 0) -> RuleResult:
    cond = np.asarray([level >= 1])
    return RuleResult(
        condition=cond,
        clear=np.asarray([level == 0 and hold == 0]),
        severity=np.asarray([CRITICAL if level >= 3 else (WARNING if level else 0)], np.int8),
        values={
            "level": f32([level]),
            "stations_agreeing": f32([agreeing]),
            "stations_reporting": f32([reporting]),
        },
        risk=np.asarray([max(1, level)], dtype=np.int8),
    )


def ten_minute_mean(wind: F32, minutes: int, slot_min: float, coverage: float = 0.0) -> F32:
    """Mean over the newest ``minutes``; NaN unless readings fill at least ``coverage``
    of its slots (one minute after a start or a gap is no 10-minute mean)."""
    k = max(1, round(minutes / slot_min))
    return row_mean(wind[:, -k:], min_valid=math.ceil(coverage * k))


def recent_max(x: F32, slots: int = 2) -> F32:
    return row_max(x[:, -slots:])
