"""Devices, latest readings and series against real InfluxDB, Mosquitto and uvicorn."""

from __future__ import annotations

import time

from api.params import ms_to_rfc3339
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
# A whole 5 minutes about an hour ago: the 2 minutes of data fall in one default bucket.
T0 = (NOW - 3_600_000) // 300_000 * 300_000


async def _seed(settings: Settings) -> None:
    s = settings
    async with influx(s) as db:
        await db.write_lines(
            [
                registry_line(s, "w1", "weather", "phuong-1", T0),
                registry_line(s, "w1", "weather", "phuong-1", T0 + 119_000),
                registry_line(s, "lv1", "water", "phuong-2", T0 + 5_000),
                registry_line(s, "lamp1", "lamp", "phuong-2", T0 + 5_000),
                status_line(s, "w1", "weather", "phuong-1", "offline", T0 - 1000),
                status_line(s, "w1", "weather", "phuong-1", "online", T0),
                status_line(s, "lv1", "water", "phuong-2", "sleeping", T0),
                meta_line(
                    s, "w1", "weather", "phuong-1", T0 - 5000, fw="1.0.0", lat=9.1, lon=105.1
                ),
                meta_line(s, "w1", "weather", "phuong-1", T0, fw="1.1.0", lat=9.29, lon=105.72),
                meta_line(s, "lv1", "water", "phuong-2", T0, fw="2.0.0"),
                # w1: t_c = 20 + i every 10 s for 2 min (i = 0..11); one reading QC-flagged
                *(
                    reading_line(
                        s,
                        "w1",
                        "weather",
                        "phuong-1",
                        T0 + i * 10_000,
                        t_c=20.0 + i,
                        rh_pct=80.0,
                        seq=i,
                        boot=3,
                    )
                    for i in range(11)
                ),
                reading_line(
                    s,
                    "w1",
                    "weather",
                    "phuong-1",
                    T0 + 110_000,
                    t_c=31.0,
                    rh_pct=101.5,
                    batt_v=3.9,
                    seq=11,
                    boot=3,
                    qc="rh_pct",
                    ts_platform=True,
                ),
                reading_line(
                    s, "lamp1", "lamp", "phuong-2", T0, on=False, dim_pct=0.0, seq=0, boot=0
                ),
                reading_line(s, "lamp1", "lamp", "phuong-2", T0 + 30_000, on=True, seq=1, boot=0),
            ]
        )


async def test_devices_list_get_and_filters(settings: Settings) -> None:
    await _seed(settings)
    async with running_api(settings) as api:
        response = await api.get("/api/v1/devices", headers=ADMIN)
        assert response.status_code == 200
        devices = {d["device"]: d for d in response.json()}
        assert list(devices) == ["lamp1", "lv1", "w1"]
        assert devices["w1"] == {
            "device": "w1",
            "kind": "weather",
            "site": settings.site,
            "district": "phuong-1",
            "location": {"lat": 9.29, "lon": 105.72},
            "status": "online",
            "status_ts": T0,
            "last_seen": T0 + 119_000,
            "fw": "1.1.0",
        }
        assert devices["lv1"]["status"] == "sleeping"
        assert devices["lv1"]["location"] is None
        assert devices["lamp1"]["status"] == "unknown"
        assert devices["lamp1"]["fw"] is None

        by_kind = await api.get("/api/v1/devices", params={"kind": "water"}, headers=ADMIN)
        assert [d["device"] for d in by_kind.json()] == ["lv1"]
        by_district = await api.get(
            "/api/v1/devices", params={"district": "phuong-2"}, headers=ADMIN
        )
        assert [d["device"] for d in by_district.json()] == ["lamp1", "lv1"]
        none = await api.get("/api/v1/devices", params={"district": "phuong-9"}, headers=ADMIN)
        assert none.json() == []

        one = await api.get("/api/v1/devices/w1", headers=ADMIN)
        assert one.json() == devices["w1"]
        missing = await api.get("/api/v1/devices/w9", headers=ADMIN)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "unknown device 'w9'"
        assert missing.json()["status"] == 404
        injected = await api.get("/api/v1/devices/a' OR '1'='1", headers=ADMIN)
        assert injected.status_code == 422


async def test_latest(settings: Settings) -> None:
    await _seed(settings)
    async with running_api(settings) as api:
        response = await api.get("/api/v1/devices/w1/latest", headers=ADMIN)
        assert response.status_code == 200
        assert response.json() == {
            "device": "w1",
            "kind": "weather",
            "ts": T0 + 110_000,
            "fields": {"t_c": 31.0, "rh_pct": 101.5, "batt_v": 3.9},
            "seq": 11,
            "boot": 3,
            "hist": False,
            "ts_from_platform": True,
            "qc": ["rh_pct"],
        }
        lamp = await api.get("/api/v1/devices/lamp1/latest", headers=ADMIN)
        assert lamp.json()["fields"] == {"on": True}
        no_reading = await api.get("/api/v1/devices/lv1/latest", headers=ADMIN)
        assert no_reading.status_code == 404
        assert "no reading" in no_reading.json()["detail"]


async def test_series_downsampled_means(settings: Settings) -> None:
    await _seed(settings)
    async with running_api(settings) as api:
        response = await api.get(
            "/api/v1/devices/w1/series",
            params={"field": "t_c", "start": str(T0), "end": str(T0 + 180_000), "every": "1m"},
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["device"], body["field"], body["every"], body["aggregate"]) == (
            "w1",
            "t_c",
            "1m",
            "mean",
        )
        # minute 0: i = 0..5 → mean 22.5; minute 1: i = 6..11 → 28.5; minute 2: no data
        assert body["points"] == [[T0, 22.5], [T0 + 60_000, 28.5], [T0 + 120_000, None]]

        # ISO-8601 times and a bucket that starts before `start`: clipped to [start, end)
        iso = await api.get(
            "/api/v1/devices/w1/series",
            params={
                "field": "t_c",
                "start": ms_to_rfc3339(T0 + 30_000),
                "end": ms_to_rfc3339(T0 + 90_000),
                "every": "1m",
            },
            headers=ADMIN,
        )
        # [30 s, 60 s): i = 3..5 → 24; [60 s, 90 s): i = 6..8 → 27
        assert iso.json()["points"] == [[T0, 24.0], [T0 + 60_000, 27.0]]

        lamp = await api.get(
            "/api/v1/devices/lamp1/series",
            params={"field": "on", "start": str(T0), "end": str(T0 + 60_000), "every": "30s"},
            headers=ADMIN,
        )
        assert lamp.json()["aggregate"] == "last"
        assert lamp.json()["points"] == [[T0, False], [T0 + 30_000, True]]

        wrong_kind = await api.get(
            "/api/v1/devices/w1/series", params={"field": "level_cm"}, headers=ADMIN
        )
        assert wrong_kind.status_code == 422
        for field in ['t_c" FROM x; DROP DATABASE y', "t_c,rh_pct"]:
            injected = await api.get(
                "/api/v1/devices/w1/series", params={"field": field}, headers=ADMIN
            )
            assert injected.status_code == 422
        injected = await api.get(
            "/api/v1/devices/a' OR '1'='1/series", params={"field": "t_c"}, headers=ADMIN
        )
        assert injected.status_code == 422
        default = await api.get("/api/v1/devices/w1/series", params={"field": "t_c"}, headers=ADMIN)
        assert default.status_code == 200
        assert default.json()["every"] == "5m"
        assert sum(1 for _, v in default.json()["points"] if v is not None) == 1
