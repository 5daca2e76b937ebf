"""The alarm workflow's pure rules (api/alarm.py) and the silence wire format
(deltasense/silences.py) both the API and the notifier use."""

from __future__ import annotations

import pytest

from analytics.ruleset import BY_NAME
from api.alarm import CLEARABLE_RULES, SilenceIn, clear_refusal, clearing_stands, seen
from deltasense import silences
from deltasense.alerts import AlertEvent, Message
from deltasense.silences import Silence, SilenceError

NOW = 1_764_540_000_000


def _event(rule: str = "level-spike", **kw: object) -> AlertEvent:
    fields: dict[str, object] = {
        "id": "al-1", "kind": "health", "rule": rule, "subject": "wl-1", "district": "phuong-1",
        "severity": "warning", "state": "firing", "started": NOW, "updated": NOW,
        "values": {"jump_mm": 400.0}, "message": Message(vi="x", en="x"),
    }  # fmt: skip
    fields.update(kw)
    return AlertEvent(**fields)  # type: ignore[arg-type]


def test_clearable_rules_are_analytics_event_rules() -> None:
    assert set(BY_NAME) >= CLEARABLE_RULES
    assert clear_refusal(_event()) is None
    refusal = clear_refusal(_event("street-flood", kind="flood"))
    assert refusal is not None and "street-flood" in refusal
    assert "resolved" in (clear_refusal(_event(state="resolved")) or "")


def test_a_clear_stands_until_analytics_reports_the_alert_anew() -> None:
    at_clear = seen(_event())
    assert clearing_stands(at_clear, _event(updated=NOW + 5))  # an ack's update: same report
    assert not clearing_stands(at_clear, _event(values={"jump_mm": 600.0}))
    assert not clearing_stands(at_clear, _event(severity="critical"))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"duration_s": 600, "ends": NOW + 600_000}, "exactly one"),
        ({}, "exactly one"),
        ({"starts": NOW - 120_000, "duration_s": 600}, "past"),
        ({"starts": NOW + 31 * 86_400_000, "duration_s": 600}, "within 30 days"),
        ({"ends": NOW}, "follow"),
        ({"ends": NOW + 30 * 86_400_000 + 1}, "at most 30 days"),
    ],
)
def test_silence_windows_out_of_bounds_are_refused(body: dict[str, int], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        SilenceIn(matchers={"district": "nha-mat"}, **body).window(NOW)


def test_a_maintenance_window_may_start_later() -> None:
    s = SilenceIn(matchers={"subject": "wl-1"}, starts=NOW + 3_600_000, duration_s=7200)
    assert s.window(NOW) == (NOW + 3_600_000, NOW + 3_600_000 + 7_200_000)


def test_the_wire_format_round_trips_and_refuses_hostile_payloads() -> None:
    s = Silence("si-1", {"district": "nha-mat"}, starts=NOW, ends=NOW + 1000, by="an", comment="c")
    assert silences.decode("si-1", silences.encode(s)) == s
    assert silences.silence_topic("baclieu", "si-1") == "baclieu/_silences/si-1"
    with pytest.raises(ValueError):
        silences.silence_topic("baclieu", "../x")
    for payload in (
        b"{not json",
        b'{"matchers": {"ward": "x"}, "starts": 0, "ends": 1}',
        b'{"matchers": {}, "starts": 0, "ends": 1}',
        b'{"matchers": {"district": "x"}, "starts": 5, "ends": 5}',
        b'{"matchers": {"district": "x"}, "starts": 0, "ends": 2592000001}',
        b'{"matchers": {"district": ""}, "starts": 0, "ends": 1}',
        b'{"matchers": {"district": "x"}, "starts": 0, "ends": 1, "extra": 1}',
    ):
        with pytest.raises(SilenceError):
            silences.decode("si-1", payload)
    covered = _event(district="nha-mat")
    assert s.covers(covered, NOW) and not s.covers(covered, NOW + 1000)
    assert not s.covers(_event(), NOW)
