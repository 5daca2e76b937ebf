"""Who may do what in InfluxDB: its users, their grants, and their secret files.

InfluxDB 1.x runs with ``[http] auth-enabled = true`` (tools/devstack.py).  Its
grants are per database and coarse: ``READ`` (queries), ``WRITE`` (``/write``,
and also ``DELETE`` / ``DROP SERIES``), ``ALL`` (both).  Everything else —
``CREATE``/``DROP DATABASE``, ``DROP MEASUREMENT``, retention policies, users,
grants — needs an admin user, which only the stack holds.  Each service gets
the least of those that its job needs (docs/SECURITY.md, "InfluxDB").

Secrets live in ``var/secrets/influx/<user>`` (mode 0600, directory 0700) and
reach a service only through its environment (``DELTASENSE_INFLUX_USERNAME`` /
``_PASSWORD``); the client sends them as HTTP basic auth, never in a URL.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Final

from deltasense.dynsec import write_private

SECRET_BYTES: Final = 32  # 256 bits, like the broker's


class Privilege(StrEnum):
    """InfluxDB 1.x's per-database grants."""

    READ = "READ"
    WRITE = "WRITE"
    ALL = "ALL"


class DbUser(StrEnum):
    """InfluxDB users of the platform; ``ADMIN`` is the stack's, never a service's."""

    ADMIN = "admin"
    INGEST = "ingest"
    ANALYTICS = "analytics"
    API = "api"
    NOTIFIER = "notifier"
    READER = "reader"

    @property
    def privilege(self) -> Privilege | None:
        """Its grant on the platform's database (``None``: the admin, who needs none)."""
        return GRANTS.get(self)


GRANTS: Final[dict[DbUser, Privilege]] = {
    # stores readings, meta, status and dead letters; never reads them back
    DbUser.INGEST: Privilege.WRITE,
    # reads its windows back at start (restore, stations, meta) and writes
    # alert events and the commands it orders
    DbUser.ANALYTICS: Privilege.ALL,
    # reads everything it serves, and writes one thing: the acknowledged alert
    # event (api/routes/alerts.py), so a read right after the ack shows it even
    # with analytics down (analytics stores it too, from _acks).  Without that
    # write this would be READ.
    DbUser.API: Privilege.ALL,
    # writes the acknowledged alert event of a Telegram button or email link
    DbUser.NOTIFIER: Privilege.WRITE,
    # tools: `deltasense backtest --start/--end` (replay), chaos's counts, dashboards
    DbUser.READER: Privilege.READ,
}


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def secrets_dir(var_dir: Path) -> Path:
    path = var_dir.resolve() / "secrets" / "influx"
    path.mkdir(parents=True, exist_ok=True)
    for p in (path.parent, path):
        os.chmod(p, 0o700)
    return path


def read_secret(var_dir: Path, user: DbUser) -> str | None:
    try:
        return (var_dir.resolve() / "secrets" / "influx" / user.value).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_secret(var_dir: Path, user: DbUser) -> str:
    """The stored secret of ``user``, made on first use."""
    secret = read_secret(var_dir, user)
    if secret is None:
        secret = new_secret()
        write_private(secrets_dir(var_dir) / user.value, (secret + "\n").encode())
    return secret
