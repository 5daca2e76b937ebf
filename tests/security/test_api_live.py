"""Issue 9, item 5: the API leaks nothing, against the whole stack as `make up` runs it.

`deltasense up --detach` (tools/stack.py) on free ports with a simulated city, no
admin token configured (one is generated, as in `make up`) and no dev flag. The
tests use the API as an operator would (REST, the alert stream through a ticket,
an ack, a command), revoke a token under an open stream, guess tokens until 429,
and at the end stop the stack and search every file it wrote under var/log, and
everything the CLI printed, for the admin token and every service secret.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from api.headers import CONTENT_SECURITY_POLICY
from tests.security.leaks import leaks, secrets_under
from tests.support import stack_env
from tools.devstack import free_port

SITE = "baclieu"


@dataclass
class LiveStack:
    root: Path
    env: dict[str, str]
    outputs: dict[str, str] = field(default_factory=dict)  # CLI runs → what they printed
    issued: dict[str, str] = field(default_factory=dict)  # tokens and tickets handed out

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['DELTASENSE_API_PORT']}"

    @property
    def admin(self) -> str:
        return (self.var / "secrets" / "admin-token").read_text().strip()

    def cli(
        self, *args: str, record: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tools.cli", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
            input=stdin,
        )
        if record:
            self.outputs[f"{len(self.outputs)}: deltasense {' '.join(args)}"] = (
                result.stdout + result.stderr
            )
        return result

    def token(self, name: str, role: str) -> str:
        # `token add` prints the new token once, on purpose: not recorded as output.
        added = self.cli("token", "add", "--name", name, "--role", role, record=False)
        assert added.returncode == 0, added.stdout + added.stderr
        token = added.stdout.strip()
        self.issued[f"token {name}"] = token
        return token

    def client(self, token: str | None = None, source: str = "127.0.0.1") -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.api, headers=headers, transport=transport, timeout=10)

    def ticket(self, http: httpx.Client) -> str:
        response = http.post("/api/v1/stream/ticket")
        assert response.status_code == 200, response.text
        ticket = str(response.json()["ticket"])
        self.issued[f"ticket {len(self.issued)}"] = ticket
        return ticket

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """As the simulator's account (its password from var/secrets, never a CLI arg)."""
        secret = (self.var / "secrets" / "mqtt" / "svc.simulator").read_text().strip()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="sec-live-pub")
        client.username_pw_set("svc.simulator", secret)
        client.tls_set(ca_certs=str(self.var / "tls" / "ca.pem"))  # the stack: TLS only
        client.connect("127.0.0.1", int(self.env["DELTASENSE_MQTT_PORT"]))
        client.loop_start()
        try:
            client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(timeout=10)
        finally:
            client.loop_stop()
            client.disconnect()


# The notifier's channel secrets, in its environment as a deployment has them; its
# providers are a closed local port, so every attempt fails and is logged.
CHANNEL_SECRETS = {
    "DELTASENSE_NOTIFIER_TELEGRAM_TOKEN": "7012345678:" + secrets.token_urlsafe(26),
    "DELTASENSE_NOTIFIER_ZALO_TOKEN": secrets.token_urlsafe(40),
    "DELTASENSE_NOTIFIER_WEBHOOK_SECRET": secrets.token_urlsafe(32),
}


def _routing(dead: str) -> str:
    return f"""
[receivers.truc-ban]
name = "Trực ban"
language = "vi"
telegram = [-1001234567890]
zalo = ["8243125690123456789"]
webhook = ["{dead}/hook"]

[[routes]]
name = "all"
receivers = ["truc-ban"]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    assert shutil.which("mosquitto"), "mosquitto missing: run make bootstrap"
    root = tmp_path_factory.mktemp("apilive")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = stack_env(root / "var") | {
        "DELTASENSE_SITE": SITE,
        "DELTASENSE_INGEST_FLUSH_INTERVAL_S": "0.2",
        "DELTASENSE_NOTIFIER_TELEGRAM_URL": dead,
        "DELTASENSE_NOTIFIER_ZALO_URL": dead,
        "DELTASENSE_NOTIFIER_GROUP_WAIT_S": "0.5",
        **CHANNEL_SECRETS,
    }
    assert not any(k in env for k in ("DELTASENSE_ADMIN_TOKEN", "DELTASENSE_DEV_INSECURE"))
    (root / "var" / "notifier").mkdir(parents=True)
    (root / "var" / "notifier" / "routing.toml").write_text(_routing(dead), encoding="utf-8")
    s = LiveStack(root, env)
    started = s.cli("up", "--detach", "--simulate", "4", "--rate", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    yield s
    if s.cli("down", record=False).returncode != 0:  # pragma: no cover - leave nothing behind
        pid = json.loads((s.var / "run" / "stack.json").read_text())["pid"]
        os.kill(pid, 9)


def _stream(
    live: LiveStack, params: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[threading.Thread, threading.Event, list[dict[str, Any]], dict[str, float]]:
    """An alert stream read in a thread: (thread, listening, events, {"ended": t})."""
    listening = threading.Event()
    events: list[dict[str, Any]] = []
    ended: dict[str, float] = {}

    def run() -> None:
        try:
            with (
                httpx.Client(base_url=live.api, timeout=httpx.Timeout(10, read=60)) as client,
                client.stream(
                    "GET", "/api/v1/alerts/stream", params=params, headers=headers
                ) as response,
            ):
                assert response.status_code == 200, response.read()
                for line in response.iter_lines():
                    if line == ": listening":
                        listening.set()
                    elif line.startswith("data:"):
                        events.append(json.loads(line[5:]))
            ended["clean"] = 1.0  # the server ended the stream properly
        except httpx.RemoteProtocolError:  # cut off: the stack stopped under it
            pass
        ended["at"] = time.time()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert listening.wait(10), "the alert stream did not start"
    return thread, listening, events, ended


def test_the_admin_token_is_in_a_private_file_and_never_printed(live: LiveStack) -> None:
    token_file = live.var / "secrets" / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    up = next(iter(live.outputs.values()))
    assert "DeltaSense is up" in up and str(token_file) in up
    assert live.admin not in up
    logs = live.var / "log"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in logs.iterdir()}
    assert {"supervisor.log", "api.log", "mosquitto.log", "ingest.log"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_rest_stream_ticket_ack_and_command_with_the_admin_token(live: LiveStack) -> None:
    device = "drain-sec-1"
    with live.client(live.admin) as http:
        assert http.get("/api/v1/devices").status_code == 200
        # The console's way: a single-use ticket for the stream; the token stays in headers.
        ticket = live.ticket(http)
        thread, _, events, _ = _stream(live, {"ticket": ticket})
        again = httpx.get(f"{live.api}/api/v1/alerts/stream", params={"ticket": ticket})
        assert again.status_code == 401  # single use
        now = int(time.time() * 1000)
        live.publish(
            f"{SITE}/phuong-3/water/{device}/tele",
            {"ts": now, "seq": 1, "boot": 1, "level_cm": 12.0},  # 120 mm > 76: flood
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(e["subject"] == device for e in events):
            time.sleep(0.1)
        mine = [e for e in events if e["subject"] == device]
        assert mine and mine[0]["kind"] == "flood", events
        acked = http.post(f"/api/v1/alerts/{mine[0]['id']}/ack", json={"note": "đã cử người"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["ack"]["by"] == "admin"
        sent = http.post(f"/api/v1/devices/{device}/commands", json={"name": "reboot"})
        assert sent.status_code == 202, sent.text
        # A token in the URL is refused, and (checked at the end) never logged.
        assert http.get("/api/v1/devices", params={"access_token": live.admin}).status_code == 400
        live.publish(
            f"{SITE}/phuong-3/water/{device}/tele",
            {"ts": now + 1000, "seq": 2, "boot": 1, "level_cm": 1.0},  # resolves it
        )
    assert thread.is_alive()  # the stream stays open until its token goes


def test_a_revoked_token_loses_its_open_streams_within_5_s(live: LiveStack) -> None:
    wall = live.token("wall-display", "viewer")
    with live.client(wall) as http:
        by_ticket = _stream(live, {"ticket": live.ticket(http)})
        by_header = _stream(live, {}, headers={"Authorization": f"Bearer {wall}"})
        spare = live.ticket(http)  # issued, not yet used
        time.sleep(1.5)  # both streams have passed a re-check while the token stood
        assert by_ticket[0].is_alive() and by_header[0].is_alive()
        removed = live.cli("token", "remove", "--name", "wall-display")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        # The revocation is the moment the CLI rewrote tokens.json (its own start-up,
        # seconds on a loaded machine, is not the API's doing).
        revoked_at = (live.var / "tokens.json").stat().st_mtime
        for thread, _, _, ended in (by_ticket, by_header):
            thread.join(timeout=10)
            assert not thread.is_alive(), "a revoked token's stream stayed open"
            assert "clean" in ended
            print(f"stream closed {ended['at'] - revoked_at:.2f} s after the revocation")
            assert ended["at"] - revoked_at < 5.0
        assert http.post("/api/v1/stream/ticket").status_code == 401
    refused = httpx.get(f"{live.api}/api/v1/alerts/stream", params={"ticket": spare})
    assert refused.status_code == 401  # its tickets died with it


def test_repeated_bad_tokens_get_429_only_for_that_address(live: LiveStack) -> None:
    viewer = live.token("ops-desk", "viewer")
    with live.client(source="127.0.0.2") as attacker, live.client(viewer) as desk:
        codes = [
            attacker.get("/api/v1/devices", headers={"Authorization": f"Bearer guess{i}"})
            for i in range(10)
        ]
        assert [r.status_code for r in codes] == [401] * 10
        locked = attacker.get("/api/v1/devices", headers={"Authorization": "Bearer guess10"})
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        good_there = attacker.get("/api/v1/devices", headers={"Authorization": f"Bearer {viewer}"})
        assert good_there.status_code == 429  # locked out: not even checked
        assert desk.get("/api/v1/devices").status_code == 200  # another address


def test_metrics_refuses_the_wrong_identity(live: LiveStack) -> None:
    scraper = live.token("prometheus", "metrics")
    viewer = live.token("metrics-viewer", "viewer")
    assert httpx.get(f"{live.api}/metrics").status_code == 401
    with live.client(viewer) as v, live.client(scraper) as m, live.client(live.admin) as a:
        assert v.get("/metrics").status_code == 403
        assert m.get("/metrics").status_code == 200
        assert "deltasense_api_requests_total" in a.get("/metrics").text
        assert m.get("/api/v1/devices").status_code == 403  # scrape only


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/docs", "/nope", "/api/v1/devices"])
def test_security_headers_on_the_real_server(live: LiveStack, path: str) -> None:
    response = httpx.get(f"{live.api}{path}")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


def test_the_leak_finder_finds_a_planted_token(tmp_path: Path) -> None:
    """The check below must be able to fail: plant secrets and see them found."""
    planted = "Zx9qL2mV7pK4wR8tY1uI6oP3aS5dF0gH2jK4lM6n"
    (tmp_path / "api.log").write_text(f"INFO api.access: GET /x?t={planted} 200\n")
    (tmp_path / "cut.log").write_text(f"token {planted[:16]}…\n")
    (tmp_path / "bin.log").write_bytes(b"\x00\xff" + planted.encode() + b"\x00")
    (tmp_path / "clean.log").write_text("nothing here\n")
    found = leaks({"admin": planted}, sorted(tmp_path.iterdir()), {"stdout": f"x{planted}"})
    assert sorted(where for _, where in found) == sorted(
        [str(tmp_path / n) for n in ("api.log", "bin.log", "cut.log")] + ["stdout"]
    )
    assert leaks({"admin": planted}, [tmp_path / "clean.log"]) == []


def test_a_console_account_signs_in_and_its_password_is_checked_for_leaks(
    live: LiveStack,
) -> None:
    """`deltasense users add` with the password on stdin, a wrong and a right login,
    the stream ticket by the cookie, logout; the password, the wrong one and the
    session id join the secrets the last test searches every log for."""
    password = "ca đêm " + secrets.token_urlsafe(12)
    wrong = "sai " + secrets.token_urlsafe(12)
    added = live.cli("users", "add", "truc.ban", "--role", "operator", "--password-stdin",
                     stdin=password + "\n")  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    console = {"X-DeltaSense-Console": "1"}
    with live.client() as http:
        body = {"username": "truc.ban", "password": wrong}
        assert http.post("/api/v1/session", json=body, headers=console).status_code == 401
        body["password"] = password
        signed = http.post("/api/v1/session", json=body, headers=console)
        assert signed.status_code == 200, signed.text
        live.issued |= {"console password": password, "wrong password": wrong,
                        "session id": http.cookies["ds_session"]}  # fmt: skip
        assert http.get("/api/v1/me").json()["via"] == "session"
        assert http.post("/api/v1/stream/ticket").status_code == 403  # no CSRF header
        assert http.post("/api/v1/stream/ticket", headers=console).status_code == 200
        assert http.delete("/api/v1/session", headers=console).status_code == 204
    assert stat.S_IMODE((live.var / "secrets" / "users.json").stat().st_mode) == 0o600


def test_no_secret_in_any_log_of_the_run(live: LiveStack) -> None:
    """Last: stop the stack, then search everything it wrote."""
    stopped = live.cli("down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    stored = {f"var/secrets/{k}": v for k, v in secrets_under(live.var / "secrets").items()}
    stored |= {"notifier ack secret": (live.var / "notifier" / "ack-secret").read_text().strip()}
    stored |= CHANNEL_SECRETS | live.issued
    # The accounts file holds Argon2 hashes, not secrets a log could carry; the
    # passwords themselves are searched (live.issued).
    stored.pop("var/secrets/users.json", None)
    assert "var/secrets/admin-token" in stored
    assert {f"var/secrets/mqtt/svc.{s}" for s in ("api", "ingest", "simulator")} <= set(stored)
    assert sum(k.startswith("ticket") for k in stored) >= 3
    logs = sorted(p for p in (live.var / "log").rglob("*") if p.is_file())
    names = {p.name for p in logs}
    assert {"supervisor.log", "api.log", "ingest.log", "analytics.log", "notifier.log"} <= names
    api_log = (live.var / "log" / "api.log").read_text()
    assert "/api/v1/alerts/stream?ticket=*" in api_log  # the access log is there, redacted
    assert "/api/v1/devices?access_token=*" in api_log
    # The notifier did try its channels with those secrets (and failed: dead port).
    notifier_log = (live.var / "log" / "notifier.log").read_text()
    assert "telegram getUpdates" in notifier_log, notifier_log[-2000:]
    found = leaks(stored, logs, live.outputs)
    assert found == [], found
    print(f"searched {len(logs)} logs, {len(live.outputs)} CLI outputs for {len(stored)} secrets")
