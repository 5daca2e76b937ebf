"""``deltasense firmware flash`` without hardware: argument validation through the
CLI, the config file the firmware reads, and the exact mpremote command lines
(only ``subprocess.run`` is replaced)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from tools import firmware_flash as ff
from tools.cli import app
from tools.tls import make_ca

sys.path.insert(0, str(ff.FIRMWARE_DIR))
from ds import config as ds_config

runner = CliRunner()


def _args(port: str, **over: str) -> list[str]:
    opts = {
        "--port": port,
        "--kind": "water",
        "--device": "wl-p1-001",
        "--district": "phuong-1",
        "--site": "baclieu",
        "--wifi-ssid": "street-ap",
        "--wifi-password": "correct-horse",
        "--broker": "10.20.0.5:1883",
        "--board": "pico-w",
    }
    opts.update(over)
    out = ["firmware", "flash"]
    for k, v in opts.items():
        if v is not None:
            out += [k, v]
    return out


@pytest.fixture
def port(tmp_path: Path) -> str:
    dev = tmp_path / "ttyACM0"
    dev.touch()
    return str(dev)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    b = tmp_path / "bundle"
    (b / "ds").mkdir(parents=True)
    (b / "ds" / "node.mpy").write_bytes(b"M")
    for name in ff.BUNDLE_FILES:
        (b / name).write_text(json.dumps({"board": "pico-w"}) if name == "board.json" else "#")
    return b


@pytest.fixture(autouse=True)
def stack_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The CA flashing pins by default (the stack's, DELTASENSE_MQTT_CA_FILE here); its DER."""
    cert, _ = make_ca("DeltaSense dev CA", dt.datetime.now(dt.UTC))
    pem = tmp_path / "stack-ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    monkeypatch.setenv("DELTASENSE_MQTT_CA_FILE", str(pem))
    return cert.public_bytes(serialization.Encoding.DER)


class Recorder:
    def __init__(self, rc: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.configs: list[dict[str, Any]] = []
        self.cas: list[bytes] = []
        self.rc = rc

    def __call__(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(cmd))
        for i, a in enumerate(cmd):  # read the config file and the CA while they exist
            if i + 1 < len(cmd) and cmd[i + 1] == ":config.json":
                self.configs.append(json.loads(Path(a).read_text()))
            if i + 1 < len(cmd) and cmd[i + 1] == ":ca.der":
                self.cas.append(Path(a).read_bytes())
        return subprocess.CompletedProcess(
            cmd, self.rc, "", "could not enter raw repl" if self.rc else ""
        )


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"--device": "WL_001"}, "--device 'WL_001' must match [a-z0-9][a-z0-9-]{0,31}"),
        ({"--district": "-p1"}, "--district '-p1' must match"),
        ({"--site": "x" * 33}, "--site"),
        ({"--board": "arduino-uno"}, "--board 'arduino-uno' is unknown"),
        ({"--broker": "127.0.0.1:1883"}, "loopback"),
        ({"--broker": "localhost"}, "loopback"),
        ({"--broker": "10.0.0.5:70000"}, "port must be a number"),
        ({"--broker": "bad_host!:1883"}, "not a host name"),
        ({"--wifi-password": "short"}, "--wifi-password"),
        ({"--wifi-ssid": "s" * 33}, "--wifi-ssid"),
        ({"--kind": "meter", "--station": "canal"}, "water nodes only"),
        ({"--lat": "9.29"}, "both --lat and --lon"),
        ({"--mount-mm": "50"}, "mount_mm: must be in 100..20000"),
    ],
)
def test_bad_arguments_are_refused_before_touching_the_board(
    port: str, bundle: Path, over: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    monkeypatch.setattr(subprocess, "run", rec)
    result = runner.invoke(app, [*_args(port, **over), "--bundle", str(bundle)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert rec.calls == []


def test_unknown_kind_and_missing_port(tmp_path: Path, bundle: Path) -> None:
    result = runner.invoke(app, _args(str(tmp_path / "ttyUSB9"), **{"--kind": "radar"}))
    assert result.exit_code == 2 and "radar" in result.output
    result = runner.invoke(app, [*_args(str(tmp_path / "ttyUSB9")), "--bundle", str(bundle)])
    assert result.exit_code == 2 and "no such device" in " ".join(result.output.split())


def test_a_bundle_for_another_board_is_refused(port: str, bundle: Path) -> None:
    result = runner.invoke(
        app, [*_args(port, **{"--board": "esp32-devkit"}), "--bundle", str(bundle)]
    )
    assert result.exit_code == 2 and "built for 'pico-w'" in result.output
    (bundle / "main.py").unlink()
    result = runner.invoke(app, [*_args(port), "--bundle", str(bundle)])
    assert result.exit_code == 2 and "main.py" in result.output


def test_config_is_what_the_firmware_reads(tmp_path: Path) -> None:
    cfg = ff.node_config(
        kind=ff.NodeKind.WATER, device="wl-p1-001", board="pico-w", district="phuong-1",
        site="baclieu", wifi_ssid="street-ap", wifi_password="correct-horse",
        broker="mqtt.baclieu.example:8883", mqtt_password="s3cret", station=ff.Station.CANAL,
        mount_mm=3200, water_sensor=ff.WaterSensor.JSN_SR04T, lat=9.2941, lon=105.7278,
    )  # fmt: skip
    path = tmp_path / "config.json"
    path.write_bytes(ff.encode_config(cfg))
    loaded = ds_config.Config(str(path), str(tmp_path / "cfg_remote.json"))
    assert loaded.errors == []
    want = {
        "site": "baclieu", "district": "phuong-1", "kind": "water", "device": "wl-p1-001",
        "board": "pico-w", "wifi_ssid": "street-ap", "wifi_pass": "correct-horse",
        "broker_host": "mqtt.baclieu.example", "broker_port": 8883,
        "mqtt_user": "wl-p1-001", "mqtt_pass": "s3cret", "station": "canal", "broker_tls": True,
        "water_sensor": "jsn-sr04t", "mount_mm": 3200, "lat": 9.2941, "lon": 105.7278,
    }  # fmt: skip
    assert json.loads(path.read_text()) == want
    for key, value in want.items():
        assert loaded[key] == value
    meter = ff.node_config(
        kind=ff.NodeKind.METER, device="cab-7", board="esp32-devkit", district="center",
        site="baclieu", wifi_ssid="ap", wifi_password="", broker="10.0.0.2",
    )  # fmt: skip
    assert meter["broker_port"] == 8883 and meter["mqtt_user"] == "" and "station" not in meter
    assert meter["broker_tls"] is True  # TLS unless told: the port follows
    plain = ff.node_config(
        kind=ff.NodeKind.METER, device="cab-7", board="esp32-devkit", district="center",
        site="baclieu", wifi_ssid="ap", wifi_password="", broker="10.0.0.2", tls=False,
    )  # fmt: skip
    assert plain["broker_port"] == 1883 and plain["broker_tls"] is False


def test_flash_runs_these_mpremote_commands(
    port: str, bundle: Path, monkeypatch: pytest.MonkeyPatch, stack_ca: bytes
) -> None:
    rec = Recorder()
    monkeypatch.setattr(subprocess, "run", rec)
    result = runner.invoke(app, [*_args(port), "--bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    exe = ff.find_mpremote()
    assert exe is not None
    b = str(bundle)
    assert rec.calls[0] == [exe, "connect", port, "fs", "touch", ":maint", "+", "reset"]
    cfg_file = rec.calls[1][rec.calls[1].index(":config.json") - 1]
    assert rec.calls[1] == [
        exe, "connect", port,
        "fs", "cp", "-r", f"{b}/ds", ":",
        "+", "fs", "cp", f"{b}/boot.py", f"{b}/main.py", f"{b}/board.json", ":",
        "+", "fs", "cp", cfg_file, ":config.json",
        "+", "fs", "cp", str(Path(cfg_file).with_name("cfg_remote.json")), ":cfg_remote.json",
        "+", "fs", "cp", str(Path(cfg_file).with_name("ca.der")), ":ca.der",
        "+", "fs", "rm", ":maint",
        "+", "reset",
    ]  # fmt: skip
    assert len(rec.calls) == 2 and not Path(cfg_file).exists()  # the temp config is gone
    assert rec.configs[0]["device"] == "wl-p1-001" and rec.configs[0]["station"] == "drain"
    assert rec.cas == [stack_ca] and rec.configs[0]["broker_tls"] is True  # the CA pinned
    assert "correct-horse" not in result.output  # secrets are not echoed
    assert "/api/v1/devices/wl-p1-001" in " ".join(result.output.split())


def test_a_failing_mpremote_step_is_reported(
    port: str, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder(rc=1)
    monkeypatch.setattr(subprocess, "run", rec)
    result = runner.invoke(app, [*_args(port), "--bundle", str(bundle)])
    assert result.exit_code == 2 and len(rec.calls) == 1
    text = " ".join(result.output.split())
    assert "step 1 of 2" in text and "raw repl" in text


def test_dry_run_prints_and_touches_nothing(
    tmp_path: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    monkeypatch.setattr(subprocess, "run", rec)
    result = runner.invoke(
        app, [*_args(str(tmp_path / "ttyUSB0")), "--bundle", str(bundle), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert (
        rec.calls == []
        and "fs touch :maint" in result.output
        and '"wifi_pass": "***"' in result.output
    )


def test_the_broker_secret_can_come_from_a_file(
    port: str, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`devices add --secret-file` hands the secret over without a command line."""
    rec = Recorder()
    monkeypatch.setattr(subprocess, "run", rec)
    secret = tmp_path / "node.secret"
    secret.write_text("s3cret-from-file\n")
    args = _args(port)
    result = runner.invoke(
        app, [*args, "--bundle", str(bundle), "--mqtt-password-file", str(secret)]
    )
    assert result.exit_code == 0, result.output
    assert rec.configs[0]["mqtt_pass"] == "s3cret-from-file"
    assert "s3cret-from-file" not in result.output
    missing = runner.invoke(
        app, [*args, "--bundle", str(bundle), "--mqtt-password-file", str(tmp_path / "nope")]
    )
    assert missing.exit_code == 2 and "--mqtt-password-file" in missing.output


def test_the_pinned_ca_is_chosen_or_tls_turned_off_explicitly(
    port: str, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    monkeypatch.setattr(subprocess, "run", rec)
    own, _ = make_ca("City CA", dt.datetime.now(dt.UTC))
    pem = tmp_path / "city-ca.pem"
    pem.write_bytes(own.public_bytes(serialization.Encoding.PEM))
    ok = runner.invoke(app, [*_args(port), "--bundle", str(bundle), "--ca", str(pem)])
    assert ok.exit_code == 0, ok.output
    assert rec.cas == [own.public_bytes(serialization.Encoding.DER)]
    plain = runner.invoke(app, [*_args(port), "--bundle", str(bundle), "--no-tls"])
    assert plain.exit_code == 0, plain.output
    assert rec.configs[-1]["broker_tls"] is False and len(rec.cas) == 1  # no CA copied
    for bad, message in [
        (["--ca", str(tmp_path / "missing.pem")], "cannot be read"),
        (["--ca", str(bundle / "main.py")], "exactly one CA"),
        (["--ca", str(pem), "--no-tls"], "not both"),
    ]:
        calls = len(rec.calls)
        result = runner.invoke(app, [*_args(port), "--bundle", str(bundle), *bad])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
        assert len(rec.calls) == calls  # refused before touching the board
