"""The contract: topic grammar and reading decoding, including every rejection."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltasense.contract import (
    FIELDS_BY_KIND,
    MAX_BATCH,
    ContractError,
    Kind,
    decode_meta,
    decode_status,
    decode_tele,
    device_topic,
    parse_topic,
)
from deltasense.reasons import Reason

NOW = 1_780_000_000_000
WEATHER = parse_topic("baclieu/phuong-1/weather/ws-1/tele")


def reject(payload: bytes, topic=WEATHER) -> str:
    with pytest.raises(ContractError) as info:
        decode_tele(topic, payload, NOW)
    return info.value.reason


def test_topic_round_trip() -> None:
    topic = parse_topic("baclieu/phuong-1/water/drain-07/tele")
    assert (topic.site, topic.district, topic.kind, topic.device) == (
        "baclieu",
        "phuong-1",
        Kind.WATER,
        "drain-07",
    )
    assert str(topic) == "baclieu/phuong-1/water/drain-07/tele"


@pytest.mark.parametrize(
    "topic",
    [
        "baclieu/phuong-1/weather/ws-1",  # too short
        "baclieu/phuong-1/weather/ws-1/tele/x",  # too long
        "baclieu/Phuong-1/weather/ws-1/tele",  # upper case
        "baclieu/phuong 1/weather/ws-1/tele",  # space
        "baclieu/-bad/weather/ws-1/tele",  # leading hyphen
        "baclieu/phuong-1/radar/ws-1/tele",  # unknown kind
        "baclieu/phuong-1/weather/ws-1/telemetry",  # unknown channel
        "baclieu/phuong-1/weather/" + "x" * 33 + "/tele",  # too long id
        "baclieu//weather/ws-1/tele",  # empty level
    ],
)
def test_bad_topics_are_rejected(topic: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_topic(topic)
    assert info.value.reason == "bad_topic"


def test_device_topic_validates() -> None:
    assert device_topic("baclieu", "p1", "lamp", "l-1", "cmd") == "baclieu/p1/lamp/l-1/cmd"
    with pytest.raises(ContractError):
        device_topic("baclieu", "p1", "lamp", "L 1", "cmd")


def test_single_reading_decodes() -> None:
    payload = b'{"ts":1779999990000,"seq":4,"boot":2,"t_c":29.5,"rh_pct":81,"rssi_dbm":-67}'
    (reading,) = decode_tele(WEATHER, payload, NOW)
    assert reading.ts_ms == 1779999990000
    assert (reading.seq, reading.boot, reading.hist, reading.ts_from_platform) == (
        4,
        2,
        False,
        False,
    )
    assert reading.fields == {"t_c": 29.5, "rh_pct": 81, "rssi_dbm": -67}


def test_missing_ts_is_stamped_by_platform() -> None:
    (reading,) = decode_tele(WEATHER, b'{"seq":0,"boot":0,"t_c":30}', NOW)
    assert reading.ts_ms == NOW and reading.ts_from_platform


def test_batch_and_hist() -> None:
    batch = [
        {"ts": NOW - 60_000 * i, "seq": i, "boot": 1, "hist": True, "p_hpa": 1008.2}
        for i in range(3)
    ]
    readings = decode_tele(WEATHER, json.dumps(batch).encode(), NOW)
    assert [r.seq for r in readings] == [0, 1, 2]
    assert all(r.hist for r in readings)


def test_lamp_bool_field() -> None:
    topic = parse_topic("baclieu/p1/lamp/l-1/tele")
    (reading,) = decode_tele(topic, b'{"seq":1,"boot":1,"on":true,"dim_pct":70}', NOW)
    assert reading.fields == {"on": True, "dim_pct": 70}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not_json"),
        (b"", "not_json"),
        (b'{"seq":1,"boot":1,"t_c":"hot"}', "schema"),
        (b'{"seq":1,"boot":1,"t_c":null}', "schema"),  # null is invalid
        (b'{"boot":1,"t_c":20}', "schema"),  # seq missing
        (b'{"seq":-1,"boot":1,"t_c":20}', "bad_seq"),
        (b'{"seq":2147483648,"boot":1,"t_c":20}', "bad_seq"),  # above 2^31 - 1
        (b'{"seq":1,"boot":-1,"t_c":20}', "bad_boot"),
        (b'{"seq":1,"boot":99999999999999999999999,"t_c":20}', "bad_boot"),
        (b'{"seq":1.5,"boot":1}', "schema"),
        (b'{"seq":true,"boot":1}', "schema"),
        (b'{"seq":"1","boot":1}', "schema"),
        (b'{"seq":1,"boot":1,"hist":"yes"}', "schema"),
        (b'"a string"', "schema"),
        (b"[]", "empty_batch"),
        (b'{"seq":1,"boot":1,"t_c":1e999}', "non_finite"),  # out of float range
        (b'{"seq":1,"boot":1,"t_c":NaN}', "non_finite"),
        (b'{"seq":1,"boot":1,"t_c":-Infinity}', "non_finite"),
        (b'{"seq":1,"boot":1,"t_c":nan}', "non_finite"),  # MicroPython's json.dumps
        (b'{"seq":1,"boot":1,"ts":%d,"t_c":20}' % (NOW + 5 * 60_000 + 1), "future_ts"),
        (b'{"seq":1,"boot":1,"ts":1577836799999,"t_c":20}', "past_ts"),  # 1 ms before 2020
        (b'{"seq":1,"boot":1,"ts":946684800000,"t_c":20}', "past_ts"),  # an RTC at 2000
        (b'{"seq":1,"boot":1,"ts":-5,"t_c":20}', "past_ts"),
        (b'{"seq":1,"boot":1,"t_c":1' + b"0" * 5000 + b"}", "too_large"),
        (b'{"seq":1,"boot":1}', "no_fields"),
        (b'{"seq":1,"boot":1,"rssi_dbm":-60,"level_cm":3}', "no_fields"),  # not a weather field
        (b'{"seq":1,"boot":1,"t_c":20,"t_c":35}', "duplicate_key"),
        (b'{"seq":1,"seq":9,"boot":1,"t_c":20}', "duplicate_key"),
        (b'{"seq":1,"boot":1,"t\\u005fc":20,"t_c":35}', "duplicate_key"),  # escaped twin
        (b'[{"seq":1,"boot":1,"t_c":20},{"seq":2,"boot":1,"lux":1,"lux":2}]', "duplicate_key"),
        (b'{"seq":1,"boot":1,"t_c":20,"x":{"a":1,"a":2}}', "duplicate_key"),  # unknown field
        (b'{"seq":1,"boot":1,"t_c":1e-400}', "underflow"),
        (b'{"seq":1,"boot":1,"t_c":-2.5E-330}', "underflow"),
        (b'{"seq":1,"boot":1,"t_c":0.' + b"0" * 400 + b"1}", "underflow"),
    ],
)
def test_bad_readings_are_rejected(payload: bytes, reason: str) -> None:
    assert reject(payload) == reason


def test_ts_just_inside_future_limit_is_accepted() -> None:
    payload = b'{"seq":1,"boot":1,"ts":%d,"t_c":20}' % (NOW + 5 * 60_000)
    assert decode_tele(WEATHER, payload, NOW)[0].ts_ms == NOW + 5 * 60_000


def test_batch_limit() -> None:
    ok = json.dumps(
        [{"seq": i, "boot": 0, "t_c": 1} for i in range(MAX_BATCH)], separators=(",", ":")
    )
    assert len(ok) <= 4096
    assert len(decode_tele(WEATHER, ok.encode(), NOW)) == MAX_BATCH
    too_many = json.dumps(
        [{"seq": i, "boot": 0} for i in range(MAX_BATCH + 1)], separators=(",", ":")
    )
    assert reject(too_many.encode()) == "batch_too_large"


def test_one_bad_reading_rejects_the_whole_batch() -> None:
    assert reject(b'[{"seq":1,"boot":1},{"seq":"x","boot":1}]') == "schema"


def test_fields_of_other_kinds_are_ignored_not_stored() -> None:
    (reading,) = decode_tele(WEATHER, b'{"seq":1,"boot":1,"level_cm":3,"t_c":20}', NOW)
    assert reading.fields == {"t_c": 20}


def test_field_sets_match_contract() -> None:
    assert FIELDS_BY_KIND[Kind.WATER] == ("level_cm", "dist_mm")
    assert FIELDS_BY_KIND[Kind.METER] == ("v", "a", "power_w", "pf", "hz", "energy_wh_total")


def test_status_and_meta() -> None:
    assert decode_status(b'{"state":"offline"}').state == "offline"
    for bad in (b'{"state":"gone"}', b"{}", b"[1]", b"x"):
        with pytest.raises(ContractError):
            decode_status(bad)
    meta = decode_meta(b'{"fw":"1.0","lat":9.29,"lon":105.72,"interval_s":300}')
    assert meta.lat == 9.29
    for bad in (b'{"lat":91}', b'{"interval_s":0}', b'{"fw":"' + b"x" * 65 + b'"}'):
        with pytest.raises(ContractError):
            decode_meta(bad)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash(payload: bytes) -> None:
    try:
        readings = decode_tele(WEATHER, payload, NOW)
    except ContractError as exc:
        assert exc.reason in set(Reason) - {
            Reason.BAD_TOPIC,
            Reason.STORE_REJECTED,
            Reason.UNSTORABLE,
        }
    else:
        assert readings and all(r.device == "ws-1" for r in readings)
