"""The development/demo stack: which processes ``deltasense up`` starts, and how.

Order: Mosquitto, InfluxDB, ingest, analytics, api, notifier, then (optionally) the
simulator.  Each platform service receives the supervisor's settings through
``DELTASENSE_*`` variables, so a TOML file or variable given to ``deltasense up``
reaches every child.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deltasense import supervision
from deltasense.access import Service
from deltasense.influx_users import DbUser
from deltasense.settings import Settings
from tools import broker, influxdb, tls
from tools.devstack import (
    BrokerTls,
    ManagedProcess,
    ServiceError,
    Stack,
    http_ok,
    influxdb_process,
    mosquitto_process,
    python_service,
)

_ONE_SERVICE_ONLY = frozenset({"mqtt_admin_username", "mqtt_admin_password"})


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``DELTASENSE_*`` variables for a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        # The broker admin goes to the API only (BrokerAccounts.env), never to all.
        if value is None or name in _ONE_SERVICE_ONLY:
            continue
        if isinstance(value, Path):
            value = value.resolve()
        # Lists go as JSON, which is how pydantic-settings reads them back.
        text = json.dumps(value) if isinstance(value, list) else str(value)
        env[f"DELTASENSE_{name.upper()}"] = text
    # The children must not read a TOML file again: the variables say it all.
    env["DELTASENSE_CONFIG"] = os.devnull
    return env


def _metrics_or_alive(port: int, name: str) -> Callable[[], bool]:
    if port:
        return lambda: http_ok(f"http://127.0.0.1:{port}/metrics")
    started = time.monotonic()
    return lambda: time.monotonic() - started > 1.0


def _notifier_healthy(settings: Settings) -> Callable[[], bool]:
    if settings.notifier_http_port:
        url = f"http://{settings.notifier_http_host}:{settings.notifier_http_port}/healthz"
        return lambda: http_ok(url)
    return _metrics_or_alive(0, "notifier")


def replica_name(service: str, index: int) -> str:
    """Replica 0 is the plain service name (what a single-process stack always called it)."""
    return service if index == 0 else f"{service}-{index}"


def ingest_name(worker: int) -> str:
    return replica_name("ingest", worker)


def _replicas(
    settings: Settings,
    env: dict[str, str],
    service: str,
    index: str,
    count: int,
    metrics_port: Callable[[Settings], int],
) -> list[ManagedProcess]:
    """``count`` supervised processes of ``service``, each told its index through the
    setting ``index`` (its client id and metrics port follow from it)."""
    out = []
    for i in range(count):
        name = replica_name(service, i)
        port = metrics_port(settings.model_copy(update={index: i}))
        out.append(
            python_service(
                name,
                service,
                settings.var_dir.resolve(),
                env=env | {f"DELTASENSE_{index.upper()}": str(i)},
                healthy=_metrics_or_alive(port, name),
            )
        )
    return out


def ingest_workers(settings: Settings, env: dict[str, str]) -> list[ManagedProcess]:
    """``ingest_workers`` supervised processes on one shared subscription."""
    return _replicas(
        settings,
        env,
        "ingest",
        "ingest_worker",
        settings.ingest_workers,
        lambda s: s.ingest_worker_metrics_port,
    )


def api_ca(settings: Settings) -> Path | None:
    """The CA that checks the API's HTTPS certificate (the MQTT one: one CA)."""
    return settings.mqtt_ca_path if settings.api_tls else None


def broker_listeners(settings: Settings) -> dict[str, Any]:
    """The broker's TLS listener and its optional plain one, from the settings; makes
    or renews the dev CA and server certificate (tools/tls.py) when TLS is on."""
    if not (settings.mqtt_tls or settings.api_tls):
        return {}
    pki = tls.ensure_dev_pki(settings.var_dir, settings.tls_hosts)
    if not settings.mqtt_tls:
        return {}
    # A CA of one's own (mqtt_ca_file) signs a server certificate of one's own: the
    # dev PKI serves only when the clients pin the dev CA.
    if settings.mqtt_ca_path.resolve() != pki.ca_cert:
        raise ServiceError(
            f"mqtt_ca_file {settings.mqtt_ca_path} is not the dev stack's CA ({pki.ca_cert}); "
            "the dev stack serves only its own certificate: unset mqtt_ca_file, or run "
            "your own broker (docker/mosquitto.conf)"
        )
    listeners: dict[str, Any] = {
        "tls": BrokerTls(cafile=pki.ca_cert, certfile=pki.server_cert, keyfile=pki.server_key)
    }
    if settings.mqtt_plain_listener:
        listeners["plain_port"] = settings.mqtt_plain_port
    return listeners


def analytics_name(partition: int) -> str:
    return replica_name("analytics", partition)


def analytics_partitions(settings: Settings, env: dict[str, str]) -> list[ManagedProcess]:
    """``analytics_partitions`` supervised processes, each owning its districts
    (analytics/partition.py); partition 0 also the city and the platform."""
    return _replicas(
        settings,
        env,
        "analytics",
        "analytics_partition",
        settings.analytics_partitions,
        lambda s: s.analytics_worker_metrics_port,
    )


def build_stack(
    settings: Settings,
    *,
    simulate_devices: int = 0,
    simulate_rate: float = 0.2,
    seed: int = 1,
) -> Stack:
    var = settings.var_dir.resolve()
    env = settings_env(settings)
    # Locked down: each service connects with its own identity (tools/broker.py).
    accounts = broker.prepare(var, api_device_admin=settings.api_device_admin)
    mosquitto = mosquitto_process(
        var,
        port=settings.mqtt_port,
        host=settings.mqtt_host,
        dynsec_file=accounts.dynsec_file,
        max_queued=settings.broker_max_queued_messages,
        max_inflight=settings.ingest_max_unacked,
        **broker_listeners(settings),
    )
    mosquitto.healthy = broker.ready_check(settings, accounts)
    # InfluxDB with authentication: each service with its own user and grant.
    db_accounts = influxdb.prepare(var)
    database = influxdb_process(
        var, http_port=settings.influx_port, rpc_port=settings.influx_rpc_port
    )
    database.healthy = influxdb.ready_check(settings, db_accounts)

    def env_of(service: Service, user: DbUser) -> dict[str, str]:
        return env | accounts.env(service) | db_accounts.env(user)

    processes: list[ManagedProcess] = [
        mosquitto,
        database,
        *ingest_workers(settings, env_of(Service.INGEST, DbUser.INGEST)),
        *analytics_partitions(settings, env_of(Service.ANALYTICS, DbUser.ANALYTICS)),
        python_service(
            "api",
            "api",
            var,
            env=env_of(Service.API, DbUser.API),
            healthy=lambda: http_ok(f"{settings.api_base_url}/healthz", cafile=api_ca(settings)),
            ports=[(settings.api_host, settings.api_port)],
        ),
        python_service(
            "notifier",
            "notifier",
            var,
            env=env_of(Service.NOTIFIER, DbUser.NOTIFIER),
            healthy=_notifier_healthy(settings),
            ports=[(settings.notifier_http_host, settings.notifier_http_port)]
            if settings.notifier_http_port
            else [],
        ),
    ]
    if simulate_devices:
        started = time.monotonic()
        processes.append(
            python_service(
                "simulator",
                "simulators",
                var,
                env=env | accounts.env(Service.SIMULATOR),
                healthy=lambda: time.monotonic() - started > 1.0,
                args=[
                    "--devices",
                    str(simulate_devices),
                    "--rate",
                    str(simulate_rate),
                    "--seed",
                    str(seed),
                ],
            )
        )
    return Stack(processes)


# --- background mode: a state file and a pid file under var/run ---------------------
def run_dir(settings: Settings) -> Path:
    path = settings.var_dir.resolve() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_state(settings: Settings, state: str, stack: Stack | None = None, **extra: Any) -> None:
    """Report the supervisor's ``state`` (and each child's, given the stack)."""
    services = [] if stack is None else [service_state(p) for p in stack.processes]
    supervision.write_state(
        settings.var_dir,
        supervision.StackState(state=state, pid=os.getpid(), services=services, **extra),
    )


def service_state(proc: ManagedProcess) -> supervision.ServiceState:
    return supervision.ServiceState(
        name=proc.name,
        state=proc.state.value,
        pid=proc.proc.pid if proc.proc is not None and proc.alive() else None,
        restarts=proc.restarts,
        last_exit=proc.last_exit,
        since=proc.since,
    )


def read_state(settings: Settings) -> supervision.StackState | None:
    return supervision.read_state(settings.var_dir)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_background(settings: Settings, timeout_s: float = 30.0) -> bool:
    """Stop a stack started with ``up --detach``; False when none was running."""
    state = read_state(settings)
    if state is None or state.state in {"stopped", "failed"} or not pid_alive(state.pid):
        return False
    pid = state.pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)  # children follow through PDEATHSIG
            raise ServiceError(f"supervisor {pid} did not stop in {timeout_s:.0f} s; killed")
        time.sleep(0.1)
    return True
