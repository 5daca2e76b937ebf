"""Dead letters: messages ingest rejected, newest first (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api import store
from api.deps import AdminDep, DbDep
from api.models import DeadLetter
from api.paging import PagerDep

router = APIRouter(prefix="/deadletters", tags=["deadletters"])


@router.get("", response_model=list[DeadLetter])
async def list_dead_letters(
    db: DbDep,
    _: AdminDep,
    pager: PagerDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeadLetter]:
    """Newest first; pages with `cursor` (from the `Link: rel=next` header)."""
    after = pager.position(int, int)
    rows, following = await store.dead_letters(
        db, limit, after=(after[0], after[1]) if after else None
    )
    response.headers.update(pager.headers(following))
    return [DeadLetter(**row) for row in rows]
