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

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from analytics.lifecycle import MessageContext
from analytics.thresholds import Flood
from deltasense.alerts import Message

RULE: Final = "street-flood"
KIND: Final = "flood"
NONE, WARNING, CRITICAL = 0, 1, 2


@dataclass(frozen=True)
class FloodEval:
    """Per-subject result of one evaluation; arrays all have one length."""

    depth_mm: npt.NDArray[np.float32]  # NaN where not usable
    condition: npt.NDArray[np.bool_]  # depth ≥ warning
    clear: npt.NDArray[np.bool_]  # depth < warning − deadband (or excluded)
    severity: npt.NDArray[np.int8]  # 0 none, 1 warning, 2 critical


def street_flood(
    level_cm: npt.ArrayLike,
    *,
    excluded: npt.ArrayLike,
    flood: Flood,
    deadband_mm: float,
) -> FloodEval:
    """Evaluate the street-flood rule for every subject.

    ``level_cm``: last level per subject (NaN = missing or unusable);
    ``excluded``: True for subjects the rule does not judge (canal stations).
    Excluded subjects always satisfy the clear condition, so an alert opened
    before a station was reclassified resolves.
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
        condition = known & (depth >= flood.street_warning_mm)
        critical = known & (depth >= flood.street_critical_mm)
        clear = (known & (depth < flood.street_warning_mm - deadband_mm)) | skip
    severity = np.where(critical, CRITICAL, np.where(condition, WARNING, NONE)).astype(np.int8)
    return FloodEval(depth_mm=depth, condition=condition, clear=clear, severity=severity)


def _cm(depth_mm: float, decimal: str) -> str:
    """Depth in cm with at most one decimal, e.g. 76 mm → "7.6", 150 mm → "15"."""
    text = f"{depth_mm / 10:.1f}".rstrip("0").rstrip(".")
    return text.replace(".", decimal)


def message(ctx: MessageContext) -> Message:
    """Vietnamese (decimal comma) and English text for one street-flood change."""
    where_vi = f"tại {ctx.subject} ({ctx.district})"
    where_en = f"at {ctx.subject} ({ctx.district})"
    depth = ctx.values.get("depth_mm")
    if ctx.state == "resolved":
        if depth is None:
            return Message(vi=f"Hết ngập đường {where_vi}", en=f"Street flooding over {where_en}")
        return Message(
            vi=f"Hết ngập đường {where_vi}: mực nước còn {_cm(depth, ',')} cm",
            en=f"Street flooding over {where_en}: {_cm(depth, '.')} cm of water left",
        )
    severe = ctx.severity == "critical"
    title_vi = "Ngập đường nghiêm trọng" if severe else "Ngập đường"
    title_en = "Severe street flooding" if severe else "Street flooding"
    if depth is None:
        return Message(vi=f"{title_vi} {where_vi}", en=f"{title_en} {where_en}")
    return Message(
        vi=f"{title_vi}: mực nước {_cm(depth, ',')} cm {where_vi}",
        en=f"{title_en}: {_cm(depth, '.')} cm of water {where_en}",
    )
