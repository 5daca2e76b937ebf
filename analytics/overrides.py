"""Per-district and per-station limits as per-row arrays (pure).

The rules compare a sensor's value with a limit element-wise, so a limit that
differs between districts or stations is simply an array with one value per
window row instead of a scalar: ``depth >= flood.street_warning_mm`` reads the
same either way.  :func:`row_limits` returns the site's section (``thresholds.flood``,
``.storm`` or ``.lighting``) unchanged when no override touches it, else a copy
whose overridable limits are float32 arrays over the rows (site < district <
station).  Only limits the rules use element-wise on per-row vectors are
overridable (analytics/thresholds.py ``FloodOverride`` and friends).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

import numpy as np
from pydantic import BaseModel

from analytics.thresholds import Override

Section = Literal["flood", "storm", "lighting"]
M = TypeVar("M", bound=BaseModel)


def row_limits(
    section: M,
    name: Section,
    overrides: Sequence[Override],
    devices: Sequence[str],
    districts: Sequence[str],
) -> M:
    """``section`` with its overridden limits as arrays aligned with ``devices``."""
    relevant = [o for o in overrides if getattr(o, name) is not None]
    if not relevant:
        return section
    if len(devices) != len(districts):
        raise ValueError("devices and districts must have one length")
    fields = list(type(getattr(relevant[0], name)).model_fields)
    n = len(devices)
    arrays = {f: np.full(n, getattr(section, f), dtype=np.float32) for f in fields}
    device_ids = np.asarray(devices, dtype=object)
    district_ids = np.asarray(districts, dtype=object)
    # districts first, so a station's own override lands last and wins
    for o in sorted(relevant, key=lambda o: o.station is not None):
        mask = device_ids == o.station if o.station else district_ids == o.district
        values = getattr(o, name)
        for f in fields:
            arrays[f][mask] = getattr(values, f)
    return section.model_copy(update=arrays)
