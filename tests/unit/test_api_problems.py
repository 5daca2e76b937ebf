"""One error shape (RFC 9457 problem details) for every error, unknown query parameters
refused, cursor pagination, relative and bounded times, aggregates and CSV: the app with
its real routing over a fake database (no services)."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api import csvout
from api.app import create_app
from api.auth import add_token
from api.paging import cursor_key, decode_cursor, encode_cursor
from deltasense.influx import Series
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

from .api_fakes import FakeDb

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROBLEM_KEYS = {"type", "title", "status", "detail"}
DEVICES = {f"d{i:02d}": "weather" for i in range(7)} | {"lamp1": "lamp"}


class SeriesDb(FakeDb):
    """Registry as FakeDb; every reading query answers one bucket per 5 min."""

    async def query(
        self, q: str, *, params: Mapping[str, Any] | None = None, epoch: str = "ms"
    ) -> list[Series]:
        found = await super().query(q, params=params, epoch=epoch)
        if "GROUP BY time(" in q:
            return [Series(name="x", tags={}, columns=["time", "value"], values=[[0, -3.5]])]
        return found


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.chdir(tmp_path)
    settings = Settings(var_dir=tmp_path, admin_token=ADMIN_TOKEN, site="s1")
    app = create_app(settings, influx=SeriesDb(DEVICES))

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


def _is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status and body["type"] == "about:blank"
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# --- one error shape ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/api/v1/devices", {}, 401),
        ("GET", "/api/v1/devices", {"headers": {"Authorization": "Bearer nope"}}, 401),
        ("GET", "/api/v1/devices/nope", {"headers": AUTH}, 404),
        ("GET", "/no/such/route", {}, 404),
        ("DELETE", "/api/v1/devices", {"headers": AUTH}, 405),
        ("GET", "/api/v1/devices?access_token=x", {}, 400),
        (
            "PUT",
            "/api/v1/admin/notifier/routing",
            {"headers": {**AUTH, "Content-Type": "application/json"}, "content": b"{}"},
            415,
        ),
        (
            "PUT",
            "/api/v1/admin/notifier/routing",
            {
                "headers": {**AUTH, "Content-Type": "application/toml"},
                "content": b"#" * 1_100_000,
            },
            413,
        ),
        ("GET", "/boom", {}, 500),
    ],
)
async def test_every_error_is_a_problem(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    body = _is_problem(await client.request(method, path, **kwargs), status)
    assert "errors" not in body  # only a refused request (422) lists errors
    assert "a bug" not in body["detail"]  # a 500 never leaks the exception


async def test_403_and_429_are_problems(app: FastAPI, tmp_path: Path) -> None:
    viewer = add_token(tmp_path, "v", "viewer")
    transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        denied = await c.get("/api/v1/audit", headers={"Authorization": f"Bearer {viewer}"})
        _is_problem(denied, 403)
        for _ in range(12):
            last = await c.get("/api/v1/devices", headers={"Authorization": "Bearer wrong"})
        _is_problem(last, 429)
        assert int(last.headers["retry-after"]) >= 1


async def test_validation_422_is_a_problem_naming_each_parameter(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/api/v1/alerts", params={"limit": "0", "state": "open"}, headers=AUTH
    )
    body = _is_problem(response, 422)
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert locs == {("query", "limit"), ("query", "state")}
    assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])  # no echoed input
    assert "query.limit" in body["detail"]
    bad_body = await client.post("/api/v1/devices/d00/commands", json={"ttl_s": 0}, headers=AUTH)
    assert {tuple(e["loc"])[:2] for e in _is_problem(bad_body, 422)["errors"]} >= {
        ("body", "name"),
        ("body", "ttl_s"),
    }
    param = await client.get("/api/v1/devices/d00/series", params={"field": "x!"}, headers=AUTH)
    assert "must match" in _is_problem(param, 422)["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/alerts", {"offset": "50"}),
        ("/api/v1/devices", {"page": "2"}),
        ("/api/v1/audit", {"sort": "id"}),
        ("/api/v1/me", {"x": "1"}),
        ("/api/v1/devices/d00/series", {"field": "t_c", "aggregate": "max"}),
    ],
)
async def test_unknown_query_parameters_are_refused(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    body = _is_problem(await client.get(path, params=params, headers=AUTH), 422)
    name = next(k for k in params if k != "field")
    assert body["errors"] == [
        {"loc": ["query", name], "msg": body["detail"], "type": "value_error"}
    ]
    assert f"unknown query parameter {name!r}" in body["detail"]
    assert "limit" in body["detail"] or path.endswith(("/me", "/series"))


# --- pagination --------------------------------------------------------------------
async def _pages(client: httpx.AsyncClient, url: str) -> list[list[dict[str, Any]]]:
    pages = []
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url, headers=AUTH)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = response.headers.get("link")
        if link is None:
            assert "x-next-cursor" not in response.headers
            next_url = None
        else:
            assert link.endswith('>; rel="next"')
            next_url = link[1 : link.index(">")]
            assert response.headers["x-next-cursor"] in next_url
        assert len(pages) < 20
    return pages


async def test_devices_page_by_cursor(client: httpx.AsyncClient) -> None:
    pages = await _pages(client, "/api/v1/devices?limit=3")
    assert [len(p) for p in pages] == [3, 3, 2]
    ids = [d["device"] for p in pages for d in p]
    assert ids == sorted(DEVICES)  # each once, in order
    everything = (await client.get("/api/v1/devices", headers=AUTH)).json()
    assert [d["device"] for d in everything] == ids  # the default is still every device
    filtered = await _pages(client, "/api/v1/devices?kind=weather&limit=4")
    assert [len(p) for p in filtered] == [4, 3]


async def test_a_bad_cursor_is_422_never_500(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/v1/devices?limit=2", headers=AUTH)
    cursor = first.headers["x-next-cursor"]
    data, mac = cursor.split(".")
    tampered = [
        cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
        data[:-1] + ("A" if data[-1] != "A" else "B") + "." + mac,
        "garbage",
        "a.b.c",
        "%%%.%%%",
        "",
    ]
    for bad in tampered:
        response = await client.get("/api/v1/devices", params={"cursor": bad}, headers=AUTH)
        body = _is_problem(response, 422)
        assert body["errors"][0]["loc"] == ["query", "cursor"], bad
    other_filters = await client.get(
        "/api/v1/devices", params={"cursor": cursor, "kind": "weather"}, headers=AUTH
    )
    assert "other filters" in _is_problem(other_filters, 422)["detail"]
    other_route = await client.get("/api/v1/alerts", params={"cursor": cursor}, headers=AUTH)
    assert "another list" in _is_problem(other_route, 422)["detail"]
    series = "/api/v1/devices/d00/series?field=t_c&start=0&end=3600000&every=5m&limit=2"
    series_cursor = (await client.get(series, headers=AUTH)).headers["x-next-cursor"]
    other_device = await client.get(
        "/api/v1/devices/d01/series",
        params={
            "field": "t_c",
            "start": "0",
            "end": "3600000",
            "every": "5m",
            "cursor": series_cursor,
        },
        headers=AUTH,
    )
    assert "another list" in _is_problem(other_device, 422)["detail"]
    ok = await client.get("/api/v1/devices", params={"cursor": cursor, "limit": 1}, headers=AUTH)
    assert ok.status_code == 200 and [d["device"] for d in ok.json()] == ["d02"]


def test_a_cursor_is_signed_and_typed() -> None:
    key = cursor_key("k" * 40)
    text = encode_cursor(key, "/x", "f", [5, "a"])
    assert decode_cursor(key, text, "/x", "f", (int, str)) == [5, "a"]
    with pytest.raises(Exception, match="not valid"):
        decode_cursor(cursor_key("other" * 8), text, "/x", "f", (int, str))
    with pytest.raises(Exception, match="not valid"):  # signed, but not the expected shape
        decode_cursor(key, text, "/x", "f", (int, int))


async def test_series_pages_keep_the_first_range(client: httpx.AsyncClient) -> None:
    url = "/api/v1/devices/d00/series?field=t_c&start=-1h&every=5m&limit=5"
    pages = await _pages(client, url)
    assert [len(p["points"]) for p in pages][:2] == [5, 5]
    assert 2 <= len(pages[2]["points"]) <= 3  # 12 or 13 five-minute buckets touch an hour
    starts = [pt[0] for p in pages for pt in p["points"]]
    assert starts == sorted(set(starts)) and all(
        b - a == 300_000 for a, b in itertools.pairwise(starts)
    )
    assert len({(p["start"], p["end"]) for p in pages}) == 1


# --- times -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"start": "-9999999999999999"},  # once a 500 (ms_to_rfc3339 overflowed)
        {"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"},  # once a 503
        {"end": "9999-12-31T23:59:59+14:00"},
        {"start": "-1"},
        {"start": "99999999999999999"},
        {"start": "-99999999w"},
        {"start": "-0h"},
        {"start": "-24x"},
        {"start": "now-1h"},
    ],
)
async def test_out_of_range_or_malformed_times_are_422(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/devices/d00/series", params={"field": "t_c", **params}, headers=AUTH
    )
    body = _is_problem(response, 422)
    assert body["errors"][0]["loc"] in (["query", "start"], ["query", "end"]), body
    audit = await client.get(
        "/api/v1/audit",
        params={"since" if "start" in params else "until": next(iter(params.values()))},
        headers=AUTH,
    )
    _is_problem(audit, 422)


async def test_relative_times(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/devices/d00/series",
        params={"field": "t_c", "start": "-7d", "end": "now", "every": "1d"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["end"] - body["start"] == 7 * 86_400_000
    assert len(body["points"]) in (7, 8)


# --- aggregates --------------------------------------------------------------------
@pytest.mark.parametrize("agg", ["mean", "min", "max", "last"])
async def test_aggregates(app: FastAPI, client: httpx.AsyncClient, agg: str) -> None:
    response = await client.get(
        "/api/v1/devices/d00/series", params={"field": "t_c", "agg": agg}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["aggregate"] == agg
    db = app.state.ctx.db
    assert f'SELECT {agg}("t_c")' in db.queries[-1][0]


async def test_a_boolean_takes_last_only(client: httpx.AsyncClient) -> None:
    ok = await client.get("/api/v1/devices/lamp1/series", params={"field": "on"}, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["aggregate"] == "last"
    refused = await client.get(
        "/api/v1/devices/lamp1/series", params={"field": "on", "agg": "max"}, headers=AUTH
    )
    assert "boolean" in _is_problem(refused, 422)["detail"]


# --- CSV ---------------------------------------------------------------------------
def test_csv_quotes_and_defuses_formulas() -> None:
    text = csvout.render(
        ("a", "b", "c"),
        [
            ('=HYPERLINK("http://x")', "+1", -3.5),
            ("@SUM(A1)", "-2+3", 7),
            ('say "hi", then\nleave', "\tx", None),
            ("plain", True, 0.1),
        ],
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [
        ["a", "b", "c"],
        ['\'=HYPERLINK("http://x")', "'+1", "-3.5"],  # our numbers stay numbers
        ["'@SUM(A1)", "'-2+3", "7"],
        ['say "hi", then\nleave', "'\tx", ""],
        ["plain", "true", "0.1"],
    ]
    assert text.endswith("\r\n")


@pytest.mark.parametrize(
    "how", [{"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}]
)
async def test_series_as_csv(client: httpx.AsyncClient, how: dict[str, Any]) -> None:
    params = {"field": "t_c", "start": "0", "end": "600000", "every": "5m"}
    response = await client.get(
        "/api/v1/devices/d00/series",
        params={**params, **how.get("params", {})},
        headers={**AUTH, **how.get("headers", {})},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="d00-t_c.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows == [
        ["time", "ts_ms", "t_c"],
        ["1970-01-01T00:00:00.000Z", "0", "-3.5"],
        ["1970-01-01T00:05:00.000Z", "300000", ""],
    ]


async def test_format_json_wins_over_accept(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/devices/d00/series",
        params={"field": "t_c", "format": "json"},
        headers={**AUTH, "Accept": "text/csv"},
    )
    assert response.headers["content-type"] == "application/json"
    assert (
        await client.get("/api/v1/alerts", params={"format": "xml"}, headers=AUTH)
    ).status_code == 422


# --- OpenAPI -----------------------------------------------------------------------
def test_openapi_declares_problems_and_auth(app: FastAPI) -> None:
    doc = app.openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert set(doc["components"]["schemas"]["Problem"]["required"]) == PROBLEM_KEYS
    protected = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            public = not path.startswith("/api/v1/") or path == "/api/v1/session"  # login
            assert bool(op.get("security")) != public, path
            if op.get("security"):
                protected += 1
                assert {"401", "403", "422"} <= set(responses), (method, path)
            for code, response in responses.items():
                if code[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (path, code)
    assert protected >= 29
    paged = doc["paths"]["/api/v1/alerts"]["get"]["responses"]["200"]["headers"]
    assert {"Link", "X-Next-Cursor"} == set(paged)
