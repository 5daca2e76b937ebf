"""The map's bulk read: map_entries is what /api/v1/map sends as is (no model on the
way out), so it must have MapDevice's shape; and the shared device list
(api/devicecache.py) reads once for many requests and is never older than allowed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from api import city
from api.devicecache import DeviceCache
from api.models import MapDevice
from api.store import DeviceInfo
from deltasense.alerts import AlertEvent, Message
from deltasense.contract import Kind
from deltasense.influx import Series
from tests.unit.api_fakes import FakeDb


def _device(name: str, status: str, lat: float | None = 9.28) -> DeviceInfo:
    return DeviceInfo(
        device=name,
        kind=Kind.WATER,
        site="baclieu",
        district="phuong-3",
        last_seen=1,
        status=status,
        lat=lat,
        lon=None if lat is None else 105.73,
    )


def _alert(subject: str, severity: str, state: str = "firing") -> AlertEvent:
    return AlertEvent(
        id=f"al-{subject}-{severity}",
        kind="flood",
        rule="street-flood",
        subject=subject,
        district="phuong-3",
        severity=severity,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        risk_level=1,
        started=1,
        updated=2,
        message=Message(vi="Ngập", en="Flood"),
    )


def test_map_entries_have_the_shape_of_map_device() -> None:
    devices = [_device("a", "online"), _device("b", "weird"), _device("c", "offline", lat=None)]
    alerts = [_alert("a", "warning"), _alert("a", "critical"), _alert("b", "info", "resolved")]
    entries = city.map_entries(devices, alerts)
    models = [MapDevice.model_validate(e) for e in entries]
    assert [m.model_dump() for m in models] == entries  # nothing dropped or coerced
    assert entries[0]["alert"]["severity"] == "critical"
    assert entries[1]["status"] == "unknown" and entries[1]["alert"] is None
    assert entries[2]["lat"] is None


class _SlowDb(FakeDb):
    """Counts registry reads; each takes ``delay`` seconds; can be made to fail."""

    def __init__(self, registry: Mapping[str, str], delay: float = 0.05) -> None:
        super().__init__(registry)
        self.delay = delay
        self.fail = False

    async def query(
        self, q: str, *, params: Mapping[str, Any] | None = None, epoch: str = "ms"
    ) -> list[Series]:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("influx down")
        return await super().query(q, params=params, epoch=epoch)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_requests_share_one_read_and_a_fresh_list_is_reused() -> None:
    db = _SlowDb({"lv1": "water"})
    clock = _Clock()
    cache = DeviceCache(5.0, clock=clock)
    results = await asyncio.gather(*(cache.get(db, "baclieu") for _ in range(5)))
    assert cache.reads == 1 and all(r == results[0] for r in results)
    assert [d.device for d in results[0]] == ["lv1"]
    clock.now += 4.9
    await cache.get(db, "baclieu")
    assert cache.reads == 1


async def test_a_stale_list_is_served_while_a_new_read_runs_and_a_too_old_one_is_not() -> None:
    db = _SlowDb({"lv1": "water"})
    clock = _Clock()
    cache = DeviceCache(5.0, stale_s=60.0, clock=clock)
    await cache.get(db, "baclieu")
    db.registry["lv2"] = "water"
    clock.now += 10  # stale: answered at once from the old list, a read starts behind it
    assert [d.device for d in await cache.get(db, "baclieu")] == ["lv1"]
    await asyncio.sleep(db.delay * 3 + 0.05)  # the three queries of list_devices
    assert cache.reads == 2
    assert [d.device for d in await cache.get(db, "baclieu")] == ["lv1", "lv2"]
    db.registry["lv3"] = "water"
    clock.now += 61  # older than stale_s: the caller waits for the new list
    assert [d.device for d in await cache.get(db, "baclieu")] == ["lv1", "lv2", "lv3"]


async def test_a_failed_read_reaches_a_waiting_caller_and_the_next_request_reads_again() -> None:
    db = _SlowDb({"lv1": "water"}, delay=0.0)
    cache = DeviceCache(5.0)
    db.fail = True
    with pytest.raises(RuntimeError, match="influx down"):
        await cache.get(db, "baclieu")
    db.fail = False
    assert [d.device for d in await cache.get(db, "baclieu")] == ["lv1"]
    assert cache.reads == 2


async def test_zero_seconds_reads_for_every_request() -> None:
    db = _SlowDb({"lv1": "water"}, delay=0.0)
    cache = DeviceCache(0.0)
    for _ in range(3):
        await cache.get(db, "baclieu")
    assert cache.reads == 3
