"""Ingest against the real broker and database: store, dead-letter, dedupe, survive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from deltasense.influx import InfluxClient
from deltasense.lineprotocol import encode_point
from deltasense.mqtt import make_client
from deltasense.settings import Settings
from ingest.metrics import FLUSHES
from ingest.service import Ingest
from tests.support import eventually, now_ms


@pytest.fixture
async def ingest(settings: Settings, influx: InfluxClient) -> AsyncIterator[Ingest]:
    service = Ingest(settings, influx)
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.connected.wait(), timeout=5)
    yield service
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def publish(settings: Settings, items: list[tuple[str, bytes]]) -> None:
    async with make_client(settings, identifier=f"{settings.site}-pub") as client:
        for topic, payload in items:
            await client.publish(topic, payload, qos=1)


async def rows(db: InfluxClient, q: str, **params: Any) -> list[dict[str, Any]]:
    return [row for s in await db.query(q, params=params) for row in s.rows()]


async def test_readings_status_meta_are_stored(
    settings: Settings, influx: InfluxClient, ingest: Ingest
) -> None:
    base = f"{settings.site}/phuong-1"
    ts = now_ms() - 1000
    await publish(
        settings,
        [
            (
                f"{base}/weather/ws-1/tele",
                json.dumps({"ts": ts, "seq": 0, "boot": 3, "t_c": 29.5, "rh_pct": 80}).encode(),
            ),
            (
                f"{base}/water/dr-1/tele",
                json.dumps(
                    [
                        {"ts": ts - 60_000, "seq": 5, "boot": 1, "level_cm": 2.5, "hist": True},
                        {"ts": ts, "seq": 6, "boot": 1, "level_cm": 3.0},
                    ]
                ).encode(),
            ),
            (f"{base}/lamp/l-1/tele", b'{"seq":1,"boot":1,"on":true,"dim_pct":70,"power_w":84.5}'),
            (f"{base}/weather/ws-1/status", b'{"state":"online","ts":%d}' % ts),
            (
                f"{base}/weather/ws-1/meta",
                b'{"fw":"0.1.0","lat":9.29,"lon":105.72,"interval_s":60}',
            ),
        ],
    )

    weather = await eventually(lambda: rows(influx, 'SELECT * FROM "weather"'))
    assert weather == [
        {
            "time": ts,
            "boot": 3,
            "device": "ws-1",
            "district": "phuong-1",
            "seq": 0,
            "site": settings.site,
            "t_c": 29.5,
            "rh_pct": 80,
        }
    ]
    water = await eventually(
        lambda: rows(influx, 'SELECT "level_cm", "hist", "seq" FROM "water" ORDER BY time')
    )
    assert [(r["level_cm"], r["hist"], r["seq"]) for r in water] == [(2.5, True, 5), (3.0, None, 6)]
    lamp = await eventually(lambda: rows(influx, 'SELECT * FROM "lamp"'))
    assert lamp[0]["on"] is True and lamp[0]["ts_platform"] is True and lamp[0]["dim_pct"] == 70
    status = await eventually(lambda: rows(influx, 'SELECT "state", "device_ts" FROM "status"'))
    assert status[0]["state"] == "online" and status[0]["device_ts"] == ts
    meta = await eventually(lambda: rows(influx, 'SELECT "fw", "lat" FROM "meta"'))
    assert meta[0]["fw"] == "0.1.0" and meta[0]["lat"] == 9.29
    devices = await eventually(
        lambda: _at_least(
            rows(influx, 'SELECT "kind", "district" FROM "devices" GROUP BY "device"'), 3
        )
    )
    kinds = {
        s.tags["device"]: s.rows()[-1]["kind"]
        for s in await influx.query('SELECT "kind" FROM "devices" GROUP BY "device"')
    }
    assert kinds == {"ws-1": "weather", "dr-1": "water", "l-1": "lamp"}
    assert {d["district"] for d in devices} == {"phuong-1"}


async def test_bad_messages_are_dead_lettered_and_stream_continues(
    settings: Settings, influx: InfluxClient, ingest: Ingest
) -> None:
    base = f"{settings.site}/phuong-1"
    ts = now_ms()
    await publish(
        settings,
        [
            (f"{base}/weather/ws-2/tele", b"this is not json"),
            (f"{base}/weather/ws-2/tele", b'{"seq":"one","boot":1}'),
            (f"{settings.site}/Phuong 1/weather/ws-2/tele", b'{"seq":1,"boot":1}'),
            (f"{base}/weather/ws-2/tele", b'{"seq":2,"boot":1,"ts":%d,"t_c":1e999}' % ts),
            (f"{base}/weather/ws-2/tele", b'{"seq":3,"boot":1,"ts":%d}' % (ts + 3_600_000)),
            (f"{base}/weather/ws-2/tele", b'{"seq":4,"boot":1,"ts":%d,"t_c":31.0}' % ts),
        ],
    )
    good = await eventually(lambda: rows(influx, 'SELECT "t_c", "seq" FROM "weather"'))
    assert [(r["t_c"], r["seq"]) for r in good] == [(31.0, 4)]
    dead = await eventually(lambda: _deadletters(influx, 5))
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == ["bad_topic", "future_ts", "non_finite", "not_json", "schema"]
    not_json = next(d for d in dead if d["reason"] == "not_json")
    assert not_json["payload"] == "this is not json" and not_json["topic"].endswith("ws-2/tele")


async def _deadletters(influx: InfluxClient, want: int) -> list[dict[str, Any]]:
    found = [
        {**row, "reason": s.tags["reason"]}
        for s in await influx.query(
            'SELECT "topic", "payload" FROM "deadletters" GROUP BY "reason"'
        )
        for row in s.rows()
    ]
    return found if len(found) >= want else []


async def test_qc_flags_impossible_values_but_keeps_them(
    settings: Settings, influx: InfluxClient, ingest: Ingest
) -> None:
    ts = now_ms()
    await publish(
        settings,
        [
            (
                f"{settings.site}/p2/weather/ws-3/tele",
                b'{"seq":1,"boot":1,"ts":%d,"t_c":80,"rh_pct":130,"p_hpa":1007}' % ts,
            )
        ],
    )
    stored = await eventually(lambda: rows(influx, 'SELECT "t_c", "rh_pct", "qc" FROM "weather"'))
    assert stored[0]["t_c"] == 80 and stored[0]["qc"] == "t_c,rh_pct"


async def test_redelivered_readings_are_stored_once(
    settings: Settings, influx: InfluxClient, ingest: Ingest
) -> None:
    ts = now_ms()
    reading = b'{"seq":9,"boot":2,"ts":%d,"level_cm":4}' % ts
    stamped = b'{"seq":10,"boot":2,"level_cm":5}'
    topic = f"{settings.site}/p3/water/dr-9/tele"
    await publish(
        settings, [(topic, reading), (topic, stamped), (topic, reading), (topic, stamped)]
    )
    # Barrier: ingest takes messages in order and writes them in order, so once seq 11
    # (published after every copy) is stored, any duplicate stored would be there too.
    await publish(settings, [(topic, b'{"seq":11,"boot":2,"ts":%d,"level_cm":6}' % (ts + 5))])
    await eventually(lambda: _with_seq(rows(influx, 'SELECT "seq" FROM "water"'), 11))
    stored = await rows(influx, 'SELECT "seq" FROM "water"')
    assert sorted(r["seq"] for r in stored) == [9, 10, 11]


async def _at_least(query: Awaitable[list[dict[str, Any]]], n: int) -> list[dict[str, Any]]:
    found = await query
    return found if len(found) >= n else []


async def _with_seq(query: Awaitable[list[dict[str, Any]]], seq: int) -> list[dict[str, Any]]:
    found = await query
    return found if any(r["seq"] == seq for r in found) else []


async def test_nothing_lost_while_ingest_is_down(settings: Settings, influx: InfluxClient) -> None:
    """Persistent session: readings published while ingest is stopped arrive later."""
    first = Ingest(settings, influx)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.connected.wait(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    ts = now_ms()
    topic = f"{settings.site}/p4/meter/m-1/tele"
    await publish(
        settings,
        [(topic, b'{"seq":%d,"boot":1,"ts":%d,"v":229.5}' % (i, ts + i)) for i in range(50)],
    )
    second = Ingest(settings, influx)
    task = asyncio.create_task(second.run())
    try:
        stored = await eventually(lambda: _at_least(rows(influx, 'SELECT "seq" FROM "meter"'), 50))
        assert sorted(r["seq"] for r in stored) == list(range(50))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_backlog_is_written_in_full_batches_not_on_the_timer(
    settings: Settings, influx: InfluxClient
) -> None:
    """The broker lets ingest hold its window unacknowledged, so a backlog goes out in
    batches of (at least) half the window as fast as they fill, and the flush timer
    (60 s here) never has to fire.  With the broker's old inflight limit of 100, a
    batch of 200 could not fill and nothing was stored before the timer."""
    settings = settings.model_copy(
        update={"ingest_max_unacked": 400, "ingest_flush_interval_s": 60.0}
    )
    first = Ingest(settings, influx)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.connected.wait(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    ts = now_ms() - 10_000
    topic = f"{settings.site}/p5/water/dr-5/tele"
    n = 1200
    await publish(
        settings,
        [(topic, b'{"seq":%d,"boot":1,"ts":%d,"level_cm":3}' % (i, ts + i)) for i in range(n)],
    )
    timer_flushes = FLUSHES.labels("timer")._value.get()
    second = Ingest(settings, influx)
    task = asyncio.create_task(second.run())
    try:
        # All but the last, not yet full batch (< 200 messages).
        stored = await eventually(
            lambda: _at_least(rows(influx, 'SELECT "seq" FROM "water"'), n - 200), within=20
        )
        seqs = sorted(r["seq"] for r in stored)
        assert seqs == list(range(len(seqs))) and len(seqs) >= n - 200
        assert FLUSHES.labels("timer")._value.get() == timer_flushes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


tag_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\\\x00", blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=16,
).filter(lambda s: s.strip() == s and s)
field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tag=tag_text, text=field_text, number=st.floats(allow_nan=False, allow_infinity=False, width=64)
)
async def test_escaping_round_trips_through_real_influxdb(
    influx: InfluxClient, tag: str, text: str, number: float
) -> None:
    ts = 1_700_000_000_000 + abs(hash((tag, text, number))) % 10**9
    await influx.write_lines([encode_point("prop", {"t": tag}, {"s": text, "x": number}, ts)])
    series = await influx.query(
        'SELECT "s", "x", "t" FROM "prop" WHERE time = $ts', params={"ts": ts * 1_000_000}
    )
    found = [row for s in series for row in s.rows() if row["t"] == tag]
    assert found and found[-1]["s"] == text
    # InfluxDB prints large floats in JSON with 16 significant digits.
    assert math.isclose(found[-1]["x"], number, rel_tol=1e-15, abs_tol=1e-300)
