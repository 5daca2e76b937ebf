"""Stored rows back into readings: the refill's history and the replay's faithful copy."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from analytics.stored import readings_from_series
from deltasense.contract import Kind


@dataclass
class Series:
    tags: dict[str, str]
    data: list[dict[str, Any]] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return self.data


ROWS = [
    # a clean reading
    {"time": 1000, "seq": 7, "boot": 2, "hist": False, "ts_platform": True,
     "level_cm": 12.5, "battery_v": 3.9, "qc": None},
    # level flagged by QC: left out, the battery stays
    {"time": 2000, "seq": 8, "boot": 2.0, "level_cm": 999.0, "battery_v": 3.8,
     "qc": "level_cm"},
    # nothing left after QC: skipped
    {"time": 3000, "seq": 9, "boot": 2, "level_cm": -5.0, "qc": "level_cm"},
    # no time: skipped; a string column is no field
    {"time": None, "seq": 10, "level_cm": 1.0},
    {"time": 4000, "seq": "x", "boot": None, "level_cm": 1.0, "fw": "1.2.0", "hist": True},
]  # fmt: skip


def series() -> list[Series]:
    return [Series({"device": "wl-1", "district": "p1"}, ROWS), Series({"district": "p1"}, ROWS)]


def test_the_replay_keeps_seq_hist_and_platform_stamps() -> None:
    out = readings_from_series(Kind.WATER, series(), "s", as_history=False)
    assert [(r.ts_ms, r.seq, r.boot, r.hist, r.ts_from_platform) for r in out] == [
        (1000, 7, 2, False, True),
        (2000, 8, 2, False, False),
        (4000, 0, 0, True, False),
    ]
    assert [r.fields for r in out] == [
        {"level_cm": 12.5, "battery_v": 3.9},
        {"battery_v": 3.8},
        {"level_cm": 1.0},
    ]
    assert {(r.site, r.district, r.device, r.kind) for r in out} == {
        ("s", "p1", "wl-1", Kind.WATER)
    }


def test_the_refill_marks_everything_history_with_seq_zero() -> None:
    out = readings_from_series(Kind.WATER, series(), "s", as_history=True)
    assert [(r.ts_ms, r.seq, r.hist, r.ts_from_platform) for r in out] == [
        (1000, 0, True, False),
        (2000, 0, True, False),
        (4000, 0, True, False),
    ]


def test_refill_chunks_cover_the_span_without_gaps_or_overlaps() -> None:
    from analytics.service import REFILL_AHEAD_MS, REFILL_CHUNK_MS, refill_chunks

    at = 10_000_000
    spans = refill_chunks(at - 6 * 3_600_000, at)
    assert spans[0][0] == at - 6 * 3_600_000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # (after, <=]
    assert all(b - a == REFILL_CHUNK_MS for a, b in spans[:-1])
    assert spans[-1] == (at - REFILL_CHUNK_MS, at + REFILL_AHEAD_MS)
    assert refill_chunks(at, at) == [(at, at + REFILL_AHEAD_MS)]
    odd = refill_chunks(at - REFILL_CHUNK_MS - 5, at)
    assert odd == [(at - REFILL_CHUNK_MS - 5, at - 5), (at - 5, at + REFILL_AHEAD_MS)]
