"""The planner on an injected clock: grouping, the fast path, repeats, escalation,
inhibition and silences."""

from __future__ import annotations

import msgspec

from deltasense.alerts import Ack, AlertEvent, Message
from deltasense.routing import parse_routing
from deltasense.silences import Silence
from notifier.grouping import Planner, Timing

ROUTING = parse_routing(
    """
[receivers.duty]
email = ["duty@example.vn"]
[receivers.deputy]
email = ["deputy@example.vn"]
[receivers.chair]
email = ["chair@example.vn"]
[[routes]]
name = "all"
receivers = ["duty"]
escalate = ["deputy", "chair"]
[[inhibit]]
source_rules = ["storm-risk"]
target_rules = ["wind-cap"]
"""
)
T = Timing(
    group_wait_ms=30_000,
    group_interval_ms=300_000,
    urgent_wait_ms=500,
    repeat_ms=600_000,
    escalate_ms=120_000,
)


def ev(
    n: int,
    *,
    severity: str = "warning",
    state: str = "firing",
    updated: int = 0,
    kind: str = "flood",
    rule: str = "street-flood",
    district: str = "phuong-1",
    ack: Ack | None = None,
) -> AlertEvent:
    return AlertEvent(
        id=f"al-{n}",
        kind=kind,
        rule=rule,
        subject=f"s{n}",
        district=district,  # type: ignore[arg-type]
        severity=severity,
        state=state,
        started=0,
        updated=updated,  # type: ignore[arg-type]
        message=Message(vi="Ngập", en="Flood"),
        ack=ack,
    )


def test_a_burst_of_warnings_is_one_message_after_group_wait() -> None:
    p = Planner(ROUTING, T)
    for n in range(100):
        p.observe(ev(n), now_ms=n * 10)
    assert p.due(29_000) == []
    assert p.next_wake() == 30_000
    out = p.due(30_000)
    assert len(out) == 1 and len(out[0].events) == 100 and out[0].receiver == "duty"
    # More during the interval wait for it: one message per group per interval.
    p.observe(ev(200), now_ms=31_000)
    p.observe(ev(201), now_ms=32_000)
    assert p.due(329_999) == []
    assert [len(m.events) for m in p.due(330_000)] == [2]


def test_a_pending_alert_is_no_news_and_a_resolve_of_the_untold_is_nothing() -> None:
    p = Planner(ROUTING, T)
    p.observe(ev(1, state="pending"), 0)
    p.observe(ev(1, state="resolved", updated=1), 1)
    assert p.due(10**9) == [] and p.next_wake() is None


def test_critical_resolve_and_ack_take_the_fast_path() -> None:
    p = Planner(ROUTING, T)
    p.observe(ev(1, severity="critical"), 1_000)
    p.observe(ev(2, severity="critical"), 1_200)  # same burst: same message
    out = p.due(1_500)
    assert len(out) == 1 and {e.id for e in out[0].events} == {"al-1", "al-2"}
    p.observe(ev(1, severity="critical", state="resolved", updated=5), 10_000)
    assert [m.events[0].state for m in p.due(10_500)] == ["resolved"]
    acked = ev(2, severity="critical", updated=6, ack=Ack(by="an", ts=6))
    p.observe(acked, 11_000)
    assert [m.events[0].ack for m in p.due(11_500)] == [acked.ack]


def test_an_older_or_repeated_state_is_ignored() -> None:
    p = Planner(ROUTING, T)
    p.observe(ev(1, severity="critical", updated=10), 0)
    p.due(500)
    p.observe(ev(1, severity="critical", updated=10), 600)
    p.observe(ev(1, severity="critical", state="resolved", updated=5), 700)
    assert p.due(2_000) == []


def test_unacked_critical_repeats_and_escalates_until_acked() -> None:
    p = Planner(ROUTING, T)
    p.observe(ev(1, severity="critical"), 0)
    assert [m.receiver for m in p.due(500)] == ["duty"]
    assert p.next_wake() == 500 + 120_000
    esc = p.due(120_500)
    assert [(m.receiver, m.reason) for m in esc] == [("deputy", "escalation")]
    assert [(m.receiver, m.reason) for m in p.due(240_500)] == [("chair", "escalation")]
    reps = p.due(600_500)
    assert sorted((m.receiver, m.reason) for m in reps) == [
        ("chair", "repeat"),
        ("deputy", "repeat"),
        ("duty", "repeat"),
    ]
    p.observe(ev(1, severity="critical", updated=9, ack=Ack(by="an", ts=9)), 700_000)
    told = p.due(700_500)
    assert sorted(m.receiver for m in told) == ["chair", "deputy", "duty"]  # the ack reaches all
    assert p.due(10**9) == [] and p.next_wake() is None


def test_ack_before_escalation_stops_it() -> None:
    p = Planner(ROUTING, T)
    p.observe(ev(1, severity="critical"), 0)
    p.due(500)
    p.observe(ev(1, severity="critical", updated=1, ack=Ack(by="x", ts=1)), 60_000)
    assert [m.receiver for m in p.due(60_500)] == ["duty"]
    assert p.due(10**9) == []


def test_city_storm_risk_folds_station_wind_alerts() -> None:
    p = Planner(ROUTING, T)
    p.observe(ev(1, kind="storm", rule="storm-risk", district="", severity="critical"), 0)
    p.due(500)
    for n in range(2, 12):
        p.observe(ev(n, kind="storm", rule="wind-cap", district="nha-mat"), 1_000)
    assert p.due(10**6)[0].reason == "escalation"  # only the storm risk's own follow-up
    assert p.folded == 10
    p.observe(
        ev(
            1,
            kind="storm",
            rule="storm-risk",
            district="",
            severity="critical",
            state="resolved",
            updated=1,
        ),
        2_000_000,
    )
    out = p.due(2_000_500)
    assert {m.events[0].rule for m in out} == {"storm-risk"}  # the resolve, fast
    # The storm risk is over: the station winds still blowing are told, as one group.
    later = p.due(2_000_500 + T.group_wait_ms)
    assert [len(m.events) for m in later] == [10]


def test_silence_drops_what_it_matches_until_it_ends() -> None:
    p = Planner(ROUTING, T)
    p.set_silence(Silence("s1", {"district": "phuong-1"}, starts=0, ends=100_000))
    p.observe(ev(1, severity="critical"), 1_000)
    p.observe(ev(2, severity="critical", district="phuong-2"), 1_000)
    out = p.due(2_000)
    assert [e.district for m in out for e in m.events] == ["phuong-2"]
    assert p.silenced == 1
    p.observe(ev(3, severity="critical"), 200_000)  # silence over: al-1, still firing, too
    news = [m for m in p.due(201_000) if m.reason == "alerts"]
    assert [sorted(e.id for e in m.events) for m in news] == [["al-1", "al-3"]]


def test_restore_keeps_a_restarted_planner_from_telling_twice() -> None:
    p = Planner(ROUTING, T)
    told = ev(1, severity="critical", updated=3)
    p.restore(told, first=0, last=0, steps={"all": 1})
    p.observe(msgspec.structs.replace(told), 10)  # the retained copy
    assert p.due(600) == []
    p.observe(ev(1, severity="critical", state="resolved", updated=4), 1_000)
    assert sorted(m.receiver for m in p.due(1_500)) == ["deputy", "duty"]


def test_a_new_routing_takes_the_waiting_group_to_the_new_receiver_on_time() -> None:
    p = Planner(ROUTING, T)
    p.observe(ev(1), now_ms=0)
    night = parse_routing(
        '[receivers.night]\nemail = ["night@example.vn"]\n[[routes]]\nname = "all"\n'
        'receivers = ["night"]\n'
    )
    p.use_routing(night)
    assert p.next_wake() == 30_000  # the wait it had, not a fresh one
    out = p.due(30_000)
    assert [(m.receiver, [e.id for e in m.events]) for m in out] == [("night", ["al-1"])]
    # An unchanged route keeps its group and timing: the interval still holds.
    p.use_routing(night)
    p.observe(ev(2), now_ms=31_000)
    assert p.due(329_999) == []
    assert [m.receiver for m in p.due(330_000)] == ["night"]
