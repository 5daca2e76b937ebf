"""What the gateway changes on the way: hist and ts on replays, expired commands."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from deltasense.contract import MAX_PAYLOAD_BYTES, decode_tele, parse_topic
from edge.relay import ack_topic, as_replayed, retained, triage_command

TELE = "baclieu/phuong-1/water/wl-p1-001/tele"
NOW = 1_760_000_000_000


def test_a_replayed_reading_keeps_its_ts_and_is_marked_hist() -> None:
    payload = b'{"ts":1759999990000,"seq":4,"boot":2,"level_cm":12.5}'
    out = json.loads(as_replayed(TELE, payload, NOW))
    assert out == {"ts": 1759999990000, "seq": 4, "boot": 2, "level_cm": 12.5, "hist": True}
    (reading,) = decode_tele(parse_topic(TELE), as_replayed(TELE, payload, NOW), NOW)
    assert reading.hist and reading.ts_ms == 1759999990000 and not reading.ts_from_platform


def test_a_replayed_reading_without_ts_gets_the_gateway_receive_time() -> None:
    batch = b'[{"seq":1,"boot":1,"level_cm":3},{"seq":2,"boot":1,"level_cm":4}]'
    out = json.loads(as_replayed(TELE, batch, NOW))
    assert [r["ts"] for r in out] == [NOW, NOW + 1]  # distinct, as the platform's stamps
    assert all(r["hist"] is True for r in out)


def test_integer_and_float_literals_survive() -> None:
    payload = b'{"ts":1759999990000,"seq":9007199254740992,"boot":0,"t_c":3.0,"lux":0.1}'
    out = as_replayed("s/d/weather/w/tele", payload, NOW)
    assert b'"t_c":3.0' in out and b'"seq":9007199254740992' in out


def test_what_is_not_a_reading_is_forwarded_untouched() -> None:
    for payload in (b"not json", b"[]", b"[1,2]", b"42", b'"x"', b"\xff\xfe", b"[{}, 3]"):
        assert as_replayed(TELE, payload, NOW) == payload
    status = "baclieu/phuong-1/water/wl-p1-001/status"
    assert as_replayed(status, b'{"state":"online"}', NOW) == b'{"state":"online"}'


def test_a_mark_that_would_break_the_size_limit_is_not_added() -> None:
    pad = "a" * (MAX_PAYLOAD_BYTES - 45)
    payload = json.dumps(
        {"ts": 1, "seq": 1, "boot": 1, "note": pad}, separators=(",", ":")
    ).encode()
    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert as_replayed(TELE, payload, NOW) == payload


@given(st.binary(max_size=600))
def test_any_payload_is_handled(payload: bytes) -> None:
    out = as_replayed(TELE, payload, NOW)
    assert out == payload or json.loads(out) is not None


def test_channels_decide_retain() -> None:
    assert retained("s/d/water/n/status") and retained("s/d/water/n/meta")
    assert retained("s/d/water/n/cfg")
    assert not retained("s/d/water/n/tele") and not retained("s/d/water/n/ack")


def test_an_expired_command_is_answered_by_the_gateway() -> None:
    cmd = json.dumps({"id": "c1", "name": "set_dim", "args": {"pct": 100}, "expires": NOW - 1})
    verdict = triage_command(cmd.encode(), NOW)
    assert not verdict.relay
    assert verdict.ack is not None
    assert json.loads(verdict.ack) == {"id": "c1", "ok": False, "error": "expired", "ts": NOW}
    assert ack_topic("s/d/lamp/l1/cmd") == "s/d/lamp/l1/ack"


def test_an_unexpired_or_unreadable_command_is_relayed() -> None:
    good = json.dumps({"id": "c1", "name": "ping", "expires": NOW + 60_000}).encode()
    assert triage_command(good, NOW).relay
    hostile = [
        b"",
        b"garbage",
        b"[]",
        b'{"id":"c","expires":true}',
        b'{"id":"","expires":1}',
        b'{"id":5,"expires":1}',
        json.dumps({"id": "x" * 65, "expires": 1}).encode(),
        b'{"id":"c","expires":"1"}',
    ]
    for payload in hostile:
        verdict = triage_command(payload, NOW)
        assert verdict.relay and verdict.ack is None, payload  # the node answers those


def test_the_text_is_kept_as_the_node_wrote_it() -> None:
    """Members are inserted, nothing re-encoded: spellings, duplicates and NaN reach
    the platform unchanged, so its verdict (a dead letter) is the same."""
    for payload in (
        b'{"ts":1,"seq":1,"boot":1,"t_c":3.10,"lux":1e-400}',
        b'{"ts":1,"seq":1,"seq":2,"boot":1,"t_c":3}',
        b'{"ts":1,"seq":1,"boot":1,"t_c":NaN}',
        '{"ts":1,"seq":1,"boot":1,"note":"Phường 1"}'.encode(),
    ):
        out = as_replayed(TELE, payload, NOW)
        assert out == b'{"hist":true,' + payload[1:]
    batch = b'[ {"seq":1,"boot":1,"t_c":3} ,{"ts":5,"hist":true,"seq":2,"boot":1,"t_c":4}]'
    assert as_replayed(TELE, batch, NOW) == (
        b'[ {"hist":true,"ts":%d,"seq":1,"boot":1,"t_c":3} ,'
        b'{"ts":5,"hist":true,"seq":2,"boot":1,"t_c":4}]' % NOW
    )


def test_a_node_that_marked_hist_itself_is_not_marked_twice() -> None:
    payload = b'{"hist":true,"ts":1,"seq":1,"boot":1,"t_c":3}'
    assert as_replayed(TELE, payload, NOW) == payload
