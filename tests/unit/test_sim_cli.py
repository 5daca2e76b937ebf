"""Argument checking of ``python -m simulators`` and of ``simulate()``."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from deltasense.settings import Settings
from simulators.cli import build_parser, main
from simulators.run import SimStats, simulate


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--devices", "0"], "--devices: must be between 1 and 10000, got 0"),
        (["--devices", "10001"], "--devices: must be between 1 and 10000, got 10001"),
        (["--devices", "-3"], "--devices: must be between 1 and 10000"),
        (["--devices", "many"], "--devices: must be a whole number, got 'many'"),
        (["--devices", "2.5"], "--devices: must be a whole number"),
        (["--devices", "5", "--rate", "0"], "--rate: must be > 0 and <= 10"),
        (["--devices", "5", "--rate", "-1"], "--rate: must be > 0 and <= 10"),
        (["--devices", "5", "--rate", "10.5"], "--rate: must be > 0 and <= 10"),
        (["--devices", "5", "--rate", "nan"], "--rate: must be a finite number"),
        (["--devices", "5", "--rate", "fast"], "--rate: must be a number, got 'fast'"),
        (["--devices", "5", "--duration", "0"], "--duration: must be a positive number"),
        (["--devices", "5", "--duration", "inf"], "--duration: must be a finite number"),
        (["--devices", "5", "--seed", "x"], "--seed: must be a whole number"),
        ([], "the following arguments are required: --devices"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_good_arguments_parse() -> None:
    args = build_parser().parse_args(["--devices", "200", "--rate", "10", "--duration", "2.5"])
    assert (args.devices, args.rate, args.duration, args.seed) == (200, 10.0, 2.5, 1)
    assert build_parser().parse_args(["--devices", "1"]).duration is None


def test_module_entry_point_rejects_bad_devices() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulators", "--devices", "0", "--rate", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--devices: must be between 1 and 10000, got 0" in proc.stderr
    assert proc.stdout == ""


def test_bad_settings_exit_1(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray deltasense.toml
    monkeypatch.setenv("DELTASENSE_MQTT_PORT", "70000")
    assert main(["--devices", "1", "--duration", "1"]) == 1
    assert "bad settings" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"devices": 0, "rate": 1.0, "duration": 1.0}, "devices must be between 1 and 10000"),
        ({"devices": 10_001, "rate": 1.0, "duration": 1.0}, "devices must be between"),
        ({"devices": True, "rate": 1.0, "duration": 1.0}, "devices must be an integer"),
        ({"devices": 2.0, "rate": 1.0, "duration": 1.0}, "devices must be an integer"),
        ({"devices": 1, "rate": 0.0, "duration": 1.0}, "rate must be > 0 and <= 10"),
        ({"devices": 1, "rate": 11.0, "duration": 1.0}, "rate must be"),
        ({"devices": 1, "rate": math.nan, "duration": 1.0}, "rate must be"),
        ({"devices": 1, "rate": 1.0, "duration": 0.0}, "duration must be a positive"),
        ({"devices": 1, "rate": 1.0, "duration": -5.0}, "duration must be a positive"),
        ({"devices": 1, "rate": 1.0, "duration": math.inf}, "duration must be a positive"),
    ],
)
async def test_simulate_rejects_bad_arguments_before_connecting(
    kwargs: dict[str, float], match: str
) -> None:
    # Port 1 has no broker: a ValueError proves validation ran first.
    settings = Settings(mqtt_port=1)
    with pytest.raises(ValueError, match=match):
        await simulate(settings, **kwargs)  # type: ignore[arg-type]


def test_stats_total() -> None:
    stats = SimStats(devices=2)
    stats.published["lamp"] += 3
    stats.published["weather"] += 2
    assert stats.total == 5
    assert set(stats.published) == {"weather", "water", "lamp", "meter"}
