"""kill -9 of the notifier process mid-send: nothing lost, duplicates counted and reported."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from deltasense.settings import Settings
from tests.integration.notifier_support import (
    Arrival,
    alert,
    notifier_overrides,
    publish,
    running_fakes,
)
from tests.support import ADMIN_TOKEN, eventually
from tools.stack import settings_env

ROUTING = """
[receivers.truc-ban]
telegram = [1001]
webhook = ["{hook}"]

[[routes]]
name = "all"
receivers = ["truc-ban"]
"""
ALERTS = 6


@contextlib.asynccontextmanager
async def notifier_process(
    settings: Settings, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, **settings_env(settings)}
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{settings.notifier_http_port}/healthz"
    try:
        async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(20):
            while True:
                assert proc.returncode is None, "notifier exited; see its log"
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(url)).json().get("mqtt"):
                        break
                await asyncio.sleep(0.05)
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)


def told(arrival: Arrival) -> set[str]:
    """The alerts a Telegram message carries: one ack button each (a digest has several)."""
    rows = arrival.body["reply_markup"]["inline_keyboard"]
    return {row[0]["callback_data"].removeprefix("ack:") for row in rows}


async def test_kill_9_mid_send_loses_nothing_and_counts_duplicates(
    settings: Settings, tmp_path: Path
) -> None:
    async with running_fakes() as fakes:
        routing = tmp_path / "routing.toml"
        routing.write_text(ROUTING.replace("{hook}", f"{fakes.url}/hook"))
        s = Settings(
            **(
                settings.model_dump()
                | notifier_overrides(fakes, None, None)
                | {"notifier_routing_file": routing}
            )
        )
        in_flight = asyncio.Event()
        release = asyncio.Event()

        async def hold(arrival: Arrival) -> None:
            if arrival.channel == "telegram" and len(fakes.of("telegram")) == 1:
                in_flight.set()  # received, not yet answered: the notifier is mid-send
                await release.wait()

        fakes.hold = hold
        log = tmp_path / "notifier.log"
        events = [alert(100 + i, district=f"ward-{i}") for i in range(ALERTS)]
        async with notifier_process(s, log) as proc:
            await publish(s, *events)
            await asyncio.wait_for(in_flight.wait(), 15)
            os.kill(proc.pid, signal.SIGKILL)
            assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGKILL
        fakes.hold = None
        release.set()

        async with notifier_process(s, log):
            expected = {e.id for e in events}

            def delivered(arrivals: list[Arrival]) -> bool:
                tg = set().union(*(told(x) for x in fakes.of("telegram")))
                hooks = {x.body["events"][0]["id"] for x in fakes.of("webhook")}
                return tg == expected and hooks == expected

            await fakes.wait_for(delivered, within=30)
            async with httpx.AsyncClient(timeout=5) as http:

                async def settled() -> dict[str, Any] | None:
                    # Every row sent: the resend of the cut-off message has arrived too.
                    view = await http.get(
                        f"http://127.0.0.1:{s.notifier_http_port}/deliveries",
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    )
                    counts: dict[str, Any] = view.json()["counts"]
                    done = counts.get("telegram") == {"sent": ALERTS} and counts.get("webhook") == {
                        "sent": ALERTS
                    }
                    return counts if done else None

                counts = await eventually(settled, within=15)
        assert counts, "the outbox did not settle"
        tg = fakes.of("telegram")
        # The message cut off mid-send (alone, or a digest of several alerts' messages
        # to that chat) reached the chat twice, nothing else did, and the notifier
        # counts each of its messages as a possible duplicate.
        cut_off = told(tg[0])
        twice = {a for a in expected if sum(a in told(x) for x in tg) > 1}
        assert cut_off and twice == cut_off, [sorted(told(x)) for x in tg]
        assert counts["counters"]["possible_duplicates.telegram"] == len(cut_off)
        # Webhooks carry the idempotency key: a receiver drops any repeat by it.
        keys = [x.key for x in fakes.of("webhook")]
        assert len(set(keys)) == ALERTS
        assert "possible_duplicates.webhook" not in counts["counters"]
