"""The Zalo OA access token, kept fresh with the single-use refresh token.

An OA access token lasts about 25 h.  A new one comes from Zalo's OAuth endpoint:
``POST {oauth}/v4/oa/access_token``, a form with ``refresh_token``, ``app_id`` and
``grant_type=refresh_token``, the app's secret in a ``secret_key`` header; the answer
carries a new access token, ``expires_in`` (seconds, sometimes as a string) and a
new refresh token.  A refresh token works once, so the new pair is written to the
token file (0600, atomically, fsynced) before it is used: a restart goes on with it.

Refreshes happen an hour before the known expiry and whenever Zalo answers that
the access token is invalid; concurrent senders share one refresh.  Tokens never
appear in a log line or an error message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from deltasense.dynsec import write_private
from deltasense.settings import Settings

_LOG = logging.getLogger("notifier.zalo")
TOKEN_PATH: Final = "/v4/oa/access_token"
REFRESH_MARGIN_S: Final = 3600.0  # refresh this long before the access token ends
RETRY_EARLY_S: Final = 60.0  # a failed early refresh is tried again after this
MIN_LIFETIME_S: Final = 60.0
MAX_LIFETIME_S: Final = 7 * 86_400.0


class ZaloAuthError(RuntimeError):
    """No usable access token: the refresh failed (the message says why, no tokens)."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float | None  # epoch s; None: unknown (a token given in the settings)
    seed: str  # digest of the settings' refresh token this chain started from


def token_path(settings: Settings) -> Path:
    return settings.notifier_zalo_token_file or settings.var_dir / "notifier" / "zalo-tokens.json"


def can_refresh(settings: Settings) -> bool:
    """Refreshing is set up: the app's id and secret, and a refresh token to start
    from (in the settings, or kept in the token file by an earlier run)."""
    return bool(
        settings.notifier_zalo_app_id
        and settings.notifier_zalo_secret_key
        and (settings.notifier_zalo_refresh_token or token_path(settings).exists())
    )


def setup_problem(settings: Settings) -> str | None:
    """What is missing from a partial refresh setup (None: whole, or none of it)."""
    parts = {
        "DELTASENSE_NOTIFIER_ZALO_APP_ID": settings.notifier_zalo_app_id,
        "DELTASENSE_NOTIFIER_ZALO_SECRET_KEY": settings.notifier_zalo_secret_key,
    }
    wanted = settings.notifier_zalo_refresh_token or any(parts.values())
    missing = [name for name, value in parts.items() if not value]
    if wanted and missing:
        return f"refreshing the Zalo access token needs {' and '.join(missing)}"
    if wanted and not can_refresh(settings):
        return "refreshing the Zalo access token needs DELTASENSE_NOTIFIER_ZALO_REFRESH_TOKEN"
    return None


def _digest(token: str | None) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16] if token else ""


def _lifetime(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if MIN_LIFETIME_S <= seconds <= MAX_LIFETIME_S else None


class ZaloAuth:
    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, clock: Callable[[], float]
    ) -> None:
        self._http = http
        self._clock = clock
        self._url = settings.notifier_zalo_oauth_url.rstrip("/") + TOKEN_PATH
        self._app_id = settings.notifier_zalo_app_id or ""
        self._secret = settings.notifier_zalo_secret_key or ""
        self._path = token_path(settings)
        self._lock = asyncio.Lock()
        self._early_failed_at = -RETRY_EARLY_S
        self.refreshes = 0
        self.failures = 0
        self.tokens = self._initial(settings)

    def _initial(self, s: Settings) -> Tokens:
        seed = _digest(s.notifier_zalo_refresh_token)
        if not (self._app_id and self._secret):
            # Refreshing is not set up: the configured token as it is, no kept file.
            return Tokens(s.notifier_zalo_token or "", "", None, seed)
        kept = self._read()
        # The file holds the latest of the chain, unless the settings now hold a
        # different refresh token (the OA was authorised again): then that one.
        if kept is not None and (not s.notifier_zalo_refresh_token or kept.seed == seed):
            return kept
        return Tokens(s.notifier_zalo_token or "", s.notifier_zalo_refresh_token or "", None, seed)

    def _read(self) -> Tokens | None:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            return Tokens(
                access_token=str(data["access_token"]),
                refresh_token=str(data["refresh_token"]),
                expires_at=None if data.get("expires_at") is None else float(data["expires_at"]),
                seed=str(data.get("seed", "")),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ZaloAuthError(
                f"{self._path}: not a Zalo token file ({type(exc).__name__})"
            ) from exc

    async def access_token(self) -> str:
        """A token to send with: refreshed first if it ends within the margin (a
        failed early refresh keeps the old token while it lasts)."""
        t = self.tokens
        now = self._clock()
        early = t.expires_at is not None and now >= t.expires_at - REFRESH_MARGIN_S
        if not t.access_token or (early and now - self._early_failed_at >= RETRY_EARLY_S):
            try:
                await self.refresh(t.access_token)
            except ZaloAuthError:
                if not t.access_token or (t.expires_at is not None and now >= t.expires_at):
                    raise
                self._early_failed_at = now
        return self.tokens.access_token

    async def refresh(self, stale: str) -> None:
        """Replace ``stale`` (the token Zalo refused or that is ending).  If another
        sender already replaced it, nothing to do."""
        async with self._lock:
            if self.tokens.access_token != stale:
                return
            self.tokens = await self._exchange(self.tokens)

    async def _exchange(self, old: Tokens) -> Tokens:
        if not old.refresh_token:
            self.failures += 1
            raise ZaloAuthError("zalo access token refused and no refresh token is configured")
        try:
            resp = await self._http.post(
                self._url,
                data={
                    "refresh_token": old.refresh_token,
                    "app_id": self._app_id,
                    "grant_type": "refresh_token",
                },
                headers={"secret_key": self._secret},
            )
        except httpx.HTTPError as exc:
            self.failures += 1
            raise ZaloAuthError(f"zalo token refresh: {type(exc).__name__}") from None
        try:
            data = resp.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        access, refresh = data.get("access_token"), data.get("refresh_token")
        if not resp.is_success or not isinstance(access, str) or not isinstance(refresh, str):
            self.failures += 1
            # Zalo names the problem in error / error_name / error_description.
            why = " ".join(
                str(data[k])[:120]
                for k in ("error", "error_name", "error_description")
                if k in data
            )
            raise ZaloAuthError(
                f"zalo token refresh refused: HTTP {resp.status_code} {self._redact(why)}".rstrip()
            )
        lifetime = _lifetime(data.get("expires_in"))
        fresh = Tokens(
            access_token=access,
            refresh_token=refresh,
            expires_at=None if lifetime is None else self._clock() + lifetime,
            seed=old.seed,
        )
        # Kept before use: the old refresh token is spent now.
        write_private(self._path, json.dumps(asdict(fresh)).encode())
        self.refreshes += 1
        _LOG.info(
            "zalo access token refreshed (valid %s), kept in %s",
            "for an unknown time" if lifetime is None else f"{lifetime / 3600:.1f} h",
            self._path,
        )
        return fresh

    def _redact(self, text: str) -> str:
        for secret in (self.tokens.access_token, self.tokens.refresh_token, self._secret):
            if secret:
                text = text.replace(secret, "***")
        return text
