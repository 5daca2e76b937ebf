"""Ultrasonic water-level sensors: JSN-SR04T (trigger/echo) and A02YYUW (UART).

Level = mount height − distance (FIWARE FloodMonitoring, docs/REFERENCE.md). Median
of 5 pings (NYC FloodNet practice, docs/REFERENCE.md) rejects single bad echoes
from ripples and spray.
"""

from ds import hal

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

PINGS = 5  # docs/REFERENCE.md: median of 5 pings
PING_GAP_MS = 150  # docs/REFERENCE.md: pings 150 ms apart
# JSN-SR04T datasheet: trigger pulse >= 10 µs; range 25..450 cm.
TRIGGER_US = 10
JSN_MIN_MM = 250
JSN_MAX_MM = 4500
# Echo timeout: a 4.5 m round trip at 331 m/s is ~27 ms; 30 ms bounds the wait.
ECHO_TIMEOUT_US = 30000
# A02YYUW datasheet (DFRobot SEN0311): 9600 baud, frame 0xFF, Data_H, Data_L, SUM,
# SUM = (0xFF + Data_H + Data_L) & 0xFF, distance in mm; range 30..4500 mm.
A02_HEADER = 0xFF
A02_MIN_MM = 30
A02_MAX_MM = 4500


def speed_of_sound_ms(t_c: float) -> float:
    """m/s in air at ``t_c`` °C: c ≈ 331.3 + 0.606·T (linearised, dry air)."""
    return 331.3 + 0.606 * t_c


def echo_to_mm(echo_us: int, t_c: float = 20.0) -> float:
    """One-way distance for a round-trip echo time: c [m/s] = c/1000 [mm/µs]."""
    return echo_us * speed_of_sound_ms(t_c) / 1000 / 2


def median(values: "list[float]") -> "float | None":
    if not values:
        return None
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def level_cm(mount_mm: float, dist_mm: float) -> float:
    """Water surface above the datum: mount height − distance, in cm."""
    return (mount_mm - dist_mm) / 10


class JSNSR04T:
    """Trigger/echo ranging. ``pulse_us(pin, level, timeout)`` is
    ``machine.time_pulse_us`` on a board; ``wait_us`` a µs sleep."""

    def __init__(
        self,
        trig: "Any",
        echo: "Any",
        pulse_us: "Callable[[Any, int, int], int] | None" = None,
        wait_us: "Callable[[int], None] | None" = None,
    ) -> None:
        self.trig = trig
        self.echo = echo
        self.pulse_us = pulse_us or hal.time_pulse_us
        self.wait_us = wait_us or hal.sleep_us
        trig.value(0)

    def ping_mm(self, t_c: float = 20.0) -> "float | None":
        """One ping; None on timeout or out of the sensor's range."""
        self.trig.value(1)
        self.wait_us(TRIGGER_US)
        self.trig.value(0)
        us = self.pulse_us(self.echo, 1, ECHO_TIMEOUT_US)
        if us < 0:
            return None  # -1: echo never started, -2: never ended
        mm = echo_to_mm(us, t_c)
        return mm if JSN_MIN_MM <= mm <= JSN_MAX_MM else None

    def measure_mm(self, t_c: float = 20.0, sleep_ms: "Any" = None, pings: int = PINGS) -> "float | None":
        """Median of ``pings`` valid pings ``PING_GAP_MS`` apart (None if none)."""
        got = []
        for i in range(pings):
            if i and sleep_ms is not None:
                sleep_ms(PING_GAP_MS)
            mm = self.ping_mm(t_c)
            if mm is not None:
                got.append(mm)
        return median(got)


def a02_checksum(h: int, low: int) -> int:
    return (A02_HEADER + h + low) & 0xFF


class A02Parser:
    """Streaming frame parser: feed bytes, get distances (mm).

    Resynchronises on the header byte after a bad checksum, so one corrupted
    byte costs one frame. Counts ``bad`` frames for health reporting.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.bad = 0

    def feed(self, data: bytes) -> "list[int]":
        self.buf.extend(data)
        out = []
        buf = self.buf
        i = 0
        while len(buf) - i >= 4:
            if buf[i] != A02_HEADER:
                i += 1
                continue
            h, low, s = buf[i + 1], buf[i + 2], buf[i + 3]
            if a02_checksum(h, low) != s:
                self.bad += 1
                i += 1  # resync: the real header may be inside this frame
                continue
            out.append((h << 8) | low)
            i += 4
        self.buf = buf[i:]
        return out


class A02YYUW:
    """UART ultrasonic sensor (processed-value mode: it sends frames by itself)."""

    def __init__(self, uart: "Any") -> None:
        self.uart = uart
        self.parser = A02Parser()

    def read_mm(self, pings: int = PINGS) -> "float | None":
        """Median of the newest ``pings`` in-range frames waiting on the UART."""
        got: "list[float]" = []
        while True:
            data = self.uart.read(64)
            if not data:
                break
            for mm in self.parser.feed(data):
                if A02_MIN_MM <= mm <= A02_MAX_MM:
                    got.append(mm)
        return median(got[-pings:])
