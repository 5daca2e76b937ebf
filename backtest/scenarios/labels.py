"""Ground truth of a scenario: labelled events and how they are cut from a run.

A :class:`Label` says *what* happened (``what``, e.g. ``street-flood``), which
alert ``kind`` should report it (the rule family), to *whom* (``subject``: a
device, a district or the whole city, per ``scope``) and *when* (``start_ms`` to
``end_ms``).  ``expected`` labels must be detected (they count for recall);
tolerated ones (``expected=False``) are real conditions an alert may report
without being false (a cabinet drawing more because one of its lamps burns by
day, moderate rain during a storm), but missing them is no fault.

``evidence_ms`` is how long an event must have lasted before its definition can
call it at all: a device is offline only after it missed 3 reporting intervals, a
sensor stuck only after 60 min without change (docs/REFERENCE.md, "Data quality" and
"Defaults to ship").  Detection delays are measured from ``start_ms + evidence_ms``
(the engine's own latency); the delay from the onset is reported beside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Scope = Literal["device", "district", "city"]
ALERT_KINDS: Final = ("storm", "flood", "energy", "health")
CITY: Final = "city"
MERGE_GAP_MS: Final = 30 * 60_000  # closer episodes of one condition are one event


@dataclass(frozen=True)
class Label:
    what: str
    kind: str  # alert kind (rule family): storm, flood, energy or health
    subject: str  # device id, district id, or CITY
    district: str  # the subject's district ("" for the city)
    start_ms: int
    end_ms: int
    scope: Scope = "device"
    expected: bool = True
    evidence_ms: int = 0

    @property
    def detectable_ms(self) -> int:
        return self.start_ms + self.evidence_ms

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ValueError(f"label kind {self.kind!r} is not one of {ALERT_KINDS}")
        if self.end_ms < self.start_ms:
            raise ValueError(f"label {self.what} of {self.subject} ends before it starts")
        if self.scope == "district" and self.subject != self.district:
            raise ValueError("a district label's subject is its district")
        if self.evidence_ms < 0:
            raise ValueError(f"label {self.what} of {self.subject} has negative evidence time")

    def to_json(self) -> dict[str, object]:
        return {
            "what": self.what,
            "kind": self.kind,
            "subject": self.subject,
            "district": self.district,
            "scope": self.scope,
            "expected": self.expected,
            "start": self.start_ms,
            "end": self.end_ms,
            "evidence_s": self.evidence_ms / 1000,
        }


def intervals(
    times_ms: Sequence[int],
    flags: Sequence[bool],
    *,
    step_ms: int,
    merge_gap_ms: int = MERGE_GAP_MS,
) -> list[tuple[int, int]]:
    """Runs of True in a regularly sampled condition, as [start, end] intervals;
    runs separated by less than ``merge_gap_ms`` are joined into one."""
    if len(times_ms) != len(flags):
        raise ValueError("times and flags must have one length")
    runs: list[tuple[int, int]] = []
    start: int | None = None
    last = 0
    for t, flag in zip(times_ms, flags, strict=True):
        if flag:
            if start is None:
                start = t
            last = t
        elif start is not None:
            runs.append((start, last + step_ms))
            start = None
    if start is not None:
        runs.append((start, last + step_ms))
    merged: list[tuple[int, int]] = []
    for run in runs:
        if merged and run[0] - merged[-1][1] < merge_gap_ms:
            merged[-1] = (merged[-1][0], run[1])
        else:
            merged.append(run)
    return merged


def labels_from(
    what: str,
    kind: str,
    subject: str,
    district: str,
    spans: Iterable[tuple[int, int]],
    *,
    scope: Scope = "device",
    expected: bool = True,
    evidence_ms: int = 0,
) -> list[Label]:
    return [
        Label(
            what,
            kind,
            subject,
            district,
            start,
            end,
            scope=scope,
            expected=expected,
            evidence_ms=evidence_ms,
        )
        for start, end in spans
    ]
