"""The full stack as `deltasense up --detach` runs it, seen from outside: its CLI,
its broker (mosquitto_pub as a device or the simulator's account) and its API
(httpx as the admin).  Shared by the stack e2e tests and the console's browser tests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ADMIN = secrets.token_urlsafe(32)  # start-up refuses short or placeholder secrets


def descendants(pid: int) -> set[int]:
    """All descendants of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            text = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        for child in map(int, text.split()):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ProcessLookupError):
        return False
    return stat.split()[2] != "Z"


class Stack:
    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env = env
        self.root = root
        self.site = env["DELTASENSE_SITE"]
        self.api = f"http://127.0.0.1:{env['DELTASENSE_API_PORT']}"
        self.mqtt_port = env["DELTASENSE_MQTT_PORT"]
        self.ca = Path(env["DELTASENSE_VAR_DIR"]) / "tls" / "ca.pem"
        self.http = httpx.Client(
            base_url=self.api, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
        )

    def cli(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.cli", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def secret(self, username: str) -> str:
        return (self.root / "var" / "secrets" / "mqtt" / username).read_text().strip()

    def pub(
        self, topic: str, payload: str | bytes, login: tuple[str, str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Publish with QoS 1 as ``(client id, user, password)``, by default as the
        simulator's account; ``check`` unless a login is given."""
        data = payload.encode() if isinstance(payload, str) else payload
        client_id, user, password = login or (
            "e2e-pub",
            "svc.simulator",
            self.secret("svc.simulator"),
        )
        creds = ["-i", client_id] + (["-u", user, "-P", password] if user else [])
        return subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                "127.0.0.1",
                "-p",
                self.mqtt_port,
                "--cafile",  # the stack's broker speaks TLS only (mqtt_tls, the default)
                str(self.ca),
                *creds,
                "-q",
                "1",
                "-t",
                topic,
                "-s",
            ],
            input=data,
            check=login is None,
            capture_output=True,
            timeout=10,
        )

    def poll(self, path: str, ok: Any, within: float = 5.0, **params: Any) -> httpx.Response:
        deadline = time.monotonic() + within
        while True:
            response = self.http.get(path, params=params)
            if ok(response) or time.monotonic() > deadline:
                return response
            time.sleep(0.1)
