"""Analytics turns operators' acks (``{site}/_acks/{id}``) into the alert event it owns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import msgspec
import pytest

from analytics.engine import Engine
from analytics.service import AnalyticsService
from deltasense import alerts
from deltasense.influx import InfluxClient
from deltasense.settings import Settings

SITE = "s"
T0 = 1_780_000_000_000


def _open(subject: str = "drain-x") -> alerts.AlertEvent:
    return alerts.AlertEvent(
        id=alerts.alert_id("street-flood", subject, T0),
        kind="flood",
        rule="street-flood",
        subject=subject,
        district="phuong-1",
        severity="warning",
        state="firing",
        values={"depth_mm": 150.0},
        started=T0,
        updated=T0 + 60_000,
        message=alerts.Message(vi="Ngập đường", en="Street flooding"),
    )


@pytest.fixture
def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> AnalyticsService:
    monkeypatch.chdir(tmp_path)
    engine = make_engine()
    assert engine.restore([_open()]) == 1
    return AnalyticsService(
        Settings(site=SITE, analytics_metrics_port=0), engine, cast(InfluxClient, None)
    )


def _published(service: AnalyticsService) -> list[alerts.AlertEvent]:
    return [e for e in service._mqtt_outbox if isinstance(e, alerts.AlertEvent)]


def test_an_ack_is_applied_to_analytics_own_event_and_republished(
    service: AnalyticsService,
) -> None:
    event = _open()
    acked = alerts.acknowledged(event, by="ca-truc", now_ms=T0 + 120_000, note="đã cử đội")
    # The acker also claims another severity and text: only its ack is taken.
    claimed = msgspec.structs.replace(
        acked, severity="critical", message=alerts.Message(vi="Sơ tán", en="Evacuate")
    )
    service.handle(alerts.ack_topic(SITE, event.id), alerts.encode(claimed))
    (out,) = _published(service)
    assert out.ack == acked.ack and out.updated == acked.updated
    assert (out.severity, out.message, out.values) == (event.severity, event.message, event.values)
    assert service.engine.open_alerts()[0].ack == acked.ack
    assert len(service._influx_outbox) == 1 and out.id in service._influx_outbox[0]
    # Again (a redelivery, or a second operator): the first ack stands, nothing new.
    later = alerts.acknowledged(event, by="someone-else", now_ms=T0 + 200_000)
    service.handle(alerts.ack_topic(SITE, event.id), alerts.encode(later))
    assert len(_published(service)) == 1 and service.bad_messages == 0


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        # another id than the topic's
        (alerts.ack_topic(SITE, "al-0000000000000000"), alerts.encode(
            alerts.acknowledged(_open(), by="x", now_ms=T0))),
        # no ack in it
        (alerts.ack_topic(SITE, _open().id), alerts.encode(_open())),
        # an alert nobody raised
        (alerts.ack_topic(SITE, _open("drain-q").id), alerts.encode(
            alerts.acknowledged(_open("drain-q"), by="x", now_ms=T0))),
        (alerts.ack_topic(SITE, _open().id), b"{not json"),
        (alerts.ack_topic(SITE, _open().id), b""),
        (f"{SITE}/_acks/{_open().id}/extra", b"{}"),
    ],
)  # fmt: skip
def test_bad_acks_change_nothing(service: AnalyticsService, topic: str, payload: bytes) -> None:
    service.handle(topic, payload)
    assert _published(service) == [] and service.bad_messages == 1
    assert service.engine.open_alerts()[0].ack is None


def test_a_resolved_alert_seen_on_alerts_can_be_acked(service: AnalyticsService) -> None:
    done = msgspec.structs.replace(
        _open("drain-y"), state="resolved", ended=T0 + 90_000, updated=T0 + 90_000
    )
    topic = alerts.alert_topic(SITE, done)
    service.handle(topic, alerts.encode(done))  # analytics' own retained event
    acked = alerts.acknowledged(done, by="ca-truc", now_ms=T0 + 100_000)
    service.handle(alerts.ack_topic(SITE, done.id), alerts.encode(acked))
    (out,) = _published(service)
    assert out.state == "resolved" and out.ack == acked.ack and out.id == done.id
