"""Who the caller is: the console shows or hides operator controls from this, and
learns from a 401 that it must show the login page."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ViewerDep
from api.models import Me

router = APIRouter(tags=["auth"])


@router.get("/me", response_model=Me)
async def me(principal: ViewerDep) -> Me:
    return Me(name=principal.name, role=principal.role.value, via=principal.via)
