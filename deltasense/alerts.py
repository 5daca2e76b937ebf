"""Alert events: the ``{site}/_alerts/…`` subtree (stored by :mod:`deltasense.schema`).

Analytics owns the lifecycle and publishes every change of an alert as one
event; the API serves them.  Topic: ``{site}/_alerts/{kind}/{rule}/{subject}``,
retained, so the retained message under a topic is always the latest state of
the newest episode for that (rule, subject).  Subscribers that want only
changes skip messages delivered with the retain flag.  Only analytics may
publish there (the broker's ACLs, ``deltasense/access.py``).

Operators' acknowledgements (the API, the notifier's Telegram button and email
links) go to ``{site}/_acks/{alert id}`` instead: the acknowledged event
(:func:`acknowledged`), QoS 1, not retained.  Analytics takes only the ``ack``
from it, applies it to the event it knows, and republishes that on ``_alerts``.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

import msgspec

from deltasense.contract import ACKS_DISTRICT, ALERTS_DISTRICT, is_ident

AlertKind = Literal["storm", "flood", "energy", "health"]
AlertState = Literal["pending", "firing", "resolved"]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: Final[dict[str, int]] = {"info": 0, "warning": 1, "critical": 2}


class Message(msgspec.Struct, frozen=True):
    vi: str
    en: str


class Ack(msgspec.Struct, kw_only=True):
    by: str
    ts: int
    note: str = ""


class AlertEvent(msgspec.Struct, kw_only=True):
    """One alert's state as of ``updated``; the wire format of ``_alerts`` events."""

    id: str
    kind: AlertKind
    rule: str
    subject: str
    district: str
    severity: Severity
    state: AlertState
    risk_level: int = 1
    values: dict[str, float] = msgspec.field(default_factory=dict)
    started: int  # ms since epoch
    updated: int
    ended: int | None = None
    message: Message
    ack: Ack | None = None


def alert_id(rule: str, subject: str, started_ms: int) -> str:
    """Stable id for one episode of (rule, subject)."""
    digest = hashlib.sha1(f"{rule}\x00{subject}\x00{started_ms}".encode()).hexdigest()
    return f"al-{digest[:16]}"


def acknowledged(event: AlertEvent, *, by: str, now_ms: int, note: str = "") -> AlertEvent:
    """``event`` acknowledged by ``by``: the state every acknowledger publishes
    (retained, on :func:`alert_topic`) and stores.  ``updated`` moves past the
    stored state so the acked event becomes the latest point."""
    return msgspec.structs.replace(
        event, ack=Ack(by=by, ts=now_ms, note=note), updated=max(now_ms, event.updated + 1)
    )


def alert_topic(site: str, event: AlertEvent) -> str:
    for name, value in (("rule", event.rule), ("subject", event.subject)):
        if not is_ident(value):
            raise ValueError(f"alert {name} {value!r} is not a valid topic level")
    return f"{site}/{ALERTS_DISTRICT}/{event.kind}/{event.rule}/{event.subject}"


def alerts_filter(site: str) -> str:
    return f"{site}/{ALERTS_DISTRICT}/#"


ENCODER: Final = msgspec.json.Encoder()
DECODER: Final = msgspec.json.Decoder(AlertEvent)


def encode(event: AlertEvent) -> bytes:
    return ENCODER.encode(event)


def decode(payload: bytes) -> AlertEvent:
    return DECODER.decode(payload)


# --- acknowledgements: {site}/_acks/{alert id} ----------------------------------
def ack_topic(site: str, alert_id: str) -> str:
    """Where an acknowledgement of ``alert_id`` is published."""
    if not is_ident(site) or not is_ident(alert_id):
        raise ValueError(f"{site!r}/{alert_id!r} is not a valid ack topic")
    return f"{site}/{ACKS_DISTRICT}/{alert_id}"


def acks_filter(site: str) -> str:
    return f"{site}/{ACKS_DISTRICT}/+"


def is_ack_topic(site: str, topic: str) -> bool:
    return topic.startswith(f"{site}/{ACKS_DISTRICT}/")


class AckError(ValueError):
    """An ack message that is not one: undecodable, unacknowledged, or for another id."""


def decode_ack(site: str, topic: str, payload: bytes) -> AlertEvent:
    """The acknowledged event on ``{site}/_acks/{id}``; its id must be the topic's."""
    try:
        event = DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        raise AckError(str(exc)) from None
    if topic != f"{site}/{ACKS_DISTRICT}/{event.id}":
        raise AckError(f"event {event.id[:40]!r} published on {topic[:120]!r}")
    if event.ack is None:
        raise AckError(f"event {event.id} on the ack topic carries no ack")
    return event
