"""The time-stepped scenario city: physics state, devices, faults and ground truth.

:class:`World` advances one simulated minute per :meth:`World.step` and returns
the readings devices report in that minute, as contract
:class:`~deltasense.contract.Reading` records with the device clock's ``ts``.
It never looks at a wall clock.  While it runs it records the true state
(noise-free) each minute; :meth:`World.labels` cuts the labelled events from
that record and from the injected faults.

Reporting as field nodes do: weather stations every 60 s, water nodes every
300 s and every 60 s while water stands on the street or a canal nears its
alarm level (FloodNet practice), lamps and cabinets every 300 s; each device
with its own phase inside its interval.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from backtest.scenarios import faults as F
from backtest.scenarios import physics as P
from backtest.scenarios.labels import CITY, Label, intervals, labels_from
from deltasense.contract import FieldValue, Kind, Reading
from deltasense.thresholds import Thresholds
from simulators import models
from simulators.city import DISTRICTS_BY_ID, DeviceSpec

MINUTE_MS: Final = 60_000
INTERVAL_S: Final[dict[Kind, int]] = {
    Kind.WEATHER: 60,
    Kind.WATER: 300,
    Kind.LAMP: 300,
    Kind.METER: 300,
}
FAST_WATER_S: Final = 60
CANAL_FAST_BELOW_BD3_M: Final = 0.30
LAMP_STANDBY_W: Final = models.LAMP_STANDBY_W
# Tolerated labels reach this far below an expected limit: a reading within the
# sensor's noise of the limit may raise an alert that is not false.
NEAR: Final = 0.85
MAINS: Final = frozenset({Kind.LAMP, Kind.METER, Kind.WEATHER})


@dataclass(frozen=True)
class Config:
    """Everything a scenario run depends on (with the seed, it fixes every reading)."""

    name: str
    seed: int
    start_ms: int
    minutes: int
    devices: tuple[DeviceSpec, ...]
    tide: P.Tide
    systems: tuple[P.Cyclone | P.StormCell, ...] = ()
    faults: tuple[F.Fault, ...] = ()
    site: str = "baclieu"

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise ValueError("a scenario lasts at least one minute")
        if self.start_ms % MINUTE_MS:
            raise ValueError("a scenario starts on a whole minute")

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.minutes * MINUTE_MS


@dataclass
class _Device:
    spec: DeviceSpec
    rng: random.Random
    x_km: float
    y_km: float
    phase_ms: int
    next_ms: int
    boot: int = 1
    seq: int = 0
    booted_ms: int = 0
    powered: bool = True
    rssi: float = -70.0
    frozen: dict[str, FieldValue] = field(default_factory=dict)  # stuck fields


@dataclass
class _Weather:
    t_offset: float
    p_mean: float
    gust_base: float
    rain_mm: float = 0.0  # true accumulation since boot (the counter's source)


@dataclass
class _Water:
    canal: bool
    mount_mm: float
    lag_h: float
    damping: float
    drain: P.Drain | None
    storage_mm: float = 0.0
    level_m: float = 0.0  # true level above the station datum (road or gauge datum), m
    reported_cm: float = 0.0


@dataclass
class _Lamp:
    rated_w: float
    cabinet: str | None
    photocell_on: bool = False
    lit: bool = False
    power_w: float = 0.0
    energy_wh: float = 0.0
    lux: float = 0.0


@dataclass
class _Meter:
    base_w: float
    lamps: list[str]
    power_w: float = 0.0
    energy_wh: float = 0.0


class World:
    def __init__(self, config: Config, thresholds: Thresholds) -> None:
        self.config = config
        self.thresholds = thresholds
        self.minute = 0
        self._devices: dict[str, _Device] = {}
        self.weather: dict[str, _Weather] = {}
        self.water: dict[str, _Water] = {}
        self.lamps: dict[str, _Lamp] = {}
        self.meters: dict[str, _Meter] = {}
        self._faults_by_device: dict[str, list[F.Fault]] = {}
        self._outages = [f for f in config.faults if isinstance(f, F.Outage)]
        self._spikes_done: set[F.Spike] = set()
        for fault in config.faults:
            if not isinstance(fault, F.Outage):
                self._faults_by_device.setdefault(fault.device, []).append(fault)
        self._build(config)
        # Truth, one value per minute and subject.
        self.times: list[int] = []
        self.truth: dict[str, dict[str, list[float]]] = {}
        self._recent_rain: dict[str, deque[float]] = {}

    # --- set-up ----------------------------------------------------------------------------
    def _build(self, config: Config) -> None:
        rng = random.Random(f"world:{config.name}:{config.seed}")
        lamps_by_district: dict[str, list[str]] = {}
        meters_by_district: dict[str, list[str]] = {}
        for spec in config.devices:
            drng = random.Random(f"{config.seed}:{spec.id}")
            interval_ms = INTERVAL_S[spec.kind] * 1000
            phase = drng.randrange(0, interval_ms, 1000)
            x, y = P.to_km(spec.lat, spec.lon)
            self._devices[spec.id] = _Device(
                spec=spec,
                rng=drng,
                x_km=x,
                y_km=y,
                phase_ms=phase,
                next_ms=config.start_ms + phase,
                boot=drng.randint(1, 40),
                booted_ms=config.start_ms - drng.randint(1, 30) * 86_400_000,
                rssi=drng.uniform(-88.0, -60.0),
            )
            if spec.kind is Kind.WEATHER:
                self.weather[spec.id] = _Weather(
                    t_offset=drng.uniform(-0.5, 0.5),
                    p_mean=P.P_ENV_HPA + drng.uniform(-0.6, 0.6),
                    gust_base=drng.uniform(1.3, 1.5),
                )
            elif spec.kind is Kind.WATER:
                canal = spec.variant == "canal"
                drain = None
                if not canal:
                    ratio, runoff = drng.uniform(8.0, 14.0), drng.uniform(0.7, 0.9)
                    # Drains sized for 20-30 mm/h of rain (HCMC designs ~25 mm/h, docs/REFERENCE.md).
                    cap = P.design_capacity_mm_h(ratio, runoff, drng.uniform(20.0, 30.0))
                    drain = P.Drain(
                        ratio,
                        runoff,
                        cap,
                        road_m=drng.uniform(1.9, 2.5),
                        max_depth_mm=drng.uniform(400, 700),
                    )
                self.water[spec.id] = _Water(
                    canal=canal,
                    mount_mm=4000.0 if canal else drng.uniform(1500.0, 3000.0),
                    lag_h=drng.uniform(0.2, 0.6),
                    damping=drng.uniform(0.97, 1.0),
                    drain=drain,
                )
            elif spec.kind is Kind.LAMP:
                rated = float(drng.choice((60, 90, 120, 150, 200, 250)))
                self.lamps[spec.id] = _Lamp(rated_w=rated, cabinet=None)
                lamps_by_district.setdefault(spec.district, []).append(spec.id)
            else:
                self.meters[spec.id] = _Meter(base_w=drng.uniform(40.0, 120.0), lamps=[])
                meters_by_district.setdefault(spec.district, []).append(spec.id)
        # Each lamp hangs on one cabinet of its district (round-robin); lamps in a
        # district without a cabinet are unmetered.
        for district, lamps in lamps_by_district.items():
            cabinets = meters_by_district.get(district, [])
            for i, lamp in enumerate(lamps):
                if cabinets:
                    cabinet = cabinets[i % len(cabinets)]
                    self.lamps[lamp].cabinet = cabinet
                    self.meters[cabinet].lamps.append(lamp)
        del rng

    # --- helpers ---------------------------------------------------------------------------
    def _faults(self, device: str, kind: type[F.Fault]) -> list[F.Fault]:
        return [f for f in self._faults_by_device.get(device, ()) if isinstance(f, kind)]

    def _active(self, device: str, kind: type[F.Fault], t_ms: int) -> F.Fault | None:
        for fault in self._faults(device, kind):
            start, end = fault.start_ms, fault.end_ms  # type: ignore[union-attr]
            if start <= t_ms < end:
                return fault
        return None

    def _district_powered(self, district: str, t_ms: int) -> bool:
        return not any(
            o.district == district and o.start_ms <= t_ms < o.end_ms for o in self._outages
        )

    def sample(self, x_km: float, y_km: float, t_ms: int) -> P.Sample:
        total = P.Sample()
        for system in self.config.systems:
            total = total + system.sample(x_km, y_km, t_ms / 1000.0)
        return total

    def coast_m(self, t_ms: int, p_hpa: float = P.P_ENV_HPA) -> float:
        return self.config.tide.level_m(t_ms / 1000.0) + P.inverse_barometer_m(p_hpa)

    def canal_m(self, t_ms: int, lag_h: float, damping: float, p_hpa: float) -> float:
        lagged = self.config.tide.level_m(t_ms / 1000.0 - lag_h * 3600.0)
        return P.canal_level_m(lagged, damping) + P.inverse_barometer_m(p_hpa)

    def dim_pct(self, t_ms: int) -> float:
        """Output level of the dim schedule (thresholds' ``lighting.dim_profile``)."""
        hour = models.local_hour(t_ms / 1000.0)
        profile = sorted(
            (int(k[:2]) + int(k[3:]) / 60.0, v)
            for k, v in self.thresholds.lighting.dim_profile.items()
        )
        level = profile[-1][1]  # before the first entry of the day, the last one holds
        for at, value in profile:
            if hour >= at:
                level = value
        return float(level)

    def _record(self, subject: str, name: str, value: float) -> None:
        self.truth.setdefault(subject, {}).setdefault(name, []).append(value)

    # --- one minute -------------------------------------------------------------------------
    def step(self) -> tuple[int, list[Reading]]:
        """Advance one minute; returns (end of the minute in ms, readings sent in it)."""
        cfg = self.config
        t0 = cfg.start_ms + self.minute * MINUTE_MS
        t1 = t0 + MINUTE_MS
        self.times.append(t0)
        ts_s = t0 / 1000.0
        lighting = self.thresholds.lighting
        elevation = models.solar_elevation_deg(ts_s)
        daylight = models.daylight_lux(elevation)
        city = self.sample(0.0, 0.0, t0)
        readings: list[Reading] = []

        # Power state changes (outages start and end) before anything draws power.
        for dev in self._devices.values():
            if dev.spec.kind in MAINS:
                powered = self._district_powered(dev.spec.district, t0)
                if powered and not dev.powered:
                    self._reboot(dev, t0)
                dev.powered = powered

        for dev in self._devices.values():
            kind = dev.spec.kind
            if kind is Kind.WEATHER:
                values = self._weather(dev, t0, daylight)
            elif kind is Kind.WATER:
                values = self._water(dev, t0)
            elif kind is Kind.LAMP:
                values = self._lamp(
                    dev,
                    t0,
                    daylight,
                    city.cloud,
                    lighting.photocell_on_lux,
                    lighting.photocell_off_lux,
                )
            else:
                continue  # cabinets after their lamps
            if values is not None:
                readings.extend(self._report(dev, t0, t1, values))
        for dev in self._devices.values():
            if dev.spec.kind is Kind.METER:
                values = self._meter(dev, t0)
                if values is not None:
                    readings.extend(self._report(dev, t0, t1, values))
        self.minute += 1
        readings.sort(key=lambda r: r.ts_ms)
        return t1, readings

    def _reboot(self, dev: _Device, t_ms: int) -> None:
        dev.boot += 1
        dev.seq = 0
        dev.booted_ms = t_ms
        if dev.spec.id in self.lamps:
            self.lamps[dev.spec.id].energy_wh = 0.0  # RAM counter: a reset with the new boot
        if dev.spec.id in self.weather:
            self.weather[dev.spec.id].rain_mm = 0.0

    # --- per kind: physics, truth, and the values a reading would carry ---------------------
    def _weather(
        self, dev: _Device, t_ms: int, daylight: float
    ) -> Callable[[], dict[str, FieldValue]] | None:
        st = self.weather[dev.spec.id]
        s = self.sample(dev.x_km, dev.y_km, t_ms)
        ts_s = t_ms / 1000.0
        # Background: sea breeze from models, as a vector.
        bg = models.mean_wind_ms(ts_s)
        bg_dir = math.radians(models.wind_dir_deg(ts_s))
        u = -bg * math.sin(bg_dir) + s.u_ms
        v = -bg * math.cos(bg_dir) + s.v_ms
        speed = math.hypot(u, v)
        gust_factor = max(st.gust_base, s.gust_factor)
        gust = speed * gust_factor
        dp = s.dp_hpa
        rain = s.rain_mm_h
        if dev.powered:
            st.rain_mm += rain / 60.0
        rid = dev.spec.id
        self._record(rid, "wind_ms", speed)
        self._record(rid, "gust_ms", gust)
        self._record(rid, "rain_mm", rain / 60.0)
        self._record(rid, "dp_hpa", dp)
        if not dev.powered:
            return None
        rng = dev.rng

        def values() -> dict[str, FieldValue]:
            t_base = models.air_temp_c(ts_s) + st.t_offset + s.dt_c - (1.5 if rain > 0.5 else 0.0)
            rh = models.rel_humidity_pct(t_base) + (10.0 if rain > 0.5 else 0.0)
            # 1-min means near the ground in a town: turbulence intensity ~15 %, which
            # is also what makes a 3-s gust ~1.45 × the mean (gust factor ≈ 1 + 3·TI).
            wind = max(0.0, speed * rng.gauss(1.0, 0.15))
            return {
                "t_c": round(t_base + rng.gauss(0.0, 0.1), 2),
                "rh_pct": round(max(0.0, min(100.0, rh + rng.gauss(0.0, 0.5))), 1),
                "p_hpa": round(
                    models.station_pressure_hpa(ts_s, st.p_mean) + dp + rng.gauss(0.0, 0.05), 2
                ),
                "wind_ms": round(wind, 2),
                "gust_ms": round(
                    max(wind, speed * rng.uniform(gust_factor - 0.1, gust_factor + 0.1)), 2
                ),
                "wind_dir_deg": round(
                    (P.wind_dir_from_deg(u, v) + rng.gauss(0.0, 15.0)) % 360.0, 1
                ),
                "rain_mm_total": models.rain_counter_mm(st.rain_mm),
                "lux": round(max(0.0, daylight * s.cloud * rng.uniform(0.95, 1.05)), 1),
            }

        return values

    def _water(self, dev: _Device, t_ms: int) -> Callable[[], dict[str, FieldValue]] | None:
        st = self.water[dev.spec.id]
        s = self.sample(dev.x_km, dev.y_km, t_ms)
        p = P.P_ENV_HPA + s.dp_hpa
        canal = self.canal_m(t_ms, st.lag_h, st.damping, p)
        if st.drain is None:
            st.level_m = canal
            self._record(dev.spec.id, "level_m", canal)
        else:
            capacity = st.drain.outflow_capacity_mm_h(canal)
            st.storage_mm = P.step_storage(
                st.storage_mm, st.drain.inflow_mm_h(s.rain_mm_h), capacity, 1 / 60
            )
            depth = P.street_depth_mm(st.storage_mm, canal, st.drain.road_m)
            st.level_m = depth / 1000.0
            self._record(dev.spec.id, "depth_mm", depth)
        rng = dev.rng

        def values() -> dict[str, FieldValue]:
            noise_cm = 1.0 if st.canal else 0.3  # waves on a canal; ultrasonic noise in a drain
            level_cm = round(st.level_m * 100.0 + rng.gauss(0.0, noise_cm), 1) + 0.0
            st.reported_cm = level_cm
            return {
                "level_cm": level_cm,
                "dist_mm": round(max(0.0, st.mount_mm - level_cm * 10.0), 0),
            }

        return values

    def _lamp(
        self, dev: _Device, t_ms: int, daylight: float, cloud: float, on_lux: float, off_lux: float
    ) -> Callable[[], dict[str, FieldValue]] | None:
        st = self.lamps[dev.spec.id]
        lid = dev.spec.id
        rng = dev.rng
        st.lux = max(0.0, daylight * cloud * rng.uniform(0.95, 1.05))
        st.photocell_on = models.photocell(st.photocell_on, st.lux)  # 16/65 lx (ANSI C136.10)
        lit = st.photocell_on
        if self._active(lid, F.DayBurn, t_ms):
            lit = True
        cycling = self._active(lid, F.Cycling, t_ms)
        if isinstance(cycling, F.Cycling) and st.photocell_on:
            lit = (self.minute // max(1, cycling.period_min // 2)) % 2 == 0
        dim = self.dim_pct(t_ms) if lit else 0.0
        if lit and not st.photocell_on:
            dim = 100.0  # day-burning at full output: the schedule only dims at night
        power = st.rated_w * dim / 100.0 if lit else LAMP_STANDBY_W
        drift = self._active(lid, F.Drift, t_ms)
        if isinstance(drift, F.Drift) and lit:
            power *= 1.0 + drift.pct(t_ms) / 100.0
        if self._active(lid, F.LampOut, t_ms) and lit:
            power = LAMP_STANDBY_W
        if not dev.powered:
            lit, dim, power = False, 0.0, 0.0
        st.lit, st.power_w = lit, power
        st.energy_wh += models.energy_wh(power, 60.0)
        self._record(lid, "lit", float(lit))
        self._record(lid, "power_w", power)
        self._record(lid, "lux", st.lux)
        self._record(lid, "photocell_on", float(st.photocell_on))
        if not dev.powered:
            return None

        def values() -> dict[str, FieldValue]:
            return {
                "on": lit,
                "dim_pct": dim,
                "power_w": round(power * rng.gauss(1.0, 0.01), 1),
                "energy_wh_total": round(st.energy_wh, 1),
                "lux": round(st.lux, 1),
            }

        return values

    def cabinet_power_w(self, meter: str) -> float:
        """A cabinet draws its controller's base load plus every lamp hanging on it."""
        st = self.meters[meter]
        return st.base_w + sum(self.lamps[lamp].power_w for lamp in st.lamps)

    def _meter(self, dev: _Device, t_ms: int) -> Callable[[], dict[str, FieldValue]] | None:
        st = self.meters[dev.spec.id]
        st.power_w = self.cabinet_power_w(dev.spec.id) if dev.powered else 0.0
        st.energy_wh += models.energy_wh(st.power_w, 60.0)  # the register survives outages
        self._record(dev.spec.id, "power_w", st.power_w)
        if not dev.powered:
            return None
        rng = dev.rng
        lamps_on = any(self.lamps[lamp].lit for lamp in st.lamps)

        def values() -> dict[str, FieldValue]:
            v = models.grid_voltage_v(t_ms / 1000.0, rng)
            pf = models.cabinet_pf(lamps_on, rng)
            power = st.power_w * rng.gauss(1.0, 0.005)
            return {
                "v": round(v, 1),
                "a": round(power / (v * pf), 3),
                "power_w": round(power, 1),
                "pf": round(pf, 3),
                "hz": round(models.grid_frequency_hz(rng), 3),
                "energy_wh_total": round(st.energy_wh, 1),
            }

        return values

    # --- reporting ---------------------------------------------------------------------------
    def _interval_ms(self, dev: _Device) -> int:
        if dev.spec.kind is Kind.WATER:
            st = self.water[dev.spec.id]
            if st.canal:
                bd3 = self.bd3_m()
                if st.level_m >= bd3 - CANAL_FAST_BELOW_BD3_M:
                    return FAST_WATER_S * 1000
            elif st.reported_cm * 10.0 > self.thresholds.flood.noise_floor_mm:
                return FAST_WATER_S * 1000
        return INTERVAL_S[dev.spec.kind] * 1000

    def bd3_m(self) -> float:
        """The BĐ III alarm level the city's canal stations are judged by: the
        thresholds' reference station (Gành Hào) until stations get their own."""
        stations = self.thresholds.flood.canal_stations
        ref = stations.get("ganh-hao") or next(iter(stations.values()), None)
        return ref.bd3_m if ref is not None else 2.20

    def _report(
        self, dev: _Device, t0: int, t1: int, values: Callable[[], dict[str, FieldValue]]
    ) -> list[Reading]:
        out: list[Reading] = []
        if dev.next_ms < t0:  # silent for a while (outage, dropout): next slot of the phase
            dev.next_ms = t0 + (dev.phase_ms - t0) % 60_000
        while dev.next_ms < t1:
            ts = dev.next_ms
            dev.next_ms += self._interval_ms(dev)
            if self._active(dev.spec.id, F.Dropout, ts):
                values()  # the node still samples (keeps its noise stream aligned)
                continue
            fields = values()
            fields = self._corrupt(dev, ts, fields)
            fields.update(self._health(dev, ts))
            skew = self._active(dev.spec.id, F.ClockSkew, ts)
            device_ts = ts + (skew.offset_ms if isinstance(skew, F.ClockSkew) else 0)
            out.append(
                Reading(
                    site=self.config.site,
                    district=dev.spec.district,
                    kind=dev.spec.kind,
                    device=dev.spec.id,
                    ts_ms=device_ts,
                    seq=dev.seq,
                    boot=dev.boot,
                    fields=fields,
                )
            )
            dev.seq += 1
        return out

    def _corrupt(
        self, dev: _Device, ts: int, fields: dict[str, FieldValue]
    ) -> dict[str, FieldValue]:
        for fault in self._faults_by_device.get(dev.spec.id, ()):
            if isinstance(fault, F.Stuck) and fault.field in fields:
                if fault.start_ms <= ts < fault.end_ms:
                    fields[fault.field] = dev.frozen.setdefault(fault.field, fields[fault.field])
                else:
                    dev.frozen.pop(fault.field, None)
            elif (
                isinstance(fault, F.Spike)
                and fault.field in fields
                and fault not in self._spikes_done
            ):
                value = fields[fault.field]
                if ts >= fault.at_ms and not isinstance(value, bool):
                    fields[fault.field] = round(value + fault.delta, 2)
                    self._spikes_done.add(fault)
        return fields

    def _health(self, dev: _Device, ts: int) -> dict[str, FieldValue]:
        health: dict[str, FieldValue] = {
            "rssi_dbm": round(dev.rssi + dev.rng.gauss(0.0, 2.0)),
            "up_s": max(0, (ts - dev.booted_ms) // 1000),
        }
        if dev.spec.kind is Kind.WATER:  # battery nodes
            health["batt_v"] = round(dev.rng.uniform(3.8, 4.1), 2)
        return health

    # --- ground truth -------------------------------------------------------------------------
    def lamp_ratings(self) -> dict[str, float]:
        """The city's lamp register: each lamp's nameplate power, W (what a site file's
        ``[lighting.lamps_rated_w]`` holds for a real city)."""
        return {device: lamp.rated_w for device, lamp in self.lamps.items()}

    def labels(self) -> list[Label]:
        out: list[Label] = []
        out += self._flood_labels()
        out += self._storm_labels()
        out += self._fault_labels()
        out.sort(key=lambda lb: (lb.start_ms, lb.kind, lb.subject))
        return out

    def _spans(self, flags: list[bool]) -> list[tuple[int, int]]:
        return intervals(self.times, flags, step_ms=MINUTE_MS)

    def _flood_labels(self) -> list[Label]:
        out: list[Label] = []
        warn = self.thresholds.flood.street_warning_mm
        bd3 = self.bd3_m()
        for device, st in self.water.items():
            district = self._devices[device].spec.district
            series = self.truth.get(device, {})
            if st.canal:
                level = series.get("level_m", [])
                out += labels_from(
                    "canal-bd3", "flood", device, district, self._spans([v >= bd3 for v in level])
                )
                near = self._spans([v >= bd3 - 0.05 for v in level])
                out += labels_from(
                    "canal-near-bd3", "flood", device, district, near, expected=False
                )
            else:
                depth = series.get("depth_mm", [])
                out += labels_from(
                    "street-flood",
                    "flood",
                    device,
                    district,
                    self._spans([d >= warn for d in depth]),
                )
                near = self._spans([d >= NEAR * warn for d in depth])
                out += labels_from("street-water", "flood", device, district, near, expected=False)
        return out

    def _storm_labels(self) -> list[Label]:
        th = self.thresholds
        cap6 = th.storm.wind_cap_ms.get(6, 10.8)
        cap8 = th.storm.wind_cap_ms.get(8, 17.2)
        out: list[Label] = []
        city_hard = [False] * len(self.times)
        city_soft = [False] * len(self.times)
        for device in self.weather:
            district = self._devices[device].spec.district
            series = self.truth.get(device, {})
            wind10 = _trailing_mean(series.get("wind_ms", []), 10)
            gust = series.get("gust_ms", [])
            rain = series.get("rain_mm", [])
            rain1h = _trailing_sum(rain, 60)
            rain3h = _trailing_sum(rain, 180)
            rain24h = _trailing_sum(rain, 1440)
            dp = series.get("dp_hpa", [])
            fall6h = [dp[max(0, i - 360)] - dp[i] for i in range(len(dp))]
            hard = [
                g >= th.storm.gust_warning_ms
                or w >= cap8
                or r1 >= th.rain.mm_1h.urban_warning
                or r3 >= th.rain.mm_3h_urban_critical
                for g, w, r1, r3 in zip(gust, wind10, rain1h, rain3h, strict=True)
            ]
            soft = [
                h
                or w >= cap6
                or g >= NEAR * th.storm.gust_warning_ms
                or r1 >= th.rain.mm_1h.heavy
                or r24 >= th.rain.mm_24h.moderate
                or f >= th.storm.pressure_fall_6h_hpa
                for h, w, g, r1, r24, f in zip(
                    hard, wind10, gust, rain1h, rain24h, fall6h, strict=True
                )
            ]
            out += labels_from("station-storm", "storm", device, district, self._spans(hard))
            out += labels_from(
                "station-weather", "storm", device, district, self._spans(soft), expected=False
            )
            city_hard = [a or b for a, b in zip(city_hard, hard, strict=True)]
            city_soft = [a or b for a, b in zip(city_soft, soft, strict=True)]
        out += labels_from("city-storm", "storm", CITY, "", self._spans(city_hard), scope="city")
        out += labels_from(
            "city-weather", "storm", CITY, "", self._spans(city_soft), scope="city", expected=False
        )
        return out

    def _evidence_ms(self, fault: F.Fault, device: str) -> int:
        """How long the fault must last before its definition can call it: offline
        after 3 missed intervals and stuck over 60 min (docs/REFERENCE.md), a drift once
        the median of its window (half of it) has drifted, cycling once the switches
        per hour have happened."""
        t = self.thresholds
        lighting = t.lighting
        if isinstance(fault, F.Dropout):
            interval_s = INTERVAL_S[self._devices[device].spec.kind]
            return t.health.offline_after_missed_intervals * interval_s * 1000
        if isinstance(fault, F.Stuck):
            return t.health.stuck.window_min * MINUTE_MS
        if isinstance(fault, F.Drift):
            return lighting.drift_window_min * MINUTE_MS // 2
        if isinstance(fault, F.Cycling):
            half_period_min = max(1, fault.period_min // 2)
            return lighting.cycling_switches_per_h * half_period_min * MINUTE_MS
        return 0

    def _fault_labels(self) -> list[Label]:
        lighting = self.thresholds.lighting
        out: list[Label] = []
        times = self.times
        end = self.config.end_ms
        for fault in self.config.faults:
            if isinstance(fault, F.Outage):
                d = fault.district
                span = [(fault.start_ms, min(fault.end_ms, end))]
                out += labels_from("mass-outage", "health", d, d, span, scope="district")
                out += labels_from(
                    "dark-district", "energy", d, d, span, scope="district", expected=False
                )
                continue
            device = fault.device
            district = self._devices[device].spec.district
            if isinstance(fault, F.Spike):
                span = [
                    (fault.at_ms, fault.at_ms + INTERVAL_S[self._devices[device].spec.kind] * 1000)
                ]
                out += labels_from("spike", "health", device, district, span)
                continue
            inside = [fault.start_ms <= t < fault.end_ms for t in times]
            if isinstance(fault, F.Dropout | F.Stuck | F.ClockSkew):
                what = {F.Dropout: "offline", F.Stuck: "stuck", F.ClockSkew: "clock-skew"}[
                    type(fault)
                ]
                out += labels_from(
                    what,
                    "health",
                    device,
                    district,
                    self._spans(inside),
                    evidence_ms=self._evidence_ms(fault, device),
                )
                continue
            series = self.truth.get(device, {})
            lit = [v > 0 for v in series.get("lit", [])]
            should = [v > 0 for v in series.get("photocell_on", [])]
            if isinstance(fault, F.DayBurn):
                lux = series.get("lux", [])
                flags = [
                    i and o and x > lighting.day_burn.lux_above
                    for i, o, x in zip(inside, lit, lux, strict=True)
                ]
                what = "day-burning"
            elif isinstance(fault, F.LampOut):
                flags = [i and s for i, s in zip(inside, should, strict=True)]
                what = "lamp-out"
            elif isinstance(fault, F.Drift):
                flags = [
                    i and o and fault.pct(t) > lighting.power_drift_pct
                    for i, o, t in zip(inside, lit, times, strict=True)
                ]
                what = "power-drift"
            else:
                flags = [i and s for i, s in zip(inside, should, strict=True)]
                what = "cycling"
            spans = self._spans(flags)
            evidence_ms = self._evidence_ms(fault, device)
            out += labels_from(what, "energy", device, district, spans, evidence_ms=evidence_ms)
            cabinet = self.lamps[device].cabinet
            if cabinet is not None:  # the cabinet really draws more (or less): not a false alert
                out += labels_from(
                    "cabinet-anomaly", "energy", cabinet, district, spans, expected=False
                )
        return out


def _trailing_sum(values: list[float], n: int) -> list[float]:
    out: list[float] = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= n:
            total -= values[i - n]
        out.append(total)
    return out


def _trailing_mean(values: list[float], n: int) -> list[float]:
    sums = _trailing_sum(values, n)
    return [s / min(i + 1, n) for i, s in enumerate(sums)]


def district_centre_km(district: str) -> tuple[float, float]:
    d = DISTRICTS_BY_ID[district]
    return P.to_km(d.lat, d.lon)
