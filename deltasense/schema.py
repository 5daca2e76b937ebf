"""How DeltaSense lays out its data in InfluxDB (database ``settings.influx_db``).

This module owns every measurement, tag and field name and builds every point:
ingest, analytics, the API and the tests write through the builders below and
name what they query with the constants, so the layout is written once.  Time
precision is milliseconds throughout, except that ingest writes its points in
nanoseconds (``INGEST_PRECISION``) to give readings their sub-millisecond
offset; every query reads times back in ms (``epoch=ms``).

``weather`` / ``water`` / ``lamp`` / ``meter`` (one per kind)
    tags ``site``, ``district``, ``device``; fields: the kind's measured fields
    and health fields as sent (names: :mod:`deltasense.contract`), plus ``seq``
    and ``boot`` (integers), ``hist`` (true, only on replayed readings),
    ``ts_platform`` (true, only when the device sent no ``ts`` and ingest
    stamped the arrival time) and ``qc`` (comma-separated names of fields
    outside the QC range, only when any).  Timestamp = the reading's ``ts``
    plus a sub-millisecond offset made of its ``seq`` and ``boot``
    (:func:`reading_time_ns`; ingest writes in ns): a redelivered reading lands
    on the same nanosecond and overwrites itself (stored once), while two
    different readings of one device that claim the same ``ts`` are both kept.
``status``
    tags ``site``, ``district``, ``kind``, ``device``; fields ``state`` and
    ``device_ts`` (when sent).
``meta``
    same tags; fields: the contract's meta fields as sent (``fw``, ``hw``,
    ``boot``, ``reset_cause``, ``lat``, ``lon``, ``cfg_hash``, ``interval_s``,
    ``station``).
``devices`` (the registry)
    tag ``device``; fields ``site``, ``district``, ``kind``, ``last_seen``
    (ms).  Written when ingest first sees a device, when its district or kind
    changes, and then at most every 30 s while it reports, so ``last_seen`` is
    accurate to 30 s.
``deadletters``
    tag ``reason``; fields ``topic``, ``payload`` (truncated, UTF-8 with
    replacement) and ``detail``.
``alerts``
    tags ``id``, ``kind``, ``rule``, ``district``; fields ``subject``,
    ``state``, ``severity``, ``started`` and ``body`` (the whole event as JSON,
    :mod:`deltasense.alerts`).  Timestamp = the event's ``updated``, so
    ``SELECT last("body") … GROUP BY "id"`` yields each alert's latest state.
``commands`` (the broker keeps no history of commands)
    tags ``site``, ``district``, ``device``; fields ``id``, ``name``, ``args``
    (JSON), ``reason`` and ``source`` (who ordered it).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from deltasense import alerts, qc
from deltasense.alerts import AlertEvent
from deltasense.contract import (
    BOOT_AT,
    FIELD_AT,
    HIST_AT,
    SEQ_AT,
    TS_AT,
    Command,
    Kind,
    Meta,
    Reading,
    Row,
    Status,
    Topic,
    struct_to_dict,
)
from deltasense.lineprotocol import (
    FieldValue,
    encode_field_set,
    encode_head,
    encode_point,
    field_key,
)
from deltasense.reasons import Reason

_LOG = logging.getLogger(__name__)

# --- measurements ----------------------------------------------------------------------
READING_MEASUREMENTS: Final = tuple(k.value for k in Kind)
STATUS: Final = "status"
META: Final = "meta"
DEVICES: Final = "devices"
DEADLETTERS: Final = "deadletters"
ALERTS: Final = "alerts"
COMMANDS: Final = "commands"

# --- tags (some are fields elsewhere: the registry keeps site, district, kind as fields) -
SITE: Final = "site"
DISTRICT: Final = "district"
DEVICE: Final = "device"
KIND: Final = "kind"
REASON: Final = "reason"  # dead letters' tag; a commands field
ID: Final = "id"  # alerts' tag; a commands field
RULE: Final = "rule"
READING_TAGS: Final = (SITE, DISTRICT, DEVICE)
DEVICE_TAGS: Final = (SITE, DISTRICT, KIND, DEVICE)  # status and meta

# --- fields --------------------------------------------------------------------------------
SEQ: Final = "seq"
BOOT: Final = "boot"
HIST: Final = "hist"
TS_PLATFORM: Final = "ts_platform"
QC: Final = "qc"
READING_BOOKKEEPING: Final = frozenset({SEQ, BOOT, HIST, TS_PLATFORM, QC})
"""Reading fields that are no measurement."""
STATE: Final = "state"
DEVICE_TS: Final = "device_ts"
# Meta fields the platform reads back (contract field names, stored as sent).
FW: Final = "fw"
LAT: Final = "lat"
LON: Final = "lon"
INTERVAL_S: Final = "interval_s"
STATION: Final = "station"
LAST_SEEN: Final = "last_seen"
REGISTRY_FIELDS: Final = (SITE, DISTRICT, KIND, LAST_SEEN)
TOPIC: Final = "topic"
PAYLOAD: Final = "payload"
DETAIL: Final = "detail"
DEADLETTER_FIELDS: Final = (TOPIC, PAYLOAD, DETAIL)
SUBJECT: Final = "subject"
SEVERITY: Final = "severity"
STARTED: Final = "started"
BODY: Final = "body"
NAME: Final = "name"
ARGS: Final = "args"
SOURCE: Final = "source"

NS_PER_MS: Final = 1_000_000
INGEST_PRECISION: Final = "ns"
DEADLETTER_PAYLOAD_MAX: Final = 512
_DEADLETTER_TOPIC_MAX: Final = 256
_DEADLETTER_DETAIL_MAX: Final = 512


# --- point builders ------------------------------------------------------------------------
# Builders other than reading_line take the point's time in the precision of the
# write that carries it (ms, or ns for ingest).
def reading_time_ns(reading: Reading) -> int:
    """The reading's point time in ns: ``ts`` ms plus ``(seq % 1000) µs + (boot % 1000) ns``.

    A function of the reading's identity, so redelivery stays idempotent with no
    state (several ingest workers, restarts); within one ms it separates every
    pair of readings whose seq differ by less than 1000 or boots by less than 1000
    (a clock stepped back, a batch of one timestamp).  Readers see the ms.
    """
    return point_time_ns(reading.ts_ms, reading.seq, reading.boot)


def point_time_ns(ts_ms: int, seq: int, boot: int) -> int:
    """:func:`reading_time_ns` from the three numbers (peers that write without decoding)."""
    return ts_ms * NS_PER_MS + (seq % 1000) * 1000 + boot % 1000


@functools.lru_cache(maxsize=65_536)
def _series_head(kind: Kind, site: str, district: str, device: str) -> str:
    """A device's escaped series head, cached: escaping and sorting its tags cost
    as much as encoding a one-field reading."""
    return encode_head(kind.value, {SITE: site, DISTRICT: district, DEVICE: device})


def reading_line(reading: Reading, qc_flags: Iterable[str] = (), *, ns: bool = False) -> str:
    """A reading's point; in ms at ``ts`` (fixtures), or with ``ns`` at
    :func:`reading_time_ns` (ingest)."""
    head = _series_head(reading.kind, reading.site, reading.district, reading.device)
    ts = reading_time_ns(reading) if ns else reading.ts_ms
    return f"{head} {_reading_body(reading, qc_flags)} {ts}"


def reading_lines(
    readings: Sequence[Reading], qc_flags: Sequence[Iterable[str]], *, ns: bool = False
) -> list[str]:
    """The points of many readings (``qc_flags`` one per reading), as
    :func:`reading_line` makes them."""
    return [
        reading_line(reading, flags, ns=ns)
        for reading, flags in zip(readings, qc_flags, strict=True)
    ]


# Per kind: (index in the row, "name=", name, QC low, QC high) of each field a
# reading's point holds, in the order reading_line writes them.
_ROW_FIELDS: Final = {
    kind: tuple(
        (at, field_key(name), name, *qc.RANGES.get(name, (-math.inf, math.inf)))
        for at, name in FIELD_AT[kind]
    )
    for kind in Kind
}
_HIST_TAIL: Final = f",{HIST}=true"
_PLATFORM_TAIL: Final = f",{TS_PLATFORM}=true"


def row_lines(topic: Topic, rows: Sequence[Row], ts_ms: Sequence[int]) -> list[str]:
    """The points of one message's rows (:func:`deltasense.contract.decode_rows`), at
    ``ts_ms`` each (a row's own ``ts``, or the stamp ingest gave it), in ns: the lines
    :func:`reading_lines` makes of the same readings with their
    :func:`deltasense.qc.out_of_range` flags, built with no Reading or dict per
    reading and the QC ranges checked in the same pass (ingest's hot path)."""
    head = _series_head(topic.kind, topic.site, topic.district, topic.device) + " "
    fields = _ROW_FIELDS[topic.kind]
    unset = msgspec.UNSET
    lines: list[str] = []
    for row, ts in zip(rows, ts_ms, strict=True):
        parts: list[str] = []
        flagged: list[str] = []
        for at, key, name, low, high in fields:
            value = row[at]
            if value is unset:
                continue
            if value is True or value is False:
                parts.append(key + ("true" if value else "false"))
                continue
            # Floats are finite (decode_rows); ints are the health counters.
            parts.append(key + repr(value) if type(value) is float else f"{key}{value}i")
            if not low <= value <= high:
                flagged.append(name)
        seq, boot = row[SEQ_AT], row[BOOT_AT]
        parts.append(f"{SEQ}={seq}i,{BOOT}={boot}i")
        line = head + ",".join(parts)
        if row[HIST_AT] is True:
            line += _HIST_TAIL
        if row[TS_AT] is unset:
            line += _PLATFORM_TAIL
        if flagged:
            line += "," + encode_field_set({QC: ",".join(flagged)})
        lines.append(f"{line} {point_time_ns(ts, seq, boot)}")
    return lines


def _reading_body(reading: Reading, qc_flags: Iterable[str]) -> str:
    """The reading's fields, then ``seq``, ``boot`` and the flags, encoded straight
    into text (no merged dict per reading: this runs for every reading ingest stores)."""
    tail = f"{SEQ}={reading.seq}i,{BOOT}={reading.boot}i"
    if reading.hist:
        tail += f",{HIST}=true"
    if reading.ts_from_platform:
        tail += f",{TS_PLATFORM}=true"
    flagged = ",".join(qc_flags)
    if flagged:
        tail += "," + encode_field_set({QC: flagged})
    return f"{encode_field_set(reading.fields)},{tail}" if reading.fields else tail


def _device_tags(topic: Topic) -> dict[str, str]:
    return {
        SITE: topic.site,
        DISTRICT: topic.district,
        KIND: topic.kind.value,
        DEVICE: topic.device,
    }


def status_line(topic: Topic, status: Status, ts: int) -> str:
    fields: dict[str, FieldValue] = {STATE: status.state}
    if isinstance(status.ts, int):
        fields[DEVICE_TS] = status.ts
    return encode_point(STATUS, _device_tags(topic), fields, ts)


def meta_line(topic: Topic, meta: Meta, ts: int) -> str | None:
    """``None`` for a meta message with no field (nothing to store)."""
    fields: dict[str, FieldValue] = struct_to_dict(meta)
    if not fields:
        return None
    return encode_point(META, _device_tags(topic), fields, ts)


def device_line(topic: Topic, last_seen_ms: int, ts: int) -> str:
    fields: dict[str, FieldValue] = {
        SITE: topic.site,
        DISTRICT: topic.district,
        KIND: topic.kind.value,
        LAST_SEEN: last_seen_ms,
    }
    return encode_point(DEVICES, {DEVICE: topic.device}, fields, ts)


def deadletter_line(reason: Reason, topic: str, payload: bytes, detail: str, ts: int) -> str:
    fields: dict[str, FieldValue] = {
        TOPIC: topic[:_DEADLETTER_TOPIC_MAX],
        PAYLOAD: payload[:DEADLETTER_PAYLOAD_MAX].decode("utf-8", errors="replace"),
        DETAIL: detail[:_DEADLETTER_DETAIL_MAX],
    }
    return encode_point(DEADLETTERS, {REASON: reason}, fields, ts)


def alert_line(event: AlertEvent) -> str:
    tags = {ID: event.id, KIND: event.kind, RULE: event.rule, DISTRICT: event.district}
    fields: dict[str, FieldValue] = {
        SUBJECT: event.subject,
        STATE: event.state,
        SEVERITY: event.severity,
        STARTED: event.started,
        BODY: alerts.encode(event).decode(),
    }
    return encode_point(ALERTS, tags, fields, event.updated)


def command_line(
    site: str, district: str, device: str, command: Command, *, reason: str, source: str, ts: int
) -> str:
    fields: dict[str, FieldValue] = {
        ID: command.id,
        NAME: command.name,
        ARGS: msgspec.json.encode(command.args).decode(),
        REASON: reason,
        SOURCE: source,
    }
    return encode_point(COMMANDS, {SITE: site, DISTRICT: district, DEVICE: device}, fields, ts)


# --- reading back --------------------------------------------------------------------------
def alert_from_body(body: Any) -> AlertEvent | None:
    """A stored ``body`` as its event; ``None`` (logged) when it is not one."""
    if not isinstance(body, str):
        return None
    try:
        return alerts.decode(body.encode())
    except ValueError as exc:  # msgspec.DecodeError is a ValueError
        _LOG.warning("undecodable alert body %.120r skipped: %s", body, exc)
        return None
