"""Short-lived, single-use tickets for the alert stream.

A browser's EventSource cannot send an ``Authorization`` header, and a token in
the URL ends up in logs, proxies and the browser's history.  So the console
trades its token (in the header of a POST) for a ticket: opaque, random, good
for one stream opened within ``ttl_s``, and bound to the token (or console session)
it was issued for, so a ticket dies with its token or session.  Tickets live in memory only (a restarted API
forgets them; the console asks for a new one whenever it reconnects).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from api.auth import Credential, Principal

TICKET_TTL_S: Final = 30.0
MAX_OUTSTANDING: Final = 10_000


@dataclass(frozen=True)
class Ticket:
    principal: Principal
    credential: Credential  # the token's or session's it was issued for
    expires_at: float


def _key(ticket: str) -> str:
    # Stored by hash: a memory dump of the table does not hand out usable tickets.
    return hashlib.sha256(ticket.encode()).hexdigest()


class StreamTickets:
    def __init__(
        self,
        *,
        ttl_s: float = TICKET_TTL_S,
        max_outstanding: int = MAX_OUTSTANDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self._max = max_outstanding
        self._clock = clock
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._tickets)

    def _purge(self, now: float) -> None:
        while self._tickets:
            oldest = next(iter(self._tickets.values()))
            if oldest.expires_at > now and len(self._tickets) < self._max:
                break
            self._tickets.popitem(last=False)

    def issue(self, principal: Principal, credential: Credential) -> str:
        now = self._clock()
        self._purge(now)
        ticket = secrets.token_urlsafe(32)
        self._tickets[_key(ticket)] = Ticket(principal, credential, now + self.ttl_s)
        return ticket

    def redeem(self, ticket: str) -> Ticket | None:
        """The ticket's grant, once: a second redeem, or one after expiry, gives None."""
        found = self._tickets.pop(_key(ticket), None)
        if found is None or found.expires_at <= self._clock():
            return None
        return found
