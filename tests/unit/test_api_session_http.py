"""Console login over HTTP (the app in-process, no services): the session cookie,
CSRF refusals, the login limit, the accounts API and who is refused what.
The same flows against a real server and database: tests/integration/test_api_sessions.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from api.accounts import AccountStore
from api.app import create_app
from api.auth import add_token
from api.deps import CSRF_HEADER, SESSION_COOKIE, ApiContext
from deltasense.audit import AuditLog
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

from .api_fakes import FakeDb

PASSWORD = "đèn đường Phường 3 sáng"
CONSOLE = {CSRF_HEADER: "1"}
BASE = "http://api"


class Api:
    def __init__(self, client: httpx.AsyncClient, ctx: ApiContext, root: Path) -> None:
        self.client, self.ctx, self.root = client, ctx, root
        self.tokens = {
            "viewer": add_token(root, "tv", "viewer"),
            "operator": add_token(root, "to", "operator"),
            "admin": ADMIN_TOKEN,
        }
        for name, role in (("viewer1", "viewer"), ("operator1", "operator"), ("admin1", "admin")):
            ctx.accounts.add(name, role, PASSWORD)

    def browser(self) -> httpx.AsyncClient:
        """A second client with its own cookie jar, on the same app."""
        return httpx.AsyncClient(transport=self.client._transport, base_url=BASE)

    async def login(
        self, c: httpx.AsyncClient, name: str, password: str = PASSWORD, **headers: str
    ) -> httpx.Response:
        return await c.post(
            "/api/v1/session",
            json={"username": name, "password": password},
            headers=CONSOLE | headers,
        )

    def audit(self, action: str) -> list[Any]:
        return AuditLog(self.ctx.settings.audit_path).query(action=action)


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    monkeypatch.chdir(tmp_path)
    settings = Settings(var_dir=tmp_path, admin_token=ADMIN_TOKEN, api_login_fail_limit=3)
    app = create_app(settings, influx=FakeDb())
    ctx: ApiContext = app.state.ctx
    ctx.accounts = AccountStore(tmp_path, hasher=PasswordHasher.from_parameters(CHEAPEST))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield Api(c, ctx, tmp_path)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_sets_a_strict_httponly_cookie_that_authenticates(api: Api) -> None:
    c = api.client
    response = await api.login(c, "Operator1")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "operator1",
        "role": "operator",
        "via": "session",
        "idle_s": 1800,
        "max_s": 43200,
    }
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", "max-age=43200"} <= attributes
    assert "secure" not in attributes  # plain HTTP: a Secure cookie would never come back
    assert response.headers["cache-control"] == "no-store"
    value = c.cookies[SESSION_COOKIE]
    assert len(value) >= 43 and value not in api.ctx.sessions._sessions  # kept by hash
    me = await c.get("/api/v1/me")
    assert me.json() == {"name": "operator1", "role": "operator", "via": "session"}
    assert (await c.get("/api/v1/devices")).status_code == 200
    # A bearer token, when sent, is what counts (API clients keep working as before).
    assert (await c.get("/api/v1/me", headers=_bearer(api.tokens["viewer"]))).json() == {
        "name": "tv",
        "role": "viewer",
        "via": "token",
    }
    [entry] = api.audit("session.login")
    assert (entry.actor, entry.target, entry.result, entry.origin) == (
        "operator1",
        "operator1",
        "ok",
        "127.0.0.1",
    )
    assert entry.detail == {"via": "session", "role": "operator"}


async def test_the_cookie_is_secure_over_https_or_when_configured(api: Api, tmp_path: Path) -> None:
    async with httpx.AsyncClient(transport=api.client._transport, base_url="https://api") as https:
        response = await api.login(https, "viewer1")
        assert "secure" in response.headers["set-cookie"].lower()
    api.ctx.settings = api.ctx.settings.model_copy(update={"api_cookie_secure": True})
    response = await api.login(api.client, "viewer1")
    assert "; secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("operator1", "not the password!"),
        ("nobody", PASSWORD),
        ("OPERATOR1 ", PASSWORD),
        ("operator1\x00", PASSWORD),
        ("ghost\n\x1b[2J", PASSWORD),
        ("x" * 256, "y" * 1024),
    ],
)
async def test_every_wrong_login_gets_the_same_answer(api: Api, name: str, password: str) -> None:
    response = await api.login(api.client, name, password)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "wrong username or password"
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    [entry] = api.audit("session.login")
    assert entry.result == "invalid" and entry.detail["reason"] in {
        "wrong_password",
        "unknown_user",
    }
    # An impossible name is not written down as typed (it may be a password).
    assert entry.actor == entry.target == (name if name in ("operator1", "nobody") else "-")
    assert password not in str(entry.as_dict())


async def test_a_disabled_account_gets_the_same_401_and_its_sessions_end(api: Api) -> None:
    c = api.client
    assert (await api.login(c, "viewer1")).status_code == 200
    disabled = await c.post("/api/v1/admin/users/viewer1/disable", headers=_bearer(ADMIN_TOKEN))
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert (await c.get("/api/v1/me")).status_code == 401
    refused = await api.login(c, "viewer1")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "wrong username or password"
    assert api.audit("session.login")[0].detail["reason"] == "disabled"
    assert (
        await c.post("/api/v1/admin/users/viewer1/enable", headers=_bearer(ADMIN_TOKEN))
    ).is_success
    assert (await api.login(c, "viewer1")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'{"username": "viewer1"}',
        b'{"username": "", "password": "x"}',
        b'{"username": "viewer1", "password": ""}',
        b'{"username": 7, "password": ["x"]}',
        b'{"username": "\xff\xfe", "password": "x"}',
        b'{"username": "\\ud800an", "password": "\\udcffx"}',  # lone surrogates, escaped
        b"username=viewer1&password=x",
        ('{"username": "' + "a" * 257 + '", "password": "x"}').encode(),
        ('{"username": "viewer1", "password": "' + "p" * 1025 + '"}').encode(),
        ('{"username": "' + "é" * 1_000_000 + '", "password": "x"}').encode(),
    ],
)
async def test_malformed_login_bodies_are_refused_before_any_check(api: Api, body: bytes) -> None:
    response = await api.client.post(
        "/api/v1/session",
        content=body,
        headers=CONSOLE | {"Content-Type": "application/json"},
    )
    # 400 for a body that is not UTF-8 JSON at all, 422 for one of the wrong shape.
    assert response.status_code == (400 if b"\xff" in body else 422), response.text
    assert api.audit("session.login") == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {CSRF_HEADER: "0"},
        {CSRF_HEADER: "1", "Origin": "https://evil.example"},
        {CSRF_HEADER: "1", "Origin": "null"},
        {CSRF_HEADER: "1", "Origin": "http://api.evil.example"},
        {CSRF_HEADER: "1", "Origin": "http://api:8443"},
        {CSRF_HEADER: "1", "Sec-Fetch-Site": "cross-site"},
        {CSRF_HEADER: "1", "Sec-Fetch-Site": "same-site"},
    ],
)
async def test_cross_site_requests_are_refused_login_logout_and_changes(
    api: Api, headers: dict[str, str]
) -> None:
    c = api.client
    form = await c.post(
        "/api/v1/session", json={"username": "admin1", "password": PASSWORD}, headers=headers
    )
    assert form.status_code == 403 and "cross-site" in form.json()["detail"]
    assert SESSION_COOKIE not in c.cookies
    assert (await api.login(c, "admin1")).status_code == 200
    for method, path, body in [
        ("POST", "/api/v1/stream/ticket", None),
        ("POST", "/api/v1/admin/users/viewer1/disable", None),
        ("POST", "/api/v1/devices/lamp-1/commands", {"name": "set_dim", "args": {"pct": 1}}),
        ("DELETE", "/api/v1/session", None),
    ]:
        refused = await c.request(method, path, json=body, headers=headers)
        assert refused.status_code == 403, (method, path, refused.text)
        assert "cross-site" in refused.json()["detail"]
    assert api.ctx.accounts.get("viewer1").disabled is False  # type: ignore[union-attr]
    assert (await c.get("/api/v1/me")).status_code == 200  # reads need no header
    # The console's own requests carry the header and pass (same origin, or none sent).
    same = {CSRF_HEADER: "1", "Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert (await c.post("/api/v1/stream/ticket", headers=same)).status_code == 200
    # Behind a TLS proxy the page's origin is https while the API sees http: same host.
    proxied = {CSRF_HEADER: "1", "Origin": "https://api"}
    assert (await c.post("/api/v1/stream/ticket", headers=proxied)).status_code == 200
    # A bearer request needs no header: a browser never adds the token by itself.
    assert (await c.post("/api/v1/stream/ticket", headers=_bearer(ADMIN_TOKEN))).is_success


async def test_a_new_login_from_the_same_browser_ends_its_previous_session(api: Api) -> None:
    c = api.client
    await api.login(c, "viewer1")
    first = c.cookies[SESSION_COOKIE]
    await api.login(c, "operator1")  # the browser sends its old cookie with the login
    assert c.cookies[SESSION_COOKIE] != first
    assert (await c.get("/api/v1/me")).json()["name"] == "operator1"
    async with api.browser() as other:
        other.cookies.set(SESSION_COOKIE, first)
        assert (await other.get("/api/v1/me")).status_code == 401
    assert len(api.ctx.sessions) == 1


async def test_logout_ends_the_session_on_the_server(api: Api) -> None:
    c = api.client
    await api.login(c, "viewer1")
    stolen = c.cookies[SESSION_COOKIE]
    out = await c.delete("/api/v1/session", headers=CONSOLE)
    assert out.status_code == 204
    assert (
        f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]
        or "max-age=0" in out.headers["set-cookie"].lower()
    )
    async with api.browser() as other:  # the old cookie, replayed
        other.cookies.set(SESSION_COOKIE, stolen)
        replay = await other.get("/api/v1/me")
        assert replay.status_code == 401 and replay.json()["detail"] == (
            "session expired or signed out"
        )
    assert [e.action for e in api.audit("session")] == ["session.logout", "session.login"]
    assert (await c.delete("/api/v1/session", headers=CONSOLE)).status_code == 204  # again


async def test_failed_logins_are_limited_per_name_and_address(api: Api) -> None:
    c = api.client
    for _ in range(3):  # api_login_fail_limit=3 in this fixture
        assert (await api.login(c, "operator1", "wrong password!!")).status_code == 401
    locked = await api.login(c, "operator1")  # even the right password now
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    unknown = [await api.login(c, "nobody", "x") for _ in range(4)]
    assert [r.status_code for r in unknown] == [401, 401, 401, 429]  # no difference
    assert (await api.login(c, "viewer1")).status_code == 200  # another name: served
    # Tokens from the same address are not locked out by failed logins.
    assert (await c.get("/api/v1/me", headers=_bearer(ADMIN_TOKEN))).status_code == 200
    assert len(api.audit("session.login")) == 7  # the 429s are not audited


async def test_a_stream_ticket_from_a_session_dies_with_it(api: Api) -> None:
    c = api.client
    await api.login(c, "viewer1")
    issued = await c.post("/api/v1/stream/ticket", headers=CONSOLE)
    assert issued.status_code == 200
    ticket = issued.json()["ticket"]
    await c.delete("/api/v1/session", headers=CONSOLE)
    async with api.browser() as other:
        spent = await other.get("/api/v1/alerts/stream", params={"ticket": ticket})
        assert spent.status_code == 401 and "ticket" in spent.json()["detail"]


async def test_admins_manage_accounts_over_http_and_changes_end_sessions(api: Api) -> None:
    admin = _bearer(ADMIN_TOKEN)
    c = api.client
    made = await c.post(
        "/api/v1/admin/users",
        json={"name": "Tran.Binh", "role": "operator", "password": PASSWORD},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "tran.binh" and PASSWORD not in made.text
    listed = (await c.get("/api/v1/admin/users", headers=admin)).json()
    assert [a["name"] for a in listed] == ["admin1", "operator1", "tran.binh", "viewer1"]
    assert "argon2" not in str(listed)
    assert (await c.get("/api/v1/admin/users/tran.binh", headers=admin)).json()["role"] == (
        "operator"
    )
    dup = await c.post(
        "/api/v1/admin/users",
        json={"name": "tran.binh", "role": "viewer", "password": PASSWORD},
        headers=admin,
    )
    assert dup.status_code == 409
    weak = await c.post(
        "/api/v1/admin/users",
        json={"name": "weak", "role": "viewer", "password": "password1234"},
        headers=admin,
    )
    assert weak.status_code == 422 and "commonly guessed" in weak.json()["detail"]
    for bad in ({"name": "a\nb", "role": "viewer", "password": PASSWORD},
                {"name": "ok", "role": "metrics", "password": PASSWORD},
                {"name": "ok", "role": "viewer", "password": "x" * 300}):  # fmt: skip
        assert (await c.post("/api/v1/admin/users", json=bad, headers=admin)).status_code == 422
    surrogate = b'{"name": "\\ud800ok", "role": "viewer", "password": "a long enough one 1"}'
    raw = await c.post(
        "/api/v1/admin/users",
        content=surrogate,
        headers=admin | {"Content-Type": "application/json"},
    )
    assert raw.status_code == 422  # a lone surrogate (escaped in JSON) is no text

    async with api.browser() as binh:
        assert (await api.login(binh, "tran.binh")).status_code == 200
        new = "mật khẩu mới của Bình 9"
        changed = await c.put(
            "/api/v1/admin/users/tran.binh/password", json={"password": new}, headers=admin
        )
        assert changed.status_code == 200
        assert (await binh.get("/api/v1/me")).status_code == 401  # its session ended
        assert (await api.login(binh, "tran.binh")).status_code == 401
        assert (await api.login(binh, "tran.binh", new)).status_code == 200
        assert (await c.delete("/api/v1/admin/users/tran.binh", headers=admin)).status_code == 204
        assert (await binh.get("/api/v1/me")).status_code == 401
    assert (await c.delete("/api/v1/admin/users/tran.binh", headers=admin)).status_code == 404
    assert (await c.post("/api/v1/admin/users/ghost/disable", headers=admin)).status_code == 404
    assert (await c.get("/api/v1/admin/users/a%0Ab", headers=admin)).status_code == 422
    actions = [(e.action, e.result) for e in reversed(api.audit("user"))]
    assert actions == [
        ("user.add", "ok"),
        ("user.add", "invalid"),  # exists
        ("user.add", "invalid"),  # weak password
        ("user.add", "invalid"),  # a name with a newline (the other two: 422 by the schema)
        ("user.passwd", "ok"),
        ("user.remove", "ok"),
        ("user.remove", "not_found"),
        ("user.disable", "not_found"),
    ]
    assert all(e.actor == "admin" for e in api.audit("user"))
    assert PASSWORD not in str([e.as_dict() for e in api.audit("")])


async def test_a_change_made_by_the_cli_reaches_the_running_api(api: Api) -> None:
    """`deltasense users disable` writes the file; the API's next request sees it."""
    c = api.client
    await api.login(c, "operator1")
    AccountStore(api.root).set_disabled("operator1", True)  # as the CLI process does
    assert (await c.get("/api/v1/me")).status_code == 401


_ADMIN_ONLY = [
    ("GET", "/api/v1/admin/users", None),
    ("GET", "/api/v1/admin/users/viewer1", None),
    ("POST", "/api/v1/admin/users", {"name": "eve", "role": "admin", "password": PASSWORD}),
    ("PUT", "/api/v1/admin/users/admin1/password", {"password": "taken over by eve 1"}),
    ("POST", "/api/v1/admin/users/admin1/disable", None),
    ("POST", "/api/v1/admin/users/viewer1/enable", None),
    ("DELETE", "/api/v1/admin/users/admin1", None),
    ("GET", "/api/v1/audit", None),
]


@pytest.mark.parametrize(("method", "path", "body"), _ADMIN_ONLY)
async def test_accounts_api_refuses_everyone_but_admins(
    api: Api, method: str, path: str, body: dict[str, str] | None
) -> None:
    c = api.client
    assert (await c.request(method, path, json=body)).status_code == 401
    for role in ("viewer", "operator"):
        by_token = await c.request(method, path, json=body, headers=_bearer(api.tokens[role]))
        assert by_token.status_code == 403, (role, by_token.text)
        async with api.browser() as b:
            await api.login(b, f"{role}1")
            by_session = await b.request(method, path, json=body, headers=CONSOLE)
            assert by_session.status_code == 403, (role, by_session.text)
    admin1 = api.ctx.accounts.get("admin1")
    assert admin1 is not None and not admin1.disabled and api.ctx.accounts.get("eve") is None
    async with api.browser() as b:
        await api.login(b, "admin1")
        assert (await b.request(method, path, json=body, headers=CONSOLE)).status_code < 300


async def test_a_viewer_session_is_refused_what_operators_do(api: Api) -> None:
    async with api.browser() as b:
        await api.login(b, "viewer1")
        ack = await b.post("/api/v1/alerts/al-1/ack", json={"note": "x"}, headers=CONSOLE)
        command = await b.post(
            "/api/v1/devices/lamp-1/commands",
            json={"name": "set_dim", "args": {"pct": 5}},
            headers=CONSOLE,
        )
        assert ack.status_code == command.status_code == 403
        assert ack.json()["detail"] == "requires role operator (account has viewer)"
        assert (await b.get("/metrics")).status_code == 403


async def test_an_account_changes_its_own_password_and_its_other_sessions_end(api: Api) -> None:
    new = "mật khẩu riêng của tôi 5"
    path = "/api/v1/session/password"
    async with api.browser() as phone, api.browser() as desk:
        await api.login(phone, "viewer1")
        await api.login(desk, "viewer1")
        before = desk.cookies[SESSION_COOKIE]
        wrong = await desk.put(path, json={"current": "not it at all", "new": new}, headers=CONSOLE)
        assert wrong.status_code == 403 and "current password" in wrong.json()["detail"]
        weak = await desk.put(
            path, json={"current": PASSWORD, "new": "viewer1viewer1"}, headers=CONSOLE
        )
        assert weak.status_code == 422 and "username" in weak.json()["detail"]
        bare = await desk.put(path, json={"current": PASSWORD, "new": new})
        assert bare.status_code == 403 and "cross-site" in bare.json()["detail"]
        changed = await desk.put(path, json={"current": PASSWORD, "new": new}, headers=CONSOLE)
        assert changed.status_code == 200, changed.text
        assert desk.cookies[SESSION_COOKIE] != before  # this browser: a new session
        assert (await desk.get("/api/v1/me")).status_code == 200
        assert (await phone.get("/api/v1/me")).status_code == 401  # the other one ended
        assert (await api.login(phone, "viewer1")).status_code == 401
        assert (await api.login(phone, "viewer1", new)).status_code == 200
    entries = [(e.actor, e.result, e.detail.get("own")) for e in reversed(api.audit("user.passwd"))]
    assert entries == [("viewer1", "invalid", True)] * 2 + [("viewer1", "ok", True)]
    assert new not in str([e.as_dict() for e in api.audit("")])


async def test_own_password_change_refuses_tokens_strangers_and_guessers(api: Api) -> None:
    path = "/api/v1/session/password"
    body = {"current": PASSWORD, "new": "a new one for the token 7"}
    assert (await api.client.put(path, json=body)).status_code == 401
    by_token = await api.client.put(path, json=body, headers=_bearer(ADMIN_TOKEN))
    assert by_token.status_code == 403 and "token" in by_token.json()["detail"]
    async with api.browser() as b:
        await api.login(b, "operator1")
        guesses = [
            await b.put(path, json={"current": f"guess {i} of many", "new": body["new"]},
                        headers=CONSOLE)
            for i in range(4)
        ]  # fmt: skip
        assert [g.status_code for g in guesses] == [403, 403, 403, 429]  # limit 3
        assert int(guesses[-1].headers["retry-after"]) >= 1
