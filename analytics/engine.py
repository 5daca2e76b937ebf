"""The analytics core without I/O: readings in, alert changes (and lamp orders) out.

:class:`Engine` owns one time-slotted :class:`~analytics.window.Window` per
device kind (1-minute slots; plus hourly slots over 48 h for the cumulative
counters), the device :class:`~analytics.registry.Registry`, and one
:class:`~deltasense.lifecycle.Lifecycle` per rule.  The service (or a backtest)
feeds it decoded readings with :meth:`Engine.ingest`, calls
:meth:`Engine.evaluate` as often as it likes (re-evaluating the same readings is
harmless) and publishes what comes back; :meth:`Engine.take_commands` hands out
the full-brightness orders for lamps in districts under a storm or flood alert.

The rules are those of the registry (:data:`analytics.ruleset.RULES`); an
evaluation builds one :class:`~analytics.context.Context` over the windows and
runs each rule's evaluator on it, then steps that rule's lifecycle.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from analytics import window as win
from analytics.context import Context, DeviceView, LampView, Rows, WaterView, WeatherView
from analytics.counters import CounterTracker
from analytics.gateways import GatewayState
from analytics.partition import Partition
from analytics.platform import PlatformState
from analytics.registry import OFFLINE, ONLINE, SLEEPING, STATUS_CODES, STOPPED, Registry
from analytics.rules import energy
from analytics.ruleset import RULES, STORM_RISK, Rule, Subject
from deltasense.alerts import AlertEvent
from deltasense.contract import Kind, Reading, is_ident
from deltasense.lifecycle import Lifecycle
from deltasense.qc import out_of_range
from deltasense.rulekernels.base import RuleResult, f32
from deltasense.rulekernels.flood import STREET_FLOOD
from deltasense.rulekernels.limits import (
    FloodLimits,
    LightingLimits,
    RowLimits,
    StormLimits,
    row_limits,
)
from deltasense.thresholds import Thresholds

_LOG = logging.getLogger(__name__)

HOUR_MS: Final = 3_600_000
HOURLY_SLOTS: Final = 48
SHORT_SLOTS: Final = 120  # 2 h of 1-minute slots: enough for every lamp and meter rule
SKEW_MIN_DEVICES: Final = 5
# Rules whose alerts an edge gateway raises offline and analytics adopts (edge/localrules.py).
EDGE_RULES: Final = frozenset({STREET_FLOOD})
ADOPTED_KEEP: Final = 10_000  # adopted ids remembered

# Only what some rule reads: every metric costs 6 bytes × slots × sensors.
WEATHER_METRICS: Final = ("t_c", "rh_pct", "p_hpa", "wind_ms", "gust_ms", "wind_dir_deg", "rain_total")  # fmt: skip
WATER_METRICS: Final = ("level_cm",)
LAMP_METRICS: Final = ("on", "dim_pct", "power_w", "lux", "norm_w")
METER_METRICS: Final = ("energy_total",)
COUNTERS: Final = {"rain_mm_total": "rain_total", "energy_wh_total": "energy_total"}

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
CITY: Final = "city"  # the one city-wide subject, in no district
_CITY: Final = ([CITY], [""])
_PLATFORM: Final = (["platform"], [""])


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
    rule: Rule
    lifecycle: Lifecycle


L = TypeVar("L", bound=RowLimits)


class Engine:
    def __init__(
        self,
        thresholds: Thresholds,
        *,
        utc_offset_min: int,
        slot_ms: int = win.DEFAULT_SLOT_MS,
        n_slots: int = win.DEFAULT_N_SLOTS,
        partition: Partition | None = None,
    ) -> None:
        """``utc_offset_min``: the site's local time, minutes east of UTC (the setting of
        that name), for the rules that follow the local clock.  ``partition``: the
        districts whose alerts this engine raises (analytics/partition.py); all by default."""
        self.thresholds = thresholds
        self.partition = partition or Partition()
        self._owned_districts: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        # The city's storm risk as partition 0 published it (other partitions' lamps).
        self._foreign_city: dict[str, AlertEvent] = {}
        self.utc_offset_min = utc_offset_min
        self.registry = Registry()
        self._limit_cache: dict[tuple[Kind, type[RowLimits]], tuple[int, RowLimits]] = {}
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
        self.platform = PlatformState()  # the broker's and ingest's health (the service feeds it)
        self.gateways = GatewayState()  # the district edge gateways' status (likewise)
        self._canal_ids = frozenset(thresholds.flood.canal_stations)
        self._canal: list[bool] = []  # per water row
        self._commands: list[CommandRequest] = []
        self._bright: dict[str, int] = {}  # lamp → when its full-brightness lease was sent
        # Ids of alerts adopted from edge gateways (insertion-ordered, bounded): a late
        # event of an episode adopted and since ended must not open it again.
        self._adopted: dict[str, None] = {}
        self._learned: tuple[int, F32] = (-1, np.zeros(0, dtype=np.float32))
        self._rules: dict[str, _Rule] = {
            rule.name: _Rule(rule, Lifecycle(rule.spec(thresholds), rule.message)) for rule in RULES
        }

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

    def _limits(self, kind: Kind, view: type[L]) -> L:
        """The limits of ``view`` for ``kind``'s rows: per-row arrays where a district or
        station overrides one (rebuilt only when the rows change)."""
        ks = self._kinds[kind]
        key = (kind, view)
        cached = self._limit_cache.get(key)
        if cached is not None and cached[0] == ks.layout and isinstance(cached[1], view):
            return cached[1]
        limits = row_limits(view, self.thresholds, ks.window.devices, ks.districts)
        self._limit_cache[key] = (ks.layout, limits)
        return limits

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

    def set_status(
        self, device: str, district: str, kind: Kind, state: str, *, planned: bool = False
    ) -> None:
        """A device's retained status (the Last Will says ``offline``).  A ``planned``
        offline (the device's own goodbye) is a stop, not an outage: like a sleeping
        device, it is not judged silent until it reports again."""
        self._rows(kind, [device], [district])
        row = self.registry.row(device, district, kind.value)
        code = STATUS_CODES.get(state, ONLINE)
        self.registry.status[row] = STOPPED if planned and code == OFFLINE else code

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
        self,
        readings: Iterable[Reading],
        *,
        arrival_ms: int | Sequence[int] | None = None,
        replay: bool = False,
    ) -> IngestStats:
        """Decoded readings (any kind) into the windows; QC-flagged values are left out.

        ``arrival_ms`` (the service's clock when the message came: one for the batch,
        or one per reading when the service gathered them over several wake-ups)
        lets the clock-skew rule compare device time with arrival; without it
        (backtests), a batch from at least ``SKEW_MIN_DEVICES`` devices is its own
        reference (its median time).  ``replay`` (a refill from the database) leaves
        clock skew alone.  Duplicates, late readings and gaps are
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
        taken = list(readings)
        arrivals = arrival_ms if isinstance(arrival_ms, Sequence) else [arrival_ms] * len(taken)
        if len(arrivals) != len(taken):
            raise ValueError(f"{len(arrivals)} arrival times for {len(taken)} readings")
        for reading, arrival in zip(taken, arrivals, strict=True):
            ks = self._kinds.get(reading.kind)
            if ks is None:
                stats.ignored += 1
                continue
            stats.readings += 1
            row = reg.row(reading.device, reading.district, reading.kind.value)
            seen = arrival if arrival is not None else reading.ts_ms
            if seen > reg.last_seen[row]:
                reg.last_seen[row] = seen
            reg.status[row] = ONLINE if reg.status[row] != SLEEPING else SLEEPING
            fields = reading.fields
            for name, target in (("batt_v", reg.batt_v), ("rssi_dbm", reg.rssi_dbm)):
                value = fields.get(name)
                if value is not None and not isinstance(value, bool):
                    target[row] = value
            if not (reading.ts_from_platform or reading.hist or replay):
                if arrival is not None:
                    reg.skew_s[row] = (reading.ts_ms - arrival) / 1000.0
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
        ctx = self._context(now_ms)
        events: list[AlertEvent] = []
        for entry in self._rules.values():
            rule = entry.rule
            result = rule.evaluate(ctx)
            ctx.results[rule.name] = result
            subjects, districts = self._subjects(rule.subject)
            fresh = ctx.water.fresh if rule.timing.for_readings else None
            mine = self._owned(rule.subject, result)
            events += self._step(entry.lifecycle, mine, now_ms, subjects, districts, fresh)
        self._order_full_brightness(now_ms)
        return events

    # partitions ---------------------------------------------------------------------------
    def _owned(self, subject: Subject, result: RuleResult) -> RuleResult:
        """``result`` with its condition kept only where this partition owns the subject
        (later rules still read the whole result: storm-risk judges every station)."""
        if self.partition.whole:
            return result
        reg = self.registry
        if len(self._owned_districts) != len(reg.districts):  # districts are only appended
            owns = self.partition.owns
            self._owned_districts = np.fromiter(
                (owns(d) for d in reg.districts), dtype=np.bool_, count=len(reg.districts)
            )
        owned = self._owned_districts
        if subject in (Subject.CITY, Subject.PLATFORM):
            mask = np.array([self.partition.owns_city])
        elif subject is Subject.DISTRICT:
            mask = owned
        elif subject is Subject.GATEWAY:
            owns = self.partition.owns
            mask = np.fromiter((owns(d) for d in self.gateways.districts), dtype=np.bool_)
        elif subject is Subject.DEVICE:
            mask = owned[reg.district[: reg.n]]
        else:
            mask = owned[reg.district[self._kinds[Kind(subject.value)].reg()]]
        return dataclasses.replace(result, condition=result.condition & mask)

    def note_alert(self, event: AlertEvent) -> None:
        """An alert event another partition published: the city's storm risk, which
        orders this partition's lamps to full brightness too."""
        if event.rule != STORM_RISK.name or self.partition.owns_city:
            return
        if event.state in ("firing", "pending"):
            self._foreign_city[event.id] = event
        else:
            self._foreign_city.pop(event.id, None)

    def _context(self, now_ms: int) -> Context:
        t = self.thresholds
        lamps = self._kinds[Kind.LAMP]
        return Context(
            now_ms=now_ms,
            thresholds=t,
            utc_offset_min=self.utc_offset_min,
            weather=WeatherView(
                self._view_rows(Kind.WEATHER),
                self._limits(Kind.WEATHER, StormLimits),
                t,
                now_ms,
                self.utc_offset_min,
            ),
            water=WaterView(
                self._view_rows(Kind.WATER),
                self._limits(Kind.WATER, FloodLimits),
                np.asarray(self._canal, dtype=np.bool_),
                t,
                self.water.take_fresh("level_cm"),
            ),
            lamps=LampView(
                self._view_rows(Kind.LAMP),
                self._limits(Kind.LAMP, LightingLimits),
                self._rated(lamps),
                self.registry.positions(lamps.reg()),
                t,
                now_ms,
            ),
            meters=self._view_rows(Kind.METER),
            devices=DeviceView(self.registry, t, now_ms),
            n_districts=len(self.registry.districts),
            platform=self.platform.view(now_ms, t.platform),
            gateways=self.gateways.view(now_ms, t.platform),
        )

    def _view_rows(self, kind: Kind) -> Rows:
        ks = self._kinds[kind]
        didx = self.registry.district[ks.reg()] if ks.window.n_sensors else np.zeros(0, np.int64)
        return Rows(ks.window, ks.hourly, ks.window.devices, ks.districts, didx)

    def _subjects(self, subject: Subject) -> tuple[Sequence[str], Sequence[str]]:
        """Subjects of a rule's lifecycle rows and their districts."""
        reg = self.registry
        if subject is Subject.CITY:
            return _CITY
        if subject is Subject.PLATFORM:
            return _PLATFORM
        if subject is Subject.GATEWAY:
            return self.gateways.districts, self.gateways.districts
        if subject is Subject.DISTRICT:
            return reg.districts, reg.districts
        if subject is Subject.DEVICE:
            return reg.devices, reg.device_districts
        ks = self._kinds[Kind(subject.value)]
        return ks.window.devices, ks.districts

    @staticmethod
    def _step(
        lifecycle: Lifecycle,
        result: RuleResult,
        now_ms: int,
        subjects: Sequence[str],
        districts: Sequence[str],
        fresh: npt.NDArray[np.bool_] | None,
    ) -> list[AlertEvent]:
        n = len(subjects)
        return lifecycle.step(
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

    # energy: the rated power of each lamp ---------------------------------------------------
    def _rated(self, ks: _KindState) -> F32:
        """Rated power per lamp: the site's register, else the fleet's, else learned."""
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
        for lc in (r.lifecycle for r in self._rules.values() if r.rule.kind == "flood"):
            for event in lc.open_alerts():
                reason_by_district.setdefault(event.district or event.subject, event.id)
        city: str | None = None
        storm = self._rules[STORM_RISK.name].lifecycle.open_alerts()
        for event in [*storm, *self._foreign_city.values()]:
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
    def _subject_row(self, space: Subject, subject: str, district: str) -> int:
        if space in (Subject.CITY, Subject.PLATFORM):
            return 0
        if space is Subject.DISTRICT:
            return self.registry.district_row(subject)
        if space is Subject.GATEWAY:
            return self.gateways.row(subject)
        if space is Subject.DEVICE:
            return self.registry.row(subject, district, "")
        return int(self._rows(Kind(space.value), [subject], [district])[0])

    def restore(self, events: Iterable[AlertEvent]) -> int:
        """Adopt open alerts of a previous run; returns how many were adopted."""
        adopted = 0
        for event in events:
            if event.state == "resolved":
                continue
            if not self.partition.owns(event.district):
                self.note_alert(event)  # another partition's; the city's storm risk counts
                continue
            rule = self._rules.get(event.rule)
            if rule is None:
                _LOG.info("open alert %s of unknown rule %s left alone", event.id, event.rule)
                continue
            row = self._subject_row(rule.rule.subject, event.subject, event.district)
            rule.lifecycle.restore(row, event)
            adopted += 1
        return adopted

    def adopt_edge_alert(self, district: str, event: AlertEvent) -> tuple[str, list[AlertEvent]]:
        """An alert the gateway of ``district`` raised while its uplink was down
        (docs/CONTRACT.md, "Alerts raised offline"): (outcome, events to publish).

        Adopted as the rule's open alert when none is open for its subject, so the
        platform has the episode once, under the gateway's id and start; from then on
        the platform's own readings resolve it.  The gateway's end of an adopted
        episode is applied.  Anything else is the same episode seen twice (the
        platform raised it from the readings first, or it was adopted already, or it
        ended here already) and changes nothing."""
        if event.rule not in EDGE_RULES:
            raise ValueError(f"a gateway raises no {event.rule[:40]!r} alerts")
        if event.district != district:
            raise ValueError(f"alert of {event.district[:40]!r} from the gateway of {district}")
        rule = self._rules[event.rule]
        if event.kind != rule.rule.kind or not is_ident(event.subject):
            raise ValueError(f"alert {event.id[:40]!r} is not a {event.rule} alert")
        if not self.partition.owns(district):
            return "not-mine", []
        row = self._subject_row(rule.rule.subject, event.subject, district)
        lc = rule.lifecycle
        current = lc.open_alert(row)
        if event.state == "resolved":
            if current is not None and current.id == event.id and event.id in self._adopted:
                ended = lc.end(row, event.ended or event.updated, event.values)
                return "ended", [] if ended is None else [ended]
            return "duplicate", []
        if current is not None or event.id in self._adopted:
            return "duplicate", []
        adopted = lc.adopt(row, event)
        if adopted is None:  # pragma: no cover - no open alert was checked above
            return "duplicate", []
        self._adopted[event.id] = None
        while len(self._adopted) > ADOPTED_KEEP:
            del self._adopted[next(iter(self._adopted))]
        return "adopted", [adopted]

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
