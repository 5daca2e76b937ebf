"""Analytics' alert publisher keeps publishing after a failed publish (a PUBACK that
timed out behind an inbound backlog): before, the task returned and every later
alert waited in the outbox for the next MQTT session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import cast

import aiomqtt
import pytest

from analytics.engine import Engine
from analytics.service import AnalyticsService
from deltasense import alerts
from deltasense.influx import InfluxClient
from deltasense.settings import Settings

T0 = 1_780_000_000_000


def _event(subject: str) -> alerts.AlertEvent:
    return alerts.AlertEvent(
        id=alerts.alert_id("street-flood", subject, T0),
        kind="flood",
        rule="street-flood",
        subject=subject,
        district="phuong-1",
        severity="critical",
        state="firing",
        values={"depth_mm": 350.0},
        started=T0,
        updated=T0,
        message=alerts.Message(vi="Ngập đường nghiêm trọng", en="Severe street flooding"),
    )


class _FlakyClient:
    """Fails the first publish as aiomqtt does when its PUBACK wait times out."""

    def __init__(self) -> None:
        self.calls = 0
        self.published: list[str] = []
        self.two = asyncio.Event()  # set once two events went out

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        self.calls += 1
        if self.calls == 1:
            raise aiomqtt.MqttError("Operation timed out")
        self.published.append(topic)
        if len(self.published) == 2:
            self.two.set()


async def test_a_failed_publish_is_retried_and_later_alerts_still_go_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_engine: Callable[..., Engine]
) -> None:
    monkeypatch.chdir(tmp_path)
    service = AnalyticsService(
        Settings(site="s", analytics_metrics_port=0), make_engine(), cast(InfluxClient, None)
    )
    client = _FlakyClient()
    task = asyncio.create_task(service._publisher(cast(aiomqtt.Client, client)))
    try:
        service._emit([_event("drain-a")])
        await asyncio.sleep(0)
        service._emit([_event("drain-b")])  # raised while the first one is being retried
        await asyncio.wait_for(client.two.wait(), 5)
        assert not task.done()  # still publishing: it did not give up on the session
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # the timed-out event first, again, then the next: none lost, order kept
    assert client.calls == 3
    assert client.published == [
        alerts.alert_topic("s", _event("drain-a")),
        alerts.alert_topic("s", _event("drain-b")),
    ]
    assert not service._mqtt_outbox
