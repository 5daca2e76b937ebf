"""Every scenario × several seeds through the engine, and the acceptance verdict.

``deltasense backtest-matrix --seeds 1-5`` runs the labelled scenarios in worker
processes (one scenario run per task), keeps each run's score per alert kind and
checks them against what operators were promised (docs/ANALYTICS.md): storm and
flood recall 100 %, precision ≥ 95 % per kind, no flaps, median detection delay
within two reporting intervals, and not a single alert on the hot dry day.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from backtest.runner import BacktestError, format_cell

QUIET_SCENARIO: Final = "hot-dry-day"  # no alert may fire at all
MIN_PRECISION: Final = 0.95
MUST_DETECT_ALL: Final = ("storm", "flood")
# The reporting interval that bounds each kind's median delay (2 × this): the
# slowest interval of the devices whose alerts that kind reports
# (backtest/scenarios/world.py INTERVAL_S: weather 60 s; water, lamps, meters 300 s).
KIND_INTERVAL_S: Final = {"storm": 60, "flood": 300, "energy": 300, "health": 300}
MAX_SEEDS: Final = 50


def parse_seeds(text: str) -> list[int]:
    """``"1-5"``, ``"1,3,7"`` or ``"2"`` → sorted distinct seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None:
            raise BacktestError(f"--seeds: {part!r} is not a seed or a range like 1-5")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise BacktestError(f"--seeds: the range {part!r} runs backwards")
        seeds.update(range(lo, hi + 1))
        if len(seeds) > MAX_SEEDS:
            raise BacktestError(f"--seeds: at most {MAX_SEEDS} seeds")
    return sorted(seeds)


@dataclass(frozen=True)
class Run:
    scenario: str
    seed: int
    total_alerts: int
    kinds: dict[str, dict[str, Any]]  # the report's per-kind scores, alerts left out
    elapsed_s: float

    def rows(self) -> list[dict[str, Any]]:
        """One row per kind with a labelled event or an alert (or one empty row)."""
        out = [
            {"scenario": self.scenario, "seed": self.seed, "kind": kind, **score}
            for kind, score in self.kinds.items()
            if score["events"] or score["raised"]
        ]
        return out or [{"scenario": self.scenario, "seed": self.seed, "kind": None}]


def run_one(scenario: str, seed: int, thresholds_file: Path | None, site: str) -> Run:
    """One scenario run, scored (runs in a worker process)."""
    from analytics.thresholds import load_thresholds
    from backtest.runner import report, run_scenario

    result = run_scenario(scenario, seed, load_thresholds(thresholds_file), site=site)
    rep = report(result)
    kinds = {
        kind: {k: v for k, v in score.items() if k != "alerts"}
        for kind, score in rep["kinds"].items()
    }
    return Run(scenario, seed, rep["total_alerts"], kinds, result.elapsed_s)


def run_matrix(
    names: Sequence[str],
    seeds: Sequence[int],
    *,
    thresholds_file: Path | None,
    site: str,
    jobs: int,
    on_done: Callable[[Run], None] | None = None,
) -> list[Run]:
    """Every (scenario, seed) in ``jobs`` processes; runs in (scenario, seed) order."""
    tasks = [(name, seed) for name in names for seed in seeds]
    runs: list[Run] = []
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_one, n, s, thresholds_file, site) for n, s in tasks]
        for future in as_completed(futures):
            run = future.result()
            runs.append(run)
            if on_done is not None:
                on_done(run)
    order = {task: i for i, task in enumerate(tasks)}
    return sorted(runs, key=lambda r: order[(r.scenario, r.seed)])


def default_jobs() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0))))


@dataclass(frozen=True)
class Verdict:
    criterion: str
    met: bool
    detail: str


def acceptance(runs: Iterable[Run]) -> list[Verdict]:
    """The promises of docs/ANALYTICS.md checked against every run."""
    runs = list(runs)
    failures: dict[str, list[str]] = {
        "quiet": [],
        "recall": [],
        "precision": [],
        "flaps": [],
        "delay": [],
    }
    for run in runs:
        where = f"{run.scenario} seed {run.seed}"
        if run.scenario == QUIET_SCENARIO and run.total_alerts:
            failures["quiet"].append(f"{where}: {run.total_alerts} alerts")
        for kind, s in run.kinds.items():
            if kind in MUST_DETECT_ALL and s["events"] and s["recall"] != 1.0:
                failures["recall"].append(f"{where} {kind}: {s['detected']}/{s['events']}")
            if s["precision"] is not None and s["precision"] < MIN_PRECISION:
                failures["precision"].append(f"{where} {kind}: {s['precision']:.0%}")
            if s["flaps"]:
                failures["flaps"].append(f"{where} {kind}: {s['flaps']}")
            limit = 2 * KIND_INTERVAL_S[kind]
            if s["delay_median_s"] is not None and s["delay_median_s"] > limit:
                failures["delay"].append(f"{where} {kind}: {s['delay_median_s']:g} s > {limit} s")
    texts = {
        "quiet": "the hot dry day raises no alert",
        "recall": "every storm and flood event detected (recall 100 %)",
        "precision": f"precision ≥ {MIN_PRECISION:.0%} per alert kind",
        "flaps": "no flapping (one alert per labelled episode)",
        "delay": "median detection delay ≤ 2 reporting intervals",
    }
    return [
        Verdict(texts[key], not bad, "; ".join(bad) if bad else f"{len(runs)} runs")
        for key, bad in failures.items()
    ]


COLUMNS: Final = (
    ("events", "events", False),
    ("detected", "detected", False),
    ("raised", "alerts", False),
    ("false_alerts", "false", False),
    ("flaps", "flaps", False),
    ("precision", "precision", True),
    ("recall", "recall", True),
    ("delay_median_s", "delay median s", False),
    ("delay_worst_s", "worst s", False),
    ("onset_delay_median_s", "from onset s", False),
)


def table_rows(runs: Iterable[Run]) -> tuple[list[str], list[list[str]]]:
    header = ["scenario", "seed", "kind", *(title for _, title, _ in COLUMNS)]
    rows = []
    for run in runs:
        for row in run.rows():
            if row["kind"] is None:
                counts, rates = ["0"] * 5, ["–"] * (len(COLUMNS) - 5)
                rows.append([run.scenario, str(run.seed), "(none)", *counts, *rates])
                continue
            rows.append(
                [
                    run.scenario,
                    str(run.seed),
                    row["kind"],
                    *(format_cell(row[key], pct) for key, _, pct in COLUMNS),
                ]
            )
    return header, rows


def markdown(runs: Sequence[Run]) -> str:
    header, rows = table_rows(runs)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        "| criterion | met | detail |",
        "|---|---|---|",
        *(
            f"| {v.criterion} | {'yes' if v.met else '**no**'} | {v.detail} |"
            for v in acceptance(runs)
        ),
    ]
    return "\n".join(lines) + "\n"
