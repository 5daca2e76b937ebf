"""The gateway's spool on a real SQLite file: durable order, bounds, counted drops."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.spool import ROW_OVERHEAD, DropReason, FullPolicy, Incoming, Spool


class Clock:
    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def tele(i: int, ms: int, size: int = 100) -> Incoming:
    body = f'{{"seq":{i},"x":"'.encode()
    payload = body + b"a" * max(0, size - len(body) - 2) + b'"}'
    return Incoming(f"s/d/water/n{i % 7}/tele", payload, False, ms)


def spool(tmp_path: Path, clock: Clock, **kw: object) -> Spool:
    args: dict[str, object] = {"max_bytes": 10**9, "max_age_ms": 7 * 86_400_000}
    args.update(kw)
    return Spool(tmp_path / "spool.sqlite3", clock=clock, **args)  # type: ignore[arg-type]


def test_records_come_back_in_order_and_survive_a_reopen(tmp_path: Path) -> None:
    clock = Clock()
    s = spool(tmp_path, clock)
    s.append([tele(i, clock.ms + i) for i in range(10)])
    s.close()
    s = spool(tmp_path, clock)
    records = s.after(0, 100)
    assert [r.payload for r in records] == [tele(i, 0).payload for i in range(10)]
    assert [r.received_ms for r in records] == [clock.ms + i for i in range(10)]
    assert s.stats().records == 10
    assert s.stats().bytes == sum(tele(i, 0).size for i in range(10))


def test_wal_with_full_sync(tmp_path: Path) -> None:
    s = spool(tmp_path, Clock())
    db = sqlite3.connect(s.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_cursor_reads_and_a_watermark_split_live_from_backlog(tmp_path: Path) -> None:
    clock = Clock()
    s = spool(tmp_path, clock)
    s.append([tele(i, clock.ms) for i in range(5)])
    watermark = s.last_id()
    s.append([tele(i, clock.ms) for i in range(5, 8)])
    assert [r.id for r in s.after(0, 100, upto=watermark)] == [1, 2, 3, 4, 5]
    assert [r.id for r in s.after(watermark, 100)] == [6, 7, 8]
    assert [r.id for r in s.after(2, 2, upto=watermark)] == [3, 4]


def test_deleted_ids_are_never_given_again(tmp_path: Path) -> None:
    clock = Clock()
    s = spool(tmp_path, clock)
    s.append([tele(i, clock.ms) for i in range(3)])
    assert s.delete([1, 2, 3, 99]) == 3
    assert s.stats().records == 0 and s.stats().bytes == 0
    s.close()
    s = spool(tmp_path, clock)
    s.append([tele(9, clock.ms)])
    assert [r.id for r in s.after(0, 10)] == [4]  # AUTOINCREMENT: the watermark stays true


def test_full_spool_drops_exactly_the_counted_oldest(tmp_path: Path) -> None:
    clock = Clock()
    one = tele(0, 0).size
    s = spool(tmp_path, clock, max_bytes=one * 50)
    for start in range(0, 120, 10):
        result = s.append([tele(i, clock.ms) for i in range(start, start + 10)])
        assert result.stored == 10
    left = s.after(0, 1000)
    assert [r.payload for r in left] == [tele(i, 0).payload for i in range(70, 120)]
    stats = s.stats()
    assert stats.dropped[DropReason.FULL] == 70
    assert stats.records == 50 and stats.bytes <= one * 50
    s.close()
    # the count is the spool's own, so it survives a restart
    assert spool(tmp_path, clock, max_bytes=one * 50).stats().dropped[DropReason.FULL] == 70


def test_drop_newest_refuses_what_does_not_fit(tmp_path: Path) -> None:
    clock = Clock()
    one = tele(0, 0).size
    s = spool(tmp_path, clock, max_bytes=one * 5, policy=FullPolicy.DROP_NEWEST)
    result = s.append([tele(i, clock.ms) for i in range(8)])
    assert result.stored == 5 and result.dropped[DropReason.FULL] == 3
    assert [r.payload for r in s.after(0, 100)] == [tele(i, 0).payload for i in range(5)]


def test_records_older_than_the_age_bound_drop(tmp_path: Path) -> None:
    clock = Clock()
    s = spool(tmp_path, clock, max_age_ms=60_000)
    s.append([tele(i, clock.ms - 120_000 + i * 10_000) for i in range(10)])  # ages 120 … 30 s
    clock.ms += 1
    assert s.expire() == 7  # 120, 110, … 60 s old
    assert s.stats().dropped[DropReason.AGE] == 7
    assert [r.payload for r in s.after(0, 100)] == [tele(i, 0).payload for i in range(7, 10)]
    clock.ms += 60_000
    result = s.append([tele(99, clock.ms)])  # an append expires too
    assert result.dropped[DropReason.AGE] == 3
    assert s.stats().oldest_ms == clock.ms


def test_a_newer_retained_message_supersedes_the_pending_one(tmp_path: Path) -> None:
    clock = Clock()
    s = spool(tmp_path, clock)
    status = "s/d/water/n1/status"
    s.append([Incoming(status, b'{"state":"offline"}', True, clock.ms), tele(1, clock.ms)])
    result = s.append([Incoming(status, b'{"state":"online"}', True, clock.ms)])
    assert result.superseded == 1
    records = s.after(0, 10)
    assert [(r.topic, r.payload) for r in records] == [
        ("s/d/water/n1/tele", tele(1, 0).payload),
        (status, b'{"state":"online"}'),
    ]
    assert s.stats().superseded == 1
    assert s.stats().dropped == {DropReason.FULL: 0, DropReason.AGE: 0}


def test_bounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        spool(tmp_path, Clock(), max_bytes=0)


def test_row_overhead_is_honest(tmp_path: Path) -> None:
    """The byte bound counts topic + payload + ROW_OVERHEAD; the file stays within
    a small factor of it (measured here for the docs' sizing)."""
    clock = Clock()
    s = spool(tmp_path, clock)
    n = 20_000
    for start in range(0, n, 1000):
        s.append([tele(i, clock.ms, size=180) for i in range(start, start + 1000)])
    s._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    on_disk = os.path.getsize(s.path)
    counted = s.stats().bytes
    assert counted == n * (len(b"s/d/water/n0/tele") + 180 + ROW_OVERHEAD)
    assert counted * 0.8 < on_disk < counted * 1.6, (on_disk, counted)


def test_a_killed_writer_loses_no_committed_record(tmp_path: Path) -> None:
    """kill -9 right after append() returned: every committed batch is there."""
    path = tmp_path / "spool.sqlite3"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from edge.spool import Incoming, Spool
        s = Spool(__import__("pathlib").Path({str(path)!r}), max_bytes=10**9,
                  max_age_ms=10**9, clock=lambda: 0)
        for b in range(50):
            s.append([Incoming("s/d/water/n/tele", b"x" * 100, False, 0) for _ in range(20)])
            print(b, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    committed = len(proc.stdout.split())
    assert committed == 50
    s = Spool(path, max_bytes=10**9, max_age_ms=10**9, clock=lambda: 0)
    assert s.stats().records == committed * 20


def test_delivered_records_leave_before_the_bound_counts_drops(tmp_path: Path) -> None:
    clock = Clock()
    one = tele(0, 0).size
    s = spool(tmp_path, clock, max_bytes=one * 10)
    s.append([tele(i, clock.ms) for i in range(10)])
    # ids 1-4 were PUBACKed but not deleted yet: the next append removes them first
    result = s.append([tele(i, clock.ms) for i in range(10, 14)], [1, 2, 3, 4])
    assert result.dropped[DropReason.FULL] == 0
    assert [r.id for r in s.after(0, 100)] == list(range(5, 15))
