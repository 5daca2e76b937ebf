"""Property tests over the OpenAPI document (schemathesis): the real app, served by
uvicorn on a real InfluxDB and Mosquitto, answers every generated request — valid
and invalid ones — without a 500, every error as application/problem+json, a 503 only
where the operation declares one (the notifier or the broker admin is absent here).

A bounded number of examples per operation keeps it short in `make test`;
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
from deltasense.settings import Settings
from tests.support import ADMIN_TOKEN

from .api_support import influx, reading_line, registry_line

EXAMPLES = int(os.environ.get("DELTASENSE_FUZZ_EXAMPLES", "8"))
# Never ends by design (SSE); its parameters are tested in test_api_alerts.
SKIP = {("GET", "/api/v1/alerts/stream")}
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


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
                    registry_line(settings, "w1", "weather", "phuong-1", now),
                    reading_line(
                        settings, "w1", "weather", "phuong-1", now, t_c=30.0, seq=1, boot=1
                    ),
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
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

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
