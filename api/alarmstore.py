"""The alarm workflow's records: assignments, comments, clears, silences and the
activity on every alert (``var/api/alarm.sqlite3``, SQLite in WAL mode).

Why not InfluxDB: these are a few mutable, relational records (one assignee per
alert, a silence that is ended early, a thread looked up by its alarm point),
read by key, not series over time; InfluxDB 1.x has no updates and no
transactions.  Why not the audit log: that one is append-only and admin-only;
this one is what the console shows every operator (docs/ARCHITECTURE.md).

Each call opens its own connection, like :class:`deltasense.audit.AuditLog`, so
API replicas and threads share one file safely (SQLite locks; ``busy_timeout``);
a committed write survives a crash (``synchronous=FULL``).  Blocking: the routes
call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from deltasense.silences import Silence

BUSY_TIMEOUT_MS: Final = 5000
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS activity (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_alert ON activity (alert_id, id);
CREATE INDEX IF NOT EXISTS activity_point ON activity (rule, subject, action, id);
CREATE TABLE IF NOT EXISTS assignment (
    alert_id TEXT PRIMARY KEY,
    assignee TEXT NOT NULL,
    actor TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS clearing (
    alert_id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    ts INTEGER NOT NULL,
    note TEXT NOT NULL,
    seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS silence (
    id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    matchers TEXT NOT NULL,
    starts INTEGER NOT NULL,
    ends INTEGER NOT NULL,
    actor TEXT NOT NULL,
    comment TEXT NOT NULL,
    created INTEGER NOT NULL,
    alert_id TEXT,
    ended_by TEXT,
    ended_at INTEGER,
    retracted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS silence_ends ON silence (ends);
"""


class AlarmStoreError(Exception):
    """The workflow database cannot be opened or written."""


@dataclass(frozen=True)
class Activity:
    id: int
    alert_id: str
    ts: int
    actor: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Assignment:
    assignee: str
    actor: str
    ts: int


@dataclass(frozen=True)
class Clearing:
    actor: str
    ts: int
    note: str
    seen: str  # what analytics said of the alert when it was cleared (api/alarm.py)


@dataclass(frozen=True)
class SilenceRecord:
    """A silence as the API keeps it: the wire fields and who made and ended it."""

    silence: Silence
    purpose: str  # "silence", "maintenance" or "shelve"
    created: int
    alert_id: str | None = None
    ended_by: str | None = None
    ended_at: int | None = None
    retracted: bool = False  # its retained message was removed from the broker

    @property
    def id(self) -> str:
        return self.silence.id

    def effective_ends(self) -> int:
        """When it stops applying: its end, or when an operator ended it."""
        return self.silence.ends if self.ended_at is None else min(self.ended_at, self.silence.ends)

    def active(self, now_ms: int) -> bool:
        return self.silence.starts <= now_ms < self.effective_ends()


class AlarmStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._ready = False

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(self.path.parent, 0o700)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise AlarmStoreError(f"alarm workflow store {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            if not self._ready:
                conn.executescript(_SCHEMA)
                self._ready = True
            yield conn
        except sqlite3.Error as exc:
            raise AlarmStoreError(f"alarm workflow store {self.path}: {exc}") from exc
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _log(
        conn: sqlite3.Connection,
        *,
        alert_id: str,
        rule: str,
        subject: str,
        ts: int,
        actor: str,
        action: str,
        detail: Mapping[str, Any],
    ) -> None:
        conn.execute(
            "INSERT INTO activity (alert_id, rule, subject, ts, actor, action, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (alert_id, rule, subject, ts, actor, action, json.dumps(dict(detail), sort_keys=True)),
        )

    # --- writes: each records its activity in the same transaction ----------------
    def record(
        self,
        *,
        alert_id: str,
        rule: str,
        subject: str,
        ts: int,
        actor: str,
        action: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """One activity entry (a comment, or what another write did)."""
        with self._write() as conn:
            self._log(
                conn,
                alert_id=alert_id,
                rule=rule,
                subject=subject,
                ts=ts,
                actor=actor,
                action=action,
                detail=detail or {},
            )

    def assign(
        self, *, alert_id: str, rule: str, subject: str, assignee: str | None, actor: str, ts: int
    ) -> None:
        with self._write() as conn:
            if assignee is None:
                conn.execute("DELETE FROM assignment WHERE alert_id = ?", (alert_id,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO assignment (alert_id, assignee, actor, ts)"
                    " VALUES (?, ?, ?, ?)",
                    (alert_id, assignee, actor, ts),
                )
            self._log(
                conn,
                alert_id=alert_id,
                rule=rule,
                subject=subject,
                ts=ts,
                actor=actor,
                action="assign" if assignee else "unassign",
                detail={"assignee": assignee} if assignee else {},
            )

    def clear(
        self,
        *,
        alert_id: str,
        rule: str,
        subject: str,
        actor: str,
        ts: int,
        note: str,
        seen: str,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO clearing (alert_id, actor, ts, note, seen)"
                " VALUES (?, ?, ?, ?, ?)",
                (alert_id, actor, ts, note, seen),
            )
            self._log(
                conn,
                alert_id=alert_id,
                rule=rule,
                subject=subject,
                ts=ts,
                actor=actor,
                action="clear",
                detail={"note": note} if note else {},
            )

    def add_silence(
        self,
        record: SilenceRecord,
        *,
        on_alert: tuple[str, str, str] | None = None,
        action: str = "silence",
    ) -> None:
        """Store a silence; ``on_alert`` (id, rule, subject) also logs it on that alert."""
        s = record.silence
        with self._write() as conn:
            conn.execute(
                "INSERT INTO silence (id, purpose, matchers, starts, ends, actor, comment,"
                " created, alert_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    s.id,
                    record.purpose,
                    json.dumps(s.matchers, sort_keys=True),
                    s.starts,
                    s.ends,
                    s.by,
                    s.comment,
                    record.created,
                    record.alert_id,
                ),
            )
            if on_alert is not None:
                alert_id, rule, subject = on_alert
                detail: dict[str, Any] = {
                    "silence": s.id,
                    "purpose": record.purpose,
                    "matchers": s.matchers,
                    "starts": s.starts,
                    "ends": s.ends,
                }
                if s.comment:
                    detail["comment"] = s.comment
                self._log(
                    conn,
                    alert_id=alert_id,
                    rule=rule,
                    subject=subject,
                    ts=record.created,
                    actor=s.by,
                    action=action,
                    detail=detail,
                )

    def end_silence(
        self,
        silence_id: str,
        *,
        actor: str,
        ts: int,
        on_alert: tuple[str, str, str] | None = None,
        action: str = "unsilence",
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE silence SET ended_by = ?, ended_at = ?, retracted = 1"
                " WHERE id = ? AND ended_at IS NULL",
                (actor, ts, silence_id),
            )
            if on_alert is not None:
                alert_id, rule, subject = on_alert
                self._log(
                    conn,
                    alert_id=alert_id,
                    rule=rule,
                    subject=subject,
                    ts=ts,
                    actor=actor,
                    action=action,
                    detail={"silence": silence_id},
                )

    def mark_retracted(self, silence_id: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE silence SET retracted = 1 WHERE id = ?", (silence_id,))

    # --- reads ---------------------------------------------------------------------
    def activity(self, alert_id: str) -> list[Activity]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, alert_id, ts, actor, action, detail FROM activity"
                " WHERE alert_id = ? ORDER BY id",
                (alert_id,),
            ).fetchall()
        return [_activity(r) for r in rows]

    def thread(self, rule: str, subject: str) -> list[Activity]:
        """Every comment on the alarm point (rule, subject), over all its episodes."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, alert_id, ts, actor, action, detail FROM activity"
                " WHERE rule = ? AND subject = ? AND action = 'comment' ORDER BY id",
                (rule, subject),
            ).fetchall()
        return [_activity(r) for r in rows]

    def assignments(self) -> dict[str, Assignment]:
        with self._connect() as conn:
            rows = conn.execute("SELECT alert_id, assignee, actor, ts FROM assignment").fetchall()
        return {str(r[0]): Assignment(str(r[1]), str(r[2]), int(r[3])) for r in rows}

    def clearings(self) -> dict[str, Clearing]:
        with self._connect() as conn:
            rows = conn.execute("SELECT alert_id, actor, ts, note, seen FROM clearing").fetchall()
        return {str(r[0]): Clearing(str(r[1]), int(r[2]), str(r[3]), str(r[4])) for r in rows}

    def comment_counts(self) -> dict[tuple[str, str], int]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT rule, subject, count(*) FROM activity WHERE action = 'comment'"
                " GROUP BY rule, subject"
            ).fetchall()
        return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}

    def silences(self, *, since_ms: int | None = None, limit: int = 500) -> list[SilenceRecord]:
        """Newest first; ``since_ms``: only those still applying (or upcoming) then."""
        where, args = "", []
        if since_ms is not None:
            where = " WHERE ends > ? AND (ended_at IS NULL OR ended_at > ?)"
            args = [since_ms, since_ms]
        with self._connect() as conn:
            rows = conn.execute(
                # ``where`` is one of two fixed strings; values are bound.
                "SELECT id, purpose, matchers, starts, ends, actor, comment, created, alert_id,"  # noqa: S608
                f" ended_by, ended_at, retracted FROM silence{where}"
                " ORDER BY created DESC, id LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [_silence(r) for r in rows]

    def silence(self, silence_id: str) -> SilenceRecord | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT id, purpose, matchers, starts, ends, actor, comment, created, alert_id,"
                " ended_by, ended_at, retracted FROM silence WHERE id = ?",
                (silence_id,),
            ).fetchone()
        return _silence(row) if row else None

    def unretracted_expired(self, now_ms: int) -> list[str]:
        """Silences that are over but whose retained message is still on the broker."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id FROM silence WHERE retracted = 0 AND ends <= ?", (now_ms,)
            ).fetchall()
        return [str(r[0]) for r in rows]


def _activity(row: tuple[Any, ...]) -> Activity:
    detail = json.loads(row[5])
    return Activity(
        id=int(row[0]),
        alert_id=str(row[1]),
        ts=int(row[2]),
        actor=str(row[3]),
        action=str(row[4]),
        detail=detail if isinstance(detail, dict) else {},
    )


def _silence(row: tuple[Any, ...]) -> SilenceRecord:
    matchers = json.loads(row[2])
    return SilenceRecord(
        silence=Silence(
            id=str(row[0]),
            matchers={str(k): str(v) for k, v in matchers.items()},
            starts=int(row[3]),
            ends=int(row[4]),
            by=str(row[5]),
            comment=str(row[6]),
        ),
        purpose=str(row[1]),
        created=int(row[7]),
        alert_id=None if row[8] is None else str(row[8]),
        ended_by=None if row[9] is None else str(row[9]),
        ended_at=None if row[10] is None else int(row[10]),
        retracted=bool(row[11]),
    )
