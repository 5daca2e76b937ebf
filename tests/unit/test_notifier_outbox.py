"""The SQLite outbox: idempotent enqueue, claim/sent/retry/failed, crash recovery,
one-use links; and the pure helpers beside it (ack links, webhook signature, pacer)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from notifier.acklinks import AckLinkError, make_token, read_token
from notifier.channels import Pacer, sign, verify
from notifier.outbox import NORMAL, URGENT, Message, Outbox, TrackedRow, message_key


def msg(n: int, channel: str = "telegram", address: str = "42", priority: int = NORMAL) -> Message:
    key = message_key("duty", channel, address, "alerts", [(f"al-{n}", n)])
    return Message(
        key,
        "duty",
        channel,
        address,
        "alerts",
        (f"al-{n}",),
        {"title": "t", "text": "x"},
        priority=priority,
    )


def test_enqueue_is_idempotent_and_wal(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    assert box.enqueue([msg(1), msg(2)], now_ms=10) == 2
    assert box.enqueue([msg(1)], now_ms=20) == 0  # same key: not a second message
    mode = sqlite3.connect(tmp_path / "o.sqlite3").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)
    assert box.counts()["telegram"] == {"queued": 2}


def test_one_claim_per_address_then_states(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.enqueue([msg(1), msg(2), msg(3, "email", "a@b.vn")], now_ms=0)
    first = box.claim(0, busy=set())
    assert sorted(m.channel for m in first) == ["email", "telegram"]
    assert box.claim(0, busy={("telegram", "42"), ("email", "a@b.vn")}) == []
    tg = next(m for m in first if m.channel == "telegram")
    box.retry(tg.key, 5_000, "HTTP 429")
    assert [m.key for m in box.claim(1_000, busy={("email", "a@b.vn")})] == [msg(2).key]
    box.sent(msg(2).key, 1_100)
    again = box.claim(5_000, busy={("email", "a@b.vn")})
    assert [(m.key, m.attempts) for m in again] == [(tg.key, 1)]
    box.failed(tg.key, "HTTP 400")
    states = {m.key: (m.state, m.last_error) for m in box.messages()}
    assert states[tg.key] == ("failed", "HTTP 400") and states[msg(2).key] == ("sent", "")
    assert [m.key for m in box.messages("al-2")] == [msg(2).key]


def test_recover_requeues_mid_send_and_counts_doubtful(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    box.enqueue([msg(1), msg(2, "webhook", "https://h.vn/x")], now_ms=0)
    assert len(box.claim(0, busy=set())) == 2  # both "sending" when the process dies
    box.close()
    box = Outbox(path)
    assert box.recover(frozenset({"webhook"})) == {"telegram": 1}
    assert box.counts()["counters"] == {"possible_duplicates.telegram": 1}
    assert {m.state for m in box.messages()} == {"retried"}
    assert len(box.claim(0, busy=set())) == 2


def test_tracked_rows_travel_with_the_messages(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.enqueue([msg(1)], now_ms=0, tracked=[TrackedRow("al-1", b"{}", 1, 2, {"r": 1})])
    assert box.tracked() == [TrackedRow("al-1", b"{}", 1, 2, {"r": 1})]
    box.enqueue([], now_ms=0, untracked=["al-1"])
    assert box.tracked() == []


def test_links_are_one_use(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    assert box.use_link("n1", 0) is True
    assert box.use_link("n1", 1) is False
    box.release_link("n1")  # the ack failed (broker down): the link works again
    assert box.use_link("n1", 2) is True


def test_ack_tokens_refuse_forgery_expiry_and_garbage() -> None:
    token = make_token("s3cret", "al-1", "duty", expires_s=1_000, nonce="abc")
    claim = read_token("s3cret", token, now_s=999)
    assert (claim.alert_id, claim.receiver, claim.nonce) == ("al-1", "duty", "abc")
    with pytest.raises(AckLinkError, match="expired"):
        read_token("s3cret", token, now_s=1_000)
    with pytest.raises(AckLinkError, match="bad signature"):
        read_token("other", token, now_s=0)
    payload, sig = token.split(".")
    with pytest.raises(AckLinkError, match="bad signature"):
        read_token("s3cret", payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + sig, 0)
    for junk in ["", ".", "a.b.c", "x" * 500, "é.é", "%00.%00"]:
        with pytest.raises(AckLinkError):
            read_token("s3cret", junk, now_s=0)


def test_webhook_signature_and_replay_window() -> None:
    body = b'{"a": 1}'
    sig = sign("k", 1_000, body)
    assert verify("k", "1000", sig, body, now_s=1_100)
    assert not verify("k", "1000", sig, body + b" ", now_s=1_100)
    assert not verify("k", "1000", sig, body, now_s=1_000 + 301)  # replayed later
    assert not verify("k", "not-a-time", sig, body, now_s=1_000)
    assert not verify("j", "1000", sig, body, now_s=1_000)


def test_pacer_spaces_chats_groups_and_holds() -> None:
    p = Pacer()
    assert [p.reserve("telegram", "42", 0.0) for _ in range(3)] == [0.0, 1.0, 2.0]
    assert p.reserve("telegram", "-100", 0.0) == 0.0  # another chat need not wait
    bot = Pacer()
    slots = [bot.reserve("telegram", str(chat), 0.0) for chat in range(1, 62)]
    assert slots[:30] == [0.0] * 30 and slots[30:60] == [1.0] * 30 and slots[60] == 2.0
    p.hold("zalo", "u1", 7.0)
    assert p.reserve("zalo", "u1", 1.0) == 7.0
    assert p.reserve("webhook", "h", 5.0) == 5.0


def test_pacer_keeps_a_telegram_groups_last_slots_of_the_minute_for_urgent() -> None:
    p = Pacer()
    # 20 a minute per group, spread at most 5 in any 15 s, one a second per chat;
    # routine messages stop at 15 a minute ...
    routine = [p.reserve("telegram", "-100", float(t)) for t in range(16)]
    assert routine == [0.0, 1, 2, 3, 4, 15, 16, 17, 18, 19, 30, 31, 32, 33, 34, 60]
    # ... while urgent ones take all 20.
    urgent = [p.reserve("telegram", "-200", 0.0, urgent=True) for _ in range(21)]
    assert urgent == [
        float(t) for t in (*range(5), *range(15, 20), *range(30, 35), *range(45, 50), 60)
    ]
    q = Pacer()
    for t in range(15):
        q.reserve("telegram", "-300", 4.0 * t)  # one every 4 s: never a burst
    assert q.reserve("telegram", "-300", 60.0) == 60.0
    assert q.reserve("telegram", "42", 15.0) == 15.0  # private chats have neither limit


def test_claim_puts_urgent_first_and_batches_digest_channels(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    box.enqueue([msg(1), msg(2), msg(3, priority=URGENT), msg(4, "webhook", "h")], now_ms=0)
    one = box.claim(0, busy=set())
    assert [m.key for m in one if m.channel == "telegram"] == [msg(3).key]  # urgent first
    box.release(m.key for m in one)
    assert {m.state for m in box.messages()} == {"queued"}
    assert all(m.attempts == 0 for m in box.messages())  # a release is no attempt
    together = box.claim(0, busy=set(), batch={"telegram": 10})
    assert [m.key for m in together] == [
        msg(3).key,
        msg(1).key,
        msg(2).key,
        msg(4, "webhook", "h").key,
    ]
    assert [m.priority for m in together[:3]] == [URGENT, NORMAL, NORMAL]


def test_an_outbox_written_before_priorities_opens_and_keeps_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE messages (key TEXT PRIMARY KEY, receiver TEXT NOT NULL, channel TEXT NOT "
        "NULL, address TEXT NOT NULL, reason TEXT NOT NULL, alert_ids TEXT NOT NULL, body TEXT "
        "NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT "
        "NULL, created INTEGER NOT NULL, sent_at INTEGER, last_error TEXT NOT NULL DEFAULT '', "
        "crash_resends INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "INSERT INTO messages VALUES ('k1', 'duty', 'telegram', '42', 'alerts', '[\"al-1\"]', "
        '\'{"title": "t", "text": "x"}\', \'queued\', 0, 0, 0, NULL, \'\', 0)'
    )
    db.commit()
    db.close()
    box = Outbox(path)
    [m] = box.claim(0, busy=set())
    assert (m.key, m.priority, m.alert_ids) == ("k1", NORMAL, ("al-1",))


def test_pacer_spaces_the_next_send_from_the_last_answer() -> None:
    p = Pacer()
    assert p.reserve("telegram", "42", 0.0) == 0.0
    p.done("telegram", "42", 0.4)  # the provider answered 0.4 s later
    assert p.reserve("telegram", "42", 0.5) == 1.4
    p.done("webhook", "h", 3.0)  # no spacing, nothing held
    assert p.reserve("webhook", "h", 3.0) == 3.0
