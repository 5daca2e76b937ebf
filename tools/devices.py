"""``deltasense devices``: per-device broker identities (docs/SECURITY.md).

Every command talks to the running broker's dynamic security plugin as the
stack's admin (``var/secrets/mqtt/admin.broker``), so changes apply at once,
and is recorded in the audit log (the OS user, ``cli``, the outcome).
A new secret is shown once, in the node config it belongs to, or written to a
0600 file with ``--secret-file`` for ``deltasense firmware flash``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from deltasense import audit, dynsec, provisioning
from deltasense.audit import Action, Result
from deltasense.contract import Kind
from deltasense.dynsec import write_private
from deltasense.provisioning import DeviceRecord
from deltasense.settings import Settings

devices_app = typer.Typer(help="Device identities on the broker.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()
_T = TypeVar("_T")


def _fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _settings() -> Settings:
    from tools.cli import _settings as load

    return load()


def audit_or_fail(
    settings: Settings, what: Action, target: str, result: Result, detail: dict[str, object]
) -> None:
    """One audit entry for a CLI command: the OS user, origin ``cli`` (deltasense/audit.py);
    the command fails if it cannot be recorded."""
    try:
        audit.record_cli(settings.audit_path, what, target, result, detail)
    except audit.AuditError as exc:
        _fail(f"done ({result}), but not recorded in the audit log: {exc}", code=1)


def _run(
    settings: Settings,
    action: Callable[[dynsec.Dynsec, provisioning.BrokerLogin], Awaitable[_T]],
    *,
    what: Action,
    target: str,
    detail: dict[str, object] | None = None,
) -> _T:
    """Run ``action`` as the stack's broker admin; audited, whatever the outcome."""
    from tools.broker import admin_login

    async def main() -> _T:
        login = admin_login(settings)
        async with dynsec.connect(
            host=login.host,
            port=login.port,
            username=login.username,
            password=login.password,
            tls=login.tls,
        ) as ds:
            return await action(ds, login)

    info = dict(detail or {})
    try:
        value = asyncio.run(main())
    except provisioning.ProvisioningError as exc:
        audit_or_fail(
            settings, what, target, provisioning.audit_result(exc), info | {"error": str(exc)}
        )
        _fail(str(exc), code=1)
    except dynsec.DynsecUnavailable as exc:
        audit_or_fail(settings, what, target, Result.ERROR, info | {"error": str(exc)})
        _fail(f"{exc} (is the stack running? `deltasense up`)", code=1)
    except dynsec.DynsecError as exc:
        audit_or_fail(settings, what, target, Result.ERROR, info | {"error": str(exc)})
        _fail(f"the broker refused: {exc}", code=1)
    audit_or_fail(settings, what, target, Result.OK, info)
    return value


def _hand_over(
    settings: Settings, record: DeviceRecord, secret: str, secret_file: Path | None
) -> None:
    if secret_file is not None:
        write_private(secret_file, (secret + "\n").encode())
        out.print(f"secret written to {secret_file} (mode 0600); flash it with")
        out.print(
            f"  deltasense firmware flash --kind {record.kind} --device {record.device} "
            f"--district {record.district} --mqtt-password-file {secret_file} …",
            highlight=False,
        )
        return
    out.print("node config (shown once; the broker keeps only a hash):")
    out.print_json(
        data=provisioning.node_config(
            record, secret, host=settings.mqtt_host, port=settings.mqtt_port, tls=settings.mqtt_tls
        )
    )


SecretFile = Annotated[
    Path | None,
    typer.Option(help="Write the secret to this file (0600) instead of printing it."),
]
DeviceArg = Annotated[str, typer.Argument(help="Device id (its MQTT username and client id).")]


@devices_app.command("add")
def add(
    device: DeviceArg,
    kind: Annotated[Kind, typer.Option(help="What the node measures.")],
    district: Annotated[str, typer.Option(help="District (second topic level).")],
    secret_file: SecretFile = None,
) -> None:
    """Create a device's identity: its own topics only, bound to its client id."""
    settings = _settings()

    async def action(ds: dynsec.Dynsec, _: provisioning.BrokerLogin) -> tuple[DeviceRecord, str]:
        secret = await provisioning.add_device(
            ds, site=settings.site, district=district, kind=kind, device=device
        )
        return await provisioning.get_device(ds, device), secret

    record, secret = _run(
        settings,
        action,
        what=Action.DEVICE_ADD,
        target=device,
        detail={"site": settings.site, "district": district, "kind": str(kind)},
    )
    out.print(f"device {record.device} added ({record.kind} in {record.district})")
    _hand_over(settings, record, secret, secret_file)


@devices_app.command("add-gateway")
def add_gateway(
    district: Annotated[str, typer.Option(help="The ward the gateway serves.")],
    secret_file: SecretFile = None,
) -> None:
    """Create a district edge gateway's identity gw.<district> (edge/README.md)."""
    settings = _settings()

    async def action(ds: dynsec.Dynsec, _: provisioning.BrokerLogin) -> str:
        return await provisioning.add_gateway(ds, site=settings.site, district=district)

    username = f"gw.{district}"
    secret = _run(
        settings, action, what=Action.GATEWAY_ADD, target=username, detail={"site": settings.site}
    )
    out.print(f"gateway {username} added (site {settings.site})")
    if secret_file is not None:
        write_private(secret_file, (secret + "\n").encode())
        out.print(f"secret written to {secret_file} (mode 0600): DELTASENSE_EDGE_UPLINK_PASSWORD")
        return
    out.print("gateway settings (shown once; the broker keeps only a hash):")
    out.print_json(
        data={
            "DELTASENSE_EDGE_SITE": settings.site,
            "DELTASENSE_EDGE_DISTRICT": district,
            "DELTASENSE_EDGE_UPLINK_HOST": settings.mqtt_host,
            "DELTASENSE_EDGE_UPLINK_PORT": settings.mqtt_port,
            "DELTASENSE_EDGE_UPLINK_PASSWORD": secret,
        }
    )


@devices_app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every provisioned device and whether it may connect."""
    records = _run(
        _settings(), lambda ds, _: provisioning.list_devices(ds), what=Action.DEVICE_LIST, target=""
    )
    if json_out:
        out.print_json(data=[r.as_dict() for r in records])
        return
    table = Table("device", "kind", "district", "site", "state", box=None)
    for r in records:
        state = "[green]enabled[/]" if r.enabled else "[red]revoked[/]"
        table.add_row(r.device, r.kind, r.district, r.site, state)
    out.print(table)


@devices_app.command("show")
def show(device: DeviceArg) -> None:
    """One device's identity and the topics it may use."""
    record = _run(
        _settings(),
        lambda ds, _: provisioning.get_device(ds, device),
        what=Action.DEVICE_SHOW,
        target=device,
    )
    out.print_json(
        data={
            **record.as_dict(),
            "publish": [f"{record.base}/{c}" for c in ("tele", "status", "meta", "ack")],
            "subscribe": [f"{record.base}/{c}" for c in ("cmd", "cfg")],
        }
    )


@devices_app.command("rotate")
def rotate(
    device: DeviceArg,
    wait: Annotated[
        float, typer.Option(min=1, max=600, help="Seconds to wait for the node's confirmation.")
    ] = 30.0,
    force: Annotated[
        bool,
        typer.Option(help="Switch even without confirmation (the node then needs re-flashing)."),
    ] = False,
    secret_file: SecretFile = None,
) -> None:
    """New secret for a running node, pushed over its own cfg; no reading is lost."""
    settings = _settings()

    async def action(
        ds: dynsec.Dynsec, login: provisioning.BrokerLogin
    ) -> tuple[DeviceRecord, str]:
        secret = await provisioning.rotate_device(ds, login, device, wait_s=wait, force=force)
        return await provisioning.get_device(ds, device), secret

    record, secret = _run(
        settings,
        action,
        what=Action.DEVICE_ROTATE,
        target=device,
        detail={"force": force, "wait_s": wait},
    )
    out.print(f"device {device}: new secret in force; the node has it" if not force else
              f"device {device}: new secret in force (forced)")  # fmt: skip
    if force or secret_file is not None:
        _hand_over(settings, record, secret, secret_file)


@devices_app.command("revoke")
def revoke(device: DeviceArg) -> None:
    """Disable a device: disconnected now if connected, refused from then on."""
    _run(
        _settings(),
        lambda ds, _: provisioning.revoke_device(ds, device),
        what=Action.DEVICE_REVOKE,
        target=device,
    )
    out.print(f"device {device} revoked (disconnected and refused; `devices enable` undoes)")


@devices_app.command("enable")
def enable(device: DeviceArg) -> None:
    """Let a revoked device connect again (with its existing secret)."""
    _run(
        _settings(),
        lambda ds, _: provisioning.enable_device(ds, device),
        what=Action.DEVICE_ENABLE,
        target=device,
    )
    out.print(f"device {device} enabled")
