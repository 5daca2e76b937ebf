"""The alarm workflow and silences through the API, on real Mosquitto and InfluxDB:
assign, comment, shelve, clear, the activity list, silences published retained in
the notifier's format; hostile input and the wrong roles refused; everything kept
across an API restart."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import msgspec

from api.alarmstore import AlarmStore, SilenceRecord
from api.auth import add_token
from deltasense import schema, silences
from deltasense.alerts import AlertEvent, Message
from deltasense.mqtt import make_client
from deltasense.settings import Settings
from deltasense.silences import Silence

from .api_support import ADMIN, influx, running_api

NOW = int(time.time() * 1000)


def _event(n: int, **kw: object) -> AlertEvent:
    base: dict[str, object] = {
        "id": f"al-{n:016x}",
        "kind": "flood",
        "rule": "street-flood",
        "subject": f"wl-{n}",
        "district": "phuong-1",
        "severity": "warning",
        "state": "firing",
        "values": {"depth_mm": 90.0},
        "started": NOW - 600_000,
        "updated": NOW - 500_000 + n,
        "message": Message(vi="Ngập đường", en="Street flooding"),
    }
    base.update(kw)
    return msgspec.convert(base, AlertEvent, from_attributes=True)


FLOOD = _event(1)  # a level rule: never clearable while firing
SPIKE = _event(2, kind="health", rule="level-spike", values={"jump_mm": 400.0})  # clearable
OVER = _event(3, state="resolved", ended=NOW - 100_000, updated=NOW - 100_000)
WARD = _event(4, district="nha-mat", subject="wl-4")


async def _write(settings: Settings, *events: AlertEvent) -> None:
    async with influx(settings) as db:
        await db.write_lines([schema.alert_line(e) for e in events])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _retained(settings: Settings, topic: str, within: float = 3.0) -> bytes:
    async with make_client(settings) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(within):
            async for m in client.messages:
                assert m.retain
                return bytes(m.payload)  # type: ignore[arg-type]
    raise AssertionError(f"nothing retained on {topic}")


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


async def test_assign_comment_shelve_clear_and_the_activity_survive_an_api_restart(
    settings: Settings,
) -> None:
    await _write(settings, FLOOD, SPIKE, OVER)
    op = _auth(add_token(settings.var_dir, "an", "operator"))
    add_token(settings.var_dir, "binh", "operator")
    viewer = _auth(add_token(settings.var_dir, "xem", "viewer"))
    a1, a2, a3 = FLOOD.id, SPIKE.id, OVER.id
    async with running_api(settings) as api:
        # Viewers read the workflow; every change is refused them, and checked first.
        assert _ok(await api.get(f"/api/v1/alerts/{a1}/workflow", headers=viewer))["activity"] == []
        for method, path, body in (
            ("POST", f"/alerts/{a1}/assign", {"assignee": "an"}),
            ("POST", f"/alerts/{a1}/comments", {"text": "x"}),
            ("POST", f"/alerts/{a1}/shelve", {"duration_s": 600}),
            ("DELETE", f"/alerts/{a1}/shelve", None),
            ("POST", f"/alerts/{a2}/clear", {}),
            ("GET", "/alarm/operators", None),
            ("POST", "/alerts/al-nope/comments", {"text": "x"}),
        ):
            r = await api.request(method, f"/api/v1{path}", json=body, headers=viewer)
            assert r.status_code == 403, (method, path, r.text)
        assert (await api.get(f"/api/v1/alerts/{a1}/workflow")).status_code == 401
        # Unknown alerts, hostile bodies.
        for path, body in (
            ("/alerts/al-unknown/workflow", None),
            ("/alerts/al-unknown/comments", {"text": "x"}),
            ("/alerts/al-unknown/assign", {"assignee": "an"}),
            ("/alerts/al-unknown/shelve", {"duration_s": 600}),
            ("/alerts/al-unknown/clear", {}),
        ):
            r = await api.request(
                "GET" if body is None else "POST", f"/api/v1{path}", json=body, headers=op
            )
            assert r.status_code == 404, (path, r.text)
        for body in (
            {"text": "x" * 2001},
            {"text": "   "},
            {"text": ""},
            {"text": "ok", "by": "someone else"},
            {"text": 5},
            {},
        ):
            r = await api.post(f"/api/v1/alerts/{a1}/comments", json=body, headers=op)
            assert r.status_code == 422, (body, r.text)
        for seconds in (-1, 0, 59, 86_401, 10 * 365 * 86_400, "1h", None):
            r = await api.post(
                f"/api/v1/alerts/{a1}/shelve", json={"duration_s": seconds}, headers=op
            )
            assert r.status_code == 422, (seconds, r.text)
        for who in ("nobody", "xem", "../etc", "x" * 65):
            r = await api.post(f"/api/v1/alerts/{a1}/assign", json={"assignee": who}, headers=op)
            assert r.status_code == 422, (who, r.text)
        assert (await api.get("/api/v1/alarm/operators", headers=op)).json()["names"] == [
            "admin",
            "an",
            "binh",
        ]

        # Assign, comment, shelve, unshelve, ack: each shows in the activity, in order.
        wf = _ok(
            await api.post(f"/api/v1/alerts/{a1}/assign", json={"assignee": "binh"}, headers=op)
        )
        assert wf["assignee"]["name"] == "binh" and wf["assignee"]["by"] == "an"
        text = "Đội 3 đang đến, dự kiến 15 phút"
        wf = _ok(
            await api.post(f"/api/v1/alerts/{a1}/comments", json={"text": text}, headers=op), 201
        )
        assert [(c["actor"], c["detail"]["text"]) for c in wf["comments"]] == [("an", text)]
        wf = _ok(await api.post(
            f"/api/v1/alerts/{a1}/shelve", json={"duration_s": 3600, "reason": "bảo trì"}, headers=op
        ))  # fmt: skip
        shelved = wf["shelved"]
        assert shelved["purpose"] == "shelve" and shelved["active"]
        assert 3_590_000 < shelved["ends"] - int(time.time() * 1000) <= 3_600_000
        wire = silences.decode(
            shelved["id"],
            await _retained(settings, silences.silence_topic(settings.site, shelved["id"])),
        )
        assert wire.matchers == {"rule": FLOOD.rule, "subject": FLOOD.subject} and wire.by == "an"
        marks = _ok(await api.get("/api/v1/alarm/overview", headers=viewer))["alerts"]
        assert marks[a1]["shelved_until"] == shelved["ends"] and marks[a1]["assignee"] == "binh"
        assert marks[a1]["comments"] == 1
        wf = _ok(await api.delete(f"/api/v1/alerts/{a1}/shelve", headers=op))
        assert wf["shelved"] is None
        assert (await api.delete(f"/api/v1/alerts/{a1}/shelve", headers=op)).status_code == 409
        assert (
            await api.post(f"/api/v1/alerts/{a3}/shelve", json={"duration_s": 600}, headers=op)
        ).status_code == 409
        acked = msgspec.convert(
            _ok(await api.post(f"/api/v1/alerts/{a1}/ack", json={"note": "đã xem"}, headers=op)),
            AlertEvent,
        )

        # Clear: refused for a level rule and a resolved alert, with the reason.
        refused = await api.post(f"/api/v1/alerts/{a1}/clear", json={}, headers=op)
        assert refused.status_code == 409 and "street-flood" in refused.json()["detail"]
        refused = await api.post(f"/api/v1/alerts/{a3}/clear", headers=op)
        assert refused.status_code == 409 and "resolved" in refused.json()["detail"]
        assert _ok(await api.get(f"/api/v1/alerts/{a1}/workflow", headers=op))["clearable"] is False
        wf = _ok(
            await api.post(f"/api/v1/alerts/{a2}/clear", json={"note": "tiếng vọng"}, headers=op)
        )
        assert wf["cleared"]["by"] == "an" and wf["clearable"] is False
        assert _ok(await api.get("/api/v1/alarm/overview", headers=op))["alerts"][a2]["cleared"]
        audit = _ok(await api.get("/api/v1/audit", params={"action": "alert"}, headers=ADMIN))
        actions = {(e["action"], e["result"]) for e in audit}
        assert {("alert.assign", "ok"), ("alert.comment", "ok"), ("alert.shelve", "ok"),
                ("alert.clear", "ok"), ("alert.clear", "invalid"), ("alert.assign", "invalid")} <= actions  # fmt: skip

    # Analytics resolves the flood and raises it again (a new episode, a new id);
    # the spike is reported anew (a new jump): the clear no longer stands.
    later = int(time.time() * 1000) + 10  # after the ack's update
    again = _event(1, id="al-00000000000000aa", started=later, updated=later)
    await _write(
        settings,
        msgspec.structs.replace(acked, state="resolved", ended=later, updated=later),
        again,
        msgspec.structs.replace(SPIKE, values={"jump_mm": 600.0}, updated=later),
    )
    async with running_api(settings) as api:  # a restarted API: the same records
        wf = _ok(await api.get(f"/api/v1/alerts/{a1}/workflow", headers=viewer))
        assert wf["state"] == "resolved" and wf["assignee"]["name"] == "binh"
        assert [c["detail"]["text"] for c in wf["comments"]] == [text]
        assert [a["action"] for a in wf["activity"]] == [
            "assign",
            "comment",
            "shelve",
            "unshelve",
            "ack",
        ]
        ack = wf["activity"][-1]
        assert ack["actor"] == "an" and ack["detail"] == {"note": "đã xem"}
        reraised = _ok(await api.get(f"/api/v1/alerts/{again.id}/workflow", headers=viewer))
        assert [(c["detail"]["text"], c["alert_id"]) for c in reraised["comments"]] == [(text, a1)]
        assert reraised["activity"] == [] and reraised["assignee"] is None
        spike = _ok(await api.get(f"/api/v1/alerts/{a2}/workflow", headers=viewer))
        assert spike["cleared"] is None and spike["clearable"] is True
        assert [a["action"] for a in spike["activity"]] == ["clear"]


async def test_silences_are_validated_published_retained_marked_and_ended(
    settings: Settings,
) -> None:
    await _write(settings, FLOOD, WARD)
    op = _auth(add_token(settings.var_dir, "an", "operator"))
    viewer = _auth(add_token(settings.var_dir, "xem", "viewer"))
    now = int(time.time() * 1000)
    async with running_api(settings) as api:
        for method, path in (("POST", ""), ("GET", ""), ("GET", "/si-x"), ("DELETE", "/si-x")):
            body = (
                {"matchers": {"district": "nha-mat"}, "duration_s": 600}
                if method == "POST"
                else None
            )
            r = await api.request(method, f"/api/v1/silences{path}", json=body, headers=viewer)
            assert r.status_code == 403, (method, path)
        hostile: list[dict[str, Any]] = [
            {"matchers": {}, "duration_s": 600},
            {"matchers": {"ward": "nha-mat"}, "duration_s": 600},
            {"matchers": {"id": FLOOD.id}, "duration_s": 600},
            {"matchers": {"kind": "earthquake"}, "duration_s": 600},
            {"matchers": {"severity": "fatal"}, "duration_s": 600},
            {"matchers": {"district": "../x"}, "duration_s": 600},
            {"matchers": {"district": ""}, "duration_s": 600},
            {"matchers": {"subject": "A" * 40}, "duration_s": 600},
            {"matchers": {"district": 5}, "duration_s": 600},
            {"matchers": ["district"], "duration_s": 600},
            {"matchers": {"district": "nha-mat"}},
            {"matchers": {"district": "nha-mat"}, "duration_s": 600, "ends": now + 600_000},
            {"matchers": {"district": "nha-mat"}, "duration_s": -1},
            {"matchers": {"district": "nha-mat"}, "duration_s": 10 * 365 * 86_400},
            {"matchers": {"district": "nha-mat"}, "starts": now + 600_000, "ends": now + 60_000},
            {"matchers": {"district": "nha-mat"}, "starts": now - 3_600_000, "duration_s": 600},
            {
                "matchers": {"district": "nha-mat"},
                "starts": now + 40 * 86_400_000,
                "duration_s": 600,
            },
            {"matchers": {"district": "nha-mat"}, "ends": now + 31 * 86_400_000},
            {"matchers": {"district": "nha-mat"}, "duration_s": 600, "purpose": "shelve"},
            {"matchers": {"district": "nha-mat"}, "duration_s": 600, "by": "admin"},
            {"matchers": {"district": "nha-mat"}, "duration_s": 600, "comment": "x" * 501},
        ]
        for body in hostile:
            r = await api.post("/api/v1/silences", json=body, headers=op)
            assert r.status_code == 422, (body, r.text)
        r = await api.post(
            "/api/v1/silences",
            json={"matchers": {"district": "nha-mat"}, "duration_s": 600, "alert_id": "al-nope"},
            headers=op,
        )
        assert r.status_code == 404

        # A silence that is over leaves the broker: the API clears its retained message.
        over = Silence(
            "si-over",
            {"district": "phuong-9"},
            starts=now - 7_200_000,
            ends=now - 3_600_000,
            by="an",
        )
        AlarmStore(settings.alarm_path).add_silence(
            SilenceRecord(silence=over, purpose="silence", created=now - 7_200_000)
        )
        over_topic = silences.silence_topic(settings.site, over.id)
        async with make_client(settings) as client:
            await client.publish(over_topic, silences.encode(over), qos=1, retain=True)
        assert silences.decode(over.id, await _retained(settings, over_topic)) == over
        assert _ok(await api.get("/api/v1/silences", headers=op)) == []  # sweeps
        assert [
            s["id"]
            for s in _ok(await api.get("/api/v1/silences", params={"state": "all"}, headers=op))
        ] == [over.id]
        assert AlarmStore(settings.alarm_path).unretracted_expired(now) == []
        try:
            left = await _retained(settings, over_topic, within=0.5)
        except TimeoutError:
            left = b""
        assert left == b"", left

        made = _ok(await api.post(
            "/api/v1/silences",
            json={"matchers": {"district": "nha-mat"}, "duration_s": 3600, "comment": "cắt điện",
                  "purpose": "maintenance", "alert_id": WARD.id},
            headers=op,
        ), 201)  # fmt: skip
        assert made["active"] and made["by"] == "an" and made["purpose"] == "maintenance"
        raw = await _retained(settings, silences.silence_topic(settings.site, made["id"]))
        wire = silences.decode(made["id"], raw)  # the notifier's own decoder takes it
        assert (wire.matchers, wire.starts, wire.ends, wire.comment) == (
            {"district": "nha-mat"}, made["starts"], made["ends"], "cắt điện",
        )  # fmt: skip
        later = _ok(await api.post(
            "/api/v1/silences",
            json={"matchers": {"rule": "street-flood"}, "starts": now + 86_400_000, "duration_s": 7200},
            headers=op,
        ), 201)  # fmt: skip
        assert later["active"] is False  # planned: applies tomorrow
        listed = [s["id"] for s in _ok(await api.get("/api/v1/silences", headers=op))]
        assert set(listed) == {made["id"], later["id"]}
        view = _ok(await api.get("/api/v1/alarm/overview", headers=viewer))
        assert view["alerts"][WARD.id]["silenced"] == [made["id"]]
        assert view["alerts"][FLOOD.id]["silenced"] == []  # tomorrow's does not cover it yet
        wf = _ok(await api.get(f"/api/v1/alerts/{WARD.id}/workflow", headers=viewer))
        assert [s["id"] for s in wf["silenced_by"]] == [made["id"]]
        assert [a["action"] for a in wf["activity"]] == ["silence"]

        ended = _ok(await api.delete(f"/api/v1/silences/{made['id']}", headers=op))
        assert ended["active"] is False and ended["ended_by"] == "an"
        again = _ok(await api.delete(f"/api/v1/silences/{made['id']}", headers=op))
        assert again["ended_at"] == ended["ended_at"]  # idempotent
        assert (await api.delete("/api/v1/silences/si-unknown", headers=op)).status_code == 404
        assert (await api.delete("/api/v1/silences/..%2Fx", headers=op)).status_code in (404, 422)
        assert [s["id"] for s in _ok(await api.get("/api/v1/silences", headers=op))] == [
            later["id"]
        ]
        every = _ok(await api.get("/api/v1/silences", params={"state": "all"}, headers=op))
        assert {s["id"] for s in every} == {made["id"], later["id"], over.id}
        view = _ok(await api.get("/api/v1/alarm/overview", headers=viewer))
        assert view["alerts"][WARD.id]["silenced"] == []
        wf = _ok(await api.get(f"/api/v1/alerts/{WARD.id}/workflow", headers=viewer))
        assert [a["action"] for a in wf["activity"]] == ["silence", "unsilence"]
