"""Rain totals from cumulative tipping-bucket counters, and the heavy-rain rule.

Counters arrive made continuous across reboots (:mod:`analytics.counters`), so a
total over a span is the counter's increase over that span
(:func:`~deltasense.rulekernels.base.counter_increase`).  1 h and 3 h come from the
1-minute window; 24 h and the hydromet day (07:00–07:00 local) from the hourly
window, so they are exact to the hour: the newest reading of the hour before
the span's start is its base.

``heavy-rain`` per station [design, from the docs/REFERENCE.md classes]:
warning for ≥ 25 mm/h (urban warning) or a heavy day (≥ 51 mm) while it still
rains heavily (≥ 7.6 mm/h); critical for ≥ 50 mm/h (violent), ≥ 76 mm/3 h (the
urban drainage design rain) or a very heavy day (> 100 mm) while it still rains
heavily.  It clears once the hour is below *moderate* (2.5 mm/h, AMS) and the
3 h total below the urban limit, after ``keep_firing_for``: the hysteresis
between the firing limits (25 mm/h, or 7.6 mm/h on a heavy day) and 2.5 mm/h is
what stops a rain hovering at a limit from flapping.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from deltasense.rulekernels.base import (
    F32,
    I64,
    RuleResult,
    counter_increase,
    f32,
    first_valid,
    last_valid,
    severity_of,
)
from deltasense.thresholds import Rain

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000


def total_over(minute_totals: F32, minutes: int, slot_min: float = 1.0) -> F32:
    """Rain (mm) over the newest ``minutes`` of a 1-min counter window."""
    k = min(minute_totals.shape[1], round(minutes / slot_min) + 1)
    return counter_increase(minute_totals[:, -k:])


def day_start_ms(now_ms: int, start_local_h: int, utc_offset_min: int) -> int:
    """Start (UTC ms) of the hydromet day holding ``now_ms``, which starts at
    ``start_local_h`` in the site's local time (``utc_offset_min`` east of UTC)."""
    offset_ms = utc_offset_min * 60_000
    local = now_ms + offset_ms - start_local_h * HOUR_MS
    return local - local % DAY_MS - offset_ms + start_local_h * HOUR_MS


def total_since(hourly_totals: F32, hour_times_ms: I64, current: F32, since_ms: int) -> F32:
    """Rain since ``since_ms``: ``current`` counter minus the newest hourly reading
    before ``since_ms`` (or, without one, the first reading after it)."""
    before = hour_times_ms < since_ms
    base, _ = last_valid(hourly_totals[:, before])
    base = np.where(np.isnan(base), first_valid(hourly_totals[:, ~before]), base)
    out = f32(current - base)
    return np.where(out < 0, np.float32(0), out).astype(np.float32)


def heavy_rain_rule(r1h: F32, r3h: F32, r24h: F32, rday: F32, rain: Rain) -> RuleResult:
    longest = np.fmax(r24h, rday)
    with np.errstate(invalid="ignore"):
        raining = r1h >= rain.mm_1h.heavy
        warn = (r1h >= rain.mm_1h.urban_warning) | ((longest >= rain.mm_24h.heavy) & raining)
        crit = (
            (r1h >= rain.mm_1h.violent)
            | (r3h >= rain.mm_3h_urban_critical)
            | ((longest > rain.mm_24h.very_heavy) & raining)
        )
        # Clear below *moderate*, not at the heavy limit the day branch fires on: rain
        # hovering at 7.6 mm/h would otherwise fire and clear in turn.
        clear = (r1h < rain.mm_1h.moderate) & ~(r3h >= rain.mm_3h_urban_critical)
    condition = warn | crit
    return RuleResult(
        condition=condition,
        clear=clear,
        severity=severity_of(condition, crit),
        values={"rain_1h_mm": r1h, "rain_3h_mm": r3h, "rain_24h_mm": r24h, "rain_day_mm": rday},
        risk=np.where(crit, 2, 1).astype(np.int8),
    )
