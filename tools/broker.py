"""The dev stack's broker identities: made on first start, synced at every start.

First start (no ``var/mosquitto/dynsec.json``): an admin secret is generated
into ``var/secrets/mqtt/admin.broker`` and the plugin's first file is written
with that one admin.  Each platform service has its secret in
``var/secrets/mqtt/svc.<name>`` (0600, made on first use); once the broker
answers, the service accounts and roles are made to match
:mod:`deltasense.access` over the plugin's API, and each service is started
with only its own credentials (``DELTASENSE_MQTT_USERNAME``/``_PASSWORD``).
With ``api_device_admin`` (the default) the API also gets ``admin.api``, a broker
admin of its own for ``/api/v1/admin/devices``; without, that account is disabled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deltasense import access, dynsec, mqtt, provisioning
from deltasense.access import Service
from deltasense.settings import Settings
from tools.devstack import ServiceError, tcp_open


@dataclass(frozen=True)
class BrokerAccounts:
    dynsec_file: Path
    # Kept out of the repr: a traceback (a failing test's) must not print secrets.
    admin_password: str = field(repr=False)
    passwords: dict[Service, str] = field(repr=False)
    # The API's broker admin for its device routes; None: the API gets none.
    api_admin_password: str | None = field(default=None, repr=False)

    def env(self, service: Service) -> dict[str, str]:
        env = {
            "DELTASENSE_MQTT_USERNAME": service.username,
            "DELTASENSE_MQTT_PASSWORD": self.passwords[service],
        }
        if service is Service.API and self.api_admin_password is not None:
            env["DELTASENSE_MQTT_ADMIN_USERNAME"] = access.API_ADMIN_USERNAME
            env["DELTASENSE_MQTT_ADMIN_PASSWORD"] = self.api_admin_password
        return env


def dynsec_file(var_dir: Path) -> Path:
    return var_dir.resolve() / "mosquitto" / "dynsec.json"


def prepare(var_dir: Path, *, api_device_admin: bool = False) -> BrokerAccounts:
    """Secrets and the plugin's file, made if missing (no broker needed); with
    ``api_device_admin``, an admin identity of its own for the API's device routes."""
    path = dynsec_file(var_dir)
    admin = access.read_secret(var_dir, access.ADMIN_USERNAME)
    if not path.exists():
        admin = access.new_secret()
        access.write_secret(var_dir, access.ADMIN_USERNAME, admin)
        dynsec.initial_config(path, admin_username=access.ADMIN_USERNAME, admin_password=admin)
    elif admin is None:
        raise ServiceError(
            f"{path} exists but the broker admin's secret "
            f"(var/secrets/mqtt/{access.ADMIN_USERNAME}) is missing; restore it, or delete "
            f"{path} to start over (every device identity is then lost)"
        )
    path.parent.chmod(0o700)  # the plugin rewrites the file with its password hashes
    passwords = {s: access.ensure_secret(var_dir, s.username) for s in Service}
    api_admin = (
        access.ensure_secret(var_dir, access.API_ADMIN_USERNAME) if api_device_admin else None
    )
    return BrokerAccounts(
        dynsec_file=path, admin_password=admin, passwords=passwords, api_admin_password=api_admin
    )


def admin_login(settings: Settings) -> provisioning.BrokerLogin:
    """The admin identity of the local stack (``deltasense devices …``)."""
    secret = access.read_secret(settings.var_dir, access.ADMIN_USERNAME)
    if secret is None:
        raise provisioning.ProvisioningError(
            f"no broker admin secret in {settings.var_dir.resolve()}/secrets/mqtt/: "
            "start the stack once (`deltasense up`) to create the broker's identities"
        )
    return provisioning.BrokerLogin(
        settings.mqtt_host,
        settings.mqtt_port,
        access.ADMIN_USERNAME,
        secret,
        tls=mqtt.tls_context(settings),
    )


async def sync(settings: Settings, accounts: BrokerAccounts) -> None:
    async with dynsec.connect(
        host=settings.mqtt_host,
        port=settings.mqtt_port,
        username=access.ADMIN_USERNAME,
        password=accounts.admin_password,
        tls=mqtt.tls_context(settings),
    ) as ds:
        await provisioning.sync_platform(ds, site=settings.site, passwords=accounts.passwords)
        await provisioning.sync_api_admin(ds, password=accounts.api_admin_password)


def ready_check(settings: Settings, accounts: BrokerAccounts) -> Callable[[], bool]:
    """The broker's health check: it answers, and (once per supervisor) the service
    accounts are in place.  A broker restarted later keeps them in its file."""
    synced = False
    started = time.monotonic()

    def ready() -> bool:
        nonlocal synced
        if not tcp_open(settings.mqtt_host, settings.mqtt_port):
            return False
        if not synced:
            try:
                asyncio.run(sync(settings, accounts))
            except dynsec.DynsecUnavailable as exc:
                if time.monotonic() - started > 10:
                    raise ServiceError(f"broker identities not set up: {exc}") from None
                return False
            except dynsec.DynsecError as exc:
                raise ServiceError(f"broker identities not set up: {exc}") from None
            synced = True
        return True

    return ready


def as_service(settings: Settings, service: Service) -> Settings:
    """``settings`` logged in as a platform account of the local stack (its secret file):
    for tools that play a service's part, such as chaos's publisher (the simulator)."""
    secret = access.read_secret(settings.var_dir, service.username)
    if secret is None:
        raise ServiceError(f"no secret for {service.username}: start the stack first")
    return settings.model_copy(update={"mqtt_username": service.username, "mqtt_password": secret})
