"""Bearer-token auth: token files, hashing, roles, 401/403 over HTTP (no services)."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.auth import (
    LEGACY_ADMIN_TOKEN_FILE,
    TOKENS_FILE,
    Role,
    TokenStore,
    WeakTokenError,
    add_token,
    ensure_admin_token,
    hash_token,
    load_tokens,
    remove_tokens,
)
from deltasense.access import admin_token_file
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

from .api_fakes import FakeDb


def test_configured_admin_token_wins_and_writes_nothing(tmp_path: Path) -> None:
    assert ensure_admin_token(tmp_path, "from-env") == "from-env"
    assert not admin_token_file(tmp_path).exists()


def test_generated_admin_token_is_private_and_reused(tmp_path: Path) -> None:
    var = tmp_path / "var"
    token = ensure_admin_token(var, None)
    path = admin_token_file(var)
    assert path == var.resolve() / "secrets" / "admin-token"
    assert len(token) >= 40
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_admin_token(var, None) == token


def test_a_token_generated_into_the_old_place_moves_into_secrets(tmp_path: Path) -> None:
    (tmp_path / LEGACY_ADMIN_TOKEN_FILE).write_text(ADMIN_TOKEN + "\n")
    assert ensure_admin_token(tmp_path, None) == ADMIN_TOKEN
    assert not (tmp_path / LEGACY_ADMIN_TOKEN_FILE).exists()
    assert stat.S_IMODE(admin_token_file(tmp_path).stat().st_mode) == 0o600


@pytest.mark.parametrize("weak", ["admin", "short-token", "a" * 40])
def test_a_weak_token_in_the_file_is_refused_unless_dev(tmp_path: Path, weak: str) -> None:
    path = admin_token_file(tmp_path, create_dir=True)
    path.write_text(weak + "\n")
    with pytest.raises(WeakTokenError, match="weak admin token") as caught:
        ensure_admin_token(tmp_path, None)
    assert str(path) in str(caught.value)
    assert len(weak) < 10 or weak not in str(caught.value)
    assert ensure_admin_token(tmp_path, None, allow_weak=True) == weak


def test_add_token_stores_only_the_hash(tmp_path: Path) -> None:
    token = add_token(tmp_path, "ops desk", "operator")
    text = (tmp_path / TOKENS_FILE).read_text()
    assert token not in text
    assert json.loads(text) == {hash_token(token): {"name": "ops desk", "role": "operator"}}
    assert stat.S_IMODE((tmp_path / TOKENS_FILE).stat().st_mode) == 0o600
    second = add_token(tmp_path, "wall", Role.VIEWER)
    assert set(load_tokens(tmp_path)) == {hash_token(token), hash_token(second)}
    assert remove_tokens(tmp_path, "ops desk") == 1
    assert set(load_tokens(tmp_path)) == {hash_token(second)}


@pytest.mark.parametrize(("name", "role"), [("x", "root"), ("", "viewer"), ("a\nb", "viewer")])
def test_add_token_rejects_bad_input(tmp_path: Path, name: str, role: str) -> None:
    with pytest.raises(ValueError):
        add_token(tmp_path, name, role)
    assert not (tmp_path / TOKENS_FILE).exists()


def test_broken_tokens_file_gives_no_extra_tokens(tmp_path: Path) -> None:
    (tmp_path / TOKENS_FILE).write_text("{not json")
    assert load_tokens(tmp_path) == {}
    (tmp_path / TOKENS_FILE).write_text(
        json.dumps({"zz": {"name": "a", "role": "admin"}, "0" * 64: {"name": "b", "role": "god"}})
    )
    assert load_tokens(tmp_path) == {}


def test_token_store_picks_up_new_tokens(tmp_path: Path) -> None:
    store = TokenStore(tmp_path, "adm")
    assert store.authenticate("adm") is not None
    token = add_token(tmp_path, "late", "viewer")
    found = store.authenticate(token)
    assert found is not None and found.role is Role.VIEWER
    assert store.authenticate(token + "x") is None


@pytest.fixture
async def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    monkeypatch.chdir(tmp_path)  # no stray deltasense.toml
    settings = Settings(var_dir=tmp_path, admin_token=ADMIN_TOKEN)
    tokens = {
        "metrics": add_token(tmp_path, "prometheus", "metrics"),
        "viewer": add_token(tmp_path, "v", "viewer"),
        "operator": add_token(tmp_path, "o", "operator"),
        "admin": ADMIN_TOKEN,
    }
    app = create_app(settings, influx=FakeDb())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c, tokens


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_token_is_401_with_challenge(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    c, _ = client
    response = await c.get("/api/v1/devices")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "missing bearer token",
    }


@pytest.mark.parametrize("header", ["Bearer wrong", "Basic YWRtaW4tc2VjcmV0", "Bearer "])
async def test_bad_token_is_401(
    client: tuple[httpx.AsyncClient, dict[str, str]], header: str
) -> None:
    c, _ = client
    response = await c.get("/api/v1/devices", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_roles(client: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    c, tokens = client
    body = {"name": "reboot"}
    # viewer reads, cannot command or read dead letters
    assert (await c.get("/api/v1/devices", headers=_bearer(tokens["viewer"]))).status_code == 200
    denied = await c.post(
        "/api/v1/devices/d1/commands", json=body, headers=_bearer(tokens["viewer"])
    )
    assert denied.status_code == 403
    assert "operator" in denied.json()["detail"]
    assert (
        await c.get("/api/v1/deadletters", headers=_bearer(tokens["operator"]))
    ).status_code == 403
    # operator passes auth on the command route (then 404: the fake knows no device)
    sent = await c.post(
        "/api/v1/devices/d1/commands", json=body, headers=_bearer(tokens["operator"])
    )
    assert sent.status_code == 404
    assert (await c.get("/api/v1/deadletters", headers=_bearer(tokens["admin"]))).status_code == 200


@pytest.mark.parametrize("name", ["access_token", "token"])
@pytest.mark.parametrize("path", ["/api/v1/devices", "/api/v1/alerts/stream"])
async def test_a_token_in_the_url_is_refused_even_a_good_one(
    client: tuple[httpx.AsyncClient, dict[str, str]], name: str, path: str
) -> None:
    c, tokens = client
    response = await c.get(path, params={name: tokens["admin"]})
    assert response.status_code == 400
    assert "not accepted in the URL" in response.json()["detail"]
    assert tokens["admin"] not in response.text


async def test_health_needs_no_token_metrics_needs_the_metrics_or_admin_role(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    c, tokens = client
    assert (await c.get("/healthz")).json() == {"status": "ok"}
    ready = await c.get("/readyz")  # no lifespan here: MQTT link not running
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"influxdb": True, "mqtt": False}
    assert "mqtt" in ready.json()["detail"]
    assert (await c.get("/metrics")).status_code == 401
    for refused in ("viewer", "operator"):
        denied = await c.get("/metrics", headers=_bearer(tokens[refused]))
        assert denied.status_code == 403, refused
        assert "metrics or admin" in denied.json()["detail"]
    for allowed in ("metrics", "admin"):
        metrics = await c.get("/metrics", headers=_bearer(tokens[allowed]))
        assert metrics.status_code == 200, allowed
    assert 'deltasense_api_requests_total{method="GET",route="/readyz",status="503"} 1.0' in (
        metrics.text
    )
    # The scrape-only role reads nothing else.
    assert (await c.get("/api/v1/devices", headers=_bearer(tokens["metrics"]))).status_code == 403
