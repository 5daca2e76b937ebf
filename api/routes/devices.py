"""Devices: registry, status, location, latest reading and downsampled series."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api import params, store
from api.deps import IDENT_REGEX, DbDep, DevicePath, SettingsDep, ViewerDep
from api.models import Device, Latest, Location, SeriesOut
from api.params import ParamError
from deltasense.contract import Kind
from deltasense.runtime import now_ms

router = APIRouter(prefix="/devices", tags=["devices"])


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
    district: Annotated[str | None, Query(pattern=IDENT_REGEX)] = None,
    kind: Kind | None = None,
) -> list[Device]:
    devices = await store.list_devices(db, settings.site)
    return [
        _device_out(d)
        for d in devices
        if (district is None or d.district == district) and (kind is None or d.kind == kind)
    ]


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
        404: {"description": "Unknown device"},
        422: {"description": "Bad field, time range or bucket width"},
    },
)
async def series(
    device: DevicePath,
    db: DbDep,
    settings: SettingsDep,
    _: ViewerDep,
    field: Annotated[str, Query(max_length=64, description="A field of the device's kind.")],
    start: Annotated[
        str | None, Query(max_length=64, description="ISO-8601 with offset or epoch ms; end-24h")
    ] = None,
    end: Annotated[
        str | None, Query(max_length=64, description="ISO-8601 with offset or epoch ms; now")
    ] = None,
    every: Annotated[
        str | None,
        Query(max_length=16, description="Bucket width: 30s, 5m, 1h, 1d (≥ 1s); auto if unset"),
    ] = None,
) -> SeriesOut:
    # Everything checkable without the database is checked first.
    try:
        params.check_field_name(field)
        start_ms, end_ms = params.time_range(start, end, now_ms(), settings.utc_offset_min)
        every_s = params.choose_every(start_ms, end_ms, every)
    except ParamError as exc:
        raise HTTPException(422, str(exc)) from None
    info = await _known_device(db, settings.site, device)
    try:
        params.check_field_for_kind(field, info.kind)
    except ParamError as exc:
        raise HTTPException(422, str(exc)) from None
    aggregate = "last" if params.is_bool_field(info.kind, field) else "mean"
    values = await store.series(
        db,
        info,
        field,
        start_ms=start_ms,
        end_ms=end_ms,
        every_s=every_s,
        aggregate=aggregate,
    )
    points: list[tuple[int, float | bool | None]] = []
    for ts in params.bucket_starts(start_ms, end_ms, every_s):
        value = values.get(ts)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        points.append((ts, value))
    return SeriesOut(
        device=device,
        field=field,
        every=params.format_duration(every_s),
        aggregate=aggregate,
        start=start_ms,
        end=end_ms,
        points=points,
    )
