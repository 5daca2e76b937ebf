"""A simulated day of one node, for the memory test (``test_memory.py``).

Runs on MicroPython (driven by ``run_mpy_day.mjs``) and on CPython. The node is
the firmware's own: ``ds.sensors.build`` wires the real drivers to a fake board
(``ds.hal_cpython.FakeBoard``), the real spool and counters write to the
interpreter's filesystem, and ``ds.node.Node`` runs all its tasks under
``ds.hal_cpython.VirtualTime`` for 24 virtual hours. The network is a fake
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

from ds import app, clock, config, mqtt, node, sensors, spool
from ds.hal_cpython import FakeBoard, SimClock, VirtualTime

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
# The platform's retained cfg, delivered on every subscribe (values as the
# defaults: applied and stored each time, the hash stays), and a ping command
# every hour: the node's cfg and cmd paths run during the day too.
CFG = b'{"interval_s":60,"dim_min_pct":10}'
PING = '{"id":"ping-%d","name":"ping","args":{},"expires":4102444800000}'
PROFILE = {
    "board": "esp32-devkit", "hw": "esp32-devkitc-v4",
    "i2c": {"id": 0, "scl": 22, "sda": 21, "freq": 100000},
    "uart_sensor": {"id": 2, "tx": 17, "rx": 16, "baud": 9600, "timeout_ms": 100},
    "rain_pin": 27, "wind_pin": 26, "vane_adc": 34, "jsn_trig": 5, "jsn_echo": 18,
    "lamp_relay": 25, "lamp_pwm": 33, "status_led": 2,
}  # fmt: skip


def _at(data: "Any", j: int, word: bytes) -> bool:
    """``data[j:].startswith(word)`` for a memoryview, without a copy."""
    if j + len(word) > len(data):
        return False
    for k in range(len(word)):
        if data[j + k] != word[k]:
            return False
    return True


class Net:
    """The fake network: ``up`` or down; counts what the broker confirmed."""

    def __init__(self, max_seq: int = 16383) -> None:
        self.up = True
        # Each send waits here until the driver's next tick (AckAll.send).
        self.gate = asyncio.Event()
        self.links: list[AckAll] = []
        self.connects = 0
        self.tls_connects = 0
        self.readings = 0
        self.hist = 0
        self.acks = 0  # command acks the broker got
        self.pid = 0  # packet ids of what the broker sends
        self.base = ""  # the node's topic prefix, set by Day

        # one bit per seq: duplicates (QoS 1 resends) count once
        self.seen = bytearray(max_seq // 8 + 1)

    def confirmed(self, data: "Any", j: int) -> None:
        """Count the readings of a confirmed tele packet from its payload at
        ``j``, in place (the node sends a memoryview of its packet buffer)."""
        n = len(data)
        while j < n:
            if data[j] != 0x22:  # '"'
                j += 1
            elif _at(data, j, b'"hist":true'):
                self.hist += 1
                j += 11
            elif _at(data, j, b'"seq":'):
                j += 6
                seq = 0
                while 48 <= data[j] <= 57:
                    seq = seq * 10 + data[j] - 48
                    j += 1
                if not self.seen[seq >> 3] & (1 << (seq & 7)):
                    self.seen[seq >> 3] |= 1 << (seq & 7)
                    self.readings += 1
            else:
                j += 1

    async def open(self, host: str, port: int, tls: "Any" = None) -> "AckAll":
        """The TCP opener under the firmware's TLS opener (``ds.tls``): the node
        must come with its context, verifying (the day fails otherwise)."""
        import ssl

        if tls is None or tls.verify_mode != ssl.CERT_REQUIRED:
            raise RuntimeError("memday: the node connected without a verifying TLS context")
        if not self.up:
            raise OSError("network down")
        self.connects += 1
        self.tls_connects += 1
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

    async def send(self, data: "Any") -> None:
        # Each packet goes out at the driver's next tick, as a real send takes
        # time: what a node does between two sends is collected after it, and
        # the session's start is not one burst (it is never one on a board).
        self.net.gate.clear()
        await self.net.gate.wait()
        if self.closed:
            raise OSError("closed")
        kind = data[0] & 0xF0
        if kind == 0x10:  # CONNECT
            self._push(b"\x20\x02\x00\x00")
        elif kind == 0x80:  # SUBSCRIBE
            self._push(b"\x90\x03" + data[2:4] + b"\x01")
            self.deliver("cfg", CFG, True)
        elif kind == 0x30 and data[0] & 0x06:  # PUBLISH QoS 1
            # remaining length is one or two bytes for our packets (< 16 KiB)
            i = 2 if data[1] < 0x80 else 3
            end = i + 2 + ((data[i] << 8) | data[i + 1])  # end of the topic
            if _at(data, end - 5, b"/tele"):
                self.net.confirmed(data, end + 2)
            elif _at(data, end - 4, b"/ack"):
                self.net.acks += 1
            self._push(bytes((0x40, 2, data[end], data[end + 1])))
        elif kind == 0xC0:  # PINGREQ
            self._push(b"\xd0\x00")

    def deliver(self, leaf: str, payload: bytes, retain: bool = False) -> None:
        """A QoS 1 PUBLISH from the broker to the node on its ``leaf`` topic."""
        self.net.pid = self.net.pid % 65535 + 1
        self._push(mqtt.publish_packet(self.net.base + leaf, payload, 1, retain, self.net.pid))

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


# The broker's CA in DER, as flashing writes it to /ca.der (the test puts a real
# one here: /lib/ca.der on MicroPython; set by the CPython test).
CA_SOURCE = "/lib/ca.der"


def _local_config(kind: str, d: str) -> config.Config:
    with open(CA_SOURCE, "rb") as src, open(d + "/ca.der", "wb") as dst:
        dst.write(src.read())
    local = {
        "site": "baclieu",
        "district": "phuong-1",
        "kind": kind,
        "device": kind + "-mem",
        "ca_file": d + "/ca.der",  # broker_tls: on by default
    }
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
        self.vt = VirtualTime(hw)
        clock.use(hw, self.vt)
        self.net = Net(max_seq=hours * 60 + 60)
        self.system = System(self.net, hw)
        cfg = _local_config(kind, d)
        self.counters = spool.Counters(d + "/counters.json")
        self.board = FakeBoard(dist_mm=1900, log=False)  # the fakes' logs are not the node's
        s = sensors.build(cfg, PROFILE, self.board, self.counters, hw)
        self.spool = spool.Spool(d + "/spool", capacity=cfg["spool_capacity"], rec_size=256)
        # The firmware's own transport choice (ds.app.transport: TLS, the CA pinned)
        # over the fake network.
        opener = app.transport(cfg, self.net.open)
        self.node = node.Node(cfg, s, self.spool, self.counters, self.system, opener=opener)
        self.net.base = self.node.base
        self.task = asyncio.create_task(self.node.run())
        self.peak = 0
        self.boot_b = 0  # the bound at the end of the boot (start())
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
        if m % 60 == 30 and self.net.links:
            self.net.links[0].deliver("cmd", (PING % m).encode())
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
            # This port only collects between calls from JavaScript, and by
            # itself only once 16 KiB were allocated: ask for a collection now,
            # so the next tick starts from the live heap alone.
            gc.collect()
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
            "boot_b": self.boot_b,
            "live_peak": self.live_peak,
            "ticks": self.ticks,
            "taken": self.counters.get("seq", 0),
            "delivered": self.net.readings,
            "hist": self.net.hist,
            "spooled": len(self.spool),
            "dropped": self.spool.dropped,
            "connects": self.net.connects,
            "tls_connects": self.net.tls_connects,
            "acks": self.net.acks,
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


def start(kind: str, hours: int, seed: int = 1) -> None:
    """MicroPython: set up the day (then ``tick()`` until False, then ``finish()``).

    The node's boot (config, sensors, spool, ``Node``) is the first bound of
    the peak, measured like a tick.  ``seed`` seeds the firmware's reconnect
    jitter (``node.backoff_ms``): unseeded, the interleaving of replays, pings and
    reconnects differed from run to run and so did the peak (weather 94.2 and
    97.0 KiB in two runs of the same code), so one run proves nothing about the
    next; a seed makes a day reproducible and other seeds explore others."""
    import random

    random.seed(seed)
    day = Day(kind, hours)
    _day.append(day)
    if day.has_heap:
        day.peak = day.boot_b = gc.mem_alloc()  # type: ignore[attr-defined]
        gc.collect()


def tick(wakes: int = 1) -> bool:
    return _day[0].tick(wakes)


def finish() -> None:
    print("@@DSMEM@@" + json.dumps(_day[0].result()))
