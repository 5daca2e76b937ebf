"""The API's access log, written by us instead of uvicorn's.

uvicorn logs the raw query string of every request; a query can carry a stream
ticket, or a token a careless client put there.  This log keeps the path and the
parameter names and never a value, so nothing secret reaches ``var/log/api.log``.
One line per request at the response start (a stream is logged when it opens).
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import parse_qsl, quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LOG = logging.getLogger("api.access")
MAX_PARAMS = 16
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # the API's own parameter names are like this


def redacted_target(path: str, query_string: bytes) -> str:
    """``path?name=*&other=*``: the parameter names, never their values.  A name that
    is not a plain identifier (a bare ``?value`` parses as one) is shown as ``…``."""
    target = quote(path)
    if not query_string:
        return target
    names = [k for k, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)]
    shown = [n if _NAME.fullmatch(n) else "…" for n in names[:MAX_PARAMS]]
    more = "&…" if len(names) > MAX_PARAMS else ""
    return f"{target}?" + ("&".join(f"{n}=*" for n in shown) + more if shown else "*")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                client = scope.get("client")
                _LOG.info(
                    '%s - "%s %s" %d %.1f ms',
                    f"{client[0]}:{client[1]}" if client else "-",
                    scope["method"],
                    redacted_target(scope["path"], scope.get("query_string", b"")),
                    message["status"],
                    (time.perf_counter() - started) * 1000,
                )
            await send(message)

        await self.app(scope, receive, send_wrapper)
