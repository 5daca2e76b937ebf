"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

import deltasense
from api.accesslog import AccessLogMiddleware
from api.accounts import AccountStore
from api.auth import AuthError, TokenStore, ensure_admin_token
from api.deps import ApiContext
from api.devicecache import DeviceCache
from api.headers import SecurityHeadersMiddleware
from api.hub import AlertHub, MqttUnavailable
from api.metrics import MetricsMiddleware, RequestMetrics
from api.problems import ProblemResponse, document, http_handler, problem, validation_handler
from api.ratelimit import AuthFailureLimiter
from api.routes import api_router, console, health
from api.routes.console import STATIC_DIR
from api.sessions import SessionStore
from api.store import Database
from api.tickets import StreamTickets
from deltasense.audit import AuditLog
from deltasense.influx import InfluxError, InfluxUnavailable, influx_client
from deltasense.settings import Settings

_LOG = logging.getLogger(__name__)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error as application/problem+json (api/problems.py)."""

    async def auth_error(_: Request, exc: Exception) -> ProblemResponse:
        assert isinstance(exc, AuthError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        return problem(exc.status, exc.detail, headers=headers)

    async def influx_error(request: Request, exc: Exception) -> ProblemResponse:
        if isinstance(exc, InfluxUnavailable):
            _LOG.warning("%s %s: InfluxDB unavailable: %s", request.method, request.url.path, exc)
            detail = "database unavailable"
        else:  # a refused query is our bug or a missing database: log it, do not leak it
            _LOG.error("%s %s: InfluxDB refused: %s", request.method, request.url.path, exc)
            detail = "database query failed"
        return problem(503, detail)

    async def mqtt_error(request: Request, exc: Exception) -> ProblemResponse:
        _LOG.warning("%s %s: %s", request.method, request.url.path, exc)
        return problem(503, "MQTT broker unavailable")

    app.add_exception_handler(AuthError, auth_error)
    app.add_exception_handler(InfluxError, influx_error)
    app.add_exception_handler(MqttUnavailable, mqtt_error)
    app.add_exception_handler(StarletteHTTPException, http_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)


def create_app(settings: Settings, *, influx: Database | None = None) -> FastAPI:
    """Build the app.  ``influx`` is used (and not closed) if given; otherwise the
    lifespan opens an :class:`InfluxClient` and closes it at shutdown.  The lifespan
    also runs the MQTT link for the alert stream and publishing."""
    registry = CollectorRegistry()
    admin_token = ensure_admin_token(
        settings.var_dir, settings.admin_token, allow_weak=settings.dev_insecure
    )
    ctx = ApiContext(
        settings=settings,
        tokens=TokenStore(settings.var_dir, admin_token),
        admin_token=admin_token,
        hub=AlertHub(settings, registry=registry),
        registry=registry,
        limiter=AuthFailureLimiter(
            limit=settings.api_auth_fail_limit, window_s=settings.api_auth_fail_window_s
        ),
        tickets=StreamTickets(),
        audit=AuditLog(settings.audit_path),
        accounts=AccountStore(settings.var_dir, min_length=settings.api_password_min_length),
        sessions=SessionStore(idle_s=settings.api_session_idle_s, max_s=settings.api_session_max_s),
        login_limiter=AuthFailureLimiter(
            limit=settings.api_login_fail_limit, window_s=settings.api_login_fail_window_s
        ),
        devices=DeviceCache(settings.api_device_cache_s),
        db=influx,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        owned = influx_client(settings, logger=_LOG) if ctx.db is None else None
        if owned is not None:
            ctx.db = owned
        link = asyncio.create_task(ctx.hub.run(), name="api-mqtt")
        try:
            yield
        finally:
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link
            if owned is not None:
                ctx.db = None
                await owned.aclose()

    app = FastAPI(
        title="DeltaSense API",
        version=deltasense.__version__,
        description="Devices, readings, alerts and commands of a DeltaSense site.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load from a CDN and start with an inline script: broken
        # under the CSP and on a closed network. /docs says where the schema is.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    _install_error_handlers(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # The last added is the outermost: headers and the access log see every response.
    app.add_middleware(MetricsMiddleware, metrics=RequestMetrics(registry))
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, tile_url=settings.console_tile_url)
    app.include_router(health.router)
    app.include_router(api_router)
    app.include_router(console.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
