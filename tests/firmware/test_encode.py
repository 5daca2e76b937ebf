# firmware-test: micropython
"""ds.encode: contract payloads, batching, hist marking."""

import json

from ds import encode
from fwtest import Records, batch, raises

TS = 1763510400000


def test_reading_keeps_measured_fields_and_drops_missing() -> None:
    rec = encode.reading(
        "weather", 3, 7, {"t_c": 25.0812, "rh_pct": None, "lux": float("nan")}, ts_ms=TS
    )
    assert rec == {"seq": 3, "boot": 7, "ts": TS, "t_c": 25.08}


def test_reading_without_clock_has_no_ts() -> None:
    rec = encode.reading("water", 0, 0, {"level_cm": 12.34, "dist_mm": 1876.4})
    assert "ts" not in rec
    assert rec["level_cm"] == 12.3
    assert rec["dist_mm"] == 1876 and isinstance(rec["dist_mm"], int)


def test_reading_rejects_unknown_fields_and_kinds() -> None:
    raises(ValueError, encode.reading, "water", 0, 0, {"t_c": 1.0})
    raises(ValueError, encode.reading, "boat", 0, 0, {})
    raises(ValueError, encode.reading, "lamp", -1, 0, {})
    raises(ValueError, encode.reading, "lamp", 0, 0, {}, None, {"temp": 1})
    raises(TypeError, encode.reading, "meter", 0, 0, {"v": "230"})


def test_lamp_on_is_bool_and_health_ints() -> None:
    rec = encode.reading(
        "lamp",
        1,
        2,
        {"on": 1, "dim_pct": 70},
        TS,
        {"heap_b": 81234.7, "up_s": -3, "rssi_dbm": -71.6},
    )
    assert rec["on"] is True
    assert rec["heap_b"] == 81234 and rec["up_s"] == 0 and rec["rssi_dbm"] == -72


def test_encode_is_compact_json() -> None:
    data = encode.encode_reading(encode.reading("meter", 5, 1, {"v": 229.87, "pf": 0.934}, TS))
    assert b" " not in data
    assert json.loads(data) == {"seq": 5, "boot": 1, "ts": TS, "v": 229.9, "pf": 0.93}


def _records(n: int, pad: int = 0) -> "list[bytes]":
    return [
        encode.encode_reading(encode.reading("water", i, 1, {"dist_mm": 1000 + i + pad}, TS + i))
        for i in range(n)
    ]


def test_batch_single_is_object_many_is_array() -> None:
    one, n1 = batch(_records(1))
    assert n1 == 1 and json.loads(one)["seq"] == 0
    many, n = batch(_records(5))
    assert n == 5
    assert [r["seq"] for r in json.loads(many)] == [0, 1, 2, 3, 4]
    assert batch([]) == (b"", 0)


def test_batch_caps_at_100_readings_and_4096_bytes() -> None:
    payload, n = batch(_records(150))
    assert n <= encode.MAX_BATCH
    assert len(payload) <= encode.MAX_PAYLOAD_BYTES
    assert len(json.loads(payload)) == n
    # every record taken must be consecutive from the oldest
    assert [r["seq"] for r in json.loads(payload)] == list(range(n))
    # 100 records fit only if small enough; these ~60-byte records do not all fit
    assert n < 100


def test_batch_hist_marks_every_reading() -> None:
    payload, n = batch(_records(3), hist=True)
    recs = json.loads(payload)
    assert n == 3 and all(r["hist"] is True for r in recs)
    assert encode.mark_hist(encode.mark_hist(b'{"seq":1}')) == b'{"hist":true,"seq":1}'


def test_batch_into_marks_only_unmarked_readings_and_leaves_room() -> None:
    recs = _records(3)
    recs[1] = encode.mark_hist(recs[1])  # taken during an outage: marked in the spool
    buf = bytearray(40 + encode.MAX_PAYLOAD_BYTES)
    begin, end, n = encode.batch_into(buf, 40, Records(recs), 3, True)
    assert (begin, n) == (40, 3) and buf[:40] == bytearray(40)  # the head room untouched
    assert bytes(buf[begin:end]) == b"[" + b",".join(encode.mark_hist(r) for r in recs) + b"]"
    begin, end, n = encode.batch_into(memoryview(buf), 40, Records(recs), 1)
    assert (begin, n) == (41, 1) and bytes(buf[begin:end]) == recs[0]  # one: an object
    assert encode.batch_into(buf, 40, Records([]), 0) == (40, 40, 0)
    raises(ValueError, encode.batch_into, bytearray(60), 40, Records(recs), 1)


def test_status_meta_ack() -> None:
    assert json.loads(encode.status("online", TS)) == {"state": "online", "ts": TS}
    assert json.loads(encode.status("offline")) == {"state": "offline"}
    raises(ValueError, encode.status, "dead")
    meta = json.loads(
        encode.meta("0.2.0", "esp32-devkit", 4, "power_on", "abc", 60, 9.29, 105.72, "drain")
    )
    assert meta["boot"] == 4 and meta["station"] == "drain" and meta["lat"] == 9.29
    assert json.loads(encode.ack("c1", False, "expired", TS)) == {
        "id": "c1",
        "ok": False,
        "error": "expired",
        "ts": TS,
    }
    assert json.loads(encode.ack("c2", True)) == {"id": "c2", "ok": True}
