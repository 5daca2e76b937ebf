"""The engine with every rule family: readings in, alerts and lamp orders out, over
counter resets, duplicates, late readings, gaps and silence."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.engine import Engine
from analytics.rules import rain
from analytics.ruleset import BY_NAME, RULES
from analytics.thresholds import load_thresholds
from deltasense.alerts import AlertEvent, Message
from deltasense.contract import Kind, Reading
from deltasense.lifecycle import Lifecycle, MessageContext, RuleSpec
from deltasense.rulekernels import storm
from deltasense.rulekernels.limits import StormLimits

EngineFactory = Callable[..., Engine]  # the make_engine fixture (conftest.py)

MIN = 60_000
T0 = 1_800_000_000_000 - 1_800_000_000_000 % MIN


def reading(kind: Kind, device: str, ts: int, *, district: str = "p", boot: int = 1, **fields: float | bool) -> Reading:  # fmt: skip
    return Reading(
        site="s", district=district, kind=kind, device=device, ts_ms=ts, seq=0, boot=boot,
        fields=dict(fields),
    )  # fmt: skip


def rules(events: Iterable[AlertEvent]) -> list[tuple[str, str, str]]:
    return [(e.rule, e.subject, e.state) for e in events]


def test_heavy_rain_across_a_counter_reset_and_duplicates(make_engine: EngineFactory) -> None:
    engine = make_engine()
    readings = []
    total, boot = 500.0, 1
    for m in range(60):
        if m == 30:  # the station reboots: its counter starts again from 0
            total, boot = 0.0, 2
        total += 0.5  # 30 mm in the hour: over the 25 mm/h urban warning
        readings.append(reading(Kind.WEATHER, "ws-1", T0 + m * MIN, boot=boot, rain_mm_total=total))
    stats = engine.ingest(readings + readings[-5:])  # the last five redelivered
    assert stats.counter_resets == 1
    events = engine.evaluate(T0 + 60 * MIN)
    (rain,) = [e for e in events if e.rule == "heavy-rain"]
    assert rain.severity == "warning"
    # 59 increments of 0.5 mm lie inside the hour's window, despite the reset
    assert rain.values["rain_1h_mm"] == pytest.approx(29.5, abs=0.01)
    assert "Mưa lớn" in rain.message.vi and "Heavy rain" in rain.message.en


def test_storm_force_wind_fires_with_its_cap_and_city_risk_needs_two_stations(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    batch = []
    for m in range(12):
        batch.append(reading(Kind.WEATHER, "ws-1", T0 + m * MIN, wind_ms=18.0, gust_ms=20.0))
        batch.append(reading(Kind.WEATHER, "ws-2", T0 + m * MIN, wind_ms=4.0, gust_ms=6.0))
    engine.ingest(batch)
    events = engine.evaluate(T0 + 12 * MIN)
    cap = next(e for e in events if e.rule == "wind-cap")
    assert (cap.subject, cap.values["cap"], cap.severity, cap.risk_level) == (
        "ws-1",
        8,
        "critical",
        3,
    )
    assert [e for e in events if e.rule == "storm-risk"] == []  # 1 of 2 stations
    late = [reading(Kind.WEATHER, "ws-2", T0 + m * MIN + 30_000, wind_ms=19.0) for m in range(12)]
    engine.ingest(late)  # late readings land in their own slots
    events = engine.evaluate(T0 + 12 * MIN + 1)
    (risk,) = [e for e in events if e.rule == "storm-risk"]
    assert (risk.subject, risk.risk_level, risk.severity) == ("city", 3, "critical")
    # lamps everywhere are ordered to full brightness for a 30-min lease
    engine.ingest([reading(Kind.LAMP, "lp-1", T0 + 12 * MIN, on=True, dim_pct=50.0)])
    engine.evaluate(T0 + 12 * MIN + 2)
    (order,) = engine.take_commands()
    assert (order.device, order.name, order.args, order.reason) == (
        "lp-1",
        "set_dim",
        {"pct": 100, "duration_s": 1800},
        risk.id,
    )
    engine.evaluate(T0 + 12 * MIN + 3)
    assert engine.take_commands() == []  # not again while the lease is fresh
    engine.evaluate(T0 + 21 * MIN)
    assert engine.take_commands() == []
    # a third of the lease later, the alert still open: renewed
    events = engine.evaluate(T0 + 22 * MIN + 2)
    assert ("storm-risk", "city", "resolved") not in rules(events)
    (renewal,) = engine.take_commands()
    assert (renewal.device, renewal.args) == ("lp-1", {"pct": 100, "duration_s": 1800})


def test_flood_orders_full_brightness_in_its_district_only(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.ingest(
        [
            reading(Kind.LAMP, "lp-a", T0, district="p", on=True, dim_pct=50.0),
            reading(Kind.LAMP, "lp-b", T0, district="q", on=True, dim_pct=50.0),
            reading(Kind.WATER, "drain-1", T0, district="p", level_cm=12.0),
        ]
    )
    events = engine.evaluate(T0 + 1)
    assert ("street-flood", "drain-1", "firing") in rules(events)
    assert [c.device for c in engine.take_commands()] == ["lp-a"]
    engine.ingest([reading(Kind.WATER, "drain-1", T0 + MIN, district="p", level_cm=0.0)])
    assert ("street-flood", "drain-1", "resolved") in rules(engine.evaluate(T0 + MIN + 1))
    engine.ingest([reading(Kind.WATER, "drain-1", T0 + 2 * MIN, district="p", level_cm=12.0)])
    engine.evaluate(T0 + 2 * MIN + 1)
    assert [c.device for c in engine.take_commands()] == ["lp-a"]  # a new alert orders again


def test_silence_offline_then_back_and_clock_skew(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.set_meta("wl-1", "p", Kind.WATER, interval_s=60)
    engine.ingest([reading(Kind.WATER, "wl-1", T0, level_cm=0.0)])
    assert engine.evaluate(T0 + 3 * MIN) == []
    (off,) = engine.evaluate(T0 + 3 * MIN + 1)
    assert (off.rule, off.subject, off.kind) == ("device-offline", "wl-1", "health")
    engine.ingest([reading(Kind.WATER, "wl-1", T0 + 4 * MIN, level_cm=0.0)])
    assert rules(engine.evaluate(T0 + 4 * MIN)) == [("device-offline", "wl-1", "resolved")]
    # a clock 10 min behind the arrival time
    engine.ingest(
        [reading(Kind.WATER, "wl-1", T0 + 5 * MIN, level_cm=0.0)], arrival_ms=T0 + 15 * MIN
    )
    skew = [e for e in engine.evaluate(T0 + 15 * MIN) if e.rule == "clock-skew"]
    assert skew and skew[0].values["skew_s"] == -600


def test_a_planned_stop_is_not_an_outage_but_a_last_will_is(make_engine: EngineFactory) -> None:
    """Ten drains of one ward stop: by their own goodbye (``offline`` with ``ts``, as
    the firmware and the simulator send on a clean stop) nothing is raised, not
    even when they stay silent; by their Last Will (no ``ts``) each is offline and
    the ward has a mass outage."""
    for planned in (True, False):
        engine = make_engine()
        drains = [f"wl-{i}" for i in range(10)]
        for d in drains:
            engine.set_meta(d, "p", Kind.WATER, interval_s=60)
        engine.ingest([reading(Kind.WATER, d, T0, level_cm=0.0) for d in drains])
        assert engine.evaluate(T0 + 1) == []
        for d in drains:
            engine.set_status(d, "p", Kind.WATER, "offline", planned=planned)
        later = rules(engine.evaluate(T0 + 2)) + rules(engine.evaluate(T0 + 30 * MIN))
        if planned:
            assert later == []
        else:
            assert ("mass-outage", "p", "firing") in later
        # A stopped drain that reports again is judged by its silence once more.
        engine.ingest([reading(Kind.WATER, "wl-0", T0 + 31 * MIN, level_cm=0.0)])
        engine.evaluate(T0 + 31 * MIN)
        silent = rules(engine.evaluate(T0 + 35 * MIN))
        if planned:
            assert ("device-offline", "wl-0", "firing") in silent


def test_every_rule_has_a_valid_topic_level_and_messages(make_engine: EngineFactory) -> None:
    from deltasense.contract import is_ident

    engine = make_engine()
    assert engine.rules == tuple(rule.name for rule in RULES)
    for rule in RULES:
        assert is_ident(rule.name)
        for state in ("firing", "resolved"):
            text = rule.message(MessageContext("dev-1", "phuong-1", "warning", state, {}))
            assert text.vi and text.en and text.vi != text.en, rule.name
    assert engine.memory_bytes() > 0


def test_restore_adopts_district_and_city_alerts(make_engine: EngineFactory) -> None:
    engine = make_engine()
    base = {
        "kind": "storm", "severity": "critical", "state": "firing", "started": T0, "updated": T0,
        "message": Message(vi="", en=""),
    }  # fmt: skip
    city = AlertEvent(
        id="al-c", rule="storm-risk", subject="city", district="", risk_level=3, **base
    )  # type: ignore[arg-type]
    assert engine.restore([city]) == 1
    assert [e.id for e in engine.open_alerts()] == ["al-c"]


# --- lifecycle property: noise inside the deadband never flaps ------------------------------
@settings(max_examples=200, deadline=None)
@given(
    noise=st.lists(st.floats(min_value=-0.999, max_value=3.0), min_size=1, max_size=60),
    for_ms=st.sampled_from([0, 60_000, 600_000]),
    keep_ms=st.sampled_from([0, 900_000]),
)
def test_noise_inside_the_deadband_never_flaps(
    noise: list[float], for_ms: int, keep_ms: int
) -> None:
    """A value that fired at the limit (10) and then wanders inside
    (limit − deadband, limit + 3] stays one open alert: no resolve, no second id."""
    limit, deadband = 10.0, 1.0
    lc = Lifecycle(
        RuleSpec("r", "storm", for_ms=for_ms, keep_firing_for_ms=keep_ms), BY_NAME["gust"].message
    )
    ids: set[str] = set()
    states: list[str] = []
    values = [limit + 1] * 11 + [limit + x for x in noise]  # held long enough to fire
    for i, v in enumerate(values):
        x = np.asarray([v], np.float32)
        events = lc.step(
            condition=x >= limit, clear=x < limit - deadband, severity=np.asarray([1], np.int8),
            fresh=np.asarray([True]), now_ms=T0 + i * MIN, subjects=["s"], districts=["p"],
            values={"v": x},
        )  # fmt: skip
        for e in events:
            ids.add(e.id)
            states.append(e.state)
        assert len(lc.open_alerts()) <= 1
    assert states == ["firing"] and len(ids) == 1


def test_clock_skew_without_an_arrival_clock_uses_the_batch(make_engine: EngineFactory) -> None:
    engine = make_engine()
    batch = [reading(Kind.WATER, f"wl-{i}", T0 + i * 1000, level_cm=0.0) for i in range(6)]
    batch.append(reading(Kind.WATER, "wl-late", T0 - 10 * MIN, level_cm=0.0))
    engine.ingest(batch)
    skew = [e for e in engine.evaluate(T0 + MIN) if e.rule == "clock-skew"]
    assert [e.subject for e in skew] == ["wl-late"]


def test_lamp_out_waits_its_own_for_then_fires(make_engine: EngineFactory) -> None:
    engine = make_engine()
    night = T0 - T0 % (24 * 3_600_000) + 16 * 3_600_000  # 23:00 local
    for m in range(12):
        engine.ingest(
            [
                reading(
                    Kind.LAMP, "lp-1", night + m * MIN, on=True, dim_pct=100.0, power_w=0.4, lux=1.0
                )
            ]
        )
        fired = [e for e in engine.evaluate(night + m * MIN + 1) if e.rule == "lamp-out"]
        assert bool(fired) == (m == 10), m  # lighting.lamp_out.for_min = 10


def test_squall_judges_complete_minutes_whenever_the_rules_run(make_engine: EngineFactory) -> None:
    """The squall is judged on complete minutes only, so it does not matter whether the
    rules run before a minute's reading arrived (a ticking service early in the
    minute) or after it (a backtest at the minute's last instant)."""

    def squall_minute(before: bool) -> int | None:
        engine = make_engine()
        for m in range(14):
            wind = 3.0 if m < 10 else 13.0  # rose by 10 m/s to over 11 m/s at minute 10
            events = engine.evaluate(T0 + m * MIN + 2_000) if before else []
            engine.ingest([reading(Kind.WEATHER, "ws-1", T0 + m * MIN + 5_000, wind_ms=wind)])
            events += [] if before else engine.evaluate(T0 + (m + 1) * MIN - 1)
            if any(e.rule == "squall" for e in events):
                return m
        return None

    # minute 10 is complete from minute 11 on, either way
    assert squall_minute(before=True) == squall_minute(before=False) == 11


@settings(max_examples=150, deadline=None)
@given(
    noise=st.lists(st.floats(min_value=-0.99, max_value=5.0), min_size=1, max_size=60),
    lull=st.integers(min_value=0, max_value=29),
)
def test_gust_noise_and_short_lulls_never_flap(noise: list[float], lull: int) -> None:
    """The shipped gust rule and its lifecycle: gusts that fired at cấp 8 and then
    wander inside the deadband, with a lull of calm shorter than keep_firing_for
    (30 min), stay one alert."""
    t = load_thresholds()
    gust = BY_NAME["gust"]
    lc = Lifecycle(gust.spec(t), gust.message)
    limits = StormLimits(t.storm.gust_warning_ms, t.storm.gust_critical_ms)
    limit = t.storm.gust_warning_ms
    gusts = [limit + 1] * 3 + [limit + x for x in noise] + [5.0] * lull + [limit + 2]
    states: list[str] = []
    for i, g in enumerate(gusts):
        r = storm.gust_rule(np.asarray([g], np.float32), limits, t.alerting.deadband.wind_ms)
        events = lc.step(
            condition=r.condition, clear=r.clear, severity=r.severity, fresh=np.asarray([True]),
            now_ms=T0 + i * MIN, subjects=["ws"], districts=["p"], values=r.values, risk=r.risk,
        )  # fmt: skip
        states += [e.state for e in events]
        assert len(lc.open_alerts()) == 1
    assert "resolved" not in states


@settings(max_examples=150, deadline=None)
@given(rates=st.lists(st.floats(min_value=2.5, max_value=7.59), min_size=1, max_size=120))
def test_rain_hovering_at_the_heavy_limit_on_a_heavy_day_never_flaps(rates: list[float]) -> None:
    """Heavy day (≥ 51 mm) and an hourly rate wandering just under the 7.6 mm/h it
    fired at: inside the hysteresis band down to 2.5 mm/h nothing resolves."""
    t = load_thresholds()
    lc = Lifecycle(
        RuleSpec("heavy-rain", "storm", keep_firing_for_ms=900_000), BY_NAME["heavy-rain"].message
    )
    series = [8.0, *rates]
    opened: list[str] = []
    for i, r1 in enumerate(series):
        one = np.asarray([r1], np.float32)
        day = np.asarray([60.0], np.float32)
        r = rain.heavy_rain_rule(one, np.asarray([20.0], np.float32), day, day, t.rain)
        events = lc.step(
            condition=r.condition, clear=r.clear, severity=r.severity, fresh=np.asarray([True]),
            now_ms=T0 + i * MIN, subjects=["ws"], districts=["p"], values=r.values, risk=r.risk,
        )  # fmt: skip
        opened += [e.id for e in events]
        assert len(lc.open_alerts()) == 1
    assert len(opened) == 1


def test_a_drain_echo_raises_a_level_spike_not_a_flood(make_engine: EngineFactory) -> None:
    engine = make_engine()
    levels = [1.0, 1.0, 55.0, 1.0, 1.0]  # one reading 54 cm up, 5-min reports
    events: list[AlertEvent] = []
    for i, level in enumerate(levels):
        ts = T0 + i * 5 * MIN
        engine.ingest([reading(Kind.WATER, "wl-1", ts, level_cm=level)])
        events += engine.evaluate(ts + 1)
    fired = [(e.rule, e.subject) for e in events if e.state == "firing"]
    assert fired == [("level-spike", "wl-1")]  # the flood rules never saw 55 cm
    (spike,) = [e for e in events if e.rule == "level-spike"]
    assert spike.kind == "health" and spike.values["spike_mm"] == 540.0
    assert "mực nước" in spike.message.vi and "Water-level sensor spike" in spike.message.en
