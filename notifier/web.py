"""The notifier's own small HTTP endpoint: email ack links, delivery state, health.

``/deliveries`` (what was sent, to whom, how it went; paged) and ``/routing/status``
(which routing file version is in use, or why a new one was refused) take the
admin token: the API reads them.  Addresses leave this process masked only.

Ack links are served here, not by the API, because the notifier holds what
they need: the signing secret and the record of used links (its outbox), and
the click carries no operator token.  ``GET /ack/{token}`` only shows a
confirmation form: mail scanners fetch links, and a fetch must not ack.
``POST`` acks, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import html
import re
from collections.abc import Generator
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from deltasense.access import admin_token_file
from deltasense.routing import mask_address
from notifier.acklinks import AckLinkError, read_token
from notifier.service import AckUnavailable, Notifier
from notifier.texts import say

# /deliveries pages: newest first, at most PAGE_MAX a request; ``next`` (the last
# row's created:key) asks for the page after it.
PAGE_MAX: Final = 500
CURSOR_RE: Final = re.compile(r"(?P<created>[0-9]{1,16}):(?P<key>ds-[0-9a-f]{32})")

_PAGE = """<!doctype html><html lang="vi"><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>DeltaSense</title>
<body style="font-family:sans-serif;max-width:36em;margin:2em auto">{body}</body></html>"""


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(body=body), status_code=status)


def _both(key: str) -> str:
    """The page is opened from a mail of either language: Vietnamese first, then English."""
    return html.escape(f"{say('vi', key)} / {say('en', key)}")


def _admin_token(notifier: Notifier) -> str | None:
    s = notifier.settings
    if s.admin_token:
        return s.admin_token
    path = admin_token_file(s.var_dir)
    with contextlib.suppress(OSError):
        return path.read_text(encoding="utf-8").strip() or None
    return None


def create_app(notifier: Notifier) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": True, "mqtt": notifier.connected.is_set()})

    def claim(request: Request) -> Any:
        token = request.path_params["token"]
        try:
            return read_token(notifier.secret, token, notifier.clock())
        except AckLinkError as exc:
            return str(exc)

    async def ack_form(request: Request) -> Response:
        c = claim(request)
        if isinstance(c, str):
            return _page(f"<p>{_both('notify.link_invalid')}: {html.escape(c)}</p>", 400)
        event = notifier.latest.get(c.alert_id)
        what = html.escape(f"{event.message.vi} / {event.message.en}") if event else c.alert_id
        return _page(f"<p>{what}</p><form method=post><button>{_both('ack')}</button></form>")

    async def ack_post(request: Request) -> Response:
        c = claim(request)
        if isinstance(c, str):
            return _page(f"<p>{_both('notify.link_invalid')}: {html.escape(c)}</p>", 400)
        if c.alert_id not in notifier.latest:
            return _page(f"<p>{_both('notify.ack_unknown')}</p>", 404)
        if not notifier.outbox.use_link(c.nonce, notifier.now_ms()):
            return _page(f"<p>{_both('notify.link_used')}</p>", 409)
        try:
            acked = await notifier.ack(c.alert_id, f"email:{c.receiver}")
        except AckUnavailable:
            notifier.outbox.release_link(c.nonce)  # not acked: the link stays usable
            return _page(f"<p>{_both('notify.ack_retry')}</p>", 503)
        by = html.escape(acked.ack.by if acked and acked.ack else "?")
        return _page(f"<p>{_both('acked_by')} {by}</p>")

    def admin(request: Request) -> bool:
        expected = _admin_token(notifier)
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        return expected is not None and hmac.compare_digest(given.encode(), expected.encode())

    async def routing_status(request: Request) -> Response:
        if not admin(request):
            return JSONResponse({"detail": "admin token required"}, status_code=401)
        return JSONResponse(dataclasses.asdict(notifier.routing_status))

    async def deliveries(request: Request) -> Response:
        if not admin(request):
            return JSONResponse({"detail": "admin token required"}, status_code=401)
        query = request.query_params
        alert_id = query.get("alert_id")
        if alert_id is not None and not 0 < len(alert_id) <= 200:
            return JSONResponse({"detail": "alert_id: 1 to 200 characters"}, status_code=422)
        limit_text = query.get("limit", str(PAGE_MAX))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= PAGE_MAX:
            return JSONResponse({"detail": f"limit: 1 to {PAGE_MAX}"}, status_code=422)
        limit = int(limit_text)
        before = None
        if "before" in query:
            cursor = CURSOR_RE.fullmatch(query["before"])
            if cursor is None:
                return JSONResponse(
                    {"detail": "before: the 'next' of the previous page"}, status_code=422
                )
            before = (int(cursor["created"]), cursor["key"])
        rows = notifier.outbox.messages(alert_id, limit=limit + 1, before=before)
        more, rows = len(rows) > limit, rows[:limit]
        return JSONResponse(
            {
                "next": f"{rows[-1].created}:{rows[-1].key}" if more else None,
                "counts": notifier.outbox.counts(),
                "messages": [
                    {
                        "key": m.key,
                        "receiver": m.receiver,
                        "channel": m.channel,
                        "address": mask_address(m.channel, m.address),
                        "reason": m.reason,
                        "alert_ids": list(m.alert_ids),
                        "state": m.state,
                        "attempts": m.attempts,
                        "created": m.created,
                        "sent_at": m.sent_at,
                        "last_error": m.last_error,
                    }
                    for m in rows
                ],
            }
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/ack/{token}", ack_form, methods=["GET"]),
            Route("/ack/{token}", ack_post, methods=["POST"]),
            Route("/deliveries", deliveries),
            Route("/routing/status", routing_status),
        ]
    )


class _Server(uvicorn.Server):
    # The service's own signal handling stops everything; uvicorn must not take it over.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_http(notifier: Notifier) -> None:
    s = notifier.settings
    config = uvicorn.Config(
        create_app(notifier),
        host=s.notifier_http_host,
        port=s.notifier_http_port,
        log_config=None,
        access_log=False,  # its paths are one-use ack links: capabilities, kept out of logs
        proxy_headers=False,
        lifespan="off",
    )
    server = _Server(config)
    try:
        await server.serve()
    except asyncio.CancelledError:
        server.should_exit = True
        raise
