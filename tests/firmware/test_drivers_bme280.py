# firmware-test: micropython
"""BME280: calibration parsing, datasheet compensation examples, driver over a fake bus."""

import struct

from ds.drivers import bme280
from ds.hal_cpython import FakeI2C
from fwtest import approx, raises

# Bosch BMP280 datasheet BST-BMP280-DS001, section 3.12, table "compensation
# computation example" (the BME280's T and P formulas are the same): these
# trimming values with adc_T = 519888, adc_P = 415148 give T = 25.08 °C,
# t_fine = 128422, p = 100653 Pa.
EX = {
    "T1": 27504, "T2": 26435, "T3": -1000,
    "P1": 36477, "P2": -10685, "P3": 3024, "P4": 2855, "P5": 140, "P6": -7,
    "P7": 15500, "P8": -14600, "P9": 6000,
}  # fmt: skip
ADC_T = 519888
ADC_P = 415148
# Humidity trimming typical of real modules (no datasheet example exists).
HUM = {"H1": 75, "H2": 362, "H3": 0, "H4": 313, "H5": 50, "H6": 30}


def _calib() -> "dict[str, int]":
    c = dict(EX)
    c.update(HUM)
    return c


def _calib_bytes(c: "dict[str, int]") -> "tuple[bytes, bytes]":
    tp = struct.pack(
        "<HhhHhhhhhhhhBB",
        c["T1"], c["T2"], c["T3"], c["P1"], c["P2"], c["P3"], c["P4"], c["P5"],
        c["P6"], c["P7"], c["P8"], c["P9"], 0, c["H1"],
    )  # fmt: skip
    h4, h5 = c["H4"], c["H5"]
    h = struct.pack("<hB", c["H2"], c["H3"]) + bytes(
        ((h4 >> 4) & 0xFF, (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF, c["H6"] & 0xFF)
    )
    return tp, h


def _raw(adc_t: int, adc_p: int, adc_h: int) -> bytes:
    return bytes(
        (
            adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
            adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4,
            adc_h >> 8, adc_h & 0xFF,
        )
    )  # fmt: skip


def _float_h(c: "dict[str, int]", adc_h: int, t_fine: int) -> float:
    # BME280 datasheet section 8.1, the double-precision humidity formula.
    v = t_fine - 76800.0
    v = (adc_h - (c["H4"] * 64.0 + c["H5"] / 16384.0 * v)) * (
        c["H2"] / 65536.0 * (1.0 + c["H6"] / 67108864.0 * v * (1.0 + c["H3"] / 67108864.0 * v))
    )
    v = v * (1.0 - c["H1"] * v / 524288.0)
    return min(100.0, max(0.0, v))


def test_datasheet_temperature_example() -> None:
    t, t_fine = bme280.compensate_t(EX, ADC_T)
    assert t == 2508 and t_fine == 128422


def test_datasheet_pressure_example() -> None:
    _, t_fine = bme280.compensate_t(EX, ADC_T)
    p = bme280.compensate_p(EX, ADC_P, t_fine) / 256
    assert approx(p, 100653.27, 1.0), p


def test_integer_humidity_matches_float_formula() -> None:
    c = _calib()
    for adc_t in (400000, 519888, 600000):
        _, t_fine = bme280.compensate_t(c, adc_t)
        for adc_h in (20000, 27000, 32000, 40000):
            got = bme280.compensate_h(c, adc_h, t_fine) / 1024
            assert approx(got, _float_h(c, adc_h, t_fine), 0.1), (adc_t, adc_h, got)


def test_humidity_clamps_to_0_and_100() -> None:
    c = _calib()
    _, t_fine = bme280.compensate_t(c, ADC_T)
    assert bme280.compensate_h(c, 0, t_fine) == 0
    assert bme280.compensate_h(c, 65535, t_fine) == 100 * 1024


def test_calibration_bytes_round_trip_including_packed_h4_h5() -> None:
    c = _calib()
    c["H4"], c["H5"] = -300, -20  # signed 12-bit values sharing 0xE5
    tp, h = _calib_bytes(c)
    assert len(tp) == bme280.CALIB_TP_LEN and len(h) == bme280.CALIB_H_LEN
    assert bme280.parse_calibration(tp, h) == c


def test_parse_raw_unpacks_20_and_16_bit_values() -> None:
    assert bme280.parse_raw(_raw(ADC_T, ADC_P, 30000)) == (ADC_T, ADC_P, 30000)


def test_driver_forced_measurement_over_fake_bus() -> None:
    i2c = FakeI2C()
    mem = i2c.add(bme280.ADDR_PRIMARY)
    tp, h = _calib_bytes(_calib())
    mem[0x88 : 0x88 + len(tp)] = tp
    mem[0xE1 : 0xE1 + len(h)] = h
    mem[bme280.REG_ID] = bme280.CHIP_ID
    mem[bme280.REG_DATA : bme280.REG_DATA + 8] = _raw(ADC_T, ADC_P, 27000)
    slept = []
    sensor = bme280.BME280(i2c)
    t_c, p_hpa, rh = sensor.measure(slept.append)
    assert approx(t_c, 25.08, 0.001) and approx(p_hpa, 1006.53, 0.01)
    assert 0 < rh < 100
    assert slept == [bme280.MEASURE_MS]
    regs = [(reg, data) for (_a, reg, data) in i2c.writes]
    # ctrl_hum must be written before ctrl_meas (datasheet 5.4.3)
    assert regs[-2:] == [(0xF2, b"\x01"), (0xF4, b"\x25")]


def test_wrong_chip_id_is_refused() -> None:
    i2c = FakeI2C()
    i2c.add(bme280.ADDR_PRIMARY)[bme280.REG_ID] = 0x58  # a BMP280
    raises(OSError, bme280.BME280, i2c)
    raises(OSError, bme280.BME280, FakeI2C())  # nothing on the bus
