"""The gateway's settings: its own prefix and file, bad values named, defaults derived."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from deltasense.settings import ConfigFileError
from edge.settings import EdgeSettings
from edge.spool import FullPolicy


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("DELTASENSE_"):
            monkeypatch.delenv(name)


def test_defaults_follow_the_district(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_EDGE_DISTRICT", "phuong-7")
    s = EdgeSettings()
    assert s.uplink_user == "gw.phuong-7" and s.uplink_identifier == "gw.phuong-7"
    assert s.local_identifier == "deltasense-edge-phuong-7"
    assert s.spool_file == Path("var/edge/spool.sqlite3")
    assert s.spool_full_policy is FullPolicy.DROP_OLDEST
    assert s.spool_max_age_s == 7 * 86_400


def test_the_platform_variables_do_not_leak_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELTASENSE_MQTT_PORT", "1999")  # the platform's, not the gateway's
    s = EdgeSettings(district="phuong-1")
    assert s.uplink_port == 1883 and s.local_port == 1883


def test_toml_file_and_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        'district = "phuong-2"\nuplink_port = 8883\nspool_full_policy = "drop-newest"\n'
    )
    monkeypatch.setenv("DELTASENSE_EDGE_CONFIG", str(path))
    monkeypatch.setenv("DELTASENSE_EDGE_UPLINK_PORT", "9883")  # a variable wins over the file
    s = EdgeSettings()
    assert (s.district, s.uplink_port, s.spool_full_policy) == (
        "phuong-2",
        9883,
        FullPolicy.DROP_NEWEST,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("district", "Phường 1"),
        ("district", "_alerts"),
        ("site", "a/b"),
        ("spool_full_policy", "drop-random"),
        ("spool_max_bytes", "1000"),
        ("spool_max_age_s", "0"),
        ("backlog_share", "1.0"),
        ("uplink_port", "70000"),
        ("log_level", "LOUD"),
        ("siren_pin", "28"),  # BCM 0-27
        ("siren_pin", "-1"),
        ("siren_pin", "GPIO17"),
        ("siren_max_s", "0"),
        ("siren_active_high", "maybe"),
        ("local_rules", "sometimes"),
    ],
)
def test_bad_values_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv("DELTASENSE_EDGE_DISTRICT", "phuong-1")
    monkeypatch.setenv(f"DELTASENSE_EDGE_{key.upper()}", value)
    with pytest.raises(ValidationError, match=key):
        EdgeSettings()


def test_a_missing_district_or_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="district"):
        EdgeSettings()
    monkeypatch.setenv("DELTASENSE_EDGE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigFileError, match="DELTASENSE_EDGE_CONFIG"):
        EdgeSettings(district="phuong-1")


def test_python_m_edge_names_the_bad_key_and_exits_2(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DELTASENSE_EDGE_DISTRICT": "NOT OK"}
    proc = subprocess.run(
        [sys.executable, "-m", "edge"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "district" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bad_thresholds_file_stops_the_gateway_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "site.toml"
    bad.write_text("[flood]\nstreet_critical_mm = 10.0\n")  # below the warning depth
    env = {
        "PATH": "/usr/bin:/bin",
        "DELTASENSE_EDGE_DISTRICT": "phuong-1",
        "DELTASENSE_EDGE_THRESHOLDS_FILE": str(bad),
        "DELTASENSE_EDGE_CONFIG": "/dev/null",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "edge"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "site.toml" in proc.stderr and "street_critical_mm" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_shipped_example_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parents[2] / "edge" / "deploy" / "edge.toml.example"
    monkeypatch.setenv("DELTASENSE_EDGE_CONFIG", str(example))
    s = EdgeSettings()
    assert s.district == "phuong-1" and s.siren_pin == 17 and s.local_rules
