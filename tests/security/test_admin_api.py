"""Issue 9, items 1 and 6 over HTTP: the device admin API and the audit log.

The real API (uvicorn) on the locked-down broker with the real dynamic security
plugin (conftest.py), holding the broker admin identity `admin.api` as
`deltasense up` gives it; the session's InfluxDB.  Every privilege is tried
with the wrong identity too (viewer, operator, no token), and every call must
land in the audit log with who, when, from where, what and how it ended.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api.auth import Role, add_token
from deltasense import access
from deltasense.access import Service
from deltasense.settings import Settings
from tests.integration.api_support import ADMIN, running_api
from tests.security.conftest import LockedBroker
from tests.security.probe import NOT_AUTHORIZED, Probe, Refused
from tests.support import now_ms

ROUTES = "/api/v1/admin/devices"


def api_settings(locked: LockedBroker, settings: Settings, *, admin: bool = True) -> Settings:
    base = locked.settings(settings, Service.API)
    if not admin:
        return base
    return base.model_copy(
        update={
            "mqtt_admin_username": access.API_ADMIN_USERNAME,
            "mqtt_admin_password": locked.accounts.api_admin_password,
        }
    )


@pytest.fixture
async def api(locked: LockedBroker, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_api(api_settings(locked, settings)) as client:
        yield client


@pytest.fixture
def tokens(settings: Settings) -> dict[str, dict[str, str]]:
    """Authorization headers for each role (admin: the bootstrap token)."""
    made = {r: add_token(settings.var_dir, f"t-{r.value}", r) for r in (Role.VIEWER, Role.OPERATOR)}
    return {
        "admin": ADMIN,
        "operator": {"Authorization": f"Bearer {made[Role.OPERATOR]}"},
        "viewer": {"Authorization": f"Bearer {made[Role.VIEWER]}"},
    }


def connects(locked: LockedBroker, device: str, secret: str) -> bool:
    try:
        Probe(locked.port, client_id=device, username=device, password=secret).connect().close()
    except Refused as refused:
        assert refused.code == NOT_AUTHORIZED
        return False
    return True


async def audit_of(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/audit", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


async def test_an_admin_provisions_revokes_enables_and_rotates_a_device(
    api: httpx.AsyncClient, locked: LockedBroker, tag: str
) -> None:
    device = f"{tag}-wl"
    started = now_ms()
    body = {"device": device, "kind": "water", "district": "phuong-1"}
    added = await api.post(ROUTES, json=body, headers=ADMIN)
    assert added.status_code == 201, added.text
    config = added.json()["config"]
    secret = config["mqtt_pass"]
    assert len(secret) >= 40 and config["mqtt_user"] == device and config["site"] == locked.site
    assert isinstance(config["broker_tls"], bool)  # a boolean, as the firmware reads it
    assert added.json()["identity"]["publish"][0] == f"tsec/phuong-1/water/{device}/tele"
    assert connects(locked, device, secret)

    # list and show never hold the secret
    listed = await api.get(ROUTES, headers=ADMIN)
    shown = await api.get(f"{ROUTES}/{device}", headers=ADMIN)
    assert listed.status_code == shown.status_code == 200
    assert device in [d["device"] for d in listed.json()]
    assert shown.json()["enabled"] is True and shown.json()["clientid"] == device
    assert secret not in listed.text + shown.text

    # revoke: a connected node is cut off at once, and refused on connect
    with Probe(locked.port, client_id=device, username=device, password=secret) as node:
        t0 = time.monotonic()
        revoked = await api.post(f"{ROUTES}/{device}/revoke", headers=ADMIN)
        assert revoked.status_code == 200 and revoked.json()["enabled"] is False
        assert node.disconnected.wait(5.0), "still connected 5 s after the revocation"
        took = time.monotonic() - t0
    print(f"revoked over the API: disconnected {took * 1000:.0f} ms after the request")
    assert not connects(locked, device, secret)
    enabled = await api.post(f"{ROUTES}/{device}/enable", headers=ADMIN)
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    assert connects(locked, device, secret)

    # rotate: without the node online nothing changes (409); forced, the new secret once
    unconfirmed = await api.post(f"{ROUTES}/{device}/rotate", params={"wait_s": 1}, headers=ADMIN)
    assert unconfirmed.status_code == 409 and "did not confirm" in unconfirmed.json()["detail"]
    assert connects(locked, device, secret)
    forced = await api.post(
        f"{ROUTES}/{device}/rotate", params={"wait_s": 1, "force": "true"}, headers=ADMIN
    )
    assert forced.status_code == 200, forced.text
    new = forced.json()["config"]["mqtt_pass"]
    assert new != secret and not connects(locked, device, secret)
    assert connects(locked, device, new)

    # every call is in the audit log: who, when, from where, what, outcome; no secret
    entries = await audit_of(api, action="device", target=device, since=started)
    assert [(e["action"], e["result"]) for e in reversed(entries)] == [
        ("device.add", "ok"),
        ("device.show", "ok"),
        ("device.revoke", "ok"),
        ("device.enable", "ok"),
        ("device.rotate", "unconfirmed"),
        ("device.rotate", "ok"),
    ]
    for e in entries:
        assert e["actor"] == "admin" and e["origin"] == "127.0.0.1"
        assert started <= e["ts"] <= now_ms()
        assert e["detail"]["role"] == "admin"
    assert entries[0]["detail"]["force"] is True
    assert entries[-1]["detail"] == {
        "role": "admin",
        "site": "tsec",
        "district": "phuong-1",
        "kind": "water",
    }
    everything = (await api.get("/api/v1/audit", headers=ADMIN, params={"limit": 1000})).text
    assert secret not in everything and new not in everything
    listed_entry = await audit_of(api, action="device.list", since=started)
    assert listed_entry and listed_entry[0]["result"] == "ok"


@pytest.mark.parametrize("who", ["operator", "viewer", None])
async def test_only_an_admin_may_administer_devices_or_read_the_audit(
    api: httpx.AsyncClient,
    locked: LockedBroker,
    tokens: dict[str, dict[str, str]],
    tag: str,
    who: str | None,
) -> None:
    device = f"{tag}-ws"
    headers = tokens[who] if who else {}
    expected = 403 if who else 401
    calls = [
        ("GET", ROUTES, None),
        ("POST", ROUTES, {"device": device, "kind": "weather", "district": "phuong-1"}),
        ("GET", f"{ROUTES}/{device}", None),
        ("POST", f"{ROUTES}/{device}/rotate", None),
        ("POST", f"{ROUTES}/{device}/revoke", None),
        ("POST", f"{ROUTES}/{device}/enable", None),
        ("GET", "/api/v1/audit", None),
    ]
    for method, url, body in calls:
        response = await api.request(method, url, json=body, headers=headers)
        assert response.status_code == expected, (method, url, response.text)
    # Nothing was created by the refused add (the admin control sees no such device).
    assert (await api.get(f"{ROUTES}/{device}", headers=ADMIN)).status_code == 404


async def test_unknown_devices_are_404_and_bad_ids_422(
    api: httpx.AsyncClient, locked: LockedBroker, tag: str
) -> None:
    missing = f"{tag}-none"
    for method, url in (
        ("GET", f"{ROUTES}/{missing}"),
        ("POST", f"{ROUTES}/{missing}/revoke"),
        ("POST", f"{ROUTES}/{missing}/enable"),
        ("POST", f"{ROUTES}/{missing}/rotate?wait_s=1"),
    ):
        response = await api.request(method, url, headers=ADMIN)
        assert response.status_code == 404, (url, response.text)
        assert "no device" in response.json()["detail"]
    entries = await audit_of(api, target=missing)
    assert len(entries) == 4 and {e["result"] for e in entries} == {"not_found"}

    for bad in ("Bad_Id", "svc.ingest", "admin.api", "a" * 33, "-lead", "x%23y", "caf%C3%A9"):
        response = await api.get(f"{ROUTES}/{bad}", headers=ADMIN)
        assert response.status_code == 422, (bad, response.text)
        response = await api.post(f"{ROUTES}/{bad}/revoke", headers=ADMIN)
        assert response.status_code == 422, (bad, response.text)
    for body in (
        {"device": "Bad_Id", "kind": "water", "district": "phuong-1"},
        {"device": f"{tag}-ok", "kind": "drone", "district": "phuong-1"},
        {"device": f"{tag}-ok", "kind": "water", "district": "x/#"},
        {"device": f"{tag}-ok", "kind": "water"},
        {"device": f"{tag}-ok", "kind": "water", "district": "p1", "mqtt_pass": "mine"},
        [],
    ):
        response = await api.post(ROUTES, json=body, headers=ADMIN)
        assert response.status_code == 422, (body, response.text)
    for params in ({"wait_s": 0}, {"wait_s": 1e9}, {"wait_s": "soon"}, {"force": "maybe"}):
        response = await api.post(f"{ROUTES}/{tag}-ok/rotate", params=params, headers=ADMIN)
        assert response.status_code == 422, (params, response.text)
    assert (await api.get(f"{ROUTES}/{tag}-ok", headers=ADMIN)).status_code == 404
    # Adding twice: the second is refused (409) and audited as invalid.
    body = {"device": f"{tag}-twice", "kind": "lamp", "district": "phuong-2"}
    assert (await api.post(ROUTES, json=body, headers=ADMIN)).status_code == 201
    again = await api.post(ROUTES, json=body, headers=ADMIN)
    assert again.status_code == 409 and "exists already" in again.json()["detail"]
    results = [e["result"] for e in await audit_of(api, target=f"{tag}-twice")]
    assert results == ["invalid", "ok"]


async def test_without_a_broker_admin_the_routes_answer_503(
    locked: LockedBroker, settings: Settings
) -> None:
    async with running_api(api_settings(locked, settings, admin=False)) as api:
        response = await api.get(ROUTES, headers=ADMIN)
        assert response.status_code == 503
        assert "not configured" in response.json()["detail"]
        entries = await audit_of(api, action="device.list")
        assert entries[0]["result"] == "error"


async def test_hostile_audit_queries_get_clear_422s(api: httpx.AsyncClient) -> None:
    for params, says in (
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "all"}, "limit"),
        ({"since": "yesterday"}, "is neither epoch milliseconds, now, a relative time"),
        ({"since": "-9999999999999999"}, "out of range"),
        ({"until": "0001-01-01T00:00:00Z"}, "out of range"),
        ({"offset": "10"}, "unknown query parameter 'offset'"),
        ({"cursor": "forged.cursor"}, "cursor is not valid"),
        ({"since": "2026-01-01T00:00:00"}, "needs a UTC offset"),
        ({"since": "2000", "until": "1000"}, "since must be before until"),
        ({"action": "device.explode"}, "is none of"),
        ({"action": "'; DROP TABLE audit; --"}, "is none of"),
        ({"action": "x" * 33}, "action"),
        ({"result": "maybe"}, "result"),
        ({"actor": "a\x00b"}, "actor"),
        ({"target": "t" * 201}, "target"),
        ({"before_id": -1}, "before_id"),
        ({"before_id": "1e400"}, "before_id"),
    ):
        response = await api.get("/api/v1/audit", params=params, headers=ADMIN)
        assert response.status_code == 422, (params, response.text)
        assert says in response.text, (params, response.text)
    assert (await api.get("/api/v1/audit", headers=ADMIN)).status_code == 200  # control
