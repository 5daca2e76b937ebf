"""InfluxDB line protocol encoding (pure, no I/O).

Escaping follows the InfluxDB 1.x line-protocol reference: measurement names
escape commas and spaces; tag keys, tag values and field keys escape commas,
equals signs and spaces; string field values escape backslashes and double
quotes.  Characters that line protocol cannot carry in a tag (line breaks, a
backslash, which 1.x does not unescape) are refused with :class:`LineProtocolError`
rather than written wrongly; platform tags are grammar-checked identifiers anyway.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from typing import Final

FieldValue = float | int | bool | str


class LineProtocolError(ValueError):
    """A point that cannot be represented in line protocol."""


class _Table(dict[int, str]):
    """A str.translate table that can key a cache (compared by identity)."""

    __hash__ = object.__hash__  # type: ignore[assignment]
    __eq__ = object.__eq__


_MEAS_ESCAPE: Final = _Table(str.maketrans({",": r"\,", " ": r"\ "}))
_KEY_ESCAPE: Final = _Table(str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "}))
_STR_ESCAPE: Final = str.maketrans({"\\": "\\\\", '"': '\\"'})
_FORBIDDEN_IN_NAMES: Final = re.compile(r"[\n\r\\\x00]")


@functools.lru_cache(maxsize=65_536)
def _name(value: str, table: _Table, what: str) -> str:
    # Cached: the same few field names and device ids recur in every batch, and
    # escaping them was most of the cost of encoding a point.
    if not value:
        raise LineProtocolError(f"empty {what}")
    if _FORBIDDEN_IN_NAMES.search(value):
        raise LineProtocolError(f"{what} {value[:40]!r} holds a line break or backslash")
    return value.translate(table)


def _field_value(value: FieldValue) -> str:
    # Floats first (most values are); bool before int: bool is an int subclass.
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise LineProtocolError(f"non-finite float {value!r}")
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):  # a float subclass
        if not math.isfinite(value):
            raise LineProtocolError(f"non-finite float {value!r}")
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        return '"' + value.translate(_STR_ESCAPE) + '"'
    raise LineProtocolError(f"unsupported field type {type(value).__name__}")


def encode_head(measurement: str, tags: Mapping[str, str]) -> str:
    """A series' measurement and tags, escaped: the part of a line its points share.

    Tags are sorted by key (InfluxDB's preferred order); empty tag values are
    left out, since line protocol has no way to write them.
    """
    parts = [_name(measurement, _MEAS_ESCAPE, "measurement")]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue
        parts.append(
            f"{_name(key, _KEY_ESCAPE, 'tag key')}={_name(value, _KEY_ESCAPE, 'tag value')}"
        )
    return ",".join(parts)


@functools.lru_cache(maxsize=4096)  # bounded: field names may come from hostile input
def field_key(name: str) -> str:
    """``name=`` escaped as a field key: the same few names recur in every point."""
    return _name(name, _KEY_ESCAPE, "field key") + "="


def encode_field_set(fields: Mapping[str, FieldValue]) -> str:
    """``k=v,k=v`` (no head, no time).  The common types are formatted inline, not
    through :func:`_field_value`: this loop is ingest's hottest code (per field of
    every reading), and the call per field was a third of it."""
    parts: list[str] = []
    append = parts.append
    for name, value in fields.items():
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):  # type: ignore[arg-type]
                raise LineProtocolError(f"non-finite float {value!r}")
            append(field_key(name) + repr(value))
        elif kind is int:
            append(f"{field_key(name)}{value}i")
        elif kind is bool:
            append(field_key(name) + ("true" if value else "false"))
        else:
            append(field_key(name) + _field_value(value))
    return ",".join(parts)


def encode_fields(head: str, fields: Mapping[str, FieldValue], ts: int | None = None) -> str:
    """One line of the series ``head`` (from :func:`encode_head`): encoding many
    points of one series builds the escaped head once, not per point."""
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    body = encode_field_set(fields)
    return f"{head} {body}" if ts is None else f"{head} {body} {ts}"


def encode_point(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    ts: int | None = None,
) -> str:
    """One line of line protocol (no trailing newline); ``ts`` is in the precision
    the write request names."""
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    return encode_fields(encode_head(measurement, tags), fields, ts)


def encode_lines(lines: Iterable[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()
