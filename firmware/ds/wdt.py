# Watchdog supervision: the hardware watchdog is fed only while every task
# reports progress, so a task stuck forever (a hung driver, a deadlock) resets
# the node instead of leaving it silent on its pole.
from ds import clock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Supervisor:
    """Tasks ``register(name, within_s)`` and call ``progress(name)`` each loop;
    ``healthy()`` is true while each reported within its limit."""

    def __init__(self) -> None:
        self._limit_ms: dict = {}
        self._last: dict = {}

    def register(self, name: str, within_s: float) -> None:
        self._limit_ms[name] = int(within_s * 1000)
        self._last[name] = clock.ticks_ms()

    def progress(self, name: str) -> None:
        self._last[name] = clock.ticks_ms()

    def stalled(self) -> list:
        now = clock.ticks_ms()
        return [
            n for n, limit in self._limit_ms.items() if clock.ticks_diff(now, self._last[n]) > limit
        ]

    def healthy(self) -> bool:
        return not self.stalled()


async def feed_forever(sup: Supervisor, wdt: "Any", every_ms: int = 1000) -> None:
    """Feed ``wdt`` (``machine.WDT`` or a fake with ``feed()``) while healthy;
    once a task stalls, stop feeding and let the hardware reset the node."""
    while True:
        if sup.healthy():
            wdt.feed()
        else:
            print("wdt: stalled tasks", sup.stalled(), "- not feeding")
        await clock.sleep_ms(every_ms)
