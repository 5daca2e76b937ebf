"""The notifier's /deliveries pages: newest first, every message once across pages
(equal creation times included), the admin token, hostile paging parameters."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from deltasense.routing import Routing
from deltasense.settings import Settings
from notifier.outbox import Message, Outbox, message_key
from notifier.service import Notifier
from notifier.web import create_app

ADMIN = "admin-token-for-the-deliveries-Ab1Cd2Ef3"


def message(n: int, alert: str = "al-1") -> Message:
    key = message_key("duty", "telegram", "42", "repeat", [(alert, n)])
    return Message(key, "duty", "telegram", "42", "repeat", (alert,), {"title": "t", "text": "x"})


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(tmp_path, filled=False) as http:
        yield http


@pytest.fixture
async def filled(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(tmp_path, filled=True) as http:
        yield http


@contextlib.asynccontextmanager
async def _client(tmp_path: Path, *, filled: bool) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(var_dir=tmp_path, dev_insecure=True, admin_token=ADMIN)
    outbox = Outbox(tmp_path / "o.sqlite3")
    # 123 messages of one alert, three sharing each creation time, and one of another.
    for t in range(41 if filled else 0):
        outbox.enqueue([message(3 * t + i) for i in range(3)], now_ms=1_000 + t)
    if filled:
        outbox.enqueue([replace(message(0, "al-2"), alert_ids=("al-2",))], now_ms=5)
    notifier = Notifier(settings, Routing(), outbox, {})
    transport = httpx.ASGITransport(app=create_app(notifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://n") as http:
        yield http
    outbox.close()


async def test_pages_cover_every_message_once_newest_first(filled: httpx.AsyncClient) -> None:
    client = filled
    auth = {"Authorization": f"Bearer {ADMIN}"}
    seen: list[tuple[int, str]] = []
    params: dict[str, str] = {"alert_id": "al-1", "limit": "50"}
    pages = 0
    while True:
        r = await client.get("/deliveries", params=params, headers=auth)
        assert r.status_code == 200
        body = r.json()
        pages += 1
        seen += [(m["created"], m["key"]) for m in body["messages"]]
        if body["next"] is None:
            break
        params = {"alert_id": "al-1", "limit": "50", "before": body["next"]}
    assert pages == 3 and len(seen) == len(set(seen)) == 123
    assert seen == sorted(seen, reverse=True)
    whole = (await client.get("/deliveries", headers=auth)).json()  # up to 500 a page
    assert len(whole["messages"]) == 124 and whole["next"] is None
    other = (await client.get("/deliveries", params={"alert_id": "al-2"}, headers=auth)).json()
    assert [m["alert_ids"] for m in other["messages"]] == [["al-2"]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "-1"},
        {"limit": "ten"},
        {"before": "x"},
        {"before": "12:ds-abc"},
        {"before": "1:ds-" + "0" * 32 + "' OR 1=1 --"},
        {"alert_id": ""},
    ],
)
async def test_hostile_paging_is_refused_by_name(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    r = await client.get("/deliveries", params=params, headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 422
    assert r.json()["detail"].split(":")[0] in params


async def test_deliveries_need_the_admin_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/deliveries")).status_code == 401
    r = await client.get("/deliveries", headers={"Authorization": "Bearer " + "x" * 40})
    assert r.status_code == 401
