"""The gateway's local rules (edge/localrules.py) on the shared kernels and thresholds,
and the siren on gpiozero's simulated pin."""

from __future__ import annotations

import json

import msgspec
import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from deltasense.alerts import alert_id
from deltasense.rulekernels import flood
from deltasense.thresholds import Thresholds, from_document, load_thresholds
from edge.localrules import MAX_NODES, WardRules
from edge.siren import Siren

SITE, WARD = "baclieu", "phuong-1"
T0 = 1_780_000_000_000
DRAIN = "drain-01"
LAMP = "lamp-01"
_DEFAULTS = load_thresholds()  # for the hypothesis tests (function-scoped fixtures do not mix)


def water(device: str = DRAIN, district: str = WARD) -> str:
    return f"{SITE}/{district}/water/{device}/tele"


def reading(level_cm: float, ts: int, seq: int) -> bytes:
    return json.dumps({"seq": seq, "boot": 1, "ts": ts, "level_cm": level_cm}).encode()


def rules(t: Thresholds, siren_max_s: float = 600.0) -> WardRules:
    return WardRules(site=SITE, district=WARD, thresholds=t, siren_max_s=siren_max_s)


def feed(
    r: WardRules,
    levels: list[float],
    *,
    start: int = T0,
    step_ms: int = 5_000,
    offline: bool = True,
    seq0: int = 0,
) -> list:
    """One reading per level, evaluated after each; returns the decisions."""
    out = []
    for i, level in enumerate(levels):
        ts = start + i * step_ms
        r.observe(water(), reading(level, ts, seq0 + i), ts)
        out.append(r.evaluate(ts, offline=offline))
    return out


def test_a_rising_drain_sounds_the_siren_at_the_critical_depth(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    critical_cm = thresholds.flood.street_critical_mm / 10
    levels = [0, 2, 4, 8, 12, 16, 20, 24, 28, critical_cm, critical_cm + 2]
    decisions = feed(r, levels)
    sounding = [d.siren for d in decisions]
    first = sounding.index(True)
    assert levels[first] == critical_cm  # not a reading before the limit
    assert all(sounding[first:])
    assert decisions[first].flooded == (DRAIN,)


def test_the_local_alert_is_the_one_analytics_would_raise(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    warning_cm = thresholds.flood.street_warning_mm / 10
    decisions = feed(r, [0, warning_cm + 1, 31, 33])
    events = [e for d in decisions for e in d.alerts]
    firing = events[0]
    assert (firing.rule, firing.kind, firing.subject, firing.district) == (
        flood.STREET_FLOOD,
        "flood",
        DRAIN,
        WARD,
    )
    assert firing.state == "firing" and firing.severity == "warning"
    assert firing.id == alert_id(flood.STREET_FLOOD, DRAIN, firing.started)
    assert firing.values["depth_mm"] == pytest.approx((warning_cm + 1) * 10, abs=0.01)
    # The rise to critical updates the same alert (the lifecycle's own rule).
    rise = events[1]
    assert rise.id == firing.id and rise.severity == "critical"
    assert [e.id for e in r.open_alerts()] == [firing.id]


def test_online_it_judges_but_does_nothing(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    r.observe(f"{SITE}/{WARD}/lamp/{LAMP}/status", b'{"state":"online"}', T0)
    online = feed(r, [0, 10, 20, 31, 33], offline=False)
    assert not any(d.siren or d.lamp_orders or d.alerts for d in online)
    assert online[-1].flooded == (DRAIN,)  # the windows are warm
    # The link drops with the water already over the limit: the siren sounds at once,
    # the lamps are ordered; the alert the platform raised meanwhile is not raised again.
    cut = r.evaluate(T0 + 30_000, offline=True)
    assert cut.siren
    assert [o.topic for o in cut.lamp_orders] == [f"{SITE}/{WARD}/lamp/{LAMP}/cmd"]
    assert cut.alerts == []


def test_the_siren_stops_below_critical_minus_the_deadband(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    crit = thresholds.flood.street_critical_mm / 10
    band = thresholds.alerting.deadband.level_mm / 10
    d = feed(r, [25, 28, crit + 1, crit - band / 2, crit - band - 0.5])
    assert [x.siren for x in d] == [False, False, True, True, False]


def test_the_siren_stops_after_its_max_and_waits_for_the_water_to_fall(
    thresholds: Thresholds,
) -> None:
    r = rules(thresholds, siren_max_s=20)
    crit = thresholds.flood.street_critical_mm / 10
    d = feed(
        r, [28, crit + 1, crit + 1, crit + 1, crit + 1, crit + 1, crit + 1, 5, 6, 28, crit + 1]
    )
    assert [x.siren for x in d] == [
        False,
        True,
        True,
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        True,
    ]


def test_a_station_override_moves_the_critical_depth(thresholds: Thresholds) -> None:
    doc = thresholds.model_dump(by_alias=True)
    doc["overrides"] = [
        {"station": DRAIN, "flood": {"street_warning_mm": 100.0, "street_critical_mm": 500.0}}
    ]
    r = rules(from_document(doc))
    d = feed(r, [20, 28, 35, 42, 49, 51])
    assert [x.siren for x in d] == [False, False, False, False, False, True]


def test_a_single_jump_is_held_until_the_next_reading_confirms_it(
    thresholds: Thresholds,
) -> None:
    r = rules(thresholds)
    # 0 → 40 cm in one step: FloodNet's spike hold (plausible_latest), as analytics.
    d = feed(r, [0, 40, 41], step_ms=60_000)
    assert [x.siren for x in d] == [False, False, True]


def test_a_canal_station_never_sounds_the_siren(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    r.observe(f"{SITE}/{WARD}/water/{DRAIN}/meta", b'{"station":"canal"}', T0)
    assert not any(x.siren or x.alerts for x in feed(r, [150, 152, 154]))


def test_lamps_get_the_full_brightness_lease_renewed_every_third(
    thresholds: Thresholds,
) -> None:
    r = rules(thresholds)
    r.observe(f"{SITE}/{WARD}/lamp/{LAMP}/tele", b'{"seq":1,"boot":1,"on":true}', T0)
    lease = thresholds.lighting.full_brightness_lease_s
    first = feed(r, [10, 31, 33])
    orders = [o for d in first for o in d.lamp_orders]
    assert len(orders) == 1
    cmd = msgspec.json.decode(orders[0].payload)
    assert cmd["name"] == "set_dim" and cmd["args"] == {"pct": 100, "duration_s": lease}
    sent_at = T0  # 10 cm is over the warning depth: the alert fired on the first reading
    assert cmd["expires"] == sent_at + lease * 1000 // 3
    assert r.evaluate(sent_at + lease * 1000 // 3 - 1, offline=True).lamp_orders == []
    assert len(r.evaluate(sent_at + lease * 1000 // 3, offline=True).lamp_orders) == 1


def test_a_storm_in_the_ward_orders_the_lamps(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    r.observe(f"{SITE}/{WARD}/lamp/{LAMP}/status", b'{"state":"online"}', T0)
    cap8 = thresholds.storm.wind_cap_ms[8] + 0.5
    for i in range(thresholds.storm.wind_mean_min * 2):
        ts = T0 + i * 30_000
        payload = json.dumps({"seq": i, "boot": 1, "ts": ts, "wind_ms": cap8, "gust_ms": cap8 + 4})
        r.observe(f"{SITE}/{WARD}/weather/ws-01/tele", payload.encode(), ts)
    end = T0 + thresholds.storm.wind_mean_min * 60_000
    calm = r.evaluate(end, offline=False)
    assert calm.storm_level >= thresholds.lighting.full_brightness_storm_risk
    assert calm.lamp_orders == []  # online: the platform orders
    assert len(r.evaluate(end, offline=True).lamp_orders) == 1


def test_another_wards_readings_are_not_judged(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    for i, level in enumerate([31, 33, 35]):
        ts = T0 + i * 5000
        r.observe(water(district="phuong-2"), reading(level, ts, i), ts)
    assert not r.evaluate(T0 + 20_000, offline=True).siren


HOSTILE = [
    b"",
    b"not json",
    b"[]",
    b"{}",
    b'{"seq":1,"boot":1,"level_cm":"deep"}',
    b'{"seq":-1,"boot":1,"level_cm":40}',
    b'{"seq":1,"boot":1,"ts":1,"level_cm":40}',
    b'{"seq":1,"boot":1,"level_cm":1e400}',
    b'{"seq":1,"boot":1,"level_cm":99999}',  # QC range: flagged, kept out
    b"[" + b'{"seq":1,"boot":1,"level_cm":40},' * 200 + b"{}]",
    b'{"seq":1,"boot":1,"level_cm":40,"hist":"yes"}',
    b"\xff\xfe" * 3000,
    b'{"station":"lake"}',
]
TOPICS = [
    water(),
    f"{SITE}/{WARD}/water/{DRAIN}/meta",
    f"{SITE}/{WARD}/water/Bad Device/tele",
    f"{SITE}/{WARD}/weather/ws-01/tele",
    f"{SITE}/{WARD}/tele",
    "",
    "#",
    f"{SITE}/{WARD}/rocket/x/tele",
]


def test_malformed_messages_are_counted_and_never_crash(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    for topic in TOPICS:
        for payload in HOSTILE:
            r.observe(topic, payload, T0)
    assert r.rejected > 0 and r.last_error
    d = r.evaluate(T0, offline=True)
    assert not d.siren and not d.alerts
    # ... and a good reading afterwards is still judged.
    assert feed(r, [31, 33], start=T0 + 1000)[-1].siren


@settings(max_examples=100, deadline=None)
@given(topic=st.sampled_from(TOPICS) | st.text(max_size=80), payload=st.binary(max_size=300))
def test_any_bytes_on_any_topic_never_crash(topic: str, payload: bytes) -> None:
    r = WardRules(site=SITE, district=WARD, thresholds=_DEFAULTS, siren_max_s=60)
    r.observe(topic, payload, T0)
    r.evaluate(T0, offline=True)


@settings(max_examples=60, deadline=None)
@given(
    doc=st.dictionaries(
        st.sampled_from(["seq", "boot", "ts", "level_cm", "wind_ms", "gust_ms", "hist", "station"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=5),
    )
)
def test_any_json_reading_never_crashes(doc: dict[str, object]) -> None:
    r = WardRules(site=SITE, district=WARD, thresholds=_DEFAULTS, siren_max_s=60)
    payload = json.dumps(doc).encode()
    for topic in (water(), f"{SITE}/{WARD}/weather/ws-01/tele", f"{SITE}/{WARD}/water/x/meta"):
        r.observe(topic, payload, T0)
    r.evaluate(T0 + 1000, offline=True)


def test_the_siren_drives_the_simulated_pin() -> None:
    factory = MockFactory()
    siren = Siren(17, pin_factory=factory)
    pin = factory.pin(17)
    assert pin.state is False
    assert siren.set(True) and pin.state is True
    assert not siren.set(True)
    assert siren.set(False) and pin.state is False
    low = Siren(18, active_high=False, pin_factory=factory)
    low.set(True)
    assert factory.pin(18).state is False
    siren.close()
    low.close()


def test_no_pin_means_no_siren_but_the_state_is_kept() -> None:
    siren = Siren(None)
    assert siren.set(True) and siren.sounding


def test_invented_devices_are_bounded(thresholds: Thresholds) -> None:
    r = rules(thresholds)
    for i in range(MAX_NODES + 50):
        r.observe(water(f"d-{i}"), reading(1.0, T0 + i, i), T0 + i)
    assert r.rejected == 50
    r.evaluate(T0 + MAX_NODES + 100, offline=True)
