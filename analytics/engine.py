"""The analytics core without I/O: readings in, alert changes (and lamp orders) out.

:class:`Engine` owns one time-slotted :class:`~analytics.window.Window` per
device kind (1-minute slots; plus hourly slots over 48 h for the cumulative
counters), the device :class:`~analytics.registry.Registry`, and one
:class:`~analytics.lifecycle.Lifecycle` per rule.  The service (or a backtest)
feeds it decoded readings with :meth:`Engine.ingest`, calls
:meth:`Engine.evaluate` as often as it likes (re-evaluating the same readings is
harmless) and publishes what comes back; :meth:`Engine.take_commands` hands out
the full-brightness orders for lamps in districts under a storm or flood alert.

Rule families live in :mod:`analytics.rules` as pure functions; this module
only cuts the arrays they need out of the windows and steps the lifecycles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from analytics import overrides
from analytics import window as win
from analytics.counters import CounterTracker
from analytics.lifecycle import Lifecycle, MessageFn, RuleSpec
from analytics.overrides import Section
from analytics.registry import STATUS_CODES, Registry
from analytics.rules import energy, flood, health, messages, rain, storm, sun
from analytics.rules.base import (
    CRITICAL,
    RuleResult,
    f32,
    group_count,
    group_max,
    last_valid,
    linear_fit,
    row_max,
)
from analytics.thresholds import CanalStation, Thresholds
from deltasense.alerts import AlertEvent, AlertKind
from deltasense.contract import Kind, Reading
from deltasense.qc import out_of_range

_LOG = logging.getLogger(__name__)

HOUR_MS: Final = 3_600_000
HOURLY_SLOTS: Final = 48
SHORT_SLOTS: Final = 120  # 2 h of 1-minute slots: enough for every lamp and meter rule
CITY: Final = "city"  # subject of city-wide alerts
SKEW_MIN_DEVICES: Final = 5

# Only what some rule reads: every metric costs 6 bytes × slots × sensors.
WEATHER_METRICS: Final = ("t_c", "rh_pct", "p_hpa", "wind_ms", "gust_ms", "wind_dir_deg", "rain_total")  # fmt: skip
WATER_METRICS: Final = ("level_cm",)
LAMP_METRICS: Final = ("on", "dim_pct", "power_w", "lux", "norm_w")
METER_METRICS: Final = ("energy_total",)
COUNTERS: Final = {"rain_mm_total": "rain_total", "energy_wh_total": "energy_total"}
STUCK_METRICS: Final = ("t_c", "rh_pct", "p_hpa", "wind_ms", "wind_dir_deg")
STEP_METRICS: Final = ("t_c", "rh_pct", "p_hpa", "wind_ms")

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass
class IngestStats:
    readings: int = 0  # readings of a kind analytics uses
    values: int = 0  # values stored in a window
    qc_flagged: int = 0  # values QC flagged, kept out of the windows
    ignored: int = 0  # readings no rule uses
    counter_resets: int = 0


@dataclass(frozen=True)
class CommandRequest:
    """A command the service should send as a contract ``cmd`` message (and record)."""

    device: str
    district: str
    kind: str
    name: str
    args: dict[str, Any]
    reason: str  # the alert id that ordered it


@dataclass
class _KindState:
    """Windows of one device kind, and each row's registry row and district."""

    window: win.Window
    hourly: win.Window | None
    reg_rows: list[int] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)
    layout: int = 0  # bumped when rows are added or move district (per-row limits follow)

    def reg(self) -> I64:
        return np.asarray(self.reg_rows, dtype=np.int64)


@dataclass(frozen=True)
class _Rule:
    lifecycle: Lifecycle
    space: str  # weather, water, lamp, meter, device (registry), district, city


class Engine:
    def __init__(
        self,
        thresholds: Thresholds,
        *,
        slot_ms: int = win.DEFAULT_SLOT_MS,
        n_slots: int = win.DEFAULT_N_SLOTS,
    ) -> None:
        self.thresholds = thresholds
        self.registry = Registry()
        self._limit_cache: dict[tuple[Kind, str], tuple[int, Any]] = {}
        short = min(n_slots, SHORT_SLOTS)
        self._kinds: dict[Kind, _KindState] = {
            Kind.WEATHER: _KindState(
                win.Window(WEATHER_METRICS, slot_ms=slot_ms, n_slots=n_slots),
                win.Window(("rain_total",), slot_ms=HOUR_MS, n_slots=HOURLY_SLOTS),
            ),
            Kind.WATER: _KindState(
                win.Window(WATER_METRICS, slot_ms=slot_ms, n_slots=n_slots), None
            ),
            Kind.LAMP: _KindState(
                win.Window(LAMP_METRICS, slot_ms=slot_ms, n_slots=short),
                win.Window(("norm_w",), slot_ms=HOUR_MS, n_slots=HOURLY_SLOTS),
            ),
            Kind.METER: _KindState(
                win.Window(METER_METRICS, slot_ms=slot_ms, n_slots=short),
                win.Window(("energy_total",), slot_ms=HOUR_MS, n_slots=HOURLY_SLOTS),
            ),
        }
        self.water = self._kinds[Kind.WATER].window
        self.weather = self._kinds[Kind.WEATHER].window
        self.lamp = self._kinds[Kind.LAMP].window
        self.meter = self._kinds[Kind.METER].window
        self.counters = CounterTracker()
        self._canal_ids = frozenset(thresholds.flood.canal_stations)
        self._canal: list[bool] = []  # per water row
        self._commands: list[CommandRequest] = []
        self._bright: dict[str, int] = {}  # lamp → when its full-brightness lease was sent
        self._learned: tuple[int, F32] = (-1, np.zeros(0, dtype=np.float32))
        self._rules: dict[str, _Rule] = {}
        alerting = thresholds.alerting
        for rule, kind, space, message in _RULES:
            for_s = alerting.for_.seconds(rule, kind)
            if rule in _LIGHTING_FOR and rule not in alerting.for_.rule_s:
                for_s = getattr(thresholds.lighting, _LIGHTING_FOR[rule]).for_min * 60
            for_count = alerting.for_.flood_readings if rule == flood.RULE else 1
            spec = RuleSpec(
                rule=rule,
                kind=kind,
                for_count=for_count,
                for_ms=round(for_s * 1000) if rule != flood.RULE else 0,
                keep_firing_for_ms=round(alerting.keep_firing_for.seconds(rule, kind) * 1000),
            )
            self._rules[rule] = _Rule(Lifecycle(spec, message), space)
        self.street_flood = self._rules[flood.RULE].lifecycle

    @property
    def kinds(self) -> frozenset[Kind]:
        """Kinds some rule uses; the service need not decode the others."""
        return frozenset(self._kinds)

    @property
    def span_ms(self) -> int:
        """The longest span any window covers (what a refill must read back)."""
        return max(
            max(ks.window.span_ms, ks.hourly.span_ms if ks.hourly else 0)
            for ks in self._kinds.values()
        )

    def memory_bytes(self) -> int:
        total = self.registry.memory_bytes()
        for ks in self._kinds.values():
            total += ks.window.memory_bytes() + (ks.hourly.memory_bytes() if ks.hourly else 0)
        return total

    # --- input ---------------------------------------------------------------------------
    def _rows(self, kind: Kind, devices: Sequence[str], districts: Sequence[str]) -> I64:
        ks = self._kinds[kind]
        new_from = ks.window.n_sensors
        rows = ks.window.rows_for(devices)
        if ks.hourly is not None:
            ks.hourly.rows_for(devices)
        first: dict[str, int] = {}
        if ks.window.n_sensors > new_from:
            ks.layout += 1
            for i, device in enumerate(devices):
                first.setdefault(device, i)
        for device in ks.window.devices[new_from:]:
            i = first[device]
            ks.reg_rows.append(self.registry.row(device, districts[i], kind.value))
            ks.districts.append(districts[i])
            if kind is Kind.WATER:
                self._canal.append(device in self._canal_ids)
        for row, district in zip(rows.tolist(), districts, strict=True):
            if ks.districts[row] != district:  # a device may move; the newest wins
                ks.districts[row] = district
                ks.layout += 1
        return rows

    def _limits(self, kind: Kind, name: Section) -> Any:
        """The thresholds section ``name`` for ``kind``'s rows: per-row arrays where a
        district or station overrides a limit (rebuilt only when the rows change)."""
        ks = self._kinds[kind]
        key = (kind, name)
        cached = self._limit_cache.get(key)
        if cached is not None and cached[0] == ks.layout:
            return cached[1]
        section = overrides.row_limits(
            getattr(self.thresholds, name),
            name,
            self.thresholds.overrides,
            ks.window.devices,
            ks.districts,
        )
        self._limit_cache[key] = (ks.layout, section)
        return section

    def add_devices(self, kind: Kind, devices: Sequence[str], districts: Sequence[str]) -> I64:
        """Rows of ``devices`` in ``kind``'s windows, adding new ones (no rebuild pause:
        arrays grow geometrically)."""
        return self._rows(kind, devices, districts)

    def window_of(self, kind: Kind, hourly: bool = False) -> win.Window:
        ks = self._kinds[kind]
        if hourly:
            if ks.hourly is None:
                raise KeyError(f"{kind} has no hourly window")
            return ks.hourly
        return ks.window

    def _water_rows(self, devices: Sequence[str], districts: Sequence[str]) -> I64:
        return self._rows(Kind.WATER, devices, districts)

    def set_station(self, device: str, district: str, station: str) -> None:
        """A water node's meta says where it measures; canal stations (by meta or by
        the thresholds' ``canal_stations``) are left out of the street rule."""
        (row,) = self._water_rows([device], [district]).tolist()
        self._canal[row] = station == "canal" or device in self._canal_ids

    def set_meta(
        self,
        device: str,
        district: str,
        kind: Kind,
        *,
        lat: float | None = None,
        lon: float | None = None,
        interval_s: float | None = None,
        station: str | None = None,
    ) -> None:
        """A device's birth record: position (sun for lamps), reporting interval (offline)."""
        self._rows(kind, [device], [district])
        row = self.registry.row(device, district, kind.value)
        if lat is not None and lon is not None:
            self.registry.lat[row], self.registry.lon[row] = lat, lon
        if interval_s is not None and interval_s > 0:
            self.registry.interval_s[row] = interval_s
        if station is not None and kind is Kind.WATER:
            self.set_station(device, district, station)

    def set_status(self, device: str, district: str, kind: Kind, state: str) -> None:
        """A device's retained status (the Last Will says ``offline``)."""
        self._rows(kind, [device], [district])
        row = self.registry.row(device, district, kind.value)
        self.registry.status[row] = STATUS_CODES.get(state, 0)

    def ingest_water(
        self,
        devices: Sequence[str],
        districts: Sequence[str],
        ts_ms: Sequence[int],
        level_cm: Sequence[float],
    ) -> int:
        """Store QC-clean ``level_cm`` values (NaN = none); returns how many were kept."""
        if not devices:
            return 0
        rows = self._water_rows(devices, districts)
        return self.water.ingest(
            "level_cm",
            rows,
            np.asarray(ts_ms, dtype=np.int64),
            np.asarray(level_cm, dtype=np.float32),
        )

    def window_span_ms(self, kind: Kind) -> int:
        """Span of ``kind``'s minute window (what a refill of it must read back)."""
        return self._kinds[kind].window.span_ms

    def ingest(
        self, readings: Iterable[Reading], *, arrival_ms: int | None = None, replay: bool = False
    ) -> IngestStats:
        """Decoded readings (any kind) into the windows; QC-flagged values are left out.

        ``arrival_ms`` (the service's clock when the message came) lets the clock-skew
        rule compare device time with arrival; without it (backtests), a batch from
        at least ``SKEW_MIN_DEVICES`` devices is its own reference (its median time).  ``replay`` (a refill from the
        database) leaves clock skew alone.  Duplicates, late readings and gaps are
        the windows' business; counter resets the counter tracker's.
        """
        stats = IngestStats()
        batches: dict[tuple[Kind, str], tuple[list[str], list[str], list[int], list[float]]] = {}
        reg = self.registry
        resets_before = self.counters.resets
        qc_rows: list[int] = []
        stamped: dict[int, int] = {}  # registry row → newest device-stamped ts in the batch
        qc_ts: list[int] = []
        qc_counts: list[float] = []
        for reading in readings:
            ks = self._kinds.get(reading.kind)
            if ks is None:
                stats.ignored += 1
                continue
            stats.readings += 1
            row = reg.row(reading.device, reading.district, reading.kind.value)
            seen = arrival_ms if arrival_ms is not None else reading.ts_ms
            if seen > reg.last_seen[row]:
                reg.last_seen[row] = seen
            reg.status[row] = 0 if reg.status[row] != 2 else 2
            fields = reading.fields
            for name, target in (("batt_v", reg.batt_v), ("rssi_dbm", reg.rssi_dbm)):
                value = fields.get(name)
                if value is not None and not isinstance(value, bool):
                    target[row] = value
            if not (reading.ts_from_platform or reading.hist or replay):
                if arrival_ms is not None:
                    reg.skew_s[row] = (reading.ts_ms - arrival_ms) / 1000.0
                else:
                    stamped[row] = max(stamped.get(row, reading.ts_ms), reading.ts_ms)
            flagged = out_of_range(reading.kind, fields)
            if flagged:
                stats.qc_flagged += len(flagged)
            qc_rows.append(row)
            qc_ts.append(reading.ts_ms)
            qc_counts.append(float(len(flagged)))
            values = self._values(reading, flagged)
            for metric, value in values.items():
                batch = batches.setdefault((reading.kind, metric), ([], [], [], []))
                batch[0].append(reading.device)
                batch[1].append(reading.district)
                batch[2].append(reading.ts_ms)
                batch[3].append(value)
        for (kind, metric), (devices, districts, ts, vals) in batches.items():
            ks = self._kinds[kind]
            rows = self._rows(kind, devices, districts)
            ts_arr = np.asarray(ts, dtype=np.int64)
            stats.values += ks.window.ingest(metric, rows, ts_arr, vals)
            if ks.hourly is not None and metric in ks.hourly.metrics:
                ks.hourly.ingest(metric, rows, ts_arr, vals)
        if len(stamped) >= SKEW_MIN_DEVICES:
            # No arrival clock (a backtest): a device's clock is judged against the
            # batch's median device time, which a few skewed clocks cannot move.
            rows_s = np.fromiter(stamped, dtype=np.int64)
            ts_s = np.fromiter(stamped.values(), dtype=np.int64)
            reg.skew_s[rows_s] = (ts_s - np.median(ts_s)) / 1000.0
        if qc_rows:
            reg.qc.ingest(
                "flagged",
                np.asarray(qc_rows, dtype=np.int64),
                np.asarray(qc_ts, dtype=np.int64),
                qc_counts,
            )
        stats.counter_resets = self.counters.resets - resets_before
        return stats

    def _values(self, reading: Reading, flagged: tuple[str, ...]) -> dict[str, float]:
        """Window values of one reading: QC-clean fields, counters made continuous,
        the lamp's power normalised to full output."""
        out: dict[str, float] = {}
        metrics = self._kinds[reading.kind].window.metrics
        for name, value in reading.fields.items():
            if name in flagged:
                continue
            target = COUNTERS.get(name, name)
            if target not in metrics:
                continue
            number = float(value)
            if name in COUNTERS:
                placed = self.counters.continuous(f"{reading.device}:{name}", reading.boot, number)
                if placed is None:
                    continue
                number = placed
            out[target] = number
        if reading.kind is Kind.LAMP and {"on", "dim_pct", "power_w"} <= out.keys():
            norm = energy.normalised_power(
                f32([out["on"]]), f32([out["dim_pct"]]), f32([out["power_w"]])
            )[0]
            if np.isfinite(norm):
                out["norm_w"] = float(norm)
        return out

    # --- evaluation ------------------------------------------------------------------------
    def evaluate(self, now_ms: int) -> list[AlertEvent]:
        """Run every rule on the current windows; returns the alert changes."""
        for ks in self._kinds.values():
            ks.window.advance(now_ms)
            if ks.hourly is not None:
                ks.hourly.advance(now_ms)
        self.registry.qc.advance(now_ms)
        events: list[AlertEvent] = []
        events += self._eval_weather(now_ms)
        events += self._eval_water(now_ms)
        events += self._eval_energy(now_ms)
        events += self._eval_health(now_ms)
        self._order_full_brightness(now_ms)
        return events

    def _step(
        self,
        rule: str,
        result: RuleResult,
        now_ms: int,
        subjects: Sequence[str],
        districts: Sequence[str],
        fresh: npt.NDArray[np.bool_] | None = None,
    ) -> list[AlertEvent]:
        n = len(subjects)
        return self._rules[rule].lifecycle.step(
            condition=result.condition,
            clear=result.clear,
            severity=result.severity,
            fresh=np.ones(n, dtype=np.bool_) if fresh is None else fresh,
            now_ms=now_ms,
            subjects=subjects,
            districts=districts,
            values=result.values,
            risk=result.risk,
        )

    def _space(self, kind: Kind) -> tuple[list[str], list[str]]:
        ks = self._kinds[kind]
        return ks.window.devices, ks.districts

    # weather: storm, rain, weather-sensor health -------------------------------------------
    def _eval_weather(self, now_ms: int) -> list[AlertEvent]:
        t = self.thresholds
        ks = self._kinds[Kind.WEATHER]
        w = ks.window
        db = t.alerting.deadband
        slot_min = w.slot_ms / 60_000
        subjects, districts = self._space(Kind.WEATHER)
        need = max(t.storm.wind_mean_min, t.storm.gust_front.window_min, 12) + 2
        wind = w.series("wind_ms", last=need)
        mean10 = storm.ten_minute_mean(
            wind, t.storm.wind_mean_min, slot_min, t.storm.wind_mean_coverage
        )
        gust = storm.recent_max(w.series("gust_ms", last=2))
        cols = storm.tendency_columns(w.n_slots, slot_min)
        fall3, fall6 = storm.pressure_tendencies(
            w.columns("p_hpa", cols), w.slot_times()[cols], t.storm
        )
        p_latest = w.latest_since("p_hpa", now_ms - 10 * 60_000)
        gf = t.storm.gust_front.window_min
        rain_min = w.series("rain_total", last=round(180 / slot_min) + 1)
        r1h = rain.total_over(rain_min, 60, slot_min)
        r3h = rain.total_over(rain_min, 180, slot_min)
        assert ks.hourly is not None
        hourly = ks.hourly.series("rain_total")
        hour_times = ks.hourly.slot_times()
        current, _ = last_valid(rain_min)
        r24h = rain.total_since(hourly, hour_times, current, now_ms - 24 * HOUR_MS)
        rday = rain.total_since(
            hourly, hour_times, current, rain.day_start_ms(now_ms, t.rain.day_start_local_h)
        )

        wind_r = storm.wind_rule(mean10, t.storm, db.wind_ms)
        gust_r = storm.gust_rule(gust, self._limits(Kind.WEATHER, "storm"), db.wind_ms)
        # Complete minutes only: the head slot is still filling, and judging it made the
        # squall depend on when within a minute the rules ran (live vs backtest).
        squall_r = storm.squall_rule(wind[:, :-1], t.storm, w.slot_ms / 1000, db.wind_ms)
        press_r = storm.pressure_rule(fall3, fall6, t.storm, db.p_hpa)
        front_r = storm.gust_front_rule(
            w.series("t_c", last=gf),
            wind[:, -gf:],
            w.series("p_hpa", last=gf),
            w.series("rh_pct", last=gf),
            t.storm,
        )
        rain_r = rain.heavy_rain_rule(r1h, r3h, r24h, rday, t.rain)
        self._rain_1h = r1h
        events: list[AlertEvent] = []
        for rule, result in (
            ("wind-cap", wind_r),
            ("gust", gust_r),
            ("squall", squall_r),
            ("pressure-fall", press_r),
            ("gust-front", front_r),
            ("heavy-rain", rain_r),
        ):
            events += self._step(rule, result, now_ms, subjects, districts)

        levels = storm.station_level(
            cap=storm.wind_cap(mean10, t.storm),
            gust=gust_r,
            squall=squall_r,
            pressure=press_r,
            rain_warning=rain_r.condition,
        )
        reporting = ~np.isnan(mean10) | ~np.isnan(p_latest)
        level, agreeing, m = storm.city_risk(
            levels, reporting, t.storm, rain_r.condition & (rain_r.severity >= CRITICAL)
        )
        hold = storm.city_hold(levels, reporting, t.storm)
        events += self._step(
            "storm-risk", storm.city_rule(level, agreeing, m, hold), now_ms, [CITY], [""]
        )

        # Weather-sensor health: stuck and spikes (WMO AWS tests).
        sw = t.health.stuck.window_min
        long = {m: w.series(m, last=sw) for m in STUCK_METRICS}
        events += self._step(
            "stuck-sensor", health.stuck_rule(long, t.health), now_ms, subjects, districts
        )
        spikes = {m: long[m][:, -t.health.spike_window_min :] for m in STEP_METRICS}
        events += self._step(
            "sensor-spike", health.spike_rule(spikes, t.health), now_ms, subjects, districts
        )
        return events

    # water: street flood, rise, canals, districts, compound --------------------------------
    def _eval_water(self, now_ms: int) -> list[AlertEvent]:
        t = self.thresholds
        fl = self._limits(Kind.WATER, "flood")  # street limits per drain
        ks = self._kinds[Kind.WATER]
        w = ks.window
        subjects, districts = self._space(Kind.WATER)
        n = w.n_sensors
        excluded = np.asarray(self._canal, dtype=np.bool_)
        fresh = w.take_fresh("level_cm")
        k = max(fl.rise_fit_min, 5) + 4
        recent = w.series("level_cm", last=k)
        level, level_ts = w.latest("level_cm")
        # The newest reading's column; the previous reading is the newest before it.
        col = np.where(level_ts >= 0, k - 1 - (w.head_slot - level_ts // w.slot_ms), -1)
        before = np.where(np.arange(k)[None, :] < col[:, None], recent, np.float32(np.nan))
        prev, prev_col = last_valid(before.astype(np.float32))
        before_prev = np.where(np.arange(k)[None, :] < prev_col[:, None], recent, np.nan)
        prev2, _ = last_valid(before_prev.astype(np.float32))
        gap = f32(np.where(prev_col >= 0, (col - prev_col) * w.slot_ms / 60_000, np.nan))
        plausible = flood.plausible_latest(level, prev, gap, fl)
        street = flood.street_flood(
            plausible, excluded=excluded, flood=fl, deadband_mm=t.alerting.deadband.level_mm
        )
        events = self.street_flood.step(
            condition=street.condition,
            clear=street.clear,
            severity=street.severity,
            fresh=fresh,
            now_ms=now_ms,
            subjects=subjects,
            districts=districts,
            values={"depth_mm": street.depth_mm},
        )
        depth = flood.clean_depth(recent[:, -fl.rise_fit_min :], fl)
        slope, fitted = linear_fit(depth)
        slope = f32(slope / (w.slot_ms / 60_000))
        rise = flood.rise_rule(street.depth_mm, slope, fitted, excluded=excluded, flood=fl)
        events += self._step(flood.RISE_RULE, rise, now_ms, subjects, districts)

        # Water-level sensor health: a reading away from both neighbours (echo, splash).
        spike = health.level_spike_rule(prev2, prev, level, fl.spike_jump_mm)
        events += self._step("level-spike", spike, now_ms, subjects, districts)

        bd = self._bd_levels(subjects, excluded)
        canal = flood.canal_rule(level, bd, t.alerting.deadband.level_mm)
        events += self._step(flood.CANAL_RULE, canal, now_ms, subjects, districts)

        # District roll-up and compound rain + high water.
        reg = self.registry
        nd = len(reg.districts)
        didx = reg.district[ks.reg()] if n else np.zeros(0, dtype=np.int64)
        street_rows = ~excluded & ~np.isnan(level)
        flooded = group_count(didx, street.condition & ~excluded, nd)
        critical = group_count(didx, (street.severity >= CRITICAL) & ~excluded, nd)
        drains = group_count(didx, street_rows, nd)
        canal_risk = group_max(
            didx,
            np.where(canal.condition, canal.risk, 0).astype(np.float32)
            if canal.risk is not None
            else f32(np.zeros(n)),
            nd,
        )
        canal_risk_i = np.nan_to_num(canal_risk, nan=0).astype(np.int8)
        dist_r = flood.district_rule(flooded, critical, drains, canal_risk_i, fl)
        events += self._step(flood.DISTRICT_RULE, dist_r, now_ms, reg.districts, reg.districts)

        wx = self._kinds[Kind.WEATHER]
        r1h = getattr(self, "_rain_1h", f32(np.zeros(0)))
        wdid = reg.district[wx.reg()] if wx.window.n_sensors else np.zeros(0, dtype=np.int64)
        rain_d = group_max(wdid, r1h, nd)
        city_rain = row_max(r1h[None, :]) if r1h.size else f32([np.nan])
        rain_d = np.where(np.isnan(rain_d), city_rain[0], rain_d).astype(np.float32)
        margin = f32(canal.values["level_m"] - canal.values["bd_lowest_m"])
        margin_d = group_max(didx, margin, nd)
        city_margin = row_max(margin[None, :]) if margin.size else f32([np.nan])
        margin_d = np.where(np.isnan(margin_d), city_margin[0], margin_d).astype(np.float32)
        wet = group_count(didx, (street.depth_mm > fl.noise_floor_mm) & ~excluded, nd) > 0
        comp = flood.compound_rule(rain_d, margin_d, wet, heavy_mm_h=t.rain.mm_1h.heavy, flood=fl)
        events += self._step(flood.COMPOUND_RULE, comp, now_ms, reg.districts, reg.districts)
        return events

    def _bd_levels(self, subjects: Sequence[str], excluded: npt.NDArray[np.bool_]) -> F32:
        """Alarm levels per water row (NaN = unknown): a canal station's own, else the
        site's ``canal_default`` (so a canal announced only by its meta is judged)."""
        fl = self.thresholds.flood
        bd = np.full((len(subjects), 3), np.nan, dtype=np.float32)
        if fl.canal_default is not None:
            bd[excluded] = _bd_row(fl.canal_default)
        for device, levels in fl.canal_stations.items():
            row = self.water.row_of(device)
            if row is not None and excluded[row]:
                bd[row] = _bd_row(levels)
        return bd

    # energy: lamps and cabinets -------------------------------------------------------------
    def _rated(self, ks: _KindState) -> F32:
        lighting = self.thresholds.lighting
        n = ks.window.n_sensors
        assert ks.hourly is not None
        head = ks.hourly.head_slot
        cached_head, learned = self._learned
        if cached_head != head or learned.size != n:  # relearn once per hour of data
            learned = energy.learned_rated_w(ks.hourly.series("norm_w"))
            self._learned = (head, learned)
        rated = learned.copy()
        if lighting.rated_w is not None:
            rated[:] = lighting.rated_w
        for device, watts in lighting.lamps_rated_w.items():
            row = ks.window.row_of(device)
            if row is not None:
                rated[row] = watts
        return rated

    def _eval_energy(self, now_ms: int) -> list[AlertEvent]:
        t = self.thresholds
        lighting = t.lighting
        ks = self._kinds[Kind.LAMP]
        w = ks.window
        subjects, districts = self._space(Kind.LAMP)
        on_1h = w.series("on", last=round(60 * 60_000 / w.slot_ms) + 1)
        since = now_ms - 10 * 60_000  # older than this is no current state
        on, dim, power, lux = (
            w.latest_since(m, since) for m in ("on", "dim_pct", "power_w", "lux")
        )
        lat, lon = self.registry.positions(ks.reg())
        elev = f32(sun.elevation_deg(now_ms, lat, lon))
        rated = self._rated(ks)
        events: list[AlertEvent] = []
        for rule, result in (
            ("day-burn", energy.day_burn_rule(power, rated, on, lux, elev, lighting)),
            ("lamp-out", energy.lamp_out_rule(power, rated, lux, elev, lighting)),
            (
                "power-drift",
                energy.drift_rule(
                    w.series("norm_w", last=lighting.drift_window_min * 60_000 // w.slot_ms),
                    rated,
                    self._limits(Kind.LAMP, "lighting"),  # drift limit per lamp
                ),
            ),
            ("lamp-cycling", energy.cycling_rule(energy.switch_count(on_1h), lighting)),
            ("dimming-opportunity", energy.dimming_rule(on, dim, power, now_ms, lighting)),
        ):
            events += self._step(rule, result, now_ms, subjects, districts)
        mks = self._kinds[Kind.METER]
        assert mks.hourly is not None
        cab = energy.cabinet_rule(mks.hourly.series("energy_total"), lighting)
        msubjects, mdistricts = self._space(Kind.METER)
        events += self._step("cabinet-energy", cab, now_ms, msubjects, mdistricts)
        return events

    def _order_full_brightness(self, now_ms: int) -> None:
        """Lamps in a district under a flood alert, or everywhere under a city storm risk
        at or over ``full_brightness_storm_risk``, are ordered to 100 % for a lease of
        ``full_brightness_lease_s``, renewed every third of it while the alert lasts; a
        lamp whose lease lapses goes back to its photocell and profile by itself."""
        lighting = self.thresholds.lighting
        if not lighting.full_brightness_during_storm_or_flood:
            return
        lease_s = lighting.full_brightness_lease_s
        renew_ms = lease_s * 1000 // 3
        reason_by_district: dict[str, str] = {}
        for lc in (self._rules[r].lifecycle for r, _k, _s, _m in _RULES if _k == "flood"):
            for event in lc.open_alerts():
                reason_by_district.setdefault(event.district or event.subject, event.id)
        city: str | None = None
        for event in self._rules["storm-risk"].lifecycle.open_alerts():
            if event.risk_level >= lighting.full_brightness_storm_risk:
                city = event.id
        if not reason_by_district and city is None:
            self._bright.clear()  # nothing ordered now; the next alert orders again
            return
        ks = self._kinds[Kind.LAMP]
        for row, device in enumerate(ks.window.devices):
            district = ks.districts[row]
            reason = reason_by_district.get(district) or city
            if reason is None:
                self._bright.pop(device, None)
                continue
            sent = self._bright.get(device)
            if sent is not None and now_ms - sent < renew_ms:
                continue  # its lease is fresh
            self._bright[device] = now_ms
            self._commands.append(
                CommandRequest(
                    device=device,
                    district=district,
                    kind=Kind.LAMP.value,
                    name="set_dim",
                    args={"pct": 100, "duration_s": lease_s},
                    reason=reason,
                )
            )

    def take_commands(self) -> list[CommandRequest]:
        """Commands ordered since the last call (the service sends and records them)."""
        out, self._commands = self._commands, []
        return out

    # device health ----------------------------------------------------------------------------
    def _eval_health(self, now_ms: int) -> list[AlertEvent]:
        t = self.thresholds.health
        reg = self.registry
        n = reg.n
        interval = np.where(
            np.isnan(reg.interval_s[:n]), np.float32(t.default_interval_s), reg.interval_s[:n]
        ).astype(np.float32)
        status = reg.status[:n]
        offline = health.offline_rule(
            reg.last_seen[:n], interval, status == 1, status == 2, now_ms, t
        )
        mass = health.mass_outage(
            reg.district[:n], offline.condition, reg.last_seen[:n], len(reg.districts), t
        )
        # Inhibition (Alertmanager style): a district in a mass outage gets one alert, not
        # one per silent device.
        in_mass = mass.condition[np.maximum(reg.district[:n], 0)] if n else offline.condition
        offline_single = RuleResult(
            condition=offline.condition & ~in_mass,
            clear=offline.clear,
            severity=offline.severity,
            values=offline.values,
        )
        subjects, districts = reg.devices, reg.device_districts
        events: list[AlertEvent] = []
        events += self._step("mass-outage", mass, now_ms, reg.districts, reg.districts)
        events += self._step("device-offline", offline_single, now_ms, subjects, districts)
        qc_slots = max(1, round(t.qc_window_min * 60_000 / reg.qc.slot_ms))
        events += self._step(
            "out-of-range",
            health.qc_rule(reg.qc.series("flagged", last=qc_slots), t),
            now_ms,
            subjects,
            districts,
        )
        events += self._step(
            "low-battery",
            health.low_rule(reg.batt_v[:n], t.low_battery_v, t.battery_deadband_v, "batt_v"),
            now_ms,
            subjects,
            districts,
        )
        events += self._step(
            "weak-signal",
            health.low_rule(reg.rssi_dbm[:n], t.weak_signal_dbm, t.signal_deadband_db, "rssi_dbm"),
            now_ms,
            subjects,
            districts,
        )
        events += self._step(
            "clock-skew", health.skew_rule(reg.skew_s[:n], t), now_ms, subjects, districts
        )
        return events

    # --- restore, acks, inspection ---------------------------------------------------------
    def _subject_row(self, space: str, subject: str, district: str) -> int:
        if space == "city":
            return 0
        if space == "district":
            return self.registry.district_row(subject)
        if space == "device":
            return self.registry.row(subject, district, "")
        return int(self._rows(Kind(space), [subject], [district])[0])

    def restore(self, events: Iterable[AlertEvent]) -> int:
        """Adopt open alerts of a previous run; returns how many were adopted."""
        adopted = 0
        for event in events:
            if event.state == "resolved":
                continue
            rule = self._rules.get(event.rule)
            if rule is None:
                _LOG.info("open alert %s of unknown rule %s left alone", event.id, event.rule)
                continue
            row = self._subject_row(rule.space, event.subject, event.district)
            rule.lifecycle.restore(row, event)
            adopted += 1
        return adopted

    def apply_ack(self, event: AlertEvent) -> bool:
        rule = self._rules.get(event.rule)
        return rule.lifecycle.apply_ack(event) if rule is not None else False

    def open_alerts(self) -> list[AlertEvent]:
        return [e for r in self._rules.values() for e in r.lifecycle.open_alerts()]

    def firing(self, rule: str) -> int:
        """How many subjects ``rule`` has firing (for tests and metrics)."""
        lc = self._rules[rule].lifecycle
        return len(lc.open_alerts())

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(self._rules)


def _bd_row(levels: CanalStation) -> list[float]:
    return [
        np.nan if levels.bd1_m is None else levels.bd1_m,
        np.nan if levels.bd2_m is None else levels.bd2_m,
        levels.bd3_m,
    ]


def _msg(rule: str) -> MessageFn:
    return messages.make(rule)


# (rule, kind, subject space, message)
_RULES: Final[tuple[tuple[str, AlertKind, str, MessageFn], ...]] = (
    ("wind-cap", "storm", "weather", _msg("wind-cap")),
    ("gust", "storm", "weather", _msg("gust")),
    ("squall", "storm", "weather", _msg("squall")),
    ("pressure-fall", "storm", "weather", _msg("pressure-fall")),
    ("gust-front", "storm", "weather", _msg("gust-front")),
    ("heavy-rain", "storm", "weather", _msg("heavy-rain")),
    ("storm-risk", "storm", "city", _msg("storm-risk")),
    (flood.RULE, "flood", "water", flood.message),
    (flood.RISE_RULE, "flood", "water", _msg(flood.RISE_RULE)),
    (flood.CANAL_RULE, "flood", "water", _msg(flood.CANAL_RULE)),
    (flood.DISTRICT_RULE, "flood", "district", _msg(flood.DISTRICT_RULE)),
    (flood.COMPOUND_RULE, "flood", "district", _msg(flood.COMPOUND_RULE)),
    ("day-burn", "energy", "lamp", _msg("day-burn")),
    ("lamp-out", "energy", "lamp", _msg("lamp-out")),
    ("power-drift", "energy", "lamp", _msg("power-drift")),
    ("lamp-cycling", "energy", "lamp", _msg("lamp-cycling")),
    ("dimming-opportunity", "energy", "lamp", _msg("dimming-opportunity")),
    ("cabinet-energy", "energy", "meter", _msg("cabinet-energy")),
    ("device-offline", "health", "device", _msg("device-offline")),
    ("mass-outage", "health", "district", _msg("mass-outage")),
    ("stuck-sensor", "health", "weather", _msg("stuck-sensor")),
    ("sensor-spike", "health", "weather", _msg("sensor-spike")),
    ("level-spike", "health", "water", _msg("level-spike")),
    ("out-of-range", "health", "device", _msg("out-of-range")),
    ("low-battery", "health", "device", _msg("low-battery")),
    ("weak-signal", "health", "device", _msg("weak-signal")),
    ("clock-skew", "health", "device", _msg("clock-skew")),
)
# Rules whose `for` the lighting table sets itself (docs/REFERENCE.md: day_burn, lamp_out).
_LIGHTING_FOR: Final = {"day-burn": "day_burn", "lamp-out": "lamp_out"}
RULE_KINDS: Final[dict[str, AlertKind]] = {rule: kind for rule, kind, _s, _m in _RULES}
