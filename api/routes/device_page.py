"""What a device's page shows beyond its series: status history and its meta record."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from api import store
from api.deps import DbDep, DevicePath, SettingsDep, ViewerDep
from api.models import StatusChange
from api.paging import PagerDep

router = APIRouter(prefix="/devices", tags=["devices"])


async def _known(db: DbDep, site: str, device: str) -> store.DeviceInfo:
    info = await store.get_device(db, site, device)
    if info is None:
        raise HTTPException(404, f"unknown device {device!r}")
    return info


@router.get(
    "/{device}/status-history",
    response_model=list[StatusChange],
    responses={404: {"description": "Unknown device"}},
)
async def status_history(
    device: DevicePath,
    db: DbDep,
    settings: SettingsDep,
    _: ViewerDep,
    pager: PagerDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[StatusChange]:
    """Newest first; pages with `cursor` (from the `Link: rel=next` header)."""
    after = pager.position(int)
    info = await _known(db, settings.site, device)
    rows, following = await store.status_history(
        db, info, limit, before=int(after[0]) if after else None
    )
    response.headers.update(pager.headers([following] if following is not None else None))
    return [StatusChange.model_validate(r) for r in rows]


@router.get(
    "/{device}/meta",
    responses={404: {"description": "Unknown device or no meta record yet"}},
)
async def meta(
    device: DevicePath, db: DbDep, settings: SettingsDep, _: ViewerDep
) -> dict[str, Any]:
    """The newest meta record as the device sent it (fw, hw, cfg_hash, lat, lon, boot,
    reset_cause, interval_s…) and ``time`` (ms) when it was stored."""
    info = await _known(db, settings.site, device)
    found = await store.latest_meta(db, info)
    if found is None:
        raise HTTPException(404, f"device {device!r} has sent no meta record yet")
    return found
