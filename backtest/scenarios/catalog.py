"""The scenarios: each a function of (seed, start, site) giving a :class:`~.world.Config`.

The seed moves tracks, timings, intensities and which devices fail, never the
kind of event: every seed of ``typhoon`` is a typhoon passing the city.  Start
times default to a fixed date so a backtest is a pure function of its name and
seed; the live test passes a start near the wall clock instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from backtest.scenarios import faults as F
from backtest.scenarios import physics as P
from backtest.scenarios.world import MINUTE_MS, Config
from deltasense.contract import Kind
from deltasense.runtime import DEFAULT_LOCAL_TZ
from simulators.city import DeviceSpec, place_devices

HOUR_MS: Final = 3_600_000
CITY_DEVICES: Final = 120


def local_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """A scenario date: wall-clock time at the site (its default offset, Bạc Liêu's)."""
    return int(datetime(year, month, day, hour, minute, tzinfo=DEFAULT_LOCAL_TZ).timestamp() * 1000)


Builder = Callable[[int, int | None, str], Config]


@dataclass(frozen=True)
class ScenarioDef:
    name: str
    summary: str
    build: Builder


def _ordinary_tide(rng: random.Random, start_ms: int) -> P.Tide:
    """A tide well below the alarm levels: S2 and O1 far out of phase (towards neap)."""
    offsets = {
        "S2": rng.uniform(140.0, 220.0),
        "K1": rng.uniform(-30.0, 30.0),
        "O1": rng.uniform(140.0, 220.0),
    }
    return P.Tide(
        ref_s=start_ms / 1000.0 + rng.uniform(0.0, 12.0) * 3600.0,
        mean_m=0.05,
        parts=P.constituents(offsets),
    )


def _pick(
    rng: random.Random, devices: tuple[DeviceSpec, ...], kind: Kind, n: int, *, variant: str = ""
) -> list[str]:
    pool = sorted(d.id for d in devices if d.kind is kind and (not variant or d.variant == variant))
    return rng.sample(pool, min(n, len(pool)))


def _devices(n: int, seed: int) -> tuple[DeviceSpec, ...]:
    return tuple(place_devices(n, seed))


def _start(start_ms: int | None, default: int) -> int:
    start = default if start_ms is None else start_ms
    return start - start % MINUTE_MS


# --- scenarios ---------------------------------------------------------------------------


def typhoon(seed: int, start_ms: int | None, site: str) -> Config:
    """A tropical storm tracking west-north-west just south of the city (like Linda, 1997)."""
    rng = random.Random(f"typhoon:{seed}")
    start = _start(start_ms, local_ms(2024, 11, 16))
    speed = rng.uniform(18.0, 24.0)
    heading = math.radians(rng.uniform(15.0, 30.0))  # north of west
    vx, vy = -speed * math.cos(heading), speed * math.sin(heading)
    d = rng.uniform(15.0, 35.0)  # closest approach, on the track's left (south-west of the city)
    nx, ny = -vy / speed, vx / speed
    closest = start + round(rng.uniform(17.0, 19.0) * HOUR_MS)
    cyclone = P.Cyclone(
        track=P.Track(nx * d, ny * d, closest / 1000.0, vx, vy),
        dp_hpa=rng.uniform(22.0, 32.0),
        rmax_km=rng.uniform(30.0, 45.0),
        rain_peak_mm_h=rng.uniform(30.0, 45.0),
    )
    tide = P.Tide(
        ref_s=start / 1000.0 + rng.uniform(8.0, 14.0) * 3600.0,
        mean_m=0.15,
        parts=P.constituents({"S2": rng.uniform(20.0, 80.0), "O1": rng.uniform(40.0, 120.0)}),
    )
    return Config(
        "typhoon", seed, start, 30 * 60, _devices(CITY_DEVICES, seed), tide, (cyclone,), site=site
    )


def king_tide_rain(seed: int, start_ms: int | None, site: str) -> Config:
    """A king tide (every constituent in phase, high autumn mean) while a storm cell
    crosses the city at high water: drains cannot empty into the canals."""
    rng = random.Random(f"king-tide-rain:{seed}")
    start = _start(start_ms, local_ms(2024, 11, 17))
    high = start + round(rng.uniform(17.5, 19.0) * HOUR_MS)
    tide = P.Tide(ref_s=high / 1000.0, mean_m=0.30, parts=P.constituents())
    speed = rng.uniform(20.0, 35.0)
    heading = math.radians(rng.uniform(10.0, 80.0))  # towards the north-east
    vx, vy = speed * math.cos(heading), speed * math.sin(heading)
    offset = rng.uniform(-2.0, 2.0)
    over_city = high - round(rng.uniform(0.25, 1.0) * HOUR_MS)
    cell = P.StormCell(
        track=P.Track(-vy / speed * offset, vx / speed * offset, over_city / 1000.0, vx, vy),
        radius_km=rng.uniform(4.5, 6.0),
        rain_peak_mm_h=rng.uniform(80.0, 110.0),
        outflow_ms=rng.uniform(10.0, 15.0),
    )
    return Config(
        "king-tide-rain",
        seed,
        start,
        24 * 60,
        _devices(CITY_DEVICES, seed),
        tide,
        (cell,),
        site=site,
    )


def hot_dry_day(seed: int, start_ms: int | None, site: str) -> Config:
    """April: clear sky, sea breeze, neap tide, a healthy fleet.  No alert may fire."""
    rng = random.Random(f"hot-dry-day:{seed}")
    start = _start(start_ms, local_ms(2024, 4, 20))
    tide = P.Tide(
        ref_s=start / 1000.0 + rng.uniform(0.0, 12.0) * 3600.0,
        mean_m=0.0,
        parts=P.constituents({"S2": 180.0, "O1": 180.0}),
    )
    return Config(
        "hot-dry-day", seed, start, 24 * 60, _devices(CITY_DEVICES, seed), tide, site=site
    )


def lamp_faults(seed: int, start_ms: int | None, site: str) -> Config:
    """A day and a night of the lighting fleet with day-burning, dark, drifting and cycling lamps."""
    rng = random.Random(f"lamp-faults:{seed}")
    start = _start(start_ms, local_ms(2024, 9, 10))
    devices = _devices(CITY_DEVICES, seed)
    lamps = _pick(rng, devices, Kind.LAMP, 7)
    end = start + 24 * HOUR_MS
    evening = start + 18 * HOUR_MS
    faults: list[F.Fault] = [
        F.DayBurn(lamps[0], start, end),
        F.DayBurn(lamps[1], start + 9 * HOUR_MS, end),
        F.LampOut(lamps[2], evening, end),
        F.LampOut(lamps[3], start + 2 * HOUR_MS, start + 5 * HOUR_MS),
        F.Drift(lamps[4], evening, end, pct_per_h=rng.uniform(6.0, 10.0)),
        F.Drift(lamps[5], start, start + 6 * HOUR_MS, pct_per_h=rng.uniform(6.0, 10.0)),
        F.Cycling(lamps[6], start + 20 * HOUR_MS, start + 23 * HOUR_MS, period_min=10),
    ]
    return Config(
        "lamp-faults",
        seed,
        start,
        24 * 60,
        devices,
        _ordinary_tide(rng, start),
        faults=tuple(faults),
        site=site,
    )


def sensor_faults(seed: int, start_ms: int | None, site: str) -> Config:
    """A quiet day with sick sensors: dropouts, stuck values, spikes, skewed clocks."""
    rng = random.Random(f"sensor-faults:{seed}")
    start = _start(start_ms, local_ms(2024, 9, 11, 6))
    devices = _devices(CITY_DEVICES, seed)
    drains = _pick(rng, devices, Kind.WATER, 4, variant="drain")
    stations = _pick(rng, devices, Kind.WEATHER, 3)
    (lamp,) = _pick(rng, devices, Kind.LAMP, 1)
    h = HOUR_MS
    faults: list[F.Fault] = [
        F.Dropout(drains[0], start + 2 * h, start + 2 * h + 45 * MINUTE_MS),
        F.Dropout(lamp, start + 3 * h, start + 3 * h + 40 * MINUTE_MS),
        F.Stuck(stations[0], "t_c", start + 3 * h, start + 6 * h),
        F.Stuck(drains[1], "level_cm", start + 4 * h, start + 7 * h),
        F.Spike(drains[2], "level_cm", start + 5 * h, rng.uniform(40.0, 60.0)),
        F.Spike(drains[3], "level_cm", start + 8 * h, rng.uniform(40.0, 60.0)),
        F.Spike(stations[1], "t_c", start + 7 * h, 12.0),
        F.ClockSkew(stations[2], start + h, start + 12 * h, 4 * MINUTE_MS),
        F.ClockSkew(drains[0], start + 6 * h, start + 12 * h, -25 * MINUTE_MS),
    ]
    return Config(
        "sensor-faults",
        seed,
        start,
        12 * 60,
        devices,
        _ordinary_tide(rng, start),
        faults=tuple(faults),
        site=site,
    )


def power_outage(seed: int, start_ms: int | None, site: str) -> Config:
    """Mains lost in one ward for two and a half hours after dark."""
    rng = random.Random(f"power-outage:{seed}")
    start = _start(start_ms, local_ms(2024, 9, 12, 12))
    devices = _devices(CITY_DEVICES, seed)
    districts = sorted({d.district for d in devices if d.kind is Kind.LAMP})
    district = rng.choice(districts)
    begin = start + round(rng.uniform(6.5, 7.5) * HOUR_MS / MINUTE_MS) * MINUTE_MS
    outage = F.Outage(district, begin, begin + 150 * MINUTE_MS)
    return Config(
        "power-outage",
        seed,
        start,
        12 * 60,
        devices,
        _ordinary_tide(rng, start),
        faults=(outage,),
        site=site,
    )


def flash_flood(seed: int, start_ms: int | None, site: str) -> Config:
    """An hour: a cloudburst crosses a small city and floods its drains
    (short enough to run live in the integration test)."""
    rng = random.Random(f"flash-flood:{seed}")
    start = _start(start_ms, local_ms(2024, 9, 10, 15))
    speed = rng.uniform(25.0, 35.0)
    heading = math.radians(rng.uniform(0.0, 90.0))
    vx, vy = speed * math.cos(heading), speed * math.sin(heading)
    cell = P.StormCell(
        track=P.Track(0.0, 0.0, (start + 30 * MINUTE_MS) / 1000.0, vx, vy),
        radius_km=6.0,
        rain_peak_mm_h=rng.uniform(110.0, 130.0),
        outflow_ms=12.0,
    )
    return Config(
        "flash-flood",
        seed,
        start,
        60,
        _devices(40, seed),
        _ordinary_tide(rng, start),
        (cell,),
        site=site,
    )


SCENARIOS: Final[dict[str, ScenarioDef]] = {
    s.name: s
    for s in (
        ScenarioDef(
            "typhoon", "tropical storm passing south of the city: wind, rain bands, surge", typhoon
        ),
        ScenarioDef(
            "king-tide-rain",
            "king tide over BĐ III with a storm cell at high water",
            king_tide_rain,
        ),
        ScenarioDef(
            "hot-dry-day",
            "clear April day, neap tide, healthy fleet: no alert may fire",
            hot_dry_day,
        ),
        ScenarioDef("lamp-faults", "day-burning, dark, drifting and cycling lamps", lamp_faults),
        ScenarioDef(
            "sensor-faults", "dropouts, stuck values, spikes and skewed clocks", sensor_faults
        ),
        ScenarioDef("power-outage", "mains lost in one ward after dark", power_outage),
        ScenarioDef(
            "flash-flood", "one-hour cloudburst over a small city (the live test's)", flash_flood
        ),
    )
}
