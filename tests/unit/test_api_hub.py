"""The alert fan-out: retained deliveries skipped, bad payloads counted, slow clients bounded."""

from __future__ import annotations

from pathlib import Path

import aiomqtt
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from api.hub import AlertHub, MqttUnavailable
from deltasense import alerts
from deltasense.alerts import AlertEvent, Message
from deltasense.settings import Settings


def _event(n: int) -> AlertEvent:
    return AlertEvent(
        id=f"al-{n:016x}",
        kind="health",
        rule="offline",
        subject=f"d{n}",
        district="p1",
        severity="info",
        state="firing",
        started=1,
        updated=n,
        message=Message(vi="Mất kết nối", en="Offline"),
    )


def _message(payload: bytes, *, retain: bool = False) -> aiomqtt.Message:
    return aiomqtt.Message(
        topic="s/_alerts/health/offline/d1",
        payload=payload,
        qos=1,
        retain=retain,
        mid=1,
        properties=None,
    )


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AlertHub:
    monkeypatch.chdir(tmp_path)
    return AlertHub(Settings(var_dir=tmp_path), registry=CollectorRegistry(), queue_max=2)


def _count(hub: AlertHub, outcome: str) -> float:
    return float(hub.received.labels(outcome)._value.get())


def test_changes_reach_every_listener_retained_do_not(hub: AlertHub) -> None:
    with hub.listen() as one, hub.listen() as two:
        hub.handle(_message(alerts.encode(_event(1)), retain=True))
        hub.handle(_message(alerts.encode(_event(2))))
        hub.handle(_message(b"{broken"))
        hub.handle(_message(msgspec.json.encode({"id": "x"})))
        hub.handle(_message(b""))
        assert [one.get_nowait().event.id for _ in range(one.qsize())] == [_event(2).id]
        assert two.get_nowait().event == _event(2)
    assert (_count(hub, "retained"), _count(hub, "ok"), _count(hub, "bad")) == (1, 1, 2)
    assert _count(hub, "cleared") == 1
    hub.handle(_message(alerts.encode(_event(3))))  # no listener left: nothing queued anywhere


def test_slow_listener_loses_oldest_and_is_counted(hub: AlertHub) -> None:
    with hub.listen() as slow:
        for n in range(5):
            hub.fan_out(_event(n))
        assert [slow.get_nowait().event.updated for _ in range(slow.qsize())] == [3, 4]
    assert hub.dropped._value.get() == 3


async def test_publish_without_connection_is_unavailable(hub: AlertHub) -> None:
    assert not hub.connected
    with pytest.raises(MqttUnavailable):
        await hub.publish("s/d/lamp/x/cmd", b"{}")


def test_changes_after_a_last_event_id_are_replayed_in_order(hub: AlertHub) -> None:
    for n in range(5):
        hub.fan_out(_event(n))
    assert [c.seq for c in hub.since(f"{hub.epoch}-2") or []] == [3, 4, 5]
    assert [c.event.updated for c in hub.since(f"{hub.epoch}-2") or []] == [2, 3, 4]
    assert hub.since(f"{hub.epoch}-5") == []  # up to date
    assert hub.since(f"{hub.epoch}-0") is not None and len(hub.since(f"{hub.epoch}-0") or []) == 5
    for bad in ("deadbeef-2", f"{hub.epoch}-9", f"{hub.epoch}-x", "", "-", f"{hub.epoch}--1"):
        assert hub.since(bad) is None, bad  # reload instead


def test_a_last_event_id_older_than_what_is_kept_asks_for_a_reload(
    hub: AlertHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1005):
        hub.fan_out(_event(n))
    assert hub.since(f"{hub.epoch}-2") is None
    assert [c.seq for c in hub.since(f"{hub.epoch}-1004") or []] == [1005]
    assert hub.since(f"{hub.epoch}-5") is not None  # the oldest kept is 6: all there
