"""The InfluxDB client's reading of query answers (no server: httpx MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from deltasense.influx import InfluxClient, InfluxRequestError


def client_answering(body: dict[str, object]) -> InfluxClient:
    client = InfluxClient(url="http://influx.invalid", database="d")
    client._http = httpx.AsyncClient(
        base_url="http://influx.invalid",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=body)),
    )
    return client


SERIES = {"name": "water", "columns": ["time", "level_cm"], "values": [[1, 2.0]]}


async def test_a_complete_answer_gives_its_rows() -> None:
    async with client_answering({"results": [{"statement_id": 0, "series": [SERIES]}]}) as db:
        (series,) = await db.query("SELECT * FROM water")
    assert series.rows() == [{"time": 1, "level_cm": 2.0}]


async def test_a_result_cut_by_max_row_limit_is_an_error_not_a_short_answer() -> None:
    body = {"results": [{"statement_id": 0, "series": [SERIES], "partial": True}]}
    async with client_answering(body) as db:
        with pytest.raises(InfluxRequestError, match="max-row-limit"):
            await db.query("SELECT * FROM water")


async def test_statement_errors_are_raised() -> None:
    body = {"results": [{"statement_id": 0, "error": "database not found: d"}]}
    async with client_answering(body) as db:
        with pytest.raises(InfluxRequestError, match="database not found"):
            await db.query("SELECT * FROM water")
