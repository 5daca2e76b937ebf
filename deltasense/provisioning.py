"""Device identities on the broker: add, list, show, rotate, revoke, enable.

Used by ``deltasense devices …`` (and an admin API route).  Everything goes
through the dynamic security plugin over an admin connection, so a change
applies at once and the broker is never restarted.  A device's secret is
returned once (for its node config) and kept only as the plugin's hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt

from deltasense import access
from deltasense.access import Service
from deltasense.audit import Result
from deltasense.contract import Channel, Kind, is_ident
from deltasense.dynsec import (
    ADMIN_ROLE,
    AlreadyExistsError,
    ClientInfo,
    Dynsec,
    NotFoundError,
)

_LOG = logging.getLogger(__name__)
RETAINED_WAIT_S: Final = 0.5  # a retained message arrives right after the SUBACK


class ProvisioningError(Exception):
    """A request that cannot be carried out, said so an operator can act on it."""


class RotationNotConfirmed(ProvisioningError):
    """The node did not confirm its new secret in time; the old one stays valid."""


class DeviceNotFound(ProvisioningError):
    """No device of that id is provisioned."""


def audit_result(exc: BaseException) -> Result:
    """How a failed provisioning request ends up in the audit log."""
    if isinstance(exc, DeviceNotFound):
        return Result.NOT_FOUND
    if isinstance(exc, RotationNotConfirmed):
        return Result.UNCONFIRMED
    if isinstance(exc, ProvisioningError):
        return Result.INVALID
    return Result.ERROR


@dataclass(frozen=True)
class BrokerLogin:
    host: str
    port: int
    username: str
    password: str
    tls: ssl.SSLContext | None = None  # the broker's CA pinned (deltasense.mqtt.tls_context)


@dataclass(frozen=True)
class DeviceRecord:
    device: str
    site: str
    district: str
    kind: str
    enabled: bool
    clientid: str | None

    @property
    def base(self) -> str:
        return access.device_base(self.site, self.district, self.kind, self.device)

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "site": self.site,
            "district": self.district,
            "kind": self.kind,
            "enabled": self.enabled,
            "clientid": self.clientid,
            "username": self.device,
        }


def node_config(
    record: DeviceRecord, secret: str, *, host: str, port: int, tls: bool = True
) -> dict[str, str | int | bool]:
    """What a node needs to connect as ``record`` (printed or returned once); with
    ``tls`` it pins the broker's CA, which ``deltasense firmware flash`` copies to it."""
    return {
        "site": record.site,
        "district": record.district,
        "kind": record.kind,
        "device": record.device,
        "broker_host": host,
        "broker_port": port,
        "broker_tls": tls,
        "mqtt_user": record.device,
        "mqtt_pass": secret,
    }


def _record(info: ClientInfo) -> DeviceRecord | None:
    if access.device_role(info.username) not in info.roles:
        return None
    try:
        meta = json.loads(info.textdescription)
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    return DeviceRecord(
        device=info.username,
        site=str(meta.get("site", "")),
        district=str(meta.get("district", "")),
        kind=str(meta.get("kind", "")),
        enabled=not info.disabled,
        clientid=info.clientid,
    )


def _check_device(device: str) -> None:
    if not is_ident(device):
        raise ProvisioningError(f"device id {device!r} must match [a-z0-9][a-z0-9-]{{0,31}}")


# --- the platform's own accounts ---------------------------------------------------------
async def sync_platform(ds: Dynsec, *, site: str, passwords: dict[Service, str]) -> None:
    """Make every service account and role match the policy (idempotent, at each start).

    Setting a password disconnects a client logged in with it, so this runs
    before the services start."""
    for service, password in passwords.items():
        role = service.username
        await ds.set_role_acls(rolename=role, acls=access.service_acls(service, site))
        try:
            await ds.create_client(
                username=service.username,
                password=password,
                textname=f"DeltaSense {service.value}",
                roles=[role],
            )
        except AlreadyExistsError:
            await ds.set_client_password(username=service.username, password=password)
            info = await ds.get_client(username=service.username)
            if role not in info.roles:
                await ds.add_client_role(username=service.username, rolename=role)
            if info.disabled:
                await ds.enable_client(username=service.username)
    # The admin's own role, not a role added to the admin: changing a client's
    # roles disconnects it, and this runs over the admin's connection.
    await ds.set_role_acls(rolename=ADMIN_ROLE, acls=access.admin_role_acls())


async def sync_api_admin(ds: Dynsec, *, password: str | None) -> None:
    """The API's own broker admin (``admin.api``): made to match ``password``, or
    disabled when the API is not to administer devices (``None``)."""
    username = access.API_ADMIN_USERNAME
    if password is None:
        with contextlib.suppress(NotFoundError):
            await ds.disable_client(username=username)
        return
    try:
        await ds.create_client(
            username=username,
            password=password,
            textname="DeltaSense API: device administration",
            roles=[ADMIN_ROLE],
        )
    except AlreadyExistsError:
        await ds.set_client_password(username=username, password=password)
        info = await ds.get_client(username=username)
        if ADMIN_ROLE not in info.roles:
            await ds.add_client_role(username=username, rolename=ADMIN_ROLE)
        if info.disabled:
            await ds.enable_client(username=username)


# --- edge gateways ------------------------------------------------------------------------
async def add_gateway(ds: Dynsec, *, site: str, district: str) -> str:
    """Create a district gateway's account ``gw.<district>`` (its district's device
    topics and its own health topic, access.gateway_acls) bound to that client id; its
    secret, once.  An existing gateway account is refused, as a device is."""
    try:
        acls = access.gateway_acls(site, district)
    except ValueError as exc:
        raise ProvisioningError(str(exc)) from None
    username = access.gateway_username(district)
    try:
        await ds.get_client(username=username)
    except NotFoundError:
        pass
    else:
        raise ProvisioningError(f"gateway {username!r} exists already")
    secret = access.new_secret()
    await ds.set_role_acls(rolename=username, acls=acls)
    try:
        await _create_gateway_client(ds, username, district, secret)
    except AlreadyExistsError:
        raise ProvisioningError(f"gateway {username!r} exists already") from None
    return secret


async def sync_gateway(ds: Dynsec, *, site: str, district: str, password: str) -> None:
    """Make a gateway's account match the policy with this password (idempotent):
    for a stack that keeps the secret itself (``deltasense simulate --edge``)."""
    try:
        acls = access.gateway_acls(site, district)
    except ValueError as exc:
        raise ProvisioningError(str(exc)) from None
    username = access.gateway_username(district)
    await ds.set_role_acls(rolename=username, acls=acls)
    try:
        await _create_gateway_client(ds, username, district, password)
    except AlreadyExistsError:
        await ds.set_client_password(username=username, password=password)


async def _create_gateway_client(ds: Dynsec, username: str, district: str, password: str) -> None:
    """A gateway's account: bound to its own client id, holding its own role."""
    await ds.create_client(
        username=username,
        password=password,
        clientid=username,
        textname=f"edge gateway of {district}",
        roles=[username],
    )


# --- devices ------------------------------------------------------------------------------
async def add_device(ds: Dynsec, *, site: str, district: str, kind: Kind, device: str) -> str:
    """Create the device's identity (bound to its client id) and role; its secret."""
    _check_device(device)
    try:
        acls = access.device_acls(site, district, kind, device)
    except ValueError as exc:
        raise ProvisioningError(str(exc)) from None
    try:
        await ds.get_client(username=device)
    except NotFoundError:
        pass
    else:
        raise ProvisioningError(f"device {device!r} exists already (rotate or revoke it)")
    secret = access.new_secret()
    role = access.device_role(device)
    await ds.set_role_acls(rolename=role, acls=acls)
    try:
        await ds.create_client(
            username=device,
            password=secret,
            clientid=device,
            textname=f"{kind} node {device}",
            textdescription=access.describe(site, district, kind),
            roles=[role],
        )
    except AlreadyExistsError:  # created in between by someone else
        raise ProvisioningError(f"device {device!r} exists already") from None
    return secret


async def list_devices(ds: Dynsec) -> list[DeviceRecord]:
    found = [_record(c) for c in await ds.list_clients()]
    return sorted((r for r in found if r is not None), key=lambda r: r.device)


async def get_device(ds: Dynsec, device: str) -> DeviceRecord:
    _check_device(device)
    try:
        record = _record(await ds.get_client(username=device))
    except NotFoundError:
        record = None
    if record is None:
        raise DeviceNotFound(f"no device {device!r} is provisioned")
    return record


async def revoke_device(ds: Dynsec, device: str) -> DeviceRecord:
    """Disable the identity: a connected node is disconnected at once and refused after."""
    record = await get_device(ds, device)
    await ds.disable_client(username=device)
    return record


async def enable_device(ds: Dynsec, device: str) -> DeviceRecord:
    record = await get_device(ds, device)
    await ds.enable_client(username=device)
    return record


async def remove_device(ds: Dynsec, device: str) -> DeviceRecord:
    record = await get_device(ds, device)
    await ds.delete_client(username=device)  # disconnects it too
    with contextlib.suppress(NotFoundError):
        await ds.delete_role(rolename=access.device_role(device))
    return record


# --- rotation -----------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _watch(login: BrokerLogin, base: str) -> AsyncIterator[aiomqtt.Client]:
    client = aiomqtt.Client(
        login.host,
        login.port,
        username=login.username,
        password=login.password,
        tls_context=login.tls,
        identifier=f"deltasense-rotate-{secrets.token_hex(4)}",
        protocol=aiomqtt.ProtocolVersion.V5,
    )
    async with client:
        await client.subscribe(f"{base}/{Channel.CFG}", qos=1)
        await client.subscribe(f"{base}/{Channel.META}", qos=1)
        yield client


async def _retained_cfg(client: aiomqtt.Client, cfg_topic: str) -> dict[str, Any]:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(RETAINED_WAIT_S):
            async for message in client.messages:
                if str(message.topic) == cfg_topic and message.retain:
                    try:
                        doc = json.loads(message.payload)
                    except (TypeError, ValueError):
                        return {}
                    return doc if isinstance(doc, dict) else {}
    return {}


async def _confirmed(client: aiomqtt.Client, meta_topic: str, wait_s: float) -> bool:
    """A fresh (not retained) meta after the cfg: the node applied it (ds/node.py)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_s):
            async for message in client.messages:
                if str(message.topic) == meta_topic and not message.retain:
                    return True
    return False


async def rotate_device(
    ds: Dynsec, login: BrokerLogin, device: str, *, wait_s: float = 30.0, force: bool = False
) -> str:
    """Give a device a new secret without losing its readings; the new secret.

    1. the new secret goes out in the node's retained ``cfg`` (merged into what
       is retained there), which only the node and the platform may read;
    2. the node stores it and re-publishes its ``meta``: confirmation;
    3. the broker's password is switched, which disconnects the node; it
       reconnects at once with the new secret, its spool keeping the readings;
    4. the retained ``cfg`` is put back without the secret.

    Without a confirmation in ``wait_s`` nothing changes (the node is offline?)
    unless ``force``: then the old secret stops working and the node needs the
    new one flashed.
    """
    record = await get_device(ds, device)
    if not record.enabled:
        raise ProvisioningError(f"device {device!r} is revoked; enable it first")
    if not record.site:
        raise ProvisioningError(f"device {device!r} has no recorded site/district/kind")
    base = record.base
    cfg_topic, meta_topic = f"{base}/{Channel.CFG}", f"{base}/{Channel.META}"
    secret = access.new_secret()
    async with _watch(login, base) as client:
        before = await _retained_cfg(client, cfg_topic)
        kept = {k: v for k, v in before.items() if k != "mqtt_pass"}
        await client.publish(
            cfg_topic, json.dumps({**kept, "mqtt_pass": secret}), qos=1, retain=True
        )
        confirmed = await _confirmed(client, meta_topic, wait_s)
        try:
            if confirmed or force:
                await ds.set_client_password(username=device, password=secret)
        finally:
            # The secret leaves the broker's retained store either way.
            await client.publish(cfg_topic, json.dumps(kept).encode(), qos=1, retain=True)
    if not (confirmed or force):
        raise RotationNotConfirmed(
            f"device {device!r} did not confirm its new secret within {wait_s:g} s "
            "(offline?); its old secret stays valid. Run again while it is online, or "
            "use --force and flash the new secret."
        )
    return secret
