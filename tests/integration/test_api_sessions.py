"""Console sessions against the real server (uvicorn, InfluxDB, Mosquitto): login,
the alert stream by a session's ticket, disable, idle expiry and logout; a viewer
refused the admin endpoints; a cookie without the CSRF header refused."""

from __future__ import annotations

import asyncio
import time

import httpx

from api.accounts import AccountStore
from api.deps import CSRF_HEADER, SESSION_COOKIE
from deltasense.settings import Settings

from .api_support import ADMIN, influx, running_api

PASSWORD = "cảnh báo ngập Phường 1"
CONSOLE = {CSRF_HEADER: "1"}
IDLE_S = 1.5


async def _login(api: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await api.post(
        "/api/v1/session", json={"username": name, "password": password}, headers=CONSOLE
    )


async def test_a_session_streams_alerts_and_ends_when_the_account_is_disabled(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"api_session_idle_s": IDLE_S})
    store = AccountStore(settings.var_dir)  # as `deltasense users add` writes it
    store.add("an", "viewer", PASSWORD)
    store.add("chi", "operator", PASSWORD)
    async with influx(settings), running_api(settings) as api:
        wrong = await _login(api, "an", "not the password")
        assert wrong.status_code == 401 and SESSION_COOKIE not in api.cookies
        started = time.perf_counter()
        ok = await _login(api, "an")
        print(f"login (Argon2id verify + session) {1000 * (time.perf_counter() - started):.0f} ms")
        assert ok.status_code == 200 and "httponly" in ok.headers["set-cookie"].lower()
        assert (await api.get("/api/v1/me")).json()["name"] == "an"
        assert (await api.get("/api/v1/devices")).status_code == 200  # real InfluxDB behind
        # A viewer is refused what admins do, whatever the console shows.
        for method, path in (("GET", "/api/v1/admin/users"), ("GET", "/api/v1/audit"),
                             ("POST", "/api/v1/admin/users/chi/disable")):  # fmt: skip
            assert (await api.request(method, path, headers=CONSOLE)).status_code == 403
        # The cookie alone does not change anything: the CSRF header is required.
        bare = await api.post("/api/v1/stream/ticket")
        assert bare.status_code == 403 and CSRF_HEADER in bare.json()["detail"]
        issued = await api.post("/api/v1/stream/ticket", headers=CONSOLE)
        assert issued.status_code == 200
        ticket = issued.json()["ticket"]
        # A client of its own: the ticket alone opens the stream (EventSource sends no header).
        async with (
            httpx.AsyncClient(base_url=settings.api_base_url, timeout=10) as sse,
            sse.stream("GET", "/api/v1/alerts/stream", params={"ticket": ticket}) as response,
        ):
            assert response.status_code == 200
            lines = response.aiter_lines()
            assert await asyncio.wait_for(anext(lines), 5) == ": listening"
            disabled = await api.post("/api/v1/admin/users/an/disable", headers=ADMIN)
            assert disabled.status_code == 200
            cut = time.perf_counter()

            async def drain() -> None:
                async for _ in lines:
                    pass

            await asyncio.wait_for(drain(), 5)  # the server ends the stream
            print(f"stream ended {1000 * (time.perf_counter() - cut):.0f} ms after disable")
        assert (await api.get("/api/v1/me")).status_code == 401
        assert (await _login(api, "an")).status_code == 401

        # Idle expiry: a session unused for api_session_idle_s is gone.
        api.cookies.clear()
        assert (await _login(api, "chi")).status_code == 200
        assert (await api.get("/api/v1/me")).status_code == 200
        await asyncio.sleep(IDLE_S + 0.2)
        expired = await api.get("/api/v1/me")
        assert expired.status_code == 401 and "expired" in expired.json()["detail"]

        # Logout: the same cookie, replayed, is refused.
        assert (await _login(api, "chi")).status_code == 200
        cookie = api.cookies[SESSION_COOKIE]
        assert (await api.delete("/api/v1/session", headers=CONSOLE)).status_code == 204
        api.cookies.set(SESSION_COOKIE, cookie)
        assert (await api.get("/api/v1/me")).status_code == 401
        entries = (
            await api.get("/api/v1/audit", params={"action": "session"}, headers=ADMIN)
        ).json()
        assert [(e["action"], e["actor"], e["result"]) for e in reversed(entries)] == [
            ("session.login", "an", "invalid"),
            ("session.login", "an", "ok"),
            ("session.login", "an", "invalid"),  # disabled
            ("session.login", "chi", "ok"),
            ("session.login", "chi", "ok"),
            ("session.logout", "chi", "ok"),
        ]
        assert PASSWORD not in str(entries)
