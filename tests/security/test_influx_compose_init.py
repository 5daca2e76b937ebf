"""The deployment's InfluxDB users (docker/influxdb-init), made for real: the init
script the influxdb:1.8 image runs on its first start, run here against a fresh
auth-enabled InfluxDB (Debian's influxd), then every user tried with its grant.
No Docker engine runs here, so the image's own init (database and admin) is done
by the test the way the image does it: over HTTP, before any user exists."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tools.devstack import Stack, free_port, influxdb_process

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "influxdb-init" / "10-deltasense-users.sh"
DB = "deltasense"
ADMIN_PASSWORD = secrets.token_urlsafe(32)


@pytest.fixture
def fresh_influx(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    with Stack([influxdb_process(tmp_path, http_port=port, rpc_port=free_port())]):
        url = f"http://127.0.0.1:{port}"
        # What the image does before the scripts: the first admin (allowed once,
        # without credentials), then the database.
        q = f"CREATE USER admin WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES"
        assert httpx.post(f"{url}/query", data={"q": q}).status_code == 200
        made = httpx.post(
            f"{url}/query", data={"q": f"CREATE DATABASE {DB}"}, auth=("admin", ADMIN_PASSWORD)
        )
        assert made.status_code == 200 and "error" not in made.text
        yield url


def run_script(url: str, **passwords: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "INFLUXDB_DB": DB,
        "INFLUXDB_ADMIN_USER": "admin",
        "INFLUXDB_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "INFLUXDB_INIT_PORT": url.rsplit(":", 1)[1],
    } | {f"DELTASENSE_INFLUX_PASSWORD_{k.upper()}": v for k, v in passwords.items()}
    return subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_the_init_script_makes_each_service_with_its_grant_and_nothing_more(
    fresh_influx: str,
) -> None:
    url = fresh_influx
    pw = {name: secrets.token_urlsafe(32) for name in ("ingest", "analytics", "api")}
    done = run_script(url, **pw)
    assert done.returncode == 0, done.stderr
    assert ADMIN_PASSWORD not in done.stdout + done.stderr and all(
        p not in done.stdout + done.stderr for p in pw.values()
    )
    line = "water,device=wl-p1-001,district=phuong-1,site=baclieu level_cm=4.0 1780000000000"
    write = f"{url}/write?db={DB}&precision=ms"
    read = {"db": DB, "q": "SELECT count(level_cm) FROM water"}
    # ingest: WRITE only
    assert httpx.post(write, content=line, auth=("ingest", pw["ingest"])).status_code == 204
    assert httpx.get(f"{url}/query", params=read, auth=("ingest", pw["ingest"])).status_code == 403
    # analytics and api: ALL on the database, but no admin right
    for name in ("analytics", "api"):
        got = httpx.get(f"{url}/query", params=read, auth=(name, pw[name]))
        assert got.status_code == 200, got.text
        assert got.json()["results"][0]["series"][0]["values"][0][1] == 1  # ingest's point
        assert httpx.post(write, content=line, auth=(name, pw[name])).status_code == 204
        drop = httpx.post(f"{url}/query", data={"q": f"DROP DATABASE {DB}"}, auth=(name, pw[name]))
        assert drop.status_code == 403
    # nobody else, and no wrong password
    assert httpx.post(write, content=line).status_code == 401
    assert httpx.post(write, content=line, auth=("ingest", pw["api"])).status_code == 401


@pytest.mark.parametrize(
    ("passwords", "said"),
    [
        (
            {"ingest": "short", "analytics": "x" * 40, "api": "y" * 40},
            "DELTASENSE_INFLUX_PASSWORD_INGEST is shorter",
        ),
        ({"analytics": "x" * 40, "api": "y" * 40}, "DELTASENSE_INFLUX_PASSWORD_INGEST is not set"),
        (
            {
                "ingest": "a' WITH ALL PRIVILEGES --" + "z" * 30,
                "analytics": "x" * 40,
                "api": "y" * 40,
            },
            "may hold only",
        ),
    ],
)
def test_a_bad_password_stops_the_init_naming_the_variable(
    fresh_influx: str, passwords: dict[str, str], said: str
) -> None:
    done = run_script(fresh_influx, **passwords)
    assert done.returncode == 1 and said in done.stderr, done.stderr
    users = httpx.get(
        f"{fresh_influx}/query", params={"q": "SHOW USERS"}, auth=("admin", ADMIN_PASSWORD)
    )
    assert "ingest" not in users.text  # refused before anything was made


def test_a_second_run_on_existing_users_fails_loudly(fresh_influx: str) -> None:
    pw = {name: secrets.token_urlsafe(32) for name in ("ingest", "analytics", "api")}
    assert run_script(fresh_influx, **pw).returncode == 0
    again = run_script(fresh_influx, **{k: secrets.token_urlsafe(32) for k in pw})
    assert again.returncode == 1 and "refused a statement" in again.stderr
