"""Alerts: list, filters, get, ack (MQTT + InfluxDB) and the SSE stream, on real services."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from api.auth import add_token
from deltasense import alerts, schema
from deltasense.alerts import AlertEvent, Message
from deltasense.mqtt import make_client
from deltasense.settings import Settings

from .api_support import ADMIN, influx, running_api

NOW = int(time.time() * 1000)


def _event(n: int, **kw: object) -> AlertEvent:
    base: dict[str, object] = {
        "id": f"al-{n:016x}",
        "kind": "flood",
        "rule": "street-flood",
        "subject": f"lv{n}",
        "district": "phuong-1",
        "severity": "warning",
        "state": "firing",
        "values": {"level_mm": 90.0},
        "started": NOW - 600_000,
        "updated": NOW - 600_000 + n * 1000,
        "message": Message(vi="Ngập đường", en="Street flooding"),
    }
    base.update(kw)
    return msgspec.convert(base, AlertEvent, from_attributes=True)


EVENTS = [
    _event(1, state="pending", updated=NOW - 599_000),
    _event(1, state="firing", severity="critical", updated=NOW - 500_000),  # same id, later
    _event(2, kind="storm", rule="gust", district="phuong-2"),
    _event(3, state="resolved", ended=NOW - 100_000, updated=NOW - 100_000),
    _event(4, state="pending", updated=NOW - 50_000),
]


async def _seed(settings: Settings) -> None:
    async with influx(settings) as db:
        await db.write_lines([schema.alert_line(e) for e in EVENTS])


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()]


async def test_list_filters_and_get(settings: Settings) -> None:
    await _seed(settings)
    a1, a2, a3, a4 = (f"al-{n:016x}" for n in range(1, 5))
    async with running_api(settings) as api:
        get = api.get
        assert _ids(await get("/api/v1/alerts", headers=ADMIN)) == [a4, a1, a2]
        assert _ids(await get("/api/v1/alerts", params={"state": "all"}, headers=ADMIN)) == [
            a4,
            a3,
            a1,
            a2,
        ]
        assert _ids(await get("/api/v1/alerts", params={"state": "resolved"}, headers=ADMIN)) == [
            a3
        ]
        assert _ids(await get("/api/v1/alerts", params={"kind": "storm"}, headers=ADMIN)) == [a2]
        assert _ids(
            await get("/api/v1/alerts", params={"district": "phuong-2"}, headers=ADMIN)
        ) == [a2]
        assert _ids(
            await get("/api/v1/alerts", params={"severity": "critical"}, headers=ADMIN)
        ) == [a1]
        assert _ids(await get("/api/v1/alerts", params={"limit": 2}, headers=ADMIN)) == [a4, a1]
        injected = await get("/api/v1/alerts", params={"district": "x' OR '1'='1"}, headers=ADMIN)
        assert injected.status_code == 422

        one = await get(f"/api/v1/alerts/{a1}", headers=ADMIN)
        assert one.json() == msgspec.to_builtins(EVENTS[1])
        missing = await get("/api/v1/alerts/al-ffffffffffffffff", headers=ADMIN)
        assert missing.status_code == 404


async def test_ack_publishes_and_stores(settings: Settings) -> None:
    await _seed(settings)
    target = EVENTS[1]
    # Published on the ack topic: only analytics publishes alert events.
    topic = alerts.ack_topic(settings.site, target.id)
    operator = add_token(settings.var_dir, "ca-truc", "operator")
    viewer = add_token(settings.var_dir, "wall", "viewer")
    async with (
        running_api(settings) as api,
        make_client(settings, identifier=f"{settings.site}-ack-probe") as mqtt,
    ):
        await mqtt.subscribe(topic, qos=1)
        url = f"/api/v1/alerts/{target.id}/ack"
        denied = await api.post(url, json={}, headers={"Authorization": f"Bearer {viewer}"})
        assert denied.status_code == 403
        headers = {"Authorization": f"Bearer {operator}"}
        response = await api.post(url, json={"note": "đã cử đội"}, headers=headers)
        assert response.status_code == 200, response.text
        acked = response.json()
        assert acked["ack"]["by"] == "ca-truc"
        assert acked["ack"]["note"] == "đã cử đội"
        assert acked["state"] == "firing"
        assert acked["updated"] > target.updated

        message = await asyncio.wait_for(anext(aiter(mqtt.messages)), timeout=5)
        published = alerts.decode(message.payload)
        assert msgspec.to_builtins(published) == acked
        assert str(message.topic) == topic and not message.retain

        stored = await api.get(f"/api/v1/alerts/{target.id}", headers=ADMIN)
        assert stored.json() == acked
        again = await api.post(url, headers=headers)  # idempotent, body optional
        assert again.json() == acked
        too_long = await api.post(
            f"/api/v1/alerts/{EVENTS[3].id}/ack", json={"note": "x" * 501}, headers=headers
        )
        assert too_long.status_code == 422
        resolved = await api.post(
            f"/api/v1/alerts/{EVENTS[3].id}/ack", json={"note": None}, headers=headers
        )
        assert resolved.status_code == 200
        assert resolved.json()["ack"]["by"] == "ca-truc"
        missing = await api.post("/api/v1/alerts/al-ffffffffffffffff/ack", headers=headers)
        assert missing.status_code == 404


async def _next_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """Fields of the next SSE event that has an ``event:`` line (comments skipped)."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "event" in fields:
                return fields
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value
    raise AssertionError("stream ended")


async def test_stream_delivers_alert_changes(settings: Settings) -> None:
    viewer = add_token(settings.var_dir, "wall", "viewer")
    event = _event(7, kind="storm", rule="gust", subject="w7")
    async with (
        running_api(settings) as api,
        make_client(settings, identifier=f"{settings.site}-sse-probe") as mqtt,
    ):
        unauthorised = await api.get("/api/v1/alerts/stream", params={"ticket": "bad"})
        assert unauthorised.status_code == 401
        in_url = await api.get("/api/v1/alerts/stream", params={"access_token": viewer})
        assert in_url.status_code == 400  # a token in the URL is refused, even a good one
        ticket = await api.post(
            "/api/v1/stream/ticket", headers={"Authorization": f"Bearer {viewer}"}
        )
        assert ticket.status_code == 200, ticket.text
        async with api.stream(
            "GET", "/api/v1/alerts/stream", params={"ticket": ticket.json()["ticket"]}
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            assert await asyncio.wait_for(anext(lines), 5) == ": listening"  # registered
            topic = alerts.alert_topic(settings.site, event)
            await mqtt.publish(topic, alerts.encode(event), qos=1, retain=True)
            # garbage on the subtree is skipped, not fatal
            await mqtt.publish(f"{settings.site}/_alerts/x", b"{not json", qos=1)
            second = msgspec.structs.replace(event, state="resolved", updated=event.updated + 1)
            await mqtt.publish(topic, alerts.encode(second), qos=1, retain=True)

            first = await asyncio.wait_for(_next_event(lines), 5)
            assert first["event"] == "alert"
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9]+", first["id"]), first["id"]
            assert alerts.decode(first["data"].encode()) == event
            then = await asyncio.wait_for(_next_event(lines), 5)
            assert alerts.decode(then["data"].encode()) == second
            epoch, seq = first["id"].split("-")
            assert then["id"] == f"{epoch}-{int(seq) + 1}"  # monotonic
            await mqtt.publish(topic, b"", qos=1, retain=True)  # clear the retained message
        metrics = await api.get("/metrics", headers=ADMIN)
        assert 'deltasense_api_alert_events_total{outcome="bad"} 1.0' in metrics.text


async def test_a_stream_resumed_with_last_event_id_gets_the_missed_changes(
    settings: Settings,
) -> None:
    """Issue 11: reconnecting with Last-Event-ID (or ?last= for a new EventSource)
    replays what was missed, in order and once; an id the API cannot resume from
    (another process's, from the future) gets a `reset` event; a malformed one a 422."""
    events = [_event(20 + n, subject=f"lv-sse-{n}") for n in range(4)]

    async def open_stream(
        api: httpx.AsyncClient,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        ticket = (await api.post("/api/v1/stream/ticket", headers=ADMIN)).json()["ticket"]
        query = {"ticket": ticket} | (params or {})
        return api.stream("GET", "/api/v1/alerts/stream", params=query, headers=headers)

    async with (
        running_api(settings) as api,
        make_client(settings, identifier=f"{settings.site}-sse-resume") as mqtt,
    ):
        first_stream = await open_stream(api)
        async with first_stream as response:
            lines = response.aiter_lines()
            assert await asyncio.wait_for(anext(lines), 5) == ": listening"
            await mqtt.publish(
                alerts.alert_topic(settings.site, events[0]), alerts.encode(events[0]), qos=1
            )
            seen = await asyncio.wait_for(_next_event(lines), 5)
        last_id = seen["id"]
        # Missed while away: three changes.
        for e in events[1:]:
            await mqtt.publish(alerts.alert_topic(settings.site, e), alerts.encode(e), qos=1)
        await asyncio.sleep(0.5)
        for how in ({"headers": {"Last-Event-ID": last_id}}, {"params": {"last": last_id}}):
            resumed = await open_stream(api, **how)
            async with resumed as response:
                assert response.status_code == 200
                lines = response.aiter_lines()
                assert await asyncio.wait_for(anext(lines), 5) == ": listening"
                got = [await asyncio.wait_for(_next_event(lines), 5) for _ in range(3)]
                assert [alerts.decode(g["data"].encode()).subject for g in got] == [
                    e.subject for e in events[1:]
                ]
                epoch, seq = last_id.split("-")
                assert [g["id"] for g in got] == [f"{epoch}-{int(seq) + k}" for k in (1, 2, 3)]
        for unknown in ("0badcafe-1", f"{last_id.split('-')[0]}-999999"):
            resumed = await open_stream(api, headers={"Last-Event-ID": unknown})
            async with resumed as response:
                lines = response.aiter_lines()
                assert await asyncio.wait_for(anext(lines), 5) == ": listening"
                assert (await asyncio.wait_for(_next_event(lines), 5))["event"] == "reset"
        for bad in ("nope", "1-2-3", "a" * 40 + "-1", "-1"):
            ticket = (await api.post("/api/v1/stream/ticket", headers=ADMIN)).json()["ticket"]
            r = await api.get(
                "/api/v1/alerts/stream",
                params={"ticket": ticket},
                headers={"Last-Event-ID": bad},
            )
            assert r.status_code == 422, bad
        for e in events:
            await mqtt.publish(alerts.alert_topic(settings.site, e), b"", qos=1, retain=True)
