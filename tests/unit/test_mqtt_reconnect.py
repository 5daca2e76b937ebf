"""run_forever's backoff: a session that lived resets it; one that failed at once grows it.

A broker killed again and again must be rejoined within the base wait each time: a
restored broker drops what devices publish until ingest has subscribed again, so a
wait grown towards the cap (it reached 24 s in a run with three broker crashes 20 s
apart) is readings lost, not politeness.
"""

from __future__ import annotations

import asyncio
import logging
import re

import aiomqtt
import pytest

from deltasense import mqtt, runtime


async def _waits(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    lives_s: float,
    sessions: int,
) -> list[float]:
    """The waits run_forever logs after ``sessions`` sessions that each live
    ``lives_s`` and then lose the broker (jitter off: each wait is its ceiling)."""
    monkeypatch.setattr(runtime.random, "uniform", lambda low, high: high)
    ran = 0

    async def session() -> None:
        nonlocal ran
        ran += 1
        await asyncio.sleep(lives_s)
        if ran > sessions:
            raise asyncio.CancelledError
        raise aiomqtt.MqttError("broker gone")

    with caplog.at_level(logging.WARNING), pytest.raises(asyncio.CancelledError):
        await mqtt.run_forever(session, name="t", base_s=0.1, cap_s=10.0, stable_s=0.05)
    found = [re.search(r"retrying in ([\d.]+) s", r.getMessage()) for r in caplog.records]
    return [float(m.group(1)) for m in found if m]


async def test_sessions_that_lived_are_rejoined_within_the_base_wait(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waits = await _waits(monkeypatch, caplog, lives_s=0.06, sessions=4)
    assert waits == [0.1, 0.1, 0.1, 0.1]


async def test_sessions_that_fail_at_once_back_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waits = await _waits(monkeypatch, caplog, lives_s=0.0, sessions=4)
    assert waits == [0.1, 0.2, 0.4, 0.8]
