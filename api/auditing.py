"""The API's side of the audit log (deltasense/audit.py): who is the token's name,
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
    try:
        await asyncio.to_thread(
            log.record,
            actor=principal.name,
            origin=origin(request),
            action=action,
            target=target,
            result=result,
            detail={"role": principal.role.value, **(detail or {})},
        )
    except AuditError as exc:
        _LOG.error(
            "audit entry not written (%s): %s %s on %r by %s from %s",
            exc,
            action,
            result,
            target,
            principal.name,
            origin(request),
        )
