"""The supervisor's report (var/run/stack.json): written atomically, read by
`deltasense status` and the API's /system/services (no services)."""

from __future__ import annotations

from pathlib import Path

import httpx

from api.app import create_app
from deltasense import supervision
from deltasense.settings import Settings
from deltasense.supervision import ServiceState, StackState
from tests.support import ADMIN_TOKEN

from .api_fakes import FakeDb


def _state(stack: str = "up", ingest: str = "up") -> StackState:
    return StackState(
        state=stack,
        pid=123,
        services=[
            ServiceState(name="mosquitto", state="up", pid=10),
            ServiceState(name="ingest", state=ingest, pid=None, restarts=2, last_exit=-9),
        ],
    )


def test_report_round_trips_and_names_the_degraded(tmp_path: Path) -> None:
    supervision.write_state(tmp_path, _state(ingest="restarting"))
    back = supervision.read_state(tmp_path)
    assert back == _state(ingest="restarting")
    assert back is not None and back.degraded() == ["ingest"]
    assert list((tmp_path / "run").iterdir()) == [tmp_path / "run" / "stack.json"]


def test_nothing_is_degraded_unless_the_stack_is_up(tmp_path: Path) -> None:
    assert _state(stack="stopping", ingest="stopped").degraded() == []
    assert _state().degraded() == []


def test_a_service_up_again_after_a_crash_is_recovered_for_a_minute() -> None:
    now = 1_000_000.0
    state = _state()
    state.services[1].since = now - 5  # ingest: up again 5 s ago, after 2 restarts
    assert state.recovered(now) == ["ingest"]  # mosquitto never crashed
    assert state.recovered(now + supervision.RECOVERED_FOR_S) == []
    assert state.recovered(now - 10) == []  # a clock that went back says nothing
    state.services[1].state = "restarting"
    assert state.recovered(now) == [] and state.degraded() == ["ingest"]
    assert _state(stack="stopping").recovered(now) == []


def test_a_missing_or_broken_report_reads_as_none(tmp_path: Path) -> None:
    assert supervision.read_state(tmp_path) is None
    path = supervision.state_path(tmp_path)
    path.parent.mkdir(parents=True)
    for junk in (b"{not json", b'{"state": "up"}', b"[]", b'{"state": 1, "pid": "x"}'):
        path.write_bytes(junk)
        assert supervision.read_state(tmp_path) is None


async def test_api_reports_degraded_services_behind_a_token(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, admin_token=ADMIN_TOKEN)
    app = create_app(settings, influx=FakeDb())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        assert (await c.get("/api/v1/system/services")).status_code == 401
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        none = (await c.get("/api/v1/system/services", headers=auth)).json()
        assert none == {
            "supervised": False,
            "state": None,
            "services": [],
            "degraded": [],
            "recovered": [],
        }
        supervision.write_state(tmp_path, _state(ingest="restarting"))
        body = (await c.get("/api/v1/system/services", headers=auth)).json()
    assert body["supervised"] is True and body["state"] == "up"
    assert body["degraded"] == ["ingest"] and body["recovered"] == []
    ingest = body["services"][1]
    assert ingest == {
        "name": "ingest",
        "state": "restarting",
        "pid": None,
        "restarts": 2,
        "last_exit": -9,
        "since": 0.0,
    }
