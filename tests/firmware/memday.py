"""A simulated day of one node, for the memory test (``test_memory.py``).

Runs on MicroPython (driven by ``run_mpy_day.mjs``) and on CPython. The node is
the firmware's own: ``ds.sensors.build`` wires the real drivers to a fake board
(``ds.hal_cpython.FakeBoard``), the real spool and counters write to the
interpreter's filesystem, and ``ds.node.Node`` runs all its tasks under
``ds.clock.VirtualTime`` for 24 virtual hours. The network is a fake
transport that acknowledges every packet (CONNACK, SUBACK, PUBACK, PINGRESP)
and goes down for ``OUTAGE_MIN`` minutes every ``OUTAGE_EVERY_H`` hours, so
readings pile up in the spool and are replayed with ``hist``.

Heap accounting (MicroPython): this WebAssembly build collects garbage only
when control returns to JavaScript (its ``gc.collect()`` inside Python frees
nothing, and its heap grows on demand). So ``run_mpy_day.mjs`` calls
:meth:`Day.tick` from JavaScript over and over; each tick runs every ready
task (``asyncio.core._run_iter``) and wakes the next virtual sleepers, and
returns to JavaScript, which collects. ``gc.mem_alloc()`` at the end of a tick
is the heap left by the previous collection plus everything allocated in the
tick: an upper bound of the live heap at any instant of that tick. ``peak``
is the largest such bound over the day; ``live_peak`` the largest heap seen
at the start of a tick (right after a collection).
"""

import asyncio
import gc
import json

from ds import clock, config, node, sensors, spool
from ds.hal_cpython import FakeBoard, SimClock

try:
    import tempfile

    _mkdtemp = tempfile.mkdtemp
except ImportError:  # MicroPython
    import os

    def _mkdtemp() -> str:
        for d in ("/tmp", "/tmp/memday"):
            try:  # noqa: SIM105 - MicroPython has no contextlib
                os.mkdir(d)
            except OSError:
                pass
        return "/tmp/memday"


OUTAGE_EVERY_H = 6
OUTAGE_MIN = 40
PROFILE = {
    "board": "esp32-devkit", "hw": "esp32-devkitc-v4",
    "i2c": {"id": 0, "scl": 22, "sda": 21, "freq": 100000},
    "uart_sensor": {"id": 2, "tx": 17, "rx": 16, "baud": 9600, "timeout_ms": 100},
    "rain_pin": 27, "wind_pin": 26, "vane_adc": 34, "jsn_trig": 5, "jsn_echo": 18,
    "lamp_relay": 25, "lamp_pwm": 33, "status_led": 2,
}  # fmt: skip


class Net:
    """The fake network: ``up`` or down; counts what the broker confirmed."""

    def __init__(self) -> None:
        self.up = True
        # Each tele publish waits here until the driver's next tick, as a real
        # send takes time: a replay is then many ticks, each collected after.
        self.gate = asyncio.Event()
        self.links: list[AckAll] = []
        self.connects = 0
        self.readings = 0
        self.hist = 0

        self.seen = bytearray(2048)  # one bit per seq: duplicates (QoS 1 resends) count once

    def confirmed(self, data: bytes) -> None:
        """Count the readings of a confirmed tele packet, in place (no 4 KiB copy)."""
        self.hist += data.count(b'"hist":true')
        i = data.find(b'"seq":')
        while i >= 0:
            j = i + 6
            seq = 0
            while 48 <= data[j] <= 57:
                seq = seq * 10 + data[j] - 48
                j += 1
            if not self.seen[seq >> 3] & (1 << (seq & 7)):
                self.seen[seq >> 3] |= 1 << (seq & 7)
                self.readings += 1
            i = data.find(b'"seq":', j)

    async def open(self, host: str, port: int) -> "AckAll":
        if not self.up:
            raise OSError("network down")
        self.connects += 1
        link = AckAll(self)
        self.links = [link]
        return link

    def cut(self) -> None:
        self.up = False
        for link in self.links:
            link.close()
        self.links = []


class AckAll:
    """A broker that acknowledges everything at once."""

    def __init__(self, net: Net) -> None:
        self.net = net
        self.rx = b""
        self.ev = asyncio.Event()
        self.closed = False

    def _push(self, data: bytes) -> None:
        self.rx += data
        self.ev.set()

    async def recv(self, n: int) -> bytes:
        while len(self.rx) < n:
            if self.closed:
                raise OSError("closed")
            self.ev.clear()
            await self.ev.wait()
        out = self.rx[:n]
        self.rx = self.rx[n:]
        return out

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise OSError("closed")
        kind = data[0] & 0xF0
        if kind == 0x10:  # CONNECT
            self._push(b"\x20\x02\x00\x00")
        elif kind == 0x80:  # SUBSCRIBE
            self._push(b"\x90\x03" + data[2:4] + b"\x01")
        elif kind == 0x30 and data[0] & 0x06:  # PUBLISH QoS 1
            # remaining length is one or two bytes for our packets (< 16 KiB)
            i = 2 if data[1] < 0x80 else 3
            tlen = (data[i] << 8) | data[i + 1]
            topic = data[i + 2 : i + 2 + tlen]
            if topic.endswith(b"/tele"):
                self.net.gate.clear()
                await self.net.gate.wait()
                if self.closed:
                    raise OSError("closed")
                self.net.confirmed(data)
            self._push(b"\x40\x02" + data[i + 2 + tlen : i + 4 + tlen])
        elif kind == 0xC0:  # PINGREQ
            self._push(b"\xd0\x00")

    def close(self) -> None:
        self.closed = True
        self.ev.set()


class System:
    hw = "esp32-devkitc-v4"

    def __init__(self, net: Net, clk: "SimClock") -> None:
        self.net = net
        self.clk = clk
        self.fed = 0
        self.resets = 0
        self.wdt = self

    def feed(self) -> None:
        self.fed += 1

    def reset(self) -> None:
        self.resets += 1

    def reset_cause(self) -> str:
        return "power_on"

    def ntp_unix_ms(self, host: str) -> int:
        if not self.net.up:
            raise OSError("ntp: network down")
        return self.clk.unix_ms()

    def heap_free(self) -> "int | None":
        return gc.mem_free() if hasattr(gc, "mem_free") else None  # type: ignore[attr-defined]

    def rssi(self) -> int:
        return -71


def _local_config(kind: str, d: str) -> config.Config:
    local = {"site": "baclieu", "district": "phuong-1", "kind": kind, "device": kind + "-mem"}
    if kind == "water":
        local["water_sensor"] = "a02yyuw"
        local["mount_mm"] = 2000
    with open(d + "/config.json", "w") as f:
        f.write(json.dumps(local))
    return config.Config(d + "/config.json", d + "/cfg_remote.json")


class Day:
    """One node of ``kind`` for ``hours`` virtual hours."""

    def __init__(self, kind: str, hours: int = 24) -> None:
        self.kind = kind
        self.end_min = hours * 60
        self.minute = -1
        self.minute_end = 0
        self.stopping = False
        self.done = False
        self.stop_task: asyncio.Task[None] | None = None
        d = _mkdtemp()
        self.hw = hw = SimClock()
        self.vt = clock.VirtualTime(hw)
        clock.use(hw, self.vt)
        self.net = Net()
        self.system = System(self.net, hw)
        cfg = _local_config(kind, d)
        self.counters = spool.Counters(d + "/counters.json")
        self.board = FakeBoard(dist_mm=1900)
        s = sensors.build(cfg, PROFILE, self.board, self.counters, hw)
        self.spool = spool.Spool(d + "/spool", capacity=cfg["spool_capacity"], rec_size=256)
        self.node = node.Node(cfg, s, self.spool, self.counters, self.system, opener=self.net.open)
        self.task = asyncio.create_task(self.node.run())
        self.peak = 0
        self.peak_at_s = 0  # virtual time of the peak
        self.live_peak = 0
        self.ticks = 0
        self.has_heap = hasattr(gc, "mem_alloc")

    def _next_minute(self) -> None:
        self.minute += 1
        self.minute_end = (self.minute + 1) * 60000
        m = self.minute
        if m >= self.end_min:
            self.net.up = True  # ten more minutes to replay the last outage
            self.minute_end = self.end_min * 60000 + 600000
            return
        in_outage = m % (OUTAGE_EVERY_H * 60) >= OUTAGE_EVERY_H * 60 - OUTAGE_MIN
        if in_outage and self.net.up:
            self.net.cut()
        elif not in_outage:
            self.net.up = True
        self.board.clear_logs()  # the fakes' logs are not the node's memory
        if self.kind == "weather":  # a shower: bucket tips and gusty wind
            self.board.pins[PROFILE["rain_pin"]].fire()
            self.board.pins[PROFILE["wind_pin"]].fire()

    def wake(self) -> bool:
        """Advance virtual time to the next wake-up; False once the day is over."""
        if self.done:
            return False
        while not self.vt.wake_next(self.minute_end):
            if self.minute >= self.end_min:
                if not self.stopping:
                    self.stopping = True
                    self.stop_task = asyncio.create_task(self.node.stop())
                    return True
                self.done = True
                return False
            self._next_minute()
        return True

    def tick(self, wakes: int = 1) -> bool:
        """MicroPython, called from JavaScript: ``wakes`` times, run the ready
        tasks and wake the next sleepers; records the heap. False once the day
        is over."""
        from asyncio import core  # the WebAssembly port's JS-driven scheduler

        if self.has_heap:
            live = gc.mem_alloc()  # type: ignore[attr-defined]
            if live > self.live_peak:
                self.live_peak = live
        self.net.gate.set()
        more = True
        for _ in range(wakes):
            core._run_iter()  # type: ignore[attr-defined]
            more = self.wake()
            if not more:
                break
        self.ticks += 1
        if self.has_heap:
            a = gc.mem_alloc()  # type: ignore[attr-defined]
            if a > self.peak:
                self.peak = a
                self.peak_at_s = self.vt.now_ms // 1000
        return more

    async def drive(self, settle: int = 8) -> None:
        """CPython: the same day on CPython's event loop."""
        while True:
            self.net.gate.set()
            for _ in range(settle):
                await asyncio.sleep(0)
            if not self.wake():
                return

    def result(self) -> "dict":
        self.task.cancel()
        self.spool.close()
        return {
            "kind": self.kind,
            "harness_b": HARNESS_B,
            "code_b": CODE_B,
            "peak": self.peak,
            "peak_at_s": self.peak_at_s,
            "live_peak": self.live_peak,
            "ticks": self.ticks,
            "taken": self.counters.get("seq", 0),
            "delivered": self.net.readings,
            "hist": self.net.hist,
            "spooled": len(self.spool),
            "dropped": self.spool.dropped,
            "connects": self.net.connects,
            "wdt_fed": self.system.fed,
            "resets": self.system.resets,
        }


_day: "list[Day]" = []
# Heap taken by the harness's own code (ds.hal_cpython and this module), set by
# run_mpy_day.mjs, which imports them after the firmware and measures the difference.
HARNESS_B = 0
# Heap taken by the firmware's code for this kind (ds modules and drivers loaded
# from .mpy), measured the same way.
CODE_B = 0


def start(kind: str, hours: int) -> None:
    """MicroPython: set up the day (then ``tick()`` until False, then ``finish()``)."""
    _day.append(Day(kind, hours))


def tick(wakes: int = 1) -> bool:
    return _day[0].tick(wakes)


def finish() -> None:
    print("@@DSMEM@@" + json.dumps(_day[0].result()))
