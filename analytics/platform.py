"""What analytics knows of the platform itself: the broker's drop counter and each
ingest worker's health reports (deltasense/health.py), turned into the arrays the
platform rules read (analytics/rules/platform.py).  No I/O; times are the caller's
clock (arrival), so a worker's wrong clock cannot hide its silence.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from deltasense.health import IngestReport
from deltasense.rulekernels.base import F32, Bool, f32
from deltasense.thresholds import Platform

MINUTE_MS: Final = 60_000
HISTORY_MS: Final = 3_600_000  # the longest window a site may set is kept, no more
# A worker's lag is the worst it reported this recently: one late batch between two
# evaluations is not missed, and the alert clears this long after the lag is gone.
LAG_HOLD_MS: Final = 10_000


@dataclass
class _Worker:
    started: int
    deadletters: int
    seen_ms: int
    lags: deque[tuple[int, float]] = field(default_factory=deque)  # (ms, reported lag)


# A retained counter arrives within milliseconds of a subscription; one that has
# not come after this long has not changed for a minute (its retained value expired).
COUNTER_SILENCE_MS: Final = 3_000


def new_since(previous: int | None, value: int) -> int:
    """Increase of a counter since ``previous``; a smaller value is a restart (it
    began again at zero); the first sample is the baseline (what came before was
    not watched)."""
    if previous is None:
        return 0
    return value - previous if value >= previous else value


@dataclass
class PlatformView:
    """One evaluation's platform arrays (length 1: the one platform subject)."""

    dropped: F32  # messages the broker dropped in the drop window
    drop_watched: Bool  # a whole drop window has been watched
    lag_s: F32  # the worst ingest worker's lag (NaN: no report yet)
    deadletters_per_min: F32
    deadletters_watched: Bool


@dataclass
class PlatformState:
    """Counters as they arrive.  ``workers``: how many ingest workers the site runs
    (the setting), so a worker that falls silent counts as behind."""

    workers: int = 1
    broker_dropped_total: int | None = None
    broker_stored: int | None = None
    _first_ms: int | None = None
    _drops: deque[tuple[int, int]] = field(default_factory=deque)  # (ms, new drops)
    _deadletters: deque[tuple[int, int]] = field(default_factory=deque)
    _ingest: dict[int, _Worker] = field(default_factory=dict)
    _first_report_ms: int | None = None
    _subscribed_ms: int | None = None

    def counters_subscribed(self, now_ms: int) -> None:
        """Analytics has just subscribed to the broker's counters (at a connect).  The
        broker answers with its retained current value at once — if it has one:
        Mosquitto (2.0.11) publishes the dropped counter at its start and then only
        when it changes, and a retained ``$SYS`` value expires after 60 s.  A counter
        silent for ``COUNTER_SILENCE_MS`` is unchanged since, so its next value is a
        rise, counted whole (how much of it is older cannot be known; the alert fires
        either way), not a baseline."""
        if self.broker_dropped_total is None and self._subscribed_ms is None:
            self._subscribed_ms = now_ms

    def broker_dropped(self, now_ms: int, total: int) -> None:
        if (
            self.broker_dropped_total is None
            and self._subscribed_ms is not None
            and now_ms - self._subscribed_ms >= COUNTER_SILENCE_MS
        ):
            self.broker_dropped_total = 0  # it was silent: nothing dropped until now
        new = new_since(self.broker_dropped_total, total)
        self.broker_dropped_total = total
        if self._first_ms is None:
            self._first_ms = now_ms
        if new:
            self._drops.append((now_ms, new))
        self._trim(now_ms)

    def ingest_report(self, now_ms: int, report: IngestReport) -> None:
        known = self._ingest.get(report.worker)
        if known is None:
            new = 0  # first look: its count so far is the baseline
        elif known.started != report.started:
            new = report.deadletters  # a new process, counting from zero
        else:
            new = new_since(known.deadletters, report.deadletters)
        worker = _Worker(report.started, report.deadletters, now_ms)
        if known is not None:
            worker.lags = known.lags
        worker.lags.append((now_ms, report.lag_s or 0.0))  # None: it wrote nothing
        while worker.lags and worker.lags[0][0] < now_ms - LAG_HOLD_MS:
            worker.lags.popleft()
        self._ingest[report.worker] = worker
        if self._first_report_ms is None:
            self._first_report_ms = now_ms
        if new:
            self._deadletters.append((now_ms, new))
        self._trim(now_ms)

    def _trim(self, now_ms: int) -> None:
        for q in (self._drops, self._deadletters):
            while q and q[0][0] < now_ms - HISTORY_MS:
                q.popleft()

    @staticmethod
    def _sum(q: deque[tuple[int, int]], since_ms: float) -> int:
        return sum(n for t, n in q if t > since_ms)

    def lag_s(self, now_ms: int) -> float:
        """The worst worker: its reported lag, or how long it has been silent (it has
        stored nothing known since), whichever is more.  NaN before any report."""
        worst = float("nan")
        for index, w in self._ingest.items():
            if index >= self.workers:
                continue  # retired by the setting
            held = (lag for t, lag in w.lags if t >= now_ms - LAG_HOLD_MS)
            lag = max(max(held, default=0.0), (now_ms - w.seen_ms) / 1000.0)
            worst = lag if np.isnan(worst) else max(worst, lag)
        return worst

    def view(self, now_ms: int, p: Platform) -> PlatformView:
        drop_ms = p.broker_drop_window_s * 1000
        dl_ms = p.deadletter_window_s * 1000
        dropped = self._sum(self._drops, now_ms - drop_ms)
        dead = self._sum(self._deadletters, now_ms - dl_ms)
        drop_watched = self._first_ms is not None and now_ms - self._first_ms >= drop_ms
        dl_watched = self._first_report_ms is not None and now_ms - self._first_report_ms >= dl_ms
        return PlatformView(
            dropped=f32([dropped]),
            drop_watched=np.array([drop_watched]),
            lag_s=f32([self.lag_s(now_ms)]),
            deadletters_per_min=f32([dead * MINUTE_MS / dl_ms]),
            deadletters_watched=np.array([dl_watched]),
        )
