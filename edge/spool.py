"""The gateway's durable spool: every message from the ward, until the platform has it.

SQLite in WAL mode with ``synchronous=FULL``: a transaction is on the card when
its commit returns (WAL fsyncs at commit), and the gateway acknowledges a batch
to the ward broker only after that.  A record is deleted only after the
platform's PUBACK.  Ids are ``AUTOINCREMENT``, so they only grow: the forwarder
tells the backlog (ids up to a watermark) from live data (ids above it).

Bounded by bytes and age.  When full, the policy is explicit: ``drop-oldest``
(the default) deletes the oldest records to make room, ``drop-newest`` refuses
the new ones; either way every dropped record is counted, by reason, in the
spool itself, so the counts survive restarts.

Retained channels (status, meta) keep only their newest pending record per
topic: an older status replayed after a newer one would otherwise overwrite the
platform's retained state with a stale one.  A record superseded so is not a
drop (the platform gets the newer one) and is counted apart.

Plain synchronous code, used by the service from one worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

ROW_OVERHEAD: Final = 48  # bytes a row costs beyond topic and payload (header, id, ints)


class FullPolicy(StrEnum):
    DROP_OLDEST = "drop-oldest"
    DROP_NEWEST = "drop-newest"


class DropReason(StrEnum):
    FULL = "full"  # over the byte bound
    AGE = "age"  # older than the age bound


@dataclass(frozen=True)
class Incoming:
    """One MQTT message from the ward, as it was received."""

    topic: str
    payload: bytes
    retain: bool
    received_ms: int

    @property
    def size(self) -> int:
        return len(self.topic.encode()) + len(self.payload) + ROW_OVERHEAD


@dataclass(frozen=True)
class Record:
    id: int
    topic: str
    payload: bytes
    retain: bool
    received_ms: int


@dataclass(frozen=True)
class AppendResult:
    stored: int
    dropped: dict[DropReason, int]
    superseded: int


@dataclass(frozen=True)
class SpoolStats:
    records: int
    bytes: int
    oldest_ms: int | None
    dropped: dict[DropReason, int]
    superseded: int


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_retained ON spool (topic) WHERE retain = 1;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_SUPERSEDED: Final = "superseded"


class Spool:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_age_ms: int,
        policy: FullPolicy = FullPolicy.DROP_OLDEST,
        clock: Callable[[], int],
    ) -> None:
        if max_bytes <= 0 or max_age_ms <= 0:
            raise ValueError("the spool's bounds must be positive")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        self.policy = policy
        self._clock = clock
        # One thread uses it at a time (the service's single worker), not always the
        # thread that opened it.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM spool").fetchone()
        self._records, self._bytes = int(row[0]), int(row[1])

    def close(self) -> None:
        self._db.close()

    # --- writing ---------------------------------------------------------------------------
    def append(self, messages: Sequence[Incoming], delivered: Sequence[int] = ()) -> AppendResult:
        """Store ``messages`` in one durable transaction, within the bounds.

        ``delivered``: ids the platform has acknowledged since the last delete; they
        go first, so a full spool never counts a delivered record as dropped."""
        dropped = dict.fromkeys(DropReason, 0)
        superseded = 0
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._delete(delivered)
            dropped[DropReason.AGE] += self._expire()
            for message in messages:
                if self.policy is FullPolicy.DROP_NEWEST and (
                    self._bytes + message.size > self.max_bytes
                ):
                    dropped[DropReason.FULL] += 1
                    continue
                if message.retain:
                    superseded += self._supersede(message.topic)
                db.execute(
                    "INSERT INTO spool (topic, payload, retain, received_ms, size) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        message.topic,
                        message.payload,
                        int(message.retain),
                        message.received_ms,
                        message.size,
                    ),
                )
                self._records += 1
                self._bytes += message.size
            if self.policy is FullPolicy.DROP_OLDEST:
                dropped[DropReason.FULL] += self._drop_oldest_over_bound()
            self._count(dropped, superseded)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._reload()
            raise
        stored = len(messages) - (dropped[DropReason.FULL] if self._refuses() else 0)
        return AppendResult(stored=stored, dropped=dropped, superseded=superseded)

    def _refuses(self) -> bool:
        return self.policy is FullPolicy.DROP_NEWEST

    def _supersede(self, topic: str) -> int:
        rows = self._db.execute(
            "DELETE FROM spool WHERE retain = 1 AND topic = ? RETURNING size", (topic,)
        ).fetchall()
        self._forget(rows)
        return len(rows)

    def _expire(self) -> int:
        # Ids follow arrival, so the old records are the first ones: look at the
        # head in chunks instead of scanning a week of rows at every append.
        cutoff = self._clock() - self.max_age_ms
        expired = 0
        while True:
            rows = self._db.execute(
                "DELETE FROM spool WHERE id IN "
                "(SELECT id FROM spool ORDER BY id LIMIT 1000) AND received_ms < ? "
                "RETURNING size",
                (cutoff,),
            ).fetchall()
            self._forget(rows)
            expired += len(rows)
            if len(rows) < 1000:
                return expired

    def _drop_oldest_over_bound(self) -> int:
        dropped = 0
        while self._bytes > self.max_bytes and self._records:
            # Enough of the oldest rows to get under the bound, in one statement.
            excess = self._bytes - self.max_bytes
            rows = self._db.execute(
                "SELECT id, size FROM spool ORDER BY id LIMIT ?",
                (max(1, min(10_000, excess // ROW_OVERHEAD + 1)),),
            ).fetchall()
            cut, freed = 0, 0
            for row_id, size in rows:
                cut, freed = int(row_id), freed + int(size)
                if freed >= excess:
                    break
            gone = self._db.execute(
                "DELETE FROM spool WHERE id <= ? RETURNING size", (cut,)
            ).fetchall()
            self._forget(gone)
            dropped += len(gone)
        return dropped

    def _forget(self, rows: Iterable[tuple[int]]) -> None:
        for (size,) in rows:
            self._records -= 1
            self._bytes -= int(size)

    def _count(self, dropped: dict[DropReason, int], superseded: int) -> None:
        for name, n in [*((str(r), n) for r, n in dropped.items()), (_SUPERSEDED, superseded)]:
            if n:
                self._db.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (name, n),
                )

    def _reload(self) -> None:
        row = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM spool").fetchone()
        self._records, self._bytes = int(row[0]), int(row[1])

    def expire(self) -> int:
        """Drop what is older than the age bound (also done at every append)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            n = self._expire()
            self._count({DropReason.AGE: n}, 0)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._reload()
            raise
        return n

    def delete(self, ids: Sequence[int]) -> int:
        """Forget records the platform has acknowledged (an id already gone is skipped)."""
        if not ids:
            return 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            n = self._delete(ids)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._reload()
            raise
        return n

    def _delete(self, ids: Sequence[int]) -> int:
        gone = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            gone += self._db.execute(
                f"DELETE FROM spool WHERE id IN ({marks}) RETURNING size",  # noqa: S608 - placeholders only
                tuple(chunk),
            ).fetchall()
        self._forget(gone)
        return len(gone)

    # --- reading ---------------------------------------------------------------------------
    def after(self, cursor: int, limit: int, upto: int | None = None) -> list[Record]:
        """Up to ``limit`` records with ``cursor < id (<= upto)``, oldest first."""
        if upto is None:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain, received_ms FROM spool "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, limit),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain, received_ms FROM spool "
                "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (cursor, upto, limit),
            ).fetchall()
        return [Record(int(i), str(t), bytes(p), bool(r), int(ms)) for i, t, p, r, ms in rows]

    def last_id(self) -> int:
        """The highest id ever given (0 for a new spool): AUTOINCREMENT keeps it."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> SpoolStats:
        head = self._db.execute("SELECT received_ms FROM spool ORDER BY id LIMIT 1").fetchone()
        oldest = None if head is None else head[0]
        counts = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return SpoolStats(
            records=self._records,
            bytes=self._bytes,
            oldest_ms=None if oldest is None else int(oldest),
            dropped={r: int(counts.get(str(r), 0)) for r in DropReason},
            superseded=int(counts.get(_SUPERSEDED, 0)),
        )
