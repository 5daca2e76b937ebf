"""The sensors and outputs of a real node, built from the drivers for its kind.

:func:`build` reads the board profile (``board.json``: pins and buses) and the
config (``kind``, ``water_sensor``, calibration) and wires the drivers:

- weather: BME280 + BH1750 on I²C, rain gauge and anemometer pulse counters,
  wind vane on an ADC;
- water: A02YYUW on the sensor UART or JSN-SR04T on trigger/echo pins (a
  BME280 on I²C, if fitted, corrects the JSN's speed of sound);
- lamp: relay + PWM output, BH1750 as the photocell, PZEM-004T on the lamp feed;
- meter: PZEM-004T.

The result has the interface :class:`ds.node.Node` expects (``read()``,
``lux()``, ``set_lamp(on, pct)``, ``battery_v()``, ``poll()``), the same one the
simulator's simulated sensors offer. ``buses`` is anything with the
constructors of :mod:`ds.hal` (``make_i2c``, ``make_uart``, ``make_pin``,
``make_adc``, ``make_pwm``, ``time_pulse_us``, ``sleep_us``): the module
itself on a board, fakes in tests.

A sensor that is missing or fails leaves its fields out of the reading (the
contract's "not measured") instead of stopping the node; a BME280 absent at
boot is looked for again at each reading.
"""

from ds.drivers import ultrasonic

# Other drivers are imported by build() for the kinds that use them: on a
# 96 KiB heap, code a node never runs should not be loaded.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# [design] Speed-of-sound correction for a JSN-SR04T without a BME280: a
# typical air temperature in the Mekong delta (annual means are 26-28 °C).
DEFAULT_AIR_C = 27.0
WATER_SENSORS = ("a02yyuw", "jsn-sr04t")


def water_fields(mount_mm: float, dist_mm: "float | None") -> "dict[str, Any]":
    """``dist_mm`` and ``level_cm`` (mount height − distance), or nothing."""
    if dist_mm is None:
        return {}
    d = int(round(dist_mm))
    return {"dist_mm": d, "level_cm": ultrasonic.level_cm(mount_mm, d)}


def meter_fields(r: "dict[str, Any] | None", kind: str) -> "dict[str, Any]":
    """Contract fields of a PZEM-004T reading for a ``lamp`` or ``meter`` node."""
    if r is None:
        return {}
    if kind == "lamp":
        return {"power_w": r["power_w"], "energy_wh_total": r["energy_wh_total"]}
    return {
        "v": r["v"], "a": r["a"], "power_w": r["power_w"], "pf": r["pf"], "hz": r["hz"],
        "energy_wh_total": r["energy_wh_total"],
    }  # fmt: skip


class Sensors:
    """One node's drivers; any of them may be None (not fitted for this kind)."""

    def __init__(
        self,
        kind: str,
        config: "Any",
        counters: "Any",
        sleep_ms: "Any",
        *,
        i2c: "Any" = None,
        light: "Any" = None,
        rain: "Any" = None,
        wind: "Any" = None,
        wind_vane: "Any" = None,
        ranger: "Any" = None,
        meter: "Any" = None,
        output: "Any" = None,
        want_climate: bool = False,
    ) -> None:
        self.kind = kind
        self.config = config  # read at each use: a remote cfg may change mount_mm
        self.counters = counters
        self.sleep_ms = sleep_ms
        self.i2c = i2c
        self.light = light
        self.rain = rain
        self.wind = wind
        self.wind_vane = wind_vane
        self.ranger = ranger
        self.meter = meter
        self.output = output
        self.want_climate = want_climate
        self._bme: "Any" = None
        self.faults = 0  # sensor reads that failed, for the console

    # --- helpers ---------------------------------------------------------------------
    def _fault(self, what: str, exc: "Any") -> None:
        self.faults += 1
        print("sensor:", what, repr(exc))

    def climate(self) -> "tuple[float, float, float] | None":
        """``(t_c, p_hpa, rh_pct)`` from the BME280, probing for it if needed."""
        if not self.want_climate or self.i2c is None:
            return None
        try:
            if self._bme is None:
                from ds.drivers import bme280

                self._bme = bme280.BME280(self.i2c)
            return self._bme.measure(self.sleep_ms)  # type: ignore[no-any-return]
        except OSError as exc:
            self._bme = None
            self._fault("bme280", exc)
            return None

    def _meter(self) -> "dict[str, Any] | None":
        if self.meter is None:
            return None
        try:
            return self.meter.read()  # type: ignore[no-any-return]
        except (OSError, ValueError) as exc:  # ModbusError is a ValueError
            self._fault("pzem", exc)
            return None

    def _distance_mm(self) -> "float | None":
        r = self.ranger
        if r is None:
            return None
        try:
            if not hasattr(r, "measure_mm"):  # the A02YYUW measures by itself
                return r.read_mm()
            c = self.climate()
            t_c = c[0] if c is not None else DEFAULT_AIR_C
            return r.measure_mm(t_c, self.sleep_ms)  # type: ignore[no-any-return]
        except OSError as exc:
            self._fault("ranger", exc)
            return None

    # --- the interface ds.node uses ----------------------------------------------------
    def poll(self) -> None:
        """About once a second: the anemometer's 3-s gust window."""
        if self.wind is not None:
            self.wind.poll()

    def lux(self) -> "float | None":
        if self.light is None:
            return None
        try:
            return self.light.measure(self.sleep_ms)  # type: ignore[no-any-return]
        except OSError as exc:
            self._fault("bh1750", exc)
            return None

    def set_lamp(self, on: bool, pct: float) -> None:
        if self.output is not None:
            self.output.set(pct if on else 0)

    def battery_v(self) -> "float | None":
        return None  # no battery divider in the board profiles

    def read(self) -> "dict[str, Any]":
        kind = self.kind
        out: "dict[str, Any]" = {}
        if kind == "weather":
            c = self.climate()
            if c is not None:
                out["t_c"], out["p_hpa"], out["rh_pct"] = c
            if self.rain is not None:
                total = self.rain.total_mm()
                self.counters["rain_mm_total"] = total  # saved with the counters
                out["rain_mm_total"] = total
            if self.wind is not None:
                out["wind_ms"], out["gust_ms"] = self.wind.take()
            if self.wind_vane is not None:
                out["wind_dir_deg"] = self.wind_vane.read()
            out["lux"] = self.lux()
        elif kind == "water":
            out = water_fields(self.config["mount_mm"], self._distance_mm())
        elif kind == "lamp":
            out = meter_fields(self._meter(), kind)
            out["lux"] = self.lux()
        else:
            out = meter_fields(self._meter(), kind)
        return out


def build(config: "Any", profile: "dict[str, Any]", buses: "Any", counters: "Any", clock: "Any") -> Sensors:
    """The :class:`Sensors` of ``config["kind"]`` wired by the board ``profile``.

    ``clock`` is the HAL clock (ticks for the pulse counters, the blocking
    ``sleep_ms`` of conversions that take milliseconds).
    """
    kind = config["kind"]
    sleep = clock.sleep_ms
    if kind == "weather":
        from ds.drivers import bh1750, pulse, vane

        i2c = buses.make_i2c(profile)
        return Sensors(
            kind, config, counters, sleep,
            i2c=i2c,
            light=bh1750.BH1750(i2c),
            rain=pulse.RainGauge(
                buses.make_pin(profile["rain_pin"], "in", "up"), clock,
                config["rain_mm_per_tip"], float(counters.get("rain_mm_total", 0.0)),
            ),
            wind=pulse.Anemometer(buses.make_pin(profile["wind_pin"], "in", "up"), clock),
            wind_vane=vane.WindVane(buses.make_adc(profile["vane_adc"])),
            want_climate=True,
        )  # fmt: skip
    if kind == "water":
        if config["water_sensor"] == "a02yyuw":
            ranger: "Any" = ultrasonic.A02YYUW(buses.make_uart(profile, "uart_sensor"))
            return Sensors(kind, config, counters, sleep, ranger=ranger)
        ranger = ultrasonic.JSNSR04T(
            buses.make_pin(profile["jsn_trig"], "out"),
            buses.make_pin(profile["jsn_echo"], "in"),
            buses.time_pulse_us,
            buses.sleep_us,
        )
        i2c = buses.make_i2c(profile)
        return Sensors(kind, config, counters, sleep, i2c=i2c, ranger=ranger, want_climate=True)
    if kind in ("lamp", "meter"):
        from ds.drivers import pzem
    if kind == "lamp":
        from ds.drivers import bh1750, lamp

        i2c = buses.make_i2c(profile)
        output = lamp.Lamp(
            buses.make_pin(profile["lamp_relay"], "out"),
            buses.make_pwm(profile["lamp_pwm"], lamp.PWM_FREQ_HZ),
            config["dim_min_pct"],
        )
        return Sensors(
            kind, config, counters, sleep,
            i2c=i2c,
            light=bh1750.BH1750(i2c),
            meter=pzem.PZEM004T(buses.make_uart(profile, "uart_sensor"), sleep_ms=sleep),
            output=output,
        )  # fmt: skip
    if kind == "meter":
        meter = pzem.PZEM004T(buses.make_uart(profile, "uart_sensor"), sleep_ms=sleep)
        return Sensors(kind, config, counters, sleep, meter=meter)
    raise ValueError("unknown kind %r" % kind)
