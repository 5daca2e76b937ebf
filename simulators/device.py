"""A virtual device: the part a later issue replaces with the real firmware.

It keeps what a node keeps (boot counter, ``seq``, cumulative counters, the
lamp's switch state), samples the value models and builds contract payloads.
No I/O: :mod:`simulators.run` moves the bytes.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Final

import msgspec

from deltasense.contract import Channel, Kind, device_topic
from simulators import models
from simulators.city import DeviceSpec

FW_VERSION: Final = "sim-0.1"
HW: Final = "sim"
WILL_PAYLOAD: Final = b'{"state":"offline"}'

_encode = msgspec.json.Encoder().encode


class VirtualDevice:
    """One simulated node.  ``reading(now)`` advances its state to ``now``
    (epoch seconds, UTC) and returns the next reading as a contract dict."""

    def __init__(
        self,
        spec: DeviceSpec,
        *,
        boot: int = 0,
        boot_ts: float = 0.0,
        interval_s: float = 60.0,
    ) -> None:
        if boot < 0:
            raise ValueError(f"boot must be >= 0, got {boot}")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.spec = spec
        self.boot = boot
        self.boot_ts = boot_ts
        self.interval_s = interval_s
        self.seq = 0
        self._rng = random.Random(spec.seed)
        rng = self._rng
        # Fixed character of this unit (siting, calibration, hardware).
        self._rssi_base = rng.uniform(-88.0, -58.0)
        self._heap_base = rng.randint(90_000, 140_000)
        self._t_offset = rng.uniform(-0.5, 0.5)
        self._p_mean = 1008.0 + rng.uniform(-0.6, 0.6)
        self._mount_mm = rng.uniform(1500.0, 3000.0) if spec.variant != "canal" else 4000.0
        self._tide_phase_h = rng.uniform(0.0, 0.75)
        self._rated_w = float(rng.choice((60, 90, 120, 150, 200, 250)))
        self._lamp_load_w = rng.randint(12, 40) * rng.choice((90.0, 120.0, 150.0))
        self._cabinet_base_w = rng.uniform(40.0, 120.0)
        # Counters: the meter register survives reboots; the rest live in RAM.
        self._meter_wh = rng.uniform(50_000.0, 5_000_000.0)
        self._lamp_wh = 0.0
        self._rain_mm = 0.0
        self._on = False
        self._draw_w = 0.0  # power held since the last reading, for energy counters
        self._last_ts: float | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    def topic(self, site: str, channel: Channel) -> str:
        return device_topic(site, self.spec.district, self.spec.kind, self.spec.id, channel)

    def reboot(self, now: float) -> None:
        """Power cycle: next boot number, ``seq`` from 0, RAM counters cleared."""
        self.boot += 1
        self.boot_ts = now
        self.seq = 0
        self._lamp_wh = 0.0
        self._rain_mm = 0.0
        self._last_ts = None

    # --- payloads -------------------------------------------------------------------
    def reading(self, now: float) -> dict[str, Any]:
        dt = 0.0 if self._last_ts is None else max(0.0, now - self._last_ts)
        self._last_ts = now
        out: dict[str, Any] = {"ts": int(now * 1000), "seq": self.seq, "boot": self.boot}
        self.seq += 1
        sample = _SAMPLERS[self.spec.kind]
        out.update(sample(self, now, dt))
        out.update(self._health(now))
        return out

    def tele_payload(self, now: float) -> bytes:
        return _encode(self.reading(now))

    def status_payload(self, state: str, now: float) -> bytes:
        return _encode({"state": state, "ts": int(now * 1000)})

    def meta_payload(self) -> bytes:
        meta: dict[str, Any] = {
            "fw": FW_VERSION,
            "hw": HW,
            "boot": self.boot,
            "reset_cause": "power_on",
            "lat": self.spec.lat,
            "lon": self.spec.lon,
            "cfg_hash": self.cfg_hash(),
            "interval_s": self.interval_s,
        }
        if self.spec.kind is Kind.WATER:
            meta["station"] = "canal" if self.spec.variant == "canal" else "drain"
        return _encode(meta)

    def cfg_hash(self) -> str:
        cfg = _encode({"interval_s": self.interval_s, "kind": self.spec.kind.value})
        return hashlib.sha256(cfg).hexdigest()[:12]

    # --- per kind ----------------------------------------------------------------------
    def _health(self, now: float) -> dict[str, Any]:
        rng = self._rng
        health: dict[str, Any] = {
            "rssi_dbm": round(self._rssi_base + rng.gauss(0.0, 2.0)),
            "up_s": max(0, int(now - self.boot_ts)),
            "heap_b": max(0, self._heap_base + rng.randint(-4096, 4096)),
        }
        if self.spec.kind is Kind.WATER:  # drain and canal nodes run on batteries
            health["batt_v"] = round(rng.uniform(3.7, 4.1), 2)
        return health

    def _weather(self, now: float, dt: float) -> dict[str, Any]:
        rng = self._rng
        rate = models.rain_rate_mm_h(now, self.spec.seed)
        self._rain_mm += rate * dt / 3600.0
        showering = rate > 0
        t_base = models.air_temp_c(now) + self._t_offset - (2.0 if showering else 0.0)
        t_c = t_base + rng.gauss(0.0, 0.1)
        rh = models.rel_humidity_pct(t_base) + (8.0 if showering else 0.0) + rng.gauss(0.0, 0.5)
        wind = models.mean_wind_ms(now) + rng.gauss(0.0, 0.5) + (1.0 if showering else 0.0)
        wind = max(1.0, min(6.0, wind))
        gust = wind * rng.uniform(1.2, 1.8)
        wind_dir = (models.wind_dir_deg(now) + rng.gauss(0.0, 15.0)) % 360.0
        return {
            "t_c": round(t_c, 2),
            "rh_pct": round(max(0.0, min(100.0, rh)), 1),
            "p_hpa": round(models.station_pressure_hpa(now, self._p_mean) + rng.gauss(0, 0.05), 2),
            "wind_ms": round(wind, 2),
            "gust_ms": round(max(gust, wind), 2),
            "wind_dir_deg": round(wind_dir, 1),
            "rain_mm_total": models.rain_counter_mm(self._rain_mm),
            "lux": round(models.ambient_lux(now, rng, cloud=0.3 if showering else 0.85), 1),
        }

    def _water(self, now: float, dt: float) -> dict[str, Any]:
        if self.spec.variant == "canal":
            level = models.tide_cm(now, self._tide_phase_h) + self._rng.gauss(0.0, 1.0)
        else:
            level = models.drain_level_cm(self._rng)
        return {
            "level_cm": round(level, 1) + 0.0,  # + 0.0 turns -0.0 into 0.0
            "dist_mm": round(models.distance_mm(self._mount_mm, level), 0),
        }

    def _lamp(self, now: float, dt: float) -> dict[str, Any]:
        # Energy for the interval just ended, at the state held during it.
        self._lamp_wh += models.energy_wh(self._draw_w, dt)
        lux = models.ambient_lux(now, self._rng)
        self._on = models.photocell(self._on, lux)
        dim = models.dim_profile_pct(now) if self._on else 0.0
        power = models.lamp_power_w(self._on, dim, self._rated_w, self._rng)
        self._draw_w = power
        return {
            "on": self._on,
            "dim_pct": dim,
            "power_w": round(power, 1),
            "energy_wh_total": round(self._lamp_wh, 1),
            "lux": round(lux, 1),
        }

    def _meter(self, now: float, dt: float) -> dict[str, Any]:
        rng = self._rng
        self._meter_wh += models.energy_wh(self._draw_w, dt)
        lux = models.ambient_lux(now, rng)
        self._on = models.photocell(self._on, lux)
        dim = models.dim_profile_pct(now)
        power = models.cabinet_power_w(self._on, dim, self._lamp_load_w, self._cabinet_base_w)
        power *= rng.gauss(1.0, 0.01)
        self._draw_w = power
        v = models.grid_voltage_v(now, rng)
        pf = models.cabinet_pf(self._on, rng)
        return {
            "v": round(v, 1),
            "a": round(power / (v * pf), 3),
            "power_w": round(power, 1),
            "pf": round(pf, 3),
            "hz": round(models.grid_frequency_hz(rng), 3),
            "energy_wh_total": round(self._meter_wh, 1),
        }


_SAMPLERS: Final = {
    Kind.WEATHER: VirtualDevice._weather,
    Kind.WATER: VirtualDevice._water,
    Kind.LAMP: VirtualDevice._lamp,
    Kind.METER: VirtualDevice._meter,
}
