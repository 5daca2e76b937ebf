"""API hardening without services: security headers on every response, stream tickets,
the failed-authentication limiter (on a fake clock), the access log's redaction."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.accesslog import redacted_target
from api.app import create_app
from api.auth import Credential, Principal, Role, add_token, hash_token, remove_tokens
from api.headers import CONTENT_SECURITY_POLICY
from api.ratelimit import AuthFailureLimiter, client_key
from api.routes.console import STATIC_DIR
from api.tickets import StreamTickets
from deltasense.catalogue import load as load_catalogue
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

from .api_fakes import FakeDb


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        var_dir=tmp_path, admin_token=ADMIN_TOKEN, api_auth_fail_limit=3, api_auth_fail_window_s=60
    )
    app = create_app(settings, influx=FakeDb())

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    return app


def _client(app: FastAPI, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- headers ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/static/app.js", 200),
        ("GET", "/static/i18n.json", 200),
        ("GET", "/static/nope.js", 404),
        ("GET", "/docs", 200),
        ("GET", "/healthz", 200),
        ("GET", "/api/v1/devices", 401),
        ("GET", "/no/such/route", 404),
        ("DELETE", "/healthz", 405),
        ("GET", "/api/v1/devices/UPPER/latest", 422),
        ("GET", "/boom", 500),
    ],
)
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(
        method, path, headers=_bearer(ADMIN_TOKEN) if "UPPER" in path else None
    )
    assert response.status_code == status
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in response.headers  # plain HTTP here


async def test_the_console_reads_the_shared_catalogue(client: httpx.AsyncClient) -> None:
    """/static/i18n.json is deltasense/i18n.json, the catalogue the notifier speaks from."""
    response = await client.get("/static/i18n.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == load_catalogue()
    assert response.json()["vi"]["critical"] == "nghiêm trọng"


async def test_hsts_only_over_https(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api") as c:
        response = await c.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")


def test_the_console_has_no_inline_script_style_or_handler() -> None:
    """What the CSP forbids must not be in the pages: it would silently break them."""
    for page in ("index.html", "docs.html", "redoc.html"):
        html = (STATIC_DIR / page).read_text(encoding="utf-8")
        assert "<style" not in html and "style=" not in html, page
        for tag in html.split("<script")[1:]:
            assert "src=" in tag.split(">")[0], f"{page}: inline script"
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), f"{page}: inline event handler"
        assert "javascript:" not in html.lower(), page


_ASSET = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)


@pytest.mark.parametrize(("path", "bundle"), [("/docs", "swagger-ui"), ("/redoc", "redoc")])
async def test_the_api_explorers_reference_only_local_assets(
    client: httpx.AsyncClient, path: str, bundle: str
) -> None:
    """Swagger UI (/docs) and ReDoc (/redoc) from api/static/vendor, never a CDN: every
    script, style and link of the page is a path on this server, and each is served."""
    page = await client.get(path)
    assert page.status_code == 200
    assets = _ASSET.findall(page.text)
    assert f"/static/vendor/{bundle}/" in " ".join(assets)
    assert "/openapi.json" in assets
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url  # no other host
        if url.startswith("/static/"):
            served = await client.get(url)
            assert served.status_code == 200, f"{url}: run make bootstrap (vendor_console.sh)"
    assert "http:" not in page.text and "https:" not in page.text
    doc = (await client.get("/openapi.json")).json()
    assert doc["info"]["title"] == "DeltaSense API"


async def test_only_redoc_may_use_inline_styles(client: httpx.AsyncClient) -> None:
    redoc = (await client.get("/redoc")).headers["content-security-policy"]
    assert "style-src 'self' 'unsafe-inline';" in redoc
    assert "script-src 'self';" in redoc and redoc.replace(" 'unsafe-inline'", "") == (
        CONTENT_SECURITY_POLICY
    )
    for path in ("/", "/docs", "/static/redoc.js", "/api/v1/me"):
        assert (await client.get(path)).headers["content-security-policy"] == (
            CONTENT_SECURITY_POLICY
        )


# --- stream tickets ---------------------------------------------------------------
def test_a_ticket_is_single_use_and_expires() -> None:
    clock = FakeClock()
    tickets = StreamTickets(ttl_s=30, clock=clock)
    who = Principal("v", Role.VIEWER)
    first = tickets.issue(who, Credential("token", "d1"))
    grant = tickets.redeem(first)
    assert grant is not None and grant.principal == who and grant.credential.digest == "d1"
    assert tickets.redeem(first) is None  # used
    late = tickets.issue(who, Credential("token", "d1"))
    clock.now += 30
    assert tickets.redeem(late) is None  # expired
    assert tickets.redeem("made-up") is None
    assert len(first) >= 40


def test_outstanding_tickets_are_bounded() -> None:
    clock = FakeClock()
    tickets = StreamTickets(ttl_s=30, max_outstanding=100, clock=clock)
    who = Principal("v", Role.VIEWER)
    issued = [tickets.issue(who, Credential("token", "d")) for _ in range(1000)]
    assert len(tickets) <= 100
    assert tickets.redeem(issued[-1]) is not None  # the newest survive
    assert tickets.redeem(issued[0]) is None
    clock.now += 31
    tickets.issue(who, Credential("token", "d"))
    assert len(tickets) == 1  # expired ones are purged


async def test_the_stream_takes_a_ticket_once_and_never_a_token_in_the_url(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    viewer = add_token(tmp_path, "wall", "viewer")
    assert (await client.post("/api/v1/stream/ticket")).status_code == 401
    issued = await client.post("/api/v1/stream/ticket", headers=_bearer(viewer))
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["expires_in_s"] == 30 and body["ticket"] not in (viewer, ADMIN_TOKEN)
    # Ticket redemption happens before the stream body: check it on the dependency's
    # verdict through a second, spent use (the unit app has no MQTT link to stream from).
    app_ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    grant = app_ctx.tickets.redeem(body["ticket"])
    assert grant is not None and grant.principal.name == "wall"
    assert grant.credential == Credential("token", hash_token(viewer))
    spent = await client.get("/api/v1/alerts/stream", params={"ticket": body["ticket"]})
    assert spent.status_code == 401 and "ticket" in spent.json()["detail"]


async def test_a_ticket_dies_with_its_token(client: httpx.AsyncClient, tmp_path: Path) -> None:
    viewer = add_token(tmp_path, "wall", "viewer")
    ticket = (await client.post("/api/v1/stream/ticket", headers=_bearer(viewer))).json()["ticket"]
    assert remove_tokens(tmp_path, "wall") == 1
    refused = await client.get("/api/v1/alerts/stream", params={"ticket": ticket})
    assert refused.status_code == 401


async def test_metrics_token_gets_no_ticket(client: httpx.AsyncClient, tmp_path: Path) -> None:
    scraper = add_token(tmp_path, "prometheus", "metrics")
    denied = await client.post("/api/v1/stream/ticket", headers=_bearer(scraper))
    assert denied.status_code == 403


# --- failed-authentication limit ----------------------------------------------------
def test_limiter_blocks_after_the_limit_until_the_window_passes() -> None:
    clock = FakeClock()
    limiter = AuthFailureLimiter(limit=3, window_s=60, clock=clock)
    for _ in range(2):
        limiter.failed("a")
        clock.now += 10
    assert limiter.retry_after("a") is None  # two failures: still allowed
    limiter.failed("a")  # the third, at t=20
    assert limiter.retry_after("a") == 40  # until the first (t=0) leaves the window
    assert limiter.retry_after("b") is None  # another address is not affected
    clock.now += 39.5
    assert limiter.retry_after("a") == 1  # rounded up, never 0
    clock.now += 0.5
    assert limiter.retry_after("a") is None  # the oldest left: one more try
    clock.now += 100
    assert limiter.retry_after("a") is None and len(limiter) == 0  # forgotten


def test_limiter_memory_is_bounded_under_an_address_spray() -> None:
    clock = FakeClock()
    limiter = AuthFailureLimiter(limit=3, window_s=60, max_clients=1000, clock=clock)
    for i in range(50_000):
        limiter.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
        assert len(limiter) <= 1000
    for _ in range(10):  # each address keeps at most `limit` timestamps
        limiter.failed("victim")
    assert limiter.retry_after("victim") is not None


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:1:2:3", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        (None, "-"),
        ("testclient", "testclient"),
    ],
)
def test_client_key(host: str | None, key: str) -> None:
    assert client_key(host) == key


async def test_bad_tokens_get_429_with_retry_after_other_addresses_unaffected(
    app: FastAPI, tmp_path: Path
) -> None:
    viewer = add_token(tmp_path, "wall", "viewer")
    async with _client(app, "192.0.2.1") as attacker, _client(app, "192.0.2.2") as operator:
        for i in range(3):
            bad = await attacker.get("/api/v1/devices", headers=_bearer(f"guess-{i}"))
            assert bad.status_code == 401
        locked = await attacker.get("/api/v1/devices", headers=_bearer("guess-3"))
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        # Locked out means the token is not even checked: a good one is refused too.
        assert (await attacker.get("/api/v1/devices", headers=_bearer(viewer))).status_code == 429
        assert (
            await attacker.post("/api/v1/stream/ticket", headers=_bearer(viewer))
        ).status_code == 429
        assert (await attacker.get("/healthz")).status_code == 200  # needs no token
        good = await operator.get("/api/v1/devices", headers=_bearer(viewer))
        assert good.status_code == 200
        # A missing token or a too-low role is not a guess and does not count.
        for _ in range(5):
            assert (await operator.get("/api/v1/devices")).status_code == 401
            assert (
                await operator.get("/api/v1/deadletters", headers=_bearer(viewer))
            ).status_code == 403
        assert (await operator.get("/api/v1/devices", headers=_bearer(viewer))).status_code == 200


async def test_spent_tickets_count_as_failures(app: FastAPI) -> None:
    async with _client(app, "192.0.2.9") as c:
        for _ in range(3):
            assert (
                await c.get("/api/v1/alerts/stream", params={"ticket": "x" * 43})
            ).status_code == 401
        assert (
            await c.get("/api/v1/alerts/stream", params={"ticket": "x" * 43})
        ).status_code == 429


# --- access log ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "query", "logged"),
    [
        ("/api/v1/alerts/stream", b"ticket=abcdef123", "/api/v1/alerts/stream?ticket=*"),
        ("/api/v1/devices", b"", "/api/v1/devices"),
        ("/x", b"access_token=s3cr3t&state=active", "/x?access_token=*&state=*"),
        ("/x", b"s3cr3t-Value.x", "/x?…=*"),  # a bare value parses as a name: not shown
        ("/x", b"%ff%fe=1&a=2", "/x?…=*&a=*"),
        (
            "/x",
            b"&".join(b"p%d=1" % i for i in range(20)),
            "/x?" + "&".join(f"p{i}=*" for i in range(16)) + "&…",
        ),
    ],
)
def test_access_log_never_writes_query_values(path: str, query: bytes, logged: str) -> None:
    assert redacted_target(path, query) == logged


async def test_access_log_lines_carry_no_ticket(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="api.access")
    await client.get("/api/v1/alerts/stream", params={"ticket": "T0pS3cretTicketValue"})
    await client.get("/api/v1/devices", headers=_bearer(ADMIN_TOKEN))
    lines = [r.getMessage() for r in caplog.records if r.name == "api.access"]
    assert len(lines) == 2, lines
    assert '"GET /api/v1/alerts/stream?ticket=*" 401' in lines[0]
    assert all("T0pS3cret" not in line and ADMIN_TOKEN not in line for line in lines)
