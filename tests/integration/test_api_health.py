"""Readiness, metrics, dead letters and the console on real services."""

from __future__ import annotations

from api.auth import add_token
from deltasense.lineprotocol import encode_point
from deltasense.settings import Settings

from .api_support import ADMIN, influx, running_api


async def test_ready_metrics_console(settings: Settings) -> None:
    async with influx(settings):
        pass
    async with running_api(settings) as api:
        ready = await api.get("/readyz")
        assert ready.json() == {"status": "ok", "checks": {"influxdb": True, "mqtt": True}}
        assert (await api.get("/healthz")).status_code == 200
        index = await api.get("/")
        assert index.status_code == 200 and "<html" in index.text
        assert (await api.get("/static/app.js")).status_code == 200
        assert (await api.get("/api/v1/devices/w1", headers=ADMIN)).status_code == 404
        assert (await api.get("/metrics")).status_code == 401
        metrics = await api.get("/metrics", headers=ADMIN)
        assert 'route="/readyz",status="200"' in metrics.text
        # the route template with its outer prefix, never the raw path
        assert 'route="/api/v1/devices/{device}",status="404"' in metrics.text
        assert (await api.get("/nope")).json()["detail"] == "Not Found"


async def test_dead_letters_admin_only(settings: Settings) -> None:
    async with influx(settings) as db:
        await db.write_lines(
            [
                encode_point(
                    "deadletters",
                    {"reason": "not_json"},
                    {"topic": f"{settings.site}/d/water/x/tele", "payload": "{", "detail": "eof"},
                    1_700_000_000_000 + i,
                )
                for i in range(3)
            ]
        )
    operator = add_token(settings.var_dir, "ops", "operator")
    async with running_api(settings) as api:
        denied = await api.get(
            "/api/v1/deadletters", headers={"Authorization": f"Bearer {operator}"}
        )
        assert denied.status_code == 403
        response = await api.get("/api/v1/deadletters", params={"limit": 2}, headers=ADMIN)
        assert response.status_code == 200
        rows = response.json()
        assert [r["ts"] for r in rows] == [1_700_000_000_002, 1_700_000_000_001]
        assert rows[0]["reason"] == "not_json" and rows[0]["payload"] == "{"


async def test_missing_database_is_503(settings: Settings) -> None:
    # The database was never created: InfluxDB refuses queries, the API says 503.
    async with running_api(settings) as api:
        response = await api.get("/api/v1/devices", headers=ADMIN)
        assert response.status_code == 503
        assert response.json()["detail"] == "database query failed"
        assert response.headers["content-type"] == "application/problem+json"
