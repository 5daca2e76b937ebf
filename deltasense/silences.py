"""Silences: ``{site}/_silences/{id}``, retained; an empty payload ends one.

The API publishes them (operators, ``POST /api/v1/silences``; a shelved alert is
one too), the notifier holds back what they match.  Payload:
``{"matchers": {"kind": "storm", "district": "nha-mat"}, "starts": ms, "ends": ms,
"by": "...", "comment": "..."}``; matchers name alert fields (kind, rule,
district, subject, severity) and must all match.  One owner of the format and
of the matching rule for both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec

from deltasense.alerts import AlertEvent
from deltasense.contract import SILENCES_DISTRICT, is_ident

SILENCE_FIELDS: Final = frozenset({"kind", "rule", "district", "subject", "severity"})
MAX_SILENCE_MS: Final = 30 * 86_400_000
MAX_MATCHER_VALUE: Final = 64


class SilenceError(ValueError):
    """A silence payload that is not one."""


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: dict[str, str]  # field → value; every one must match
    starts: int  # ms
    ends: int
    by: str = ""
    comment: str = ""

    def active(self, now_ms: int) -> bool:
        return self.starts <= now_ms < self.ends

    def matches(self, event: AlertEvent) -> bool:
        return all(getattr(event, k) == v for k, v in self.matchers.items())

    def covers(self, event: AlertEvent, now_ms: int) -> bool:
        return self.active(now_ms) and self.matches(event)


class SilenceWire(msgspec.Struct, forbid_unknown_fields=True):
    """The payload on `{site}/_silences/{id}` (docs/asyncapi.yaml, `Silence`)."""

    matchers: dict[str, str]
    starts: int
    ends: int
    by: str = ""
    comment: str = ""


_DECODER: Final = msgspec.json.Decoder(SilenceWire)
_ENCODER: Final = msgspec.json.Encoder()


def silence_topic(site: str, silence_id: str) -> str:
    if not is_ident(site) or not is_ident(silence_id):
        raise ValueError(f"{site!r}/{silence_id!r} is not a valid silence topic")
    return f"{site}/{SILENCES_DISTRICT}/{silence_id}"


def silences_filter(site: str) -> str:
    return f"{site}/{SILENCES_DISTRICT}/+"


def is_silence_topic(site: str, topic: str) -> bool:
    return topic.startswith(f"{site}/{SILENCES_DISTRICT}/")


def check(matchers: dict[str, str], starts: int, ends: int) -> None:
    """:class:`SilenceError` unless the matchers and times make a silence."""
    unknown = sorted(set(matchers) - SILENCE_FIELDS)
    if unknown:
        raise SilenceError(f"unknown matcher {unknown[0]!r}")
    if not matchers:
        raise SilenceError("a silence needs at least one matcher")
    for name, value in matchers.items():
        if not value or len(value) > MAX_MATCHER_VALUE:
            raise SilenceError(f"matcher {name!r} must be 1–{MAX_MATCHER_VALUE} characters")
    if not 0 < ends - starts <= MAX_SILENCE_MS:
        raise SilenceError("ends must follow starts, within 30 days")


def encode(silence: Silence) -> bytes:
    check(silence.matchers, silence.starts, silence.ends)
    return _ENCODER.encode(
        SilenceWire(
            matchers=dict(silence.matchers),
            starts=silence.starts,
            ends=silence.ends,
            by=silence.by,
            comment=silence.comment,
        )
    )


def decode(silence_id: str, payload: bytes) -> Silence:
    try:
        wire = _DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SilenceError(str(exc)) from None
    check(wire.matchers, wire.starts, wire.ends)
    return Silence(
        id=silence_id,
        matchers=dict(wire.matchers),
        starts=wire.starts,
        ends=wire.ends,
        by=wire.by,
        comment=wire.comment,
    )
