"""What every rule returns, and NaN-aware row reductions shared by the rule families.

A rule is a pure function from arrays (one row per subject) to a
:class:`RuleResult`: where its condition holds, where its clear condition holds
(limit − deadband; neither where the data say nothing, so the lifecycle holds
its state), a severity per subject (0 info, 1 warning, 2 critical), optionally
a disaster risk level 1–5, and the values worth showing an operator.

The helpers avoid ``np.nanmean``/``np.nanmax`` on purpose: those warn on
all-NaN rows and are slower than masked sums on the (sensors × slots) float32
arrays the windows hand out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

NONE: Final = 0
WARNING: Final = 1
CRITICAL: Final = 2


@dataclass(frozen=True)
class RuleResult:
    condition: Bool
    clear: Bool
    severity: I8
    values: dict[str, F32] = field(default_factory=dict)
    risk: I8 | None = None

    def __post_init__(self) -> None:
        n = self.condition.shape
        if self.clear.shape != n or self.severity.shape != n:
            raise ValueError("condition, clear and severity must have one shape")
        if self.risk is not None and self.risk.shape != n:
            raise ValueError("risk must have the shape of condition")


def f32(x: npt.ArrayLike) -> F32:
    return np.asarray(x, dtype=np.float32)


def severity_of(warning: Bool, critical: Bool) -> I8:
    return np.where(critical, CRITICAL, np.where(warning, WARNING, NONE)).astype(np.int8)


def shared_columns(x: F32) -> Bool | None:
    """The columns holding every row's values when all rows miss the same columns (a
    full window, or one whose head slot is still empty: the usual tick), else None.
    One whole-array test, far cheaper than a count per short row."""
    missing = np.isnan(x)
    if x.shape[0] == 0 or not missing.any():
        return np.ones(x.shape[1], dtype=np.bool_)
    if (missing == missing[0]).all():
        return np.asarray(~missing[0], dtype=np.bool_)
    return None


def count_valid(x: F32) -> I64:
    """Non-NaN values per row."""
    keep = shared_columns(x)
    if keep is not None:
        return np.full(x.shape[0], np.count_nonzero(keep), dtype=np.int64)
    return np.asarray(np.count_nonzero(~np.isnan(x), axis=1), dtype=np.int64)


def row_mean(x: F32, min_valid: int = 1) -> F32:
    """Mean of each row's non-NaN values; NaN where fewer than ``min_valid``."""
    valid = ~np.isnan(x)
    n = valid.sum(axis=1)
    total = np.where(valid, x, np.float32(0)).sum(axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / n).astype(np.float32)
    out[n < max(1, min_valid)] = np.nan
    return np.asarray(out, dtype=np.float32)


def row_max(x: F32) -> F32:
    """Each row's maximum ignoring NaN (NaN where the row has none)."""
    if x.shape[1] == 0:
        return np.full(x.shape[0], np.nan, dtype=np.float32)
    return np.asarray(np.fmax.reduce(x, axis=1), dtype=np.float32)


def row_min(x: F32) -> F32:
    """Each row's minimum ignoring NaN (NaN where the row has none)."""
    if x.shape[1] == 0:
        return np.full(x.shape[0], np.nan, dtype=np.float32)
    return np.asarray(np.fmin.reduce(x, axis=1), dtype=np.float32)


def last_valid(x: F32) -> tuple[F32, I64]:
    """Each row's newest non-NaN value and its column (−1 and NaN where none)."""
    n, k = x.shape
    if k == 0:
        return np.full(n, np.nan, dtype=np.float32), np.full(n, -1, dtype=np.int64)
    valid = ~np.isnan(x)
    col = (k - 1 - np.argmax(valid[:, ::-1], axis=1)).astype(np.int64)
    has = valid.any(axis=1)
    col[~has] = -1
    out = x[np.arange(n), np.maximum(col, 0)].astype(np.float32)
    out[~has] = np.nan
    return out, col


def first_valid(x: F32) -> F32:
    n, k = x.shape
    if k == 0:
        return np.full(n, np.nan, dtype=np.float32)
    valid = ~np.isnan(x)
    col = np.argmax(valid, axis=1)
    out = x[np.arange(n), col].astype(np.float32)
    out[~valid.any(axis=1)] = np.nan
    return np.asarray(out, dtype=np.float32)


def forward_fill(x: F32) -> F32:
    """NaN gaps filled with the previous valid value of the row (leading NaN stay)."""
    n, k = x.shape
    valid = ~np.isnan(x)
    idx = np.where(valid, np.arange(k), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = x[np.arange(n)[:, None], idx]
    out[~np.maximum.accumulate(valid, axis=1)] = np.nan
    return out


def counter_increase(totals: F32) -> F32:
    """Increase of a cumulative counter over the columns of each row.

    ``totals`` are counters already made continuous across resets (see
    :mod:`analytics.counters`).  The increase is the running maximum at the end
    (= the row's maximum) minus the oldest reading, which ignores NaN gaps and a
    glitch downwards.  NaN where no reading; 0 where only one.
    """
    if totals.shape[1] == 0:
        return np.full(totals.shape[0], np.nan, dtype=np.float32)
    return (row_max(totals) - first_valid(totals)).astype(np.float32)


def linear_fit(y: F32, min_points: int = 3) -> tuple[F32, F32]:
    """Least-squares slope (per column) and fitted value at the last column, per row,
    over the non-NaN points; NaN where fewer than ``min_points``."""
    k = y.shape[1]
    valid = ~np.isnan(y)
    x = np.arange(k, dtype=np.float64)
    cnt = valid.sum(axis=1).astype(np.float64)
    xv = np.where(valid, x, 0.0)
    yv = np.where(valid, y, 0.0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xv.sum(axis=1) / cnt
        my = yv.sum(axis=1) / cnt
        dx = np.where(valid, x - mx[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        sxy = (dx * (yv - my[:, None])).sum(axis=1)
        slope = sxy / sxx
        at_end = my + slope * (k - 1 - mx)
    bad = (cnt < min_points) | (sxx == 0)
    slope[bad] = np.nan
    at_end[bad] = np.nan
    return slope.astype(np.float32), at_end.astype(np.float32)


def group_count(groups: I64, mask: Bool, n_groups: int) -> I64:
    """How many rows per group have ``mask`` set (groups < 0 are ignored)."""
    ok = groups >= 0
    return np.bincount(groups[ok & mask], minlength=n_groups).astype(np.int64)[:n_groups]


def group_max(groups: I64, values: F32, n_groups: int) -> F32:
    """Per-group maximum of the non-NaN values (NaN for empty groups)."""
    out = np.full(n_groups, -np.inf, dtype=np.float32)
    ok = (groups >= 0) & ~np.isnan(values)
    np.maximum.at(out, groups[ok], values[ok])
    out[np.isneginf(out)] = np.nan
    return out
