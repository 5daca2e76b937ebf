"""Dead letters: messages ingest rejected, newest first (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import store
from api.deps import AdminDep, DbDep
from api.models import DeadLetter

router = APIRouter(prefix="/deadletters", tags=["deadletters"])


@router.get("", response_model=list[DeadLetter])
async def list_dead_letters(
    db: DbDep, _: AdminDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetter]:
    return [DeadLetter(**row) for row in await store.dead_letters(db, limit)]
