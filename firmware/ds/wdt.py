# Watchdog supervision: the hardware watchdog is fed only while every task
# reports progress, so a task stuck forever (a hung driver, a deadlock) resets
# the node instead of leaving it silent on its pole.
from ds import clock


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

    def healthy(self) -> bool:
        # Called every second: a plain loop, no list made.
        now = clock.ticks_ms()
        for n in self._limit_ms:
            if clock.ticks_diff(now, self._last[n]) > self._limit_ms[n]:
                return False
        return True

