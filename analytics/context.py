"""What a rule's evaluator is given: the arrays of one evaluation, cut from the windows.

The engine builds one :class:`Context` per :meth:`~analytics.engine.Engine.evaluate`:
the time, the thresholds, the site's UTC offset, one view per subject space
(weather stations, water nodes, lamps, meters, all devices) and the results of
the rules evaluated so far this time.  A view computes each derived array (the
10-minute mean wind, the plausible newest level, ...) once, on first use, so the
rules that share it share the work.  Nothing here keeps state between
evaluations; the engine's own state (the learned lamp ratings, the canal flags)
comes in as plain arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt

from analytics import window as win
from analytics.gateways import GatewayView
from analytics.platform import PlatformView
from analytics.registry import OFFLINE, SLEEPING, STOPPED, Registry
from analytics.rules import energy, health, rain, sun
from deltasense.rulekernels import flood, storm
from deltasense.rulekernels.base import RuleResult, f32, last_valid, linear_fit
from deltasense.rulekernels.limits import FloodLimits, LightingLimits, StormLimits
from deltasense.thresholds import CanalStation, Thresholds

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

HOUR_MS: Final = 3_600_000
MINUTE_MS: Final = 60_000
CURRENT_MS: Final = 10 * MINUTE_MS  # older than this is no current state
STUCK_METRICS: Final = ("t_c", "rh_pct", "p_hpa", "wind_ms", "wind_dir_deg")
STEP_METRICS: Final = ("t_c", "rh_pct", "p_hpa", "wind_ms")


@dataclass(frozen=True)
class Rows:
    """One device kind's windows and, per window row, its device, district and
    district row in the registry."""

    window: win.Window
    hourly: win.Window | None
    devices: list[str]
    districts: list[str]
    district_idx: I64

    def hourly_window(self) -> win.Window:
        if self.hourly is None:
            raise KeyError("this kind has no hourly window")
        return self.hourly


class WeatherView:
    """Weather stations: wind, gusts, pressure tendencies, rain totals, sensor series."""

    def __init__(
        self, rows: Rows, limits: StormLimits, t: Thresholds, now_ms: int, utc_offset_min: int
    ) -> None:
        self.rows = rows
        self.limits = limits
        self._t = t
        self._now_ms = now_ms
        self._utc_offset_min = utc_offset_min
        self.slot_min = rows.window.slot_ms / MINUTE_MS

    @cached_property
    def wind(self) -> F32:
        """Enough minutes of wind for the mean, the squall and the gust front."""
        s = self._t.storm
        need = max(s.wind_mean_min, s.gust_front.window_min, 12) + 2
        return self.rows.window.series("wind_ms", last=need)

    @cached_property
    def mean10(self) -> F32:
        s = self._t.storm
        return storm.ten_minute_mean(
            self.wind, s.wind_mean_min, self.slot_min, s.wind_mean_coverage
        )

    @cached_property
    def gust(self) -> F32:
        return storm.recent_max(self.rows.window.series("gust_ms", last=2))

    @cached_property
    def pressure_falls(self) -> tuple[F32, F32]:
        """(3 h, 6 h) tendency of the detrended pressure."""
        w = self.rows.window
        cols = storm.tendency_columns(w.n_slots, self.slot_min)
        return storm.pressure_tendencies(
            w.columns("p_hpa", cols), w.slot_times()[cols], self._t.storm, self._utc_offset_min
        )

    @cached_property
    def p_latest(self) -> F32:
        return self.rows.window.latest_since("p_hpa", self._now_ms - CURRENT_MS)

    def recent(self, metric: str, minutes: int) -> F32:
        return self.rows.window.series(metric, last=minutes)

    @cached_property
    def _rain_minutes(self) -> F32:
        return self.rows.window.series("rain_total", last=round(180 / self.slot_min) + 1)

    @cached_property
    def rain_1h(self) -> F32:
        return rain.total_over(self._rain_minutes, 60, self.slot_min)

    @cached_property
    def rain_3h(self) -> F32:
        return rain.total_over(self._rain_minutes, 180, self.slot_min)

    @cached_property
    def rain_long(self) -> tuple[F32, F32]:
        """(last 24 h, hydromet day so far) from the hourly counter window."""
        hourly = self.rows.hourly_window()
        totals, times = hourly.series("rain_total"), hourly.slot_times()
        current, _ = last_valid(self._rain_minutes)
        now = self._now_ms
        day_start = rain.day_start_ms(now, self._t.rain.day_start_local_h, self._utc_offset_min)
        return (
            rain.total_since(totals, times, current, now - 24 * HOUR_MS),
            rain.total_since(totals, times, current, day_start),
        )

    @cached_property
    def stuck_series(self) -> dict[str, F32]:
        sw = self._t.health.stuck.window_min
        return {m: self.rows.window.series(m, last=sw) for m in STUCK_METRICS}

    @cached_property
    def spike_series(self) -> dict[str, F32]:
        k = self._t.health.spike_window_min
        return {m: self.stuck_series[m][:, -k:] for m in STEP_METRICS}


class WaterView:
    """Water nodes: the newest levels and their plausibility, cleaned depth and its trend."""

    def __init__(
        self, rows: Rows, limits: FloodLimits, canal: Bool, t: Thresholds, fresh: Bool
    ) -> None:
        self.rows = rows
        self.limits = limits
        self.excluded = canal  # canal stations: left out of the street rules
        self.fresh = fresh  # rows with a new level since the last evaluation
        self._t = t
        self._k = max(t.flood.rise_fit_min, 5) + 4

    @cached_property
    def _recent(self) -> F32:
        return self.rows.window.series("level_cm", last=self._k)

    @cached_property
    def _newest(self) -> tuple[F32, I64]:
        return self.rows.window.latest("level_cm")

    @property
    def level(self) -> F32:
        return self._newest[0]

    @cached_property
    def _previous(self) -> tuple[F32, F32, F32]:
        """(the reading before the newest, the one before that, minutes between the
        newest and the previous)."""
        w, k, recent = self.rows.window, self._k, self._recent
        level_ts = self._newest[1]
        # The newest reading's column; the previous reading is the newest before it.
        col = np.where(level_ts >= 0, k - 1 - (w.head_slot - level_ts // w.slot_ms), -1)
        before = np.where(np.arange(k)[None, :] < col[:, None], recent, np.float32(np.nan))
        prev, prev_col = last_valid(before.astype(np.float32))
        before_prev = np.where(np.arange(k)[None, :] < prev_col[:, None], recent, np.nan)
        prev2, _ = last_valid(before_prev.astype(np.float32))
        gap = f32(np.where(prev_col >= 0, (col - prev_col) * w.slot_ms / MINUTE_MS, np.nan))
        return prev, prev2, gap

    @property
    def previous(self) -> F32:
        return self._previous[0]

    @property
    def before_previous(self) -> F32:
        return self._previous[1]

    @cached_property
    def plausible(self) -> F32:
        prev, _, gap = self._previous
        return flood.plausible_latest(self.level, prev, gap, self._t.flood)

    @cached_property
    def trend(self) -> tuple[F32, F32]:
        """(slope in mm/min, fitted depth now) over the cleaned depth of the fit span."""
        fit_min = self._t.flood.rise_fit_min
        depth = flood.clean_depth(self._recent[:, -fit_min:], self._t.flood)
        slope, fitted = linear_fit(depth)
        return f32(slope / (self.rows.window.slot_ms / MINUTE_MS)), fitted

    @cached_property
    def alarm_levels(self) -> F32:
        """Alarm levels I/II/III (m) per row, NaN = unknown: a canal station's own,
        else the site's ``canal_default`` (so a canal announced only by its meta is
        judged); street drains have none."""
        fl = self._t.flood
        bd = np.full((len(self.rows.devices), 3), np.nan, dtype=np.float32)
        if fl.canal_default is not None:
            bd[self.excluded] = _bd_row(fl.canal_default)
        for device, levels in fl.canal_stations.items():
            row = self.rows.window.row_of(device)
            if row is not None and self.excluded[row]:
                bd[row] = _bd_row(levels)
        return bd


class LampView:
    """Street lamps: current state, sun elevation, rated power, recent series."""

    def __init__(
        self,
        rows: Rows,
        limits: LightingLimits,
        rated_w: F32,
        positions: tuple[F32, F32],
        t: Thresholds,
        now_ms: int,
    ) -> None:
        self.rows = rows
        self.limits = limits
        self.rated_w = rated_w
        self._positions = positions
        self._t = t
        self._now_ms = now_ms

    @cached_property
    def current(self) -> dict[str, F32]:
        """The newest ``on``, ``dim_pct``, ``power_w`` and ``lux`` of each lamp, NaN
        where older than ``CURRENT_MS``."""
        since = self._now_ms - CURRENT_MS
        metrics = ("on", "dim_pct", "power_w", "lux")
        return {m: self.rows.window.latest_since(m, since) for m in metrics}

    @cached_property
    def sun_elevation_deg(self) -> F32:
        lat, lon = self._positions
        return f32(sun.elevation_deg(self._now_ms, lat, lon))

    @cached_property
    def drift_series(self) -> F32:
        """Normalised power over the drift median's span."""
        w = self.rows.window
        return w.series("norm_w", last=self._t.lighting.drift_window_min * MINUTE_MS // w.slot_ms)

    @cached_property
    def switches_1h(self) -> F32:
        w = self.rows.window
        return energy.switch_count(w.series("on", last=round(60 * MINUTE_MS / w.slot_ms) + 1))


class DeviceView:
    """Every device in the registry: silence, status, battery, signal, clock, QC flags."""

    def __init__(self, registry: Registry, t: Thresholds, now_ms: int) -> None:
        self.registry = registry
        self.n = registry.n
        self._t = t
        self._now_ms = now_ms

    @cached_property
    def offline(self) -> RuleResult:
        """Devices silent for too many intervals or gone by their Last Will (before the
        mass-outage inhibition)."""
        reg, n, h = self.registry, self.n, self._t.health
        interval = np.where(
            np.isnan(reg.interval_s[:n]), np.float32(h.default_interval_s), reg.interval_s[:n]
        ).astype(np.float32)
        status = reg.status[:n]
        resting = (status == SLEEPING) | (status == STOPPED)  # asleep or stopped on purpose
        return health.offline_rule(
            reg.last_seen[:n], interval, status == OFFLINE, resting, self._now_ms, h
        )

    @cached_property
    def qc_flagged(self) -> F32:
        qc = self.registry.qc
        slots = max(1, round(self._t.health.qc_window_min * MINUTE_MS / qc.slot_ms))
        return qc.series("flagged", last=slots)


@dataclass
class Context:
    """One evaluation: what every rule's evaluator reads."""

    now_ms: int
    thresholds: Thresholds
    utc_offset_min: int  # the site's local time, minutes east of UTC
    weather: WeatherView
    water: WaterView
    lamps: LampView
    meters: Rows
    devices: DeviceView
    n_districts: int
    platform: PlatformView
    gateways: GatewayView
    results: dict[str, RuleResult] = field(default_factory=dict)

    def result(self, rule: str) -> RuleResult:
        """This evaluation's result of ``rule``, which must have run already."""
        try:
            return self.results[rule]
        except KeyError:
            raise KeyError(f"rule {rule!r} has not run yet in this evaluation") from None


def _bd_row(levels: CanalStation) -> list[float]:
    return [
        np.nan if levels.bd1_m is None else levels.bd1_m,
        np.nan if levels.bd2_m is None else levels.bd2_m,
        levels.bd3_m,
    ]
