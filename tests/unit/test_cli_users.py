"""`deltasense users …`: accounts made, listed, changed and removed from the CLI,
passwords only from a prompt or stdin, hostile names and weak passwords refused,
every command audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.accounts import AccountStore, Verdict
from deltasense.audit import AuditLog
from tools.cli import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("cli_sandbox")
PASSWORD = "ca trực đêm sông Hậu 2026"


def _store(root: Path) -> AccountStore:
    return AccountStore(root / "var")


def _audit(root: Path) -> list[tuple[str, str, str]]:
    entries = AuditLog(root / "var" / "audit" / "audit.sqlite3").query(action="user")
    return [(e.action, e.target, e.result) for e in reversed(entries)]


def test_add_list_passwd_disable_enable_remove(cli_sandbox: Path) -> None:
    added = runner.invoke(
        app, ["users", "add", "Nguyen.An", "--role", "operator", "--password-stdin"],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    store = _store(cli_sandbox)
    assert store.check("nguyen.an", PASSWORD)[0] is Verdict.OK
    listed = runner.invoke(app, ["users", "list", "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["role"], r["disabled"]) for r in rows] == [
        ("nguyen.an", "operator", False)
    ]
    assert "hash" not in listed.stdout and "argon2" not in listed.stdout
    table = runner.invoke(app, ["users", "list"])
    assert "nguyen.an" in table.stdout and "enabled" in table.stdout
    new = "một mật khẩu khác hẳn 77"
    changed = runner.invoke(app, ["users", "passwd", "nguyen.an", "--password-stdin"], input=new)
    assert changed.exit_code == 0, changed.output
    assert store.check("nguyen.an", new)[0] is Verdict.OK
    assert runner.invoke(app, ["users", "disable", "nguyen.an"]).exit_code == 0
    assert store.check("nguyen.an", new)[0] is Verdict.DISABLED
    assert runner.invoke(app, ["users", "enable", "nguyen.an"]).exit_code == 0
    assert store.check("nguyen.an", new)[0] is Verdict.OK
    assert runner.invoke(app, ["users", "remove", "nguyen.an"]).exit_code == 0
    assert store.list() == []
    again = runner.invoke(app, ["users", "remove", "nguyen.an"])
    assert again.exit_code == 1 and "no account" in again.output
    assert _audit(cli_sandbox) == [
        ("user.add", "nguyen.an", "ok"),
        ("user.passwd", "nguyen.an", "ok"),
        ("user.disable", "nguyen.an", "ok"),
        ("user.enable", "nguyen.an", "ok"),
        ("user.remove", "nguyen.an", "ok"),
        ("user.remove", "nguyen.an", "not_found"),
    ]
    everything = (cli_sandbox / "var" / "audit" / "audit.sqlite3").read_bytes()
    assert PASSWORD.encode() not in everything and new.encode() not in everything


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (["users", "add", "an\x1b[31m"], PASSWORD, "username"),
        (["users", "add", "a"], PASSWORD, "username"),
        (["users", "add", "x" * 500], PASSWORD, "username"),
        (["users", "add", "an"], "short", "at least 12"),
        (["users", "add", "an"], "password1234", "commonly guessed"),
        (["users", "add", "an"], "an-an-an-an-an-an", "username"),
        (["users", "add", "an"], "", "at least 12"),
        (["users", "add", "an"], b"abc\xffdefghijklmnop", "UTF-8"),
        (["users", "add", "an", "--role", "metrics"], PASSWORD, "metrics is for tokens"),
    ],
)
def test_hostile_names_and_weak_passwords_are_refused_clearly(
    cli_sandbox: Path, args: list[str], password: str | bytes, message: str
) -> None:
    data = password if isinstance(password, bytes) else password.encode()
    result = runner.invoke(app, [*args, "--password-stdin"], input=data + b"\n")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "\x1b[31m" not in result.output  # a name's control characters are escaped
    assert "Traceback" not in result.output
    assert _store(cli_sandbox).list() == []


def test_a_role_outside_the_list_and_a_missing_name_are_usage_errors() -> None:
    assert runner.invoke(app, ["users", "add", "an", "--role", "god"]).exit_code == 2
    assert runner.invoke(app, ["users", "add"]).exit_code == 2


def test_without_a_terminal_the_password_must_come_from_stdin(cli_sandbox: Path) -> None:
    result = runner.invoke(app, ["users", "add", "an"], input="")
    assert result.exit_code == 2 and "--password-stdin" in result.output
    assert _store(cli_sandbox).list() == []


def test_changing_an_unknown_account_exits_1(cli_sandbox: Path) -> None:
    for command in (["disable", "ghost"], ["enable", "ghost"], ["remove", "ghost"]):
        result = runner.invoke(app, ["users", *command])
        assert result.exit_code == 1 and "no account 'ghost'" in result.output
    result = runner.invoke(app, ["users", "passwd", "ghost", "--password-stdin"], input=PASSWORD)
    assert result.exit_code == 1
