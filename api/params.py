"""Pure parsing and validation of query parameters (durations, times, fields).

Everything here raises :class:`ParamError` with a message meant for the
client; routes turn it into a 422.  Nothing here touches the database.
"""

from __future__ import annotations

import math
import re
import typing
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from deltasense.contract import FIELD_RE, FIELDS_BY_KIND, HEALTH_FIELDS, WIRE_TYPES, Kind
from deltasense.runtime import DEFAULT_UTC_OFFSET_MIN, utc_offset_text
from deltasense.runtime import now_ms as runtime_now_ms

MAX_BUCKETS: Final = 10_000
DEFAULT_WINDOW_MS: Final = 24 * 3600 * 1000
# Default bucket widths, smallest first; the first giving at most TARGET_BUCKETS wins.
_NICE_S: Final = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400)
TARGET_BUCKETS: Final = 500

_DURATION_RE: Final = re.compile(r"([1-9][0-9]{0,6})(s|m|h|d|w)")
_UNIT_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EPOCH_MS_RE: Final = re.compile(r"-?[0-9]{1,16}")
_RELATIVE_RE: Final = re.compile(r"-[1-9][0-9]{0,6}[smhdw]")
MIN_TIME_MS: Final = 0  # 1970-01-01T00:00:00Z
MAX_TIME_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z (exclusive)


class ParamError(ValueError):
    """A query parameter the client got wrong; the message says how, ``param`` which."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def parse_duration(text: str) -> int:
    """``30s``, ``5m``, ``1h``, ``2d``, ``1w`` → seconds (at least 1)."""
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ParamError(
            f"duration {text[:40]!r} must be a positive integer followed by s, m, h, d or w "
            "(e.g. 30s, 5m, 1h)"
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def format_duration(seconds: int) -> str:
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_S[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_time(
    text: str,
    name: str,
    utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN,
    *,
    now: int | None = None,
) -> int:
    """A time → epoch ms: ISO-8601 with an offset (``2025-06-01T07:00:00+07:00``, ``…Z``),
    epoch ms, ``now``, or relative to now (``-24h``, ``-7d``, ``-90m``, ``-1w``).

    A time without an offset is refused, not guessed; the site's offset
    (``utc_offset_min``) only serves as the example in the message.  Every time
    outside [1970, 2100) is refused here (InfluxDB cannot hold most of them: a
    year-0001 range used to reach it and come back as a 503)."""
    if text == "now" or _RELATIVE_RE.fullmatch(text):
        base = now if now is not None else runtime_now_ms()
        ms = base if text == "now" else base - parse_duration(text[1:]) * 1000
    elif _EPOCH_MS_RE.fullmatch(text):
        ms = int(text)
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ParamError(
                f"{name} {text[:40]!r} is neither epoch milliseconds, now, a relative time "
                "(-24h, -7d) nor an ISO-8601 time",
                name,
            ) from None
        if parsed.tzinfo is None:
            raise ParamError(
                f"{name} {text[:40]!r} needs a UTC offset "
                f"(e.g. Z or {utc_offset_text(utc_offset_min)})",
                name,
            )
        try:
            ms = int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError):
            ms = MIN_TIME_MS - 1
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise ParamError(
            f"{name} {text[:40]!r} is out of range: times from 1970-01-01 to 2100-01-01 "
            f"(epoch ms {MIN_TIME_MS} to {MAX_TIME_MS})",
            name,
        )
    return ms


def time_range(
    start: str | None, end: str | None, now_ms: int, utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN
) -> tuple[int, int]:
    offset = utc_offset_min
    end_ms = parse_time(end, "end", offset, now=now_ms) if end is not None else now_ms
    start_ms = (
        parse_time(start, "start", offset, now=now_ms)
        if start is not None
        else end_ms - DEFAULT_WINDOW_MS
    )
    if start_ms >= end_ms:
        raise ParamError("start must be before end", "start")
    return start_ms, end_ms


def bucket_starts(start_ms: int, end_ms: int, every_s: int) -> range:
    """Bucket start times (ms) InfluxDB's ``GROUP BY time(every)`` yields for [start, end)."""
    every_ms = every_s * 1000
    first = start_ms - start_ms % every_ms  # InfluxDB aligns buckets to the epoch
    return range(first, end_ms, every_ms)


def choose_every(start_ms: int, end_ms: int, every: str | None) -> int:
    """Bucket width in seconds: the one asked for (bounded), or a readable default."""
    if every is None:
        for seconds in _NICE_S:
            if len(bucket_starts(start_ms, end_ms, seconds)) <= TARGET_BUCKETS:
                return seconds
        return math.ceil((end_ms - start_ms) / 1000 / TARGET_BUCKETS)
    try:
        seconds = parse_duration(every)
    except ParamError as exc:
        raise ParamError(f"every: {exc}", "every") from None
    count = len(bucket_starts(start_ms, end_ms, seconds))
    if count > MAX_BUCKETS:
        raise ParamError(
            f"every={every} gives {count} buckets over this range; at most {MAX_BUCKETS} "
            "are allowed: use a wider every or a shorter range",
            "every",
        )
    return seconds


def check_field_name(field: str) -> str:
    """Grammar and vocabulary check before the device is even looked up."""
    if not FIELD_RE.fullmatch(field):
        raise ParamError(f"field {field[:40]!r} must match {FIELD_RE.pattern}", "field")
    known = {f for fs in FIELDS_BY_KIND.values() for f in fs} | set(HEALTH_FIELDS)
    if field not in known:
        raise ParamError(f"unknown field {field!r}", "field")
    return field


def fields_of(kind: Kind) -> tuple[str, ...]:
    return (*FIELDS_BY_KIND[kind], *HEALTH_FIELDS)


def check_field_for_kind(field: str, kind: Kind) -> str:
    if field not in fields_of(kind):
        raise ParamError(
            f"field {field!r} is not measured by {kind.value} devices; "
            f"choose one of {', '.join(fields_of(kind))}",
            "field",
        )
    return field


def _bool_fields() -> frozenset[tuple[Kind, str]]:
    return frozenset(
        (kind, info.name)
        for kind, wire in WIRE_TYPES.items()
        for info in msgspec.structs.fields(wire)
        if bool in typing.get_args(info.type)
    )


_BOOL_FIELDS: Final = _bool_fields()


def is_bool_field(kind: Kind, field: str) -> bool:
    """Boolean fields (lamp ``on``) cannot be averaged; series use ``last`` for them."""
    return (kind, field) in _BOOL_FIELDS


Aggregate = Literal["mean", "min", "max", "last"]


def choose_aggregate(kind: Kind, field: str, agg: str | None) -> str:
    """The bucket aggregate: ``mean`` unless asked; a boolean (lamp ``on``) has only
    ``last`` (InfluxDB cannot average or order booleans)."""
    if is_bool_field(kind, field):
        if agg not in (None, "last"):
            raise ParamError(f"field {field!r} is a boolean: agg must be last (got {agg})", "agg")
        return "last"
    return agg or "mean"


def ms_to_rfc3339(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
