"""The OpenAPI export is deterministic and covers the contract's routes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.openapi import export


def test_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "openapi.json"
    export(out)
    text = out.read_text()
    doc = json.loads(text)
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    for path in (
        "/healthz",
        "/readyz",
        "/api/v1/devices",
        "/api/v1/devices/{device}",
        "/api/v1/devices/{device}/latest",
        "/api/v1/devices/{device}/series",
        "/api/v1/devices/{device}/commands",
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}",
        "/api/v1/alerts/{alert_id}/ack",
        "/api/v1/alerts/stream",
    ):
        assert path in doc["paths"], path
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert (
        "text/event-stream"
        in doc["paths"]["/api/v1/alerts/stream"]["get"]["responses"]["200"]["content"]
    )
    assert not list(tmp_path.glob("**/admin-token"))  # rendering writes no token file
    export(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == text


def test_committed_openapi_matches_the_code(tmp_path: Path) -> None:
    """docs/openapi.json is generated; regenerate it with `make openapi`."""
    committed = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
    fresh = tmp_path / "openapi.json"
    export(fresh)
    assert committed.read_text() == fresh.read_text(), (
        "docs/openapi.json is stale: run `make openapi`"
    )
