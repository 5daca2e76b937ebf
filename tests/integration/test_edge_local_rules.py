"""The gateway's local rules on the two real brokers, with the real analytics.

The uplink is cut (the TCP proxy); a drain node publishes a rising water level on
the ward broker; the gateway (in this process, its siren on gpiozero's simulated
pin) must sound the siren within 5 s of the reading over the critical depth and
order the ward's lamp to full brightness.  After the link returns, the platform
has the street-flood alert exactly once (on ``_alerts`` and in InfluxDB).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import msgspec
import pytest
from gpiozero.pins.mock import MockFactory
from prometheus_client import REGISTRY

from deltasense import alerts as alerts_wire
from deltasense import schema
from deltasense.access import Service, gateway_username
from deltasense.contract import edge_alert_topic
from deltasense.influx import InfluxClient, quote_ident
from deltasense.rulekernels.flood import STREET_FLOOD
from deltasense.settings import Settings
from deltasense.thresholds import load_thresholds
from edge.gateway import Gateway
from tests.integration.analytics_support import Drains, Event, Watcher, running
from tests.integration.edge_support import WARD, EdgeWorld, TcpProxy, edge_world, until
from tools import broker

DRAIN, LAMP, PIN = "drain-42", "lamp-42", 17


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[EdgeWorld]:
    with edge_world(settings, tmp_path) as w:
        yield w


async def _is(value: bool) -> bool:
    return value


@pytest.mark.timeout(120)
async def test_a_flood_during_the_cut_sounds_the_siren_and_is_alerted_once(
    world: EdgeWorld, influx: InfluxClient
) -> None:
    platform = world.platform
    critical_cm = load_thresholds().flood.street_critical_mm / 10
    warning_cm = load_thresholds().flood.street_warning_mm / 10
    proxy = TcpProxy(platform.mqtt_port)
    await proxy.start()
    factory = MockFactory()
    gateway = Gateway(world.edge_settings(proxy.port, siren_pin=PIN), pin_factory=factory)
    pin = factory.pin(PIN)
    gw_task = asyncio.create_task(gateway.run())
    analytics = running(
        broker.as_service(platform, Service.ANALYTICS).model_copy(update={"analytics_tick_s": 0.5})
    )
    service = await analytics.__aenter__()
    alerts = Watcher()

    async def watch_alerts() -> None:
        async with aiomqtt.Client(
            "127.0.0.1",
            platform.mqtt_port,
            username=platform.mqtt_username,
            password=platform.mqtt_password,
            identifier=f"alerts-{platform.site}-local",
        ) as c:
            await c.subscribe(f"{platform.site}/_alerts/flood/{STREET_FLOOD}/{DRAIN}", qos=1)
            await alerts.consume(c)

    alerts_task = asyncio.create_task(watch_alerts())
    lamp_cmds: list[tuple[float, dict[str, object]]] = []
    lamp_ready = asyncio.Event()

    async def lamp_node() -> None:
        async with aiomqtt.Client("127.0.0.1", world.ward_port, identifier=LAMP) as c:
            base = f"{platform.site}/{WARD}/lamp/{LAMP}"
            await c.subscribe(f"{base}/cmd", qos=1)
            await c.publish(f"{base}/status", b'{"state":"online"}', qos=1, retain=True)
            lamp_ready.set()
            async for m in c.messages:
                lamp_cmds.append((time.monotonic(), json.loads(m.payload)))  # type: ignore[arg-type]

    lamp_task = asyncio.create_task(lamp_node())
    try:
        async with aiomqtt.Client("127.0.0.1", world.ward_port, identifier=DRAIN) as ward:
            drain = Drains(ward, platform.site)
            await asyncio.wait_for(lamp_ready.wait(), 10)
            await until(lambda: _is(gateway.uplink_up.is_set()), 20, "uplink up")
            for level in (0.0, 0.5, 0.0):
                await drain.level(DRAIN, level)
            await proxy.cut()
            await until(lambda: _is(not gateway.uplink_up.is_set()), 20, "the gateway sees the cut")
            assert pin.state is False and not lamp_cmds
            # The water rises 5 cm a reading, every 0.3 s, to over the critical depth.
            crossed = wet = 0.0
            level = 0.0
            while level < critical_cm + 5:
                level += 5.0
                await drain.level(DRAIN, level)
                if level >= warning_cm and not wet:
                    wet = time.monotonic()
                if level >= critical_cm and not crossed:
                    crossed = time.monotonic()
                await asyncio.sleep(0.3)
            await until(lambda: _is(pin.state is True), 5, "siren")
            assert gateway.siren.changed_at is not None
            siren_after = gateway.siren.changed_at - crossed
            assert lamp_cmds, "no full-brightness order reached the lamp"
            lamp_after = lamp_cmds[0][0] - wet
            cmd = lamp_cmds[0][1]
            assert cmd["name"] == "set_dim"
            assert cmd["args"] == {
                "pct": 100,
                "duration_s": load_thresholds().lighting.full_brightness_lease_s,
            }
            assert isinstance(cmd["expires"], int) and cmd["expires"] > time.time() * 1000
            print(
                f"siren pin high {siren_after:.3f} s after the reading over {critical_cm:.0f} cm "
                f"was published; the lamp's full-brightness order {lamp_after:.3f} s after the "
                f"first over the warning depth ({warning_cm:.1f} cm: a flood alert orders it)"
            )
            assert siren_after < 5.0
            restored_ms = time.time() * 1000
            await proxy.restore()
            await until(lambda: _is(gateway.uplink_up.is_set()), 30, "uplink back")
            _, adopted, _ = await alerts.until(lambda _t, e: e.state == "firing")
            for level in (critical_cm + 5, critical_cm + 5):
                await drain.level(DRAIN, level)  # the water stays: analytics sees it too
                await asyncio.sleep(0.5)
            await until(lambda: _is(gateway.spool.stats().records == 0), 30, "spool drained")
            await asyncio.sleep(2)  # let analytics judge the replayed and live readings
            on_mqtt = {e.id for _, e in alerts.seen} | {
                e.id for e in _drain_queue(alerts) if e.state == "firing"
            }
            stored = await _stored_alert_ids(influx)
            # Hostile input at analytics' end of the alert topic, sent as the gateway
            # (stopped first: its identity is bound to one client id).
            gw_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gw_task
            refused = await _refused_after_garbage(world, adopted)
            assert refused == 3
            assert service.task is not None and not service.task.done()  # still running
    finally:
        for task in (alerts_task, lamp_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
        with contextlib.suppress(Exception):
            await analytics.__aexit__(None, None, None)
        gw_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gw_task
        await proxy.close()
    print(f"platform: street-flood ids on _alerts {sorted(on_mqtt)}, stored {sorted(stored)}")
    assert on_mqtt == {adopted.id}, "the platform raised the flood twice"
    # Usually the gateway's alert is adopted, with its start inside the cut.  Live
    # readings go ahead of the spool, so on a loaded box analytics may raise the flood
    # from them before the spooled event arrives: still one alert, but the start during
    # the cut is lost (docs/EDGE.md, "Still open"); the run says which happened.
    if adopted.started >= restored_ms:
        print("analytics raised the flood from live readings before the gateway's event came")
    assert adopted.message.en  # worded by analytics' rule
    assert stored == {adopted.id}


def _refused() -> float:
    sample = REGISTRY.get_sample_value(
        "deltasense_analytics_edge_alerts_total", {"outcome": "refused"}
    )
    return sample or 0.0


async def _refused_after_garbage(world: EdgeWorld, real: Event) -> float:
    """Three bad alert messages on the gateway's topic: not an alert event, a rule a
    gateway does not raise, another district's alert. Returns how many analytics refused."""
    before = _refused()
    user = gateway_username(WARD)
    topic = edge_alert_topic(world.platform.site, WARD)
    forged = [
        b"\xff not an alert",
        alerts_wire.encode(
            msgspec.structs.replace(real, id="al-forged00000001", rule="storm-risk")
        ),
        alerts_wire.encode(
            msgspec.structs.replace(real, id="al-forged00000002", district="phuong-2")
        ),
    ]
    async with aiomqtt.Client(
        "127.0.0.1",
        world.platform.mqtt_port,
        username=user,
        password=world.gateway_password,
        identifier=user,
    ) as gw:
        for payload in forged:
            await gw.publish(topic, payload, qos=1)
    await until(lambda: _is(_refused() - before >= len(forged)), 10, "analytics refused them")
    return _refused() - before


def _drain_queue(w: Watcher) -> list[Event]:
    out: list[Event] = []
    while not w.queue.empty():
        out.append(w.queue.get_nowait()[1])
    return out


async def _stored_alert_ids(db: InfluxClient) -> set[str]:
    series = await db.query(
        f"SELECT last({quote_ident(schema.STATE)}) FROM {quote_ident(schema.ALERTS)} "
        f"WHERE {quote_ident(schema.RULE)} = $rule AND {quote_ident(schema.SUBJECT)} = $subject "
        f"GROUP BY {quote_ident(schema.ID)}",
        params={"rule": STREET_FLOOD, "subject": DRAIN},
    )
    return {s.tags[schema.ID] for s in series}
