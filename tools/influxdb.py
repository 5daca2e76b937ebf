"""The dev stack's InfluxDB users: made on first start, synced at every start.

InfluxDB runs with authentication on (tools/devstack.py); while it has no user
at all it accepts exactly one unauthenticated statement, the creation of the
first admin.  So at the first start the stack creates ``admin`` with the secret
in ``var/secrets/influx/admin``; at every start, logged in as that admin, it
creates the database, makes every service user exist with its stored secret
and grants it exactly its privilege (:mod:`deltasense.influx_users`), and each
service is started with only its own user (``DELTASENSE_INFLUX_USERNAME`` /
``_PASSWORD`` in its environment).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deltasense.influx import (
    InfluxClient,
    InfluxError,
    InfluxRequestError,
    InfluxUnavailable,
    quote_ident,
    quote_string,
)
from deltasense.influx_users import DbUser, ensure_secret, read_secret
from deltasense.settings import Settings
from tools.devstack import ServiceError, http_ok

_SYNC_GIVE_UP_S = 15.0


@dataclass(frozen=True)
class DbAccounts:
    passwords: dict[DbUser, str]

    def env(self, user: DbUser) -> dict[str, str]:
        return {
            "DELTASENSE_INFLUX_USERNAME": user.value,
            "DELTASENSE_INFLUX_PASSWORD": self.passwords[user],
        }

    def login(self, settings: Settings, user: DbUser) -> Settings:
        return settings.model_copy(
            update={"influx_username": user.value, "influx_password": self.passwords[user]}
        )


def prepare(var_dir: Path) -> DbAccounts:
    """Every user's secret, made if missing (no server needed)."""
    return DbAccounts(passwords={u: ensure_secret(var_dir, u) for u in DbUser})


def _client(settings: Settings, user: DbUser | None, password: str | None) -> InfluxClient:
    return InfluxClient(
        url=settings.influx_base_url,
        database=settings.influx_db,
        username=user.value if user else None,
        password=password,
        timeout_s=settings.influx_timeout_s,
    )


async def _bootstrap_admin(settings: Settings, password: str) -> None:
    """Create the first admin; a server that has users already refuses (401), fine."""
    async with _client(settings, None, None) as anonymous:
        try:
            await anonymous.execute(
                f"CREATE USER {quote_ident(DbUser.ADMIN)} WITH PASSWORD "
                f"{quote_string(password)} WITH ALL PRIVILEGES"
            )
        except InfluxRequestError as exc:
            if exc.status not in (401, 403):
                raise


async def sync(settings: Settings, accounts: DbAccounts) -> None:
    """The database, every user with its secret, and exactly its grant (idempotent)."""
    admin_password = accounts.passwords[DbUser.ADMIN]
    await _bootstrap_admin(settings, admin_password)
    async with _client(settings, DbUser.ADMIN, admin_password) as admin:
        try:
            await admin.create_database()
        except InfluxRequestError as exc:
            if exc.status == 401:
                raise ServiceError(
                    f"InfluxDB ({settings.influx_base_url}) has users, but not the admin of "
                    f"{settings.var_dir.resolve()}/secrets/influx/admin; restore that file, or "
                    "delete var/influxdb to start over (its data is then lost)"
                ) from None
            raise
        db = quote_ident(settings.influx_db)
        for user, privilege in ((u, u.privilege) for u in DbUser):
            if privilege is None:
                continue
            name, password = quote_ident(user), quote_string(accounts.passwords[user])
            try:
                await admin.execute(f"CREATE USER {name} WITH PASSWORD {password}")
            except InfluxRequestError as exc:
                if "already exists" not in str(exc):
                    raise
                await admin.execute(f"SET PASSWORD FOR {name} = {password}")
            # A user found an admin (edited by hand) would bypass every grant.
            await admin.execute(f"REVOKE ALL PRIVILEGES FROM {name}")
            await admin.execute(f"REVOKE ALL ON {db} FROM {name}")
            await admin.execute(f"GRANT {privilege.value} ON {db} TO {name}")


def ready_check(settings: Settings, accounts: DbAccounts) -> Callable[[], bool]:
    """InfluxDB's health check: it answers, and (once per supervisor) the users and
    grants are in place.  A restarted server keeps them in its meta store."""
    synced = False
    started = time.monotonic()

    def ready() -> bool:
        nonlocal synced
        if not http_ok(f"{settings.influx_base_url}/ping"):
            return False
        if not synced:
            try:
                asyncio.run(sync(settings, accounts))
            except InfluxUnavailable as exc:
                if time.monotonic() - started > _SYNC_GIVE_UP_S:
                    raise ServiceError(f"InfluxDB users not set up: {exc}") from None
                return False
            except InfluxError as exc:
                raise ServiceError(f"InfluxDB users not set up: {exc}") from None
            synced = True
        return True

    return ready


def as_user(settings: Settings, user: DbUser = DbUser.READER) -> Settings:
    """``settings`` logged in to the local stack's InfluxDB as ``user`` (its secret
    file), unless the settings name a user already: for tools such as the backtest's
    replay and chaos's counts."""
    if settings.influx_username:
        return settings
    secret = read_secret(settings.var_dir, user)
    if secret is None:
        return settings
    return settings.model_copy(update={"influx_username": user.value, "influx_password": secret})
