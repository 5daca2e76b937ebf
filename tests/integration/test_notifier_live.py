"""The notifier against real Mosquitto and InfluxDB and real local channel servers."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from deltasense.influx import InfluxClient
from deltasense.mqtt import make_client
from deltasense.routing import routing_path
from deltasense.settings import Settings
from tests.integration.notifier_support import (
    Fakes,
    Inbox,
    alert,
    notifier_overrides,
    publish,
    routing,
    running_fakes,
    running_notifier,
    self_signed,
    watch_ack,
)
from tests.support import ADMIN_TOKEN, eventually


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as f:
        yield f


@pytest.fixture
async def inbox(certificate: tuple[Path, Path]) -> AsyncIterator[Inbox]:
    with Inbox(*certificate) as box:
        yield box


@pytest.fixture
def nsettings(
    settings: Settings, fakes: Fakes, inbox: Inbox, certificate: tuple[Path, Path]
) -> Settings:
    return Settings(**(settings.model_dump() | notifier_overrides(fakes, inbox, certificate[0])))


async def test_flood_alert_reaches_every_channel_within_2s(
    nsettings: Settings, fakes: Fakes, inbox: Inbox, influx: InfluxClient
) -> None:
    async with running_notifier(nsettings, routing(fakes), influx):
        sent = await publish(nsettings, alert(1))
        await fakes.wait_for(
            lambda a: {x.channel for x in a} >= {"telegram", "zalo", "webhook"}, within=2
        )
        await inbox.wait(1, within=2)
    latest = max(max(a.at for a in fakes.arrivals), inbox.mails[0].at) - sent
    assert latest < 2.0, f"slowest channel took {latest:.2f} s"
    tg = fakes.of("telegram")[0].body
    assert tg["chat_id"] == 1001 and "Phường 1" in tg["text"] and "sâu 32 cm" in tg["text"]
    assert tg["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "ack:al-0001"
    assert "Ngập đường" in fakes.of("zalo")[0].body["message"]["text"]
    hook = fakes.of("webhook")[0]
    assert hook.body["events"][0]["id"] == "al-0001" and hook.key == hook.body["idempotency_key"]
    assert fakes.bad_signatures == 0
    mail = inbox.mails[0]
    assert mail.tls and mail.to == ["trucban@example.vn"]  # STARTTLS was required and used
    assert "Nhà Mát" not in str(mail.message["Subject"]) and "Phường 1" in str(
        mail.message["Subject"]
    )
    assert "/ack/" in mail.message.get_content()
    assert len(fakes.arrivals) == 3 and len(inbox.mails) == 1  # one message per channel, no more


async def test_429_retry_after_is_honoured_and_the_message_arrives(
    nsettings: Settings, fakes: Fakes, inbox: Inbox, influx: InfluxClient
) -> None:
    fakes.throttle = {"telegram": [1], "webhook": [1]}
    async with running_notifier(nsettings, routing(fakes), influx) as n:
        await publish(nsettings, alert(2))
        await fakes.wait_for(lambda a: {x.channel for x in a} >= {"telegram", "webhook"}, within=5)
        for channel in ("telegram", "webhook"):
            first, second = fakes.attempts[channel][:2]
            assert second - first >= 1.0, f"{channel} retried after {second - first:.2f} s"

        async def all_sent() -> bool:
            return {m.state for m in n.outbox.messages("al-0002")} == {"sent"}

        assert await eventually(all_sent, within=3)  # the outbox marks after the answer
        rows = {m.channel: m for m in n.outbox.messages("al-0002")}
    assert len(fakes.attempts["telegram"]) == 2 and rows["telegram"].attempts == 2


async def test_resolve_reaches_the_receiver_within_5s(
    nsettings: Settings, fakes: Fakes, inbox: Inbox, influx: InfluxClient
) -> None:
    a = alert(3)
    async with running_notifier(nsettings, routing(fakes), influx):
        await publish(nsettings, a)
        await fakes.wait_for(lambda x: len(fakes.of("telegram")) == 1, within=3)
        resolved = msgspec.structs.replace(
            a, state="resolved", updated=a.updated + 60_000, ended=a.updated + 60_000
        )
        sent = await publish(nsettings, resolved)
        await fakes.wait_for(lambda x: len(fakes.of("telegram")) == 2, within=5)
    took = fakes.of("telegram")[1].at - sent
    assert took < 5.0 and "đã kết thúc" in fakes.of("telegram")[1].body["text"]
    assert "reply_markup" not in fakes.of("telegram")[1].body  # nothing left to acknowledge


async def test_telegram_button_acks_and_stops_escalation(
    nsettings: Settings, fakes: Fakes, inbox: Inbox, influx: InfluxClient
) -> None:
    s = Settings(
        **(
            nsettings.model_dump()
            | {"notifier_escalation_min": 0.05, "notifier_repeat_interval_s": 2.0}
        )
    )
    a = alert(4)
    async with running_notifier(s, routing(fakes), influx) as n:
        await publish(s, a)
        await fakes.wait_for(lambda x: len(fakes.of("telegram")) == 1, within=3)
        ack = await watch_ack(s, a)
        # Hostile updates first: garbage, a stranger's chat, a foreign callback.
        for update in [
            {"update_id": 1, "callback_query": "nonsense"},
            {
                "update_id": 2,
                "callback_query": {
                    "id": "c2",
                    "data": "ack:al-0004",
                    "from": {"id": 9},
                    "message": {"chat": {"id": 666}},
                },
            },
            {
                "update_id": 3,
                "callback_query": {
                    "id": "c3",
                    "data": "rm -rf",
                    "from": {"id": 9},
                    "message": {"chat": {"id": 1001}},
                },
            },
            {"update_id": "x"},
            {
                "update_id": 4,
                "callback_query": {
                    "id": "c4",
                    "data": "ack:al-0004",
                    "from": {"id": 7, "username": "an"},
                    "message": {"chat": {"id": 1001}},
                },
            },
        ]:
            fakes.updates.put_nowait(update)
        async with asyncio.timeout(5), fakes.changed:
            await fakes.changed.wait_for(
                lambda: any(x["callback_query_id"] == "c4" for x in fakes.answers)
            )
        published = await asyncio.wait_for(ack, timeout=5)  # on {site}/_acks/{id}
        assert published.ack is not None and published.ack.by == "telegram:an"
        # The ack itself is told (fast path); after it no repeat and no escalation.
        await fakes.wait_for(lambda x: len(fakes.of("telegram")) == 2, within=3)
        assert n.planner.next_wake() is None
        assert n.bad_payloads >= 2
    assert [x.address for x in fakes.of("telegram")] == ["1001", "1001"]
    assert "Đã xác nhận bởi telegram:an" in fakes.of("telegram")[1].body["text"]
    assert {x["callback_query_id"] for x in fakes.answers} == {"c2", "c4"}  # c2: "not allowed"
    rows = await influx.query('SELECT last("body") FROM "alerts" GROUP BY "id"')
    assert "telegram:an" in str(rows)


async def test_a_telegram_channel_added_by_a_reload_takes_its_button_presses(
    nsettings: Settings, fakes: Fakes, inbox: Inbox, influx: InfluxClient
) -> None:
    """The getUpdates poller starts when a reloaded routing file adds Telegram, not
    only at start-up (before, the buttons worked only after a restart)."""
    webhook_only = '[receivers.truc-ban]\nwebhook = ["{hook}"]\n' + ROUTES
    telegram = "[receivers.truc-ban]\ntelegram = [1001]\n" + ROUTES
    async with running_notifier(nsettings, routing(fakes, webhook_only), influx) as n:
        assert "telegram" not in n.channels
        routing_path(nsettings).write_text(telegram, encoding="utf-8")

        async def reloaded() -> bool:
            return n.routing_status.loaded_mtime_ns is not None and "telegram" in n.channels

        assert await eventually(reloaded, within=3)
        a = alert(9)
        await publish(nsettings, a)
        await fakes.wait_for(lambda x: len(fakes.of("telegram")) == 1, within=3)
        ack = await watch_ack(nsettings, a)
        press = {"id": "c9", "data": f"ack:{a.id}", "from": {"id": 7, "username": "an"}}
        fakes.updates.put_nowait({"update_id": 9, "callback_query": press | CHAT_1001})
        published = await asyncio.wait_for(ack, timeout=5)
        assert published.ack is not None and published.ack.by == "telegram:an"
        await fakes.wait_for(lambda x: len(fakes.of("telegram")) == 2, within=3)
    assert [x["callback_query_id"] for x in fakes.answers] == ["c9"]
    assert fakes.answers[0]["text"] == "Đã xác nhận bởi telegram:an"  # the receiver's language


ROUTES = '\n[[routes]]\nname = "flood"\nreceivers = ["truc-ban"]\n'
CHAT_1001 = {"message": {"chat": {"id": 1001}}}


async def test_email_link_acks_once_and_a_get_does_not(
    nsettings: Settings, fakes: Fakes, inbox: Inbox, influx: InfluxClient
) -> None:
    a = alert(5)
    async with running_notifier(nsettings, routing(fakes), influx) as n:
        await publish(nsettings, a)
        await inbox.wait(1, within=3)
        link = re.search(r"http://\S+/ack/\S+", inbox.mails[0].message.get_content())
        assert link is not None
        ack = await watch_ack(nsettings, a)
        async with httpx.AsyncClient(timeout=5) as http:
            page = await http.get(link.group(0))  # a mail scanner's prefetch
            assert page.status_code == 200 and "<form method=post>" in page.text
            assert n.latest[a.id].ack is None
            forged = link.group(0)[:-2] + ("AA" if not link.group(0).endswith("AA") else "BB")
            assert (await http.post(forged)).status_code == 400
            assert (await http.post(link.group(0))).status_code == 200
            assert (await http.post(link.group(0))).status_code == 409  # one use
            assert (await http.post(link.group(0).rsplit("/", 1)[0] + "/%00")).status_code == 400
            published = await asyncio.wait_for(ack, timeout=5)  # on {site}/_acks/{id}
            assert published.ack is not None and published.ack.by == "email:truc-ban"
            unauth = await http.get(f"http://127.0.0.1:{nsettings.notifier_http_port}/deliveries")
            assert unauth.status_code == 401
            view = await http.get(
                f"http://127.0.0.1:{nsettings.notifier_http_port}/deliveries",
                params={"alert_id": a.id},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        assert view.status_code == 200
        states: dict[str, Any] = {m["channel"]: m["state"] for m in view.json()["messages"]}
        assert set(states) == {"telegram", "zalo", "email", "webhook"}
        # The ack is told to the receiver's other channels; then nothing is scheduled.
        await fakes.wait_for(lambda x: len(fakes.of("telegram")) == 2, within=3)
        assert "email:truc-ban" in fakes.of("telegram")[1].body["text"]
        assert n.planner.next_wake() is None  # no repeat, no escalation after the ack


async def test_a_silence_stops_messages(
    nsettings: Settings, fakes: Fakes, inbox: Inbox, influx: InfluxClient
) -> None:
    now = int(time.time() * 1000)
    silence = {
        "matchers": {"district": "nha-mat"},
        "starts": now - 1000,
        "ends": now + 3_600_000,
        "by": "an",
        "comment": "đã biết",
    }
    async with running_notifier(nsettings, routing(fakes), influx) as n:
        async with make_client(nsettings) as client:
            await client.publish(
                f"{nsettings.site}/_silences/s1", msgspec.json.encode(silence), qos=1, retain=True
            )
            await client.publish(
                f"{nsettings.site}/_silences/bad", b"{not json", qos=1, retain=True
            )
            # Hostile alert payloads: not JSON, a wrong shape; counted, nothing breaks.
            await client.publish(f"{nsettings.site}/_alerts/flood/x/y", b"\xff\x00", qos=1)
            await client.publish(f"{nsettings.site}/_alerts/flood/x/z", b'{"id": 1}', qos=1)
        # Silenced ward first, then an unsilenced barrier: its message proves the first was seen.
        await publish(nsettings, alert(6, district="nha-mat"), alert(7, district="phuong-2"))
        await fakes.wait_for(lambda x: len(fakes.of("telegram")) == 1, within=3)
        assert n.planner.silenced == 1 and n.bad_payloads == 3
    assert (
        "al-0007"
        in fakes.of("telegram")[0].body["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    )
    assert all("Nhà Mát" not in a.body.get("text", "") for a in fakes.of("telegram"))
