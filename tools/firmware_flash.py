"""``deltasense firmware flash``: deploy a board bundle with mpremote and write the node's config.

The board must already run MicroPython 1.27 (the ``.mpy`` files load on that
release only). Steps, each one ``mpremote`` invocation:

1. ``fs touch :maint`` and ``reset``: the node boots into maintenance mode
   (``ds/app.py``: no node, no hardware watchdog), so the copy cannot be cut
   short by a watchdog reset;
2. copy ``ds/`` (``.mpy``), ``boot.py``, ``main.py``, ``board.json`` and the
   node's ``config.json``, remove ``:maint`` and ``reset``: the node starts.

Everything is validated before the board is touched. The config is the
``/config.json`` that ``firmware/ds/config.py`` reads, checked by that very
module (``ds.config.validate``).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.markup import escape

from deltasense.contract import IDENT_PATTERN, is_ident

ROOT: Final = Path(__file__).resolve().parent.parent
FIRMWARE_DIR: Final = ROOT / "firmware"
BOARDS_DIR: Final = FIRMWARE_DIR / "boards"
BUILD_DIR: Final = ROOT / "build" / "firmware"
BUNDLE_FILES: Final = ("boot.py", "main.py", "board.json")
REMOTE_CFG: Final = "cfg_remote.json"  # ds.config.REMOTE_PATH
CA_FILE: Final = "ca.der"  # ds.config DEFAULTS["ca_file"], the CA the node pins
_HOST_RE: Final = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)

console = Console(stderr=True)
out = Console()
firmware_app = typer.Typer(help="Field node firmware: flash a board.", no_args_is_help=True)


class FlashError(Exception):
    """A bad argument or a failed step, said in words a technician can act on."""


class NodeKind(StrEnum):
    WEATHER = "weather"
    WATER = "water"
    LAMP = "lamp"
    METER = "meter"


class Station(StrEnum):
    DRAIN = "drain"
    CANAL = "canal"


class WaterSensor(StrEnum):
    A02YYUW = "a02yyuw"
    JSN_SR04T = "jsn-sr04t"


def _say(text: str) -> None:
    # Paths and JSON as they are: no markup, no wrapping inside a command line.
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def boards() -> list[str]:
    """Board names with a profile in firmware/boards/."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def _ds_config() -> ModuleType:
    """The firmware's own ``ds.config`` (the ``ds`` package, installed from firmware/ds)."""
    import ds.config

    module: ModuleType = ds.config
    return module


def parse_broker(value: str, default_port: int = 8883) -> tuple[str, int]:
    """``host[:port]`` (hostname or IPv4; ``default_port`` if left out)."""
    host, sep, port_s = value.rpartition(":")
    if not sep:
        host, port_s = value, str(default_port)
    if not port_s.isdigit() or not 1 <= int(port_s) <= 65535:
        raise FlashError(f"--broker {value!r}: the port must be a number 1..65535")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is None and not _HOST_RE.fullmatch(host):
        raise FlashError(f"--broker {value!r}: {host!r} is not a host name or IPv4 address")
    if (ip is not None and ip.is_loopback) or host == "localhost":
        raise FlashError(
            f"--broker {value!r}: a node cannot reach this machine's loopback address; "
            "give the broker's address on the node's network"
        )
    return host, int(port_s)


def node_config(
    *,
    kind: NodeKind,
    device: str,
    board: str,
    district: str,
    site: str,
    wifi_ssid: str,
    wifi_password: str,
    broker: str,
    mqtt_user: str | None = None,
    mqtt_password: str | None = None,
    station: Station | None = None,
    mount_mm: float | None = None,
    water_sensor: WaterSensor | None = None,
    lat: float | None = None,
    lon: float | None = None,
    tls: bool = True,
) -> dict[str, Any]:
    """The node's ``/config.json`` as a dict; FlashError on any bad value. With
    ``tls`` (the default) the node speaks MQTT over TLS (port 8883 unless given)
    with the CA flashed as ``/ca.der`` pinned."""
    for name, value in (("device", device), ("district", district), ("site", site)):
        if not is_ident(value):
            raise FlashError(
                f"--{name} {value!r} must match {IDENT_PATTERN} (docs/CONTRACT.md identifiers)"
            )
    if board not in boards():
        raise FlashError(f"--board {board!r} is unknown; known: {', '.join(boards())}")
    if not 1 <= len(wifi_ssid.encode()) <= 32:
        raise FlashError("--wifi-ssid must be 1..32 bytes")
    if wifi_password and not (
        8 <= len(wifi_password) <= 63 or re.fullmatch(r"[0-9a-fA-F]{64}", wifi_password)
    ):
        raise FlashError(
            "--wifi-password must be 8..63 characters (WPA2) or 64 hex digits, or empty"
        )
    if kind is not NodeKind.WATER and (station or mount_mm is not None or water_sensor):
        raise FlashError("--station, --mount-mm and --water-sensor are for water nodes only")
    if (lat is None) != (lon is None):
        raise FlashError("give both --lat and --lon, or neither")
    host, port = parse_broker(broker, 8883 if tls else 1883)
    if mqtt_password and mqtt_user is None:
        mqtt_user = device  # CONTRACT: the broker user of a node is its device id
    cfg: dict[str, Any] = {
        "site": site,
        "district": district,
        "kind": kind.value,
        "device": device,
        "board": board,
        "wifi_ssid": wifi_ssid,
        "wifi_pass": wifi_password,
        "broker_host": host,
        "broker_port": port,
        "mqtt_user": mqtt_user or "",
        "mqtt_pass": mqtt_password or "",
        "broker_tls": tls,
    }
    if lat is not None:
        cfg["lat"], cfg["lon"] = lat, lon
    if kind is NodeKind.WATER:
        cfg["station"] = (station or Station.DRAIN).value
        cfg["water_sensor"] = (water_sensor or WaterSensor.A02YYUW).value
        if mount_mm is not None:
            cfg["mount_mm"] = mount_mm
    ds_config = _ds_config()
    try:
        ds_config.validate(cfg)
    except ds_config.ConfigError as exc:  # the firmware's own rules, e.g. ranges
        raise FlashError(f"config refused by the firmware: {exc}") from None
    return cfg


def encode_config(cfg: dict[str, Any]) -> bytes:
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


def load_build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ds_firmware_build", FIRMWARE_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ensure_bundle(board: str, bundle: Path | None, rebuild: bool) -> Path:
    """The bundle directory to deploy: given, or build/firmware/<board> (built if missing)."""
    if bundle is None:
        bundle = BUILD_DIR / board
        if rebuild or not (bundle / "ds").is_dir():
            load_build_module().build(board, BUILD_DIR)
    missing = [n for n in (*BUNDLE_FILES, "ds") if not (bundle / n).exists()]
    if missing:
        raise FlashError(
            f"{bundle} is not a board bundle (missing {', '.join(missing)}); run `make firmware`"
        )
    profile = json.loads((bundle / "board.json").read_text())
    if profile.get("board") != board:
        raise FlashError(f"{bundle} is built for {profile.get('board')!r}, not {board!r}")
    return bundle


def mpremote_steps(
    mpremote: str, port: str, bundle: Path, config_file: Path, ca_file: Path | None = None
) -> list[list[str]]:
    """The exact mpremote command lines, in order (``ca_file``: the CA in DER)."""
    conn = [mpremote, "connect", port]
    ca = ["+", "fs", "cp", str(ca_file), f":{CA_FILE}"] if ca_file is not None else []
    return [
        [*conn, "fs", "touch", ":maint", "+", "reset"],
        [
            *conn,
            "fs", "cp", "-r", str(bundle / "ds"), ":",
            "+", "fs", "cp", *(str(bundle / n) for n in BUNDLE_FILES), ":",
            "+", "fs", "cp", str(config_file), ":config.json",
            # A fresh start from the flashed config: an old remote cfg (a rotated
            # broker secret among it) must not override it; the retained cfg
            # brings the remote settings back at the first connect.
            "+", "fs", "cp", str(config_file.with_name(REMOTE_CFG)), f":{REMOTE_CFG}",
            *ca,
            "+", "fs", "rm", ":maint",
            "+", "reset",
        ],
    ]  # fmt: skip


def wait_for_port(port: str, timeout_s: float = 15.0, settle_s: float = 3.0) -> None:
    """After a reset: USB CDC ports (Pico W) vanish and come back; then let the board boot."""
    deadline = time.monotonic() + timeout_s
    while not Path(port).exists():
        if time.monotonic() > deadline:
            raise FlashError(f"{port} did not come back within {timeout_s:.0f} s after the reset")
        time.sleep(0.2)
    time.sleep(settle_s)


def find_mpremote() -> str | None:
    """mpremote next to this interpreter (the dev tools), else on PATH."""
    beside = Path(sys.executable).with_name("mpremote")
    return str(beside) if beside.exists() else shutil.which("mpremote")


def flash(
    cfg: dict[str, Any],
    port: str,
    bundle: Path,
    *,
    ca_der: bytes | None = None,
    wait: Callable[[str], None] = wait_for_port,
) -> list[list[str]]:
    """Deploy ``bundle``, ``cfg`` and the CA (DER) to the board on ``port``; the commands run."""
    exe = find_mpremote()
    if exe is None:
        raise FlashError("mpremote not found: install the dev tools (`make bootstrap`)")
    with tempfile.TemporaryDirectory(prefix="ds-flash-") as tmp:
        config_file = Path(tmp) / "config.json"
        config_file.write_bytes(encode_config(cfg))
        config_file.with_name(REMOTE_CFG).write_bytes(b"{}")
        ca_file = None
        if ca_der is not None:
            ca_file = config_file.with_name(CA_FILE)
            ca_file.write_bytes(ca_der)
        steps = mpremote_steps(exe, port, bundle, config_file, ca_file)
        for i, cmd in enumerate(steps):
            _say("$ " + " ".join(cmd))
            proc = subprocess.run(cmd, check=False, text=True, capture_output=True, timeout=300)
            if proc.returncode != 0:
                raise FlashError(
                    f"mpremote failed (step {i + 1} of {len(steps)}, exit {proc.returncode}): "
                    f"{(proc.stderr or proc.stdout).strip()[-500:]}"
                )
            if i + 1 < len(steps):
                wait(port)
    return steps


def _flash_ca(path: Path) -> bytes:
    """The CA a node will pin, in DER; FlashError if it is not one PEM certificate."""
    from deltasense.mqtt import MqttTlsError, pem_ca_to_der

    try:
        return pem_ca_to_der(path)
    except MqttTlsError as exc:
        raise FlashError(
            f"--ca: {exc} (the stack makes var/tls/ca.pem at `deltasense up`)"
        ) from None


@firmware_app.command("flash")
def flash_cmd(
    port: Annotated[str, typer.Option(help="Serial port of the board, e.g. /dev/ttyUSB0.")],
    kind: Annotated[NodeKind, typer.Option(help="What the node measures.")],
    device: Annotated[str, typer.Option(help="Device id (also its MQTT client id).")],
    wifi_ssid: Annotated[str, typer.Option(help="Wi-Fi network the node joins.")],
    broker: Annotated[
        str, typer.Option(help="MQTT broker as host[:port], reachable from the node.")
    ],
    board: Annotated[
        str, typer.Option(help="Board profile: esp32-devkit or pico-w.")
    ] = "esp32-devkit",
    district: Annotated[str, typer.Option(help="District (second topic level).")] = "center",
    site: Annotated[str | None, typer.Option(help="Site id; default: the platform's.")] = None,
    wifi_password: Annotated[str, typer.Option(help="Wi-Fi password (WPA2).")] = "",
    mqtt_user: Annotated[
        str | None,
        typer.Option(help="Broker user (default: the device id when a password is given)."),
    ] = None,
    mqtt_password: Annotated[str | None, typer.Option(help="Broker password.")] = None,
    mqtt_password_file: Annotated[
        Path | None,
        typer.Option(help="Read the broker password from this file (`devices add --secret-file`)."),
    ] = None,
    station: Annotated[Station | None, typer.Option(help="Water nodes: drain or canal.")] = None,
    mount_mm: Annotated[
        float | None, typer.Option(help="Water nodes: sensor height above the datum, mm.")
    ] = None,
    water_sensor: Annotated[
        WaterSensor | None, typer.Option(help="Water nodes: a02yyuw or jsn-sr04t.")
    ] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude, degrees.")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude, degrees.")] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="Deploy this bundle instead of build/firmware/<board>.")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option(help="Rebuild the bundle first (make firmware).")
    ] = False,
    ca: Annotated[
        Path | None,
        typer.Option(help="CA (PEM) the node pins for MQTT over TLS; default: the stack's."),
    ] = None,
    no_tls: Annotated[
        bool, typer.Option("--no-tls", help="Plain MQTT (secret and data in the clear).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Validate, print the config and the commands; touch nothing.")
    ] = False,
) -> None:
    """Deploy the firmware bundle to a board with mpremote and write its /config.json."""
    try:
        if mqtt_password_file is not None:
            if mqtt_password is not None:
                raise FlashError("give --mqtt-password or --mqtt-password-file, not both")
            try:
                mqtt_password = mqtt_password_file.read_text().strip()
            except OSError as exc:
                raise FlashError(f"--mqtt-password-file: {exc}") from None
            if not mqtt_password:
                raise FlashError(f"--mqtt-password-file {mqtt_password_file} is empty")
        from deltasense.settings import load_settings

        if site is None:
            site = load_settings().site
        ca_der = None
        if no_tls:
            if ca is not None:
                raise FlashError("give --ca or --no-tls, not both")
        else:
            ca_der = _flash_ca(ca or load_settings().mqtt_ca_path)
        cfg = node_config(
            kind=kind, device=device, board=board, district=district, site=site,
            wifi_ssid=wifi_ssid, wifi_password=wifi_password, broker=broker,
            mqtt_user=mqtt_user, mqtt_password=mqtt_password, station=station,
            mount_mm=mount_mm, water_sensor=water_sensor, lat=lat, lon=lon,
            tls=not no_tls,
        )  # fmt: skip
        if not dry_run and not Path(port).exists():
            raise FlashError(
                f"--port {port}: no such device (is the board plugged in? see `ls /dev/tty*`)"
            )
        where = ensure_bundle(board, bundle, rebuild)
        shown = {k: ("***" if k in ("wifi_pass", "mqtt_pass") and v else v) for k, v in cfg.items()}
        _say(f"config.json: {json.dumps(shown, sort_keys=True)}")
        if dry_run:
            ca_shown = Path(CA_FILE) if ca_der is not None else None
            for cmd in mpremote_steps("mpremote", port, where, Path("config.json"), ca_shown):
                _say("$ " + " ".join(cmd))
            return
        flash(cfg, port, where, ca_der=ca_der)
    except FlashError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    topic = f"{cfg['site']}/{cfg['district']}/{cfg['kind']}/{cfg['device']}"
    _say(
        f"flashed {cfg['device']} ({cfg['kind']}, {board}). Within a minute {topic}/status "
        f"should read online; check GET /api/v1/devices/{cfg['device']}."
    )
