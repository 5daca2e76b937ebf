"""Security headers on every response: routes, errors, static files, even a 500.

A pure-ASGI middleware (SSE-safe: it only touches ``http.response.start``).  It
sits inside Starlette's outermost error middleware, so for an exception that
escapes the app it sends the 500 itself, with the headers, and re-raises for the
server to log.
"""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, body


# The console is static files of our own: no inline script or style, no third party;
# only map tile images may come from the one host of a configured `console_tile_url`.
def content_security_policy(tile_url: str | None = None) -> str:
    images = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url)
        images += f" {parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    )


# ReDoc styles itself with styled-components, which inserts <style> elements: its page,
# and only it, may use inline styles.  Scripts stay 'self' everywhere.
INLINE_STYLE_PAGES: Final = frozenset({"/redoc"})


def with_inline_styles(csp: str) -> str:
    return csp.replace("style-src 'self';", "style-src 'self' 'unsafe-inline';")


CONTENT_SECURITY_POLICY: Final = content_security_policy()
_INTERNAL_ERROR: Final = json.dumps(body(500, "internal error; it has been logged")).encode()
HSTS: Final = "max-age=31536000; includeSubDomains"

SECURITY_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_NAMES: Final = frozenset(name for name, _ in SECURITY_HEADERS) | {b"strict-transport-security"}


def security_headers(https: bool, csp: str = CONTENT_SECURITY_POLICY) -> list[tuple[bytes, bytes]]:
    """The headers every response carries; HSTS only when served over HTTPS (a
    browser ignores it over plain HTTP, and it must never pin a plain-HTTP dev host)."""
    out = [(b"content-security-policy", csp.encode())]
    out += [h for h in SECURITY_HEADERS if h[0] != b"content-security-policy"]
    if https:
        out.append((b"strict-transport-security", HSTS.encode()))
    return out


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, tile_url: str | None = None) -> None:
        self.app = app
        self.csp = content_security_policy(tile_url)
        self.csp_inline_styles = with_inline_styles(self.csp)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.csp_inline_styles if scope.get("path") in INLINE_STYLE_PAGES else self.csp
        extra = security_headers(scope.get("scheme") == "https", csp)
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message = {**message, "headers": headers + extra}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            if not started:
                await send_wrapper(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", PROBLEM_JSON.encode())],
                    }
                )
                await send_wrapper({"type": "http.response.body", "body": _INTERNAL_ERROR})
            raise
