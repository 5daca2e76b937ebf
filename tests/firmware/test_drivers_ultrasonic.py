# firmware-test: micropython
"""JSN-SR04T and A02YYUW: echo timing, median of 5, temperature, frames."""

from ds.drivers import ultrasonic as us
from ds.hal_cpython import FakePin, FakePulse, FakeUART
from fwtest import approx


def test_speed_of_sound_and_echo_conversion() -> None:
    assert approx(us.speed_of_sound_ms(0), 331.3, 1e-9)
    assert approx(us.speed_of_sound_ms(30), 349.48, 1e-6)
    # 10 ms round trip at 20 °C: 343.42 m/s * 0.005 s = 1717.1 mm
    assert approx(us.echo_to_mm(10000, 20), 1717.1, 0.01)


def test_median_and_level() -> None:
    assert us.median([5, 1, 3]) == 3
    assert us.median([4, 1, 3, 2]) == 2.5
    assert us.median([]) is None
    assert us.level_cm(2000, 1850) == 15.0


def test_jsn_median_of_five_rejects_outlier_and_timeouts() -> None:
    trig, echo = FakePin(), FakePin()
    echoes = FakePulse([10000, 10100, 500, -1, 9900, 10000, -2])
    sensor = us.JSNSR04T(trig, echo, pulse_us=echoes, wait_us=lambda u: None)
    gaps = []
    mm = sensor.measure_mm(t_c=20, sleep_ms=gaps.append)
    # 5 pings: 10000, 10100, 500 (too close: out of range), -1 (timeout), 9900
    assert echoes.calls == 5
    assert approx(mm, us.echo_to_mm(10000, 20), 0.5), mm
    assert gaps == [us.PING_GAP_MS] * 4
    assert trig.history[:3] == [0, 1, 0]  # idle low, then the trigger pulse


def test_jsn_temperature_correction_changes_distance() -> None:
    cold = us.JSNSR04T(FakePin(), FakePin(), FakePulse([10000] * 5), lambda u: None)
    hot = us.JSNSR04T(FakePin(), FakePin(), FakePulse([10000] * 5), lambda u: None)
    d0, d35 = cold.measure_mm(0), hot.measure_mm(35)
    assert d35 > d0 and approx(d35 - d0, 10000 * 0.606 * 35 / 2000, 0.01)


def test_jsn_all_timeouts_is_none() -> None:
    s = us.JSNSR04T(FakePin(), FakePin(), FakePulse([]), lambda u: None)
    assert s.measure_mm() is None


def _frame(mm: int) -> bytes:
    h, low = mm >> 8, mm & 0xFF
    return bytes((0xFF, h, low, (0xFF + h + low) & 0xFF))


def test_a02_frames_checksum_and_resync() -> None:
    p = us.A02Parser()
    assert _frame(1872) == b"\xff\x07\x50\x56"
    good = _frame(1872)
    corrupt = bytes((0xFF, 0x07, 0x51, 0x56))
    assert p.feed(b"\x00\x13" + good + corrupt + _frame(1900)) == [1872, 1900]
    assert p.bad == 1
    # a frame split across reads
    assert p.feed(good[:2]) == []
    assert p.feed(good[2:]) == [1872]


def test_a02_header_byte_inside_data_resyncs() -> None:
    # distance 0xFF?? puts 0xFF in the data; a lost first byte must not lose sync for long
    f = _frame(0x0FFF)
    p = us.A02Parser()
    assert p.feed(f[1:] + _frame(1500) + _frame(1501)) == [1500, 1501]


def test_a02_driver_median_of_newest_in_range() -> None:
    uart = FakeUART()
    for mm in (1000, 1800, 1810, 20, 1790, 1805, 5000, 1795):
        uart.feed(_frame(mm))
    sensor = us.A02YYUW(uart)
    assert sensor.read_mm() == 1800  # newest five in range: 1810 1790 1805 1795 and 1800
    assert sensor.read_mm() is None  # nothing new
