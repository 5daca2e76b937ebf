"""Bad parameters are refused with 422 before any database query (no services)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

from .api_fakes import FakeDb, UntouchableDb

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _client(db: FakeDb, tmp_path: Path) -> httpx.AsyncClient:
    settings = Settings(var_dir=tmp_path, admin_token=ADMIN_TOKEN, site="s1")
    app = create_app(settings, influx=db)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


@pytest.fixture
async def untouchable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.chdir(tmp_path)
    async with _client(UntouchableDb(), tmp_path) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/devices/w1/series", {"field": 't_c" FROM x; DROP DATABASE y'}),
        ("/api/v1/devices/w1/series", {"field": "t_c) FROM devices --"}),
        ("/api/v1/devices/w1/series", {"field": "unknown_field"}),
        ("/api/v1/devices/w1/series", {"field": "seq"}),
        ("/api/v1/devices/w1/series", {}),
        ("/api/v1/devices/a' OR '1'='1/series", {"field": "t_c"}),
        ("/api/v1/devices/UPPER/series", {"field": "t_c"}),
        ("/api/v1/devices/w1/series", {"field": "t_c", "every": "0s"}),
        ("/api/v1/devices/w1/series", {"field": "t_c", "every": "1ms"}),
        ("/api/v1/devices/w1/series", {"field": "t_c", "every": "5m; DROP"}),
        ("/api/v1/devices/w1/series", {"field": "t_c", "start": "2024-01-01T00:00:00"}),
        ("/api/v1/devices/w1/series", {"field": "t_c", "start": "2000", "end": "1000"}),
        ("/api/v1/devices/w1/series", {"field": "t_c", "start": "0", "every": "1s"}),
        ("/api/v1/devices/a' OR '1'='1", {}),
        ("/api/v1/devices/a' OR '1'='1/latest", {}),
        ("/api/v1/devices", {"kind": "toaster"}),
        ("/api/v1/devices", {"district": "x' OR 1=1"}),
        ("/api/v1/alerts", {"state": "open"}),
        ("/api/v1/alerts", {"severity": "panic"}),
        ("/api/v1/alerts", {"kind": "fire"}),
        ("/api/v1/alerts", {"district": "a' OR '1'='1"}),
        ("/api/v1/alerts", {"limit": "0"}),
        ("/api/v1/alerts", {"limit": "1001"}),
        ("/api/v1/alerts/x'y", {}),
        ("/api/v1/deadletters", {"limit": "5000"}),
    ],
)
async def test_refused_before_the_database(
    untouchable: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await untouchable.get(path, params=params, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_series_messages_are_clear(untouchable: httpx.AsyncClient) -> None:
    response = await untouchable.get(
        "/api/v1/devices/w1/series", params={"field": 't_c" FROM x'}, headers=AUTH
    )
    assert "must match" in response.json()["detail"]
    response = await untouchable.get(
        "/api/v1/devices/w1/series",
        params={"field": "t_c", "start": "0", "end": "20000000", "every": "1s"},
        headers=AUTH,
    )
    assert "buckets" in response.json()["detail"]


async def test_bad_command_bodies(untouchable: httpx.AsyncClient) -> None:
    for body in (
        {"name": "Reboot"},
        {"name": "reboot", "ttl_s": 0},
        {"name": "reboot", "ttl_s": 86401},
        {"name": "reboot", "args": [1]},
        {},
    ):
        response = await untouchable.post("/api/v1/devices/w1/commands", json=body, headers=AUTH)
        assert response.status_code == 422, body


async def test_field_of_another_kind_is_422(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = FakeDb({"w1": "weather"})
    async with _client(db, tmp_path) as c:
        response = await c.get(
            "/api/v1/devices/w1/series", params={"field": "level_cm"}, headers=AUTH
        )
        assert response.status_code == 422
        assert "not measured by weather" in response.json()["detail"]
        # only the registry lookups ran; never a query on the readings
        assert all('"weather"' not in q for q, _ in db.queries)
        assert {p["device"] for _, p in db.queries} == {"w1"}
        unknown = await c.get("/api/v1/devices/w2/series", params={"field": "t_c"}, headers=AUTH)
        assert unknown.status_code == 404


async def test_influx_down_is_503_not_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    from deltasense.influx import InfluxClient

    db = InfluxClient(url="http://127.0.0.1:9", database="x", timeout_s=1)
    settings = Settings(var_dir=tmp_path, admin_token=ADMIN_TOKEN)
    app = create_app(settings, influx=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        response = await c.get("/api/v1/devices", headers=AUTH)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json() == {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "database unavailable",
        }
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["influxdb"] is False
    await db.aclose()
