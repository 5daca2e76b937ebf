"""The audit log, for admins: who did what, when, from where, and how it ended."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from api import params
from api.deps import AdminDep, AuditDep, SettingsDep
from api.models import AuditEntry
from api.paging import PagerDep
from api.params import ParamError
from api.problems import param_error
from deltasense.audit import MAX_LIMIT, Action, AuditError, Entry, Result

router = APIRouter(prefix="/audit", tags=["audit"])

_FAMILIES = sorted({a.value.split(".")[0] for a in Action})
# Printable text without control characters (names, addresses, ids).
_TEXT = r"^[^\x00-\x1f\x7f]+$"


@router.get(
    "",
    response_model=list[AuditEntry],
    responses={422: {"description": "Bad filter"}, 503: {"description": "Audit log unreadable"}},
)
async def list_audit(
    audit: AuditDep,
    settings: SettingsDep,
    _: AdminDep,
    pager: PagerDep,
    response: Response,
    since: Annotated[
        str | None, Query(max_length=64, description="From (ISO-8601 with offset, or epoch ms).")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=64, description="Before (ISO-8601 with offset, or epoch ms).")
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=32,
            description=f"An action (device.revoke) or a family ({', '.join(_FAMILIES)}).",
        ),
    ] = None,
    actor: Annotated[str | None, Query(max_length=200, pattern=_TEXT)] = None,
    target: Annotated[str | None, Query(max_length=200, pattern=_TEXT)] = None,
    result: Result | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62, description="Page back.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[AuditEntry]:
    """Entries newest first, filtered; admins only.  Pages with `cursor` (from the
    `Link: rel=next` header) or, as before, `before_id`."""
    offset = settings.utc_offset_min
    try:
        since_ms = params.parse_time(since, "since", offset) if since is not None else None
        until_ms = params.parse_time(until, "until", offset) if until is not None else None
    except ParamError as exc:
        raise param_error(str(exc), exc.param) from None
    after = pager.position(int)
    if after is not None:
        before_id = min(before_id or after[0], int(after[0]))
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise HTTPException(422, "since must be before until")
    if action is not None and action not in set(Action) and action not in _FAMILIES:
        raise HTTPException(
            422,
            f"action {action[:32]!r} is none of {', '.join(a.value for a in Action)} "
            f"and no family ({', '.join(_FAMILIES)})",
        )

    def query(before: int | None, count: int) -> list[Entry]:
        return audit.query(
            since=since_ms,
            until=until_ms,
            action=action,
            actor=actor,
            target=target,
            result=result.value if result else None,
            before_id=before,
            limit=count,
        )

    try:
        page = await asyncio.to_thread(query, before_id, limit)
        # A next page only when one more entry exists: the last page has no Link.
        more = len(page) == limit and bool(await asyncio.to_thread(query, page[-1].id, 1))
    except AuditError as exc:
        raise HTTPException(503, "audit log unreadable") from exc
    response.headers.update(pager.headers([page[-1].id] if more else None))
    return [AuditEntry(**e.as_dict()) for e in page]
