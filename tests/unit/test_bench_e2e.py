"""The end-to-end bench's pure parts: its payloads follow the contract, every peer
writes the line ingest writes, and the report's arithmetic."""

from __future__ import annotations

import math

import pytest

from bench import ingest_e2e
from bench.e2e import payloads, peers, report
from bench.e2e.influx import Ceiling, build_batches
from bench.e2e.latency import Latency, percentile
from bench.e2e.measure import Load, Run
from ingest.pipeline import Pipeline

BASE = 1_780_000_000_000


@pytest.mark.parametrize("shape", [payloads.SINGLE, payloads.BATCH20])
def test_payloads_decode_as_readings_and_match_the_ceilings_lines(
    shape: payloads.Shape,
) -> None:
    device = payloads.device_name("t", 7)
    topic = payloads.topic("bench1", device)
    body = payloads.message(40, shape, BASE)
    out = Pipeline("bench1").handle(topic, body, BASE + 10_000)
    assert out.deadletter is None and out.readings == shape.readings
    expected = [
        payloads.reading_line("bench1", device, 40 + k, BASE) for k in range(shape.readings)
    ]
    assert out.lines == expected
    assert peers.to_lines(topic, body).decode().split("\n") == expected


def test_ceiling_batches_hold_every_point_once() -> None:
    bodies = build_batches(1_050, 500, "bench1", BASE)
    lines = [line for body in bodies for line in body.decode().split("\n")]
    assert [len(b.decode().split("\n")) for b in bodies] == [500, 500, 50]
    identities = {(line.split(",")[1], line.rsplit(" ", 1)[1]) for line in lines}
    assert len(identities) == 1_050


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile([3.0], 99) == 3.0


def _run(peer: str, stored: int, span: float) -> Run:
    load = Load(payloads.SINGLE, 1_000, 10, 1, 100)
    return Run(peer, load, 10_000, 10_000, stored, 100.0, 110.0, 100.0 + span)


def test_report_ratios_and_verdicts() -> None:
    results = report.Results(
        ceilings=[Ceiling(1, 5_000, 100_000, 1.0)],
        runs=[_run("subscriber", 10_000, 10.0), _run("deltasense", 9_990, 11.1)],
    )
    table = report.render(results, ["single"])
    assert "| deltasense | 1,000 | 1,000 | 10,000 | 9,990 | 10 | 900 | 0.90 | 0.01 |" in table
    assert "not met" in table  # 10 lost


def test_quick_narrowed_to_the_smoke_configuration() -> None:
    config = ingest_e2e.parse(ingest_e2e.SMOKE_ARGS)
    assert config.peers == ("subscriber", "deltasense")
    assert config.rates == {"single": ingest_e2e.QUICK.rates["single"]}
    assert config.latency_rate == 0


def test_unseen_probes_count_as_slower_than_every_seen_one() -> None:
    lat = Latency("naive", 2_000, samples=[0.5] * 98, unseen=2)
    assert lat.p(50) == 0.5
    assert lat.p(99) == math.inf
    assert "> 5 s after the last probe" in "\n".join(report.latency_table([lat]))


def test_the_batched_verdict_judges_the_rate_and_the_ceiling_ratio_apart() -> None:
    load = Load(payloads.BATCH50, 1_500, 10, 1, 100)
    fast = Run("deltasense", load, 15_000, 15_000, 750_000, 100.0, 110.0, 111.0)
    results = report.Results(ceilings=[Ceiling(1, 5_000, 200_000, 1.0)], runs=[fast])
    (line,) = [v for v in report.verdicts(results) if v.startswith("- batch50")]
    assert "68,182 readings/s stored, 0 lost (target ≥ 60,000 and 0: met)" in line
    assert "0.34 × InfluxDB's ceiling (target ≥ 0.7: not met)" in line
    lossy = Run("deltasense", load, 15_000, 15_000, 749_999, 100.0, 110.0, 111.0)
    results = report.Results(ceilings=[Ceiling(1, 5_000, 200_000, 1.0)], runs=[lossy])
    assert "1 lost (target ≥ 60,000 and 0: not met)" in "\n".join(report.verdicts(results))
