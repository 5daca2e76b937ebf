"""Wind vane on an ADC: eight reed switches and resistors give 16 directions.

SparkFun SEN-15901 datasheet, wind vane table: resistance per direction. With
the vane as the lower leg of a divider under a ``pullup_ohm`` resistor to the
ADC reference, the ADC sees ``R / (R + pullup)`` of full scale; the reading
is matched to the nearest table entry.
"""

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# (degrees, ohms) — SEN-15901 datasheet, wind vane resistance table.
VANE_OHMS = (
    (0.0, 33000), (22.5, 6570), (45.0, 8200), (67.5, 891), (90.0, 1000), (112.5, 688),
    (135.0, 2200), (157.5, 1410), (180.0, 3900), (202.5, 3140), (225.0, 16000),
    (247.5, 14120), (270.0, 120000), (292.5, 42120), (315.0, 64900), (337.5, 21880),
)
PULLUP_OHM = 10000  # the datasheet's example circuit uses 10 kΩ


def ratio_table(pullup_ohm: int = PULLUP_OHM) -> "list[tuple[float, float]]":
    """``(fraction of full scale, degrees)`` for each direction."""
    return [(r / (r + pullup_ohm), deg) for deg, r in VANE_OHMS]


def direction(raw_u16: int, table: "list[tuple[float, float]]", max_err: float = 0.05) -> "float | None":
    """Degrees for an ``ADC.read_u16`` value; None when nothing is within ``max_err``
    (an open or shorted vane)."""
    x = raw_u16 / 65535
    best = None
    best_err = 2.0
    for frac, deg in table:
        err = abs(frac - x)
        if err < best_err:
            best, best_err = deg, err
    return best if best_err <= max_err else None


class WindVane:
    def __init__(self, adc: "Any", pullup_ohm: int = PULLUP_OHM) -> None:
        self.adc = adc
        self.table = ratio_table(pullup_ohm)

    def read(self) -> "float | None":
        return direction(self.adc.read_u16(), self.table)
