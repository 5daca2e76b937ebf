"""Console sign-in: ``POST /session`` trades a username and password for an HttpOnly
session cookie, ``DELETE /session`` ends it (api/sessions.py, docs/SECURITY.md).

A wrong password, an unknown name and a disabled account get the same 401 after
the same work (one Argon2 verification), so neither the answer nor its time says
which names exist.  Failed logins are limited per username and client address
(``api_login_fail_limit`` in ``api_login_fail_window_s``: then 429 with
``Retry-After``).  Both are audited (``session.login``, ``session.logout``),
never with the password.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from api import auditing
from api.account_models import LoginIn, OwnPasswordIn, SessionOut
from api.accounts import Account, AccountError, Verdict, check_username
from api.auth import AuthError
from api.deps import (
    CSRF_HEADER,
    SESSION_COOKIE,
    ApiContext,
    AuditDep,
    CsrfDep,
    CtxDep,
    ViewerDep,
    session_principal,
)
from api.ratelimit import client_key
from api.sessions import session_digest
from deltasense.audit import Action, Result

_LOG = logging.getLogger(__name__)
router = APIRouter(prefix="/session", tags=["auth"])
_CSRF_NOTE = f"Needs the header `{CSRF_HEADER}: 1` (and no foreign `Origin`), else 403."
_LOGIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong username or password (the same for every reason)."},
    403: {"description": "Cross-site request refused. " + _CSRF_NOTE},
    429: {"description": "Too many failed logins for this name from this address."},
}
WRONG_LOGIN = "wrong username or password"


def _login_name(username: str) -> str | None:
    """The name as stored, if it could be one; an impossible name is never written
    to the audit log or the limiter as typed (it may be a password in the wrong box)."""
    try:
        return check_username(username)
    except AccountError:
        return None


@router.post(
    "",
    response_model=SessionOut,
    responses=_LOGIN_ERRORS,
    dependencies=[CsrfDep],
    description="Sign in to the console: sets the `ds_session` cookie (HttpOnly, "
    "SameSite=Strict, Secure over HTTPS), which then authenticates every request of the "
    "console, the stream ticket included. " + _CSRF_NOTE,
)
async def login(
    body: LoginIn, request: Request, response: Response, ctx: CtxDep, audit: AuditDep
) -> SessionOut:
    name = _login_name(body.username)
    shown = name or "-"
    client = client_key(request.client.host if request.client else None)
    key = f"{client} {name or '?'}"
    wait = ctx.login_limiter.retry_after(key)
    if wait is not None:
        # Not audited: a flood of refused tries would otherwise fsync an entry each.
        _LOG.warning(
            "login for %s from %s refused for %d s: too many failures", shown, client, wait
        )
        raise AuthError(429, "too many failed logins; try again later", retry_after=wait)
    async with ctx.hashing:
        verdict, account = await asyncio.to_thread(ctx.accounts.check, body.username, body.password)
    if verdict is not Verdict.OK or account is None:
        ctx.login_limiter.failed(key)
        await auditing.record_as(
            audit, request, shown, Action.SESSION_LOGIN, shown, Result.INVALID,
            {"via": "session", "reason": verdict.value},
        )  # fmt: skip
        raise AuthError(401, WRONG_LOGIN)
    await auditing.record_as(
        audit, request, account.name, Action.SESSION_LOGIN, account.name, Result.OK,
        {"via": "session", "role": account.role.value},
    )  # fmt: skip
    return _start_session(ctx, request, response, account)


def _start_session(
    ctx: ApiContext, request: Request, response: Response, account: Account
) -> SessionOut:
    """A new session for ``account`` in a fresh cookie; the one the browser's old
    cookie named, if any, ends (one browser, one session)."""
    if previous := request.cookies.get(SESSION_COOKIE):
        ctx.sessions.revoke(session_digest(previous))
    session_id = ctx.sessions.create(account.name, account.stamp)
    settings = ctx.settings
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(settings.api_session_max_s),
        path="/",
        secure=request.url.scheme == "https" or settings.api_cookie_secure,
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(
        name=account.name,
        role=account.role.value,
        idle_s=int(settings.api_session_idle_s),
        max_s=int(settings.api_session_max_s),
    )


@router.put(
    "/password",
    response_model=SessionOut,
    responses={
        401: {"description": "Not signed in"},
        403: {"description": "Not an account's session, or the current password is wrong"},
        422: {"description": "A new password the policy refuses"},
        429: {"description": "Too many wrong current passwords for this name and address"},
    },
    description="The signed-in account changes its own password: the current one is "
    "checked (and counted like a failed login), the new one held to the policy. Every "
    "session of the account ends and this browser gets a new one. " + _CSRF_NOTE,
)
async def change_own_password(
    body: OwnPasswordIn,
    request: Request,
    response: Response,
    ctx: CtxDep,
    audit: AuditDep,
    principal: ViewerDep,
) -> SessionOut:
    if principal.via != "session":
        raise AuthError(403, "a token has no password: sign in to the console as an account")
    name = principal.name
    key = f"{client_key(request.client.host if request.client else None)} {name}"
    wait = ctx.login_limiter.retry_after(key)
    if wait is not None:
        raise AuthError(429, "too many wrong passwords; try again later", retry_after=wait)
    async with ctx.hashing:
        verdict, _ = await asyncio.to_thread(ctx.accounts.check, name, body.current)
    if verdict is not Verdict.OK:
        ctx.login_limiter.failed(key)
        await auditing.record(
            audit, request, principal, Action.USER_PASSWD, name, Result.INVALID,
            {"own": True, "reason": verdict.value},
        )  # fmt: skip
        raise AuthError(403, "the current password is wrong")
    try:
        async with ctx.hashing:
            account = await asyncio.to_thread(ctx.accounts.set_password, name, body.new)
    except AccountError as exc:
        await auditing.record(
            audit, request, principal, Action.USER_PASSWD, name, Result.INVALID,
            {"own": True, "error": str(exc)},
        )  # fmt: skip
        raise HTTPException(422, str(exc)) from None
    ctx.sessions.revoke_account(name)
    await auditing.record(
        audit, request, principal, Action.USER_PASSWD, name, Result.OK, {"own": True}
    )
    return _start_session(ctx, request, response, account)


@router.delete(
    "",
    status_code=204,
    responses={403: {"description": "Cross-site request refused. " + _CSRF_NOTE}},
    dependencies=[CsrfDep],
    description="Sign out: the session ends on the server and the cookie is cleared "
    "(204 also when there was none). " + _CSRF_NOTE,
)
async def logout(request: Request, ctx: CtxDep, audit: AuditDep) -> Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        digest = session_digest(session_id)
        principal = session_principal(ctx, digest, touch=False)
        if ctx.sessions.revoke(digest) and principal is not None:
            await auditing.record(
                audit, request, principal, Action.SESSION_LOGOUT, principal.name, Result.OK
            )
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
