"""Failed authentications, limited per client address.

After ``limit`` bad credentials from one address within ``window_s``, every
request from it that needs a token is answered 429 (with ``Retry-After``) until
the oldest of those failures leaves the window; the token is then not even
checked, so guessing stops.  Other addresses are not affected.

Memory is bounded: at most ``max_clients`` addresses are remembered, each with at
most ``limit`` timestamps; when full, the address that failed least recently is
forgotten.  An IPv6 client is keyed by its /64, which one host usually holds
whole (otherwise a single machine could spray a fresh address per guess).  A
client with many IPv4 addresses is not stopped by a per-address limit; that is a
job for the network in front.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

FAIL_LIMIT: Final = 10
FAIL_WINDOW_S: Final = 60.0
MAX_CLIENTS: Final = 10_000


def client_key(host: str | None) -> str:
    """The address a limit applies to: an IPv4 address, an IPv6 /64."""
    if not host:
        return "-"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # not an IP (a unix socket, a test client): as given, bounded
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class AuthFailureLimiter:
    def __init__(
        self,
        *,
        limit: int = FAIL_LIMIT,
        window_s: float = FAIL_WINDOW_S,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_s <= 0 or max_clients < 1:
            raise ValueError("limit, window_s and max_clients must be positive")
        self.limit = limit
        self.window_s = window_s
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # least recent first

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or None if it may now."""
        now = self._clock()
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window_s - now))

    def failed(self, key: str) -> None:
        now = self._clock()
        times = self._recent(key, now)
        if times is None:
            while len(self._failures) >= self._max_clients:
                self._failures.popitem(last=False)
            times = self._failures[key] = deque(maxlen=self.limit)
        else:
            self._failures.move_to_end(key)
        times.append(now)
