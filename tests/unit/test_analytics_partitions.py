"""Issue 10, scope 3: analytics as K partitions owning districts raise what one raises.

A backtest scenario's city goes through one engine, and through two partition
engines that each take only what their MQTT subscriptions deliver (every weather
station, their own districts' other devices) and relay partition 0's alert events
to the other (the retained ``_alerts`` topic does that live): the alert events,
ids included, and the lamp orders must be the same.
"""

from __future__ import annotations

from collections import Counter

import pytest

from analytics.engine import CommandRequest, Engine
from analytics.partition import CITY_OWNER, Partition, partition_of
from backtest import scenarios
from backtest.runner import MINUTE_MS, with_lamp_register
from deltasense.alerts import AlertEvent
from deltasense.contract import Kind
from deltasense.thresholds import Thresholds

Key = tuple[str, str, str, str, str, int, int]


def _key(e: AlertEvent) -> Key:
    return (e.id, e.rule, e.subject, e.state, e.severity, e.started, e.updated)


def _run(
    name: str, thresholds: Thresholds, count: int
) -> tuple[Counter[Key], Counter[tuple[str, str, str]]]:
    world = scenarios.build(name, 1, thresholds=thresholds)
    cfg = world.config
    t = with_lamp_register(thresholds, world.lamp_ratings())
    engines = [Engine(t, utc_offset_min=420, partition=Partition(i, count)) for i in range(count)]
    stations = scenarios.stations(cfg)
    for engine in engines:
        for spec in cfg.devices:
            if engine.partition.wants(spec.kind, spec.district):
                engine.set_meta(
                    spec.id,
                    spec.district,
                    spec.kind,
                    lat=spec.lat,
                    lon=spec.lon,
                    interval_s=scenarios.INTERVAL_S[spec.kind],
                    station=stations.get(spec.id),
                )
    events: Counter[Key] = Counter()
    orders: Counter[tuple[str, str, str]] = Counter()

    def evaluate(at: int) -> None:
        for engine in engines:  # partition 0 first, as its events reach the others
            out = engine.evaluate(at)
            events.update(_key(e) for e in out)
            for other in engines:
                if other is not engine:
                    for e in out:
                        other.note_alert(e)
            orders.update(_order(c) for c in engine.take_commands())

    for _ in range(cfg.minutes):
        now_ms, readings = world.step()
        evaluate(now_ms - MINUTE_MS)
        for engine in engines:
            engine.ingest([r for r in readings if engine.partition.wants(r.kind, r.district)])
        evaluate(now_ms - 1)
    return events, orders


def _order(c: CommandRequest) -> tuple[str, str, str]:
    return (c.device, c.name, c.reason)


def test_two_partitions_raise_the_alerts_one_raises(thresholds: Thresholds) -> None:
    """The flash flood: street floods and rising drains in districts of both
    partitions, station gusts, and the city's storm risk (partition 0's) whose lamp
    orders partition 1 must send for its own lamps."""
    one, one_orders = _run("flash-flood", thresholds, 1)
    two, two_orders = _run("flash-flood", thresholds, 2)
    rules = Counter(rule for _, rule, *_ in one)
    assert rules["storm-risk"] and rules["street-flood"] and rules["gust"], rules
    assert two == one
    assert one_orders and two_orders == one_orders


def test_the_district_map_is_stable_and_the_city_belongs_to_partition_0() -> None:
    # Fixed values: every process, any Python, computes these (no hash randomisation).
    assert [partition_of(d, 2) for d in ("phuong-1", "phuong-2", "nha-mat", "vinh-trach")] == [
        1, 0, 1, 0,
    ]  # fmt: skip
    assert partition_of("phuong-1", 1) == 0
    assert partition_of("", 7) == CITY_OWNER
    spread = Counter(partition_of(f"ward-{i}", 4) for i in range(400))
    assert set(spread) == {0, 1, 2, 3} and min(spread.values()) > 60
    p1 = Partition(1, 2)
    assert p1.wants(Kind.WEATHER, "phuong-2")  # every partition reads every station
    assert not p1.wants(Kind.WATER, "phuong-2") and p1.wants(Kind.WATER, "phuong-1")
    assert not p1.owns_city and Partition(0, 2).owns_city
    for bad in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="partition"):
            Partition(*bad)


def test_a_partition_subscribes_to_its_districts_where_they_are_known() -> None:
    p1 = Partition(1, 2)
    everything = p1.filters("baclieu")
    assert everything == [f"baclieu/+/+/+/{c}" for c in ("tele", "meta", "status")]
    mine = p1.filters("baclieu", ["phuong-1", "phuong-2"])
    assert "baclieu/+/weather/+/tele" in mine
    assert "baclieu/phuong-1/water/+/tele" in mine and "baclieu/phuong-1/lamp/+/status" in mine
    assert not any("phuong-2" in f for f in mine)
    assert not any("phuong-1/weather" in f for f in mine)  # no overlap: one copy each


def test_a_restarted_partition_adopts_only_its_own_open_alerts(thresholds: Thresholds) -> None:
    def alert(district: str, rule: str = "street-flood", subject: str = "d-1") -> AlertEvent:
        from deltasense.alerts import Message

        return AlertEvent(
            id=f"al-{district or 'city'}-{rule}",
            kind="storm" if rule == "storm-risk" else "flood",
            rule=rule,
            subject=subject,
            district=district,
            severity="warning",
            state="firing",
            risk_level=3,
            started=1,
            updated=1,
            message=Message(vi="x", en="x"),
        )

    p1 = Engine(thresholds, utc_offset_min=420, partition=Partition(1, 2))
    adopted = p1.restore([alert("phuong-1"), alert("phuong-2"), alert("", "storm-risk", "city")])
    assert adopted == 1 and [e.district for e in p1.open_alerts()] == ["phuong-1"]
    p0 = Engine(thresholds, utc_offset_min=420, partition=Partition(0, 2))
    assert p0.restore([alert("phuong-1"), alert("", "storm-risk", "city")]) == 1
    assert [e.rule for e in p0.open_alerts()] == ["storm-risk"]
