"""Device-health rules (pure, over the device registry and window arrays).

Offline after missed reporting intervals (or a Last-Will ``offline``), mass outage
(a share of a district silent at once: power or backhaul), stuck sensors and
spikes (WMO AWS stuck/step tests, docs/REFERENCE.md), out-of-range streams (QC
flags), low battery, weak signal, clock skew.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from deltasense.rulekernels.base import (
    CRITICAL,
    F32,
    I64,
    WARNING,
    Bool,
    RuleResult,
    count_valid,
    f32,
    group_count,
)
from deltasense.thresholds import Health


def offline_rule(
    last_seen_ms: I64,
    interval_s: F32,
    status_offline: Bool,
    resting: Bool,
    now_ms: int,
    health: Health,
) -> RuleResult:
    """``resting``: sleeping, or stopped on purpose (the device's own goodbye); such a
    device is not offline until it reports again."""
    with np.errstate(invalid="ignore"):
        silent_s = np.where(last_seen_ms >= 0, (now_ms - last_seen_ms) / 1000.0, np.nan)
        limit = interval_s * health.offline_after_missed_intervals
        silent = silent_s > limit
    condition = (silent | status_offline) & ~resting
    return RuleResult(
        condition=condition,
        clear=~condition,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"silent_s": f32(silent_s), "interval_s": interval_s},
    )


def mass_outage(
    district: I64, offline: Bool, last_seen_ms: I64, n_districts: int, health: Health
) -> RuleResult:
    """Per district: offline devices that fell silent within ``mass_outage_window_s``
    of the latest of them make at least ``mass_outage_fraction_of_district`` of it."""
    total = group_count(district, np.ones(district.shape, dtype=np.bool_), n_districts)
    latest = np.full(n_districts, -1, dtype=np.int64)
    ok = (district >= 0) & offline
    np.maximum.at(latest, district[ok], last_seen_ms[ok])
    window_ms = int(health.mass_outage_window_s * 1000)
    together = ok & (last_seen_ms >= latest[np.maximum(district, 0)] - window_ms)
    silent = group_count(district, together, n_districts)
    frac = np.where(total > 0, silent / np.maximum(total, 1), 0.0)
    condition = (
        (total >= health.mass_outage_min_devices)
        & (silent >= health.mass_outage_min_silent)
        & (frac >= health.mass_outage_fraction_of_district)
    )
    return RuleResult(
        condition=condition,
        clear=frac < health.mass_outage_fraction_of_district / 2,
        severity=np.where(condition, CRITICAL, 0).astype(np.int8),
        values={"silent": f32(silent), "devices": f32(total), "fraction": f32(frac)},
    )


def stuck_rule(series: Mapping[str, F32], health: Health) -> RuleResult:
    """``series``: metric → (stations × window) for the metrics with a stuck limit.

    Humidity that stayed at or above ``rh_saturated_pct`` all window long is not
    judged: saturation at the top of the range is physical."""
    limits = health.stuck.model_dump()
    n = next(iter(series.values())).shape[0]
    stuck = np.zeros(n, dtype=np.bool_)
    judged = np.zeros(n, dtype=np.bool_)
    values: dict[str, F32] = {}
    for metric, x in series.items():
        # Slot-major copy: reducing over axis 0 runs across all stations at once, far
        # faster than many short row reductions (min, max and counts are exact either way).
        xt = np.ascontiguousarray(x.T)
        if xt.shape[0]:
            low = f32(np.fmin.reduce(xt, axis=0))
            spread = f32(np.fmax.reduce(xt, axis=0) - low)
        else:
            low = np.full(n, np.nan, dtype=np.float32)
            spread = low.copy()
        enough = count_valid(x) >= health.stuck.min_readings
        if metric == "rh_pct":
            # Saturated air reads the top of the range for hours in rain or fog: a
            # physical limit, not a stuck sensor (the typhoon backtest's 12 false alerts).
            with np.errstate(invalid="ignore"):
                enough &= ~(low >= health.stuck.rh_saturated_pct)
        with np.errstate(invalid="ignore"):
            stuck |= enough & (spread < limits[metric])
        judged |= enough
        values[f"{metric}_change"] = np.where(enough, spread, np.nan).astype(np.float32)
    return RuleResult(
        condition=stuck,
        clear=judged & ~stuck,
        severity=np.where(stuck, WARNING, 0).astype(np.int8),
        values=values,
    )


def spike_rule(series: Mapping[str, F32], health: Health) -> RuleResult:
    """A spike: a value further than the per-minute step limit from both neighbours,
    on the same side (WMO AWS step test applied both ways)."""
    limits = health.step_per_min.model_dump()
    n = next(iter(series.values())).shape[0]
    count = np.zeros(n, dtype=np.float32)
    for metric, x in series.items():
        step = np.float32(limits[metric])
        # Slot-major, so the count runs across all stations at once; b - a is exactly
        # -(a - b) in IEEE arithmetic, so two differences serve both directions.
        xt = np.ascontiguousarray(x.T)
        mid = xt[1:-1]
        d_before = mid - xt[:-2]
        d_after = mid - xt[2:]
        with np.errstate(invalid="ignore"):
            up = (d_before > step) & (d_after > step)
            down = (d_before < -step) & (d_after < -step)
        up |= down
        count += up.sum(axis=0)
    condition = count >= 1
    return RuleResult(
        condition=condition,
        clear=~condition,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"spikes": count},
    )


def level_spike_rule(before_cm: F32, spike_cm: F32, after_cm: F32, jump_mm: float) -> RuleResult:
    """A water-level reading more than ``jump_mm`` away from both the reading before it
    and the reading after it, on the same side: an echo or a splash, not water (water
    that rises that fast stays up; the flood rules hold such a jump unconfirmed and
    the next reading drops it).  Three consecutive readings per station, gaps of any
    length between them (a dry drain reports every 5 min)."""
    with np.errstate(invalid="ignore"):
        rise_mm = (spike_cm - before_cm) * 10.0
        back_mm = (spike_cm - after_cm) * 10.0
        up = (rise_mm > jump_mm) & (back_mm > jump_mm)
        down = (rise_mm < -jump_mm) & (back_mm < -jump_mm)
    condition = up | down
    return RuleResult(
        condition=condition,
        clear=~condition,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"spike_mm": f32(np.abs(rise_mm))},
    )


def qc_rule(flagged_series: F32, health: Health) -> RuleResult:
    """Readings with QC-flagged (physically impossible) values in the recent slots."""
    with np.errstate(invalid="ignore"):
        hits = flagged_series > 0
    if hits.any():
        flagged = hits.sum(axis=1).astype(np.float32)
    else:  # the usual tick: nothing flagged, no per-row count needed
        flagged = np.zeros(flagged_series.shape[0], dtype=np.float32)
    condition = flagged >= health.qc_min_flagged
    return RuleResult(
        condition=condition,
        clear=flagged == 0,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"flagged_readings": flagged},
    )


def low_rule(value: F32, limit: float, deadband: float, name: str) -> RuleResult:
    """Below ``limit`` (battery volts, signal dBm); clear above ``limit + deadband``."""
    with np.errstate(invalid="ignore"):
        condition = value < limit
        clear = value >= limit + deadband
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={name: value},
    )


def skew_rule(skew_s: F32, health: Health) -> RuleResult:
    with np.errstate(invalid="ignore"):
        condition = np.abs(skew_s) > health.clock_skew_s
        clear = np.abs(skew_s) <= health.clock_skew_s / 2
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=np.where(condition, WARNING, 0).astype(np.int8),
        values={"skew_s": skew_s},
    )
