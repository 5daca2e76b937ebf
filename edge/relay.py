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


_DECODER: Final = json.JSONDecoder()
_WS: Final = " \t\n\r"


def _members(reading: Any, stamp_ms: int) -> str | None:
    """The members to add to one reading, or None when it is not a reading object."""
    if not isinstance(reading, dict) or not reading:
        return None
    add = "" if HIST in reading else f'"{HIST}":true,'
    if TS not in reading:
        add += f'"{TS}":{stamp_ms},'
    return add


def _object_starts(text: str) -> list[int] | None:
    """Where each element of a top-level JSON array starts (its ``{``)."""
    i = text.index("[") + 1
    starts: list[int] = []
    while True:
        while i < len(text) and text[i] in _WS:
            i += 1
        if i < len(text) and text[i] == "]":
            return starts
        if i >= len(text) or text[i] != "{":
            return None
        starts.append(i)
        _, i = _DECODER.raw_decode(text, i)
        while i < len(text) and text[i] in _WS:
            i += 1
        if i < len(text) and text[i] == ",":
            i += 1


def as_replayed(topic: str, payload: bytes, received_ms: int) -> bytes:
    """The payload to send for a record replayed from the backlog.

    The members are inserted into the text, never by re-encoding: what the node
    wrote (number spellings, a duplicate key, a NaN) reaches the platform as it
    was, so the platform's verdict on the reading is the same as without a
    gateway."""
    if channel_of(topic) != Channel.TELE:
        return payload
    try:
        text = payload.decode()
        doc = json.loads(text)
        if isinstance(doc, dict):
            add = _members(doc, received_ms)
            if add is None:
                return payload
            at = text.index("{") + 1
            out = text[:at] + add + text[at:]
        elif isinstance(doc, list) and doc:
            # Readings of a batch without ts get distinct stamps, as the platform's own.
            adds = [_members(r, received_ms + i) for i, r in enumerate(doc)]
            starts = _object_starts(text)
            if starts is None or len(starts) != len(doc) or any(a is None for a in adds):
                return payload
            parts, last = [], 0
            for at, add in zip(starts, adds, strict=True):
                parts += [text[last : at + 1], add or ""]
                last = at + 1
            out = "".join([*parts, text[last:]])
        else:
            return payload
    except (ValueError, UnicodeDecodeError, RecursionError):
        return payload
    encoded = out.encode()
    return encoded if len(encoded) <= MAX_PAYLOAD_BYTES else payload


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
