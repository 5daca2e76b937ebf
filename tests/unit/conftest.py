"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from analytics.engine import Engine
from deltasense.runtime import DEFAULT_UTC_OFFSET_MIN
from deltasense.thresholds import Thresholds


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


# --- analytics ------------------------------------------------------------------------------
# Bạc Liêu, UTC+7 (the utc_offset_min setting's default); tests that place readings at
# a local hour assume it.
SITE_UTC_OFFSET_MIN = DEFAULT_UTC_OFFSET_MIN


@pytest.fixture(scope="session")
def utc_offset_min() -> int:
    return SITE_UTC_OFFSET_MIN


@pytest.fixture
def make_engine(thresholds: Thresholds) -> Callable[..., Engine]:
    """A fresh engine at the site's UTC offset, on the shipped thresholds (the
    ``thresholds`` fixture of tests/conftest.py) unless given others."""

    def make(t: Thresholds | None = None) -> Engine:
        return Engine(t or thresholds, utc_offset_min=SITE_UTC_OFFSET_MIN)

    return make
