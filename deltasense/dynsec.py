"""A small typed client for Mosquitto's dynamic security plugin.

The plugin keeps the broker's clients (username, password hash, optional bound
client id), roles (ACL lists) and default access in a JSON file, and takes
changes live as JSON commands published on ``$CONTROL/dynamic-security/v1``;
each batch is answered on ``…/v1/response`` with the same ``correlationData``.
Changes apply at once, with no broker restart; disabling or deleting a client
disconnects it if it is connected.

Only an admin identity (a role allowed on ``$CONTROL/dynamic-security/#``) may
send commands. :func:`initial_config` writes the plugin's first file, so the
admin secret never appears on a command line (``mosquitto_ctrl dynsec init``
would take it as an argument).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import aiomqtt

CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = f"{CONTROL_TOPIC}/response"
# What Mosquitto 2.0 itself uses; the secrets are 256-bit random tokens, so the
# iteration count is not what protects them.
PBKDF2_ITERATIONS: Final = 101
ADMIN_ROLE: Final = "admin"  # the role allowed on the plugin's control topic


class DynsecError(Exception):
    """The plugin refused a command; ``error`` is its own message."""

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"{command}: {error}")
        self.command = command
        self.error = error


class NotFoundError(DynsecError):
    """The client or role named in a command does not exist."""


class AlreadyExistsError(DynsecError):
    """A client or role with that name exists already."""


class DynsecUnavailable(Exception):
    """The broker could not be reached, refused the admin identity, or did not answer."""


class AclType(StrEnum):
    PUBLISH_SEND = "publishClientSend"
    PUBLISH_RECEIVE = "publishClientReceive"
    SUBSCRIBE_LITERAL = "subscribeLiteral"
    SUBSCRIBE_PATTERN = "subscribePattern"
    UNSUBSCRIBE_LITERAL = "unsubscribeLiteral"
    UNSUBSCRIBE_PATTERN = "unsubscribePattern"


@dataclass(frozen=True)
class Acl:
    acltype: AclType
    topic: str
    allow: bool = True
    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "acltype": str(self.acltype),
            "topic": self.topic,
            "allow": self.allow,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class ClientInfo:
    username: str
    clientid: str | None
    textname: str
    textdescription: str
    roles: tuple[str, ...]
    disabled: bool


@dataclass(frozen=True)
class RoleInfo:
    rolename: str
    acls: tuple[Acl, ...] = field(default=())


def hash_password(password: str, *, salt: bytes | None = None) -> dict[str, Any]:
    """The plugin's stored form of a password: PBKDF2-SHA512, base64."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": PBKDF2_ITERATIONS,
    }


def admin_acls() -> list[Acl]:
    """The admin identity may drive the plugin and nothing else."""
    topic = "$CONTROL/dynamic-security/#"
    return [
        Acl(AclType.PUBLISH_SEND, topic),
        Acl(AclType.PUBLISH_RECEIVE, topic),
        Acl(AclType.SUBSCRIBE_PATTERN, topic),
        Acl(AclType.UNSUBSCRIBE_PATTERN, topic),
    ]


def initial_config(path: Path, *, admin_username: str, admin_password: str) -> None:
    """Write the plugin's first file (mode 0600): one admin client, deny by default.

    Default access: nobody may publish or subscribe unless a role allows it;
    delivering a message to a subscription the client was allowed to make is
    allowed (the receive side is narrowed per role where it matters).
    """
    doc = {
        "clients": [
            {
                "username": admin_username,
                "textName": "DeltaSense broker administration",
                **hash_password(admin_password),
                "roles": [{"rolename": ADMIN_ROLE}],
            }
        ],
        "groups": [],
        "roles": [{"rolename": ADMIN_ROLE, "acls": [a.as_json() for a in admin_acls()]}],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
    }
    write_private(path, json.dumps(doc, indent=1).encode())


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, atomically and durably (fsynced before
    and after the rename: some secrets, like a spent-on-use refresh token, exist
    nowhere else)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _error(command: str, error: str) -> DynsecError:
    lowered = error.lower()
    if "not found" in lowered:
        return NotFoundError(command, error)
    if "already exists" in lowered:
        return AlreadyExistsError(command, error)
    return DynsecError(command, error)


class Dynsec:
    """Commands to the plugin over one admin MQTT connection (see :func:`connect`)."""

    def __init__(self, client: aiomqtt.Client, *, timeout_s: float = 5.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._lock = asyncio.Lock()

    async def run(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send one batch; the ``data`` of each response, or raise the first error."""
        async with self._lock:
            tag = secrets.token_hex(8)
            batch = [{**c, "correlationData": f"{tag}-{i}"} for i, c in enumerate(commands)]
            await self._client.publish(CONTROL_TOPIC, json.dumps({"commands": batch}), qos=1)
            try:
                async with asyncio.timeout(self._timeout_s):
                    async for message in self._client.messages:
                        responses = _responses(message.payload)
                        if responses and str(responses[0].get("correlationData", "")).startswith(
                            tag
                        ):
                            break
            except TimeoutError:
                raise DynsecUnavailable(
                    f"no answer from the dynamic security plugin in {self._timeout_s:.0f} s "
                    "(is the plugin loaded, and may this identity use it?)"
                ) from None
        out: list[dict[str, Any]] = []
        for sent, got in zip(batch, responses, strict=False):
            if got.get("error"):
                raise _error(str(sent["command"]), str(got["error"]))
            data = got.get("data")
            out.append(data if isinstance(data, dict) else {})
        return out

    async def one(self, command: str, **params: Any) -> dict[str, Any]:
        return (await self.run([{"command": command, **params}]))[0]

    # --- clients ------------------------------------------------------------------------
    async def create_client(
        self,
        *,
        username: str,
        password: str,
        clientid: str | None = None,
        textname: str = "",
        textdescription: str = "",
        roles: Iterable[str] = (),
    ) -> None:
        params: dict[str, Any] = {
            "username": username,
            "password": password,
            "textname": textname,
            "textdescription": textdescription,
            "roles": [{"rolename": r} for r in roles],
        }
        if clientid is not None:
            params["clientid"] = clientid
        await self.one("createClient", **params)

    async def delete_client(self, *, username: str) -> None:
        await self.one("deleteClient", username=username)

    async def set_client_password(self, *, username: str, password: str) -> None:
        await self.one("setClientPassword", username=username, password=password)

    async def disable_client(self, *, username: str) -> None:
        await self.one("disableClient", username=username)

    async def enable_client(self, *, username: str) -> None:
        await self.one("enableClient", username=username)

    async def add_client_role(self, *, username: str, rolename: str) -> None:
        await self.one("addClientRole", username=username, rolename=rolename)

    async def get_client(self, *, username: str) -> ClientInfo:
        data = await self.one("getClient", username=username)
        return _client_info(data.get("client", {}))

    async def list_clients(self) -> list[ClientInfo]:
        data = await self.one("listClients", verbose=True, count=-1, offset=0)
        return [_client_info(c) for c in data.get("clients", [])]

    # --- roles --------------------------------------------------------------------------
    async def create_role(self, *, rolename: str, acls: Iterable[Acl] = ()) -> None:
        await self.one("createRole", rolename=rolename, acls=[a.as_json() for a in acls])

    async def delete_role(self, *, rolename: str) -> None:
        await self.one("deleteRole", rolename=rolename)

    async def get_role(self, *, rolename: str) -> RoleInfo:
        data = (await self.one("getRole", rolename=rolename)).get("role", {})
        acls = tuple(
            Acl(AclType(a["acltype"]), a["topic"], bool(a["allow"]), int(a.get("priority", 0)))
            for a in data.get("acls", [])
        )
        return RoleInfo(rolename=str(data.get("rolename", rolename)), acls=acls)

    async def set_role_acls(self, *, rolename: str, acls: Sequence[Acl]) -> None:
        """Make the role hold exactly ``acls`` (created if missing), in one batch."""
        try:
            current = await self.get_role(rolename=rolename)
        except NotFoundError:
            await self.create_role(rolename=rolename, acls=acls)
            return
        want = {(a.acltype, a.topic): a for a in acls}
        commands: list[dict[str, Any]] = [
            {"command": "removeRoleACL", "rolename": rolename, "acltype": str(a.acltype),
             "topic": a.topic}
            for a in current.acls
            if want.get((a.acltype, a.topic)) != a
        ]  # fmt: skip
        have = set(current.acls)
        commands += [
            {"command": "addRoleACL", "rolename": rolename, **a.as_json()}
            for a in acls
            if a not in have
        ]
        if commands:
            await self.run(commands)

    async def set_default_acl_access(
        self, *, publish_send: bool, publish_receive: bool, subscribe: bool, unsubscribe: bool
    ) -> None:
        await self.one(
            "setDefaultACLAccess",
            acls=[
                {"acltype": "publishClientSend", "allow": publish_send},
                {"acltype": "publishClientReceive", "allow": publish_receive},
                {"acltype": "subscribe", "allow": subscribe},
                {"acltype": "unsubscribe", "allow": unsubscribe},
            ],
        )


def _responses(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, bytes | bytearray):
        return []
    try:
        doc = json.loads(payload)
    except ValueError:
        return []
    responses = doc.get("responses") if isinstance(doc, dict) else None
    return [r for r in responses if isinstance(r, dict)] if isinstance(responses, list) else []


def _client_info(data: dict[str, Any]) -> ClientInfo:
    return ClientInfo(
        username=str(data.get("username", "")),
        clientid=data.get("clientid") or None,
        textname=str(data.get("textname", "")),
        textdescription=str(data.get("textdescription", "")),
        roles=tuple(str(r.get("rolename")) for r in data.get("roles", [])),
        disabled=bool(data.get("disabled", False)),
    )


@contextlib.asynccontextmanager
async def connect(
    *,
    host: str,
    port: int,
    username: str,
    password: str,
    tls: ssl.SSLContext | None = None,
    timeout_s: float = 5.0,
) -> AsyncIterator[Dynsec]:
    """An admin connection subscribed to the plugin's responses (over TLS with ``tls``)."""
    client = aiomqtt.Client(
        host,
        port,
        username=username,
        password=password,
        tls_context=tls,
        identifier=f"deltasense-admin-{secrets.token_hex(4)}",
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=timeout_s,
    )
    try:
        async with client:
            await client.subscribe(RESPONSE_TOPIC, qos=1)
            yield Dynsec(client, timeout_s=timeout_s)
    except aiomqtt.MqttCodeError as exc:
        raise DynsecUnavailable(f"broker {host}:{port} refused the admin identity: {exc}") from None
    except aiomqtt.MqttError as exc:
        raise DynsecUnavailable(f"broker {host}:{port} unreachable: {exc}") from None
