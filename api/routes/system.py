"""The platform's own processes, as the supervisor reports them (the console's
"service degraded" banner)."""

from __future__ import annotations

import time

import msgspec
from fastapi import APIRouter

from api.deps import SettingsDep, ViewerDep
from api.models import ServiceOut, SystemOut
from deltasense import supervision

router = APIRouter(prefix="/system", tags=["system"])


@router.get("/services", response_model=SystemOut)
async def services(settings: SettingsDep, _: ViewerDep) -> SystemOut:
    state = supervision.read_state(settings.var_dir)
    if state is None:
        return SystemOut(supervised=False)
    return SystemOut(
        supervised=True,
        state=state.state,
        services=[ServiceOut(**msgspec.structs.asdict(s)) for s in state.services],
        degraded=state.degraded(),
        recovered=state.recovered(time.time()),
    )
