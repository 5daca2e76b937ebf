"""The console's bulk reads against real InfluxDB and uvicorn: /map, /wards (with the
storm banner), /console/config, /me, and the device page's status history and meta."""

from __future__ import annotations

import time

import httpx
import pytest

from api.auth import add_token
from deltasense import schema
from deltasense.alerts import AlertEvent, Message
from deltasense.settings import Settings

from .api_support import (
    ADMIN,
    influx,
    meta_line,
    reading_line,
    registry_line,
    running_api,
    status_line,
)

NOW = int(time.time() * 1000)
MIN = 60_000


@pytest.fixture(autouse=True)
def _now() -> None:
    """The seeded data are minutes old when each test starts, not when the module was
    collected (in a full run that is many minutes earlier, and "today" or a status's
    age would be judged on stale times)."""
    global NOW
    NOW = int(time.time() * 1000)


def _alert(
    subject: str, district: str, severity: str, *, kind: str = "flood", risk: int = 1
) -> AlertEvent:
    return AlertEvent(
        id=f"al-{subject}-{severity}",
        kind=kind,  # type: ignore[arg-type]
        rule="street-flood" if kind == "flood" else "storm-risk",
        subject=subject,
        district=district,
        severity=severity,  # type: ignore[arg-type]
        state="firing",
        risk_level=risk,
        started=NOW - 5 * MIN,
        updated=NOW - 4 * MIN,
        message=Message(vi="Ngập đường", en="Street flood"),
    )


async def _seed(s: Settings) -> None:
    lines = [
        registry_line(s, "lv1", "water", "phuong-3", NOW - MIN),
        registry_line(s, "lv2", "water", "phuong-3", NOW - MIN),
        registry_line(s, "ws1", "weather", "phuong-3", NOW - MIN),
        registry_line(s, "lamp1", "lamp", "hiep-thanh", NOW - MIN),
        registry_line(s, "lamp2", "lamp", "hiep-thanh", NOW - MIN),
        registry_line(s, "m1", "meter", "hiep-thanh", NOW - MIN),
        registry_line(s, "x1", "water", "new-ward", NOW - MIN),
        status_line(s, "lv1", "water", "phuong-3", "offline", NOW - 9 * MIN),
        status_line(s, "lv1", "water", "phuong-3", "online", NOW - 8 * MIN),
        status_line(s, "lv2", "water", "phuong-3", "offline", NOW - 8 * MIN),
        status_line(s, "lamp1", "lamp", "hiep-thanh", "online", NOW - 8 * MIN),
        meta_line(s, "lv1", "water", "phuong-3", NOW - 8 * MIN, fw="1.2.0", lat=9.28, lon=105.73),
        meta_line(s, "lv1", "water", "phuong-3", NOW - 7 * MIN, fw="1.3.0", lat=9.281, lon=105.731),
        meta_line(s, "lamp1", "lamp", "hiep-thanh", NOW - 7 * MIN, lat=9.258, lon=105.745),
        reading_line(s, "lv1", "water", "phuong-3", NOW - 3 * MIN, level_cm=4.0, seq=1, boot=1),
        reading_line(s, "lv1", "water", "phuong-3", NOW - 2 * MIN, level_cm=12.5, seq=2, boot=1),
        reading_line(s, "lv2", "water", "phuong-3", NOW - 2 * MIN, level_cm=30.0, seq=2, boot=1),
        # lv2's 30 cm is two days old in another reading: only the newest counts.
        reading_line(s, "lv2", "water", "phuong-3", NOW - MIN, level_cm=8.0, seq=3, boot=1),
        reading_line(
            s,
            "ws1",
            "weather",
            "phuong-3",
            NOW - 5 * MIN,
            rain_mm_total=100.0,
            wind_ms=18.0,
            seq=1,
            boot=1,
        ),
        reading_line(
            s,
            "ws1",
            "weather",
            "phuong-3",
            NOW - 4 * MIN,
            rain_mm_total=104.5,
            wind_ms=18.0,
            seq=2,
            boot=1,
        ),
        # a reboot resets the counter: the fall is not rain, the rise after it is
        reading_line(
            s,
            "ws1",
            "weather",
            "phuong-3",
            NOW - 3 * MIN,
            rain_mm_total=0.5,
            wind_ms=18.0,
            seq=3,
            boot=2,
        ),
        reading_line(
            s,
            "ws1",
            "weather",
            "phuong-3",
            NOW - 2 * MIN,
            rain_mm_total=2.0,
            wind_ms=18.0,
            seq=4,
            boot=2,
        ),
        reading_line(
            s,
            "lamp1",
            "lamp",
            "hiep-thanh",
            NOW - 2 * MIN,
            on=True,
            energy_wh_total=500.0,
            seq=1,
            boot=1,
        ),
        reading_line(
            s,
            "lamp1",
            "lamp",
            "hiep-thanh",
            NOW - MIN,
            on=True,
            energy_wh_total=750.0,
            seq=2,
            boot=1,
        ),
        reading_line(s, "lamp2", "lamp", "hiep-thanh", NOW - MIN, on=False, seq=1, boot=1),
        reading_line(
            s, "m1", "meter", "hiep-thanh", NOW - 2 * MIN, energy_wh_total=10_000.0, seq=1, boot=1
        ),
        reading_line(
            s, "m1", "meter", "hiep-thanh", NOW - MIN, energy_wh_total=12_500.0, seq=2, boot=1
        ),
        schema.alert_line(_alert("lv1", "phuong-3", "warning")),
        schema.alert_line(_alert("lv1", "phuong-3", "critical")),
        schema.alert_line(_alert("city", "", "critical", kind="storm", risk=4)),
    ]
    async with influx(s) as db:
        await db.write_lines(lines)


def _local_midnight_is_before(ms: int, settings: Settings) -> bool:
    local = ms + settings.utc_offset_min * MIN
    return local % 86_400_000 >= 10 * MIN  # the seeded minutes all fall in today


async def test_map_wards_and_banner_in_one_request_each(settings: Settings) -> None:
    await _seed(settings)
    async with running_api(settings) as client:
        assert (await client.get("/api/v1/map")).status_code == 401
        devices = (await client.get("/api/v1/map", headers=ADMIN)).json()
        by_id = {d["device"]: d for d in devices}
        assert set(by_id) == {"lv1", "lv2", "ws1", "lamp1", "lamp2", "m1", "x1"}
        assert (by_id["lv1"]["lat"], by_id["lv1"]["lon"]) == (9.281, 105.731)
        assert by_id["lv1"]["status"] == "online" and by_id["lv2"]["status"] == "offline"
        assert by_id["lv1"]["alert"]["severity"] == "critical"  # the worst of its two
        assert by_id["lv2"]["alert"] is None and by_id["lv2"]["lat"] is None

        body = (await client.get("/api/v1/wards", headers=ADMIN)).json()
        tiles = {t["district"]: t for t in body["wards"]}
        assert [t["district"] for t in body["wards"]][:10] == [
            "phuong-1", "phuong-2", "phuong-3", "phuong-5", "phuong-7", "phuong-8",
            "nha-mat", "vinh-trach", "vinh-trach-dong", "hiep-thanh",
        ]  # fmt: skip
        assert body["wards"][-1]["district"] == "new-ward"  # unlisted: kept, shown as its id
        p3 = tiles["phuong-3"]
        assert (p3["devices"], p3["online"], p3["offline"]) == (3, 1, 1)
        assert p3["alerts"] == {"info": 0, "warning": 1, "critical": 1}
        assert p3["deepest_water_cm"] == 12.5 and p3["deepest_water_device"] == "lv1"
        ht = tiles["hiep-thanh"]
        assert ht["name"] == "xã Hiệp Thành"
        assert (ht["lamps"], ht["lamps_on"]) == (2, 1)
        if _local_midnight_is_before(NOW - 3 * MIN, settings):
            assert ht["meter_kwh_today"] == 2.5 and ht["lamp_kwh_today"] == 0.25
        if body["rain_since"] <= NOW - 5 * MIN:
            assert p3["rain_mm_today"] == 6.0  # 4.5 + 1.5; the reset's fall is not counted
        assert tiles["phuong-1"]["devices"] == 0 and tiles["phuong-1"]["deepest_water_cm"] is None
        city = body["city"]
        assert city["risk_level"] == 4 and city["alert_id"] == "al-city-critical"
        assert city["max_wind_ms"] == 18.0 and city["wind_cap"] == 8


async def test_console_config_me_and_the_device_page(settings: Settings) -> None:
    await _seed(settings)
    viewer = add_token(settings.var_dir, "ward-viewer", "viewer")
    async with running_api(settings) as client:
        config = (await client.get("/api/v1/console/config", headers=ADMIN)).json()
        assert config["utc_offset_min"] == 420 and config["tile_url"] is None
        level = {(x["label"], x["value"], x["level"]) for x in config["lines"]["level_cm"]}
        assert level == {
            ("street_flood_warning", 7.6, "warning"),
            ("street_flood_critical", 30.0, "critical"),
        }
        assert {x["label"] for x in config["lines"]["gust_ms"]} == {"gust_warning", "gust_critical"}
        assert config["wind_caps"]["8"] == 17.2
        assert {w["name"] for w in config["wards"]} >= {"xã Hiệp Thành", "Vĩnh Trạch Đông"}
        assert config["city"] == {"vi": "toàn thành phố", "en": "whole city"}

        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {viewer}"})
        assert me.json() == {"name": "ward-viewer", "role": "viewer", "via": "token"}
        assert (await client.get("/api/v1/me")).status_code == 401
        bad = await client.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401

        history = (await client.get("/api/v1/devices/lv1/status-history", headers=ADMIN)).json()
        assert history == [
            {"ts": NOW - 8 * MIN, "state": "online"},
            {"ts": NOW - 9 * MIN, "state": "offline"},
        ]
        one = await client.get(
            "/api/v1/devices/lv1/status-history", params={"limit": 1}, headers=ADMIN
        )
        assert [h["state"] for h in one.json()] == ["online"]
        meta = (await client.get("/api/v1/devices/lv1/meta", headers=ADMIN)).json()
        assert meta["fw"] == "1.3.0" and meta["lat"] == 9.281 and meta["time"] == NOW - 7 * MIN
        assert "device" not in meta and "site" not in meta
        assert (await client.get("/api/v1/devices/lamp2/meta", headers=ADMIN)).status_code == 404
        for path, params in (
            ("/api/v1/devices/nope/status-history", {}),
            ("/api/v1/devices/nope/meta", {}),
        ):
            assert (await client.get(path, params=params, headers=ADMIN)).status_code == 404
        for params in ({"limit": 0}, {"limit": 501}, {"limit": "x"}):
            r = await client.get("/api/v1/devices/lv1/status-history", params=params, headers=ADMIN)
            assert r.status_code == 422, params
        hostile = await client.get("/api/v1/devices/a'%20OR%201=1/meta", headers=ADMIN)
        assert hostile.status_code in (404, 422)


async def test_a_configured_tile_url_is_checked(settings: Settings) -> None:
    tiles = settings.model_copy(
        update={"console_tile_url": "https://tiles.example.vn/{z}/{x}/{y}.png"}
    )
    async with running_api(tiles) as client:
        config = (await client.get("/api/v1/console/config", headers=ADMIN)).json()
        assert config["tile_url"] == "https://tiles.example.vn/{z}/{x}/{y}.png"
    for bad in ("http://plain.example/{z}.png", "javascript:alert(1)", 'https://x/"><script>'):
        try:
            Settings(console_tile_url=bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")
    assert httpx is not None
