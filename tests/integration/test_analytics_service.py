"""The analytics service against the real Mosquitto and InfluxDB, run in-process."""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
import pytest

from deltasense import alerts
from deltasense.influx import influx_client
from deltasense.lineprotocol import encode_point
from deltasense.mqtt import make_client
from deltasense.settings import Settings

from .analytics_support import (
    WAIT_S,
    Drains,
    Watcher,
    running,
    stored_alerts,
    subject_is,
    wait_stored,
)


@pytest.mark.timeout(90)
async def test_street_flood_fires_updates_resolves_and_survives_restart(
    settings: Settings,
) -> None:
    site = settings.site
    watcher = Watcher()
    async with (
        make_client(settings, identifier=f"{site}-probe") as probe,
        running(settings) as service,
    ):
        await probe.subscribe(alerts.alerts_filter(site), qos=1)
        consumer = asyncio.create_task(watcher.consume(probe))
        drains = Drains(probe, site)
        try:
            # 1. one reading over 76 mm raises an alert, quickly
            sent = time.monotonic()
            await drains.level("drain-x", 15)
            topic, fired, _ = await watcher.until(subject_is("drain-x"))
            latency = time.monotonic() - sent
            assert latency < WAIT_S
            assert topic == f"{site}/_alerts/flood/street-flood/drain-x"
            assert (fired.kind, fired.severity, fired.district) == ("flood", "warning", "phuong-1")
            assert fired.values == {"depth_mm": 150.0}
            assert fired.message.vi == "Ngập đường: mực nước 15 cm tại drain-x (Phường 1)"
            await wait_stored(settings, fired.id, "firing")

            # a second drain that stays flooded through the restart below
            await drains.level("drain-y", 20, district="phuong-2")
            _, other, _ = await watcher.until(subject_is("drain-y"))

            # 2. an operator acks as the API does: the acknowledged event on
            # {site}/_acks/{id}, not retained.  This one also claims another
            # severity and text: analytics takes only the ack from it.
            now = int(time.time() * 1000)
            acked = alerts.AlertEvent(
                **{
                    **{name: getattr(fired, name) for name in fired.__struct_fields__},
                    "ack": alerts.Ack(by="operator-1", ts=now),
                    "updated": now,
                    "severity": "critical",
                    "message": alerts.Message(vi="Sơ tán ngay", en="Evacuate now"),
                }
            )
            ack_topic = alerts.ack_topic(site, fired.id)
            # Refused first: an id that is not the topic's, an alert nobody raised.
            other_id = msgspec.structs.replace(acked, id="al-0000000000000000")
            await probe.publish(ack_topic, alerts.encode(other_id), qos=1)
            await probe.publish(alerts.ack_topic(site, other_id.id), alerts.encode(other_id), qos=1)
            await probe.publish(ack_topic, alerts.encode(acked), qos=1)
            _, republished, _ = await watcher.until(
                lambda _t, e: e.id == fired.id and e.ack is not None
            )
            assert republished.ack == acked.ack and republished.updated >= now
            assert (republished.severity, republished.message) == (fired.severity, fired.message)
            assert {e.id for _, e in watcher.seen} == {fired.id, other.id}

            # 3. more readings over the limit: no second alert; a rise to critical updates it
            for level_cm in (16, 17, 9):  # 9 cm lies inside the deadband: still firing
                await drains.level("drain-x", level_cm)
            await drains.level("drain-x", 30)  # 9 → 30 cm: a rise FloodNet accepts
            _, rise, skipped = await watcher.until(
                lambda _t, e: e.subject == "drain-x" and e.severity == "critical"
            )
            assert rise.id == fired.id and rise.state == "firing"
            assert rise.updated > fired.updated and rise.started == fired.started
            assert rise.ack == acked.ack  # the ack stays on the open alert
            assert {e.id for e in skipped if e.subject == "drain-x"} <= {fired.id}
            assert all(e.ack is not None for e in skipped if e.subject == "drain-x")

            # 4. below warning − deadband (56 mm): resolved, same id, ended set
            await drains.level("drain-x", 5)
            _, resolved, _ = await watcher.until(subject_is("drain-x", "resolved"))
            assert resolved.id == fired.id and resolved.ended is not None
            assert resolved.ack == acked.ack
            assert resolved.ended >= rise.updated
            stored = await wait_stored(settings, fired.id, "resolved")
            assert stored.ended == resolved.ended

            # 5. restart: drain-y's open alert is adopted, not raised again
            await service.stop()
            await service.start()
            await drains.level("drain-y", 25, district="phuong-2")  # still flooded
            await drains.level("drain-z", 12)  # barrier: a new alert after drain-y's reading
            _, barrier, skipped = await watcher.until(subject_is("drain-z"))
            assert barrier.id not in (fired.id, other.id)
            assert [e for e in skipped if e.subject == "drain-y"] == []
            # and the adopted alert still resolves under its own id
            await drains.level("drain-y", 0, district="phuong-2")
            _, y_resolved, _ = await watcher.until(subject_is("drain-y", "resolved"))
            assert y_resolved.id == other.id
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    ids = {e.id for _, e in watcher.seen}
    assert ids == {fired.id, other.id, barrier.id}
    stored_all = await stored_alerts(settings)
    assert {i: e.state for i, e in stored_all.items()} == {
        fired.id: "resolved",
        other.id: "resolved",
        barrier.id: "firing",
    }


async def test_bad_messages_do_not_stop_the_stream(settings: Settings) -> None:
    site = settings.site
    watcher = Watcher()
    async with (
        make_client(settings, identifier=f"{site}-probe2") as probe,
        running(settings),
    ):
        await probe.subscribe(alerts.alerts_filter(site), qos=1)
        consumer = asyncio.create_task(watcher.consume(probe))
        try:
            tele = f"{site}/phuong-1/water/drain-q/tele"
            for payload in (b"garbage", b'{"seq":1}', b'{"seq":1,"boot":1,"level_cm":"x"}', b"[]"):
                await probe.publish(tele, payload, qos=1)
            await probe.publish(f"{site}/_alerts/flood/street-flood/x", b"{oops", qos=1)
            await probe.publish(tele, b'{"seq":2,"boot":1,"level_cm":1e9}', qos=1)  # QC range
            await Drains(probe, site).level("drain-q", 30)
            _, event, skipped = await watcher.until(subject_is("drain-q"))
            assert event.severity == "critical" and event.values == {"depth_mm": 300.0}
            assert [e for e in skipped if e.subject == "drain-q"] == []
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer


async def test_windows_refill_from_stored_readings(settings: Settings) -> None:
    """Readings ingest stored before analytics started count; QC-flagged and old ones don't."""
    site = settings.site
    now = int(time.time() * 1000)
    lines = [
        encode_point(
            "water",
            {"site": site, "district": "phuong-3", "device": device},
            {"level_cm": level, "seq": 1, "boot": 1, **extra},
            ts,
        )
        for device, level, ts, extra in (
            ("drain-r", 20.0, now - 60_000, {}),
            ("drain-qc", 2000.0, now - 60_000, {"qc": "level_cm"}),
            ("drain-old", 50.0, now - 7 * 3600_000, {}),  # older than the 6 h window
            ("drain-dry", 50.0, now - 120_000, {}),
            ("drain-dry", 0.0, now - 60_000, {}),  # its last reading is dry
        )
    ]
    lines.append(  # another site in the same database is not ours
        encode_point(
            "water",
            {"site": "elsewhere", "district": "p", "device": "drain-e"},
            {"level_cm": 50.0},
            now - 60_000,
        )
    )
    async with influx_client(settings) as db:
        await db.create_database()
        await db.write_lines(lines)

    watcher = Watcher()
    async with make_client(settings, identifier=f"{site}-probe3") as probe:
        await probe.subscribe(alerts.alerts_filter(site), qos=1)
        consumer = asyncio.create_task(watcher.consume(probe))
        try:
            async with running(settings):
                _, event, skipped = await watcher.until(subject_is("drain-r"))
                assert event.district == "phuong-3" and event.values == {"depth_mm": 200.0}
                await Drains(probe, site).level("drain-z", 12)  # barrier
                _, _, more = await watcher.until(subject_is("drain-z"))
            assert {e.subject for e in skipped + more} == set()
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer


async def test_canal_station_announced_in_meta_raises_no_street_alert(settings: Settings) -> None:
    site = settings.site
    watcher = Watcher()
    async with make_client(settings, identifier=f"{site}-probe3") as probe:
        # The retained meta is there before analytics starts, as after a restart.
        await probe.publish(
            f"{site}/phuong-2/water/wl-canal/meta", b'{"station":"canal"}', qos=1, retain=True
        )
        async with running(settings):
            await probe.subscribe(alerts.alerts_filter(site), qos=1)
            consumer = asyncio.create_task(watcher.consume(probe))
            try:
                drains = Drains(probe, site)
                await drains.level("wl-canal", 150, district="phuong-2")  # tide: no street flood
                await drains.level("drain-z", 20, district="phuong-2")
                _, event, skipped = await watcher.until(subject_is("drain-z"))
                assert event.values == {"depth_mm": 200.0}
                assert [e.subject for e in [*skipped, event]] == ["drain-z"]
            finally:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
        await probe.publish(f"{site}/phuong-2/water/wl-canal/meta", b"", qos=1, retain=True)
