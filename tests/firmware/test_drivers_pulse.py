# firmware-test: micropython
"""Rain gauge and anemometer pulse counters, wind vane."""

from ds.drivers import pulse, vane
from ds.hal_cpython import FakeADC, FakePin, SimClock
from fwtest import approx


def test_irq_counts_and_debounces() -> None:
    clock, pin = SimClock(), FakePin()
    seen = []
    c = pulse.PulseCounter(pin, clock, 100, on_pulse=seen.append)
    assert pin.handler is not None and pin.trigger == pulse.IRQ_FALLING
    pin.fire()
    clock.advance(3)
    pin.fire()  # bounce
    clock.advance(150)
    pin.fire()
    assert c.count == 2 and c.bounces == 1
    assert seen == [1, 2]


def test_debounce_survives_tick_wraparound() -> None:
    clock, pin = SimClock(start_ticks=(1 << 30) - 20), FakePin()
    c = pulse.PulseCounter(pin, clock, 100)
    pin.fire()
    clock.advance(50)  # ticks wrapped past 2**30
    pin.fire()
    clock.advance(60)
    pin.fire()
    assert c.count == 2 and c.bounces == 1


def test_rain_total_continues_from_saved_base() -> None:
    clock, pin = SimClock(), FakePin()
    g = pulse.RainGauge(pin, clock, base_mm=10.0)
    for _ in range(5):
        pin.fire()
        clock.advance(500)
    assert approx(g.total_mm(), 10.0 + 5 * 0.2794, 1e-9)


def test_anemometer_mean_and_gust() -> None:
    clock, pin = SimClock(), FakePin()
    a = pulse.Anemometer(pin, clock)
    # 10 s at 3 Hz, then 3 s at 15 Hz, then 7 s at 3 Hz: 20 s, 96 pulses
    for hz, secs in ((3, 10), (15, 3), (3, 7)):
        for _ in range(secs):
            for _ in range(hz):
                pin.fire()
                clock.advance(1000 // hz)
            clock.advance(1000 - (1000 // hz) * hz)
            a.poll()
    mean, gust = a.take()
    assert approx(mean, 96 / 20 * 2.4 / 3.6, 0.01), mean
    assert approx(gust, 15 * 2.4 / 3.6, 0.01), gust
    # a new interval starts from zero
    clock.advance(5000)
    assert a.take() == (0.0, 0.0)


def test_wind_speed_zero_span() -> None:
    assert pulse.wind_speed_ms(10, 0) == 0.0
    assert approx(pulse.wind_speed_ms(1, 1000), 0.6667, 0.001)


def test_vane_every_direction_and_noise() -> None:
    table = vane.ratio_table()
    for deg, ohm in vane.VANE_OHMS:
        raw = int(ohm / (ohm + vane.PULLUP_OHM) * 65535)
        assert vane.direction(raw, table) == deg
        assert (
            vane.direction(min(65535, raw + 100), table) == deg
        )  # 0.15 % noise: 67.5° and 90° are 0.9 % apart
    assert vane.WindVane(FakeADC(65535)).read() is None  # open circuit
    assert vane.WindVane(FakeADC(0)).read() is None  # short
