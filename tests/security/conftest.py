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
from tools import broker, tls
from tools.devstack import BrokerTls, Stack, free_port, mosquitto_process

SITE = "tsec"


@dataclass(frozen=True)
class LockedBroker:
    port: int  # the plain listener (most tests: who may do what)
    site: str
    accounts: broker.BrokerAccounts
    tls_port: int  # the TLS listener, the same identities and ACLs
    pki: tls.DevPki

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

    def tls_settings(self, base: Settings, service: Service | None = None) -> Settings:
        """:meth:`settings` on the TLS listener, the dev CA pinned."""
        plain = self.settings(base, service)
        update = {"mqtt_port": self.tls_port, "mqtt_tls": True, "mqtt_ca_file": self.pki.ca_cert}
        return plain.model_copy(update=update)


@pytest.fixture(scope="session")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedBroker]:
    var: Path = tmp_path_factory.mktemp("locked")
    port, tls_port = free_port(), free_port()
    accounts = broker.prepare(var, api_device_admin=True)  # admin.api, for the API routes
    pki = tls.ensure_dev_pki(var)
    # Both listeners, as `deltasense up` with mqtt_plain_listener on; the identities
    # are set up over TLS (tests/security/test_tls.py tests a TLS-only broker too).
    proc = mosquitto_process(
        var,
        port=tls_port,
        dynsec_file=accounts.dynsec_file,
        tls=BrokerTls(cafile=pki.ca_cert, certfile=pki.server_cert, keyfile=pki.server_key),
        plain_port=port,
    )
    ready = Settings(site=SITE, mqtt_port=tls_port, var_dir=var)  # TLS, the dev CA: defaults
    proc.healthy = broker.ready_check(ready, accounts)
    with Stack([proc]):
        yield LockedBroker(port=port, site=SITE, accounts=accounts, tls_port=tls_port, pki=pki)


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
