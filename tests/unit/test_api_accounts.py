"""Accounts: usernames, the password policy, Argon2id hashes and the 0600 store,
with hostile input (empty, huge, not UTF-8, control characters)."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from hypothesis import given
from hypothesis import strategies as st

from api.accounts import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    AccountError,
    AccountExists,
    AccountStore,
    NoSuchAccount,
    Verdict,
    check_username,
    normalise_password,
    password_problem,
    users_file,
)
from api.auth import Role

GOOD = "sóng-lớn trên sông Hậu 7"  # Vietnamese, composed (NFC)
CHEAP = PasswordHasher.from_parameters(CHEAPEST)


@pytest.fixture
def store(tmp_path: Path) -> AccountStore:
    return AccountStore(tmp_path / "var", hasher=CHEAP)


@pytest.mark.parametrize("name", ["an", "nguyen.van.an", "ops-1", "a_b", "x" * 32, "AN"])
def test_good_usernames_are_kept_in_lower_case(name: str) -> None:
    assert check_username(name) == name.lower()


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a",
        "x" * 33,
        "1abc",
        "-abc",
        "an\n",
        "an\x00",
        "a\x1b[31mred",
        "an van",
        "ân",  # not ASCII: names are typed on any keyboard
        "an/..",
        "a" * 100_000,
        "an\udcff",  # a byte that was not UTF-8, as the CLI's surrogateescape hands it over
    ],
)
def test_hostile_usernames_are_refused_without_echoing_control_characters(name: str) -> None:
    with pytest.raises(AccountError) as exc:
        check_username(name)
    message = str(exc.value)
    assert "\n" not in message and "\x00" not in message and "\x1b" not in message
    assert len(message) < 200  # a huge name is cut in the message


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("", "at least 12"),
        ("Xk2!pq", "at least 12"),
        ("x" * (MAX_PASSWORD + 1), f"at most {MAX_PASSWORD}"),
        ("ab\x00cdefghijklmn", "control character"),
        ("ab\ncdefghijklmn", "control character"),
        ("abc\udcffdefghijklmn", "UTF-8"),
        ("my-name-is-nguyen.an!", "username"),
        ("NGUYEN.AN-2024-secure", "username"),
        ("aaaaaaaaaaaaaaaa", "different characters"),
        ("121212121212", "different characters"),
        ("Password2024!", "commonly guessed"),
        ("matkhau@123456", "commonly guessed"),
        ("Qwertyuiop123", "commonly guessed"),
        ("DeltaSense!2026", "commonly guessed"),
        ("123456789012", "commonly guessed"),
        ("987654321098", "commonly guessed"),
    ],
)
def test_the_policy_refuses_weak_passwords_and_never_repeats_them(password: str, why: str) -> None:
    problem = password_problem(password, "nguyen.an")
    assert problem is not None and why in problem
    assert password not in problem or not password


@given(st.text(max_size=300))
def test_any_text_is_a_username_or_a_clear_refusal(name: str) -> None:
    try:
        stored = check_username(name)
    except AccountError as exc:
        assert all(c.isprintable() for c in str(exc))
    else:
        assert stored == name.lower() and stored.isascii() and stored.isprintable()


@given(st.text(max_size=300), st.text(max_size=40))
def test_any_text_gets_a_verdict_from_the_policy_that_never_repeats_it(
    password: str, name: str
) -> None:
    problem = password_problem(password, name)
    if problem is not None:
        assert len(password) < MIN_PASSWORD or password not in problem
    else:
        assert MIN_PASSWORD <= len(normalise_password(password)) <= MAX_PASSWORD


def test_the_policy_accepts_a_long_vietnamese_passphrase_and_a_random_one() -> None:
    assert password_problem(GOOD, "nguyen.an") is None
    assert password_problem("kT9#vQ2!mZ7p", "nguyen.an") is None
    assert password_problem("x" * 5 + "yzwvu" + "12", "an", min_length=12) is None
    assert "at least 20" in (password_problem(GOOD[:15] + "!", "an", min_length=20) or "")


def test_the_store_is_a_private_file_of_argon2id_hashes(store: AccountStore) -> None:
    account = store.add("Nguyen.An", Role.OPERATOR, GOOD)
    assert account.name == "nguyen.an" and account.role is Role.OPERATOR
    path = users_file(store.path.parents[1])
    assert path == store.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert GOOD not in text and "$argon2id$" in text
    assert "password_hash" not in repr(account) and account.password_hash not in repr(account)
    assert set(account.public()) == {
        "name",
        "role",
        "disabled",
        "created_ms",
        "password_changed_ms",
    }
    assert not list(path.parent.glob(f".{path.name}.*[!k]"))  # no temporary file left


def test_add_refuses_a_duplicate_a_bad_role_and_a_weak_password(store: AccountStore) -> None:
    store.add("an", Role.VIEWER, GOOD)
    with pytest.raises(AccountExists):
        store.add("AN", Role.ADMIN, GOOD + "!")
    with pytest.raises(AccountError, match="viewer, operator or admin"):
        store.add("binh", Role.METRICS, GOOD)
    with pytest.raises(AccountError, match="viewer, operator or admin"):
        store.add("binh", "god", GOOD)
    with pytest.raises(AccountError, match="commonly guessed"):
        store.add("binh", Role.VIEWER, "password1234")
    assert [a.name for a in store.list()] == ["an"]


def test_check_accepts_the_password_in_either_unicode_form(store: AccountStore) -> None:
    import unicodedata

    store.add("an", Role.VIEWER, GOOD)
    decomposed = unicodedata.normalize("NFD", GOOD)
    assert decomposed != GOOD
    assert store.check("an", GOOD)[0] is Verdict.OK
    assert store.check("AN", decomposed)[0] is Verdict.OK
    assert store.check("an", GOOD + " ")[0] is Verdict.WRONG


@pytest.mark.parametrize(
    "name", ["", "nobody", "an\x00", "a" * 10_000, "an\udcff", "ân", "'; DROP TABLE--"]
)
@pytest.mark.parametrize("password", ["", GOOD, "\udcff" * 10, "x" * 5000])
def test_check_of_hostile_input_is_a_plain_refusal(
    store: AccountStore, name: str, password: str
) -> None:
    store.add("an", Role.VIEWER, GOOD)
    verdict, account = store.check(name, password)
    assert verdict is Verdict.UNKNOWN and account is None


def test_every_refusal_does_one_verification_with_the_real_parameters(tmp_path: Path) -> None:
    """Unknown name, impossible name, disabled account, wrong password: each runs one
    Argon2 verification, against a hash of the same parameters (the dummy one for a
    name that does not exist), so the time taken does not tell them apart."""
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append(str(hash))
            return super().verify(hash, password)

    hasher = Counting(time_cost=2, memory_cost=19_456, parallelism=1)
    store = AccountStore(tmp_path, hasher=hasher)
    store.add("an", Role.VIEWER, GOOD)
    store.add("binh", Role.VIEWER, GOOD)
    store.set_disabled("binh", True)
    for name, password, verdict in [
        ("an", "wrong-password-1", Verdict.WRONG),
        ("nobody", GOOD, Verdict.UNKNOWN),
        ("not a name\n", GOOD, Verdict.UNKNOWN),
        ("binh", GOOD, Verdict.DISABLED),
        ("an", GOOD, Verdict.OK),
    ]:
        calls.clear()
        assert store.check(name, password)[0] is verdict
        assert len(calls) == 1, name
        assert not hasher.check_needs_rehash(calls[0])  # same parameters as a real hash


def test_an_unknown_user_takes_as_long_as_a_wrong_password(tmp_path: Path) -> None:
    """Measured with the real parameters (default_hasher); the bound is loose, for a
    shared, loaded box: a shortcut for unknown names would be 1000 times faster."""
    store = AccountStore(tmp_path)
    store.add("an", Role.VIEWER, GOOD)
    store.dummy_hash()  # made once, at the first unknown name; not part of the timing

    def timed(name: str) -> float:
        start = time.perf_counter()
        store.check(name, "not-the-password-at-all")
        return time.perf_counter() - start

    wrong = min(timed("an") for _ in range(5))
    unknown = min(timed("nobody") for _ in range(5))
    invalid = min(timed("not a name\n") for _ in range(5))
    print(f"wrong password {wrong * 1000:.0f} ms, unknown {unknown * 1000:.0f} ms, "
          f"impossible name {invalid * 1000:.0f} ms")  # fmt: skip
    assert wrong > 0.01  # real Argon2 work
    assert unknown > wrong / 3 and invalid > wrong / 3


def test_disabled_accounts_are_refused_only_after_the_password_check(store: AccountStore) -> None:
    store.add("an", Role.VIEWER, GOOD)
    before = store.get("an")
    disabled = store.set_disabled("an", True)
    assert before is not None and disabled.stamp != before.stamp  # its sessions end
    assert store.check("an", GOOD)[0] is Verdict.DISABLED
    assert store.check("an", "wrong-password-1")[0] is Verdict.WRONG
    enabled = store.set_disabled("an", False)
    assert enabled.stamp not in (before.stamp, disabled.stamp)
    assert store.check("an", GOOD)[0] is Verdict.OK


def test_passwd_changes_the_hash_and_the_stamp(store: AccountStore) -> None:
    first = store.add("an", Role.VIEWER, GOOD)
    second = store.set_password("an", "a quite different phrase 42")
    assert second.stamp != first.stamp and second.password_hash != first.password_hash
    assert store.check("an", GOOD)[0] is Verdict.WRONG
    assert store.check("an", "a quite different phrase 42")[0] is Verdict.OK
    with pytest.raises(AccountError, match="username"):
        store.set_password("an", "an-is-my-name-forever")
    with pytest.raises(NoSuchAccount):
        store.set_password("binh", GOOD)


def test_remove_and_add_again_makes_a_new_stamp(store: AccountStore) -> None:
    first = store.add("an", Role.VIEWER, GOOD)
    store.remove("an")
    assert store.get("an") is None
    with pytest.raises(NoSuchAccount):
        store.remove("an")
    again = store.add("an", Role.VIEWER, GOOD)
    assert again.stamp != first.stamp  # the old account's sessions do not come back


def test_a_second_process_sees_changes_and_concurrent_writers_lose_nothing(
    tmp_path: Path,
) -> None:
    one = AccountStore(tmp_path, hasher=CHEAP)
    two = AccountStore(tmp_path, hasher=CHEAP)
    one.add("an", Role.VIEWER, GOOD)
    assert two.get("an") is not None
    two.set_disabled("an", True)
    found = one.get("an")
    assert found is not None and found.disabled
    names = [f"user{i:02d}" for i in range(20)]
    threads = [
        threading.Thread(target=AccountStore(tmp_path, hasher=CHEAP).add, args=(n, "viewer", GOOD))
        for n in names
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {a.name for a in one.list()} == {"an", *names}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"users": []}',
        json.dumps({"users": {"an": {"role": "god", "stamp": "s", "hash": "h"}}}).encode(),
        json.dumps({"users": {"AN\n": {"role": "admin", "stamp": "s", "hash": "h"}}}).encode(),
        json.dumps({"users": {"an": {"role": "admin", "stamp": "s"}}}).encode(),
    ],
)
def test_a_broken_or_hostile_file_signs_nobody_in(tmp_path: Path, content: bytes) -> None:
    store = AccountStore(tmp_path, hasher=CHEAP)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    assert store.list() == []
    assert store.check("an", GOOD) == (Verdict.UNKNOWN, None)


def test_a_corrupt_hash_is_a_wrong_password_not_a_crash(store: AccountStore) -> None:
    store.add("an", Role.VIEWER, GOOD)
    raw = json.loads(store.path.read_text())
    raw["users"]["an"]["hash"] = "$argon2id$v=19$m=8,t=1,p=1$broken"
    store.path.write_text(json.dumps(raw))
    assert store.check("an", GOOD)[0] is Verdict.WRONG


def test_a_hash_made_with_weaker_parameters_is_upgraded_at_login(tmp_path: Path) -> None:
    AccountStore(tmp_path, hasher=CHEAP).add("an", Role.VIEWER, GOOD)
    strong = AccountStore(tmp_path, hasher=PasswordHasher(time_cost=2, memory_cost=1024))
    before = strong.get("an")
    assert strong.check("an", GOOD)[0] is Verdict.OK
    after = strong.get("an")
    assert before is not None and after is not None
    assert "m=1024" in after.password_hash and after.stamp == before.stamp
