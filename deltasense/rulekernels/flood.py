"""Street flooding: water on the road at street-drain stations (pure, over arrays).

A street drain's ``level_cm`` is the water surface above the road surface, so
the depth of water on the street is ``level_cm × 10`` mm.  Depths at or below
the noise floor count as dry (FloodNet).  The rule compares depth with the
warning and critical limits; an active alert clears only below
``warning − deadband`` so a level hovering at the limit does not flap.

Canal stations measure against the national gauge datum, not a road, and are
excluded.  A NaN level (no reading in the window, or a value QC flagged) yields
neither condition nor clear: whatever state the subject is in holds.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from deltasense.rulekernels.base import RuleResult, severity_of
from deltasense.rulekernels.limits import FloodLimits
from deltasense.thresholds import Flood

NONE, WARNING, CRITICAL = 0, 1, 2
# The street-flood rule's name (its alerts' ``rule``, its key in the thresholds'
# per-rule tables): analytics declares the rule under it (analytics/ruleset.py), the
# edge gateway raises its offline alerts under it, so the two name one rule.
STREET_FLOOD: Final = "street-flood"


def street_flood(
    level_cm: npt.ArrayLike,
    *,
    excluded: npt.ArrayLike,
    flood: Flood,
    limits: FloodLimits,
    deadband_mm: float,
) -> RuleResult:
    """Evaluate the street-flood rule for every subject.

    ``level_cm``: last level per subject (NaN = missing or unusable);
    ``excluded``: True for subjects the rule does not judge (canal stations);
    ``limits``: the warning and critical depths per subject.  Excluded subjects
    always satisfy the clear condition, so an alert opened before a station was
    reclassified resolves.  ``values["depth_mm"]`` is NaN where not usable.
    """
    level = np.asarray(level_cm, dtype=np.float32)
    skip = np.asarray(excluded, dtype=np.bool_)
    if level.shape != skip.shape:
        raise ValueError("level_cm and excluded must have one shape")
    depth = level * np.float32(10.0)
    depth = np.where(depth <= flood.noise_floor_mm, np.float32(0.0), depth)  # NaN stays NaN
    depth = np.where(skip, np.float32(np.nan), depth).astype(np.float32)
    known = ~np.isnan(depth)
    with np.errstate(invalid="ignore"):
        condition = known & (depth >= limits.street_warning_mm)
        critical = known & (depth >= limits.street_critical_mm)
        clear = (known & (depth < limits.street_warning_mm - deadband_mm)) | skip
    severity = np.where(critical, CRITICAL, np.where(condition, WARNING, NONE)).astype(np.int8)
    return RuleResult(
        condition=condition, clear=clear, severity=severity, values={"depth_mm": depth}
    )


# --- noise handling (FloodNet-style) ----------------------------------------------------
def plausible_latest(
    latest_cm: npt.ArrayLike, previous_cm: npt.ArrayLike, gap_min: npt.ArrayLike, flood: Flood
) -> npt.NDArray[np.float32]:
    """The newest level, NaN where it rose faster than ``max_rise_mm_per_min`` since the
    previous reading (``gap_min`` minutes earlier, at least one slot), or by more than
    ``spike_jump_mm`` at all: FloodNet drops such rises as noise, held unconfirmed.
    A real rise shows again in the next reading, which is then compared with this
    one and kept; a single-sample spike (a drain's +40-60 cm echo on a dry day) is
    gone by then.  Without a previous reading (NaN) the newest is judged as is, so
    a new drain's first reading over the limit still raises an alert."""
    latest = np.asarray(latest_cm, dtype=np.float32)
    prev = np.asarray(previous_cm, dtype=np.float32)
    gap = np.maximum(np.asarray(gap_min, dtype=np.float32), np.float32(1.0))
    with np.errstate(invalid="ignore"):
        jump_mm = (latest - prev) * 10.0
        impossible = jump_mm > flood.max_rise_mm_per_min * gap
        # More than ``spike_jump_mm`` in one reporting step is held as unconfirmed
        # whatever the step's length: a node over the warning depth reports every
        # 60 s, so a real rise is confirmed by the next reading.
        unconfirmed = jump_mm > flood.spike_jump_mm
    impossible |= unconfirmed
    return np.where(impossible, np.float32(np.nan), latest).astype(np.float32)


def clean_depth(level_cm: npt.NDArray[np.float32], flood: Flood) -> npt.NDArray[np.float32]:
    """(stations × slots) of levels → depth mm with the noise floor applied and
    single-slot spikes removed (Hampel filter: a value further than ``spike_mad_k``
    scaled MADs and ``spike_min_mm`` from the median of itself and its two
    neighbours on each side is dropped)."""
    depth = level_cm.astype(np.float32) * np.float32(10.0)
    depth = np.where(depth <= flood.noise_floor_mm, np.float32(0.0), depth).astype(np.float32)
    k = depth.shape[1]
    if k < 5:
        return depth
    # Rows dry over the whole span (nearly all drains, nearly always) have no spike to
    # remove beyond the noise floor: filter only the others.
    wet = np.flatnonzero(np.fmax.reduce(depth, axis=1) > 0)
    if wet.size < depth.shape[0]:
        if wet.size:
            depth[wet] = clean_depth(level_cm[wet], flood)
        return depth
    padded = np.pad(depth, ((0, 0), (2, 2)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 5, axis=1)
    with np.errstate(invalid="ignore"):
        med = _nanmedian_last(windows)
        mad = _nanmedian_last(np.abs(windows - med[..., None])) * np.float32(1.4826)
        spike = np.abs(depth - med) > np.maximum(flood.spike_mad_k * mad, flood.spike_min_mm)
    return np.where(spike, np.float32(np.nan), depth).astype(np.float32)


def _nanmedian_last(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Median over the last axis ignoring NaN (NaN where all are), by one sort:
    ``np.nanmedian`` is an order of magnitude slower on many short rows."""
    ordered = np.sort(x, axis=-1)  # NaN sort last
    count = np.count_nonzero(~np.isnan(x), axis=-1)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(ordered, (count // 2)[..., None].clip(max=x.shape[-1] - 1), axis=-1)
    out = (lo + hi[..., 0]) / np.float32(2.0)
    return np.where(count > 0, out, np.float32(np.nan)).astype(np.float32)


# --- rate of rise and time to threshold ---------------------------------------------------
def rise_rule(
    depth_mm: npt.NDArray[np.float32],
    slope_mm_min: npt.NDArray[np.float32],
    fitted_mm: npt.NDArray[np.float32],
    *,
    excluded: npt.NDArray[np.bool_],
    flood: Flood,
    limits: FloodLimits,
) -> RuleResult:
    """Street water rising faster than ``drain_rise_warning_mm_per_5min`` (from a linear
    fit over the cleaned depth); the values say how long until the next limit."""
    per_5 = slope_mm_min * np.float32(5.0)
    limit = flood.drain_rise_warning_mm_per_5min
    with np.errstate(invalid="ignore", divide="ignore"):
        wet = depth_mm > flood.noise_floor_mm
        below_critical = depth_mm < limits.street_critical_mm
        condition = (per_5 >= limit) & wet & ~excluded & below_critical
        clear = (per_5 < limit / 2) | excluded | (depth_mm >= limits.street_critical_mm)
        target = np.where(
            fitted_mm < limits.street_warning_mm,
            limits.street_warning_mm,
            limits.street_critical_mm,
        )
        eta = np.where(slope_mm_min > 0, (target - fitted_mm) / slope_mm_min, np.nan)
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=np.where(condition, WARNING, NONE).astype(np.int8),
        values={
            "depth_mm": depth_mm,
            "rise_mm_per_5min": per_5.astype(np.float32),
            "minutes_to_next_limit": np.maximum(eta, 0).astype(np.float32),
        },
    )


# --- canal stations against BĐ I/II/III ---------------------------------------------------
def canal_rule(
    level_cm: npt.NDArray[np.float32],
    bd_m: npt.NDArray[np.float32],
    deadband_mm: float,
) -> RuleResult:
    """``bd_m``: (stations × 3) alarm levels I/II/III in m, NaN where unknown (the
    placeholders): an unknown level never fires.  Decision 18/2021 Art. 45: between
    BĐ I and II → risk 1, II–III → 2, ≥ III → 3.  Warning at I/II, critical at III."""
    level_m = level_cm.astype(np.float32) / np.float32(100.0)
    with np.errstate(invalid="ignore"):
        reached = level_m[:, None] >= bd_m
        risk = np.where(reached[:, 2], 3, np.where(reached[:, 1], 2, np.where(reached[:, 0], 1, 0)))
        lowest = np.fmin(np.fmin(bd_m[:, 0], bd_m[:, 1]), bd_m[:, 2])
        clear = (level_m < lowest - deadband_mm / 1000.0) | np.isnan(lowest)
    condition = risk >= 1
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=severity_of(condition, risk >= 3),
        values={"level_m": level_m, "bd_lowest_m": lowest.astype(np.float32)},
        risk=np.maximum(risk, 1).astype(np.int8),
    )


# --- district roll-up and compound rain + high water ----------------------------------------
def district_rule(
    flooded: npt.NDArray[np.int64],
    critical: npt.NDArray[np.int64],
    drains: npt.NDArray[np.int64],
    canal_risk: npt.NDArray[np.int8],
    flood: Flood,
) -> RuleResult:
    """Per district [design]: at least ``district_min_drains`` flooded street drains (one
    drain alone is its own street-flood alert, not a district's) or a canal at an
    alarm level.  Risk: the canal's level, or 1 for drains, 2 when a drain is
    critical or half the drains are under water.  Clears only once no drain floods
    and no canal is at an alarm level."""
    drains_flooded = flooded >= flood.district_min_drains
    heavy = drains_flooded & ((critical > 0) | (2 * flooded >= drains))
    risk = np.maximum(np.where(heavy, 2, np.where(drains_flooded, 1, 0)), canal_risk)
    condition = risk >= 1
    # Hysteresis on the count: the roll-up fires at ``district_min_drains`` but holds
    # while any drain there still floods, so a second drain wetting and drying beside
    # a flooded one does not raise the district twice in one episode.
    clear = (flooded == 0) & (canal_risk == 0)
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=severity_of(condition, risk >= 2),
        values={
            "drains_flooded": flooded.astype(np.float32),
            "drains": drains.astype(np.float32),
            "canal_risk": canal_risk.astype(np.float32),
        },
        risk=np.maximum(risk, 1).astype(np.int8),
    )


def compound_rule(
    rain_1h_mm: npt.NDArray[np.float32],
    canal_margin_m: npt.NDArray[np.float32],
    street_wet: npt.NDArray[np.bool_],
    *,
    heavy_mm_h: float,
    flood: Flood,
) -> RuleResult:
    """Heavy rain (≥ ``heavy_mm_h`` in the last hour) on a district whose canal stands
    within ``compound_canal_margin_m`` of its lowest alarm level: the drains cannot
    empty into the canal.  Critical when street water is already rising there.
    ``canal_margin_m`` = level − lowest alarm level (NaN: no canal known)."""
    with np.errstate(invalid="ignore"):
        high = canal_margin_m >= -flood.compound_canal_margin_m
        raining = rain_1h_mm >= heavy_mm_h
        clear = (rain_1h_mm < heavy_mm_h / 2) | (
            canal_margin_m < -2 * flood.compound_canal_margin_m
        )
    condition = high & raining
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=severity_of(condition, condition & street_wet),
        values={"rain_1h_mm": rain_1h_mm, "canal_above_alarm_m": canal_margin_m},
        risk=np.where(condition & street_wet, 3, 2).astype(np.int8),
    )
