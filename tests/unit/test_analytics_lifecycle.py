"""Alert lifecycle: fire once, update on severity rise, resolve below limit − deadband."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.ruleset import STREET_FLOOD
from deltasense.alerts import Ack, AlertEvent, Message, alert_id
from deltasense.lifecycle import FIRING, NONE, PENDING, Lifecycle, RuleSpec
from deltasense.rulekernels import flood
from deltasense.rulekernels.limits import FloodLimits
from deltasense.thresholds import Thresholds

T0 = 1_700_000_000_000
RULE = STREET_FLOOD.name


@dataclass
class Driver:
    """Feeds depths (mm, one reading each, per subject) through rule + lifecycle."""

    t: Thresholds
    for_count: int = 1
    keep_ms: int = 0
    subjects: list[str] = field(default_factory=lambda: ["drain-a", "drain-b"])
    now: int = T0
    lc: Lifecycle = field(init=False)

    def __post_init__(self) -> None:
        self.lc = Lifecycle(
            RuleSpec(
                RULE, STREET_FLOOD.kind, for_count=self.for_count, keep_firing_for_ms=self.keep_ms
            ),
            STREET_FLOOD.message,
        )

    def step(
        self, depths_mm: list[float], *, fresh: bool = True, dt_ms: int = 1000
    ) -> list[AlertEvent]:
        self.now += dt_ms
        r = flood.street_flood(
            np.asarray(depths_mm, dtype=np.float32) / 10,
            excluded=np.zeros(len(depths_mm), dtype=bool),
            flood=self.t.flood,
            limits=FloodLimits(self.t.flood.street_warning_mm, self.t.flood.street_critical_mm),
            deadband_mm=self.t.alerting.deadband.level_mm,
        )
        return self.lc.step(
            condition=r.condition,
            clear=r.clear,
            severity=r.severity,
            fresh=np.full(len(depths_mm), fresh),
            now_ms=self.now,
            subjects=self.subjects[: len(depths_mm)],
            districts=["phuong-1"] * len(depths_mm),
            values=r.values,
        )


def test_single_reading_over_threshold_fires_once(thresholds: Thresholds) -> None:
    d = Driver(thresholds)
    events = d.step([120.0, 0.0])
    assert len(events) == 1
    e = events[0]
    assert (e.state, e.severity, e.risk_level, e.subject, e.district) == (
        "firing",
        "warning",
        1,
        "drain-a",
        "phuong-1",
    )
    assert e.id == alert_id(RULE, "drain-a", d.now)
    assert e.started == e.updated == d.now and e.ended is None
    assert e.values == {"depth_mm": 120.0}
    assert e.message.vi == "Ngập đường: mực nước 12 cm tại drain-a (Phường 1)"
    assert e.kind == "flood" and e.rule == "street-flood"
    # more readings over the threshold, and timer re-evaluations: nothing new
    assert d.step([130.0, 0.0]) == []
    assert d.step([130.0, 0.0], fresh=False) == []
    assert d.lc.state(2).tolist() == [FIRING, NONE]


def test_severity_rise_updates_the_open_alert(thresholds: Thresholds) -> None:
    d = Driver(thresholds)
    (fired,) = d.step([100.0])
    (updated,) = d.step([350.0])
    assert updated.id == fired.id
    assert (updated.state, updated.severity, updated.risk_level) == ("firing", "critical", 2)
    assert updated.updated > fired.updated and updated.started == fired.started
    assert updated.values == {"depth_mm": 350.0}
    assert updated.message.en.startswith("Severe street flooding: 35 cm")
    # falling back to warning level keeps the episode's peak severity, no event
    assert d.step([150.0]) == []
    assert d.lc.open_alert(0) is not None
    assert d.lc.open_alert(0).severity == "critical"  # type: ignore[union-attr]


def test_resolves_only_below_warning_minus_deadband(thresholds: Thresholds) -> None:
    d = Driver(thresholds)
    (fired,) = d.step([80.0])
    # inside the deadband [56, 76): stays firing, however often it is re-evaluated
    for depth in (75.0, 60.0, 56.0, 70.0, 56.5):
        assert d.step([depth]) == []
    (resolved,) = d.step([55.0])
    assert resolved.id == fired.id
    assert resolved.state == "resolved" and resolved.ended == resolved.updated == d.now
    assert resolved.values == {"depth_mm": 55.0}
    assert resolved.message.en == "Street flooding over at drain-a (Phường 1): 5.5 cm of water left"
    assert d.lc.open_alerts() == []
    # a new episode gets a new id
    (again,) = d.step([90.0])
    assert again.id != fired.id and again.state == "firing"


def test_no_flapping_around_the_threshold(thresholds: Thresholds) -> None:
    d = Driver(thresholds)
    events = []
    for depth in (77.0, 74.0, 78.0, 60.0, 76.0, 57.0, 80.0):
        events += d.step([depth])
    assert [e.state for e in events] == ["firing"]


def test_missing_value_holds_the_state(thresholds: Thresholds) -> None:
    d = Driver(thresholds)
    d.step([100.0])
    assert d.step([float("nan")]) == []
    assert d.lc.state(1).tolist() == [FIRING]


def test_for_counts_fresh_readings_not_evaluations(thresholds: Thresholds) -> None:
    d = Driver(thresholds, for_count=2)
    assert d.step([100.0]) == []
    assert d.lc.state(1).tolist() == [PENDING]
    first_over = d.now
    for _ in range(5):  # timer evaluations of the same reading never count
        assert d.step([100.0], fresh=False) == []
    (fired,) = d.step([100.0])
    assert fired.started == first_over  # the episode began with the first reading over
    assert fired.updated == d.now


def test_pending_falls_back_when_the_condition_breaks(thresholds: Thresholds) -> None:
    d = Driver(thresholds, for_count=2)
    d.step([100.0])
    assert d.step([20.0]) == []
    assert d.lc.state(1).tolist() == [NONE]
    assert d.step([100.0]) == []  # the count restarted
    assert len(d.step([100.0])) == 1


def test_keep_firing_for_delays_resolution(thresholds: Thresholds) -> None:
    d = Driver(thresholds, keep_ms=60_000)
    d.step([100.0])
    assert d.step([10.0], dt_ms=1000) == []  # clear since now
    assert d.step([10.0], fresh=False, dt_ms=30_000) == []
    assert d.step([100.0], dt_ms=1000) == []  # back over: the clear timer resets
    assert d.step([10.0], dt_ms=1000) == []
    assert d.step([10.0], fresh=False, dt_ms=59_000) == []
    (resolved,) = d.step([10.0], fresh=False, dt_ms=1000)
    assert resolved.state == "resolved"


def test_restore_adopts_without_raising_and_acks_stick(thresholds: Thresholds) -> None:
    d = Driver(thresholds)
    old = AlertEvent(
        id="al-restored",
        kind="flood",
        rule=RULE,
        subject="drain-b",
        district="phuong-1",
        severity="warning",
        state="firing",
        started=T0 - 10_000,
        updated=T0 - 5_000,
        values={"depth_mm": 90.0},
        message=Message(vi="v", en="e"),
    )
    d.lc.restore(1, old)
    assert d.step([0.0, 120.0]) == []  # still flooding: not raised again
    acked = msgspec.structs.replace(old, ack=Ack(by="op", ts=T0))
    assert d.lc.apply_ack(acked) is True
    assert d.lc.apply_ack(acked) is False  # same ack again: no change
    assert d.lc.apply_ack(msgspec.structs.replace(acked, id="al-unknown")) is False
    assert d.lc.apply_ack(old) is False  # an event without ack never removes one
    (rise,) = d.step([0.0, 400.0])
    assert rise.id == "al-restored" and rise.severity == "critical"
    assert rise.ack == Ack(by="op", ts=T0)  # later updates carry the ack
    (resolved,) = d.step([0.0, 0.0])
    assert resolved.id == "al-restored" and resolved.ack is not None


def test_restore_keeps_the_newest_of_two_open_alerts(thresholds: Thresholds) -> None:
    d = Driver(thresholds)
    new = AlertEvent(
        id="al-new",
        kind="flood",
        rule=RULE,
        subject="drain-a",
        district="p",
        severity="warning",
        state="firing",
        started=T0 - 10,
        updated=T0,
        message=Message(vi="", en=""),
    )
    d.lc.restore(0, new)
    d.lc.restore(0, msgspec.structs.replace(new, id="al-old", started=T0 - 99))
    assert [e.id for e in d.lc.open_alerts()] == ["al-new"]


def test_subjects_may_grow_between_steps(thresholds: Thresholds) -> None:
    d = Driver(thresholds, subjects=[f"d{i}" for i in range(40)])
    assert len(d.step([100.0])) == 1
    events = d.step([100.0] + [200.0] * 39)
    assert len(events) == 39 and {e.subject for e in events} == {f"d{i}" for i in range(1, 40)}


def test_bad_inputs(thresholds: Thresholds) -> None:
    with pytest.raises(ValueError):
        RuleSpec("r", "flood", for_count=0)
    with pytest.raises(ValueError):
        RuleSpec("r", "flood", keep_firing_for_ms=-1)
    d = Driver(thresholds)
    with pytest.raises(ValueError):
        d.lc.step(
            condition=[True],
            clear=[False, False],
            severity=[1],
            fresh=[True],
            now_ms=T0,
            subjects=["a"],
            districts=["p"],
            values={},
        )


# --- property: one open alert per subject, no resolution inside the deadband ----------------
# Depths at the edges are named here and placed against the thresholds in the test.
EDGES = {
    "warning": lambda warn, db: warn,
    "clear": lambda warn, db: warn - db,
    "under clear": lambda warn, db: warn - db - 0.5,
    "under warning": lambda warn, db: warn - 0.5,
}
depths = st.one_of(
    st.floats(min_value=0, max_value=600, allow_nan=False),
    st.sampled_from([*EDGES, 300.0, float("nan")]),
)


# The thresholds fixture is only read here, so sharing it across examples is safe.
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sequence=st.lists(st.tuples(depths, depths, st.booleans()), min_size=1, max_size=60),
    for_count=st.integers(min_value=1, max_value=3),
    keep_s=st.sampled_from([0, 5]),
)
def test_property_never_two_open_alerts_never_resolves_at_or_above_clear_level(
    thresholds: Thresholds,
    sequence: list[tuple[float | str, float | str, bool]],
    for_count: int,
    keep_s: int,
) -> None:
    warn = thresholds.flood.street_warning_mm
    deadband = thresholds.alerting.deadband.level_mm

    def depth_of(x: float | str) -> float:
        return EDGES[x](warn, deadband) if isinstance(x, str) else x

    d = Driver(thresholds, for_count=for_count, keep_ms=keep_s * 1000)
    open_ids: dict[str, str] = {}
    seen: set[str] = set()
    for depth_a, depth_b, fresh in sequence:
        step_depths = [depth_of(depth_a), depth_of(depth_b)]
        for e in d.step(step_depths, fresh=fresh, dt_ms=2000):
            depth = step_depths[d.subjects.index(e.subject)]
            if e.state == "firing":
                current = open_ids.get(e.subject)
                assert current in (None, e.id), "a second open alert for one subject"
                if current is None:
                    assert e.id not in seen, "an id reused for a new episode"
                open_ids[e.subject] = e.id
                seen.add(e.id)
                assert depth >= warn
            else:
                assert open_ids.pop(e.subject) == e.id
                assert depth < warn - deadband, f"resolved at {depth} mm"
        assert len(d.lc.open_alerts()) == len(open_ids)
        assert {e.subject: e.id for e in d.lc.open_alerts()} == open_ids
