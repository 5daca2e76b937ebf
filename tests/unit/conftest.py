"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def cli_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A CLI run that sees no DELTASENSE_* setting of the machine, in an empty
    working directory with its own var/."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DELTASENSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DELTASENSE_VAR_DIR", str(tmp_path / "var"))
    return tmp_path
