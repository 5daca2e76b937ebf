"""The benchmark's readings: topics and payloads per the wire contract, and the
same readings as line protocol for InfluxDB's own write ceiling.

Every reading gets a timestamp unique within its device (``base_ms + seq``), so
storage (a reading's timestamp is its identity within its series) keeps each
one; ``base_ms`` lies in the past, so ingest's future-timestamp check passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from deltasense.schema import point_time_ns

DISTRICT = "phuong-1"
KIND = "water"
DEVICE_PREFIX = "ld"  # load devices; the readiness probe uses another name


@dataclass(frozen=True)
class Shape:
    """How many readings one MQTT message carries (1: an object, more: an array)."""

    name: str
    readings: int


SINGLE = Shape("single", 1)
BATCH20 = Shape("batch20", 20)
# A device's or gateway's spool sent in bulk: 50 readings are ~3 KB, inside the
# contract's 4 KiB payload limit (deltasense/contract.py, MAX_PAYLOAD_BYTES).
BATCH50 = Shape("batch50", 50)
SHAPES = {s.name: s for s in (SINGLE, BATCH20, BATCH50)}


def device_name(tag: str, i: int) -> str:
    return f"{DEVICE_PREFIX}-{tag}-{i:03d}"


def topic(site: str, device: str) -> str:
    return f"{site}/{DISTRICT}/{KIND}/{device}/tele"


def reading_json(seq: int, base_ms: int) -> str:
    level = (seq % 400) / 10.0
    return f'{{"ts":{base_ms + seq},"seq":{seq},"boot":1,"level_cm":{level:.1f}}}'


def message(first_seq: int, shape: Shape, base_ms: int) -> bytes:
    """One payload holding readings ``first_seq`` … ``first_seq + shape.readings - 1``."""
    if shape.readings == 1:
        return reading_json(first_seq, base_ms).encode()
    body = ",".join(reading_json(first_seq + k, base_ms) for k in range(shape.readings))
    return f"[{body}]".encode()


DRY_CM = 1.0  # a live background reading's level: a dry street (≤ the noise floor)


def live_message(first_seq: int, shape: Shape, now_ms: int) -> bytes:
    """Like :func:`message`, but stamped with the wall clock (the last reading at
    ``now_ms``, earlier ones a millisecond apart) at a dry level, so analytics
    judges live readings and none of them raises an alert."""

    def one(k: int) -> str:
        ts = now_ms - (shape.readings - 1 - k)
        return f'{{"ts":{ts},"seq":{first_seq + k},"boot":1,"level_cm":{DRY_CM}}}'

    if shape.readings == 1:
        return one(0).encode()
    return f"[{','.join(one(k) for k in range(shape.readings))}]".encode()


def reading_line(site: str, device: str, seq: int, base_ms: int) -> str:
    """The line a reading becomes (measurement, tags and fields as ingest writes them)."""
    level = (seq % 400) / 10.0
    return (
        f"{KIND},device={device},district={DISTRICT},site={site} "
        f"level_cm={level:.1f},seq={seq}i,boot=1i {point_time_ns(base_ms + seq, seq, 1)}"
    )
