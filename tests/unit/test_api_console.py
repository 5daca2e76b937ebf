"""The console page carries the site's UTC offset, so it shows the site's local time."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.app import create_app
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

from .api_fakes import FakeDb


@pytest.mark.parametrize(("offset", "expected"), [(None, "420"), (330, "330")])
async def test_index_carries_the_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: int | None, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray deltasense.toml
    extra = {} if offset is None else {"utc_offset_min": offset}
    settings = Settings(var_dir=tmp_path, admin_token=ADMIN_TOKEN, **extra)
    transport = httpx.ASGITransport(app=create_app(settings, influx=FakeDb()))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert f'<html lang="vi" data-utc-offset-min="{expected}">' in page.text
