"""Street-lighting and energy rules (pure, over lamp and meter window arrays).

Failure signatures after the TALQ lamp monitor and municipal complaint types
(docs/REFERENCE.md): day-burning, lamp out, power drift, cycling; plus dimming
opportunities priced with the public-lighting tariff, and cabinet (meter)
consumption against the cabinet's own robust baseline.

Rated power per lamp comes from the config, or is learned
(:func:`learned_rated_w`); a lamp whose rated power is unknown is judged on
absolute limits where a rule can be, and not at all where it cannot (drift).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from deltasense.rulekernels.base import (
    F32,
    WARNING,
    Bool,
    RuleResult,
    count_valid,
    counter_increase,
    f32,
    forward_fill,
    severity_of,
    shared_columns,
)
from deltasense.rulekernels.limits import LightingLimits
from deltasense.thresholds import Lighting

HOUR_MS: Final = 3_600_000
MIN_DIM_FOR_NORM: Final = 20.0  # below this the driver's own loss dominates: skip


def normalised_power(on: F32, dim_pct: F32, power_w: F32) -> F32:
    """Power scaled to full output (``power / (dim/100)``) while on, else NaN: what a
    lamp would draw at 100 %, comparable across dim levels."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (on > 0.5) & (dim_pct >= MIN_DIM_FOR_NORM)
        return np.where(ok, power_w * 100.0 / dim_pct, np.nan).astype(np.float32)


def learned_rated_w(hourly_norm_w: F32, min_hours: int = 3) -> F32:
    """Typical full-output power per lamp: the median of its hourly normalised power
    over the hourly window, NaN with fewer than ``min_hours`` hours on."""
    with np.errstate(invalid="ignore"):
        ordered = np.sort(hourly_norm_w, axis=1)
    count = np.count_nonzero(~np.isnan(hourly_norm_w), axis=1)
    mid = np.take_along_axis(ordered, np.maximum(count // 2, 0)[:, None], axis=1)[:, 0]
    return np.where(count >= min_hours, mid, np.nan).astype(np.float32)


def day_burn_rule(
    power_w: F32, rated_w: F32, on: F32, lux: F32, sun_elev_deg: F32, lighting: Lighting
) -> RuleResult:
    db = lighting.day_burn
    with np.errstate(invalid="ignore"):
        day = (sun_elev_deg > db.sun_above_deg) & (np.isnan(lux) | (lux > db.lux_above))
        limit = np.where(
            np.isnan(rated_w),
            lighting.lamp_out.min_w_when_unrated,
            rated_w * db.power_pct_of_rated_above / 100,
        )
        burning = (power_w > limit) | ((on > 0.5) & np.isnan(power_w))
        night = sun_elev_deg < 0
        clear = night | (power_w <= limit) | (~np.isnan(lux) & (lux < lighting.photocell_off_lux))
    condition = day & burning
    return RuleResult(
        condition=condition,
        clear=clear & ~condition,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"power_w": power_w, "lux": lux, "sun_elevation_deg": sun_elev_deg},
    )


def lamp_out_rule(
    power_w: F32, rated_w: F32, lux: F32, sun_elev_deg: F32, lighting: Lighting
) -> RuleResult:
    lo = lighting.lamp_out
    with np.errstate(invalid="ignore"):
        dark = (sun_elev_deg < lo.sun_below_deg) & (
            np.isnan(lux) | (lux < lighting.photocell_on_lux)
        )
        limit = np.where(
            np.isnan(rated_w), lo.min_w_when_unrated, rated_w * lo.power_pct_of_rated_below / 100
        )
        out = power_w < limit
        clear = (power_w >= 1.5 * limit) | (sun_elev_deg > 0)
    condition = dark & out
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"power_w": power_w, "rated_w": rated_w},
    )


def drift_rule(
    norm_recent: F32, rated_w: F32, lighting: Lighting, limits: LightingLimits
) -> RuleResult:
    """Median normalised power over the recent slots against rated power.  Meters are
    accurate to 2–5 % (ANSI C136.52), so the limit (``power_drift_pct``, per lamp) sits
    there and the clear condition 2 points inside it."""
    k = norm_recent.shape[1]
    keep = shared_columns(norm_recent)
    median = np.full(norm_recent.shape[0], np.nan, dtype=np.float32)
    if keep is not None:
        # Every row misses the same columns (usually none, or the filling head slot):
        # one sort of the shared columns gives each row's sorted values; a sort of such
        # short rows is quicker than a partition and picks the same element.
        c = int(np.count_nonzero(keep))
        count = np.full(norm_recent.shape[0], c, dtype=np.int64)
        if c:
            cols = np.flatnonzero(keep)
            if cols[-1] - cols[0] + 1 == c:  # contiguous: a slice, no gather
                block = norm_recent[:, cols[0] : cols[-1] + 1]
            else:
                block = norm_recent[:, cols]
            median[:] = np.sort(block, axis=1)[:, c // 2]
    elif k:
        count = count_valid(norm_recent)
        # Complete rows need only a partition; the rest a sort.
        full = count == k
        median[full] = np.partition(norm_recent[full], k // 2, axis=1)[:, k // 2]
        part = np.flatnonzero(~full)
        if part.size:
            ordered = np.sort(norm_recent[part], axis=1)
            median[part] = np.take_along_axis(ordered, (count[part] // 2)[:, None], axis=1)[:, 0]
    enough = count >= lighting.drift_min_on_readings
    with np.errstate(invalid="ignore", divide="ignore"):
        drift = np.where(enough, (median / rated_w - 1.0) * 100.0, np.nan).astype(np.float32)
        condition = np.abs(drift) >= limits.power_drift_pct
        clear = np.abs(drift) < limits.power_drift_pct - 2.0
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"drift_pct": drift, "power_full_w": median.astype(np.float32), "rated_w": rated_w},
    )


def switch_count(on_series: F32) -> F32:
    """On/off transitions between consecutive readings over the columns (gaps bridged).
    Only rows that were both on and off in the span can have any: the rest are
    skipped, which is nearly every lamp on nearly every tick."""
    out = np.zeros(on_series.shape[0], dtype=np.float32)
    if on_series.shape[1] < 2:
        return out
    with np.errstate(invalid="ignore"):  # NaN compares False both ways: no state
        is_on = on_series > 0.5
        is_off = on_series <= 0.5
    # Whole-array tests first: when no lamp was off (or none on) in the span, no row
    # can have switched, and the per-row tests are skipped.
    if not (is_on.any() and is_off.any()):
        return out
    both = is_on.any(axis=1) & is_off.any(axis=1)
    rows = np.flatnonzero(both)
    if rows.size == 0:
        return out
    filled = forward_fill(on_series[rows])
    a, b = filled[:, 1:], filled[:, :-1]
    with np.errstate(invalid="ignore"):
        changed = (a > 0.5) != (b > 0.5)
    changed &= ~np.isnan(a) & ~np.isnan(b)
    out[rows] = changed.sum(axis=1)
    return out


def cycling_rule(switches_1h: F32, lighting: Lighting) -> RuleResult:
    limit = lighting.cycling_switches_per_h
    condition = switches_1h >= limit
    return RuleResult(
        condition=condition,
        clear=switches_1h < max(1, limit // 2),
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"switches_per_h": switches_1h},
    )


# --- dimming opportunities -----------------------------------------------------------
def profile_level(profile: Mapping[str, float], local_hour: float) -> float:
    """Output level the dim profile asks for at ``local_hour`` (100 outside it)."""
    marks = sorted((int(k[:2]) + int(k[3:]) / 60, v) for k, v in profile.items())
    if not marks:
        return 100.0
    level = marks[-1][1]  # before the first mark of the day: the last one of yesterday
    for at, value in marks:
        if local_hour >= at:
            level = value
    return float(level)


def dimmable_hours(profile: Mapping[str, float]) -> list[float]:
    """Levels of the profile for each hour of a day (index = local hour)."""
    return [profile_level(profile, h + 0.5) for h in range(24)]


def dimming_rule(
    on: F32, dim_pct: F32, power_w: F32, now_ms: int, lighting: Lighting, utc_offset_min: int
) -> RuleResult:
    """A lamp running above the dim profile while the profile dims: what a schedule would
    save per night (kWh, VND at the tariff) if the lamp followed it all night.  The
    profile's times are the site's local time (``utc_offset_min`` east of UTC)."""
    hour = ((now_ms / HOUR_MS) + utc_offset_min / 60) % 24.0
    wanted = profile_level(lighting.dim_profile, hour)
    with np.errstate(invalid="ignore", divide="ignore"):
        full_w = np.where(dim_pct >= MIN_DIM_FOR_NORM, power_w * 100.0 / dim_pct, np.nan)
        levels = np.asarray([lv for lv in dimmable_hours(lighting.dim_profile) if lv < 100])
        # Wh per night: Σ over dimmed hours of full power × (current − profile) level.
        excess = np.clip(dim_pct[:, None] - levels[None, :], 0, None).sum(axis=1) / 100.0
        kwh = (full_w * excess / 1000.0).astype(np.float32)
        above = dim_pct > wanted + lighting.dim_margin_pct
    condition = (wanted < 100) & (on > 0.5) & above & (kwh > 0)
    clear = (wanted >= 100) | ~(on > 0.5) | (dim_pct <= wanted + lighting.dim_margin_pct)
    return RuleResult(
        condition=condition,
        clear=clear & ~condition,
        severity=np.zeros(condition.shape, dtype=np.int8),  # info
        values={
            "dim_pct": dim_pct,
            "profile_pct": np.full(condition.shape, wanted, dtype=np.float32),
            "kwh_per_night": kwh,
            "vnd_per_night": f32(kwh * lighting.tariff_vnd_per_kwh),
            "vnd_per_year": f32(kwh * lighting.tariff_vnd_per_kwh * 365),
        },
    )


# --- cabinets --------------------------------------------------------------------------
def hourly_energy(hourly_totals: F32) -> F32:
    """Wh per hour from the newest continuous counter reading of each hour."""
    return f32(np.diff(hourly_totals, axis=1))


def cabinet_rule(hourly_totals: F32, lighting: Lighting) -> RuleResult:
    """The last complete hour's energy against the median of the same hour and its
    neighbours one day earlier: a cabinet is its own baseline, robust to one odd hour."""
    cab = lighting.cabinet
    n, k = hourly_totals.shape
    if k < 28:  # needs a day and the hours around it
        nan = np.full(n, np.nan, dtype=np.float32)
        false = np.zeros(n, dtype=np.bool_)
        return RuleResult(false, false, np.zeros(n, np.int8), {"wh": nan})
    energy = hourly_energy(hourly_totals)  # column j: hour j+1 minus hour j
    last = energy[:, -2]  # the newest column is the running hour
    j = energy.shape[1] - 2 - 24
    base_cols = energy[:, j - 1 : j + 2]
    with np.errstate(invalid="ignore"):
        baseline = np.sort(base_cols, axis=1)[:, 1]  # median of three; NaN if any missing
        dev = ((last / baseline) - 1.0) * 100.0
        known = baseline >= cab.min_baseline_wh
        condition = known & (np.abs(dev) >= cab.deviation_pct)
        clear = ~condition & ~np.isnan(last)
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=severity_of(condition, condition & (np.abs(dev) >= 2 * cab.deviation_pct)),
        values={"wh": last, "baseline_wh": f32(baseline), "deviation_pct": f32(dev)},
    )


def energy_increase(totals: F32) -> F32:
    return counter_increase(totals)


def lamp_lights(on: F32) -> Bool:
    return np.asarray(on > 0.5, dtype=np.bool_)
