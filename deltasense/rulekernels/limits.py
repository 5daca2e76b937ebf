"""Per-district and per-station limits as typed per-row views (pure).

The rules compare a sensor's value with a limit element-wise, so a limit that
differs between districts or stations is simply an array with one value per
window row instead of a scalar: ``depth >= limits.street_warning_mm`` reads the
same either way.  :func:`row_limits` builds one of the views below for a kind's
rows: the site's value (a float) where no override touches the section, else a
float32 array over the rows (site < district < station).

Only limits the rules use element-wise on per-row vectors are overridable; each
view has exactly the fields of its override model in deltasense/thresholds.py
(``FloodOverride`` and friends), which a unit test keeps in step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

from deltasense.thresholds import Override, Thresholds

Section = Literal["flood", "storm", "lighting"]
# One value for every row (the site's), or one per row.
Limit: TypeAlias = float | npt.NDArray[np.float32]


@dataclass(frozen=True)
class RowLimits:
    section: ClassVar[Section]


@dataclass(frozen=True)
class FloodLimits(RowLimits):
    """Street-flood depths per water row."""

    section: ClassVar[Section] = "flood"
    street_warning_mm: Limit
    street_critical_mm: Limit


@dataclass(frozen=True)
class StormLimits(RowLimits):
    """Gust limits per weather station."""

    section: ClassVar[Section] = "storm"
    gust_warning_ms: Limit
    gust_critical_ms: Limit


@dataclass(frozen=True)
class LightingLimits(RowLimits):
    """Power-drift limit per lamp."""

    section: ClassVar[Section] = "lighting"
    power_drift_pct: Limit


L = TypeVar("L", bound=RowLimits)


def row_limits(
    view: type[L],
    thresholds: Thresholds,
    devices: Sequence[str],
    districts: Sequence[str],
) -> L:
    """``view`` of the site's limits with the overridden ones as arrays aligned with
    ``devices``."""
    if len(devices) != len(districts):
        raise ValueError("devices and districts must have one length")
    site = {"flood": thresholds.flood, "storm": thresholds.storm, "lighting": thresholds.lighting}
    section = site[view.section]
    names = [f.name for f in dataclasses.fields(view)]
    relevant = [o for o in thresholds.overrides if _part(o, view.section) is not None]
    if not relevant:
        return view(**{f: getattr(section, f) for f in names})
    n = len(devices)
    arrays = {f: np.full(n, getattr(section, f), dtype=np.float32) for f in names}
    device_ids = np.asarray(devices, dtype=object)
    district_ids = np.asarray(districts, dtype=object)
    # districts first, so a station's own override lands last and wins
    for o in sorted(relevant, key=lambda o: o.station is not None):
        mask = device_ids == o.station if o.station else district_ids == o.district
        values = _part(o, view.section)
        for f in names:
            arrays[f][mask] = getattr(values, f)
    return view(**arrays)


def _part(override: Override, section: Section) -> object | None:
    parts = {"flood": override.flood, "storm": override.storm, "lighting": override.lighting}
    return parts[section]
