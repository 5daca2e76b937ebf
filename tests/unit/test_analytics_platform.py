"""Platform health: the broker's drop counter and ingest's reports → state → rules → alerts."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from analytics.engine import Engine
from analytics.platform import COUNTER_SILENCE_MS, LAG_HOLD_MS, PlatformState
from analytics.thresholds import load_thresholds
from deltasense import health
from deltasense.health import HealthError, IngestReport
from deltasense.thresholds import Platform, Thresholds, ThresholdsError

P = Platform()
T0 = 1_700_000_000_000


def report(
    worker: int = 0, *, started: int = 1, dead: int = 0, lag: float | None = 0.5
) -> IngestReport:
    return IngestReport(
        worker=worker, started=started, ts=T0, messages=10, deadletters=dead, lag_s=lag
    )


# --- the state ------------------------------------------------------------------------------
def test_broker_drops_are_counted_from_the_first_sample_and_across_a_broker_restart() -> None:
    s = PlatformState()
    s.broker_dropped(T0, 5_000)  # dropped before we watched: the baseline, not an alert
    assert s.view(T0, P).dropped[0] == 0
    s.broker_dropped(T0 + 5_000, 5_040)
    assert s.view(T0 + 5_000, P).dropped[0] == 40
    s.broker_dropped(T0 + 10_000, 7)  # the broker restarted: its count began at 0
    assert s.view(T0 + 10_000, P).dropped[0] == 47
    later = T0 + 10_000 + round(P.broker_drop_window_s * 1000)
    assert s.view(later, P).dropped[0] == 0  # out of the window
    assert s.view(later, P).drop_watched[0]
    assert not s.view(T0 + 1_000, P).drop_watched[0]


def test_a_dropped_counter_silent_after_subscribing_was_zero_so_its_first_value_is_a_rise() -> None:
    quiet = PlatformState()
    quiet.counters_subscribed(0)
    quiet.broker_dropped(COUNTER_SILENCE_MS, 1_552)  # e.g. a restarted broker's fresh counter
    assert quiet.view(COUNTER_SILENCE_MS, P).dropped[0] == 1_552
    retained = PlatformState()
    retained.counters_subscribed(0)
    retained.broker_dropped(20, 500)  # the retained value, at once: drops from before
    retained.counters_subscribed(15_000)  # a reconnect resends it
    retained.broker_dropped(15_020, 500)
    assert retained.view(15_020, P).dropped[0] == 0
    retained.broker_dropped(20_000, 520)
    assert retained.view(20_000, P).dropped[0] == 20


def test_dead_letters_count_per_worker_and_a_restarted_worker_from_zero() -> None:
    s = PlatformState(workers=2)
    s.ingest_report(T0, report(0, dead=100))  # baseline
    s.ingest_report(T0, report(1, dead=3))
    s.ingest_report(T0 + 5_000, report(0, dead=160))  # +60
    s.ingest_report(T0 + 5_000, report(1, started=2, dead=30))  # restarted: +30
    per_min = s.view(T0 + 5_000, P).deadletters_per_min[0]
    assert per_min == pytest.approx(90 * 60 / P.deadletter_window_s)


def test_lag_is_the_worst_workers_report_or_its_silence() -> None:
    s = PlatformState(workers=2)
    assert math.isnan(s.view(T0, P).lag_s[0])  # nothing known: neither fires nor clears
    s.ingest_report(T0, report(0, lag=2.0))
    s.ingest_report(T0, report(1, lag=None))  # idle: wrote nothing
    assert s.view(T0, P).lag_s[0] == pytest.approx(2.0)
    s.ingest_report(T0 + 5_000, report(0, lag=None))  # wrote nothing since
    s.ingest_report(T0 + 5_000, report(1, lag=None))
    assert s.view(T0 + 5_000, P).lag_s[0] == pytest.approx(2.0)  # held LAG_HOLD_MS
    s.ingest_report(T0 + 90_000, report(0, lag=1.0))
    assert s.view(T0 + 90_000, P).lag_s[0] == pytest.approx(85.0)  # worker 1 silent 85 s
    s.workers = 1  # the setting retired worker 1
    assert s.view(T0 + 90_000, P).lag_s[0] == pytest.approx(1.0)


# --- the rules through the engine --------------------------------------------------------------
def _engine(thresholds: Thresholds) -> Engine:
    return Engine(thresholds, utc_offset_min=420)


def _fast(thresholds: Thresholds) -> Thresholds:
    """No keep-firing hold, so a clear resolves at once."""
    thresholds.alerting.keep_firing_for.rule_s.update(
        {"broker-queue-drop": 0, "ingest-lag": 0, "deadletter-surge": 0}
    )
    return thresholds


def test_a_broker_drop_raises_one_critical_platform_alert_until_a_clean_window(
    thresholds: Thresholds,
) -> None:
    engine = _engine(_fast(thresholds))
    engine.platform.broker_dropped(T0, 0)
    assert engine.evaluate(T0) == []
    engine.platform.broker_dropped(T0 + 5_000, 10_000)
    (event,) = engine.evaluate(T0 + 5_000)
    assert (event.rule, event.subject, event.kind, event.severity, event.state) == (
        "broker-queue-drop", "platform", "health", "critical", "firing",
    )  # fmt: skip
    assert "bỏ mất" in event.message.vi and "dropped" in event.message.en
    assert engine.evaluate(T0 + 60_000) == []  # still firing, nothing new
    window = round(thresholds.platform.broker_drop_window_s * 1000)
    (resolved,) = engine.evaluate(T0 + 5_000 + window + 1)
    assert (resolved.id, resolved.state) == (event.id, "resolved")


def test_ingest_lag_warns_then_goes_critical_and_clears(thresholds: Thresholds) -> None:
    engine = _engine(_fast(thresholds))
    p = thresholds.platform
    engine.platform.ingest_report(T0, report(lag=p.ingest_lag_s + 1))
    (warn,) = engine.evaluate(T0)
    assert (warn.rule, warn.severity) == ("ingest-lag", "warning")
    engine.platform.ingest_report(T0 + 1_000, report(lag=p.ingest_lag_critical_s + 1))
    (crit,) = engine.evaluate(T0 + 1_000)
    assert (crit.id, crit.severity) == (warn.id, "critical")
    engine.platform.ingest_report(T0 + 2_000, report(lag=0.3))
    assert engine.evaluate(T0 + 2_000) == []  # the late batch is held a while
    late = T0 + 1_000 + LAG_HOLD_MS + 1
    engine.platform.ingest_report(late, report(lag=0.3))
    (done,) = engine.evaluate(late)
    assert (done.id, done.state) == (warn.id, "resolved")


def test_a_dead_letter_surge_raises_a_warning(thresholds: Thresholds) -> None:
    engine = _engine(_fast(thresholds))
    p = thresholds.platform
    burst = math.ceil(p.deadletters_per_min * p.deadletter_window_s / 60)
    engine.platform.ingest_report(T0, report(dead=0))
    engine.platform.ingest_report(T0 + 5_000, report(dead=burst - 1))
    assert engine.evaluate(T0 + 5_000) == []  # just under the rate
    engine.platform.ingest_report(T0 + 10_000, report(dead=burst))
    (event,) = engine.evaluate(T0 + 10_000)
    assert (event.rule, event.severity, event.values["per_min"]) == (
        "deadletter-surge", "warning", pytest.approx(p.deadletters_per_min),
    )  # fmt: skip


def test_a_restarted_engine_adopts_an_open_platform_alert(thresholds: Thresholds) -> None:
    first = _engine(thresholds)
    first.platform.broker_dropped(T0, 0)
    first.platform.broker_dropped(T0 + 1, 3)
    (event,) = first.evaluate(T0 + 1)
    second = _engine(thresholds)
    assert second.restore([event]) == 1
    second.platform.broker_dropped(T0 + 10, 3)  # nothing new, but a window not yet watched
    assert second.evaluate(T0 + 10) == []
    assert [e.id for e in second.open_alerts()] == [event.id]


# --- thresholds and the wire ------------------------------------------------------------------
def test_platform_thresholds_must_be_ordered(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("[platform]\ningest_lag_s = 10.0\ningest_lag_clear_s = 20.0\n")
    with pytest.raises(ThresholdsError, match="ingest_lag_clear_s"):
        load_thresholds(path)


def test_reports_round_trip_and_hostile_ones_are_refused() -> None:
    r = report(3, dead=7, lag=1.25)
    assert health.decode(health.encode(r)) == r
    good = msgspec.json.decode(health.encode(r))
    for bad in (
        b"",
        b"not json",
        b"[]",
        msgspec.json.encode({**good, "deadletters": -1}),
        msgspec.json.encode({**good, "worker": "0"}),
        msgspec.json.encode({**good, "extra": 1}),
        msgspec.json.encode({**good, "lag_s": 1e12}),
        b'{"worker": 0}',
        b" " * (health.REPORT_MAX_BYTES + 1),
    ):
        with pytest.raises(HealthError):
            health.decode(bad)
    assert health.broker_counter(b"12345") == 12345
    for bad_count in (b"", b"-3", b"1.5", b"12 messages", b"\xff"):
        with pytest.raises(HealthError):
            health.broker_counter(bad_count)
    assert health.ingest_topic("baclieu", 2) == "baclieu/_health/ingest/2"
    with pytest.raises(ValueError, match="site"):
        health.ingest_topic("Bad/Site", 0)
