"""Device identities on the broker, for admins: `deltasense devices …` over HTTP.

add, list, show, rotate, revoke and enable, done by deltasense/provisioning.py
over the broker's dynamic security plugin.  That takes a broker admin identity,
which this API holds only when configured (``DELTASENSE_MQTT_ADMIN_USERNAME`` /
``_PASSWORD``; ``deltasense up`` gives it ``admin.api``); without one these
routes answer 503.  A new secret is returned once (add, forced rotate); list
and show never hold it.  Every call is recorded in the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api import auditing
from api.auth import Principal
from api.deps import AdminDep, AuditDep, DevicePath, SettingsDep
from api.models import DeviceIdentity, DeviceIdentityIn, DeviceSecret
from api.paging import PagerDep, page_sorted
from deltasense import access, dynsec, provisioning
from deltasense.audit import Action, AuditLog, Result
from deltasense.mqtt import tls_context
from deltasense.provisioning import BrokerLogin, DeviceRecord
from deltasense.settings import Settings

router = APIRouter(prefix="/admin/devices", tags=["device identities"])
_T = TypeVar("_T")
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an admin"},
    503: {"description": "Broker unreachable, or no broker admin configured"},
}
_ONE: dict[int | str, dict[str, Any]] = {**_ERRORS, 404: {"description": "No such device"}}


def _identity(record: DeviceRecord) -> DeviceIdentity:
    base = record.base if record.site else ""
    return DeviceIdentity(
        **record.as_dict(),
        publish=[f"{base}/{c}" for c in access.DEVICE_SENDS] if base else [],
        subscribe=[f"{base}/{c}" for c in access.DEVICE_RECEIVES] if base else [],
    )


def _config(settings: Settings, record: DeviceRecord, secret: str) -> dict[str, str | int | bool]:
    return provisioning.node_config(
        record, secret, host=settings.mqtt_host, port=settings.mqtt_port, tls=settings.mqtt_tls
    )


class _Call:
    """One audited request against the plugin: who, from where, what, outcome."""

    def __init__(
        self,
        settings: Settings,
        audit: AuditLog,
        request: Request,
        principal: Principal,
        action: Action,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.settings, self.audit, self.request = settings, audit, request
        self.principal, self.action, self.target = principal, action, target
        self.detail = detail or {}

    async def _record(self, result: Result, **more: Any) -> None:
        await auditing.record(
            self.audit,
            self.request,
            self.principal,
            self.action,
            self.target,
            result,
            self.detail | more,
        )

    async def run(self, op: Callable[[dynsec.Dynsec, BrokerLogin], Awaitable[_T]]) -> _T:
        s = self.settings
        if not (s.mqtt_admin_username and s.mqtt_admin_password):
            await self._record(Result.ERROR, error="no broker admin configured")
            raise HTTPException(
                503,
                "device administration is not configured on this API "
                "(DELTASENSE_MQTT_ADMIN_USERNAME / _PASSWORD); use `deltasense devices`",
            )
        login = BrokerLogin(
            s.mqtt_host,
            s.mqtt_port,
            s.mqtt_admin_username,
            s.mqtt_admin_password,
            tls=tls_context(s),  # the broker's CA pinned, as every service does
        )
        try:
            async with dynsec.connect(
                host=login.host,
                port=login.port,
                username=login.username,
                password=login.password,
                tls=login.tls,
            ) as ds:
                value = await op(ds, login)
        except provisioning.ProvisioningError as exc:
            await self._record(provisioning.audit_result(exc), error=str(exc))
            status = 404 if isinstance(exc, provisioning.DeviceNotFound) else 409
            raise HTTPException(status, str(exc)) from None
        except (dynsec.DynsecUnavailable, dynsec.DynsecError) as exc:
            await self._record(Result.ERROR, error=str(exc))
            raise HTTPException(503, "the broker's dynamic security plugin failed") from exc
        await self._record(Result.OK)
        return value


@router.get("", response_model=list[DeviceIdentity], responses=_ERRORS)
async def list_identities(
    settings: SettingsDep,
    audit: AuditDep,
    request: Request,
    principal: AdminDep,
    pager: PagerDep,
    response: Response,
    limit: Annotated[
        int, Query(ge=1, le=10_000, description="Per page (all by default).")
    ] = 10_000,
) -> list[DeviceIdentity]:
    """Every provisioned device and whether it may connect (no secrets), by device id;
    pages with `cursor` (from the `Link: rel=next` header)."""
    after = pager.position(str)
    call = _Call(settings, audit, request, principal, Action.DEVICE_LIST, "")
    records = await call.run(lambda ds, _: provisioning.list_devices(ds))
    ordered = sorted(records, key=lambda r: r.device)
    page, following = page_sorted(ordered, lambda r: [r.device], after, limit)
    response.headers.update(pager.headers(following))
    return [_identity(r) for r in page]


@router.post(
    "",
    status_code=201,
    response_model=DeviceSecret,
    responses={**_ERRORS, 409: {"description": "Exists already"}},
)
async def add_identity(
    body: DeviceIdentityIn,
    settings: SettingsDep,
    audit: AuditDep,
    request: Request,
    principal: AdminDep,
) -> DeviceSecret:
    """Create a device's identity (its own topics only, bound to its client id).

    The response holds its secret, once: store it on the node."""
    detail = {"site": settings.site, "district": body.district, "kind": str(body.kind)}
    call = _Call(settings, audit, request, principal, Action.DEVICE_ADD, body.device, detail)

    async def op(ds: dynsec.Dynsec, _: BrokerLogin) -> tuple[DeviceRecord, str]:
        secret = await provisioning.add_device(
            ds, site=settings.site, district=body.district, kind=body.kind, device=body.device
        )
        return await provisioning.get_device(ds, body.device), secret

    record, secret = await call.run(op)
    return DeviceSecret(identity=_identity(record), config=_config(settings, record, secret))


@router.get("/{device}", response_model=DeviceIdentity, responses=_ONE)
async def show_identity(
    device: DevicePath,
    settings: SettingsDep,
    audit: AuditDep,
    request: Request,
    principal: AdminDep,
) -> DeviceIdentity:
    """One device's identity and the topics it may use (no secret)."""
    call = _Call(settings, audit, request, principal, Action.DEVICE_SHOW, device)
    return _identity(await call.run(lambda ds, _: provisioning.get_device(ds, device)))


@router.post(
    "/{device}/rotate",
    response_model=DeviceSecret | DeviceIdentity,
    responses={**_ONE, 409: {"description": "Revoked, or the node did not confirm in time"}},
)
async def rotate_identity(
    device: DevicePath,
    settings: SettingsDep,
    audit: AuditDep,
    request: Request,
    principal: AdminDep,
    wait_s: Annotated[
        float, Query(ge=1, le=120, description="Seconds to wait for the node's confirmation.")
    ] = 30.0,
    force: Annotated[
        bool, Query(description="Switch without confirmation; the node then needs flashing.")
    ] = False,
) -> DeviceSecret | DeviceIdentity:
    """A new secret for a running node, pushed over its own retained `cfg`.

    Confirmed by the node: its identity (the node has the secret; it is not
    returned). Forced: the new secret, once, to flash. Not confirmed: 409, and
    the old secret stays valid."""
    detail = {"force": force, "wait_s": wait_s}
    call = _Call(settings, audit, request, principal, Action.DEVICE_ROTATE, device, detail)

    async def op(ds: dynsec.Dynsec, login: BrokerLogin) -> tuple[DeviceRecord, str]:
        secret = await provisioning.rotate_device(ds, login, device, wait_s=wait_s, force=force)
        return await provisioning.get_device(ds, device), secret

    record, secret = await call.run(op)
    if force:
        return DeviceSecret(identity=_identity(record), config=_config(settings, record, secret))
    return _identity(record)


@router.post("/{device}/revoke", response_model=DeviceIdentity, responses=_ONE)
async def revoke_identity(
    device: DevicePath,
    settings: SettingsDep,
    audit: AuditDep,
    request: Request,
    principal: AdminDep,
) -> DeviceIdentity:
    """Disable a device: disconnected at once if connected, refused from then on."""
    call = _Call(settings, audit, request, principal, Action.DEVICE_REVOKE, device)

    async def op(ds: dynsec.Dynsec, _: BrokerLogin) -> DeviceRecord:
        await provisioning.revoke_device(ds, device)
        return await provisioning.get_device(ds, device)

    return _identity(await call.run(op))


@router.post("/{device}/enable", response_model=DeviceIdentity, responses=_ONE)
async def enable_identity(
    device: DevicePath,
    settings: SettingsDep,
    audit: AuditDep,
    request: Request,
    principal: AdminDep,
) -> DeviceIdentity:
    """Let a revoked device connect again, with its existing secret."""
    call = _Call(settings, audit, request, principal, Action.DEVICE_ENABLE, device)

    async def op(ds: dynsec.Dynsec, _: BrokerLogin) -> DeviceRecord:
        await provisioning.enable_device(ds, device)
        return await provisioning.get_device(ds, device)

    return _identity(await call.run(op))
