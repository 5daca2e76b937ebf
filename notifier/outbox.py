"""The durable outbox: every message is written here before it is sent (SQLite, WAL).

A message row is keyed by its idempotency key, a digest of (alert events,
receiver, channel, address, reason), so planning the same notification twice
inserts it once.  States: ``queued`` → ``sending`` → ``sent``; a failed attempt
becomes ``retried`` with its next time, or ``failed`` when it cannot succeed.
A row found ``sending`` at start-up was cut off mid-send (kill -9): it is sent
again, and counted as a possible duplicate unless the channel lets the
receiver drop the repeat by its key (webhooks; email's Message-ID).

The planner's memory of what each receiver was told (``tracked``) is written in
the same transaction as the messages, so a restart neither repeats nor forgets.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

STATES: Final = ("queued", "sending", "sent", "retried", "failed")
# Sent first: a message that carries a new critical, a resolve or an ack.
URGENT: Final = 0
NORMAL: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    key TEXT PRIMARY KEY,
    receiver TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    reason TEXT NOT NULL,
    alert_ids TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    created INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    crash_resends INTEGER NOT NULL DEFAULT 0,
    priority INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (state, next_at);
CREATE TABLE IF NOT EXISTS message_alerts (
    alert_id TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (alert_id, key)
);
CREATE TABLE IF NOT EXISTS tracked (
    alert_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    steps TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS used_links (nonce TEXT PRIMARY KEY, used_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def message_key(
    receiver: str, channel: str, address: str, reason: str, events: Iterable[tuple[str, int]]
) -> str:
    """The idempotency key of one message: the same events to the same address for
    the same reason is the same message."""
    h = hashlib.sha256(f"{receiver}\x00{channel}\x00{address}\x00{reason}".encode())
    for alert_id, updated in sorted(events):
        h.update(f"\x00{alert_id}@{updated}".encode())
    return "ds-" + h.hexdigest()[:32]


@dataclass(frozen=True)
class Message:
    key: str
    receiver: str
    channel: str
    address: str
    reason: str
    alert_ids: tuple[str, ...]
    body: dict[str, Any]
    state: str = "queued"
    attempts: int = 0
    next_at: int = 0
    created: int = 0
    sent_at: int | None = None
    last_error: str = ""
    crash_resends: int = 0
    priority: int = NORMAL


@dataclass(frozen=True)
class TrackedRow:
    alert_id: str
    event: bytes  # the AlertEvent JSON receivers were last told
    first: int
    last: int
    steps: dict[str, int]


_COLUMNS: Final = (
    "key, receiver, channel, address, reason, alert_ids, body, state, attempts, next_at, "
    "created, sent_at, last_error, crash_resends, priority"
)


_M_COLUMNS: Final = ", ".join("m." + c.strip() for c in _COLUMNS.split(","))


def _row(r: tuple[Any, ...]) -> Message:
    return Message(
        key=r[0],
        receiver=r[1],
        channel=r[2],
        address=r[3],
        reason=r[4],
        alert_ids=tuple(json.loads(r[5])),
        body=json.loads(r[6]),
        state=r[7],
        attempts=r[8],
        next_at=r[9],
        created=r[10],
        sent_at=r[11],
        last_error=r[12],
        crash_resends=r[13],
        priority=r[14],
    )


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)  # explicit transactions
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a queued message survives power loss
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(messages)")}
        if "priority" not in columns:  # an outbox written before priorities existed
            self._db.execute("ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 1")

    def close(self) -> None:
        self._db.close()

    # --- writing -----------------------------------------------------------------------
    def enqueue(
        self,
        messages: Iterable[Message],
        *,
        now_ms: int,
        tracked: Iterable[TrackedRow] = (),
        untracked: Iterable[str] = (),
    ) -> int:
        """Insert the messages (an existing key is left alone) and the planner's
        memory in one transaction; returns how many messages are new."""
        new = 0
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for m in messages:
                cur = db.execute(
                    f"INSERT OR IGNORE INTO messages ({_COLUMNS}) "  # noqa: S608 (constant columns)
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, NULL, '', 0, ?)",
                    (
                        m.key,
                        m.receiver,
                        m.channel,
                        m.address,
                        m.reason,
                        json.dumps(list(m.alert_ids)),
                        json.dumps(m.body, ensure_ascii=False),
                        now_ms,
                        now_ms,
                        m.priority,
                    ),
                )
                new += cur.rowcount
                db.executemany(
                    "INSERT OR IGNORE INTO message_alerts VALUES (?, ?)",
                    [(a, m.key) for a in m.alert_ids],
                )
            for t in tracked:
                db.execute(
                    "INSERT OR REPLACE INTO tracked VALUES (?, ?, ?, ?, ?)",
                    (t.alert_id, t.event.decode(), t.first, t.last, json.dumps(t.steps)),
                )
            db.executemany("DELETE FROM tracked WHERE alert_id = ?", [(a,) for a in untracked])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return new

    def recover(self, idempotent_channels: frozenset[str]) -> dict[str, int]:
        """Start-up: rows cut off mid-send go back to the queue.  Returns, per
        channel, how many may now reach their receiver twice."""
        rows = self._db.execute(
            "SELECT channel, COUNT(*) FROM messages WHERE state = 'sending' GROUP BY channel"
        ).fetchall()
        self._db.execute(
            "UPDATE messages SET state = 'retried', crash_resends = crash_resends + 1, "
            "last_error = 'interrupted mid-send' WHERE state = 'sending'"
        )
        doubtful = {ch: n for ch, n in rows if ch not in idempotent_channels}
        for ch, n in doubtful.items():
            self.bump(f"possible_duplicates.{ch}", n)
        return doubtful

    def claim(
        self,
        now_ms: int,
        *,
        busy: set[tuple[str, str]],
        limit: int = 100,
        batch: dict[str, int] | None = None,
    ) -> list[Message]:
        """Due messages, urgent first, then oldest; each is marked ``sending`` before
        this returns.  One per (channel, address) not in ``busy``, or up to
        ``batch[channel]`` for a channel whose messages to one address may go
        together as a digest (they are returned next to each other)."""
        batch = batch or {}
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE state IN ('queued', 'retried') "  # noqa: S608
            "AND next_at <= ? ORDER BY priority, next_at, created LIMIT ?",
            (now_ms, limit * 4),
        ).fetchall()
        per_address: dict[tuple[str, str], list[Message]] = {}
        taken = 0
        for r in rows:
            m = _row(r)
            where = (m.channel, m.address)
            if where in busy:
                continue
            mine = per_address.get(where)
            if mine is None:
                if taken >= limit:
                    continue
                per_address[where] = [m]
                taken += 1
            elif len(mine) < batch.get(m.channel, 1):
                mine.append(m)
        out = [m for group in per_address.values() for m in group]
        if out:
            self._db.executemany(
                "UPDATE messages SET state = 'sending', attempts = attempts + 1 WHERE key = ?",
                [(m.key,) for m in out],
            )
        return out

    def release(self, keys: Iterable[str]) -> None:
        """Claimed but not sent (a digest was full): back to the queue, attempt undone."""
        self._db.executemany(
            "UPDATE messages SET state = 'queued', attempts = attempts - 1 "
            "WHERE key = ? AND state = 'sending'",
            [(k,) for k in keys],
        )

    def sent(self, key: str, now_ms: int) -> None:
        self._db.execute(
            "UPDATE messages SET state = 'sent', sent_at = ?, last_error = '' WHERE key = ?",
            (now_ms, key),
        )

    def retry(self, key: str, next_at_ms: int, error: str) -> None:
        self._db.execute(
            "UPDATE messages SET state = 'retried', next_at = ?, last_error = ? WHERE key = ?",
            (next_at_ms, error[:500], key),
        )

    def failed(self, key: str, error: str) -> None:
        self._db.execute(
            "UPDATE messages SET state = 'failed', last_error = ? WHERE key = ?", (error[:500], key)
        )

    def use_link(self, nonce: str, now_ms: int) -> bool:
        """Mark an ack link used; False if it was used before."""
        cur = self._db.execute("INSERT OR IGNORE INTO used_links VALUES (?, ?)", (nonce, now_ms))
        return cur.rowcount == 1

    def release_link(self, nonce: str) -> None:
        """The ack could not be made after all: the link may be used again."""
        self._db.execute("DELETE FROM used_links WHERE nonce = ?", (nonce,))

    def bump(self, name: str, by: int = 1) -> None:
        self._db.execute(
            "INSERT INTO kv VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
            "value = CAST(CAST(value AS INTEGER) + ? AS TEXT)",
            (name, str(by), by),
        )

    def set_value(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (name, value))

    def value(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    # --- reading -----------------------------------------------------------------------
    def tracked(self) -> list[TrackedRow]:
        return [
            TrackedRow(a, e.encode(), f, last, json.loads(s))
            for a, e, f, last, s in self._db.execute("SELECT * FROM tracked").fetchall()
        ]

    def next_due(self) -> int | None:
        row = self._db.execute(
            "SELECT MIN(next_at) FROM messages WHERE state IN ('queued', 'retried')"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def messages(
        self,
        alert_id: str | None = None,
        limit: int = 1000,
        before: tuple[int, str] | None = None,
    ) -> list[Message]:
        """Newest first (by creation, then key); ``before`` = the (created, key) of the
        last message of the previous page, for the page after it."""
        where: list[str] = []
        params: list[object] = []
        join = ""
        if alert_id is not None:
            join = " JOIN message_alerts a ON a.key = m.key"
            where.append("a.alert_id = ?")
            params.append(alert_id)
        if before is not None:
            where.append("(m.created < ? OR (m.created = ? AND m.key < ?))")
            params += [before[0], before[0], before[1]]
        rows = self._db.execute(
            f"SELECT {_M_COLUMNS} FROM messages m{join}"  # noqa: S608 (constant fragments)
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY m.created DESC, m.key DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """channel → state → messages, and ``counters`` from the kv table."""
        out: dict[str, dict[str, int]] = {}
        for ch, state, n in self._db.execute(
            "SELECT channel, state, COUNT(*) FROM messages GROUP BY channel, state"
        ):
            out.setdefault(ch, {})[state] = n
        counters = {
            k: int(v) for k, v in self._db.execute("SELECT name, value FROM kv") if v.isdigit()
        }
        out["counters"] = counters
        return out
