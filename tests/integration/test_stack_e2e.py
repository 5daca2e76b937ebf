"""The acceptance path of the platform, end to end, with the real processes.

`deltasense up --detach` (what `make up` runs) starts Mosquitto, InfluxDB,
ingest, analytics and the API as child processes on free ports; the stock
`mosquitto_pub` client plays the device; httpx plays the operator.  At the end
`deltasense down` must leave no process behind.

The broker runs locked down, as in `make demo`: `mosquitto_pub` logs in as the
simulator's account (any device of the site, var/secrets/mqtt/svc.simulator),
or as a device provisioned with `deltasense devices add`; anonymous is refused.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.integration.stack_support import ADMIN, Stack, alive, descendants
from tests.support import stack_env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert shutil.which("mosquitto_pub"), "mosquitto_pub missing: run make bootstrap"
    root = tmp_path_factory.mktemp("stack")
    env = stack_env(root / "var") | {
        "DELTASENSE_SITE": "baclieu",
        "DELTASENSE_ADMIN_TOKEN": ADMIN,
        "DELTASENSE_INGEST_FLUSH_INTERVAL_S": "0.2",
    }
    s = Stack(env, root)
    started = s.cli("up", "--detach")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "DeltaSense is up" in started.stdout
    yield s
    s.http.close()
    if s.cli("down").returncode != 0:  # pragma: no cover - leave nothing behind
        pid = json.loads((root / "var/run/stack.json").read_text())["pid"]
        os.kill(pid, 9)


def test_mosquitto_pub_reading_reaches_the_api_then_bad_messages_are_dead_lettered(
    stack: Stack,
) -> None:
    device = f"ws-e2e-{int(time.time() * 1000) % 100000}"
    topic = f"baclieu/phuong-1/weather/{device}/tele"
    ts = int(time.time() * 1000)
    started = time.monotonic()
    stack.pub(topic, json.dumps({"ts": ts, "seq": 0, "boot": 1, "t_c": 30.25, "rh_pct": 78}))
    latest = stack.poll(f"/api/v1/devices/{device}/latest", lambda r: r.status_code == 200)
    assert latest.status_code == 200, latest.text
    assert time.monotonic() - started < 5.0
    body = latest.json()
    assert body["device"] == device and body["ts"] == ts
    assert body["fields"]["t_c"] == 30.25 and body["fields"]["rh_pct"] == 78

    stack.pub(topic, "definitely not json")
    stack.pub(topic, json.dumps({"seq": "one", "boot": 1, "t_c": 31}))
    stack.pub(f"baclieu/Phuong-1/weather/{device}/tele", json.dumps({"seq": 1, "boot": 1}))
    stack.pub(topic, json.dumps({"ts": ts + 1000, "seq": 2, "boot": 1, "t_c": 31.5}))
    latest = stack.poll(
        f"/api/v1/devices/{device}/latest",
        lambda r: r.status_code == 200 and r.json()["ts"] == ts + 1000,
    )
    assert latest.json()["fields"]["t_c"] == 31.5
    dead = stack.poll(
        "/api/v1/deadletters",
        lambda r: (
            r.status_code == 200 and len([d for d in r.json() if device in d.get("topic", "")]) >= 3
        ),
    )
    assert dead.status_code == 200, dead.text
    reasons = sorted(d["reason"] for d in dead.json() if device in d.get("topic", ""))
    assert reasons == ["bad_topic", "not_json", "schema"]


def test_street_flood_alert_fires_once_streams_and_resolves(stack: Stack) -> None:
    device = "drain-e2e-1"
    topic = f"baclieu/phuong-3/water/{device}/tele"
    barrier = "drain-e2e-barrier"
    events: list[dict[str, Any]] = []
    listening = threading.Event()

    # As the console does: a single-use ticket for the stream, never the token in the URL.
    ticket = stack.http.post("/api/v1/stream/ticket").json()["ticket"]

    def listen() -> None:
        with (
            httpx.Client(base_url=stack.api, timeout=httpx.Timeout(10, read=30)) as client,
            client.stream("GET", "/api/v1/alerts/stream", params={"ticket": ticket}) as response,
        ):
            for line in response.iter_lines():
                if line == ": listening":  # the API has subscribed this stream
                    listening.set()
                elif line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1]["subject"] == device and events[-1]["state"] == "resolved":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert listening.wait(timeout=10), "the alert stream did not start"
    now = int(time.time() * 1000)
    started = time.monotonic()
    stack.pub(topic, json.dumps({"ts": now, "seq": 10, "boot": 1, "level_cm": 12.0}))  # 120 mm > 76
    active = stack.poll(
        "/api/v1/alerts",
        lambda r: r.status_code == 200 and any(a["subject"] == device for a in r.json()),
        state="active",
    )
    assert time.monotonic() - started < 5.0
    mine = [a for a in active.json() if a["subject"] == device]
    assert len(mine) == 1 and mine[0]["kind"] == "flood" and mine[0]["state"] == "firing"
    alert_id = mine[0]["id"]
    # An operator acks: the API publishes on {site}/_acks/{id} (its account may no
    # longer publish on _alerts); analytics applies it and republishes the alert.
    acked = stack.http.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "e2e"})
    assert acked.status_code == 200 and acked.json()["ack"]["note"] == "e2e", acked.text

    # Still high, then inside the deadband (76 - 20 < 60 mm < 76): the same alert stays open.
    stack.pub(topic, json.dumps({"ts": now + 1000, "seq": 11, "boot": 1, "level_cm": 14.0}))
    stack.pub(topic, json.dumps({"ts": now + 2000, "seq": 12, "boot": 1, "level_cm": 6.0}))
    # Barrier: analytics takes readings in order, so once another drain's alert, raised
    # by a reading sent after these, is listed, these two have been judged and stored.
    stack.pub(
        f"baclieu/phuong-3/water/{barrier}/tele",
        json.dumps({"ts": now + 2000, "seq": 1, "boot": 1, "level_cm": 12.0}),
    )
    still = stack.poll(
        "/api/v1/alerts",
        lambda r: r.status_code == 200 and any(a["subject"] == barrier for a in r.json()),
        state="active",
    ).json()
    assert any(a["subject"] == barrier for a in still), still
    assert [a["id"] for a in still if a["subject"] == device] == [alert_id]

    stack.pub(
        topic, json.dumps({"ts": now + 3000, "seq": 13, "boot": 1, "level_cm": 2.0})
    )  # 20 mm < 56
    resolved = stack.poll(
        f"/api/v1/alerts/{alert_id}",
        lambda r: r.status_code == 200 and r.json()["state"] == "resolved",
    )
    assert resolved.json()["state"] == "resolved" and resolved.json()["ended"] is not None
    everything = stack.http.get("/api/v1/alerts", params={"state": "all"}).json()
    assert [a["id"] for a in everything if a["subject"] == device] == [alert_id]

    listener.join(timeout=10)
    assert {e["subject"] for e in events} <= {device, barrier}, events
    streamed = [e for e in events if e["subject"] == device]
    assert {e["id"] for e in streamed} == {alert_id}, events
    assert streamed[0]["state"] == "firing" and streamed[-1]["state"] == "resolved"
    # The ack reached the stream from analytics, and stays on the alert to the end.
    assert any(e["state"] == "firing" and e["ack"] for e in streamed), streamed
    assert streamed[-1]["ack"]["note"] == "e2e" and resolved.json()["ack"]["note"] == "e2e"


def test_auth_and_parameter_validation(stack: Stack) -> None:
    assert httpx.get(f"{stack.api}/api/v1/devices").status_code == 401
    assert httpx.get(f"{stack.api}/healthz").status_code == 200
    assert stack.http.get("/readyz").status_code == 200
    bad_field = stack.http.get("/api/v1/devices/ws-1/series", params={"field": 't_c" FROM x; DROP'})
    assert bad_field.status_code == 422
    bad_device = stack.http.get("/api/v1/devices/a'%20OR%20'1'='1/series", params={"field": "t_c"})
    assert bad_device.status_code in (404, 422)
    assert stack.http.get("/api/v1/devices/UPPER/latest").status_code == 422


def test_the_broker_is_locked_down_and_devices_are_provisioned_live(stack: Stack) -> None:
    """Issue 9: anonymous refused; `deltasense devices add` gives a node an identity
    for its own topics at once, `revoke` takes it away, `enable` gives it back."""
    device = f"wl-e2e-{int(time.time() * 1000) % 100000}"
    topic = f"{stack.site}/phuong-1/water/{device}/tele"
    reading = json.dumps({"ts": int(time.time() * 1000), "seq": 1, "boot": 1, "level_cm": 1.0})
    anonymous = stack.pub(topic, reading, login=("anon", "", ""))
    assert anonymous.returncode != 0 and b"not authori" in anonymous.stderr.lower()

    added = stack.cli("devices", "add", device, "--kind", "water", "--district", "phuong-1")
    assert added.returncode == 0, added.stdout + added.stderr
    config = json.loads(added.stdout[added.stdout.index("{") :])
    assert config["mqtt_user"] == device and config["site"] == stack.site
    secret = config["mqtt_pass"]
    assert len(secret) >= 40 and secret not in stack.cli("devices", "list").stdout
    me = (device, device, secret)
    assert stack.pub(topic, reading, login=me).returncode == 0
    latest = stack.poll(f"/api/v1/devices/{device}/latest", lambda r: r.status_code == 200)
    assert latest.status_code == 200, latest.text

    revoked = stack.cli("devices", "revoke", device)
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert stack.pub(topic, reading, login=me).returncode != 0
    assert "revoked" in stack.cli("devices", "list").stdout
    assert stack.cli("devices", "enable", device).returncode == 0
    assert stack.pub(topic, reading, login=me).returncode == 0

    # Hostile or wrong input: a clear error, nothing created.
    for args in (
        ["devices", "add", "Bad_Id", "--kind", "water", "--district", "phuong-1"],
        ["devices", "add", device, "--kind", "water", "--district", "phuong-1"],
        ["devices", "add", "ok-id", "--kind", "water", "--district", "x/#"],
        ["devices", "add", "ok-id", "--kind", "drone", "--district", "phuong-1"],
        ["devices", "revoke", "no-such-node"],
        ["devices", "show", "svc.ingest"],
    ):
        result = stack.cli(*args)
        assert result.returncode != 0 and "error" in (result.stdout + result.stderr).lower(), args
        assert "Traceback" not in result.stdout + result.stderr, args
    listed = json.loads(stack.cli("devices", "list", "--json").stdout)
    assert [d["device"] for d in listed] == [device]
    # Every command is in the audit log, as the OS user from the CLI; admins read it.
    trail = stack.http.get("/api/v1/audit", params={"action": "device", "target": device})
    assert trail.status_code == 200, trail.text
    assert [(e["action"], e["result"]) for e in reversed(trail.json())] == [
        ("device.add", "ok"),
        ("device.revoke", "ok"),
        ("device.enable", "ok"),
        ("device.add", "invalid"),  # the second add of the same id
    ]
    assert {(e["actor"], e["origin"]) for e in trail.json()} == {(getpass.getuser(), "cli")}
    refused = stack.http.get("/api/v1/audit", params={"target": "no-such-node"}).json()
    assert [(e["action"], e["result"]) for e in refused] == [("device.revoke", "not_found")]
    assert secret not in stack.http.get("/api/v1/audit", params={"limit": 1000}).text
    # `deltasense up` gives the API its own broker admin (admin.api) for the same work.
    over_http = stack.http.get(f"/api/v1/admin/devices/{device}")
    assert over_http.status_code == 200 and over_http.json()["enabled"] is True, over_http.text


def test_no_secret_of_the_stack_is_in_its_logs(stack: Stack) -> None:
    """Issue 9: the broker's and InfluxDB's generated secrets reach the services
    through their environment only; none is in any log the stack wrote."""
    found = sorted((stack.root / "var" / "secrets").rglob("*"))
    secrets = {p.relative_to(stack.root): p.read_text().strip() for p in found if p.is_file()}
    assert {f"var/secrets/influx/{u}" for u in ("admin", "ingest", "api", "reader")} <= {
        str(p) for p in secrets
    }
    logs = list((stack.root / "var" / "log").glob("*.log"))
    assert len(logs) >= 6, logs  # supervisor, mosquitto, influxdb, ingest, analytics, api…
    for log in logs:
        text = log.read_text(errors="replace")
        leaked = [str(name) for name, secret in secrets.items() if secret in text]
        assert not leaked, f"{log.name} holds {leaked}"


def _services(stack: Stack) -> dict[str, dict[str, Any]]:
    state = json.loads((stack.root / "var/run/stack.json").read_text())
    return {svc["name"]: svc for svc in state["services"]}


def test_killed_services_are_restarted_while_the_rest_stay_up(stack: Stack) -> None:
    before = _services(stack)
    assert all(svc["state"] == "up" and svc["pid"] for svc in before.values()), before
    for victim in ("ingest", "mosquitto"):
        os.kill(before[victim]["pid"], signal.SIGKILL)
        killed = time.monotonic()
        seen = stack.poll(
            "/api/v1/system/services", lambda r, v=victim: v in r.json()["degraded"], within=5
        ).json()
        assert victim in seen["degraded"], seen  # the console's banner is fed from here
        back = stack.poll(
            "/api/v1/system/services", lambda r: r.json()["degraded"] == [], within=10
        ).json()
        assert back["degraded"] == [], back
        assert time.monotonic() - killed < 10
        now = {svc["name"]: svc for svc in back["services"]}
        assert now[victim]["restarts"] == 1 and now[victim]["last_exit"] == -signal.SIGKILL
        assert now[victim]["pid"] != before[victim]["pid"]
        untouched = {n for n in before if n not in ("ingest", "mosquitto")}
        assert {n: now[n]["pid"] for n in untouched} == {n: before[n]["pid"] for n in untouched}
    status = stack.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"ingest\s+up\s+\d+\s+1\s+-9", status.stdout), status.stdout
    # The restarted pair still carries readings end to end.
    ts = int(time.time() * 1000)
    topic = f"{stack.site}/phuong-1/water/drain-restart/tele"
    stack.pub(topic, json.dumps({"ts": ts, "seq": 1, "boot": 1, "level_cm": 1.5}))
    latest = stack.poll(
        "/api/v1/devices/drain-restart/latest",
        lambda r: r.status_code == 200 and r.json()["ts"] == ts,
        within=15,
    )
    assert latest.status_code == 200 and latest.json()["fields"]["level_cm"] == 1.5


def test_a_broker_crash_keeps_ingests_session_for_what_devices_publish_before_it_is_back(
    stack: Stack,
) -> None:
    """The supervisor has Mosquitto save its store every few seconds (SIGUSR1), so a
    broker restored after a crash still holds ingest's session: a reading a device
    publishes before ingest has reconnected is queued for it, not dropped.  Ingest is
    stopped (SIGSTOP) across the crash, so it surely is not back when the device
    publishes.  (Before: 4 of 4 such readings lost on a stack with a quiet broker,
    whose change-triggered save had not run since ingest subscribed.)"""
    store = stack.root / "var" / "mosquitto" / "data" / "mosquitto.db"
    services = _services(stack)
    ingest = services["ingest"]
    marked = time.time()
    deadline = time.monotonic() + 12  # BROKER_SAVE_EVERY_S is 5 s
    while time.monotonic() < deadline and not (store.exists() and store.stat().st_mtime > marked):
        time.sleep(0.2)
    assert store.exists() and store.stat().st_mtime > marked, "the broker did not save its store"
    os.kill(ingest["pid"], signal.SIGSTOP)
    try:
        os.kill(services["mosquitto"]["pid"], signal.SIGKILL)
        stack.poll("/api/v1/system/services", lambda r: "mosquitto" in r.json()["degraded"])
        stack.poll("/api/v1/system/services", lambda r: r.json()["degraded"] == [], within=10)
        ts = int(time.time() * 1000)
        topic = f"{stack.site}/phuong-1/water/drain-crash/tele"
        stack.pub(topic, json.dumps({"ts": ts, "seq": 1, "boot": 1, "level_cm": 2.5}))
    finally:
        os.kill(ingest["pid"], signal.SIGCONT)
    latest = stack.poll(
        "/api/v1/devices/drain-crash/latest",
        lambda r: r.status_code == 200 and r.json()["ts"] == ts,
        within=20,
    )
    assert latest.status_code == 200 and latest.json()["fields"]["level_cm"] == 2.5, latest.text
    assert _services(stack)["ingest"]["pid"] == ingest["pid"]  # the same ingest, reconnected


def test_down_leaves_no_process_behind(stack: Stack) -> None:
    state = json.loads((stack.root / "var/run/stack.json").read_text())
    supervisor = state["pid"]
    children = descendants(supervisor)
    assert len(children) >= 5  # mosquitto, influxd, ingest, analytics, api
    stopped = stack.cli("down")
    assert stopped.returncode == 0 and "stack stopped" in stopped.stdout
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in children | {supervisor}):
        time.sleep(0.1)
    assert [p for p in children | {supervisor} if alive(p)] == []


def test_demo_in_the_foreground_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    """`make demo` runs `deltasense up --simulate N` in the foreground; Ctrl-C in the
    terminal sends SIGINT to its process group and must leave nothing running."""
    env = stack_env(tmp_path / "var")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "up", "--simulate", "3", "--rate", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Press Ctrl-C to stop" in line or not line:
                break
        output = "".join(lines)
        assert "DeltaSense is up" in output, output
        assert "console" in output and "/docs" in output
        token_file = tmp_path / "var" / "secrets" / "admin-token"
        token = token_file.read_text().strip()
        # Not a terminal here (a pipe could be a log): where the token is, never the token.
        assert token and token not in output and str(token_file) in output
        children = descendants(proc.pid)
        assert len(children) >= 6  # broker, database, ingest, analytics, api, simulator
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
        assert "all services stopped" in rest
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in children):
            time.sleep(0.1)
        assert [p for p in children if alive(p)] == []
    finally:
        if proc.poll() is None:  # pragma: no cover - cleanup after a failed assertion
            os.killpg(proc.pid, signal.SIGKILL)


def test_down_with_a_simulated_city_raises_no_alert(tmp_path: Path) -> None:
    """`make down` stops the simulator first; its devices say goodbye (a retained
    `offline` with their `ts`), which analytics must not read as an outage."""
    env = stack_env(tmp_path / "var") | {
        "DELTASENSE_SITE": "baclieu",
        "DELTASENSE_ADMIN_TOKEN": ADMIN,
    }
    s = Stack(env, tmp_path)
    started = s.cli("up", "--detach", "--simulate", "8", "--rate", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    raised: list[dict[str, Any]] = []
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="e2e-down-watch")
    try:
        online = s.poll(
            "/api/v1/devices",
            lambda r: sum(d["status"] == "online" for d in r.json()) >= 8,
            within=60,
        ).json()
        assert sum(d["status"] == "online" for d in online) >= 8, online
        client.username_pw_set("svc.api", s.secret("svc.api"))
        client.tls_set(ca_certs=str(s.ca))
        client.on_connect = lambda c, *_: c.subscribe(f"{s.site}/_alerts/#", qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda _c, _u, m: raised.append(json.loads(m.payload))
        client.connect("127.0.0.1", int(s.mqtt_port))
        client.loop_start()
        assert subscribed.wait(10)
        down_at = int(time.time() * 1000)
        stopped = s.cli("down")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    finally:
        client.loop_stop()
        s.http.close()
        if s.cli("down").returncode != 0:  # pragma: no cover - leave nothing behind
            pid = json.loads((tmp_path / "var/run/stack.json").read_text())["pid"]
            os.kill(pid, 9)
    new = [e for e in raised if e.get("started", 0) >= down_at]
    assert new == [], [(e["rule"], e["subject"], e["state"]) for e in new]
