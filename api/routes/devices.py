"""Devices: registry, status, location, latest reading and downsampled series."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api import params, store
from api.csvout import CSV_RESPONSE, FormatQuery, csv_response, wants_csv
from api.deps import IDENT_REGEX, DbDep, DevicePath, SettingsDep, ViewerDep
from api.models import Device, Latest, Location, SeriesOut
from api.paging import PagerDep, page_sorted
from api.params import Aggregate, ParamError
from api.problems import param_error
from deltasense.contract import Kind
from deltasense.runtime import now_ms

router = APIRouter(prefix="/devices", tags=["devices"])
MAX_DEVICES_PAGE = 10_000


def _device_out(info: store.DeviceInfo) -> Device:
    location = (
        Location(lat=info.lat, lon=info.lon)
        if info.lat is not None and info.lon is not None
        else None
    )
    status = info.status if info.status in {"online", "offline", "sleeping"} else "unknown"
    return Device(
        device=info.device,
        kind=info.kind.value,
        site=info.site,
        district=info.district,
        location=location,
        status=status,
        status_ts=info.status_ts,
        last_seen=info.last_seen,
        fw=info.fw,
    )


async def _known_device(db: DbDep, site: str, device: str) -> store.DeviceInfo:
    info = await store.get_device(db, site, device)
    if info is None:
        raise HTTPException(404, f"unknown device {device!r}")
    return info


@router.get("", response_model=list[Device])
async def list_devices(
    db: DbDep,
    settings: SettingsDep,
    _: ViewerDep,
    pager: PagerDep,
    response: Response,
    district: Annotated[str | None, Query(pattern=IDENT_REGEX)] = None,
    kind: Kind | None = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_DEVICES_PAGE, description="Devices per page (all by default).")
    ] = MAX_DEVICES_PAGE,
) -> list[Device]:
    """Devices by id; pages with `cursor` (from the `Link: rel=next` header)."""
    after = pager.position(str)
    devices = [
        d
        for d in await store.list_devices(db, settings.site)
        if (district is None or d.district == district) and (kind is None or d.kind == kind)
    ]
    page, following = page_sorted(devices, lambda d: [d.device], after, limit)
    response.headers.update(pager.headers(following))
    return [_device_out(d) for d in page]


@router.get("/{device}", response_model=Device, responses={404: {"description": "Unknown"}})
async def get_device(device: DevicePath, db: DbDep, settings: SettingsDep, _: ViewerDep) -> Device:
    return _device_out(await _known_device(db, settings.site, device))


@router.get(
    "/{device}/latest",
    response_model=Latest,
    responses={404: {"description": "Unknown device or no reading yet"}},
)
async def latest(device: DevicePath, db: DbDep, settings: SettingsDep, _: ViewerDep) -> Latest:
    info = await _known_device(db, settings.site, device)
    reading = await store.latest_reading(db, info)
    if reading is None:
        raise HTTPException(404, f"device {device!r} has no reading yet")
    return Latest(
        device=reading.device,
        kind=reading.kind.value,
        ts=reading.ts,
        fields=reading.fields,
        seq=reading.seq,
        boot=reading.boot,
        hist=reading.hist,
        ts_from_platform=reading.ts_from_platform,
        qc=reading.qc,
    )


@router.get(
    "/{device}/series",
    response_model=SeriesOut,
    responses={
        **CSV_RESPONSE,
        404: {"description": "Unknown device"},
        422: {"description": "Bad field, time range, aggregate or bucket width"},
    },
)
async def series(
    device: DevicePath,
    db: DbDep,
    settings: SettingsDep,
    _: ViewerDep,
    pager: PagerDep,
    request: Request,
    response: Response,
    field: Annotated[str, Query(max_length=64, description="A field of the device's kind.")],
    start: Annotated[
        str | None,
        Query(max_length=64, description="ISO-8601 with offset, epoch ms, now, -24h, -7d; end-24h"),
    ] = None,
    end: Annotated[
        str | None,
        Query(max_length=64, description="ISO-8601 with offset, epoch ms, now, -1h; now"),
    ] = None,
    every: Annotated[
        str | None,
        Query(max_length=16, description="Bucket width: 30s, 5m, 1h, 1d (≥ 1s); auto if unset"),
    ] = None,
    agg: Annotated[
        Aggregate | None,
        Query(description="Per bucket: mean (default), min, max or last; booleans: last only."),
    ] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=params.MAX_BUCKETS, description="Buckets per page (all by default)."),
    ] = None,
    format: FormatQuery = None,
) -> Any:
    """Buckets of `every` over [start, end), each the `agg` of the field's readings
    (null: no reading).  With `limit`, the range is paged: the next page (header `Link:
    rel=next`) starts at the next bucket and keeps the first page's range, so a relative
    `start=-24h` does not move under a client that pages.  `format=csv` (or `Accept:
    text/csv`): `time,ts_ms,value` rows."""
    # Everything checkable without the database is checked first.
    try:
        params.check_field_name(field)
        start_ms, end_ms = params.time_range(start, end, now_ms(), settings.utc_offset_min)
        every_s = params.choose_every(start_ms, end_ms, every)
    except ParamError as exc:
        raise param_error(str(exc), exc.param) from None
    resumed = pager.position(int, int, int, int)
    info = await _known_device(db, settings.site, device)
    try:
        params.check_field_for_kind(field, info.kind)
        aggregate = params.choose_aggregate(info.kind, field, agg)
    except ParamError as exc:
        raise param_error(str(exc), exc.param) from None
    if resumed is None:
        buckets = params.bucket_starts(start_ms, end_ms, every_s)
    else:  # a later page: the first page's range and width, from the cursor's bucket on
        first, start_ms, end_ms, every_s = (int(v) for v in resumed)
        buckets = range(first, end_ms, every_s * 1000)
    width_ms = every_s * 1000
    shown = buckets if limit is None else buckets[:limit]
    following = (
        [shown[-1] + width_ms, start_ms, end_ms, every_s] if len(shown) < len(buckets) else None
    )
    values = (
        await store.series(
            db,
            info,
            field,
            start_ms=max(shown[0], start_ms),
            end_ms=min(end_ms, shown[-1] + width_ms),
            every_s=every_s,
            aggregate=aggregate,
        )
        if shown
        else {}
    )
    points: list[tuple[int, float | bool | None]] = []
    for ts in shown:
        value = values.get(ts)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        points.append((ts, value))
    links = pager.headers(following)
    if wants_csv(request, format):
        rows = ((params.ms_to_rfc3339(ts), ts, v) for ts, v in points)
        name = f"{device}-{field}.csv"
        return csv_response(("time", "ts_ms", field), rows, name, links)
    response.headers.update(links)
    return SeriesOut(
        device=device,
        field=field,
        every=params.format_duration(every_s),
        aggregate=aggregate,
        start=start_ms,
        end=end_ms,
        points=points,
    )
