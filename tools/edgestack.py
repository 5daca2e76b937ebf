"""A ward behind an edge gateway, as child processes: the ward's own Mosquitto and
``python -m edge`` (used by ``deltasense simulate --edge`` and the gateway's tests).

The ward broker is anonymous and listens on loopback only: on the gateway it is
the nodes' broker on the cabinet's own network (docs/EDGE.md says what that
leaves open).  The gateway logs in to the platform as ``gw.<district>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from deltasense import access, dynsec, provisioning
from deltasense.settings import Settings
from edge.settings import EdgeSettings
from tools.devstack import ManagedProcess, http_ok, mosquitto_process, python_service


def ward_broker(var_dir: Path, *, port: int, host: str = "127.0.0.1") -> ManagedProcess:
    proc = mosquitto_process(var_dir, port=port, host=host, anonymous=True)
    proc.name = "mosquitto-ward"
    return proc


def edge_env(settings: EdgeSettings) -> dict[str, str]:
    """The gateway's settings as ``DELTASENSE_EDGE_*`` variables for its process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None or value == "":
            continue
        if name in {"var_dir", "spool_path", "uplink_tls_ca_file", "thresholds_file"}:
            value = str(Path(value).resolve())
        env[f"DELTASENSE_EDGE_{name.upper()}"] = str(value)
    env["DELTASENSE_EDGE_CONFIG"] = os.devnull  # the variables say it all
    return env


def gateway_process(settings: EdgeSettings) -> ManagedProcess:
    """``python -m edge``; healthy once its metrics endpoint answers (needs a port)."""
    if not settings.metrics_port:
        raise ValueError("the supervised gateway needs a metrics port for its health check")
    url = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    proc = python_service(
        "edge",
        "edge",
        settings.var_dir.resolve(),
        env=edge_env(settings),
        healthy=lambda: http_ok(url),
        ports=[(settings.metrics_host, settings.metrics_port)],
    )
    proc.stop_timeout_s = 15.0
    return proc


async def ensure_gateway_account(settings: Settings, district: str) -> str:
    """The gateway's secret on the local stack's broker (var/secrets/mqtt/gw.<district>),
    its account made or synced over the admin connection."""
    from tools.broker import admin_login

    password = access.ensure_secret(settings.var_dir, access.gateway_username(district))
    login = admin_login(settings)
    async with dynsec.connect(
        host=login.host,
        port=login.port,
        username=login.username,
        password=login.password,
        tls=login.tls,
    ) as ds:
        await provisioning.sync_gateway(
            ds, site=settings.site, district=district, password=password
        )
    return password
