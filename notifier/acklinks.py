"""Signed, expiring, one-use ack links for email (pure; the outbox remembers uses).

Token: ``base64url(alert_id|receiver|expires_s|nonce) . base64url(HMAC-SHA256[:16])``.
The secret never leaves the notifier; a changed byte, a foreign secret or an
expired time is refused with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

MAX_TOKEN: Final = 400


class AckLinkError(ValueError):
    """The link is malformed, forged or expired."""


@dataclass(frozen=True)
class AckClaim:
    alert_id: str
    receiver: str
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sig(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:16])


def make_token(secret: str, alert_id: str, receiver: str, expires_s: int, nonce: str = "") -> str:
    payload = _b64(f"{alert_id}|{receiver}|{expires_s}|{nonce or secrets.token_hex(8)}".encode())
    return f"{payload}.{_sig(secret, payload)}"


def read_token(secret: str, token: str, now_s: float) -> AckClaim:
    if not token or len(token) > MAX_TOKEN or token.count(".") != 1:
        raise AckLinkError("malformed link")
    payload, sig = token.split(".")
    if not hmac.compare_digest(sig.encode(), _sig(secret, payload).encode()):
        raise AckLinkError("bad signature")
    try:
        alert_id, receiver, expires, nonce = _unb64(payload).decode().split("|")
        exp = int(expires)
    except (ValueError, UnicodeDecodeError):
        raise AckLinkError("malformed link") from None
    if now_s >= exp:
        raise AckLinkError("link expired")
    return AckClaim(alert_id, receiver, exp, nonce)
