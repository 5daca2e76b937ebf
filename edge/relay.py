"""What the gateway does to a message on its way through: pure functions, no I/O.

Uplink: a reading replayed from the backlog is marked ``hist`` (docs/CONTRACT.md)
and keeps its ``ts``; a replayed reading without one (a node whose clock is not
synced) gets the time the gateway received it, since the platform would
otherwise stamp it with the replay time.  Everything else is forwarded byte for
byte; a payload the platform will reject anyway (not JSON, too large) is never
"repaired" here, so the dead letter shows what the node sent.

Downlink: a command that expired before it reached the gateway (it waited in the
platform broker's queue through an outage) is answered ``expired`` by the
gateway instead of being relayed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from deltasense.contract import MAX_PAYLOAD_BYTES, Channel

HIST: Final = "hist"
TS: Final = "ts"
EXPIRED: Final = "expired"
RETAINED_CHANNELS: Final = frozenset({Channel.STATUS, Channel.META, Channel.CFG})
UPLINK_CHANNELS: Final = (Channel.TELE, Channel.STATUS, Channel.META, Channel.ACK)
DOWNLINK_CHANNELS: Final = (Channel.CMD, Channel.CFG)


def channel_of(topic: str) -> str:
    return topic.rsplit("/", 1)[-1]


def retained(topic: str) -> bool:
    """Whether the contract keeps this channel retained (status, meta, cfg).

    Decided by the channel, not by the retain flag the ward broker delivers:
    MQTT 3.1.1 clears that flag on live forwarding."""
    return channel_of(topic) in RETAINED_CHANNELS


def _mark(reading: Any, stamp_ms: int) -> bool:
    if not isinstance(reading, dict):
        return False
    reading.setdefault(HIST, True)
    reading.setdefault(TS, stamp_ms)
    return True


def as_replayed(topic: str, payload: bytes, received_ms: int) -> bytes:
    """The payload to send for a record replayed from the backlog."""
    if channel_of(topic) != Channel.TELE:
        return payload
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return payload
    if isinstance(doc, list):
        # Readings of a batch without ts get distinct stamps, as the platform's own.
        marked = [_mark(r, received_ms + i) for i, r in enumerate(doc)]
        if not doc or not all(marked):
            return payload
    elif not _mark(doc, received_ms):
        return payload
    out = json.dumps(doc, separators=(",", ":")).encode()  # ASCII escapes: any text encodes
    return out if len(out) <= MAX_PAYLOAD_BYTES else payload


@dataclass(frozen=True)
class Verdict:
    """What to do with a command from the platform: relay it, or answer it here."""

    relay: bool
    ack: bytes | None = None  # the gateway's own ack, when it answers


def triage_command(payload: bytes, now_ms: int) -> Verdict:
    """Relay a command unless its ``expires`` has passed; then the gateway acks it.

    A payload the gateway cannot read is relayed: the node answers every payload
    with an ack (firmware/ds/commands.py), so its error is the one the operator sees."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return Verdict(relay=True)
    if not isinstance(doc, dict):
        return Verdict(relay=True)
    expires, cmd_id = doc.get("expires"), doc.get("id")
    if (
        isinstance(expires, int)
        and not isinstance(expires, bool)
        and isinstance(cmd_id, str)
        and 1 <= len(cmd_id) <= 64
        and expires < now_ms
    ):
        ack = {"id": cmd_id, "ok": False, "error": EXPIRED, "ts": now_ms}
        return Verdict(relay=False, ack=json.dumps(ack, separators=(",", ":")).encode())
    return Verdict(relay=True)


def ack_topic(cmd_topic: str) -> str:
    return cmd_topic.rsplit("/", 1)[0] + "/" + Channel.ACK
