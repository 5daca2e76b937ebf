"""Issue 13, scope 3: a district gateway's health turned into alerts, live.

A real Mosquitto and the real analytics service (restored from a real InfluxDB):
a gateway's retained status on ``{site}/_edge/{district}/status`` showing an old
backlog and rising drops raises edge-spool-backlog and edge-spool-drops on
``{site}/_alerts/health/…``; an analytics restart raises neither again; a healthy
status resolves both (the same ids).  The gateway's Last Will, sent by the broker
when its connection dies, raises edge-silent; its next status resolves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from deltasense import gateway_status as gs
from deltasense.contract import edge_status_topic
from deltasense.influx import InfluxClient
from deltasense.settings import Settings
from tests.integration.analytics_support import Event, Service, Watcher, running, wait_stored
from tests.support import now_ms

WARD = "phuong-1"  # "Phường 1"
DROP_WINDOW_S = 3


def _settings(settings: Settings, tmp_path: Path) -> Settings:
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text(
        "[platform]\n"
        "edge_backlog_s = 60.0\n"
        "edge_backlog_clear_s = 10.0\n"
        f"edge_drop_window_s = {DROP_WINDOW_S}\n"
    )
    return settings.model_copy(update={"thresholds_file": thresholds, "analytics_tick_s": 0.5})


def _status(age: int | None, full: int) -> bytes:
    """What the gateway (edge/gateway.py) publishes."""
    return gs.encode(
        gs.GatewayStatus(
            state="online",
            ts=now_ms(),
            district=WARD,
            interval_s=10.0,
            spool_records=0 if age is None else 5_000,
            spool_bytes=0 if age is None else 900_000,
            spool_max_bytes=1 << 30,
            oldest_age_s=age,
            backlog_records=0 if age is None else 5_000,
            dropped=gs.Dropped(full=full),
            superseded=0,
            policy="drop_oldest",
        )
    )


async def _next(watcher: Watcher, pred: Callable[[str, Event], bool], tries: int = 4) -> Event:
    """The next matching event within ``tries`` × WAIT_S (a loaded machine is slow)."""
    for _ in range(tries - 1):
        with contextlib.suppress(TimeoutError):
            return (await watcher.until(pred))[1]
    return (await watcher.until(pred))[1]


def _is(rule: str, state: str) -> Callable[[str, Event], bool]:
    return lambda _t, e: e.rule == rule and e.state == state


async def test_a_gateways_backlog_and_drops_raise_alerts_that_survive_a_restart_and_resolve(
    settings: Settings, influx: InfluxClient, tmp_path: Path
) -> None:
    s = _settings(settings, tmp_path)
    site, topic = s.site, edge_status_topic(s.site, WARD)
    watcher = Watcher()
    analytics = Service(s)
    await analytics.start()
    try:
        async with (
            aiomqtt.Client("127.0.0.1", s.mqtt_port, identifier=f"{site}-watch") as watch,
            aiomqtt.Client("127.0.0.1", s.mqtt_port, identifier=f"{site}-gw") as gw,
        ):
            await watch.subscribe(f"{site}/_alerts/health/#", qos=1)
            consumer = asyncio.create_task(watcher.consume(watch))
            # Healthy, with 7 drops from long ago: the baseline, no alert.
            await gw.publish(topic, _status(None, 7), qos=1, retain=True)
            await asyncio.sleep(1.5)
            assert watcher.queue.empty(), watcher.queue.get_nowait()
            # The uplink was down 10 min and the spool dropped 12 more.
            await gw.publish(topic, _status(600, 19), qos=1, retain=True)
            backlog = await _next(watcher, _is("edge-spool-backlog", "firing"))
            drops = await _next(watcher, _is("edge-spool-drops", "firing"))
            for event in (backlog, drops):
                assert (event.kind, event.subject, event.district) == ("health", WARD, WARD)
                assert "Phường 1" in event.message.vi and "Phường 1" in event.message.en
            assert (backlog.severity, backlog.values["oldest_age_s"]) == ("warning", 600)
            assert (drops.severity, drops.values["dropped"]) == ("critical", 12)
            topics = {t for t, _ in watcher.seen}
            assert f"{site}/_alerts/health/edge-spool-backlog/{WARD}" in topics
            assert f"{site}/_alerts/health/edge-spool-drops/{WARD}" in topics

            # Analytics restarts: it adopts both from InfluxDB and the retained status
            # keeps them up; nothing is raised a second time.
            # What the restart adopts: both rows in InfluxDB (a fixed 1.5 s was not
            # enough on a loaded CI box; the drops alert was then never resolved).
            for event in (backlog, drops):
                await wait_stored(s, event.id, "firing", within=20)
            await analytics.stop()
            await analytics.start()
            await asyncio.sleep(3)
            again = [e for _, e in watcher.seen[2:]] + _drain(watcher)
            assert not [
                e for e in again if e.state == "firing" and e.id not in {backlog.id, drops.id}
            ]

            # Drained, no new drops: both resolve, the same episodes.
            await gw.publish(topic, _status(None, 19), qos=1, retain=True)
            done = await _next(watcher, _is("edge-spool-backlog", "resolved"))
            assert done.id == backlog.id
            done = await _next(watcher, _is("edge-spool-drops", "resolved"))
            assert done.id == drops.id
            assert "Phường 1" in done.message.vi
            consumer.cancel()
            await gw.publish(topic, b"", qos=1, retain=True)
    finally:
        if analytics.task is not None:
            await analytics.stop()


def _drain(watcher: Watcher) -> list[Event]:
    out: list[Event] = []
    while not watcher.queue.empty():
        topic, event = watcher.queue.get_nowait()
        watcher.seen.append((topic, event))
        out.append(event)
    return out


async def test_the_gateways_last_will_raises_edge_silent_and_its_next_status_resolves_it(
    settings: Settings, influx: InfluxClient, tmp_path: Path
) -> None:
    s = _settings(settings, tmp_path)
    site, topic = s.site, edge_status_topic(s.site, WARD)
    watcher = Watcher()
    connected = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_connect(*_: Any) -> None:
        loop.call_soon_threadsafe(connected.set)

    # The gateway's uplink session as edge/gateway.py opens it: its Last Will retained.
    gateway = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{site}-gw", clean_session=True)
    gateway.will_set(topic, gs.OFFLINE, qos=1, retain=True)
    gateway.on_connect = on_connect
    async with (
        running(s),
        aiomqtt.Client("127.0.0.1", s.mqtt_port, identifier=f"{site}-watch") as watch,
    ):
        await watch.subscribe(f"{site}/_alerts/health/#", qos=1)
        consumer = asyncio.create_task(watcher.consume(watch))
        gateway.connect("127.0.0.1", s.mqtt_port, keepalive=5)
        gateway.loop_start()
        try:
            await asyncio.wait_for(connected.wait(), 10)
            gateway.publish(topic, _status(None, 0), qos=1, retain=True).wait_for_publish(5)
            await asyncio.sleep(1.5)
            assert watcher.queue.empty(), watcher.queue.get_nowait()
            # The link dies without a DISCONNECT: the broker publishes the Last Will.
            gateway.loop_stop()
            sock = gateway.socket()
            assert sock is not None
            sock.close()
            silent = await _next(watcher, _is("edge-silent", "firing"))
            assert (silent.subject, silent.severity) == (WARD, "warning")
            assert "Phường 1" in silent.message.vi and "cannot see floods" in silent.message.en
        finally:
            gateway.loop_stop()
        async with aiomqtt.Client("127.0.0.1", s.mqtt_port, identifier=f"{site}-gw2") as back:
            await back.publish(topic, _status(None, 0), qos=1, retain=True)
            done = await _next(watcher, _is("edge-silent", "resolved"))
            assert done.id == silent.id and "back online" in done.message.en
            await back.publish(topic, b"", qos=1, retain=True)
        consumer.cancel()
