"""Placeholder and short secrets are refused at start-up unless the dev flag is set."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from deltasense.settings import SECRET_SETTINGS, load_settings, weak_secret


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DELTASENSE_"):
            monkeypatch.delenv(name)


STRONG = secrets.token_urlsafe(32)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("changeme", "placeholder"),
        ("  Secret ", "placeholder"),
        ("ADMIN", "placeholder"),
        ("please-CHANGE-ME-before-production-0123456789", "placeholder"),
        ("your_token_here_abcdefghijklmnopqrstuvwxyz0123", "placeholder"),
        ("e2e-admin-token", "15 characters; it must have at least 32"),
        ("x" * 40, "fewer than 10 distinct characters"),
        ("abababababababababababababababab12", "fewer than 10 distinct characters"),
    ],
)
def test_weak_admin_tokens_are_refused_naming_the_setting(value: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings(admin_token=value)
    message = str(caught.value)
    assert "DELTASENSE_ADMIN_TOKEN (admin_token)" in message and why in message
    assert "DELTASENSE_DEV_INSECURE=1" in message
    if len(value) > 10:
        assert value not in message  # never repeats what it refuses


@pytest.mark.parametrize("name", sorted(SECRET_SETTINGS))
def test_every_secret_setting_refuses_a_placeholder(name: str) -> None:
    with pytest.raises(ValidationError, match=f"DELTASENSE_{name.upper()}"):
        load_settings(**{name: "changeme"})
    assert getattr(load_settings(**{name: STRONG}), name) == STRONG


def test_third_party_passwords_need_no_length_but_our_secrets_do() -> None:
    assert load_settings(notifier_smtp_password="mail-pw-9", mqtt_password="short1").mqtt_password
    for name in ("notifier_ack_secret", "notifier_webhook_secret", "notifier_telegram_token"):
        assert weak_secret(name, "short-but-not-a-word", SECRET_SETTINGS[name]) is not None


def test_dev_flag_accepts_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_DEV_INSECURE", "1")
    assert load_settings(admin_token="admin").admin_token == "admin"


def test_unset_secrets_are_fine() -> None:
    s = load_settings()
    assert s.admin_token is None and not s.dev_insecure


@pytest.mark.parametrize("module", ["api", "ingest"])
def test_a_service_refuses_to_start_with_a_placeholder_without_a_traceback(
    module: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTASENSE_")}
    env |= {
        "DELTASENSE_CONFIG": os.devnull,
        "DELTASENSE_VAR_DIR": str(tmp_path / "var"),
        "DELTASENSE_ADMIN_TOKEN": "changeme",
        "DELTASENSE_MQTT_PASSWORD": "password",
        "DELTASENSE_INFLUX_PORT": "1",  # nothing may be reached before the refusal
    }
    result = subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"{module}: invalid settings" in result.stderr
    assert "DELTASENSE_ADMIN_TOKEN (admin_token) is a placeholder" in result.stderr
    assert "DELTASENSE_MQTT_PASSWORD (mqtt_password) is a placeholder" in result.stderr
    assert not (tmp_path / "var").exists()  # refused before writing anything


def test_the_cli_refuses_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTASENSE_")}
    env |= {"DELTASENSE_CONFIG": os.devnull, "DELTASENSE_NOTIFIER_WEBHOOK_SECRET": "hmac-key"}
    result = subprocess.run(
        [sys.executable, "-m", "tools.cli", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "DELTASENSE_NOTIFIER_WEBHOOK_SECRET" in result.stdout + result.stderr


def test_secrets_stay_out_of_repr() -> None:
    s = load_settings(**dict.fromkeys(SECRET_SETTINGS, STRONG))
    assert STRONG not in repr(s) and STRONG not in str(s)


def test_the_api_refuses_a_weak_token_in_its_file_without_a_traceback(tmp_path: Path) -> None:
    token_file = tmp_path / "var" / "secrets" / "admin-token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text("changeme\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTASENSE_")}
    env |= {
        "DELTASENSE_CONFIG": os.devnull,
        "DELTASENSE_VAR_DIR": str(tmp_path / "var"),
        "DELTASENSE_INFLUX_PORT": "1",  # refused before waiting for anything
    }
    result = subprocess.run(
        [sys.executable, "-m", "api"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"api: {token_file.resolve()} holds a weak admin token" in result.stderr
