"""Scenario runs: contract-conformant readings, reporting intervals, faults, labels, seeds."""

from __future__ import annotations

import itertools
from collections import defaultdict
from functools import cache

import pytest

from backtest import scenarios
from backtest.scenarios import faults as F
from backtest.scenarios import wire
from backtest.scenarios.labels import ALERT_KINDS, CITY, Label, intervals
from deltasense.contract import Kind, decode_tele, parse_topic
from deltasense.thresholds import Thresholds
from simulators.city import DISTRICTS_BY_ID

MIN = 60_000


@cache
def run(name: str, seed: int = 1) -> scenarios.Run:
    return scenarios.simulate(name, seed)


def test_unknown_scenario_names_the_known_ones() -> None:
    with pytest.raises(scenarios.UnknownScenarioError, match="typhoon"):
        scenarios.get("tsunami")


def test_every_scenario_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    for name in scenarios.names():
        spec = scenarios.get(name)
        assert spec.build(4, None, "baclieu") == spec.build(4, None, "baclieu")
    a, b = scenarios.simulate("flash-flood", 5), scenarios.simulate("flash-flood", 5)
    assert [s.readings for s in a.steps] == [s.readings for s in b.steps]
    assert a.labels == b.labels
    c = scenarios.simulate("flash-flood", 6)
    assert [s.readings for s in a.steps] != [s.readings for s in c.steps]


def test_readings_conform_to_the_contract_and_round_trip() -> None:
    r = run("flash-flood")
    readings = list(r.readings())
    assert {x.kind for x in readings} == set(Kind)
    for reading in readings:
        topic = parse_topic(wire.tele_topic(reading))
        (decoded,) = decode_tele(topic, wire.tele_payload(reading), reading.ts_ms)
        assert decoded == reading
    for spec in r.config.devices:
        assert wire.meta_topic("baclieu", spec).endswith(f"/{spec.id}/meta")


def test_readings_are_in_time_inside_their_minute_and_sequenced() -> None:
    r = run("flash-flood")
    seqs: dict[str, list[int]] = defaultdict(list)
    for step in r.steps:
        for reading in step.readings:
            assert step.now_ms - MIN <= reading.ts_ms < step.now_ms
            seqs[reading.device].append(reading.seq)
    assert all(s == list(range(s[0], s[0] + len(s))) for s in seqs.values())


def _gaps_s(r: scenarios.Run, device: str) -> list[float]:
    ts = [x.ts_ms for x in r.readings() if x.device == device]
    return [(b - a) / 1000 for a, b in itertools.pairwise(ts)]


def test_reporting_intervals_weather_60_lamps_300_water_300_or_60_when_wet() -> None:
    r = run("flash-flood")
    kinds = {d.id: d.kind for d in r.config.devices}
    for device, kind in kinds.items():
        gaps = set(_gaps_s(r, device))
        if kind is Kind.WEATHER:
            assert gaps == {60.0}
        elif kind in (Kind.LAMP, Kind.METER):
            assert gaps == {300.0}
        elif r.stations[device] == "drain":
            assert gaps <= {60.0, 300.0}
    flooded = {lb.subject for lb in r.labels if lb.what == "street-flood"}
    assert flooded and all(60.0 in set(_gaps_s(r, d)) for d in flooded)


def test_labels_are_well_formed() -> None:
    devices_seen = set()
    for name in scenarios.names():
        if name in ("typhoon", "king-tide-rain"):
            continue  # the long storm runs are covered by the backtest tests
        r = run(name)
        ids = {d.id: d.district for d in r.config.devices}
        devices_seen |= set(ids)
        for label in r.labels:
            assert label.kind in ALERT_KINDS
            assert r.config.start_ms <= label.start_ms <= label.end_ms <= r.config.end_ms
            if label.scope == "device":
                assert ids[label.subject] == label.district
            elif label.scope == "district":
                assert label.subject in DISTRICTS_BY_ID
            else:
                assert label.subject == CITY
    with pytest.raises(ValueError, match="kind"):
        Label("x", "weather", "d", "p", 0, 1)
    with pytest.raises(ValueError, match="ends before"):
        Label("x", "flood", "d", "p", 2, 1)


def test_hot_dry_day_has_nothing_to_label() -> None:
    assert run("hot-dry-day").labels == []


def test_fault_scenarios_label_every_fault() -> None:
    lamp = run("lamp-faults")
    whats = {lb.what for lb in lamp.labels if lb.expected}
    assert whats == {"day-burning", "lamp-out", "power-drift", "cycling"}
    assert all(lb.kind == "energy" for lb in lamp.labels)
    sensor = run("sensor-faults")
    assert {lb.what for lb in sensor.labels} == {"offline", "stuck", "spike", "clock-skew"}
    assert all(lb.kind == "health" for lb in sensor.labels)
    outage = run("power-outage")
    (mass,) = [lb for lb in outage.labels if lb.expected]
    assert (mass.what, mass.scope, mass.kind) == ("mass-outage", "district", "health")


def test_labels_carry_the_time_their_definition_needs(thresholds: Thresholds) -> None:
    evidence = {
        lb.what: lb.evidence_ms
        for name in ("lamp-faults", "sensor-faults")
        for lb in run(name).labels
        if lb.expected
    }
    assert evidence["offline"] == 3 * 300 * 1000  # lamps and drains report every 300 s
    assert evidence["stuck"] == thresholds.health.stuck.window_min * MIN
    assert evidence["power-drift"] == thresholds.lighting.drift_window_min * MIN // 2
    switches_per_h = thresholds.lighting.cycling_switches_per_h
    assert evidence["cycling"] == switches_per_h * 5 * MIN  # 10-min period
    assert evidence["day-burning"] == evidence["lamp-out"] == evidence["spike"] == 0


def test_the_scenario_lamp_register_stands_in_for_a_site_file_unless_one_rates_lamps(
    thresholds: Thresholds,
) -> None:
    from backtest.runner import with_lamp_register

    world = scenarios.build("lamp-faults", 1, thresholds=thresholds)
    ratings = world.lamp_ratings()
    assert ratings and set(ratings.values()) <= {60.0, 90.0, 120.0, 150.0, 200.0, 250.0}
    registered = with_lamp_register(thresholds, ratings)
    assert registered.lighting.lamps_rated_w == ratings and thresholds.lighting.lamps_rated_w == {}
    fleet = thresholds.model_copy(
        update={"lighting": thresholds.lighting.model_copy(update={"rated_w": 150.0})}
    )
    assert with_lamp_register(fleet, ratings) is fleet


def test_dropout_skew_stuck_and_spike_show_in_the_readings() -> None:
    r = run("sensor-faults")
    faults = r.config.faults
    dropout = next(f for f in faults if isinstance(f, F.Dropout))
    sent = [x for x in r.readings() if x.device == dropout.device]
    assert not [x for x in sent if dropout.start_ms <= x.ts_ms < dropout.end_ms]
    skew = next(f for f in faults if isinstance(f, F.ClockSkew) and f.offset_ms > 0)
    skewed = [x for x in r.readings() if x.device == skew.device]
    steps = {x.ts_ms: s.now_ms for s in r.steps for x in s.readings if x.device == skew.device}
    late = [ts for ts, now in steps.items() if ts >= now]  # ts ahead of the minute it was sent in
    assert late and len(late) == len(
        [x for x in skewed if x.ts_ms >= skew.start_ms + skew.offset_ms]
    )
    stuck = next(f for f in faults if isinstance(f, F.Stuck))
    values = {
        x.fields[stuck.field]
        for x in r.readings()
        if x.device == stuck.device and stuck.start_ms <= x.ts_ms < stuck.end_ms
    }
    assert len(values) == 1
    spike = next(f for f in faults if isinstance(f, F.Spike) and f.field == "level_cm")
    levels = [float(x.fields["level_cm"]) for x in r.readings() if x.device == spike.device]
    assert sum(v > 30 for v in levels) == 1  # exactly one reading off, dry weather otherwise


def test_outage_silences_mains_devices_and_they_reboot() -> None:
    r = run("power-outage")
    (outage,) = r.config.faults
    assert isinstance(outage, F.Outage)
    in_district = {d.id: d.kind for d in r.config.devices if d.district == outage.district}
    during = [
        x
        for x in r.readings()
        if x.device in in_district and outage.start_ms <= x.ts_ms < outage.end_ms
    ]
    assert during and {x.kind for x in during} == {Kind.WATER}  # battery nodes go on
    lamp = next(d for d, k in in_district.items() if k is Kind.LAMP)
    readings = [x for x in r.readings() if x.device == lamp]
    before = [x for x in readings if x.ts_ms < outage.start_ms][-1]
    after = next(x for x in readings if x.ts_ms >= outage.end_ms)
    assert after.boot == before.boot + 1 and after.seq == 0
    assert float(after.fields["energy_wh_total"]) < float(before.fields["energy_wh_total"])


def test_storm_scenarios_label_storm_and_flood_events(thresholds: Thresholds) -> None:
    r = run("flash-flood")
    whats = {lb.what for lb in r.labels if lb.expected}
    assert {"street-flood", "station-storm", "city-storm"} <= whats
    world = scenarios.build("flash-flood", 1, thresholds=thresholds)
    for _ in range(world.config.minutes):
        world.step()
    for label in (lb for lb in r.labels if lb.what == "street-flood"):
        depth = world.truth[label.subject]["depth_mm"]
        i = (label.start_ms - world.config.start_ms) // MIN
        assert depth[i] >= thresholds.flood.street_warning_mm > depth[i - 1]


def test_intervals_merge_close_runs() -> None:
    times = [i * MIN for i in range(10)]
    flags = [False, True, True, False, True, False, False, False, False, True]
    assert intervals(times, flags, step_ms=MIN, merge_gap_ms=2 * MIN) == [
        (MIN, 5 * MIN),
        (9 * MIN, 10 * MIN),
    ]
    assert intervals(times, flags, step_ms=MIN, merge_gap_ms=0) == [
        (MIN, 3 * MIN),
        (4 * MIN, 5 * MIN),
        (9 * MIN, 10 * MIN),
    ]
    with pytest.raises(ValueError):
        intervals(times, flags[:-1], step_ms=MIN)
