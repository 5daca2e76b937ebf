"""Rule thresholds the console draws on charts (street-flood lines, gust and cấp lines).

The numbers belong to the rule thresholds file that analytics validates and applies:
the shipped defaults (``deltasense/thresholds.toml``, package data) with the site's
``thresholds_file`` merged over them.  The API must not import analytics (layers), so
it reads that same TOML as data, picks only the display keys below and checks each
one; analytics stays the owner of the numbers and of the file's full validation.
A key it cannot read is left out (the chart draws no line) rather than guessed.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import tomllib
from pathlib import Path
from typing import Any, Final

_LOG = logging.getLogger(__name__)
DEFAULTS: Final = "thresholds.toml"


def _defaults_path() -> Path | None:
    # find_spec on a top-level package locates it without running its code.
    spec = importlib.util.find_spec("deltasense")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / DEFAULTS
        if path.is_file():
            return path
    return None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        _LOG.warning("chart lines: cannot read %s: %s", path, exc)
        return {}


def _num(doc: dict[str, Any], *keys: str) -> float | None:
    node: Any = doc
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
    if isinstance(node, bool) or not isinstance(node, int | float) or not math.isfinite(node):
        return None
    return float(node)


def thresholds_document(thresholds_file: Path | None) -> dict[str, Any]:
    """The shipped defaults with the site's file merged over them, as analytics reads them."""
    defaults = _defaults_path()
    doc = _read(defaults) if defaults is not None else {}
    return _merge(doc, _read(thresholds_file)) if thresholds_file is not None else doc


def wind_caps(doc: dict[str, Any]) -> dict[int, float]:
    """cấp → its lower bound in m/s (``[storm.wind_cap_ms]``)."""
    storm = doc.get("storm")
    caps = storm.get("wind_cap_ms") if isinstance(storm, dict) else None
    out: dict[int, float] = {}
    if isinstance(caps, dict):
        for cap in caps:
            value = _num(caps, cap)
            if str(cap).isdigit() and value is not None:
                out[int(cap)] = value
    return dict(sorted(out.items()))


def chart_lines(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Field → lines ``{value, level, label}`` in the field's own unit."""
    lines: dict[str, list[dict[str, Any]]] = {}

    def add(field: str, value: float | None, level: str, label: str) -> None:
        if value is not None:
            lines.setdefault(field, []).append({"value": value, "level": level, "label": label})

    warn_mm = _num(doc, "flood", "street_warning_mm")
    crit_mm = _num(doc, "flood", "street_critical_mm")
    # Water level is sent in cm; the flood rule's depths are in mm.
    add("level_cm", None if warn_mm is None else warn_mm / 10, "warning", "street_flood_warning")
    add("level_cm", None if crit_mm is None else crit_mm / 10, "critical", "street_flood_critical")
    add("gust_ms", _num(doc, "storm", "gust_warning_ms"), "warning", "gust_warning")
    add("gust_ms", _num(doc, "storm", "gust_critical_ms"), "critical", "gust_critical")
    for cap, value in wind_caps(doc).items():
        if cap >= 8:  # a storm from cấp 8; lower cấp would crowd the chart
            add("wind_ms", value, "info", f"cap_{cap}")
    return lines
