"""The typhoon backtest's alert events replayed live through Mosquitto into the notifier.

The events are what ``run_scenario("typhoon", 1, …)`` produces, made once per
test session (no generated data in the repository; 20–100 s of CPU), in the
background while the rest of the suite runs (tests/jobs/typhoon_events.py).
The replay compresses the storm's 26 hours into ~20 s; grouping times are
scaled with it.

The benchmark (``DELTASENSE_BENCH_NOTIFIER=1``) sends 1 000 events in one
minute with the shipped timings through all four channels and prints the
table that docs/BENCHMARKS.md carries.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import pytest

from deltasense import alerts
from deltasense.alerts import AlertEvent, Message
from deltasense.influx import InfluxClient
from deltasense.mqtt import make_client
from deltasense.settings import Settings
from tests.integration.notifier_support import (
    Arrival,
    Inbox,
    notifier_overrides,
    running_fakes,
    running_notifier,
    self_signed,
)
from tests.jobs import typhoon_events as typhoon_jobs
from tests.support import eventually

REPLAY_S = 20.0
GROUP_INTERVAL_S = 3.0
WEBHOOK_ONLY = """
[receivers.truc-ban]
webhook = ["{hook}"]
[[routes]]
name = "all"
receivers = ["truc-ban"]
"""


@pytest.fixture(scope="session")
def typhoon_events() -> list[AlertEvent]:
    # Made in the background while the suite runs (tests that use them are marked).
    return typhoon_jobs.events()


async def replay(settings: Settings, events: list[AlertEvent], span_s: float) -> dict[str, float]:
    """Publish ``events`` at their own pace compressed into ``span_s``; returns when
    each (alert id, state, severity) was first published."""
    t0 = events[0].updated
    scale = span_s / max(1, events[-1].updated - t0)
    sent: dict[str, float] = {}
    start = time.monotonic()
    async with make_client(settings) as client:
        for e in events:
            # A pace, not a wait for an event: the storm's own timing, compressed.
            await asyncio.sleep(max(0.0, start + (e.updated - t0) * scale - time.monotonic()))
            await client.publish(
                alerts.alert_topic(settings.site, e), alerts.encode(e), qos=1, retain=True
            )
            sent.setdefault(f"{e.id}|{e.state}|{e.severity}", time.time())
    return sent


def is_urgent(message: dict[str, Any]) -> bool:
    return any(
        e["severity"] == "critical" or e["state"] == "resolved" or e["ack"]
        for e in message["events"]
    )


@pytest.mark.background_job(typhoon_jobs.MODULE)
@pytest.mark.timeout(300)  # the session's typhoon backtest is made in this test's setup
async def test_typhoon_replay_groups_per_interval_and_sends_criticals_within_2s(
    settings: Settings, influx: InfluxClient, typhoon_events: list[AlertEvent]
) -> None:
    events = typhoon_events
    async with running_fakes() as fakes:
        s = Settings(
            **(
                settings.model_dump()
                | notifier_overrides(fakes, None, None)
                | {"notifier_group_wait_s": 1.0, "notifier_group_interval_s": GROUP_INTERVAL_S}
            )
        )
        from tests.integration.notifier_support import routing

        async with running_notifier(s, routing(fakes, WEBHOOK_ONLY), influx):
            sent = await replay(s, events, REPLAY_S)
            last = events[-1]

            def done(arrivals: list[Arrival]) -> bool:
                return any(
                    e["id"] == last.id and e["updated"] == last.updated
                    for a in arrivals
                    for e in a.body["events"]
                )

            await fakes.wait_for(done, within=GROUP_INTERVAL_S + 5)
    hooks = fakes.of("webhook")
    by_group: dict[str, list[Arrival]] = defaultdict(list)
    for a in hooks:
        by_group[a.body["group"]].append(a)
    for group, arrivals in by_group.items():
        for prev, cur in itertools.pairwise(arrivals):
            if not is_urgent(cur.body):
                gap = cur.at - prev.at
                assert gap >= GROUP_INTERVAL_S - 0.3, f"{group}: two messages {gap:.2f} s apart"
    # Every critical an alert reached is told within 2 s of its publication.
    delays = []
    for key, at in sent.items():
        alert_id, state, severity = key.split("|")
        if severity != "critical" or state != "firing":
            continue
        got = [
            a.at
            for a in hooks
            for e in a.body["events"]
            if e["id"] == alert_id and e["severity"] == "critical" and a.at >= at - 0.01
        ]
        assert got, f"critical {alert_id} never arrived"
        delays.append(min(got) - at)
    assert delays and max(delays) < 2.0, f"slowest critical {max(delays):.2f} s"
    criticals = sum(1 for k in sent if k.endswith("|firing|critical"))
    # Warnings wait for their group; only criticals, resolves and acks take the fast path.
    urgent_events = sum(1 for k in sent if k.endswith("|critical") or "|resolved|" in k)
    bound = urgent_events + len(by_group) * (int(REPLAY_S / GROUP_INTERVAL_S) + 2)
    assert len(hooks) <= bound, f"{len(hooks)} messages, more than {bound}"
    print(
        f"typhoon replay: {len(events)} events, {criticals} criticals, {len(hooks)} messages, "
        f"{len(by_group)} groups, critical delay max {max(delays):.2f} s"
    )


TELEGRAM_ONLY = """
[receivers.truc-ban]
telegram = [42]
[[routes]]
name = "all"
receivers = ["truc-ban"]
"""


@pytest.mark.background_job(typhoon_jobs.MODULE)
@pytest.mark.timeout(300)
async def test_typhoon_over_rate_limited_telegram_still_tells_every_critical_within_2s(
    settings: Settings, influx: InfluxClient, typhoon_events: list[AlertEvent]
) -> None:
    """A chat takes one message a second, and the fake answers 429 whenever Telegram
    would: messages due together become one digest, urgent first, so every critical is
    delivered within 2 s and no limit is ever hit.  (A group's 20 a minute cannot carry
    a 26-hour storm compressed into 20 s at all; its urgent reserve is a unit test.)"""
    events = typhoon_events
    async with running_fakes() as fakes:
        fakes.telegram_limits = True
        s = Settings(
            **(
                settings.model_dump()
                | notifier_overrides(fakes, None, None)
                | {"notifier_group_wait_s": 1.0, "notifier_group_interval_s": GROUP_INTERVAL_S}
            )
        )
        from tests.integration.notifier_support import routing

        async with running_notifier(s, routing(fakes, TELEGRAM_ONLY), influx) as notifier:
            sent = await replay(s, events, REPLAY_S)
            replayed = time.time()

            async def settled() -> bool:
                """The planner has had its waits since the last event, and Telegram has
                accepted everything."""
                rows = notifier.outbox.messages(limit=100_000)
                return time.time() > replayed + GROUP_INTERVAL_S + 1 and all(
                    m.state == "sent" for m in rows
                )

            assert await eventually(settled, within=GROUP_INTERVAL_S + 30), "never settled"
            rows = notifier.outbox.messages(limit=100_000)
            digests = notifier.outbox.counts()["counters"].get("digests.telegram", 0)
    assert fakes.telegram_violations == 0, "the notifier broke a Telegram limit"
    assert digests > 0, "a storm this dense makes digests"
    arrivals = fakes.of("telegram")
    delays: dict[str, list[float]] = {"42": []}
    queued: list[float] = []  # publication → in the outbox
    for key, at in sent.items():
        alert_id, state, severity = key.split("|")
        if severity != "critical" or state != "firing":
            continue
        for chat, found in delays.items():
            # Told when Telegram (the fake, enforcing its limits) took the request that
            # the notifier then recorded as sent: the last arrival before its answer.
            told = [
                max(a.at for a in arrivals if a.address == chat and a.at <= m.sent_at / 1000)
                for m in rows
                if m.address == chat
                and alert_id in m.alert_ids
                and m.sent_at is not None
                and m.sent_at / 1000 >= at - 0.01
            ]
            assert told, f"critical {alert_id} never reached chat {chat}"
            found.append(min(told) - at)
            queued.append(
                min(
                    m.created / 1000
                    for m in rows
                    if m.address == chat
                    and alert_id in m.alert_ids
                    and m.created / 1000 >= at - 0.01
                )
                - at
            )
    for chat, found in delays.items():
        worst = ", ".join(f"{d:.2f}" for d in sorted(found)[-5:])
        assert found and max(found) < 2.0, (
            f"chat {chat}: slowest criticals {worst} s (median {statistics.median(found):.2f} s; "
            f"in the outbox after median {statistics.median(queued):.2f} s, max {max(queued):.2f} s)"
        )
    print(
        f"typhoon over Telegram: {len(events)} events, {len(delays['42'])} criticals, "
        f"{len(fakes.of('telegram'))} messages ({digests} digests, {len(rows)} outbox "
        "messages), slowest critical " + ", ".join(f"{c} {max(d):.2f} s" for c, d in delays.items())
    )


# --- benchmark ---------------------------------------------------------------------------
WARDS = [
    "phuong-1",
    "phuong-2",
    "phuong-3",
    "phuong-5",
    "phuong-7",
    "phuong-8",
    "nha-mat",
    "vinh-trach",
    "vinh-trach-dong",
    "hiep-thanh",
]
ALL_CHANNELS = """
[receivers.truc-ban]
telegram = [-1001234567890]
zalo = ["8243125690123456789"]
email = ["trucban@example.vn"]
webhook = ["{hook}"]
[[routes]]
name = "all"
receivers = ["truc-ban"]
"""


def landfall(n: int, seconds: float, seed: int = 1) -> list[tuple[float, AlertEvent]]:
    """``n`` events over ``seconds``: storm and flood alerts across the wards, a fifth
    critical, a tenth of the opened ones resolving later in the minute."""
    rng = random.Random(seed)
    out: list[tuple[float, AlertEvent]] = []
    opened: list[AlertEvent] = []
    base = int(time.time() * 1000)
    for i in range(n):
        at = seconds * i / n
        if opened and rng.random() < 0.1:
            e = opened.pop(rng.randrange(len(opened)))
            out.append(
                (at, msgspec.structs.replace(e, state="resolved", updated=base + int(at * 1000)))
            )
            continue
        kind = rng.choice(["storm", "flood"])
        e = AlertEvent(
            id=f"al-b{i:05d}",
            kind=kind,
            rule="wind-cap" if kind == "storm" else "street-flood",
            subject=f"st-{i:05d}",
            district=rng.choice(WARDS),
            severity="critical" if rng.random() < 0.2 else "warning",
            state="firing",
            started=base + int(at * 1000),
            updated=base + int(at * 1000),
            values={"depth_mm": 300.0} if kind == "flood" else {},
            message=Message(vi="Cảnh báo", en="Alert"),
        )
        opened.append(e)
        out.append((at, e))
    return out


@pytest.mark.skipif(
    not os.environ.get("DELTASENSE_BENCH_NOTIFIER"),
    reason="benchmark: set DELTASENSE_BENCH_NOTIFIER=1",
)
async def test_benchmark_1000_events_in_a_minute(
    settings: Settings, influx: InfluxClient, tmp_path: Path
) -> None:
    plan = landfall(1000, 60.0)
    cert, key = self_signed(tmp_path)
    with Inbox(cert, key) as inbox:
        async with running_fakes() as fakes:
            s = Settings(
                **(
                    settings.model_dump()
                    | notifier_overrides(fakes, inbox, cert)
                    | {
                        "notifier_group_wait_s": 30.0,
                        "notifier_group_interval_s": 300.0,
                        "notifier_urgent_wait_s": 0.5,
                    }
                )
            )
            from tests.integration.notifier_support import routing

            async with running_notifier(s, routing(fakes, ALL_CHANNELS), influx) as n:
                published: dict[str, float] = {}
                start = time.monotonic()
                async with make_client(s) as client:
                    for at, e in plan:
                        await asyncio.sleep(
                            max(0.0, start + at - time.monotonic())
                        )  # the landfall's pace
                        await client.publish(
                            alerts.alert_topic(s.site, e), alerts.encode(e), qos=1, retain=True
                        )
                        if e.severity == "critical" and e.state == "firing":
                            published[e.id] = time.time()
                # Past the last group wait; then what is still queued is counted as queued.
                await asyncio.sleep(35)  # a measurement window, not a wait for an event
                rows = n.outbox.messages(limit=1_000_000)
    print(
        "\n| channel | messages sent | events per message | still queued | critical delay p50 | p99 | max |"
    )
    print("|---|---|---|---|---|---|---|")
    for channel in ("webhook", "email", "telegram", "zalo"):
        mine = [m for m in rows if m.channel == channel]
        sent = [m for m in mine if m.state == "sent" and m.sent_at is not None]
        first: dict[str, float] = {}
        for m in sent:
            assert m.sent_at is not None
            for alert_id in m.alert_ids:
                first[alert_id] = min(first.get(alert_id, m.sent_at / 1000), m.sent_at / 1000)
        delays = [first[a] - t for a, t in published.items() if a in first]
        pending = len(mine) - len(sent)
        per = statistics.mean(len(m.alert_ids) for m in sent) if sent else 0
        q = (
            statistics.quantiles(delays, n=100, method="inclusive")
            if len(delays) > 1
            else [float("nan")] * 99
        )
        told = f"{len(delays)}/{len(published)}"
        print(
            f"| {channel} | {len(sent)} | {per:.1f} | {pending} | {statistics.median(delays):.2f} s | "
            f"{q[98]:.2f} s | {max(delays):.2f} s ({told} criticals told) |"
        )
    print(
        f"events {len(plan)}, criticals {len(published)}, webhook arrivals {len(fakes.of('webhook'))}, "
        f"mails {len(inbox.mails)}, Telegram sends {len(fakes.of('telegram'))}, "
        f"Zalo sends {len(fakes.of('zalo'))} (digests carry several messages each)"
    )
