"""``deltasense users``: named operator accounts for the console (api/accounts.py).

Works on ``var/secrets/users.json`` directly, so it needs no running API; a
running API notices the change at its next request (a disabled account's or a
changed password's sessions end then).  A password is never an argument (it
would be in ``ps`` and the shell's history): it is asked for twice on a terminal,
or read as one line from stdin with ``--password-stdin``.  Every command is
recorded in the audit log (the OS user, ``cli``), refusals included.
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from api.accounts import AccountError, AccountStore, NoSuchAccount
from api.auth import Role
from deltasense.audit import Action, Result
from deltasense.runtime import now_ms
from deltasense.settings import Settings
from tools.devices import audit_or_fail

users_app = typer.Typer(help="Operator accounts for the console.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()
NameArg = Annotated[str, typer.Argument(help="The username (a-z first, then a-z 0-9 . _ -).")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password as one line from stdin.")
]


def _fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    from tools.cli import _settings as load

    return load()


def _store(settings: Settings) -> AccountStore:
    return AccountStore(settings.var_dir, min_length=settings.api_password_min_length)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        # Bytes, decoded here: what is not UTF-8 reaches the policy as such (a clear
        # refusal), not as a traceback from the text layer.
        raw = sys.stdin.buffer.readline()
        return raw.decode("utf-8", "surrogateescape").removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        _fail("no terminal to ask for the password on: use --password-stdin")
    first = typer.prompt("password", hide_input=True)
    if typer.prompt("again", hide_input=True) != first:
        _fail("the two passwords differ")
    return str(first)


def _shown(name: str) -> str:
    """A name for the audit log and messages: bounded, no control characters."""
    return name[:64].encode("unicode_escape").decode("ascii")


def _run(settings: Settings, action: Action, name: str, op: object, **detail: object) -> None:
    """Run ``op`` (a thunk), audited; AccountError fails the command with its message."""
    assert callable(op)
    target = _shown(name.lower())
    try:
        op()
    except NoSuchAccount as exc:
        audit_or_fail(settings, action, target, Result.NOT_FOUND, dict(detail))
        _fail(str(exc), code=1)
    except AccountError as exc:
        audit_or_fail(settings, action, target, Result.INVALID, detail | {"error": str(exc)})
        _fail(str(exc))
    audit_or_fail(settings, action, target, Result.OK, dict(detail))


@users_app.command("add")
def add(
    name: NameArg,
    role: Annotated[Role, typer.Option(help="viewer < operator < admin.")] = Role.VIEWER,
    password_stdin: PasswordStdin = False,
) -> None:
    """Make an account with a role and a first password."""
    settings = _settings()
    if role is Role.METRICS:
        _fail("an account's role is viewer, operator or admin (metrics is for tokens)")
    password = _password(password_stdin)
    _run(settings, Action.USER_ADD, name, lambda: _store(settings).add(name, role, password),
         new_role=role.value)  # fmt: skip
    out.print(f"account {name.lower()!r} added ({role.value})", highlight=False)


@users_app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every account: role, enabled or not, when its password was set."""
    accounts = _store(_settings()).list()
    if json_out:
        out.print_json(data=[a.public() for a in accounts])
        return
    table = Table("name", "role", "state", "password set (days ago)", box=None)
    for a in accounts:
        days = (now_ms() - a.password_changed_ms) // 86_400_000
        table.add_row(a.name, a.role.value, "disabled" if a.disabled else "enabled", str(days))
    out.print(table)


@users_app.command("passwd")
def passwd(name: NameArg, password_stdin: PasswordStdin = False) -> None:
    """Set a new password; the account's console sessions end."""
    settings = _settings()
    password = _password(password_stdin)
    _run(settings, Action.USER_PASSWD, name,
         lambda: _store(settings).set_password(name, password))  # fmt: skip
    out.print(f"password of {name.lower()!r} changed; its sessions are ended", highlight=False)


@users_app.command("disable")
def disable(name: NameArg) -> None:
    """The account may no longer sign in; its console sessions end."""
    settings = _settings()
    _run(settings, Action.USER_DISABLE, name, lambda: _store(settings).set_disabled(name, True))
    out.print(f"account {name.lower()!r} disabled", highlight=False)


@users_app.command("enable")
def enable(name: NameArg) -> None:
    """The account may sign in again."""
    settings = _settings()
    _run(settings, Action.USER_ENABLE, name, lambda: _store(settings).set_disabled(name, False))
    out.print(f"account {name.lower()!r} enabled", highlight=False)


@users_app.command("remove")
def remove(name: NameArg) -> None:
    """Remove the account; its console sessions end."""
    settings = _settings()
    _run(settings, Action.USER_REMOVE, name, lambda: _store(settings).remove(name))
    out.print(f"account {name.lower()!r} removed", highlight=False)
