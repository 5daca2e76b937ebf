"""The seam between firmware logic and hardware.

Everything the firmware needs from the board goes through here: the clock
(ticks, sleeps, wall time), deferred work (``micropython.schedule``), the
filesystem helpers (atomic write) and the bus constructors. Drivers never
import ``machine``; they get their bus objects injected.

Two clocks share one interface (``ticks_ms``, ``ticks_diff``, ``ticks_add``,
``sleep_ms``, ``unix_ms``, ``set_unix_ms``):

- :class:`MachineClock` here, for MicroPython on the board;
- ``ds.hal_cpython.SimClock``, for tests and the simulator.

Wall time: MicroPython's ``time.time()`` counts from the port's epoch, which
is 1970 on some ports and 2000 on others. The docs say "Epoch year may be
determined with gmtime(0)[0]" (docs.micropython.org, library/time.html,
"Time Epoch"), so the offset is measured at import, never assumed per port.
"""

import os
import time

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:  # MicroPython
    import micropython

    _schedule: "Any" = micropython.schedule
    MICROPYTHON = True
except ImportError:  # CPython: run deferred work at once
    _schedule = None
    MICROPYTHON = False

# Seconds from 1970-01-01 to 2000-01-01 (10957 days * 86400).
EPOCH_1970_TO_2000_S = 946684800
# ticks_ms() wraps at this period on MicroPython (ticks are small ints).
TICKS_PERIOD = 1 << 30
_TICKS_HALF = TICKS_PERIOD // 2


def epoch_offset_s() -> int:
    """Seconds to add to this port's ``time.time()`` to get Unix time."""
    return EPOCH_1970_TO_2000_S if time.gmtime(0)[0] == 2000 else 0


_EPOCH_OFFSET_S = epoch_offset_s()


def ticks_diff(a: int, b: int) -> int:
    """``a - b`` on the wrapping tick scale, like ``time.ticks_diff``."""
    return ((a - b + _TICKS_HALF) % TICKS_PERIOD) - _TICKS_HALF


def ticks_add(t: int, delta: int) -> int:
    return (t + delta) % TICKS_PERIOD


def schedule(fn: "Any", arg: "Any") -> None:
    """Defer ``fn(arg)`` out of an interrupt handler.

    On MicroPython this is ``micropython.schedule``; it raises RuntimeError
    when the queue is full, which callers treat as "try on the next pulse".
    Under CPython there are no hard interrupts, so the call runs at once.
    """
    if _schedule is not None:
        _schedule(fn, arg)
    else:
        fn(arg)


class MachineClock:
    """The board's clock: ``time.ticks_*`` and the RTC, epoch-corrected."""

    def ticks_ms(self) -> int:
        return time.ticks_ms()

    def ticks_diff(self, a: int, b: int) -> int:
        return time.ticks_diff(a, b)

    def ticks_add(self, t: int, delta: int) -> int:
        return time.ticks_add(t, delta)

    def sleep_ms(self, ms: int) -> None:
        time.sleep_ms(ms)

    def unix_ms(self) -> int:
        """Milliseconds since 1970-01-01 UTC from the RTC (valid once synced)."""
        if hasattr(time, "time_ns"):
            return time.time_ns() // 1000000 + _EPOCH_OFFSET_S * 1000
        return (int(time.time()) + _EPOCH_OFFSET_S) * 1000

    def set_unix_ms(self, ms: int) -> None:
        """Set the RTC from Unix milliseconds (after NTP)."""
        import machine  # board only

        secs = ms // 1000 - _EPOCH_OFFSET_S
        y, mo, d, h, mi, s, wd, _yd = time.gmtime(secs)
        # RTC.datetime takes (year, month, day, weekday, hours, minutes, seconds, subseconds).
        machine.RTC().datetime((y, mo, d, wd, h, mi, s, 0))


# --- filesystem -----------------------------------------------------------------
def exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` (bytes) so a power cut leaves the old or the new file.

    Writes ``path + '.tmp'`` and renames it over ``path``: littlefs (the
    default filesystem on ESP32 and RP2) replaces the target in one commit. FAT
    refuses to rename onto an existing file, so that case removes first; a cut
    between the two steps leaves the ``.tmp`` file, which :func:`read_bytes`
    falls back to.
    """
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    try:
        os.rename(tmp, path)
    except OSError:
        remove(path)
        os.rename(tmp, path)


def read_bytes(path: str) -> "bytes | None":
    """Contents of ``path``, or of its leftover ``.tmp`` twin, or None."""
    for p in (path, path + ".tmp"):
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError:
            pass
    return None


# --- buses from a board profile ---------------------------------------------------
def make_i2c(profile: "dict[str, Any]") -> "Any":
    """``machine.I2C`` for a board profile's ``i2c`` entry (board only)."""
    import machine

    c = profile["i2c"]
    return machine.I2C(
        c["id"], scl=machine.Pin(c["scl"]), sda=machine.Pin(c["sda"]), freq=c.get("freq", 100000)
    )


def make_uart(profile: "dict[str, Any]", name: str) -> "Any":
    """``machine.UART`` for ``profile[name]`` (e.g. ``uart_sensor``), board only."""
    import machine

    c = profile[name]
    return machine.UART(
        c["id"], baudrate=c.get("baud", 9600), tx=machine.Pin(c["tx"]), rx=machine.Pin(c["rx"]),
        timeout=c.get("timeout_ms", 200),
    )


def make_pin(number: "int | str", mode: str, pull: "str | None" = None) -> "Any":
    import machine

    modes = {"in": machine.Pin.IN, "out": machine.Pin.OUT}
    if pull is None:
        return machine.Pin(number, modes[mode])
    pulls = {"up": machine.Pin.PULL_UP, "down": machine.Pin.PULL_DOWN}
    return machine.Pin(number, modes[mode], pulls[pull])


def make_adc(number: int) -> "Any":
    import machine

    return machine.ADC(machine.Pin(number))


def make_pwm(number: int, freq: int) -> "Any":
    import machine

    return machine.PWM(machine.Pin(number), freq=freq)


def time_pulse_us(pin: "Any", level: int, timeout_us: int) -> int:
    import machine

    return machine.time_pulse_us(pin, level, timeout_us)


def sleep_us(us: int) -> None:
    time.sleep_us(us)


# --- time from the network ----------------------------------------------------------
def ntp_unix_ms(host: str, timeout_s: int = 2) -> int:
    """Unix milliseconds from an NTP server (``ntptime``, board only).

    ``ntptime.time()`` answers in the port's epoch (it subtracts the NTP era
    offset for 1970 or 2000 itself), so the same correction as the RTC applies.
    Bounded by the socket timeout; the DNS lookup before it is not.
    """
    import ntptime

    ntptime.host = host
    ntptime.timeout = timeout_s
    return (int(ntptime.time()) + _EPOCH_OFFSET_S) * 1000
