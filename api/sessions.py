"""Console sessions: a random id in an HttpOnly cookie, the rest on the server.

A session is made by a login (``POST /api/v1/session``) and ends at logout, after
``idle_s`` without a request, ``max_s`` after the login whatever happens, or when
its account's ``stamp`` changes (a new password, disable, remove: checked on every
request by api/deps.py).  The id is 256 random bits; the table holds only its
SHA-256, so a dump of memory hands out no usable cookie.  Memory only: a restarted
API forgets every session and people sign in again.  Bounded: at most
``max_sessions``; when full, the least recently used one is dropped.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

IDLE_S: Final = 1800.0
MAX_S: Final = 12 * 3600.0
MAX_SESSIONS: Final = 10_000


@dataclass
class Session:
    account: str
    stamp: str  # the account's stamp at login
    created: float
    last_seen: float


def session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    def __init__(
        self,
        *,
        idle_s: float = IDLE_S,
        max_s: float = MAX_S,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_s <= 0 or max_s <= 0 or max_sessions < 1:
            raise ValueError("idle_s, max_s and max_sessions must be positive")
        self.idle_s = idle_s
        self.max_s = max_s
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, account: str, stamp: str) -> str:
        """A new session; returns its id (the cookie's value, never stored)."""
        now = self._clock()
        while len(self._sessions) >= self._max:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_digest(session_id)] = Session(account, stamp, now, now)
        return session_id

    def _live(self, digest: str, now: float) -> Session | None:
        found = self._sessions.get(digest)
        if found is None:
            return None
        if now - found.last_seen >= self.idle_s or now - found.created >= self.max_s:
            del self._sessions[digest]
            return None
        return found

    def get(self, digest: str, *, touch: bool = True) -> Session | None:
        """The session by its id's SHA-256 if it has not expired; ``touch`` counts
        this as activity (a stream's re-check does not)."""
        now = self._clock()
        found = self._live(digest, now)
        if found is not None and touch:
            found.last_seen = now
            self._sessions.move_to_end(digest)
        return found

    def expires_in(self, session: Session) -> float:
        """Seconds until ``session`` ends if nothing more happens."""
        now = self._clock()
        return max(0.0, min(session.last_seen + self.idle_s, session.created + self.max_s) - now)

    def revoke(self, digest: str) -> bool:
        return self._sessions.pop(digest, None) is not None

    def revoke_account(self, account: str) -> int:
        """End every session of ``account``; how many there were."""
        mine = [d for d, s in self._sessions.items() if s.account == account]
        for digest in mine:
            del self._sessions[digest]
        return len(mine)
