"""The audit log store (deltasense/audit.py): append, filter, append-only, tamper-evident."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from deltasense.audit import CLI_ORIGIN, Action, AuditError, AuditLog, Result, record_cli


def fill(log: AuditLog) -> None:
    for ts, actor, action, target, result in (
        (1000, "alice", Action.DEVICE_ADD, "wl-1", Result.OK),
        (2000, "alice", Action.DEVICE_REVOKE, "wl-1", Result.OK),
        (3000, "bob", Action.COMMAND_SEND, "lamp-1", Result.NOT_FOUND),
        (4000, "bob", Action.ALERT_ACK, "a1", Result.OK),
        (5000, "carol", Action.TOKEN_ADD, "ops", Result.OK),
    ):
        log.record(
            actor=actor,
            origin="10.0.0.5",
            action=action,
            target=target,
            result=result,
            detail={"n": ts},
            ts=ts,
        )


def test_entries_come_back_newest_first_with_every_field(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit" / "audit.sqlite3")
    fill(log)
    entries = log.query()
    assert [e.id for e in entries] == [5, 4, 3, 2, 1]
    last = entries[-1]
    assert (last.ts, last.actor, last.origin, last.action, last.target, last.result) == (
        1000,
        "alice",
        "10.0.0.5",
        "device.add",
        "wl-1",
        "ok",
    )
    assert last.detail == {"n": 1000}


def test_filters_combine_and_a_family_matches_its_actions(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.sqlite3")
    fill(log)
    ids = lambda **f: [e.id for e in log.query(**f)]  # noqa: E731
    assert ids(action="device") == [2, 1]
    assert ids(action="device.revoke") == [2]
    assert ids(action="devic") == []  # a family is a whole first word
    assert ids(actor="bob") == [4, 3]
    assert ids(target="wl-1", since=1500) == [2]
    assert ids(since=2000, until=4000) == [3, 2]  # [since, until)
    assert ids(result="not_found") == [3]
    assert ids(before_id=3, limit=1) == [2]
    assert ids(actor="' OR 1=1 --") == []  # bound, never spliced
    assert ids(action="%") == []  # LIKE wildcards are escaped
    with pytest.raises(ValueError, match="limit"):
        log.query(limit=0)


def test_the_log_refuses_updates_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    log = AuditLog(path)
    fill(log)
    with sqlite3.connect(path) as conn:
        for statement in ("UPDATE audit SET actor = 'mallory'", "DELETE FROM audit WHERE id = 2"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    assert log.verify() == 5


def test_an_entry_changed_behind_the_triggers_back_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    log = AuditLog(path)
    fill(log)
    assert log.verify() == 5
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 3")
    with pytest.raises(AuditError, match="entry 3 does not match"):
        log.verify()


def test_an_entry_removed_from_the_middle_is_found(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    log = AuditLog(path)
    fill(log)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute("DELETE FROM audit WHERE id = 2")
    with pytest.raises(AuditError, match="entry 2 is missing"):
        log.verify()


def test_the_file_is_private_and_long_text_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.sqlite3"
    log = AuditLog(path)
    entry = log.record(
        actor="x" * 5000, origin="cli", action=Action.TOKEN_ADD, target="t", result=Result.OK
    )
    assert len(entry.actor) == 200
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(ValueError):
        log.record(actor="a", origin="cli", action="device.explode", target="t", result=Result.OK)  # type: ignore[arg-type]


def test_a_cli_entry_names_the_os_user(tmp_path: Path) -> None:
    import getpass

    entry = record_cli(tmp_path / "a.sqlite3", Action.DEVICE_ENABLE, "wl-1", Result.OK)
    assert entry.origin == CLI_ORIGIN == "cli"
    assert entry.actor == getpass.getuser()


def test_concurrent_writers_keep_one_unbroken_chain(tmp_path: Path) -> None:
    """The CLI and the API append at the same time: every entry kept, chain linear."""
    path = tmp_path / "a.sqlite3"
    AuditLog(path).query()  # schema made once

    def writer(name: str) -> None:
        log = AuditLog(path)
        for i in range(25):
            log.record(
                actor=name, origin="cli", action=Action.ALERT_ACK, target=str(i), result=Result.OK
            )

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = AuditLog(path)
    assert log.verify() == 100
    assert len(log.query(limit=1000)) == 100


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AuditError, match="audit log"):
        AuditLog(blocker / "audit.sqlite3").query()
