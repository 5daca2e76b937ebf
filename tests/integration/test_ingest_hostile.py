"""Hostile input against the real broker, InfluxDB and ingest: count what is stored.

Every category of ``tests/hostile.py`` is sent N times next to valid messages,
each on its own device; afterwards the stored readings must be exactly the
valid ones and the dead letters per reason exactly the hostile ones sent.
Two different readings of one device with the same ``ts`` are both kept, a
redelivered one once; a physically impossible value is kept with a QC flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deltasense.influx import InfluxClient
from deltasense.mqtt import make_client
from deltasense.settings import Settings
from ingest.service import Ingest
from tests.hostile import CATEGORIES, message
from tests.support import eventually, now_ms

# DELTASENSE_HOSTILE_N=1000 for the scale (about 12 000 messages).
PER_CATEGORY = int(os.environ.get("DELTASENSE_HOSTILE_N", "60"))
COLLIDING_DEVICES = 20
QC_DEVICES = 20
READINGS = ("weather", "water", "lamp", "meter")


@pytest.fixture
async def ingest(settings: Settings, influx: InfluxClient) -> AsyncIterator[Ingest]:
    service = Ingest(settings, influx)
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.connected.wait(), timeout=5)
    yield service
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _counts(db: InfluxClient, q: str, tag: str | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in await db.query(q):
        for row in s.rows():
            key = s.tags[tag] if tag else s.name
            out[key] = out.get(key, 0) + int(row["count"])
    return out


async def test_hostile_messages_become_dead_letters_per_reason(
    settings: Settings, influx: InfluxClient, ingest: Ingest
) -> None:
    rng = random.Random(9)
    now = now_ms()
    sent: list[tuple[str, bytes]] = []
    expected_readings = 0
    expected_dead: Counter[str] = Counter()
    per_category: Counter[str] = Counter()
    for category in CATEGORIES:
        for i in range(PER_CATEGORY * (3 if category == "valid" else 1)):
            # Recent ts only: a point per week since 2020 would make InfluxDB open
            # hundreds of shards for nothing.
            msg = message(category, rng, now, oldest_ms=now - 86_400_000)
            device = f"{'ok' if msg.reason is None else 'bad'}-{category[:6]}-{i}".replace("_", "")
            sent.append((f"{settings.site}/phuong-1/{msg.kind}/{device}/tele", msg.payload))
            per_category[category] += 1
            if msg.reason is None:
                expected_readings += msg.readings
            else:
                expected_dead[msg.reason] += 1
    # Same ts, different seq: both kept; the first again (a redelivery): once.
    ts = now - 5_000
    for i in range(COLLIDING_DEVICES):
        topic = f"{settings.site}/phuong-2/water/same-ts-{i}/tele"
        for seq in (1, 2, 1):
            payload = {"ts": ts, "seq": seq, "boot": 4, "level_cm": 10.0 + seq}
            sent.append((topic, json.dumps(payload).encode()))
        expected_readings += 2
    # Physically impossible but possible to send: stored, flagged, not rejected.
    for i in range(QC_DEVICES):
        topic = f"{settings.site}/phuong-3/weather/qc-{i}/tele"
        payload = {"ts": now - 1000, "seq": 1, "boot": 1, "t_c": 80.0, "rh_pct": 70.0}
        sent.append((topic, json.dumps(payload).encode()))
        expected_readings += 1
    rng.shuffle(sent)

    async with make_client(settings, identifier=f"{settings.site}-hostile") as client:
        for topic, payload in sent:
            await client.publish(topic, payload, qos=1)

    measurements = ",".join(f'"{m}"' for m in READINGS)

    async def stored_all() -> dict[str, int]:
        got = await _counts(influx, f'SELECT count("seq") FROM {measurements}')
        return got if sum(got.values()) >= expected_readings else {}

    async def dead_all() -> dict[str, int]:
        q = 'SELECT count("topic") FROM "deadletters" GROUP BY "reason"'
        got = await _counts(influx, q, tag="reason")
        return got if sum(got.values()) >= sum(expected_dead.values()) else {}

    stored = await eventually(stored_all, within=60 + PER_CATEGORY / 10)
    dead = await eventually(dead_all, within=60)
    await asyncio.sleep(1.0)  # anything late would show up now
    stored = await _counts(influx, f'SELECT count("seq") FROM {measurements}')
    dead = await _counts(
        influx, 'SELECT count("topic") FROM "deadletters" GROUP BY "reason"', "reason"
    )

    print("\ncategory        sent  expected reason    dead letters")
    for category in CATEGORIES:
        reason = message(category, random.Random(0), now).reason
        got = dead.get(reason, 0) if reason else "-"
        print(f"{category:15s} {per_category[category]:4d}  {reason or 'stored':16s} {got}")
    print(f"readings stored {sum(stored.values())} of {expected_readings} valid ({stored})")

    assert sum(stored.values()) == expected_readings
    assert dead == dict(expected_dead)
    # No hostile device has anything stored.
    devices = {
        row["value"]
        for m in READINGS
        for s in await influx.query(f'SHOW TAG VALUES FROM "{m}" WITH KEY = "device"')
        for row in s.rows()
    }
    assert not {d for d in devices if d.startswith("bad-")}
    same = await influx.query('SELECT "seq", "level_cm" FROM "water" WHERE "device" =~ /^same-ts-/')
    rows: list[dict[str, Any]] = [r for s in same for r in s.rows()]
    assert len(rows) == 2 * COLLIDING_DEVICES
    assert all(r["time"] == ts for r in rows)  # readers see the ts the device sent
    assert sorted({(r["seq"], r["level_cm"]) for r in rows}) == [(1, 11.0), (2, 12.0)]
    flagged = await influx.query('SELECT "qc", "t_c" FROM "weather" WHERE "device" =~ /^qc-/')
    qc_rows = [r for s in flagged for r in s.rows()]
    assert len(qc_rows) == QC_DEVICES and all(r["qc"] == "t_c" for r in qc_rows)
