"""Child-process supervision: health checks, start failures, port clashes, clean stop."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from deltasense.settings import Settings
from tools.devstack import ManagedProcess, ServiceError, Stack, free_port, tcp_open
from tools.stack import settings_env


def sleeper(tmp_path: Path, name: str, healthy=lambda: True, **kw) -> ManagedProcess:
    return ManagedProcess(
        name=name,
        argv=[sys.executable, "-c", "import time; time.sleep(60)"],
        log_path=tmp_path / f"{name}.log",
        healthy=healthy,
        **kw,
    )


def test_stack_starts_in_order_and_stops_everything(tmp_path: Path) -> None:
    a, b = sleeper(tmp_path, "a"), sleeper(tmp_path, "b")
    with Stack([a, b]) as stack:
        assert a.alive() and b.alive() and stack.dead() == []
    assert not a.alive() and not b.alive()


def test_process_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess(
        name="broken",
        argv=[sys.executable, "-c", "print('cannot open config'); raise SystemExit(3)"],
        log_path=tmp_path / "broken.log",
        healthy=lambda: False,
    )
    with pytest.raises(ServiceError, match=r"exited with code 3(.|\n)*cannot open config"):
        proc.start()


def test_unhealthy_process_times_out_and_is_stopped(tmp_path: Path) -> None:
    proc = sleeper(tmp_path, "slow", healthy=lambda: False, start_timeout_s=0.5)
    with pytest.raises(ServiceError, match="not healthy"):
        proc.start()
    assert not proc.alive()


def test_failure_midway_stops_what_was_started(tmp_path: Path) -> None:
    first = sleeper(tmp_path, "first")
    bad = sleeper(tmp_path, "bad", healthy=lambda: False, start_timeout_s=0.3)
    with pytest.raises(ServiceError):
        Stack([first, bad]).start()
    assert not first.alive()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert tcp_open("127.0.0.1", port)
        proc = sleeper(tmp_path, "clash", ports=[("127.0.0.1", port)])
        with pytest.raises(ServiceError, match=f"port 127.0.0.1:{port} is already in use"):
            proc.start()
    assert proc.proc is None


def test_settings_reach_children_as_variables(tmp_path: Path) -> None:
    env = settings_env(Settings(mqtt_port=1999, var_dir=tmp_path / "v"))
    assert env["DELTASENSE_MQTT_PORT"] == "1999"
    assert env["DELTASENSE_VAR_DIR"] == str((tmp_path / "v").resolve())
    assert "DELTASENSE_ADMIN_TOKEN" not in env  # unset values stay unset
