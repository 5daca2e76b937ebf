"""The four ways out: Telegram Bot API, Zalo OA, email (SMTP + STARTTLS), signed webhooks.

Each channel turns one outbox message into one provider call and says what
happened as an :class:`Outcome`: sent, try again (after the provider's
``retry_after`` when it gives one) or give up (the address is wrong).  Base
URLs and hosts come from the settings, so tests aim every channel at local
servers.  Nothing here retries: the outbox worker does, durably.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Final, Protocol

import aiosmtplib
import httpx

from deltasense.settings import Settings
from notifier.zaloauth import ZaloAuth, ZaloAuthError

_LOG = logging.getLogger("notifier.zalo")

SIGNATURE_HEADER: Final = "X-DeltaSense-Signature"
TIMESTAMP_HEADER: Final = "X-DeltaSense-Timestamp"
KEY_HEADER: Final = "Idempotency-Key"
WEBHOOK_TOLERANCE_S: Final = 300
MAX_RETRY_AFTER_S: Final = 3600.0


@dataclass(frozen=True)
class Outcome:
    ok: bool
    retry_after_s: float | None = None  # the provider's own wait, honoured over backoff
    permanent: bool = False
    detail: str = ""
    # The channel, not the message, cannot send now (Zalo's token cannot be refreshed):
    # retried without the attempt limit, so the message waits for the fix.
    keep: bool = False


SENT: Final = Outcome(ok=True)
# Zalo's answer (HTTP 200) when the access token is invalid or has expired.
ZALO_TOKEN_ERRORS: Final = frozenset({-216})
_TOKEN_REFUSED: Final = Outcome(False, detail="zalo: access token invalid or expired")


class Channel(Protocol):
    name: str
    # The receiver can drop a repeat by its key, so a resend after a crash is no duplicate.
    idempotent: bool

    async def send(self, address: str, body: dict[str, Any], key: str) -> Outcome: ...


def _retry_after(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if seconds != seconds or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def _http_outcome(resp: httpx.Response, retry_after: float | None = None) -> Outcome:
    if resp.is_success:
        return SENT
    wait = retry_after if retry_after is not None else _retry_after(resp.headers.get("Retry-After"))
    if resp.status_code == 429 or resp.status_code >= 500:
        return Outcome(False, wait, detail=f"HTTP {resp.status_code}")
    return Outcome(False, permanent=True, detail=f"HTTP {resp.status_code}: {resp.text[:200]}")


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Telegram:
    """``sendMessage`` with an inline keyboard of Acknowledge buttons."""

    name = "telegram"
    idempotent = False  # the Bot API has no idempotency key

    def __init__(self, http: httpx.AsyncClient, base_url: str, token: str) -> None:
        self._http = http
        self.base = f"{base_url.rstrip('/')}/bot{token}"

    async def send(self, address: str, body: dict[str, Any], key: str) -> Outcome:
        payload: dict[str, Any] = {
            "chat_id": int(address),
            "text": body["text"][: TEXT_LIMITS["telegram"]],
            "disable_web_page_preview": True,
        }
        buttons = body.get("buttons") or []
        if buttons:
            payload["reply_markup"] = {
                "inline_keyboard": [
                    [{"text": label, "callback_data": data}] for label, data in buttons
                ]
            }
        try:
            resp = await self._http.post(f"{self.base}/sendMessage", json=payload)
        except httpx.HTTPError as exc:
            return Outcome(False, detail=f"telegram: {type(exc).__name__}")
        data = _json(resp)
        if resp.is_success and data.get("ok") is True:
            return SENT
        params = data.get("parameters")
        wait = _retry_after(params.get("retry_after")) if isinstance(params, dict) else None
        return _http_outcome(resp, wait) if not resp.is_success else Outcome(False, detail="not ok")

    async def get_updates(self, offset: int, timeout_s: int) -> list[Any]:
        resp = await self._http.get(
            f"{self.base}/getUpdates",
            params={
                "offset": offset,
                "timeout": timeout_s,
                "allowed_updates": json.dumps(["callback_query"]),
            },
            timeout=timeout_s + 10,
        )
        data = _json(resp)
        result = data.get("result")
        if not resp.is_success or data.get("ok") is not True or not isinstance(result, list):
            raise httpx.HTTPStatusError("getUpdates refused", request=resp.request, response=resp)
        return result

    async def answer(self, callback_id: str, text: str) -> None:
        await self._http.post(
            f"{self.base}/answerCallbackQuery",
            json={"callback_query_id": callback_id, "text": text},
        )


class Zalo:
    """Zalo Official Account customer-service message (``/v3.0/oa/message/cs``).

    With refreshing set up (:class:`notifier.zaloauth.ZaloAuth`) an answer that the
    access token is invalid or expired refreshes it and sends once more."""

    name = "zalo"
    idempotent = False

    def __init__(self, http: httpx.AsyncClient, base_url: str, auth: ZaloAuth) -> None:
        self._http = http
        self._url = f"{base_url.rstrip('/')}/v3.0/oa/message/cs"
        self.auth = auth

    async def send(self, address: str, body: dict[str, Any], key: str) -> Outcome:
        payload = {
            "recipient": {"user_id": address},
            "message": {"text": body["text"][: TEXT_LIMITS["zalo"]]},
        }
        try:
            token = await self.auth.access_token()
            outcome = await self._post(payload, token)
            if outcome is _TOKEN_REFUSED:
                await self.auth.refresh(token)
                outcome = await self._post(payload, self.auth.tokens.access_token)
        except ZaloAuthError as exc:
            # Logged loudly; the message stays in the outbox and is retried with backoff.
            _LOG.error("%s; zalo messages stay queued until a refresh succeeds", exc)
            return Outcome(False, detail=str(exc), keep=True)
        if outcome is _TOKEN_REFUSED:
            return Outcome(False, detail="zalo refused a freshly refreshed access token")
        return outcome

    async def _post(self, payload: dict[str, Any], token: str) -> Outcome:
        try:
            resp = await self._http.post(self._url, json=payload, headers={"access_token": token})
        except httpx.HTTPError as exc:
            return Outcome(False, detail=f"zalo: {type(exc).__name__}")
        if resp.status_code == 401:
            return _TOKEN_REFUSED
        if not resp.is_success:
            return _http_outcome(resp)
        data = _json(resp)
        if data.get("error") == 0:
            return SENT
        if data.get("error") in ZALO_TOKEN_ERRORS:
            return _TOKEN_REFUSED
        # Zalo answers errors with HTTP 200 and a non-zero code; retried with backoff.
        return Outcome(False, detail=f"zalo error {data.get('error')}: {data.get('message')}")


class Email:
    """SMTP with STARTTLS (aiosmtplib); the key is the Message-ID."""

    name = "email"
    idempotent = True  # a repeated Message-ID is dropped by the mail store / client

    def __init__(self, settings: Settings) -> None:
        self._s = settings

    async def send(self, address: str, body: dict[str, Any], key: str) -> Outcome:
        msg = EmailMessage()
        msg["From"] = self._s.notifier_smtp_from
        msg["To"] = address
        msg["Subject"] = body["title"]
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = f"<{key}@deltasense>"
        text = body["text"]
        if body.get("ack_url"):
            text += f"\n\n{body['ack_label']}: {body['ack_url']}"
        msg.set_content(text)
        s = self._s
        try:
            await aiosmtplib.send(
                msg,
                hostname=s.notifier_smtp_host,
                port=s.notifier_smtp_port,
                start_tls=s.notifier_smtp_starttls,
                username=s.notifier_smtp_username,
                password=s.notifier_smtp_password,
                cert_bundle=str(s.notifier_smtp_ca_file) if s.notifier_smtp_ca_file else None,
                timeout=30,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return Outcome(False, permanent=True, detail=f"smtp: refused {exc.recipients}")
        except aiosmtplib.SMTPResponseException as exc:
            return Outcome(False, permanent=500 <= exc.code < 600, detail=f"smtp {exc.code}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(False, detail=f"smtp: {type(exc).__name__}: {exc}")
        return SENT


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook signature: ``sha256=`` + HMAC-SHA256 of ``{timestamp}.{body}``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, signature: str, body: bytes, now_s: float) -> bool:
    """A receiver's check: right signature, and a timestamp within the tolerance
    (an old captured request cannot be replayed later)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now_s - ts) > WEBHOOK_TOLERANCE_S:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


class Webhook:
    name = "webhook"
    idempotent = True  # receivers drop a repeated Idempotency-Key

    def __init__(self, http: httpx.AsyncClient, secret: str, clock: Any) -> None:
        self._http = http
        self._secret = secret
        self._clock = clock

    async def send(self, address: str, body: dict[str, Any], key: str) -> Outcome:
        raw = json.dumps(
            {"idempotency_key": key, **body.get("webhook", {})}, ensure_ascii=False
        ).encode()
        ts = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(self._secret, ts, raw),
            KEY_HEADER: key,
        }
        try:
            resp = await self._http.post(address, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(False, detail=f"webhook: {type(exc).__name__}")
        return _http_outcome(resp)


# --- rate limits ----------------------------------------------------------------------
# Per channel: (seconds between two messages to one address, messages per second in
# all).  Telegram: about one message a second per chat, 20 a minute per group
# (negative chat ids), 30 a second per bot.
LIMITS: Final[dict[str, tuple[float, float]]] = {
    "telegram": (1.0, 30.0),
    "zalo": (0.5, 10.0),
    "email": (0.0, 20.0),
    "webhook": (0.0, 0.0),  # 0: no channel-wide limit
}
# Telegram groups: 20 messages in any minute.  A budget, not a spacing, so a critical
# can go at once after a quiet spell; the last few slots of the minute are kept for
# urgent messages (criticals, resolves, acks), so a storm's routine digests cannot
# spend the slot a new critical needs.
TELEGRAM_GROUP_BUDGET: Final = (20, 60.0)
URGENT_RESERVE: Final = 5
# ... and at most 5 in any 15 s, so a storm spreads the minute's 20 over the minute
# (a wait of at most ~11 s) instead of spending them in its first 20 s and then
# holding every critical for 40.
TELEGRAM_GROUP_BURST: Final = (5, 15.0)
# Longest text a provider takes in one message; a digest fills up to it.
TEXT_LIMITS: Final[dict[str, int]] = {"telegram": 4096, "zalo": 2000}


class Pacer:
    """Reserves send slots so no address or channel exceeds its provider's rate (pure;
    times are whatever clock the caller passes)."""

    def __init__(self, limits: dict[str, tuple[float, float]] = LIMITS) -> None:
        self._limits = limits
        self._next: dict[tuple[str, str], float] = {}
        self._recent: dict[str, list[float]] = {}  # reserved times per channel, last second+
        self._minute: dict[str, list[float]] = {}  # Telegram group → its slots, last minute+

    def reserve(self, channel: str, address: str, now: float, *, urgent: bool = False) -> float:
        """The time at which this message may go (≥ now); the slot is taken."""
        spacing, per_second = self._limits.get(channel, (0.0, 0.0))
        at = max(now, self._next.get((channel, address), now))
        if channel == "telegram" and address.startswith("-"):
            at = self._group_slot(address, at, now, urgent)
        if per_second > 0:
            recent = [t for t in self._recent.get(channel, []) if t > now - 1.0]
            while True:
                inside = sorted(t for t in recent if at - 1.0 < t <= at)
                if len(inside) < per_second:
                    break
                at = inside[0] + 1.0
            recent.append(at)
            self._recent[channel] = recent
        self._next[(channel, address)] = at + spacing
        return at

    def _group_slot(self, group: str, at: float, now: float, urgent: bool) -> float:
        count, window = TELEGRAM_GROUP_BUDGET
        limits = [
            (count if urgent else count - URGENT_RESERVE, window),
            TELEGRAM_GROUP_BURST,
        ]
        longest = max(w for _, w in limits)
        slots = [t for t in self._minute.get(group, []) if t > now - longest]
        moved = True
        while moved:  # until ``at`` fits every window at once
            moved = False
            for allowed, span in limits:
                inside = sorted(t for t in slots if at - span < t <= at)
                if len(inside) >= allowed:
                    at = inside[len(inside) - allowed] + span
                    moved = True
        slots.append(at)
        self._minute[group] = slots
        return at

    def waiting(self, now: float) -> dict[tuple[str, str], float]:
        """Addresses whose next send slot is still ahead, and when it opens.  The sender
        leaves their messages in the outbox until then, so what goes at the slot is
        whatever is due at that moment (a critical that arrived meanwhile included)."""
        ahead = {k: t for k, t in self._next.items() if t > now}
        if len(ahead) < len(self._next):  # forget the past (bounded by active addresses)
            self._next = dict(ahead)
        return ahead

    def done(self, channel: str, address: str, now: float) -> None:
        """A send to this address has just been answered: the next one waits a full
        spacing from now.  The provider counts arrivals, and one request can arrive
        late (a slow network) and the next one on time; spacing from the answer
        keeps even those a spacing apart."""
        spacing, _ = self._limits.get(channel, (0.0, 0.0))
        if spacing > 0:
            key = (channel, address)
            self._next[key] = max(self._next.get(key, now), now + spacing)

    def hold(self, channel: str, address: str, until: float) -> None:
        """Nothing to this address before ``until`` (a provider's retry_after)."""
        key = (channel, address)
        self._next[key] = max(self._next.get(key, until), until)
