# firmware-test: micropython
"""ds.sensors: the drivers each kind gets from the board profile, over a fake board."""

from ds import config, sensors
from ds.hal_cpython import FakeBoard, SimClock
from fwtest import approx, raises

# The ESP32 DevKit pin map (firmware/boards/esp32-devkit.json), inlined: the
# MicroPython test filesystem holds only the firmware modules.
PROFILE = {
    "board": "esp32-devkit", "hw": "esp32-devkitc-v4",
    "i2c": {"id": 0, "scl": 22, "sda": 21, "freq": 100000},
    "uart_sensor": {"id": 2, "tx": 17, "rx": 16, "baud": 9600, "timeout_ms": 100},
    "rain_pin": 27, "wind_pin": 26, "vane_adc": 34, "jsn_trig": 5, "jsn_echo": 18,
    "lamp_relay": 25, "lamp_pwm": 33, "status_led": 2,
}  # fmt: skip


def _cfg(kind: str, **extra: "object") -> "dict":
    c = dict(config.DEFAULTS)
    c["kind"] = kind
    c.update(extra)
    return c


def _build(kind: str, counters: "dict | None" = None, **extra: "object") -> "tuple":
    board = FakeBoard(dist_mm=1500)
    clk = SimClock()
    s = sensors.build(
        _cfg(kind, **extra), PROFILE, board, counters if counters is not None else {}, clk
    )
    return s, board, clk


def test_weather_reads_every_sensor_and_keeps_the_rain_total() -> None:
    counters = {"rain_mm_total": 10.0}
    s, board, clk = _build("weather", counters)
    for _ in range(3):  # three bucket tips, 1 s apart (past the debounce)
        clk.advance(1000)
        board.pins[27].fire()
    for _ in range(20):  # 20 anemometer closures in 10 s: 2 Hz = 1.33 m/s
        clk.advance(500)
        board.pins[26].fire()
        s.poll()
    r = s.read()
    # Bosch's compensation example: 25.08 °C and 100653 Pa.
    assert approx(r["t_c"], 25.08, 0.005) and approx(r["p_hpa"], 1006.53, 0.01)
    assert 0 < r["rh_pct"] < 100
    assert approx(r["rain_mm_total"], 10.0 + 3 * 0.2794, 1e-6)
    assert counters["rain_mm_total"] == r["rain_mm_total"]  # persisted with the counters
    assert approx(r["wind_ms"], 20 / 11.0 * 2.4 / 3.6, 0.2) and r["gust_ms"] >= r["wind_ms"]
    assert r["wind_dir_deg"] == 90.0
    assert approx(r["lux"], 1000, 0.5)
    # the next boot starts from the persisted total
    s2, _, _ = _build("weather", counters)
    assert approx(s2.read()["rain_mm_total"], 10.0 + 3 * 0.2794, 1e-6)


def test_missing_bme280_leaves_its_fields_out_and_is_probed_again() -> None:
    s, board, _ = _build("weather")
    saved = board.i2c.regs.pop(0x76)
    r = s.read()
    assert "t_c" not in r and "p_hpa" not in r and "lux" in r
    assert s.faults == 1
    board.i2c.regs[0x76] = saved
    assert "t_c" in s.read()


def test_water_a02yyuw_level_is_mount_height_minus_distance() -> None:
    s, board, _ = _build("water", mount_mm=2000, water_sensor="a02yyuw")
    assert s.read() == {"dist_mm": 1500, "level_cm": 50.0}
    board.dist_mm = 1900
    assert s.read() == {"dist_mm": 1900, "level_cm": 10.0}
    s.config["mount_mm"] = 2500  # a remote cfg changed the mount height
    assert s.read()["level_cm"] == 60.0


def test_water_jsn_sr04t_uses_the_bme280_temperature() -> None:
    s, board, _ = _build("water", mount_mm=2000, water_sensor="jsn-sr04t")
    r = s.read()
    assert abs(r["dist_mm"] - 1500) <= 3 and approx(r["level_cm"], 50.0, 0.3)
    assert 5 in board.pins and 18 in board.pins
    board.i2c.regs.pop(0x76)  # no BME280: the default air temperature
    assert abs(s.read()["dist_mm"] - 1500) <= 5


def test_water_without_echo_reports_nothing() -> None:
    assert sensors.water_fields(2000, None) == {}
    assert sensors.water_fields(2000, 1234.6) == {"dist_mm": 1235, "level_cm": 76.5}


def test_lamp_output_light_and_lamp_feed_meter() -> None:
    s, board, _ = _build("lamp", dim_min_pct=10)
    s.set_lamp(True, 70)
    assert board.pins[25].value() == 1 and board.pwms[33].duty_u16() == 45875
    s.set_lamp(False, 70)
    assert board.pins[25].value() == 0 and board.pwms[33].duty_u16() == 0
    r = s.read()
    assert r["power_w"] == 120.0 and r["energy_wh_total"] >= 1000 and approx(r["lux"], 1000, 0.5)
    assert "v" not in r  # the lamp kind reports power and energy only
    assert s.battery_v() is None


def test_meter_fields_and_a_silent_meter() -> None:
    s, board, _ = _build("meter")
    r = s.read()
    assert r["v"] == 230.1 and r["a"] == 5.215 and r["hz"] == 50.0 and r["pf"] == 0.97
    assert r["power_w"] == 120.0 and r["energy_wh_total"] > 1000
    board.uart.responder = None  # the meter stops answering
    board.uart.stream = None
    assert s.read() == {} and s.faults == 1


def test_unknown_kind_is_refused() -> None:
    raises(ValueError, sensors.build, _cfg("radar"), PROFILE, FakeBoard(), {}, SimClock())
