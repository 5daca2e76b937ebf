"""Scoring on hand-made alerts and labels."""

from __future__ import annotations

import pytest

from backtest.scenarios.labels import CITY, Label
from backtest.scoring import Alert, fold, matches, score
from deltasense.alerts import AlertEvent, Message

MIN = 60_000
TOL = 15 * MIN


def alert(
    rule: str,
    subject: str,
    start_min: int,
    *,
    kind: str = "flood",
    district: str = "p1",
    minutes: int = 30,
) -> Alert:
    return Alert(
        f"{rule}-{subject}-{start_min}",
        kind,
        rule,
        subject,
        district,
        "warning",
        start_min * MIN,
        (start_min + minutes) * MIN,
    )


def label(subject: str, start_min: int, end_min: int, **kw: object) -> Label:
    args: dict[str, object] = {"what": "street-flood", "kind": "flood", "district": "p1", **kw}
    return Label(
        args.pop("what"),  # type: ignore[arg-type]
        args.pop("kind"),  # type: ignore[arg-type]
        subject,
        args.pop("district"),  # type: ignore[arg-type]
        start_min * MIN,
        end_min * MIN,
        **args,  # type: ignore[arg-type]
    )


def test_detected_missed_false_and_delays() -> None:
    labels = [label("d1", 100, 160), label("d2", 100, 130), label("d3", 300, 320)]
    alerts = [
        alert("street-flood", "d1", 102),  # detects d1, 2 min late
        alert("street-flood", "d2", 95),  # detects d2, 5 min early (inside the tolerance)
        alert("street-flood", "d4", 100),  # nobody flooded at d4: false
        alert("street-flood", "d3", 340),  # too late for d3 (320 + 15 < 340): false, d3 missed
    ]
    out = score(alerts, labels, TOL)
    flood = out.kinds["flood"]
    assert (flood.events, flood.detected, flood.missed) == (3, 2, 1)
    assert (flood.alerts, flood.false_alerts, flood.flaps) == (4, 2, 0)
    assert flood.precision == pytest.approx(0.5) and flood.recall == pytest.approx(2 / 3)
    assert sorted(flood.delays_s) == [-300.0, 120.0]
    assert flood.delay_median_s == pytest.approx(-90.0) and flood.delay_worst_s == 120.0
    assert out.label_delay_s == [120.0, -300.0, None]
    assert [bool(m) for m in out.alert_matches] == [True, True, False, False]
    assert out.kinds["storm"].precision is None and out.kinds["storm"].recall is None


def test_flaps_are_repeat_alerts_of_one_rule_and_subject_in_one_episode() -> None:
    labels = [label("d1", 100, 200), label("d1", 400, 450)]
    alerts = [
        alert("street-flood", "d1", 101),
        alert("street-flood", "d1", 120),  # the same episode again: a flap
        alert("street-flood", "d1", 150),  # and again
        alert("drain-rising", "d1", 99),  # another rule on the same episode: no flap
        alert("street-flood", "d1", 401),  # the next episode: no flap
    ]
    out = score(alerts, labels, TOL)
    assert out.kinds["flood"].flaps == 2
    assert out.rules["street-flood"].flaps == 2 and out.rules["drain-rising"].flaps == 0
    assert out.alert_flaps == [False, True, True, False, False]
    assert out.kinds["flood"].detected == 2 and out.kinds["flood"].false_alerts == 0
    # Per rule: the family's labels; drain-rising caught only the first.
    assert (out.rules["drain-rising"].events, out.rules["drain-rising"].detected) == (2, 1)


def test_a_tolerated_envelope_joins_episodes_only_for_alerts_outside_the_expected_ones() -> None:
    water = label("d1", 90, 500, what="street-water", expected=False)  # wet street all along
    labels = [water, label("d1", 100, 150), label("d1", 300, 350)]
    two_floods = [alert("street-flood", "d1", 101), alert("street-flood", "d1", 301)]
    assert score(two_floods, labels, TOL).alert_flaps == [False, False]
    # a re-raise between the two floods, inside the wet-street envelope only: a flap
    # of the first episode; the next flood is its own episode again
    blip = [*two_floods[:1], alert("street-flood", "d1", 200), two_floods[1]]
    assert score(blip, labels, TOL).alert_flaps == [False, True, False]
    # a lead-up alert (tolerated only) resolved and re-raised once the event starts: a flap
    lead = [alert("street-flood", "d1", 80, minutes=10), alert("street-flood", "d1", 101)]
    out = score(lead, labels, TOL)
    assert out.alert_flaps == [False, True] and out.kinds["flood"].flaps == 1


def test_scopes_kinds_and_tolerated_labels() -> None:
    outage = label(
        "p2", 100, 250, what="mass-outage", kind="health", district="p2", scope="district"
    )
    storm = label(CITY, 50, 500, what="city-storm", kind="storm", district="", scope="city")
    cabinet = label("mt-1", 100, 200, what="cabinet-anomaly", kind="energy", expected=False)
    drain = label("d1", 100, 200)
    assert matches(alert("device-offline", "lp-9", 110, kind="health", district="p2"), outage)
    assert matches(alert("mass-outage", "p2", 110, kind="health", district="p2"), outage)
    assert not matches(alert("device-offline", "lp-9", 110, kind="health", district="p3"), outage)
    assert matches(alert("gust", "ws-1", 60, kind="storm", district="p7"), storm)
    assert not matches(alert("gust", "ws-1", 60, kind="flood"), storm)  # kinds must agree
    assert matches(alert("district-flood", "p1", 120, district="p1"), drain)  # roll-up
    assert not matches(alert("street-flood", "d2", 120), drain)
    assert matches(alert("x", "d1", 100 - 15, minutes=5), drain) and not matches(
        alert("x", "d1", 100 - 16, minutes=5), drain
    )
    # A tolerated label makes an alert true but is never an event to detect.
    out = score([alert("cabinet-baseline", "mt-1", 120, kind="energy")], [cabinet], TOL)
    assert out.kinds["energy"].events == 0 and out.kinds["energy"].false_alerts == 0
    assert out.kinds["energy"].precision == 1.0 and out.label_delay_s == [None]


def test_no_alerts_and_no_labels() -> None:
    out = score([], [], TOL)
    assert all(s.events == s.alerts == 0 for s in out.kinds.values())
    assert set(out.kinds) == {"storm", "flood", "energy", "health"}


def _event(state: str, severity: str, updated: int, ended: int | None = None) -> AlertEvent:
    return AlertEvent(
        id="al-1",
        kind="flood",
        rule="street-flood",
        subject="d1",
        district="p1",
        severity=severity,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        started=1000,
        updated=updated,
        ended=ended,
        message=Message(vi="", en=""),
    )


def test_fold_keeps_the_worst_severity_and_the_end() -> None:
    events = [
        _event("firing", "warning", 1000),
        _event("firing", "critical", 2000),
        _event("resolved", "warning", 3000, ended=3000),
    ]
    (a,) = fold(events)
    assert (a.severity, a.start_ms, a.end_ms) == ("critical", 1000, 3000)
    (open_,) = fold(events[:2])
    assert open_.end_ms is None


def test_an_alert_firing_when_the_event_starts_detects_it_ahead() -> None:
    lab = label("d1", 100, 200)
    early_open = Alert("y", "flood", "street-flood", "d1", "p1", "warning", 60 * MIN, None)
    early_closed = Alert("x", "flood", "street-flood", "d1", "p1", "warning", 60 * MIN, 70 * MIN)
    assert matches(early_open, lab) and not matches(early_closed, lab)
    out = score([early_open], [lab], TOL)
    assert out.label_delay_s == [-2400.0] and out.kinds["flood"].false_alerts == 0


def test_delays_count_from_when_the_definition_can_call_the_event() -> None:
    # offline after 3 missed 300 s intervals: detectable 15 min after the device fell silent
    offline = label("d1", 100, 160, what="offline", kind="health", evidence_ms=15 * MIN)
    spike = label("d2", 100, 105, what="spike", kind="health")
    alerts = [
        alert("device-offline", "d1", 116, kind="health"),
        alert("sensor-spike", "d2", 102, kind="health"),
    ]
    out = score(alerts, [offline, spike], TOL)
    health = out.kinds["health"]
    assert out.label_delay_s == [60.0, 120.0]
    assert sorted(health.delays_s) == [60.0, 120.0]
    assert sorted(health.onset_delays_s) == [120.0, 960.0]
    assert health.to_json()["onset_delay_median_s"] == 540.0
    assert out.rules["device-offline"].delays_s == [60.0]
    assert out.rules["device-offline"].onset_delays_s == [960.0]
    with pytest.raises(ValueError, match="negative evidence"):
        label("d1", 100, 160, what="offline", kind="health", evidence_ms=-1)
