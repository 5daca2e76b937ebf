"""Analytics taking telemetry off MQTT: one message at a time against batches.

Every row feeds the same realistic single-reading messages (all four kinds, 2 000
devices, readings of the last minutes) through the analytics service's own
handling (topic, decode, validate, QC, into the NumPy windows); no evaluation,
no broker.  ``per message`` is how the service took them at first (one engine
call, so one set of window inserts, per message); ``batched`` is ``handle_many``
on 500 messages, what one MQTT wake-up hands over to a backlog: each message is
still decoded and validated on its own, but the window inserts happen once per
kind and metric.  A live stream at 2 000 msg/s hands over about 4 messages per
wake-up (docs/BENCHMARKS.md): ``wake-ups of 4, inserted each time`` is
``handle_many`` on those; ``wake-ups of 4, inserted per evaluation`` is what the
service does now, ``take`` on each and ``flush`` every 500 messages (the
evaluation gap at that rate).  Best of several rounds, each on a fresh engine.

``python -m bench.analytics_consume``
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from analytics.engine import Engine
from analytics.service import AnalyticsService
from analytics.thresholds import load_thresholds
from deltasense.contract import Kind
from deltasense.influx import InfluxClient
from deltasense.settings import Settings

N_MESSAGES = 20_000
DEVICES = 2_000
CHUNK = 500
WAKE_UP = 4  # messages per MQTT wake-up on a live stream at 2 000 msg/s
ROUNDS = 3
SITE = "bench"

_FIELDS: dict[Kind, dict[str, float | bool]] = {
    Kind.WEATHER: {"t_c": 29.1, "rh_pct": 81.0, "p_hpa": 1008.3, "wind_ms": 3.2, "gust_ms": 5.1},
    Kind.WATER: {"level_cm": 1.4, "dist_mm": 2186.0},
    Kind.LAMP: {"on": True, "dim_pct": 70.0, "power_w": 84.2, "energy_wh_total": 123_456.0},
    Kind.METER: {"v": 229.8, "a": 12.1, "power_w": 2702.0, "pf": 0.97, "hz": 50.0},
}


def make_messages(n: int, now_ms: int, seed: int = 11) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    kinds = list(Kind)
    out = []
    for i in range(n):
        d = i % DEVICES
        kind = kinds[d % len(kinds)]
        ts = now_ms - (n - i) * 10  # the last few minutes, in order
        body: dict[str, object] = {"ts": ts, "seq": i, "boot": 1, "rssi_dbm": -70}
        body |= _FIELDS[kind]
        district = f"phuong-{d % 10 + 1}"
        if kind is Kind.WATER:
            body["level_cm"] = round(rng.uniform(0, 4), 1)
        out.append((f"{SITE}/{district}/{kind.value}/{kind.value[:2]}-{d:04d}/tele", _json(body)))
    return out


def _json(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


def _service() -> AnalyticsService:
    settings = Settings(site=SITE, analytics_metrics_port=0, var_dir=Path("var/bench"))
    engine = Engine(load_thresholds(), utc_offset_min=settings.utc_offset_min)
    return AnalyticsService(settings, engine, cast(InfluxClient, None))


def per_message(service: AnalyticsService, messages: list[tuple[str, bytes]]) -> int:
    return sum(service.handle(topic, payload) for topic, payload in messages)


def batched(service: AnalyticsService, messages: list[tuple[str, bytes]]) -> int:
    return sum(service.handle_many(messages[i : i + CHUNK]) for i in range(0, len(messages), CHUNK))


def wake_ups_inserted_each_time(
    service: AnalyticsService, messages: list[tuple[str, bytes]]
) -> int:
    return sum(
        service.handle_many(messages[i : i + WAKE_UP]) for i in range(0, len(messages), WAKE_UP)
    )


def wake_ups_inserted_per_evaluation(
    service: AnalyticsService, messages: list[tuple[str, bytes]]
) -> int:
    water = 0
    for i in range(0, len(messages), WAKE_UP):
        water += service.take(messages[i : i + WAKE_UP])
        if (i + WAKE_UP) % CHUNK == 0:
            service.flush()  # the evaluation every 500 messages
    service.flush()
    return water


def best_of(run: Callable[[AnalyticsService, list[tuple[str, bytes]]], int]) -> tuple[float, int]:
    best, water = float("inf"), 0
    for _ in range(ROUNDS):
        service = _service()
        messages = make_messages(N_MESSAGES, int(time.time() * 1000))
        started = time.perf_counter()
        water = run(service, messages)
        best = min(best, time.perf_counter() - started)
        assert service.bad_messages == 0
    return best, water


def main() -> None:
    rows = {
        "per message (at first)": best_of(per_message),
        f"wake-ups of {WAKE_UP}, inserted each time": best_of(wake_ups_inserted_each_time),
        f"wake-ups of {WAKE_UP}, inserted per evaluation (now)": best_of(
            wake_ups_inserted_per_evaluation
        ),
        f"batched ({CHUNK} a call)": best_of(batched),
    }
    waters = {water for _, water in rows.values()}
    assert len(waters) == 1, f"the paths saw different water readings: {rows}"
    base = rows[f"batched ({CHUNK} a call)"][0]
    print(
        f"\n## analytics: telemetry into the windows: {N_MESSAGES} single-reading messages, "
        f"{DEVICES} devices, chunks of {CHUNK}, best of {ROUNDS}"
    )
    print("| path | messages/s | µs/message | time vs batched |")
    print("| --- | ---: | ---: | ---: |")
    for name, (seconds, _) in rows.items():
        print(
            f"| {name} | {N_MESSAGES / seconds:,.0f} | {1e6 * seconds / N_MESSAGES:.2f} "
            f"| {seconds / base:.2f}× |"
        )


if __name__ == "__main__":
    main()
