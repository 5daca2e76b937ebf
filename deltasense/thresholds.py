"""Rule thresholds: shipped defaults (``thresholds.toml``) plus an optional site override.

The one owner of the rule thresholds, shared: analytics judges the city with
them, and a ward's edge gateway (``edge/``) judges its ward's flood and storm
with the same numbers while its uplink is down.  Thresholds never live as
literals in rule code (docs/REFERENCE.md).  The defaults ship as package data
next to this module; ``settings.thresholds_file`` may name a TOML file that is
merged over them table by table, so a site overrides one key without copying
the rest.  Everything is validated once, at start-up, into frozen pydantic
models; a bad file raises :class:`ThresholdsError` whose message names the file
and the offending key.

Keys that name a rule (the ``rule_s`` tables) are checked against the rule names
the loader is given (``rules=``): analytics passes its registry
(:mod:`analytics.thresholds`), so a misspelt rule stops start-up instead of being
ignored.  The gateway reads no per-rule key and passes none.
"""

from __future__ import annotations

import difflib
import itertools
import re
import tomllib
from collections.abc import Collection
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from deltasense.contract import is_ident

DEFAULTS_RESOURCE: Final = "thresholds.toml"
DEFAULTS_SOURCE: Final = f"deltasense/{DEFAULTS_RESOURCE}"
_RULES: Final = "rules"  # validation context key: the rule names per-rule keys may use
_HHMM: Final = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class ThresholdsError(ValueError):
    """A thresholds file that cannot be read, parsed or validated."""


class _Model(BaseModel):
    # No NaN or ±inf anywhere: every comparison with NaN is false, so a NaN threshold
    # would pass the ordering checks and then never (or always) fire.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


Positive = Field(gt=0)
NonNegative = Annotated[float, Field(ge=0)]


def _known_rule(name: str, info: ValidationInfo) -> str:
    known = info.context.get(_RULES) if isinstance(info.context, dict) else None
    if known is None:
        return name  # a loader without a rule registry (the gateway) reads no per-rule key
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"no rule is called {name!r}{hint}")
    return name


RuleName = Annotated[str, AfterValidator(_known_rule)]


# --- storm ---------------------------------------------------------------------------
class Squall(_Model):
    rise_ms: float = Positive
    peak_ms: float = Positive
    min_s: float = Positive


class GustFront(_Model):
    """Surface signature of a gust front (docs/REFERENCE.md), compared over ``window_min``."""

    window_min: int = Field(default=10, ge=2)
    t_drop_c: float = Field(default=3.0, gt=0)
    wind_jump_ms: float = Field(default=5.0, gt=0)
    p_jump_hpa: float = Field(default=1.0, gt=0)
    rh_rise_pct: float = Field(default=10.0, gt=0)


class StormRisk(_Model):
    """City-wide risk: a level counts when ``quorum_fraction`` of the reporting
    stations (and at least ``quorum_min_stations``) agree on it or more.  Once raised,
    the city level clears only when fewer than ``release_fraction`` of them still see
    any storm sign: a deadband on the count of agreeing stations."""

    quorum_fraction: float = Field(default=0.5, gt=0, le=1)
    quorum_min_stations: int = Field(default=2, ge=1)
    release_fraction: float = Field(default=0.25, gt=0, le=1)

    @model_validator(mode="after")
    def _release_below_quorum(self) -> StormRisk:
        if self.release_fraction > self.quorum_fraction:
            raise ValueError("release_fraction must not exceed quorum_fraction")
        return self


class Storm(_Model):
    detrend_semidiurnal_pressure: bool
    semidiurnal_amplitude_hpa: float = Field(default=1.5, ge=0)
    semidiurnal_high_local_h: float = Field(default=10.0, ge=0, lt=12)
    pressure_fall_3h_hpa: float = Field(default=3.0, gt=0)
    pressure_fall_6h_hpa: float = Positive
    wind_mean_min: int = Field(default=10, ge=1)
    wind_mean_coverage: float = Field(default=0.5, ge=0, le=1)
    wind_cap_ms: dict[int, float]
    gust_warning_ms: float = Positive
    gust_critical_ms: float = Positive
    squall: Squall
    gust_front: GustFront = Field(default_factory=GustFront)
    risk: StormRisk = Field(default_factory=StormRisk)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.gust_critical_ms <= self.gust_warning_ms:
            raise ValueError("gust_critical_ms must be above gust_warning_ms")
        levels = sorted(self.wind_cap_ms)
        speeds = [self.wind_cap_ms[lv] for lv in levels]
        if any(b <= a for a, b in itertools.pairwise(speeds)):
            raise ValueError("wind_cap_ms must increase with the level")
        return self


# --- rain ----------------------------------------------------------------------------
class Rain24h(_Model):
    moderate: float = Positive
    heavy: float = Positive
    very_heavy: float = Positive


class Rain1h(_Model):
    moderate: float = Field(default=2.5, gt=0)  # below this a heavy-rain alert may clear
    heavy: float = Positive
    urban_warning: float = Positive
    violent: float = Positive

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.moderate >= self.heavy:
            raise ValueError("moderate must be below heavy (it is heavy-rain's clear threshold)")
        return self


class Rain(_Model):
    mm_24h: Rain24h
    mm_1h: Rain1h
    mm_3h_urban_critical: float = Positive
    day_start_local_h: int = Field(default=7, ge=0, le=23)


# --- flood ---------------------------------------------------------------------------
class CanalStation(_Model):
    """Alarm levels (m above the national gauge datum); ``None`` = not known yet."""

    bd1_m: float | None = None
    bd2_m: float | None = None
    bd3_m: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        known = [v for v in (self.bd1_m, self.bd2_m, self.bd3_m) if v is not None]
        if any(b <= a for a, b in itertools.pairwise(known)):
            raise ValueError("alarm levels must satisfy bd1_m < bd2_m < bd3_m")
        return self


class Flood(_Model):
    street_warning_mm: float = Positive
    street_critical_mm: float = Positive
    noise_floor_mm: float = Field(ge=0)
    max_rise_mm_per_min: float = Positive
    drain_rise_warning_mm_per_5min: float = Positive
    rise_fit_min: int = Field(default=15, ge=3)
    spike_mad_k: float = Field(default=5.0, gt=0)
    spike_min_mm: float = Field(default=50.0, ge=0)
    compound_canal_margin_m: float = Field(default=0.3, ge=0)
    district_min_drains: int = Field(default=2, ge=1)
    spike_jump_mm: float = Field(default=250.0, gt=0)
    canal_stations: dict[str, CanalStation] = Field(default_factory=dict)
    # Levels for canal stations (meta ``station: canal``) not in ``canal_stations``;
    # None = such stations are not judged.
    canal_default: CanalStation | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.street_critical_mm <= self.street_warning_mm:
            raise ValueError("street_critical_mm must be above street_warning_mm")
        if self.noise_floor_mm >= self.street_warning_mm:
            raise ValueError("noise_floor_mm must be below street_warning_mm")
        for device in self.canal_stations:
            if not is_ident(device):
                raise ValueError(f"canal station {device!r} is not a valid device id")
        return self


# --- lighting and health -------------------------------------------------------------
class DayBurn(_Model):
    lux_above: float = Field(ge=0)
    power_pct_of_rated_above: float = Field(ge=0, le=100)
    for_min: float = Positive
    sun_above_deg: float = Field(default=3.0, ge=-0.833, le=30)


class LampOut(_Model):
    power_pct_of_rated_below: float = Field(ge=0, le=100)
    for_min: float = Positive
    sun_below_deg: float = Field(default=-3.0, ge=-18, le=0)
    min_w_when_unrated: float = Field(default=5.0, ge=0)


class Cabinet(_Model):
    deviation_pct: float = Field(default=30.0, gt=0)
    min_baseline_wh: float = Field(default=100.0, ge=0)


class Lighting(_Model):
    photocell_on_lux: float = Field(ge=0)
    photocell_off_lux: float = Field(ge=0)
    day_burn: DayBurn
    lamp_out: LampOut
    power_drift_pct: float = Positive
    cycling_switches_per_h: int = Field(ge=1)
    dim_profile: dict[str, float]
    dim_margin_pct: float = Field(default=5.0, ge=0)
    full_brightness_during_storm_or_flood: bool
    full_brightness_storm_risk: int = Field(default=3, ge=1, le=5)
    # [design] A full-brightness order is a lease: the lamp holds 100 % this long, the
    # engine renews it every third of it while the alert lasts, and when the renewals
    # stop (alert over, platform or network gone) the lamp returns to its photocell
    # and dimming profile on its own.
    full_brightness_lease_s: int = Field(default=1800, ge=60, le=86400)
    tariff_vnd_per_kwh: float = Field(ge=0)
    drift_min_on_readings: int = Field(default=10, ge=1)
    # [design] the median over this span is compared with rated power: 12 readings of a
    # 5-min lamp, so one bad reading cannot raise it (meters: 2–5 %, ANSI C136.52)
    drift_window_min: int = Field(default=60, ge=5, le=120)
    rated_w: float | None = Field(default=None, gt=0)  # fleet default; None = learned
    lamps_rated_w: dict[str, float] = Field(default_factory=dict)
    cabinet: Cabinet = Field(default_factory=Cabinet)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.photocell_off_lux <= self.photocell_on_lux:
            raise ValueError("photocell_off_lux must be above photocell_on_lux")
        for at, level in self.dim_profile.items():
            if not _HHMM.fullmatch(at):
                raise ValueError(f"dim_profile key {at!r} is not a HH:MM time")
            if not 0 <= level <= 100:
                raise ValueError(f"dim_profile[{at!r}] = {level} is not a 0-100 level")
        return self


class Stuck(_Model):
    """Less change than this over ``window_min`` is a stuck sensor (WMO AWS practice)."""

    window_min: int = Field(default=60, ge=2)
    min_readings: int = Field(default=30, ge=2)
    t_c: float = 0.1
    rh_pct: float = 1.0
    p_hpa: float = 0.1
    wind_ms: float = 0.5
    wind_dir_deg: float = 10.0
    # Humidity at or above this all window long is saturation (rain, fog), not a stuck sensor.
    rh_saturated_pct: float = Field(default=99.0, gt=0, le=100)


class Step(_Model):
    """Largest plausible change per minute (WMO AWS step test)."""

    t_c: float = 3.0
    rh_pct: float = 15.0
    p_hpa: float = 2.0
    wind_ms: float = 20.0


class Health(_Model):
    offline_after_missed_intervals: int = Field(ge=1)
    mass_outage_fraction_of_district: float = Field(gt=0, le=1)
    mass_outage_min_devices: int = Field(default=3, ge=1)
    mass_outage_min_silent: int = Field(default=2, ge=1)
    mass_outage_window_s: float = Field(default=900.0, gt=0)
    default_interval_s: float = Field(default=60.0, gt=0)
    stuck: Stuck = Field(default_factory=Stuck)
    step_per_min: Step = Field(default_factory=Step)
    spike_window_min: int = Field(default=30, ge=3)
    qc_window_min: int = Field(default=15, ge=1)
    qc_min_flagged: int = Field(default=3, ge=1)
    low_battery_v: float = Field(default=3.3, ge=0)
    battery_deadband_v: float = Field(default=0.1, ge=0)
    weak_signal_dbm: float = Field(default=-110.0, le=0)
    signal_deadband_db: float = Field(default=5.0, ge=0)
    clock_skew_s: float = Field(default=120.0, gt=0)


class Platform(_Model):
    """Platform health (analytics/rules/platform.py); a site file need not name them."""

    broker_drop_window_s: float = Field(default=300.0, gt=0)
    broker_dropped_min: int = Field(default=1, ge=1)
    ingest_lag_s: float = Field(default=60.0, gt=0)
    ingest_lag_clear_s: float = Field(default=15.0, gt=0)
    ingest_lag_critical_s: float = Field(default=300.0, gt=0)
    deadletter_window_s: float = Field(default=300.0, gt=0)
    deadletters_per_min: float = Field(default=30.0, gt=0)
    # District edge gateways (analytics/rules/gateways.py)
    edge_backlog_s: float = Field(default=600.0, gt=0)
    edge_backlog_clear_s: float = Field(default=120.0, gt=0)
    edge_backlog_critical_s: float = Field(default=3600.0, gt=0)
    edge_drop_window_s: float = Field(default=900.0, gt=0)
    edge_dropped_min: int = Field(default=1, ge=1)
    edge_silent_intervals: float = Field(default=3.0, ge=1)
    edge_silent_critical_s: float = Field(default=3600.0, gt=0)
    edge_status_interval_s: float = Field(default=10.0, gt=0)  # a status without interval_s

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.ingest_lag_clear_s < self.ingest_lag_s <= self.ingest_lag_critical_s:
            raise ValueError(
                "platform: need ingest_lag_clear_s < ingest_lag_s <= ingest_lag_critical_s"
            )
        if not self.edge_backlog_clear_s < self.edge_backlog_s <= self.edge_backlog_critical_s:
            raise ValueError(
                "platform: need edge_backlog_clear_s < edge_backlog_s <= edge_backlog_critical_s"
            )
        return self


# --- alerting ------------------------------------------------------------------------
class ForDurations(_Model):
    storm_s: float = Field(ge=0)
    lighting_s: float = Field(ge=0)
    flood_readings: int = Field(ge=1, description="Consecutive readings over the threshold.")
    health_s: float = Field(default=0, ge=0)
    rule_s: dict[RuleName, NonNegative] = Field(default_factory=dict)  # per-rule overrides

    def seconds(self, rule: str, kind: str) -> float:
        if rule in self.rule_s:
            return self.rule_s[rule]
        return {"storm": self.storm_s, "energy": self.lighting_s, "health": self.health_s}.get(
            kind, 0.0
        )


class KeepFiringFor(_Model):
    default_s: float = Field(ge=0)
    flood_s: float = Field(ge=0)
    rule_s: dict[RuleName, NonNegative] = Field(default_factory=dict)  # per-rule overrides

    def seconds(self, rule: str, kind: str) -> float:
        if rule in self.rule_s:
            return self.rule_s[rule]
        return self.flood_s if kind == "flood" else self.default_s


class Deadband(_Model):
    level_mm: float = Field(ge=0)
    wind_ms: float = Field(ge=0)
    p_hpa: float = Field(ge=0)


class Alerting(_Model):
    for_: ForDurations = Field(alias="for")
    keep_firing_for: KeepFiringFor
    deadband: Deadband


# --- per-district and per-station overrides -----------------------------------------
# Only limits that rules compare element-wise with one value per sensor can differ
# between districts or stations (deltasense/rulekernels/limits.py turns them into per-row
# arrays); pairs come together so warning < critical holds for every row.
class FloodOverride(_Model):
    street_warning_mm: float = Positive
    street_critical_mm: float = Positive

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.street_warning_mm >= self.street_critical_mm:
            raise ValueError("street_warning_mm must be below street_critical_mm")
        return self


class StormOverride(_Model):
    gust_warning_ms: float = Positive
    gust_critical_ms: float = Positive

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.gust_warning_ms >= self.gust_critical_ms:
            raise ValueError("gust_warning_ms must be below gust_critical_ms")
        return self


class LightingOverride(_Model):
    # the drift rule clears 2 points under the limit: keep the limit above that
    power_drift_pct: float = Field(gt=2)


class Override(_Model):
    """Limits for one district or one station (a device id); a station's override wins
    over its district's, which wins over the site's."""

    district: str | None = None
    station: str | None = None
    flood: FloodOverride | None = None
    storm: StormOverride | None = None
    lighting: LightingOverride | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if (self.district is None) == (self.station is None):
            raise ValueError("an override names exactly one of district or station")
        subject = self.district or self.station or ""
        if not is_ident(subject):
            raise ValueError(f"{subject!r} is not a district or device id")
        if self.flood is None and self.storm is None and self.lighting is None:
            raise ValueError(f"the override for {subject!r} sets nothing")
        return self


class Thresholds(_Model):
    storm: Storm
    rain: Rain
    flood: Flood
    lighting: Lighting
    health: Health
    alerting: Alerting
    platform: Platform = Field(default_factory=Platform)
    overrides: list[Override] = Field(default_factory=list)

    @model_validator(mode="after")
    def _deadband_fits(self) -> Self:
        warnings = [self.flood.street_warning_mm]
        warnings += [o.flood.street_warning_mm for o in self.overrides if o.flood is not None]
        if self.alerting.deadband.level_mm >= min(warnings):
            raise ValueError(
                "alerting.deadband.level_mm must be below every street_warning_mm "
                "(site and overrides)"
            )
        return self

    @model_validator(mode="after")
    def _one_override_per_subject(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for o in self.overrides:
            key = ("district", o.district) if o.district else ("station", o.station or "")
            if key in seen:
                raise ValueError(f"two overrides for {key[0]} {key[1]!r}")
            seen.add(key)
        return self


# --- loading -------------------------------------------------------------------------
def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged over ``base``: tables recursively, everything else replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"{source}: not valid TOML: {exc}") from exc


def default_document() -> dict[str, Any]:
    text = (
        resources.files(__package__ or "deltasense")
        .joinpath(DEFAULTS_RESOURCE)
        .read_text(encoding="utf-8")
    )
    return _read_toml(text, DEFAULTS_SOURCE)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        # A dict key's error is located at the key itself, plus a "[key]" marker.
        loc = [str(part) for part in error["loc"] if part != "[key]"]
        key = ".".join(loc) or "(top level)"
        problems.append(f"{key}: {error['msg']}")
    return "; ".join(problems)


def from_document(
    document: dict[str, Any], source: str = "thresholds", *, rules: Collection[str] | None = None
) -> Thresholds:
    """``document`` validated; ``rules``: the names a per-rule key may use (None: any)."""
    try:
        context = None if rules is None else {_RULES: sorted(rules)}
        return Thresholds.model_validate(document, context=context)
    except ValidationError as exc:
        raise ThresholdsError(f"{source}: {_describe(exc)}") from exc


def load_thresholds(
    path: Path | None = None, *, rules: Collection[str] | None = None
) -> Thresholds:
    """The shipped defaults, with the TOML file at ``path`` merged over them if given."""
    document = default_document()
    source = DEFAULTS_SOURCE
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ThresholdsError(f"{path}: cannot read thresholds file: {exc}") from exc
        document = merge(document, _read_toml(text, str(path)))
        source = str(path)
    return from_document(document, source, rules=rules)
