"""The city view's bulk reads: the map, the ward tiles with the storm banner, and
what the console needs to draw (chart threshold lines, base tiles, local time)."""

from __future__ import annotations

import asyncio

import msgspec
from fastapi import APIRouter, Response

from api import city
from api.chartlines import chart_lines, site_thresholds, wind_caps
from api.deps import DbDep, DeviceCacheDep, SettingsDep, ViewerDep
from api.models import ConsoleConfig, MapDevice, WardsOut, WardTile
from deltasense.runtime import now_ms
from deltasense.wards import CITY_NAME, WARDS, WARDS_BY_ID, ward_name

router = APIRouter(tags=["city"])
_ENCODE = msgspec.json.Encoder().encode


@router.get("/map", response_model=list[MapDevice])
async def device_map(
    db: DbDep, settings: SettingsDep, cache: DeviceCacheDep, _: ViewerDep
) -> Response:
    """Every device with its position (from its meta; null if it sent none), state and
    its most severe active alert: the map in one request.  The device list is shared
    for a few seconds (api_device_cache_s); the alerts are read for each request."""
    devices, alerts = await city.devices_and_alerts(db, settings.site, cache)
    # Encoded as built (the shape of MapDevice, tests/unit/test_api_city_map.py):
    # validating and serialising 10 000 models twice took longer than the reads.
    return Response(_ENCODE(city.map_entries(devices, alerts)), media_type="application/json")


@router.get("/wards", response_model=WardsOut)
async def wards(db: DbDep, settings: SettingsDep, cache: DeviceCacheDep, _: ViewerDep) -> WardsOut:
    """Per-ward tiles (online/offline, active alerts, deepest water, rain since 07:00
    local, lamps on, energy since local midnight) and the city's storm risk."""
    now = now_ms()
    (devices, alerts), measures = await asyncio.gather(
        city.devices_and_alerts(db, settings.site, cache),
        city.read_measures(db, settings.site, now, settings.utc_offset_min),
    )
    tiles = []
    for t in city.ward_tiles(devices, alerts, measures):
        ward = WARDS_BY_ID.get(t["district"])
        tiles.append(
            WardTile.model_validate(
                t
                | {
                    "name": ward_name(t["district"], "vi"),
                    "lat": ward.lat if ward else None,
                    "lon": ward.lon if ward else None,
                }
            )
        )
    caps = wind_caps(site_thresholds(settings.thresholds_file))
    return WardsOut.model_validate(
        {
            "ts": now,
            "rain_since": city.local_day_start_ms(
                now, city.RAIN_DAY_START_LOCAL_H, settings.utc_offset_min
            ),
            "energy_since": city.local_day_start_ms(now, 0, settings.utc_offset_min),
            "city": city.city_risk(alerts, measures.wind_ms, caps),
            "wards": tiles,
        }
    )


@router.get("/console/config", response_model=ConsoleConfig)
async def console_config(settings: SettingsDep, _: ViewerDep) -> ConsoleConfig:
    """Site facts the console draws with: threshold lines per field, the ward list,
    base tiles (none unless configured) and the site's UTC offset."""
    thresholds = site_thresholds(settings.thresholds_file)
    return ConsoleConfig.model_validate(
        {
            "site": settings.site,
            "utc_offset_min": settings.utc_offset_min,
            "tile_url": settings.console_tile_url,
            "tile_attribution": settings.console_tile_attribution,
            "lines": chart_lines(thresholds),
            "wind_caps": {str(k): v for k, v in wind_caps(thresholds).items()},
            "city": CITY_NAME,
            "wards": [{"id": w.id, "name": w.name, "lat": w.lat, "lon": w.lon} for w in WARDS],
        }
    )
