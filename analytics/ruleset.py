"""The rule registry: every alert rule, declared once.

A :class:`Rule` says what the rule is called (its ``rule`` field in alerts, its
key in ``thresholds.toml``'s per-rule tables), its alert kind, what its
subjects are, how to evaluate it from a :class:`~analytics.context.Context`,
its Vietnamese and English message, and where its ``for`` comes from when the
thresholds do not name it.  The engine evaluates :data:`RULES` in order (a rule
may read the results of rules before it), and the thresholds refuse a per-rule
key that is not a name here.

Evaluators only wire context arrays into the pure rule functions of
:mod:`analytics.rules`; the judgement lives there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import numpy as np

from analytics.context import Context
from analytics.rules import energy, gateways, health, platform, rain
from analytics.rules.messages import gateway, street_flood, titled
from deltasense.alerts import AlertKind
from deltasense.contract import is_ident
from deltasense.lifecycle import MessageFn, RuleSpec
from deltasense.rulekernels import flood, storm
from deltasense.rulekernels.base import CRITICAL, RuleResult, f32, group_count, group_max, row_max
from deltasense.thresholds import Thresholds


class Subject(StrEnum):
    """What one alert of a rule is about (one lifecycle row each)."""

    WEATHER = "weather"  # a weather station
    WATER = "water"  # a water node (street drain or canal station)
    LAMP = "lamp"
    METER = "meter"  # a lighting cabinet's meter
    DEVICE = "device"  # any device in the registry
    DISTRICT = "district"
    CITY = "city"  # the one city-wide subject
    PLATFORM = "platform"  # the platform itself: broker, ingest
    GATEWAY = "gateway"  # a district's edge gateway; the subject is its district


@dataclass(frozen=True)
class Timing:
    """Where a rule's ``for`` comes from when ``alerting.for.rule_s`` does not name it.

    ``for_s``: the rule's own default (e.g. a lighting table's ``for_min``); None
    takes the kind's (``alerting.for.<kind>_s``).  ``for_readings``: ``for`` also
    counts new readings (``alerting.for.flood_readings``) rather than evaluations,
    so re-evaluating the same reading on a timer never counts twice.
    """

    for_s: Callable[[Thresholds], float] | None = None
    for_readings: bool = False


Evaluator = Callable[[Context], RuleResult]


@dataclass(frozen=True)
class Rule:
    name: str
    kind: AlertKind
    subject: Subject
    evaluate: Evaluator
    message: MessageFn
    timing: Timing = field(default_factory=Timing)

    def spec(self, t: Thresholds) -> RuleSpec:
        """The rule's lifecycle settings under thresholds ``t``."""
        a = t.alerting
        if self.name in a.for_.rule_s or self.timing.for_s is None:
            for_s = a.for_.seconds(self.name, self.kind)
        else:
            for_s = self.timing.for_s(t)
        return RuleSpec(
            rule=self.name,
            kind=self.kind,
            for_count=a.for_.flood_readings if self.timing.for_readings else 1,
            for_ms=round(for_s * 1000),
            keep_firing_for_ms=round(a.keep_firing_for.seconds(self.name, self.kind) * 1000),
        )


# --- storm and rain (weather stations, the city) -------------------------------------------
def _wind_cap(c: Context) -> RuleResult:
    return storm.wind_rule(
        c.weather.mean10, c.thresholds.storm, c.thresholds.alerting.deadband.wind_ms
    )


def _gust(c: Context) -> RuleResult:
    return storm.gust_rule(c.weather.gust, c.weather.limits, c.thresholds.alerting.deadband.wind_ms)


def _squall(c: Context) -> RuleResult:
    # Complete minutes only: the head slot is still filling, and judging it made the
    # squall depend on when within a minute the rules ran (live vs backtest).
    w = c.weather
    slot_s = w.rows.window.slot_ms / 1000
    db = c.thresholds.alerting.deadband.wind_ms
    return storm.squall_rule(w.wind[:, :-1], c.thresholds.storm, slot_s, db)


def _pressure_fall(c: Context) -> RuleResult:
    fall3, fall6 = c.weather.pressure_falls
    return storm.pressure_rule(
        fall3, fall6, c.thresholds.storm, c.thresholds.alerting.deadband.p_hpa
    )


def _gust_front(c: Context) -> RuleResult:
    w, s = c.weather, c.thresholds.storm
    k = s.gust_front.window_min
    return storm.gust_front_rule(
        w.recent("t_c", k), w.wind[:, -k:], w.recent("p_hpa", k), w.recent("rh_pct", k), s
    )


def _heavy_rain(c: Context) -> RuleResult:
    w = c.weather
    r24h, rday = w.rain_long
    return rain.heavy_rain_rule(w.rain_1h, w.rain_3h, r24h, rday, c.thresholds.rain)


def _storm_risk(c: Context) -> RuleResult:
    w, s = c.weather, c.thresholds.storm
    rain_r = c.result(HEAVY_RAIN.name)
    levels = storm.station_level(
        cap=storm.wind_cap(w.mean10, s),
        gust=c.result(GUST.name),
        squall=c.result(SQUALL.name),
        pressure=c.result(PRESSURE_FALL.name),
        rain_warning=rain_r.condition,
    )
    reporting = ~np.isnan(w.mean10) | ~np.isnan(w.p_latest)
    level, agreeing, m = storm.city_risk(
        levels, reporting, s, rain_r.condition & (rain_r.severity >= CRITICAL)
    )
    return storm.city_rule(level, agreeing, m, storm.city_hold(levels, reporting, s))


# --- weather-sensor health (WMO AWS tests) -----------------------------------------------
def _stuck(c: Context) -> RuleResult:
    return health.stuck_rule(c.weather.stuck_series, c.thresholds.health)


def _sensor_spike(c: Context) -> RuleResult:
    return health.spike_rule(c.weather.spike_series, c.thresholds.health)


# --- water: street drains, canals, districts ---------------------------------------------
def _street_flood(c: Context) -> RuleResult:
    w, t = c.water, c.thresholds
    return flood.street_flood(
        w.plausible,
        excluded=w.excluded,
        flood=t.flood,
        limits=w.limits,
        deadband_mm=t.alerting.deadband.level_mm,
    )


def _drain_rising(c: Context) -> RuleResult:
    w = c.water
    slope, fitted = w.trend
    depth = c.result(STREET_FLOOD.name).values["depth_mm"]
    return flood.rise_rule(
        depth, slope, fitted, excluded=w.excluded, flood=c.thresholds.flood, limits=w.limits
    )


def _level_spike(c: Context) -> RuleResult:
    # A reading away from both neighbours (echo, splash).
    w = c.water
    jump_mm = c.thresholds.flood.spike_jump_mm
    return health.level_spike_rule(w.before_previous, w.previous, w.level, jump_mm)


def _canal_level(c: Context) -> RuleResult:
    w = c.water
    return flood.canal_rule(w.level, w.alarm_levels, c.thresholds.alerting.deadband.level_mm)


def _district_flood(c: Context) -> RuleResult:
    w, nd = c.water, c.n_districts
    didx, street_drain = w.rows.district_idx, ~w.excluded
    street, canal = c.result(STREET_FLOOD.name), c.result(CANAL_LEVEL.name)
    flooded = group_count(didx, street.condition & street_drain, nd)
    critical = group_count(didx, (street.severity >= CRITICAL) & street_drain, nd)
    drains = group_count(didx, street_drain & ~np.isnan(w.level), nd)
    at_alarm = (
        np.where(canal.condition, canal.risk, 0).astype(np.float32)
        if canal.risk is not None
        else f32(np.zeros(len(w.rows.devices)))
    )
    canal_risk = np.nan_to_num(group_max(didx, at_alarm, nd), nan=0).astype(np.int8)
    return flood.district_rule(flooded, critical, drains, canal_risk, c.thresholds.flood)


def _compound_flood(c: Context) -> RuleResult:
    # Per district: the wettest station's last hour (the city's where a district has
    # none) and the canal nearest its alarm level (likewise).
    w, nd, fl = c.water, c.n_districts, c.thresholds.flood
    r1h = c.weather.rain_1h
    rain_d = group_max(c.weather.rows.district_idx, r1h, nd)
    city_rain = row_max(r1h[None, :]) if r1h.size else f32([np.nan])
    rain_d = np.where(np.isnan(rain_d), city_rain[0], rain_d).astype(np.float32)
    canal = c.result(CANAL_LEVEL.name)
    margin = f32(canal.values["level_m"] - canal.values["bd_lowest_m"])
    margin_d = group_max(w.rows.district_idx, margin, nd)
    city_margin = row_max(margin[None, :]) if margin.size else f32([np.nan])
    margin_d = np.where(np.isnan(margin_d), city_margin[0], margin_d).astype(np.float32)
    depth = c.result(STREET_FLOOD.name).values["depth_mm"]
    wet = group_count(w.rows.district_idx, (depth > fl.noise_floor_mm) & ~w.excluded, nd) > 0
    return flood.compound_rule(
        rain_d, margin_d, wet, heavy_mm_h=c.thresholds.rain.mm_1h.heavy, flood=fl
    )


# --- energy: lamps and cabinets ------------------------------------------------------------
def _day_burn(c: Context) -> RuleResult:
    lamps, cur = c.lamps, c.lamps.current
    return energy.day_burn_rule(
        cur["power_w"],
        lamps.rated_w,
        cur["on"],
        cur["lux"],
        lamps.sun_elevation_deg,
        c.thresholds.lighting,
    )


def _lamp_out(c: Context) -> RuleResult:
    lamps, cur = c.lamps, c.lamps.current
    return energy.lamp_out_rule(
        cur["power_w"], lamps.rated_w, cur["lux"], lamps.sun_elevation_deg, c.thresholds.lighting
    )


def _power_drift(c: Context) -> RuleResult:
    lamps = c.lamps
    return energy.drift_rule(lamps.drift_series, lamps.rated_w, c.thresholds.lighting, lamps.limits)


def _lamp_cycling(c: Context) -> RuleResult:
    return energy.cycling_rule(c.lamps.switches_1h, c.thresholds.lighting)


def _dimming(c: Context) -> RuleResult:
    cur = c.lamps.current
    return energy.dimming_rule(
        cur["on"],
        cur["dim_pct"],
        cur["power_w"],
        c.now_ms,
        c.thresholds.lighting,
        c.utc_offset_min,
    )


def _cabinet(c: Context) -> RuleResult:
    totals = c.meters.hourly_window().series("energy_total")
    return energy.cabinet_rule(totals, c.thresholds.lighting)


# --- device health ---------------------------------------------------------------------------
def _mass_outage(c: Context) -> RuleResult:
    d = c.devices
    reg, n = d.registry, d.n
    return health.mass_outage(
        reg.district[:n], d.offline.condition, reg.last_seen[:n], c.n_districts, c.thresholds.health
    )


def _device_offline(c: Context) -> RuleResult:
    # Inhibition (Alertmanager style): a district in a mass outage gets one alert, not
    # one per silent device.
    d = c.devices
    offline, mass = d.offline, c.result(MASS_OUTAGE.name)
    in_mass = (
        mass.condition[np.maximum(d.registry.district[: d.n], 0)] if d.n else offline.condition
    )
    return RuleResult(
        condition=offline.condition & ~in_mass,
        clear=offline.clear,
        severity=offline.severity,
        values=offline.values,
    )


def _out_of_range(c: Context) -> RuleResult:
    return health.qc_rule(c.devices.qc_flagged, c.thresholds.health)


def _low_battery(c: Context) -> RuleResult:
    d, h = c.devices, c.thresholds.health
    return health.low_rule(
        d.registry.batt_v[: d.n], h.low_battery_v, h.battery_deadband_v, "batt_v"
    )


def _weak_signal(c: Context) -> RuleResult:
    d, h = c.devices, c.thresholds.health
    return health.low_rule(
        d.registry.rssi_dbm[: d.n], h.weak_signal_dbm, h.signal_deadband_db, "rssi_dbm"
    )


def _clock_skew(c: Context) -> RuleResult:
    d = c.devices
    return health.skew_rule(d.registry.skew_s[: d.n], c.thresholds.health)


# --- platform health (the broker, ingest) ----------------------------------------------------
def _queue_drop(c: Context) -> RuleResult:
    p = c.platform
    return platform.queue_drop_rule(p.dropped, p.drop_watched, c.thresholds.platform)


def _ingest_lag(c: Context) -> RuleResult:
    return platform.ingest_lag_rule(c.platform.lag_s, c.thresholds.platform)


def _deadletter_surge(c: Context) -> RuleResult:
    p = c.platform
    return platform.deadletter_rule(
        p.deadletters_per_min, p.deadletters_watched, c.thresholds.platform
    )


# --- district edge gateways (their retained status) -------------------------------------------
def _edge_backlog(c: Context) -> RuleResult:
    g = c.gateways
    return gateways.backlog_rule(g.oldest_age_s, g.retired, c.thresholds.platform)


def _edge_drops(c: Context) -> RuleResult:
    g = c.gateways
    return gateways.drops_rule(g.dropped, g.drop_watched, g.retired, c.thresholds.platform)


def _edge_silent(c: Context) -> RuleResult:
    g = c.gateways
    return gateways.silent_rule(
        g.silent_s, g.offline, g.stale_after_s, g.heard, g.retired, c.thresholds.platform
    )


# --- the declarations, in evaluation order ---------------------------------------------------
_W, _WATER, _LAMP = Subject.WEATHER, Subject.WATER, Subject.LAMP
_DEV, _DIST = Subject.DEVICE, Subject.DISTRICT

WIND_CAP: Final = Rule("wind-cap", "storm", _W, _wind_cap, titled("Gió mạnh", "Strong wind"))
GUST: Final = Rule("gust", "storm", _W, _gust, titled("Gió giật mạnh", "Damaging wind gusts"))
SQUALL: Final = Rule("squall", "storm", _W, _squall, titled("Gió tố", "Squall"))
PRESSURE_FALL: Final = Rule(
    "pressure-fall",
    "storm",
    _W,
    _pressure_fall,
    titled("Khí áp giảm nhanh", "Rapid pressure fall"),
)
GUST_FRONT: Final = Rule(
    "gust-front",
    "storm",
    _W,
    _gust_front,
    titled("Front gió giật của dông", "Thunderstorm gust front"),
)
HEAVY_RAIN: Final = Rule("heavy-rain", "storm", _W, _heavy_rain, titled("Mưa lớn", "Heavy rain"))
STORM_RISK: Final = Rule(
    "storm-risk",
    "storm",
    Subject.CITY,
    _storm_risk,
    titled("Rủi ro thiên tai do bão, dông", "Storm risk for the city"),
)
STUCK_SENSOR: Final = Rule(
    "stuck-sensor", "health", _W, _stuck, titled("Cảm biến bị kẹt", "Stuck sensor")
)
SENSOR_SPIKE: Final = Rule(
    "sensor-spike",
    "health",
    _W,
    _sensor_spike,
    titled("Cảm biến có giá trị đột biến", "Sensor spikes"),
)

STREET_FLOOD: Final = Rule(
    flood.STREET_FLOOD, "flood", _WATER, _street_flood, street_flood, Timing(for_readings=True)
)
DRAIN_RISING: Final = Rule(
    "drain-rising",
    "flood",
    _WATER,
    _drain_rising,
    titled("Nước dâng nhanh trên đường", "Street water rising fast"),
)
LEVEL_SPIKE: Final = Rule(
    "level-spike",
    "health",
    _WATER,
    _level_spike,
    titled("Cảm biến mực nước đo sai đột biến", "Water-level sensor spike"),
)
CANAL_LEVEL: Final = Rule(
    "canal-level",
    "flood",
    _WATER,
    _canal_level,
    titled("Mực nước kênh vượt báo động", "Canal above alarm level"),
)
DISTRICT_FLOOD: Final = Rule(
    "district-flood",
    "flood",
    _DIST,
    _district_flood,
    titled("Ngập lụt khu vực", "District flooding"),
)
COMPOUND_FLOOD: Final = Rule(
    "compound-flood",
    "flood",
    _DIST,
    _compound_flood,
    titled("Mưa lớn khi nước kênh cao", "Heavy rain on high water"),
)

DAY_BURN: Final = Rule(
    "day-burn",
    "energy",
    _LAMP,
    _day_burn,
    titled("Đèn sáng ban ngày", "Lamp burning in daylight"),
    Timing(for_s=lambda t: t.lighting.day_burn.for_min * 60),
)
LAMP_OUT: Final = Rule(
    "lamp-out",
    "energy",
    _LAMP,
    _lamp_out,
    titled("Đèn không sáng", "Lamp out"),
    Timing(for_s=lambda t: t.lighting.lamp_out.for_min * 60),
)
POWER_DRIFT: Final = Rule(
    "power-drift",
    "energy",
    _LAMP,
    _power_drift,
    titled("Công suất đèn lệch định mức", "Lamp power drift"),
)
LAMP_CYCLING: Final = Rule(
    "lamp-cycling",
    "energy",
    _LAMP,
    _lamp_cycling,
    titled("Đèn bật tắt liên tục", "Lamp cycling on and off"),
)
DIMMING_OPPORTUNITY: Final = Rule(
    "dimming-opportunity",
    "energy",
    _LAMP,
    _dimming,
    titled("Có thể giảm độ sáng để tiết kiệm", "Dimming would save energy"),
)
CABINET_ENERGY: Final = Rule(
    "cabinet-energy",
    "energy",
    Subject.METER,
    _cabinet,
    titled("Điện năng tủ điện bất thường", "Cabinet consumption off its baseline"),
)

MASS_OUTAGE: Final = Rule(
    "mass-outage", "health", _DIST, _mass_outage, titled("Mất kết nối hàng loạt", "Mass outage")
)
DEVICE_OFFLINE: Final = Rule(
    "device-offline",
    "health",
    _DEV,
    _device_offline,
    titled("Thiết bị mất kết nối", "Device offline"),
)
OUT_OF_RANGE: Final = Rule(
    "out-of-range",
    "health",
    _DEV,
    _out_of_range,
    titled("Giá trị ngoài phạm vi vật lý", "Physically impossible readings"),
)
LOW_BATTERY: Final = Rule(
    "low-battery", "health", _DEV, _low_battery, titled("Pin yếu", "Low battery")
)
WEAK_SIGNAL: Final = Rule(
    "weak-signal", "health", _DEV, _weak_signal, titled("Sóng yếu", "Weak signal")
)
CLOCK_SKEW: Final = Rule(
    "clock-skew",
    "health",
    _DEV,
    _clock_skew,
    titled("Đồng hồ thiết bị bị lệch", "Device clock skewed"),
)

BROKER_QUEUE_DROP: Final = Rule(
    "broker-queue-drop",
    "health",
    Subject.PLATFORM,
    _queue_drop,
    titled("Máy chủ MQTT bỏ mất bản tin", "Broker dropped queued messages"),
)
INGEST_LAG: Final = Rule(
    "ingest-lag",
    "health",
    Subject.PLATFORM,
    _ingest_lag,
    titled("Lưu dữ liệu bị chậm", "Ingest falling behind"),
)
DEADLETTER_SURGE: Final = Rule(
    "deadletter-surge",
    "health",
    Subject.PLATFORM,
    _deadletter_surge,
    titled("Nhiều bản tin lỗi bị loại", "Dead-letter surge"),
)

EDGE_SPOOL_BACKLOG: Final = Rule(
    "edge-spool-backlog",
    "health",
    Subject.GATEWAY,
    _edge_backlog,
    gateway(
        "Dữ liệu bị dồn tại bộ gom biên",
        "Edge gateway backlog",
        "số đo của {ward} đến trễ, bộ gom biên còn giữ bản ghi cũ nhất {age} chưa gửi lên được."
        " Cảnh báo ngập, bão của địa bàn này có thể đến muộn; kiểm tra đường truyền của bộ gom.",
        "readings from {ward} are late: its edge gateway holds records up to {age} old that it"
        " could not send yet. Flood and storm alerts for this ward may come late; check the"
        " gateway's uplink.",
        "Đã hết: bộ gom biên của {ward} đã gửi hết dữ liệu tồn đọng",
        "Over: the edge gateway of {ward} has caught up (its spool drained)",
    ),
)
EDGE_SPOOL_DROPS: Final = Rule(
    "edge-spool-drops",
    "health",
    Subject.GATEWAY,
    _edge_drops,
    gateway(
        "Mất dữ liệu tại bộ gom biên",
        "Readings lost at the edge gateway",
        "bộ gom biên của {ward} đã bỏ {dropped} bản ghi (bộ nhớ đệm đầy hoặc quá hạn lưu)."
        " Các số đo này sẽ không bao giờ lên tới hệ thống; cần khôi phục đường truyền hoặc"
        " tăng dung lượng bộ nhớ đệm.",
        "the edge gateway of {ward} dropped {dropped} records (spool full or past its age"
        " limit). Those readings will never reach the platform; restore the uplink or give"
        " the spool more room.",
        "Đã hết: bộ gom biên của {ward} không còn bỏ bản ghi",
        "Over: the edge gateway of {ward} drops no more records",
    ),
)
EDGE_SILENT: Final = Rule(
    "edge-silent",
    "health",
    Subject.GATEWAY,
    _edge_silent,
    gateway(
        "Mất liên lạc với bộ gom biên",
        "Edge gateway unreachable",
        "không nhận được tin từ bộ gom biên của {ward} trong {silent}. Số đo của địa bàn được"
        " giữ tại bộ gom và sẽ gửi lên khi có kết nối lại; trong lúc này hệ thống không thấy"
        " được ngập, bão ở đây.",
        "nothing heard from the edge gateway of {ward} for {silent}. The ward's readings are"
        " held at the gateway and sent when the link returns; until then the platform cannot"
        " see floods or storms there.",
        "Đã kết nối lại với bộ gom biên của {ward}",
        "The edge gateway of {ward} is back online",
    ),
)

# Evaluation order: a rule reads only the results of rules before it (storm-risk of
# the station rules, district-flood and compound-flood of street-flood and
# canal-level, device-offline of mass-outage).
RULES: Final[tuple[Rule, ...]] = (
    WIND_CAP, GUST, SQUALL, PRESSURE_FALL, GUST_FRONT, HEAVY_RAIN, STORM_RISK,
    STUCK_SENSOR, SENSOR_SPIKE,
    STREET_FLOOD, DRAIN_RISING, LEVEL_SPIKE, CANAL_LEVEL, DISTRICT_FLOOD, COMPOUND_FLOOD,
    DAY_BURN, LAMP_OUT, POWER_DRIFT, LAMP_CYCLING, DIMMING_OPPORTUNITY, CABINET_ENERGY,
    MASS_OUTAGE, DEVICE_OFFLINE, OUT_OF_RANGE, LOW_BATTERY, WEAK_SIGNAL, CLOCK_SKEW,
    BROKER_QUEUE_DROP, INGEST_LAG, DEADLETTER_SURGE,
    EDGE_SPOOL_BACKLOG, EDGE_SPOOL_DROPS, EDGE_SILENT,
)  # fmt: skip
BY_NAME: Final[dict[str, Rule]] = {rule.name: rule for rule in RULES}
PLATFORM_RULES: Final = tuple(rule for rule in RULES if rule.subject is Subject.PLATFORM)
GATEWAY_RULES: Final = tuple(rule for rule in RULES if rule.subject is Subject.GATEWAY)


def _check(rules: tuple[Rule, ...]) -> None:
    if len(BY_NAME) != len(rules):
        raise RuntimeError("two rules share a name")
    for rule in rules:
        if not is_ident(rule.name):
            raise RuntimeError(f"rule name {rule.name!r} is not a topic-safe id")
        if rule.timing.for_readings and rule.subject is not Subject.WATER:
            # Only the water window tells which rows got a new reading.
            raise RuntimeError(f"{rule.name}: only water rules can count readings")


_check(RULES)
