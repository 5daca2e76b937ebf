"""The node on a real board: what ``main.py`` runs.

Reads ``/config.json`` (written by ``deltasense firmware flash``) and
``/board.json`` (the board profile from the bundle), builds the sensors for
the configured kind from the drivers (``ds.sensors``), Wi-Fi (``ds.net``),
NTP (``ds.hal.ntp_unix_ms``), the hardware watchdog, and runs
``ds.node.Node`` until the board resets.

Maintenance: while ``/maint`` exists the node does not start (no watchdog,
free REPL), so ``mpremote`` can copy files without a watchdog reset midway;
the flash command creates it first and removes it last.
"""

import asyncio
import gc
import json

import ds
from ds import clock, config, hal, mqtt, net, node, sensors, spool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROFILE_PATH = "/board.json"
MAINT_PATH = "/maint"
COUNTERS_PATH = "/counters.json"
SPOOL_PATH = "/spool"
REC_SIZE = 256  # bytes per spooled reading: the largest (weather + health + hist) is ~230
PROFILE_KEYS = ("board", "hw", "i2c", "uart_sensor", "status_led")


def load_profile(raw: "bytes | None") -> "dict[str, Any]":
    """The board profile from ``board.json``; ValueError when unusable."""
    if raw is None:
        raise ValueError("board.json missing: flash the bundle for this board")
    prof = json.loads(raw)
    if not isinstance(prof, dict):
        raise ValueError("board.json: not an object")
    for key in PROFILE_KEYS:
        if key not in prof:
            raise ValueError("board.json: no %s" % key)
    return prof


def reset_cause_name(code: int, machine: "Any") -> str:
    """``machine.reset_cause()`` as the word ``meta.reset_cause`` carries."""
    for const, name in (
        ("PWRON_RESET", "power_on"),
        ("HARD_RESET", "hard"),
        ("WDT_RESET", "watchdog"),
        ("DEEPSLEEP_RESET", "deepsleep"),
        ("SOFT_RESET", "soft"),
    ):
        if getattr(machine, const, None) == code:
            return name
    return "unknown"


def wdt_timeout_ms(cfg_s: int, profile: "dict[str, Any]") -> int:
    """The hardware watchdog period: the configured one, at most what the chip
    allows (RP2040: 8388 ms, ``wdt_max_ms`` in the Pico W profile). The guard
    feeds it every second while all tasks make progress."""
    ms = int(cfg_s) * 1000
    cap = profile.get("wdt_max_ms")
    return min(ms, int(cap)) if cap else ms


class BoardSystem:
    """What ``ds.node.Node`` needs from the board besides the sensors."""

    def __init__(self, profile: "dict[str, Any]", wifi: "Any", wdt_ms: int) -> None:
        import machine

        self.hw = str(profile["hw"])
        self.wifi = wifi
        self._cause = reset_cause_name(machine.reset_cause(), machine)
        self.wdt = machine.WDT(timeout=wdt_ms)  # cannot be stopped once started

    def reset(self) -> None:
        import machine

        machine.reset()

    def reset_cause(self) -> str:
        return self._cause

    def ntp_unix_ms(self, host: str) -> int:
        if not self.wifi.connected():
            raise OSError("ntp: no wifi")
        return hal.ntp_unix_ms(host)

    def heap_free(self) -> int:
        return gc.mem_free()

    def rssi(self) -> "int | None":
        return self.wifi.rssi()  # type: ignore[no-any-return]


def transport(cfg: "Any", open_stream: "Any" = mqtt.open_stream) -> "Any":
    """How the node reaches the broker: TLS with the CA in ``ca_file`` pinned
    (``ds.tls``), unless ``broker_tls`` is off in ``/config.json``. A missing or
    bad CA stops the boot (OSError/ValueError): the node never falls back to
    plain MQTT by itself. ``open_stream`` is the TCP opener (a fake in tests)."""
    if not cfg["broker_tls"]:
        print("ds: WARNING: broker_tls is off; MQTT (and the secret) in the clear")
        return open_stream
    from ds import tls

    return tls.opener(tls.load(cfg["ca_file"]), open_stream)


async def status_led(led: "Any", n: "Any") -> None:
    """On while the broker session is up; a short blink every 2 s while not."""
    while True:
        if n.client.connected:
            led.value(1)
            await clock.sleep_ms(1000)
        else:
            led.value(1)
            await clock.sleep_ms(100)
            led.value(0)
            await clock.sleep_ms(1900)


async def _run(n: "Any", led: "Any") -> None:
    t = asyncio.create_task(status_led(led, n))
    try:
        await n.run()
    finally:
        t.cancel()


def main() -> None:
    print("ds: DeltaSense node firmware", ds.FW_VERSION)
    if hal.exists(MAINT_PATH):
        print("ds: maintenance mode (%s exists): node not started" % MAINT_PATH)
        return
    cfg = config.Config()
    for err in cfg.errors:
        print("ds: config:", err)
    profile = load_profile(hal.read_bytes(PROFILE_PATH))
    print("ds:", cfg["kind"], cfg["device"], "on", profile["board"], "cfg", cfg.hash)
    counters = spool.Counters(COUNTERS_PATH)
    s = sensors.build(cfg, profile, hal, counters, clock.hw())
    sp = spool.Spool(SPOOL_PATH, capacity=cfg["spool_capacity"], rec_size=REC_SIZE)
    wifi = net.WiFi(cfg["wifi_ssid"], cfg["wifi_pass"])
    system = BoardSystem(profile, wifi, wdt_timeout_ms(cfg["wdt_timeout_s"], profile))
    n = node.Node(cfg, s, sp, counters, system, opener=net.opener(wifi, transport(cfg)))
    led = hal.make_pin(profile["status_led"], "out")
    gc.collect()
    asyncio.run(_run(n, led))
