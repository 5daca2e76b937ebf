"""The ward's own flood and storm rules, for while the uplink is down (pure, no I/O).

The gateway feeds every message it spools (the bytes the platform will get) to
:meth:`WardRules.observe` and calls :meth:`WardRules.evaluate`; the judgement is
the platform's own: the street-flood and storm kernels of
:mod:`deltasense.rulekernels`, the thresholds of :mod:`deltasense.thresholds`
(with the site's per-district and per-station overrides) and the alert
lifecycle of :mod:`deltasense.lifecycle`.  Only the windows are the gateway's:
a few readings per drain and ``wind_mean_min`` minutes per weather station.

Always evaluated, acted on only offline (docs/EDGE.md, "Local rules while offline"): the
windows stay warm while the platform is reachable, so the moment the link drops
the gateway knows the ward's state; but while the link is up the platform
raises the alerts and orders the lamps, and the gateway does nothing.

* **siren**: on when a street drain's plausible depth reaches its critical depth
  while offline; off when every drain is below critical − ``deadband.level_mm``
  (hysteresis), or after ``siren_max_s`` (then re-armed only once the water fell
  below that).  Once sounding it runs its course when the link returns: the
  platform has no siren to take over.
* **lamps**: while offline and a street-flood alert is open in the ward, or the
  ward's stations reach ``full_brightness_storm_risk``, every lamp of the ward is
  ordered to 100 % for ``full_brightness_lease_s`` (analytics' lease), renewed
  every third of it; the lease lapses on its own.
* **alerts**: street-flood episodes that start or change while offline become
  alert events (same rule, subject, district, lifecycle and id rule as analytics),
  which the gateway spools for the platform (analytics adopts them: docs/CONTRACT.md).

A message that is not a valid reading is counted and ignored: nothing a node
sends can stop the evaluator.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Final

import msgspec
import numpy as np

from deltasense import qc
from deltasense.alerts import AlertEvent, Message
from deltasense.contract import (
    Channel,
    Command,
    ContractError,
    Kind,
    decode_meta,
    decode_tele,
    device_topic,
    parse_topic,
)
from deltasense.lifecycle import Lifecycle, MessageContext, RuleSpec
from deltasense.rulekernels import flood, storm
from deltasense.rulekernels.base import CRITICAL, RuleResult
from deltasense.rulekernels.limits import FloodLimits, StormLimits, row_limits
from deltasense.thresholds import Thresholds

WATER_KEEP: Final = 4  # readings kept per drain: plausible_latest needs two
MINUTE_MS: Final = 60_000
GUST_SLOTS: Final = 2  # the newest gust: the last two minutes (analytics' recent_max)
# Bounds against a node (or anything on the anonymous ward broker) inventing devices
# or flooding readings: a ward has ~200 nodes, a station reports a few times a minute.
MAX_NODES: Final = 2_000
WEATHER_KEEP: Final = 4_000  # samples per station and series (its minutes are pruned)


def _no_text(_: MessageContext) -> Message:
    # Analytics words an adopted alert with its own rule's message (analytics/ruleset.py).
    return Message(vi="", en="")


@dataclass
class _Drain:
    row: int
    levels: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=WATER_KEEP))
    canal: bool = False
    fresh: bool = False


@dataclass
class _Station:
    row: int
    wind: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=WEATHER_KEEP))
    gust: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=WEATHER_KEEP))


@dataclass(frozen=True)
class LampOrder:
    topic: str
    payload: bytes


@dataclass
class Decisions:
    siren: bool
    lamp_orders: list[LampOrder]
    alerts: list[AlertEvent]
    storm_level: int = 0
    flooded: tuple[str, ...] = ()  # drains over the critical depth now


class WardRules:
    def __init__(
        self,
        *,
        site: str,
        district: str,
        thresholds: Thresholds,
        siren_max_s: float,
    ) -> None:
        self.site = site
        self.district = district
        self.t = thresholds
        self.siren_max_ms = round(siren_max_s * 1000)
        self._drains: dict[str, _Drain] = {}
        self._stations: dict[str, _Station] = {}
        self._lamps: set[str] = set()
        a = thresholds.alerting
        self.flood_spec = RuleSpec(
            rule=flood.STREET_FLOOD,
            kind="flood",
            for_count=a.for_.flood_readings,
            for_ms=round(a.for_.seconds(flood.STREET_FLOOD, "flood") * 1000),
            keep_firing_for_ms=round(a.keep_firing_for.seconds(flood.STREET_FLOOD, "flood") * 1000),
        )
        self._flood = Lifecycle(self.flood_spec, _no_text)
        self._siren_since: int | None = None  # when the siren started (ms)
        self._siren_spent = False  # ran for siren_max_s: wait for the water to fall
        self._bright: dict[str, int] = {}  # lamp → when its lease was ordered
        self.rejected = 0  # messages that were not valid readings
        self.last_error = ""

    # --- input ---------------------------------------------------------------------------
    def observe(self, topic: str, payload: bytes, received_ms: int) -> bool:
        """Take one message from the ward; True if a drain got a new level (the
        siren's rules should run now).  Never raises for what a node sent."""
        try:
            return self._observe(topic, payload, received_ms)
        except (ContractError, msgspec.DecodeError, ValueError, TypeError, OverflowError) as exc:
            self.rejected += 1
            self.last_error = f"{topic[:120]}: {str(exc)[:200]}"
            return False

    def _observe(self, topic: str, payload: bytes, received_ms: int) -> bool:
        t = parse_topic(topic)
        if t.site != self.site or t.district != self.district:
            return False
        if t.kind is Kind.LAMP:
            if t.device not in self._lamps and len(self._lamps) >= MAX_NODES:
                raise ValueError(f"more than {MAX_NODES} lamps in the ward")
            self._lamps.add(t.device)
        if t.channel is Channel.META and t.kind is Kind.WATER:
            meta = decode_meta(payload)
            if isinstance(meta.station, str):
                self._drain(t.device).canal = meta.station == "canal"
            return False
        if t.channel is not Channel.TELE or t.kind not in (Kind.WATER, Kind.WEATHER):
            return False
        readings = decode_tele(t, payload, received_ms)
        water = False
        for r in readings:
            flagged = set(qc.out_of_range(r.kind, r.fields))  # QC-flagged values stay out
            values = {
                k: float(v)
                for k, v in r.fields.items()
                if k not in flagged and isinstance(v, int | float) and not isinstance(v, bool)
            }
            if r.kind is Kind.WATER and "level_cm" in values:
                self._add_level(self._drain(r.device), r.ts_ms, values["level_cm"])
                water = True
            elif r.kind is Kind.WEATHER:
                st = self._station(r.device)
                if "wind_ms" in values:
                    st.wind.append((r.ts_ms, values["wind_ms"]))
                if "gust_ms" in values:
                    st.gust.append((r.ts_ms, values["gust_ms"]))
        return water

    def _drain(self, device: str) -> _Drain:
        d = self._drains.get(device)
        if d is None:
            if len(self._drains) >= MAX_NODES:
                raise ValueError(f"more than {MAX_NODES} water nodes in the ward")
            d = self._drains[device] = _Drain(row=len(self._drains))
        return d

    def _station(self, device: str) -> _Station:
        s = self._stations.get(device)
        if s is None:
            if len(self._stations) >= MAX_NODES:
                raise ValueError(f"more than {MAX_NODES} weather stations in the ward")
            s = self._stations[device] = _Station(row=len(self._stations))
        return s

    @staticmethod
    def _add_level(d: _Drain, ts: int, level: float) -> None:
        if d.levels and ts <= d.levels[-1][0]:
            return  # a replay or an older reading: the newest is what the rules judge
        d.levels.append((ts, level))
        d.fresh = True

    @property
    def lamps(self) -> frozenset[str]:
        return frozenset(self._lamps)

    # --- evaluation ----------------------------------------------------------------------
    def evaluate(self, now_ms: int, *, offline: bool) -> Decisions:
        street = self._street_flood()
        events = self._flood_events(street, now_ms)
        level = self._storm_level(now_ms)
        siren = self._siren(street, now_ms, offline=offline)
        orders = self._lamp_orders(now_ms, offline=offline, storm_level=level)
        devices = list(self._drains)
        crit = [] if street is None else np.flatnonzero(street.severity >= CRITICAL).tolist()
        return Decisions(
            siren=siren,
            lamp_orders=orders,
            alerts=events if offline else [],
            storm_level=level,
            flooded=tuple(devices[i] for i in crit),
        )

    def _street_flood(self) -> RuleResult | None:
        if not self._drains:
            return None
        fl = self.t.flood
        n = len(self._drains)
        latest = np.full(n, np.nan, dtype=np.float32)
        previous = np.full(n, np.nan, dtype=np.float32)
        gap = np.ones(n, dtype=np.float32)
        excluded = np.zeros(n, dtype=np.bool_)
        for d in self._drains.values():
            excluded[d.row] = d.canal
            if d.levels:
                latest[d.row] = d.levels[-1][1]
            if len(d.levels) >= 2:
                previous[d.row] = d.levels[-2][1]
                gap[d.row] = (d.levels[-1][0] - d.levels[-2][0]) / MINUTE_MS
        devices = list(self._drains)
        limits = row_limits(FloodLimits, self.t, devices, [self.district] * n)
        plausible = flood.plausible_latest(latest, previous, gap, fl)
        return flood.street_flood(
            plausible,
            excluded=excluded,
            flood=fl,
            limits=limits,
            deadband_mm=self.t.alerting.deadband.level_mm,
        )

    def _flood_events(self, street: RuleResult | None, now_ms: int) -> list[AlertEvent]:
        if street is None:
            return []
        n = len(self._drains)
        fresh = np.zeros(n, dtype=np.bool_)
        for d in self._drains.values():
            fresh[d.row] = d.fresh
            d.fresh = False
        return self._flood.step(
            condition=street.condition,
            clear=street.clear,
            severity=street.severity,
            fresh=fresh,
            now_ms=now_ms,
            subjects=list(self._drains),
            districts=[self.district] * n,
            values=street.values,
        )

    def open_alerts(self) -> list[AlertEvent]:
        return self._flood.open_alerts()

    def _siren(self, street: RuleResult | None, now_ms: int, *, offline: bool) -> bool:
        if street is None:
            return self._siren_since is not None
        depth = street.values["depth_mm"]
        limits = row_limits(FloodLimits, self.t, list(self._drains), [self.district] * depth.size)
        critical = np.asarray(limits.street_critical_mm, dtype=np.float32)
        release = critical - np.float32(self.t.alerting.deadband.level_mm)
        with np.errstate(invalid="ignore"):
            over = bool(np.any(street.severity >= CRITICAL))
            # NaN (no usable level, an unconfirmed jump) holds: neither over nor below.
            below = bool(np.all(np.isnan(depth) | (depth < release)))
        if self._siren_since is not None:
            if below:
                self._siren_since = None
                self._siren_spent = False
            elif now_ms - self._siren_since >= self.siren_max_ms:
                self._siren_since = None
                self._siren_spent = True
        elif below:
            self._siren_spent = False
        elif over and offline and not self._siren_spent:
            self._siren_since = now_ms
        return self._siren_since is not None

    def _storm_level(self, now_ms: int) -> int:
        """The ward's storm level 0–5 from its own stations: the kernels of the city's
        storm-risk on the 10-min mean wind and the gust.  The gateway keeps no 3 h of
        pressure and no rain day, so the pressure-fall, squall and rain signs (levels
        1–2, below the lamps' level) are left to the platform."""
        s = self.t.storm
        if not self._stations:
            return 0
        n, k = len(self._stations), s.wind_mean_min
        wind = np.full((n, k), np.nan, dtype=np.float32)
        gust = np.full((n, GUST_SLOTS), np.nan, dtype=np.float32)
        start = now_ms - k * MINUTE_MS
        for st in self._stations.values():
            while st.wind and st.wind[0][0] < start:
                st.wind.popleft()
            while st.gust and st.gust[0][0] < now_ms - GUST_SLOTS * MINUTE_MS:
                st.gust.popleft()
            _slot_means(wind[st.row], st.wind, start)
            _slot_means(gust[st.row], st.gust, now_ms - GUST_SLOTS * MINUTE_MS, take_max=True)
        mean10 = storm.ten_minute_mean(wind, k, 1.0, s.wind_mean_coverage)
        devices = list(self._stations)
        limits = row_limits(StormLimits, self.t, devices, [self.district] * n)
        db = self.t.alerting.deadband.wind_ms
        gusts = storm.gust_rule(storm.recent_max(gust, GUST_SLOTS), limits, db)
        quiet = _quiet(n)
        levels = storm.station_level(
            cap=storm.wind_cap(mean10, s),
            gust=gusts,
            squall=quiet,
            pressure=quiet,
            rain_warning=np.zeros(n, dtype=np.bool_),
        )
        reporting = ~np.isnan(mean10) | ~np.isnan(gusts.values["gust_ms"])
        level, _, _ = storm.city_risk(levels, reporting, s, np.zeros(n, dtype=np.bool_))
        return level

    def _lamp_orders(self, now_ms: int, *, offline: bool, storm_level: int) -> list[LampOrder]:
        lighting = self.t.lighting
        storm_on = storm_level >= lighting.full_brightness_storm_risk
        flood_on = bool(self._flood.open_alerts())
        if not offline or not lighting.full_brightness_during_storm_or_flood:
            return []
        if not (storm_on or flood_on):
            self._bright.clear()  # nothing ordered now; the next episode orders again
            return []
        lease_s = lighting.full_brightness_lease_s
        renew_ms = lease_s * 1000 // 3
        orders = []
        for lamp in sorted(self._lamps):
            sent = self._bright.get(lamp)
            if sent is not None and now_ms - sent < renew_ms:
                continue
            self._bright[lamp] = now_ms
            # The lease analytics orders (engine._order_full_brightness); it expires
            # with its renewal, which a newer order replaces anyway.
            command = Command(
                id=f"edge-{uuid.uuid4().hex[:24]}",
                name="set_dim",
                args={"pct": 100, "duration_s": lease_s},
                expires=now_ms + renew_ms,
            )
            topic = device_topic(self.site, self.district, Kind.LAMP, lamp, Channel.CMD)
            orders.append(LampOrder(topic, msgspec.json.encode(command)))
        return orders


def _slot_means(
    out: np.ndarray, samples: deque[tuple[int, float]], start_ms: int, *, take_max: bool = False
) -> None:
    """Per-minute slots of ``samples`` (oldest first) from ``start_ms`` into ``out``."""
    sums = np.zeros(out.size)
    counts = np.zeros(out.size)
    for ts, value in samples:
        i = (ts - start_ms) // MINUTE_MS
        if 0 <= i < out.size:
            if take_max:
                counts[i] += 1
                sums[i] = max(sums[i], value) if counts[i] > 1 else value
            else:
                sums[i] += value
                counts[i] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        vals = sums if take_max else sums / counts
    out[:] = np.where(counts > 0, vals, np.nan)


def _quiet(n: int) -> RuleResult:
    """A rule that saw nothing (the signs the gateway cannot judge)."""
    none = np.zeros(n, dtype=np.bool_)
    return RuleResult(condition=none, clear=~none, severity=np.zeros(n, dtype=np.int8))
