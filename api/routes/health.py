"""Liveness and readiness probes (no auth), and the Prometheus metrics (a token with
the metrics or admin role: request counts by route and the stream's numbers are not
for everyone)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import CtxDep, MetricsDep
from api.models import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"description": "A dependency is down; `checks` says which."}},
)
async def readyz(ctx: CtxDep) -> JSONResponse:
    checks = {
        "influxdb": ctx.db is not None and await ctx.db.ping(),
        "mqtt": ctx.hub.connected,
    }
    if all(checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    down = ", ".join(name for name, ok in checks.items() if not ok)
    return JSONResponse(
        {"status": "unavailable", "checks": checks, "detail": f"not ready: {down} down"},
        status_code=503,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(ctx: CtxDep, _: MetricsDep) -> Response:
    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)
