"""HTTP routes, one module per resource (model: full-stack-fastapi-template backend/app/api)."""

from fastapi import APIRouter, Depends

from api.querycheck import refuse_unknown_query
from api.routes import (
    alarm_workflow,
    alerts,
    audit,
    city,
    commands,
    deadletters,
    device_page,
    devices,
    identities,
    me,
    notifier,
    session,
    silences,
    stream,
    system,
    users,
)

# Every route refuses query parameters it does not declare (api/querycheck.py).
api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(refuse_unknown_query)])
api_router.include_router(devices.router)
api_router.include_router(device_page.router)
api_router.include_router(commands.router)
api_router.include_router(alerts.router)
api_router.include_router(alarm_workflow.router)
api_router.include_router(silences.router)
api_router.include_router(stream.router)
api_router.include_router(deadletters.router)
api_router.include_router(system.router)
api_router.include_router(audit.router)
api_router.include_router(identities.router)
api_router.include_router(city.router)
api_router.include_router(me.router)
api_router.include_router(session.router)
api_router.include_router(users.router)
api_router.include_router(notifier.router)
