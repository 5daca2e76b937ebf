"""The physics of the scenario city: pure functions and small value types, no state.

Simple but honest models, each with the quantity a real sensor would see:

* a harmonic tide (M2, S2, K1, O1) at the coast, lagged and damped up the canals,
  plus the inverse-barometer rise under low pressure;
* weather systems that move over the city: a tropical cyclone (Holland 1980
  pressure and wind profiles, cyclonic inflow, spiral-ish rain bands) and a
  convective storm cell (Gaussian rain core, outflow gusts, a pressure trough ahead
  and a meso-high under the core);
* street drains as a storage that fills with runoff above the drain's capacity and
  empties at that capacity afterwards, with the outfall throttled by high water in
  the canal (backwater) and tidal water over the kerb once the canal tops the road;
* lamps and cabinets are in :mod:`backtest.scenarios.world` (they are state machines).

Coordinates are local kilometres east (x) and north (y) of the city centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from simulators import models

CENTRE_LAT: Final = models.LAT
CENTRE_LON: Final = models.LON
KM_PER_DEG_LAT: Final = 110.57
KM_PER_DEG_LON: Final = 111.32 * math.cos(math.radians(CENTRE_LAT))
P_ENV_HPA: Final = 1008.0  # seasonal mean station pressure at the coast
AIR_DENSITY: Final = 1.15  # kg/m³, warm humid air


def to_km(lat: float, lon: float) -> tuple[float, float]:
    """Local (x east, y north) in km from the city centre (equirectangular: the city is small)."""
    return (lon - CENTRE_LON) * KM_PER_DEG_LON, (lat - CENTRE_LAT) * KM_PER_DEG_LAT


# --- tide --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constituent:
    name: str
    amplitude_m: float
    speed_deg_h: float  # angular speed (Schureman / IHO standard values)
    phase_deg: float = 0.0  # phase lag at the scenario's reference time


# Angular speeds in degrees per mean solar hour (standard values).
SPEED_DEG_H: Final[dict[str, float]] = {
    "M2": 28.9841042,
    "S2": 30.0,
    "K1": 15.0410686,
    "O1": 13.9430356,
}
# Amplitudes at the Bạc Liêu coast, m: PLAUSIBLE values for the irregular
# semi-diurnal East Sea tide there (form factor (K1+O1)/(M2+S2) ≈ 0.86; a
# spring range of 3-4 m, docs/REFERENCE.md), not the result of a harmonic analysis.
AMPLITUDE_M: Final[dict[str, float]] = {"M2": 0.80, "S2": 0.32, "K1": 0.55, "O1": 0.42}


def constituents(offsets_deg: dict[str, float] | None = None) -> tuple[Constituent, ...]:
    """The four constituents, in phase at the reference time except for ``offsets_deg``.

    All in phase is a spring tide at its tropic maximum (a king tide with a high
    seasonal mean); S2 and O1 opposed to M2 and K1 give a neap tide.
    """
    offsets = offsets_deg or {}
    return tuple(
        Constituent(name, AMPLITUDE_M[name], SPEED_DEG_H[name], offsets.get(name, 0.0))
        for name in ("M2", "S2", "K1", "O1")
    )


@dataclass(frozen=True)
class Tide:
    """Astronomical tide at the coast: ``mean_m + Σ A·cos(ω (t − t_ref) − φ)``, m above
    the national gauge datum (the datum of the BĐ alarm levels)."""

    ref_s: float  # reference time (epoch s): constituent phases are given at this time
    mean_m: float  # seasonal mean sea level above the gauge datum
    parts: tuple[Constituent, ...]

    def level_m(self, t_s: float) -> float:
        hours = (t_s - self.ref_s) / 3600.0
        return self.mean_m + sum(
            c.amplitude_m * math.cos(math.radians(c.speed_deg_h * hours - c.phase_deg))
            for c in self.parts
        )


def inverse_barometer_m(p_hpa: float) -> float:
    """Sea-level rise under low pressure: about 1 cm per hPa below the mean."""
    return max(0.0, (P_ENV_HPA - p_hpa) * 0.01)


def canal_level_m(coast_m: float, damping: float) -> float:
    """Up a canal the tide is damped towards the mean; ``damping`` 1 = as at the coast."""
    return coast_m * damping


# --- weather systems ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """Weather at one place and time (true values, before sensor noise)."""

    dp_hpa: float = 0.0  # pressure anomaly
    u_ms: float = 0.0  # wind towards the east
    v_ms: float = 0.0  # wind towards the north
    rain_mm_h: float = 0.0
    gust_factor: float = 1.0  # extra gustiness over the background
    cloud: float = 1.0  # daylight factor (1 clear, 0.1 under a storm core)
    dt_c: float = 0.0  # temperature anomaly (rain-cooled outflow)

    def __add__(self, other: Sample) -> Sample:
        return Sample(
            dp_hpa=self.dp_hpa + other.dp_hpa,
            u_ms=self.u_ms + other.u_ms,
            v_ms=self.v_ms + other.v_ms,
            rain_mm_h=self.rain_mm_h + other.rain_mm_h,
            gust_factor=max(self.gust_factor, other.gust_factor),
            cloud=min(self.cloud, other.cloud),
            dt_c=self.dt_c + other.dt_c,
        )


@dataclass(frozen=True)
class Track:
    """Straight-line motion of a system centre: position at ``t0_s`` and velocity."""

    x0_km: float
    y0_km: float
    t0_s: float
    vx_kmh: float
    vy_kmh: float

    def at(self, t_s: float) -> tuple[float, float]:
        h = (t_s - self.t0_s) / 3600.0
        return self.x0_km + self.vx_kmh * h, self.y0_km + self.vy_kmh * h


@dataclass(frozen=True)
class Cyclone:
    """A tropical cyclone with Holland (1980) profiles.

    Pressure ``p(r) = p_c + Δp·exp(−(R_m/r)^B)``; gradient wind without the Coriolis
    term ``V(r)² = (B·Δp/ρ)·(R_m/r)^B·exp(−(R_m/r)^B)``, reduced to the surface over
    land; the wind turns cyclonically (counter-clockwise in the northern hemisphere)
    with an inflow angle, and half the translation speed is added.
    """

    track: Track
    dp_hpa: float  # central pressure deficit
    rmax_km: float
    b: float = 1.3
    surface_factor: float = 0.6  # gradient → 10 m wind over a rough delta town
    inflow_deg: float = 20.0
    rain_peak_mm_h: float = 60.0
    rain_scale_km: float = 60.0  # e-folding distance of the rain shield
    band_spacing_km: float = 35.0  # distance between rain bands

    def sample(self, x_km: float, y_km: float, t_s: float) -> Sample:
        cx, cy = self.track.at(t_s)
        dx, dy = x_km - cx, y_km - cy
        r = max(0.5, math.hypot(dx, dy))
        ratio = (self.rmax_km / r) ** self.b
        core = math.exp(-ratio)
        dp = -self.dp_hpa * (1.0 - core)
        speed = self.surface_factor * math.sqrt(
            self.b * self.dp_hpa * 100.0 / AIR_DENSITY * ratio * core
        )
        # Counter-clockwise tangent, turned towards the centre by the inflow angle.
        tx, ty = -dy / r, dx / r
        a = math.radians(self.inflow_deg)
        ux = tx * math.cos(a) - dx / r * math.sin(a)
        uy = ty * math.cos(a) - dy / r * math.sin(a)
        vx_ms, vy_ms = self.track.vx_kmh / 3.6, self.track.vy_kmh / 3.6
        u = speed * ux + 0.5 * vx_ms * min(1.0, speed / 10.0)
        v = speed * uy + 0.5 * vy_ms * min(1.0, speed / 10.0)
        # Rain: a shield decaying outwards, modulated by bands; little in the eye.
        bands = 0.45 + 0.55 * math.cos(math.pi * (r - self.rmax_km) / self.band_spacing_km) ** 2
        eye = min(1.0, (r / (0.35 * self.rmax_km)) ** 2)
        rain = self.rain_peak_mm_h * math.exp(-max(0.0, r - self.rmax_km) / self.rain_scale_km)
        rain *= bands * eye
        cloud = max(0.08, 1.0 - 0.9 * math.exp(-r / (2.5 * self.rmax_km)))
        return Sample(
            dp_hpa=dp,
            u_ms=u,
            v_ms=v,
            rain_mm_h=rain,
            gust_factor=1.45,
            cloud=cloud,
            dt_c=-3.0 * math.exp(-r / (2 * self.rmax_km)),
        )


@dataclass(frozen=True)
class StormCell:
    """A convective storm cell: a Gaussian rain core, outflow winds radiating from it,
    a pressure trough ahead (in the direction of motion) and a meso-high under the core."""

    track: Track
    radius_km: float = 4.0
    rain_peak_mm_h: float = 90.0
    outflow_ms: float = 16.0
    trough_hpa: float = 2.0
    mesohigh_hpa: float = 2.5

    def sample(self, x_km: float, y_km: float, t_s: float) -> Sample:
        cx, cy = self.track.at(t_s)
        dx, dy = x_km - cx, y_km - cy
        r = math.hypot(dx, dy)
        q = (r / self.radius_km) ** 2
        core = math.exp(-0.5 * q)
        speed = math.hypot(self.track.vx_kmh, self.track.vy_kmh) or 1.0
        ahead = (dx * self.track.vx_kmh + dy * self.track.vy_kmh) / speed  # km ahead of the core
        trough = -self.trough_hpa * math.exp(
            -(((ahead - 2.5 * self.radius_km) / (2 * self.radius_km)) ** 2)
        )
        # Outflow peaks on a ring around the core (gust front), radially outwards.
        ring = math.exp(-0.5 * ((r - 1.2 * self.radius_km) / (0.8 * self.radius_km)) ** 2)
        out = self.outflow_ms * ring
        ux, uy = (dx / r, dy / r) if r > 1e-6 else (0.0, 0.0)
        return Sample(
            dp_hpa=trough + self.mesohigh_hpa * core,
            u_ms=out * ux,
            v_ms=out * uy,
            rain_mm_h=self.rain_peak_mm_h * core,
            gust_factor=1.5 if ring > 0.2 else 1.0,
            cloud=max(0.1, 1.0 - 0.9 * math.exp(-0.5 * q / 9.0)),
            dt_c=-6.0 * math.exp(-0.5 * q / 2.0),
        )


def wind_dir_from_deg(u_ms: float, v_ms: float) -> float:
    """Meteorological direction the wind blows FROM, 0-360° clockwise from north."""
    if u_ms == 0.0 and v_ms == 0.0:
        return 0.0
    return (math.degrees(math.atan2(-u_ms, -v_ms)) + 360.0) % 360.0


# --- street drains ---------------------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    """A street drain and its catchment.

    ``area_ratio``: catchment area per area of street where the water ponds, so a
    rain of R mm/h brings ``runoff × area_ratio × R`` mm/h of depth to the street.
    ``capacity_mm_h``: what the drain carries away, as street depth per hour
    (the design rain times the same factors).  ``road_m``: road surface above the
    gauge datum; the outfall into the canal is throttled once the canal comes
    within ``head_m`` of the road and stops when the canal reaches it.
    """

    area_ratio: float
    runoff: float
    capacity_mm_h: float
    road_m: float
    head_m: float = 0.5
    max_depth_mm: float = 600.0  # deeper water spills over the kerbs into the neighbourhood

    def inflow_mm_h(self, rain_mm_h: float) -> float:
        return self.runoff * self.area_ratio * max(0.0, rain_mm_h)

    def outflow_capacity_mm_h(self, canal_m: float) -> float:
        free = (self.road_m - canal_m) / self.head_m
        return self.capacity_mm_h * max(0.0, min(1.0, free))


def design_capacity_mm_h(area_ratio: float, runoff: float, design_rain_mm_h: float) -> float:
    return runoff * area_ratio * design_rain_mm_h


def step_storage(storage_mm: float, inflow_mm_h: float, capacity_mm_h: float, dt_h: float) -> float:
    """Ponded depth after ``dt_h``: inflow in, at most ``capacity`` out (never below 0)."""
    out = min(capacity_mm_h * dt_h, storage_mm + inflow_mm_h * dt_h)
    return max(0.0, storage_mm + inflow_mm_h * dt_h - out)


def street_depth_mm(storage_mm: float, canal_m: float, road_m: float) -> float:
    """Water on the street: the ponded runoff, or tidal water over the kerb if deeper."""
    return max(storage_mm, (canal_m - road_m) * 1000.0)


def cap_storage(storage_mm: float, drain: Drain) -> float:
    return min(storage_mm, drain.max_depth_mm)
