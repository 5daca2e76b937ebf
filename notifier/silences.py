"""Silences from the console: ``{site}/_silences/{id}``, retained; an empty payload ends one.

Payload: ``{"matchers": {"kind": "storm", "district": "nha-mat"}, "starts": ms,
"ends": ms, "by": "...", "comment": "..."}``; matchers name alert fields
(kind, rule, district, subject, severity) and must all match.
"""

from __future__ import annotations

from typing import Final

import msgspec

from notifier.grouping import SILENCE_FIELDS, Silence

SILENCES_LEVEL: Final = "_silences"
MAX_SILENCE_MS: Final = 30 * 86_400_000


class SilenceError(ValueError):
    """A silence payload the notifier cannot honour."""


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    matchers: dict[str, str]
    starts: int
    ends: int
    by: str = ""
    comment: str = ""


_DECODER: Final = msgspec.json.Decoder(_Wire)


def silences_filter(site: str) -> str:
    return f"{site}/{SILENCES_LEVEL}/+"


def decode(silence_id: str, payload: bytes) -> Silence:
    try:
        wire = _DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SilenceError(str(exc)) from None
    unknown = sorted(set(wire.matchers) - SILENCE_FIELDS)
    if unknown:
        raise SilenceError(f"unknown matcher {unknown[0]!r}")
    if not wire.matchers:
        raise SilenceError("a silence needs at least one matcher")
    if not 0 < wire.ends - wire.starts <= MAX_SILENCE_MS:
        raise SilenceError("ends must follow starts, within 30 days")
    return Silence(id=silence_id, matchers=dict(wire.matchers), starts=wire.starts, ends=wire.ends)
