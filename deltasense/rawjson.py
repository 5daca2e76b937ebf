"""What a typed JSON decode cannot see: duplicate keys and floats that underflow to 0.

msgspec keeps the last of two equal keys and turns ``1e-400`` into ``0.0``
without a word, so a reading could say two things or lose its value.  Pure
functions on the raw payload; :mod:`deltasense.contract` calls the exact scan
only when a cheap test says it may find something (``docs/CONTRACT.md``).
"""

from __future__ import annotations

import json
from typing import Any, Final

from deltasense.reasons import Reason

_NONZERO_DIGITS: Final = frozenset("123456789")
# A decimal literal that underflows needs a negative exponent or > 320 zeros.
_UNDERFLOW_HINTS: Final = (b"e-", b"E-", b"0" * 300)


class RawJsonError(ValueError):
    """What the scan found: ``reason`` and a short ``detail``."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def may_underflow(payload: bytes) -> bool:
    """False when no number in ``payload`` can have underflowed to zero."""
    return any(hint in payload for hint in _UNDERFLOW_HINTS)


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(items)
    if len(out) != len(items):
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise RawJsonError(Reason.DUPLICATE_KEY, f"key {key[:40]!r} appears twice")
            seen.add(key)
    return out


def _parse_float(text: str) -> float:
    value = float(text)
    if value == 0.0:
        mantissa = text.lower().partition("e")[0]
        if not _NONZERO_DIGITS.isdisjoint(mantissa):
            raise RawJsonError(Reason.UNDERFLOW, f"{text[:40]} is not 0 but parses as 0.0")
    return value


def scan(payload: bytes) -> None:
    """Raise :class:`RawJsonError` for a duplicate key in any object, or a float
    literal that is not zero but parses as zero.  ``payload`` must already be
    known to be valid JSON (the stdlib parser here is exact but slow)."""
    try:
        json.loads(payload, object_pairs_hook=_pairs, parse_float=_parse_float)
    except RawJsonError:
        raise
    except RecursionError:
        raise RawJsonError(Reason.SCHEMA, "nested too deeply") from None
    except ValueError as exc:  # pragma: no cover - the typed decode accepted it first
        raise RawJsonError(Reason.NOT_JSON, str(exc)) from None
