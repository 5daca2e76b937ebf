"""Range quality control: which fields of a reading are physically impossible.

A flagged value is kept (stored with a ``qc`` flag) but never used by alert
rules (docs/CONTRACT.md, "What the platform does with bad input").  Ranges follow
the WMO AWS guidelines quoted in docs/REFERENCE.md, with a tighter air-temperature
range for Bạc Liêu's tropical lowland climate; the rest are device limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from deltasense.contract import FieldValue, Kind

# (low, high), inclusive.
RANGES: Final[dict[str, tuple[float, float]]] = {
    # weather: WMO AWS ranges; temperature tightened for the site
    "t_c": (5.0, 50.0),
    "rh_pct": (0.0, 100.0),
    "p_hpa": (500.0, 1100.0),
    "wind_ms": (0.0, 75.0),
    "gust_ms": (0.0, 75.0),
    "wind_dir_deg": (0.0, 360.0),
    "rain_mm_total": (0.0, 1e7),
    "lux": (0.0, 200_000.0),
    # water: a level 5 m below to 10 m above the datum covers drains and canals
    "level_cm": (-500.0, 1000.0),
    "dist_mm": (0.0, 20_000.0),
    # lamp and meter
    "dim_pct": (0.0, 100.0),
    "power_w": (0.0, 100_000.0),
    "energy_wh_total": (0.0, 1e12),
    "v": (0.0, 500.0),
    "a": (0.0, 500.0),
    "pf": (0.0, 1.0),
    "hz": (40.0, 70.0),
    # health
    "rssi_dbm": (-130.0, 0.0),
    "batt_v": (0.0, 60.0),
}


def out_of_range(kind: Kind, fields: Mapping[str, FieldValue]) -> tuple[str, ...]:
    """Names of numeric fields outside their range, in the order given.

    Ingest checks the same RANGES inside its encoding pass instead
    (``schema.row_lines``, its hot path); tests/unit/test_ingest_rows.py holds the
    two to the same flags."""
    del kind  # ranges are per field today; per-kind limits would go here
    flagged: list[str] = []
    for name, value in fields.items():
        bounds = RANGES.get(name)
        if bounds is None or isinstance(value, bool):
            continue
        low, high = bounds
        if not low <= value <= high:
            flagged.append(name)
    return tuple(flagged)
