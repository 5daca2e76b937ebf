"""Rule thresholds the console draws on charts (street-flood lines, gust and cấp lines).

The numbers are the rule thresholds analytics applies: ``deltasense.thresholds``
(the shipped defaults with the site's ``thresholds_file`` merged over them, validated
by the same model), read here, never re-parsed.  A site file that analytics would
refuse is logged and the shipped defaults are drawn: the console keeps its charts,
and analytics' own start-up names the problem.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from deltasense.thresholds import Thresholds, ThresholdsError, load_thresholds

_LOG = logging.getLogger(__name__)


def site_thresholds(thresholds_file: Path | None) -> Thresholds:
    """The thresholds analytics runs with; the defaults when the site's file is refused."""
    if thresholds_file is not None:
        try:
            return load_thresholds(thresholds_file)
        except ThresholdsError as exc:
            _LOG.warning("chart lines: %s; drawing the shipped thresholds", exc)
    return load_thresholds()


def wind_caps(thresholds: Thresholds) -> dict[int, float]:
    """cấp → its lower bound in m/s (``[storm.wind_cap_ms]``)."""
    return dict(sorted(thresholds.storm.wind_cap_ms.items()))


def chart_lines(thresholds: Thresholds) -> dict[str, list[dict[str, Any]]]:
    """Field → lines ``{value, level, label}`` in the field's own unit."""
    flood, storm = thresholds.flood, thresholds.storm
    # Water level is sent in cm; the flood rule's depths are in mm.
    lines: dict[str, list[dict[str, Any]]] = {
        "level_cm": [
            _line(flood.street_warning_mm / 10, "warning", "street_flood_warning"),
            _line(flood.street_critical_mm / 10, "critical", "street_flood_critical"),
        ],
        "gust_ms": [
            _line(storm.gust_warning_ms, "warning", "gust_warning"),
            _line(storm.gust_critical_ms, "critical", "gust_critical"),
        ],
    }
    # A storm from cấp 8; lower cấp would crowd the chart.
    caps = [_line(v, "info", f"cap_{cap}") for cap, v in wind_caps(thresholds).items() if cap >= 8]
    if caps:
        lines["wind_ms"] = caps
    return lines


def _line(value: float, level: str, label: str) -> dict[str, Any]:
    return {"value": value, "level": level, "label": label}
