"""Cursor pagination for every list endpoint.

A list answers a JSON array as it always did (old clients keep working); when
more items follow, the response carries ``Link: <…&cursor=…>; rel="next"`` (RFC
8288) and ``X-Next-Cursor`` (the bare cursor); the last page has neither.

A cursor is opaque: the position after the page's last item, the route it
belongs to and a digest of the request's filters, signed with an HMAC whose key
is derived from the API's admin token (so it survives a restart and every
replica with the same token accepts it).  A tampered cursor, one from another
route or one sent with other filters is a 422 naming ``cursor``, never a 500.
``limit`` may change from page to page.

Routes take :data:`CursorQuery` and :class:`Pager` (``PagerDep``) and call
:meth:`Pager.position` and :meth:`Pager.headers`; :func:`page_sorted` pages a
list that is already in memory and sorted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import urlencode

import msgspec
from fastapi import Depends, Query, Request

from api.deps import CtxDep
from api.problems import param_error

CURSOR_VERSION: Final = 1
MAX_CURSOR_CHARS: Final = 512
# Parameters that do not change which items a query selects.
NOT_FILTERS: Final = frozenset({"cursor", "limit", "format"})
_T = TypeVar("_T")
Position = list[Any]  # checked against the expected types when decoded

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_CHARS,
        description="Opaque: the next page, from the previous page's `Link: rel=next` "
        "or `X-Next-Cursor` header. Send the same filters with it.",
    ),
]


def cursor_key(admin_token: str) -> bytes:
    return hmac.new(admin_token.encode(), b"deltasense cursor v1", hashlib.sha256).digest()


def filters_digest(request: Request) -> str:
    pairs = sorted((k, v) for k, v in request.query_params.multi_items() if k not in NOT_FILTERS)
    return hashlib.sha256(urlencode(pairs).encode()).hexdigest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(key: bytes, scope: str, filters: str, position: Sequence[int | str]) -> str:
    payload = msgspec.json.encode([CURSOR_VERSION, scope, filters, list(position)])
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def decode_cursor(
    key: bytes, text: str, scope: str, filters: str, shape: Sequence[type]
) -> Position:
    """The position in a cursor made by :func:`encode_cursor` for this scope and filters;
    a 422 for anything else."""
    bad = param_error(
        "cursor is not valid: use one from a Link or X-Next-Cursor header unchanged", "cursor"
    )
    try:
        data, mac = text.split(".")
        payload = _unb64(data)
        if not hmac.compare_digest(
            hmac.new(key, payload, hashlib.sha256).digest()[:16], _unb64(mac)
        ):
            raise bad
        version, cscope, cfilters, position = msgspec.json.decode(payload)
    except (ValueError, binascii.Error, msgspec.DecodeError, TypeError):
        raise bad from None
    if version != CURSOR_VERSION or cscope != scope:
        raise param_error("cursor belongs to another list", "cursor")
    if cfilters != filters:
        raise param_error(
            "cursor was made for other filters: send the same filters as the first page",
            "cursor",
        )
    ok = (
        isinstance(position, list)
        and len(position) == len(shape)
        and all(type(p) is t for p, t in zip(position, shape, strict=True))
    )
    if not ok:
        raise bad
    return list(position)


@dataclass
class Pager:
    """One list request's paging: where it starts and how to say where the next begins."""

    request: Request
    key: bytes
    cursor: str | None

    @property
    def scope(self) -> str:
        """The list a cursor belongs to: the request's path, path parameters included
        (a cursor of one device's series is refused on another's)."""
        return self.request.url.path

    def position(self, *shape: type) -> Position | None:
        """The cursor's position (of the given types), or None on the first page."""
        if self.cursor is None:
            return None
        return decode_cursor(self.key, self.cursor, self.scope, filters_digest(self.request), shape)

    def next_cursor(self, position: Sequence[int | str]) -> str:
        return encode_cursor(self.key, self.scope, filters_digest(self.request), position)

    def headers(self, position: Sequence[int | str] | None) -> dict[str, str]:
        """``Link``/``X-Next-Cursor`` for a next page at ``position``; none on the last."""
        if position is None:
            return {}
        cursor = self.next_cursor(position)
        pairs = [(k, v) for k, v in self.request.query_params.multi_items() if k != "cursor"]
        url = f"{self.request.url.path}?{urlencode([*pairs, ('cursor', cursor)])}"
        return {"Link": f'<{url}>; rel="next"', "X-Next-Cursor": cursor}


def _pager(request: Request, ctx: CtxDep, cursor: CursorQuery = None) -> Pager:
    return Pager(request, cursor_key(ctx.admin_token or "deltasense"), cursor)


PagerDep = Annotated[Pager, Depends(_pager)]


def page_sorted(
    items: Sequence[_T],
    key: Callable[[_T], Position],
    after: Position | None,
    limit: int,
    *,
    descending: bool = False,
) -> tuple[list[_T], Position | None]:
    """The page of ``items`` (sorted by ``key``, descending if so) after ``after``, and the
    next page's position (None on the last page)."""
    if after is not None:
        mark = tuple(after)
        if descending:
            items = [i for i in items if tuple(key(i)) < mark]
        else:
            items = [i for i in items if tuple(key(i)) > mark]
    page = list(items[:limit])
    more = len(items) > limit
    return page, (key(page[-1]) if more and page else None)
