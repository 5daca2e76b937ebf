"""Bosch BME280 temperature / humidity / pressure over I²C.

Source: Bosch BME280 datasheet BST-BME280-DS002 (rev. 1.6). Section numbers
below refer to it. Compensation uses the datasheet's integer formulas
(section 4.2.3: 32-bit temperature and humidity, 64-bit pressure): MicroPython
floats on ESP32/RP2 are single precision, too coarse for the pressure formula,
and its integers are arbitrary precision.
"""

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ADDR_PRIMARY = 0x76  # SDO to GND (section 6.2)
ADDR_SECONDARY = 0x77  # SDO to VDDIO
REG_ID = 0xD0  # chip id, reads 0x60 (section 5.4.1)
CHIP_ID = 0x60
REG_RESET = 0xE0  # write 0xB6 to reset (section 5.4.2)
REG_CALIB_TP = 0x88  # 0x88..0xA1: dig_T1..dig_P9, 0xA1 dig_H1 (table 16)
CALIB_TP_LEN = 26
REG_CALIB_H = 0xE1  # 0xE1..0xE7: dig_H2..dig_H6 (table 16)
CALIB_H_LEN = 7
REG_CTRL_HUM = 0xF2  # osrs_h[2:0]; takes effect after a ctrl_meas write (5.4.3)
REG_STATUS = 0xF3  # bit 3 measuring (5.4.4)
REG_CTRL_MEAS = 0xF4  # osrs_t[7:5] osrs_p[4:2] mode[1:0] (5.4.5)
REG_CONFIG = 0xF5
REG_DATA = 0xF7  # press_msb .. hum_lsb, 8 bytes (5.4.7-5.4.9)
DATA_LEN = 8
# Weather monitoring profile (section 3.5.1): forced mode, x1 oversampling, filter off.
OSRS_X1 = 0b001
MODE_FORCED = 0b01
CTRL_MEAS_FORCED_X1 = (OSRS_X1 << 5) | (OSRS_X1 << 2) | MODE_FORCED  # 0x25
# Max measurement time at x1/x1/x1 (section 9.1): 1.25 + 2.3 + 2.875 + 2.875 = 9.3 ms.
MEASURE_MS = 10


def _u16(b: bytes, i: int) -> int:
    return b[i] | (b[i + 1] << 8)


def _s16(b: bytes, i: int) -> int:
    v = _u16(b, i)
    return v - 65536 if v > 32767 else v


def _s8(v: int) -> int:
    return v - 256 if v > 127 else v


def parse_calibration(tp: bytes, h: bytes) -> "dict[str, int]":
    """Trimming parameters from the 26 bytes at 0x88 and the 7 at 0xE1 (table 16)."""
    c = {
        "T1": _u16(tp, 0), "T2": _s16(tp, 2), "T3": _s16(tp, 4),
        "P1": _u16(tp, 6), "P2": _s16(tp, 8), "P3": _s16(tp, 10), "P4": _s16(tp, 12),
        "P5": _s16(tp, 14), "P6": _s16(tp, 16), "P7": _s16(tp, 18), "P8": _s16(tp, 20),
        "P9": _s16(tp, 22),
        "H1": tp[25],
        "H2": _s16(h, 0),
        "H3": h[2],
        # dig_H4 = 0xE4[7:0] << 4 | 0xE5[3:0]; dig_H5 = 0xE6[7:0] << 4 | 0xE5[7:4] (signed 12 bit)
        "H4": (_s8(h[3]) << 4) | (h[4] & 0x0F),
        "H5": (_s8(h[5]) << 4) | (h[4] >> 4),
        "H6": _s8(h[6]),
    }
    return c


def parse_raw(data: bytes) -> "tuple[int, int, int]":
    """``(adc_T, adc_P, adc_H)`` from the 8 data bytes at 0xF7 (20/20/16 bit)."""
    adc_p = (data[0] << 12) | (data[1] << 4) | (data[2] >> 4)
    adc_t = (data[3] << 12) | (data[4] << 4) | (data[5] >> 4)
    adc_h = (data[6] << 8) | data[7]
    return adc_t, adc_p, adc_h


def _cdiv(a: int, b: int) -> int:
    # C integer division truncates toward zero; Python's // floors.
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def compensate_t(c: "dict[str, int]", adc_t: int) -> "tuple[int, int]":
    """``(T in 0.01 °C, t_fine)`` — BME280_compensate_T_int32 (section 4.2.3)."""
    var1 = (((adc_t >> 3) - (c["T1"] << 1)) * c["T2"]) >> 11
    d = (adc_t >> 4) - c["T1"]
    var2 = (((d * d) >> 12) * c["T3"]) >> 14
    t_fine = var1 + var2
    return (t_fine * 5 + 128) >> 8, t_fine


def compensate_p(c: "dict[str, int]", adc_p: int, t_fine: int) -> int:
    """Pressure in Pa × 256 (Q24.8) — BME280_compensate_P_int64 (section 4.2.3)."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * c["P6"]
    var2 = var2 + ((var1 * c["P5"]) << 17)
    var2 = var2 + (c["P4"] << 35)
    var1 = ((var1 * var1 * c["P3"]) >> 8) + ((var1 * c["P2"]) << 12)
    var1 = (((1 << 47) + var1) * c["P1"]) >> 33
    if var1 == 0:
        return 0  # avoid division by zero (as the datasheet code does)
    p = 1048576 - adc_p
    p = _cdiv(((p << 31) - var2) * 3125, var1)
    var1 = (c["P9"] * (p >> 13) * (p >> 13)) >> 25
    var2 = (c["P8"] * p) >> 19
    return ((p + var1 + var2) >> 8) + (c["P7"] << 4)


def compensate_h(c: "dict[str, int]", adc_h: int, t_fine: int) -> int:
    """Relative humidity in %RH × 1024 (Q22.10) — BME280_compensate_H_int32 (4.2.3)."""
    v = t_fine - 76800
    v = (
        (((adc_h << 14) - (c["H4"] << 20) - (c["H5"] * v)) + 16384) >> 15
    ) * (
        (
            (
                (((v * c["H6"]) >> 10) * (((v * c["H3"]) >> 11) + 32768)) >> 10
            )
            + 2097152
        )
        * c["H2"]
        + 8192
    ) >> 14
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c["H1"]) >> 4)
    v = 0 if v < 0 else v
    v = 419430400 if v > 419430400 else v
    return v >> 12


def compensate(c: "dict[str, int]", data: bytes) -> "tuple[float, float, float]":
    """``(t_c, p_hpa, rh_pct)`` from calibration and the 8 raw data bytes."""
    adc_t, adc_p, adc_h = parse_raw(data)
    t, t_fine = compensate_t(c, adc_t)
    p = compensate_p(c, adc_p, t_fine)
    h = compensate_h(c, adc_h, t_fine)
    return t / 100, p / 25600, h / 1024


class BME280:
    """One sensor on ``i2c`` (a ``machine.I2C`` or a fake)."""

    def __init__(self, i2c: "Any", addr: int = ADDR_PRIMARY) -> None:
        self.i2c = i2c
        self.addr = addr
        chip = i2c.readfrom_mem(addr, REG_ID, 1)[0]
        if chip != CHIP_ID:
            raise OSError("BME280 not found at 0x%02x (id 0x%02x)" % (addr, chip))
        self.calib = parse_calibration(
            i2c.readfrom_mem(addr, REG_CALIB_TP, CALIB_TP_LEN),
            i2c.readfrom_mem(addr, REG_CALIB_H, CALIB_H_LEN),
        )
        i2c.writeto_mem(addr, REG_CONFIG, b"\x00")  # filter off, SPI 3-wire off

    def start(self) -> None:
        """Start one forced-mode conversion (ready after ``MEASURE_MS``)."""
        self.i2c.writeto_mem(self.addr, REG_CTRL_HUM, bytes((OSRS_X1,)))
        self.i2c.writeto_mem(self.addr, REG_CTRL_MEAS, bytes((CTRL_MEAS_FORCED_X1,)))

    def busy(self) -> bool:
        return bool(self.i2c.readfrom_mem(self.addr, REG_STATUS, 1)[0] & 0x08)

    def read(self) -> "tuple[float, float, float]":
        """``(t_c, p_hpa, rh_pct)`` of the last conversion."""
        return compensate(self.calib, self.i2c.readfrom_mem(self.addr, REG_DATA, DATA_LEN))

    def measure(self, sleep_ms: "Any") -> "tuple[float, float, float]":
        """Start, wait with ``sleep_ms(ms)``, read."""
        self.start()
        sleep_ms(MEASURE_MS)
        return self.read()
