"""``python -m notifier`` refuses a bad routing file or a channel it cannot reach, by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(tmp_path: Path, routing: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "routing.toml"
    path.write_text(routing)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DELTASENSE_")}
    environ |= {
        "DELTASENSE_CONFIG": os.devnull,
        "DELTASENSE_VAR_DIR": str(tmp_path / "var"),
        "DELTASENSE_NOTIFIER_ROUTING_FILE": str(path),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "notifier"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("routing", "env", "named"),
    [
        (
            "[receivers.a]\nemail=['a@b.vn']\nsms=['1']",
            {},
            "routing.toml: receivers.a: unknown key 'sms'",
        ),
        (
            "[[routes]]\nname='r'\nreceivers=['ghost']",
            {},
            "routes[0].receivers: unknown receiver 'ghost'",
        ),
        ("[receivers.a]\ntelegram=[1]", {}, "telegram (DELTASENSE_NOTIFIER_TELEGRAM_TOKEN)"),
        ("", {"DELTASENSE_NOTIFIER_GROUP_WAIT_S": "-1"}, "notifier_group_wait_s"),
    ],
)
def test_start_up_refuses_by_name(
    tmp_path: Path, routing: str, env: dict[str, str], named: str
) -> None:
    result = run(tmp_path, routing, **env)
    assert result.returncode == 1
    assert named in result.stderr
    assert "Traceback" not in result.stderr
