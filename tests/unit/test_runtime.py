"""The shared runtime: clock, local-time defaults, backoff, retry, payloads, metric names."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from deltasense import runtime
from deltasense.runtime import Backoff, Metrics, payload_bytes, retry


def test_now_ms_is_the_wall_clock_in_ms() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    assert before - 5 <= runtime.now_ms() <= before + 1000


def test_default_offset_is_the_settings_default() -> None:
    # Bạc Liêu, UTC+7: the one literal is the settings field's default.
    assert runtime.DEFAULT_UTC_OFFSET_MIN == 420
    assert runtime.DEFAULT_LOCAL_TZ.utcoffset(None) == timedelta(minutes=420)


@pytest.mark.parametrize(
    ("minutes", "iso", "label"),
    [(420, "+07:00", "UTC+7"), (0, "+00:00", "UTC+0"), (330, "+05:30", "UTC+5:30"),
     (-210, "-03:30", "UTC-3:30")],
)  # fmt: skip
def test_offset_texts(minutes: int, iso: str, label: str) -> None:
    assert runtime.utc_offset_text(minutes) == iso
    assert runtime.utc_label(minutes) == label
    assert datetime.fromisoformat(f"2025-01-01T00:00{iso}").utcoffset() == timedelta(
        minutes=minutes
    )


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    plain = Backoff(0.5, 3.0, jitter=False)
    assert [plain.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert plain.attempt == 5
    plain.reset()
    assert plain.next() == 0.5
    jittered = Backoff(0.5, 3.0)
    for attempt in range(40):
        assert 0 <= jittered.delay(attempt) <= min(3.0, 0.5 * 2**attempt)


async def test_retry_retries_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("down")
        return "up"

    log = logging.getLogger("test")
    plain = Backoff(0.5, 30.0, jitter=False)
    assert (
        await retry(flaky, what="x", retry_on=OSError, attempts=5, backoff=plain, log=log) == "up"
    )
    assert waits == [0.5, 1.0]
    calls = -10
    with pytest.raises(ConnectionError):
        await retry(flaky, what="x", retry_on=OSError, attempts=2, backoff=plain, log=log)


def test_payload_bytes() -> None:
    assert payload_bytes(b"{}") == b"{}"
    assert payload_bytes(bytearray(b"ab")) == b"ab"
    assert payload_bytes("é") == "é".encode()
    assert payload_bytes(7) == b"7"
    assert payload_bytes(None) == b""


def test_metric_names_carry_the_service() -> None:
    registry = CollectorRegistry()
    metrics = Metrics("demo", registry)
    metrics.counter("things", "Things", ["kind"]).labels("a").inc()
    metrics.gauge("open", "Open").set(2)
    metrics.histogram("seconds", "Time", buckets=(1.0,)).observe(0.5)
    text = generate_latest(registry).decode()
    assert 'deltasense_demo_things_total{kind="a"} 1.0' in text
    assert "deltasense_demo_open 2.0" in text
    assert 'deltasense_demo_seconds_bucket{le="1.0"} 1.0' in text
