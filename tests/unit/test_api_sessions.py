"""Console sessions on a fake clock: idle and absolute expiry, revocation, bounds."""

from __future__ import annotations

import pytest

from api.sessions import SessionStore, session_digest


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_while_used_and_ends_after_idle_s() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=3600, clock=clock)
    sid = store.create("an", "stamp")
    digest = session_digest(sid)
    assert len(sid) >= 43 and sid not in repr(store.__dict__)  # kept by hash only
    for _ in range(10):  # used every 50 s: alive well past one idle period
        clock.now += 50
        assert store.get(digest) is not None
    clock.now += 59
    assert store.get(digest, touch=False) is not None  # a stream's check is no activity
    clock.now += 1
    assert store.get(digest) is None
    assert len(store) == 0


def test_a_session_ends_at_max_s_however_busy() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=300, clock=clock)
    digest = session_digest(store.create("an", "s"))
    while clock.now < 1000 + 290:
        clock.now += 10
        assert store.get(digest) is not None
    session = store.get(digest)
    assert session is not None and store.expires_in(session) == pytest.approx(10)
    clock.now += 10
    assert store.get(digest) is None


def test_revoke_one_or_every_session_of_an_account() -> None:
    store = SessionStore()
    mine = [session_digest(store.create("an", "s")) for _ in range(3)]
    theirs = session_digest(store.create("binh", "s"))
    assert store.revoke(mine[0]) and not store.revoke(mine[0])
    assert store.revoke_account("an") == 2
    assert all(store.get(d) is None for d in mine)
    assert store.get(theirs) is not None


def test_unknown_and_hostile_ids_are_none() -> None:
    store = SessionStore()
    store.create("an", "s")
    for hostile in ("", "x", "\x00" * 10, "\udcff", "é" * 10_000):
        assert store.get(session_digest(hostile)) is None


def test_the_table_is_bounded_dropping_the_least_recently_used() -> None:
    clock = Clock()
    store = SessionStore(max_sessions=100, clock=clock)
    first = session_digest(store.create("an", "s"))
    second = session_digest(store.create("an", "s"))
    clock.now += 1
    assert store.get(first) is not None  # used: now the most recent
    for _ in range(99):
        store.create("spray", "s")
    assert len(store) == 100
    assert store.get(first) is not None and store.get(second) is None


@pytest.mark.parametrize("kw", [{"idle_s": 0}, {"max_s": -1}, {"max_sessions": 0}])
def test_nonsense_limits_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        SessionStore(**kw)  # type: ignore[arg-type]
