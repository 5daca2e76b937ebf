"""The site's device list for the city view's bulk reads, shared between requests.

Reading the registry joined with every device's latest status and meta is three
InfluxDB queries over one series per device: about a second each at 10 000 devices
on a quiet 2-core box, several under load, and the console asks for it from /map and
/wards at once and again on every reconnect and poll.  One read serves every request
for ``fresh_s`` seconds; concurrent requests wait on the same read; a list older
than that (but not older than ``stale_s``) is served at once while a new read runs
behind it.  Alerts are not cached: the map's colours stay as fresh as the feed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from api.store import Database, DeviceInfo, list_devices

_LOG = logging.getLogger("api.devicecache")
STALE_S = 60.0


class DeviceCache:
    def __init__(
        self,
        fresh_s: float,
        *,
        stale_s: float = STALE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh_s = fresh_s
        self.stale_s = max(stale_s, fresh_s)
        self._clock = clock
        self._value: list[DeviceInfo] | None = None
        self._at = -math.inf  # when the read that made _value started
        self._task: asyncio.Task[list[DeviceInfo]] | None = None
        self.reads = 0  # registry reads made (tests and metrics)

    async def get(self, db: Database, site: str) -> list[DeviceInfo]:
        if self.fresh_s <= 0:
            self.reads += 1
            return await list_devices(db, site)
        age = self._clock() - self._at
        if self._value is not None and age <= self.fresh_s:
            return self._value
        task = self._refresh(db, site)
        if self._value is not None and age <= self.stale_s:
            return self._value  # the new read runs behind this answer
        # shield: one caller giving up (a closed connection) does not cancel the read
        # the others wait on.
        return await asyncio.shield(task)

    def _refresh(self, db: Database, site: str) -> asyncio.Task[list[DeviceInfo]]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read(db, site), name="api-device-list")
            self._task.add_done_callback(_log_failure)
        return self._task

    async def _read(self, db: Database, site: str) -> list[DeviceInfo]:
        started = self._clock()
        self.reads += 1
        value = await list_devices(db, site)
        if started >= self._at:
            self._value, self._at = value, started
        return value


def _log_failure(task: asyncio.Task[list[DeviceInfo]]) -> None:
    # A read nobody awaited (served stale) must not fail silently; the next request
    # after it starts another.
    if not task.cancelled() and (exc := task.exception()) is not None:
        _LOG.warning("reading the device list failed: %s", exc)
