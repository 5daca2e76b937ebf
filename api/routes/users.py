"""Operator accounts, for admins: `deltasense users …` over HTTP (api/accounts.py).

A password is set here and never returned; a new password, disable and remove
end the account's console sessions at once.  Every change is audited
(``user.add``, ``user.passwd``, ``user.disable``, ``user.enable``, ``user.remove``),
refusals included, never with the password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from api import auditing
from api.account_models import AccountIn, AccountOut, PasswordIn
from api.accounts import Account, AccountError, AccountExists, NoSuchAccount
from api.auth import Principal
from api.deps import AdminDep, AuditDep, CtxDep
from api.paging import PagerDep, page_sorted
from deltasense.audit import Action, Result

router = APIRouter(prefix="/admin/users", tags=["accounts"])
_T = TypeVar("_T")
NamePath = Annotated[
    str, Path(pattern=r"^[A-Za-z][A-Za-z0-9._-]{1,31}$", description="The account's username.")
]
_ERRORS: dict[int | str, dict[str, Any]] = {403: {"description": "Not an admin"}}
_ONE: dict[int | str, dict[str, Any]] = {**_ERRORS, 404: {"description": "No such account"}}


def _out(account: Account) -> AccountOut:
    return AccountOut(**account.public())


async def _change(
    ctx: CtxDep,
    audit: AuditDep,
    request: Request,
    principal: Principal,
    action: Action,
    name: str,
    op: Callable[[], _T],
    detail: dict[str, Any] | None = None,
) -> _T:
    """Run ``op`` off the event loop (file lock, Argon2), audited whatever the outcome;
    AccountError becomes 404, 409 or 422 with its message."""
    info = dict(detail or {})
    try:
        async with ctx.hashing:
            value = await asyncio.to_thread(op)
    except NoSuchAccount as exc:
        await auditing.record(audit, request, principal, action, name, Result.NOT_FOUND, info)
        raise HTTPException(404, str(exc)) from None
    except AccountError as exc:
        info["error"] = str(exc)
        await auditing.record(audit, request, principal, action, name, Result.INVALID, info)
        raise HTTPException(409 if isinstance(exc, AccountExists) else 422, str(exc)) from None
    await auditing.record(audit, request, principal, action, name, Result.OK, info)
    return value


@router.get("", response_model=list[AccountOut], responses=_ERRORS)
async def list_accounts(
    ctx: CtxDep,
    _: AdminDep,
    pager: PagerDep,
    response: Response,
    limit: Annotated[
        int, Query(ge=1, le=10_000, description="Per page (all by default).")
    ] = 10_000,
) -> list[AccountOut]:
    """Every account, enabled or not, by name; never a password hash.  Pages with
    `cursor` (from the `Link: rel=next` header)."""
    after = pager.position(str)
    accounts = await asyncio.to_thread(ctx.accounts.list)
    page, following = page_sorted(accounts, lambda a: [a.name], after, limit)
    response.headers.update(pager.headers(following))
    return [_out(a) for a in page]


@router.get("/{name}", response_model=AccountOut, responses=_ONE)
async def show_account(name: NamePath, ctx: CtxDep, _: AdminDep) -> AccountOut:
    account = await asyncio.to_thread(ctx.accounts.get, name.lower())
    if account is None:
        raise HTTPException(404, f"no account {name.lower()!r}")
    return _out(account)


@router.post(
    "",
    status_code=201,
    response_model=AccountOut,
    responses={
        **_ERRORS,
        409: {"description": "The account exists already"},
        422: {"description": "Bad name or role, or a password the policy refuses"},
    },
)
async def add_account(
    body: AccountIn, request: Request, ctx: CtxDep, audit: AuditDep, principal: AdminDep
) -> AccountOut:
    """Make an account with a role and a first password (at least
    `api_password_min_length` characters, not containing the name, not a common one)."""
    target = body.name.lower()[:32]
    account = await _change(
        ctx, audit, request, principal, Action.USER_ADD, target,
        lambda: ctx.accounts.add(body.name, body.role, body.password), {"new_role": body.role},
    )  # fmt: skip
    return _out(account)


@router.put(
    "/{name}/password",
    response_model=AccountOut,
    responses={**_ONE, 422: {"description": "A password the policy refuses"}},
)
async def set_password(
    name: NamePath,
    body: PasswordIn,
    request: Request,
    ctx: CtxDep,
    audit: AuditDep,
    principal: AdminDep,
) -> AccountOut:
    """A new password; the account's sessions end."""
    account = await _change(
        ctx, audit, request, principal, Action.USER_PASSWD, name.lower(),
        lambda: ctx.accounts.set_password(name, body.password),
    )  # fmt: skip
    ctx.sessions.revoke_account(account.name)
    return _out(account)


async def _set_disabled(
    name: str, disabled: bool, request: Request, ctx: CtxDep, audit: AuditDep, who: Principal
) -> AccountOut:
    action = Action.USER_DISABLE if disabled else Action.USER_ENABLE
    account = await _change(
        ctx, audit, request, who, action, name.lower(),
        lambda: ctx.accounts.set_disabled(name, disabled),
    )  # fmt: skip
    ctx.sessions.revoke_account(account.name)
    return _out(account)


@router.post("/{name}/disable", response_model=AccountOut, responses=_ONE)
async def disable_account(
    name: NamePath, request: Request, ctx: CtxDep, audit: AuditDep, principal: AdminDep
) -> AccountOut:
    """The account may no longer sign in; its sessions end at once."""
    return await _set_disabled(name, True, request, ctx, audit, principal)


@router.post("/{name}/enable", response_model=AccountOut, responses=_ONE)
async def enable_account(
    name: NamePath, request: Request, ctx: CtxDep, audit: AuditDep, principal: AdminDep
) -> AccountOut:
    """The account may sign in again (sessions from before the disable stay ended)."""
    return await _set_disabled(name, False, request, ctx, audit, principal)


@router.delete("/{name}", status_code=204, responses=_ONE)
async def remove_account(
    name: NamePath, request: Request, ctx: CtxDep, audit: AuditDep, principal: AdminDep
) -> Response:
    """Remove the account; its sessions end at once."""
    account = await _change(
        ctx, audit, request, principal, Action.USER_REMOVE, name.lower(),
        lambda: ctx.accounts.remove(name),
    )  # fmt: skip
    ctx.sessions.revoke_account(account.name)
    return Response(status_code=204)
