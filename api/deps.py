"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from api.alarmstore import AlarmStore
from api.auth import AuthError, Principal, Role, TokenStore, hash_token
from api.hub import AlertHub
from api.ratelimit import AuthFailureLimiter, client_key
from api.store import Database
from api.tickets import StreamTickets
from deltasense.audit import AuditLog
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
    limiter: AuthFailureLimiter
    tickets: StreamTickets
    audit: AuditLog
    db: Database | None = None
    admin_token: str = ""  # the notifier's /deliveries takes it (api/routes/notifier.py)
    alarm: AlarmStore | None = None  # the alarm workflow's records, opened on first use


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


def get_tokens(ctx: CtxDep) -> TokenStore:
    return ctx.tokens


def get_audit(ctx: CtxDep) -> AuditLog:
    return ctx.audit


def get_alarm(ctx: CtxDep) -> AlarmStore:
    if ctx.alarm is None:
        ctx.alarm = AlarmStore(ctx.settings.alarm_path)
    return ctx.alarm


SettingsDep = Annotated[Settings, Depends(get_settings)]
AlarmDep = Annotated[AlarmStore, Depends(get_alarm)]
AuditDep = Annotated[AuditLog, Depends(get_audit)]
DbDep = Annotated[Database, Depends(get_db)]
HubDep = Annotated[AlertHub, Depends(get_hub)]
TokensDep = Annotated[TokenStore, Depends(get_tokens)]

_bearer = HTTPBearer(auto_error=False, description="API token (see var/secrets/admin-token).")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
# Query parameters that would put a credential into a URL (and so into logs).
URL_CREDENTIALS = ("access_token", "token")


@dataclass(frozen=True)
class Access:
    """Who made a request, and the SHA-256 of the token it came with (streams
    re-check it, so they close when the token is revoked)."""

    principal: Principal
    token_digest: str


def _client(request: Request) -> str:
    return client_key(request.client.host if request.client else None)


def _refuse_url_credentials(request: Request) -> None:
    for name in URL_CREDENTIALS:
        if name in request.query_params:
            raise AuthError(
                400,
                f"credentials are not accepted in the URL ({name}); send "
                "'Authorization: Bearer …', or for the alert stream POST /api/v1/stream/ticket",
            )


def check_limit(ctx: ApiContext, request: Request) -> str:
    """The client's limiter key; :class:`AuthError` 429 while it is locked out."""
    key = _client(request)
    wait = ctx.limiter.retry_after(key)
    if wait is not None:
        raise AuthError(429, "too many failed authentications", retry_after=wait)
    return key


def authorize(
    ctx: ApiContext, request: Request, credentials: HTTPAuthorizationCredentials | None, role: Role
) -> Access:
    """Bearer authentication under the failed-authentication limit."""
    _refuse_url_credentials(request)
    key = check_limit(ctx, request)
    token = credentials.credentials if credentials else None
    try:
        principal = ctx.tokens.authorize(token, role)
    except AuthError as exc:
        if exc.status == 401 and token:
            ctx.limiter.failed(key)  # a wrong token, not a missing one or a too-low role
        raise
    return Access(principal, hash_token(token or ""))


def _require(role: Role) -> Callable[[CtxDep, Request, BearerDep], Principal]:
    def dependency(ctx: CtxDep, request: Request, credentials: BearerDep) -> Principal:
        return authorize(ctx, request, credentials, role).principal

    return dependency


def _viewer_access(ctx: CtxDep, request: Request, credentials: BearerDep) -> Access:
    return authorize(ctx, request, credentials, Role.VIEWER)


def _stream_access(
    ctx: CtxDep,
    request: Request,
    credentials: BearerDep,
    ticket: Annotated[
        str | None,
        Query(
            max_length=128,
            description="A ticket from POST /api/v1/stream/ticket, for clients that cannot "
            "send headers (a browser's EventSource). Single use, valid 30 s.",
        ),
    ] = None,
) -> Access:
    if ticket is None or credentials is not None:
        return authorize(ctx, request, credentials, Role.VIEWER)
    _refuse_url_credentials(request)
    key = check_limit(ctx, request)
    grant = ctx.tickets.redeem(ticket)
    # The ticket's token must still be valid: revoking a token voids its tickets.
    if grant is None or ctx.tokens.lookup(grant.token_digest) is None:
        ctx.limiter.failed(key)
        raise AuthError(401, "invalid or expired stream ticket")
    return Access(grant.principal, grant.token_digest)


ViewerDep = Annotated[Principal, Depends(_require(Role.VIEWER))]
OperatorDep = Annotated[Principal, Depends(_require(Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(_require(Role.ADMIN))]
MetricsDep = Annotated[Principal, Depends(_require(Role.METRICS))]
ViewerAccessDep = Annotated[Access, Depends(_viewer_access)]
StreamAccessDep = Annotated[Access, Depends(_stream_access)]

IDENT_REGEX = f"^{IDENT_PATTERN}$"
DevicePath = Annotated[str, Path(pattern=IDENT_REGEX, description=f"Device id, {IDENT_PATTERN}.")]
AlertIdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Alert id.")
]
