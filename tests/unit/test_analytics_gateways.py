"""District edge gateways: their status on the wire → state → rules → alerts
(edge-spool-backlog, edge-spool-drops, edge-silent)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from analytics.engine import Engine
from analytics.partition import Partition, partition_of
from analytics.service import AnalyticsService
from analytics.thresholds import load_thresholds
from deltasense import gateway_status as gs
from deltasense.alerts import AlertEvent
from deltasense.gateway_status import Dropped, GatewayStatus, GatewayStatusError
from deltasense.influx import InfluxClient
from deltasense.runtime import now_ms
from deltasense.settings import Settings
from deltasense.thresholds import Thresholds, ThresholdsError

T0 = 1_700_000_000_000
D = "phuong-1"  # "Phường 1" in deltasense/wards.toml
RULES = ("edge-spool-backlog", "edge-spool-drops", "edge-silent")


def status(
    *, ts: int = T0, age: int | None = None, full: int = 0, aged: int = 0, **kw: Any
) -> GatewayStatus:
    """What the gateway (edge/gateway.py ``status``) publishes."""
    fields: dict[str, Any] = {
        "state": "online",
        "ts": ts,
        "district": D,
        "interval_s": 10.0,
        "spool_records": 0 if age is None else 50,
        "spool_bytes": 0 if age is None else 9_000,
        "spool_max_bytes": 1 << 30,
        "oldest_age_s": age,
        "backlog_records": 0,
        "dropped": Dropped(full=full, age=aged),
        "superseded": 0,
        "policy": "drop_oldest",
    }
    return GatewayStatus(**{**fields, **kw})


def offline() -> GatewayStatus:
    return gs.decode(gs.OFFLINE, D)


def _engine(thresholds: Thresholds, partition: Partition | None = None) -> Engine:
    return Engine(thresholds, utc_offset_min=420, partition=partition)


def _events(engine: Engine, at: int) -> dict[str, AlertEvent]:
    return {e.rule: e for e in engine.evaluate(at)}


# --- the wire -------------------------------------------------------------------------------
def test_the_gateways_status_round_trips_and_its_last_will_is_offline() -> None:
    s = status(age=700, full=3, aged=2)
    wire = gs.encode(s)
    assert gs.decode(wire, D) == s
    doc = msgspec.json.decode(wire)
    # The fields docs/CONTRACT.md names, null included (an empty spool has no oldest).
    assert set(doc) >= {"state", "ts", "district", "spool_records", "oldest_age_s", "dropped"}
    assert msgspec.json.decode(gs.encode(status()))["oldest_age_s"] is None
    assert doc["dropped"] == {"full": 3, "age": 2} and s.dropped and s.dropped.total == 5
    assert offline() == GatewayStatus(state="offline")
    # A newer gateway's extra field is not a reason to stop reading it.
    assert gs.decode(msgspec.json.encode({**doc, "uplink_rtt_ms": 40}), D) == s
    assert gs.status_filter("baclieu") == "baclieu/_edge/+/status"
    assert gs.district_of("baclieu", "baclieu/_edge/phuong-1/status") == "phuong-1"
    for other in (
        "baclieu/_edge/phuong-1/meta",
        "x/_edge/phuong-1/status",
        "baclieu/_edge/A!/status",
    ):
        assert gs.district_of("baclieu", other) is None


@pytest.mark.parametrize(
    "change",
    [
        {"oldest_age_s": -5},  # negative depth
        {"spool_records": -1},
        {"dropped": {"full": -1, "age": 0}},
        {"oldest_age_s": 10**12},  # huge
        {"spool_bytes": 2**70},
        {"dropped": {"full": 1e400, "age": 0}},
        {"ts": "soon"},  # wrong types
        {"oldest_age_s": "600"},
        {"dropped": 7},
        {"spool_records": True},
        {"oldest_age_s": 1.5},
        {"state": "sleeping"},
        {"interval_s": 0},
        {"district": "phuong-2"},  # another district's status on this topic
        {"ts": None},  # online without its time
    ],
)
def test_hostile_statuses_are_refused(change: dict[str, Any]) -> None:
    doc = {**msgspec.json.decode(gs.encode(status(age=60))), **change}
    with pytest.raises(GatewayStatusError):
        gs.decode(msgspec.json.encode(doc), D)


@pytest.mark.parametrize(
    "payload", [b"not json", b"[]", b"null", b'{"spool_records": 1}', b"\xff\xfe", b" " * 4096]
)
def test_garbage_is_refused(payload: bytes) -> None:
    with pytest.raises(GatewayStatusError):
        gs.decode(payload, D)


# --- edge-spool-backlog ------------------------------------------------------------------------
def test_a_backlog_warns_then_goes_critical_holds_and_resolves_when_drained(
    thresholds: Thresholds,
) -> None:
    p = thresholds.platform
    engine = _engine(thresholds)
    engine.gateways.status(T0, D, status(age=30))
    assert engine.evaluate(T0) == []  # seconds old: a healthy spool
    engine.gateways.status(T0 + 1_000, D, status(ts=T0 + 1_000, age=round(p.edge_backlog_s) + 1))
    warn = _events(engine, T0 + 1_000)["edge-spool-backlog"]
    assert (warn.kind, warn.subject, warn.district, warn.severity, warn.state) == (
        "health", D, D, "warning", "firing",
    )  # fmt: skip
    assert "Phường 1" in warn.message.vi and "Phường 1" in warn.message.en
    assert "đến trễ" in warn.message.vi and "late" in warn.message.en
    engine.gateways.status(
        T0 + 2_000, D, status(ts=T0 + 2_000, age=round(p.edge_backlog_critical_s) + 1)
    )
    crit = _events(engine, T0 + 2_000)["edge-spool-backlog"]
    assert (crit.id, crit.severity) == (warn.id, "critical")
    assert crit.message.en.startswith("Edge gateway backlog (severe): ")
    assert crit.message.vi.startswith("Dữ liệu bị dồn tại bộ gom biên (nghiêm trọng): ")
    # Draining: below the limit but above the clear age holds (the deadband).
    engine.gateways.status(
        T0 + 3_000, D, status(ts=T0 + 3_000, age=round(p.edge_backlog_clear_s) + 5)
    )
    assert engine.evaluate(T0 + 3_000) == []
    engine.gateways.status(T0 + 4_000, D, status(ts=T0 + 4_000, age=None))  # empty spool
    done = _events(engine, T0 + 4_000)["edge-spool-backlog"]
    assert (done.id, done.state) == (warn.id, "resolved")
    assert "Phường 1" in done.message.vi and done.message.en.startswith("Over:")


def test_an_offline_gateways_backlog_is_neither_raised_nor_cleared(thresholds: Thresholds) -> None:
    p = thresholds.platform
    engine = _engine(thresholds)
    engine.gateways.status(T0, D, status(age=round(p.edge_backlog_s) + 60))
    assert "edge-spool-backlog" in _events(engine, T0)
    engine.gateways.status(T0 + 1_000, D, offline())
    assert "edge-spool-backlog" not in _events(engine, T0 + 1_000)  # held open, not resolved
    assert engine.firing("edge-spool-backlog") == 1


# --- edge-spool-drops ---------------------------------------------------------------------------
def test_rising_drops_raise_one_critical_alert_until_a_clean_window(thresholds: Thresholds) -> None:
    window = round(thresholds.platform.edge_drop_window_s * 1000)
    engine = _engine(thresholds)
    engine.gateways.status(T0, D, status(full=40))  # dropped before we watched: the baseline
    assert engine.evaluate(T0) == []
    engine.gateways.status(T0 + 10_000, D, status(ts=T0 + 10_000, full=40, aged=3))
    drop = _events(engine, T0 + 10_000)["edge-spool-drops"]
    assert (drop.severity, drop.values["dropped"]) == ("critical", 3)
    assert "bỏ 3 bản ghi" in drop.message.vi and "dropped 3 records" in drop.message.en
    # the same count again: held (the window), no second alert
    engine.gateways.status(T0 + 20_000, D, status(ts=T0 + 20_000, full=40, aged=3))
    assert engine.evaluate(T0 + 20_000) == []
    later = T0 + 10_000 + window + 1
    engine.gateways.status(later, D, status(ts=later, full=40, aged=3))
    done = _events(engine, later)["edge-spool-drops"]
    assert (done.id, done.state) == (drop.id, "resolved")


def test_a_recreated_spool_counts_from_zero(thresholds: Thresholds) -> None:
    engine = _engine(thresholds)
    engine.gateways.status(T0, D, status(full=500))
    engine.evaluate(T0)
    engine.gateways.status(T0 + 1_000, D, status(ts=T0 + 1_000, full=2))  # a new spool file
    assert _events(engine, T0 + 1_000)["edge-spool-drops"].values["dropped"] == 2


# --- edge-silent ----------------------------------------------------------------------------
def test_the_last_will_raises_edge_silent_and_a_fresh_status_resolves_it(
    thresholds: Thresholds,
) -> None:
    engine = _engine(thresholds)
    engine.gateways.status(T0, D, status())
    assert engine.evaluate(T0) == []
    engine.gateways.status(T0 + 5_000, D, offline())
    gone = _events(engine, T0 + 5_000)["edge-silent"]
    assert (gone.severity, gone.values["silent_s"]) == ("warning", 5)
    assert "Phường 1" in gone.message.vi and "cannot see floods" in gone.message.en
    hour = round(thresholds.platform.edge_silent_critical_s * 1000)
    crit = _events(engine, T0 + hour)["edge-silent"]
    assert (crit.id, crit.severity) == (gone.id, "critical")
    engine.gateways.status(T0 + hour + 1, D, status(ts=T0 + hour + 1))
    back = _events(engine, T0 + hour + 1)["edge-silent"]
    assert (back.id, back.state) == (gone.id, "resolved")
    assert "back online" in back.message.en


def test_a_stale_status_is_silent_after_its_intervals(thresholds: Thresholds) -> None:
    k = thresholds.platform.edge_silent_intervals
    engine = _engine(thresholds)
    engine.gateways.status(T0, D, status(interval_s=2.0))
    assert engine.evaluate(T0 + round(2_000 * k)) == []  # just at the limit
    silent = _events(engine, T0 + round(2_000 * k) + 1_000)["edge-silent"]
    assert silent.state == "firing"
    # A retained status seen first (after a restart) is as old as its ts says.
    other = _engine(thresholds)
    other.gateways.status(T0 + 600_000, D, status(ts=T0, interval_s=2.0))
    assert _events(other, T0 + 600_000)["edge-silent"].values["silent_s"] == 600


def test_an_empty_retained_status_retires_the_gateway(thresholds: Thresholds) -> None:
    engine = _engine(thresholds)
    engine.gateways.status(T0, D, offline())
    (event,) = engine.evaluate(T0 + 1)
    engine.gateways.retire(D)
    (done,) = engine.evaluate(T0 + 2)
    assert (done.id, done.state) == (event.id, "resolved")
    assert engine.evaluate(T0 + 600_000) == []


# --- restarts and partitions --------------------------------------------------------------------
def test_a_restarted_engine_adopts_open_gateway_alerts_without_raising_them_again(
    thresholds: Thresholds,
) -> None:
    p = thresholds.platform
    first = _engine(thresholds)
    first.gateways.status(T0, D, status(full=0))
    first.evaluate(T0)
    first.gateways.status(T0 + 1, D, status(ts=T0 + 1, age=round(p.edge_backlog_s) + 1, full=4))
    first.evaluate(T0 + 1)
    first.gateways.status(T0 + 2, D, offline())
    opened = first.evaluate(T0 + 2) and first.open_alerts()
    assert {e.rule for e in opened} == set(RULES)
    second = _engine(thresholds)
    assert second.restore(opened) == 3
    # Its first evaluation comes before the retained status: nothing resolves.
    assert second.evaluate(T0 + 10) == []
    second.gateways.status(T0 + 20, D, offline())  # the retained Last Will
    assert second.evaluate(T0 + 20) == []
    assert sorted(e.id for e in second.open_alerts()) == sorted(e.id for e in opened)


def test_only_the_districts_partition_raises_its_gateways_alerts(thresholds: Thresholds) -> None:
    owner = partition_of(D, 2)
    engines = [_engine(thresholds, Partition(index=i, count=2)) for i in range(2)]
    for engine in engines:
        engine.gateways.status(T0, D, offline())
    raised = [len(engine.evaluate(T0 + 1)) for engine in engines]
    assert raised[owner] == 1 and raised[1 - owner] == 0


# --- the service: hostile statuses counted and ignored ---------------------------------------
def test_the_service_counts_and_ignores_hostile_statuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine()
    service = AnalyticsService(
        Settings(site="s", analytics_metrics_port=0), engine, cast(InfluxClient, None)
    )
    topic = "s/_edge/phuong-1/status"
    good = msgspec.json.decode(gs.encode(status(ts=now_ms(), age=30)))
    hostile = [
        b"garbage",
        b"\x00" * 10_000,
        msgspec.json.encode({**good, "oldest_age_s": -1}),
        msgspec.json.encode({**good, "spool_records": 10**30}),
        msgspec.json.encode({**good, "dropped": "many"}),
        msgspec.json.encode({**good, "district": "phuong-2"}),
    ]
    for payload in hostile:
        assert service.handle(topic, payload) == 0
    assert service.bad_messages == len(hostile)
    assert engine.gateways.districts == []  # nothing believed
    service.handle("s/_edge/Not_A_Ward/status", gs.encode(status()))  # a bad topic: counted
    assert service.bad_messages == len(hostile) + 1 and engine.gateways.districts == []
    service.handle(topic, msgspec.json.encode(good))
    assert engine.gateways.districts == ["phuong-1"] and service.bad_messages == len(hostile) + 1
    service.handle(topic, gs.OFFLINE)
    service.evaluate()
    assert engine.firing("edge-silent") == 1
    service.handle(topic, b"")  # the retained status cleared: the gateway retired
    service.evaluate()
    assert engine.firing("edge-silent") == 0


def test_gateway_thresholds_must_be_ordered(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("[platform]\nedge_backlog_s = 100.0\nedge_backlog_clear_s = 200.0\n")
    with pytest.raises(ThresholdsError, match="edge_backlog_clear_s"):
        load_thresholds(path)
