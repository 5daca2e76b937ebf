"""The API's view of the notifier, against the real notifier, API, Mosquitto and
InfluxDB: routing edited by an admin takes effect without a restart; an alert's
deliveries are visible to operators, masked; wrong identities are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from api.auth import add_token
from deltasense.influx import InfluxClient
from deltasense.routing import load_routing, routing_path
from deltasense.settings import Settings
from notifier.outbox import Message
from tests.integration.api_support import ADMIN, running_api
from tests.integration.notifier_support import (
    Fakes,
    alert,
    notifier_overrides,
    publish,
    running_fakes,
    running_notifier,
)
from tests.support import eventually

ROUTING = """
[receivers.{who}]
name = "Trực ban {who}"
webhook = ["{hook}?to={who}"]

[[routes]]
name = "all"
receivers = ["{who}"]
"""
TOML = {"Content-Type": "application/toml"}
PATH = "/api/v1/admin/notifier/routing"


def routing_text(fakes: Fakes, who: str) -> str:
    return ROUTING.replace("{who}", who).replace("{hook}", f"{fakes.url}/hook")


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with running_fakes() as f:
        yield f


@pytest.fixture
def nsettings(settings: Settings, fakes: Fakes) -> Settings:
    s = Settings(**(settings.model_dump() | notifier_overrides(fakes, None, None)))
    path = routing_path(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(routing_text(fakes, "day"), encoding="utf-8")
    return s


async def _webhook_to(fakes: Fakes, who: str, alert_id: str, within: float = 4.0) -> None:
    await fakes.wait_for(
        lambda arrivals: any(
            a.channel == "webhook" and a.address.endswith(f"to={who}") and alert_id in str(a.body)
            for a in arrivals
        ),
        within=within,
    )


async def test_routing_put_takes_effect_for_the_next_alert_without_restart(
    nsettings: Settings, fakes: Fakes, influx: InfluxClient
) -> None:
    path = routing_path(nsettings)
    async with (
        running_notifier(nsettings, load_routing(path), influx) as n,
        running_api(nsettings) as api,
    ):
        first = alert(1)
        await publish(nsettings, first)
        await _webhook_to(fakes, "day", first.id)

        shown = await api.get(PATH, headers=ADMIN)
        assert shown.status_code == 200
        assert shown.json()["text"] == routing_text(fakes, "day")
        assert shown.json()["summary"]["receivers"] == [
            {"id": "day", "name": "Trực ban day", "language": "vi", "channels": {"webhook": 1}}
        ]
        assert shown.json()["summary"]["routes"][0]["continue"] is False

        r = await api.put(PATH, content=routing_text(fakes, "night"), headers=ADMIN | TOML)
        assert r.status_code == 200, r.text
        assert r.json()["applied"] is True  # the answer waited for the notifier to take it
        assert [x["id"] for x in r.json()["summary"]["receivers"]] == ["night"]
        assert path.read_text(encoding="utf-8") == routing_text(fakes, "night")
        assert path.stat().st_mode & 0o077 == 0  # it holds addresses
        # The running notifier (never restarted) picks the file up by itself.
        assert await eventually(lambda: _has(n.routing.receivers, "night"), within=5)

        second = alert(2)
        await publish(nsettings, second)
        await _webhook_to(fakes, "night", second.id)
        assert not any(
            a.address.endswith("to=day") and second.id in str(a.body) for a in fakes.arrivals
        )

        audit = await api.get("/api/v1/audit", params={"action": "routing.edit"}, headers=ADMIN)
        entries = audit.json()
        assert [(e["actor"], e["result"], e["target"]) for e in entries] == [
            ("admin", "ok", "routing.toml")
        ]
        assert entries[0]["detail"]["receivers"] == 1


async def _has(receivers: object, rid: str) -> bool:
    return isinstance(receivers, dict) and rid in receivers


async def test_a_refused_routing_changes_nothing_and_names_the_key(
    nsettings: Settings, fakes: Fakes, influx: InfluxClient
) -> None:
    nsettings = Settings(**(nsettings.model_dump() | {"notifier_telegram_token": None}))
    path = routing_path(nsettings)
    before = path.read_bytes()
    operator = add_token(nsettings.var_dir, "ops", "operator")
    viewer = add_token(nsettings.var_dir, "wall", "viewer")
    async with (
        running_notifier(nsettings, load_routing(path), influx),
        running_api(nsettings) as api,
    ):
        # It parses, but this notifier has no Telegram token: it refuses the file,
        # and the API puts the previous one back.
        tg = routing_text(fakes, "night").replace("webhook = [", "telegram = [1001]\nwebhook = [")
        r = await api.put(PATH, content=tg, headers=ADMIN | TOML)
        assert r.status_code == 422
        assert r.json()["detail"] == (
            "refused by the notifier, previous file restored: routing.toml: receivers use "
            "channels not configured: telegram (DELTASENSE_NOTIFIER_TELEGRAM_TOKEN)"
        )
        assert path.read_bytes() == before
        status = f"http://127.0.0.1:{nsettings.notifier_http_port}/routing/status"
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(status)).status_code == 401
            assert (
                await http.get(status, headers={"Authorization": "Bearer x"})
            ).status_code == 401
            seen = (await http.get(status, headers=ADMIN)).json()
        assert "telegram (DELTASENSE_NOTIFIER_TELEGRAM_TOKEN)" in seen["error"]
        bad = routing_text(fakes, "night").replace(
            'receivers = ["night"]', 'receivers = ["nobody"]'
        )
        r = await api.put(PATH, content=bad, headers=ADMIN | TOML)
        assert r.status_code == 422
        assert r.json()["detail"] == (
            "routing.toml: routes[0].receivers: unknown receiver 'nobody'"
        )
        r = await api.put(
            PATH, content=routing_text(fakes, "x") + "\nrepeat = 4\n", headers=ADMIN | TOML
        )
        assert r.status_code == 422 and "unknown key 'repeat'" in r.json()["detail"]
        r = await api.put(PATH, content="[receivers.a\n", headers=ADMIN | TOML)
        assert r.status_code == 422 and r.json()["detail"].startswith("routing.toml: ")
        assert str(nsettings.var_dir) not in r.text  # server paths stay inside
        r = await api.put(PATH, content=b"\xff\xfe[x]", headers=ADMIN | TOML)
        assert r.status_code == 422 and "UTF-8" in r.json()["detail"]
        r = await api.put(PATH, content=routing_text(fakes, "x"), headers=ADMIN)
        assert r.status_code == 415
        r = await api.put(PATH, content=b"#" * 1_000_001, headers=ADMIN | TOML)
        assert r.status_code == 413
        for who in (operator, viewer):
            auth = {"Authorization": f"Bearer {who}"}
            assert (await api.get(PATH, headers=auth)).status_code == 403
            r = await api.put(PATH, content=routing_text(fakes, "x"), headers=auth | TOML)
            assert r.status_code == 403
        assert (await api.get(PATH)).status_code == 401
        assert (
            await api.put(PATH, content=routing_text(fakes, "x"), headers=TOML)
        ).status_code == 401
        assert path.read_bytes() == before

        # An invalid file written by hand is refused by the notifier too: the old
        # routing stays in use and the next alert still reaches the day receiver.
        path.write_text("[[routes]]\nname = 'x'\nreceivers = ['ghost']\n", encoding="utf-8")
        await asyncio.sleep(0.6)  # three polls of the watcher
        a = alert(3)
        await publish(nsettings, a)
        await _webhook_to(fakes, "day", a.id)
        assert (await api.get(PATH, headers=ADMIN)).status_code == 409

        audit = await api.get("/api/v1/audit", params={"action": "routing.edit"}, headers=ADMIN)
        assert {e["result"] for e in audit.json()} == {"invalid"}
        assert len(audit.json()) == 5  # the notifier's, the parser's three, the UTF-8 one


async def test_an_alerts_notifications_show_the_sent_message_masked(
    nsettings: Settings, fakes: Fakes, influx: InfluxClient
) -> None:
    operator = add_token(nsettings.var_dir, "ops", "operator")
    viewer = add_token(nsettings.var_dir, "wall", "viewer")
    a = alert(4)
    url = f"/api/v1/alerts/{a.id}/notifications"
    async with running_api(nsettings) as api:
        # The notifier is not running: a PUT is written but not confirmed ...
        text = routing_text(fakes, "day")
        r = await api.put(PATH, content=text, headers=ADMIN | TOML)
        assert r.status_code == 200
        assert (r.json()["applied"], r.json()["notifier"]) == (
            None,
            "notifier unreachable; it reads the file when it runs",
        )
        # ... and the deliveries say so instead of showing nothing.
        down = await api.get(url, headers=ADMIN)
        assert down.status_code == 503
        assert down.json()["detail"] == (
            "notifier unavailable (ConnectError); delivery state unknown"
        )
        async with running_notifier(nsettings, load_routing(routing_path(nsettings)), influx) as n:
            await publish(nsettings, a)
            await _webhook_to(fakes, "day", a.id)

            async def sent() -> list[dict[str, object]]:
                r = await api.get(url, headers={"Authorization": f"Bearer {operator}"})
                assert r.status_code == 200, r.text
                rows: list[dict[str, object]] = r.json()
                return rows if rows and all(m["state"] == "sent" for m in rows) else []

            rows = await eventually(sent, within=5)
            assert len(rows) == 1
            m = rows[0]
            assert (m["receiver"], m["channel"], m["reason"], m["attempts"]) == (
                "day",
                "webhook",
                "alerts",
                1,
            )
            assert m["address"] == f"{fakes.url}/***"  # path and query (tokens) hidden
            assert a.id in m["alert_ids"]  # type: ignore[operator]
            assert isinstance(m["sent_at"], int) and m["sent_at"] >= m["created"]  # type: ignore[operator]
            assert m["last_error"] == ""
            # More than one page of the notifier's (500): the API reads them all.
            extra = [
                Message(f"ds-{i:032x}", "day", "telegram", "1", "repeat", (a.id,), {"text": "x"})
                for i in range(600)
            ]
            n.outbox.enqueue(extra, now_ms=n.now_ms() + 3_600_000)  # not due: nothing sends
            r = await api.get(url, headers=ADMIN)
            assert r.status_code == 200 and len(r.json()) == 601
            assert len({m["key"] for m in r.json()}) == 601
            r = await api.get(url, headers=ADMIN)
            assert r.status_code == 200 and "to=day" not in r.text
            other = await api.get("/api/v1/alerts/al-9999/notifications", headers=ADMIN)
            assert other.status_code == 200 and other.json() == []
            assert (
                await api.get(url, headers={"Authorization": f"Bearer {viewer}"})
            ).status_code == 403
            assert (await api.get(url)).status_code == 401
            bad = await api.get("/api/v1/alerts/..%2Fx/notifications", headers=ADMIN)
            assert bad.status_code in (404, 422)
        # Stopped (its socket may linger a moment, its outbox is closed): still 503.
        down = await api.get(url, headers=ADMIN)
        assert down.status_code == 503
        assert down.json()["detail"].endswith("delivery state unknown")


async def test_a_silence_made_through_the_api_stops_the_next_matching_message(
    nsettings: Settings, fakes: Fakes, influx: InfluxClient
) -> None:
    """Issue 12's "a silence stops messages", end to end: the operator silences a ward
    in the API, the API publishes it retained, the running notifier holds back that
    ward's next alert while another ward's still goes; ended, the ward is heard again."""
    operator = {"Authorization": f"Bearer {add_token(nsettings.var_dir, 'an', 'operator')}"}
    async with (
        running_notifier(nsettings, load_routing(routing_path(nsettings)), influx) as n,
        running_api(nsettings) as api,
    ):
        made = await api.post(
            "/api/v1/silences",
            json={"matchers": {"district": "nha-mat"}, "duration_s": 3600, "comment": "bão"},
            headers=operator,
        )
        assert made.status_code == 201, made.text
        silence_id = made.json()["id"]

        async def taken_up() -> bool:
            return silence_id in n.planner.silences

        assert await eventually(taken_up, within=3)
        quiet, heard = alert(11, district="nha-mat"), alert(12, district="phuong-2")
        await publish(nsettings, quiet, heard)  # in this order: heard is the barrier
        await _webhook_to(fakes, "day", heard.id)
        assert n.planner.silenced == 1
        assert not any(quiet.id in str(a.body) for a in fakes.arrivals)

        ended = await api.delete(f"/api/v1/silences/{silence_id}", headers=operator)
        assert ended.status_code == 200 and ended.json()["active"] is False

        async def dropped() -> bool:
            return silence_id not in n.planner.silences

        assert await eventually(dropped, within=3)
        after = alert(13, district="nha-mat")
        await publish(nsettings, after)
        await _webhook_to(fakes, "day", after.id)
