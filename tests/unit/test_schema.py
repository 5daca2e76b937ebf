"""The stored layout: every builder's point, and the names the readers rely on."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltasense import alerts, schema
from deltasense.alerts import AlertEvent, Message
from deltasense.contract import (
    ALL_FIELDS,
    Channel,
    Command,
    Kind,
    Meta,
    Reading,
    Status,
    Topic,
)
from deltasense.lineprotocol import LineProtocolError, encode_point
from deltasense.reasons import Reason

TOPIC = Topic("baclieu", "phuong-1", Kind.LAMP, "l-1", Channel.STATUS)
EVENT = AlertEvent(
    id="al-0123456789abcdef",
    kind="storm",
    rule="gust",
    subject="ws-1",
    district="phuong-1",
    severity="warning",
    state="firing",
    started=1_000,
    updated=2_000,
    message=Message(vi="Gió giật", en="Gusts"),
)


def test_reading_point_carries_its_bookkeeping() -> None:
    reading = Reading(
        site="baclieu",
        district="phuong-1",
        kind=Kind.WATER,
        device="dr-1",
        ts_ms=5,
        seq=3,
        boot=2,
        hist=True,
        ts_from_platform=True,
        fields={"level_cm": 12.5},
    )
    assert schema.reading_line(reading, ["level_cm"]) == (
        "water,device=dr-1,district=phuong-1,site=baclieu "
        'level_cm=12.5,seq=3i,boot=2i,hist=true,ts_platform=true,qc="level_cm" 5'
    )


def test_readings_in_bulk_are_the_lines_one_at_a_time_would_be() -> None:
    # The series head is built once per run of one device's readings: a change of
    # device, district or kind between readings must start a new one.
    def reading(device: str, district: str, kind: Kind, seq: int, **fields: float) -> Reading:
        return Reading(
            site="baclieu", district=district, kind=kind, device=device,
            ts_ms=1_800_000_000_000 + seq, seq=seq, boot=1, fields=fields,
        )  # fmt: skip

    readings = [
        reading("dr-1", "phuong-1", Kind.WATER, 1, level_cm=1.5),
        reading("dr-1", "phuong-1", Kind.WATER, 2, level_cm=2.0),
        reading("dr-2", "phuong-1", Kind.WATER, 3, level_cm=-0.0),
        reading("dr-2", "phuong-2", Kind.WATER, 4, level_cm=3.0),
        reading("dr-2", "phuong-2", Kind.METER, 5, v=230.0),
        reading("dr-1", "phuong-1", Kind.WATER, 6, level_cm=1e300),
    ]
    flags = [[], ["level_cm"], [], [], ["v"], []]
    for ns in (False, True):
        assert schema.reading_lines(readings, flags, ns=ns) == [
            schema.reading_line(r, f, ns=ns) for r, f in zip(readings, flags, strict=True)
        ]
    assert len({line.split(" ")[0] for line in schema.reading_lines(readings, flags)}) == 4


def test_device_points() -> None:
    tags = "device=l-1,district=phuong-1,kind=lamp,site=baclieu"
    assert schema.status_line(TOPIC, Status(state="online", ts=9), 10) == (
        f'status,{tags} state="online",device_ts=9i 10'
    )
    assert schema.meta_line(TOPIC, Meta(fw="1.0", lat=9.5), 10) == (
        f'meta,{tags} fw="1.0",lat=9.5 10'
    )
    assert schema.meta_line(TOPIC, Meta(), 10) is None
    assert schema.device_line(TOPIC, 7, 10) == (
        'devices,device=l-1 site="baclieu",district="phuong-1",kind="lamp",last_seen=7i 10'
    )


def test_deadletter_point_truncates() -> None:
    line = schema.deadletter_line(Reason.SCHEMA, "t" * 300, b"\xff" + b"x" * 600, "d", 4)
    assert line.startswith(f'deadletters,reason=schema topic="{"t" * 256}",payload="\ufffd')
    assert line.endswith(f'{"x" * (schema.DEADLETTER_PAYLOAD_MAX - 1)}",detail="d" 4')


def test_alert_point_round_trips_through_its_body() -> None:
    line = schema.alert_line(EVENT)
    assert line.startswith(
        "alerts,district=phuong-1,id=al-0123456789abcdef,kind=storm,rule=gust "
        'subject="ws-1",state="firing",severity="warning",started=1000i,body="'
    )
    assert line.endswith(" 2000")
    body = alerts.encode(EVENT).decode()
    assert schema.alert_from_body(body) == EVENT
    assert schema.alert_from_body("{broken") is None
    assert schema.alert_from_body(None) is None


def test_command_point() -> None:
    command = Command(id="c1", name="set_dim", args={"pct": 100}, expires=99)
    line = schema.command_line(
        "baclieu", "phuong-1", "l-1", command, reason="al-1", source="analytics", ts=8
    )
    args = msgspec.json.encode({"pct": 100}).decode().replace('"', '\\"')
    assert line == (
        "commands,device=l-1,district=phuong-1,site=baclieu "
        f'id="c1",name="set_dim",args="{args}",reason="al-1",source="analytics" 8'
    )


def test_names_readers_rely_on() -> None:
    # Meta fields read back are the contract's, stored as sent.
    assert {schema.FW, schema.LAT, schema.LON, schema.INTERVAL_S, schema.STATION} <= set(
        Meta.__struct_fields__
    )
    # Bookkeeping never shadows a measured field; every measurement name is distinct.
    assert not schema.READING_BOOKKEEPING & ALL_FIELDS
    names = [
        *schema.READING_MEASUREMENTS,
        schema.STATUS,
        schema.META,
        schema.DEVICES,
        schema.DEADLETTERS,
        schema.ALERTS,
        schema.COMMANDS,
    ]
    assert len(set(names)) == len(names)


# --- the reading encoder against the generic one --------------------------------------------
# Ingest's reading encoder formats fields inline for speed (docs/BENCHMARKS.md); it must
# write byte for byte what the generic point builder writes for the same merged fields.
_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(st.sampled_from(sorted(ALL_FIELDS)), _VALUES, max_size=8),
    seq=st.integers(0, 2**31 - 1),
    boot=st.integers(0, 2**31 - 1),
    hist=st.booleans(),
    stamped=st.booleans(),
    flags=st.lists(st.sampled_from(sorted(ALL_FIELDS)), max_size=3),
)
def test_the_fast_reading_encoder_matches_the_generic_point_builder(
    fields: dict[str, float | int | bool],
    seq: int,
    boot: int,
    hist: bool,
    stamped: bool,
    flags: list[str],
) -> None:
    reading = Reading(
        site="baclieu",
        district="phuong-1",
        kind=Kind.WEATHER,
        device="ws-1",
        ts_ms=1_780_000_000_000,
        seq=seq,
        boot=boot,
        ts_from_platform=stamped,
        hist=hist,
        fields=fields,
    )
    merged: dict[str, float | int | bool | str] = {**fields, "seq": seq, "boot": boot}
    if hist:
        merged["hist"] = True
    if stamped:
        merged["ts_platform"] = True
    if flags:
        merged["qc"] = ",".join(flags)
    tags = {"site": "baclieu", "district": "phuong-1", "device": "ws-1"}
    expected = encode_point("weather", tags, merged, schema.reading_time_ns(reading))
    assert schema.reading_line(reading, flags, ns=True) == expected
    assert schema.reading_lines([reading, reading], [flags, flags], ns=True) == [expected] * 2


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_reading_with_a_non_finite_value_is_refused_not_written(bad: float) -> None:
    reading = Reading(
        site="baclieu",
        district="phuong-1",
        kind=Kind.WATER,
        device="lv-1",
        ts_ms=1_780_000_000_000,
        seq=1,
        boot=1,
        fields={"level_cm": bad},
    )
    with pytest.raises(LineProtocolError, match="non-finite"):
        schema.reading_line(reading)
