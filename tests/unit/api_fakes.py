"""A stand-in for InfluxDB in API unit tests: canned registry, records every query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deltasense.influx import Series


class FakeDb:
    """Knows the devices in ``registry`` (device → kind); everything else is empty."""

    def __init__(self, registry: Mapping[str, str] | None = None) -> None:
        self.registry = dict(registry or {})
        self.queries: list[tuple[str, dict[str, Any]]] = []

    async def ping(self) -> bool:
        return True

    async def query(
        self, q: str, *, params: Mapping[str, Any] | None = None, epoch: str = "ms"
    ) -> list[Series]:
        bound = dict(params or {})
        self.queries.append((q, bound))
        if 'FROM "devices"' not in q:
            return []
        wanted = bound.get("device")
        return [
            Series(
                name="devices",
                tags={"device": device},
                columns=["time", "site", "district", "kind", "last_seen"],
                values=[[1, bound["site"], "d1", kind, 1]],
            )
            for device, kind in self.registry.items()
            if wanted in (None, device)
        ]

    async def write_lines(self, lines: Sequence[str], *, precision: str = "ms") -> None:
        raise AssertionError("unit tests do not write")


class UntouchableDb(FakeDb):
    """Fails the test on any query: for requests that must be refused before the database."""

    async def query(
        self, q: str, *, params: Mapping[str, Any] | None = None, epoch: str = "ms"
    ) -> list[Series]:
        raise AssertionError(f"the database was queried: {q}")
