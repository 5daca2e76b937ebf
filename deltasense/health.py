"""Platform health on the bus: ingest's reports and the broker's ``$SYS`` counters.

Each ingest worker publishes an :class:`IngestReport` on
``{site}/_health/ingest/{worker}`` every ``ingest_health_interval_s`` (QoS 1, not
retained): its counters since it started and how far behind the readings it
stored were.  Analytics reads them, and the two Mosquitto ``$SYS`` counters below,
and raises the platform health alerts (``analytics/ruleset.py``, subject
``platform``).  docs/CONTRACT.md describes the topics.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from deltasense.contract import is_ident

HEALTH_DISTRICT: Final = "_health"
# Mosquitto 2.0 (checked on 2.0.11): messages dropped because a client's queue was full
# (max_queued_messages) or it could take no more in flight, since the broker started;
# and messages held in its store (retained and queued).  Published every sys_interval.
BROKER_DROPPED_TOPIC: Final = "$SYS/broker/publish/messages/dropped"
BROKER_STORED_TOPIC: Final = "$SYS/broker/store/messages/count"
BROKER_TOPICS: Final = (BROKER_DROPPED_TOPIC, BROKER_STORED_TOPIC)
REPORT_MAX_BYTES: Final = 1024

_Count = Annotated[int, msgspec.Meta(ge=0)]


class IngestReport(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One ingest worker's state.  A new ``started`` is a new process: its counters
    began again at zero."""

    worker: Annotated[int, msgspec.Meta(ge=0, lt=1000)]
    started: _Count  # ms, when the process started
    ts: _Count  # ms, when the report was made
    messages: _Count  # MQTT messages taken (stored, ignored or dead letters)
    deadletters: _Count
    # Median, over the report's batches, of (written − the reading's own ts), for
    # readings stamped by their device and sent live; None when none was written.
    lag_s: Annotated[float, msgspec.Meta(ge=-1e7, le=1e9)] | None = None


class HealthError(ValueError):
    """A health report or ``$SYS`` value that is not what the contract says."""


def ingest_topic(site: str, worker: int) -> str:
    if not is_ident(site):
        raise ValueError(f"site {site!r} is not an identifier")
    return f"{site}/{HEALTH_DISTRICT}/ingest/{worker}"


def health_filter(site: str) -> str:
    return f"{site}/{HEALTH_DISTRICT}/#"


def encode(report: IngestReport) -> bytes:
    return msgspec.json.encode(report)


_DECODER: Final = msgspec.json.Decoder(IngestReport)


def decode(payload: bytes) -> IngestReport:
    if len(payload) > REPORT_MAX_BYTES:
        raise HealthError(f"report of {len(payload)} bytes > {REPORT_MAX_BYTES}")
    try:
        return _DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise HealthError(str(exc)) from None


def broker_counter(payload: bytes) -> int:
    """A ``$SYS`` counter's payload: a decimal count."""
    text = payload[:32].decode("ascii", errors="replace").strip()
    if not text.isdigit():
        raise HealthError(f"not a count: {payload[:32]!r}")
    return int(text)
