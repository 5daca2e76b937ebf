"""Engine and the service's message handling, without services."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from analytics.engine import Engine
from analytics.registry import ONLINE
from analytics.service import AnalyticsService, open_alerts_from_rows
from analytics.thresholds import from_document
from deltasense import alerts
from deltasense.contract import decode_tele, parse_topic
from deltasense.influx import InfluxClient
from deltasense.runtime import now_ms
from deltasense.settings import Settings
from deltasense.thresholds import default_document

EngineFactory = Callable[..., Engine]  # the make_engine fixture (conftest.py)

NOW = 1_800_000_000_000


def tele(engine: Engine, topic: str, **fields: object) -> None:
    payload = json.dumps({"seq": 1, "boot": 1, "ts": NOW, **fields}).encode()
    engine.ingest(decode_tele(parse_topic(topic), payload, NOW))


def test_water_reading_fires_street_flood(make_engine: EngineFactory) -> None:
    engine = make_engine()
    tele(engine, "s/phuong-1/water/drain-x/tele", level_cm=15)
    (event,) = engine.evaluate(NOW + 10)
    assert (event.subject, event.district, event.values) == (
        "drain-x",
        "phuong-1",
        {"depth_mm": 150},
    )
    assert alerts.alert_topic("s", event) == "s/_alerts/flood/street-flood/drain-x"
    assert engine.evaluate(NOW + 20) == []


def test_qc_flagged_value_is_not_used(make_engine: EngineFactory) -> None:
    engine = make_engine()
    readings = decode_tele(
        parse_topic("s/p/water/drain-x/tele"),
        b'{"seq":1,"boot":1,"ts":%d,"level_cm":1500}' % NOW,  # 15 m above the road: impossible
        NOW,
    )
    stats = engine.ingest(readings)
    assert (stats.readings, stats.values, stats.qc_flagged) == (1, 0, 1)
    assert engine.evaluate(NOW) == []


def street(events: list[alerts.AlertEvent]) -> list[alerts.AlertEvent]:
    return [e for e in events if e.rule == "street-flood"]


def test_canal_stations_are_left_out_of_the_street_rule(make_engine: EngineFactory) -> None:
    engine = make_engine()
    tele(engine, "s/p/water/ganh-hao/tele", level_cm=230)  # canal gauge datum: not a street
    stats = engine.ingest(
        decode_tele(parse_topic("s/p/lamp/lamp-1/tele"), b'{"seq":1,"boot":1,"on":true}', NOW)
    )
    assert stats.ignored == 0 and stats.readings == 1  # lamps feed the energy rules
    tele(engine, "s/p/water/drain-y/tele", dist_mm=120)  # no level: nothing to judge
    events = engine.evaluate(NOW)
    assert street(events) == []
    # the canal is judged against its alarm level instead: 2.30 m ≥ BĐ III 2.20 m
    (canal,) = [e for e in events if e.rule == "canal-level"]
    assert (canal.subject, canal.severity, canal.risk_level) == ("ganh-hao", "critical", 3)


def test_canal_station_from_meta_is_left_out_and_its_alert_resolves(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    tele(engine, "s/p/water/wl-canal-1/tele", level_cm=180)  # before its meta arrived
    (fired,) = engine.evaluate(NOW + 10)
    assert fired.state == "firing"
    engine.set_station("wl-canal-1", "p", "canal")
    (resolved,) = engine.evaluate(NOW + 20)
    assert (resolved.id, resolved.state) == (fired.id, "resolved")
    tele(engine, "s/p/water/wl-canal-1/tele", level_cm=190, seq=2)
    assert engine.evaluate(NOW + 30) == []
    engine.set_station("ganh-hao", "p", "drain")  # configured canal stations stay canal
    tele(engine, "s/p/water/ganh-hao/tele", level_cm=230)
    assert street(engine.evaluate(NOW + 40)) == []


def test_restore_ignores_resolved_and_unknown_rules(make_engine: EngineFactory) -> None:
    engine = make_engine()
    base = alerts.AlertEvent(
        id="al-1",
        kind="flood",
        rule="street-flood",
        subject="drain-x",
        district="p",
        severity="warning",
        state="firing",
        started=NOW - 5,
        updated=NOW - 5,
        message=alerts.Message(vi="", en=""),
    )
    resolved = alerts.AlertEvent(**{**_fields(base), "id": "al-2", "state": "resolved"})
    other = alerts.AlertEvent(**{**_fields(base), "id": "al-3", "rule": "no-such-rule"})
    assert engine.restore([base, resolved, other]) == 1
    tele(engine, "s/p/water/drain-x/tele", level_cm=20)
    assert engine.evaluate(NOW) == []  # adopted: not raised again


def _fields(event: alerts.AlertEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


def test_stored_bodies_decode_and_filter() -> None:
    firing = alerts.AlertEvent(
        id="al-1",
        kind="flood",
        rule="street-flood",
        subject="d",
        district="p",
        severity="warning",
        state="firing",
        started=1,
        updated=1,
        message=alerts.Message(vi="", en=""),
    )
    done = alerts.AlertEvent(**{**_fields(firing), "id": "al-2", "state": "resolved"})
    bodies = [alerts.encode(firing).decode(), alerts.encode(done).decode(), "{broken", None, 7]
    assert [e.id for e in open_alerts_from_rows(bodies)] == ["al-1"]


@pytest.fixture
def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: EngineFactory
) -> AnalyticsService:
    monkeypatch.chdir(tmp_path)
    settings = Settings(site="s", analytics_metrics_port=0)
    return AnalyticsService(settings, make_engine(), cast(InfluxClient, None))


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("s/p/water/drain-x/tele", b"not json"),
        ("s/p/water/drain-x/tele", b'{"seq":1,"boot":1,"level_cm":null}'),
        ("s/p/water/drain-x/tele", b'{"seq":-1,"boot":1,"level_cm":3}'),
        ("s/p/water/drain-x/tele", b"[]"),
        ("s/p/water/drain-x/tele", b"x" * 5000),
        ("s/p/water/drain-x/tele", b'{"seq":1,"boot":1,"ts":%d}' % (NOW * 10)),
        ("s/P/water/drain-x/tele", b'{"seq":1,"boot":1,"level_cm":3}'),
        ("s/p/sewage/drain-x/tele", b'{"seq":1,"boot":1,"level_cm":3}'),
        ("s/p/water/drain-x/extra/tele", b'{"seq":1,"boot":1,"level_cm":3}'),
        ("s/_alerts/flood/street-flood/drain-x", b'{"id":"al-1"}'),
        ("s/_alerts/flood/street-flood/drain-x", b"\xff\xfe"),
    ],
)
def test_bad_messages_are_counted_and_skipped(
    service: AnalyticsService, topic: str, payload: bytes
) -> None:
    assert service.handle(topic, payload) == 0
    assert service.bad_messages == 1


def test_good_messages_are_counted_as_readings(service: AnalyticsService) -> None:
    batch = json.dumps([{"seq": i, "boot": 1, "level_cm": 2} for i in range(3)]).encode()
    assert service.handle("s/p/water/drain-x/tele", batch) == 3
    assert service.handle("s/p/weather/ws-1/tele", b'{"seq":1,"boot":1,"t_c":30}') == 0
    assert service.bad_messages == 0


def test_a_batch_of_messages_is_taken_as_one_at_a_time_would_be(
    make_engine: EngineFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """handle_many puts a run of telemetry into the windows in one go, but a status
    message between readings still lands between them: the same state as message by
    message, whatever the mix (bad messages, kinds, a goodbye, a return)."""
    monkeypatch.chdir(tmp_path)
    now = now_ms()
    water = "s/p/water/drain-1/tele"
    messages = [
        (water, b'{"seq":1,"boot":1,"ts":%d,"level_cm":2}' % (now - 3000)),
        ("s/p/weather/ws-1/tele", b'{"seq":1,"boot":1,"ts":%d,"t_c":30}' % (now - 3000)),
        (water, b"not json"),
        ("s/p/water/drain-1/status", b'{"state":"offline","ts":%d}' % (now - 2000)),
        ("s/p/water/drain-2/tele", b'{"seq":4,"boot":1,"ts":%d,"level_cm":1}' % (now - 2000)),
        ("s/p/water/drain-3/status", b'{"state":"offline","ts":%d}' % (now - 1500)),
        ("s/p/water/drain-3/tele", b'{"seq":5,"boot":1,"ts":%d,"level_cm":7}' % (now - 1000)),
    ]
    settings = Settings(site="s", analytics_metrics_port=0)
    one = AnalyticsService(settings, make_engine(), cast(InfluxClient, None))
    many = AnalyticsService(settings, make_engine(), cast(InfluxClient, None))
    assert sum(one.handle(t, p) for t, p in messages) == many.handle_many(messages) == 3
    assert one.bad_messages == many.bad_messages == 1
    for service in (one, many):
        reg = service.engine.registry
        status = {
            device: int(reg.status[reg.row(device, "p", "water")])
            for device in ("drain-1", "drain-2", "drain-3")
        }
        # drain-1 said goodbye after its reading; drain-3 came back after its goodbye.
        assert status["drain-1"] != ONLINE and status["drain-2"] == status["drain-3"] == ONLINE
    assert np.array_equal(
        one.engine.water.series("level_cm"), many.engine.water.series("level_cm"), equal_nan=True
    )


def test_canal_from_meta_without_levels_falls_back_to_the_site_default(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    engine.set_station("wl-canal-2", "p", "canal")  # announced by meta, no levels configured
    tele(engine, "s/p/water/wl-canal-2/tele", level_cm=225)
    (canal,) = [e for e in engine.evaluate(NOW + 10) if e.rule == "canal-level"]
    # judged against the shipped default, Gành Hào's BĐ III (2.20 m)
    assert (canal.subject, canal.severity, canal.values["bd_lowest_m"]) == (
        "wl-canal-2",
        "critical",
        2.2,
    )


def test_canal_without_levels_is_not_judged_when_the_site_drops_the_default(
    make_engine: EngineFactory,
) -> None:
    document = default_document()
    del document["flood"]["canal_default"]
    engine = make_engine(from_document(document))
    engine.set_station("wl-canal-2", "p", "canal")
    tele(engine, "s/p/water/wl-canal-2/tele", level_cm=300)
    assert engine.evaluate(NOW + 10) == []
