"""Property tests over the OpenAPI document (schemathesis): the real app, served by
uvicorn on a real InfluxDB and Mosquitto, answers every generated request — valid
and invalid ones — without a 500, every error as application/problem+json, a 503 only
where the operation declares one (the notifier or the broker admin is absent here).

Then the series route on a real device with generated times (relative, epoch ms of any
size, ISO-8601 of any year), widths, aggregates and page sizes: a 200 or a 422, never
anything else.  A bounded number of examples per operation keeps it short in `make test`;
``DELTASENSE_FUZZ_EXAMPLES=500`` runs a longer search."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from api.app import create_app
from deltasense import schema
from deltasense.alerts import AlertEvent, Message
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

from .api_support import influx, reading_line, registry_line

EXAMPLES = int(os.environ.get("DELTASENSE_FUZZ_EXAMPLES", "8"))
# Never ends by design (SSE); its parameters are tested in test_api_alerts.
SKIP = {("GET", "/api/v1/alerts/stream")}
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Half the generated cases address these instead of a random id, so the routes reach
# the database with generated times, widths and aggregates (where the 500 once was).
REAL = {"device": "w1", "alert_id": "al-fuzz-1"}


def _alert(now: int) -> AlertEvent:
    return AlertEvent(
        id=REAL["alert_id"], kind="flood", rule="street-flood", subject="w1",
        district="phuong-1", severity="warning", state="firing", risk_level=0,
        values={"level_cm": 20.0}, started=now, updated=now, message=Message(vi="x", en="x"),
    )  # fmt: skip


def _on_real(case: Any) -> Any:
    for name, value in REAL.items():
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = value
    if isinstance(case.query, dict) and "field" in case.query:
        case.query["field"] = "t_c"  # a field w1 measures: the series reaches InfluxDB
    return case


@schemathesis.serializer("application/toml")
def _toml(ctx: Any, value: Any) -> bytes:  # the routing PUT takes the file as text
    return str(value).encode()


@pytest.fixture
def live_api(settings: Settings) -> Iterator[str]:
    """The app in a uvicorn thread (the generated calls are synchronous); its base URL."""

    async def seed() -> None:
        now = int(time.time() * 1000)
        async with influx(settings) as db:
            await db.write_lines(
                [
                    registry_line(settings, REAL["device"], "weather", "phuong-1", now),
                    reading_line(
                        settings,
                        REAL["device"],
                        "weather",
                        "phuong-1",
                        now,
                        t_c=30.0,
                        seq=1,
                        boot=1,
                    ),
                    schema.alert_line(_alert(now)),
                ]
            )

    asyncio.run(seed())
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.api_port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="fuzz-api", daemon=True)
    thread.start()
    base = settings.api_base_url
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError("the API did not become ready")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


def _property(operation: Any, base: str) -> Any:
    """The property for one operation, as a Hypothesis test to call."""
    declared = set(operation.definition.raw.get("responses", {}))
    generated = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    strategy = st.one_of(generated, generated.map(_on_real))

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    @hypothesis.given(case=strategy)
    def check(case: Any) -> None:
        response = case.call(base_url=base, headers=HEADERS, timeout=10)
        status = response.status_code
        where = f"{case.method} {case.formatted_path} {case.query} -> {status}"
        assert status != 500, f"{where}: {response.text[:300]}"
        if status == 503:
            assert "503" in declared, where
        if status >= 400:
            ctype = response.headers.get("content-type", [""])[0]  # schemathesis: lists
            assert ctype == "application/problem+json", f"{where}: {ctype}"
            assert response.json()["status"] == status, where

    return check


@pytest.mark.timeout(max(120, EXAMPLES * 10))  # about 5 s per example across 45 operations
def test_no_500_on_any_endpoint(live_api: str) -> None:
    doc = httpx.get(f"{live_api}/openapi.json", timeout=5).json()
    schema = schemathesis.openapi.from_dict(doc)
    checked: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        _property(operation, live_api)()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert len(checked) >= 40, checked
    _series_times(live_api)()


# Times as a client writes them (and as a hostile one does): relative, epoch ms of any
# size, ISO-8601 of any year and offset, now.
_TIMES = st.one_of(
    st.just("now"),
    st.builds(lambda n, u: f"-{n}{u}", st.integers(0, 10**8), st.sampled_from("smhdwx")),
    st.integers(-(10**17), 10**17).map(str),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
)


def _series_times(base: str) -> Any:
    @hypothesis.settings(
        max_examples=EXAMPLES * 5,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    @hypothesis.given(
        start=st.none() | _TIMES,
        end=st.none() | _TIMES,
        every=st.none()
        | st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**7), st.sampled_from("smhdw")),
        agg=st.none() | st.sampled_from(["mean", "min", "max", "last"]),
        limit=st.none() | st.integers(1, 10_000),
        csv=st.booleans(),
    )
    def check(
        start: str | None, end: str | None, every: str | None, agg: str | None, limit: int | None,
        csv: bool,
    ) -> None:  # fmt: skip
        params = {"field": "t_c", "start": start, "end": end, "every": every, "agg": agg}
        params |= {"limit": limit, "format": "csv" if csv else None}
        query = {k: v for k, v in params.items() if v is not None}
        r = httpx.get(f"{base}/api/v1/devices/w1/series", params=query, headers=HEADERS, timeout=10)
        assert r.status_code in (200, 422), (query, r.status_code, r.text[:300])
        if r.status_code == 422:
            assert r.headers["content-type"] == "application/problem+json", query

    return check
