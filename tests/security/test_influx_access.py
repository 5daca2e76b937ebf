"""Issue 9, item 4: InfluxDB with authentication, each service with the least grant.

Against the session's real InfluxDB 1.x (tests/conftest.py), started with
``auth-enabled = true`` and its users made by tools/influxdb.py, as ``deltasense
up`` does.  Each test syncs the users onto its own database, so it sees only its
own points.  Every refusal has a positive control (the right user, same moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from deltasense.influx import InfluxClient, InfluxRequestError, influx_client
from deltasense.influx_users import GRANTS, DbUser, Privilege
from deltasense.mqtt import make_client
from deltasense.settings import Settings
from ingest.service import Ingest
from tests.support import Services, eventually, now_ms
from tools import influxdb

DEVICE = "wl-sec-1"


@pytest.fixture
async def accounts(services: Services, settings: Settings) -> influxdb.DbAccounts:
    found = influxdb.prepare(services.var_dir)  # the session's secrets
    await influxdb.sync(settings, found)  # users and grants on this test's database
    return found


@pytest.fixture
async def as_admin(
    settings: Settings, accounts: influxdb.DbAccounts
) -> AsyncIterator[InfluxClient]:
    async with influx_client(accounts.login(settings, DbUser.ADMIN)) as db:
        yield db


def line(seq: int = 1, t_c: str = "29.5") -> str:
    return f"weather,site=tsec,device={DEVICE} seq={seq}i,t_c={t_c}"


async def stored(db: InfluxClient) -> list[dict[str, object]]:
    return [r for s in await db.query("SELECT * FROM weather") for r in s.rows()]


async def raw(settings: Settings, method: str, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=settings.influx_base_url, timeout=5) as http:
        return await http.request(method, path, **kwargs)  # type: ignore[arg-type]


async def test_unauthenticated_reads_and_writes_are_refused_401(
    settings: Settings, as_admin: InfluxClient
) -> None:
    await as_admin.write_lines([line(1)])  # control: there is something to read
    db = settings.influx_db
    read = await raw(settings, "POST", "/query", data={"db": db, "q": "SELECT * FROM weather"})
    write = await raw(
        settings, "POST", "/write", params={"db": db, "precision": "ms"}, content=line(2)
    )
    admin_q = await raw(settings, "POST", "/query", data={"q": "SHOW USERS"})
    assert (read.status_code, write.status_code, admin_q.status_code) == (401, 401, 401)
    assert [r["seq"] for r in await stored(as_admin)] == [1]
    # /ping (the health check) stays open and says nothing about the data.
    assert (await raw(settings, "GET", "/ping")).status_code == 204


async def test_a_direct_hostile_write_without_credentials_is_refused(
    settings: Settings, as_admin: InfluxClient
) -> None:
    """Issue 9's probe: `seq=-5, t_c=1e300` written straight to InfluxDB."""
    response = await raw(
        settings,
        "POST",
        "/write",
        params={"db": settings.influx_db},
        content=line(-5, "1e300"),
    )
    assert response.status_code == 401
    async with influx_client(settings.model_copy(update={"influx_password": "wrong"})) as bad:
        with pytest.raises(InfluxRequestError) as refused:
            await bad.write_lines([line(-5, "1e300")])
    assert refused.value.status == 401
    assert await stored(as_admin) == []


async def test_the_read_user_reads_but_cannot_write_or_delete(
    settings: Settings, accounts: influxdb.DbAccounts, as_admin: InfluxClient
) -> None:
    await as_admin.write_lines([line(1)])
    async with influx_client(accounts.login(settings, DbUser.READER)) as reader:
        assert [r["seq"] for r in await stored(reader)] == [1]  # control
        for attempt in (
            reader.write_lines([line(2)]),
            reader.query("DELETE FROM weather"),
            reader.query("DROP SERIES FROM weather"),
            reader.query("DROP MEASUREMENT weather"),
            reader.execute(f'DROP DATABASE "{settings.influx_db}"'),
        ):
            with pytest.raises(InfluxRequestError) as refused:
                await attempt
            assert refused.value.status == 403
    assert [r["seq"] for r in await stored(as_admin)] == [1]


async def test_the_write_user_writes_but_cannot_read_drop_or_administer(
    settings: Settings, accounts: influxdb.DbAccounts, as_admin: InfluxClient
) -> None:
    async with influx_client(accounts.login(settings, DbUser.INGEST)) as ingest:
        await ingest.write_lines([line(1)])  # control
        for attempt in (
            ingest.query("SELECT * FROM weather"),
            ingest.query("SHOW MEASUREMENTS"),
            ingest.query("DROP MEASUREMENT weather"),
            ingest.execute(f'DROP DATABASE "{settings.influx_db}"'),
            ingest.execute("CREATE DATABASE other"),
            ingest.execute("SHOW USERS"),
            ingest.execute("CREATE USER mallory WITH PASSWORD 'x' WITH ALL PRIVILEGES"),
            ingest.execute(f'GRANT ALL ON "{settings.influx_db}" TO "reader"'),
            ingest.execute(
                f'CREATE RETENTION POLICY "short" ON "{settings.influx_db}" '
                "DURATION 1h REPLICATION 1"
            ),
        ):
            with pytest.raises(InfluxRequestError) as refused:
                await attempt
            assert refused.value.status == 403
    assert [r["seq"] for r in await stored(as_admin)] == [1]


@pytest.mark.parametrize("user", [DbUser.API, DbUser.ANALYTICS, DbUser.NOTIFIER])
async def test_each_service_user_has_exactly_its_grant_and_no_admin_right(
    settings: Settings, accounts: influxdb.DbAccounts, as_admin: InfluxClient, user: DbUser
) -> None:
    privilege = GRANTS[user]
    async with influx_client(accounts.login(settings, user)) as db:
        if privilege in (Privilege.WRITE, Privilege.ALL):
            await db.write_lines([line(7)])
        else:
            with pytest.raises(InfluxRequestError):
                await db.write_lines([line(7)])
        if privilege in (Privilege.READ, Privilege.ALL):
            assert [r["seq"] for r in await stored(db)] == [7]
        else:
            with pytest.raises(InfluxRequestError) as refused:
                await stored(db)
            assert refused.value.status == 403
        for statement in (
            f'DROP DATABASE "{settings.influx_db}"',
            "DROP MEASUREMENT weather",
            "SHOW USERS",
            "CREATE USER mallory WITH PASSWORD 'x'",
        ):
            with pytest.raises(InfluxRequestError) as refused:
                await db.query(statement)
            assert refused.value.status == 403
    grants = await as_admin.query(f'SHOW GRANTS FOR "{user.value}"', db=None)
    on_this_db = {r[1] for s in grants for r in s.values if r[0] == settings.influx_db}
    shown = {Privilege.READ: "READ", Privilege.WRITE: "WRITE", Privilege.ALL: "ALL PRIVILEGES"}
    assert on_this_db == {shown[privilege]}
    users = {r[0]: r[1] for s in await as_admin.query("SHOW USERS", db=None) for r in s.values}
    assert users[user.value] is False  # not an admin
    assert users[DbUser.ADMIN.value] is True


async def test_the_real_ingest_stores_with_its_write_only_user(
    settings: Settings, accounts: influxdb.DbAccounts, as_admin: InfluxClient
) -> None:
    """The service starts (create_database as a non-admin: the database exists) and
    stores a reading through its own user; that user's client cannot read it back."""
    ingest_settings = accounts.login(settings, DbUser.INGEST)
    reading = {"ts": now_ms() - 1000, "seq": 3, "boot": 1, "t_c": 29.5, "rh_pct": 80}
    async with influx_client(ingest_settings) as db:
        await db.create_database()  # what the service does at start: no error
        svc = Ingest(ingest_settings, db)
        task = asyncio.create_task(svc.run())
        try:
            await asyncio.wait_for(svc.connected.wait(), timeout=10)
            async with make_client(settings, identifier=f"{settings.site}-pub") as client:
                topic = f"{settings.site}/phuong-1/weather/{DEVICE}/tele"
                await client.publish(topic, json.dumps(reading).encode(), qos=1)
            rows = await eventually(lambda: stored(as_admin), within=10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert [r["seq"] for r in rows] == [3], "not stored through the write-only user"
        with pytest.raises(InfluxRequestError) as refused:
            await stored(db)
        assert refused.value.status == 403


async def test_a_missing_database_is_an_error_a_non_admin_cannot_hide(
    settings: Settings, accounts: influxdb.DbAccounts
) -> None:
    login = accounts.login(settings, DbUser.INGEST)
    async with influx_client(login.model_copy(update={"influx_db": "nosuchdb"})) as db:
        with pytest.raises(InfluxRequestError, match="does not exist"):
            await db.create_database()


async def test_credentials_travel_as_basic_auth_never_in_the_url() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/write":
            return httpx.Response(204)
        return httpx.Response(200, json={"results": [{"statement_id": 0}]})

    client = InfluxClient(url="http://influx.invalid", database="d", username="u", password="s3")
    client._http = httpx.AsyncClient(
        base_url="http://influx.invalid", auth=("u", "s3"), transport=httpx.MockTransport(answer)
    )
    async with client:
        await client.write_lines([line(1)])
        await client.query("SELECT * FROM weather")
    assert len(seen) == 2
    for request in seen:
        assert "s3" not in str(request.url) and "u=" not in str(request.url.query)
        assert request.headers["authorization"] == httpx.BasicAuth("u", "s3")._auth_header


def test_secrets_are_private_files_and_settings_never_show_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    var = tmp_path / "var"
    found = influxdb.prepare(var)
    assert set(found.passwords) == set(DbUser)
    assert len(set(found.passwords.values())) == len(DbUser)
    folder = var / "secrets" / "influx"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for user in DbUser:
        assert stat.S_IMODE((folder / user.value).stat().st_mode) == 0o600
    assert influxdb.prepare(var).passwords == found.passwords  # stable across starts
    settings = found.login(Settings(var_dir=var), DbUser.API)
    logging.getLogger("t").info("settings: %r", settings)
    assert found.passwords[DbUser.API] not in repr(settings)
    assert found.passwords[DbUser.API] not in caplog.text
