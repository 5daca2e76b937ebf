"""Fixtures shared by all tests.

Integration tests (``tests/integration``) get a real Mosquitto and a real
InfluxDB, started once per test session on free ports in a temporary directory
by the same code that ``deltasense up`` uses.  Each test gets its own site
(MQTT topic prefix) and its own InfluxDB database, so tests never see each
other's data.

The session InfluxDB runs with authentication on, as ``deltasense up`` runs
it, its users made by the same code (tools/influxdb.py); tests log in as its
admin, since each creates its own database.  What each service's own user may
and may not do is tested by ``tests/security/test_influx_access.py``.

That session broker is an anonymous one, on purpose and for tests only: the
integration tests check the message path (every test plays devices and
services on its own site).  Who may do what is tested by ``tests/security``
against a locked-down broker with the dynamic security plugin, the way
``deltasense up`` runs it (tests/security/conftest.py), and end to end by
tests/integration/test_stack_e2e.py.

``thresholds`` is the shipped analytics thresholds, for any test (unit or
integration) that needs them.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from analytics.thresholds import load_thresholds
from deltasense.influx import InfluxClient, influx_client
from deltasense.influx_users import DbUser
from deltasense.settings import Settings
from deltasense.thresholds import Thresholds
from tests import background
from tests.support import ADMIN_TOKEN, Services
from tools import influxdb
from tools.devstack import Stack, free_port, influxdb_process, mosquitto_process


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path).replace("\\", "/")
        if "tests/integration/" in path or "tests/security/" in path:
            item.add_marker(pytest.mark.integration)
    # Tests that wait for a background job run last, so the job has the whole suite
    # before them to finish in (tests/background.py); otherwise collection order.
    items.sort(key=lambda item: item.get_closest_marker("background_job") is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    for item in session.items:
        for marker in item.iter_markers("background_job"):
            background.start(marker.args[0])


def pytest_sessionfinish() -> None:
    background.stop_all()


@pytest.fixture
def thresholds() -> Thresholds:
    """The shipped defaults (deltasense/thresholds.toml), loaded afresh for each test
    so that one test's change to a nested value cannot leak into another."""
    return load_thresholds()


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    var_dir = tmp_path_factory.mktemp("var")
    db_accounts = influxdb.prepare(var_dir)
    found = Services(
        mqtt_port=free_port(),
        influx_port=free_port(),
        influx_rpc_port=free_port(),
        var_dir=var_dir,
        influx_username=DbUser.ADMIN.value,
        influx_password=db_accounts.passwords[DbUser.ADMIN],
    )
    database = influxdb_process(
        var_dir, http_port=found.influx_port, rpc_port=found.influx_rpc_port
    )
    database.healthy = influxdb.ready_check(
        Settings(influx_port=found.influx_port, var_dir=var_dir), db_accounts
    )
    stack = Stack([mosquitto_process(var_dir, port=found.mqtt_port, anonymous=True), database])
    with stack:
        yield found


@pytest.fixture
async def influx(settings: Settings) -> AsyncIterator[InfluxClient]:
    """A client on the test's own database, created empty."""
    async with influx_client(settings) as db:
        await db.create_database()
        yield db


@pytest.fixture
def settings(services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for one integration test: its own site, database and var dir."""
    monkeypatch.chdir(tmp_path)  # no stray deltasense.toml is picked up
    tag = secrets.token_hex(4)
    return Settings(
        site=f"t{tag}",
        var_dir=tmp_path / "var",
        mqtt_port=services.mqtt_port,
        mqtt_tls=False,  # the session broker is plain (TLS: tests/security/test_tls.py)
        influx_port=services.influx_port,
        influx_rpc_port=services.influx_rpc_port,
        influx_db=f"test_{tag}",
        influx_username=services.influx_username,
        influx_password=services.influx_password,
        api_port=free_port(),
        admin_token=ADMIN_TOKEN,
        ingest_client_id=f"ingest-{tag}",
        ingest_flush_interval_s=0.1,
        ingest_metrics_port=0,
        analytics_metrics_port=0,
    )
