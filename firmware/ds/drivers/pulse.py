"""Reed-switch pulse counters: tipping-bucket rain gauge and cup anemometer.

The interrupt handler only compares ticks and bumps an int (small ints are not
heap objects on MicroPython, and the bound methods it uses are made once in
``__init__``), so it allocates nothing and is safe as a hard IRQ. Anything
more (totals, gust windows) runs later: from ``micropython.schedule`` or the
sampler's own calls.

Sensor facts: SparkFun SEN-15901 "Weather Meters" datasheet (the Argent Data
80422 set): rain gauge 0.2794 mm per bucket tip; anemometer 2.4 km/h
(0.6667 m/s) per switch closure per second; both are plain reed switches that
bounce, hence the debounce.
"""

from ds import hal

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RAIN_MM_PER_TIP = 0.2794  # SEN-15901 datasheet, rain gauge
WIND_MS_PER_HZ = 2.4 / 3.6  # SEN-15901 datasheet, anemometer: 2.4 km/h per Hz
# Debounce [design]: a bucket cannot tip faster than ~every 0.1 s even at
# 40 mm/min (docs/REFERENCE.md QC limit: 143 tips/min); the anemometer closes once
# per turn, 75 m/s (QC max) is 112 Hz, so 5 ms keeps every real pulse.
RAIN_DEBOUNCE_MS = 100
WIND_DEBOUNCE_MS = 5
IRQ_FALLING = 2  # machine.Pin.IRQ_FALLING on ESP32 and RP2


class PulseCounter:
    """Counts debounced falling edges on ``pin`` (pull-up, switch to ground).

    ``count`` only grows (until reset by the owner). ``on_pulse(count)``, if
    given, runs deferred through :func:`ds.hal.schedule`, never in the IRQ.
    """

    def __init__(
        self, pin: "Any", clock: "Any", debounce_ms: int, on_pulse: "Any" = None,
        trigger: int = IRQ_FALLING,
    ) -> None:
        self.count = 0
        self.bounces = 0
        self._debounce = debounce_ms
        self._ticks = clock.ticks_ms  # bound once: no allocation in the IRQ
        self._diff = clock.ticks_diff
        self._last = self._ticks()
        self._armed = False
        self._on_pulse = on_pulse
        self._deferred_ref = self._deferred
        self._pending = False
        pin.irq(handler=self._irq, trigger=trigger)

    def _irq(self, _pin: "Any") -> None:
        now = self._ticks()
        if self._armed and self._diff(now, self._last) < self._debounce:
            self.bounces += 1
            return
        self._armed = True
        self._last = now
        self.count += 1
        if self._on_pulse is not None and not self._pending:
            self._pending = True
            try:
                hal.schedule(self._deferred_ref, 0)
            except RuntimeError:  # schedule queue full: the next pulse retries
                self._pending = False

    def _deferred(self, _arg: "Any") -> None:
        self._pending = False
        if self._on_pulse is not None:
            self._on_pulse(self.count)


class RainGauge:
    """Tipping bucket: cumulative rain in mm since ``base_mm``.

    ``base_mm`` is the persisted total (``Counters['rain_mm_total']``), so the
    counter does not restart with every boot.
    """

    def __init__(
        self, pin: "Any", clock: "Any", mm_per_tip: float = RAIN_MM_PER_TIP, base_mm: float = 0.0
    ) -> None:
        self.counter = PulseCounter(pin, clock, RAIN_DEBOUNCE_MS)
        self.mm_per_tip = mm_per_tip
        self.base_mm = base_mm

    def total_mm(self) -> float:
        return self.base_mm + self.counter.count * self.mm_per_tip


def wind_speed_ms(pulses: int, ms: int, ms_per_hz: float = WIND_MS_PER_HZ) -> float:
    """Mean wind speed from ``pulses`` counted over ``ms`` milliseconds."""
    if ms <= 0:
        return 0.0
    return pulses * 1000 / ms * ms_per_hz


class Anemometer:
    """Cup anemometer: mean wind and the max 3-s gust over each interval.

    Call :meth:`poll` about once a second from the sampler; it keeps the
    pulse counts of the last 3 s (WMO gust: highest 3-s running mean).
    :meth:`take` returns ``(mean_ms, gust_ms)`` since the last take and
    starts a new interval.
    """

    GUST_WINDOW_MS = 3000

    def __init__(self, pin: "Any", clock: "Any", ms_per_hz: float = WIND_MS_PER_HZ) -> None:
        self.clock = clock
        self.counter = PulseCounter(pin, clock, WIND_DEBOUNCE_MS)
        self.ms_per_hz = ms_per_hz
        now = clock.ticks_ms()
        self._start_t = now
        self._start_n = 0
        self._hist: "list[tuple[int, int]]" = [(now, 0)]
        self._gust = 0.0

    def poll(self) -> None:
        now = self.clock.ticks_ms()
        n = self.counter.count
        self._hist.append((now, n))
        # keep the newest sample at or beyond 3 s back as the window start
        while len(self._hist) > 2 and self.clock.ticks_diff(now, self._hist[1][0]) >= self.GUST_WINDOW_MS:
            self._hist.pop(0)
        t0, n0 = self._hist[0]
        span = self.clock.ticks_diff(now, t0)
        if span >= self.GUST_WINDOW_MS:
            g = wind_speed_ms(n - n0, span, self.ms_per_hz)
            if g > self._gust:
                self._gust = g

    def take(self) -> "tuple[float, float]":
        self.poll()
        now = self.clock.ticks_ms()
        n = self.counter.count
        mean = wind_speed_ms(n - self._start_n, self.clock.ticks_diff(now, self._start_t), self.ms_per_hz)
        gust = max(self._gust, mean)
        self._start_t, self._start_n, self._gust = now, n, 0.0
        return mean, gust
