"""The API's side of the audit log (deltasense/audit.py): who is the token's or the
account's name (``via: session`` in the detail for an account signed in),
from where is the client's address (the socket's peer; a proxy's forwarded
header is not trusted), and the write runs off the event loop (it fsyncs)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Request

from api.auth import Principal
from deltasense.audit import Action, AuditError, AuditLog, Result

_LOG = logging.getLogger(__name__)


def origin(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def record(
    log: AuditLog,
    request: Request,
    principal: Principal,
    action: Action,
    target: str,
    result: Result,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry.  The action has happened (or been refused) already: a
    failed write cannot undo it, so it is logged as an error with the entry."""
    via = {"via": principal.via} if principal.via != "token" else {}
    await record_as(
        log,
        request,
        principal.name,
        action,
        target,
        result,
        {"role": principal.role.value, **via, **(detail or {})},
    )


async def record_as(
    log: AuditLog,
    request: Request,
    actor: str,
    action: Action,
    target: str,
    result: Result,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """:func:`record` for an actor who is not (yet) a principal: a login."""
    try:
        await asyncio.to_thread(
            log.record,
            actor=actor,
            origin=origin(request),
            action=action,
            target=target,
            result=result,
            detail=dict(detail or {}),
        )
    except AuditError as exc:
        _LOG.error(
            "audit entry not written (%s): %s %s on %r by %s from %s",
            exc,
            action,
            result,
            target,
            actor,
            origin(request),
        )
