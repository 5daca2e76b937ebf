"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from api.auth import Principal, Role, TokenStore
from api.hub import AlertHub
from api.store import Database
from deltasense.contract import IDENT_PATTERN
from deltasense.influx import InfluxUnavailable
from deltasense.settings import Settings


@dataclass
class ApiContext:
    """Everything a request may need; built by ``create_app``, kept on ``app.state``."""

    settings: Settings
    tokens: TokenStore
    hub: AlertHub
    registry: CollectorRegistry
    db: Database | None = None


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


CtxDep = Annotated[ApiContext, Depends(get_ctx)]


def get_settings(ctx: CtxDep) -> Settings:
    return ctx.settings


def get_db(ctx: CtxDep) -> Database:
    if ctx.db is None:
        raise InfluxUnavailable("the InfluxDB client is not open")
    return ctx.db


def get_hub(ctx: CtxDep) -> AlertHub:
    return ctx.hub


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
HubDep = Annotated[AlertHub, Depends(get_hub)]

_bearer = HTTPBearer(auto_error=False, description="API token (see var/admin-token).")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _require(role: Role) -> Callable[[CtxDep, BearerDep], Principal]:
    def dependency(ctx: CtxDep, credentials: BearerDep) -> Principal:
        return ctx.tokens.authorize(credentials.credentials if credentials else None, role)

    return dependency


def _stream_viewer(
    ctx: CtxDep,
    credentials: BearerDep,
    access_token: Annotated[
        str | None,
        Query(
            max_length=512,
            description="Token for clients that cannot send headers (browser EventSource).",
        ),
    ] = None,
) -> Principal:
    token = credentials.credentials if credentials else access_token
    return ctx.tokens.authorize(token, Role.VIEWER)


ViewerDep = Annotated[Principal, Depends(_require(Role.VIEWER))]
OperatorDep = Annotated[Principal, Depends(_require(Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(_require(Role.ADMIN))]
StreamViewerDep = Annotated[Principal, Depends(_stream_viewer)]

IDENT_REGEX = f"^{IDENT_PATTERN}$"
DevicePath = Annotated[str, Path(pattern=IDENT_REGEX, description=f"Device id, {IDENT_PATTERN}.")]
AlertIdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Alert id.")
]
