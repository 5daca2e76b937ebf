"""Dependencies shared by the routes, as ``Annotated`` aliases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Final
from urllib.parse import urlsplit

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from api.accounts import AccountStore
from api.alarmstore import AlarmStore
from api.auth import AuthError, Credential, Principal, Role, TokenStore, hash_token, require_role
from api.devicecache import DeviceCache
from api.hub import AlertHub
from api.ratelimit import AuthFailureLimiter, client_key
from api.sessions import SessionStore, session_digest
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
    accounts: AccountStore
    sessions: SessionStore
    login_limiter: AuthFailureLimiter  # failed logins per username and client address
    devices: DeviceCache
    db: Database | None = None
    # Argon2 takes 19 MiB and a core for ~0.1 s: at most two at a time.
    hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
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


def get_device_cache(ctx: CtxDep) -> DeviceCache:
    return ctx.devices


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
DeviceCacheDep = Annotated[DeviceCache, Depends(get_device_cache)]

_bearer = HTTPBearer(auto_error=False, description="API token (see var/secrets/admin-token).")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
# Query parameters that would put a credential into a URL (and so into logs).
URL_CREDENTIALS = ("access_token", "token")


SESSION_COOKIE: Final = "ds_session"
# A console request authenticated by its cookie must carry this header (value "1")
# when it changes anything: a cross-site form cannot set a header, and a cross-site
# fetch with one needs a CORS preflight that this API never grants (docs/SECURITY.md).
CSRF_HEADER: Final = "X-DeltaSense-Console"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Access:
    """Who made a request, and what it was authenticated with (streams re-check it,
    so they close when the token is revoked or the session ends)."""

    principal: Principal
    credential: Credential


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


def check_csrf(request: Request) -> None:
    """Refuse a state-changing request that a page of another site could have sent:
    it must carry :data:`CSRF_HEADER`, and an ``Origin`` or ``Sec-Fetch-Site`` the
    browser sent must say it came from this origin."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get(CSRF_HEADER) != "1":
        raise AuthError(403, f"cross-site request refused: the {CSRF_HEADER}: 1 header is missing")
    origin = request.headers.get("origin")
    # Host and port only: behind a TLS proxy the browser's origin is https while this
    # server sees http (the proxy must pass the Host header through).
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise AuthError(403, "cross-site request refused: Origin is not this site")
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        raise AuthError(403, "cross-site request refused: Sec-Fetch-Site is not same-origin")


def session_principal(ctx: ApiContext, digest: str, *, touch: bool = True) -> Principal | None:
    """The account a live session belongs to, as the account stands now (its role
    included); None once the session expired or its account was disabled, removed
    or given a new password (the account's stamp changed)."""
    session = ctx.sessions.get(digest, touch=touch)
    if session is None:
        return None
    account = ctx.accounts.get(session.account)
    if account is None or account.disabled or account.stamp != session.stamp:
        ctx.sessions.revoke(digest)
        return None
    return Principal(name=account.name, role=account.role, via="session")


def still_valid(ctx: ApiContext, credential: Credential) -> bool:
    """Whether a credential seen earlier still authenticates (open streams, tickets)."""
    if credential.kind == "session":
        return session_principal(ctx, credential.digest, touch=False) is not None
    return ctx.tokens.lookup(credential.digest) is not None


def _session_access(ctx: ApiContext, request: Request, session_id: str, role: Role) -> Access:
    # Not counted by the failure limiter: 256-bit ids are not guessed, and a control
    # room's browsers with stale cookies after an API restart must not lock its address.
    check_csrf(request)
    digest = session_digest(session_id)
    principal = session_principal(ctx, digest)
    if principal is None:
        raise AuthError(401, "session expired or signed out")
    require_role(principal, role)
    return Access(principal, Credential("session", digest))


def authorize(
    ctx: ApiContext, request: Request, credentials: HTTPAuthorizationCredentials | None, role: Role
) -> Access:
    """Bearer authentication under the failed-authentication limit, or else the
    console's session cookie (a bearer token, when sent, is what counts)."""
    _refuse_url_credentials(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    if credentials is None and session_id:
        return _session_access(ctx, request, session_id, role)
    key = check_limit(ctx, request)
    token = credentials.credentials if credentials else None
    try:
        principal = ctx.tokens.authorize(token, role)
    except AuthError as exc:
        if exc.status == 401 and token:
            ctx.limiter.failed(key)  # a wrong token, not a missing one or a too-low role
        raise
    return Access(principal, Credential("token", hash_token(token or "")))


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
    # The ticket's token or session must still be good: revoking one voids its tickets.
    if grant is None or not still_valid(ctx, grant.credential):
        ctx.limiter.failed(key)
        raise AuthError(401, "invalid or expired stream ticket")
    return Access(grant.principal, grant.credential)


def _csrf(request: Request) -> None:
    check_csrf(request)


ViewerDep = Annotated[Principal, Depends(_require(Role.VIEWER))]
OperatorDep = Annotated[Principal, Depends(_require(Role.OPERATOR))]
AdminDep = Annotated[Principal, Depends(_require(Role.ADMIN))]
MetricsDep = Annotated[Principal, Depends(_require(Role.METRICS))]
ViewerAccessDep = Annotated[Access, Depends(_viewer_access)]
StreamAccessDep = Annotated[Access, Depends(_stream_access)]
CsrfDep = Depends(_csrf)  # for routes that change state without authentication (login)

IDENT_REGEX = f"^{IDENT_PATTERN}$"
DevicePath = Annotated[str, Path(pattern=IDENT_REGEX, description=f"Device id, {IDENT_PATTERN}.")]
AlertIdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Alert id.")
]
