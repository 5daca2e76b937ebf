"""The city at a glance: every device on the map and the per-ward tiles, each in one
request (a handful of InfluxDB queries whatever the number of devices).

Pure aggregation (:func:`ward_tiles`, :func:`map_entries`) is kept apart from the
queries so it is tested without a database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from api.devicecache import DeviceCache
from api.params import ms_to_rfc3339
from api.store import Database, DeviceInfo, list_alerts
from deltasense import schema
from deltasense.alerts import SEVERITY_RANK, AlertEvent
from deltasense.contract import Kind
from deltasense.influx import Series, quote_ident
from deltasense.wards import WARDS

_q = quote_ident
ACTIVE: Final = frozenset({"pending", "firing"})
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
FRESH_MS: Final = DAY_MS  # older latest values are no longer "the water now"
WIND_FRESH_MS: Final = HOUR_MS
RAIN_DAY_START_LOCAL_H: Final = 7  # Vietnamese hydromet day: 07:00 to 07:00 local


def local_day_start_ms(now_ms: int, start_local_h: int, utc_offset_min: int) -> int:
    """Start (UTC ms) of the local day holding ``now_ms`` that begins at ``start_local_h``."""
    offset_ms = utc_offset_min * 60_000
    local = now_ms + offset_ms - start_local_h * HOUR_MS
    return local - local % DAY_MS - offset_ms + start_local_h * HOUR_MS


@dataclass(frozen=True)
class Measures:
    """Per-device numbers read in bulk; a device missing from a map has no value."""

    level_cm: Mapping[str, float] = field(default_factory=dict)
    rain_mm_today: Mapping[str, float] = field(default_factory=dict)
    lamp_on: Mapping[str, bool] = field(default_factory=dict)
    meter_kwh_today: Mapping[str, float] = field(default_factory=dict)
    lamp_kwh_today: Mapping[str, float] = field(default_factory=dict)
    wind_ms: Mapping[str, float] = field(default_factory=dict)


def worst_alert_by_subject(alerts: Iterable[AlertEvent]) -> dict[str, AlertEvent]:
    """The most severe active alert per subject (ties: the newest)."""
    out: dict[str, AlertEvent] = {}
    for a in alerts:
        if a.state not in ACTIVE:
            continue
        have = out.get(a.subject)
        if have is None or (SEVERITY_RANK[a.severity], a.updated) > (
            SEVERITY_RANK[have.severity],
            have.updated,
        ):
            out[a.subject] = a
    return out


def map_entries(
    devices: Iterable[DeviceInfo], alerts: Iterable[AlertEvent]
) -> list[dict[str, Any]]:
    worst = worst_alert_by_subject(alerts)
    out = []
    for d in devices:
        alert = worst.get(d.device)
        out.append(
            {
                "device": d.device,
                "kind": d.kind.value,
                "district": d.district,
                "lat": d.lat,
                "lon": d.lon,
                "status": d.status if d.status in {"online", "offline", "sleeping"} else "unknown",
                "last_seen": d.last_seen,
                "alert": None
                if alert is None
                else {"id": alert.id, "severity": alert.severity, "kind": alert.kind},
            }
        )
    return out


def ward_tiles(
    devices: Iterable[DeviceInfo], alerts: Iterable[AlertEvent], m: Measures
) -> list[dict[str, Any]]:
    """One tile per listed ward (in list order), then any district the list lacks."""
    order = [w.id for w in WARDS]
    tiles: dict[str, dict[str, Any]] = {}

    def tile(district: str) -> dict[str, Any]:
        if district not in tiles:
            tiles[district] = {
                "district": district,
                "devices": 0,
                "online": 0,
                "offline": 0,
                "alerts": {"info": 0, "warning": 0, "critical": 0},
                "deepest_water_cm": None,
                "deepest_water_device": None,
                "rain_mm_today": None,
                "lamps": 0,
                "lamps_on": 0,
                "meter_kwh_today": None,
                "lamp_kwh_today": None,
            }
        return tiles[district]

    for w in order:
        tile(w)
    for d in devices:
        t = tile(d.district)
        t["devices"] += 1
        if d.status == "online":
            t["online"] += 1
        elif d.status == "offline":
            t["offline"] += 1
        level = m.level_cm.get(d.device)
        if level is not None and (t["deepest_water_cm"] is None or level > t["deepest_water_cm"]):
            t["deepest_water_cm"], t["deepest_water_device"] = level, d.device
        rain = m.rain_mm_today.get(d.device)
        if rain is not None:  # the wettest station of the ward
            t["rain_mm_today"] = max(rain, t["rain_mm_today"] or 0.0)
        if d.kind is Kind.LAMP:
            t["lamps"] += 1
            t["lamps_on"] += bool(m.lamp_on.get(d.device))
        for key, values in (
            ("meter_kwh_today", m.meter_kwh_today),
            ("lamp_kwh_today", m.lamp_kwh_today),
        ):
            kwh = values.get(d.device)
            if kwh is not None:
                t[key] = round((t[key] or 0.0) + kwh, 3)
    for a in alerts:
        if a.state in ACTIVE and a.district:
            tile(a.district)["alerts"][a.severity] += 1
    listed = [tiles[w] for w in order]
    return listed + [tiles[k] for k in sorted(tiles) if k not in set(order)]


def city_risk(
    alerts: Iterable[AlertEvent], wind_ms: Mapping[str, float], caps: Mapping[int, float]
) -> dict[str, Any]:
    """The city's disaster-risk level (the highest of the active storm alerts, 0 when
    none) and the strongest current wind with its cấp."""
    storms = [a for a in alerts if a.kind == "storm" and a.state in ACTIVE]
    top = max(storms, key=lambda a: (a.risk_level, a.updated), default=None)
    wind = max(wind_ms.values(), default=None)
    cap = None
    if wind is not None:
        reached = [c for c, low in caps.items() if wind >= low]
        cap = max(reached, default=None)
    return {
        "risk_level": top.risk_level if top else 0,
        "alert_id": top.id if top else None,
        "message": {"vi": top.message.vi, "en": top.message.en} if top else None,
        "max_wind_ms": wind,
        "wind_cap": cap,
    }


# --- queries ------------------------------------------------------------------------
def _per_device(series: list[Series], column: str = "value") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in series:
        device = s.tags.get(schema.DEVICE)
        for row in s.rows():
            if device and row.get(column) is not None:
                out[device] = row[column]
    return out


def _last(measurement: str, field_name: str) -> str:
    # Schema and contract names only, quoted; site and times are bound.
    return (
        f"SELECT last({_q(field_name)}) AS value FROM {_q(measurement)} "  # noqa: S608
        f"WHERE {_q(schema.SITE)} = $site AND time >= $since GROUP BY {_q(schema.DEVICE)}"
    )


def _increase(measurement: str, field_name: str) -> str:
    # A counter's rise since $since, with resets (reboots) not counted as falls.
    return (
        "SELECT sum(d) AS value FROM ("  # noqa: S608
        f"SELECT non_negative_difference({_q(field_name)}) AS d FROM {_q(measurement)} "
        f"WHERE {_q(schema.SITE)} = $site AND time >= $since GROUP BY {_q(schema.DEVICE)}"
        f") GROUP BY {_q(schema.DEVICE)}"
    )


async def read_measures(db: Database, site: str, now_ms: int, utc_offset_min: int) -> Measures:
    rain_since = local_day_start_ms(now_ms, RAIN_DAY_START_LOCAL_H, utc_offset_min)
    midnight = local_day_start_ms(now_ms, 0, utc_offset_min)

    def p(since: int) -> dict[str, Any]:
        return {"site": site, "since": ms_to_rfc3339(since)}

    level, rain, on, meter, lamp, wind = await asyncio.gather(
        db.query(_last(Kind.WATER.value, "level_cm"), params=p(now_ms - FRESH_MS)),
        db.query(_increase(Kind.WEATHER.value, "rain_mm_total"), params=p(rain_since)),
        db.query(_last(Kind.LAMP.value, "on"), params=p(now_ms - FRESH_MS)),
        db.query(_increase(Kind.METER.value, "energy_wh_total"), params=p(midnight)),
        db.query(_increase(Kind.LAMP.value, "energy_wh_total"), params=p(midnight)),
        db.query(_last(Kind.WEATHER.value, "wind_ms"), params=p(now_ms - WIND_FRESH_MS)),
    )
    return Measures(
        level_cm={k: float(v) for k, v in _per_device(level).items()},
        rain_mm_today={k: round(float(v), 1) for k, v in _per_device(rain).items()},
        lamp_on={k: v is True for k, v in _per_device(on).items()},
        meter_kwh_today={k: float(v) / 1000 for k, v in _per_device(meter).items()},
        lamp_kwh_today={k: float(v) / 1000 for k, v in _per_device(lamp).items()},
        wind_ms={k: float(v) for k, v in _per_device(wind).items()},
    )


async def devices_and_alerts(
    db: Database, site: str, cache: DeviceCache
) -> tuple[list[DeviceInfo], list[AlertEvent]]:
    devices, alerts = await asyncio.gather(cache.get(db, site), list_alerts(db))
    return devices, [a for a in alerts if a.state in ACTIVE]
