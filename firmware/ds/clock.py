# Time for the node's tasks: ticks, non-blocking sleeps and the synced wall clock.
#
# Built on a HAL clock (``ds.hal.MachineClock`` on a board,
# ``ds.hal_cpython.SimClock`` in tests and the simulator). Every firmware task
# sleeps through ``sleep_ms`` here, never through the HAL's blocking sleep, so
# a virtual clock (``VirtualTime``) can run a simulated day in seconds.
#
# Wall clock: the node has no ``ts`` until the first NTP sync (CONTRACT.md).
import asyncio

from ds import hal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class VirtualTime:
    """Drives a manual ``SimClock``: ``run(seconds)`` jumps from one sleeper's
    wake-up to the next, letting every runnable task run in between. Only for
    tests whose network answers at once (a fake transport)."""

    def __init__(self, sim_clock: "Any") -> None:
        self.clock = sim_clock
        self.now_ms = 0
        self._sleepers: "list[Any]" = []  # [wake_ms, Event]

    async def sleep_ms(self, ms: int) -> None:
        ev = asyncio.Event()
        self._sleepers.append([self.now_ms + max(0, int(ms)), ev])
        await ev.wait()

    def wake_next(self, end_ms: int) -> bool:
        """Jump to the earliest sleeper due by ``end_ms`` and wake every sleeper
        due then; False (clock at ``end_ms``) when none is due by ``end_ms``.
        For drivers that run the ready tasks themselves between calls."""
        first = end_ms
        for s in self._sleepers:
            if s[0] < first:
                first = s[0]
        if first > self.now_ms:
            self.clock.advance(first - self.now_ms)
            self.now_ms = first
        if first >= end_ms and not any(s[0] <= end_ms for s in self._sleepers):
            return False
        keep = []
        for s in self._sleepers:
            if s[0] <= self.now_ms:
                s[1].set()
            else:
                keep.append(s)
        self._sleepers = keep
        return True

    async def run(self, seconds: float, settle: int = 12) -> None:
        end = self.now_ms + int(seconds * 1000)
        while True:
            for _ in range(settle):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if not self.wake_next(end):
                return


_hw: "Any" = None
_virtual: "Any" = None


def use(hw_clock: "Any", virtual: "Any" = None) -> None:
    """Select the HAL clock (and optionally the virtual time driving it)."""
    global _hw, _virtual
    _hw = hw_clock
    _virtual = virtual


def hw() -> "Any":
    global _hw
    if _hw is None:
        if hal.MICROPYTHON:
            _hw = hal.MachineClock()
        else:  # CPython without a chosen clock: follow the host clock
            from ds import hal_cpython

            _hw = hal_cpython.SimClock(realtime=True)
    return _hw


def ticks_ms() -> int:
    return hw().ticks_ms()  # type: ignore[no-any-return]


def ticks_diff(a: int, b: int) -> int:
    return hal.ticks_diff(a, b)


async def sleep_ms(ms: int) -> None:
    if _virtual is not None:
        await _virtual.sleep_ms(ms)
    else:
        await asyncio.sleep(ms / 1000)


class WallClock:
    """Unix milliseconds once synced, else None (no ``ts`` before the first sync)."""

    def __init__(self) -> None:
        self.synced = False
        self.last_sync: "Any" = None  # ticks of the last good sync

    def sync(self, unix_ms: int) -> None:
        hw().set_unix_ms(int(unix_ms))
        self.synced = True
        self.last_sync = ticks_ms()

    def now_ms(self) -> "Any":
        return hw().unix_ms() if self.synced else None


def local_minutes(unix_ms: int, utc_offset_h: int = 7) -> int:
    """Minute of the local day, 0..1439 (Bạc Liêu: UTC+7, no daylight saving)."""
    return ((unix_ms // 60000) + utc_offset_h * 60) % 1440
