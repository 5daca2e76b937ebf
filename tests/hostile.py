"""Hostile ``tele`` payloads by category, and valid ones, for the contract's tests.

One generator for the property test (``tests/unit/test_contract_hostile.py``
drives it with Hypothesis' ``st.randoms()``, so failures shrink) and for the
integration count (``tests/integration/test_ingest_hostile.py``, a seeded
``random.Random``).  Every hostile message holds exactly one fault, hidden at a
random place in an otherwise valid reading or batch, so its verdict is one
reason code.  Never a test module: tests import it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from deltasense.contract import (
    FIELDS_BY_KIND,
    MAX_COUNTER,
    MAX_FUTURE_MS,
    MIN_TS_MS,
    Kind,
)
from deltasense.reasons import Reason

BOOL_FIELDS: Final = frozenset({"on"})
INT_HEALTH: Final = ("heap_b", "up_s")
FLOAT_HEALTH: Final = ("rssi_dbm", "batt_v")


@dataclass(frozen=True)
class Message:
    category: str
    reason: Reason | None  # None: valid, must be stored
    kind: Kind
    payload: bytes
    readings: int  # how many readings a valid message carries


def _float(rng: random.Random) -> float:
    """Any finite float a device could send: zeros, tiny, huge, ordinary."""
    pick = rng.random()
    if pick < 0.15:
        return rng.choice([0.0, -0.0])
    if pick < 0.25:
        return rng.choice([5e-324, 2.2e-308, 1e-5, 1.7976931348623157e308, -1e300])
    return round(rng.uniform(-1000.0, 100_000.0), rng.randint(0, 4))


def valid_reading(
    rng: random.Random, kind: Kind, now_ms: int, seq: int, oldest_ms: int = MIN_TS_MS
) -> dict[str, Any]:
    """A reading the contract accepts (values may be out of the QC range), with a
    ``ts`` from ``oldest_ms`` to the future limit, or none."""
    out: dict[str, Any] = {"seq": seq, "boot": rng.randint(0, MAX_COUNTER)}
    if rng.random() < 0.8:
        out["ts"] = rng.randint(oldest_ms, now_ms + MAX_FUTURE_MS)
    if rng.random() < 0.2:
        out["hist"] = rng.random() < 0.5
    names = FIELDS_BY_KIND[kind]
    for name in rng.sample(names, rng.randint(1, len(names))):
        out[name] = rng.random() < 0.5 if name in BOOL_FIELDS else _float(rng)
    for name in FLOAT_HEALTH:
        if rng.random() < 0.3:
            out[name] = _float(rng)
    for name in INT_HEALTH:
        if rng.random() < 0.3:
            out[name] = rng.randint(0, 2**53)
    if rng.random() < 0.1:  # unknown members are ignored (and take the exact scan)
        out[rng.choice(["note", "fw_extra"])] = rng.choice(["a:b", {"x": [1, 2]}, 3])
    return out


def _encode(obj: Any, rng: random.Random) -> str:
    compact = rng.random() < 0.5
    return json.dumps(obj, separators=(",", ":") if compact else (", ", ": "))


def _with_member(text: str, member: str) -> str:
    """``text`` (a JSON object) with one more member, first or last."""
    return "{" + member + "," + text[1:] if text.startswith("{") and len(text) > 2 else text


def _append_member(text: str, member: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return _with_member(text, member)
    return text[:-1] + "," + member + "}"


# --- faults: each turns one valid reading (dict) into the text of a bad one ------------
Fault = Callable[[dict[str, Any], Kind, int, random.Random], str]


def _duplicate_key(r: dict[str, Any], kind: Kind, now: int, rng: random.Random) -> str:
    key = rng.choice(sorted(r))
    value = r[key]
    if rng.random() < 0.5:  # an escaped spelling decodes to the same key
        i = rng.randrange(len(key))
        spelled = key[:i] + f"\\u{ord(key[i]):04x}" + key[i + 1 :]
    else:
        spelled = key
    return _append_member(_encode(r, rng), f'"{spelled}":{json.dumps(value)}', rng)


def _measured_float(r: dict[str, Any], kind: Kind, rng: random.Random) -> str:
    names = [n for n in FIELDS_BY_KIND[kind] if n not in BOOL_FIELDS]
    name = rng.choice(names)
    r.pop(name, None)
    return name


def _underflow(r: dict[str, Any], kind: Kind, now: int, rng: random.Random) -> str:
    name = _measured_float(r, kind, rng)
    sign = rng.choice(["", "-"])
    if rng.random() < 0.7:
        literal = f"{sign}{rng.randint(1, 9999)}{rng.choice('eE')}-{rng.randint(400, 5000)}"
    else:  # a plain decimal: 330 to 600 zeros after the point
        literal = f"{sign}0.{'0' * rng.randint(330, 600)}{rng.randint(1, 9)}"
    return _append_member(_encode(r, rng), f'"{name}":{literal}', rng)


def _non_finite(r: dict[str, Any], kind: Kind, now: int, rng: random.Random) -> str:
    name = _measured_float(r, kind, rng)
    literal = rng.choice(
        ["NaN", "Infinity", "-Infinity", "nan", "inf", "-inf", f"1e{rng.randint(309, 999)}"]
    )
    return _append_member(_encode(r, rng), f'"{name}":{literal}', rng)


def _wrong_type(r: dict[str, Any], kind: Kind, now: int, rng: random.Random) -> str:
    key = rng.choice(["seq", "boot", "ts", "hist", "heap_b", *FIELDS_BY_KIND[kind]])
    if key in BOOL_FIELDS or key == "hist":
        bad: Any = rng.choice([1, 0.5, "true", None, [True], {}])
    elif key in {"seq", "boot", "ts", "heap_b"}:
        bad = rng.choice([1.0, 2.5, "7", True, None, [1], {"v": 1}])
    else:
        bad = rng.choice(["21.5", True, False, None, [1.0], {"v": 1.0}])
    r[key] = bad
    return _encode(r, rng)


def _bad_counter(key: str) -> Fault:
    def fault(r: dict[str, Any], kind: Kind, now: int, rng: random.Random) -> str:
        if rng.random() < 0.5:
            r[key] = rng.randint(MAX_COUNTER + 1, 2**70)
        else:
            r[key] = -rng.randint(1, 2**70)
        return _encode(r, rng)

    return fault


def _past_ts(r: dict[str, Any], kind: Kind, now: int, rng: random.Random) -> str:
    r["ts"] = rng.choice([0, 946_684_800_000, MIN_TS_MS - 1, -rng.randint(1, 2**53)])
    if rng.random() < 0.5:
        r["ts"] = rng.randint(-(2**53), MIN_TS_MS - 1)
    return _encode(r, rng)


def _future_ts(r: dict[str, Any], kind: Kind, now: int, rng: random.Random) -> str:
    r["ts"] = rng.randint(now + MAX_FUTURE_MS + 1, 2**62)
    return _encode(r, rng)


def _no_fields(r: dict[str, Any], kind: Kind, now: int, rng: random.Random) -> str:
    for name in FIELDS_BY_KIND[kind]:
        r.pop(name, None)
    # Another kind's field is ignored, so it does not count.
    others = sorted({f for k in Kind for f in FIELDS_BY_KIND[k]} - set(FIELDS_BY_KIND[kind]))
    if others and rng.random() < 0.5:
        r[rng.choice(others)] = 1.0
    return _encode(r, rng)


FAULTS: Final[dict[str, tuple[Reason, Fault]]] = {
    "duplicate_key": (Reason.DUPLICATE_KEY, _duplicate_key),
    "underflow": (Reason.UNDERFLOW, _underflow),
    "non_finite": (Reason.NON_FINITE, _non_finite),
    "wrong_type": (Reason.SCHEMA, _wrong_type),
    "seq_range": (Reason.BAD_SEQ, _bad_counter("seq")),
    "boot_range": (Reason.BAD_BOOT, _bad_counter("boot")),
    "past_ts": (Reason.PAST_TS, _past_ts),
    "future_ts": (Reason.FUTURE_TS, _future_ts),
    "no_fields": (Reason.NO_FIELDS, _no_fields),
}
CATEGORIES: Final = ("valid", *FAULTS)


def message(
    category: str, rng: random.Random, now_ms: int, *, oldest_ms: int = MIN_TS_MS
) -> Message:
    """One message of ``category``: a single reading or a batch of 2–5 with the
    fault in one of them (seqs 0 up, so a batch's readings are distinct)."""
    kind = rng.choice(list(Kind))
    n = 1 if rng.random() < 0.6 else rng.randint(2, 5)
    readings = [valid_reading(rng, kind, now_ms, i, oldest_ms) for i in range(n)]
    texts = [_encode(r, rng) for r in readings]
    reason: Reason | None = None
    if category != "valid":
        reason, fault = FAULTS[category]
        bad = rng.randrange(n)
        texts[bad] = fault(readings[bad], kind, now_ms, rng)
    body = texts[0] if n == 1 and rng.random() < 0.8 else "[" + ",".join(texts) + "]"
    return Message(category, reason, kind, body.encode(), n)
