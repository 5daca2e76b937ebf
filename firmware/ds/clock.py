# Time for the node's tasks: ticks, non-blocking sleeps and the synced wall clock.
#
# Built on a HAL clock (``ds.hal.MachineClock`` on a board,
# ``ds.hal_cpython.SimClock`` in tests and the simulator). Every firmware task
# sleeps through ``sleep_ms`` here, never through the HAL's blocking sleep, so
# a virtual clock (``ds.hal_cpython.VirtualTime``) can run a simulated day in
# seconds.
#
# Wall clock: the node has no ``ts`` until the first NTP sync (docs/CONTRACT.md).
import asyncio

from ds import hal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Awaitable


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


def _host_sleep_ms(ms: int) -> "Awaitable[None]":
    return asyncio.sleep(ms / 1000)


# MicroPython's asyncio.sleep_ms: no float and no new object per sleep.
_sleep_ms: "Any" = getattr(asyncio, "sleep_ms", _host_sleep_ms)


def sleep_ms(ms: int) -> "Awaitable[None]":
    """``await clock.sleep_ms(ms)``: the awaitable itself, not a coroutine
    wrapping it (every task sleeps through here, several times a second)."""
    if _virtual is not None:
        return _virtual.sleep_ms(ms)  # type: ignore[no-any-return]
    return _sleep_ms(ms)  # type: ignore[no-any-return]


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
