"""Simulated hardware behind the HAL interface, for tests and the simulator.

Written in the subset both interpreters share, so the firmware tests use these
fakes on the real MicroPython interpreter as well as under CPython. Nothing here
is used on a board.

- :class:`SimClock`: a clock that only moves when told (``advance``), or
  follows the host clock (``realtime=True``) for the simulator's live runs;
  :class:`VirtualTime` jumps it from one sleeping task's wake-up to the next
  (``ds.clock.use(sim_clock, virtual)``).
- :class:`FakeI2C`, :class:`FakeUART`, :class:`FakePin`, :class:`FakeADC`,
  :class:`FakePWM`, :class:`FakePulse`: the ``machine`` bus objects the drivers
  use, with the same method names and argument order.
"""

import asyncio
import time

from ds import hal

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Awaitable, Callable


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


class VirtualTime:
    """Drives a manual ``SimClock``: ``run(seconds)`` jumps from one sleeper's
    wake-up to the next, letting every runnable task run in between. Only for
    tests whose network answers at once (a fake transport)."""

    def __init__(self, sim_clock: "Any") -> None:
        self.clock = sim_clock
        self.now_ms = 0
        self._sleepers: "list[Any]" = []  # [wake_ms, Event]
        self._spare: "list[Any]" = []  # woken [wake_ms, Event] pairs, reused

    def sleep_ms(self, ms: int) -> "Awaitable[Any]":
        # Pairs are reused and the awaitable is the Event's own, so a long
        # simulated run (the memory test) makes about as little garbage per
        # sleep as the board's asyncio.sleep_ms (none).
        s: "Any" = self._spare.pop() if self._spare else [0, asyncio.Event()]
        s[0] = self.now_ms + max(0, int(ms))
        self._sleepers.append(s)
        return s[1].wait()

    def wake_next(self, end_ms: int) -> bool:
        """Jump to the earliest sleeper due by ``end_ms`` and wake every sleeper
        due then; False (clock at ``end_ms``) when none is due by ``end_ms``.
        For drivers that run the ready tasks themselves between calls."""
        sleepers = self._sleepers
        first = end_ms
        due = False  # a sleeper is due by end_ms
        for s in sleepers:
            if s[0] <= end_ms:
                due = True
            if s[0] < first:
                first = s[0]
        if first > self.now_ms:
            self.clock.advance(first - self.now_ms)
            self.now_ms = first
        if not due:
            return False
        kept = 0  # compact in place, in order: no new list
        for s in sleepers:
            if s[0] <= self.now_ms:
                s[1].set()  # the waiter is woken: clear at once, reuse the pair
                s[1].clear()
                self._spare.append(s)
            else:
                sleepers[kept] = s
                kept += 1
        del sleepers[kept:]
        return True

    async def run(self, seconds: float, settle: int = 12) -> None:
        end = self.now_ms + int(seconds * 1000)
        while True:
            for _ in range(settle):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if not self.wake_next(end):
                return



class FakeI2C:
    """Register-mapped I²C devices: ``regs[addr]`` is a 256-byte bytearray.

    ``on_write(addr, reg_or_None, data)`` may react to writes (a sensor
    starting a conversion); ``reads[addr]`` queues plain ``readfrom`` answers.
    Writes are logged in ``writes`` as ``(addr, reg, bytes)`` while ``log``.
    """

    log = True

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
        mem = self.regs.get(addr)
        if mem is None:
            self._ack(addr)
            mem = bytearray(256)
        return mem

    def _ack(self, addr: int) -> None:
        if addr not in self.regs and addr not in self.reads:
            raise OSError(19)  # ENODEV, as machine.I2C raises for no ACK

    def scan(self) -> "list[int]":
        return sorted(set(self.regs) | set(self.reads))

    def readfrom_mem(self, addr: int, reg: int, n: int) -> bytes:
        mem = self._dev(addr)
        return bytes(mem[reg : reg + n])

    def writeto_mem(self, addr: int, reg: int, buf: bytes) -> None:
        mem = self._dev(addr)
        mem[reg : reg + len(buf)] = buf
        if self.log:
            self.writes.append((addr, reg, bytes(buf)))
        if self.on_write is not None:
            self.on_write(addr, reg, buf)

    def writeto(self, addr: int, buf: bytes) -> int:
        self._ack(addr)
        if self.log:
            self.writes.append((addr, None, bytes(buf)))
        if self.on_write is not None:
            self.on_write(addr, None, buf)
        return 1

    def readfrom(self, addr: int, n: int) -> bytes:
        self._ack(addr)
        queue = self.reads.get(addr)
        if not queue:
            raise OSError(5)  # EIO
        return queue.pop(0)[:n]


class FakeUART:
    """A UART whose receive side is fed by the test or by ``responder``.

    ``responder(tx_bytes)`` returns what the far end answers to a write.
    Writes are logged in ``tx`` while ``log``.
    """

    log = True

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
        if self.log:
            self.tx.append(bytes(buf))
        if self.responder is not None:
            self.feed(self.responder(buf))
        return len(buf)


class FakePin:
    """``machine.Pin`` with ``value`` and ``irq``; ``fire()`` plays an edge."""

    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1
    log = True  # values written are logged in ``history``

    def __init__(self, value: int = 0) -> None:
        self._value = value
        self.handler: "Callable[[Any], None] | None" = None
        self.trigger = 0
        self.history: "list[int]" = []

    def value(self, v: "int | None" = None) -> int:
        if v is not None:
            self._value = 1 if v else 0
            if self.log:
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


# --- a whole fake board --------------------------------------------------------------
# BME280 trimming from the Bosch BMP280 datasheet's compensation example (section
# 3.12: dig_T1..dig_P9) with typical humidity trimming; registers 0x88..0xA1 and
# 0xE1..0xE7 as the chip lays them out (BME280 datasheet, table 16).
_BME_CALIB_TP = bytes(
    (0x70, 0x6B, 0x43, 0x67, 0x18, 0xFC, 0x7D, 0x8E, 0x43, 0xD6, 0xD0, 0x0B, 0x27, 0x0B,
     0x8C, 0x00, 0xF9, 0xFF, 0x8C, 0x3C, 0xF8, 0xC6, 0x70, 0x17, 0x00, 0x4B)
)  # fmt: skip
_BME_CALIB_H = bytes((0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 0x1E))
# adc_P 415148, adc_T 519888 (the example's raw values), adc_H 30000.
_BME_DATA = bytes((0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x75, 0x30))


class _StreamingUART(FakeUART):
    """A UART whose far end sends a burst by itself (``stream()``) whenever the
    previous burst has been read out, like the A02YYUW in processed mode."""

    def __init__(self) -> None:
        super().__init__()
        self.stream: "Callable[[], bytes] | None" = None
        self._fresh = True

    def read(self, n: int = -1) -> "bytes | None":
        if not self.rx and self.stream is not None:
            if not self._fresh:
                self._fresh = True
                return None  # the burst is over
            self.feed(self.stream())
        self._fresh = False
        return super().read(n)


class FakeBoard:
    """The bus constructors of :mod:`ds.hal` over fakes, with plausible devices
    attached: BME280 and BH1750 on I²C, an A02YYUW or a PZEM-004T on the UART,
    JSN-SR04T echoes, vane ADC, lamp relay and PWM. Values are settable
    (``dist_mm``, ``lux_raw``, ``watts``); ``pins[n].fire()`` plays a reed pulse.
    ``log=False`` keeps no write logs (long runs: the memory test)."""

    def __init__(self, dist_mm: int = 1500, log: bool = True) -> None:
        self.log = log
        self._pzem_req = b""
        self.dist_mm = dist_mm
        self.lux_raw = 1200  # 1000 lx
        self.watts = 1200  # 0.1 W units
        self.energy_wh = 1000
        self.i2c = FakeI2C()
        self.i2c.log = log
        bme = self.i2c.add(0x76)
        bme[0xD0] = 0x60
        bme[0x88 : 0x88 + 26] = _BME_CALIB_TP
        bme[0xE1 : 0xE1 + 7] = _BME_CALIB_H
        bme[0xF7 : 0xF7 + 8] = _BME_DATA
        self.i2c.reads[0x23] = []
        self.i2c.on_write = self._i2c_write
        self.uart = _StreamingUART()
        self.uart.log = log
        self.pins: "dict[Any, FakePin]" = {}
        self.adcs: "dict[Any, FakeADC]" = {}
        self.pwms: "dict[Any, FakePWM]" = {}

    def _i2c_write(self, addr: int, reg: "int | None", data: bytes) -> None:
        if addr == 0x23 and data == b"\x20":  # BH1750 one-time H-resolution
            self.i2c.reads[0x23].append(bytes((self.lux_raw >> 8, self.lux_raw & 0xFF)))

    def _a02_frames(self) -> bytes:
        h, low = self.dist_mm >> 8, self.dist_mm & 0xFF
        return bytes((0xFF, h, low, (0xFF + h + low) & 0xFF)) * 5

    def _pzem_answer(self, req: bytes) -> bytes:
        from ds.drivers import pzem

        if not self._pzem_req:
            self._pzem_req = pzem.read_request(1)
        if req != self._pzem_req:
            return b""
        self.energy_wh += 1
        e = self.energy_wh
        regs = (2301, 5215, 0, self.watts, 0, e & 0xFFFF, e >> 16, 500, 97, 0)
        body = bytearray((1, 0x04, 20))
        for r in regs:
            body.append(r >> 8)
            body.append(r & 0xFF)
        return pzem.with_crc(bytes(body))

    def clear_logs(self) -> None:
        """Forget the fakes' write logs (long runs: the memory test)."""
        self.i2c.writes = []
        self.uart.tx = []
        for pin in self.pins.values():
            pin.history = []

    # --- the ds.hal constructors ---------------------------------------------------------
    def make_i2c(self, profile: "Any") -> FakeI2C:
        return self.i2c

    def make_uart(self, profile: "Any", name: str) -> FakeUART:
        # Both devices answer: the A02YYUW streams, the PZEM answers requests;
        # each driver ignores what is not its own (checksums, CRC).
        self.uart.stream = self._a02_frames
        self.uart.responder = self._pzem_answer
        return self.uart

    def make_pin(self, number: "Any", mode: str, pull: "str | None" = None) -> FakePin:
        pin = FakePin(1 if pull == "up" else 0)
        pin.log = self.log
        self.pins[number] = pin
        return pin

    def make_adc(self, number: "Any") -> FakeADC:
        adc = FakeADC(5958)  # 1 kΩ under 10 kΩ: the vane pointing east (90°)
        self.adcs[number] = adc
        return adc

    def make_pwm(self, number: "Any", freq: int) -> FakePWM:
        pwm = FakePWM(freq)
        self.pwms[number] = pwm
        return pwm

    def time_pulse_us(self, pin: "Any", level: int, timeout_us: int) -> int:
        # round trip at ~347 m/s (25 °C): 2 * d / 0.347 mm/µs
        return int(self.dist_mm * 2 / 0.3468)

    def sleep_us(self, us: int) -> None:
        pass
