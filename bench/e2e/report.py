"""Markdown tables of the end-to-end benchmark, ratios and the targets' verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.e2e.influx import Ceiling
from bench.e2e.latency import GRACE_S, Latency
from bench.e2e.measure import Run

# The targets (issue 10); the bench reports against them, it does not tune for them.
SINGLE_VS_BROKER = 0.9
BATCH_READINGS_PER_S = 60_000
BATCH_VS_INFLUX = 0.7
P99_S = 1.5
LATENCY_BACKGROUND = 2_000


@dataclass
class Results:
    ceilings: list[Ceiling] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)

    @property
    def influx_ceiling(self) -> float:
        return max((c.points_per_s for c in self.ceilings), default=0.0)

    def broker(self, run: Run) -> Run | None:
        return next(
            (
                r
                for r in self.runs
                if r.peer == "subscriber"
                and r.load.shape == run.load.shape
                and r.load.rate == run.load.rate
            ),
            None,
        )


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}" if b else "—"


def ceiling_table(results: Results) -> list[str]:
    out = [
        "\n## InfluxDB write ceiling (pre-built line protocol, keep-alive HTTP /write)",
        "| writers | lines per write | points | seconds | points/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in results.ceilings:
        out.append(
            f"| {c.writers} | {c.batch:,} | {c.points:,} | {c.seconds:.2f} | {c.points_per_s:,.0f} |"
        )
    return out


def shape_table(results: Results, shape: str) -> list[str]:
    runs = [r for r in results.runs if r.load.shape.name == shape]
    if not runs:
        return []
    per = runs[0].load.shape.readings
    out = [
        f"\n## {shape}: {per} reading(s) per message",
        "| peer | offered msg/s | sent readings/s | published (acked) readings | stored "
        "| lost | stored readings/s | vs broker ceiling | vs InfluxDB ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(runs, key=lambda r: (r.load.rate, r.peer)):
        broker = results.broker(r)
        out.append(
            f"| {r.peer} | {r.load.rate:,.0f} | {r.offered_per_s:,.0f} | {r.acked_readings:,} "
            f"| {r.stored:,}{'' if r.settled else ' *'} | {r.lost:,} | {r.stored_per_s:,.0f} "
            f"| {_ratio(r.stored_per_s, broker.stored_per_s if broker else None)} "
            f"| {_ratio(r.stored_per_s, results.influx_ceiling)} |"
        )
    for r in runs:
        if r.errors:
            out.append(
                f"\n{r.peer} at {r.load.rate:,.0f} msg/s logged {r.errors[0]}; "
                f"the first: `{r.errors[1][:200] if len(r.errors) > 1 else ''}`"
            )
    if not all(r.settled for r in runs):
        out.append(
            "\n\\* still storing when the bench stopped waiting: lost includes readings "
            "the peer had not written yet"
        )
    return out


def _seconds(value: float) -> str:
    return f"> {GRACE_S:g} s after the last probe" if math.isinf(value) else f"{value:.3f} s"


def latency_table(latencies: Sequence[Latency]) -> list[str]:
    if not latencies:
        return []
    out = [
        "\n## Publish → queryable (probe readings under single-reading background load)",
        f"A probe unseen {GRACE_S:g} s after the last one was sent counts as slower than all.",
        "| peer | background msg/s | probes seen | probes unseen | p50 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lat in latencies:
        out.append(
            f"| {lat.peer} | {lat.background:,.0f} | {len(lat.samples)} | {lat.unseen} "
            f"| {_seconds(lat.p(50))} | {_seconds(lat.p(99))} | {_seconds(lat.p(100))} |"
        )
    return out


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def verdicts(results: Results) -> list[str]:
    """DeltaSense against the issue's targets, from this run's numbers only."""
    out = ["\n## DeltaSense against the targets (this run)"]
    for r in results.runs:
        if r.peer != "deltasense":
            continue
        broker = results.broker(r)
        if r.load.shape.readings == 1 and broker and broker.stored_per_s:
            ratio = r.stored_per_s / broker.stored_per_s
            ok = ratio >= SINGLE_VS_BROKER and r.lost == 0
            out.append(
                f"- single at {r.load.rate:,.0f} msg/s: {ratio:.2f} × the bare subscriber, "
                f"{r.lost:,} lost (target ≥ {SINGLE_VS_BROKER} and 0): "
                f"{'met' if ok else 'not met'}"
            )
        elif r.load.shape.readings > 1 and results.influx_ceiling:
            ratio = r.stored_per_s / results.influx_ceiling
            rate_ok = r.stored_per_s >= BATCH_READINGS_PER_S and r.lost == 0
            ratio_ok = ratio >= BATCH_VS_INFLUX
            offered = r.load.rate * r.load.shape.readings
            # Stored/s counts the store delay, so it stays below what was offered.
            short = " (offered no more than the target)" if offered <= BATCH_READINGS_PER_S else ""
            out.append(
                f"- {r.load.shape.name} at {offered:,.0f} readings/s offered{short}: "
                f"{r.stored_per_s:,.0f} readings/s stored, {r.lost:,} lost "
                f"(target ≥ {BATCH_READINGS_PER_S:,} and 0: {_met(rate_ok)}); "
                f"{ratio:.2f} × InfluxDB's ceiling (target ≥ {BATCH_VS_INFLUX}: {_met(ratio_ok)})"
            )
    for lat in results.latencies:
        if lat.peer == "deltasense":
            ok = lat.unseen == 0 and lat.p(99) <= P99_S
            out.append(
                f"- p99 publish → queryable at {lat.background:,.0f} msg/s background: "
                f"{_seconds(lat.p(99))}, {lat.unseen} probes unseen (target ≤ {P99_S} s"
                f"{'' if lat.background == LATENCY_BACKGROUND else ', at 2,000 msg/s'}): "
                f"{'met' if ok else 'not met'}"
            )
    return out if len(out) > 1 else []


def render(results: Results, shapes: Sequence[str]) -> str:
    lines = ceiling_table(results)
    for shape in shapes:
        lines += shape_table(results, shape)
    lines += latency_table(results.latencies)
    lines += verdicts(results)
    return "\n".join(lines)
