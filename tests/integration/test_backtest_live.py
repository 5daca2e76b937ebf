"""Backtests against the real services.

* Live equivalence (acceptance): a short scenario published over MQTT → ingest →
  analytics → API raises the same alerts (kind, rule, subject) as the backtest of
  the same scenario and seed.  The scenario's readings carry simulated times in
  the hour before the wall clock, and the analytics service's clock is the
  simulated one (the only stand-in: ``analytics.service.now_ms``).  The clock
  moves to a minute's end only once analytics has taken in that minute's readings,
  and the next minute starts only once analytics has evaluated at that end, as the
  backtest does; so an hour runs in seconds on any machine, never ahead of analytics.
* ``--start/--end`` replay: readings stored in the ingest layout come back out of
  InfluxDB in time order and raise what the same readings raise in a backtest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from analytics import service as analytics_service
from backtest import scenarios
from backtest.runner import replay, report, run_scenario
from backtest.scenarios import wire
from deltasense.contract import Channel, Kind, decode_meta, parse_topic
from deltasense.influx import InfluxClient
from deltasense.mqtt import make_client
from deltasense.schema import meta_line, reading_line
from deltasense.settings import Settings
from deltasense.thresholds import Thresholds
from ingest.service import Ingest
from tests.integration.api_support import ADMIN, running_api

SCENARIO, SEED = "flash-flood", 3
# Live equivalence over several seeds: seed 1 once differed by a squall judged on a
# minute still filling; the squall now judges complete minutes only.
LIVE_SEEDS = (1, 2, 3)
STEP_WAIT_S = 10.0  # at most, for analytics to take in or evaluate one simulated minute


def _start_near_now(minutes: int) -> int:
    now = time.time_ns() // 1_000_000
    return now - now % 60_000 - (minutes + 1) * 60_000


# The platform's own health (ingest lag, broker drops, dead letters) is not part of a
# backtest; and this replay stamps readings with scenario minutes that run 2 000×
# faster than the wall clock ingest writes by, so ingest's lag really is minutes.
PLATFORM_SUBJECT = "platform"


def _triples(alerts: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (a["kind"], a["rule"], a["subject"]) for a in alerts if a["subject"] != PLATFORM_SUBJECT
    }


@contextlib.asynccontextmanager
async def _task(coro: Any) -> AsyncIterator[asyncio.Task[Any]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _taken_in(kind: Kind) -> float:
    """Readings of ``kind`` analytics has taken in off MQTT (this process, cumulative)."""
    sample = REGISTRY.get_sample_value("deltasense_analytics_readings_total", {"kind": kind.value})
    return sample or 0.0


def _evaluations() -> float:
    return REGISTRY.get_sample_value("deltasense_analytics_eval_seconds_count") or 0.0


def _evaluated_since(count: float) -> Callable[[], bool]:
    return lambda: _evaluations() > count


async def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STEP_WAIT_S
    while not done():
        assert time.monotonic() < deadline, f"analytics did not {what} in {STEP_WAIT_S} s"
        await asyncio.sleep(0.002)


class SimClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@pytest.mark.timeout(90)
@pytest.mark.parametrize("seed", LIVE_SEEDS)
async def test_live_run_raises_the_alerts_of_the_backtest(
    settings: Settings,
    influx: InfluxClient,
    thresholds: Thresholds,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    settings = settings.model_copy(update={"analytics_tick_s": 0.05})
    minutes = scenarios.get(SCENARIO).build(seed, None, settings.site).minutes
    start = _start_near_now(minutes)
    expected = report(run_scenario(SCENARIO, seed, thresholds, start_ms=start, site=settings.site))
    want = _triples(expected["alerts"])
    assert {k for k, _, _ in want} >= {"flood", "storm"}  # the scenario is worth running live

    run = scenarios.simulate(SCENARIO, seed, start_ms=start, site=settings.site)
    clock = SimClock(start)
    monkeypatch.setattr(analytics_service, "now_ms", clock)
    ingest = Ingest(settings, influx)
    ready = asyncio.Event()
    async with (
        _task(ingest.run()),
        _task(analytics_service.run(settings, thresholds=thresholds, ready=ready)) as analytics,
        running_api(settings) as api,
        make_client(settings, identifier=f"{settings.site}-scenario") as mqtt,
    ):
        await asyncio.wait_for(ingest.connected.wait(), 10)
        done, _ = await asyncio.wait(
            {asyncio.create_task(ready.wait()), analytics},
            timeout=20,
            return_when="FIRST_COMPLETED",
        )
        assert analytics not in done, analytics.exception()
        assert ready.is_set()
        for spec in run.config.devices:  # birth records first, as nodes do
            station = run.stations.get(spec.id)
            await mqtt.publish(
                wire.meta_topic(settings.site, spec),
                wire.meta_payload(spec, station),
                qos=1,
                retain=True,
            )
        # The counters are per process and cumulative: what this run adds is counted.
        sent = {kind: _taken_in(kind) for kind in Kind}
        for step in run.steps:
            for reading in step.readings:  # the clock moves with the readings, as in real time
                clock.ms = max(clock.ms, reading.ts_ms)
                await mqtt.publish(wire.tele_topic(reading), wire.tele_payload(reading), qos=1)
                sent[reading.kind] += 1
            # The minute ends only once analytics holds all of it (a squall judges
            # complete minutes: one judged short of its readings would never fire).
            await _until(
                lambda: all(_taken_in(kind) >= n for kind, n in sent.items()),
                "take in a simulated minute's readings",
            )
            evaluated = _evaluations()
            clock.ms = step.now_ms
            await _until(_evaluated_since(evaluated), "evaluate at a minute's end")

        async def seen() -> set[tuple[str, str, str]]:
            response = await api.get("/api/v1/alerts", params={"state": "all"}, headers=ADMIN)
            assert response.status_code == 200, response.text
            return _triples(response.json())

        got: set[tuple[str, str, str]] = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = await seen()
            if got >= want:
                # Nothing tells that no further alert is coming (a barrier device would
                # change the inputs compared with the backtest): give one 0.5 s.
                await asyncio.sleep(0.5)
                got = await seen()
                break
            await asyncio.sleep(0.2)
        stored = await influx.query(
            'SELECT count("level_cm") FROM "water" WHERE "site" = $site',
            params={"site": settings.site},
        )
    assert got == want
    sent_water = sum(1 for r in run.readings() if r.kind is Kind.WATER)
    assert stored and stored[0].rows()[0]["count"] == sent_water  # ingest stored every one


@pytest.mark.timeout(60)
async def test_replay_from_influxdb_matches_the_backtest(
    settings: Settings, influx: InfluxClient, thresholds: Thresholds
) -> None:
    start = _start_near_now(70)  # a window in the past, as operators replay
    run = scenarios.simulate(SCENARIO, SEED, start_ms=start, site=settings.site)
    lines = [reading_line(r) for r in run.readings()]
    now = time.time_ns() // 1_000_000
    for spec in run.config.devices:
        topic = parse_topic(f"{settings.site}/{spec.district}/{spec.kind}/{spec.id}/{Channel.META}")
        meta = decode_meta(wire.meta_payload(spec, run.stations.get(spec.id)))
        line = meta_line(topic, meta, now)
        assert line is not None
        lines.append(line)
    await influx.write_lines(lines)
    # Readings of another site in the same database are not ours.
    other = scenarios.simulate(SCENARIO, SEED + 1, start_ms=start, site="elsewhere")
    await influx.write_lines([reading_line(r) for r in other.readings()])

    replayed = report(await replay(influx, settings.site, start, run.config.end_ms, thresholds))
    backtest = report(run_scenario(SCENARIO, SEED, thresholds, start_ms=start, site=settings.site))
    assert replayed["readings"] == sum(len(s.readings) for s in run.steps)
    assert replayed["labelled"] is False and replayed["kinds"]["flood"]["precision"] is None
    assert _triples(replayed["alerts"]) == _triples(backtest["alerts"])
    assert any(a["rule"] == "street-flood" for a in replayed["alerts"])
    # An empty window raises nothing and still ticks every minute.
    empty = report(
        await replay(influx, settings.site, start - 3_600_000, start - 1_800_000, thresholds)
    )
    assert empty["total_alerts"] == 0 and empty["evaluations"] == 2 * 30


async def test_replay_cli_against_real_influxdb(settings: Settings, influx: InfluxClient) -> None:
    """The command's InfluxDB path end to end (small window, JSON out)."""
    import json
    import os
    import subprocess
    import sys

    start = _start_near_now(70)
    run = scenarios.simulate(SCENARIO, SEED, start_ms=start, site=settings.site)
    await influx.write_lines([reading_line(r) for r in run.readings()])
    env = {
        **os.environ,
        "DELTASENSE_CONFIG": os.devnull,
        "DELTASENSE_SITE": settings.site,
        "DELTASENSE_INFLUX_PORT": str(settings.influx_port),
        "DELTASENSE_INFLUX_DB": settings.influx_db,
        "DELTASENSE_INFLUX_USERNAME": settings.influx_username or "",
        "DELTASENSE_INFLUX_PASSWORD": settings.influx_password or "",
        "DELTASENSE_VAR_DIR": str(settings.var_dir),
    }
    proc = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "tools.cli",
            "backtest",
            "--json",
            "--start",
            str(start),
            "--end",
            str(run.config.end_ms),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["source"] == "influxdb" and rep["readings"] == sum(
        len(s.readings) for s in run.steps
    )
    assert any(a["rule"] == "street-flood" for a in rep["alerts"])
