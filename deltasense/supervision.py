"""What the supervisor reports about the platform's processes: ``var/run/stack.json``.

``deltasense up`` (tools/stack.py) writes it whenever a child starts, dies or is
restarted; ``deltasense status`` and the API (which tells the console which
service is degraded) read it.  It lives in the shared package because both sides
must agree on it and neither may import the other.  Written atomically (a
temporary file renamed over the old one), so a reader never sees half a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import msgspec

STATE_FILE: Final = "stack.json"
# A service back up after a crash is reported as recovered this long: a restart that
# takes a second would otherwise come and go between two looks of the console.
RECOVERED_FOR_S: Final = 60.0


class ServiceState(msgspec.Struct, kw_only=True):
    """One supervised child: ``state`` is stopped, starting, up or restarting."""

    name: str
    state: str
    pid: int | None = None
    restarts: int = 0  # restarts after a crash since the stack started
    last_exit: int | None = None  # exit code (negative: signal) of the last crash
    since: float = 0.0  # Unix time of the last state change


class StackState(msgspec.Struct, kw_only=True):
    """The supervisor: ``state`` is starting, up, stopping, stopped or failed."""

    state: str
    pid: int
    api: str | None = None
    reason: str | None = None
    services: list[ServiceState] = msgspec.field(default_factory=list)

    def degraded(self) -> list[str]:
        """Services that are not up while the stack is."""
        if self.state != "up":
            return []
        return [s.name for s in self.services if s.state != "up"]

    def recovered(self, now: float) -> list[str]:
        """Services up again after a crash less than ``RECOVERED_FOR_S`` ago (``now``:
        Unix time, the supervisor's clock, as ``since`` is)."""
        if self.state != "up":
            return []
        return [
            s.name
            for s in self.services
            if s.state == "up" and s.restarts and 0 <= now - s.since < RECOVERED_FOR_S
        ]


def state_path(var_dir: Path) -> Path:
    return var_dir.resolve() / "run" / STATE_FILE


def write_state(var_dir: Path, state: StackState) -> None:
    path = state_path(var_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_bytes(msgspec.json.encode(state))
    tmp.replace(path)


def read_state(var_dir: Path) -> StackState | None:
    """The supervisor's last report, or None when there is none (no supervisor, as
    under systemd or Compose) or it cannot be read."""
    try:
        return msgspec.json.decode(state_path(var_dir).read_bytes(), type=StackState)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
