"""Decode → validate → QC → points (built by deltasense.schema), one MQTT message at a time.

No I/O here: :class:`Pipeline` turns (topic, payload, arrival time) into
line-protocol lines and, for anything that breaks the contract, a dead-letter
line.  It never raises on device input.  Lines are timed in ns
(``schema.INGEST_PRECISION``), so readings get their sub-ms identity offset.
"""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from deltasense import schema
from deltasense.contract import (
    BOOT_AT,
    HIST_AT,
    SEQ_AT,
    TS_AT,
    UNSET,
    Channel,
    ContractError,
    Topic,
    decode_meta,
    decode_rows,
    decode_status,
    parse_topic,
)
from deltasense.lineprotocol import LineProtocolError
from deltasense.reasons import Reason

_LOG = logging.getLogger(__name__)
_STORED_CHANNELS: Final = frozenset({Channel.TELE, Channel.STATUS, Channel.META})


@dataclass
class Outcome:
    """What one message became."""

    lines: list[str] = field(default_factory=list)
    readings: int = 0
    deadletter: Reason | None = None  # why the message was rejected
    ignored: bool = False
    topic: Topic | None = None
    # Newest device-stamped ts of its live readings (not hist): ingest's lag is measured on it.
    newest_ms: int | None = None


class _StampCache:
    """Arrival stamps given to readings without ``ts``, by (device, boot, seq).

    A redelivered reading must land on the same timestamp to be stored once, and
    two different readings of one device must not share a timestamp (a batch of
    unsynced readings arrives in one millisecond), so each new stamp is at least
    one millisecond after the device's previous one.  Bounded, oldest forgotten
    first.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._stamps: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._last: OrderedDict[str, int] = OrderedDict()

    def stamp(self, device: str, boot: int, seq: int, arrival_ms: int) -> int:
        key = (device, boot, seq)
        ts = self._stamps.get(key)
        if ts is None:
            ts = max(arrival_ms, self._last.get(device, 0) + 1)
            self._stamps[key] = ts
            self._last[device] = ts
            self._last.move_to_end(device)
            if len(self._stamps) > self._capacity:
                self._stamps.popitem(last=False)
            if len(self._last) > self._capacity:
                self._last.popitem(last=False)
        return ts


class Pipeline:
    """Stateful only for dedup stamps and unique dead-letter timestamps."""

    def __init__(self, site: str, *, stamp_capacity: int = 100_000) -> None:
        self.site = site
        self._stamps = _StampCache(stamp_capacity)
        self._last_deadletter_ns = 0

    def _deadletter(
        self, reason: Reason, topic: str, payload: bytes, detail: str, now_ms: int
    ) -> Outcome:
        # Dead letters share a series per reason: keep their timestamps unique
        # so two in the same millisecond do not overwrite each other (a hash of
        # the message separates those of parallel ingest workers too).
        offset = zlib.crc32(payload, zlib.crc32(topic.encode())) % schema.NS_PER_MS
        ts = max(now_ms * schema.NS_PER_MS + offset, self._last_deadletter_ns + 1)
        self._last_deadletter_ns = ts
        _LOG.warning(
            "dead letter (%s) on %.120s: %s; payload %.80r", reason, topic, detail, payload
        )
        line = schema.deadletter_line(reason, topic, payload, detail, ts)
        return Outcome(lines=[line], deadletter=reason)

    def handle(self, topic: str, payload: bytes, now_ms: int) -> Outcome:
        levels = topic.split("/")
        if levels[0] != self.site or (len(levels) > 1 and levels[1].startswith("_")):
            return Outcome(ignored=True)  # another site, or the platform's own subtree
        try:
            parsed = parse_topic(topic)
        except ContractError as exc:
            return self._deadletter(exc.reason, topic, payload, exc.detail, now_ms)
        if parsed.channel not in _STORED_CHANNELS:
            return Outcome(ignored=True, topic=parsed)
        try:
            outcome = self._decode(parsed, payload, now_ms)
        except ContractError as exc:
            return self._deadletter(exc.reason, topic, payload, exc.detail, now_ms)
        except LineProtocolError as exc:  # pragma: no cover - contract checks come first
            return self._deadletter(Reason.UNSTORABLE, topic, payload, str(exc), now_ms)
        outcome.topic = parsed
        return outcome

    def _decode(self, topic: Topic, payload: bytes, now_ms: int) -> Outcome:
        if topic.channel is Channel.TELE:
            rows = decode_rows(topic, payload, now_ms)
            stamps: list[int] = []
            newest: int | None = None  # of the live readings (not hist, not stamped here)
            for row in rows:
                ts = row[TS_AT]
                if ts is UNSET:
                    ts = self._stamps.stamp(topic.device, row[BOOT_AT], row[SEQ_AT], now_ms)
                elif row[HIST_AT] is not True and (newest is None or ts > newest):
                    newest = ts
                stamps.append(ts)
            lines = schema.row_lines(topic, rows, stamps)
            return Outcome(lines=lines, readings=len(rows), newest_ms=newest)
        now_ns = now_ms * schema.NS_PER_MS
        if topic.channel is Channel.STATUS:
            return Outcome(lines=[schema.status_line(topic, decode_status(payload), now_ns)])
        line = schema.meta_line(topic, decode_meta(payload), now_ns)
        return Outcome(lines=[line] if line else [])
