"""Named operator accounts: a username, a role, an Argon2id password hash.

An admin makes them (``deltasense users …`` or ``/api/v1/admin/users``); people
sign in to the console with them (api/sessions.py holds the sessions).  The
accounts live in one JSON file, ``var/secrets/users.json`` (0600 in the 0700
``var/secrets/``), replaced atomically; changes take a lock file so the CLI and
the API cannot lose each other's writes.  The API re-reads the file when it
changes on disk, so a CLI ``disable`` or ``passwd`` reaches it at once.

Every change that must end an account's sessions (a new password, disable,
remove) gives the account a new random ``stamp``; a session carries the stamp it
was made with and is void once they differ (an account removed and made again
gets a new stamp too, so the old one's sessions do not come back).

Passwords are normalised to Unicode NFC before hashing (a Vietnamese password
typed on two keyboards may arrive composed or decomposed) and checked by
:func:`password_problem`.  :meth:`AccountStore.check` takes the same time for an
unknown user as for a wrong password: it verifies against a dummy hash.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import re
import secrets
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from api.auth import Role, write_private
from deltasense.runtime import now_ms

_LOG = logging.getLogger(__name__)

USERS_FILE: Final = "users.json"
USERNAME_RE: Final = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 256  # characters; Argon2 takes any length, a limit keeps hashing cheap
ACCOUNT_ROLES: Final = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
# Argon2id with 19 MiB, 2 passes, 1 lane: OWASP's Password Storage Cheat Sheet's first
# configuration.  argon2-cffi's default (64 MiB, 3 passes, 4 lanes) took 0.5–1.4 s a
# login on this project's 2-core box under load; this ~0.1 s.  A hash records its
# parameters, and one made with others is re-made at the next login.
ARGON2_TIME_COST: Final = 2
ARGON2_MEMORY_KIB: Final = 19_456
ARGON2_LANES: Final = 1


def default_hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_LANES
    )


# Words whose passwords are guessed first, however they are dressed up with digits and
# signs ("Password2024!", "matkhau@123"): compared with what remains of a password once
# digits and signs are taken out.  Short on purpose; the length rule does the rest.
_WEAK_WORDS: Final = frozenset(
    {
        "password", "passw", "pass", "passwd", "matkhau", "mk", "admin", "administrator",
        "root", "user", "login", "welcome", "letmein", "iloveyou", "qwerty", "qwertyuiop",
        "asdfgh", "asdfghjkl", "zxcvbnm", "abc", "abcd", "abcdef", "abcdefgh", "secret",
        "changeme", "default", "monkey", "dragon", "football", "baseball", "sunshine",
        "princess", "master", "shadow", "trustno", "deltasense", "baclieu", "vietnam",
        "operator", "viewer", "xinchao", "anhyeuem", "emyeuanh", "test", "guest",
    }
)  # fmt: skip
_MIN_DISTINCT: Final = 5  # "aaaaaaaaaaaa", "121212121212"


class AccountError(ValueError):
    """A request about accounts refused as it stood: the message is safe to show."""


class NoSuchAccount(AccountError):
    pass


class AccountExists(AccountError):
    pass


def _shown(text: str, limit: int = 40) -> str:
    """``text`` for a message: cut, control characters escaped (no terminal tricks)."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def check_username(name: str) -> str:
    """The username as stored (lower case), or :class:`AccountError`."""
    if not isinstance(name, str) or not name:
        raise AccountError("a username is required")
    lowered = name.lower() if name.isascii() else name
    if not USERNAME_RE.fullmatch(lowered):
        raise AccountError(
            f"username {_shown(name)} must be 2–32 characters: a letter a-z first, "
            "then a-z, 0-9, '.', '_' or '-'"
        )
    return lowered


def normalise_password(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def password_problem(password: str, username: str, *, min_length: int = MIN_PASSWORD) -> str | None:
    """Why ``password`` may not be set for ``username``, or None.  Never repeats it."""
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8 (CLI input)
        return "the password is not valid UTF-8 text"
    password = normalise_password(password)
    if any(unicodedata.category(c) == "Cc" for c in password):
        return "the password contains a control character"
    if len(password) < min_length:
        return f"the password must have at least {min_length} characters"
    if len(password) > MAX_PASSWORD:
        return f"the password must have at most {MAX_PASSWORD} characters"
    lowered = password.casefold()
    if username and username.casefold() in lowered:
        return "the password must not contain the username"
    if len(set(lowered)) < _MIN_DISTINCT:
        return f"the password must have at least {_MIN_DISTINCT} different characters"
    core = re.sub(r"[\W\d_]+", "", lowered)
    if core in _WEAK_WORDS or (not core and _is_run(lowered)):
        return "the password is a commonly guessed one"
    return None


def _is_run(text: str) -> bool:
    """Digits only, counting up or down by one: 123456789012, 987654321098."""
    steps = {(ord(b) - ord(a)) % 10 for a, b in itertools.pairwise(text)}
    return text.isdigit() and (steps <= {1} or steps <= {9})


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    disabled: bool = False
    created_ms: int = 0
    password_changed_ms: int = 0
    stamp: str = ""  # new on every password change, disable and remove: ends sessions
    password_hash: str = field(default="", repr=False)

    def public(self) -> dict[str, Any]:
        """What an admin may see: everything but the hash."""
        return {
            "name": self.name,
            "role": self.role.value,
            "disabled": self.disabled,
            "created_ms": self.created_ms,
            "password_changed_ms": self.password_changed_ms,
        }


class Verdict(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown_user"
    WRONG = "wrong_password"
    DISABLED = "disabled"


def _new_stamp() -> str:
    return secrets.token_hex(8)


def _parse(text: str) -> dict[str, Account]:
    raw = json.loads(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("users"), dict):
        raise ValueError('top level must be {"users": {…}}')
    out: dict[str, Account] = {}
    for name, entry in raw["users"].items():
        try:
            role = Role(entry["role"])
            if role not in ACCOUNT_ROLES or check_username(name) != name:
                raise ValueError("bad name or role")
            out[name] = Account(
                name=name,
                role=role,
                disabled=bool(entry.get("disabled", False)),
                created_ms=int(entry.get("created_ms", 0)),
                password_changed_ms=int(entry.get("password_changed_ms", 0)),
                stamp=str(entry["stamp"]),
                password_hash=str(entry["hash"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            _LOG.warning("%s: skipping account %s: %s", USERS_FILE, _shown(str(name)), exc)
    return out


def _dump(accounts: dict[str, Account]) -> str:
    users = {
        a.name: {
            "role": a.role.value,
            "disabled": a.disabled,
            "created_ms": a.created_ms,
            "password_changed_ms": a.password_changed_ms,
            "stamp": a.stamp,
            "hash": a.password_hash,
        }
        for a in sorted(accounts.values(), key=lambda a: a.name)
    }
    return json.dumps({"version": 1, "users": users}, indent=2) + "\n"


def users_file(var_dir: Path) -> Path:
    return var_dir.resolve() / "secrets" / USERS_FILE


class AccountStore:
    """Accounts of one ``var`` directory.  Reads are cached until the file changes;
    changes re-read under the lock, so concurrent writers (CLI, API) do not lose
    each other's.  ``hasher`` is :func:`default_hasher` unless a test passes a
    cheaper one."""

    def __init__(
        self,
        var_dir: Path,
        *,
        hasher: PasswordHasher | None = None,
        min_length: int = MIN_PASSWORD,
    ) -> None:
        self.path = users_file(var_dir)
        self.hasher = hasher or default_hasher()
        self.min_length = min_length
        self._stamp: tuple[int, int, int] | None = None
        self._accounts: dict[str, Account] = {}
        self._dummy: str | None = None

    # --- reading ------------------------------------------------------------------------
    def _load(self) -> dict[str, Account]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._accounts = None, {}
            return self._accounts
        except OSError as exc:
            _LOG.error("cannot read %s, no account may sign in: %s", self.path, exc)
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            try:
                self._accounts = _parse(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # fail closed: nobody signs in
                _LOG.error("cannot read %s, no account may sign in: %s", self.path, exc)
                self._accounts = {}
            self._stamp = stamp
        return self._accounts

    def get(self, name: str) -> Account | None:
        return self._load().get(name)

    def list(self) -> list[Account]:
        return sorted(self._load().values(), key=lambda a: a.name)

    # --- changing -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Account]]:
        """The accounts as on disk, under an exclusive lock; written back on exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        lock = self.path.with_name(f".{USERS_FILE}.lock")
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._stamp = None  # read afresh: another process may have written
            accounts = dict(self._load())
            yield accounts
            write_private(self.path, _dump(accounts))
            self._stamp = None
        finally:
            os.close(fd)  # releases the lock

    def _hash(self, name: str, password: str) -> str:
        problem = password_problem(password, name, min_length=self.min_length)
        if problem:
            raise AccountError(problem)
        return self.hasher.hash(normalise_password(password))

    def add(self, name: str, role: Role | str, password: str) -> Account:
        name = check_username(name)
        try:
            role_v = Role(role)
        except ValueError:
            role_v = None
        if role_v not in ACCOUNT_ROLES:
            raise AccountError(f"role {_shown(str(role))} must be viewer, operator or admin")
        digest = self._hash(name, password)  # before the lock: it takes a while
        with self._locked() as accounts:
            if name in accounts:
                raise AccountExists(f"account {name!r} exists already")
            now = now_ms()
            account = Account(name, role_v, False, now, now, _new_stamp(), digest)
            accounts[name] = account
        return account

    def _change(self, name: str, **changes: Any) -> Account:
        name = check_username(name)
        with self._locked() as accounts:
            if name not in accounts:
                raise NoSuchAccount(f"no account {name!r}")
            account = accounts[name] = replace(accounts[name], **changes)
        return account

    def set_password(self, name: str, password: str) -> Account:
        name = check_username(name)
        digest = self._hash(name, password)
        return self._change(
            name, password_hash=digest, password_changed_ms=now_ms(), stamp=_new_stamp()
        )

    def set_disabled(self, name: str, disabled: bool) -> Account:
        # A new stamp on enable too: sessions from before a disable stay void after it.
        return self._change(name, disabled=disabled, stamp=_new_stamp())

    def remove(self, name: str) -> Account:
        name = check_username(name)
        with self._locked() as accounts:
            if name not in accounts:
                raise NoSuchAccount(f"no account {name!r}")
            return accounts.pop(name)

    # --- signing in ---------------------------------------------------------------------
    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self.hasher.verify(digest, password)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError) as exc:
            _LOG.error("an account's password hash cannot be checked: %s", exc)
            return False

    def dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(24))
        return self._dummy

    def check(self, name: str, password: str) -> tuple[Verdict, Account | None]:
        """Whether ``password`` signs ``name`` in.  One Argon2 verification whatever
        the case (unknown name, disabled account, wrong password), so the time taken
        says nothing about which it was.  Blocking (~0.1 s): run it in a thread."""
        try:
            key = check_username(name)
        except AccountError:
            key = None
        account = self.get(key) if key else None
        password = normalise_password(password) if _is_text(password) else ""
        ok = self._verify(account.password_hash if account else self.dummy_hash(), password)
        if account is None:
            return Verdict.UNKNOWN, None
        if not ok:
            return Verdict.WRONG, account
        if account.disabled:
            return Verdict.DISABLED, account
        self._maybe_rehash(account, password)
        return Verdict.OK, account

    def _maybe_rehash(self, account: Account, password: str) -> None:
        """Argon2 parameters raised since the hash was made: store a new hash (the
        stamp stays, so the account's sessions do not end)."""
        try:
            if not self.hasher.check_needs_rehash(account.password_hash):
                return
            digest = self.hasher.hash(password)
            with self._locked() as accounts:
                if accounts.get(account.name, None) == account:
                    accounts[account.name] = replace(account, password_hash=digest)
        except (OSError, InvalidHashError) as exc:
            _LOG.warning("could not rehash the password of %s: %s", account.name, exc)


def _is_text(password: object) -> bool:
    if not isinstance(password, str):
        return False
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
