"""A virtual device: the field firmware (``firmware/ds``) run under CPython.

Device behaviour (seq, boot, counters, hist, lamp control, water event mode,
commands, cfg, the MQTT session) is the firmware's :class:`ds.node.Node`; this
module only supplies what sits behind the HAL: simulated sensors whose physics
are :mod:`simulators.models`, a simulated system (reset, NTP, heap, RSSI,
watchdog) and a clock.  :mod:`simulators.run` runs many of them against a broker.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import ds
from ds import clock, config, encode, node, spool, tls

from deltasense.contract import Channel, Kind, device_topic
from simulators import models
from simulators.city import DeviceSpec

FW_VERSION: Final = "ds-" + str(ds.FW_VERSION)
HW: Final = "sim"
WILL_PAYLOAD: Final = node.WILL


class HostClock:
    """The HAL clock interface over a settable time: ``now_s`` (epoch seconds) is
    the host clock for live runs, or set by the caller for stepped runs.

    A live clock can run ``rate`` times as fast as the host clock (``set_rate``):
    sensors, NTP and the node then share one accelerated time, while the broker
    and the network keep real time. ``reset_rate()`` returns to the host clock."""

    def __init__(self, live: bool = True) -> None:
        self.live = live
        self._now_s = 0.0
        self.rate = 1.0
        self._anchor = (0.0, 0.0)  # (host s, simulated s) at the last rate change

    def now(self) -> float:
        if not self.live:
            return self._now_s
        host0, sim0 = self._anchor
        return sim0 + (time.time() - host0) * self.rate

    def set_rate(self, rate: float) -> None:
        """From now on run ``rate`` times as fast as the host clock, without a jump."""
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        host = time.time()
        host0, sim0 = self._anchor
        self._anchor = (host, sim0 + (host - host0) * self.rate)
        self.rate = rate

    def reset_rate(self) -> None:
        """Back to the host clock (drops any lead the simulated time gained)."""
        self.rate, self._anchor = 1.0, (0.0, 0.0)

    def set(self, now_s: float) -> None:
        self._now_s = now_s

    def ticks_ms(self) -> int:
        return int(self.now() * 1000) % (1 << 30)

    def ticks_diff(self, a: int, b: int) -> int:
        return int(clock.ticks_diff(a, b))

    def ticks_add(self, t: int, delta: int) -> int:
        return (t + delta) % (1 << 30)

    def sleep_ms(self, ms: int) -> None:  # drivers only; the simulated ones never sleep
        pass

    def unix_ms(self) -> int:
        return int(self.now() * 1000)

    def set_unix_ms(self, ms: int) -> None:
        pass  # the simulated RTC is the host clock: NTP agrees with it


CLOCK: Final = HostClock(live=True)
clock.use(CLOCK)


class _Watchdog:
    def __init__(self) -> None:
        self.fed = 0

    def feed(self) -> None:
        self.fed += 1


class SimSystem:
    """The board around the firmware: reset, NTP, heap, RSSI, watchdog."""

    hw = HW

    def __init__(self, device: VirtualDevice) -> None:
        self._device = device
        self.wdt = _Watchdog()
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        self._device.reset_requested = True

    def reset_cause(self) -> str:
        return "soft" if self._device.boots_here > 1 else "power_on"

    def ntp_unix_ms(self, host: str) -> int:
        return int(CLOCK.now() * 1000)

    def heap_free(self) -> int:
        s = self._device.sensors
        return max(0, s.heap_base + s.rng.randint(-4096, 4096))

    def rssi(self) -> int:
        s = self._device.sensors
        return round(s.rssi_base + s.rng.gauss(0.0, 2.0))


class SimSensors:
    """What the drivers of one kind would report, from the value models.

    Cumulative registers (rain gauge, PZEM energy) live here like the hardware's
    own and survive a reboot of the node.
    """

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self.rng = rng = random.Random(spec.seed)
        # Fixed character of this unit (siting, calibration, hardware).
        self.rssi_base = rng.uniform(-88.0, -58.0)
        self.heap_base = rng.randint(90_000, 140_000)
        self._t_offset = rng.uniform(-0.5, 0.5)
        self._p_mean = 1008.0 + rng.uniform(-0.6, 0.6)
        self.mount_mm = rng.uniform(1500.0, 3000.0) if spec.variant != "canal" else 4000.0
        self._tide_phase_h = rng.uniform(0.0, 0.75)
        self._rated_w = float(rng.choice((60, 90, 120, 150, 200, 250)))
        self._lamp_load_w = rng.randint(12, 40) * rng.choice((90.0, 120.0, 150.0))
        self._cabinet_base_w = rng.uniform(40.0, 120.0)
        self._meter_wh = rng.uniform(50_000.0, 5_000_000.0)
        self._lamp_wh = 0.0
        self._rain_mm = 0.0
        self._cabinet_on = False
        self._draw_w = 0.0  # power held since the last reading, for energy registers
        self._last_s: float | None = None
        self.lamp = (False, 0.0)  # the lamp output the firmware set (on, pct)

    # --- the interface ds.node uses -------------------------------------------------
    def read(self) -> dict[str, Any]:
        now = CLOCK.now()
        dt = 0.0 if self._last_s is None else max(0.0, now - self._last_s)
        self._last_s = now
        return _READERS[self.spec.kind](self, now, dt)

    def lux(self) -> float:
        return models.ambient_lux(CLOCK.now(), self.rng)

    def set_lamp(self, on: bool, pct: float) -> None:
        self.lamp = (on, pct)

    def battery_v(self) -> float | None:
        if self.spec.kind is Kind.WATER:  # drain and canal nodes run on batteries
            return round(self.rng.uniform(3.7, 4.1), 2)
        return None

    # --- per kind ---------------------------------------------------------------------
    def _weather(self, now: float, dt: float) -> dict[str, Any]:
        rng = self.rng
        rate = models.rain_rate_mm_h(now, self.spec.seed)
        self._rain_mm += rate * dt / 3600.0
        showering = rate > 0
        t_base = models.air_temp_c(now) + self._t_offset - (2.0 if showering else 0.0)
        rh = models.rel_humidity_pct(t_base) + (8.0 if showering else 0.0) + rng.gauss(0.0, 0.5)
        wind = models.mean_wind_ms(now) + rng.gauss(0.0, 0.5) + (1.0 if showering else 0.0)
        wind = max(1.0, min(6.0, wind))
        gust = wind * rng.uniform(1.2, 1.8)
        return {
            "t_c": t_base + rng.gauss(0.0, 0.1),
            "rh_pct": max(0.0, min(100.0, rh)),
            "p_hpa": models.station_pressure_hpa(now, self._p_mean) + rng.gauss(0, 0.05),
            "wind_ms": round(wind, 2),
            "gust_ms": round(max(gust, wind), 2),
            "wind_dir_deg": (models.wind_dir_deg(now) + rng.gauss(0.0, 15.0)) % 360.0,
            "rain_mm_total": models.rain_counter_mm(self._rain_mm),
            "lux": models.ambient_lux(now, rng, cloud=0.3 if showering else 0.85),
        }

    def _water(self, now: float, dt: float) -> dict[str, Any]:
        if self.spec.variant == "canal":
            level = models.tide_cm(now, self._tide_phase_h) + self.rng.gauss(0.0, 1.0)
        else:
            level = models.drain_level_cm(self.rng)
        dist = round(models.distance_mm(self.mount_mm, level))
        # The firmware's rule: level = mount height - distance (in whole mm).
        return {"level_cm": round((self.mount_mm - dist) / 10.0, 1) + 0.0, "dist_mm": dist}

    def _lamp(self, now: float, dt: float) -> dict[str, Any]:
        self._lamp_wh += models.energy_wh(self._draw_w, dt)
        on, pct = self.lamp
        power = models.lamp_power_w(on, pct, self._rated_w, self.rng)
        self._draw_w = power
        return {
            "power_w": round(power, 1),
            "energy_wh_total": round(self._lamp_wh, 1),
            "lux": self.lux(),
        }

    def _meter(self, now: float, dt: float) -> dict[str, Any]:
        rng = self.rng
        self._meter_wh += models.energy_wh(self._draw_w, dt)
        lux = models.ambient_lux(now, rng)
        self._cabinet_on = models.photocell(self._cabinet_on, lux)
        dim = models.dim_profile_pct(now)
        power = models.cabinet_power_w(
            self._cabinet_on, dim, self._lamp_load_w, self._cabinet_base_w
        )
        power *= rng.gauss(1.0, 0.01)
        self._draw_w = power
        v = models.grid_voltage_v(now, rng)
        pf = models.cabinet_pf(self._cabinet_on, rng)
        return {
            "v": v,
            "a": power / (v * pf),
            "power_w": power,
            "pf": pf,
            "hz": models.grid_frequency_hz(rng),
            "energy_wh_total": round(self._meter_wh, 1),
        }


_READERS: Final = {
    Kind.WEATHER: SimSensors._weather,
    Kind.WATER: SimSensors._water,
    Kind.LAMP: SimSensors._lamp,
    Kind.METER: SimSensors._meter,
}


def node_config(
    spec: DeviceSpec,
    *,
    site: str,
    host: str,
    port: int,
    user: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """The local config file ``deltasense firmware flash`` would write for this device."""
    return {
        "site": site,
        "district": spec.district,
        "kind": spec.kind.value,
        "device": spec.id,
        "board": "sim",
        "broker_host": host,
        "broker_port": port,
        "mqtt_user": user or "",
        "mqtt_pass": password or "",
        "lat": spec.lat,
        "lon": spec.lon,
        "station": "canal" if spec.variant == "canal" else "drain",
        "rain_mm_per_tip": models.RAIN_TIP_MM,
    }


class VirtualDevice:
    """One simulated node: the firmware with simulated hardware and its own flash
    (a temporary directory).  ``reading(now)`` runs one sampling step of the
    firmware at ``now`` (epoch seconds) for stepped tests; :mod:`simulators.run`
    runs the whole node (``self.node.run()``) live."""

    def __init__(
        self,
        spec: DeviceSpec,
        *,
        boot: int = 0,
        boot_ts: float = 0.0,
        interval_s: float = 60.0,
        site: str = "baclieu",
        host: str = "127.0.0.1",
        port: int = 1883,
        flash_dir: Path | None = None,
        live: bool = False,
        user: str | None = None,
        password: str | None = None,
        ca_der: bytes | None = None,
        **node_kwargs: Any,
    ) -> None:
        if boot < 0:
            raise ValueError(f"boot must be >= 0, got {boot}")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.spec = spec
        self.interval_s = interval_s
        self.live = live
        self._tmp = None if flash_dir is not None else tempfile.TemporaryDirectory(prefix="dsim-")
        self.flash = flash_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.flash.mkdir(parents=True, exist_ok=True)
        local = node_config(spec, site=site, host=host, port=port, user=user, password=password)
        local["broker_tls"] = ca_der is not None
        if ca_der is not None:  # pinned as a board pins it: DER in the node's own flash
            (self.flash / "ca.der").write_bytes(ca_der)
            local["ca_file"] = str(self.flash / "ca.der")
        (self.flash / "config.json").write_text(json.dumps(local))
        # Counters as a node that has booted ``boot`` times before.
        (self.flash / "counters.json").write_text(json.dumps({"boot": boot - 1, "seq": 0}))
        self.sensors = SimSensors(spec)
        self.system = SimSystem(self)
        self.reset_requested = False
        self.boots_here = 0
        self._node_kwargs = node_kwargs
        CLOCK.live = live
        if not live:
            CLOCK.set(boot_ts)
        self.node = self._boot()

    def _boot(self) -> Any:
        self.boots_here += 1
        self.reset_requested = False
        cfg = config.Config(str(self.flash / "config.json"), str(self.flash / "cfg_remote.json"))
        # The simulator runs faster than field hardware allows (interval_s >= 5 s in
        # config.SCHEMA): an accelerated node, set past validation on purpose.
        for key in ("interval_s", "idle_interval_s", "event_interval_s"):
            cfg.cfg[key] = self.interval_s
        kwargs = dict(self._node_kwargs)
        if cfg["broker_tls"] and "opener" not in kwargs:
            kwargs["opener"] = tls.opener(tls.load(cfg["ca_file"]))  # the firmware's TLS
        n = node.Node(
            cfg,
            self.sensors,
            spool.Spool(str(self.flash / "spool"), capacity=4096, rec_size=400),
            spool.Counters(str(self.flash / "counters.json")),
            self.system,
            **kwargs,
        )
        n.wall.sync(self.system.ntp_unix_ms(""))  # a stepped device is synced from the start
        return n

    def close(self) -> None:
        self.node.spool.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    @property
    def boot(self) -> int:
        return int(self.node.boot)

    def topic(self, site: str, channel: Channel) -> str:
        return device_topic(site, self.spec.district, self.spec.kind, self.spec.id, channel)

    def reboot(self, now: float) -> None:
        """Power cycle: the firmware boots again (boot + 1, ``seq`` from 0)."""
        if not self.live:
            CLOCK.set(now)
        self.node.counters.save()
        self.node.spool.close()
        self.node = self._boot()

    # --- stepped runs -------------------------------------------------------------------
    def reading(self, now: float) -> dict[str, Any]:
        """The firmware's next reading at ``now``, as the contract dict it sends."""
        payload = self.tele_payload(now)
        out: dict[str, Any] = json.loads(payload)
        return out

    def tele_payload(self, now: float) -> bytes:
        CLOCK.set(now)
        n = self.node
        if self.spec.kind is Kind.LAMP:
            n.control_step()
        data: bytes = n.sample()
        records = n.spool.peek(1)
        n.spool.advance(len(records))  # delivered at once in a stepped run
        return data

    def status_payload(self, state: str, now: float) -> bytes:
        return bytes(encode.status(state, int(now * 1000)))

    def meta_payload(self) -> bytes:
        return bytes(self.node.meta())

    def cfg_hash(self) -> str:
        return str(self.node.config.hash)
