"""Bearer-token authentication: the bootstrap admin token and ``tokens.json``.

Pure functions over files in ``var_dir`` so the CLI can manage tokens without
the API running.  Only SHA-256 hashes of extra tokens are stored; the admin
token is either configured (``DELTASENSE_ADMIN_TOKEN``) or generated once into
``{var_dir}/admin-token`` (mode 0600).  Comparisons are constant-time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from deltasense.access import admin_token_file
from deltasense.settings import SECRET_SETTINGS, weak_secret

_LOG = logging.getLogger(__name__)

LEGACY_ADMIN_TOKEN_FILE: Final = "admin-token"  # before var/secrets/
TOKENS_FILE: Final = "tokens.json"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")


class Role(StrEnum):
    METRICS = "metrics"  # scrape /metrics, nothing else
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANK: Final = {Role.METRICS: -1, Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
METRICS_ROLES: Final = frozenset({Role.METRICS, Role.ADMIN})


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a token's name, or an account's (``via="session"``)."""

    name: str
    role: Role
    via: str = "token"


@dataclass(frozen=True)
class Credential:
    """What a request was authenticated with, kept so that a long-lived stream (and a
    stream ticket) can check it is still good: a token's SHA-256 or a session's."""

    kind: str  # "token" | "session"
    digest: str


class AuthError(Exception):
    """Authentication failed (401), was refused for now (429, after ``retry_after``
    seconds) or the role does not suffice (403); mapped to HTTP by the app."""

    def __init__(self, status: int, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class WeakTokenError(ValueError):
    """The admin token file holds a placeholder or short token."""


def ensure_admin_token(var_dir: Path, configured: str | None, *, allow_weak: bool = False) -> str:
    """The bootstrap admin token: configured (checked by the settings), else read
    from or generated into ``var/secrets/admin-token`` (a token generated before into
    ``var/admin-token`` moves there).  A weak token in the file is refused unless
    ``allow_weak`` (the dev flag), as a configured one would be."""
    if configured:
        return configured
    path = admin_token_file(var_dir, create_dir=True)
    legacy = var_dir / LEGACY_ADMIN_TOKEN_FILE
    if legacy.exists() and not path.exists():
        os.replace(legacy, path)
        os.chmod(path, 0o600)
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        problem = weak_secret("admin_token", token, SECRET_SETTINGS["admin_token"])
        if token and problem and not allow_weak:
            raise WeakTokenError(
                f"{path} holds a weak admin token: it {problem.split(') ', 1)[-1]}; "
                "delete the file to have a "
                "new one generated, or set DELTASENSE_DEV_INSECURE=1 for a throwaway dev stack"
            )
        if token:
            return token
        _LOG.warning("%s is empty; generating a new admin token", path)
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    _LOG.warning("generated an admin token into %s", path)
    return token


def _parse_tokens(text: str) -> dict[str, Principal]:
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("top level must be a JSON object")
    out: dict[str, Principal] = {}
    for digest, entry in raw.items():
        try:
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError("key is not a sha256 hex digest")
            out[digest] = Principal(name=str(entry["name"]), role=Role(entry["role"]))
        except (KeyError, TypeError, ValueError) as exc:
            _LOG.warning("tokens.json: skipping entry %.12s…: %s", digest, exc)
    return out


def load_tokens(var_dir: Path) -> dict[str, Principal]:
    """Hash → principal from ``tokens.json``; a missing or broken file gives none."""
    path = var_dir / TOKENS_FILE
    try:
        return _parse_tokens(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _LOG.error("cannot read %s, ignoring extra tokens: %s", path, exc)
        return {}


def _dump_tokens(tokens: dict[str, Principal]) -> str:
    body = {h: {"name": p.name, "role": p.role.value} for h, p in sorted(tokens.items())}
    return json.dumps(body, indent=2) + "\n"


def add_token(var_dir: Path, name: str, role: Role | str) -> str:
    """Create a token for ``name`` with ``role``; returns the plaintext (shown once)."""
    role_v = Role(role)
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"token name {name!r} must match {_NAME_RE.pattern}")
    tokens = load_tokens(var_dir)
    token = secrets.token_urlsafe(32)
    tokens[hash_token(token)] = Principal(name=name, role=role_v)
    write_private(var_dir / TOKENS_FILE, _dump_tokens(tokens))
    return token


def remove_tokens(var_dir: Path, name: str) -> int:
    """Revoke every token named ``name``; returns how many were removed."""
    tokens = load_tokens(var_dir)
    kept = {h: p for h, p in tokens.items() if p.name != name}
    removed = len(tokens) - len(kept)
    if removed:
        write_private(var_dir / TOKENS_FILE, _dump_tokens(kept))
    return removed


class TokenStore:
    """Resolves bearer tokens; re-reads ``tokens.json`` when it changes on disk."""

    def __init__(self, var_dir: Path, admin_token: str) -> None:
        self._var_dir = var_dir
        self._admin_hash = hash_token(admin_token)
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[str, Principal] = {}

    def _refresh(self) -> None:
        try:
            st = (self._var_dir / TOKENS_FILE).stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._tokens = load_tokens(self._var_dir) if stamp else {}
            self._stamp = stamp

    def authenticate(self, token: str) -> Principal | None:
        return self.lookup(hash_token(token))

    def lookup(self, digest: str) -> Principal | None:
        """The principal of a token by its SHA-256, as of now (a removed token gives
        None: open streams re-check this to close when their token is revoked)."""
        self._refresh()
        found: Principal | None = None
        # Compare against every entry so timing does not depend on which one matches.
        if hmac.compare_digest(digest, self._admin_hash):
            found = Principal(name="admin", role=Role.ADMIN)
        for stored, principal in self._tokens.items():
            if hmac.compare_digest(digest, stored) and found is None:
                found = principal
        return found

    def authorize(self, token: str | None, required: Role) -> Principal:
        """The principal for ``token`` if its role suffices, else :class:`AuthError`."""
        if not token:
            raise AuthError(401, "missing bearer token")
        principal = self.authenticate(token)
        if principal is None:
            raise AuthError(401, "invalid bearer token")
        require_role(principal, required)
        return principal


def require_role(principal: Principal, required: Role) -> None:
    if required is Role.METRICS:
        if principal.role not in METRICS_ROLES:
            raise AuthError(
                403,
                f"requires role metrics or admin ({_holder(principal)} has {principal.role.value})",
            )
    elif not principal.role.allows(required):
        raise AuthError(
            403, f"requires role {required.value} ({_holder(principal)} has {principal.role.value})"
        )


def _holder(principal: Principal) -> str:
    return "account" if principal.via == "session" else "token"
