"""Line-protocol escaping, proven by a reference tokenizer written from the spec."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltasense.lineprotocol import LineProtocolError, encode_point


def _split_unescaped(text: str, sep: str, *, quotes: bool = False) -> list[str]:
    """Split on ``sep`` where it is not backslash-escaped.

    With ``quotes``, a double quote right after ``=`` opens a string field value
    that runs to the next unescaped quote; elsewhere quotes are literal, as in
    InfluxDB's own parser.
    """
    parts, cur, i, quoted = [], [], 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if quotes and ch == '"' and (quoted or (cur and cur[-1] == "=")):
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ',= "\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse(line: str) -> tuple[str, dict[str, str], dict[str, object], int | None]:
    head_text = _split_unescaped(line, " ")[0]
    rest = line[len(head_text) + 1 :]
    sections = _split_unescaped(rest, " ", quotes=True)
    assert len(sections) in (1, 2), sections
    head = _split_unescaped(head_text, ",")
    tags = dict(_split_unescaped(t, "=") for t in head[1:])
    fields: dict[str, object] = {}
    for item in _split_unescaped(sections[0], ",", quotes=True):
        key, raw = _split_key(item)
        if raw.startswith('"'):
            value: object = _unescape(raw[1:-1])
        elif raw.endswith("i"):
            value = int(raw[:-1])
        elif raw in ("true", "false"):
            value = raw == "true"
        else:
            value = float(raw)
        fields[_unescape(key)] = value
    ts = int(sections[1]) if len(sections) == 2 else None
    return (
        _unescape(head[0]),
        {_unescape(k): _unescape(v) for k, v in tags.items()},
        fields,
        ts,
    )


def _split_key(item: str) -> tuple[str, str]:
    """Split ``key=value`` at the first unescaped ``=``."""
    i = 0
    while i < len(item):
        if item[i] == "\\":
            i += 2
            continue
        if item[i] == "=":
            return item[:i], item[i + 1 :]
        i += 1
    raise AssertionError(f"no = in {item!r}")


names = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\\\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=20,
)
values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=40,
    ),
)


@given(
    measurement=names,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, values, min_size=1, max_size=5),
    ts=st.one_of(st.none(), st.integers(min_value=0, max_value=2**62)),
)
def test_encode_then_parse_round_trips(measurement, tags, fields, ts) -> None:
    line = encode_point(measurement, tags, fields, ts)
    assert "\n" not in line.split('"')[0]  # no raw line break before any string field
    got = parse(line)
    assert got[0] == measurement
    assert got[1] == tags
    assert got[3] == ts
    for key, value in fields.items():
        back = got[2][key]
        if isinstance(value, float):
            assert isinstance(back, float) and (back == value or math.isclose(back, value))
        else:
            assert back == value and type(back) is type(value)


@pytest.mark.parametrize(
    ("measurement", "tags", "fields"),
    [
        ("m", {"t": "a\nb"}, {"x": 1}),
        ("m", {"t": "end\\"}, {"x": 1}),
        ("", {}, {"x": 1}),
        ("m", {}, {}),
        ("m", {}, {"x": float("nan")}),
        ("m", {}, {"x": float("inf")}),
        ("m", {}, {"x": [1]}),
    ],
)
def test_unrepresentable_points_are_refused(measurement, tags, fields) -> None:
    with pytest.raises(LineProtocolError):
        encode_point(measurement, tags, fields)


def test_empty_tag_values_are_left_out() -> None:
    assert encode_point("m", {"a": "", "b": "x"}, {"f": 1.0}, 5) == "m,b=x f=1.0 5"


def test_injection_stays_inside_its_field() -> None:
    line = encode_point("m", {"device": "d"}, {"s": 'x" y=1\nevil,device=z v=2'}, 1)
    _, tags, fields, ts = parse(line)
    assert tags == {"device": "d"} and ts == 1
    assert fields == {"s": 'x" y=1\nevil,device=z v=2'}
