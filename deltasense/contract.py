"""The DeltaSense wire contract v1 (``docs/CONTRACT.md``), defined once.

Pure functions only: topic grammar, the reading types per kind, and decoding of
``tele``, ``status`` and ``meta`` payloads into one normalised record type.
Everything that does not match raises :class:`ContractError` with a short,
stable ``reason`` code that ingest uses for its dead-letter records.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

import msgspec

from deltasense import rawjson
from deltasense.reasons import Reason

IDENT_PATTERN: Final = r"[a-z0-9][a-z0-9-]{0,31}"
IDENT_RE: Final = re.compile(IDENT_PATTERN)
# Field names used in queries; every field defined below matches it.
FIELD_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")

MAX_PAYLOAD_BYTES: Final = 4096
MAX_BATCH: Final = 100
MAX_FUTURE_MS: Final = 5 * 60 * 1000
# 2020-01-01T00:00:00Z: no DeltaSense device ran before; an earlier ts is a clock
# that never synced (RTCs start at 1970 or 2000) or a forgery.
MIN_TS_MS: Final = 1_577_836_800_000
# seq and boot are device counters; the firmware's fit in a signed 32-bit int.
MAX_COUNTER: Final = 2**31 - 1
DEFAULT_SITE: Final = "baclieu"
ALERTS_DISTRICT: Final = "_alerts"
EDGE_DISTRICT: Final = "_edge"  # {site}/_edge/{district}/status: a ward gateway's health
ACKS_DISTRICT: Final = "_acks"  # operators' acknowledgements: {site}/_acks/{alert id}
SILENCES_DISTRICT: Final = "_silences"  # console silences: {site}/_silences/{id}, retained


class Kind(StrEnum):
    WEATHER = "weather"
    WATER = "water"
    LAMP = "lamp"
    METER = "meter"


class Channel(StrEnum):
    TELE = "tele"
    STATUS = "status"
    META = "meta"
    CMD = "cmd"
    ACK = "ack"
    CFG = "cfg"


class ContractError(ValueError):
    """A message or identifier that breaks the contract.

    ``reason`` is a stable machine-readable code (:class:`deltasense.reasons.Reason`);
    the message says what exactly is wrong.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_ident(value: str) -> bool:
    return IDENT_RE.fullmatch(value) is not None


class Topic(msgspec.Struct, frozen=True):
    site: str
    district: str
    kind: Kind
    device: str
    channel: Channel

    def __str__(self) -> str:
        return f"{self.site}/{self.district}/{self.kind}/{self.device}/{self.channel}"


def device_topic(
    site: str, district: str, kind: Kind | str, device: str, channel: Channel | str
) -> str:
    """Build a device topic, validating every level."""
    topic = f"{site}/{district}/{kind}/{device}/{channel}"
    parse_topic(topic)
    return topic


def edge_status_topic(site: str, district: str) -> str:
    """Where a district's edge gateway reports its health (retained; edge/)."""
    for name, value in (("site", site), ("district", district)):
        if not is_ident(value):
            raise ContractError(
                Reason.BAD_TOPIC, f"{name} {value[:40]!r} does not match {IDENT_PATTERN}"
            )
    return f"{site}/{EDGE_DISTRICT}/{district}/status"


def edge_alert_topic(site: str, district: str) -> str:
    """Where a district's edge gateway hands over the alerts it raised offline
    (QoS 1, not retained; analytics adopts them: docs/CONTRACT.md)."""
    return edge_status_topic(site, district).rsplit("/", 1)[0] + "/alert"


def edge_alerts_filter(site: str) -> str:
    return f"{site}/{EDGE_DISTRICT}/+/alert"


def edge_district_of(site: str, topic: str) -> str | None:
    """The district of ``{site}/_edge/{district}/alert`` (None for any other topic)."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == site and parts[1] == EDGE_DISTRICT and parts[3] == "alert":
        return parts[2] if is_ident(parts[2]) else None
    return None


@functools.lru_cache(maxsize=65_536)
def parse_topic(topic: str) -> Topic:
    """Split ``{site}/{district}/{kind}/{device}/{channel}`` and check the grammar.

    Cached (a Topic is frozen): a city's devices publish on the same few thousand
    topics, and parsing one took 5.7 µs, a quarter of ingest's work on a single
    reading (timeit, this box).  A topic that fails raises each time and is not kept."""
    parts = topic.split("/")
    if len(parts) != 5:
        raise ContractError(Reason.BAD_TOPIC, f"expected 5 levels, got {len(parts)}")
    site, district, kind, device, channel = parts
    for name, value in (("site", site), ("district", district), ("device", device)):
        if not is_ident(value):
            raise ContractError(
                Reason.BAD_TOPIC, f"{name} {value[:40]!r} does not match {IDENT_PATTERN}"
            )
    try:
        kind_v = Kind(kind)
    except ValueError:
        raise ContractError(Reason.BAD_TOPIC, f"unknown kind {kind[:40]!r}") from None
    try:
        channel_v = Channel(channel)
    except ValueError:
        raise ContractError(Reason.BAD_TOPIC, f"unknown channel {channel[:40]!r}") from None
    return Topic(site, district, kind_v, device, channel_v)


# --- wire types ---------------------------------------------------------------
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class _ReadingBase(msgspec.Struct, kw_only=True):
    """Common fields. Absent fields stay ``UNSET``; JSON ``null`` is rejected.
    ``seq``, ``boot`` and ``ts`` are range-checked after decoding, so each range
    has its own reason code."""

    seq: int
    boot: int
    ts: int | Unset = UNSET
    hist: bool | Unset = UNSET
    rssi_dbm: float | Unset = UNSET
    batt_v: float | Unset = UNSET
    heap_b: NonNegInt | Unset = UNSET
    up_s: NonNegInt | Unset = UNSET


class WeatherReading(_ReadingBase, kw_only=True):
    t_c: float | Unset = UNSET
    rh_pct: float | Unset = UNSET
    p_hpa: float | Unset = UNSET
    wind_ms: float | Unset = UNSET
    gust_ms: float | Unset = UNSET
    wind_dir_deg: float | Unset = UNSET
    rain_mm_total: float | Unset = UNSET
    lux: float | Unset = UNSET


class WaterReading(_ReadingBase, kw_only=True):
    level_cm: float | Unset = UNSET
    dist_mm: float | Unset = UNSET


class LampReading(_ReadingBase, kw_only=True):
    on: bool | Unset = UNSET
    dim_pct: float | Unset = UNSET
    power_w: float | Unset = UNSET
    energy_wh_total: float | Unset = UNSET
    lux: float | Unset = UNSET


class MeterReading(_ReadingBase, kw_only=True):
    v: float | Unset = UNSET
    a: float | Unset = UNSET
    power_w: float | Unset = UNSET
    pf: float | Unset = UNSET
    hz: float | Unset = UNSET
    energy_wh_total: float | Unset = UNSET


WIRE_TYPES: Final[dict[Kind, type[_ReadingBase]]] = {
    Kind.WEATHER: WeatherReading,
    Kind.WATER: WaterReading,
    Kind.LAMP: LampReading,
    Kind.METER: MeterReading,
}
COMMON_FIELDS: Final = frozenset(_ReadingBase.__struct_fields__)
HEALTH_FIELDS: Final = ("rssi_dbm", "batt_v", "heap_b", "up_s")
# Measured fields per kind, in contract order.
FIELDS_BY_KIND: Final[dict[Kind, tuple[str, ...]]] = {
    kind: tuple(f for f in t.__struct_fields__ if f not in COMMON_FIELDS)
    for kind, t in WIRE_TYPES.items()
}
ALL_FIELDS: Final = frozenset(f for fs in FIELDS_BY_KIND.values() for f in fs) | frozenset(
    HEALTH_FIELDS
)

_DECODERS: Final = {
    kind: msgspec.json.Decoder(t | list[t])  # type: ignore[valid-type]
    for kind, t in WIRE_TYPES.items()
}

FieldValue = float | int | bool


class Reading(msgspec.Struct, kw_only=True):
    """One decoded, validated reading: the record every platform room passes on."""

    site: str
    district: str
    kind: Kind
    device: str
    ts_ms: int
    seq: int
    boot: int
    ts_from_platform: bool = False
    hist: bool = False
    fields: dict[str, FieldValue] = msgspec.field(default_factory=dict)


def _check_size(payload: bytes) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(Reason.TOO_LARGE, f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")


# NaN/Infinity literals (and MicroPython's nan/inf) make a payload invalid JSON;
# they get their own reason because they mean a sensor fault, not a broken encoder.
_NON_FINITE_RE: Final = re.compile(rb"(?i)(?:^|[\[:,\s])-?(?:nan|inf(?:inity)?)\b")


def _decode_error(exc: msgspec.DecodeError, payload: bytes) -> ContractError:
    detail = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        if detail.startswith("Number out of range"):  # 1e999: beyond the float range
            return ContractError(Reason.NON_FINITE, detail)
        return ContractError(Reason.SCHEMA, detail)
    if _NON_FINITE_RE.search(payload):
        return ContractError(Reason.NON_FINITE, f"NaN or infinity literal ({detail})")
    return ContractError(Reason.NOT_JSON, detail)


def check_raw(payload: bytes, members: int, zero_float: bool) -> None:
    """Reject duplicate keys and floats that underflowed to 0.0 (``rawjson``).

    ``members`` is how many object members the typed decode used (the set fields
    of every reading), ``zero_float`` whether any decoded float is 0.0.  Every
    member has exactly one ``:`` outside strings, so when the payload holds
    exactly ``members`` colons there is no duplicate and no unknown member, and
    the exact (slow) scan runs only if a 0.0 might have been a tiny literal.
    Payloads with unknown fields or colons in strings always take the scan.
    """
    if payload.count(b":") == members and not (zero_float and rawjson.may_underflow(payload)):
        return
    try:
        rawjson.scan(payload)
    except rawjson.RawJsonError as exc:
        raise ContractError(exc.reason, exc.detail) from None


def check_ranges(reading: Reading, ts: int | Unset, now_ms: int, where: str) -> None:
    """The per-reading checks after decoding: counters, ``ts``, measured fields."""
    if not 0 <= reading.seq <= MAX_COUNTER:
        raise ContractError(Reason.BAD_SEQ, f"{where}.seq {reading.seq} outside 0..2^31-1")
    if not 0 <= reading.boot <= MAX_COUNTER:
        raise ContractError(Reason.BAD_BOOT, f"{where}.boot {reading.boot} outside 0..2^31-1")
    if ts is not UNSET:
        if ts < MIN_TS_MS:
            raise ContractError(Reason.PAST_TS, f"{where}.ts {ts} is before 2020-01-01")
        if ts > now_ms + MAX_FUTURE_MS:
            raise ContractError(
                Reason.FUTURE_TS, f"{where}.ts is {(ts - now_ms) // 1000} s in the future"
            )
    measured = FIELDS_BY_KIND[reading.kind]
    if not any(name in reading.fields for name in measured):
        raise ContractError(
            Reason.NO_FIELDS, f"{where} has none of the {reading.kind} fields {', '.join(measured)}"
        )


# A wire reading as a row: its struct's values in field order (``astuple``), UNSET
# where absent.  Ingest encodes rows straight into line protocol, with no
# :class:`Reading` or field dict per reading (its hot path); everyone else gets
# readings from them (:func:`decode_tele`).
Row = tuple[Any, ...]
SEQ_AT: Final = _ReadingBase.__struct_fields__.index("seq")
BOOT_AT: Final = _ReadingBase.__struct_fields__.index("boot")
TS_AT: Final = _ReadingBase.__struct_fields__.index("ts")
HIST_AT: Final = _ReadingBase.__struct_fields__.index("hist")
_COMMON_AT: Final = len(_ReadingBase.__struct_fields__)  # a kind's own fields follow
# (index in the row, name) of every field a Reading's ``fields`` holds, in its order:
# the measured fields in contract order, then the health fields.
FIELD_AT: Final[dict[Kind, tuple[tuple[int, str], ...]]] = {
    kind: tuple(
        (t.__struct_fields__.index(name), name) for name in FIELDS_BY_KIND[kind] + HEALTH_FIELDS
    )
    for kind, t in WIRE_TYPES.items()
}


def decode_rows(topic: Topic, payload: bytes, now_ms: int) -> list[Row]:
    """Decode and check a ``tele`` payload (one reading or a batch) into rows.

    The whole message is rejected if any reading in it breaks the contract, so a
    device never sees half a batch accepted.  Checks run in the order of
    ``Reason`` (docs/CONTRACT.md), so a message with several faults gets the
    first one's reason.
    """
    _check_size(payload)
    try:
        decoded = _DECODERS[topic.kind].decode(payload)
    except msgspec.DecodeError as exc:
        raise _decode_error(exc, payload) from None
    wires: list[_ReadingBase] = decoded if isinstance(decoded, list) else [decoded]
    if not wires:
        raise ContractError(Reason.EMPTY_BATCH, "batch holds no reading")
    if len(wires) > MAX_BATCH:
        raise ContractError(Reason.BATCH_TOO_LARGE, f"{len(wires)} readings > {MAX_BATCH}")
    astuple = msgspec.structs.astuple
    rows = [astuple(wire) for wire in wires]
    measurable = len(FIELDS_BY_KIND[topic.kind])
    members = 0
    zero_float = False
    first_bad = -1  # the first reading that fails check_ranges, raised after check_raw
    latest = now_ms + MAX_FUTURE_MS
    # msgspec refuses numbers beyond the float range and JSON has no NaN or
    # infinity literal, so every float here is finite.  Counting and comparing
    # within the tuples runs in C: this loop is per reading of every message.
    for i, row in enumerate(rows):
        members += len(row) - row.count(UNSET)  # every set field is one JSON member
        # A 0.0 might be a literal that underflowed (check_raw).  ``in`` also
        # matches an int 0 or false, which only costs check_raw a closer look.
        zero_float = zero_float or 0.0 in row
        if first_bad < 0:
            seq, boot, ts = row[SEQ_AT], row[BOOT_AT], row[TS_AT]
            if not (
                row[_COMMON_AT:].count(UNSET) < measurable
                and 0 <= seq <= MAX_COUNTER
                and 0 <= boot <= MAX_COUNTER
                and (ts is UNSET or MIN_TS_MS <= ts <= latest)
            ):
                first_bad = i
    check_raw(payload, members, zero_float)
    if first_bad >= 0:
        where = f"$[{first_bad}]" if isinstance(decoded, list) else "$"
        bad = rows[first_bad]
        check_ranges(reading_of(topic, bad, now_ms), bad[TS_AT], now_ms, where)
        raise AssertionError("check_ranges accepts what the fast test refused")  # pragma: no cover
    return rows


def reading_of(topic: Topic, row: Row, now_ms: int) -> Reading:
    """A row as a :class:`Reading`; one without ``ts`` gets ``now_ms`` and
    ``ts_from_platform=True``."""
    ts = row[TS_AT]
    return Reading(
        site=topic.site,
        district=topic.district,
        kind=topic.kind,
        device=topic.device,
        ts_ms=now_ms if ts is UNSET else ts,
        seq=row[SEQ_AT],
        boot=row[BOOT_AT],
        ts_from_platform=ts is UNSET,
        hist=row[HIST_AT] is True,
        fields={
            name: value for at, name in FIELD_AT[topic.kind] if (value := row[at]) is not UNSET
        },
    )


def decode_tele(topic: Topic, payload: bytes, now_ms: int) -> list[Reading]:
    """Decode a ``tele`` payload (one reading or a batch) into readings
    (:func:`decode_rows`, then :func:`reading_of`)."""
    return [reading_of(topic, row, now_ms) for row in decode_rows(topic, payload, now_ms)]


# --- status and meta ------------------------------------------------------------
DeviceState = Literal["online", "offline", "sleeping"]
# Where a water node measures (an extension of the v1 meta record): street drains
# report level above the road surface, canal stations above the gauge datum.
WaterStation = Literal["drain", "canal"]


class Status(msgspec.Struct, kw_only=True):
    state: DeviceState
    ts: NonNegInt | Unset = UNSET


class Meta(msgspec.Struct, kw_only=True):
    fw: str | Unset = UNSET
    hw: str | Unset = UNSET
    boot: NonNegInt | Unset = UNSET
    reset_cause: str | Unset = UNSET
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | Unset = UNSET
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] | Unset = UNSET
    cfg_hash: str | Unset = UNSET
    interval_s: Annotated[float, msgspec.Meta(gt=0)] | Unset = UNSET
    station: WaterStation | Unset = UNSET


_STATUS_DECODER: Final = msgspec.json.Decoder(Status)
_META_DECODER: Final = msgspec.json.Decoder(Meta)


def decode_status(payload: bytes) -> Status:
    _check_size(payload)
    try:
        return _STATUS_DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise _decode_error(exc, payload) from None


def decode_meta(payload: bytes) -> Meta:
    _check_size(payload)
    try:
        meta = _META_DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise _decode_error(exc, payload) from None
    for name in ("fw", "hw", "reset_cause", "cfg_hash"):
        value = getattr(meta, name)
        if value is not UNSET and len(value) > 64:
            raise ContractError(Reason.SCHEMA, f"$.{name} longer than 64 characters")
    return meta


def struct_to_dict(obj: msgspec.Struct) -> dict[str, Any]:
    """Fields of a wire struct that were present, as a plain dict."""
    return {k: v for k, v in msgspec.structs.asdict(obj).items() if v is not UNSET}


# --- commands (platform → device) and acks ---------------------------------------
class Command(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    args: dict[str, Any] = msgspec.field(default_factory=dict)
    expires: NonNegInt


class Ack(msgspec.Struct, kw_only=True):
    id: str
    ok: bool
    error: str | Unset = UNSET
    ts: NonNegInt | Unset = UNSET
