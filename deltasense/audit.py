"""The audit log: who did what, when, from where, and how it ended.

Every change to who may do what (device identities, API tokens, accounts), every
console login (and failed one), and every
order given to the city (commands, configuration pushes, alert
acknowledgements) is recorded here by the one process that carried it out: the
API (actor: the token's or account's name, origin: the client's address) or the CLI (actor:
the OS user, origin ``cli``).  Admins read it through ``GET /api/v1/audit``.

The store is one SQLite database in WAL mode (``var/audit/audit.sqlite3``,
0600 in a 0700 directory): a committed entry survives a crash
(``synchronous=FULL``), the CLI and the API can append at the same time (SQLite
locks; ``busy_timeout``), and filters by time, action, actor or target are
indexed queries.  It is append-only: triggers refuse UPDATE and DELETE, and
each entry carries the SHA-256 of the previous entry's hash and its own
content, so :func:`verify` finds an entry changed or removed behind the
triggers' back (docs/SECURITY.md, "Audit log").  Entries never hold secrets.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from deltasense.runtime import now_ms

CLI_ORIGIN: Final = "cli"
GENESIS: Final = "0" * 64  # the "previous hash" of the first entry
MAX_LIMIT: Final = 1000
BUSY_TIMEOUT_MS: Final = 5000
MAX_TEXT: Final = 200  # actor, origin, target: longer values are cut
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    origin TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts);
CREATE INDEX IF NOT EXISTS audit_action ON audit (action, ts);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, ts);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class Action(StrEnum):
    DEVICE_ADD = "device.add"
    DEVICE_LIST = "device.list"
    DEVICE_SHOW = "device.show"
    DEVICE_ROTATE = "device.rotate"  # the one cfg push there is: it carries the new secret
    DEVICE_REVOKE = "device.revoke"
    DEVICE_ENABLE = "device.enable"
    GATEWAY_ADD = "gateway.add"
    TOKEN_ADD = "token.add"
    TOKEN_REMOVE = "token.remove"
    USER_ADD = "user.add"
    USER_PASSWD = "user.passwd"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_REMOVE = "user.remove"
    SESSION_LOGIN = "session.login"  # never with the password
    SESSION_LOGOUT = "session.logout"
    ALERT_ACK = "alert.ack"
    COMMAND_SEND = "command.send"
    ROUTING_EDIT = "routing.edit"
    ALERT_ASSIGN = "alert.assign"
    ALERT_COMMENT = "alert.comment"
    ALERT_SHELVE = "alert.shelve"  # and unshelve (detail: until, or ended)
    ALERT_CLEAR = "alert.clear"
    SILENCE_ADD = "silence.add"
    SILENCE_END = "silence.end"


class Result(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    INVALID = "invalid"  # the request was refused as it stood (exists already, bad id)
    UNCONFIRMED = "unconfirmed"  # a rotation the node did not confirm: nothing changed
    ERROR = "error"  # the broker or database failed or refused


class AuditError(Exception):
    """The audit log cannot be opened or written."""


@dataclass(frozen=True)
class Entry:
    id: int
    ts: int  # UTC, ms since the epoch
    actor: str
    origin: str  # client address, or "cli"
    action: str
    target: str
    result: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "actor": self.actor,
            "origin": self.origin,
            "action": self.action,
            "target": self.target,
            "result": self.result,
            "detail": self.detail,
        }


def cli_actor() -> str:
    """Who runs the CLI: the OS user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return f"uid:{os.getuid()}"


def _digest(previous: str, entry: Entry) -> str:
    body = json.dumps([previous, *entry.as_dict().values()], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _cut(text: str) -> str:
    return text[:MAX_TEXT]


class AuditLog:
    """Append and read entries of one audit database.  Cheap to construct: each
    call opens its own connection, so it is safe from threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(self.path.parent, 0o700)
                # Created 0600 before SQLite opens it; its -wal/-shm files follow that mode.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise AuditError(f"audit log {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            if not self._ready:
                conn.executescript(_SCHEMA)
                self._ready = True
            yield conn
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {self.path}: {exc}") from exc
        finally:
            conn.close()

    def record(
        self,
        *,
        actor: str,
        origin: str,
        action: Action,
        target: str,
        result: Result,
        detail: Mapping[str, Any] | None = None,
        ts: int | None = None,
    ) -> Entry:
        """Append one entry (committed and synced when this returns)."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time: the chain stays linear
            try:
                last = conn.execute(
                    "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1"
                ).fetchone()
                previous_id, previous = (last[0], last[1]) if last else (0, GENESIS)
                entry = Entry(
                    id=previous_id + 1,
                    ts=now_ms() if ts is None else ts,
                    actor=_cut(actor),
                    origin=_cut(origin),
                    action=Action(action).value,
                    target=_cut(target),
                    result=Result(result).value,
                    detail=dict(detail or {}),
                )
                detail_json = json.dumps(entry.detail, sort_keys=True, separators=(",", ":"))
                conn.execute(
                    "INSERT INTO audit (id, ts, actor, origin, action, target, result, detail, hash)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.id,
                        entry.ts,
                        entry.actor,
                        entry.origin,
                        entry.action,
                        entry.target,
                        entry.result,
                        detail_json,
                        _digest(previous, entry),
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return entry

    def query(
        self,
        *,
        since: int | None = None,
        until: int | None = None,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        result: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Entry]:
        """Newest first.  ``action`` is an action or a family (``device``);
        ``before_id`` pages back from an entry already seen."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        conds: list[str] = []
        args: list[Any] = []
        for column, op, value in (
            ("ts", ">=", since),
            ("ts", "<", until),
            ("actor", "=", actor),
            ("target", "=", target),
            ("result", "=", result),
            ("id", "<", before_id),
        ):
            if value is not None:
                conds.append(f"{column} {op} ?")
                args.append(value)
        if action is not None:
            conds.append("(action = ? OR action LIKE ? ESCAPE '\\')")
            family = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args += [action, f"{family}.%"]
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        with self._connect() as conn:
            rows = conn.execute(
                # ``where`` holds only fixed column names; every value is bound.
                "SELECT id, ts, actor, origin, action, target, result, detail FROM audit"  # noqa: S608
                f"{where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [_entry(row) for row in rows]

    def verify(self) -> int:
        """Walk the chain; the number of entries, or :class:`AuditError` naming the
        first entry that was changed, inserted or removed."""
        previous, expected_id = GENESIS, 1
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, ts, actor, origin, action, target, result, detail, hash FROM audit "
                "ORDER BY id"
            )
            for row in rows:
                entry = _entry(row[:8])
                if entry.id != expected_id:
                    raise AuditError(f"audit entry {expected_id} is missing")
                if _digest(previous, entry) != row[8]:
                    raise AuditError(f"audit entry {entry.id} does not match its hash")
                previous, expected_id = row[8], expected_id + 1
        return expected_id - 1


def _entry(row: tuple[Any, ...] | sqlite3.Row) -> Entry:
    detail = json.loads(row[7])
    return Entry(
        id=int(row[0]),
        ts=int(row[1]),
        actor=str(row[2]),
        origin=str(row[3]),
        action=str(row[4]),
        target=str(row[5]),
        result=str(row[6]),
        detail=detail if isinstance(detail, dict) else {},
    )


def record_cli(
    path: Path,
    action: Action,
    target: str,
    result: Result,
    detail: Mapping[str, Any] | None = None,
) -> Entry:
    """An entry for a CLI command: the OS user, origin ``cli``."""
    return AuditLog(path).record(
        actor=cli_actor(),
        origin=CLI_ORIGIN,
        action=action,
        target=target,
        result=result,
        detail=detail,
    )
