"""The firmware encoder's payloads pass the platform's own contract decoder (CPython only)."""

from __future__ import annotations

import msgspec
import pytest
from ds import encode
from fwtest import batch

from deltasense import contract

TS = 1763510400000
SAMPLES = {
    "weather": {
        "t_c": 27.31,
        "rh_pct": 81.2,
        "p_hpa": 1008.4,
        "wind_ms": 3.2,
        "gust_ms": 5.9,
        "wind_dir_deg": 157.5,
        "rain_mm_total": 12.5730,
        "lux": 3100.0,
    },
    "water": {"level_cm": 8.4, "dist_mm": 1916.0},
    "lamp": {"on": True, "dim_pct": 70.0, "power_w": 88.2, "energy_wh_total": 1520.0, "lux": 3.2},
    "meter": {
        "v": 229.8,
        "a": 4.512,
        "power_w": 1012.3,
        "pf": 0.97,
        "hz": 50.0,
        "energy_wh_total": 88231.0,
    },
}
HEALTH = {"rssi_dbm": -67.0, "batt_v": 3.92, "heap_b": 81234, "up_s": 3600}


def _topic(kind: str) -> contract.Topic:
    return contract.parse_topic(f"baclieu/center/{kind}/node-1/tele")


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_single_reading_decodes_with_every_field(kind: str) -> None:
    data = encode.encode_reading(encode.reading(kind, 4, 2, SAMPLES[kind], TS, HEALTH))
    (reading,) = contract.decode_tele(_topic(kind), data, TS)
    assert (reading.seq, reading.boot, reading.ts_ms, reading.hist) == (4, 2, TS, False)
    assert not reading.ts_from_platform
    assert set(reading.fields) == set(SAMPLES[kind]) | set(HEALTH)
    for name, value in SAMPLES[kind].items():
        assert reading.fields[name] == pytest.approx(value, abs=0.06)


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_full_hist_batch_decodes(kind: str) -> None:
    records = [
        encode.encode_reading(encode.reading(kind, i, 1, SAMPLES[kind], TS + i * 60_000, HEALTH))
        for i in range(120)
    ]
    payload, n = batch(records, hist=True)
    assert len(payload) <= contract.MAX_PAYLOAD_BYTES
    readings = contract.decode_tele(_topic(kind), payload, TS + 200 * 60_000)
    assert len(readings) == n > 1
    assert [r.seq for r in readings] == list(range(n))
    assert all(r.hist for r in readings)


def test_unsynced_reading_is_stamped_by_platform() -> None:
    data = encode.encode_reading(encode.reading("water", 0, 0, {"dist_mm": 1500}))
    (reading,) = contract.decode_tele(_topic("water"), data, TS)
    assert reading.ts_from_platform and reading.ts_ms == TS


def test_status_meta_ack_decode() -> None:
    assert contract.decode_status(encode.status("online", TS)).state == "online"
    meta = contract.decode_meta(
        encode.meta("0.2.0", "pico-w", 3, "watchdog", "0123456789ab", 300, 9.29, 105.72, "canal")
    )
    assert (meta.boot, meta.station, meta.interval_s) == (3, "canal", 300)
    ack = msgspec.json.decode(encode.ack("c-1", False, "expired", TS), type=contract.Ack)
    assert (ack.id, ack.ok, ack.error) == ("c-1", False, "expired")
