"""Cursor pagination, aggregates, relative and out-of-range times and CSV export against a
real InfluxDB and uvicorn: what a second client would build on."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import httpx
import msgspec

from deltasense import schema
from deltasense.alerts import AlertEvent, Message
from deltasense.reasons import Reason
from deltasense.settings import Settings

from .api_support import ADMIN, influx, reading_line, registry_line, running_api

NOW = int(time.time() * 1000)
T0 = (NOW - 7_200_000) // 600_000 * 600_000  # two hours ago, on a 10-minute boundary
# t_c every minute for 30 min: 10 + (i % 10) → in each 10-minute bucket min 10, max 19,
# mean 14.5, last 19.
READINGS = 30
SAME_MS = NOW - 60_000  # five dead letters share this millisecond (one per reason)


def _alert(n: int, **kw: object) -> AlertEvent:
    base: dict[str, object] = {
        "id": f"pg-{n:04d}",
        "kind": "flood",
        "rule": "street-flood",
        "subject": f"lv{n}",
        "district": "phuong-1",
        "severity": "warning",
        "state": "resolved" if n % 2 else "firing",
        "values": {"level_cm": 12.5},
        "started": NOW - 900_000,
        "updated": NOW - 900_000 + (n // 2) * 1000,  # pairs share `updated`: id breaks ties
        "message": Message(vi="Ngập đường, sâu 12 cm", en='Street "flooding", 12 cm'),
    }
    base.update(kw)
    return msgspec.convert(base, AlertEvent, from_attributes=True)


ALERTS = [_alert(n) for n in range(9)] + [
    _alert(9, message=Message(vi='=HYPERLINK("http://evil")', en="@SUM(A1:A9)")),
]
REASONS = [Reason.NOT_JSON, Reason.SCHEMA, Reason.TOO_LARGE, Reason.BAD_SEQ, Reason.PAST_TS]


async def _seed(settings: Settings) -> None:
    s = settings
    lines = [registry_line(s, "w1", "weather", "phuong-1", T0)]
    lines += [
        reading_line(
            s,
            "w1",
            "weather",
            "phuong-1",
            T0 + i * 60_000,
            t_c=10.0 + i % 10,
            seq=i,
            boot=1,
        )
        for i in range(READINGS)
    ]
    lines += [schema.alert_line(a) for a in ALERTS]
    lines += [schema.deadletter_line(r, "s/t", b"x", f"same ms {r}", SAME_MS) for r in REASONS]
    lines += [
        schema.deadletter_line(Reason.NOT_JSON, "s/t", b"y", f"older {i}", SAME_MS - 1000 * i)
        for i in range(1, 4)
    ]
    async with influx(s) as db:
        await db.write_lines(lines)


async def _follow(api: httpx.AsyncClient, url: str, **params: Any) -> list[Any]:
    pages: list[Any] = []
    response = await api.get(url, params=params, headers=ADMIN)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = response.headers.get("link")
        if link is None:
            return pages
        assert len(pages) < 30
        response = await api.get(link[1 : link.index(">")], headers=ADMIN)


async def test_a_second_client_can_page_aggregate_and_export(settings: Settings) -> None:
    await _seed(settings)
    async with running_api(settings) as api:
        # --- aggregates over 10-minute buckets, relative start ------------------------
        base = {"field": "t_c", "start": str(T0), "end": str(T0 + 1_800_000), "every": "10m"}
        expect = {"min": 10.0, "max": 19.0, "mean": 14.5, "last": 19.0}
        for agg, value in expect.items():
            r = await api.get(
                "/api/v1/devices/w1/series", params={**base, "agg": agg}, headers=ADMIN
            )
            assert r.status_code == 200, r.text
            assert r.json()["aggregate"] == agg
            assert [v for _, v in r.json()["points"]] == [value] * 3, agg
        relative = await api.get(
            "/api/v1/devices/w1/series",
            params={"field": "t_c", "start": "-3h", "end": "now", "every": "1h", "agg": "max"},
            headers=ADMIN,
        )
        assert relative.status_code == 200, relative.text
        assert 19.0 in [v for _, v in relative.json()["points"]]

        # --- the two times that once reached the database as 500 and 503 ---------------
        for params in (
            {"start": "-9999999999999999"},
            {"start": "0001-01-01T00:00:00Z", "end": "0001-01-02T00:00:00Z"},
        ):
            r = await api.get(
                "/api/v1/devices/w1/series", params={"field": "t_c", **params}, headers=ADMIN
            )
            assert r.status_code == 422, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert "out of range" in r.json()["detail"]

        # --- series pages keep the first page's range ---------------------------------
        pages = await _follow(
            api, "/api/v1/devices/w1/series", **{**base, "every": "5m", "limit": 4}
        )
        assert [len(p["points"]) for p in pages] == [4, 2]
        values = [v for p in pages for _, v in p["points"]]
        assert values == [12.0, 17.0] * 3  # 5-minute means of 10..14 and 15..19

        # --- alert history, every alert once, ties on `updated` broken by id ----------
        pages = await _follow(api, "/api/v1/alerts", state="all", limit=3)
        assert [len(p) for p in pages] == [3, 3, 3, 1]
        ids = [a["id"] for p in pages for a in p]
        assert sorted(ids) == sorted(a.id for a in ALERTS) and len(set(ids)) == len(ids)
        ours = [(a["updated"], a["id"]) for p in pages for a in p]
        assert ours == sorted(ours, reverse=True)
        resolved = await _follow(api, "/api/v1/alerts", state="resolved", limit=2)
        assert sum(len(p) for p in resolved) == 5

        # --- dead letters: five in one millisecond, then three older ones -------------
        pages = await _follow(api, "/api/v1/deadletters", limit=2)
        details = [d["detail"] for p in pages for d in p]
        assert len(details) == 8 and len(set(details)) == 8, details
        assert details[5:] == ["older 1", "older 2", "older 3"]

        # --- CSV export -----------------------------------------------------------------
        r = await api.get(
            "/api/v1/devices/w1/series", params={**base, "format": "csv"}, headers=ADMIN
        )
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0] == ["time", "ts_ms", "t_c"]
        assert [float(row[2]) for row in rows[1:]] == [14.5] * 3
        r = await api.get(
            "/api/v1/alerts",
            params={"state": "all", "limit": 1000},
            headers={**ADMIN, "Accept": "text/csv"},
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(r.text)))
        assert len(table) == len(ALERTS)
        by_id = {row["id"]: row for row in table}
        assert by_id["pg-0001"]["message_en"] == 'Street "flooding", 12 cm'
        assert by_id["pg-0009"]["message_vi"] == '\'=HYPERLINK("http://evil")'
        assert by_id["pg-0009"]["message_en"] == "'@SUM(A1:A9)"
        assert by_id["pg-0001"]["ended"] == "" and by_id["pg-0001"]["state"] == "resolved"

        # --- what a client that guessed gets ------------------------------------------
        r = await api.get("/api/v1/alerts", params={"state": "all", "offset": 3}, headers=ADMIN)
        assert r.status_code == 422 and "offset" in r.json()["detail"]


async def test_silences_and_accounts_page_too(settings: Settings) -> None:
    """The lists other modules own (alarm workflow, accounts) take the same cursor."""
    async with running_api(settings) as api:
        made = []
        for i in range(5):
            r = await api.post(
                "/api/v1/silences",
                json={"matchers": {"subject": f"lv{i}"}, "duration_s": 600 + i},
                headers=ADMIN,
            )
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        pages = await _follow(api, "/api/v1/silences", state="all", limit=2)
        assert [len(p) for p in pages] == [2, 2, 1]
        ids = [s["id"] for p in pages for s in p]
        assert sorted(ids) == sorted(made) and len(set(ids)) == 5
        assert ids == [s["id"] for s in (await api.get("/api/v1/silences", headers=ADMIN)).json()]

        for name in ("an.le", "binh.tran", "chi.pham"):
            r = await api.post(
                "/api/v1/admin/users",
                json={"name": name, "role": "viewer", "password": "sông Bạc Liêu mùa nước nổi"},
                headers=ADMIN,
            )
            assert r.status_code == 201, r.text
        pages = await _follow(api, "/api/v1/admin/users", limit=2)
        assert [[a["name"] for a in p] for p in pages] == [["an.le", "binh.tran"], ["chi.pham"]]
        forged = await api.get("/api/v1/admin/users", params={"cursor": "x.y"}, headers=ADMIN)
        assert forged.status_code == 422 and forged.json()["errors"][0]["loc"] == [
            "query",
            "cursor",
        ]
