"""Issue 10, scope 2: platform health alerts, live.

The real ingest (in-process) reports on ``{site}/_health/ingest/0`` and the real
analytics service turns the reports into platform alerts on MQTT: a burst of
malformed readings is a dead-letter surge, readings stored two minutes after
their own timestamp are ingest falling behind.  (A broker queue that overflows is
the chaos suite's ``queue-overflow`` scenario, on the locked-down stack.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from deltasense.influx import InfluxClient
from deltasense.settings import Settings
from ingest.service import Ingest
from tests.integration.analytics_support import Event, Watcher, running
from tests.support import now_ms

SURGE_PER_MIN = 60.0


def _settings(settings: Settings, tmp_path: Path) -> Settings:
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text(
        "[platform]\n"
        f"deadletters_per_min = {SURGE_PER_MIN}\n"
        "deadletter_window_s = 10\n"
        "[alerting.keep_firing_for.rule_s]\n"
        '"deadletter-surge" = 0\n'
        '"ingest-lag" = 0\n'
    )
    return settings.model_copy(
        update={"thresholds_file": thresholds, "ingest_health_interval_s": 0.3}
    )


async def _next(watcher: Watcher, pred: Callable[[str, Event], bool], tries: int = 4) -> Event:
    """The next matching event within ``tries`` × WAIT_S (a loaded machine is slow)."""
    for _ in range(tries - 1):
        with contextlib.suppress(TimeoutError):
            return (await watcher.until(pred))[1]
    return (await watcher.until(pred))[1]


async def _ingest(settings: Settings, influx: InfluxClient) -> asyncio.Task[None]:
    svc = Ingest(settings, influx)
    task = asyncio.create_task(svc.run())
    await asyncio.wait_for(svc.connected.wait(), timeout=10)
    return task


async def test_a_dead_letter_surge_and_ingest_lag_raise_platform_alerts(
    settings: Settings, influx: InfluxClient, tmp_path: Path
) -> None:
    s = _settings(settings, tmp_path)
    site = s.site
    watcher = Watcher()
    ingest = await _ingest(s, influx)
    try:
        async with (
            running(s),
            aiomqtt.Client("127.0.0.1", s.mqtt_port, identifier=f"{site}-watch") as watch,
            aiomqtt.Client("127.0.0.1", s.mqtt_port, identifier=f"{site}-node") as node,
        ):
            await watch.subscribe(f"{site}/_alerts/health/#", qos=1)
            consumer = asyncio.create_task(watcher.consume(watch))
            topic = f"{site}/phuong-1/water/drain-1/tele"
            # A steady trickle of good readings: no platform alert.
            for seq in range(5):
                body = {"ts": now_ms(), "seq": seq, "boot": 1, "level_cm": 1.0}
                await node.publish(topic, json.dumps(body).encode(), qos=1)
            await asyncio.sleep(1.5)
            assert watcher.queue.empty(), watcher.queue.get_nowait()
            # 30 malformed readings in a 10 s window: 180/min, over 60/min.
            for i in range(30):
                await node.publish(topic, b'{"ts": "soon", "seq": %d}' % i, qos=1)
            surge = await _next(watcher, lambda _t, e: e.rule == "deadletter-surge")
            assert (surge.subject, surge.severity, surge.state) == ("platform", "warning", "firing")
            assert surge.values["per_min"] >= SURGE_PER_MIN
            # Readings two minutes old (not marked hist: a backlog, not a node's spool).
            stale = now_ms() - 120_000
            for seq in range(5, 25):
                body = {"ts": stale + seq, "seq": seq, "boot": 1, "level_cm": 1.0}
                await node.publish(topic, json.dumps(body).encode(), qos=1)
            lag = await _next(watcher, lambda _t, e: e.rule == "ingest-lag")
            assert (lag.subject, lag.severity, lag.state) == ("platform", "warning", "firing")
            assert 100 < lag.values["lag_s"] < 200

            # Fresh readings again: the lag alert resolves once the late batch is no
            # longer held (LAG_HOLD_MS).
            async def fresh() -> None:
                for seq in range(25, 200):
                    body = {"ts": now_ms(), "seq": seq, "boot": 1, "level_cm": 1.0}
                    await node.publish(topic, json.dumps(body).encode(), qos=1)
                    await asyncio.sleep(0.3)

            feeder = asyncio.create_task(fresh())
            resolved = lambda _t, e: e.rule == "ingest-lag" and e.state == "resolved"  # noqa: E731
            done = await _next(watcher, resolved)
            feeder.cancel()
            assert done.id == lag.id
            consumer.cancel()
    finally:
        ingest.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ingest
