"""Analytics adopts the alerts an edge gateway raised offline, once (engine.adopt_edge_alert)."""

from __future__ import annotations

import json
from collections.abc import Callable

import msgspec
import pytest

from analytics.engine import Engine
from deltasense.alerts import AlertEvent
from deltasense.rulekernels.flood import STREET_FLOOD
from deltasense.thresholds import Thresholds
from edge.localrules import WardRules

SITE, WARD, DRAIN = "baclieu", "phuong-1", "drain-07"
T0 = 1_780_000_000_000


def gateway_alerts(t: Thresholds, levels: list[float]) -> list[AlertEvent]:
    rules = WardRules(site=SITE, district=WARD, thresholds=t, siren_max_s=60)
    out: list[AlertEvent] = []
    for i, level in enumerate(levels):
        ts = T0 + i * 60_000
        doc = {"seq": i, "boot": 1, "ts": ts, "level_cm": level}
        rules.observe(f"{SITE}/{WARD}/water/{DRAIN}/tele", json.dumps(doc).encode(), ts)
        out += rules.evaluate(ts, offline=True).alerts
    return out


def test_adopted_once_worded_by_analytics_and_ended_by_the_gateway(
    make_engine: Callable[..., Engine], thresholds: Thresholds
) -> None:
    engine = make_engine()
    firing, rise, resolved = gateway_alerts(thresholds, [10, 31, 33, 1])
    assert (firing.state, rise.state, resolved.state) == ("firing", "firing", "resolved")
    assert firing.message.en == ""  # the gateway leaves the words to the platform
    outcome, events = engine.adopt_edge_alert(WARD, firing)
    assert outcome == "adopted" and [e.id for e in events] == [firing.id]
    assert events[0].started == firing.started and "Street flooding" in events[0].message.en
    assert [e.id for e in engine.open_alerts()] == [firing.id]
    # The same episode again (a redelivery, the gateway's severity rise): nothing new.
    assert engine.adopt_edge_alert(WARD, firing) == ("duplicate", [])
    assert engine.adopt_edge_alert(WARD, rise) == ("duplicate", [])
    outcome, events = engine.adopt_edge_alert(WARD, resolved)
    assert outcome == "ended" and events[0].state == "resolved" and events[0].id == firing.id
    assert engine.open_alerts() == []
    # A late copy of the ended episode does not open it again.
    assert engine.adopt_edge_alert(WARD, firing) == ("duplicate", [])


def test_an_episode_the_platform_raised_itself_is_not_raised_twice(
    make_engine: Callable[..., Engine], thresholds: Thresholds
) -> None:
    engine = make_engine()
    engine.ingest_water([DRAIN], [WARD], [T0], [33.0])
    own = [e for e in engine.evaluate(T0 + 1000) if e.rule == STREET_FLOOD]
    assert len(own) == 1
    (gateway,) = gateway_alerts(thresholds, [33])[:1]
    assert gateway.id != own[0].id
    assert engine.adopt_edge_alert(WARD, gateway) == ("duplicate", [])
    end = msgspec.structs.replace(gateway, state="resolved", ended=T0 + 5000)
    assert engine.adopt_edge_alert(WARD, end) == ("duplicate", [])
    assert [e.id for e in engine.open_alerts() if e.rule == STREET_FLOOD] == [own[0].id]


@pytest.mark.parametrize(
    "change",
    [
        {"rule": "storm-risk"},
        {"rule": "no-such-rule"},
        {"district": "phuong-2"},
        {"kind": "storm"},
        {"subject": "Bad Subject"},
    ],
)
def test_a_gateway_cannot_raise_what_is_not_its_own(
    make_engine: Callable[..., Engine], thresholds: Thresholds, change: dict[str, str]
) -> None:
    engine = make_engine()
    (event,) = gateway_alerts(thresholds, [33])
    with pytest.raises(ValueError):
        engine.adopt_edge_alert(WARD, msgspec.structs.replace(event, **change))
    assert engine.open_alerts() == []
