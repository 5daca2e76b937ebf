"""ROHM BH1750FVI ambient light sensor over I²C.

Source: ROHM BH1750FVI datasheet (2011.11, Rev.D): instruction set
architecture (p.5), measurement procedure (p.7), lux = count / 1.2 at the
default measurement time (p.7 "H-resolution mode" example, p.11).
"""

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ADDR_L = 0x23  # ADDR pin low (p.10)
ADDR_H = 0x5C  # ADDR pin high
POWER_ON = 0x01  # instruction set (p.5)
ONE_TIME_H_RES = 0x20  # one-time H-resolution mode, 1 lx, then power down (p.5)
MEASURE_MS = 180  # H-resolution max measurement time 180 ms (p.2 electrical characteristics)
COUNTS_PER_LUX = 1.2  # p.7


def raw_to_lux(data: bytes) -> float:
    """Lux from the 2 result bytes (high byte first)."""
    return ((data[0] << 8) | data[1]) / COUNTS_PER_LUX


class BH1750:
    def __init__(self, i2c: "Any", addr: int = ADDR_L) -> None:
        self.i2c = i2c
        self.addr = addr

    def start(self) -> None:
        self.i2c.writeto(self.addr, bytes((POWER_ON,)))
        self.i2c.writeto(self.addr, bytes((ONE_TIME_H_RES,)))

    def read(self) -> float:
        return raw_to_lux(self.i2c.readfrom(self.addr, 2))

    def measure(self, sleep_ms: "Any") -> float:
        self.start()
        sleep_ms(MEASURE_MS)
        return self.read()
