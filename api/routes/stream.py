"""Tickets for the alert stream: a browser's EventSource cannot send a header, and a
token must never travel in a URL (see api/tickets.py)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CtxDep, ViewerAccessDep
from api.models import StreamTicketOut

router = APIRouter(prefix="/stream", tags=["alerts"])


@router.post("/ticket", response_model=StreamTicketOut)
async def stream_ticket(ctx: CtxDep, access: ViewerAccessDep) -> StreamTicketOut:
    """A ticket for one `GET /api/v1/alerts/stream?ticket=…`: opaque, single use, valid
    `expires_in_s` seconds, bound to the calling token or console session (revoking
    the token or ending the session voids it, and closes the stream it opened within
    seconds)."""
    ticket = ctx.tickets.issue(access.principal, access.credential)
    return StreamTicketOut(ticket=ticket, expires_in_s=int(ctx.tickets.ttl_s))
