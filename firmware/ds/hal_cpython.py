"""Simulated hardware behind the HAL interface, for tests and the simulator.

Written in the subset both interpreters share, so the firmware tests use these
fakes on the real MicroPython interpreter as well as under CPython. Nothing here
is used on a board.

- :class:`SimClock`: a clock that only moves when told (``advance``), or
  follows the host clock (``realtime=True``) for the simulator's live runs.
- :class:`FakeI2C`, :class:`FakeUART`, :class:`FakePin`, :class:`FakeADC`,
  :class:`FakePWM`, :class:`FakePulse`: the ``machine`` bus objects the drivers
  use, with the same method names and argument order.
"""

import time

from ds import hal

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


class SimClock:
    """Clock with the :class:`ds.hal.MachineClock` interface.

    ``unix_ms`` starts at ``start_unix_ms``; ``ticks_ms`` starts at
    ``start_ticks`` and wraps like MicroPython's. ``sleep_ms`` advances a
    manual clock, or really sleeps when ``realtime`` is set.
    """

    def __init__(
        self, start_unix_ms: int = 1763510400000, start_ticks: int = 0, realtime: bool = False
    ) -> None:
        self._unix0 = start_unix_ms
        self._ticks0 = start_ticks
        self._elapsed = 0
        self._realtime = realtime
        self._host0 = self._host_ms()

    def _host_ms(self) -> int:
        if hasattr(time, "ticks_ms"):
            return time.ticks_ms()
        return int(getattr(time, "monotonic")() * 1000)

    def _now(self) -> int:
        if self._realtime:
            return hal.ticks_diff(self._host_ms(), self._host0) if hasattr(
                time, "ticks_ms"
            ) else self._host_ms() - self._host0
        return self._elapsed

    def advance(self, ms: int) -> None:
        """Move a manual clock forward by ``ms``."""
        self._elapsed += ms

    def ticks_ms(self) -> int:
        return hal.ticks_add(self._ticks0, self._now())

    def ticks_diff(self, a: int, b: int) -> int:
        return hal.ticks_diff(a, b)

    def ticks_add(self, t: int, delta: int) -> int:
        return hal.ticks_add(t, delta)

    def sleep_ms(self, ms: int) -> None:
        if self._realtime:
            time.sleep(ms / 1000)
        else:
            self._elapsed += ms

    def unix_ms(self) -> int:
        return self._unix0 + self._now()

    def set_unix_ms(self, ms: int) -> None:
        self._unix0 = ms - self._now()


class FakeI2C:
    """Register-mapped I²C devices: ``regs[addr]`` is a 256-byte bytearray.

    ``on_write(addr, reg_or_None, data)`` may react to writes (a sensor
    starting a conversion); ``reads[addr]`` queues plain ``readfrom`` answers.
    Writes are logged in ``writes`` as ``(addr, reg, bytes)``.
    """

    def __init__(self) -> None:
        self.regs: "dict[int, bytearray]" = {}
        self.reads: "dict[int, list[bytes]]" = {}
        self.writes: "list[tuple[int, int | None, bytes]]" = []
        self.on_write: "Callable[[int, int | None, bytes], None] | None" = None

    def add(self, addr: int) -> bytearray:
        mem = bytearray(256)
        self.regs[addr] = mem
        return mem

    def _dev(self, addr: int) -> bytearray:
        if addr not in self.regs and addr not in self.reads:
            raise OSError(19)  # ENODEV, as machine.I2C raises for no ACK
        return self.regs.get(addr, bytearray(256))

    def scan(self) -> "list[int]":
        return sorted(set(self.regs) | set(self.reads))

    def readfrom_mem(self, addr: int, reg: int, n: int) -> bytes:
        mem = self._dev(addr)
        return bytes(mem[reg : reg + n])

    def writeto_mem(self, addr: int, reg: int, buf: bytes) -> None:
        mem = self._dev(addr)
        mem[reg : reg + len(buf)] = buf
        self.writes.append((addr, reg, bytes(buf)))
        if self.on_write is not None:
            self.on_write(addr, reg, bytes(buf))

    def writeto(self, addr: int, buf: bytes) -> int:
        self._dev(addr)
        self.writes.append((addr, None, bytes(buf)))
        if self.on_write is not None:
            self.on_write(addr, None, bytes(buf))
        return 1

    def readfrom(self, addr: int, n: int) -> bytes:
        self._dev(addr)
        queue = self.reads.get(addr)
        if not queue:
            raise OSError(5)  # EIO
        return queue.pop(0)[:n]


class FakeUART:
    """A UART whose receive side is fed by the test or by ``responder``.

    ``responder(tx_bytes)`` returns what the far end answers to a write.
    """

    def __init__(self) -> None:
        self.rx = bytearray()
        self.tx: "list[bytes]" = []
        self.responder: "Callable[[bytes], bytes] | None" = None

    def feed(self, data: bytes) -> None:
        self.rx.extend(data)

    def any(self) -> int:
        return len(self.rx)

    def read(self, n: int = -1) -> "bytes | None":
        if not self.rx:
            return None  # machine.UART returns None on timeout
        if n < 0 or n > len(self.rx):
            n = len(self.rx)
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def write(self, buf: bytes) -> int:
        self.tx.append(bytes(buf))
        if self.responder is not None:
            self.feed(self.responder(bytes(buf)))
        return len(buf)


class FakePin:
    """``machine.Pin`` with ``value`` and ``irq``; ``fire()`` plays an edge."""

    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, value: int = 0) -> None:
        self._value = value
        self.handler: "Callable[[Any], None] | None" = None
        self.trigger = 0
        self.history: "list[int]" = []

    def value(self, v: "int | None" = None) -> int:
        if v is not None:
            self._value = 1 if v else 0
            self.history.append(self._value)
        return self._value

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)

    def irq(self, handler: "Callable[[Any], None] | None" = None, trigger: int = 3) -> None:
        self.handler = handler
        self.trigger = trigger

    def fire(self) -> None:
        if self.handler is not None:
            self.handler(self)


class FakeADC:
    """``machine.ADC`` returning ``raw`` from ``read_u16``."""

    def __init__(self, raw: int = 0) -> None:
        self.raw = raw

    def read_u16(self) -> int:
        return self.raw


class FakePWM:
    """``machine.PWM`` recording the duty cycle."""

    def __init__(self, freq: int = 1000) -> None:
        self._freq = freq
        self._duty = 0

    def freq(self, f: "int | None" = None) -> int:
        if f is not None:
            self._freq = f
        return self._freq

    def duty_u16(self, d: "int | None" = None) -> int:
        if d is not None:
            self._duty = d
        return self._duty


class FakePulse:
    """Stands in for ``machine.time_pulse_us``: answers queued echo times.

    Each call pops the next value (µs, or a negative timeout code as on the
    board: -1 no start, -2 no end).
    """

    def __init__(self, echoes_us: "list[int] | None" = None) -> None:
        self.echoes = list(echoes_us or [])
        self.calls = 0

    def __call__(self, pin: "Any", level: int, timeout_us: int) -> int:
        self.calls += 1
        if not self.echoes:
            return -1
        return self.echoes.pop(0)
