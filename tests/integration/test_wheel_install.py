"""The built wheel works outside the checkout: a backtest and the simulator.

The wheel is built from this tree and installed with pip into a fresh venv in a
temporary directory; both commands then run from another temporary directory
with no path into the checkout, so a module that only imports inside a checkout
(``sys.path`` tricks, files outside the packages) fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import venv
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import Services

ROOT = Path(__file__).resolve().parents[2]
# Building the wheel and installing it with its runtime dependencies into a fresh
# venv took 120 s on a loaded box (the suite's default timeout): the module gets more.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with only the project's wheel (and its runtime dependencies)."""
    base = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the tracked files: setuptools leaves build/ behind in
    # the tree it builds, and untracked files must not reach the wheel.
    src = base / "src"
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("deltasense-*.whl")
    env_dir = base / "venv"
    # No pip of its own (ensurepip was a third of this setup's time): this
    # interpreter's pip installs into it (--python).
    venv.create(env_dir, with_pip=False)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env_dir / "bin" / "python"),
            "install",
            "-q",
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    yield env_dir


def _run(env_dir: Path, cwd: Path, *args: str, extra_env: dict[str, str] | None = None) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "DELTASENSE_", "VIRTUAL"))
    }
    env["PATH"] = f"{env_dir / 'bin'}:{env.get('PATH', '')}"
    env.update(extra_env or {})
    done = subprocess.run(
        [str(env_dir / "bin" / "deltasense"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_wheel_has_no_path_into_the_checkout(wheel_venv: Path, tmp_path: Path) -> None:
    # The shared catalogue is package data: the API and the notifier read it installed.
    code = (
        "import ds, simulators.device, backtest.runner, deltasense.catalogue as c;"
        " assert c.load()['vi']['critical']; print(ds.__file__, c.CATALOGUE_PATH)"
    )
    done = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert str(ROOT) not in done.stdout
    assert str(wheel_venv) in done.stdout


def test_wheel_runs_a_backtest(wheel_venv: Path, tmp_path: Path) -> None:
    report = json.loads(
        _run(wheel_venv, tmp_path, "backtest", "--scenario", "flash-flood", "--json")
    )
    flood = report["kinds"]["flood"]
    assert flood["events"] > 0
    assert flood["detected"] == flood["events"]
    assert flood["false_alerts"] == 0


def test_wheel_runs_the_simulator(wheel_venv: Path, tmp_path: Path, services: Services) -> None:
    site = "wheelsim"
    seen: set[str] = set()
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="wheel-test")
    client.on_connect = lambda c, *_: c.subscribe(f"{site}/+/+/+/tele", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, msg: seen.add(msg.topic.split("/")[3])
    client.connect("127.0.0.1", services.mqtt_port)
    client.loop_start()
    try:
        assert subscribed.wait(5)
        _run(
            wheel_venv,
            tmp_path,
            *("simulate", "--devices", "4", "--rate", "2", "--duration", "4", "--seed", "1"),
            extra_env={
                "DELTASENSE_SITE": site,
                "DELTASENSE_MQTT_PORT": str(services.mqtt_port),
                "DELTASENSE_MQTT_TLS": "false",  # the session broker is plain
                "DELTASENSE_VAR_DIR": str(tmp_path / "var"),
            },
        )
    finally:
        client.loop_stop()
        client.disconnect()
    assert len(seen) == 4, seen
