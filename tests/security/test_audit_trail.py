"""Issue 9, item 6: commands, acknowledgements and API tokens leave an audit trail.

The real API (uvicorn) on the session's broker and InfluxDB; the CLI as a
subprocess (`deltasense token add/remove`), as an operator would run it.  Each
entry must say who (the token's name, or the OS user), when (UTC ms), from
where (the client's address, or `cli`), what, and how it ended.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys

import msgspec

from api.auth import add_token
from deltasense import schema
from deltasense.alerts import AlertEvent, Message
from deltasense.audit import AuditLog
from deltasense.settings import Settings
from tests.integration.api_support import ADMIN, influx, registry_line, running_api
from tests.support import now_ms


def _alert(settings: Settings, started: int) -> AlertEvent:
    return msgspec.convert(
        {
            "id": "al-00000000000000a1",
            "kind": "flood",
            "rule": "street-flood",
            "subject": "lv1",
            "district": "phuong-1",
            "severity": "critical",
            "state": "firing",
            "values": {"level_mm": 120.0},
            "started": started - 60_000,
            "updated": started - 1000,
            "message": Message(vi="Ngập đường", en="Street flooding"),
        },
        AlertEvent,
        from_attributes=True,
    )


async def test_commands_and_acks_are_audited_with_who_when_where_what_result(
    settings: Settings,
) -> None:
    started = now_ms()
    event = _alert(settings, started)
    async with influx(settings) as db:
        await db.write_lines(
            [
                registry_line(settings, "lamp7", "lamp", "phuong-3", started),
                schema.alert_line(event),
            ]
        )
    operator = {"Authorization": f"Bearer {add_token(settings.var_dir, 'ca-truc', 'operator')}"}
    viewer = {"Authorization": f"Bearer {add_token(settings.var_dir, 'wall', 'viewer')}"}
    async with running_api(settings) as api:
        body = {"name": "set_dim", "args": {"pct": 40}, "ttl_s": 60}
        sent = await api.post("/api/v1/devices/lamp7/commands", json=body, headers=operator)
        assert sent.status_code == 202, sent.text
        missing = await api.post("/api/v1/devices/lamp8/commands", json=body, headers=ADMIN)
        assert missing.status_code == 404
        acked = await api.post(
            f"/api/v1/alerts/{event.id}/ack", json={"note": "đã cử đội"}, headers=operator
        )
        assert acked.status_code == 200, acked.text
        again = await api.post(f"/api/v1/alerts/{event.id}/ack", headers=ADMIN)
        assert again.status_code == 200
        gone = await api.post("/api/v1/alerts/al-ffffffffffffffff/ack", headers=operator)
        assert gone.status_code == 404

        # Operators and viewers may not read the trail.
        for headers in (operator, viewer, {}):
            refused = await api.get("/api/v1/audit", headers=headers)
            assert refused.status_code in (401, 403), refused.text
        response = await api.get("/api/v1/audit", params={"since": started}, headers=ADMIN)
        assert response.status_code == 200, response.text
        entries = list(reversed(response.json()))

    summary = [(e["action"], e["target"], e["actor"], e["result"]) for e in entries]
    assert summary == [
        ("command.send", "lamp7", "ca-truc", "ok"),
        ("command.send", "lamp8", "admin", "not_found"),
        ("alert.ack", event.id, "ca-truc", "ok"),
        ("alert.ack", event.id, "admin", "ok"),
        ("alert.ack", "al-ffffffffffffffff", "ca-truc", "not_found"),
    ]
    assert all(e["origin"] == "127.0.0.1" and started <= e["ts"] <= now_ms() for e in entries)
    command = entries[0]["detail"]
    assert command["id"] == sent.json()["id"] and command["topic"] == sent.json()["topic"]
    assert (command["name"], command["args"], command["role"]) == (
        "set_dim",
        {"pct": 40},
        "operator",
    )
    ack = entries[2]["detail"]
    assert (ack["rule"], ack["severity"], ack["note"]) == ("street-flood", "critical", "đã cử đội")
    assert entries[3]["detail"]["already_by"] == "ca-truc"
    assert AuditLog(settings.audit_path).verify() == 5


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTASENSE_")}
    env |= {"DELTASENSE_CONFIG": os.devnull, "DELTASENSE_VAR_DIR": str(settings.var_dir)}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_token_add_and_remove_on_the_cli_are_audited_as_the_os_user(settings: Settings) -> None:
    added = _cli(settings, "token", "add", "--name", "ca-dem", "--role", "operator")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    removed = _cli(settings, "token", "remove", "--name", "ca-dem")
    assert removed.returncode == 0, removed.stderr
    missing = _cli(settings, "token", "remove", "--name", "ca-dem")
    bad = _cli(settings, "token", "add", "--name", "bad name\n!", "--role", "viewer")
    assert missing.returncode != 0 and bad.returncode != 0
    entries = list(reversed(AuditLog(settings.audit_path).query()))
    assert [(e.action, e.target, e.result) for e in entries] == [
        ("token.add", "ca-dem", "ok"),
        ("token.remove", "ca-dem", "ok"),
        ("token.remove", "ca-dem", "not_found"),
        ("token.add", "bad name\n!", "invalid"),
    ]
    assert {(e.actor, e.origin) for e in entries} == {(getpass.getuser(), "cli")}
    assert entries[0].detail == {"role": "operator"}
    assert entries[1].detail == {"removed": 1}
    assert token not in str([e.as_dict() for e in entries])  # the token itself never
