"""Read (and a few writes) against InfluxDB in the layout of :mod:`deltasense.schema`.

Values always travel as bound parameters; the only identifiers put into query
text are measurement and field names that were validated against the contract
first, and they still go through :func:`quote_ident`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from api.params import ms_to_rfc3339
from deltasense import alerts as alerts_mod
from deltasense import schema
from deltasense.alerts import AlertEvent
from deltasense.contract import Kind
from deltasense.influx import Series, quote_ident
from deltasense.lineprotocol import encode_point

_LOG = logging.getLogger(__name__)
# Measurements named literally in queries below must match the shared schema.
assert alerts_mod.ALERTS_MEASUREMENT == "alerts"
assert schema.DEADLETTERS == "deadletters"

# Reading columns that are bookkeeping, not measurements.
_READING_META = frozenset({"seq", "boot", "hist", "ts_platform", "qc"})
_READING_TAGS = frozenset({"site", "district", "device", "time"})


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
        device = s.tags.get("device")
        rows = s.rows()
        if device and rows:
            out[device] = rows[0]
    return out


def _latest_per_device(columns: str, measurement: str, where: str) -> str:
    # Only constants of this module reach the query text; values are bound ($site, $device).
    return (
        f"SELECT {columns} FROM {quote_ident(measurement)} "  # noqa: S608
        f'WHERE "site" = $site{where} GROUP BY "device" ORDER BY time DESC LIMIT 1'
    )


def _device_filter(device: str | None) -> tuple[str, dict[str, Any]]:
    if device is None:
        return "", {}
    return ' AND "device" = $device', {"device": device}


async def list_devices(db: Database, site: str, *, device: str | None = None) -> list[DeviceInfo]:
    """Registry joined with each device's latest status and meta; sorted by device id."""
    where, params = _device_filter(device)
    params["site"] = site
    registry, status, meta = await asyncio.gather(
        db.query(
            _latest_per_device('"site", "district", "kind", "last_seen"', schema.DEVICES, where),
            params=params,
        ),
        db.query(_latest_per_device('"state"', schema.STATUS, where), params=params),
        db.query(_latest_per_device('"lat", "lon", "fw"', schema.META, where), params=params),
    )
    statuses = _latest_by_device(status)
    metas = _latest_by_device(meta)
    out: list[DeviceInfo] = []
    for name, row in sorted(_latest_by_device(registry).items()):
        try:
            kind = Kind(str(row.get("kind")))
        except ValueError:
            _LOG.warning("registry entry for %s has unknown kind %r", name, row.get("kind"))
            continue
        st = statuses.get(name, {})
        mt = metas.get(name, {})
        last_seen = row.get("last_seen")
        out.append(
            DeviceInfo(
                device=name,
                kind=kind,
                site=str(row.get("site") or site),
                district=str(row.get("district") or ""),
                last_seen=int(last_seen) if last_seen is not None else None,
                status=str(st.get("state") or "unknown"),
                status_ts=st.get("time"),
                lat=_float_or_none(mt.get("lat")),
                lon=_float_or_none(mt.get("lon")),
                fw=str(mt["fw"]) if mt.get("fw") is not None else None,
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
        f'SELECT * FROM {quote_ident(info.kind.value)} WHERE "device" = $device '  # noqa: S608
        "ORDER BY time DESC LIMIT 1",
        params={"device": info.device},
    )
    rows = series[0].rows() if series else []
    if not rows:
        return None
    row = rows[0]
    fields = {
        k: v
        for k, v in row.items()
        if k not in _READING_META and k not in _READING_TAGS and v is not None
    }
    qc = row.get("qc")
    return LatestReading(
        device=info.device,
        kind=info.kind,
        ts=int(row["time"]),
        fields=fields,
        seq=row.get("seq"),
        boot=row.get("boot"),
        hist=row.get("hist") is True,
        ts_from_platform=row.get("ts_platform") is True,
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
    if aggregate not in {"mean", "last"}:
        raise ValueError(f"unsupported aggregate {aggregate!r}")
    # Identifiers: a checked aggregate, a contract field name and a Kind value, all
    # quoted; the bucket width is an int; device and times are bound parameters.
    q = (
        f"SELECT {aggregate}({quote_ident(field_name)}) AS value "  # noqa: S608
        f"FROM {quote_ident(info.kind.value)} "
        'WHERE "device" = $device AND time >= $start AND time < $end '
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
async def list_alerts(
    db: Database, *, kind: str | None = None, district: str | None = None
) -> list[AlertEvent]:
    """Latest state of every alert (optionally one kind/district), newest first."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    if kind is not None:
        conds.append('"kind" = $kind')
        params["kind"] = kind
    if district is not None:
        conds.append('"district" = $district')
        params["district"] = district
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    result = await db.query(
        # ``where`` holds only constant conditions; their values are bound.
        f'SELECT last("body") AS body FROM "alerts"{where} GROUP BY "id"',  # noqa: S608
        params=params or None,
    )
    events = [e for e in (_decode_body(r.get("body")) for s in result for r in s.rows()) if e]
    events.sort(key=lambda e: (e.updated, e.id), reverse=True)
    return events


async def get_alert(db: Database, alert_id: str) -> AlertEvent | None:
    result = await db.query(
        'SELECT last("body") AS body FROM "alerts" WHERE "id" = $id',
        params={"id": alert_id},
    )
    for s in result:
        for row in s.rows():
            event = _decode_body(row.get("body"))
            if event is not None:
                return event
    return None


def _decode_body(body: Any) -> AlertEvent | None:
    if not isinstance(body, str):
        return None
    try:
        return alerts_mod.decode(body.encode())
    except ValueError as exc:  # msgspec.DecodeError is a ValueError
        _LOG.warning("undecodable alert body %.120r: %s", body, exc)
        return None


async def write_alert(db: Database, event: AlertEvent) -> None:
    measurement, tags, fields, ts = alerts_mod.influx_point(event)
    await db.write_lines([encode_point(measurement, tags, fields, ts)])


# --- dead letters ------------------------------------------------------------------
async def dead_letters(db: Database, limit: int) -> list[dict[str, Any]]:
    result = await db.query(
        # LIMIT takes no bound parameter; ``limit`` is an int.
        'SELECT "reason", "topic", "payload", "detail" FROM "deadletters" '  # noqa: S608
        f"ORDER BY time DESC LIMIT {int(limit)}"
    )
    return [
        {
            "ts": int(r["time"]),
            "reason": r.get("reason"),
            "topic": r.get("topic"),
            "payload": r.get("payload"),
            "detail": r.get("detail"),
        }
        for s in result
        for r in s.rows()
    ]
