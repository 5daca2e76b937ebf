"""Child-process supervision: health checks, start failures, port clashes, clean stop,
restarts with backoff."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from deltasense.settings import Settings
from tools.devstack import (
    ManagedProcess,
    Periodic,
    ProcState,
    RestartPolicy,
    ServiceError,
    Stack,
    free_port,
    tcp_open,
)
from tools.stack import build_stack, settings_env


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


def _supervise_until(stack: Stack, done: Callable[[], bool], within: float = 10.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, f"not done in {within} s; log: {lines}"
        lines += stack.supervise()
        time.sleep(0.02)
    return lines


def test_a_killed_child_is_restarted_and_the_others_keep_running(tmp_path: Path) -> None:
    a, b = sleeper(tmp_path, "a"), sleeper(tmp_path, "b")
    with Stack([a, b], RestartPolicy(base_s=0.05)) as stack:
        assert a.proc is not None and b.proc is not None
        first, other = a.proc.pid, b.proc.pid
        os.kill(first, signal.SIGKILL)
        lines = _supervise_until(stack, lambda: a.restarts == 1 and a.state is ProcState.UP)
        assert a.proc.pid != first and a.alive()
        assert a.last_exit == -signal.SIGKILL
        assert b.proc.pid == other and b.restarts == 0 and b.state is ProcState.UP
        assert any("a exited (code -9); restarting in" in line for line in lines)
        assert any("a is up again" in line for line in lines)
    assert not a.alive() and not b.alive()
    assert a.state is ProcState.STOPPED


_COUNTS_USR1 = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def note(*_):
    out.write_text(str(int(out.read_text() or 0) + 1) if out.exists() else "1")
signal.signal(signal.SIGUSR1, note)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_an_up_child_gets_its_periodic_signal_and_a_restart_starts_the_clock_again(
    tmp_path: Path,
) -> None:
    """Mosquitto gets SIGUSR1 (save the store) this way; the restarted broker too."""
    counted = tmp_path / "usr1"
    log = tmp_path / "broker.log"
    child = ManagedProcess(
        name="broker",
        argv=[sys.executable, "-c", _COUNTS_USR1, str(counted)],
        log_path=log,
        healthy=lambda: "ready" in (log.read_text() if log.exists() else ""),
        periodic=Periodic(signal.SIGUSR1, 0.2),
    )
    with Stack([child], RestartPolicy(base_s=0.05)) as stack:
        _supervise_until(stack, lambda: counted.exists() and int(counted.read_text()) >= 3)
        assert child.signalled >= 3 and child.alive()
        assert child.proc is not None
        os.kill(child.proc.pid, signal.SIGKILL)
        before = child.signalled
        _supervise_until(stack, lambda: child.restarts == 1 and child.state is ProcState.UP)
        assert child.signalled == before  # nothing is sent while it is down or starting
        _supervise_until(stack, lambda: child.signalled >= before + 2)
        assert child.alive()


def test_a_crash_loop_backs_off_instead_of_spinning(tmp_path: Path) -> None:
    flaky = ManagedProcess(
        name="flaky",
        argv=[sys.executable, "-c", "raise SystemExit(3)"],
        log_path=tmp_path / "flaky.log",
        healthy=lambda: True,
    )
    policy = RestartPolicy(base_s=0.1, cap_s=0.4)
    stack = Stack([flaky], policy)
    stack.start()  # healthy at once; exits right after
    try:
        started = time.monotonic()
        _supervise_until(stack, lambda: flaky.restarts >= 4, within=10)
        # waits 0.1, 0.2, 0.4, 0.4 s before the four restarts (plus process start-up)
        assert time.monotonic() - started >= 1.1
        assert flaky.last_exit == 3
        assert flaky.failures_in_a_row >= 4
    finally:
        stack.stop()


def test_backoff_doubles_to_its_cap() -> None:
    policy = RestartPolicy(base_s=0.5, cap_s=8.0)
    assert [policy.delay_s(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_child_that_stays_up_has_its_failures_forgiven(tmp_path: Path) -> None:
    a = sleeper(tmp_path, "a")
    with Stack([a], RestartPolicy(base_s=0.05, reset_after_s=0.3)) as stack:
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGKILL)
        _supervise_until(stack, lambda: a.restarts == 1 and a.state is ProcState.UP)
        assert a.failures_in_a_row == 1
        time.sleep(0.4)  # the point: up longer than reset_after_s (0.3 s), on the real clock
        stack.supervise()
        assert a.failures_in_a_row == 0 and a.restarts == 1


def test_a_child_unhealthy_after_a_restart_is_stopped_and_retried(tmp_path: Path) -> None:
    calls = {"n": 0}

    def healthy() -> bool:  # healthy at the first start only
        calls["n"] += 1
        return calls["n"] == 1

    a = sleeper(tmp_path, "a", healthy=healthy, start_timeout_s=0.2)
    with Stack([a], RestartPolicy(base_s=0.05)) as stack:
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGKILL)
        lines = _supervise_until(stack, lambda: a.failures_in_a_row >= 2)
        assert any("was not healthy in time" in line for line in lines)
        assert a.state is ProcState.BACKOFF


def test_the_stack_starts_one_supervised_process_per_ingest_worker(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", ingest_workers=3, ingest_metrics_port=9300)
    names = [p.name for p in build_stack(settings).processes]
    assert names[2:5] == ["ingest", "ingest-1", "ingest-2"]
    workers = build_stack(settings).processes[2:5]
    envs = [p.env or {} for p in workers]
    assert [e["DELTASENSE_INGEST_WORKER"] for e in envs] == ["0", "1", "2"]
    assert {e["DELTASENSE_INGEST_WORKERS"] for e in envs} == {"3"}
    assert {e["DELTASENSE_MQTT_USERNAME"] for e in envs} == {"svc.ingest"}


def _broker_conf(var_dir: Path) -> dict[str, str]:
    lines = (var_dir / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("window", [Settings().ingest_max_unacked, 30_000])
def test_the_stack_broker_lets_ingest_hold_its_window_unacknowledged(
    tmp_path: Path, window: int
) -> None:
    # Ingest acknowledges a batch only after writing it: a broker inflight limit
    # below its window keeps its batches from filling (they go out on the timer).
    settings = Settings(var_dir=tmp_path / "v", ingest_max_unacked=window)
    build_stack(settings)
    assert int(_broker_conf(settings.var_dir)["max_inflight_messages"]) >= window


def test_the_stack_starts_one_process_per_analytics_partition(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path / "var", analytics_partitions=2, analytics_districts=["phuong-1"]
    )
    procs = {p.name: p for p in build_stack(settings).processes}
    parts = [procs["analytics"], procs["analytics-1"]]
    envs = [p.env or {} for p in parts]
    assert [e["DELTASENSE_ANALYTICS_PARTITION"] for e in envs] == ["0", "1"]
    assert {e["DELTASENSE_ANALYTICS_DISTRICTS"] for e in envs} == {'["phuong-1"]'}
    back = Settings.model_validate_json(
        '{"analytics_districts": ' + envs[1]["DELTASENSE_ANALYTICS_DISTRICTS"] + "}"
    )
    assert back.analytics_districts == ["phuong-1"]
