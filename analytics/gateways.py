"""What analytics knows of the district edge gateways: their retained status
(deltasense/gateway_status.py) turned into the arrays the gateway rules read
(analytics/rules/gateways.py), one row per gateway, rows never move (each is a
lifecycle row).  No I/O; times are the caller's clock (arrival), so a gateway's
wrong clock cannot hide its silence.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from analytics.platform import new_since
from deltasense.gateway_status import GatewayStatus
from deltasense.rulekernels.base import F32, Bool, f32
from deltasense.thresholds import Platform

HISTORY_MS: Final = 86_400_000  # the longest drop window kept


@dataclass
class _Gateway:
    online: bool = False
    heard_ms: int | None = None  # the newest status heard (online or its Last Will)
    online_ms: int | None = None  # the newest online status heard
    interval_s: float | None = None
    oldest_age_s: float = float("nan")  # as of online_ms; NaN: empty spool unknown
    records: int = 0
    dropped_total: int | None = None
    first_count_ms: int | None = None
    drops: deque[tuple[int, int]] = field(default_factory=deque)  # (ms, new drops)
    retired: bool = False  # its retained status was cleared: no longer watched


@dataclass
class GatewayView:
    """One evaluation's gateway arrays (one row per gateway, in ``districts`` order)."""

    oldest_age_s: F32  # the spool's oldest record; 0: empty; NaN: not known now
    dropped: F32  # records dropped within the drop window
    drop_watched: Bool  # a whole drop window has been watched
    silent_s: F32  # since the last online status (0 while fresh); NaN: never heard
    offline: Bool  # its Last Will says so
    heard: Bool  # some status of it came this run
    stale_after_s: F32  # silent this long is stale (its interval × edge_silent_intervals)
    retired: Bool


@dataclass
class GatewayState:
    """The gateways as their statuses arrive; ``districts`` are their rows."""

    districts: list[str] = field(default_factory=list)
    _gateways: list[_Gateway] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict)

    def row(self, district: str) -> int:
        """The gateway of ``district``'s row, added if new."""
        row = self._rows.get(district)
        if row is None:
            row = self._rows[district] = len(self.districts)
            self.districts.append(district)
            self._gateways.append(_Gateway())
        return row

    def status(self, now_ms: int, district: str, status: GatewayStatus) -> None:
        g = self._gateways[self.row(district)]
        g.retired = False
        if status.state == "offline":
            g.online = False
            if g.online_ms is None:
                g.online_ms = now_ms  # silent from now: when it went is not known
            g.heard_ms = now_ms
            return
        heard = now_ms
        if g.heard_ms is None and status.ts is not None:
            # First heard this run: likely the retained message, as old as its ts says.
            heard = min(now_ms, status.ts)
        g.online, g.heard_ms, g.online_ms = True, heard, heard
        g.interval_s = status.interval_s
        g.records = status.spool_records or 0
        g.oldest_age_s = float("nan") if status.oldest_age_s is None else status.oldest_age_s
        if status.oldest_age_s is None and status.spool_records is not None:
            g.oldest_age_s = 0.0 if g.records == 0 else float("nan")
        if status.dropped is not None:
            total = status.dropped.total
            new = new_since(g.dropped_total, total)
            g.dropped_total = total
            if g.first_count_ms is None:
                g.first_count_ms = now_ms
            if new:
                g.drops.append((now_ms, new))
        while g.drops and g.drops[0][0] < now_ms - HISTORY_MS:
            g.drops.popleft()

    def retire(self, district: str) -> None:
        """Its retained status was cleared: the gateway is gone, its alerts resolve."""
        self._gateways[self.row(district)] = _Gateway(retired=True)

    def view(self, now_ms: int, p: Platform) -> GatewayView:
        n = len(self._gateways)
        oldest, dropped, silent, stale = (np.full(n, np.nan, dtype=np.float32) for _ in range(4))
        watched, offline, heard, retired = (np.zeros(n, dtype=np.bool_) for _ in range(4))
        drop_ms = p.edge_drop_window_s * 1000
        for i, g in enumerate(self._gateways):
            retired[i] = g.retired
            interval = g.interval_s or p.edge_status_interval_s
            stale[i] = interval * p.edge_silent_intervals
            heard[i] = g.heard_ms is not None
            offline[i] = heard[i] and not g.online
            if g.online_ms is not None:
                silent[i] = max(0.0, (now_ms - g.online_ms) / 1000)
            fresh = g.online and silent[i] <= stale[i]
            oldest[i] = g.oldest_age_s if fresh else np.nan
            dropped[i] = sum(k for t, k in g.drops if t > now_ms - drop_ms)
            watched[i] = g.first_count_ms is not None and now_ms - g.first_count_ms >= drop_ms
        return GatewayView(
            oldest_age_s=f32(oldest),
            dropped=f32(dropped),
            drop_watched=watched,
            silent_s=f32(silent),
            offline=offline,
            heard=heard,
            stale_after_s=f32(stale),
            retired=retired,
        )
