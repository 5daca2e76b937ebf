"""A locked-down broker for the security tests: Mosquitto with the dynamic
security plugin, set up by the same code as ``deltasense up`` (tools/broker.py):
anonymous clients refused, one admin, one account per service, deny by default.

Devices are provisioned per test through :mod:`deltasense.provisioning` with
random ids, so tests share the broker (and its site) without seeing each other.
The InfluxDB is the session's (tests/conftest.py), each test on its own database.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deltasense import access, dynsec
from deltasense.access import Service
from deltasense.provisioning import BrokerLogin
from deltasense.settings import Settings
from tools import broker
from tools.devstack import Stack, free_port, mosquitto_process

SITE = "tsec"


@dataclass(frozen=True)
class LockedBroker:
    port: int
    site: str
    accounts: broker.BrokerAccounts

    @property
    def admin(self) -> BrokerLogin:
        return BrokerLogin(
            "127.0.0.1", self.port, access.ADMIN_USERNAME, self.accounts.admin_password
        )

    def settings(self, base: Settings, service: Service | None = None) -> Settings:
        """``base`` (the test's database) on this broker, as ``service`` if given."""
        creds = (
            {"mqtt_username": service.username, "mqtt_password": self.accounts.passwords[service]}
            if service is not None
            else {"mqtt_username": None, "mqtt_password": None}
        )
        return base.model_copy(update={"site": self.site, "mqtt_port": self.port, **creds})


@pytest.fixture(scope="session")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedBroker]:
    var: Path = tmp_path_factory.mktemp("locked")
    port = free_port()
    accounts = broker.prepare(var, api_device_admin=True)  # admin.api, for the API routes
    proc = mosquitto_process(var, port=port, dynsec_file=accounts.dynsec_file)
    proc.healthy = broker.ready_check(Settings(site=SITE, mqtt_port=port, var_dir=var), accounts)
    with Stack([proc]):
        yield LockedBroker(port=port, site=SITE, accounts=accounts)


@pytest.fixture
async def admin(locked: LockedBroker) -> AsyncIterator[dynsec.Dynsec]:
    login = locked.admin
    async with dynsec.connect(
        host=login.host, port=login.port, username=login.username, password=login.password
    ) as ds:
        yield ds


@pytest.fixture
def tag() -> str:
    """A fresh device-id prefix for one test."""
    return f"n{secrets.token_hex(3)}"
