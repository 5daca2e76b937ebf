"""Read (and a few writes) against InfluxDB in the layout of :mod:`deltasense.schema`.

Values always travel as bound parameters; the only identifiers put into query
text are the schema's names and measurement and field names that were validated
against the contract first, and they all go through :func:`quote_ident`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from api.params import ms_to_rfc3339
from deltasense import schema
from deltasense.alerts import AlertEvent
from deltasense.contract import Kind
from deltasense.influx import Series, quote_ident

_LOG = logging.getLogger(__name__)
_q = quote_ident

# Reading columns that are no measurement: bookkeeping, tags and the time.
_NOT_MEASURED = schema.READING_BOOKKEEPING | frozenset(schema.READING_TAGS) | {"time"}


class Database(Protocol):
    """What the API needs from :class:`deltasense.influx.InfluxClient` (fakes implement it)."""

    async def ping(self) -> bool: ...

    async def query(
        self, q: str, *, params: Mapping[str, Any] | None = None, epoch: str = "ms"
    ) -> list[Series]: ...

    async def write_lines(self, lines: Sequence[str], *, precision: str = "ms") -> None: ...


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    kind: Kind
    site: str
    district: str
    last_seen: int | None
    status: str = "unknown"
    status_ts: int | None = None
    lat: float | None = None
    lon: float | None = None
    fw: str | None = None


@dataclass(frozen=True)
class LatestReading:
    device: str
    kind: Kind
    ts: int
    fields: dict[str, float | int | bool]
    seq: int | None = None
    boot: int | None = None
    hist: bool = False
    ts_from_platform: bool = False
    qc: list[str] = field(default_factory=list)


def _latest_by_device(series: list[Series]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in series:
        device = s.tags.get(schema.DEVICE)
        rows = s.rows()
        if device and rows:
            out[device] = rows[0]
    return out


def _latest_per_device(columns: Sequence[str], measurement: str, where: str) -> str:
    # Only schema names reach the query text, quoted; values are bound ($site, $device).
    return (
        f"SELECT {', '.join(map(_q, columns))} FROM {_q(measurement)} "  # noqa: S608
        f"WHERE {_q(schema.SITE)} = $site{where} "
        f"GROUP BY {_q(schema.DEVICE)} ORDER BY time DESC LIMIT 1"
    )


def _device_filter(device: str | None) -> tuple[str, dict[str, Any]]:
    if device is None:
        return "", {}
    return f" AND {_q(schema.DEVICE)} = $device", {"device": device}


async def list_devices(db: Database, site: str, *, device: str | None = None) -> list[DeviceInfo]:
    """Registry joined with each device's latest status and meta; sorted by device id."""
    where, params = _device_filter(device)
    params["site"] = site
    registry, status, meta = await asyncio.gather(
        db.query(_latest_per_device(schema.REGISTRY_FIELDS, schema.DEVICES, where), params=params),
        db.query(_latest_per_device([schema.STATE], schema.STATUS, where), params=params),
        db.query(
            _latest_per_device([schema.LAT, schema.LON, schema.FW], schema.META, where),
            params=params,
        ),
    )
    statuses = _latest_by_device(status)
    metas = _latest_by_device(meta)
    out: list[DeviceInfo] = []
    for name, row in sorted(_latest_by_device(registry).items()):
        try:
            kind = Kind(str(row.get(schema.KIND)))
        except ValueError:
            _LOG.warning("registry entry for %s has unknown kind %r", name, row.get(schema.KIND))
            continue
        st = statuses.get(name, {})
        mt = metas.get(name, {})
        last_seen = row.get(schema.LAST_SEEN)
        fw = mt.get(schema.FW)
        out.append(
            DeviceInfo(
                device=name,
                kind=kind,
                site=str(row.get(schema.SITE) or site),
                district=str(row.get(schema.DISTRICT) or ""),
                last_seen=int(last_seen) if last_seen is not None else None,
                status=str(st.get(schema.STATE) or "unknown"),
                status_ts=st.get("time"),
                lat=_float_or_none(mt.get(schema.LAT)),
                lon=_float_or_none(mt.get(schema.LON)),
                fw=str(fw) if fw is not None else None,
            )
        )
    return out


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def get_device(db: Database, site: str, device: str) -> DeviceInfo | None:
    found = await list_devices(db, site, device=device)
    return found[0] if found else None


async def latest_reading(db: Database, info: DeviceInfo) -> LatestReading | None:
    series = await db.query(
        # The measurement is a Kind enum value; the device is bound.
        f"SELECT * FROM {_q(info.kind.value)} WHERE {_q(schema.DEVICE)} = $device "  # noqa: S608
        "ORDER BY time DESC LIMIT 1",
        params={"device": info.device},
    )
    rows = series[0].rows() if series else []
    if not rows:
        return None
    row = rows[0]
    fields = {k: v for k, v in row.items() if k not in _NOT_MEASURED and v is not None}
    qc = row.get(schema.QC)
    return LatestReading(
        device=info.device,
        kind=info.kind,
        ts=int(row["time"]),
        fields=fields,
        seq=row.get(schema.SEQ),
        boot=row.get(schema.BOOT),
        hist=row.get(schema.HIST) is True,
        ts_from_platform=row.get(schema.TS_PLATFORM) is True,
        qc=[q for q in str(qc).split(",") if q] if qc else [],
    )


async def series(
    db: Database,
    info: DeviceInfo,
    field_name: str,
    *,
    start_ms: int,
    end_ms: int,
    every_s: int,
    aggregate: str,
) -> dict[int, Any]:
    """Bucket start (ms) → aggregate of ``field_name`` over [start, end).

    ``field_name`` and ``aggregate`` were validated by the caller; every_s is an int.
    """
    if aggregate not in {"mean", "min", "max", "last"}:
        raise ValueError(f"unsupported aggregate {aggregate!r}")
    # Identifiers: a checked aggregate, a contract field name and a Kind value, all
    # quoted; the bucket width is an int; device and times are bound parameters.
    q = (
        f"SELECT {aggregate}({_q(field_name)}) AS value "  # noqa: S608
        f"FROM {_q(info.kind.value)} "
        f"WHERE {_q(schema.DEVICE)} = $device AND time >= $start AND time < $end "
        f"GROUP BY time({int(every_s)}s) fill(none)"
    )
    result = await db.query(
        q,
        params={
            "device": info.device,
            "start": ms_to_rfc3339(start_ms),
            "end": ms_to_rfc3339(end_ms),
        },
    )
    return {int(r["time"]): r["value"] for s in result for r in s.rows()}


# --- alerts -------------------------------------------------------------------------
_LAST_BODY: Final = f"SELECT last({_q(schema.BODY)}) AS {_q(schema.BODY)} FROM {_q(schema.ALERTS)}"  # noqa: S608


async def list_alerts(
    db: Database, *, kind: str | None = None, district: str | None = None
) -> list[AlertEvent]:
    """Latest state of every alert (optionally one kind/district), newest first."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    if kind is not None:
        conds.append(f"{_q(schema.KIND)} = $kind")
        params["kind"] = kind
    if district is not None:
        conds.append(f"{_q(schema.DISTRICT)} = $district")
        params["district"] = district
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    result = await db.query(
        # ``where`` holds only schema names; the values are bound.
        f"{_LAST_BODY}{where} GROUP BY {_q(schema.ID)}",
        params=params or None,
    )
    bodies = (r.get(schema.BODY) for s in result for r in s.rows())
    events = [e for e in map(schema.alert_from_body, bodies) if e]
    events.sort(key=lambda e: (e.updated, e.id), reverse=True)
    return events


async def get_alert(db: Database, alert_id: str) -> AlertEvent | None:
    result = await db.query(
        f"{_LAST_BODY} WHERE {_q(schema.ID)} = $id",
        params={"id": alert_id},
    )
    for s in result:
        for row in s.rows():
            event = schema.alert_from_body(row.get(schema.BODY))
            if event is not None:
                return event
    return None


async def write_alert(db: Database, event: AlertEvent) -> None:
    await db.write_lines([schema.alert_line(event)])


# --- dead letters ------------------------------------------------------------------
async def dead_letters(
    db: Database, limit: int, *, after: tuple[int, int] | None = None
) -> tuple[list[dict[str, Any]], list[int] | None]:
    """A page of dead letters, newest first, and the next page's position.

    Several may share a millisecond (one series per reason), so a position is (the
    last row's time, how many rows at that time were already given)."""
    columns = (schema.REASON, *schema.DEADLETTER_FIELDS)
    skip = after[1] if after else 0
    where, params = "", {}
    if after is not None:
        where, params = " WHERE time <= $before", {"before": ms_to_rfc3339(after[0])}
    result = await db.query(
        # Schema names, quoted; LIMIT takes no bound parameter, it is an int.
        f"SELECT {', '.join(map(_q, columns))} FROM {_q(schema.DEADLETTERS)}{where} "  # noqa: S608
        f"ORDER BY time DESC LIMIT {int(limit) + skip + 1}",
        params=params or None,
    )
    rows: list[dict[str, Any]] = [
        {"ts": int(r["time"]), **{name: r.get(name) for name in columns}}
        for s in result
        for r in s.rows()
    ][skip:]
    page = rows[:limit]
    if len(rows) <= limit or not page:
        return page, None
    last = int(page[-1]["ts"])
    at_last = sum(1 for r in page if r["ts"] == last)
    if after is not None and last == after[0]:
        at_last += skip
    return page, [last, at_last]


async def status_history(
    db: Database, info: DeviceInfo, limit: int, *, before: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """The device's status records, newest first (one series: times are unique), and
    the time to page on from, when more follow."""
    where, params = "", {"device": info.device}
    if before is not None:
        where, params["before"] = " AND time < $before", ms_to_rfc3339(before)
    result = await db.query(
        # Schema names, quoted; LIMIT is an int; the device and time are bound.
        f"SELECT {_q(schema.STATE)} FROM {_q(schema.STATUS)} "  # noqa: S608
        f"WHERE {_q(schema.DEVICE)} = $device{where} ORDER BY time DESC LIMIT {int(limit) + 1}",
        params=params,
    )
    rows: list[dict[str, Any]] = [
        {"ts": int(r["time"]), "state": str(r[schema.STATE])}
        for s in result
        for r in s.rows()
        if r.get(schema.STATE) is not None
    ]
    page = rows[:limit]
    return page, (page[-1]["ts"] if len(rows) > limit and page else None)


# --- device page ----------------------------------------------------------------------
async def latest_meta(db: Database, info: DeviceInfo) -> dict[str, Any] | None:
    """The device's newest meta record as stored (contract field names), with its time."""
    result = await db.query(
        f"SELECT * FROM {_q(schema.META)} WHERE {_q(schema.DEVICE)} = $device "  # noqa: S608
        "ORDER BY time DESC LIMIT 1",
        params={"device": info.device},
    )
    rows = result[0].rows() if result else []
    if not rows:
        return None
    skip = set(schema.DEVICE_TAGS)
    return {k: v for k, v in rows[0].items() if k not in skip and v is not None}
