"""Virtual devices: every payload over simulated days obeys the contract and physics."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import msgspec
import pytest

from deltasense.contract import (
    FIELDS_BY_KIND,
    Channel,
    Kind,
    Reading,
    decode_meta,
    decode_status,
    decode_tele,
    parse_topic,
)
from simulators.city import DeviceSpec, place_devices
from simulators.device import FW_VERSION, WILL_PAYLOAD, VirtualDevice
from simulators.models import local_hour

SITE = "baclieu"
# 2025-11-26 00:00 local (UTC+7)
DAY0 = datetime(2025, 11, 25, 17, 0, tzinfo=UTC).timestamp()
STEP_S = 600
DAY_STEPS = 24 * 3600 // STEP_S

# Plausible ranges per field for Bạc Liêu in normal weather.
RANGES: dict[str, tuple[float, float]] = {
    "t_c": (20.0, 36.0),
    "rh_pct": (40.0, 100.0),
    "p_hpa": (1004.0, 1012.0),
    "wind_ms": (1.0, 6.0),
    "gust_ms": (1.0, 11.0),
    "wind_dir_deg": (0.0, 360.0),
    "rain_mm_total": (0.0, 500.0),
    "lux": (0.0, 130_000.0),
    "dim_pct": (0.0, 100.0),
    "power_w": (0.0, 10_000.0),
    "energy_wh_total": (0.0, 1e8),
    "v": (220.0, 240.0),
    "a": (0.0, 50.0),
    "pf": (0.3, 1.0),
    "hz": (49.8, 50.2),
    "rssi_dbm": (-100.0, -40.0),
    "heap_b": (50_000, 200_000),
    "batt_v": (3.3, 4.3),
}
WATER_RANGES = {"drain": (-3.0, 3.0), "canal": (-160.0, 220.0)}
COUNTERS = ("rain_mm_total", "energy_wh_total")


def city() -> list[DeviceSpec]:
    return place_devices(40, seed=11)


def one_of_each() -> list[DeviceSpec]:
    specs = city()
    picked = {s.kind: s for s in reversed(specs) if s.kind is not Kind.WATER}
    water = {s.variant: s for s in specs if s.kind is Kind.WATER}
    return [*picked.values(), *water.values()]


def run_days(spec: DeviceSpec, days: int = 1) -> list[Reading]:
    device = VirtualDevice(spec, boot=4, boot_ts=DAY0 - 60, interval_s=STEP_S)
    topic = parse_topic(device.topic(SITE, Channel.TELE))
    readings = []
    for i in range(days * DAY_STEPS):
        now = DAY0 + i * STEP_S
        readings.extend(decode_tele(topic, device.tele_payload(now), now_ms=int(now * 1000)))
    return readings


@pytest.mark.parametrize("spec", one_of_each(), ids=lambda s: f"{s.kind}-{s.variant or 'std'}")
def test_a_day_of_payloads_decodes_and_is_plausible(spec: DeviceSpec) -> None:
    readings = run_days(spec)
    assert len(readings) == DAY_STEPS
    for i, r in enumerate(readings):
        assert (r.device, r.kind, r.district, r.boot, r.seq) == (
            spec.id,
            spec.kind,
            spec.district,
            4,
            i,
        )
        assert r.ts_ms == int((DAY0 + i * STEP_S) * 1000) and not r.ts_from_platform
        assert set(FIELDS_BY_KIND[spec.kind]) <= set(r.fields)  # every field of the kind
        assert r.fields["up_s"] == 60 + i * STEP_S
        for name, value in r.fields.items():
            assert not isinstance(value, float) or math.isfinite(value)
            if name in RANGES:
                lo, hi = RANGES[name]
                assert lo <= value <= hi, (name, value, local_hour(r.ts_ms / 1000))
        if spec.kind is Kind.WEATHER:
            assert r.fields["gust_ms"] >= r.fields["wind_ms"]
        if spec.kind is Kind.WATER:
            lo, hi = WATER_RANGES[spec.variant]
            assert lo <= r.fields["level_cm"] <= hi
            # level = mount height - distance, for one fixed mount height per station
            mount = r.fields["dist_mm"] + 10 * r.fields["level_cm"]
            first = readings[0].fields["dist_mm"] + 10 * readings[0].fields["level_cm"]
            assert mount == pytest.approx(first, abs=1.0)


@pytest.mark.parametrize("spec", city(), ids=lambda s: s.id)
def test_counters_never_decrease_within_a_boot(spec: DeviceSpec) -> None:
    readings = run_days(spec, days=3)
    for name in COUNTERS:
        series = [r.fields[name] for r in readings if name in r.fields]
        assert series == sorted(series)


def test_rain_counter_rises_in_showers_and_stays_monotone() -> None:
    weather = [s for s in place_devices(200, seed=2) if s.kind is Kind.WEATHER][:5]
    totals = []
    for spec in weather:
        rain = [r.fields["rain_mm_total"] for r in run_days(spec, days=5)]
        assert rain == sorted(rain)
        assert all(abs(x * 5 - round(x * 5)) < 1e-9 for x in rain)  # 0.2 mm tips
        totals.append(rain[-1])
    assert any(t > 0 for t in totals)  # the test would catch a dead gauge
    assert all(t < 400 for t in totals)


@pytest.mark.parametrize("kind", [Kind.LAMP, Kind.METER])
def test_lights_on_at_night_off_at_noon(kind: Kind) -> None:
    for spec in [s for s in city() if s.kind is kind][:4]:
        by_hour = {local_hour(r.ts_ms / 1000): r.fields for r in run_days(spec)}
        night = [by_hour[h] for h in (0.0, 3.0, 20.0, 23.0)]
        noon = by_hour[12.0]
        if kind is Kind.LAMP:
            assert all(f["on"] is True and f["power_w"] > 20 for f in night)
            assert noon["on"] is False and noon["power_w"] < 1 and noon["dim_pct"] == 0
            assert by_hour[21.0]["dim_pct"] == 100
            assert by_hour[23.0]["dim_pct"] == 70
            assert by_hour[3.0]["dim_pct"] == 50
        else:  # a cabinet feeds its lamp circuit at night only
            assert all(f["power_w"] > 3 * noon["power_w"] for f in night)


def test_lamp_energy_matches_power_over_time() -> None:
    spec = next(s for s in city() if s.kind is Kind.LAMP)
    readings = run_days(spec)
    expected = sum(r.fields["power_w"] * STEP_S / 3600 for r in readings[:-1])
    assert readings[-1].fields["energy_wh_total"] == pytest.approx(expected, rel=0.01)


def test_reboot_restarts_seq_but_keeps_the_energy_register() -> None:
    # The firmware keeps boot in flash and seq from 0 per boot (docs/CONTRACT.md); the
    # lamp's energy register is the metering chip's and survives a reboot of the node.
    spec = next(s for s in city() if s.kind is Kind.LAMP)
    device = VirtualDevice(spec, boot=2, boot_ts=DAY0)
    for i in range(30):
        device.reading(DAY0 + i * STEP_S)
    before = device.reading(DAY0 + 30 * STEP_S)
    assert before["energy_wh_total"] > 0 and before["seq"] == 30
    device.reboot(DAY0 + 31 * STEP_S)
    after = device.reading(DAY0 + 31 * STEP_S)
    assert (after["boot"], after["seq"], after["up_s"]) == (3, 0, 0)
    assert after["energy_wh_total"] >= before["energy_wh_total"]


def test_same_seed_same_values() -> None:
    spec = city()[0]
    a = VirtualDevice(spec, boot=1, boot_ts=DAY0)
    b = VirtualDevice(spec, boot=1, boot_ts=DAY0)
    assert [a.tele_payload(DAY0 + i) for i in range(20)] == [
        b.tele_payload(DAY0 + i) for i in range(20)
    ]


def test_status_meta_and_will_decode() -> None:
    spec = city()[0]
    device = VirtualDevice(spec, boot=7, boot_ts=DAY0, interval_s=0.5)
    status = decode_status(device.status_payload("online", DAY0))
    assert (status.state, status.ts) == ("online", int(DAY0 * 1000))
    assert decode_status(WILL_PAYLOAD).state == "offline"
    meta = decode_meta(device.meta_payload())
    assert (meta.fw, meta.hw, meta.boot, meta.reset_cause) == (FW_VERSION, "sim", 7, "power_on")
    assert (meta.lat, meta.lon, meta.interval_s) == (spec.lat, spec.lon, 0.5)
    assert isinstance(meta.cfg_hash, str) and meta.cfg_hash
    for channel in (Channel.TELE, Channel.STATUS, Channel.META):
        t = parse_topic(device.topic(SITE, channel))
        assert (t.district, t.kind, t.device, t.channel) == (
            spec.district,
            spec.kind,
            spec.id,
            channel,
        )


def test_payload_is_compact_json_well_under_the_limit() -> None:
    spec = next(s for s in city() if s.kind is Kind.WEATHER)
    payload = VirtualDevice(spec).tele_payload(DAY0)
    assert isinstance(msgspec.json.decode(payload), dict)
    assert len(payload) < 512


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"boot": -1}, "boot"), ({"interval_s": 0}, "interval")]
)
def test_bad_constructor_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VirtualDevice(city()[0], **kwargs)  # type: ignore[arg-type]
