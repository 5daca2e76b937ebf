"""Readings and control messages as contract JSON (docs/CONTRACT.md, v1).

Pure functions: dicts in, UTF-8 bytes out. Readings are encoded once, when
taken, and stored as bytes in the spool; :func:`batch_into` joins stored
readings into one ``tele`` payload without decoding them again.
"""

import json

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# docs/CONTRACT.md "Reading": at most 4 KiB per message, at most 100 readings a batch.
MAX_PAYLOAD_BYTES = 4096
MAX_BATCH = 100

KINDS = ("weather", "water", "lamp", "meter")
# docs/CONTRACT.md "Fields by kind".
FIELDS = {
    "weather": ("t_c", "rh_pct", "p_hpa", "wind_ms", "gust_ms", "wind_dir_deg", "rain_mm_total", "lux"),
    "water": ("level_cm", "dist_mm"),
    "lamp": ("on", "dim_pct", "power_w", "energy_wh_total", "lux"),
    "meter": ("v", "a", "power_w", "pf", "hz", "energy_wh_total"),
}
# docs/CONTRACT.md "optional health".
HEALTH = ("rssi_dbm", "batt_v", "heap_b", "up_s")
_INT_HEALTH = ("heap_b", "up_s")
# Decimal places kept per field: below sensor resolution, and keeps payloads small.
_DIGITS = {
    "t_c": 2, "rh_pct": 1, "p_hpa": 2, "wind_ms": 2, "gust_ms": 2, "wind_dir_deg": 1,
    "rain_mm_total": 4, "lux": 1, "level_cm": 1, "dist_mm": 0, "dim_pct": 1,
    "power_w": 1, "energy_wh_total": 1, "v": 1, "a": 3, "pf": 2, "hz": 1,
    "rssi_dbm": 0, "batt_v": 2,
}
_HIST_PREFIX = b'{"hist":true,'


def _dumps(obj: "Any") -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _finite(x: float) -> bool:
    # NaN != NaN; inf - inf is NaN. JSON has neither.
    return x == x and x - x == 0


def _number(name: str, value: "Any") -> "Any":
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not _finite(value):
            return None
        digits = _DIGITS.get(name, 3)
        if digits == 0:
            return int(round(value))
        return round(value, digits)
    raise TypeError("field %s: not a number" % name)


def reading(
    kind: str,
    seq: int,
    boot: int,
    fields: "dict[str, Any]",
    ts_ms: "int | None" = None,
    health: "dict[str, Any] | None" = None,
) -> "dict[str, Any]":
    """One reading as a contract dict.

    ``fields`` holds the kind's measured values; ``None`` and non-finite
    values mean "not measured" and are left out (``null`` is invalid on the
    wire). ``ts_ms`` is omitted while the clock is not synced. Unknown field
    names raise ValueError: they are firmware bugs, not sensor faults.
    """
    if kind not in FIELDS:
        raise ValueError("unknown kind %r" % kind)
    if seq < 0 or boot < 0:
        raise ValueError("seq and boot must be >= 0")
    out: "dict[str, Any]" = {"seq": seq, "boot": boot}
    if ts_ms is not None:
        out["ts"] = int(ts_ms)
    allowed = FIELDS[kind]
    for name in fields:
        if name not in allowed:
            raise ValueError("field %s is not a %s field" % (name, kind))
        value = fields[name]
        if value is None:
            continue
        if name == "on":
            out[name] = bool(value)
            continue
        v = _number(name, value)
        if v is not None:
            out[name] = v
    if health:
        for name in health:
            if name not in HEALTH:
                raise ValueError("unknown health field %s" % name)
            value = health[name]
            if value is None:
                continue
            v = _number(name, value)
            if v is None:
                continue
            if name in _INT_HEALTH:
                v = max(0, int(v))
            out[name] = v
    return out


def encode_reading(rec: "dict[str, Any]") -> bytes:
    """A reading dict as compact JSON; raises ValueError past 4 KiB."""
    data = _dumps(rec)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ValueError("reading is %d bytes" % len(data))
    return data


def mark_hist(data: bytes) -> bytes:
    """The encoded reading with ``"hist":true`` added (for replays)."""
    if data.startswith(_HIST_PREFIX) or data[:1] != b"{":
        return data
    return _HIST_PREFIX + data[1:]


def _marked(buf: "Any", at: int) -> bool:
    for i in range(len(_HIST_PREFIX)):
        if buf[at + i] != _HIST_PREFIX[i]:
            return False
    return True


def batch_into(
    buf: "Any", start: int, src: "Any", count: int, hist: bool = False
) -> "tuple[int, int, int]":
    """Join the oldest of ``count`` encoded readings into one ``tele`` payload.

    The records of ``src`` (``rec_len(k)`` and ``read_into(k, buf, pos, skip)``,
    as :class:`ds.spool.Spool` has them) are copied straight into ``buf`` (a
    bytearray or a memoryview of one) from ``start`` on: no copies on the heap.
    Takes as many leading records as fit in 100 readings and 4096 bytes; a
    single reading goes out as an object, more as an array; ``hist`` marks each
    one as replayed. Returns ``(begin, end, n)``: the payload is
    ``buf[begin:end]``, ``n`` is 0 only for ``count`` 0. ValueError if the
    oldest record alone does not fit in ``buf``.
    """
    limit = min(len(buf), start + MAX_PAYLOAD_BYTES)
    hl = len(_HIST_PREFIX)
    pos = start + 1  # after the "["
    n = 0
    while n < count and n < MAX_BATCH:
        at = pos + 1 if n else pos  # after the ","
        size = src.rec_len(n)
        if at + size + 1 > (limit if n else len(buf)):
            break
        src.read_into(n, buf, at)
        if hist and buf[at] == 0x7B and not _marked(buf, at):  # "{" not yet marked
            if at + size + hl > (limit if n else len(buf)):
                break
            buf[at : at + hl] = _HIST_PREFIX  # then the reading after its "{"
            size = hl + src.read_into(n, buf, at + hl, 1)
        if n:
            buf[pos] = 0x2C  # ","
        pos = at + size
        n += 1
    if n == 0:
        if count:
            raise ValueError("record does not fit the packet buffer")
        return start, start, 0
    if n == 1:
        return start + 1, pos, 1
    buf[start] = 0x5B  # "["
    buf[pos] = 0x5D  # "]"
    return start, pos + 1, n


def status(state: str, ts_ms: "int | None" = None) -> bytes:
    """Retained ``status``: ``online``, ``offline`` or ``sleeping``."""
    if state not in ("online", "offline", "sleeping"):
        raise ValueError("bad state %r" % state)
    out: "dict[str, Any]" = {"state": state}
    if ts_ms is not None:
        out["ts"] = int(ts_ms)
    return _dumps(out)


def meta(
    fw: str,
    hw: str,
    boot: int,
    reset_cause: str,
    cfg_hash: str,
    interval_s: float,
    lat: "float | None" = None,
    lon: "float | None" = None,
    station: "str | None" = None,
) -> bytes:
    """Retained birth record (docs/CONTRACT.md ``meta``; ``station`` for water nodes)."""
    out: "dict[str, Any]" = {
        "fw": fw[:64],
        "hw": hw[:64],
        "boot": boot,
        "reset_cause": reset_cause[:64],
        "cfg_hash": cfg_hash[:64],
        "interval_s": interval_s,
    }
    if lat is not None and lon is not None:
        out["lat"] = lat
        out["lon"] = lon
    if station is not None:
        out["station"] = station
    return _dumps(out)


def ack(cmd_id: str, ok: bool, error: "str | None" = None, ts_ms: "int | None" = None) -> bytes:
    """Command acknowledgement ``{id, ok, error?, ts?}``."""
    out: "dict[str, Any]" = {"id": cmd_id, "ok": bool(ok)}
    if error:
        out["error"] = error[:200]
    if ts_ms is not None:
        out["ts"] = int(ts_ms)
    return _dumps(out)
