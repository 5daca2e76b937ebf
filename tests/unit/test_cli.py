"""The `deltasense` command line: argument and configuration errors, tokens, down."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.auth import TokenStore
from tools.cli import app

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("cli_sandbox")


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--simulate", "-1"],
        ["up", "--rate", "0"],
        ["simulate", "--devices", "0"],
        ["simulate", "--rate", "50"],
        ["simulate", "--duration", "-3"],
        ["token", "add", "--name", "x", "--role", "superuser"],
        ["token", "add"],
        ["no-such-command"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert (
        "Usage" in result.output or "Invalid value" in result.output or "Missing" in result.output
    )


def test_bad_setting_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_MQTT_PORT", "not-a-port")
    result = runner.invoke(app, ["down"])
    assert result.exit_code == 2
    assert "invalid settings" in result.output and "mqtt_port" in result.output


def test_missing_config_file_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_CONFIG", "/nowhere/ds.toml")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2 and "no such file" in result.output


def test_token_add_then_remove(tmp_path: Path) -> None:
    added = runner.invoke(app, ["token", "add", "--name", "night-shift", "--role", "operator"])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    store = TokenStore(tmp_path / "var", admin_token="x")
    principal = store.authenticate(token)
    assert principal is not None and principal.role.value == "operator"
    assert token not in (tmp_path / "var" / "tokens.json").read_text()  # only the hash
    removed = runner.invoke(app, ["token", "remove", "--name", "night-shift"])
    assert removed.exit_code == 0 and "revoked 1" in removed.output
    assert store.authenticate(token) is None
    again = runner.invoke(app, ["token", "remove", "--name", "night-shift"])
    assert again.exit_code == 1 and "no token named" in again.output


def test_bad_token_name_is_refused() -> None:
    result = runner.invoke(app, ["token", "add", "--name", "bad\nname"])
    assert result.exit_code == 2 and "token name" in result.output


def test_down_without_a_stack() -> None:
    result = runner.invoke(app, ["down"])
    assert result.exit_code == 0 and "no stack was running" in result.output


@pytest.mark.parametrize("terminal", [True, False])
def test_up_prints_the_admin_token_only_to_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    import io
    import sys

    from rich.console import Console

    from deltasense.access import admin_token_file
    from deltasense.settings import Settings
    from tools import cli

    var = tmp_path / "var"
    token = "Qm3" + "x7Lp9Zr2Vb5Nc8Hd1Jw4Ty6Ge0Kq" * 2
    path = admin_token_file(var, create_dir=True)
    path.write_text(token + "\n")
    printed = io.StringIO()
    # FORCE_COLOR makes rich call anything a terminal: the decision must not follow it.
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setattr(cli, "out", Console(file=printed, width=300, color_system=None))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
    cli._print_urls(Settings(var_dir=var))
    assert (token in printed.getvalue()) is terminal
    assert str(path) in printed.getvalue()
