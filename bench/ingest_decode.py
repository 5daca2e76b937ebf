"""Ingest's per-message work, side by side with the same work on stdlib json + pydantic.

Both sides do the same thing to the same messages: parse the topic, decode and
validate the payload against the contract's reading type, apply the QC ranges
and encode line protocol.  Only the decoding/validation library differs, so the
ratio is what choosing msgspec buys.  Times are the best of several rounds.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from bench.e2e import payloads
from deltasense import schema
from deltasense.contract import Kind, Topic, decode_tele, parse_topic
from deltasense.lineprotocol import encode_point
from deltasense.qc import out_of_range
from ingest.pipeline import Pipeline

N_MESSAGES = 20_000
ROUNDS = 5
NOW = 1_780_000_000_000


def make_messages(n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.choice(list(Kind))
        device = f"{kind.value[:2]}-{i % 500:03d}"
        base = {"ts": NOW - rng.randrange(60_000), "seq": i, "boot": 1, "rssi_dbm": -70}
        fields = {
            Kind.WEATHER: {
                "t_c": 29.1,
                "rh_pct": 81.0,
                "p_hpa": 1008.3,
                "wind_ms": 3.2,
                "gust_ms": 5.1,
                "wind_dir_deg": 140.0,
                "rain_mm_total": 512.4,
                "lux": 40_000.0,
            },
            Kind.WATER: {"level_cm": 1.4, "dist_mm": 2186.0},
            Kind.LAMP: {
                "on": True,
                "dim_pct": 70.0,
                "power_w": 84.2,
                "energy_wh_total": 123_456.0,
                "lux": 3.0,
            },
            Kind.METER: {
                "v": 229.8,
                "a": 12.1,
                "power_w": 2702.0,
                "pf": 0.97,
                "hz": 50.0,
                "energy_wh_total": 9_876_543.0,
            },
        }[kind]
        out.append(
            (f"baclieu/phuong-1/{kind.value}/{device}/tele", json.dumps(base | fields).encode())
        )
    return out


# --- the peer: the same contract as pydantic models ------------------------------------
class _Base(BaseModel):
    model_config = ConfigDict(strict=True)
    seq: int = Field(ge=0)
    boot: int = Field(ge=0)
    ts: int | None = Field(default=None, ge=0)
    hist: bool | None = None
    rssi_dbm: float | None = None
    batt_v: float | None = None
    heap_b: int | None = None
    up_s: int | None = None


class _Weather(_Base):
    t_c: float | None = None
    rh_pct: float | None = None
    p_hpa: float | None = None
    wind_ms: float | None = None
    gust_ms: float | None = None
    wind_dir_deg: float | None = None
    rain_mm_total: float | None = None
    lux: float | None = None


class _Water(_Base):
    level_cm: float | None = None
    dist_mm: float | None = None


class _Lamp(_Base):
    on: bool | None = None
    dim_pct: float | None = None
    power_w: float | None = None
    energy_wh_total: float | None = None
    lux: float | None = None


class _Meter(_Base):
    v: float | None = None
    a: float | None = None
    power_w: float | None = None
    pf: float | None = None
    hz: float | None = None
    energy_wh_total: float | None = None


_MODELS: dict[Kind, type[_Base]] = {
    Kind.WEATHER: _Weather,
    Kind.WATER: _Water,
    Kind.LAMP: _Lamp,
    Kind.METER: _Meter,
}
_COMMON = {"seq", "boot", "ts", "hist"}


def pydantic_handle(topic: str, payload: bytes) -> str:
    parsed = parse_topic(topic)
    return _to_line(parsed, _MODELS[parsed.kind].model_validate_json(payload))


def stdlib_json_handle(topic: str, payload: bytes) -> str:
    """json.loads then the pydantic model on the dict: the other common way."""
    parsed = parse_topic(topic)
    return _to_line(parsed, _MODELS[parsed.kind].model_validate(json.loads(payload)))


def _to_line(parsed: Topic, reading: _Base) -> str:
    fields = {k: v for k, v in reading.model_dump(exclude_none=True).items() if k not in _COMMON}
    flagged = ",".join(out_of_range(parsed.kind, fields))
    fields |= {"seq": reading.seq, "boot": reading.boot}
    if flagged:
        fields["qc"] = flagged
    tags = {"site": parsed.site, "district": parsed.district, "device": parsed.device}
    return encode_point(parsed.kind.value, tags, fields, reading.ts or NOW)


def best_of(run: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def readings_path(topic: str, payload: bytes, now_ms: int) -> list[str]:
    """What ingest did before rows (2026-12-02): a Reading and a field dict per
    reading, QC on the dict, then the readings' lines."""
    readings = decode_tele(parse_topic(topic), payload, now_ms)
    flags = [out_of_range(r.kind, r.fields) for r in readings]
    return schema.reading_lines(readings, flags, ns=True)


def _each(handle: Callable[[str, bytes, int], object], messages: list[tuple[str, bytes]]) -> None:
    for topic, payload in messages:
        handle(topic, payload, NOW)


def shapes_table() -> None:
    """Ingest's pipeline on the end-to-end bench's own messages (bench/e2e/payloads),
    against the readings path, per shape: where a batch's per-reading work shows."""
    print(f"\n## rows against the readings path, the e2e bench's water messages, best of {ROUNDS}")
    print("| shape | implementation | µs/message | µs/reading | time vs rows |")
    print("| --- | --- | ---: | ---: | ---: |")
    base_ms = NOW - 100_000_000
    for shape in payloads.SHAPES.values():
        count = max(500, N_MESSAGES // shape.readings)
        messages = [
            (
                payloads.topic("baclieu", payloads.device_name("b", i % 100)),
                payloads.message(i * shape.readings, shape, base_ms),
            )
            for i in range(count)
        ]
        pipeline = Pipeline("baclieu")
        sample = messages[:50]
        assert [pipeline.handle(t, p, NOW).lines for t, p in sample] == [
            readings_path(t, p, NOW) for t, p in sample
        ]
        rows = best_of(functools.partial(_each, pipeline.handle, messages))
        old = best_of(functools.partial(_each, readings_path, messages))
        for name, seconds in (("rows (ingest)", rows), ("readings path", old)):
            per = seconds / count * 1e6
            print(
                f"| {shape.name} | {name} | {per:.1f} | {per / shape.readings:.2f} "
                f"| {seconds / rows:.2f}× |"
            )


def main() -> None:
    messages = make_messages(N_MESSAGES)
    pipeline = Pipeline("baclieu")
    # Same output check before timing: both sides must produce the same lines.
    ours = [pipeline.handle(t, p, NOW).lines[0] for t, p in messages[:200]]
    peer = [pydantic_handle(t, p) for t, p in messages[:200]]
    assert len(ours) == len(peer) == 200
    assert all(a.split(" ")[0] == b.split(" ")[0] for a, b in zip(ours, peer, strict=True))

    contenders = {
        "deltasense (msgspec)": lambda: [pipeline.handle(t, p, NOW) for t, p in messages],
        "pydantic model_validate_json": lambda: [pydantic_handle(t, p) for t, p in messages],
        "json.loads + pydantic": lambda: [stdlib_json_handle(t, p) for t, p in messages],
    }
    _table("decode + validate + QC + line protocol (ingest's per-message work)", contenders)
    topics = [(parse_topic(t), p) for t, p in messages]
    _table(
        "decode + validate only",
        {
            "deltasense (msgspec)": lambda: [decode_tele(t, p, NOW) for t, p in topics],
            "pydantic model_validate_json": lambda: [
                _MODELS[t.kind].model_validate_json(p) for t, p in topics
            ],
            "json.loads + pydantic": lambda: [
                _MODELS[t.kind].model_validate(json.loads(p)) for t, p in topics
            ],
        },
    )
    shapes_table()


def _table(title: str, contenders: dict[str, Callable[[], object]]) -> None:
    results = {name: best_of(run) for name, run in contenders.items()}
    base = results["deltasense (msgspec)"]
    print(f"\n## {title}: {N_MESSAGES} messages, best of {ROUNDS}")
    print("| implementation | messages/s | µs/message | time vs deltasense |")
    print("| --- | ---: | ---: | ---: |")
    for name, seconds in results.items():
        print(
            f"| {name} | {N_MESSAGES / seconds:,.0f} | {seconds / N_MESSAGES * 1e6:.2f} "
            f"| {seconds / base:.2f}× |"
        )


if __name__ == "__main__":
    main()
