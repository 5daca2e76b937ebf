"""Commands to devices: a contract ``cmd`` message, QoS 1, on the device's own topic."""

from __future__ import annotations

import logging
import uuid

import msgspec
from fastapi import APIRouter, HTTPException, Request

from api import auditing, store
from api.commandlog import SentCommand
from api.deps import AuditDep, DbDep, DevicePath, HubDep, OperatorDep, SettingsDep, ViewerDep
from api.hub import MqttUnavailable
from api.models import CommandIn, CommandOut, CommandState
from deltasense.audit import Action, Result
from deltasense.contract import MAX_PAYLOAD_BYTES, Channel, Command, device_topic
from deltasense.runtime import now_ms

_LOG = logging.getLogger(__name__)
router = APIRouter(prefix="/devices", tags=["commands"])


@router.post(
    "/{device}/commands",
    status_code=202,
    response_model=CommandOut,
    responses={404: {"description": "Unknown device"}, 503: {"description": "Broker down"}},
)
async def send_command(
    device: DevicePath,
    body: CommandIn,
    db: DbDep,
    hub: HubDep,
    settings: SettingsDep,
    principal: OperatorDep,
    audit: AuditDep,
    request: Request,
) -> CommandOut:
    """Send a command; recorded in the audit log (who, from where, what, outcome)."""
    asked = {"name": body.name, "args": body.args, "ttl_s": body.ttl_s}

    async def audited(result: Result, **detail: object) -> None:
        await auditing.record(
            audit, request, principal, Action.COMMAND_SEND, device, result, asked | detail
        )

    info = await store.get_device(db, settings.site, device)
    if info is None:
        await audited(Result.NOT_FOUND)
        raise HTTPException(404, f"unknown device {device!r}")
    command = Command(
        id=uuid.uuid4().hex,
        name=body.name,
        args=body.args,
        expires=now_ms() + body.ttl_s * 1000,
    )
    payload = msgspec.json.encode(command)
    if len(payload) > MAX_PAYLOAD_BYTES:
        await audited(Result.INVALID, error="too large")
        raise HTTPException(422, f"command is {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES}")
    topic = device_topic(info.site, info.district, info.kind, device, Channel.CMD)
    # Recorded before publishing: a quick device may answer before publish returns.
    hub.commands.sent(
        SentCommand(
            id=command.id,
            device=device,
            name=command.name,
            args=command.args,
            sent=now_ms(),
            expires=command.expires,
            by=principal.name,
        )
    )
    try:
        await hub.publish(topic, payload)
    except MqttUnavailable:
        hub.commands.forget(command.id)
        await audited(Result.ERROR, id=command.id, topic=topic, error="broker unavailable")
        raise
    await audited(Result.OK, id=command.id, topic=topic)
    _LOG.info("command %s %s sent to %s by %s", command.id, command.name, topic, principal.name)
    return CommandOut(
        id=command.id, name=command.name, args=command.args, expires=command.expires, topic=topic
    )


@router.get(
    "/{device}/commands",
    response_model=list[CommandState],
    responses={404: {"description": "Unknown device"}},
)
async def recent_commands(
    device: DevicePath, db: DbDep, hub: HubDep, settings: SettingsDep, _: ViewerDep
) -> list[CommandState]:
    """Commands this API process sent to the device, newest first, with their status:
    sent, then acked or failed from the device's ack, or expired unanswered."""
    if await store.get_device(db, settings.site, device) is None:
        raise HTTPException(404, f"unknown device {device!r}")
    return [
        CommandState.model_validate(c, from_attributes=True)
        for c in hub.commands.of_device(device, now_ms())
    ]
